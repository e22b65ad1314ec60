/* test_jit_cache.c — the JIT's on-disk cache of compiled kernels
 * (backends/llvm/jit.c), in a cache directory of its own (GEMMAC_CACHE):
 * the first engine of a model compiles and stores, the second loads and
 * computes bit-identical logits, a corrupt file is recompiled (and replaced)
 * rather than loaded, and no_cache neither reads nor writes. */
#include "testing.h"

#include "compiler/model.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

static const int32_t prompt[] = {2, 710, 584, 60, 594};
#define N_PROMPT 5

/* The logits of the prompt's last row from a fresh jit engine; *from_cache says where its code came from. */
static float *run(gm_model *m, int no_cache, int *from_cache) {
    gm_err e;
    rt_engine *en = gm_model_engine(m, "jit", &(rt_engine_opts){.context = 16, .no_cache = no_cache}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(en);
    float *logits = gm_malloc(en->vocab * sizeof(float));
    CU_ASSERT_EQUAL(en->prefill(en, prompt, N_PROMPT, 0, logits, 0, &e), 0);
    *from_cache = en->from_cache;
    en->free(en);
    return logits;
}

/* The one file of the cache's jit directory into path; how many there are. */
static int cache_files(const char *dir, char *path, size_t len) {
    char jit[1024];
    snprintf(jit, sizeof jit, "%s/jit", dir);
    DIR *d = opendir(jit);
    int n = 0;
    for (struct dirent *f; d && (f = readdir(d));)
        if (f->d_name[0] != '.') n++, snprintf(path, len, "%s/%s", jit, f->d_name);
    if (d) closedir(d);
    return n;
}

static void test_cache(void) {
    const char *dir = test_tmpdir("tmp-jit-cache");
    setenv("GEMMAC_CACHE", dir, 1);
    gm_err e;
    gm_model *m = gm_model_open(test_path("golden/tiny-gemma2"), NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    int64_t V = m->graph->vocab;
    char file[2048];
    int cached;

    float *fresh = run(m, 1, &cached);
    CU_ASSERT_EQUAL(cached, 0);
    CU_ASSERT_EQUAL(cache_files(dir, file, sizeof file), 0); /* no_cache writes nothing */

    float *first = run(m, 0, &cached);
    CU_ASSERT_EQUAL(cached, 0);
    CU_ASSERT_EQUAL_FATAL(cache_files(dir, file, sizeof file), 1);
    float *second = run(m, 0, &cached);
    CU_ASSERT_EQUAL(cached, 1);
    CU_ASSERT(!memcmp(first, second, V * sizeof(float)));
    CU_ASSERT(!memcmp(first, fresh, V * sizeof(float)));
    free(run(m, 1, &cached));
    CU_ASSERT_EQUAL(cached, 0); /* no_cache does not read */

    size_t len;
    char *obj = gm_read_file(file, &len, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
    for (size_t i = len / 2; i < len / 2 + 64 && i < len; i++) obj[i] ^= 0x5a;
    CU_ASSERT_EQUAL(gm_write_file_atomic(file, obj, len, &e), 0);
    float *third = run(m, 0, &cached);
    CU_ASSERT_EQUAL(cached, 0); /* corrupt: recompiled */
    CU_ASSERT(!memcmp(first, third, V * sizeof(float)));
    CU_ASSERT_EQUAL(gm_write_file_atomic(file, obj, len / 3, &e), 0);
    free(run(m, 0, &cached));
    CU_ASSERT_EQUAL(cached, 0); /* truncated: recompiled */
    free(run(m, 0, &cached));
    CU_ASSERT_EQUAL(cached, 1); /* and replaced */

    free(obj);
    free(fresh);
    free(first);
    free(second);
    free(third);
    gm_model_free(m);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("jit cache", NULL, NULL);
    CU_add_test(s, "compile, store, load, reject corrupt files, bypass", test_cache);
    return test_run_all();
}
