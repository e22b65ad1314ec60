/* quant.h — decoding GGUF's block-quantized weights inside emitted kernels
 * (quant.c): the embed and matmul emitters' one view of those formats. */
#ifndef GM_LLVM_QUANT_H
#define GM_LLVM_QUANT_H

#include "emit.h"

#define LV_QSUB 32 /* elements of one decoded sub-block: a block of 32, or an eighth of 256 */

/* Sub-block `sub` (elements [32·sub, 32·sub + 32), sub < gm_dtype_block / 32)
 * of the block of dtype dt at byte address blk, as its integers and scales:
 * element i is scale[i / 16] · (q[i] − offset) + min. */
typedef struct {
    LLVMValueRef q;         /* <32 x i8>: the quants, signed when is_signed (Q8_0), else unsigned */
    int is_signed, offset;
    LLVMValueRef scale[2];  /* f32: of elements 0–15 and 16–31 (one value but for Q6_K) */
    LLVMValueRef min;       /* f32, or NULL */
} lv_qsub;
void lv_quant_sub(lv_emit *m, gm_dtype dt, LLVMValueRef blk, int sub, lv_qsub *s);
/* The same as <32 x float> values. */
LLVMValueRef lv_quant_decode(lv_emit *m, gm_dtype dt, LLVMValueRef blk, int sub);
/* Both with the sub-block an i64 value known only when the kernel runs (a GPU lane's). */
void lv_quant_sub_at(lv_emit *m, gm_dtype dt, LLVMValueRef blk, LLVMValueRef sub, lv_qsub *s);
LLVMValueRef lv_quant_decode_at(lv_emit *m, gm_dtype dt, LLVMValueRef blk, LLVMValueRef sub);
/* The address of the block holding element k (i64, a multiple of the block
 * size) of row `row` of a row-major weight with K columns at w. */
LLVMValueRef lv_quant_block(lv_emit *m, gm_dtype dt, LLVMValueRef w, LLVMValueRef row, int64_t K, LLVMValueRef k);
/* Values [k, k + 32) of row `row` (k a multiple of 32, i64) as <32 x float>: the sub-block
 * of its block that holds them, found when the kernel runs. */
LLVMValueRef lv_quant_values(lv_emit *m, gm_dtype dt, LLVMValueRef w, LLVMValueRef row, int64_t K, LLVMValueRef k);
/* <n x T> of a in lanes [0, n/2) and b in [n/2, n), a and b scalars of type T. */
LLVMValueRef lv_halves(lv_emit *m, LLVMValueRef a, LLVMValueRef b, int n);
/* a ++ b: two <n x T> into one <2n x T> (n ≤ 32). */
LLVMValueRef lv_concat(lv_emit *m, LLVMValueRef a, LLVMValueRef b, int n);
/* Lanes [at, at + w) of the vector v (w = 1: the scalar). */
LLVMValueRef lv_slice(lv_emit *m, LLVMValueRef v, int at, int w);

/* --activations int8 (int8.c). A row of x quantized for the integer dot
 * products is K/64 groups of LV_Q8_GROUP bytes: 64 int8 quants (two blocks of
 * 32, each d = max|x| / 127, q = round(x / d)), the two d as <16 x float>
 * (lanes 0–7 the first block's), and <16 x i32> holding in lanes 0, 4, 8 and
 * 12 the sums of the quants of each 16 elements, times −offset of the weight
 * format dt (raw sums for the formats with a min, which need them). */
#define LV_Q8_GROUP 192
/* Rows [0, rows) of x (K columns, K a multiple of 32): into q (groups as
 * above, K a multiple of 64) and/or, rounded back to f32 (d · q), into f;
 * either may be NULL. */
void lv_emit_x_int8(lv_emit *m, gm_dtype dt, LLVMValueRef x, LLVMValueRef rows, int64_t K, LLVMValueRef q, LLVMValueRef f);
/* Σ_k w[k] · x[k] of one weight row (dtype dt, K columns, at byte address
 * wrow) and one quantized row of x (at qrow): integer dot products of 64
 * quants at a time (vpdpbusd with AVX-512 VNNI), scaled in f32; a scalar. */
LLVMValueRef lv_int8_dot(lv_emit *m, gm_dtype dt, LLVMValueRef wrow, LLVMValueRef qrow, int64_t K);

/* Prefill under --activations int8 (AVX-512 VNNI): panel `panel`'s block of
 * k [k0, k0 + len) decoded once into dst (EX_KC · EX_PANEL bytes of quants,
 * then their scales and mins: LV_INT8_PANEL_FLOATS floats in all), and
 * acc[2r + h] (<16 x float>: outputs 16h.. of the panel) += the block's
 * products for rows[r] (R ≤ LV_INT8_TILE quantized rows of x). */
#define LV_INT8_TILE 6
#define LV_INT8_PANEL_FLOATS (EX_KC * EX_PANEL / 4 + EX_KC / 16 * EX_PANEL + EX_KC / 32 * EX_PANEL)
int lv_int8_scale_group(gm_dtype dt); /* k per scale: 16 for Q6_K, else 32 */
void lv_int8_panel_fill(lv_emit *m, gm_dtype dt, LLVMValueRef w, int64_t N, int64_t K, LLVMValueRef panel, LLVMValueRef k0,
                        LLVMValueRef len, LLVMValueRef dst);
/* The same panel block from the weight repacked into panels (runtime/qpanel.h). */
void lv_int8_qpanel_fill(lv_emit *m, gm_dtype dt, LLVMValueRef w, int64_t K, LLVMValueRef panel, LLVMValueRef k0,
                         LLVMValueRef len, LLVMValueRef dst);
/* Decode over the repacked weight: acc[h] (<16 x float>, outputs 16h.. of
 * panel `panel`) += Σ over all of k of it times x's quantized row `row`,
 * each weight vector unpacked in registers and multiplied at once; apart:
 * the integer products in two chains, summed after (int8.c). */
void lv_int8_qpanel_row(lv_emit *m, gm_dtype dt, LLVMValueRef w, int64_t K, LLVMValueRef panel, LLVMValueRef row, int apart,
                        LLVMValueRef *acc);
void lv_int8_tile(lv_emit *m, gm_dtype dt, LLVMValueRef panel, const LLVMValueRef *rows, int R, LLVMValueRef k0,
                  LLVMValueRef len, LLVMValueRef *acc);

#endif
