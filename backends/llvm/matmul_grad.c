/* matmul_grad.c — the training kernels of the matmuls' and embed's
 * gradients, each over the output columns [n0, n1) the engine gives a thread:
 *   matmul_dx  dx[T][K] = dy[T][N] · W[N][K], W in its checkpoint dtype
 *   matmul_dw  dw[N][K] = dyᵀ · x, x f32 [T][K], overwritten
 *   embed_dw   dw[V][C] zeroed, then dy's row t added at row ids[t]
 *
 * matmul_dx and matmul_dw are one loop nest, out[row][k] = Σ_j A[row][j] ·
 * B[j][k]: for dx the rows are t, A is dy and B is W (j = n); for dw the
 * rows are n, A is dyᵀ and B is x (j = t). B's row j runs along k, so a
 * register tile of R rows × a chunk of columns gains, each step, the
 * chunk's vectors of B times a broadcast of A for each row: R·V FMAs for V
 * vector loads and R broadcasts (12 rows × 2 vectors with AVX-512, 3 × 4
 * with AVX2). As in matmul.c's prefill, the steps go in blocks of EX_KC,
 * outermost, with partial sums through the output between blocks. Within a
 * block, A's rows are packed for the tiles (a tile's R values of a step
 * side by side: one short stream, where R rows N floats apart, or dw's
 * steps, could all fall in one cache set), and each chunk of 32 columns
 * (EX_PANEL) has its block of B staged as f32 [KC][32] (converted from
 * bf16 or f16, decoded from GGUF's blocks, or copied out of rows K floats
 * apart) while the tiles walk down the rows. After the chunks of 32, one
 * of 16 (n0 and n1 are multiples of 16), then K's last K % 16 columns in
 * narrower vectors. Rows go in tiles of R, then R/3, then one at a time; a
 * tile of few accumulators keeps several chains of them, so that its FMAs
 * do not wait on each other.
 *
 * A quantized W's kernel has scratch (ex_scratch_floats) for all T rows'
 * packed block and the decoded one, so each block of W is decoded once. A
 * float W's and matmul_dw's have none: rows go in groups of GROUP, packed
 * on the stack, and B's block is staged again for each group.
 *
 * embed_dw walks its columns of every row a vector at a time: zeroes them,
 * then adds dy's rows in order, so a repeated id sums its rows in order. */
#include "backends/exec/kernel.h"

#include "emit.h"
#include "quant.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNK EX_PANEL  /* columns of a full tile */
#define MAX_ROWS 12     /* rows of a tile */
#define MAX_PIECES 8    /* vectors of a tile's row: 32 columns of 4 lanes */
#define BANDS 3         /* tiles of R rows, of R/3, of 1 */
#define GROUP 96        /* rows whose A is packed at a time for a float B, on the stack */

static LLVMValueRef column_n0(lv_emit *m) { return lv_field_i64(m, offsetof(ex_call, n0)); }
static LLVMValueRef column_n1(lv_emit *m) { return lv_field_i64(m, offsetof(ex_call, n1)); }

static LLVMValueRef min_of(lv_emit *m, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(m->b, LLVMBuildICmp(m->b, LLVMIntSLT, a, b, ""), a, b, "");
}

/* ---- matmul_dx and matmul_dw ---- */

typedef struct {
    const ex_kernel *k;
    int dw;                       /* matmul_dw: rows n, A = dyᵀ, B = x; else matmul_dx: rows t, A = dy, B = W */
    LLVMValueRef a, b, out, rows; /* dy; W or x; the output [rows][K] */
    int64_t K, N;
    int R;                        /* rows of the tiles of CHUNK columns, the tiles A is packed for */
    int64_t group;                /* rows packed at a time; 0: all of them (a quantized W's, in the scratch) */
    LLVMValueRef packed;          /* A's block of the rows packed for the tiles (pack_rows) */
    LLVMValueRef stage;           /* B's block of a chunk of columns, f32 [len][CHUNK] */
    LLVMValueRef j0, len, first;  /* the block of steps [j0, j0 + len); whether j0 = 0 */
} grad;

/* A tile's columns as vector pieces: full vectors, then halving widths. */
typedef struct {
    int n, at[MAX_PIECES], w[MAX_PIECES];
} pieces;

static pieces pieces_of(lv_emit *m, int cols) {
    pieces p = {0};
    for (int at = 0, w = m->target->width; at < cols; at += w) {
        while (at + w > cols) w /= 2;
        p.at[p.n] = at, p.w[p.n++] = w;
    }
    return p;
}

/* Rows of a tile of p's columns: its accumulators fill the vector
 * registers but for the few that hold one step's operands. */
static int tile_rows(lv_emit *m, const pieces *p) {
    int r = (m->target->regs - 4) / p->n;
    return r > MAX_ROWS ? MAX_ROWS : r < 1 ? 1 : r;
}

/* The bands of rows [r0, r1): band b is rows [start[b], start[b + 1]) in
 * packed tiles of sizes[b]. */
static void row_bands(lv_emit *m, const grad *g, LLVMValueRef r0, LLVMValueRef r1, int *sizes, LLVMValueRef *start) {
    sizes[0] = g->R, sizes[1] = g->R / 3 > 1 ? g->R / 3 : 1, sizes[2] = 1;
    start[0] = r0;
    for (int b = 0; b < BANDS; b++)
        start[b + 1] = lv_sub(m, r1, LLVMBuildSRem(m->b, lv_sub(m, r1, start[b]), lv_int(m, sizes[b]), ""));
}

/* packed ← A's block for rows [r0, r1): the packed tile of R rows from t
 * at (t − r0)·len, its R values of step j together, so that a tile's
 * broadcasts read one short stream (in place, rows N floats apart, or dw's
 * steps, could all fall in one cache set). */
static void pack_rows(lv_emit *m, const grad *g, LLVMValueRef r0, LLVMValueRef r1) {
    int sizes[BANDS];
    LLVMValueRef start[BANDS + 1];
    row_bands(m, g, r0, r1, sizes, start);
    for (int b = 0; b < BANDS; b++) {
        lv_loop t, j;
        lv_loop_begin(m, &t, start[b], start[b + 1], sizes[b], 0, NULL);
        lv_loop_begin(m, &j, lv_int(m, 0), g->len, 1, 0, NULL);
        LLVMValueRef to = lv_add(m, lv_mul(m, lv_sub(m, t.i, r0), g->len), lv_muli(m, j.i, sizes[b]));
        LLVMValueRef step = lv_add(m, g->j0, j.i);
        for (int i = 0; i < sizes[b]; i++) {
            LLVMValueRef row = lv_addi(m, t.i, i);
            LLVMValueRef at = g->dw ? lv_add(m, lv_muli(m, step, g->N), row) : lv_add(m, lv_muli(m, row, g->N), step);
            lv_store(m, g->packed, lv_addi(m, to, i), lv_load(m, g->a, at, GM_F32, 1));
        }
        lv_loop_end(m, &j, NULL);
        lv_loop_end(m, &t, NULL);
    }
}

/* Chains of accumulators of a tile of n: 8 keep two FMA units of 4 cycles' latency busy. */
static int chains_of(int n) { return n >= 8 ? 1 : n >= 4 ? 2 : 4; }

typedef struct {
    const grad *g;
    int R, stride;                 /* rows; A's values a step in their packed tile */
    pieces p;
    LLVMValueRef a_at;             /* row i's A at step j: packed[a_at + j · stride + i] */
    LLVMValueRef out_at[MAX_ROWS]; /* row i's first column in out; B's piece q at step j: stage[j · CHUNK + p.at[q]] */
} tile;

/* Rows a.. a+R-1 of the packed tile of size rows from row t (rows from r0
 * packed), and p's columns from col. */
static tile tile_at(lv_emit *m, const grad *g, LLVMValueRef r0, LLVMValueRef t, int size, int a, int R,
                    LLVMValueRef col, const pieces *p) {
    tile tl = {.g = g, .R = R, .stride = size, .p = *p};
    tl.a_at = lv_addi(m, lv_mul(m, lv_sub(m, t, r0), g->len), a);
    for (int i = 0; i < R; i++) tl.out_at[i] = lv_add(m, lv_muli(m, lv_addi(m, t, a + i), g->K), col);
    return tl;
}

/* Row i, piece q of the sums as the tile starts: 0 in the first block, else where the last block left them. */
static LLVMValueRef tile_sums(lv_emit *m, const tile *t, int i, int q) {
    LLVMValueRef sums = lv_load(m, t->g->out, lv_addi(m, t->out_at[i], t->p.at[q]), GM_F32, t->p.w[q]);
    return LLVMBuildSelect(m->b, t->g->first, lv_real(m, 0, t->p.w[q]), sums, "");
}

static LLVMValueRef tile_a(lv_emit *m, const tile *t, LLVMValueRef j, int i) {
    return lv_load(m, t->g->packed, lv_addi(m, lv_add(m, t->a_at, lv_muli(m, j, t->stride)), i), GM_F32, 1);
}

static LLVMValueRef tile_b(lv_emit *m, const tile *t, LLVMValueRef j, int q) {
    return lv_load(m, t->g->stage, lv_addi(m, lv_muli(m, j, CHUNK), t->p.at[q]), GM_F32, t->p.w[q]);
}

/* One step j: next[i·n + q] = acc[i·n + q] + A[i][j] · B[j][piece q]. The
 * fewer of the two operands is held for the step and each of the others
 * loaded just before its FMAs, so the sums and operands fit the registers. */
static void tile_step(lv_emit *m, const tile *t, LLVMValueRef j, const LLVMValueRef *acc, LLVMValueRef *next) {
    int n = t->p.n, hold_a = t->R <= n;
    LLVMValueRef a[MAX_ROWS], b[MAX_PIECES];
    for (int i = 0; i < t->R && hold_a; i++) a[i] = tile_a(m, t, j, i);
    for (int q = 0; q < n && !hold_a; q++) b[q] = tile_b(m, t, j, q);
    for (int o = 0; o < (hold_a ? n : t->R); o++) {
        if (hold_a) b[o] = tile_b(m, t, j, o);
        else a[o] = tile_a(m, t, j, o);
        for (int in = 0; in < (hold_a ? t->R : n); in++) {
            int i = hold_a ? in : o, q = hold_a ? o : in;
            next[i * n + q] = lv_fadd(m, acc[i * n + q], lv_fmul(m, lv_splat(m, a[i], t->p.w[q]), b[q]));
        }
    }
}

/* The tile over the block's steps: the loop by `chains` steps, each into
 * its own accumulators, then a tail of one step; then the chains summed
 * and stored. */
static void emit_tile(lv_emit *m, const tile *t) {
    int n = t->R * t->p.n, chains = chains_of(n);
    LLVMValueRef init[LV_MAX_CARRY], next[LV_MAX_CARRY];
    for (int s = 0; s < n * chains; s++)
        init[s] = s < n ? tile_sums(m, t, s / t->p.n, s % t->p.n) : lv_real(m, 0, t->p.w[s % t->p.n]);
    lv_loop loops[2], *l = NULL;
    for (int pass = 0; pass < (chains > 1 ? 2 : 1); pass++) {
        int step = pass ? 1 : chains;
        l = &loops[pass];
        lv_loop_begin(m, l, pass ? loops[0].i : lv_int(m, 0), t->g->len, step, n * chains, pass ? loops[0].v : init);
        for (int u = 0; u < step; u++) tile_step(m, t, lv_addi(m, l->i, u), l->v + u * n, next + u * n);
        for (int s = step * n; s < n * chains; s++) next[s] = l->v[s];
        lv_loop_end(m, l, next);
    }
    for (int s = 0; s < n; s++) {
        LLVMValueRef sum = l->v[s];
        for (int u = 1; u < chains; u++) sum = lv_fadd(m, sum, l->v[u * n + s]);
        lv_store(m, t->g->out, lv_addi(m, t->out_at[s / t->p.n], t->p.at[s % t->p.n]), sum);
    }
}

/* Rows [r0, r1) of p's columns from col: each packed tile as one register
 * tile, or as several where p's pieces leave room for fewer rows. */
static void emit_tiles(lv_emit *m, const grad *g, LLVMValueRef r0, LLVMValueRef r1, LLVMValueRef col, const pieces *p) {
    int sizes[BANDS], most = tile_rows(m, p);
    LLVMValueRef start[BANDS + 1];
    row_bands(m, g, r0, r1, sizes, start);
    for (int b = 0; b < BANDS; b++) {
        lv_loop r;
        lv_loop_begin(m, &r, start[b], start[b + 1], sizes[b], 0, NULL);
        for (int a = 0; a < sizes[b]; a += most) {
            tile t = tile_at(m, g, r0, r.i, sizes[b], a, sizes[b] - a < most ? sizes[b] - a : most, col, p);
            emit_tile(m, &t);
        }
        lv_loop_end(m, &r, NULL);
    }
}

/* stage ← W's rows j0.. j0+len-1 at columns [col, col + 32) decoded: the
 * sub-block of each row that holds them, which lv_quant_decode takes as a
 * constant, so a switch on col's place in its block. */
static void decode_block(lv_emit *m, const grad *g, LLVMValueRef col) {
    gm_dtype dt = g->k->wtype;
    int B = gm_dtype_block(dt);
    LLVMValueRef sub = LLVMBuildSDiv(m->b, LLVMBuildSRem(m->b, col, lv_int(m, B), ""), lv_int(m, LV_QSUB), "");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "decoded");
    LLVMValueRef sw = LLVMBuildSwitch(m->b, sub, done, (unsigned)(B / LV_QSUB));
    for (int s = 0; s < B / LV_QSUB; s++) {
        LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "decode");
        LLVMAddCase(sw, lv_int(m, s), bb);
        LLVMPositionBuilderAtEnd(m->b, bb);
        lv_loop j;
        lv_loop_begin(m, &j, lv_int(m, 0), g->len, 1, 0, NULL);
        LLVMValueRef blk = lv_quant_block(m, dt, g->b, lv_add(m, g->j0, j.i), g->K, col);
        lv_store(m, g->stage, lv_muli(m, j.i, CHUNK), lv_quant_decode(m, dt, blk, s));
        lv_loop_end(m, &j, NULL);
        LLVMBuildBr(m->b, done);
    }
    LLVMPositionBuilderAtEnd(m->b, done);
}

/* stage ← B's rows j0.. j0+len-1 at p's columns from col, as f32. */
static void copy_block(lv_emit *m, const grad *g, LLVMValueRef col, const pieces *p) {
    gm_dtype dt = g->dw ? GM_F32 : g->k->wtype;
    lv_loop j;
    lv_loop_begin(m, &j, lv_int(m, 0), g->len, 1, 0, NULL);
    LLVMValueRef from = lv_add(m, lv_muli(m, lv_add(m, g->j0, j.i), g->K), col), to = lv_muli(m, j.i, CHUNK);
    for (int q = 0; q < p->n; q++)
        lv_store(m, g->stage, lv_addi(m, to, p->at[q]), lv_load(m, g->b, lv_addi(m, from, p->at[q]), dt, p->w[q]));
    lv_loop_end(m, &j, NULL);
}

/* Rows [r0, r1) of `cols` columns from col: B's block staged, then the tiles. */
static void emit_chunk(lv_emit *m, const grad *g, LLVMValueRef r0, LLVMValueRef r1, LLVMValueRef col, int cols) {
    pieces p = pieces_of(m, cols);
    if (gm_dtype_quantized(g->k->wtype)) decode_block(m, g, col);
    else copy_block(m, g, col, &p);
    emit_tiles(m, g, r0, r1, col, &p);
}

/* Rows [r0, r1) of columns [n0, n1): A's block packed, then chunks of 32
 * columns, then of 16, then K's last K % 16 when n1 = K (a quantized W's
 * K, n0 and n1 are multiples of its block, so of 32). */
static void emit_rows(lv_emit *m, const grad *g, LLVMValueRef r0, LLVMValueRef r1, LLVMValueRef n0, LLVMValueRef n1) {
    pack_rows(m, g, r0, r1);
    lv_loop c32, c16;
    lv_loop_begin(m, &c32, n0, n1, CHUNK, 0, NULL);
    emit_chunk(m, g, r0, r1, c32.i, CHUNK);
    lv_loop_end(m, &c32, NULL);
    if (gm_dtype_quantized(g->k->wtype)) return;
    lv_loop_begin(m, &c16, c32.i, n1, 16, 0, NULL);
    emit_chunk(m, g, r0, r1, c16.i, 16);
    lv_loop_end(m, &c16, NULL);
    if (g->K % 16 == 0) return;
    LLVMBasicBlockRef done = lv_if_begin(m, LLVMBuildICmp(m->b, LLVMIntEQ, n1, lv_int(m, g->K), ""));
    emit_chunk(m, g, r0, r1, lv_int(m, g->K - g->K % 16), (int)(g->K % 16));
    lv_if_end(m, done);
}

/* The blocks of EX_KC of the `steps` steps (at least one, so that dw is
 * written when T = 0), each over the call's columns for all rows at once
 * or a group of rows at a time. */
static void emit_blocks(lv_emit *m, grad *g, LLVMValueRef steps) {
    LLVMValueRef none = LLVMBuildICmp(m->b, LLVMIntSLT, steps, lv_int(m, 1), "");
    LLVMValueRef end = lv_addi(m, LLVMBuildSelect(m->b, none, lv_int(m, 1), steps, ""), EX_KC - 1);
    end = LLVMBuildAnd(m->b, end, lv_int(m, -EX_KC), "");
    LLVMValueRef n0 = column_n0(m), n1 = column_n1(m);
    lv_loop jb, r;
    lv_loop_begin(m, &jb, lv_int(m, 0), end, EX_KC, 0, NULL);
    g->j0 = jb.i;
    g->len = min_of(m, lv_int(m, EX_KC), lv_sub(m, steps, jb.i));
    g->first = LLVMBuildICmp(m->b, LLVMIntEQ, jb.i, lv_int(m, 0), "");
    if (g->group) {
        LLVMValueRef groups = lv_mul(m, LLVMBuildSDiv(m->b, lv_addi(m, g->rows, g->group - 1), lv_int(m, g->group), ""),
                                     lv_int(m, g->group));
        lv_loop_begin(m, &r, lv_int(m, 0), groups, g->group, 0, NULL);
        emit_rows(m, g, r.i, min_of(m, lv_addi(m, r.i, g->group), g->rows), n0, n1);
        lv_loop_end(m, &r, NULL);
    } else {
        emit_rows(m, g, lv_int(m, 0), g->rows, n0, n1);
    }
    lv_loop_end(m, &jb, NULL);
}

static LLVMValueRef stack_floats(lv_emit *m, int64_t n, const char *name) {
    LLVMValueRef p = LLVMBuildArrayAlloca(m->b, m->f32, lv_int(m, n), name);
    LLVMSetAlignment(p, 64);
    return p;
}

/* The tiles' rows R; where A's packed rows and B's staged block live: a
 * quantized W's in the scratch (T·EX_KC floats, a multiple of 16, so the
 * block after them is 64-byte aligned), else on the stack (96 KB and 32 KB). */
static void emit_matmul_grad_op(lv_emit *m, grad *g, LLVMValueRef steps) {
    pieces full = pieces_of(m, CHUNK);
    g->R = tile_rows(m, &full);
    if (gm_dtype_quantized(g->k->wtype)) {
        LLVMValueRef at = lv_muli(m, g->rows, EX_KC);
        g->packed = lv_field_ptr(m, offsetof(ex_call, scratch));
        g->stage = LLVMBuildInBoundsGEP2(m->b, m->f32, g->packed, &at, 1, "stage");
    } else {
        g->group = GROUP / g->R * g->R;
        g->packed = stack_floats(m, g->group * EX_KC, "packed");
        g->stage = stack_floats(m, EX_KC * CHUNK, "stage");
    }
    emit_blocks(m, g, steps);
}

static void emit_matmul_dx(lv_emit *m, const ex_kernel *k) {
    grad g = {.k = k, .a = lv_call_in(m, 0), .b = lv_call_in(m, 1), .out = lv_call_out(m), .rows = lv_call_T(m), .K = k->n, .N = k->k};
    emit_matmul_grad_op(m, &g, lv_int(m, k->k));
}

static void emit_matmul_dw(lv_emit *m, const ex_kernel *k) {
    grad g = {.k = k, .dw = 1, .a = lv_call_in(m, 0), .b = lv_call_in(m, 1), .out = lv_call_out(m), .rows = lv_int(m, k->k),
              .K = k->n, .N = k->k};
    emit_matmul_grad_op(m, &g, lv_call_T(m));
}

/* ---- embed_dw ---- */

typedef struct {
    LLVMValueRef dw, dy;
    LLVMValueRef to, from; /* the row's first float in dw; in dy, or NULL to zero the row */
} embed_row;

static void embed_piece(lv_emit *m, const embed_row *e, LLVMValueRef c, int w) {
    LLVMValueRef at = lv_add(m, e->to, c), v = lv_real(m, 0, w);
    if (e->from) v = lv_fadd(m, lv_load(m, e->dw, at, GM_F32, w), lv_load(m, e->dy, lv_add(m, e->from, c), GM_F32, w));
    lv_store(m, e->dw, at, v);
}

/* Columns [n0, n1) of one row: vectors, then single floats. */
static void embed_columns(lv_emit *m, const embed_row *e, LLVMValueRef n0, LLVMValueRef n1) {
    lv_loop v, s;
    lv_loop_begin(m, &v, n0, n1, m->target->width, 0, NULL);
    embed_piece(m, e, v.i, m->target->width);
    lv_loop_end(m, &v, NULL);
    lv_loop_begin(m, &s, v.i, n1, 1, 0, NULL);
    embed_piece(m, e, s.i, 1);
    lv_loop_end(m, &s, NULL);
}

static void emit_embed_dw(lv_emit *m, const ex_kernel *k) {
    LLVMValueRef ids = lv_call_in(m, 0), n0 = column_n0(m), n1 = column_n1(m);
    embed_row e = {lv_call_out(m), lv_call_in(m, 2), NULL, NULL};
    lv_loop v, t;
    lv_loop_begin(m, &v, lv_int(m, 0), lv_int(m, k->k), 1, 0, NULL);
    e.to = lv_muli(m, v.i, k->n);
    embed_columns(m, &e, n0, n1);
    lv_loop_end(m, &v, NULL);
    lv_loop_begin(m, &t, lv_int(m, 0), lv_call_T(m), 1, 0, NULL);
    LLVMValueRef id = LLVMBuildLoad2(m->b, m->i32, LLVMBuildInBoundsGEP2(m->b, m->i32, ids, &t.i, 1, ""), "");
    e.to = lv_muli(m, LLVMBuildSExt(m->b, id, m->i64, ""), k->n);
    e.from = lv_muli(m, t.i, k->n);
    embed_columns(m, &e, n0, n1);
    lv_loop_end(m, &t, NULL);
}

void lv_emit_matmul_grad(lv_emit *m, const ex_kernel *k) {
    switch (k->op) {
    case IR_MATMUL_DX: emit_matmul_dx(m, k); break;
    case IR_MATMUL_DW: emit_matmul_dw(m, k); break;
    case IR_EMBED_DW: emit_embed_dw(m, k); break;
    default: fprintf(stderr, "gemmac: internal error: %s is not a matmul gradient\n", ir_ops[k->op].name), abort();
    }
}
