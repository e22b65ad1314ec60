/* test_golden.c — every oracle case (tests/golden, logits computed by Google's
 * gemma_pytorch) through every backend: prefill logits at every prompt
 * position, the KV-cache decode of the same prompt token by token, and 16
 * greedy steps, each within |Δlogit| ≤ 1e-3 and with identical greedy tokens,
 * at a list of pass settings, and on two cases at every subset of passes.
 * A failure prints the case, prompt, row and the worst difference. */
#include "oracle_exe.h"
#include "testing.h"

#include "compiler/model.h"
#include "runtime/sampler.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define TOL 1e-3


typedef struct {
    cJSON *expected;      /* expected.json */
    float *steps;         /* [prompts][16][V] */
    float *prefill;       /* prompts concatenated, [len][V] each */
    size_t n_steps, n_prefill;
} golden;

static float *read_f32(const char *dir, const char *file, size_t *n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    gm_err e;
    size_t len;
    char *data = gm_read_file(path, &len, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    *n = len / 4;
    return (float *)data;
}

static int load_golden(const char *dir, golden *g) {
    char path[4096];
    snprintf(path, sizeof path, "%s/expected.json", dir);
    gm_err e;
    char *text = gm_read_file(path, NULL, &e);
    if (!text) return -1;
    g->expected = cJSON_Parse(text);
    free(text);
    g->steps = read_f32(dir, "expected_logits.f32", &g->n_steps);
    g->prefill = read_f32(dir, "expected_prefill_logits.f32", &g->n_prefill);
    return g->expected ? 0 : -1;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d; /* NaN counts as the worst */
    }
    return worst;
}

static int32_t *ids_of(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = gm_malloc(*n * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = cJSON_GetArrayItem(arr, i)->valueint;
    return ids;
}

/* Checks one row; returns its |Δ| and reports when over tolerance. */
static double check_row(const char *what, const char *name, int p, int row, const float *got, const float *want, int64_t V) {
    double d = max_diff(got, want, V);
    if (!(d <= TOL)) printf("\n  %s prompt %d %s row %d: max |dlogit| %.3g > %.0e\n", name, p, what, row, d, TOL);
    CU_ASSERT(d <= TOL);
    return d;
}

/* Prefill (all rows), then the same prompt token by token through decode. */
static double check_prompt_prefill(rt_engine *en, const char *name, int p, const int32_t *ids, int n,
                                   const float *want) {
    int64_t V = en->vocab;
    float *rows = gm_malloc(n * V * sizeof(float));
    gm_err e;
    double worst = 0;
    CU_ASSERT_EQUAL_FATAL(en->prefill(en, ids, n, 0, rows, 1, &e), 0);
    for (int i = 0; i < n; i++) worst = fmax(worst, check_row("prefill", name, p, i, rows + i * V, want + i * V, V));
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL_FATAL(en->decode(en, ids[i], i, rows, &e), 0);
        worst = fmax(worst, check_row("token-by-token", name, p, i, rows, want + i * V, V));
    }
    free(rows);
    return worst;
}

/* Last-row prefill, then greedy decode with the KV cache. */
static double check_prompt_greedy(rt_engine *en, const char *name, int p, const int32_t *ids, int n,
                                  const cJSON *continuation, const float *want) {
    int64_t V = en->vocab;
    int steps;
    int32_t *cont = ids_of(continuation, &steps);
    float *row = gm_malloc(V * sizeof(float));
    gm_err e;
    double worst = 0;
    CU_ASSERT_EQUAL_FATAL(en->prefill(en, ids, n, 0, row, 0, &e), 0);
    for (int s = 0; s < steps; s++) {
        if (s) CU_ASSERT_EQUAL_FATAL(en->decode(en, cont[s - 1], n + s - 1, row, &e), 0);
        worst = fmax(worst, check_row("greedy", name, p, s, row, want + s * V, V));
        int32_t got = rt_argmax(row, V);
        if (got != cont[s]) printf("\n  %s prompt %d step %d: greedy token %d, expected %d\n", name, p, s, got, cont[s]);
        CU_ASSERT_EQUAL(got, cont[s]);
    }
    free(row);
    free(cont);
    return worst;
}

static void run_case(const char *name, const char *backend, int full_kv, const gm_pipeline_opts *po) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_path("golden/"));
    strncat(dir, name, sizeof dir - strlen(dir) - 1);
    golden gd = {0};
    CU_ASSERT_EQUAL_FATAL(load_golden(dir, &gd), 0);
    gm_err e;
    gm_pipeline_opts for_target = *po;
    for_target.target = gm_backend_target(backend);
    gm_model *m = gm_model_open_with(dir, NULL, &for_target, &e);
    if (!m) printf("\n  %s: %s\n", name, e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    rt_engine *en = gm_model_engine(m, backend, &(rt_engine_opts){.context = 128, .full_kv = full_kv}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(en);
    int64_t V = en->vocab;
    const cJSON *prompts = cJSON_GetObjectItem(gd.expected, "prompts"), *pr;
    size_t prefill_at = 0;
    double worst = 0;
    int p = 0;
    cJSON_ArrayForEach(pr, prompts) {
        int n;
        int32_t *ids = ids_of(cJSON_GetObjectItem(pr, "prompt"), &n);
        CU_ASSERT_FATAL((prefill_at + n) * V <= gd.n_prefill);
        worst = fmax(worst, check_prompt_prefill(en, name, p, ids, n, gd.prefill + prefill_at * V));
        worst = fmax(worst, check_prompt_greedy(en, name, p, ids, n, cJSON_GetObjectItem(pr, "continuation"),
                                                gd.steps + (size_t)p * 16 * V));
        prefill_at += n;
        free(ids);
        p++;
    }
    printf("[%s %s -O%d%s%s%s: max |dlogit| %.2e] ", name, backend, po->level, po->passes ? " --passes=" : "",
           po->passes ? po->passes : "", full_kv ? " full-kv" : "", worst);
    en->free(en);
    gm_model_free(m);
    cJSON_Delete(gd.expected);
    free(gd.steps);
    free(gd.prefill);
}

/* Every backend at every pass setting; the KV rings also against full caches.
 * The fusions run alone and together, with and without fold_constants (so
 * with add_one still on the norms) and eliminate_dead (so with the absorbed
 * nodes still there). */
static const gm_pipeline_opts settings[] = {
    {.level = 0}, {.level = 2}, {.level = 1}, {.level = 2, .passes = "-eliminate_dead"},
    {.level = 0, .passes = "eliminate_dead,fuse_elementwise"},
    {.level = 2, .passes = "-plan_memory"}, {.level = 0, .passes = "eliminate_common,plan_memory"},
    {.level = 0, .passes = "fuse_elementwise"},
    {.level = 0, .passes = "fuse_matmul"},
    {.level = 0, .passes = "fuse_elementwise,fuse_matmul,eliminate_dead"},
    {.level = 1, .passes = "fuse_matmul"},
};

/* Whether backend b runs on this machine; says once why not. */
static int available(int b) {
    static int said[8];
    gm_err e;
    if (gm_backend_available(gm_backend_names[b], &e)) return 1;
    if (!said[b]++) printf("\n  skipping the %s backend: %s\n", gm_backend_names[b], e.msg);
    return 0;
}

#define CASE_TEST(i) \
    static void test_case_##i(void) { \
        for (int b = 0; gm_backend_names[b]; b++) \
            if (available(b)) \
            for (size_t p = 0; p < sizeof settings / sizeof settings[0]; p++) \
                for (int full_kv = 0; full_kv < 2; full_kv++) \
                    if (!full_kv || p == 1) run_case(oracle_cases[i], gm_backend_names[b], full_kv, &settings[p]); \
    }
CASE_TEST(0) CASE_TEST(1) CASE_TEST(2) CASE_TEST(3) CASE_TEST(4) CASE_TEST(5) CASE_TEST(6)
static void (*const case_tests[ORACLE_CASES])(void) = {test_case_0, test_case_1, test_case_2, test_case_3,
                                                  test_case_4, test_case_5, test_case_6};

/* Every subset of the pipeline's passes (2^7 settings, each from -O0 with
 * exactly those switched on), JIT, on the two cases with the most to get
 * wrong: Gemma 2 (softcaps, sliding windows, post-norms) and Gemma 3 (q/k
 * norms, two RoPE bases, sliding windows). */
static void test_every_pass_combination(void) {
    static const char *const hard[] = {"tiny-gemma2", "tiny-gemma3"};
    int n = pipeline_pass_count();
    for (int mask = 0; mask < 1 << n; mask++) {
        char list[512] = "";
        for (int i = 0; i < n; i++)
            if (mask >> i & 1) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", *list ? "," : "", pipeline_pass_name(i));
        gm_pipeline_opts po = {.level = 0, .passes = list};
        for (int c = 0; c < 2; c++) run_case(hard[c], "jit", 0, &po);
    }
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("golden", NULL, NULL);
    for (int i = 0; i < ORACLE_CASES; i++) CU_add_test(s, oracle_cases[i], case_tests[i]);
    CU_add_test(s, "every pass combination", test_every_pass_combination);
    return test_run_all();
}
