/* threads.c — the worker pool (see threads.h). A job is published by
 * bumping `generation`; each worker runs its part and counts `pending` down;
 * the last one wakes the caller if it went to sleep. */
#include "threads.h"

#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* How long a thread spins on a job (or its end) before it sleeps. A decode
 * step runs the ops it does not split (attention, rope, norms) on the
 * caller alone, some tens of microseconds, and a worker woken from sleep
 * takes tens more on a VM. With 20000 turns a worker fell asleep in those
 * gaps: the real 270M's k projection took 34 µs a call, and 7.6 µs spinning
 * 200 µs. In six alternated pairs of runs of its decode (2 threads, Zen 4),
 * 200 µs against 10 µs was faster in five, 88-125 against 78-101 tok/s, at
 * 70-87 % of the bandwidth bound against 57-64 %. The spin reads the clock
 * every 1024 turns. */
#define SPIN_S 200e-6

static int spun_out(long turn, double t0) { return (turn & 1023) == 1023 && gm_now_s() - t0 > SPIN_S; }

typedef struct {
    rt_pool *pool;
    int part;
    pthread_t thread;
} worker;

struct rt_pool {
    int threads;
    worker *workers;          /* threads - 1 of them */
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    atomic_uint generation;   /* bumped once per job */
    atomic_int pending;       /* worker parts of this job not yet finished */
    atomic_int stop;
    rt_job_fn *fn;
    void *arg;
};

static void wait_for_job(rt_pool *p, unsigned seen) {
    double t0 = gm_now_s();
    for (long turn = 0; !spun_out(turn, t0); turn++)
        if (atomic_load(&p->generation) != seen) return;
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->generation) == seen) pthread_cond_wait(&p->start, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

static void *work(void *arg) {
    worker *w = arg;
    rt_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        wait_for_job(p, seen);
        seen = atomic_load(&p->generation);
        if (atomic_load(&p->stop)) return NULL;
        p->fn(p->arg, w->part, p->threads);
        if (atomic_fetch_sub(&p->pending, 1) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

/* Publishes a job (or the stop request) to every worker. */
static void publish(rt_pool *p) {
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
}

rt_pool *rt_pool_new(int threads) {
    rt_pool *p = gm_calloc(1, sizeof *p);
    p->threads = threads < 1 ? 1 : threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    p->workers = gm_calloc(p->threads, sizeof *p->workers);
    for (int i = 1; i < p->threads; i++) {
        p->workers[i] = (worker){p, i, 0};
        if (pthread_create(&p->workers[i].thread, NULL, work, &p->workers[i])) {
            p->threads = i; /* run with the threads we got */
            break;
        }
    }
    return p;
}

void rt_pool_free(rt_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, 1);
    publish(p);
    for (int i = 1; i < p->threads; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int rt_pool_threads(const rt_pool *p) { return p->threads; }

void rt_pool_run(rt_pool *p, rt_job_fn *fn, void *arg) {
    if (p->threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->threads - 1);
    publish(p);
    fn(arg, 0, p->threads);
    double t0 = gm_now_s();
    for (long turn = 0; atomic_load(&p->pending) && !spun_out(turn, t0); turn++) continue;
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->pending)) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

int rt_default_threads(void) {
    const char *env = getenv("GEMMAC_THREADS");
    long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > RT_MAX_THREADS ? RT_MAX_THREADS : (int)n;
}
