/* test_llvm_matmul_grad.c — the compiled training kernels of the matmuls'
 * and embed's gradients (backends/llvm/matmul_grad.c), run on random inputs
 * and compared with their formulas (backends/reference/backward.c) written
 * out here in double precision:
 *   matmul_dx  dx = dy · W, W as f32, bf16, f16 and in GGUF's eight block
 *              formats (against the values runtime/quant.c decodes)
 *   matmul_dw  dw = dyᵀ · x
 *   embed_dw   dw zeroed, dy's rows added at their ids, some repeated
 * T is 1, 3 and 17 (lone rows, the register tiles and their tails) and 100
 * (more rows than a float kernel packs at a time, 96); matmul_dw also takes
 * 300, its sum over t then two blocks of steps. K and N miss the vector
 * width (7, 33, 100), and N = 300 makes matmul_dx's sum over n two blocks;
 * a block format's K is whole blocks (96, and 512 for the K-quants: two
 * blocks of 8 sub-blocks). Each kernel runs once over all its columns and
 * once as two calls that split them as the engine's threads do (at a
 * multiple of 16 and of the weight's block), the first of which must leave
 * the other columns as they were. Each test prints its worst error against
 * its tolerance:
 *   matmul_dx, matmul_dw  1e-5 of Σ|terms| (f32 accumulation, any order)
 *   embed_dw              1e-6 of Σ|terms| (f32 sums of rows in order);
 *                         rows no id names exactly 0 */
#include "testing.h"

#include "kernel_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const int rows_per_call[] = {1, 3, 17, 100};
static const int64_t widths[] = {7, 33, 100};
static const gm_dtype float_types[] = {GM_F32, GM_BF16, GM_F16};
static const gm_dtype block_types[] = {GM_Q8_0, GM_Q4_0, GM_Q4_1, GM_Q5_0, GM_Q5_1, GM_Q4_K, GM_Q5_K, GM_Q6_K};
#define N_ROWS 4
#define N_WIDTHS 3
#define N_FLOAT_TYPES 3
#define N_BLOCK_TYPES 8

/* ---- kernels and their checks ---- */

/* A kernel's output, rows × K, and the exact values it stands for. */
typedef struct {
    int64_t rows, K;
    double *want, *mass; /* the sum, and the sum of its terms' magnitudes */
} expected;

static expected expect(int64_t rows, int64_t K) {
    return (expected){rows, K, gm_calloc(rows * K, sizeof(double)), gm_calloc(rows * K, sizeof(double))};
}

static void add_term(expected *x, int64_t row, int64_t col, double term) {
    x->want[row * x->K + col] += term, x->mass[row * x->K + col] += fabs(term);
}

static void run(ex_kernel_fn fn, ex_call c, float *out, int64_t n0, int64_t n1) {
    c.out = out, c.n0 = n0, c.n1 = n1;
    fn(&c);
}

/* Runs fn on c over all of x's columns in one call, then as two calls split
 * at a multiple of `unit` (the first must leave the other columns as they
 * were: NaN), and scores both outputs within rel_tol of the terms' mass. */
static void check(ex_kernel_fn fn, ex_call c, const expected *x, int64_t unit, double rel_tol, kd_score *s) {
    int64_t n = x->rows * x->K, split = x->K / 2 / unit * unit;
    float *whole = gm_malloc(n * sizeof(float)), *parts = gm_malloc(n * sizeof(float));
    for (int64_t i = 0; i < n; i++) whole[i] = parts[i] = NAN;
    run(fn, c, whole, 0, x->K);
    if (split > 0) {
        run(fn, c, parts, 0, split);
        int kept = 1;
        for (int64_t i = 0; i < n; i++) kept &= i % x->K < split || isnan(parts[i]);
        CU_ASSERT(kept);
    }
    run(fn, c, parts, split, x->K);
    kd_compare(s, whole, x->want, x->mass, n, 1e-30, rel_tol);
    kd_compare(s, parts, x->want, x->mass, n, 1e-30, rel_tol);
    free(whole), free(parts);
}

static void free_expected(expected x) { free(x.want), free(x.mass); }

/* ---- matmul_dx ---- */

/* dx [T][K] = dy [T][N] · W [N][K] on T rows, with the scratch the engine gives it. */
static void check_dx(ex_kernel_fn fn, const ex_kernel *k, int T, kd_score *s) {
    int64_t K = k->n, N = k->k, block = gm_dtype_block(k->wtype);
    kd_weights w = kd_random_weights(k->wtype, N * K, 1);
    float *dy = kd_random_f32(T * N, 1), *scratch = gm_aligned64(ex_scratch_floats(k, T) * sizeof(float));
    expected x = expect(T, K);
    for (int t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < K; i++) add_term(&x, t, i, (double)dy[t * N + n] * w.value[n * K + i]);
    check(fn, (ex_call){.in = {dy, w.data}, .T = T, .scratch = scratch}, &x, block > 16 ? block : 16, 1e-5, s);
    free_expected(x);
    free(w.data), free(w.value), free(dy), free(scratch);
}

static void check_dxs(const ex_kernel *ks, int n, const char *label) {
    lv_jit *j = kd_compile(ks, n);
    kd_score s = {0, 0};
    for (int i = 0; i < n; i++)
        for (int r = 0; r < N_ROWS; r++) check_dx(lv_jit_kernel(j, i), &ks[i], rows_per_call[r], &s);
    kd_report(label, &s);
    lv_jit_free(j);
}

/* K and N of 7, 33 and 100 columns, and N of 300 (two blocks of n). */
static void test_matmul_dx(void) {
    static const int64_t Ns[] = {7, 33, 100, 300};
    enum { N_N = 4, N = N_WIDTHS * N_N * N_FLOAT_TYPES };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++)
        ks[i] = ex_kernel_default(IR_MATMUL_DX, float_types[i % N_FLOAT_TYPES], widths[i / N_FLOAT_TYPES % N_WIDTHS],
                       Ns[i / N_FLOAT_TYPES / N_WIDTHS]);
    check_dxs(ks, N, "matmul_dx");
}

/* K of whole blocks (3 of 32; 2 of 256), N of 7 and 300. */
static void test_matmul_dx_blocks(void) {
    static const int64_t Ns[] = {7, 300};
    enum { N = N_BLOCK_TYPES * 2 };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        gm_dtype dt = block_types[i % N_BLOCK_TYPES];
        ks[i] = ex_kernel_default(IR_MATMUL_DX, dt, gm_dtype_block(dt) == 32 ? 96 : 512, Ns[i / N_BLOCK_TYPES]);
    }
    check_dxs(ks, N, "matmul_dx, block formats");
}

/* ---- matmul_dw ---- */

/* dw [N][K] = dyᵀ · x over T rows. */
static void check_dw(ex_kernel_fn fn, const ex_kernel *k, int T, kd_score *s) {
    int64_t K = k->n, N = k->k;
    float *dy = kd_random_f32(T * N, 1), *xs = kd_random_f32(T * K, 1);
    expected x = expect(N, K);
    for (int t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < K; i++) add_term(&x, n, i, (double)dy[t * N + n] * xs[t * K + i]);
    check(fn, (ex_call){.in = {dy, xs}, .T = T}, &x, 16, 1e-5, s);
    free_expected(x);
    free(dy), free(xs);
}

/* K and N of 7, 33 and 100; T also 300 (two blocks of t). */
static void test_matmul_dw(void) {
    static const int Ts[] = {1, 3, 17, 300};
    enum { N = N_WIDTHS * N_WIDTHS };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) ks[i] = ex_kernel_default(IR_MATMUL_DW, GM_F32, widths[i % N_WIDTHS], widths[i / N_WIDTHS]);
    lv_jit *j = kd_compile(ks, N);
    kd_score s = {0, 0};
    for (int i = 0; i < N; i++)
        for (int r = 0; r < 4; r++) check_dw(lv_jit_kernel(j, i), &ks[i], Ts[r], &s);
    kd_report("matmul_dw", &s);
    lv_jit_free(j);
}

/* ---- embed_dw ---- */

/* dw [V][C]: dy's T rows added at their ids (the last row's id is the first's). */
static void check_embed_dw(ex_kernel_fn fn, const ex_kernel *k, int T, kd_score *s) {
    int64_t C = k->n, V = k->k;
    int32_t ids[100];
    for (int t = 0; t < T; t++) ids[t] = t && t == T - 1 ? ids[0] : (int32_t)((kd_uniform() + 1) / 2 * V);
    float *dy = kd_random_f32(T * C, 1), *table = kd_random_f32(V * C, 1);
    expected x = expect(V, C);
    for (int t = 0; t < T; t++)
        for (int64_t c = 0; c < C; c++) add_term(&x, ids[t], c, dy[t * C + c]);
    check(fn, (ex_call){.in = {ids, table, dy}, .T = T}, &x, 16, 1e-6, s);
    free_expected(x);
    free(dy), free(table);
}

static void test_embed_dw(void) {
    enum { V = 11 };
    ex_kernel ks[N_WIDTHS];
    for (int i = 0; i < N_WIDTHS; i++) ks[i] = ex_kernel_default(IR_EMBED_DW, GM_F32, widths[i], V);
    lv_jit *j = kd_compile(ks, N_WIDTHS);
    kd_score s = {0, 0};
    for (int i = 0; i < N_WIDTHS; i++)
        for (int r = 0; r < N_ROWS; r++) check_embed_dw(lv_jit_kernel(j, i), &ks[i], rows_per_call[r], &s);
    kd_report("embed_dw", &s);
    lv_jit_free(j);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("llvm matmul gradients", NULL, NULL);
    CU_add_test(s, "matmul_dx", test_matmul_dx);
    CU_add_test(s, "matmul_dx on block-quantized weights", test_matmul_dx_blocks);
    CU_add_test(s, "matmul_dw", test_matmul_dw);
    CU_add_test(s, "embed_dw", test_embed_dw);
    return test_run_all();
}
