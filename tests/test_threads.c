/* test_threads.c — the worker pool (runtime/threads.c): every part of every
 * job runs exactly once and is finished when rt_pool_run returns, over many
 * short jobs in a row (the decode pattern: workers spin, then sleep), pools
 * larger than the machine, pools made and freed in a loop, and the default
 * size from $GEMMAC_THREADS, bounded. The job
 * writes plain memory that the caller reads after the run, so
 * scripts/sanitize.sh thread checks the pool's ordering under
 * ThreadSanitizer. */
#include "runtime/threads.h"
#include "testing.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PARTS 16

typedef struct {
    int runs[MAX_PARTS]; /* times each part ran in this job */
    int parts;           /* the parts count the pool passed */
    long sum[MAX_PARTS]; /* each part's share of the work */
} job;

static void count(void *arg, int part, int parts) {
    job *j = arg;
    j->runs[part]++;
    if (part == 0) j->parts = parts;
    for (long i = part; i < 10000; i += parts) j->sum[part] += i;
}

/* Runs `jobs` jobs on a pool of n threads, each checked as it returns. */
static void run_jobs(int n, int jobs, int pause_every) {
    rt_pool *p = rt_pool_new(n);
    CU_ASSERT_EQUAL_FATAL(rt_pool_threads(p), n);
    for (int k = 0; k < jobs; k++) {
        job j = {{0}, 0, {0}};
        rt_pool_run(p, count, &j);
        long total = 0;
        for (int i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(j.runs[i], 1);
            total += j.sum[i];
        }
        CU_ASSERT_EQUAL(j.parts, n);
        CU_ASSERT_EQUAL(total, 10000L * 9999 / 2);
        if (pause_every && k % pause_every == 0) usleep(2000); /* the workers go to sleep */
    }
    rt_pool_free(p);
}

static void test_one_thread(void) { run_jobs(1, 100, 0); }
static void test_many_short_jobs(void) { run_jobs(4, 2000, 0); }
static void test_jobs_after_sleeping(void) { run_jobs(3, 40, 1); }
static void test_more_threads_than_cores(void) { run_jobs(MAX_PARTS, 200, 50); }

static void test_pools_made_and_freed(void) {
    for (int k = 0; k < 50; k++) run_jobs(1 + k % 5, 3, 0);
    rt_pool_free(rt_pool_new(4)); /* freed without a job */
}

/* $GEMMAC_THREADS as given, within [1, RT_MAX_THREADS]; what is not a number gives 1. */
static void test_default_threads(void) {
    const struct { const char *env; int want; } cases[] = {
        {"3", 3}, {"0", 1}, {"-5", 1}, {"abc", 1}, {"99999999999", RT_MAX_THREADS}, {"1025", RT_MAX_THREADS}};
    const char *old = getenv("GEMMAC_THREADS");
    char *saved = old ? strdup(old) : NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("GEMMAC_THREADS", cases[i].env, 1);
        CU_ASSERT_EQUAL(rt_default_threads(), cases[i].want);
    }
    if (saved) setenv("GEMMAC_THREADS", saved, 1);
    else unsetenv("GEMMAC_THREADS");
    free(saved);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("thread pool", NULL, NULL);
    CU_add_test(s, "a pool of one runs on the caller", test_one_thread);
    CU_add_test(s, "2000 short jobs, each part once", test_many_short_jobs);
    CU_add_test(s, "jobs after the workers slept", test_jobs_after_sleeping);
    CU_add_test(s, "16 threads on any machine", test_more_threads_than_cores);
    CU_add_test(s, "pools made and freed in a loop", test_pools_made_and_freed);
    CU_add_test(s, "$GEMMAC_THREADS within bounds", test_default_threads);
    return test_run_all();
}
