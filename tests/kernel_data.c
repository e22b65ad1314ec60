/* kernel_data.c — the kernel tests' shared inputs (kernel_data.h). */
#include "kernel_data.h"

#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

double kd_uniform(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ull << 52) - 1;
}

float *kd_random_f32(int64_t n, double scale) {
    float *x = gm_malloc(n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * kd_uniform());
    return x;
}

uint16_t kd_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    int e = (int)(u >> 23 & 0xff) - 127 + 15;
    if (e <= 0 || e >= 31) return (uint16_t)(u >> 16 & 0x8000);
    return (uint16_t)((u >> 16 & 0x8000) | e << 10 | (u >> 13 & 0x3ff));
}

/* The offsets of each block's f16 scale fields (-1 past the last). */
static const int scale_fields[GM_DTYPE_COUNT][3] = {
    [GM_Q8_0] = {0, -1}, [GM_Q4_0] = {0, -1}, [GM_Q5_0] = {0, -1}, [GM_Q4_1] = {0, 2, -1},
    [GM_Q5_1] = {0, 2, -1}, [GM_Q4_K] = {0, 2, -1}, [GM_Q5_K] = {0, 2, -1}, [GM_Q6_K] = {208, -1},
};

static kd_weights random_blocks(gm_dtype dt, int64_t n, double scale) {
    size_t size = gm_dtype_size(dt);
    kd_weights w = {gm_malloc(gm_dtype_bytes(dt, n)), gm_malloc(n * sizeof(float))};
    unsigned char *b = w.data;
    for (size_t i = 0; i < gm_dtype_bytes(dt, n); i++) b[i] = (unsigned char)((kd_uniform() + 1) * 128);
    for (int64_t blk = 0; blk < n / gm_dtype_block(dt); blk++)
        for (const int *f = scale_fields[dt]; *f >= 0; f++) {
            uint16_t h = kd_to_f16((float)(scale * (dt == GM_Q8_0 ? 1.0 / 128 : 1.0 / 16) * (0.25 + fabs(kd_uniform()))));
            memcpy(b + blk * size + *f, &h, 2);
        }
    gm_to_f32(dt, w.data, w.value, n);
    return w;
}

kd_weights kd_random_weights(gm_dtype dt, int64_t n, double scale) {
    if (gm_dtype_quantized(dt)) return random_blocks(dt, n, scale);
    kd_weights w = {gm_malloc(n * gm_dtype_size(dt)), kd_random_f32(n, scale)};
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w.value[i], 4);
        if (dt == GM_F32) ((float *)w.data)[i] = w.value[i];
        else if (dt == GM_BF16) ((uint16_t *)w.data)[i] = (uint16_t)(u >> 16);
        else ((uint16_t *)w.data)[i] = kd_to_f16(w.value[i]);
    }
    gm_to_f32(dt, w.data, w.value, n);
    return w;
}

void kd_free_weights(kd_weights w) {
    free(w.data);
    free(w.value);
}

lv_jit *kd_compile(const ex_kernel *ks, int n) {
    gm_err e = {{0}};
    lv_jit *j = lv_jit_compile(ks, n, 1, &e);
    if (!j) printf("\n  %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    return j;
}

void kd_compare(kd_score *s, const float *got, const double *want, const double *scale, int64_t n, double abs_tol,
                double rel_tol) {
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        if (err == 0) continue;
        double r = err / (abs_tol + rel_tol * fabs(scale ? scale[i] : want[i]));
        if (isnan(r)) r = INFINITY;
        if (r > s->worst) s->worst = r, s->err = err;
    }
}

void kd_report(const char *op, const kd_score *s) {
    printf("[%s: worst %.2f of tolerance, |err| %.2g] ", op, s->worst, s->err);
    CU_ASSERT(s->worst <= 1);
}
