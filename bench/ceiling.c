/* ceiling.c — the arithmetic ceilings of this machine's cores, which the
 * prefill goals of bench/README.md are measured against: f32 FMAs, bf16
 * pair dot products (vdpbf16ps) and int8 dot products (vpdpbusd), each as
 * a register-only loop of independent accumulators (no memory traffic, no
 * dependency longer than the instruction's latency over the accumulators)
 * on every thread at once. A prefill's own kernels also load, convert and
 * store, so they can only approach these rates.
 *
 *   ceiling [--threads N] [--seconds S] [--gflop-per-token G]
 *
 * One line per instruction the CPU has: its rate in GFLOP/s (GOP/s for
 * int8), two operations a multiply-add, and the prefill ceiling of a model
 * that takes G GFLOP a token (default 3.96: Gemma 1 2B, bench/README.md). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cpuid.h>
#include <immintrin.h>

#define ACC 16 /* accumulators: half of AVX-512's registers, enough to cover an FMA's latency on two pipes */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Each loop runs n rounds of ACC independent instructions and returns a
 * value of its accumulators, so that the compiler keeps the work. The
 * AVX-512 ones: `step` updates acc[j] from the constants a and b. */
#define LOOP512(name, features, vec, init, a0, b0, step, add, reduce)                                                  \
    __attribute__((target(features))) static float name(long n) {                                                   \
        vec acc[ACC];                                                                                                \
        __m512i a = a0, b = b0;                                                                                      \
        for (int j = 0; j < ACC; j++) acc[j] = init(j);                                                              \
        for (long i = 0; i < n; i++)                                                                                 \
            _Pragma("GCC unroll 16") for (int j = 0; j < ACC; j++) acc[j] = step;                                    \
        for (int j = 1; j < ACC; j++) acc[0] = add(acc[0], acc[j]);                                                  \
        return (float)reduce(acc[0]);                                                                                \
    }

#define PS(j) _mm512_set1_ps((float)(j))
#define EPI32(j) _mm512_set1_epi32(j)
LOOP512(fma512, "avx512f", __m512, PS, _mm512_castps_si512(PS(0.999f)), _mm512_castps_si512(PS(1e-3f)),
        _mm512_fmadd_ps(acc[j], _mm512_castsi512_ps(a), _mm512_castsi512_ps(b)), _mm512_add_ps, _mm512_reduce_add_ps)
/* bf16 pairs of 1.0 and about 0.001 */
LOOP512(bf16_dot512, "avx512f,avx512bf16", __m512, PS, EPI32(0x3f803f80), EPI32(0x3a803a80),
        _mm512_dpbf16_ps(acc[j], (__m512bh)a, (__m512bh)b), _mm512_add_ps, _mm512_reduce_add_ps)
LOOP512(int8_dot512, "avx512f,avx512vnni", __m512i, EPI32, _mm512_set1_epi8(3), _mm512_set1_epi8(-2),
        _mm512_dpbusd_epi32(acc[j], a, b), _mm512_add_epi32, _mm512_reduce_add_epi32)

__attribute__((target("avx2,fma"))) static float fma256(long n) {
    __m256 acc[12], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f); /* 12 of AVX2's 16 registers */
    for (int j = 0; j < 12; j++) acc[j] = _mm256_set1_ps((float)j);
    for (long i = 0; i < n; i++)
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) acc[j] = _mm256_fmadd_ps(acc[j], b, c);
    for (int j = 1; j < 12; j++) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    float out[8];
    _mm256_storeu_ps(out, acc[0]);
    return out[0] + out[7];
}

typedef struct {
    const char *name;
    float (*loop)(long);
    double ops_per_round; /* multiply-adds of one round × 2 */
    const char *unit;
} kernel;

/* AVX512_BF16 is leaf 7, sub-leaf 1, EAX bit 5, which __builtin_cpu_supports does not name in every compiler. */
static int has_avx512_bf16(void) {
    unsigned a, b, c, d;
    return __builtin_cpu_supports("avx512f") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1);
}

typedef struct {
    const kernel *k;
    long rounds;
    double seconds;
    pthread_barrier_t *start;
    float sink;
} worker;

static void *run_worker(void *p) {
    worker *w = p;
    pthread_barrier_wait(w->start);
    double t0 = now_s();
    for (w->rounds = 0; now_s() - t0 < w->seconds; w->rounds += 1 << 20) w->sink += w->k->loop(1 << 20);
    return NULL;
}

/* ops per second of k on `threads` threads at once, over about `seconds`. */
static double measure(const kernel *k, int threads, double seconds) {
    pthread_t tid[256];
    worker w[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){k, 0, seconds, &start, 0};
        pthread_create(&tid[i], NULL, run_worker, &w[i]);
    }
    pthread_barrier_wait(&start);
    double t0 = now_s(), rounds = 0;
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL), rounds += (double)w[i].rounds;
    double t = now_s() - t0;
    pthread_barrier_destroy(&start);
    return rounds * k->ops_per_round / t;
}

static int usage(void) {
    fprintf(stderr, "usage: ceiling [--threads N] [--seconds S] [--gflop-per-token G]\n");
    return 2;
}

int main(int argc, char **argv) {
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    double seconds = 2, gflop = 3.96;
    for (int i = 1; i < argc; i++) {
        char *end = NULL, *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(argv[i], "--threads")) threads = (int)strtol(v, &end, 10);
        else if (!strcmp(argv[i], "--seconds")) seconds = strtod(v, &end);
        else if (!strcmp(argv[i], "--gflop-per-token")) gflop = strtod(v, &end);
        else return usage();
        if (*end || end == v) return usage();
        i++;
    }
    if (threads < 1 || threads > 256 || !(seconds > 0) || !(gflop > 0)) return usage();
    kernel ks[3];
    int n = 0;
    if (__builtin_cpu_supports("avx512f")) ks[n++] = (kernel){"f32 FMA (vfmadd, 512-bit)", fma512, ACC * 16 * 2.0, "GFLOP/s"};
    else if (__builtin_cpu_supports("fma")) ks[n++] = (kernel){"f32 FMA (vfmadd, 256-bit)", fma256, 12 * 8 * 2.0, "GFLOP/s"};
    if (has_avx512_bf16()) ks[n++] = (kernel){"bf16 dot (vdpbf16ps)", bf16_dot512, ACC * 32 * 2.0, "GFLOP/s"};
    if (__builtin_cpu_supports("avx512vnni")) ks[n++] = (kernel){"int8 dot (vpdpbusd)", int8_dot512, ACC * 64 * 2.0, "GOP/s"};
    if (!n) {
        fprintf(stderr, "ceiling: this CPU has neither FMA nor AVX-512; nothing to measure\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        double r = measure(&ks[i], threads, seconds);
        printf("%-28s %8.1f %-7s on %d threads; prefill ceiling %.1f tok/s at %.2f GFLOP a token\n", ks[i].name,
               r / 1e9, ks[i].unit, threads, r / 1e9 / gflop, gflop);
    }
    return 0;
}
