/* train_kernels.c — the training kernels of the loss and of rms_norm's
 * gradients (backends/reference/backward.c gives the formulas and is their
 * oracle); the matmuls' are in matmul_grad.c, attention's in
 * attention_grad.c, and the elementwise ones and rope_dx beside their
 * forward ops in kernels.c.
 *   cross_entropy     per scored row, lse(z) − z[target] (max, then Σ e^(z − max)
 *                     in vector pieces), summed in double over the rows, / scored
 *   cross_entropy_dx  rows [n0, n1): (softmax(z) − one-hot) / scored, zero for
 *                     rows without a target; the engine splits rows over cores
 *   rms_norm_dx       per group of G: Σx² and Σ dy·g·x in one pass, then
 *                     dx = inv·g·dy − inv³·x·Σ(dy·g·x)/G in a second
 *   rms_norm_dw       Σ over the groups of dy·x·inv, into the G outputs
 *   scored_rows       the rows with a target, in order (passes/score_head.c);
 *   all_rows          and back, zero at the other rows */
#include "backends/exec/kernel.h"

#include "emit.h"

#include <math.h>
#include <stddef.h>


static LLVMValueRef load_i32(lv_emit *m, LLVMValueRef base, LLVMValueRef i) {
    return LLVMBuildSExt(m->b, LLVMBuildLoad2(m->b, m->i32, LLVMBuildInBoundsGEP2(m->b, m->i32, base, &i, 1, ""), ""),
                         m->i64, "");
}

/* ---- the loss ---- */

typedef struct {
    LLVMValueRef z, y, at, max, scale; /* row `at` of z; its max; what each e^(z − max) is multiplied by */
} softmax_ctx;

static LLVMValueRef fmax_of(lv_emit *m, LLVMValueRef a, LLVMValueRef b) {
    LLVMTypeRef ty = LLVMTypeOf(a);
    return lv_intrinsic(m, "llvm.maxnum", &ty, 1, (LLVMValueRef[]){a, b}, 2);
}

/* The largest of the n floats of z from `at`: a vector loop, its lanes, then a scalar tail. */
static LLVMValueRef row_max(lv_emit *m, LLVMValueRef z, LLVMValueRef at, int64_t n) {
    int w = m->target->width;
    lv_loop v, s;
    LLVMValueRef init = lv_real(m, -INFINITY, w);
    lv_loop_begin(m, &v, lv_int(m, 0), lv_int(m, n), w, 1, &init);
    LLVMValueRef next = fmax_of(m, v.v[0], lv_load(m, z, lv_add(m, at, v.i), GM_F32, w));
    lv_loop_end(m, &v, &next);
    LLVMTypeRef vt = LLVMTypeOf(v.v[0]);
    LLVMValueRef lanes = lv_intrinsic(m, "llvm.vector.reduce.fmax", &vt, 1, &v.v[0], 1);
    lv_loop_begin(m, &s, v.i, lv_int(m, n), 1, 1, &lanes);
    next = fmax_of(m, s.v[0], lv_load(m, z, lv_add(m, at, s.i), GM_F32, 1));
    lv_loop_end(m, &s, &next);
    return s.v[0];
}

static void exp_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    softmax_ctx *c = ctx;
    LLVMValueRef e = lv_exp(m, lv_fsub(m, lv_load(m, c->z, lv_add(m, c->at, at), GM_F32, w), lv_splat(m, c->max, w)));
    if (c->y) lv_store(m, c->y, lv_add(m, c->at, at), lv_fmul(m, e, lv_splat(m, c->scale, w)));
    else terms[0] = e;
}

/* Σ e^(z − max) of row `at` (V floats), its max into c->max. */
static LLVMValueRef row_exp_sum(lv_emit *m, softmax_ctx *c, int64_t V) {
    c->max = row_max(m, c->z, c->at, V);
    LLVMValueRef sum;
    lv_span(m, V, 2, 1, exp_piece, c, &sum);
    return sum;
}

/* The rows with a target (>= 0) among the call's T, as f64. */
static LLVMValueRef scored_rows(lv_emit *m, LLVMValueRef targets) {
    lv_loop t;
    LLVMValueRef zero = lv_int(m, 0);
    lv_loop_begin(m, &t, lv_int(m, 0), lv_call_T(m), 1, 1, &zero);
    LLVMValueRef has = LLVMBuildICmp(m->b, LLVMIntSGE, load_i32(m, targets, t.i), lv_int(m, 0), "");
    LLVMValueRef next = lv_add(m, t.v[0], LLVMBuildZExt(m->b, has, m->i64, ""));
    lv_loop_end(m, &t, &next);
    return LLVMBuildSIToFP(m->b, t.v[0], m->f64, "");
}

static void emit_cross_entropy(lv_emit *m, const ex_kernel *k) {
    LLVMValueRef targets = lv_call_in(m, 1), total = LLVMBuildAlloca(m->b, m->f64, "total");
    LLVMBuildStore(m->b, LLVMConstReal(m->f64, 0), total);
    softmax_ctx c = {lv_call_in(m, 0), NULL, NULL, NULL, NULL};
    lv_loop t;
    lv_loop_begin(m, &t, lv_int(m, 0), lv_call_T(m), 1, 0, NULL);
    LLVMValueRef tgt = load_i32(m, targets, t.i);
    LLVMBasicBlockRef done = lv_if_begin(m, LLVMBuildICmp(m->b, LLVMIntSGE, tgt, lv_int(m, 0), ""));
    c.at = lv_muli(m, t.i, k->n);
    LLVMValueRef lse = lv_libm(m, "log", LLVMBuildFPExt(m->b, row_exp_sum(m, &c, k->n), m->f64, ""));
    lse = LLVMBuildFAdd(m->b, lse, LLVMBuildFPExt(m->b, c.max, m->f64, ""), "");
    LLVMValueRef zt = LLVMBuildFPExt(m->b, lv_load(m, c.z, lv_add(m, c.at, tgt), GM_F32, 1), m->f64, "");
    LLVMValueRef added = LLVMBuildFAdd(m->b, LLVMBuildLoad2(m->b, m->f64, total, ""), LLVMBuildFSub(m->b, lse, zt, ""), "");
    LLVMBuildStore(m->b, added, total);
    lv_if_end(m, done);
    lv_loop_end(m, &t, NULL);
    LLVMValueRef scored = scored_rows(m, targets), sum = LLVMBuildLoad2(m->b, m->f64, total, "");
    LLVMValueRef mean = LLVMBuildSelect(m->b, LLVMBuildFCmp(m->b, LLVMRealOGT, scored, LLVMConstReal(m->f64, 0), ""),
                                        LLVMBuildFDiv(m->b, sum, scored, ""), LLVMConstReal(m->f64, 0), "");
    lv_store(m, lv_call_out(m), lv_int(m, 0), LLVMBuildFPTrunc(m->b, mean, m->f32, ""));
}

static void zero_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    softmax_ctx *c = ctx;
    (void)terms;
    lv_store(m, c->y, lv_add(m, c->at, at), lv_real(m, 0, w));
}

static void emit_cross_entropy_dx(lv_emit *m, const ex_kernel *k) {
    LLVMValueRef targets = lv_call_in(m, 1), inv_scored = LLVMBuildFDiv(m->b, LLVMConstReal(m->f64, 1), scored_rows(m, targets), "");
    softmax_ctx c = {lv_call_in(m, 0), NULL, NULL, NULL, NULL};
    LLVMValueRef y = lv_call_out(m);
    lv_loop t;
    lv_loop_begin(m, &t, lv_field_i64(m, offsetof(ex_call, n0)), lv_field_i64(m, offsetof(ex_call, n1)), 1, 0, NULL);
    LLVMValueRef tgt = load_i32(m, targets, t.i), has = LLVMBuildICmp(m->b, LLVMIntSGE, tgt, lv_int(m, 0), "");
    c.at = lv_muli(m, t.i, k->n);
    c.y = y;
    LLVMBasicBlockRef unscored = lv_if_begin(m, LLVMBuildNot(m->b, has, "")); /* a row without a target: zero */
    lv_span(m, k->n, 1, 0, zero_piece, &c, NULL);
    lv_if_end(m, unscored);
    LLVMBasicBlockRef done = lv_if_begin(m, has); /* z read whole before y is written: y may be z (plan_memory) */
    c.y = NULL;
    LLVMValueRef sum = LLVMBuildFPExt(m->b, row_exp_sum(m, &c, k->n), m->f64, "");
    c.y = y;
    c.scale = LLVMBuildFPTrunc(m->b, LLVMBuildFDiv(m->b, inv_scored, sum, ""), m->f32, "");
    lv_span(m, k->n, 1, 0, exp_piece, &c, NULL);
    LLVMValueRef at = lv_add(m, c.at, tgt);
    LLVMValueRef one_hot = LLVMBuildFPTrunc(m->b, inv_scored, m->f32, "");
    lv_store(m, y, at, lv_fsub(m, lv_load(m, y, at, GM_F32, 1), one_hot));
    lv_if_end(m, done);
    lv_loop_end(m, &t, NULL);
}

/* ---- rms_norm's gradients, (dy, x, w) over groups of G ---- */

typedef struct {
    const ex_kernel *k;
    LLVMValueRef dy, x, w, y, base, inv, coef; /* the group at base; its 1/rms and inv³·Σ(dy·g·x)/G */
    int with_dot;                              /* sums_piece sums dy·g·x too */
} norm_grad_ctx;

/* The norm's gain g = w + add_one at column `at` of the group. */
static LLVMValueRef gain(lv_emit *m, const norm_grad_ctx *c, LLVMValueRef at, int w) {
    LLVMValueRef g = lv_load(m, c->w, at, c->k->wtype, w);
    return c->k->attr[IR_A_ADD_ONE] != 0 ? lv_fadd(m, g, lv_real(m, c->k->attr[IR_A_ADD_ONE], w)) : g;
}

static void sums_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    norm_grad_ctx *c = ctx;
    LLVMValueRef x = lv_load(m, c->x, lv_add(m, c->base, at), GM_F32, w);
    terms[0] = lv_fmul(m, x, x);
    if (c->with_dot) terms[1] = lv_fmul(m, lv_fmul(m, lv_load(m, c->dy, lv_add(m, c->base, at), GM_F32, w), gain(m, c, at, w)), x);
}

/* inv = 1/sqrt(Σx²/G + eps) of the group (f32, from double), and Σ dy·g·x in *dot when with_dot. */
static LLVMValueRef group_inv(lv_emit *m, norm_grad_ctx *c, LLVMValueRef *dot) {
    LLVMValueRef sums[2];
    int64_t G = c->k->k;
    lv_span(m, G, 1, 1 + c->with_dot, sums_piece, c, sums);
    LLVMValueRef mean = LLVMBuildFDiv(m->b, LLVMBuildFPExt(m->b, sums[0], m->f64, ""), LLVMConstReal(m->f64, (double)G), "");
    LLVMValueRef root = lv_sqrt(m, LLVMBuildFAdd(m->b, mean, LLVMConstReal(m->f64, c->k->attr[IR_A_EPS]), ""));
    if (c->with_dot) *dot = sums[1];
    return LLVMBuildFPTrunc(m->b, LLVMBuildFDiv(m->b, LLVMConstReal(m->f64, 1), root, ""), m->f32, "");
}

static void dx_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    norm_grad_ctx *c = ctx;
    (void)terms;
    LLVMValueRef i = lv_add(m, c->base, at);
    LLVMValueRef dy = lv_load(m, c->dy, i, GM_F32, w), x = lv_load(m, c->x, i, GM_F32, w);
    LLVMValueRef dx = lv_fsub(m, lv_fmul(m, lv_fmul(m, lv_splat(m, c->inv, w), gain(m, c, at, w)), dy),
                              lv_fmul(m, lv_splat(m, c->coef, w), x));
    lv_store(m, c->y, i, dx);
}

static void dw_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    norm_grad_ctx *c = ctx;
    (void)terms;
    LLVMValueRef i = lv_add(m, c->base, at);
    LLVMValueRef term = lv_fmul(m, lv_fmul(m, lv_load(m, c->dy, i, GM_F32, w), lv_load(m, c->x, i, GM_F32, w)),
                                lv_splat(m, c->inv, w));
    lv_store(m, c->y, at, lv_fadd(m, lv_load(m, c->y, at, GM_F32, w), term));
}

/* Zeroes y[base + at..]: dw before its sums (base 0), a row without a target (all_rows). */
static void row_zero_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    norm_grad_ctx *c = ctx;
    (void)terms;
    lv_store(m, c->y, c->base ? lv_add(m, c->base, at) : at, lv_real(m, 0, w));
}

static void emit_rms_norm_grad(lv_emit *m, const ex_kernel *k) {
    int dx = k->op == IR_RMS_NORM_DX;
    norm_grad_ctx c = {k, lv_call_in(m, 0), lv_call_in(m, 1), lv_call_in(m, 2), lv_call_out(m), NULL, NULL, NULL, dx};
    int64_t G = k->k;
    if (!dx) lv_span(m, G, 1, 0, row_zero_piece, &c, NULL);
    lv_loop r;
    lv_loop_begin(m, &r, lv_int(m, 0), lv_muli(m, lv_call_T(m), k->n / G), 1, 0, NULL);
    c.base = lv_muli(m, r.i, G);
    LLVMValueRef dot = NULL;
    c.inv = group_inv(m, &c, &dot);
    if (dx) {
        LLVMValueRef inv3 = lv_fmul(m, lv_fmul(m, c.inv, c.inv), c.inv);
        c.coef = lv_fdiv(m, lv_fmul(m, inv3, dot), LLVMConstReal(m->f32, (double)G));
    }
    lv_span(m, G, 1, 0, dx ? dx_piece : dw_piece, &c, NULL);
    lv_loop_end(m, &r, NULL);
}

/* ---- the head's rows: scored_rows and all_rows ---- */

/* n 4-byte values (f32 or i32, copied as bits) from src[from..) to dst[to..). */
static void copy_row(lv_emit *m, LLVMValueRef src, LLVMValueRef from, LLVMValueRef dst, LLVMValueRef to, int64_t n) {
    lv_loop c;
    lv_loop_begin(m, &c, lv_int(m, 0), lv_int(m, n), 1, 0, NULL);
    LLVMValueRef at = lv_add(m, from, c.i), put = lv_add(m, to, c.i);
    LLVMValueRef v = LLVMBuildLoad2(m->b, m->i32, LLVMBuildInBoundsGEP2(m->b, m->i32, src, &at, 1, ""), "");
    LLVMBuildStore(m->b, v, LLVMBuildInBoundsGEP2(m->b, m->i32, dst, &put, 1, ""));
    lv_loop_end(m, &c, NULL);
}

/* Over the call's T rows, s counting those with a target: scored_rows
 * copies row t of x to row s; all_rows row s back to row t, and zeroes the
 * rows without a target. */
static void emit_change_rows(lv_emit *m, const ex_kernel *k) {
    LLVMValueRef x = lv_call_in(m, 0), targets = lv_call_in(m, 1), y = lv_call_out(m), zero = lv_int(m, 0);
    lv_loop t;
    lv_loop_begin(m, &t, lv_int(m, 0), lv_call_T(m), 1, 1, &zero);
    LLVMValueRef has = LLVMBuildICmp(m->b, LLVMIntSGE, load_i32(m, targets, t.i), lv_int(m, 0), "");
    if (k->op == IR_ALL_ROWS) {
        norm_grad_ctx z = {.y = y, .base = lv_muli(m, t.i, k->n)};
        LLVMBasicBlockRef done = lv_if_begin(m, LLVMBuildNot(m->b, has, ""));
        lv_span(m, k->n, 1, 0, row_zero_piece, &z, NULL);
        lv_if_end(m, done);
    }
    LLVMBasicBlockRef done = lv_if_begin(m, has);
    LLVMValueRef row_t = lv_muli(m, t.i, k->n), row_s = lv_muli(m, t.v[0], k->n);
    if (k->op == IR_SCORED_ROWS) copy_row(m, x, row_t, y, row_s, k->n);
    else copy_row(m, x, row_s, y, row_t, k->n);
    lv_if_end(m, done);
    LLVMValueRef next = lv_add(m, t.v[0], LLVMBuildZExt(m->b, has, m->i64, ""));
    lv_loop_end(m, &t, &next);
}

void lv_emit_train_kernel(lv_emit *m, const ex_kernel *k) {
    switch ((int)k->op) {
    case IR_SCORED_ROWS:
    case IR_ALL_ROWS: emit_change_rows(m, k); break;
    case IR_CROSS_ENTROPY: emit_cross_entropy(m, k); break;
    case IR_CROSS_ENTROPY_DX: emit_cross_entropy_dx(m, k); break;
    default: emit_rms_norm_grad(m, k); break; /* rms_norm_dx, rms_norm_dw */
    }
}
