/* kernels.c — one emitter per IR op (docs/model-format.md gives the
 * semantics, backends/reference/reference.c the oracle).
 *
 * Every kernel reads its ex_call, loops over the T rows of the call, and
 * walks each row in vector pieces (lv_span), so a column count that is not a
 * multiple of the vector width only adds a few narrower pieces. Sizes and
 * attributes are constants here, so LLVM folds them into the loop bounds.
 *   matmul      the matmul family lives in matmul.c
 *   attention   one pass over each query row's keys, 8 at a time: scores
 *               (q·k, scale, softcap), an online softmax (a running max and
 *               sum; the accumulator rescaled when the max grows) and Σ p·v,
 *               for up to 4 heads of one kv head at once; keys before pos
 *               come from the KV ring, the rest from this call's k and v
 *               (a block that straddles them or the ring's end is gathered
 *               first); the dot tiles are sized from the target's registers
 *   rope        cos/sin of one row's angles (f64, like the reference) once,
 *               then every head rotated with them
 *   elementwise a vector loop and a scalar tail; gelu and softcap with
 *               the inline lv_exp and lv_tanh, so they vectorise too (and
 *               so do their gradients, gelu_tanh_dx and softcap_dx; rope_dx
 *               is rope turning the other way) */
#include "backends/exec/kernel.h"

#include "emit.h"
#include "quant.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>


/* ---- embed: y[t] = table[ids[t]] as f32 ---- */

typedef struct {
    LLVMValueRef src, src_at, dst, dst_at;
    gm_dtype dt;
} copy_ctx;

static void copy_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    copy_ctx *c = ctx;
    (void)terms;
    lv_store(m, c->dst, lv_add(m, c->dst_at, at), lv_load(m, c->src, lv_add(m, c->src_at, at), c->dt, w));
}

/* A quantized table's row `row` decoded a sub-block at a time into y[dst_at..): a loop over
 * the sub-blocks, each found when it runs (lv_quant_values, as a GPU lane finds its own). */
static void embed_quant_row(lv_emit *m, const ex_kernel *k, LLVMValueRef table, LLVMValueRef row, LLVMValueRef dst_at) {
    lv_loop s;
    lv_loop_begin(m, &s, lv_int(m, 0), lv_int(m, k->n), LV_QSUB, 0, NULL);
    lv_store(m, lv_call_out(m), lv_add(m, dst_at, s.i), lv_quant_values(m, k->wtype, table, row, k->n, s.i));
    lv_loop_end(m, &s, NULL);
}

/* Row `row` of a table kept only in the int8 head's panels (runtime/qpanel.h),
 * decoded by the runtime's gm_qpanel_row: a lookup of T rows is too little
 * work to be worth a kernel of its own per format. */
static void embed_qpanel_row(lv_emit *m, const ex_kernel *k, LLVMValueRef table, LLVMValueRef row, LLVMValueRef dst_at) {
    LLVMTypeRef ptr = LLVMPointerTypeInContext(m->ctx, 0), params[5] = {m->i32, ptr, m->i64, m->i64, ptr};
    LLVMTypeRef ty = LLVMFunctionType(LLVMVoidTypeInContext(m->ctx), params, 5, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(m->mod, "gm_qpanel_row");
    if (!fn) fn = LLVMAddFunction(m->mod, "gm_qpanel_row", ty);
    LLVMValueRef dst = LLVMBuildInBoundsGEP2(m->b, m->f32, lv_call_out(m), &dst_at, 1, "");
    LLVMValueRef args[5] = {LLVMConstInt(m->i32, (unsigned long long)k->wtype, 0), table, lv_int(m, k->n), row, dst};
    LLVMBuildCall2(m->b, ty, fn, args, 5, "");
}

static void emit_embed(lv_emit *m, const ex_kernel *k) {
    LLVMValueRef ids = lv_call_in(m, 0);
    copy_ctx c = {lv_call_in(m, 1), NULL, lv_call_out(m), NULL, k->wtype};
    lv_loop t;
    lv_loop_begin(m, &t, lv_int(m, 0), lv_call_T(m), 1, 0, NULL);
    LLVMValueRef id = LLVMBuildSExt(m->b, LLVMBuildLoad2(m->b, m->i32, LLVMBuildInBoundsGEP2(m->b, m->i32, ids, &t.i, 1, ""), ""),
                                    m->i64, "");
    c.dst_at = lv_muli(m, t.i, k->n);
    if (gm_dtype_quantized(k->wtype) && k->panel) {
        embed_qpanel_row(m, k, c.src, id, c.dst_at);
    } else if (gm_dtype_quantized(k->wtype)) {
        embed_quant_row(m, k, c.src, id, c.dst_at);
    } else {
        c.src_at = lv_muli(m, id, k->n);
        lv_span(m, k->n, 1, 0, copy_piece, &c, NULL);
    }
    lv_loop_end(m, &t, NULL);
}

/* ---- elementwise: scale, gelu_tanh, geglu, softcap, mul, add over T·C ---- */

/* 0.5·x·(1 + tanh(u)) is x·σ(2u) = x / (1 + e^(−2u)): one exp, cheaper
 * than tanh, and no cancellation for any x. */
static LLVMValueRef gelu_tanh(lv_emit *m, LLVMValueRef x, int w) {
    LLVMValueRef cube = lv_fmul(m, lv_fmul(m, x, x), x);
    LLVMValueRef u = lv_fadd(m, x, lv_fmul(m, lv_real(m, 0.044715, w), cube));
    LLVMValueRef e = lv_exp(m, lv_fmul(m, lv_real(m, -2 * 0.7978845608028654, w), u));
    return lv_fdiv(m, x, lv_fadd(m, lv_real(m, 1, w), e));
}

/* gelu_tanh'(x) = σ + x·σ·(1 − σ)·2u', with σ = σ(2u) as above and
 * u' = c·(1 + 3·0.044715·x²): the same one exp. */
static LLVMValueRef gelu_tanh_slope(lv_emit *m, LLVMValueRef x, int w) {
    LLVMValueRef x2 = lv_fmul(m, x, x), c = lv_real(m, 0.7978845608028654, w);
    LLVMValueRef u = lv_fmul(m, c, lv_fadd(m, x, lv_fmul(m, lv_real(m, 0.044715, w), lv_fmul(m, x2, x))));
    LLVMValueRef sig = lv_fdiv(m, lv_real(m, 1, w), lv_fadd(m, lv_real(m, 1, w), lv_exp(m, lv_fmul(m, lv_real(m, -2, w), u))));
    LLVMValueRef du = lv_fmul(m, lv_real(m, 2, w), lv_fmul(m, c, lv_fadd(m, lv_real(m, 1, w), lv_fmul(m, lv_real(m, 3 * 0.044715, w), x2))));
    return lv_fadd(m, sig, lv_fmul(m, lv_fmul(m, x, sig), lv_fmul(m, lv_fsub(m, lv_real(m, 1, w), sig), du)));
}

LLVMValueRef lv_elementwise_value(lv_emit *m, const ex_kernel *k, LLVMValueRef x, LLVMValueRef b, int w) {
    switch (k->op) {
    case IR_SCALE: return lv_fmul(m, x, lv_real(m, k->attr[IR_A_BY], w));
    case IR_MUL: return lv_fmul(m, x, b);
    case IR_ADD: return lv_fadd(m, x, b);
    case IR_GELU_TANH: return gelu_tanh(m, x, w);
    case IR_GEGLU: return lv_fmul(m, gelu_tanh(m, x, w), b);
    case IR_SOFTCAP: return lv_softcap(m, x, k->attr[IR_A_CAP], w);
    case IR_GELU_TANH_DX: return lv_fmul(m, x, gelu_tanh_slope(m, b, w)); /* (dy, x) */
    case IR_SOFTCAP_DX: return lv_fmul(m, x, lv_softcap_slope(m, b, k->attr[IR_A_CAP], w)); /* (dy, y) */
    default: fprintf(stderr, "gemmac: internal error: %s is not an elementwise op\n", ir_ops[k->op].name), abort();
    }
}

LLVMValueRef lv_softcap(lv_emit *m, LLVMValueRef x, double cap, int w) {
    LLVMValueRef c = lv_real(m, cap, w);
    return lv_fmul(m, c, lv_tanh(m, lv_fdiv(m, x, c)));
}

LLVMValueRef lv_softcap_slope(lv_emit *m, LLVMValueRef y, double cap, int w) {
    LLVMValueRef r = lv_fdiv(m, y, lv_real(m, cap, w));
    return lv_fsub(m, lv_real(m, 1, w), lv_fmul(m, r, r));
}

static void elementwise_piece(lv_emit *m, const ex_kernel *k, LLVMValueRef at, int w) {
    LLVMValueRef x = lv_load(m, lv_call_in(m, 0), at, GM_F32, w);
    LLVMValueRef b = ir_ops[k->op].n_inputs > 1 ? lv_load(m, lv_call_in(m, 1), at, GM_F32, w) : NULL;
    lv_store(m, lv_call_out(m), at, lv_elementwise_value(m, k, x, b, w));
}

static void emit_elementwise(lv_emit *m, const ex_kernel *k) {
    LLVMValueRef n = lv_muli(m, lv_call_T(m), k->n);
    lv_loop v, s;
    lv_loop_begin(m, &v, lv_int(m, 0), n, m->target->width, 0, NULL);
    elementwise_piece(m, k, v.i, m->target->width);
    lv_loop_end(m, &v, NULL);
    lv_loop_begin(m, &s, v.i, n, 1, 0, NULL);
    elementwise_piece(m, k, s.i, 1);
    lv_loop_end(m, &s, NULL);
}

/* ---- rms_norm: per group of G columns, x · rsqrt(mean(x²) + eps) · (w + add_one);
 *      norm_add: the same with the residual r added at the store, r + that ---- */

typedef struct {
    const lv_norm_rows *n;
    LLVMValueRef base, inv;
} norm_ctx;

static void square_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    norm_ctx *c = ctx;
    LLVMValueRef x = lv_load(m, c->n->x, lv_add(m, c->base, at), GM_F32, w);
    terms[0] = lv_fmul(m, x, x);
}

static void normalise_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    norm_ctx *c = ctx;
    const lv_norm_rows *n = c->n;
    (void)terms;
    LLVMValueRef x = lv_load(m, n->x, lv_add(m, c->base, at), GM_F32, w);
    LLVMValueRef g = lv_load(m, n->w, at, n->wtype, w);
    if (n->add_one != 0) g = lv_fadd(m, g, lv_real(m, n->add_one, w));
    LLVMValueRef y = lv_fmul(m, lv_fmul(m, x, lv_splat(m, c->inv, w)), g);
    if (n->r) y = lv_fadd(m, lv_load(m, n->r, lv_add(m, c->base, at), GM_F32, w), y);
    lv_store(m, n->y, lv_add(m, c->base, at), y);
}

void lv_emit_norm_rows(lv_emit *m, const lv_norm_rows *n, LLVMValueRef rows) {
    norm_ctx c = {n, NULL, NULL};
    lv_loop r;
    lv_loop_begin(m, &r, lv_int(m, 0), rows, 1, 0, NULL);
    c.base = lv_muli(m, r.i, n->G);
    LLVMValueRef ss;
    lv_span(m, n->G, 1, 1, square_piece, &c, &ss);
    LLVMValueRef mean = LLVMBuildFDiv(m->b, LLVMBuildFPExt(m->b, ss, m->f64, ""), LLVMConstReal(m->f64, (double)n->G), "");
    LLVMValueRef root = lv_sqrt(m, LLVMBuildFAdd(m->b, mean, LLVMConstReal(m->f64, n->eps), ""));
    c.inv = LLVMBuildFPTrunc(m->b, LLVMBuildFDiv(m->b, LLVMConstReal(m->f64, 1), root, ""), m->f32, "");
    lv_span(m, n->G, 1, 0, normalise_piece, &c, NULL);
    lv_loop_end(m, &r, NULL);
}

static void emit_rms_norm(lv_emit *m, const ex_kernel *k) {
    lv_norm_rows n = {lv_call_in(m, 0), lv_call_in(m, 1), k->op == IR_NORM_ADD ? lv_call_in(m, 2) : NULL, lv_call_out(m), k->wtype,
                      k->k, k->attr[IR_A_EPS], k->attr[IR_A_ADD_ONE]};
    lv_emit_norm_rows(m, &n, lv_muli(m, lv_call_T(m), k->n / k->k));
}

/* ---- rope: rotate pairs (i, i + d/2) of each head by (pos / pos_scale) · θ^(−2i/d) ---- */

typedef struct {
    LLVMValueRef x, y, base, cos_row, sin_row;
    int64_t half;
} rope_ctx;

static void rotate_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    rope_ctx *c = ctx;
    (void)terms;
    LLVMValueRef lo = lv_add(m, c->base, at), hi = lv_addi(m, lo, c->half);
    LLVMValueRef x0 = lv_load(m, c->x, lo, GM_F32, w), x1 = lv_load(m, c->x, hi, GM_F32, w);
    LLVMValueRef cs = lv_load(m, c->cos_row, at, GM_F32, w), sn = lv_load(m, c->sin_row, at, GM_F32, w);
    lv_store(m, c->y, lo, lv_fsub(m, lv_fmul(m, x0, cs), lv_fmul(m, x1, sn)));
    lv_store(m, c->y, hi, lv_fadd(m, lv_fmul(m, x1, cs), lv_fmul(m, x0, sn)));
}

/* θ^(−2i/d) for i < d/2, a constant array of f64 (as the reference computes it). */
static LLVMValueRef rope_frequencies(lv_emit *m, int64_t hd, double theta) {
    int64_t half = hd / 2;
    LLVMValueRef *f = gm_malloc(half * sizeof *f);
    for (int64_t i = 0; i < half; i++) f[i] = LLVMConstReal(m->f64, pow(theta, -2.0 * i / hd));
    char name[256];
    snprintf(name, sizeof name, "%s.freq", m->name);
    LLVMValueRef g = LLVMAddGlobal(m->mod, LLVMArrayType2(m->f64, half), name);
    LLVMSetInitializer(g, LLVMConstArray2(m->f64, f, half));
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    free(f);
    return g;
}

static void emit_rope(lv_emit *m, const ex_kernel *k) {
    int64_t hd = (int64_t)k->attr[IR_A_HEAD_DIM], half = hd / 2;
    LLVMValueRef freq = rope_frequencies(m, hd, k->attr[IR_A_THETA]);
    rope_ctx c = {lv_call_in(m, 0), lv_call_out(m), NULL, LLVMBuildAlloca(m->b, LLVMArrayType2(m->f32, half), "cos"),
                  LLVMBuildAlloca(m->b, LLVMArrayType2(m->f32, half), "sin"), half};
    LLVMValueRef pos = lv_field_i64(m, offsetof(ex_call, pos));
    lv_loop t, i, h;
    lv_loop_begin(m, &t, lv_int(m, 0), lv_call_T(m), 1, 0, NULL);
    double sign = k->op == IR_ROPE_DX ? -1 : 1; /* rope_dx: the inverse rotation, rope's transpose */
    LLVMValueRef p = LLVMBuildFDiv(m->b, LLVMBuildSIToFP(m->b, lv_add(m, pos, t.i), m->f64, ""),
                                   LLVMConstReal(m->f64, sign * k->attr[IR_A_POS_SCALE]), "");
    lv_loop_begin(m, &i, lv_int(m, 0), lv_int(m, half), 1, 0, NULL);
    LLVMValueRef f = LLVMBuildLoad2(m->b, m->f64, LLVMBuildInBoundsGEP2(m->b, m->f64, freq, &i.i, 1, ""), "");
    LLVMValueRef angle = LLVMBuildFMul(m->b, p, f, "");
    lv_store(m, c.cos_row, i.i, LLVMBuildFPTrunc(m->b, lv_libm(m, "cos", angle), m->f32, ""));
    lv_store(m, c.sin_row, i.i, LLVMBuildFPTrunc(m->b, lv_libm(m, "sin", angle), m->f32, ""));
    lv_loop_end(m, &i, NULL);
    lv_loop_begin(m, &h, lv_int(m, 0), lv_int(m, k->n / hd), 1, 0, NULL);
    c.base = lv_add(m, lv_muli(m, t.i, k->n), lv_muli(m, h.i, hd));
    lv_span(m, half, 1, 0, rotate_piece, &c, NULL);
    lv_loop_end(m, &h, NULL);
    lv_loop_end(m, &t, NULL);
}

/* ---- attention: one pass over each query row's keys, with an online softmax ---- */

#define KEYS 8   /* keys per block of the online softmax */
#define HEADS 4  /* most query heads of one kv head taken together */

/* The block's floats, after the heads' accumulators: the scores (then the
 * p) of each head, and each head's running max, sum and rescale factor. A
 * block lives in memory, not registers: the softmax takes a head's KEYS
 * scores as one vector and the value loop broadcasts each p from there, so
 * no phase holds more than a register tile. */
enum { SCORES = 0, MAX = HEADS * KEYS, SUM = MAX + HEADS, RESCALE = SUM + HEADS, BLOCK = RESCALE + HEADS };

typedef struct {
    const ex_kernel *k;
    LLVMValueRef q, k_new, v_new, k_cache, v_cache, y, pos, rows;
    LLVMValueRef acc, block;              /* per head hd sums of p·v; the block's floats (above) */
    int64_t hd, kv_cols;
    int heads;                            /* query heads of a tile, all on one kv head */
    int nk;                               /* keys per tile of dot products, from the target's registers */
    LLVMValueRef lo, hi, last, ring_lo;   /* keys [lo, hi) of this query row; ring row of lo */
    LLVMValueRef q_at, q_row, kv_at;      /* the tile's first head in q (and y), its q; its kv head in k and v */
    LLVMValueRef k_stage, v_stage;        /* KEYS rows of kv_cols: a block gathered from scattered rows */
    LLVMValueRef kb, vb;                  /* the block's key and value b at kb (vb) + b · kv_cols */
    int k0, n;                            /* a tile of dot products: keys k0.. k0+n-1 of the block */
} attn_ctx;

static LLVMValueRef block_load(lv_emit *m, attn_ctx *a, int at, int w) { return lv_load(m, a->block, lv_int(m, at), GM_F32, w); }
static void block_store(lv_emit *m, attn_ctx *a, int at, LLVMValueRef v) { lv_store(m, a->block, lv_int(m, at), v); }

/* Key j's row of the ring: ring_lo + (j − lo), which wraps at most once
 * (the keys of a window before pos are fewer than the ring's rows). */
static LLVMValueRef ring_row(lv_emit *m, attn_ctx *a, LLVMValueRef j) {
    LLVMValueRef r = lv_add(m, a->ring_lo, lv_sub(m, j, a->lo));
    return LLVMBuildSelect(m->b, LLVMBuildICmp(m->b, LLVMIntSGE, r, a->rows, ""), lv_sub(m, r, a->rows), r, "");
}

/* Key (or value) row of key j: the cache's (its ring row) for j < pos, else this call's rows. */
static LLVMValueRef kv_row(lv_emit *m, attn_ctx *a, LLVMValueRef cache, LLVMValueRef fresh, LLVMValueRef j) {
    LLVMValueRef old = LLVMBuildICmp(m->b, LLVMIntSLT, j, a->pos, ""), r = ring_row(m, a, j);
    LLVMValueRef row = LLVMBuildSelect(m->b, old, r, lv_sub(m, j, a->pos), "");
    LLVMValueRef at = lv_add(m, lv_muli(m, row, a->kv_cols), a->kv_at);
    return LLVMBuildInBoundsGEP2(m->b, m->f32, LLVMBuildSelect(m->b, old, cache, fresh, ""), &at, 1, "");
}

/* Whether keys j0.. j0+KEYS-1 are consecutive rows of one buffer: all in
 * the ring without wrapping, or all among this call's rows. */
static LLVMValueRef block_contiguous(lv_emit *m, attn_ctx *a, LLVMValueRef j0) {
    LLVMValueRef end = lv_addi(m, j0, KEYS), r = ring_row(m, a, j0);
    LLVMValueRef cached = LLVMBuildAnd(m->b, LLVMBuildICmp(m->b, LLVMIntSLE, end, a->pos, ""),
                                       LLVMBuildICmp(m->b, LLVMIntSLE, lv_addi(m, r, KEYS), a->rows, ""), "");
    LLVMValueRef fresh = LLVMBuildAnd(m->b, LLVMBuildICmp(m->b, LLVMIntSGE, j0, a->pos, ""),
                                      LLVMBuildICmp(m->b, LLVMIntSLE, end, a->hi, ""), "");
    return LLVMBuildOr(m->b, cached, fresh, "");
}

/* Copies the rows of keys j0.. j0+KEYS-1 (past hi: key hi − 1 again, masked
 * later) into the stages, one row at a time. */
static void stage_block(lv_emit *m, attn_ctx *a, LLVMValueRef j0) {
    lv_loop b;
    lv_loop_begin(m, &b, lv_int(m, 0), lv_int(m, KEYS), 1, 0, NULL);
    LLVMValueRef jb = lv_add(m, j0, b.i);
    jb = LLVMBuildSelect(m->b, LLVMBuildICmp(m->b, LLVMIntSLT, jb, a->last, ""), jb, a->last, "");
    copy_ctx k = {kv_row(m, a, a->k_cache, a->k_new, jb), lv_int(m, 0), a->k_stage, lv_mul(m, b.i, lv_int(m, a->kv_cols)), GM_F32};
    lv_span(m, a->hd, 1, 0, copy_piece, &k, NULL);
    copy_ctx v = {kv_row(m, a, a->v_cache, a->v_new, jb), lv_int(m, 0), a->v_stage, k.dst_at, GM_F32};
    lv_span(m, a->hd, 1, 0, copy_piece, &v, NULL);
    lv_loop_end(m, &b, NULL);
}

/* Sets kb and vb for the block of keys from j0: its rows where they lie when
 * they are consecutive (most blocks), else gathered into the stages. So the
 * block's kernels address every key from one pointer. */
static void block_rows(lv_emit *m, attn_ctx *a, LLVMValueRef j0) {
    LLVMValueRef k = kv_row(m, a, a->k_cache, a->k_new, j0), v = kv_row(m, a, a->v_cache, a->v_new, j0);
    LLVMBasicBlockRef from = LLVMGetInsertBlock(m->b);
    LLVMBasicBlockRef stage = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "stage");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "rows");
    LLVMBuildCondBr(m->b, block_contiguous(m, a, j0), join, stage);
    LLVMPositionBuilderAtEnd(m->b, stage);
    stage_block(m, a, j0);
    LLVMBasicBlockRef staged = LLVMGetInsertBlock(m->b);
    LLVMBuildBr(m->b, join);
    LLVMPositionBuilderAtEnd(m->b, join);
    a->kb = LLVMBuildPhi(m->b, m->ptr, "kb");
    a->vb = LLVMBuildPhi(m->b, m->ptr, "vb");
    LLVMAddIncoming(a->kb, (LLVMValueRef[]){k, a->k_stage}, (LLVMBasicBlockRef[]){from, staged}, 2);
    LLVMAddIncoming(a->vb, (LLVMValueRef[]){v, a->v_stage}, (LLVMBasicBlockRef[]){from, staged}, 2);
}

static void dot_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    attn_ctx *a = ctx;
    LLVMValueRef qv[HEADS];
    for (int h = 0; h < a->heads; h++) qv[h] = lv_load(m, a->q_row, lv_addi(m, at, h * a->hd), GM_F32, w);
    for (int b = 0; b < a->n; b++) {
        LLVMValueRef kv = lv_load(m, a->kb, lv_addi(m, at, (a->k0 + b) * a->kv_cols), GM_F32, w);
        for (int h = 0; h < a->heads; h++) terms[h * a->n + b] = lv_fmul(m, qv[h], kv);
    }
}

/* The block's scores q_h · k_b, in tiles of nk keys × the tile's heads. */
static void emit_dots(lv_emit *m, attn_ctx *a) {
    LLVMValueRef sums[LV_MAX_CARRY];
    for (a->k0 = 0; a->k0 < KEYS; a->k0 += a->n) {
        a->n = a->nk < KEYS - a->k0 ? a->nk : KEYS - a->k0;
        lv_span(m, a->hd, 1, a->n * a->heads, dot_piece, a, sums);
        for (int h = 0; h < a->heads; h++)
            for (int b = 0; b < a->n; b++) block_store(m, a, SCORES + h * KEYS + a->k0 + b, sums[h * a->n + b]);
    }
}

/* Lanes b of keys j0 + b below hi. */
static LLVMValueRef keys_in(lv_emit *m, attn_ctx *a, LLVMValueRef j0) {
    LLVMValueRef lane[KEYS];
    for (int b = 0; b < KEYS; b++) lane[b] = LLVMConstInt(m->i64, (unsigned long long)b, 0);
    LLVMValueRef j = LLVMBuildAdd(m->b, lv_splat(m, j0, KEYS), LLVMConstVector(lane, KEYS), "");
    return LLVMBuildICmp(m->b, LLVMIntSLT, j, lv_splat(m, a->hi, KEYS), "");
}

/* Folds the block's scores, keys j0.. j0+KEYS-1 (those from hi on masked),
 * into each head's running max and sum, a head's keys as one vector; leaves
 * p and the factor that rescales the head's accumulator. */
static void emit_online_softmax(lv_emit *m, attn_ctx *a, LLVMValueRef j0) {
    double cap = a->k->attr[IR_A_SOFTCAP];
    LLVMValueRef in = keys_in(m, a, j0);
    for (int h = 0; h < a->heads; h++) {
        LLVMValueRef x = lv_fmul(m, block_load(m, a, SCORES + h * KEYS, KEYS), lv_real(m, a->k->attr[IR_A_SCALE], KEYS));
        if (cap > 0) x = lv_softcap(m, x, cap, KEYS);
        x = LLVMBuildSelect(m->b, in, x, lv_real(m, -INFINITY, KEYS), "");
        LLVMValueRef old = block_load(m, a, MAX + h, 1), top = lv_intrinsic(m, "llvm.vector.reduce.fmax", (LLVMTypeRef[]){LLVMTypeOf(x)}, 1, &x, 1);
        top = lv_intrinsic(m, "llvm.maxnum", &m->f32, 1, (LLVMValueRef[]){old, top}, 2);
        LLVMValueRef rescale = lv_exp(m, lv_fsub(m, old, top)), p = lv_exp(m, lv_fsub(m, x, lv_splat(m, top, KEYS)));
        block_store(m, a, SCORES + h * KEYS, p);
        block_store(m, a, MAX + h, top);
        block_store(m, a, SUM + h, lv_fadd(m, lv_fmul(m, block_load(m, a, SUM + h, 1), rescale), lv_hsum(m, p)));
        block_store(m, a, RESCALE + h, rescale);
    }
}

static LLVMValueRef acc_at(lv_emit *m, attn_ctx *a, int h, LLVMValueRef at) { return lv_addi(m, at, h * a->hd); }

static void zero_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    (void)terms;
    lv_store(m, ((attn_ctx *)ctx)->acc, at, lv_real(m, 0, w));
}

/* acc_h = acc_h · rescale_h + Σ_b p_hb · v_b, each value vector loaded once for all heads. */
static void value_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    attn_ctx *a = ctx;
    LLVMValueRef acc[HEADS];
    (void)terms;
    for (int h = 0; h < a->heads; h++)
        acc[h] = lv_fmul(m, lv_load(m, a->acc, acc_at(m, a, h, at), GM_F32, w), lv_splat(m, block_load(m, a, RESCALE + h, 1), w));
    for (int b = 0; b < KEYS; b++) {
        LLVMValueRef v = lv_load(m, a->vb, lv_addi(m, at, b * a->kv_cols), GM_F32, w);
        for (int h = 0; h < a->heads; h++)
            acc[h] = lv_fadd(m, acc[h], lv_fmul(m, lv_splat(m, block_load(m, a, SCORES + h * KEYS + b, 1), w), v));
    }
    for (int h = 0; h < a->heads; h++) lv_store(m, a->acc, acc_at(m, a, h, at), acc[h]);
}

/* y_h = acc_h / Σ p_h (the rescale slot holds 1 / Σ p_h by then). */
static void output_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    attn_ctx *a = ctx;
    (void)terms;
    for (int h = 0; h < a->heads; h++) {
        LLVMValueRef acc = lv_load(m, a->acc, acc_at(m, a, h, at), GM_F32, w);
        lv_store(m, a->y, lv_add(m, a->q_at, acc_at(m, a, h, at)), lv_fmul(m, acc, lv_splat(m, block_load(m, a, RESCALE + h, 1), w)));
    }
}

/* The tile's heads over keys [lo, hi), KEYS at a time. */
static void emit_heads(lv_emit *m, attn_ctx *a) {
    for (int h = 0; h < a->heads; h++) block_store(m, a, MAX + h, lv_real(m, -INFINITY, 1)), block_store(m, a, SUM + h, lv_real(m, 0, 1));
    lv_span(m, a->heads * a->hd, 1, 0, zero_piece, a, NULL);
    a->last = lv_addi(m, a->hi, -1);
    lv_loop j;
    lv_loop_begin(m, &j, a->lo, lv_addi(m, a->hi, KEYS - 1), KEYS, 0, NULL);
    block_rows(m, a, j.i);
    emit_dots(m, a);
    emit_online_softmax(m, a, j.i);
    lv_span(m, a->hd, 1, 0, value_piece, a, NULL);
    lv_loop_end(m, &j, NULL);
    for (int h = 0; h < a->heads; h++) block_store(m, a, RESCALE + h, lv_fdiv(m, lv_real(m, 1, 1), block_load(m, a, SUM + h, 1)));
    lv_span(m, a->hd, 1, 0, output_piece, a, NULL);
}

/* Keys per tile of dot products: heads × nk sums, a q vector per head and a
 * key vector in the target's registers, the block's keys split evenly. */
static int dot_keys(const lv_target *t, int heads) {
    int most = (t->regs - heads - 2) / heads;
    if (most < 1) most = 1;
    int tiles = (KEYS + most - 1) / most;
    return (KEYS + tiles - 1) / tiles;
}

/* Query rows [n0, n1) of the call, every head; the heads of one kv head in
 * tiles of up to HEADS, so that each key and value row is read once a tile. */
static void emit_attention(lv_emit *m, const ex_kernel *k) {
    int64_t nh = (int64_t)k->attr[IR_A_HEADS], nkv = (int64_t)k->attr[IR_A_KV_HEADS];
    int64_t hd = (int64_t)k->attr[IR_A_HEAD_DIM], window = (int64_t)k->attr[IR_A_WINDOW], group = nh / nkv;
    attn_ctx a = {.k = k, .q = lv_call_in(m, 0), .k_new = lv_call_in(m, 1), .v_new = lv_call_in(m, 2),
                  .k_cache = lv_field_ptr(m, offsetof(ex_call, k_cache)),
                  .v_cache = lv_field_ptr(m, offsetof(ex_call, v_cache)), .y = lv_call_out(m),
                  .pos = lv_field_i64(m, offsetof(ex_call, pos)), .rows = lv_field_i64(m, offsetof(ex_call, rows)),
                  .hd = hd, .kv_cols = nkv * hd, .heads = HEADS};
    while (group % a.heads) a.heads /= 2;
    a.nk = dot_keys(m->target, a.heads);
    a.acc = LLVMBuildArrayAlloca(m->b, m->f32, lv_int(m, a.heads * hd + BLOCK), "acc");
    LLVMSetAlignment(a.acc, 64);
    a.block = LLVMBuildInBoundsGEP2(m->b, m->f32, a.acc, (LLVMValueRef[]){lv_int(m, a.heads * hd)}, 1, "block");
    a.k_stage = LLVMBuildArrayAlloca(m->b, m->f32, lv_int(m, KEYS * a.kv_cols), "k_stage");
    a.v_stage = LLVMBuildArrayAlloca(m->b, m->f32, lv_int(m, KEYS * a.kv_cols), "v_stage");
    lv_loop t, h;
    lv_loop_begin(m, &t, lv_field_i64(m, offsetof(ex_call, n0)), lv_field_i64(m, offsetof(ex_call, n1)), 1, 0, NULL);
    LLVMValueRef i = lv_add(m, a.pos, t.i);
    a.hi = lv_addi(m, i, 1);
    a.lo = lv_int(m, 0);
    if (window > 0) {
        LLVMValueRef first = lv_addi(m, i, 1 - window);
        a.lo = LLVMBuildSelect(m->b, LLVMBuildICmp(m->b, LLVMIntSGT, first, a.lo, ""), first, a.lo, "");
    }
    a.ring_lo = LLVMBuildSRem(m->b, a.lo, a.rows, "");
    lv_loop_begin(m, &h, lv_int(m, 0), lv_int(m, nh), a.heads, 0, NULL);
    a.q_at = lv_add(m, lv_muli(m, t.i, nh * hd), lv_muli(m, h.i, hd));
    a.q_row = LLVMBuildInBoundsGEP2(m->b, m->f32, a.q, &a.q_at, 1, "q_row");
    a.kv_at = lv_muli(m, LLVMBuildSDiv(m->b, h.i, lv_int(m, group), ""), hd);
    emit_heads(m, &a);
    lv_loop_end(m, &h, NULL);
    lv_loop_end(m, &t, NULL);
}

void lv_emit_kernel(lv_emit *m, const ex_kernel *k, const char *name) {
    lv_kernel_begin(m, name);
    switch (k->op) {
    case IR_EMBED: emit_embed(m, k); break;
    case IR_RMS_NORM:
    case IR_NORM_ADD: emit_rms_norm(m, k); break;
    case IR_MATMUL:
    case IR_NORM_MATMUL:
    case IR_MATMUL_ADD: lv_emit_matmul(m, k); break;
    case IR_ROPE:
    case IR_ROPE_DX: emit_rope(m, k); break;
    case IR_ATTENTION: emit_attention(m, k); break;
    case IR_MATMUL_DX:
    case IR_MATMUL_DW:
    case IR_EMBED_DW: lv_emit_matmul_grad(m, k); break;
    case IR_ATTENTION_DQ:
    case IR_ATTENTION_DK:
    case IR_ATTENTION_DV: lv_emit_attention_grad(m, k); break;
    case IR_CROSS_ENTROPY:
    case IR_CROSS_ENTROPY_DX:
    case IR_RMS_NORM_DX:
    case IR_RMS_NORM_DW:
    case IR_SCORED_ROWS:
    case IR_ALL_ROWS: lv_emit_train_kernel(m, k); break;
    default: emit_elementwise(m, k); break;
    }
    lv_kernel_end(m);
}
