/* test_llvm_ops.c — every kind of kernel the LLVM backend emits, run on
 * random inputs and compared with a scalar double-precision version of the
 * op's formula (docs/model-format.md) written out here.
 *
 * Sizes are chosen to miss the vector width (1, 7, 33, 100 columns) so the
 * narrow pieces and scalar tails run; T is 1 (decode), 3 and 17 (tiles and
 * their tails); weights come as f32, bf16 and f16, and the matmul family and
 * embed also in GGUF's eight block formats (against the values runtime/quant.c
 * decodes, which test_gguf holds against the formulas). Attention runs a sequence
 * of calls against a KV slot of runtime/kv_cache.h, past the end of its ring,
 * with GQA, a sliding window and a softcap, on short and long (313 keys)
 * contexts, some calls split by query rows as the engine's threads split
 * them. Each test prints its worst error
 * against its tolerance:
 *   embed                      exact (a dtype conversion); quantized 2e-7 relative (one rounding)
 *   scale, mul, add            1e-6 relative (one f32 rounding)
 *   gelu_tanh, geglu, softcap  1e-6 absolute + 1e-6 relative (the inline exp and tanh),
 *                              on inputs up to 8 and, every other call, up to 100 (exp's clamp)
 *   rms_norm                   1e-5 relative (f32 sum of squares)
 *   matmul                     1e-5 of Σ|x·w| (f32 accumulation, any order)
 *   rope                       1e-5 absolute (values of size 1)
 *   attention                  1e-5 absolute (a weighted mean of values of size 1) */
#include "testing.h"

#include "kernel_data.h"
#include "runtime/kv_cache.h"
#include "runtime/qpanel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const int64_t widths[] = {1, 7, 33, 100};
static const int rows_per_call[] = {1, 3, 17};
static const gm_dtype dtypes[] = {GM_F32, GM_BF16, GM_F16};
#define N_WIDTHS 4
#define N_ROWS 3
#define N_DTYPES 3

/* ---- embed ---- */

static void *to_panels(const void *w, gm_dtype dt, int64_t N, int64_t K, int P);

/* Every embed kernel of ks on T rows of a V-row random table (in panels
 * where the kernel reads them), compared with the table's values within
 * abs_tol + rel_tol·|value|. */
static void check_embeds(const ex_kernel *ks, int n, double abs_tol, double rel_tol, const char *label) {
    enum { V = 11, T = 17 };
    lv_jit *j = kd_compile(ks, n);
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((kd_uniform() + 1) / 2 * V);
    kd_score s = {0, 0};
    for (int i = 0; i < n; i++) {
        int64_t C = ks[i].n;
        kd_weights table = kd_random_weights(ks[i].wtype, V * C, 1);
        float *y = gm_malloc(T * C * sizeof *y);
        double *want = gm_malloc(T * C * sizeof *want);
        void *panels = ks[i].panel ? to_panels(table.data, ks[i].wtype, V, C, ks[i].panel) : NULL;
        lv_jit_kernel(j, i)(&(ex_call){.in = {ids, panels ? panels : table.data}, .out = y, .T = T});
        free(panels);
        for (int t = 0; t < T; t++)
            for (int64_t c = 0; c < C; c++) want[t * C + c] = table.value[ids[t] * C + c];
        kd_compare(&s, y, want, NULL, T * C, abs_tol, rel_tol);
        kd_free_weights(table);
        free(y), free(want);
    }
    kd_report(label, &s);
    lv_jit_free(j);
}

static void test_embed(void) {
    ex_kernel ks[N_WIDTHS * N_DTYPES];
    for (int w = 0; w < N_WIDTHS; w++)
        for (int d = 0; d < N_DTYPES; d++) ks[w * N_DTYPES + d] = ex_kernel_default(IR_EMBED, dtypes[d], widths[w], 0);
    check_embeds(ks, N_WIDTHS * N_DTYPES, 0, 1e-30, "embed");
}

/* ---- elementwise ---- */

static const ir_op elementwise_ops[] = {IR_SCALE, IR_MUL, IR_ADD, IR_GELU_TANH, IR_GEGLU, IR_SOFTCAP};
#define N_ELEMENTWISE 6

static double elementwise_ref(ir_op op, double x, double b, const double *a) {
    switch (op) {
    case IR_SCALE: return x * a[IR_A_BY];
    case IR_MUL: return x * b;
    case IR_ADD: return x + b;
    case IR_GELU_TANH: return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case IR_GEGLU: return elementwise_ref(IR_GELU_TANH, x, 0, a) * b;
    default: return a[IR_A_CAP] * tanh(x / a[IR_A_CAP]);
    }
}

static void test_elementwise(void) {
    ex_kernel ks[N_ELEMENTWISE * N_WIDTHS];
    for (int o = 0; o < N_ELEMENTWISE; o++)
        for (int w = 0; w < N_WIDTHS; w++) {
            ex_kernel *k = &ks[o * N_WIDTHS + w];
            *k = ex_kernel_default(elementwise_ops[o], GM_F32, widths[w], 0);
            k->attr[IR_A_BY] = 11.3137;
            k->attr[IR_A_CAP] = 3.5;
        }
    lv_jit *j = kd_compile(ks, N_ELEMENTWISE * N_WIDTHS);
    for (int o = 0; o < N_ELEMENTWISE; o++) {
        kd_score s = {0, 0};
        int libm = elementwise_ops[o] == IR_GELU_TANH || elementwise_ops[o] == IR_GEGLU || elementwise_ops[o] == IR_SOFTCAP;
        for (int w = 0; w < N_WIDTHS; w++)
            for (int r = 0; r < N_ROWS; r++) {
                const ex_kernel *k = &ks[o * N_WIDTHS + w];
                int64_t n = k->n * rows_per_call[r];
                float *x = kd_random_f32(n, r % 2 ? 100 : 8), *b = kd_random_f32(n, 2), *y = gm_malloc(n * sizeof *y);
                double *want = gm_malloc(n * sizeof *want);
                lv_jit_kernel(j, o * N_WIDTHS + w)(&(ex_call){.in = {x, b}, .out = y, .T = rows_per_call[r]});
                for (int64_t i = 0; i < n; i++) want[i] = elementwise_ref(k->op, x[i], b[i], k->attr);
                kd_compare(&s, y, want, NULL, n, libm ? 1e-6 : 1e-30, 1e-6);
                free(x), free(b), free(y), free(want);
            }
        kd_report(ir_ops[elementwise_ops[o]].name, &s);
    }
    lv_jit_free(j);
}

/* ---- rms_norm ---- */

static void test_rms_norm(void) {
    static const int64_t shapes[][2] = {{1, 1}, {7, 7}, {33, 33}, {100, 100}, {64, 16}, {96, 32}, {1000, 1000}};
    enum { N_SHAPES = 7, N = N_SHAPES * N_DTYPES };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        ks[i] = ex_kernel_default(IR_RMS_NORM, dtypes[i % N_DTYPES], shapes[i / N_DTYPES][0], shapes[i / N_DTYPES][1]);
        ks[i].attr[IR_A_EPS] = 1e-6;
        ks[i].attr[IR_A_ADD_ONE] = i % 2;
    }
    lv_jit *j = kd_compile(ks, N);
    kd_score s = {0, 0};
    for (int i = 0; i < N; i++)
        for (int r = 0; r < N_ROWS; r++) {
            int64_t C = ks[i].n, G = ks[i].k, T = rows_per_call[r];
            kd_weights w = kd_random_weights(ks[i].wtype, G, 0.5);
            float *x = kd_random_f32(T * C, 3), *y = gm_malloc(T * C * sizeof *y);
            double *want = gm_malloc(T * C * sizeof *want);
            lv_jit_kernel(j, i)(&(ex_call){.in = {x, w.data}, .out = y, .T = T});
            for (int64_t g = 0; g < T * C / G; g++) {
                double ss = 0;
                for (int64_t c = 0; c < G; c++) ss += (double)x[g * G + c] * x[g * G + c];
                double inv = 1 / sqrt(ss / G + 1e-6);
                for (int64_t c = 0; c < G; c++)
                    want[g * G + c] = x[g * G + c] * inv * (w.value[c] + ks[i].attr[IR_A_ADD_ONE]);
            }
            kd_compare(&s, y, want, NULL, T * C, 1e-30, 1e-5);
            kd_free_weights(w);
            free(x), free(y), free(want);
        }
    kd_report("rms_norm", &s);
    lv_jit_free(j);
}

/* ---- matmul ---- */

static void check_matmul(ex_kernel_fn fn, const ex_kernel *k, int T, kd_score *s) {
    int64_t K = k->k, N = k->n;
    kd_weights w = kd_random_weights(k->wtype, N * K, 1);
    float *x = kd_random_f32(T * K, 1), *y = gm_malloc(T * N * sizeof *y);
    double *want = gm_malloc(T * N * sizeof *want), *mass = gm_malloc(T * N * sizeof *mass);
    int64_t split = N / 8 * 4; /* two calls, as the engine's threads make them */
    fn(&(ex_call){.in = {x, w.data}, .out = y, .T = T, .n0 = 0, .n1 = split});
    fn(&(ex_call){.in = {x, w.data}, .out = y, .T = T, .n0 = split, .n1 = N});
    for (int t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double dot = 0, abs_dot = 0;
            for (int64_t i = 0; i < K; i++) {
                dot += (double)x[t * K + i] * w.value[n * K + i];
                abs_dot += fabs((double)x[t * K + i] * w.value[n * K + i]);
            }
            want[t * N + n] = dot, mass[t * N + n] = abs_dot;
        }
    kd_compare(s, y, want, mass, T * N, 1e-30, 1e-5);
    kd_free_weights(w);
    free(x), free(y), free(want), free(mass);
}

static void test_matmul(void) {
    static const int64_t Ns[] = {1, 7, 33, 100};
    static const int64_t Ks[] = {1, 7, 33, 100, 1000};
    enum { N_K = 5, N_N = 4, N = N_K * N_N * N_DTYPES };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++)
        ks[i] = ex_kernel_default(IR_MATMUL, dtypes[i % N_DTYPES], Ns[i / N_DTYPES % N_N], Ks[i / N_DTYPES / N_N]);
    lv_jit *j = kd_compile(ks, N);
    kd_score s = {0, 0};
    for (int i = 0; i < N; i++)
        for (int r = 0; r < N_ROWS; r++) check_matmul(lv_jit_kernel(j, i), &ks[i], rows_per_call[r], &s);
    kd_report("matmul", &s);
    lv_jit_free(j);
}

/* ---- the matmul family on panel weights (pack_weights' layout) ---- */

/* w [N][K] in panels of P rows interleaved by k, the last zero-padded: the
 * layout as specified; a block-quantized w repacked by runtime/qpanel.c. */
static void *to_panels(const void *w, gm_dtype dt, int64_t N, int64_t K, int P) {
    if (gm_dtype_quantized(dt)) {
        void *q = memset(gm_aligned64(gm_qpanel_bytes(dt, N, K)), 0, gm_qpanel_bytes(dt, N, K));
        gm_qpanel_pack(dt, w, N, K, 0, (N + P - 1) / P, q);
        return q;
    }
    size_t es = gm_dtype_size(dt);
    int64_t panels = (N + P - 1) / P;
    unsigned char *p = gm_calloc((size_t)panels * P * K, es);
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) memcpy(p + ((n / P * K + k) * P + n % P) * es, (const char *)w + (n * K + k) * es, es);
    return p;
}

/* The family's arithmetic in double: norm prologue, x·wᵀ, residual, softcap. */
static void family_want(const ex_kernel *k, int T, const float *x, const float *nw, const float *w, const float *r,
                        double *want, double *mass) {
    int64_t K = k->k, N = k->n;
    for (int t = 0; t < T; t++) {
        double inv = 1, ss = 0;
        for (int64_t i = 0; i < K; i++) ss += (double)x[t * K + i] * x[t * K + i];
        if (k->op == IR_NORM_MATMUL) inv = 1 / sqrt(ss / K + k->attr[IR_A_EPS]);
        for (int64_t n = 0; n < N; n++) {
            double dot = 0, abs_dot = 0;
            for (int64_t i = 0; i < K; i++) {
                double xi = x[t * K + i] * (k->op == IR_NORM_MATMUL ? inv * nw[i] : 1);
                dot += xi * w[n * K + i], abs_dot += fabs(xi * w[n * K + i]);
            }
            dot *= k->attr[IR_A_OUT_SCALE], abs_dot *= k->attr[IR_A_OUT_SCALE];
            if (r) dot += r[t * N + n], abs_dot += fabs(r[t * N + n]);
            double cap = k->attr[IR_A_SOFTCAP];
            want[t * N + n] = cap > 0 ? cap * tanh(dot / cap) : dot, mass[t * N + n] = abs_dot;
        }
    }
}

/* x as --activations int8 rounds it (per block of 32: d = max|x| / 127, d · round(x / d)). */
static float *rounded_to_int8(const float *x, int64_t n) {
    float *r = gm_malloc(n * sizeof *r);
    for (int64_t b = 0; b < n; b += 32) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b + i]));
        float d = amax / 127, id = d != 0 ? 1 / d : 0;
        for (int i = 0; i < 32; i++) r[b + i] = d * rintf(x[b + i] * id);
    }
    return r;
}

/* x as --activations bf16 rounds it for a bf16 weight (to nearest, ties to even). */
static float *rounded_to_bf16(const float *x, int64_t n) {
    float *r = gm_malloc(n * sizeof *r);
    for (int64_t i = 0; i < n; i++) r[i] = gm_bf16_to_f32(gm_f32_to_bf16(x[i]));
    return r;
}

static void check_family(ex_kernel_fn fn, const ex_kernel *k, int T, kd_score *s) {
    int64_t K = k->k, N = k->n;
    kd_weights w = kd_random_weights(k->wtype, N * K, 1), nw = kd_random_weights(GM_F32, K, 1);
    void *packed = k->panel ? to_panels(w.data, k->wtype, N, K, k->panel) : w.data;
    float *x = kd_random_f32(T * K, 1), *r = kd_random_f32(T * N, 1), *y = gm_malloc(T * N * sizeof *y);
    float *scratch = gm_aligned64(ex_scratch_floats(k, T) * sizeof(float));
    double *want = gm_malloc(T * N * sizeof *want), *mass = gm_malloc(T * N * sizeof *mass);
    const void *in2 = k->op == IR_NORM_MATMUL ? (const void *)nw.data : k->op == IR_MATMUL_ADD ? r : NULL;
    int64_t split = N > 32 ? 32 : N; /* two calls on panel boundaries, as the engine's threads make them */
    fn(&(ex_call){.in = {x, packed, in2}, .out = y, .T = T, .n0 = 0, .n1 = split, .scratch = scratch});
    fn(&(ex_call){.in = {x, packed, in2}, .out = y, .T = T, .n0 = split, .n1 = N, .scratch = scratch});
    float *xr = k->attr[IR_A_X_INT8] ? rounded_to_int8(x, T * K)
              : k->attr[IR_A_X_BF16] && k->wtype == GM_BF16 ? rounded_to_bf16(x, T * K) : x;
    family_want(k, T, xr, nw.value, w.value, k->op == IR_MATMUL_ADD ? r : NULL, want, mass);
    kd_compare(s, y, want, mass, T * N, 1e-30, 1e-5);
    if (xr != x) free(xr);
    if (packed != w.data) free(packed);
    kd_free_weights(w), kd_free_weights(nw);
    free(x), free(r), free(y), free(scratch), free(want), free(mass);
}

/* Every kernel of ks on rows 1 and 3 (single rows), 11 (fewer than a tile:
 * a batched decode's rows, decoded in groups where quantized), 17 and 30
 * (register tiles and a tail), reported under label. */
static void check_families(const ex_kernel *ks, int n, const char *label) {
    static const int Ts[] = {1, 3, 11, 17, 30};
    lv_jit *j = kd_compile(ks, n);
    kd_score s = {0, 0};
    for (int i = 0; i < n; i++)
        for (int r = 0; r < 5; r++) check_family(lv_jit_kernel(j, i), &ks[i], Ts[r], &s);
    kd_report(label, &s);
    lv_jit_free(j);
}

/* Rows 1 and 3 (single rows), 17 and 30 (register tiles and a tail); N not
 * a multiple of the panel (masked columns); K within one block of EX_KC,
 * past it, and over three blocks and a short fourth (partial sums through y,
 * the epilogue after the last). */
static void test_matmul_family(void) {
    static const int64_t Ns[] = {7, 33, 64, 100};
    static const int64_t Ks[] = {33, 100, EX_KC + 100, 3 * EX_KC + 5};
    static const ir_op ops[] = {IR_MATMUL, IR_NORM_MATMUL, IR_MATMUL_ADD};
    enum { N_K = 4, N_N = 4, N_OPS = 3, N = N_K * N_N * N_DTYPES };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        ks[i] = ex_kernel_default(ops[i % N_OPS], dtypes[i % N_DTYPES], Ns[i / N_DTYPES % N_N], Ks[i / N_DTYPES / N_N]);
        ks[i].panel = EX_PANEL;
        ks[i].ntype = GM_F32;
        if (ks[i].op == IR_NORM_MATMUL) ks[i].attr[IR_A_EPS] = 1e-6;
        if (ks[i].op != IR_MATMUL_ADD && i % 2) ks[i].attr[IR_A_SOFTCAP] = 2;
    }
    check_families(ks, N, "matmul family, panels");
}

/* ---- the matmul family and embed on block-quantized weights (quant.c) ---- */

static const gm_dtype qtypes[] = {GM_Q8_0, GM_Q4_0, GM_Q4_1, GM_Q5_0, GM_Q5_1, GM_Q4_K, GM_Q5_K, GM_Q6_K};
#define N_QTYPES 8

/* Every format against its values decoded by runtime/quant.c: rows 1 and 3
 * (decode: each weight row's blocks decoded in registers), 17 and 30 (the
 * prefill tiles over blocks decoded into panels, and a tail); N past a
 * multiple of 32 (masked columns); K of one block, and of several blocks of
 * EX_KC with a short last one for the 32-element formats. */
static void test_matmul_quantized(void) {
    static const int64_t Ns[] = {7, 33, 100};
    static const ir_op ops[] = {IR_MATMUL, IR_NORM_MATMUL, IR_MATMUL_ADD};
    enum { N_N = 3, N_K = 2, N = N_QTYPES * N_N * N_K };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        gm_dtype dt = qtypes[i % N_QTYPES];
        int64_t B = gm_dtype_block(dt), K = i / N_QTYPES / N_N ? (B == 32 ? 3 * EX_KC + 64 : 3 * B) : B;
        ks[i] = ex_kernel_default(ops[i % 3], dt, Ns[i / N_QTYPES % N_N], K);
        ks[i].ntype = GM_F32;
        if (ks[i].op == IR_NORM_MATMUL) ks[i].attr[IR_A_EPS] = 1e-6;
        if (ks[i].op != IR_MATMUL_ADD && i % 2) ks[i].attr[IR_A_SOFTCAP] = 2;
        if (i % 5 == 0) ks[i].attr[IR_A_OUT_SCALE] = 0.0625; /* a folded query scale the blocks could not take */
    }
    check_families(ks, N, "matmul family, quantized");
}

/* --activations int8: matmul and matmul_add against x rounded as the
 * reference rounds it (norm_matmul rounds its normalised rows, which the
 * kernel and a test compute with different f32 roundings: the golden tests
 * hold it against the reference backend). Rows 1 and 3 take the integer dot
 * products (K a multiple of 64), 17 and 30 and K = 64·k + 32 the rounded
 * rows through the f32 kernels. */
static void test_matmul_int8(void) {
    enum { N = N_QTYPES * 2 * 3 };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        gm_dtype dt = qtypes[i % N_QTYPES];
        int64_t B = gm_dtype_block(dt), shape = i / N_QTYPES % 3;
        int64_t K = shape == 0 ? (B == 32 ? 64 : B) : shape == 1 ? (B == 32 ? 3 * EX_KC + 64 : 3 * B) : (B == 32 ? 96 : B);
        ks[i] = ex_kernel_default(i / N_QTYPES / 3 ? IR_MATMUL_ADD : IR_MATMUL, dt, shape == 1 ? 100 : 33, K);
        ks[i].attr[IR_A_X_INT8] = 1;
        if (ks[i].op == IR_MATMUL && i % 2) ks[i].attr[IR_A_SOFTCAP] = 2;
    }
    check_families(ks, N, "matmul, int8 activations");
}

/* The same on weights repacked into panels for the int8 tiles
 * (runtime/qpanel.h), every format: rows 1 and 3 (each panel streamed once,
 * as decode does), 17 and 30 (the tiles and a tail); N past a multiple of 32;
 * K of 64 (or a block of 256) and of several blocks of EX_KC with a short last. */
static void test_matmul_int8_repacked(void) {
    enum { N = N_QTYPES * 2 * 2 };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        gm_dtype dt = qtypes[i % N_QTYPES];
        int64_t B = gm_dtype_block(dt), longer = i / N_QTYPES % 2;
        int64_t K = longer ? (B == 32 ? 3 * EX_KC + 64 : 3 * B) : (B == 32 ? 64 : B);
        ks[i] = ex_kernel_default(i / N_QTYPES / 2 ? IR_MATMUL_ADD : IR_MATMUL, dt, longer ? 100 : 33, K);
        ks[i].attr[IR_A_X_INT8] = 1;
        ks[i].panel = EX_PANEL;
        if (ks[i].op == IR_MATMUL && i % 2) ks[i].attr[IR_A_SOFTCAP] = 2;
        if (i % 3 == 0) ks[i].attr[IR_A_OUT_SCALE] = 0.0625;
    }
    check_families(ks, N, "matmul, int8 activations, repacked");
}

/* --activations bf16: matmul and matmul_add (norm_matmul rounds rows that
 * the test normalises in double: see test_matmul_int8) against x rounded
 * to bf16, on panels (bf16 dot products where the CPU has AVX512_BF16,
 * forced on by GEMMAC_BF16_DOT=1 where it does not pay (Intel's), then
 * forced off: rows 1 and 3 stream each panel, 17 and 30 take the tiles and
 * a tail; off, K odd or row-major: the rounded rows through the f32
 * kernels); K within a block of EX_KC, past it, over three blocks and a
 * short fourth; N past a multiple of 32. The products of bf16 values are
 * exact in f32, so only the order of the sums differs: the f32 tolerance
 * holds. */
static void test_matmul_bf16(void) {
    static const int64_t Ks[] = {64, 100, EX_KC + 34, 3 * EX_KC + 6, 33};
    enum { N_K = 5, N = N_K * 2 * 2 * 2 };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        ks[i] = ex_kernel_default(i % 2 ? IR_MATMUL_ADD : IR_MATMUL, GM_BF16, i / 2 % 2 ? 100 : 33, Ks[i / 8]);
        ks[i].attr[IR_A_X_BF16] = 1;
        ks[i].panel = i / 4 % 2 ? 0 : EX_PANEL;
        if (ks[i].op == IR_MATMUL && i % 3 == 0) ks[i].attr[IR_A_SOFTCAP] = 2;
        if (i % 5 == 0) ks[i].attr[IR_A_OUT_SCALE] = 0.0625;
    }
    setenv("GEMMAC_BF16_DOT", "1", 1);
    check_families(ks, N, "matmul, bf16 activations, bf16 dot products where the CPU has them");
    setenv("GEMMAC_BF16_DOT", "0", 1);
    check_families(ks, N, "matmul, bf16 activations, rounded x and f32 kernels");
    unsetenv("GEMMAC_BF16_DOT");
}

/* Rows of quantized tables: the decoded values, within one f32 rounding
 * (the kernel may fuse d·q + min, or round the product of three factors once). */
static void test_embed_quantized(void) {
    ex_kernel ks[N_QTYPES];
    for (int i = 0; i < N_QTYPES; i++) ks[i] = ex_kernel_default(IR_EMBED, qtypes[i], 2 * gm_dtype_block(qtypes[i]), 0);
    check_embeds(ks, N_QTYPES, 1e-30, 2e-7, "embed, quantized");
}

/* Rows of quantized tables kept only in int8 panels (a tied head's): decoded
 * from the panels by gm_qpanel_row, exactly the values as stored give. */
static void test_embed_qpanel(void) {
    ex_kernel ks[N_QTYPES];
    for (int i = 0; i < N_QTYPES; i++) {
        ks[i] = ex_kernel_default(IR_EMBED, qtypes[i], 2 * gm_dtype_block(qtypes[i]), 0);
        ks[i].panel = GM_QPANEL_ROWS;
    }
    check_embeds(ks, N_QTYPES, 0, 0, "embed, quantized, from int8 panels");
}

/* ---- rope ---- */

static void test_rope(void) {
    static const int64_t head_dims[] = {2, 6, 32, 40};
    static const double pos_scales[] = {1, 8};
    static const int positions[] = {0, 5, 1000};
    enum { N = 4 * 2 };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        int64_t hd = head_dims[i / 2];
        ks[i] = ex_kernel_default(IR_ROPE, GM_F32, hd * 3, 0);
        ks[i].attr[IR_A_HEAD_DIM] = (double)hd;
        ks[i].attr[IR_A_THETA] = i % 2 ? 1e6 : 1e4;
        ks[i].attr[IR_A_POS_SCALE] = pos_scales[i % 2];
    }
    lv_jit *j = kd_compile(ks, N);
    kd_score s = {0, 0};
    for (int i = 0; i < N; i++)
        for (int r = 0; r < N_ROWS; r++)
            for (int p = 0; p < 3; p++) {
                const double *a = ks[i].attr;
                int64_t C = ks[i].n, hd = (int64_t)a[IR_A_HEAD_DIM], half = hd / 2, T = rows_per_call[r];
                float *x = kd_random_f32(T * C, 1), *y = gm_malloc(T * C * sizeof *y);
                double *want = gm_malloc(T * C * sizeof *want);
                lv_jit_kernel(j, i)(&(ex_call){.in = {x}, .out = y, .T = T, .pos = positions[p]});
                for (int64_t t = 0; t < T; t++)
                    for (int64_t h = 0; h < C; h += hd)
                        for (int64_t q = 0; q < half; q++) {
                            double angle = (positions[p] + t) / a[IR_A_POS_SCALE] * pow(a[IR_A_THETA], -2.0 * q / hd);
                            double x0 = x[t * C + h + q], x1 = x[t * C + h + q + half];
                            want[t * C + h + q] = x0 * cos(angle) - x1 * sin(angle);
                            want[t * C + h + q + half] = x1 * cos(angle) + x0 * sin(angle);
                        }
                kd_compare(&s, y, want, NULL, T * C, 1e-5, 0);
                free(x), free(y), free(want);
            }
    kd_report("rope", &s);
    lv_jit_free(j);
}

/* ---- attention ---- */

typedef struct {
    int heads, kv_heads, head_dim, window;
    double softcap;
    int parts;      /* each call's query rows split into this many kernel calls, as the engine's threads do */
    int long_run;   /* 313 keys in 6 calls, else 53 in 11 */
} attn_shape;

/* The output of query row t (position pos + t) over every key so far. */
static void attention_ref(const attn_shape *a, const float *q, const float *keys, const float *values, int i,
                          double *out) {
    int kv_cols = a->kv_heads * a->head_dim, hd = a->head_dim;
    int lo = a->window > 0 && i - a->window + 1 > 0 ? i - a->window + 1 : 0;
    double *p = gm_malloc((i + 1) * sizeof *p);
    for (int h = 0; h < a->heads; h++) {
        int off = h / (a->heads / a->kv_heads) * hd;
        double max = -INFINITY, sum = 0;
        for (int j = lo; j <= i; j++) {
            double s = 0;
            for (int d = 0; d < hd; d++) s += (double)q[h * hd + d] * keys[j * kv_cols + off + d];
            s /= sqrt(hd);
            if (a->softcap > 0) s = a->softcap * tanh(s / a->softcap);
            p[j] = s, max = fmax(max, s);
        }
        for (int j = lo; j <= i; j++) sum += p[j] = exp(p[j] - max);
        for (int d = 0; d < hd; d++) {
            double o = 0;
            for (int j = lo; j <= i; j++) o += p[j] * values[j * kv_cols + off + d];
            out[h * hd + d] = o / sum;
        }
    }
    free(p);
}

/* The call at pos of T rows, as `parts` kernel calls of consecutive rows. */
static void run_attention(ex_kernel_fn fn, const attn_shape *a, ex_call c) {
    for (int p = 0; p < a->parts; p++) {
        c.n0 = c.T * p / a->parts, c.n1 = c.T * (p + 1) / a->parts;
        fn(&c);
    }
}

/* Calls of T rows at growing positions, past the ring's end more than once. */
static void check_attention(ex_kernel_fn fn, const attn_shape *a, kd_score *s) {
    static const int short_run[] = {3, 1, 1, 17, 1, 1, 7, 1, 17, 1, 3, 0}, long_run[] = {100, 1, 150, 1, 60, 1, 0};
    const int *calls = a->long_run ? long_run : short_run;
    int context = a->long_run ? 320 : 64;
    int kv_cols = a->kv_heads * a->head_dim, q_cols = a->heads * a->head_dim;
    rt_kv_cache *cache = rt_kv_create(1, &a->window, &kv_cols, context, 0);
    rt_kv_slot *slot = &cache->slots[0];
    float *keys = gm_malloc(context * kv_cols * sizeof(float)), *values = gm_malloc(context * kv_cols * sizeof(float));
    int pos = 0;
    for (int c = 0; calls[c]; c++) {
        int T = calls[c];
        float *q = kd_random_f32(T * q_cols, 2), *k = kd_random_f32(T * kv_cols, 2), *v = kd_random_f32(T * kv_cols, 1);
        float *y = gm_malloc(T * q_cols * sizeof *y);
        double *want = gm_malloc(T * q_cols * sizeof *want);
        memcpy(keys + pos * kv_cols, k, T * kv_cols * sizeof(float));
        memcpy(values + pos * kv_cols, v, T * kv_cols * sizeof(float));
        run_attention(fn, a, (ex_call){.in = {q, k, v}, .out = y, .T = T, .pos = pos, .k_cache = slot->k,
                                       .v_cache = slot->v, .rows = slot->rows});
        for (int t = 0; t < T; t++) attention_ref(a, q + t * q_cols, keys, values, pos + t, want + t * q_cols);
        kd_compare(s, y, want, NULL, T * q_cols, 1e-5, 0);
        rt_kv_store(slot, pos, T, k, v);
        pos += T;
        free(q), free(k), free(v), free(y), free(want);
    }
    CU_ASSERT(pos > slot->rows || !a->window);
    free(keys), free(values);
    rt_kv_free(cache);
}

static void test_attention(void) {
    static const attn_shape shapes[] = {
        {4, 2, 16, 0, 0, 1, 0},   {4, 2, 16, 5, 0, 1, 0},  {4, 2, 20, 8, 50, 1, 0}, {2, 2, 7, 0, 5, 1, 0},
        {4, 1, 33, 12, 0, 1, 0},  {1, 1, 100, 3, 30, 1, 0}, {6, 2, 16, 9, 0, 3, 0},  {8, 1, 24, 0, 0, 2, 0},
        {4, 1, 64, 100, 30, 2, 1}, {8, 1, 32, 0, 50, 1, 1},
    };
    enum { N = sizeof shapes / sizeof shapes[0] };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        const attn_shape *a = &shapes[i];
        ks[i] = ex_kernel_default(IR_ATTENTION, GM_F32, a->heads * a->head_dim, 0);
        ks[i].attr[IR_A_HEADS] = a->heads;
        ks[i].attr[IR_A_KV_HEADS] = a->kv_heads;
        ks[i].attr[IR_A_HEAD_DIM] = a->head_dim;
        ks[i].attr[IR_A_SCALE] = 1 / sqrt(a->head_dim);
        ks[i].attr[IR_A_SOFTCAP] = a->softcap;
        ks[i].attr[IR_A_WINDOW] = a->window;
    }
    lv_jit *j = kd_compile(ks, N);
    kd_score s = {0, 0};
    for (int i = 0; i < N; i++) check_attention(lv_jit_kernel(j, i), &shapes[i], &s);
    kd_report("attention", &s);
    lv_jit_free(j);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("llvm ops", NULL, NULL);
    CU_add_test(s, "embed", test_embed);
    CU_add_test(s, "elementwise", test_elementwise);
    CU_add_test(s, "rms_norm", test_rms_norm);
    CU_add_test(s, "matmul", test_matmul);
    CU_add_test(s, "matmul, norm_matmul, matmul_add on panel weights", test_matmul_family);
    CU_add_test(s, "matmul family on block-quantized weights", test_matmul_quantized);
    CU_add_test(s, "matmul on block-quantized weights, int8 activations", test_matmul_int8);
    CU_add_test(s, "matmul on repacked block-quantized weights, int8 activations", test_matmul_int8_repacked);
    CU_add_test(s, "matmul on bf16 weights, bf16 activations", test_matmul_bf16);
    CU_add_test(s, "embed of block-quantized tables", test_embed_quantized);
    CU_add_test(s, "embed of block-quantized tables in int8 panels", test_embed_qpanel);
    CU_add_test(s, "rope", test_rope);
    CU_add_test(s, "attention", test_attention);
    return test_run_all();
}
