/* matmul.c — the kernels of the matmul family: matmul, norm_matmul (an
 * rms_norm prologue) and matmul_add (a residual epilogue), each with an
 * optional softcap epilogue, for both weight layouts.
 *
 * Prologue: norm_matmul normalises the call's rows of x into the thread's
 * scratch first (T·K floats, in cache), then multiplies those; the [T, K]
 * activation of the unfused rms_norm never goes to memory and the kernel
 * launch (and its barrier) disappears. Epilogues act on each finished output
 * before it is stored: + r, then cap·tanh(y/cap).
 *
 * Row-major weights [N][K] (-O0, and whatever pack_weights leaves alone):
 * prefill tiles of 4 rows of x × 4 weight rows, 16 accumulators, each weight
 * vector converted once and used 4 times; decode takes one weight row at a
 * time with 4 accumulators, so the weights stream from memory in order.
 *
 * Panel weights [N/P][K][P] (pack_weights): a panel is P output columns
 * interleaved by k, so one pass over it reads P columns' weights
 * contiguously. Register tiles of MR rows × P columns (MR·P/W vector
 * accumulators, each loaded weight vector used MR times, each x value
 * broadcast to P/W FMAs) do the work. With rows enough for a tile
 * (prefill) the loop nest is the classic one for caches: blocks of KC
 * values of k outermost, each block's rows of x packed for the tiles
 * (T·KC floats, L2-resident) while the call's panels pass by; for each
 * panel the block's weights (KC·P floats, converted to f32 once when stored
 * as bf16 or f16) stay in L1 while the tiles walk down the rows, then the
 * leftover rows go one at a time; meanwhile the next panel's block is
 * prefetched into L2. Partial sums go through y between blocks; the
 * epilogue runs after the last. With fewer rows (decode) each panel is one
 * pass over all of k, its weights streamed from memory once, in order, in
 * their own dtype and converted in registers (16-bit ones prefetched a few
 * KB ahead); a lone row carries two accumulator chains per vector so the
 * FMAs do not wait on each other.
 *
 * Block-quantized weights (GGUF's formats, row-major blocks as stored;
 * quant.c decodes them): prefill decodes each panel's block of k into the
 * same f32 scratch the bf16 panels convert into, then the same tiles run;
 * decode streams each weight row once, decoding 32 elements at a time in
 * registers. Under --activations int8 (x_int8) x's rows are rounded to 8
 * bits per block of 32 first; decode then takes integer dot products
 * (int8.c), and prefill on AVX-512 VNNI register tiles of int8 panels
 * (int8.c), elsewhere the rounded rows through the f32 tiles. */
#include "backends/exec/kernel.h"

#include "emit.h"
#include "quant.h"

#include <stddef.h>

#define TILE 4   /* row-major: rows of x and of w per tile */
#define UNROLL 4 /* row-major: accumulators of a lone dot product */
/* Decode prefetches 16-bit weights this many bytes ahead of each panel's
 * stream: on a Zen 1 host, in four alternated pairs of runs, bf16 decode
 * read 67–81 % of the bandwidth with it and 60–68 % without, while f32
 * lost 5–10 % with it and is left to the hardware prefetcher. */
#define DECODE_PREFETCH 4096

typedef struct {
    const ex_kernel *k;
    LLVMValueRef x, w, y, r, T;   /* x: the rows multiplied (the scratch after a prologue); r: residual or NULL */
    LLVMValueRef xp;              /* panel tiles: x's rows in tiles of MR interleaved by k, [T/MR][K][MR] */
    LLVMValueRef scratch;         /* past the prologue's and the tiles' rows: the converted weight block */
    int64_t K, N;
    gm_dtype dt;
    /* row-major tiles */
    int rt, rn;
    LLVMValueRef x_at[TILE], w_at[TILE];
} mm_ctx;

/* ---- epilogues ---- */


/* The finished output v (width w) of y[at..): · out_scale, + r[at..], then the softcap. */
static LLVMValueRef finish(lv_emit *m, const mm_ctx *c, LLVMValueRef v, LLVMValueRef at, int w, LLVMValueRef mask) {
    if (c->k->attr[IR_A_OUT_SCALE] != 1) v = lv_fmul(m, v, lv_real(m, c->k->attr[IR_A_OUT_SCALE], w));
    if (c->r) v = lv_fadd(m, v, mask ? lv_load_masked(m, c->r, at, mask, w) : lv_load(m, c->r, at, GM_F32, w));
    double cap = c->k->attr[IR_A_SOFTCAP];
    return cap > 0 ? lv_softcap(m, v, cap, w) : v;
}

/* ---- prologue: x ← rms_norm(x, nw) into the scratch ---- */

/* The scratch past n floats of it, 64-byte aligned. */
static LLVMValueRef past(lv_emit *m, LLVMValueRef scratch, LLVMValueRef n) {
    LLVMValueRef at = LLVMBuildAnd(m->b, lv_addi(m, n, 15), lv_int(m, -16), "");
    return LLVMBuildInBoundsGEP2(m->b, m->f32, scratch, &at, 1, "");
}

static void emit_prologue(lv_emit *m, mm_ctx *mc) {
    int64_t K = mc->K;
    const ex_kernel *k = mc->k;
    lv_norm_rows n = {mc->x, lv_field_ptr(m, offsetof(ex_call, in) + 2 * sizeof(void *)), NULL, mc->scratch,
                      k->ntype, K, k->attr[IR_A_EPS], k->attr[IR_A_ADD_ONE]};
    lv_emit_norm_rows(m, &n, mc->T);
    mc->x = mc->scratch;
    mc->scratch = past(m, mc->scratch, lv_muli(m, mc->T, K));
}

/* ---- row-major weights ---- */

static void tile_piece(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms) {
    mm_ctx *c = ctx;
    LLVMValueRef wv[TILE], xv[TILE];
    for (int j = 0; j < c->rn; j++) wv[j] = lv_load(m, c->w, lv_add(m, c->w_at[j], at), c->dt, w);
    for (int i = 0; i < c->rt; i++) xv[i] = lv_load(m, c->x, lv_add(m, c->x_at[i], at), GM_F32, w);
    for (int i = 0; i < c->rt; i++)
        for (int j = 0; j < c->rn; j++) terms[i * c->rn + j] = lv_fmul(m, xv[i], wv[j]);
}

/* y for rows t0.. t0+rt-1 and columns n0.. n0+rn-1. */
static void emit_tile(lv_emit *m, mm_ctx *c, LLVMValueRef t0, LLVMValueRef n0, int rt, int rn) {
    LLVMValueRef sums[TILE * TILE];
    c->rt = rt, c->rn = rn;
    for (int i = 0; i < rt; i++) c->x_at[i] = lv_muli(m, lv_addi(m, t0, i), c->K);
    for (int j = 0; j < rn; j++) c->w_at[j] = lv_muli(m, lv_addi(m, n0, j), c->K);
    lv_span(m, c->K, rt * rn == 1 ? UNROLL : 1, rt * rn, tile_piece, c, sums);
    for (int i = 0; i < rt; i++)
        for (int j = 0; j < rn; j++) {
            LLVMValueRef at = lv_add(m, lv_muli(m, lv_addi(m, t0, i), c->N), lv_addi(m, n0, j));
            lv_store(m, c->y, at, finish(m, c, sums[i * rn + j], at, 1, NULL));
        }
}

/* Every row of x against weight rows n0.. n0+rn-1. */
static void emit_tile_column(lv_emit *m, mm_ctx *c, LLVMValueRef n0, int rn) {
    lv_loop t4, t1;
    lv_loop_begin(m, &t4, lv_int(m, 0), c->T, TILE, 0, NULL);
    emit_tile(m, c, t4.i, n0, TILE, rn);
    lv_loop_end(m, &t4, NULL);
    lv_loop_begin(m, &t1, t4.i, c->T, 1, 0, NULL);
    emit_tile(m, c, t1.i, n0, 1, rn);
    lv_loop_end(m, &t1, NULL);
}

/* With fewer than TILE rows of x (decode), weight rows go one at a time:
 * read as one sequential stream, they come at the full memory bandwidth,
 * where 4 interleaved rows got half of it. */
static void emit_row_major(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    LLVMValueRef tiled = LLVMBuildICmp(m->b, LLVMIntSGE, c->T, lv_int(m, TILE), "");
    lv_loop n4, n_1;
    lv_loop_begin(m, &n4, n0, LLVMBuildSelect(m->b, tiled, n1, n0, ""), TILE, 0, NULL);
    emit_tile_column(m, c, n4.i, TILE);
    lv_loop_end(m, &n4, NULL);
    lv_loop_begin(m, &n_1, n4.i, n1, 1, 0, NULL);
    emit_tile_column(m, c, n_1.i, 1);
    lv_loop_end(m, &n_1, NULL);
}

/* ---- panel weights ---- */

typedef struct {
    mm_ctx *c;
    LLVMValueRef panel;       /* index of the panel */
    LLVMValueRef b;           /* the block's weights, [len][P] of dtype bdt */
    gm_dtype bdt;
    LLVMValueRef k0, len;     /* the block: k in [k0, k0 + len) */
    LLVMValueRef first, last; /* i1: the block is the first / the last of k */
    LLVMValueRef next;        /* tiles: the block they read next as stored (the f32 tiles' next panel's, the bf16
                                 tiles' next block of k), prefetched into L2; or NULL */
    int W;                    /* lanes of the accumulators: the target's f32 vector, 16 for the int8 tiles */
    LLVMValueRef home;        /* tiles: the panel's sums between blocks of k, [T][P] f32; NULL: in y */
} block_ctx;

static int vectors_per_row(lv_emit *m) { return EX_PANEL / m->target->width; }

/* The block of k from kb (EX_KC values, fewer at the end of k), its panel still to set. */
static block_ctx block_at(lv_emit *m, mm_ctx *c, LLVMValueRef kb, int W) {
    LLVMValueRef left = lv_sub(m, lv_int(m, c->K), kb);
    LLVMValueRef len = LLVMBuildSelect(m->b, LLVMBuildICmp(m->b, LLVMIntSLT, left, lv_int(m, EX_KC), ""), left,
                                       lv_int(m, EX_KC), "");
    return (block_ctx){c, NULL, NULL, c->dt, kb, len, LLVMBuildICmp(m->b, LLVMIntEQ, kb, lv_int(m, 0), ""),
                       LLVMBuildICmp(m->b, LLVMIntSLE, left, lv_int(m, EX_KC), ""), NULL, W, NULL};
}

/* Rows of x per register tile: the accumulators of MR rows fill the vector
 * registers but for a few (the target's: 32 with AVX-512 and NEON, 16 for
 * AVX2), those that hold the operands of one step (emit_register_tile):
 * AVX-512 12 rows × 2 vectors, AVX2 3 rows × 4 vectors, NEON 3 rows × 8. */
static int tile_rows(lv_emit *m) {
    int mr = (m->target->regs - 4) / vectors_per_row(m);
    return mr > 12 ? 12 : mr < 1 ? 1 : mr;
}

/* Lanes of y's row that exist in the last, zero-padded panel; NULL when N is a multiple of P. */
static LLVMValueRef column_mask(lv_emit *m, const block_ctx *bc, int h) {
    int W = bc->W;
    if (bc->c->N % EX_PANEL == 0) return NULL;
    LLVMValueRef lanes[16];
    for (int j = 0; j < W; j++) lanes[j] = LLVMConstInt(m->i64, (unsigned long long)j, 0);
    LLVMValueRef col = lv_add(m, lv_splat(m, lv_addi(m, lv_muli(m, bc->panel, EX_PANEL), h * W), W),
                              LLVMConstVector(lanes, (unsigned)W));
    return LLVMBuildICmp(m->b, LLVMIntSLT, col, lv_splat(m, lv_int(m, bc->c->N), W), "");
}

/* Where row t's outputs for vector h of the panel start in y. */
static LLVMValueRef out_at(lv_emit *m, const block_ctx *bc, LLVMValueRef t, int h) {
    return lv_add(m, lv_muli(m, t, bc->c->N), lv_addi(m, lv_muli(m, bc->panel, EX_PANEL), h * bc->W));
}

static void store_outputs(lv_emit *m, const block_ctx *bc, LLVMValueRef t0, int R, const LLVMValueRef *acc,
                          LLVMValueRef *mask, int finished) {
    int H = EX_PANEL / bc->W;
    for (int i = 0; i < R; i++)
        for (int h = 0; h < H; h++) {
            LLVMValueRef at = out_at(m, bc, lv_addi(m, t0, i), h);
            LLVMValueRef v = finished ? finish(m, bc->c, acc[i * H + h], at, bc->W, mask[h]) : acc[i * H + h];
            if (mask[h]) lv_store_masked(m, bc->c->y, at, v, mask[h]);
            else lv_store(m, bc->c->y, at, v);
        }
}

/* Where row t's sums of vector h wait between blocks of k in the panel's home. */
static LLVMValueRef home_at(lv_emit *m, const block_ctx *bc, LLVMValueRef t, int h) {
    return lv_addi(m, lv_muli(m, t, EX_PANEL), h * bc->W);
}

static void store_home(lv_emit *m, const block_ctx *bc, LLVMValueRef t0, int R, const LLVMValueRef *acc) {
    int H = EX_PANEL / bc->W;
    for (int i = 0; i < R; i++)
        for (int h = 0; h < H; h++) lv_store(m, bc->home, home_at(m, bc, lv_addi(m, t0, i), h), acc[i * H + h]);
}

/* Row t's vector h of sums as a tile starts a block: 0 for the first block
 * of k, else from the panel's home or from y. */
static LLVMValueRef tile_sums(lv_emit *m, const block_ctx *bc, LLVMValueRef t, int h, LLVMValueRef mask) {
    LLVMValueRef y, at = bc->home ? home_at(m, bc, t, h) : out_at(m, bc, t, h);
    if (bc->home) y = lv_load(m, bc->home, at, GM_F32, bc->W);
    else y = mask ? lv_load_masked(m, bc->c->y, at, mask, bc->W) : lv_load(m, bc->c->y, at, GM_F32, bc->W);
    return LLVMBuildSelect(m->b, bc->first, lv_real(m, 0, bc->W), y, "");
}

/* Stores the tile's sums, through the epilogue after the last block of k;
 * before it, in the panel's home where the tiles have one. */
static void store_tile(lv_emit *m, const block_ctx *bc, LLVMValueRef t0, int R, const LLVMValueRef *acc,
                       LLVMValueRef *mask) {
    if (!bc->home && !bc->c->r && !(bc->c->k->attr[IR_A_SOFTCAP] > 0) && bc->c->k->attr[IR_A_OUT_SCALE] == 1) {
        store_outputs(m, bc, t0, R, acc, mask, 0);
        return;
    }
    LLVMBasicBlockRef done = lv_if_begin(m, bc->last);
    store_outputs(m, bc, t0, R, acc, mask, 1);
    done = lv_else(m, done);
    if (bc->home) store_home(m, bc, t0, R, acc);
    else store_outputs(m, bc, t0, R, acc, mask, 0);
    lv_if_end(m, done);
}

/* Vector h of the block's weights at k = kk. */
static LLVMValueRef tile_weights(lv_emit *m, const block_ctx *bc, LLVMValueRef kk, int h) {
    int W = m->target->width;
    return lv_load(m, bc->b, lv_addi(m, lv_muli(m, kk, EX_PANEL), h * W), bc->bdt, W);
}

/* A row's x at k = kk, in every lane: from the packed rows of a tile of R, else x itself. */
static LLVMValueRef tile_x(lv_emit *m, LLVMValueRef xs, LLVMValueRef x_at, LLVMValueRef kk, int R) {
    LLVMValueRef at = lv_add(m, x_at, R > 1 ? lv_muli(m, kk, R) : kk);
    return lv_splat(m, lv_load(m, xs, at, GM_F32, 1), m->target->width);
}

/* A step's prefetches, a cache line at a time: a tile's, the next panel's
 * block at this k (stored dtype) into L2 for when this panel is done; a
 * lone row's streaming 16-bit weights (decode), its own panel
 * DECODE_PREFETCH bytes ahead; nothing otherwise. */
static void prefetch_ahead(lv_emit *m, const block_ctx *bc, LLVMValueRef kk, int R) {
    LLVMValueRef base = NULL;
    gm_dtype dt = bc->c->dt;
    if (R > 1 && bc->next) {
        base = bc->next;
    } else if (R == 1 && !bc->next && gm_dtype_size(bc->bdt) < 4) {
        base = bc->b, dt = bc->bdt;
        kk = lv_addi(m, kk, DECODE_PREFETCH / (EX_PANEL * (int)gm_dtype_size(dt)));
    }
    for (int at = 0; base && at < EX_PANEL; at += 64 / (int)gm_dtype_size(dt))
        lv_prefetch_l2(m, base, lv_addi(m, lv_muli(m, kk, EX_PANEL), at), dt);
}

/* Rows t0.. t0+R-1 of the block: acc[i][h] (+)= Σ_k x[t0+i][k] · b[k][h·W..]. */
static void emit_register_tile(lv_emit *m, const block_ctx *bc, LLVMValueRef t0, int R) {
    mm_ctx *c = bc->c;
    int W = m->target->width, H = vectors_per_row(m), chains = R == 1 ? 2 : 1, n = R * H;
    LLVMValueRef init[LV_MAX_CARRY], next[LV_MAX_CARRY], x_at[16], mask[EX_PANEL / 4];
    LLVMValueRef xs = R > 1 ? c->xp : c->x; /* a tile reads its packed rows, a lone row x itself */
    for (int h = 0; h < H; h++) mask[h] = column_mask(m, bc, h);
    for (int i = 0; i < R; i++) {
        x_at[i] = R > 1 ? lv_addi(m, lv_mul(m, t0, bc->len), i) /* t0 is a multiple of R */
                        : lv_add(m, lv_muli(m, lv_addi(m, t0, i), c->K), bc->k0);
        for (int h = 0; h < H; h++) init[i * H + h] = tile_sums(m, bc, lv_addi(m, t0, i), h, mask[h]);
    }
    for (int s = n; s < n * chains; s++) init[s] = lv_real(m, 0, W);
    lv_loop loops[2], *l = NULL;
    for (int pass = 0; pass < chains; pass++) { /* the loop by `chains`, then a tail of one */
        int step = pass ? 1 : chains;
        l = &loops[pass];
        lv_loop_begin(m, l, pass ? loops[0].i : lv_int(m, 0), bc->len, step, n * chains, pass ? loops[0].v : init);
        for (int u = 0; u < step; u++) {
            LLVMValueRef kk = lv_addi(m, l->i, u), b[EX_PANEL / 4], a[16];
            prefetch_ahead(m, bc, kk, R);
            /* Hold the fewer of the two operands in registers for the whole step
             * and load each of the others just before its FMAs: the R·H sums,
             * min(R, H) held values and one more fit the register file. */
            int hold_x = R <= H, outer = hold_x ? H : R, inner = hold_x ? R : H;
            for (int q = 0; q < inner; q++)
                if (hold_x) a[q] = tile_x(m, xs, x_at[q], kk, R);
                else b[q] = tile_weights(m, bc, kk, q);
            for (int o = 0; o < outer; o++) {
                if (hold_x) b[o] = tile_weights(m, bc, kk, o);
                else a[o] = tile_x(m, xs, x_at[o], kk, R);
                for (int q = 0; q < inner; q++) {
                    int i = hold_x ? q : o, h = hold_x ? o : q, s = u * n + i * H + h;
                    next[s] = lv_fadd(m, l->v[s], lv_fmul(m, a[i], b[h]));
                }
            }
        }
        for (int s = step * n; s < n * chains; s++) next[s] = l->v[s];
        lv_loop_end(m, l, next);
    }
    LLVMValueRef acc[LV_MAX_CARRY];
    for (int s = 0; s < n; s++) {
        acc[s] = l->v[s];
        for (int u = 1; u < chains; u++) acc[s] = lv_fadd(m, acc[s], l->v[u * n + s]);
    }
    store_tile(m, bc, t0, R, acc, mask);
}

/* Single rows t in [t0, t1) of the block. */
static void emit_rows(lv_emit *m, const block_ctx *bc, LLVMValueRef t0, LLVMValueRef t1) {
    lv_loop t;
    lv_loop_begin(m, &t, t0, t1, 1, 0, NULL);
    emit_register_tile(m, bc, t.i, 1);
    lv_loop_end(m, &t, NULL);
}

/* Fewer rows than a tile (decode): each panel in one block of all of k, its
 * weights read once, in order, converted in registers. */
static void emit_lone_rows(lv_emit *m, mm_ctx *c, LLVMValueRef p0, LLVMValueRef p1) {
    LLVMValueRef yes = LLVMConstInt(LLVMInt1TypeInContext(m->ctx), 1, 0);
    lv_loop p;
    lv_loop_begin(m, &p, p0, p1, 1, 0, NULL);
    LLVMValueRef at = lv_muli(m, p.i, c->K * EX_PANEL);
    block_ctx bc = {c, p.i, LLVMBuildInBoundsGEP2(m->b, lv_elem_type(m, c->dt), c->w, &at, 1, ""), c->dt,
                    lv_int(m, 0), lv_int(m, c->K), yes, yes, NULL, m->target->width, NULL};
    emit_rows(m, &bc, lv_int(m, 0), c->T);
    lv_loop_end(m, &p, NULL);
}

/* ---- block-quantized weights, row-major blocks as stored (quant.c) ---- */

/* Rows of x a quantized weight row is decoded once for (emit_quant_rows):
 * their accumulators of LV_QSUB floats and the block in the registers. */
static int quant_row_group(lv_emit *m) {
    int g = (m->target->regs - 8) / (LV_QSUB / m->target->width);
    return g > 8 ? 8 : g < 1 ? 1 : g;
}

/* Rows t0 .. t0+G-1 of x against weight rows n0 .. n1-1: each weight row's
 * blocks streamed once, in order, decoded in registers 32 elements at a
 * time, and multiplied into all G rows. */
static void emit_quant_row_group(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1, LLVMValueRef t0, int G) {
    int B = gm_dtype_block(c->dt);
    LLVMValueRef zeros[8], acc[8];
    for (int g = 0; g < G; g++) zeros[g] = lv_real(m, 0, LV_QSUB);
    lv_loop n, kb;
    lv_loop_begin(m, &n, n0, n1, 1, 0, NULL);
    lv_loop_begin(m, &kb, lv_int(m, 0), lv_int(m, c->K), B, G, zeros);
    LLVMValueRef blk = lv_quant_block(m, c->dt, c->w, n.i, c->K, kb.i);
    for (int g = 0; g < G; g++) acc[g] = kb.v[g];
    for (int s = 0; s < B / LV_QSUB; s++) {
        LLVMValueRef w = lv_quant_decode(m, c->dt, blk, s);
        for (int g = 0; g < G; g++) {
            LLVMValueRef row = lv_muli(m, lv_addi(m, t0, g), c->K);
            LLVMValueRef x = lv_load(m, c->x, lv_add(m, row, lv_addi(m, kb.i, s * LV_QSUB)), GM_F32, LV_QSUB);
            acc[g] = lv_fadd(m, acc[g], lv_fmul(m, w, x));
        }
    }
    lv_loop_end(m, &kb, acc);
    for (int g = 0; g < G; g++) {
        LLVMValueRef at = lv_add(m, lv_muli(m, lv_addi(m, t0, g), c->N), n.i);
        lv_store(m, c->y, at, finish(m, c, lv_hsum(m, kb.v[g]), at, 1, NULL));
    }
    lv_loop_end(m, &n, NULL);
}

/* Fewer rows than a tile (decode, and batched decode's few rows): the rows
 * of x in groups that each stream and decode the weight rows n0 .. n1-1
 * once, then the rows left one at a time. */
static void emit_quant_rows(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    int G = quant_row_group(m);
    LLVMValueRef grouped = lv_sub(m, c->T, LLVMBuildSRem(m->b, c->T, lv_int(m, G), ""));
    lv_loop t;
    if (G > 1) {
        lv_loop_begin(m, &t, lv_int(m, 0), grouped, G, 0, NULL);
        emit_quant_row_group(m, c, n0, n1, t.i, G);
        lv_loop_end(m, &t, NULL);
    }
    lv_loop_begin(m, &t, G > 1 ? grouped : lv_int(m, 0), c->T, 1, 0, NULL);
    emit_quant_row_group(m, c, n0, n1, t.i, 1);
    lv_loop_end(m, &t, NULL);
}

/* W vectors of W floats transposed in place: log2 W butterfly stages, each
 * swapping one bit of the vector index with the same bit of the lane (one
 * two-source permute per vector and stage: vpermt2ps on AVX-512). */
static void transpose_square(lv_emit *m, LLVMValueRef *v, int W) {
    for (int bit = 1; bit < W; bit <<= 1)
        for (int r = 0; r < W; r++) {
            if (r & bit) continue;
            LLVMValueRef lo[16], hi[16];
            for (int c = 0; c < W; c++) {
                lo[c] = LLVMConstInt(m->i32, (unsigned long long)(c & bit ? W + (c & ~bit) : c), 0);
                hi[c] = LLVMConstInt(m->i32, (unsigned long long)(c & bit ? W + c : c | bit), 0);
            }
            LLVMValueRef a = v[r], b = v[r | bit];
            v[r] = LLVMBuildShuffleVector(m->b, a, b, LLVMConstVector(lo, (unsigned)W), "");
            v[r | bit] = LLVMBuildShuffleVector(m->b, a, b, LLVMConstVector(hi, (unsigned)W), "");
        }
}

/* scratch ← the block's weights decoded to f32 in the panel layout,
 * [len][P]: column j from weight row p·P + j (past N, the last row again:
 * those outputs are masked at the store). W rows' sub-blocks are decoded
 * together and transposed in registers, so each k's W columns go out as
 * one vector store. */
static void emit_quant_conversion(lv_emit *m, block_ctx *bc) {
    mm_ctx *c = bc->c;
    int B = gm_dtype_block(c->dt), W = m->target->width;
    lv_loop j, kb;
    lv_loop_begin(m, &j, lv_int(m, 0), lv_int(m, EX_PANEL), W, 0, NULL);
    lv_loop_begin(m, &kb, lv_int(m, 0), bc->len, B, 0, NULL);
    LLVMValueRef blk[16], v[16];
    for (int g = 0; g < W; g++) {
        LLVMValueRef n = lv_add(m, lv_muli(m, bc->panel, EX_PANEL), lv_addi(m, j.i, g));
        n = LLVMBuildSelect(m->b, LLVMBuildICmp(m->b, LLVMIntSLT, n, lv_int(m, c->N), ""), n, lv_int(m, c->N - 1), "");
        blk[g] = lv_quant_block(m, c->dt, c->w, n, c->K, lv_add(m, bc->k0, kb.i));
    }
    for (int s = 0; s < B / LV_QSUB; s++) {
        LLVMValueRef rows[16];
        for (int g = 0; g < W; g++) rows[g] = lv_quant_decode(m, c->dt, blk[g], s);
        for (int at = 0; at < LV_QSUB; at += W) {
            for (int g = 0; g < W; g++) v[g] = lv_slice(m, rows[g], at, W);
            transpose_square(m, v, W);
            for (int i = 0; i < W; i++)
                lv_store(m, c->scratch, lv_add(m, lv_muli(m, lv_addi(m, kb.i, s * LV_QSUB + at + i), EX_PANEL), j.i), v[i]);
        }
    }
    lv_loop_end(m, &kb, NULL);
    lv_loop_end(m, &j, NULL);
    bc->b = c->scratch, bc->bdt = GM_F32;
}

/* xp ← this block of k of the rows that fill register tiles, each tile's MR
 * rows interleaved by k ([T/MR][len][MR]): a tile's broadcasts then read
 * one short sequential stream, where MR rows K floats apart would fight over
 * the same cache sets. */
static void emit_tile_packing(lv_emit *m, mm_ctx *c, int MR, LLVMValueRef t1, LLVMValueRef k0, LLVMValueRef len) {
    lv_loop t, k;
    lv_loop_begin(m, &t, lv_int(m, 0), t1, MR, 0, NULL);
    lv_loop_begin(m, &k, lv_int(m, 0), len, 1, 0, NULL);
    LLVMValueRef from = lv_add(m, lv_muli(m, t.i, c->K), lv_add(m, k0, k.i));
    LLVMValueRef to = lv_add(m, lv_mul(m, t.i, len), lv_muli(m, k.i, MR));
    for (int i = 0; i < MR; i++)
        lv_store(m, c->xp, lv_addi(m, to, i), lv_load(m, c->x, lv_addi(m, from, i * c->K), GM_F32, 1));
    lv_loop_end(m, &k, NULL);
    lv_loop_end(m, &t, NULL);
}

/* scratch ← the block's weights as f32, [len][P]. */
static void emit_block_conversion(lv_emit *m, block_ctx *bc) {
    int W = m->target->width;
    lv_loop k;
    lv_loop_begin(m, &k, lv_int(m, 0), lv_muli(m, bc->len, EX_PANEL), W, 0, NULL);
    lv_store(m, bc->c->scratch, k.i, lv_load(m, bc->b, k.i, bc->bdt, W));
    lv_loop_end(m, &k, NULL);
    bc->b = bc->c->scratch, bc->bdt = GM_F32;
}

/* Rows enough for tiles (prefill): blocks of KC values of k outermost, so
 * the block of x (T·KC floats, packed for the tiles) stays in L2 while
 * every panel of the call passes by; within a block, each panel's weights
 * (KC·P floats, converted once when stored as bf16/f16) stay in L1 while
 * the register tiles walk down the rows, then the leftover rows. */
static void emit_tiled_rows(lv_emit *m, mm_ctx *c, LLVMValueRef p0, LLVMValueRef p1) {
    int MR = tile_rows(m);
    LLVMValueRef tiled = lv_sub(m, c->T, LLVMBuildSRem(m->b, c->T, lv_int(m, MR), ""));
    lv_loop kb, p, t;
    lv_loop_begin(m, &kb, lv_int(m, 0), lv_int(m, (c->K + EX_KC - 1) / EX_KC * EX_KC), EX_KC, 0, NULL);
    block_ctx bc = block_at(m, c, kb.i, m->target->width);
    emit_tile_packing(m, c, MR, tiled, kb.i, bc.len);
    lv_loop_begin(m, &p, p0, p1, 1, 0, NULL);
    bc.panel = p.i;
    if (gm_dtype_quantized(c->dt)) {
        emit_quant_conversion(m, &bc);
    } else {
        LLVMValueRef at = lv_add(m, lv_muli(m, p.i, c->K * EX_PANEL), lv_muli(m, kb.i, EX_PANEL));
        LLVMValueRef next = lv_addi(m, at, c->K * EX_PANEL);
        bc.b = LLVMBuildInBoundsGEP2(m->b, lv_elem_type(m, c->dt), c->w, &at, 1, "");
        bc.next = LLVMBuildGEP2(m->b, lv_elem_type(m, c->dt), c->w, &next, 1, "");
        if (c->dt != GM_F32) emit_block_conversion(m, &bc);
    }
    lv_loop_begin(m, &t, lv_int(m, 0), tiled, MR, 0, NULL);
    emit_register_tile(m, &bc, t.i, MR);
    lv_loop_end(m, &t, NULL);
    emit_rows(m, &bc, tiled, c->T);
    lv_loop_end(m, &p, NULL);
    lv_loop_end(m, &kb, NULL);
}

/* Fewer rows than a tile: panels streamed once, or a quantized weight's rows. */
static void emit_lone(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1, LLVMValueRef p0, LLVMValueRef p1) {
    if (gm_dtype_quantized(c->dt)) emit_quant_rows(m, c, n0, n1);
    else emit_lone_rows(m, c, p0, p1);
}

/* Panel weights, and quantized ones, which prefill decodes into panels
 * (n0 a multiple of the panel: exec.c splits their columns so). */
static void emit_panels(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    LLVMValueRef p0 = LLVMBuildSDiv(m->b, n0, lv_int(m, EX_PANEL), "");
    LLVMValueRef p1 = LLVMBuildSDiv(m->b, lv_addi(m, n1, EX_PANEL - 1), lv_int(m, EX_PANEL), "");
    int MR = tile_rows(m);
    if (MR == 1) {
        emit_lone(m, c, n0, n1, p0, p1);
        return;
    }
    c->xp = c->scratch;
    c->scratch = past(m, c->scratch, lv_muli(m, c->T, EX_KC));
    LLVMBasicBlockRef done = lv_if_begin(m, LLVMBuildICmp(m->b, LLVMIntSGE, c->T, lv_int(m, MR), ""));
    emit_tiled_rows(m, c, p0, p1);
    done = lv_else(m, done);
    emit_lone(m, c, n0, n1, p0, p1);
    lv_if_end(m, done);
}

/* --activations int8 with fewer rows than a tile: x's rows quantized into
 * the scratch, then integer dot products against each weight row (int8.c). */
static void emit_int8_rows(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    LLVMValueRef q = c->scratch;
    lv_emit_x_int8(m, c->dt, c->x, c->T, c->K, q, NULL);
    int64_t row_bytes = (int64_t)gm_dtype_bytes(c->dt, c->K);
    lv_loop t, n;
    lv_loop_begin(m, &t, lv_int(m, 0), c->T, 1, 0, NULL);
    LLVMValueRef qt = lv_muli(m, t.i, c->K / 64 * LV_Q8_GROUP);
    qt = LLVMBuildInBoundsGEP2(m->b, LLVMInt8TypeInContext(m->ctx), q, &qt, 1, "");
    lv_loop_begin(m, &n, n0, n1, 1, 0, NULL);
    LLVMValueRef wb = lv_muli(m, n.i, row_bytes);
    LLVMValueRef dot = lv_int8_dot(m, c->dt, LLVMBuildInBoundsGEP2(m->b, LLVMInt8TypeInContext(m->ctx), c->w, &wb, 1, ""), qt, c->K);
    LLVMValueRef at = lv_add(m, lv_muli(m, t.i, c->N), n.i);
    lv_store(m, c->y, at, finish(m, c, dot, at, 1, NULL));
    lv_loop_end(m, &n, NULL);
    lv_loop_end(m, &t, NULL);
}

/* Rows [0, T) in bands of tiles of sizes[0] rows, then sizes[1], then
 * sizes[2] = 1: band b is rows [start[b], start[b + 1]). Leftover rows go in
 * tiles as large as they fill, not one at a time: on the Zen 4 host, one
 * thread, the 2B BF16's bf16 prefill of 128 rows (10 tiles of 12, 8 rows
 * left) went from 41.6 to 43.4 tok/s with tiles of 8, which leave none. */
#define BANDS 3
static void row_bands(lv_emit *m, LLVMValueRef T, const int *sizes, LLVMValueRef *start) {
    start[0] = lv_int(m, 0);
    for (int b = 0; b < BANDS; b++)
        start[b + 1] = lv_sub(m, T, LLVMBuildSRem(m->b, lv_sub(m, T, start[b]), lv_int(m, sizes[b]), ""));
}

/* The int8 tiles' row bands (row_bands). */
static const int int8_bands[BANDS] = {LV_INT8_TILE, 2, 1};

/* Rows t0.. t0+R-1 of the int8 tile over one panel's block: the partial
 * sums (tile_sums), the block's products, then stored (through the
 * epilogue after the last block). */
static void int8_tile_rows(lv_emit *m, const block_ctx *bc, LLVMValueRef panel, LLVMValueRef q, LLVMValueRef t0, int R) {
    mm_ctx *c = bc->c;
    LLVMValueRef rows[LV_INT8_TILE], acc[2 * LV_INT8_TILE], mask[2];
    for (int h = 0; h < 2; h++) mask[h] = column_mask(m, bc, h);
    for (int r = 0; r < R; r++) {
        LLVMValueRef at = lv_muli(m, lv_addi(m, t0, r), c->K / 64 * LV_Q8_GROUP);
        rows[r] = LLVMBuildInBoundsGEP2(m->b, LLVMInt8TypeInContext(m->ctx), q, &at, 1, "");
        for (int h = 0; h < 2; h++) acc[2 * r + h] = tile_sums(m, bc, lv_addi(m, t0, r), h, mask[h]);
    }
    lv_int8_tile(m, c->dt, panel, rows, R, bc->k0, bc->len, acc);
    store_tile(m, bc, t0, R, acc, mask);
}

/* One panel's block of k under --activations int8: decoded once into
 * unsigned quants in the panel scratch (int8.c; from the repacked panel, or
 * from the blocks as stored), then register tiles of LV_INT8_TILE rows, of
 * 2, and the leftover row. */
static void int8_panel_block(lv_emit *m, block_ctx *bc, LLVMValueRef q, LLVMValueRef panel, const LLVMValueRef *start) {
    mm_ctx *c = bc->c;
    if (c->k->panel) lv_int8_qpanel_fill(m, c->dt, c->w, c->K, bc->panel, bc->k0, bc->len, panel);
    else lv_int8_panel_fill(m, c->dt, c->w, c->N, c->K, bc->panel, bc->k0, bc->len, panel);
    for (int b = 0; b < BANDS; b++) {
        lv_loop t;
        lv_loop_begin(m, &t, start[b], start[b + 1], int8_bands[b], 0, NULL);
        int8_tile_rows(m, bc, panel, q, t.i, int8_bands[b]);
        lv_loop_end(m, &t, NULL);
    }
}

/* The int8 tiles: x's rows quantized into the scratch once, then panel by
 * panel each block of EX_KC values of k, the tiles' sums kept between
 * blocks in the panel's home (as emit_bf16_tiled, and for its reason). */
static void emit_int8_tiled(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    LLVMValueRef q = c->scratch, panel = past(m, c->scratch, lv_muli(m, c->T, c->K)), start[BANDS + 1];
    LLVMValueRef home = past(m, panel, lv_int(m, LV_INT8_PANEL_FLOATS));
    lv_emit_x_int8(m, c->dt, c->x, c->T, c->K, q, NULL);
    row_bands(m, c->T, int8_bands, start);
    LLVMValueRef p0 = LLVMBuildSDiv(m->b, n0, lv_int(m, EX_PANEL), "");
    LLVMValueRef p1 = LLVMBuildSDiv(m->b, lv_addi(m, n1, EX_PANEL - 1), lv_int(m, EX_PANEL), "");
    lv_loop kb, p;
    lv_loop_begin(m, &p, p0, p1, 1, 0, NULL);
    lv_loop_begin(m, &kb, lv_int(m, 0), lv_int(m, (c->K + EX_KC - 1) / EX_KC * EX_KC), EX_KC, 0, NULL);
    block_ctx bc = block_at(m, c, kb.i, 16);
    bc.panel = p.i, bc.home = home;
    int8_panel_block(m, &bc, q, panel, start);
    lv_loop_end(m, &kb, NULL);
    lv_loop_end(m, &p, NULL);
}

/* Panels n0/EX_PANEL.. of x's quantized rows (in the scratch), each in one
 * sequential stream over all of k per row, its quads unpacked in registers
 * and multiplied at once (int8.c), their products apart or chained. */
static void lone_panels(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1, int apart) {
    LLVMValueRef q = c->scratch, yes = LLVMConstInt(LLVMInt1TypeInContext(m->ctx), 1, 0);
    LLVMValueRef p0 = LLVMBuildSDiv(m->b, n0, lv_int(m, EX_PANEL), "");
    LLVMValueRef p1 = LLVMBuildSDiv(m->b, lv_addi(m, n1, EX_PANEL - 1), lv_int(m, EX_PANEL), "");
    lv_loop p, t;
    lv_loop_begin(m, &p, p0, p1, 1, 0, NULL);
    block_ctx bc = {c, p.i, NULL, c->dt, lv_int(m, 0), lv_int(m, c->K), yes, yes, NULL, 16, NULL};
    LLVMValueRef mask[2] = {column_mask(m, &bc, 0), column_mask(m, &bc, 1)};
    lv_loop_begin(m, &t, lv_int(m, 0), c->T, 1, 0, NULL);
    LLVMValueRef at = lv_muli(m, t.i, c->K / 64 * LV_Q8_GROUP), acc[2] = {lv_real(m, 0, 16), lv_real(m, 0, 16)};
    lv_int8_qpanel_row(m, c->dt, c->w, c->K, p.i, LLVMBuildInBoundsGEP2(m->b, LLVMInt8TypeInContext(m->ctx), q, &at, 1, ""), apart, acc);
    store_tile(m, &bc, t.i, 1, acc, mask);
    lv_loop_end(m, &t, NULL);
    lv_loop_end(m, &p, NULL);
}

/* Fewer rows than a tile over a repacked weight (decode): x's rows
 * quantized, then the panels. One row (decode proper) streams its weight
 * from memory, and its products go apart (two chains, int8.c's quads_dot):
 * on the Zen 4 host, one thread, Q4_K went from 0.61-0.63 to 0.75-0.81 of a
 * plain read of the same bytes, Q6_K from 0.61-0.67 to 0.76-0.84, when
 * apart first meant each product from zero (bench/qdecode.c, alternated
 * runs). More rows re-read each panel from the cache, where one chain is
 * faster (eight rows of Q4_K_M: 64 against 40 tok/s, each apart), since
 * apart their registers spill. */
static void emit_int8_lone(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    lv_emit_x_int8(m, c->dt, c->x, c->T, c->K, c->scratch, NULL);
    LLVMBasicBlockRef done = lv_if_begin(m, LLVMBuildICmp(m->b, LLVMIntEQ, c->T, lv_int(m, 1), ""));
    lone_panels(m, c, n0, n1, 1);
    done = lv_else(m, done);
    lone_panels(m, c, n0, n1, 0);
    lv_if_end(m, done);
}

/* The f32 kernels: panels (packed or block-quantized weights) or row-major. */
static void emit_f32_kernels(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    if (c->k->panel || gm_dtype_quantized(c->dt)) emit_panels(m, c, n0, n1);
    else emit_row_major(m, c, n0, n1);
}

/* The f32 kernels on x's rows as rounded into the scratch (T·K floats at its start). */
static void emit_on_rounded(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    c->x = c->scratch;
    c->scratch = past(m, c->scratch, lv_muli(m, c->T, c->K));
    emit_f32_kernels(m, c, n0, n1);
}

/* x's rows rounded to 8 bits and back to f32 into the scratch, then the f32 panel kernels. */
static void emit_rounded(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    lv_emit_x_int8(m, c->dt, c->x, c->T, c->K, NULL, c->scratch);
    emit_on_rounded(m, c, n0, n1);
}

/* The matmul of a quantized weight under --activations int8. Repacked
 * (runtime/qpanel.h): the int8 tiles, or with fewer rows than a tile
 * (decode) each panel streamed once through registers. As stored: with fewer rows than a tile and K a
 * multiple of 64, integer dot products row by row; otherwise, on AVX-512
 * VNNI, the int8 tiles; elsewhere x's rows rounded to 8 bits and back into
 * the scratch (emit_rounded), then the f32 kernels (the same numbers up to
 * the order of the f32 sums). */
static void emit_int8(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    int repacked = c->k->panel != 0, vnni = m->target->int8_dot == LV_INT8_VNNI;
    if (!repacked && c->K % 64) return emit_rounded(m, c, n0, n1);
    LLVMValueRef few = LLVMBuildICmp(m->b, LLVMIntSLT, c->T, lv_int(m, tile_rows(m) > 1 ? tile_rows(m) : 2), "");
    LLVMBasicBlockRef done = lv_if_begin(m, few);
    mm_ctx ci = *c;
    if (repacked) emit_int8_lone(m, &ci, n0, n1);
    else emit_int8_rows(m, &ci, n0, n1);
    done = lv_else(m, done);
    if (repacked || vnni) emit_int8_tiled(m, c, n0, n1);
    else emit_rounded(m, c, n0, n1);
    lv_if_end(m, done);
}

/* ---- --activations bf16: bf16 weights on x rounded to bf16 ---- */

/* A bf16 dot product takes pairs of k: lane j of a W-lane acc gains
 * w[2j]·x[2j] + w[2j+1]·x[2j+1], <2W x bfloat> operands: vdpbf16ps on
 * AVX512_BF16 (W = 16), BFDOT on an Arm CPU with bf16 (W = 4), on the
 * targets whose bf16_dot says it pays. */

static LLVMTypeRef bf16_vec(lv_emit *m, int n) { return LLVMVectorType(LLVMBFloatTypeInContext(m->ctx), (unsigned)n); }

static LLVMValueRef bf16_dot(lv_emit *m, LLVMValueRef acc, LLVMValueRef w, LLVMValueRef x) {
    LLVMValueRef args[3] = {acc, w, x};
    if (m->target->width == 16) return lv_intrinsic(m, "llvm.x86.avx512bf16.dpbf16ps.512", NULL, 0, args, 3);
    LLVMTypeRef types[2] = {LLVMTypeOf(acc), LLVMTypeOf(w)};
    return lv_intrinsic(m, "llvm.aarch64.neon.bfdot", types, 2, args, 3);
}

/* Rows of a bf16 tile: its accumulators, the panel's weight vectors and a
 * broadcast of x in the registers (AVX-512: 12 rows × 2; NEON: 2 × 8). */
static int bf16_rows(lv_emit *m) {
    int V = vectors_per_row(m), mr = (m->target->regs - V - 2) / V;
    return mr > tile_rows(m) ? tile_rows(m) : mr < 1 ? 1 : mr;
}

/* <n x float> v (a float when n = 1) rounded to bf16 (to nearest even, NaN kept quiet: as
 * gm_f32_to_bf16), <n x i16>, in integer operations any target has. */
static LLVMValueRef bf16_bits(lv_emit *m, LLVMValueRef v, int n) {
    LLVMTypeRef i32v = n == 1 ? m->i32 : LLVMVectorType(m->i32, (unsigned)n);
#define K32(c) lv_splat(m, LLVMConstInt(m->i32, (c), 0), n)
    LLVMValueRef u = LLVMBuildBitCast(m->b, v, i32v, "");
    LLVMValueRef odd = LLVMBuildAnd(m->b, LLVMBuildLShr(m->b, u, K32(16), ""), K32(1), "");
    LLVMValueRef rounded = LLVMBuildLShr(m->b, LLVMBuildAdd(m->b, u, LLVMBuildAdd(m->b, odd, K32(0x7fff), ""), ""), K32(16), "");
    LLVMValueRef nan = LLVMBuildICmp(m->b, LLVMIntUGT, LLVMBuildAnd(m->b, u, K32(0x7fffffff), ""), K32(0x7f800000), "");
    LLVMValueRef quiet = LLVMBuildOr(m->b, LLVMBuildLShr(m->b, u, K32(16), ""), K32(64), "");
#undef K32
    return LLVMBuildTrunc(m->b, LLVMBuildSelect(m->b, nan, quiet, rounded, ""), n == 1 ? m->i16 : LLVMVectorType(m->i16, (unsigned)n), "");
}

static LLVMValueRef bf16_at(lv_emit *m, LLVMValueRef base, LLVMValueRef idx) {
    return LLVMBuildInBoundsGEP2(m->b, m->i16, base, &idx, 1, "");
}

/* dst ← x's T rows rounded to bf16 (to nearest even), row-major, 16 values
 * a step: the rounding takes a few operations per 16 values, not per pair.
 * Widened back to f32 (the bf16 in the high half) for the f32 kernels. */
static void round_rows_bf16(lv_emit *m, mm_ctx *c, LLVMValueRef dst, int widen) {
    LLVMValueRef n = lv_muli(m, c->T, c->K), whole = lv_sub(m, n, LLVMBuildSRem(m->b, n, lv_int(m, 16), ""));
    LLVMValueRef from[2] = {lv_int(m, 0), whole}, to[2] = {whole, n};
    for (int part = 0; part < 2; part++) {
        int W = part ? 1 : 16;
        lv_loop i;
        lv_loop_begin(m, &i, from[part], to[part], W, 0, NULL);
        LLVMValueRef bits = bf16_bits(m, lv_load(m, c->x, i.i, GM_F32, W), W);
        if (widen) {
            LLVMTypeRef i32v = W == 1 ? m->i32 : LLVMVectorType(m->i32, (unsigned)W);
            bits = LLVMBuildShl(m->b, LLVMBuildZExt(m->b, bits, i32v, ""), lv_splat(m, LLVMConstInt(m->i32, 16, 0), W), "");
            lv_store(m, dst, i.i, LLVMBuildBitCast(m->b, bits, W == 1 ? m->f32 : LLVMVectorType(m->f32, (unsigned)W), ""));
        } else {
            LLVMSetAlignment(LLVMBuildStore(m->b, bits, bf16_at(m, dst, i.i)), 2);
        }
        lv_loop_end(m, &i, NULL);
    }
}

/* xs ← rows [t0, t1) of the rounded rows xr (row-major, K per row), their
 * block [k0, k0 + len), in tiles of R rows interleaved by pairs of k: row
 * t + i's pair j of the block at t·K + k0·R + (j·R + i)·2 (R = 1: xr's
 * own layout), so a tile's broadcasts read one short stream (rows K apart
 * would meet in the same cache sets). */
static void interleave_pairs(lv_emit *m, mm_ctx *c, LLVMValueRef xr, LLVMValueRef xs, int R, LLVMValueRef t0,
                             LLVMValueRef t1, LLVMValueRef k0, LLVMValueRef len) {
    lv_loop t, j;
    lv_loop_begin(m, &t, t0, t1, R, 0, NULL);
    lv_loop_begin(m, &j, lv_int(m, 0), LLVMBuildSDiv(m->b, len, lv_int(m, 2), ""), 1, 0, NULL);
    LLVMValueRef from = lv_add(m, lv_muli(m, t.i, c->K), lv_add(m, k0, lv_muli(m, j.i, 2)));
    LLVMValueRef to = lv_add(m, lv_add(m, lv_muli(m, t.i, c->K), lv_muli(m, k0, R)), lv_muli(m, j.i, 2 * R));
    for (int i = 0; i < R; i++) {
        LLVMValueRef pair = LLVMBuildLoad2(m->b, m->i32, bf16_at(m, xr, lv_addi(m, from, i * c->K)), "");
        LLVMSetAlignment(pair, 4);
        LLVMSetAlignment(LLVMBuildStore(m->b, pair, bf16_at(m, xs, lv_addi(m, to, 2 * i))), 4);
    }
    lv_loop_end(m, &j, NULL);
    lv_loop_end(m, &t, NULL);
}

/* Outputs W·h.. of the panel's weights at pair j (2W bf16): rows 2j and
 * 2j+1 of the stored panel block ([len][P] bf16) interleaved; or from the
 * block already interleaved ([len/2][P][2], emit_bf16_block). */
static LLVMValueRef bf16_weights(lv_emit *m, const block_ctx *bc, LLVMValueRef j, int h, int interleaved) {
    int W = bc->W;
    if (interleaved) {
        LLVMValueRef p = bf16_at(m, bc->b, lv_addi(m, lv_muli(m, j, 2 * EX_PANEL), 2 * W * h));
        LLVMValueRef v = LLVMBuildLoad2(m->b, bf16_vec(m, 2 * W), p, "");
        LLVMSetAlignment(v, 4 * (unsigned)W);
        return v;
    }
    LLVMValueRef rows[2], idx[32];
    for (int r = 0; r < 2; r++) {
        LLVMValueRef at = bf16_at(m, bc->b, lv_muli(m, lv_addi(m, lv_muli(m, j, 2), r), EX_PANEL));
        rows[r] = LLVMBuildLoad2(m->b, LLVMVectorType(m->i16, EX_PANEL), at, "");
        LLVMSetAlignment(rows[r], 2);
    }
    for (int i = 0; i < 2 * W; i++) idx[i] = LLVMConstInt(m->i32, (unsigned long long)(W * h + i / 2 + (i % 2) * EX_PANEL), 0);
    return LLVMBuildBitCast(m->b, LLVMBuildShuffleVector(m->b, rows[0], rows[1], LLVMConstVector(idx, 2 * (unsigned)W), ""),
                            bf16_vec(m, 2 * W), "");
}

/* scratch ← the panel's block interleaved by pairs of k, [len/2][P][2]:
 * every tile of the block then loads its weights as they multiply. */
static void emit_bf16_block(lv_emit *m, block_ctx *bc) {
    lv_loop j;
    lv_loop_begin(m, &j, lv_int(m, 0), LLVMBuildSDiv(m->b, bc->len, lv_int(m, 2), ""), 1, 0, NULL);
    for (int h = 0; h < EX_PANEL / bc->W; h++) {
        LLVMValueRef at = bf16_at(m, bc->c->scratch, lv_addi(m, lv_muli(m, j.i, 2 * EX_PANEL), 2 * bc->W * h));
        LLVMSetAlignment(LLVMBuildStore(m->b, bf16_weights(m, bc, j.i, h, 0), at), 4 * (unsigned)bc->W);
    }
    lv_loop_end(m, &j, NULL);
    bc->b = bc->c->scratch;
}

/* One pair j of k for rows t0.. t0+R-1 (x's pairs from base in xs): acc[V·i + h] gains row i's dot products with weight vector h. */
static void bf16_step(lv_emit *m, const block_ctx *bc, LLVMValueRef xs, LLVMValueRef base, LLVMValueRef j, int R,
                      int interleaved, const LLVMValueRef *acc, LLVMValueRef *out) {
    int W = bc->W, V = EX_PANEL / W;
    LLVMValueRef w[EX_PANEL / 4];
    for (int r = 0; r < 2; r++) prefetch_ahead(m, bc, lv_addi(m, lv_muli(m, j, 2), r), R);
    for (int h = 0; h < V; h++) w[h] = bf16_weights(m, bc, j, h, interleaved);
    for (int i = 0; i < R; i++) {
        LLVMValueRef p = LLVMBuildLoad2(m->b, m->i32, bf16_at(m, xs, lv_add(m, base, lv_addi(m, lv_muli(m, j, 2 * R), 2 * i))), "");
        LLVMSetAlignment(p, 4);
        LLVMValueRef xb = LLVMBuildBitCast(m->b, lv_splat(m, p, W), bf16_vec(m, 2 * W), "");
        for (int h = 0; h < V; h++) out[V * i + h] = bf16_dot(m, acc[V * i + h], w[h], xb);
    }
}

/* Rows t0.. t0+R-1 of the block by bf16 dot products, x's pairs from xs
 * at base (interleave_pairs' layout; a lone row's pairs in order); a lone row carries
 * two chains per vector, so the dot products do not wait on each other,
 * then a tail of one pair. */
static void bf16_tile(lv_emit *m, const block_ctx *bc, LLVMValueRef xs, LLVMValueRef base, LLVMValueRef t0, int R,
                      int interleaved) {
    int W = bc->W, V = EX_PANEL / W, chains = R == 1 ? 2 : 1, n = V * R;
    LLVMValueRef init[LV_MAX_CARRY], next[LV_MAX_CARRY], acc[LV_MAX_CARRY], mask[EX_PANEL / 4];
    LLVMValueRef pairs = LLVMBuildSDiv(m->b, bc->len, lv_int(m, 2), "");
    for (int h = 0; h < V; h++) mask[h] = column_mask(m, bc, h);
    for (int s = 0; s < n * chains; s++)
        init[s] = s < n ? tile_sums(m, bc, lv_addi(m, t0, s / V), s % V, mask[s % V]) : lv_real(m, 0, W);
    lv_loop loops[2], *l = NULL;
    for (int pass = 0; pass < chains; pass++) {
        int step = pass ? 1 : chains;
        l = &loops[pass];
        lv_loop_begin(m, l, pass ? loops[0].i : lv_int(m, 0), pairs, step, n * chains, pass ? loops[0].v : init);
        for (int u = 0; u < step; u++) bf16_step(m, bc, xs, base, lv_addi(m, l->i, u), R, interleaved, l->v + u * n, next + u * n);
        for (int s = step * n; s < n * chains; s++) next[s] = l->v[s];
        lv_loop_end(m, l, next);
    }
    for (int s = 0; s < n; s++) acc[s] = chains == 2 ? lv_fadd(m, l->v[s], l->v[n + s]) : l->v[s];
    store_tile(m, bc, t0, R, acc, mask);
}

/* Rows enough for tiles (prefill): x's rows rounded to bf16 and
 * interleaved for the tiles of each row band once (single rows read them
 * in place); then panel by panel, each block of k of its weights
 * interleaved once for all tiles, and the tiles' sums kept between blocks
 * in the panel's home, 64-byte rows in L1. In y they were N floats apart,
 * a power of two in Gemma, so a tile's rows met in the same cache sets and
 * every block reloaded them from memory: on the Zen 4 host, one thread,
 * the 2B BF16's bf16 prefill went from 44.0 to 51.0-51.2 tok/s (0.86 of
 * the core's vdpbf16ps rate, build/ceiling). */
static void emit_bf16_tiled(lv_emit *m, mm_ctx *c, LLVMValueRef p0, LLVMValueRef p1) {
    int MR = bf16_rows(m), sizes[BANDS] = {MR, MR / 3 > 1 ? MR / 3 : 1, 1};
    LLVMValueRef start[BANDS + 1], xr = c->scratch, xs = past(m, xr, lv_muli(m, c->T, (c->K + 1) / 2));
    LLVMValueRef home = past(m, xs, lv_muli(m, c->T, (c->K + 1) / 2)), blocks = lv_int(m, (c->K + EX_KC - 1) / EX_KC * EX_KC);
    row_bands(m, c->T, sizes, start);
    round_rows_bf16(m, c, xr, 0);
    lv_loop kb, p, t;
    lv_loop_begin(m, &kb, lv_int(m, 0), blocks, EX_KC, 0, NULL);
    block_ctx bc = block_at(m, c, kb.i, m->target->width);
    for (int b = 0; b < BANDS; b++)
        if (sizes[b] > 1) interleave_pairs(m, c, xr, xs, sizes[b], start[b], start[b + 1], kb.i, bc.len);
    lv_loop_end(m, &kb, NULL);
    c->scratch = past(m, home, lv_muli(m, c->T, EX_PANEL));
    lv_loop_begin(m, &p, p0, p1, 1, 0, NULL);
    lv_loop_begin(m, &kb, lv_int(m, 0), blocks, EX_KC, 0, NULL);
    bc = block_at(m, c, kb.i, m->target->width);
    bc.panel = p.i, bc.home = home;
    LLVMValueRef at = lv_add(m, lv_muli(m, p.i, c->K * EX_PANEL), lv_muli(m, kb.i, EX_PANEL));
    LLVMValueRef next = lv_addi(m, at, EX_KC * EX_PANEL);
    bc.b = bf16_at(m, c->w, at);
    bc.next = LLVMBuildGEP2(m->b, m->i16, c->w, &next, 1, "");
    emit_bf16_block(m, &bc);
    for (int b = 0; b < BANDS; b++) {
        lv_loop_begin(m, &t, start[b], start[b + 1], sizes[b], 0, NULL);
        LLVMValueRef base = lv_add(m, lv_muli(m, t.i, c->K), lv_muli(m, kb.i, sizes[b]));
        bf16_tile(m, &bc, sizes[b] > 1 ? xs : xr, base, t.i, sizes[b], 1);
        lv_loop_end(m, &t, NULL);
    }
    lv_loop_end(m, &kb, NULL);
    lv_loop_end(m, &p, NULL);
}

/* Fewer rows than a tile (decode): x's rows rounded into bf16 pairs, then
 * each panel in one pass over all of k per row, its weights streamed as
 * stored and interleaved in registers. */
static void emit_bf16_lone(lv_emit *m, mm_ctx *c, LLVMValueRef p0, LLVMValueRef p1) {
    LLVMValueRef yes = LLVMConstInt(LLVMInt1TypeInContext(m->ctx), 1, 0), xs = c->scratch;
    round_rows_bf16(m, c, xs, 0);
    lv_loop p, t;
    lv_loop_begin(m, &p, p0, p1, 1, 0, NULL);
    block_ctx bc = {c, p.i, bf16_at(m, c->w, lv_muli(m, p.i, c->K * EX_PANEL)), GM_BF16, lv_int(m, 0), lv_int(m, c->K),
                    yes, yes, NULL, m->target->width, NULL};
    lv_loop_begin(m, &t, lv_int(m, 0), c->T, 1, 0, NULL);
    bf16_tile(m, &bc, xs, lv_muli(m, t.i, c->K), t.i, 1, 0);
    lv_loop_end(m, &t, NULL);
    lv_loop_end(m, &p, NULL);
}

/* x's rows rounded to bf16 and back to f32 into the scratch, then the f32 kernels. */
static void emit_bf16_rounded(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    round_rows_bf16(m, c, c->scratch, 1);
    emit_on_rounded(m, c, n0, n1);
}

/* The matmul of a bf16 weight under --activations bf16: where the target's
 * bf16_dot holds (vdpbf16ps on AMD's AVX512_BF16 CPUs, BFDOT on Arm's with
 * bf16), with panels and K even, bf16 dot products (tiles for prefill, each
 * panel streamed once for decode); elsewhere x's rows rounded to bf16 and back
 * (emit_bf16_rounded), then the f32 kernels (the same numbers up to the
 * order of the f32 sums). */
static void emit_bf16(lv_emit *m, mm_ctx *c, LLVMValueRef n0, LLVMValueRef n1) {
    if (!m->target->bf16_dot || !c->k->panel || c->K % 2) {
        emit_bf16_rounded(m, c, n0, n1);
        return;
    }
    LLVMValueRef p0 = LLVMBuildSDiv(m->b, n0, lv_int(m, EX_PANEL), "");
    LLVMValueRef p1 = LLVMBuildSDiv(m->b, lv_addi(m, n1, EX_PANEL - 1), lv_int(m, EX_PANEL), "");
    LLVMBasicBlockRef done = lv_if_begin(m, LLVMBuildICmp(m->b, LLVMIntSGE, c->T, lv_int(m, bf16_rows(m)), ""));
    mm_ctx ct = *c;
    emit_bf16_tiled(m, &ct, p0, p1);
    done = lv_else(m, done);
    emit_bf16_lone(m, c, p0, p1);
    lv_if_end(m, done);
}

void lv_emit_matmul(lv_emit *m, const ex_kernel *k) {
    mm_ctx c = {.k = k, .x = lv_field_ptr(m, offsetof(ex_call, in)),
                .w = lv_field_ptr(m, offsetof(ex_call, in) + sizeof(void *)),
                .y = lv_field_ptr(m, offsetof(ex_call, out)), .T = lv_field_i64(m, offsetof(ex_call, T)),
                .scratch = lv_field_ptr(m, offsetof(ex_call, scratch)), .K = k->k, .N = k->n, .dt = k->wtype};
    if (k->op == IR_MATMUL_ADD) c.r = lv_field_ptr(m, offsetof(ex_call, in) + 2 * sizeof(void *));
    if (k->op == IR_NORM_MATMUL) emit_prologue(m, &c);
    LLVMValueRef n0 = lv_field_i64(m, offsetof(ex_call, n0)), n1 = lv_field_i64(m, offsetof(ex_call, n1));
    if (k->attr[IR_A_X_INT8] && gm_dtype_quantized(k->wtype)) emit_int8(m, &c, n0, n1);
    else if (k->attr[IR_A_X_BF16] && k->wtype == GM_BF16) emit_bf16(m, &c, n0, n1);
    else emit_f32_kernels(m, &c, n0, n1);
}
