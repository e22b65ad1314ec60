/* test_cache.c — the on-disk caches (runtime/cache.c) and `gemmac cache`:
 * sizes as $GEMMAC_CACHE_MAX spells them; a store past the cap removes the
 * least recently used entries (a read counts as a use) and crashed writers'
 * temporary files, but not a store in progress or the fetched models beside
 * the entries; processes writing one entry while another reads it never show
 * the reader half an entry; gemmac processes racing on one small cache all
 * compute the same logits; and `gemmac cache list | clear` on a real cache.
 * Each test has a cache directory of its own (GEMMAC_CACHE). */
#define _GNU_SOURCE /* utimensat */

#include "testing.h"

#include "runtime/cache.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *gemmac;

static void test_sizes(void) {
    const struct { const char *s; uint64_t v; } good[] = {
        {"0", 0}, {"1048576", 1048576}, {"10G", 10ull << 30}, {"512M", 512ull << 20}, {"2GiB", 2ull << 30},
        {"3k", 3072}, {"1TB", 1ull << 40}, {"18446744073709551615", UINT64_MAX}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint64_t v = 1;
        CU_ASSERT_EQUAL(gm_cache_parse_size(good[i].s, &v), 0);
        CU_ASSERT_EQUAL(v, good[i].v);
    }
    const char *bad[] = {"", "G", "-1", "10X", "10GG", "10 G", "1e9", "99999999999T", "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t v;
        if (gm_cache_parse_size(bad[i], &v) != -1) printf("\n  \"%s\" was taken as %llu\n", bad[i], (unsigned long long)v);
        CU_ASSERT_EQUAL(gm_cache_parse_size(bad[i], &v), -1);
    }
    setenv("GEMMAC_CACHE_MAX", "7M", 1);
    CU_ASSERT_EQUAL(gm_cache_limit(), 7ull << 20);
    setenv("GEMMAC_CACHE_MAX", "lots", 1); /* said once on stderr; the default stands */
    CU_ASSERT_EQUAL(gm_cache_limit(), 10ull << 30);
    unsetenv("GEMMAC_CACHE_MAX");
    CU_ASSERT_EQUAL(gm_cache_limit(), 10ull << 30);
}

/* Writes n bytes to dir/name, last modified `age` seconds ago. */
static void put(const char *dir, const char *name, size_t n, int age) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (size_t i = 0; i < n; i++) fputc((int)i, f);
    fclose(f);
    struct timespec t[2] = {{time(NULL) - age, 0}, {time(NULL) - age, 0}};
    CU_ASSERT_EQUAL(utimensat(AT_FDCWD, path, t, 0), 0);
}

static int there(const char *dir, const char *name) { return test_exists(dir, name); }

static const char *fresh_cache(const char *name) {
    const char *dir = test_tmpdir(name);
    setenv("GEMMAC_CACHE", dir, 1);
    char sub[2048];
    CU_ASSERT_EQUAL(gm_cache_dir("jit", sub, sizeof sub), 0);
    CU_ASSERT_EQUAL(gm_cache_dir("packed", sub, sizeof sub), 0);
    return dir;
}

static void test_least_recently_used(void) {
    const char *dir = fresh_cache("tmp-cache-lru");
    put(dir, "jit/a.o", 100, 500);
    put(dir, "packed/m.b.bin", 100, 400);
    put(dir, "jit/c.o", 100, 300);
    put(dir, "jit/e.o", 100, 200);
    put(dir, "jit/notes.txt", 1000, 900);       /* not an entry */
    put(dir, "model.gguf", 5000, 900);          /* a fetched model */
    put(dir, "jit/x.o.tmp.1", 1000, 7200);      /* a crashed writer's */
    put(dir, "packed/y.bin.tmp.2", 1000, 10);   /* a store in progress */
    char a[2048];
    snprintf(a, sizeof a, "%s/jit/a.o", dir);
    gm_cache_used(a); /* read just now: the most recently used */
    int n;
    gm_cache_entry *list = gm_cache_list(&n);
    CU_ASSERT_EQUAL(n, 6);
    CU_ASSERT(n == 6 && list[0].temp && strstr(list[1].path, "packed/m.b.bin") && !strcmp(list[1].kind, "packed") &&
              list[1].size == 100 && strstr(list[5].path, "jit/a.o"));
    free(list);

    setenv("GEMMAC_CACHE_MAX", "250", 1);
    char d[2048], data[100] = {0};
    snprintf(d, sizeof d, "%s/jit/d.o", dir);
    CU_ASSERT_EQUAL(gm_cache_store(d, data, sizeof data), 0); /* 500 bytes of entries: the three oldest go */
    CU_ASSERT(!there(dir, "packed/m.b.bin") && !there(dir, "jit/c.o") && !there(dir, "jit/e.o"));
    CU_ASSERT(there(dir, "jit/a.o") && there(dir, "jit/d.o")); /* used and stored last */
    CU_ASSERT(!there(dir, "jit/x.o.tmp.1") && there(dir, "packed/y.bin.tmp.2"));
    CU_ASSERT(there(dir, "jit/notes.txt") && there(dir, "model.gguf"));

    char big[300] = {0}, f[2048];
    snprintf(f, sizeof f, "%s/packed/big.bin", dir);
    CU_ASSERT_EQUAL(gm_cache_store(f, big, sizeof big), -1); /* larger than the cap: not stored, nothing removed */
    CU_ASSERT(!there(dir, "packed/big.bin") && there(dir, "jit/a.o") && there(dir, "jit/d.o"));
    unsetenv("GEMMAC_CACHE_MAX");
}

/* An entry that says whether it is whole: its length, a pattern seeded by
 * `seed`, and a hash of all that. */
static size_t make_entry(unsigned char *buf, size_t n, unsigned seed) {
    memcpy(buf, &n, 8);
    for (size_t i = 8; i < n - 8; i++) buf[i] = (unsigned char)(seed * 31 + i * 7);
    uint64_t h = gm_fnv1a(GM_FNV1A_SEED, buf, n - 8);
    memcpy(buf + n - 8, &h, 8);
    return n;
}

static int whole(const unsigned char *buf, size_t len) {
    size_t n;
    uint64_t h;
    if (len < 16) return 0;
    memcpy(&n, buf, 8);
    memcpy(&h, buf + len - 8, 8);
    return n == len && h == gm_fnv1a(GM_FNV1A_SEED, buf, len - 8);
}

/* Two processes store one entry over and over, each time another size (4 KB
 * to 2 MB), while this one reads it: every read is a whole entry. */
static void test_readers_never_see_half(void) {
    const char *dir = fresh_cache("tmp-cache-race");
    char path[2048];
    snprintf(path, sizeof path, "%s/packed/race.bin", dir);
    pid_t writers[2];
    for (int w = 0; w < 2; w++)
        if ((writers[w] = fork()) == 0) {
            unsigned char *buf = malloc(2 << 20);
            for (unsigned i = 0; i < 400; i++)
                gm_cache_store(path, buf, make_entry(buf, 4096 + (i * 7919 + w * 104729) % ((2 << 20) - 4096), i));
            _exit(0);
        }
    int reads = 0, torn = 0, running = 2;
    while (running) {
        size_t len;
        gm_err e;
        unsigned char *data = (unsigned char *)gm_read_file(path, &len, &e);
        if (data) reads++, torn += !whole(data, len);
        free(data);
        running = 0;
        for (int w = 0; w < 2; w++) running += waitpid(writers[w], NULL, WNOHANG) == 0;
    }
    printf("\n  %d reads while two processes stored, %d torn\n", reads, torn);
    CU_ASSERT(reads > 10);
    CU_ASSERT_EQUAL(torn, 0);
    int n;
    free(gm_cache_list(&n));
    CU_ASSERT_EQUAL(n, 1); /* and no temporary file left behind */
}

/* Four gemmac processes at once, three rounds, on one fresh cache capped
 * below its two entries (a model's kernels and packed weights), so each store
 * evicts the other entry while other processes load it: all print the logits
 * of a run without a cache. */
static void test_processes_racing(void) {
    const char *dir = fresh_cache("tmp-cache-processes");
    char cmd[8192], want[4096] = "", logits[4096];
    snprintf(logits, sizeof logits, "'%s' logits '%s' --tokens 2,710,584 --steps 3", gemmac, test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL_FATAL(test_sh(dir, logits), 0);
    char *w = test_slurp(dir, "out.txt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    snprintf(want, sizeof want, "%s", w);
    free(w);
    int n;
    gm_cache_entry *list = gm_cache_list(&n);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    uint64_t cap = list[0].size + list[1].size - 1, freed;
    free(list);
    CU_ASSERT_EQUAL(gm_cache_clear(NULL, &freed), 2);
    for (int round = 0; round < 3; round++) {
        snprintf(cmd, sizeof cmd,
                 "{ pids=; for i in 1 2 3 4; do GEMMAC_CACHE_MAX=%llu %s > got$i.txt 2>err$i.txt & pids=\"$pids $!\"; "
                 "done; fail=0; for p in $pids; do wait $p || fail=1; done; exit $fail; }",
                 (unsigned long long)cap, logits);
        CU_ASSERT_EQUAL(test_sh(dir, cmd), 0);
        for (int i = 1; i <= 4; i++) {
            char name[32];
            snprintf(name, sizeof name, "got%d.txt", i);
            char *got = test_slurp(dir, name);
            CU_ASSERT(got && !strcmp(got, want));
            free(got);
        }
    }
    list = gm_cache_list(&n);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += list[i].temp ? UINT64_MAX / 2 : list[i].size;
    CU_ASSERT(n == 1 && total <= cap); /* one entry left, no temporary file */
    free(list);
}

/* `gemmac cache` on the cache a run just filled. */
static void test_command(void) {
    const char *dir = fresh_cache("tmp-cache-command");
    put(dir, "model.gguf", 5000, 0);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' logits '%s' --tokens 2,710 --steps 1 >/dev/null && '%s' cache list", gemmac,
             test_path("golden/tiny-gemma2"), gemmac);
    CU_ASSERT_EQUAL(test_sh(dir, cmd), 0);
    char *out = test_slurp(dir, "out.txt");
    CU_ASSERT(out && strstr(out, ": 2 entries, ") && strstr(out, "of 10.0 GiB ($GEMMAC_CACHE_MAX)") &&
              strstr(out, "\njit ") && strstr(out, "\npacked ") && strstr(out, "packed/tiny-gemma2."));
    if (out) printf("\n%s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "'%s' cache clear packed", gemmac);
    CU_ASSERT_EQUAL(test_sh(dir, cmd), 0);
    out = test_slurp(dir, "out.txt");
    CU_ASSERT(out && strstr(out, "removed 1 entry of packed, "));
    free(out);
    snprintf(cmd, sizeof cmd, "{ '%s' cache clear && '%s' cache; }", gemmac, gemmac);
    CU_ASSERT_EQUAL(test_sh(dir, cmd), 0);
    out = test_slurp(dir, "out.txt");
    CU_ASSERT(out && strstr(out, "removed 1 entry, ") && strstr(out, ": 0 entries, 0 B of 10.0 GiB"));
    free(out);
    CU_ASSERT(there(dir, "model.gguf"));

    const char *usage[] = {"cache purge", "cache clear all", "cache list jit"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "'%s' %s", gemmac, usage[i]);
        CU_ASSERT_EQUAL(test_sh(dir, cmd), 2);
        char *err = test_slurp(dir, "err.txt");
        CU_ASSERT(err && !strncmp(err, "gemmac: ", 8) && strstr(err, "see gemmac cache --help"));
        free(err);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: test_cache path/to/gemmac\n"), 2;
    gemmac = argv[1];
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("cache", NULL, NULL);
    CU_add_test(s, "$GEMMAC_CACHE_MAX sizes", test_sizes);
    CU_add_test(s, "least recently used entries go first", test_least_recently_used);
    CU_add_test(s, "readers never see half an entry", test_readers_never_see_half);
    CU_add_test(s, "gemmac processes racing on one cache", test_processes_racing);
    CU_add_test(s, "gemmac cache list and clear", test_command);
    return test_run_all();
}
