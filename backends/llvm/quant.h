/* quant.h — decoding GGUF's block-quantized weights inside emitted kernels
 * (quant.c): the embed and matmul emitters' one view of those formats. */
#ifndef GM_LLVM_QUANT_H
#define GM_LLVM_QUANT_H

#include "emit.h"

#define LV_QSUB 32 /* elements of one decoded sub-block: a block of 32, or an eighth of 256 */

/* The elements [32·sub, 32·sub + 32) of the block of dtype dt at byte
 * address blk, as <32 x float>; sub < gm_dtype_block(dt) / 32. */
LLVMValueRef lv_quant_decode(lv_emit *m, gm_dtype dt, LLVMValueRef blk, int sub);
/* The address of the block holding element k (i64, a multiple of the block
 * size) of row `row` of a row-major weight with K columns at w. */
LLVMValueRef lv_quant_block(lv_emit *m, gm_dtype dt, LLVMValueRef w, LLVMValueRef row, int64_t K, LLVMValueRef k);
/* Lanes [at, at + w) of the vector v (w = 1: the scalar). */
LLVMValueRef lv_slice(lv_emit *m, LLVMValueRef v, int at, int w);

#endif
