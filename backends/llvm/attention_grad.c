/* attention_grad.c — the training kernels of attention's gradients,
 * attention_dq, _dk and _dv (backends/reference/backward.c writes the
 * formulas out), for one sequence of T rows from position 0.
 *
 * As in FlashAttention-2's backward pass, no T×T matrix of probabilities is
 * kept: each kernel recomputes the scores it needs. A query row's
 * statistics come from one pass over its keys, which leaves the scores c_j
 * (scaled, softcapped) and dp_j = dy·v_j in scratch, and a second over
 * those: lse = max + log Σ e^(c_j − max) and D = Σ p_j dp_j. Then
 * p_j = e^(c_j − lse) and ds_j = p_j (dp_j − D) · cap'(c_j) · scale.
 *   attention_dq  per query row t and head: its statistics, ds_j in place
 *                 of c_j, then dq_t = Σ_j ds_j k_j
 *   attention_dk  the call's key rows [n0, n1) in tiles of TILE rows from
 *   attention_dv  0: lse (and for dk D) of every query row that sees a tile
 *                 into scratch; then per tile and head the weights of those
 *                 query rows t (ds_tj, or p_tj for dv; 0 where t does not see
 *                 j) and dk_j = Σ_t ds_tj q_t (dv_j = Σ_t p_tj dy_t), each q_t
 *                 (dy_t) read once for the tile; the heads of one kv head
 *                 summed into its block of the row. A key's gradient comes
 *                 from the same tile however the engine splits the rows, so
 *                 it has the same bits; a tile's rows outside the call's are
 *                 computed and stored to a sink
 * Dot products walk head_dim in vector pieces (lv_span), a few fixed rows
 * against a block of rows, so that the fixed rows' pieces are loaded once a
 * block and the block's sums do not wait on each other. A weighted sum of
 * rows keeps its result rows in registers (half of them, a part of the row
 * at a time) for a pass over the rows. Scratch (ex_call.scratch): c and dp,
 * T floats each (c then a tile's weights, TILE · T), from TILE · T on lse
 * and D, T · heads each, then the sink, head_dim: TILE · T + 2 · T · heads +
 * head_dim floats. */
#include "backends/exec/kernel.h"

#include "emit.h"

#include <math.h>
#include <stddef.h>

/* Key rows attention_dk and _dv take together. */
#define TILE 4

typedef struct {
    ir_op op;
    int64_t heads, group, hd, q_cols, kv_cols, window;
    double scale, cap;
    LLVMValueRef q, k, v, dy, out, T;
    LLVMValueRef c, dp, lse, D; /* scratch: per key (or query) row; per query row and head */
    LLVMValueRef sink;          /* scratch: head_dim floats, where rows outside the call's go */
} grad;

static LLVMValueRef load1(lv_emit *m, LLVMValueRef base, LLVMValueRef i) { return lv_load(m, base, i, GM_F32, 1); }

/* a if a `pred` b, else b: the larger or smaller of two i64s. */
static LLVMValueRef pick(lv_emit *m, LLVMIntPredicate pred, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(m->b, LLVMBuildICmp(m->b, pred, a, b, ""), a, b, "");
}

/* lo <= x < hi. */
static LLVMValueRef within(lv_emit *m, LLVMValueRef x, LLVMValueRef lo, LLVMValueRef hi) {
    LLVMValueRef above = LLVMBuildICmp(m->b, LLVMIntSGE, x, lo, ""), below = LLVMBuildICmp(m->b, LLVMIntSLT, x, hi, "");
    return LLVMBuildAnd(m->b, above, below, "");
}

/* &base[row · cols + col]. */
static LLVMValueRef row_ptr(lv_emit *m, LLVMValueRef base, LLVMValueRef row, int64_t cols, LLVMValueRef col) {
    LLVMValueRef i = lv_add(m, lv_muli(m, row, cols), col);
    return LLVMBuildInBoundsGEP2(m->b, m->f32, base, &i, 1, "");
}

static LLVMValueRef q_col(lv_emit *m, const grad *g, LLVMValueRef h) { return lv_muli(m, h, g->hd); }
static LLVMValueRef kv_col(lv_emit *m, const grad *g, LLVMValueRef h) {
    return lv_muli(m, LLVMBuildSDiv(m->b, h, lv_int(m, g->group), ""), g->hd);
}

/* The first key query row t sees, and the end of the query rows that see key j. */
static LLVMValueRef first_key(lv_emit *m, const grad *g, LLVMValueRef t) {
    return g->window ? pick(m, LLVMIntSGT, lv_addi(m, t, 1 - g->window), lv_int(m, 0)) : lv_int(m, 0);
}
static LLVMValueRef queries_end(lv_emit *m, const grad *g, LLVMValueRef j) {
    return g->window ? pick(m, LLVMIntSLT, lv_addi(m, j, g->window), g->T) : g->T;
}

/* ---- scores ---- */

static LLVMValueRef capped(lv_emit *m, const grad *g, LLVMValueRef s) {
    LLVMValueRef c = lv_fmul(m, s, lv_real(m, g->scale, 1));
    return g->cap > 0 ? lv_softcap(m, c, g->cap, 1) : c;
}

static LLVMValueRef prob(lv_emit *m, LLVMValueRef c, LLVMValueRef lse) { return lv_exp(m, lv_fsub(m, c, lse)); }

/* ds = p (dp − D) · cap'(c) · scale, cap'(c) = 1 − (c / cap)². */
static LLVMValueRef score_grad(lv_emit *m, const grad *g, LLVMValueRef p, LLVMValueRef c, LLVMValueRef dp,
                               LLVMValueRef D) {
    LLVMValueRef ds = lv_fmul(m, lv_fmul(m, p, lv_fsub(m, dp, D)), lv_real(m, g->scale, 1));
    return g->cap > 0 ? lv_fmul(m, ds, lv_softcap_slope(m, c, g->cap, 1)) : ds;
}

/* ---- dot products of a few fixed rows with a block of rows ---- */

typedef struct {
    LLVMValueRef x[TILE], y[TILE]; /* the fixed rows; y[0] NULL for one product a pair */
    LLVMValueRef a, b;             /* row i of a (with x) and of b (with y) at i · stride */
    LLVMValueRef i;                /* the block's first row */
    int64_t stride;
    int fixed, n;                  /* fixed rows, rows in the block */
} dots_ctx;

static void dots_piece(lv_emit *m, void *ctx, LLVMValueRef col, int w, LLVMValueRef *terms) {
    const dots_ctx *d = ctx;
    LLVMValueRef x[TILE], y[TILE];
    for (int r = 0; r < d->fixed; r++)
        x[r] = lv_load(m, d->x[r], col, GM_F32, w), y[r] = d->y[r] ? lv_load(m, d->y[r], col, GM_F32, w) : NULL;
    for (int b = 0; b < d->n; b++) {
        LLVMValueRef i = lv_add(m, lv_muli(m, lv_addi(m, d->i, b), d->stride), col);
        LLVMValueRef a = lv_load(m, d->a, i, GM_F32, w), bb = d->y[0] ? lv_load(m, d->b, i, GM_F32, w) : NULL;
        for (int r = 0; r < d->fixed; r++) {
            terms[r * d->n + b] = lv_fmul(m, x[r], a);
            if (bb) terms[(d->fixed + r) * d->n + b] = lv_fmul(m, y[r], bb);
        }
    }
}

/* each(r, i, x_r·a_i, y_r·b_i) for the fixed rows r and the rows i of
 * [lo, hi), the dot products taken a block of rows at a time: the fixed
 * rows' pieces loaded once a block, and its sums independent (as many as
 * half the registers). */
typedef void row_fn(lv_emit *m, const grad *g, const void *ctx, int r, LLVMValueRef i, LLVMValueRef xa,
                    LLVMValueRef yb);

/* The rows [i, i + n) of a block. */
static void dot_block(lv_emit *m, const grad *g, dots_ctx *d, LLVMValueRef i, int n, row_fn *each, const void *ctx) {
    LLVMValueRef sums[LV_MAX_CARRY];
    d->i = i, d->n = n;
    lv_span(m, g->hd, 1, d->fixed * n * (d->y[0] ? 2 : 1), dots_piece, d, sums);
    for (int r = 0; r < d->fixed; r++)
        for (int b = 0; b < n; b++)
            each(m, g, ctx, r, lv_addi(m, i, b), sums[r * n + b], d->y[0] ? sums[(d->fixed + r) * n + b] : NULL);
}

static void dot_rows(lv_emit *m, const grad *g, dots_ctx d, LLVMValueRef lo, LLVMValueRef hi, row_fn *each,
                     const void *ctx) {
    int block = m->target->regs / 2 / (d.fixed * (d.y[0] ? 2 : 1));
    if (block < 1) block = 1;
    lv_loop bulk, tail;
    lv_loop_begin(m, &bulk, lo, hi, block, 0, NULL);
    dot_block(m, g, &d, bulk.i, block, each, ctx);
    lv_loop_end(m, &bulk, NULL);
    lv_loop_begin(m, &tail, bulk.i, hi, 1, 0, NULL);
    dot_block(m, g, &d, tail.i, 1, each, ctx);
    lv_loop_end(m, &tail, NULL);
}

/* ---- softmax statistics of a query row ---- */

static void store_score(lv_emit *m, const grad *g, const void *ctx, int r, LLVMValueRef j, LLVMValueRef s,
                        LLVMValueRef dp) {
    (void)ctx, (void)r;
    lv_store(m, g->c, j, capped(m, g, s));
    if (dp) lv_store(m, g->dp, j, dp);
}

/* Query row t, head h over its keys j: c_j (and with D, dp_j) into scratch;
 * returns lse, and sets *D = Σ p_j dp_j. */
static LLVMValueRef row_stats(lv_emit *m, const grad *g, LLVMValueRef t, LLVMValueRef h, LLVMValueRef *D) {
    LLVMValueRef lo = first_key(m, g, t), hi = lv_addi(m, t, 1), zero = lv_int(m, 0);
    dots_ctx d = {.x = {row_ptr(m, g->q, t, g->q_cols, q_col(m, g, h))},
                  .y = {D ? row_ptr(m, g->dy, t, g->q_cols, q_col(m, g, h)) : NULL},
                  .a = row_ptr(m, g->k, zero, 0, kv_col(m, g, h)),
                  .b = row_ptr(m, g->v, zero, 0, kv_col(m, g, h)),
                  .stride = g->kv_cols,
                  .fixed = 1};
    dot_rows(m, g, d, lo, hi, store_score, NULL);
    LLVMValueRef top = lv_real(m, -INFINITY, 1), sums[2] = {lv_real(m, 0, 1), lv_real(m, 0, 1)};
    lv_loop j, e;
    lv_loop_begin(m, &j, lo, hi, 1, 1, &top);
    top = lv_intrinsic(m, "llvm.maxnum", &m->f32, 1, (LLVMValueRef[]){j.v[0], load1(m, g->c, j.i)}, 2);
    lv_loop_end(m, &j, &top);
    lv_loop_begin(m, &e, lo, hi, 1, D ? 2 : 1, sums);
    LLVMValueRef p = prob(m, load1(m, g->c, e.i), j.v[0]);
    sums[0] = lv_fadd(m, e.v[0], p);
    if (D) sums[1] = lv_fadd(m, e.v[1], lv_fmul(m, p, load1(m, g->dp, e.i)));
    lv_loop_end(m, &e, sums);
    if (D) *D = lv_fdiv(m, e.v[1], e.v[0]);
    return lv_fadd(m, j.v[0], lv_libm(m, "logf", e.v[0]));
}

/* ---- weighted sums of rows ---- */

/* Result row r: dst[r][0, hd) = Σ_{i ∈ [lo, hi)} w[r · T + i] · src[i · stride ..],
 * plus what it holds where keep is true. */
typedef struct {
    LLVMValueRef w, src, lo, hi, keep, dst[TILE];
    int64_t stride;
    int rows;
} rows_sum;

/* Columns [from, to) of the result rows, one vector of sums a piece, in one pass over the rows. */
static void weighted_part(lv_emit *m, const grad *g, const rows_sum *r, int64_t from, int64_t to) {
    int64_t col[LV_MAX_CARRY];
    int width[LV_MAX_CARRY], n = 0;
    LLVMValueRef acc[LV_MAX_CARRY] = {0}, wi[TILE];
    for (int64_t at = from, w = m->target->width; at < to; at += w, n++) {
        while (at + w > to) w /= 2;
        col[n] = at, width[n] = (int)w;
    }
    for (int k = 0; k < r->rows; k++)
        for (int p = 0; p < n; p++) {
            LLVMValueRef zero = lv_real(m, 0, width[p]), old;
            old = r->keep ? lv_load(m, r->dst[k], lv_int(m, col[p]), GM_F32, width[p]) : NULL;
            acc[k * n + p] = old ? LLVMBuildSelect(m->b, r->keep, old, zero, "") : zero;
        }
    lv_loop l;
    lv_loop_begin(m, &l, r->lo, r->hi, 1, r->rows * n, acc);
    LLVMValueRef row = lv_muli(m, l.i, r->stride);
    for (int k = 0; k < r->rows; k++) wi[k] = load1(m, r->w, lv_add(m, lv_mul(m, lv_int(m, k), g->T), l.i));
    for (int p = 0; p < n; p++) {
        LLVMValueRef x = lv_load(m, r->src, lv_addi(m, row, col[p]), GM_F32, width[p]);
        for (int k = 0; k < r->rows; k++)
            acc[k * n + p] = lv_fadd(m, l.v[k * n + p], lv_fmul(m, lv_splat(m, wi[k], width[p]), x));
    }
    lv_loop_end(m, &l, acc);
    for (int k = 0; k < r->rows; k++)
        for (int p = 0; p < n; p++) lv_store(m, r->dst[k], lv_int(m, col[p]), l.v[k * n + p]);
}

/* The sums in parts of as many vectors as half the registers (a few more
 * for the last part's narrow pieces), so that they stay in registers. */
static void weighted_sum(lv_emit *m, const grad *g, const rows_sum *r) {
    int regs = m->target->regs < LV_MAX_CARRY ? m->target->regs : LV_MAX_CARRY;
    int64_t part = (regs / 2 / r->rows) * m->target->width;
    for (int64_t from = 0; from < g->hd; from += part)
        weighted_part(m, g, r, from, from + part < g->hd ? from + part : g->hd);
}

/* ---- the kernels ---- */

/* Query rows [n0, n1): dq_t = Σ_j ds_tj k_j, per head. */
static void emit_dq(lv_emit *m, const grad *g, LLVMValueRef n0, LLVMValueRef n1) {
    lv_loop t, h, j;
    lv_loop_begin(m, &t, n0, n1, 1, 0, NULL);
    lv_loop_begin(m, &h, lv_int(m, 0), lv_int(m, g->heads), 1, 0, NULL);
    LLVMValueRef D, lse = row_stats(m, g, t.i, h.i, &D), lo = first_key(m, g, t.i), hi = lv_addi(m, t.i, 1);
    lv_loop_begin(m, &j, lo, hi, 1, 0, NULL);
    LLVMValueRef c = load1(m, g->c, j.i);
    lv_store(m, g->c, j.i, score_grad(m, g, prob(m, c, lse), c, load1(m, g->dp, j.i), D));
    lv_loop_end(m, &j, NULL);
    rows_sum r = {.w = g->c,
                  .src = row_ptr(m, g->k, lv_int(m, 0), 0, kv_col(m, g, h.i)),
                  .lo = lo,
                  .hi = hi,
                  .dst = {row_ptr(m, g->out, t.i, g->q_cols, q_col(m, g, h.i))},
                  .stride = g->kv_cols,
                  .rows = 1};
    weighted_sum(m, g, &r);
    lv_loop_end(m, &h, NULL);
    lv_loop_end(m, &t, NULL);
}

/* lse (and for dk D) of the query rows that see keys [j0, j1), rows
 * [j0, j1 + W − 1) (to T), every head, at [t · heads + h]. */
static void stats_of_queries(lv_emit *m, const grad *g, LLVMValueRef j0, LLVMValueRef j1) {
    lv_loop t, h;
    lv_loop_begin(m, &t, j0, queries_end(m, g, lv_addi(m, j1, -1)), 1, 0, NULL);
    lv_loop_begin(m, &h, lv_int(m, 0), lv_int(m, g->heads), 1, 0, NULL);
    LLVMValueRef D, lse = row_stats(m, g, t.i, h.i, g->op == IR_ATTENTION_DK ? &D : NULL);
    LLVMValueRef i = lv_add(m, lv_muli(m, t.i, g->heads), h.i);
    lv_store(m, g->lse, i, lse);
    if (g->op == IR_ATTENTION_DK) lv_store(m, g->D, i, D);
    lv_loop_end(m, &h, NULL);
    lv_loop_end(m, &t, NULL);
}

typedef struct {
    LLVMValueRef j0, h; /* a tile's first key row, and the head */
} key_tile;

/* The weight of query row t for key j0 + r, head h: ds_tj (for dv p_tj),
 * 0 where t does not see the key (a tile's rows are those of all its keys). */
static void store_weight(lv_emit *m, const grad *g, const void *ctx, int r, LLVMValueRef t, LLVMValueRef s,
                         LLVMValueRef dp) {
    const key_tile *k = ctx;
    LLVMValueRef j = lv_addi(m, k->j0, r), i = lv_add(m, lv_muli(m, t, g->heads), k->h);
    LLVMValueRef c = capped(m, g, s), p = prob(m, c, load1(m, g->lse, i));
    LLVMValueRef w = dp ? score_grad(m, g, p, c, dp, load1(m, g->D, i)) : p;
    w = LLVMBuildSelect(m->b, within(m, t, j, queries_end(m, g, j)), w, lv_real(m, 0, 1), "");
    lv_store(m, g->c, lv_add(m, lv_mul(m, lv_int(m, r), g->T), t), w);
}

/* Key rows [j0, j0 + TILE), head h: dk_j = Σ_t ds_tj q_t, or dv_j = Σ_t
 * p_tj dy_t, over the query rows that see any of them, each read once for
 * all. Keys past T read row T − 1 (their weights are 0); those outside
 * [n0, n1) are stored to the sink. The first head of a kv head stores, the
 * others add. */
static void emit_key_tile(lv_emit *m, const grad *g, LLVMValueRef j0, LLVMValueRef h, LLVMValueRef n0,
                          LLVMValueRef n1) {
    int dk = g->op == IR_ATTENTION_DK;
    LLVMValueRef qc = q_col(m, g, h), kvc = kv_col(m, g, h), zero = lv_int(m, 0), last = lv_addi(m, g->T, -1);
    LLVMValueRef end = queries_end(m, g, lv_addi(m, j0, TILE - 1));
    dots_ctx d = {.a = row_ptr(m, g->q, zero, 0, qc),
                  .b = row_ptr(m, g->dy, zero, 0, qc),
                  .stride = g->q_cols,
                  .fixed = TILE};
    rows_sum r = {.w = g->c,
                  .src = row_ptr(m, dk ? g->q : g->dy, zero, 0, qc),
                  .lo = j0,
                  .hi = end,
                  .keep = LLVMBuildICmp(m->b, LLVMIntNE, LLVMBuildSRem(m->b, h, lv_int(m, g->group), ""), zero, ""),
                  .stride = g->q_cols,
                  .rows = TILE};
    for (int k = 0; k < TILE; k++) {
        LLVMValueRef j = lv_addi(m, j0, k), row = pick(m, LLVMIntSLT, j, last);
        d.x[k] = row_ptr(m, g->k, row, g->kv_cols, kvc);
        d.y[k] = dk ? row_ptr(m, g->v, row, g->kv_cols, kvc) : NULL;
        r.dst[k] = LLVMBuildSelect(m->b, within(m, j, n0, n1), row_ptr(m, g->out, row, g->kv_cols, kvc), g->sink, "");
    }
    dot_rows(m, g, d, j0, end, store_weight, &(key_tile){j0, h});
    weighted_sum(m, g, &r);
}

/* Key rows [n0, n1), in the tiles of TILE rows from 0 that hold them. */
static void emit_dk_dv(lv_emit *m, const grad *g, LLVMValueRef n0, LLVMValueRef n1) {
    LLVMValueRef from = LLVMBuildAnd(m->b, n0, lv_int(m, -TILE), "");
    LLVMValueRef to = LLVMBuildAnd(m->b, lv_addi(m, n1, TILE - 1), lv_int(m, -TILE), "");
    stats_of_queries(m, g, from, to);
    lv_loop j, h;
    lv_loop_begin(m, &j, from, to, TILE, 0, NULL);
    lv_loop_begin(m, &h, lv_int(m, 0), lv_int(m, g->heads), 1, 0, NULL);
    emit_key_tile(m, g, j.i, h.i, n0, n1);
    lv_loop_end(m, &h, NULL);
    lv_loop_end(m, &j, NULL);
}

void lv_emit_attention_grad(lv_emit *m, const ex_kernel *k) {
    int64_t heads = (int64_t)k->attr[IR_A_HEADS], hd = (int64_t)k->attr[IR_A_HEAD_DIM];
    int64_t kv = (int64_t)k->attr[IR_A_KV_HEADS];
    grad g = {.op = k->op, .heads = heads, .group = heads / kv, .hd = hd, .q_cols = heads * hd, .kv_cols = kv * hd,
              .window = (int64_t)k->attr[IR_A_WINDOW], .scale = k->attr[IR_A_SCALE], .cap = k->attr[IR_A_SOFTCAP],
              .q = lv_call_in(m, 0), .k = lv_call_in(m, 1), .v = lv_call_in(m, 2), .dy = lv_call_in(m, 3),
              .out = lv_call_out(m), .T = lv_call_T(m),
              .c = lv_field_ptr(m, offsetof(ex_call, scratch))};
    LLVMValueRef zero = lv_int(m, 0);
    g.dp = row_ptr(m, g.c, g.T, 1, zero);
    g.lse = row_ptr(m, g.c, g.T, TILE, zero);
    g.D = row_ptr(m, g.lse, g.T, heads, zero);
    g.sink = row_ptr(m, g.D, g.T, heads, zero);
    LLVMValueRef n0 = lv_field_i64(m, offsetof(ex_call, n0)), n1 = lv_field_i64(m, offsetof(ex_call, n1));
    if (k->op == IR_ATTENTION_DQ) emit_dq(m, &g, n0, n1);
    else emit_dk_dv(m, &g, n0, n1);
}
