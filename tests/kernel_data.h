/* kernel_data.h — what the kernel tests (test_llvm_*) share: random inputs
 * from one xorshift stream, weights stored in any dtype beside the f32
 * values they stand for, compiling kernels with the JIT (no cache), and
 * scoring their outputs against tolerances. A kernel description with its
 * op's default attributes is ex_kernel_default (backends/exec/kernel.h). */
#ifndef GM_KERNEL_DATA_H
#define GM_KERNEL_DATA_H

#include "backends/llvm/jit.h"

double kd_uniform(void);                          /* in [-1, 1) */
float *kd_random_f32(int64_t n, double scale);    /* malloc'd, in [-scale, scale) */
uint16_t kd_to_f16(float f);                      /* truncating; what f16 cannot hold as a normal becomes 0 */

/* n random weights stored as dt (float types: values in [-scale, scale);
 * GGUF block types: random quants, and scales of about scale / 16, Q8_0's
 * scale / 128), and the f32 values they stand for (runtime/quant.c's). */
typedef struct {
    void *data;
    float *value;
} kd_weights;
kd_weights kd_random_weights(gm_dtype dt, int64_t n, double scale);
void kd_free_weights(kd_weights w);

/* ks[0..n) compiled; a failure is reported and fails the test (CUnit). */
lv_jit *kd_compile(const ex_kernel *ks, int n);

/* The worst |got − want| / (abs_tol + rel_tol · |scale[i]|) over the values
 * compared (scale NULL: want), ≤ 1 passing; a value never written (NaN)
 * counts as infinitely wrong. kd_report prints it and asserts it. */
typedef struct {
    double worst;  /* the largest ratio seen */
    double err;    /* its absolute error */
} kd_score;
void kd_compare(kd_score *s, const float *got, const double *want, const double *scale, int64_t n, double abs_tol,
                double rel_tol);
void kd_report(const char *op, const kd_score *s);

#endif
