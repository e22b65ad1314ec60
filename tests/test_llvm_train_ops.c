/* test_llvm_train_ops.c — the LLVM backend's training kernels of the loss,
 * rms_norm, rope and the elementwise ops (backends/llvm/train_kernels.c and
 * kernels.c), run on random inputs and compared with the formulas of the
 * reference's backward ops (backends/reference/backward.c) written out
 * here in double precision. The matmuls' and attention's gradient kernels
 * have suites of their own (test_llvm_matmul_grad, test_llvm_attention_grad);
 * test_grad runs them all in whole training graphs.
 *
 * Widths miss the vector width (1, 7, 33, 100 columns; norm groups of 2,
 * 7, 33, 100, not 1, whose output ±g has a gradient that is zero but for
 * eps and f32 leaves rounding there; a vocabulary of 1000) so the narrow
 * pieces and scalar tails run; norm weights come as f32
 * and bf16; cross_entropy_dx runs split into row ranges as the engine's
 * threads split it, with rows without a target among them, and over its
 * input (the same bits). Each test prints
 * its worst error against its tolerance:
 *   cross_entropy      1e-5 relative (f32 exponentials summed, the log in double)
 *   cross_entropy_dx   1e-6 absolute (probabilities / scored rows, below 1)
 *   rms_norm_dx, _dw   1e-5 relative to the tensor's largest (f32 sums)
 *   rope_dx            1e-5 absolute (values of size 1)
 *   gelu_tanh_dx, softcap_dx  1e-6 absolute + 1e-6 relative (the inline exp and tanh) */
#include "testing.h"

#include "kernel_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void report(const char *what, double worst, double tol) {
    printf("\n  %-18s worst %.3g (tolerance %.3g)", what, worst, tol);
    CU_ASSERT(worst <= tol);
}

/* ---- the loss ---- */

#define V 1000
#define T_CE 9

/* Row t's log Σ e^z in double. */
static double lse(const float *z) {
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, z[j]);
    for (int j = 0; j < V; j++) sum += exp(z[j] - mx);
    return mx + log(sum);
}

static void test_cross_entropy(void) {
    float *z = kd_random_f32(T_CE * V, 8);
    int32_t tgt[T_CE] = {3, -1, 999, 0, -1, 500, 7, -1, 42};
    int scored = 0;
    double want = 0, worst = 0, worst_dx = 0;
    for (int t = 0; t < T_CE; t++)
        if (tgt[t] >= 0) want += lse(z + t * V) - z[t * V + tgt[t]], scored++;
    want /= scored;
    ex_kernel ks[2] = {ex_kernel_default(IR_CROSS_ENTROPY, GM_F32, V, 0), ex_kernel_default(IR_CROSS_ENTROPY_DX, GM_F32, V, 0)};
    lv_jit *loss_jit = kd_compile(&ks[0], 1), *dx_jit = kd_compile(&ks[1], 1);
    float loss = NAN, *dz = malloc(T_CE * V * sizeof *dz);
    for (int i = 0; i < T_CE * V; i++) dz[i] = NAN;
    lv_jit_kernel(loss_jit, 0)(&(ex_call){.in = {z, tgt}, .out = &loss, .T = T_CE});
    for (int64_t n0 = 0; n0 < T_CE; n0 += 4) /* row ranges as threads take them */
        lv_jit_kernel(dx_jit, 0)(&(ex_call){.in = {z, tgt}, .out = dz, .T = T_CE, .n0 = n0, .n1 = n0 + 4 < T_CE ? n0 + 4 : T_CE});
    float *in_place = malloc(T_CE * V * sizeof *in_place); /* written over z, as plan_memory may lay it out */
    memcpy(in_place, z, T_CE * V * sizeof *in_place);
    lv_jit_kernel(dx_jit, 0)(&(ex_call){.in = {in_place, tgt}, .out = in_place, .T = T_CE, .n0 = 0, .n1 = T_CE});
    CU_ASSERT(!memcmp(in_place, dz, T_CE * V * sizeof *dz));
    free(in_place);
    worst = fabs(loss - want) / want;
    for (int t = 0; t < T_CE; t++) {
        double l = tgt[t] >= 0 ? lse(z + t * V) : 0;
        for (int j = 0; j < V; j++) {
            double g = tgt[t] >= 0 ? (exp(z[t * V + j] - l) - (j == tgt[t])) / scored : 0;
            worst_dx = fmax(worst_dx, isnan(dz[t * V + j]) ? INFINITY : fabs(dz[t * V + j] - g));
        }
    }
    report("cross_entropy", worst, 1e-5);
    report("cross_entropy_dx", worst_dx, 1e-6);
    lv_jit_free(loss_jit), lv_jit_free(dx_jit);
    free(z), free(dz);
}

/* ---- rms_norm's gradients ---- */

static void norm_want(const float *dy, const float *x, const float *w, int rows, int64_t G, double add_one, double eps,
                      double *dx, double *dw) {
    for (int64_t i = 0; i < G; i++) dw[i] = 0;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + r * G, *dyr = dy + r * G;
        double ss = 0, dot = 0;
        for (int64_t i = 0; i < G; i++) ss += (double)xr[i] * xr[i];
        double inv = 1 / sqrt(ss / G + eps);
        for (int64_t i = 0; i < G; i++) dot += (double)dyr[i] * (w[i] + add_one) * xr[i];
        for (int64_t i = 0; i < G; i++) {
            dx[r * G + i] = inv * dyr[i] * (w[i] + add_one) - inv * inv * inv * xr[i] * dot / G;
            dw[i] += dyr[i] * xr[i] * inv;
        }
    }
}

static double max_abs(const double *v, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

static double worst_rel(const float *got, const double *want, int64_t n) {
    double w = 0, big = max_abs(want, n);
    for (int64_t i = 0; i < n; i++) w = fmax(w, fabs(got[i] - want[i]) / big);
    return w;
}

/* Groups of G over rows of C = 2G columns (the q/k norm's heads), T rows. */
static double check_norm(int64_t G, gm_dtype dt, double add_one, double *worst_dw) {
    int T = 5, rows = 2 * T;
    float *x = kd_random_f32(rows * G, 2), *dy = kd_random_f32(rows * G, 1), *w = kd_random_f32(G, 1);
    uint16_t *w16 = malloc(G * sizeof *w16);
    for (int64_t i = 0; i < G; i++) w16[i] = gm_f32_to_bf16(w[i]), w[i] = dt == GM_BF16 ? gm_bf16_to_f32(w16[i]) : w[i];
    double *dx = malloc(rows * G * sizeof *dx), *dw = malloc(G * sizeof *dw);
    norm_want(dy, x, w, rows, G, add_one, 1e-6, dx, dw);
    ex_kernel ks[2] = {ex_kernel_default(IR_RMS_NORM_DX, GM_F32, 2 * G, G), ex_kernel_default(IR_RMS_NORM_DW, GM_F32, 2 * G, G)};
    for (int i = 0; i < 2; i++) ks[i].wtype = dt, ks[i].attr[IR_A_EPS] = 1e-6, ks[i].attr[IR_A_ADD_ONE] = add_one;
    float *got_dx = malloc(rows * G * sizeof *got_dx), *got_dw = malloc(G * sizeof *got_dw);
    const void *wp = dt == GM_BF16 ? (const void *)w16 : w;
    lv_jit *jdx = kd_compile(&ks[0], 1), *jdw = kd_compile(&ks[1], 1);
    lv_jit_kernel(jdx, 0)(&(ex_call){.in = {dy, x, wp}, .out = got_dx, .T = T});
    lv_jit_kernel(jdw, 0)(&(ex_call){.in = {dy, x, wp}, .out = got_dw, .T = T});
    double worst = worst_rel(got_dx, dx, rows * G);
    *worst_dw = fmax(*worst_dw, worst_rel(got_dw, dw, G));
    lv_jit_free(jdx), lv_jit_free(jdw);
    free(x), free(dy), free(w), free(w16), free(dx), free(dw), free(got_dx), free(got_dw);
    return worst;
}

static void test_rms_norm_grads(void) {
    static const int64_t groups[] = {2, 7, 33, 100};
    double worst_dx = 0, worst_dw = 0;
    for (int g = 0; g < 4; g++)
        for (int d = 0; d < 2; d++) worst_dx = fmax(worst_dx, check_norm(groups[g], d ? GM_BF16 : GM_F32, g % 2, &worst_dw));
    report("rms_norm_dx", worst_dx, 1e-5);
    report("rms_norm_dw", worst_dw, 1e-5);
}

/* ---- rope_dx: the inverse rotation at positions pos.. ---- */

static void test_rope_dx(void) {
    int T = 6, hd = 8, C = 3 * hd, pos = 4;
    float *dy = kd_random_f32(T * C, 1), *got = malloc(T * C * sizeof *got);
    ex_kernel k = ex_kernel_default(IR_ROPE_DX, GM_F32, C, 0);
    k.attr[IR_A_HEAD_DIM] = hd, k.attr[IR_A_THETA] = 10000, k.attr[IR_A_POS_SCALE] = 2;
    lv_jit *j = kd_compile(&k, 1);
    lv_jit_kernel(j, 0)(&(ex_call){.in = {dy}, .out = got, .T = T, .pos = pos});
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hd / 2; i++) {
            double a = -(pos + t) / 2.0 * pow(10000, -2.0 * i / hd), c = cos(a), s = sin(a);
            for (int h = 0; h < C; h += hd) {
                const float *v = dy + t * C + h;
                worst = fmax(worst, fabs(got[t * C + h + i] - (v[i] * c - v[i + hd / 2] * s)));
                worst = fmax(worst, fabs(got[t * C + h + i + hd / 2] - (v[i + hd / 2] * c + v[i] * s)));
            }
        }
    report("rope_dx", worst, 1e-5);
    lv_jit_free(j);
    free(dy), free(got);
}

/* ---- the elementwise gradients ---- */

static double gelu_slope(double x) {
    double c = 0.7978845608028654, t = tanh(c * (x + 0.044715 * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
}

static void check_elementwise(ir_op op, double x_scale, double *worst) {
    static const int64_t widths[] = {1, 7, 33, 100};
    for (int w = 0; w < 4; w++) {
        int T = 3;
        int64_t n = T * widths[w];
        float *dy = kd_random_f32(n, 1), *x = kd_random_f32(n, x_scale), *got = malloc(n * sizeof *got);
        ex_kernel k = ex_kernel_default(op, GM_F32, widths[w], 0);
        k.attr[IR_A_CAP] = op == IR_SOFTCAP_DX ? 30 : 0;
        lv_jit *j = kd_compile(&k, 1);
        lv_jit_kernel(j, 0)(&(ex_call){.in = {dy, x}, .out = got, .T = T});
        for (int64_t i = 0; i < n; i++) {
            double r = x[i] / 30.0, want = op == IR_SOFTCAP_DX ? dy[i] * (1 - r * r) : dy[i] * gelu_slope(x[i]);
            *worst = fmax(*worst, fabs(got[i] - want) / (1e-6 + 1e-6 * fabs(want)));
        }
        lv_jit_free(j);
        free(dy), free(x), free(got);
    }
}

static void test_elementwise_grads(void) {
    double gelu = 0, softcap = 0;
    check_elementwise(IR_GELU_TANH_DX, 8, &gelu);
    check_elementwise(IR_GELU_TANH_DX, 100, &gelu); /* exp's clamp */
    check_elementwise(IR_SOFTCAP_DX, 29, &softcap);
    report("gelu_tanh_dx", gelu, 1); /* in units of the tolerance */
    report("softcap_dx", softcap, 1);
}

int main(void) {
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("llvm training kernels", NULL, NULL);
    CU_add_test(s, "cross_entropy and cross_entropy_dx", test_cross_entropy);
    CU_add_test(s, "rms_norm_dx and rms_norm_dw", test_rms_norm_grads);
    CU_add_test(s, "rope_dx", test_rope_dx);
    CU_add_test(s, "gelu_tanh_dx and softcap_dx", test_elementwise_grads);
    return test_run_all();
}
