/* quant.h — GGUF's block-quantized weight formats, as stored: decoding
 * them to f32 (the reference backend, the embedding's rows, folding) and
 * encoding f32 into them (activations for the int8 kernels, the tests).
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

/* Encodes n elements (a multiple of 32) as Q8_0 the way llama.cpp's
 * quantize_row_q8_0_ref does: d = max|x| / 127 (as f16), q = round(x / d). */
void gm_quantize_q8_0(const float *x, void *dst, int64_t n);

/* Multiplies every block's f16 scales (d, and dmin or m) by s, a power of
 * two, in place: exact, as the quants stay; the values are then s times the
 * old ones. n elements of type t. 0, or -1 when a scale would overflow or
 * lose bits (subnormal): the caller then keeps the factor elsewhere. */
int gm_quant_scale_pow2(gm_dtype t, void *data, int64_t n, double s);

#endif
