/* quant.c — GGUF's block-quantized weights decoded in registers.
 *
 * A quantized weight stays as the checkpoint stores it: each row of K
 * elements is K/B blocks of gm_dtype_size bytes (B = 32 or 256), and a
 * block is scales plus small integers (runtime/quant.c decodes the same
 * layouts in plain C, which the tests hold these against). The kernels never
 * expand a weight in memory: they decode one sub-block of 32 elements at a
 * time into a <32 x float> (LLVM splits it into the target's vectors) from
 * byte loads, nibble masks and shifts, an integer-to-float conversion and
 * the block's scales, and use it at once: matmul multiplies it into its
 * accumulators or into a panel of its scratch, embed stores it. Every
 * field is loaded with alignment 1, as blocks of 18 or 22 bytes leave the
 * 16- and 32-bit fields anywhere. */
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>

static LLVMTypeRef i8(lv_emit *m) { return LLVMInt8TypeInContext(m->ctx); }
static LLVMTypeRef vec(LLVMTypeRef t, int n) { return LLVMVectorType(t, (unsigned)n); }

/* The byte at blk + off (i64), as an i8*. */
static LLVMValueRef at_byte(lv_emit *m, LLVMValueRef blk, LLVMValueRef off) {
    return LLVMBuildInBoundsGEP2(m->b, i8(m), blk, &off, 1, "");
}

static LLVMValueRef load_at(lv_emit *m, LLVMTypeRef ty, LLVMValueRef blk, LLVMValueRef off) {
    LLVMValueRef v = LLVMBuildLoad2(m->b, ty, at_byte(m, blk, off), "");
    LLVMSetAlignment(v, 1);
    return v;
}
static LLVMValueRef load_as(lv_emit *m, LLVMTypeRef ty, LLVMValueRef blk, int off) { return load_at(m, ty, blk, lv_int(m, off)); }

/* n bytes at blk + off as <n x i8>. */
static LLVMValueRef bytes_at(lv_emit *m, LLVMValueRef blk, LLVMValueRef off, int n) { return load_at(m, vec(i8(m), n), blk, off); }
static LLVMValueRef bytes(lv_emit *m, LLVMValueRef blk, int off, int n) { return bytes_at(m, blk, lv_int(m, off), n); }

/* The f16 at blk + off, as an f32 scalar. */
static LLVMValueRef half_at(lv_emit *m, LLVMValueRef blk, int off) {
    LLVMValueRef h = LLVMBuildBitCast(m->b, load_as(m, m->i16, blk, off), m->f16, "");
    return LLVMBuildFPExt(m->b, h, m->f32, "");
}

/* The byte at blk + off, zero-extended to i32. */
static LLVMValueRef byte_at(lv_emit *m, LLVMValueRef blk, LLVMValueRef off) {
    return LLVMBuildZExt(m->b, load_at(m, i8(m), blk, off), m->i32, "");
}

static LLVMValueRef splat_i(lv_emit *m, LLVMTypeRef t, int n, long long v) {
    return lv_splat(m, LLVMConstInt(t, (unsigned long long)v, 1), n);
}

/* The sub-block index j (i64) as a value of type t, splat over n lanes (n = 1: the scalar). */
static LLVMValueRef splat_j(lv_emit *m, LLVMTypeRef t, int n, LLVMValueRef j) {
    return lv_splat(m, LLVMBuildTrunc(m->b, j, t, ""), n);
}

/* The sub-block may be a constant (the CPU kernels walk a block's sub-blocks unrolled) or a
 * value (a GPU lane's sub-block). A branch is built only where its condition can_be so, and
 * pick selects between the two only where both were built: a constant sub-block's decode is
 * the straight line it always was. */
static LLVMValueRef pick(lv_emit *m, LLVMValueRef cond, LLVMValueRef a, LLVMValueRef b) {
    return !a ? b : !b ? a : LLVMBuildSelect(m->b, cond, a, b, "");
}
static int can_be(LLVMValueRef cond, int value) {
    return !LLVMIsAConstantInt(cond) || (int)LLVMConstIntGetZExtValue(cond) == value;
}
static LLVMValueRef j_below(lv_emit *m, LLVMValueRef j, int n) { return LLVMBuildICmp(m->b, LLVMIntSLT, j, lv_int(m, n), ""); }

/* <n x i8> v with each byte masked to its low nibble, or shifted down to its high one
 * (high: an i1, constant on the CPU). */
static LLVMValueRef nibbles(lv_emit *m, LLVMValueRef v, int n, LLVMValueRef high) {
    LLVMValueRef hi = can_be(high, 1) ? LLVMBuildLShr(m->b, v, splat_i(m, i8(m), n, 4), "") : NULL;
    LLVMValueRef lo = can_be(high, 0) ? LLVMBuildAnd(m->b, v, splat_i(m, i8(m), n, 15), "") : NULL;
    return pick(m, high, hi, lo);
}
static LLVMValueRef yes(lv_emit *m, int b) { return LLVMConstInt(LLVMInt1TypeInContext(m->ctx), (unsigned long long)b, 0); }

LLVMValueRef lv_concat(lv_emit *m, LLVMValueRef a, LLVMValueRef b, int n) {
    LLVMValueRef idx[64];
    for (int i = 0; i < 2 * n; i++) idx[i] = LLVMConstInt(m->i32, (unsigned long long)i, 0);
    return LLVMBuildShuffleVector(m->b, a, b, LLVMConstVector(idx, (unsigned)(2 * n)), "");
}

/* Q4_0/Q4_1/Q5_0/Q5_1: 16 bytes at off, element j the low nibble of byte j
 * and element j + 16 its high one. */
static LLVMValueRef split_nibbles(lv_emit *m, LLVMValueRef blk, int off) {
    LLVMValueRef q = bytes(m, blk, off, 16);
    return lv_concat(m, nibbles(m, q, 16, yes(m, 0)), nibbles(m, q, 16, yes(m, 1)), 16);
}

/* q | (bit i of the 32-bit mask at off) << 4, for lanes i of 32: the fifth
 * bit of Q5_0/Q5_1. The mask read as <32 x i1> is one mask register on
 * AVX-512, so this is a masked or. */
static LLVMValueRef fifth_bits(lv_emit *m, LLVMValueRef q, LLVMValueRef blk, int off) {
    LLVMValueRef bits = LLVMBuildBitCast(m->b, load_as(m, m->i32, blk, off), vec(LLVMInt1TypeInContext(m->ctx), 32), "");
    return LLVMBuildOr(m->b, q, LLVMBuildSelect(m->b, bits, splat_i(m, i8(m), 32, 16), LLVMConstNull(vec(i8(m), 32)), ""), "");
}

/* The 6-bit scale (min = 0) or min (min = 1) of sub-block j of Q4_K/Q5_K,
 * from the 12 bytes at blk + 4, as f32: for j < 4 the low 6 bits of byte
 * 4 + j (+ 4 for a min); above, a nibble of byte 4 + j + 4 and the top two
 * bits of byte 4 + j − 4 (scale) or 4 + j (min). */
static LLVMValueRef k4_scale(lv_emit *m, LLVMValueRef blk, LLVMValueRef j, int min) {
    LLVMValueRef first = j_below(m, j, 4), low = NULL, high = NULL;
    if (can_be(first, 1))
        low = LLVMBuildAnd(m->b, byte_at(m, blk, lv_addi(m, j, 4 + 4 * min)), LLVMConstInt(m->i32, 63, 0), "");
    if (can_be(first, 0)) {
        LLVMValueRef lo = byte_at(m, blk, lv_addi(m, j, 4 + 4)), hi = byte_at(m, blk, lv_addi(m, j, 4 - 4 * !min));
        lo = min ? LLVMBuildLShr(m->b, lo, LLVMConstInt(m->i32, 4, 0), "") : LLVMBuildAnd(m->b, lo, LLVMConstInt(m->i32, 15, 0), "");
        hi = LLVMBuildShl(m->b, LLVMBuildLShr(m->b, hi, LLVMConstInt(m->i32, 6, 0), ""), LLVMConstInt(m->i32, 4, 0), "");
        high = LLVMBuildOr(m->b, lo, hi, "");
    }
    return LLVMBuildUIToFP(m->b, pick(m, first, low, high), m->f32, "");
}

/* Q4_K (144 bytes) and Q5_K (176): d, dmin, 12 scale bytes, [Q5_K: 32 bytes
 * of fifth bits,] 128 bytes of nibbles; sub-block j takes the low (j even)
 * or high nibbles of bytes 32·(j/2).. of the quants; value d·sc·q − dmin·m. */
static void sub_k4(lv_emit *m, LLVMValueRef blk, LLVMValueRef j, int five, lv_qsub *s) {
    LLVMValueRef pair = LLVMBuildAShr(m->b, j, lv_int(m, 1), ""), odd = LLVMBuildTrunc(m->b, j, LLVMInt1TypeInContext(m->ctx), "");
    LLVMValueRef q = nibbles(m, bytes_at(m, blk, lv_addi(m, lv_muli(m, pair, 32), five ? 48 : 16), 32), 32, odd);
    if (five) {
        LLVMValueRef h = LLVMBuildLShr(m->b, bytes(m, blk, 16, 32), splat_j(m, i8(m), 32, j), "");
        h = LLVMBuildAnd(m->b, h, splat_i(m, i8(m), 32, 1), "");
        q = LLVMBuildOr(m->b, q, LLVMBuildShl(m->b, h, splat_i(m, i8(m), 32, 4), ""), "");
    }
    LLVMValueRef d = lv_fmul(m, half_at(m, blk, 0), k4_scale(m, blk, j, 0));
    LLVMValueRef dmin = lv_fmul(m, half_at(m, blk, 2), k4_scale(m, blk, j, 1));
    *s = (lv_qsub){q, 0, 0, {d, d}, LLVMBuildFNeg(m->b, dmin, "")};
}

/* Q6_K (210 bytes): 128 bytes of low nibbles, 64 of 2-bit highs, 16 int8
 * scales, f16 d. Sub-block j: half h = j/4 and group g = j%4 of it; its 32
 * elements take nibbles of ql[64h + 32(g&1)..] (low for g < 2), bits 2g of
 * qh[128 + 32h..], and the scales 8h + 2g (first 16) and 8h + 2g + 1;
 * value d·sc·(q − 32). */
static void sub_q6_k(lv_emit *m, LLVMValueRef blk, LLVMValueRef j, lv_qsub *s) {
    LLVMValueRef h = LLVMBuildAShr(m->b, j, lv_int(m, 2), ""), g = LLVMBuildAnd(m->b, j, lv_int(m, 3), "");
    LLVMValueRef ql = lv_add(m, lv_muli(m, h, 64), lv_muli(m, LLVMBuildAnd(m->b, g, lv_int(m, 1), ""), 32));
    LLVMValueRef q = nibbles(m, bytes_at(m, blk, ql, 32), 32, LLVMBuildICmp(m->b, LLVMIntSGE, g, lv_int(m, 2), ""));
    LLVMValueRef hi = bytes_at(m, blk, lv_addi(m, lv_muli(m, h, 32), 128), 32);
    hi = LLVMBuildLShr(m->b, hi, splat_j(m, i8(m), 32, lv_muli(m, g, 2)), "");
    hi = LLVMBuildShl(m->b, LLVMBuildAnd(m->b, hi, splat_i(m, i8(m), 32, 3), ""), splat_i(m, i8(m), 32, 4), "");
    *s = (lv_qsub){LLVMBuildOr(m->b, q, hi, ""), 0, 32, {NULL, NULL}, NULL};
    LLVMValueRef d = half_at(m, blk, 208), sc = lv_add(m, lv_muli(m, h, 8), lv_muli(m, g, 2));
    for (int k = 0; k < 2; k++)
        s->scale[k] = lv_fmul(m, d, LLVMBuildSIToFP(m->b, load_at(m, i8(m), blk, lv_addi(m, sc, 192 + k)), m->f32, ""));
}

void lv_quant_sub_at(lv_emit *m, gm_dtype dt, LLVMValueRef blk, LLVMValueRef sub, lv_qsub *s) {
    LLVMValueRef d = NULL, min = NULL;
    switch (dt) {
    case GM_Q8_0: *s = (lv_qsub){bytes(m, blk, 2, 32), 1, 0, {d = half_at(m, blk, 0), d}, NULL}; break;
    case GM_Q4_0: *s = (lv_qsub){split_nibbles(m, blk, 2), 0, 8, {d = half_at(m, blk, 0), d}, NULL}; break;
    case GM_Q4_1:
        *s = (lv_qsub){split_nibbles(m, blk, 4), 0, 0, {d = half_at(m, blk, 0), d}, min = half_at(m, blk, 2)};
        break;
    case GM_Q5_0: *s = (lv_qsub){fifth_bits(m, split_nibbles(m, blk, 6), blk, 2), 0, 16, {d = half_at(m, blk, 0), d}, NULL}; break;
    case GM_Q5_1:
        *s = (lv_qsub){fifth_bits(m, split_nibbles(m, blk, 8), blk, 4), 0, 0, {d = half_at(m, blk, 0), d},
                       min = half_at(m, blk, 2)};
        break;
    case GM_Q4_K: sub_k4(m, blk, sub, 0, s); break;
    case GM_Q5_K: sub_k4(m, blk, sub, 1, s); break;
    case GM_Q6_K: sub_q6_k(m, blk, sub, s); break;
    default: fprintf(stderr, "gemmac: internal error: %s is not a block-quantized dtype\n", gm_dtype_name(dt)), abort();
    }
}

void lv_quant_sub(lv_emit *m, gm_dtype dt, LLVMValueRef blk, int sub, lv_qsub *s) { lv_quant_sub_at(m, dt, blk, lv_int(m, sub), s); }

/* <n x float> of lanes [0, n/2) a and [n/2, n) b. */
LLVMValueRef lv_halves(lv_emit *m, LLVMValueRef a, LLVMValueRef b, int n) {
    LLVMValueRef two = LLVMGetUndef(vec(LLVMTypeOf(a), 2)), mask[64];
    two = LLVMBuildInsertElement(m->b, two, a, LLVMConstInt(m->i32, 0, 0), "");
    two = LLVMBuildInsertElement(m->b, two, b, LLVMConstInt(m->i32, 1, 0), "");
    for (int i = 0; i < n; i++) mask[i] = LLVMConstInt(m->i32, i >= n / 2, 0);
    return LLVMBuildShuffleVector(m->b, two, two, LLVMConstVector(mask, (unsigned)n), "");
}

LLVMValueRef lv_quant_decode_at(lv_emit *m, gm_dtype dt, LLVMValueRef blk, LLVMValueRef sub) {
    lv_qsub s;
    lv_quant_sub_at(m, dt, blk, sub, &s);
    LLVMValueRef q = s.offset ? LLVMBuildSub(m->b, s.q, splat_i(m, i8(m), 32, s.offset), "") : s.q;
    q = s.is_signed || s.offset ? LLVMBuildSIToFP(m->b, q, vec(m->f32, 32), "") : LLVMBuildUIToFP(m->b, q, vec(m->f32, 32), "");
    LLVMValueRef v = lv_fmul(m, q, s.scale[0] == s.scale[1] ? lv_splat(m, s.scale[0], 32) : lv_halves(m, s.scale[0], s.scale[1], 32));
    return s.min ? lv_fadd(m, v, lv_splat(m, s.min, 32)) : v;
}

LLVMValueRef lv_quant_decode(lv_emit *m, gm_dtype dt, LLVMValueRef blk, int sub) {
    return lv_quant_decode_at(m, dt, blk, lv_int(m, sub));
}

LLVMValueRef lv_quant_block(lv_emit *m, gm_dtype dt, LLVMValueRef w, LLVMValueRef row, int64_t K, LLVMValueRef k) {
    int64_t B = gm_dtype_block(dt), size = (int64_t)gm_dtype_size(dt);
    LLVMValueRef at = lv_add(m, lv_muli(m, row, K / B * size), lv_muli(m, LLVMBuildSDiv(m->b, k, lv_int(m, B), ""), size));
    return LLVMBuildInBoundsGEP2(m->b, i8(m), w, &at, 1, "");
}

LLVMValueRef lv_quant_values(lv_emit *m, gm_dtype dt, LLVMValueRef w, LLVMValueRef row, int64_t K, LLVMValueRef k) {
    LLVMValueRef sub = LLVMBuildSRem(m->b, LLVMBuildSDiv(m->b, k, lv_int(m, LV_QSUB), ""), lv_int(m, gm_dtype_block(dt) / LV_QSUB), "");
    return lv_quant_decode_at(m, dt, lv_quant_block(m, dt, w, row, K, k), sub);
}

LLVMValueRef lv_slice(lv_emit *m, LLVMValueRef v, int at, int w) {
    if (w == 1) return LLVMBuildExtractElement(m->b, v, LLVMConstInt(m->i32, (unsigned long long)at, 0), "");
    LLVMValueRef idx[64];
    for (int i = 0; i < w; i++) idx[i] = LLVMConstInt(m->i32, (unsigned long long)(at + i), 0);
    return LLVMBuildShuffleVector(m->b, v, v, LLVMConstVector(idx, (unsigned)w), "");
}
