/* qdecode.c — one decode step's matmul in isolation: a [N][K] weight of a
 * block-quantized type, repacked into the int8 kernels' panels
 * (runtime/qpanel.h), times one row of x under --activations int8, as
 * gemmac's JIT compiles it (T = 1, the engine's split of the columns over
 * threads). Beside it, in alternate rounds, the same threads just read the
 * same bytes (AVX-512 loads, nothing else), so that each kernel figure has
 * the machine's read rate of that moment beside it: on a VM whose bandwidth
 * moves by half from one minute to the next, the ratio is what compares.
 *
 *   qdecode TYPE K N THREADS REPS [COPIES]
 *
 * TYPE: q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k. The weight is
 * random bytes on 2 MB pages (the engine's packed weights are too); with
 * COPIES > 1, that many weights one after the other, call r reading copy
 * r % COPIES: many matmuls of a model's size, each read once. Runs 21
 * rounds of REPS calls each: a read, the kernel, a read again, so each
 * kernel round has the mean of the reads on either side beside it. Prints
 * the medians, in GB/s of weight bytes, and the median of the kernel's
 * shares of the read rate with their quartiles. */
#include "backends/llvm/jit.h"
#include "runtime/common.h"
#include "runtime/qpanel.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64
#define ROUNDS 21 /* of a read, the kernel, a read again */

typedef struct {
    ex_kernel_fn fn;
    const float *x;
    const unsigned char *w;
    float *y, *scratch;
    int64_t n0, n1;
    size_t panel_bytes, copy_bytes;
    int reps, copies, read_only;
    pthread_barrier_t *start;
} part;

/* The bytes [p, p + n) summed 256 at a time: a plain read. */
__attribute__((target("avx512f"))) static float read_bytes(const unsigned char *p, size_t n) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a = _mm512_add_epi64(a, _mm512_load_si512(p + i)), b = _mm512_add_epi64(b, _mm512_load_si512(p + i + 64));
        c = _mm512_add_epi64(c, _mm512_load_si512(p + i + 128)), d = _mm512_add_epi64(d, _mm512_load_si512(p + i + 192));
    }
    return (float)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
}

static void *run_part(void *arg) {
    part *p = arg;
    for (int r = 0; r < p->reps; r++) {
        const unsigned char *w = p->w + (size_t)(r % p->copies) * p->copy_bytes;
        pthread_barrier_wait(p->start);
        if (p->read_only) p->y[p->n0] = read_bytes(w + p->n0 / GM_QPANEL_ROWS * p->panel_bytes, (size_t)(p->n1 - p->n0) / GM_QPANEL_ROWS * p->panel_bytes);
        else p->fn(&(ex_call){.in = {p->x, w, NULL}, .out = p->y, .T = 1, .n0 = p->n0, .n1 = p->n1, .scratch = p->scratch});
    }
    return NULL;
}

/* Seconds per call of one round of REPS calls, reading only or not. */
static double time_round(part *parts, int threads, int read_only) {
    pthread_t th[MAX_THREADS];
    double t0 = gm_now_s();
    for (int t = 0; t < threads; t++) parts[t].read_only = read_only, pthread_create(&th[t], NULL, run_part, &parts[t]);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    return (gm_now_s() - t0) / parts[0].reps;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    gm_dtype dt;
    if (argc < 6 || gm_dtype_from_name(argv[1], &dt) || !gm_dtype_quantized(dt)) {
        fprintf(stderr, "usage: qdecode TYPE K N THREADS REPS [COPIES]   (TYPE: q8_0, q4_0, ..., q4_k, q6_k)\n");
        return 2;
    }
    int64_t K = atoll(argv[2]), N = atoll(argv[3]);
    int threads = atoi(argv[4]), reps = atoi(argv[5]), copies = argc > 6 ? atoi(argv[6]) : 1;
    if (K <= 0 || K % gm_dtype_block(dt) || K % 64 || N <= 0 || threads < 1 || threads > MAX_THREADS || reps < 1 || copies < 1) {
        fprintf(stderr, "qdecode: K a multiple of 64 and of the block, N, THREADS (1..%d), REPS and COPIES positive\n", MAX_THREADS);
        return 2;
    }
    ex_kernel k = ex_kernel_default(IR_MATMUL, dt, N, K);
    k.panel = EX_PANEL, k.attr[IR_A_X_INT8] = 1; /* repacked panels, --activations int8 */
    gm_err e = {{0}};
    lv_jit *jit = lv_jit_compile(&k, 1, 1, &e);
    if (!jit) {
        fprintf(stderr, "qdecode: %s\n", e.msg);
        return 1;
    }
    size_t bytes = gm_qpanel_bytes(dt, N, K);
    int64_t panels = (N + GM_QPANEL_ROWS - 1) / GM_QPANEL_ROWS;
    unsigned char *w = gm_huge_alloc(bytes * copies);
    for (size_t i = 0; i < bytes * copies; i++) w[i] = (unsigned char)(i * 2654435761u >> 13);
    float *x = gm_aligned64(K * sizeof *x), *y = gm_aligned64(N * sizeof *y);
    for (int64_t i = 0; i < K; i++) x[i] = sinf((float)i);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, threads);
    part parts[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        int64_t n0 = panels * t / threads * GM_QPANEL_ROWS, n1 = panels * (t + 1) / threads * GM_QPANEL_ROWS;
        parts[t] = (part){lv_jit_kernel(jit, 0), x, w, y, gm_aligned64(ex_scratch_floats(&k, 1) * sizeof(float) + 64), n0,
                          n1 < N ? n1 : N, bytes / panels, bytes, reps, copies, 0, &start};
    }
    double kernel[ROUNDS], read[ROUNDS], ratio[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double before = time_round(parts, threads, 1);
        kernel[r] = time_round(parts, threads, 0);
        read[r] = (before + time_round(parts, threads, 1)) / 2, ratio[r] = read[r] / kernel[r];
    }
    qsort(kernel, ROUNDS, sizeof *kernel, by_value), qsort(read, ROUNDS, sizeof *read, by_value), qsort(ratio, ROUNDS, sizeof *ratio, by_value);
    printf("%s K=%lld N=%lld threads=%d: %.3f ms, %.1f GB/s (%.1f MB); read only %.1f GB/s; kernel at %.2f of it "
           "[quartiles %.2f, %.2f]\n",
           argv[1], (long long)K, (long long)N, threads, kernel[ROUNDS / 2] * 1e3, bytes / kernel[ROUNDS / 2] / 1e9, bytes / 1e6,
           bytes / read[ROUNDS / 2] / 1e9, ratio[ROUNDS / 2], ratio[ROUNDS / 4], ratio[3 * ROUNDS / 4]);
    return 0;
}
