/* quant.h — GGUF's block-quantized weight formats, as stored: decoding
 * them to f32 (the reference backend, the embedding's rows, folding) and
 * encoding f32 into them as llama.cpp does (`gemmac quantize`, the tests).
 *
 * Every format stores a block of 32 or 256 elements as scales plus small
 * integers; gm_dtype_block / gm_dtype_size (common.h) give its elements and
 * bytes. The layouts are llama.cpp's (ggml-common.h), restated in
 * docs/gguf.md §4: Q8_0 (f16 d, 32 × i8), Q4_0 and Q5_0 (f16 d, 4- or 5-bit
 * q, offset 8 or 16), Q4_1 and Q5_1 (plus an f16 min), Q4_K and Q5_K (256
 * elements: f16 d and dmin, eight 6-bit sub-block scales and mins), Q6_K
 * (256 elements: sixteen i8 sub-block scales, f16 d, offset 32). */
#ifndef GM_QUANT_H
#define GM_QUANT_H

#include "common.h"

/* Decodes n elements (a whole number of blocks) of quantized type t. */
void gm_dequantize(gm_dtype t, const void *src, float *dst, int64_t n);

/* One block's integers, for repacking (runtime/qpanel.c): its quants as
 * unsigned values (Q8_0's signed ones + 128, the rest as stored: 4, 5 or 6
 * bits) and its scales as stored. Element e is then
 *   Q8_0, Q4_0, Q5_0: d · (q[e] − 128, 8 or 16)     Q4_1, Q5_1: d · q[e] + d2
 *   Q4_K, Q5_K: d · sc[e/32] · q[e] − d2 · mn[e/32]  Q6_K: d · (int8)sc[e/16] · (q[e] − 32)
 * with d and d2 f16 bits. */
typedef struct {
    uint16_t d, d2;
    uint8_t sc[16], mn[8];
} gm_block_ints;
void gm_quant_ints(gm_dtype t, const void *block, uint8_t *q, gm_block_ints *h);
/* The block's B values from its integers, the same floats gm_dequantize gives. */
void gm_dequantize_ints(gm_dtype t, const uint8_t *q, const gm_block_ints *h, float *y);

/* Encodes n finite f32 values as type t, byte for byte as llama.cpp's
 * reference quantizers do (ggml-quants.c: quantize_row_q8_0_ref,
 * _q4_0_ref, _q4_1_ref, _q5_0_ref, _q5_1_ref, _q4_K_ref, _q5_K_ref,
 * _q6_K_ref; what llama-quantize runs without an importance matrix), and
 * F16 / BF16 rounded to nearest even as ggml does (F32: copied). n must be
 * a multiple of the block. Returns -1 for a type it does not encode (I32)
 * or an n that is not a whole number of blocks. docs/gguf.md ("The
 * encoders") states the rules. */
int gm_quantize(gm_dtype t, const float *x, void *dst, int64_t n);

/* Whether all n values are finite: what gm_quantize needs (a NaN or an
 * infinity has no block scale; the callers refuse the tensor by name). */
int gm_all_finite(const float *x, int64_t n);

/* gm_quantize(GM_Q8_0, ...): d = max|x| / 127 (as f16), q = roundf(x / d). */
void gm_quantize_q8_0(const float *x, void *dst, int64_t n);

/* Multiplies every block's f16 scales (d, and dmin or m) by s, a power of
 * two, in place: exact, as the quants stay; the values are then s times the
 * old ones. n elements of type t. 0, or -1 when a scale would overflow or
 * lose bits (subnormal): the caller then keeps the factor elsewhere. */
int gm_quant_scale_pow2(gm_dtype t, void *data, int64_t n, double s);

#endif
