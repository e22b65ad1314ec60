/* threads.h — a small pool of worker threads for splitting one op over the
 * cores (a matmul over its output columns). The caller works too: a pool of
 * n threads starts n - 1 workers. Workers spin briefly before they sleep, so
 * the many short jobs of a decode step do not each pay a wake-up. */
#ifndef GM_THREADS_H
#define GM_THREADS_H

typedef struct rt_pool rt_pool;

/* Runs part `part` of `parts` of a job. */
typedef void rt_job_fn(void *arg, int part, int parts);

/* A pool of `threads` (>= 1) threads, the caller's included. */
rt_pool *rt_pool_new(int threads);
void rt_pool_free(rt_pool *p);
int rt_pool_threads(const rt_pool *p);

/* Runs fn(arg, i, n) for every i < n = rt_pool_threads(p), part 0 on the
 * calling thread, and returns when all parts are done. */
void rt_pool_run(rt_pool *p, rt_job_fn *fn, void *arg);

/* Threads to use by default: $GEMMAC_THREADS when set, else the online CPUs;
 * at least 1 and at most RT_MAX_THREADS (a typo of a few digits must not start a
 * million threads; atoi's overflow was undefined). */
#define RT_MAX_THREADS 1024
int rt_default_threads(void);

#endif
