/* int8.c — the integer dot products of --activations int8
 * (passes/quantize_activations.c): a row of x rounded to 8 bits per block
 * of 32, against a block-quantized weight row as stored.
 *
 * The weight's quants are small unsigned integers (or Q8_0's signed ones),
 * so Σ w·x over a sub-block of 32 is d_w · d_x · Σ (q_w − offset) · q_x
 * (+ min · d_x · Σ q_x for the formats with a min): an exact integer sum and
 * a few f32 products. Sixty-four quants go at once: one vpdpbusd (AVX-512
 * VNNI: unsigned bytes × signed bytes, four products summed into each of 16
 * i32 lanes) where the CPU has it, widened multiplies elsewhere. Lane i of
 * the sum holds elements 4i..4i+3, so lanes 0–3 and 4–7 are the two halves
 * of the first sub-block, 8–15 the second: one <16 x float> of per-lane
 * scales (d_w of each half, 16 elements, for Q6_K; times d_x of the block)
 * turns it into f32, with no horizontal sum until the row is done. The
 * offset enters as the i32 accumulator the dot product starts from: −offset
 * times the sums of x's quants, which the quantizer stores beside them.
 * Q8_0's signed quants become unsigned with an offset of 128 (q ^ 0x80).
 *
 * Prefill (lv_int8_panel_fill, lv_int8_tile) decodes each block of KC
 * values of k of a panel of EX_PANEL weight rows once into the scratch, as
 * those unsigned quants interleaved four k at a time ([KC/4][P][4] bytes: a
 * 64-byte load is four k of 16 rows, what vpdpbusd multiplies by four bytes
 * of x broadcast) with their scales beside ([groups][P] f32); register tiles
 * of rows of x then take a group of 16 or 32 k in i32 and scale it once. */
#include "quant.h"

#include "backends/exec/kernel.h"
#include "runtime/qpanel.h"

#include <string.h>

static LLVMTypeRef vec(LLVMTypeRef t, int n) { return LLVMVectorType(t, (unsigned)n); }
static LLVMTypeRef i8(lv_emit *m) { return LLVMInt8TypeInContext(m->ctx); }

static LLVMValueRef at_offset(lv_emit *m, LLVMValueRef p, LLVMValueRef bytes) {
    return LLVMBuildInBoundsGEP2(m->b, i8(m), p, &bytes, 1, "");
}

static LLVMValueRef load_vec(lv_emit *m, LLVMTypeRef ty, LLVMValueRef p, LLVMValueRef bytes, unsigned align) {
    LLVMValueRef v = LLVMBuildLoad2(m->b, ty, at_offset(m, p, bytes), "");
    LLVMSetAlignment(v, align);
    return v;
}

static void store_vec(lv_emit *m, LLVMValueRef v, LLVMValueRef p, LLVMValueRef bytes, unsigned align) {
    LLVMSetAlignment(LLVMBuildStore(m->b, v, at_offset(m, p, bytes)), align);
}

/* The intrinsic named for vector type ty (one overload). */
static LLVMValueRef call1(lv_emit *m, const char *name, LLVMTypeRef ty, LLVMValueRef *args, unsigned n) {
    return lv_intrinsic(m, name, &ty, 1, args, n);
}

/* ---- the quantizer ---- */

/* The sum of lanes [at, at + 16) of the <32 x i32> q. */
static LLVMValueRef sum16(lv_emit *m, LLVMValueRef q, int at) {
    LLVMValueRef idx[16];
    for (int i = 0; i < 16; i++) idx[i] = LLVMConstInt(m->i32, (unsigned long long)(at + i), 0);
    LLVMValueRef h = LLVMBuildShuffleVector(m->b, q, q, LLVMConstVector(idx, 16), "");
    return call1(m, "llvm.vector.reduce.add", vec(m->i32, 16), &h, 1);
}

/* One block of 32 at x[at..]: its quants (<32 x i32>), d, and the quants as f32. */
static LLVMValueRef quantize_block(lv_emit *m, LLVMValueRef x, LLVMValueRef at, LLVMValueRef *d, LLVMValueRef *qf) {
    LLVMValueRef v = lv_load(m, x, at, GM_F32, 32);
    LLVMValueRef a = call1(m, "llvm.fabs", vec(m->f32, 32), &v, 1);
    LLVMValueRef amax = call1(m, "llvm.vector.reduce.fmax", vec(m->f32, 32), &a, 1);
    *d = LLVMBuildFDiv(m->b, amax, LLVMConstReal(m->f32, 127), "");
    LLVMValueRef zero = LLVMConstReal(m->f32, 0);
    LLVMValueRef id = LLVMBuildSelect(m->b, LLVMBuildFCmp(m->b, LLVMRealONE, *d, zero, ""),
                                      LLVMBuildFDiv(m->b, LLVMConstReal(m->f32, 1), *d, ""), zero, "");
    LLVMValueRef scaled = LLVMBuildFMul(m->b, v, lv_splat(m, id, 32), "");
    *qf = call1(m, "llvm.rint", vec(m->f32, 32), &scaled, 1);
    return LLVMBuildFPToSI(m->b, *qf, vec(m->i32, 32), "");
}

/* The i32 the integer dot products start from, per 16 quants of x: −offset
 * times their sum, or the sum itself for a format with a min. */
static int64_t sum_factor(gm_dtype dt) {
    switch (dt) {
    case GM_Q8_0: return -128;
    case GM_Q4_0: return -8;
    case GM_Q5_0: return -16;
    case GM_Q6_K: return -32;
    default: return 1;
    }
}

/* Group g of row t: quants, d's and sums into q; f32 values into f. */
static void quantize_group(lv_emit *m, gm_dtype dt, LLVMValueRef x, LLVMValueRef xt, LLVMValueRef g, LLVMValueRef q,
                           LLVMValueRef qt, LLVMValueRef f) {
    LLVMValueRef d[2], sums = LLVMConstNull(vec(m->i32, 16)), q8[2];
    for (int h = 0; h < 2; h++) {
        LLVMValueRef at = lv_add(m, xt, lv_addi(m, lv_muli(m, g, 64), 32 * h)), qf;
        LLVMValueRef qi = quantize_block(m, x, at, &d[h], &qf);
        if (f) lv_store(m, f, at, LLVMBuildFMul(m->b, qf, lv_splat(m, d[h], 32), ""));
        q8[h] = LLVMBuildTrunc(m->b, qi, vec(i8(m), 32), "");
        for (int s = 0; s < 2; s++) {
            LLVMValueRef sum = LLVMBuildMul(m->b, sum16(m, qi, 16 * s), LLVMConstInt(m->i32, (unsigned long long)sum_factor(dt), 1), "");
            sums = LLVMBuildInsertElement(m->b, sums, sum, LLVMConstInt(m->i32, (unsigned long long)(8 * h + 4 * s), 0), "");
        }
    }
    if (!q) return;
    LLVMValueRef base = lv_add(m, qt, lv_muli(m, g, LV_Q8_GROUP));
    store_vec(m, lv_concat(m, q8[0], q8[1], 32), q, base, 16);
    store_vec(m, lv_halves(m, d[0], d[1], 16), q, lv_addi(m, base, 64), 16);
    store_vec(m, sums, q, lv_addi(m, base, 128), 16);
}

void lv_emit_x_int8(lv_emit *m, gm_dtype dt, LLVMValueRef x, LLVMValueRef rows, int64_t K, LLVMValueRef q, LLVMValueRef f) {
    lv_loop t, g;
    lv_loop_begin(m, &t, lv_int(m, 0), rows, 1, 0, NULL);
    LLVMValueRef xt = lv_muli(m, t.i, K), qt = lv_muli(m, t.i, K / 64 * LV_Q8_GROUP);
    lv_loop_begin(m, &g, lv_int(m, 0), lv_int(m, K / 64), 1, 0, NULL);
    quantize_group(m, dt, x, xt, g.i, q, qt, f);
    lv_loop_end(m, &g, NULL);
    if (K % 64) { /* a last block of 32: only rounded back (q needs K a multiple of 64) */
        LLVMValueRef at = lv_addi(m, xt, K - 32), d, qf;
        quantize_block(m, x, at, &d, &qf);
        lv_store(m, f, at, LLVMBuildFMul(m->b, qf, lv_splat(m, d, 32), ""));
    }
    lv_loop_end(m, &t, NULL);
}

/* ---- the dot products ---- */

/* Arm's dot products on <64 x i8> in quarters of 16 bytes (one
 * instruction each): usdot or sdot. */
static LLVMValueRef arm_dot4(lv_emit *m, const char *name, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b) {
    LLVMValueRef quarters[4];
    for (int q = 0; q < 4; q++) {
        LLVMValueRef idx[16], lanes[4];
        for (int i = 0; i < 16; i++) idx[i] = LLVMConstInt(m->i32, (unsigned long long)(16 * q + i), 0);
        for (int i = 0; i < 4; i++) lanes[i] = LLVMConstInt(m->i32, (unsigned long long)(4 * q + i), 0);
        LLVMValueRef args[3] = {LLVMBuildShuffleVector(m->b, acc, acc, LLVMConstVector(lanes, 4), ""),
                                LLVMBuildShuffleVector(m->b, a, a, LLVMConstVector(idx, 16), ""),
                                LLVMBuildShuffleVector(m->b, b, b, LLVMConstVector(idx, 16), "")};
        LLVMTypeRef types[2] = {vec(m->i32, 4), vec(i8(m), 16)};
        quarters[q] = lv_intrinsic(m, name, types, 2, args, 3);
    }
    return lv_concat(m, lv_concat(m, quarters[0], quarters[1], 4), lv_concat(m, quarters[2], quarters[3], 4), 8);
}

/* acc + Σ over each 4 lanes of a · b (signed), <64 x i8> into <16 x i32>,
 * by the target's dot product (lv_target.int8_dot). a is unsigned, or signed
 * where sdot_signed says so. */
static LLVMValueRef dot4(lv_emit *m, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b) {
    switch (m->target->int8_dot) {
    case LV_INT8_VNNI: {
        LLVMValueRef args[3] = {acc, LLVMBuildBitCast(m->b, a, vec(m->i32, 16), ""),
                                LLVMBuildBitCast(m->b, b, vec(m->i32, 16), "")};
        return lv_intrinsic(m, "llvm.x86.avx512.vpdpbusd.512", NULL, 0, args, 3);
    }
    case LV_INT8_USDOT: return arm_dot4(m, "llvm.aarch64.neon.usdot", acc, a, b);
    case LV_INT8_SDOT: return arm_dot4(m, "llvm.aarch64.neon.sdot", acc, a, b);
    case LV_INT8_WIDEN: break;
    }
    LLVMValueRef p = LLVMBuildMul(m->b, LLVMBuildZExt(m->b, a, vec(m->i32, 64), ""), LLVMBuildSExt(m->b, b, vec(m->i32, 64), ""), "");
    for (int j = 0; j < 4; j++) {
        LLVMValueRef idx[16];
        for (int i = 0; i < 16; i++) idx[i] = LLVMConstInt(m->i32, (unsigned long long)(4 * i + j), 0);
        acc = LLVMBuildAdd(m->b, acc, LLVMBuildShuffleVector(m->b, p, p, LLVMConstVector(idx, 16), ""), "");
    }
    return acc;
}

/* SDOT multiplies signed bytes, so Q8_0's quants, which every other path
 * takes flipped to unsigned with an offset of 128 (and panels store so),
 * go to it as stored, signed, with no offset: the same exact sum. */
static int sdot_signed(const lv_emit *m, gm_dtype dt) { return m->target->int8_dot == LV_INT8_SDOT && dt == GM_Q8_0; }

/* Panel bytes (unsigned quants) as dot4 takes them for dt. */
static LLVMValueRef dot_form(lv_emit *m, gm_dtype dt, LLVMValueRef q) {
    return sdot_signed(m, dt) ? LLVMBuildXor(m->b, q, lv_splat(m, LLVMConstInt(i8(m), 0x80, 0), 64), "") : q;
}

/* <16 x float> of the two sub-blocks' per-half scales, four lanes each. */
static LLVMValueRef lane_scales(lv_emit *m, const lv_qsub *s) {
    return lv_concat(m, lv_halves(m, s[0].scale[0], s[0].scale[1], 8), lv_halves(m, s[1].scale[0], s[1].scale[1], 8), 8);
}

/* A sub-block's quants as dot4 takes them, and their offset: unsigned,
 * Q8_0's signed ones flipped by 128; or Q8_0's as stored for SDOT. */
static LLVMValueRef dot_quants(lv_emit *m, gm_dtype dt, const lv_qsub *s, int *offset) {
    *offset = sdot_signed(m, dt) ? 0 : s->is_signed ? 128 : s->offset;
    return s->is_signed && !sdot_signed(m, dt) ? LLVMBuildXor(m->b, s->q, lv_splat(m, LLVMConstInt(i8(m), 0x80, 0), 32), "") : s->q;
}

/* acc + the group of 64 (sub-blocks s[0], s[1]) against x's group at xg. */
static LLVMValueRef group_dot(lv_emit *m, gm_dtype dt, const lv_qsub *s, LLVMValueRef qrow, LLVMValueRef xg, LLVMValueRef acc) {
    int offset;
    LLVMValueRef w0 = dot_quants(m, dt, &s[0], &offset), w = lv_concat(m, w0, dot_quants(m, dt, &s[1], &offset), 32);
    LLVMValueRef x = load_vec(m, vec(i8(m), 64), qrow, xg, 16);
    LLVMValueRef dx = load_vec(m, vec(m->f32, 16), qrow, lv_addi(m, xg, 64), 16);
    LLVMValueRef sums = load_vec(m, vec(m->i32, 16), qrow, lv_addi(m, xg, 128), 16);
    LLVMValueRef p = dot4(m, offset ? sums : LLVMConstNull(vec(m->i32, 16)), w, x);
    acc = lv_fadd(m, acc, lv_fmul(m, LLVMBuildSIToFP(m->b, p, vec(m->f32, 16), ""), lv_fmul(m, lane_scales(m, s), dx)));
    if (!s[0].min) return acc;
    LLVMValueRef xs = lv_fmul(m, dx, LLVMBuildSIToFP(m->b, sums, vec(m->f32, 16), ""));
    return lv_fadd(m, acc, lv_fmul(m, lv_halves(m, s[0].min, s[1].min, 16), xs));
}

LLVMValueRef lv_int8_dot(lv_emit *m, gm_dtype dt, LLVMValueRef wrow, LLVMValueRef qrow, int64_t K) {
    int B = gm_dtype_block(dt), step = B > 64 ? B : 64, size = (int)gm_dtype_size(dt);
    LLVMValueRef zero = lv_real(m, 0, 16);
    lv_loop k;
    lv_loop_begin(m, &k, lv_int(m, 0), lv_int(m, K), step, 1, &zero);
    LLVMValueRef blk = at_offset(m, wrow, lv_muli(m, LLVMBuildSDiv(m->b, k.i, lv_int(m, B), ""), size)), acc = k.v[0];
    for (int g = 0; g < step / 64; g++) {
        lv_qsub s[2];
        for (int h = 0; h < 2; h++) /* a block of 32 each, or two sub-blocks of one block */
            lv_quant_sub(m, dt, B == 32 ? at_offset(m, blk, lv_int(m, h * size)) : blk, B == 32 ? 0 : 2 * g + h, &s[h]);
        LLVMValueRef xg = lv_muli(m, LLVMBuildSDiv(m->b, lv_addi(m, k.i, 64 * g), lv_int(m, 64), ""), LV_Q8_GROUP);
        acc = group_dot(m, dt, s, qrow, xg, acc);
    }
    lv_loop_end(m, &k, &acc);
    return lv_hsum(m, k.v[0]);
}

/* ---- prefill: panels of unsigned quants and register tiles ---- */

#define PANEL_SCALES (EX_KC * EX_PANEL)                  /* bytes: after [KC/4][P][4] quants */
#define PANEL_MINS (PANEL_SCALES + EX_KC / 16 * EX_PANEL * 4) /* after [KC/16 at most][P] f32 scales */

int lv_int8_scale_group(gm_dtype dt) { return dt == GM_Q6_K ? 16 : 32; }

/* The 4-byte v (an i32 or an f32) at byte `at` of p. */
static void store4(lv_emit *m, LLVMValueRef v, LLVMValueRef p, LLVMValueRef at) { store_vec(m, v, p, at, 4); }

/* Column j's sub-block at kk (from the block's start k0) into the panel. */
static void fill_sub(lv_emit *m, gm_dtype dt, const lv_qsub *s, LLVMValueRef dst, LLVMValueRef j, LLVMValueRef kk, int S) {
    int offset;
    LLVMValueRef q = LLVMBuildBitCast(m->b, dot_quants(m, dt, s, &offset), vec(m->i32, 8), "");
    LLVMValueRef k4 = LLVMBuildSDiv(m->b, kk, lv_int(m, 4), "");
    for (int i = 0; i < 8; i++)
        store4(m, LLVMBuildExtractElement(m->b, q, LLVMConstInt(m->i32, (unsigned long long)i, 0), ""), dst,
                  lv_muli(m, lv_add(m, lv_muli(m, lv_addi(m, k4, i), EX_PANEL), j), 4));
    LLVMValueRef g = LLVMBuildSDiv(m->b, kk, lv_int(m, S), "");
    for (int h = 0; h < 32 / S; h++)
        store4(m, s->scale[h], dst, lv_addi(m, lv_muli(m, lv_add(m, lv_muli(m, lv_addi(m, g, h), EX_PANEL), j), 4), PANEL_SCALES));
    if (s->min) {
        LLVMValueRef b = LLVMBuildSDiv(m->b, kk, lv_int(m, 32), "");
        store4(m, s->min, dst, lv_addi(m, lv_muli(m, lv_add(m, lv_muli(m, b, EX_PANEL), j), 4), PANEL_MINS));
    }
}

void lv_int8_panel_fill(lv_emit *m, gm_dtype dt, LLVMValueRef w, int64_t N, int64_t K, LLVMValueRef panel, LLVMValueRef k0,
                        LLVMValueRef len, LLVMValueRef dst) {
    int B = gm_dtype_block(dt), S = lv_int8_scale_group(dt);
    lv_loop j, kb;
    lv_loop_begin(m, &j, lv_int(m, 0), lv_int(m, EX_PANEL), 1, 0, NULL);
    LLVMValueRef n = lv_add(m, lv_muli(m, panel, EX_PANEL), j.i); /* past N: the last row again, masked at the store */
    n = LLVMBuildSelect(m->b, LLVMBuildICmp(m->b, LLVMIntSLT, n, lv_int(m, N), ""), n, lv_int(m, N - 1), "");
    lv_loop_begin(m, &kb, lv_int(m, 0), len, B, 0, NULL);
    LLVMValueRef blk = lv_quant_block(m, dt, w, n, K, lv_add(m, k0, kb.i));
    for (int s = 0; s < B / 32; s++) {
        lv_qsub q;
        lv_quant_sub(m, dt, blk, s, &q);
        fill_sub(m, dt, &q, dst, j.i, lv_addi(m, kb.i, 32 * s), S);
    }
    lv_loop_end(m, &kb, NULL);
    lv_loop_end(m, &j, NULL);
}

/* ---- the same from repacked panels (runtime/qpanel.h) ---- */

/* <n x T> at byte `off` of the unit. */
static LLVMValueRef unit_vec(lv_emit *m, LLVMTypeRef t, int n, LLVMValueRef unit, int off) {
    return load_vec(m, vec(t, n), unit, lv_int(m, off), 64);
}

/* The 32 rows' f16 at `off` of the unit, as f32. */
static LLVMValueRef unit_halves(lv_emit *m, LLVMValueRef unit, int off) {
    LLVMValueRef h = LLVMBuildBitCast(m->b, unit_vec(m, m->i16, 32, unit, off), vec(m->f16, 32), "");
    return LLVMBuildFPExt(m->b, h, vec(m->f32, 32), "");
}

/* d · the 32 rows' u8 (or i8) multipliers at `off`, as the stored-block path computes them. */
static LLVMValueRef scaled(lv_emit *m, LLVMValueRef d, LLVMValueRef unit, int off, int is_signed) {
    LLVMValueRef v = unit_vec(m, i8(m), 32, unit, off);
    v = is_signed ? LLVMBuildSIToFP(m->b, v, vec(m->f32, 32), "") : LLVMBuildUIToFP(m->b, v, vec(m->f32, 32), "");
    return lv_fmul(m, d, v);
}

/* The unit's scales (and mins) into the panel scratch, its k from kk. */
static void qpanel_scales(lv_emit *m, gm_dtype dt, const gm_qpanel *l, LLVMValueRef unit, LLVMValueRef dst, LLVMValueRef kk) {
    int S = lv_int8_scale_group(dt), groups = gm_dtype_block(dt) / S;
    LLVMValueRef d = unit_halves(m, unit, 0), g0 = LLVMBuildSDiv(m->b, kk, lv_int(m, S), "");
    LLVMValueRef b0 = LLVMBuildSDiv(m->b, kk, lv_int(m, 32), "");
    for (int g = 0; g < groups; g++) {
        LLVMValueRef s = l->sc >= 0 ? scaled(m, d, unit, gm_qpanel_scales_at(l, g), dt == GM_Q6_K) : d;
        store_vec(m, s, dst, lv_addi(m, lv_muli(m, lv_addi(m, g0, g), EX_PANEL * 4), PANEL_SCALES), 64);
        if (l->d2 < 0) continue;
        LLVMValueRef min = l->mn >= 0 ? LLVMBuildFNeg(m->b, scaled(m, unit_halves(m, unit, l->d2), unit, gm_qpanel_mins_at(l, g), 0), "")
                                      : unit_halves(m, unit, l->d2);
        store_vec(m, min, dst, lv_addi(m, lv_muli(m, lv_addi(m, b0, g), EX_PANEL * 4), PANEL_MINS), 64);
    }
}

static LLVMValueRef byte_splat(lv_emit *m, int v) { return lv_splat(m, LLVMConstInt(i8(m), (unsigned long long)v, 0), 64); }

/* The bytes of v shifted right by `right`, then masked. */
static LLVMValueRef bits_of(lv_emit *m, LLVMValueRef v, int right, int mask) {
    if (right) {
        LLVMTypeRef w = vec(m->i16, 32);
        v = LLVMBuildLShr(m->b, LLVMBuildBitCast(m->b, v, w, ""), lv_splat(m, LLVMConstInt(m->i16, (unsigned long long)right, 0), 32), "");
        v = LLVMBuildBitCast(m->b, v, vec(i8(m), 64), "");
    }
    return LLVMBuildAnd(m->b, v, byte_splat(m, mask), "");
}

/* Quad j of a group of four of 6-bit quants: bits 0-5 of plane j (j < 3),
 * or the fourth quad from the planes' top bits, two from each. */
static LLVMValueRef six_bit_quad(lv_emit *m, LLVMValueRef group, int j) {
    LLVMValueRef p[3];
    for (int i = 0; i < 3; i++) p[i] = unit_vec(m, i8(m), 64, group, GM_QPANEL_PLANE * i);
    if (j < 3) return bits_of(m, p[j], 0, 63);
    LLVMValueRef lo = LLVMBuildOr(m->b, bits_of(m, p[0], 6, 3), bits_of(m, p[1], 4, 12), "");
    return LLVMBuildOr(m->b, lo, bits_of(m, p[2], 2, 48), "");
}

/* Quad `quad` (k 4·quad.. of the sub-block at sub) of rows 16·half.. as <64 x i8>. */
static LLVMValueRef qpanel_quad(lv_emit *m, const gm_qpanel *l, LLVMValueRef sub, int quad, int half) {
    int at = gm_qpanel_vector_at(l, quad, half);
    if (l->bits == 8) return unit_vec(m, i8(m), 64, sub, at);
    if (l->bits == 6) return six_bit_quad(m, at_offset(m, sub, lv_int(m, at)), quad % 4);
    LLVMValueRef v = unit_vec(m, i8(m), 64, sub, at);
    v = quad & 1 ? bits_of(m, v, 4, 15) : bits_of(m, v, 0, 15);
    if (l->bits == 5) v = LLVMBuildOr(m->b, v, LLVMBuildShl(m->b, bits_of(m, unit_vec(m, i8(m), 64, sub, l->hi + 64 * half), quad, 1), byte_splat(m, 4), ""), "");
    return v;
}

void lv_int8_qpanel_fill(lv_emit *m, gm_dtype dt, LLVMValueRef w, int64_t K, LLVMValueRef panel, LLVMValueRef k0,
                         LLVMValueRef len, LLVMValueRef dst) {
    gm_qpanel l = gm_qpanel_of(dt);
    int B = gm_dtype_block(dt);
    lv_loop kb;
    lv_loop_begin(m, &kb, lv_int(m, 0), len, B, 0, NULL);
    LLVMValueRef u = lv_add(m, lv_muli(m, panel, K / B), LLVMBuildSDiv(m->b, lv_add(m, k0, kb.i), lv_int(m, B), ""));
    LLVMValueRef unit = at_offset(m, w, lv_muli(m, u, l.unit));
    qpanel_scales(m, dt, &l, unit, dst, kb.i);
    for (int s = 0; s < B / 32; s++) {
        LLVMValueRef sub = at_offset(m, unit, lv_int(m, l.head + s * l.sub));
        LLVMValueRef k4 = LLVMBuildSDiv(m->b, lv_addi(m, kb.i, 32 * s), lv_int(m, 4), "");
        for (int quad = 0; quad < 8; quad++)
            for (int half = 0; half < 2; half++)
                store_vec(m, dot_form(m, dt, qpanel_quad(m, &l, sub, quad, half)), dst, lv_addi(m, lv_muli(m, lv_addi(m, k4, quad), EX_PANEL * 4), 64 * half), 64);
    }
    lv_loop_end(m, &kb, NULL);
}

static LLVMValueRef quot(lv_emit *m, LLVMValueRef a, int64_t b) { return LLVMBuildSDiv(m->b, a, lv_int(m, b), ""); }
static LLVMValueRef rem(lv_emit *m, LLVMValueRef a, int64_t b) { return LLVMBuildSRem(m->b, a, lv_int(m, b), ""); }

/* Where x's quantized row holds quant k; the sum of quants k.. k+15 (lanes
 * 0, 4, 8, 12 of the group's sums: 16 bytes apart); d of k's block. */
static LLVMValueRef x_byte(lv_emit *m, LLVMValueRef k) {
    return lv_add(m, lv_muli(m, quot(m, k, 64), LV_Q8_GROUP), rem(m, k, 64));
}

static LLVMValueRef x_sum16(lv_emit *m, LLVMValueRef row, LLVMValueRef k) {
    LLVMValueRef at = lv_add(m, lv_muli(m, quot(m, k, 64), LV_Q8_GROUP), lv_muli(m, quot(m, rem(m, k, 64), 16), 16));
    return load_vec(m, m->i32, row, lv_addi(m, at, 128), 4);
}

/* The sum of quants k.. k+31 (a block of 32 from k). */
static LLVMValueRef x_sum32(lv_emit *m, LLVMValueRef row, LLVMValueRef k) {
    return lv_add(m, x_sum16(m, row, k), x_sum16(m, row, lv_addi(m, k, 16)));
}

static LLVMValueRef x_d(lv_emit *m, LLVMValueRef row, LLVMValueRef k) {
    LLVMValueRef at = lv_add(m, lv_muli(m, quot(m, k, 64), LV_Q8_GROUP), lv_muli(m, quot(m, rem(m, k, 64), 32), 32));
    return load_vec(m, m->f32, row, lv_addi(m, at, 64), 4);
}

/* One scale group of S values of k at kk (from k0) for R rows: i32 dot
 * products from the offset terms, then scaled into acc. */
static void tile_group(lv_emit *m, gm_dtype dt, LLVMValueRef panel, const LLVMValueRef *rows, int R, LLVMValueRef k0,
                       LLVMValueRef kk, LLVMValueRef *acc) {
    int S = lv_int8_scale_group(dt), has_min = dt == GM_Q4_1 || dt == GM_Q5_1 || dt == GM_Q4_K || dt == GM_Q5_K;
    LLVMValueRef k = lv_add(m, k0, kk), ai[2 * LV_INT8_TILE], dx[LV_INT8_TILE], sum[LV_INT8_TILE];
    for (int r = 0; r < R; r++) {
        sum[r] = x_sum16(m, rows[r], k);
        if (S == 32) sum[r] = LLVMBuildAdd(m->b, sum[r], x_sum16(m, rows[r], lv_addi(m, k, 16)), "");
        dx[r] = x_d(m, rows[r], k);
        for (int h = 0; h < 2; h++)
            ai[2 * r + h] = has_min || sdot_signed(m, dt) ? LLVMConstNull(vec(m->i32, 16)) : lv_splat(m, sum[r], 16);
    }
    for (int k4 = 0; k4 < S / 4; k4++) {
        LLVMValueRef at = lv_muli(m, lv_addi(m, LLVMBuildSDiv(m->b, kk, lv_int(m, 4), ""), k4), EX_PANEL * 4), w[2];
        for (int h = 0; h < 2; h++) w[h] = load_vec(m, vec(i8(m), 64), panel, lv_addi(m, at, 64 * h), 64);
        for (int r = 0; r < R; r++) {
            LLVMValueRef xb = lv_splat(m, load_vec(m, m->i32, rows[r], x_byte(m, lv_addi(m, k, 4 * k4)), 4), 16);
            xb = LLVMBuildBitCast(m->b, xb, vec(i8(m), 64), "");
            for (int h = 0; h < 2; h++) ai[2 * r + h] = dot4(m, ai[2 * r + h], w[h], xb);
        }
    }
    LLVMValueRef g = LLVMBuildSDiv(m->b, kk, lv_int(m, S), ""), b = LLVMBuildSDiv(m->b, kk, lv_int(m, 32), "");
    for (int h = 0; h < 2; h++) {
        LLVMValueRef dw = load_vec(m, vec(m->f32, 16), panel, lv_addi(m, lv_muli(m, lv_addi(m, lv_muli(m, g, EX_PANEL), 16 * h), 4), PANEL_SCALES), 64);
        LLVMValueRef mw = has_min ? load_vec(m, vec(m->f32, 16), panel, lv_addi(m, lv_muli(m, lv_addi(m, lv_muli(m, b, EX_PANEL), 16 * h), 4), PANEL_MINS), 64) : NULL;
        for (int r = 0; r < R; r++) {
            LLVMValueRef s = LLVMBuildSIToFP(m->b, ai[2 * r + h], vec(m->f32, 16), "");
            acc[2 * r + h] = lv_fadd(m, acc[2 * r + h], lv_fmul(m, s, lv_fmul(m, dw, lv_splat(m, dx[r], 16))));
            if (mw) {
                LLVMValueRef xs = lv_fmul(m, dx[r], LLVMBuildSIToFP(m->b, sum[r], m->f32, ""));
                acc[2 * r + h] = lv_fadd(m, acc[2 * r + h], lv_fmul(m, mw, lv_splat(m, xs, 16)));
            }
        }
    }
}

void lv_int8_tile(lv_emit *m, gm_dtype dt, LLVMValueRef panel, const LLVMValueRef *rows, int R, LLVMValueRef k0,
                  LLVMValueRef len, LLVMValueRef *acc) {
    lv_loop g;
    lv_loop_begin(m, &g, lv_int(m, 0), len, lv_int8_scale_group(dt), 2 * R, acc);
    LLVMValueRef next[2 * LV_INT8_TILE];
    memcpy(next, g.v, 2 * R * sizeof *next);
    tile_group(m, dt, panel, rows, R, k0, g.i, next);
    lv_loop_end(m, &g, next);
    memcpy(acc, g.v, 2 * R * sizeof *acc);
}

/* ---- decode from repacked panels: quads unpacked and multiplied at once ---- */

/* Quads [q0, q1) of a sub-block, both halves of the panel, against x's row
 * from k (the k of quad q0): i32 dot products into ai[h]. Apart, the quads
 * alternate between two chains of products, summed after (the same
 * integers): a late line of the weight holds up half the products, not all.
 * Each product apart from the others (its own chain, an add each) took more
 * instructions than it saved: one thread of the Zen 4 decoded Q4_K from L3
 * at 50 GB/s that way and at 57-58 with two chains (bench/qdecode); the 2B
 * Q4_K_M decode in alternate runs reached 0.87-0.90 of the bound that way,
 * 0.87-0.92 with one chain and 0.91-0.93 with two. */
static void quads_dot(lv_emit *m, gm_dtype dt, const gm_qpanel *l, LLVMValueRef sub, int q0, int q1, LLVMValueRef row,
                      LLVMValueRef k, int apart, LLVMValueRef *ai) {
    LLVMValueRef odd[2] = {LLVMConstNull(vec(m->i32, 16)), LLVMConstNull(vec(m->i32, 16))};
    for (int quad = q0; quad < q1; quad++) {
        LLVMValueRef xb = lv_splat(m, load_vec(m, m->i32, row, x_byte(m, lv_addi(m, k, 4 * (quad - q0))), 4), 16);
        xb = LLVMBuildBitCast(m->b, xb, vec(i8(m), 64), "");
        for (int h = 0; h < 2; h++) {
            LLVMValueRef w = dot_form(m, dt, qpanel_quad(m, l, sub, quad, h)), *chain = apart && (quad - q0) % 2 ? &odd[h] : &ai[h];
            *chain = dot4(m, *chain, w, xb);
        }
    }
    for (int h = 0; h < 2 && apart; h++) ai[h] = LLVMBuildAdd(m->b, ai[h], odd[h], "");
}

/* The block of 32 k of a unit of a 32-block format (Q8_0 … Q5_1) against
 * x's row from k, scaled into acc as tile_group does. */
static void lone_block(lv_emit *m, gm_dtype dt, const gm_qpanel *l, LLVMValueRef unit, LLVMValueRef row, LLVMValueRef k,
                       int apart, LLVMValueRef *acc) {
    int has_min = l->d2 >= 0;
    LLVMValueRef sum = x_sum32(m, row, k), dx = x_d(m, row, k), ai[2];
    LLVMValueRef d = unit_halves(m, unit, 0), mw = has_min ? unit_halves(m, unit, l->d2) : NULL;
    for (int h = 0; h < 2; h++) ai[h] = has_min || sdot_signed(m, dt) ? LLVMConstNull(vec(m->i32, 16)) : lv_splat(m, sum, 16);
    quads_dot(m, dt, l, at_offset(m, unit, lv_int(m, l->head)), 0, 8, row, k, apart, ai);
    LLVMValueRef xs = lv_fmul(m, dx, LLVMBuildSIToFP(m->b, sum, m->f32, ""));
    for (int h = 0; h < 2; h++) {
        LLVMValueRef f = LLVMBuildSIToFP(m->b, ai[h], vec(m->f32, 16), "");
        acc[h] = lv_fadd(m, acc[h], lv_fmul(m, f, lv_fmul(m, lv_slice(m, d, 16 * h, 16), lv_splat(m, dx, 16))));
        if (mw) acc[h] = lv_fadd(m, acc[h], lv_fmul(m, lv_slice(m, mw, 16 * h, 16), lv_splat(m, xs, 16)));
    }
}

/* Half h's 16 rows of the header bytes at p (u8, or i8 where is_signed) as <16 x i32>. */
static LLVMValueRef header_ints(lv_emit *m, LLVMValueRef p, int h, int is_signed) {
    LLVMValueRef v = load_vec(m, vec(i8(m), 16), p, lv_int(m, 16 * h), 16);
    return is_signed ? LLVMBuildSExt(m->b, v, vec(m->i32, 16), "") : LLVMBuildZExt(m->b, v, vec(m->i32, 16), "");
}

/* Sub-block s of a K-quant unit (Q4_K, Q5_K, Q6_K) against x's row from k:
 * each scale group's i32 products times the rows' integer scales, summed,
 * then once in f32 times x's d into sums[h]; for Q4_K and Q5_K, the mins'
 * terms mn · d_x · Σx into mins[h]. The unit's d and dmin multiply them
 * once a unit (kquant_unit), where scaling each group in f32 took
 * twice the instructions: one thread of the Zen 4 computed Q4_K from L3
 * at 25-31 GB/s of weights, below the two cores' share of memory's rate. */
static void kquant_sub(lv_emit *m, gm_dtype dt, const gm_qpanel *l, LLVMValueRef unit, LLVMValueRef s, LLVMValueRef row,
                       LLVMValueRef k, int apart, LLVMValueRef *sums, LLVMValueRef *mins) {
    int S = lv_int8_scale_group(dt), has_min = l->d2 >= 0;
    LLVMValueRef sub = at_offset(m, unit, lv_addi(m, lv_muli(m, s, l->sub), l->head)), si[2] = {NULL, NULL};
    LLVMValueRef sc = at_offset(m, sub, lv_int(m, l->sc)), dx = x_d(m, row, k);
    for (int gi = 0; gi < 32 / S; gi++) {
        LLVMValueRef kg = lv_addi(m, k, gi * S), ai[2];
        for (int h = 0; h < 2; h++) ai[h] = has_min ? LLVMConstNull(vec(m->i32, 16)) : lv_splat(m, x_sum16(m, row, kg), 16);
        quads_dot(m, dt, l, sub, gi * S / 4, (gi + 1) * S / 4, row, kg, apart, ai);
        for (int h = 0; h < 2; h++) {
            LLVMValueRef p = LLVMBuildMul(m->b, ai[h], header_ints(m, at_offset(m, sc, lv_int(m, 32 * gi)), h, dt == GM_Q6_K), "");
            si[h] = si[h] ? LLVMBuildAdd(m->b, si[h], p, "") : p;
        }
    }
    for (int h = 0; h < 2; h++) sums[h] = lv_fma(m, LLVMBuildSIToFP(m->b, si[h], vec(m->f32, 16), ""), lv_splat(m, dx, 16), sums[h]);
    if (!has_min) return;
    LLVMValueRef xs = lv_splat(m, lv_fmul(m, dx, LLVMBuildSIToFP(m->b, x_sum32(m, row, k), m->f32, "")), 16);
    LLVMValueRef mn = at_offset(m, sub, lv_int(m, l->mn));
    for (int h = 0; h < 2; h++) mins[h] = lv_fma(m, LLVMBuildUIToFP(m->b, header_ints(m, mn, h, 0), vec(m->f32, 16), ""), xs, mins[h]);
}

/* A K-quant unit (256 k) at `unit`, from k, into acc: its sub-blocks in a
 * loop, not unrolled, since unrolled LLVM's scheduler hoisted all eight's
 * loads and spilled 30-70 vectors a unit; then d and dmin once. */
static void kquant_unit(lv_emit *m, gm_dtype dt, const gm_qpanel *l, LLVMValueRef unit, LLVMValueRef row, LLVMValueRef k,
                        int apart, LLVMValueRef *acc) {
    LLVMValueRef zero = lv_real(m, 0, 16), init[4] = {zero, zero, zero, zero}, sums[4];
    LLVMValueRef d = unit_halves(m, unit, 0), dmin = l->d2 >= 0 ? unit_halves(m, unit, l->d2) : NULL;
    lv_loop s;
    lv_loop_begin(m, &s, lv_int(m, 0), lv_int(m, 8), 1, 4, init);
    memcpy(sums, s.v, sizeof sums);
    kquant_sub(m, dt, l, unit, s.i, row, lv_add(m, k, lv_muli(m, s.i, 32)), apart, sums, sums + 2);
    lv_loop_end(m, &s, sums);
    for (int h = 0; h < 2; h++) {
        acc[h] = lv_fma(m, s.v[h], lv_slice(m, d, 16 * h, 16), acc[h]);
        if (dmin) acc[h] = lv_fma(m, LLVMBuildFNeg(m->b, s.v[2 + h], ""), lv_slice(m, dmin, 16 * h, 16), acc[h]);
    }
}

void lv_int8_qpanel_row(lv_emit *m, gm_dtype dt, LLVMValueRef w, int64_t K, LLVMValueRef panel, LLVMValueRef row, int apart,
                        LLVMValueRef *acc) {
    gm_qpanel l = gm_qpanel_of(dt);
    int B = gm_dtype_block(dt);
    lv_loop u;
    lv_loop_begin(m, &u, lv_int(m, 0), lv_int(m, K / B), 1, 2, acc);
    LLVMValueRef unit = at_offset(m, w, lv_muli(m, lv_add(m, lv_muli(m, panel, K / B), u.i), l.unit)), next[2] = {u.v[0], u.v[1]};
    if (l.sc >= 0) kquant_unit(m, dt, &l, unit, row, lv_muli(m, u.i, B), apart, next);
    else lone_block(m, dt, &l, unit, row, lv_muli(m, u.i, B), apart, next);
    lv_loop_end(m, &u, next);
    acc[0] = u.v[0], acc[1] = u.v[1];
}
