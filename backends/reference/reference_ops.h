/* reference_ops.h — what the reference interpreter (reference.c) and its
 * backward ops (backward.c) share: weight rows as f32, the elementwise
 * functions and rope, and a value's floats in a call of T rows. */
#ifndef GM_REFERENCE_OPS_H
#define GM_REFERENCE_OPS_H

#include "reference.h"

/* Rows [row, row + n_rows) of weight w ([N][cols], any dtype) as f32. */
void ref_weight_rows_f32(const gm_tensor *w, int64_t row, int64_t n_rows, int64_t cols, float *dst);
/* A matmul walks its weight w [N][K] in blocks of rows as f32: all N rows
 * at once when w is f32 (read in place), else blocks of 256 rows converted
 * into a buffer of ref_block_rows · K floats (NULL for f32). */
int64_t ref_block_rows(const gm_tensor *w, int64_t N);
float *ref_block_buffer(const gm_tensor *w, int64_t N, int64_t K);
const float *ref_weight_block(const gm_tensor *w, int64_t row, int64_t n_rows, int64_t K, float *buf);
/* The first key query position i attends to: the window's (0: none), not
 * before its sequence's first position seq_start. */
static inline int ref_first_key(int i, int window, int seq_start) {
    int lo = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
    return seq_start > lo ? seq_start : lo;
}
#define REF_GELU_C 0.7978845608028654 /* √(2/π) of gelu_tanh */
double ref_softcap(double v, double cap);
float ref_gelu_tanh(double v);
/* Rotates x [T][C] in place, row t at position pos + t − start[t] (start
 * NULL: 0); inverse: the other way, the transpose of the rotation, which is
 * rope's gradient. */
void ref_rope(float *x, int T, int64_t C, int pos, const int32_t *start, const double *a, int inverse);
int64_t ref_value_len(const ir_graph *g, int v, int T);

/* Runs training op n (a TRAIN_OP of ops.def) on batch b into y, its
 * output's buffer; act holds the values computed so far. */
void ref_backward_node(const ir_graph *g, const ir_node *n, const gm_tensor *const *bound, float *const *act,
                       const rt_batch *b, float *y);

#endif
