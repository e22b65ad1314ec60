/* exec.c — the engine of compiled kernels, whatever compiled them: an
 * rt_engine that walks the IR's nodes and calls each node's kernel. It holds
 * no LLVM, so the JIT backend (llvm_engine.c, kernels from LLJIT) and AOT
 * executables (kernels linked in) share it.
 *
 * Creation describes each node's kernel (kernel.h), keeps one per distinct
 * description (a model's layers share all of theirs), has the resolver find
 * code for them and times that. A call then walks the nodes like the
 * reference interpreter, calling each node's kernel on activation blocks of
 * one arena laid out as the graph says (ir_arena_layout: plan_memory's plan,
 * or a block per activation when it did not run), weights straight from the
 * checkpoint mapping, and the KV cache of runtime/kv_cache.h: an attention
 * kernel reads the ring and this call's k, v rows, then rt_kv_store appends
 * those rows. A matmul big enough to pay for it is split over the cores by
 * output columns (runtime/threads.h), a prefill's attention by query rows in
 * equal shares of keys. With a profile set, each node's wall time is added
 * to its op's entry. As in the reference, the head (the nodes after the
 * last layer) runs on the last row only unless every row's logits are asked
 * for.
 *
 * With several sequences (rt_engine_opts.sequences) each has a KV cache;
 * decode_batch runs their rows through one walk of the nodes, so every
 * matmul reads its weight once for all of them, and only the two ops that
 * depend on a row's position, rope and attention, are called row by row,
 * each at its sequence's position and (attention) on its cache.
 *
 * A training graph (passes/differentiate.c) runs on a trainer made of the
 * same parts: the ops that depend on a row's position in its sequence
 * (rope, attention and their gradients) run a packed sequence at a time from
 * position 0, with no KV cache; the head's values of S rows (the rows with a
 * target, passes/score_head.c) live in the second arena, sized for S rows;
 * the loss and the weights' gradients, of fixed shapes, have buffers of
 * their own. The gradient kernels split over the cores as their forward
 * ops do: matmul_dx, matmul_dw and embed_dw by output columns, attention's
 * by query rows (dq) or key rows (dk, dv) in equal shares of work. */
#include "exec.h"

#include "runtime/kv_cache.h"
#include "runtime/threads.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    rt_engine base;
    const ir_graph *g;
    const gm_tensor *const *bound;  /* per value id */
    rt_kv_cache **kv;               /* per sequence: one slot per attention op */
    int seq;                        /* the sequence prefill and decode work on */
    ex_kernel_fn *kernel;           /* per node */
    ex_resolver resolver;
    void *handle;                   /* the resolver's, released with the engine */
    int64_t *offset;                /* per value id: columns before its arena block, -1 if none */
    char *in_head;                  /* per value id: made by the head (kept in head_arena) */
    int64_t width, head_width;      /* columns of the two arenas */
    float *arena;                   /* width × room floats: the values before the head */
    int room;                       /* rows the arena holds */
    float *head_arena;              /* head_width × head_rows floats: the head's values, */
    int head_rows, head_room;       /* of one row unless every row's logits are asked for */
    ex_kernel *ks;                  /* the distinct kernels */
    int n_ks;
    float *scratch;                 /* per thread: scratch_stride floats (ex_call.scratch) */
    int64_t scratch_stride;
    rt_pool *pool;
    float **fixed;                  /* training: per value id, a fixed-shape activation's own buffer, else NULL */
    const int32_t *targets;         /* training: the batch's targets, the graph's second input */
} exec_engine;

/* Multiply-adds below which a matmul runs on one thread: a few microseconds
 * of work, about what handing it to the pool costs. */
#define SPLIT_MIN (1 << 17)

ex_kernel ex_kernel_default(ir_op op, gm_dtype wtype, int64_t n, int64_t k) {
    ex_kernel d;
    memset(&d, 0, sizeof d);
    d.op = op, d.wtype = wtype, d.n = n, d.k = k;
    for (int a = 0; a < IR_ATTR_COUNT; a++)
        if (ir_ops[op].attrs >> a & 1 && !isnan(ir_attr_defaults[a])) d.attr[a] = ir_attr_defaults[a];
    return d;
}

void ex_kernel_of(const ir_graph *g, const ir_node *n, const gm_tensor *const *bound, ex_kernel *k) {
    memset(k, 0, sizeof *k);
    k->op = n->op;
    k->n = ir_value_cols(g, n->out);
    for (int a = 0; a < IR_ATTR_COUNT; a++)
        if (ir_ops[n->op].attrs >> a & 1) k->attr[a] = n->attr[a];
    int norm = n->op == IR_RMS_NORM || n->op == IR_NORM_ADD;
    if (n->op == IR_EMBED || norm || ir_is_matmul(n->op) || n->op == IR_MATMUL_DX) k->wtype = bound[n->in[1]]->dtype;
    if (norm) k->k = g->values[n->in[1]].dims[0];
    if (ir_is_matmul(n->op)) k->k = ir_value_cols(g, n->in[0]);
    if (n->op == IR_RMS_NORM_DX || n->op == IR_RMS_NORM_DW) { /* (dy, x, w) */
        k->wtype = bound[n->in[2]]->dtype;
        k->k = g->values[n->in[2]].dims[0];
        k->n = ir_value_cols(g, n->in[1]);
    }
    if (n->op == IR_MATMUL_DX || n->op == IR_MATMUL_DW) k->k = ir_value_cols(g, n->in[0]);
    if (n->op == IR_EMBED_DW) k->k = g->values[n->in[1]].dims[0];
    if (n->op == IR_CROSS_ENTROPY) k->n = ir_value_cols(g, n->in[0]);
    if (ir_is_matmul(n->op) || n->op == IR_EMBED) k->panel = g->values[n->in[1]].panel;
    if (n->op == IR_NORM_MATMUL) k->ntype = bound[n->in[2]]->dtype;
}

void ex_kernel_symbol(char *buf, size_t len, const ex_kernel *k, int i) {
    snprintf(buf, len, "gm_%s_%d", ir_ops[k->op].name, i);
}

static int64_t round_up16(int64_t n) { return (n + 15) & ~(int64_t)15; }

/* The normalised rows of a norm prologue; x's rows rounded to 8 bits
 * (--activations int8: as f32, or as quants, which take less), or to bf16
 * (as f32, or as bf16 pairs); a panel
 * kernel's block of rows packed for its tiles (the bf16 and int8 tiles,
 * whose x is laid out once in the space above, keep their sums between
 * blocks of k there: T·EX_PANEL floats) and its block of weights
 * converted to f32 (a quantized weight's decoded, or its int8 panel). */
int64_t ex_scratch_floats(const ex_kernel *k, int64_t T) {
    if (k->op == IR_ATTENTION_DQ || k->op == IR_ATTENTION_DK || k->op == IR_ATTENTION_DV) /* attention_grad.c's layout */
        return round_up16(4 * T) + round_up16(2 * T * (int64_t)k->attr[IR_A_HEADS]) + round_up16((int64_t)k->attr[IR_A_HEAD_DIM]);
    int64_t n = k->op == IR_NORM_MATMUL ? round_up16(T * k->k) : 0;
    if (k->attr[IR_A_X_INT8] && gm_dtype_quantized(k->wtype)) n += round_up16(T * k->k); /* x rounded to 8 bits */
    if (k->attr[IR_A_X_BF16] && k->wtype == GM_BF16) n += round_up16(T * k->k); /* x rounded to bf16 */
    if (k->panel || gm_dtype_quantized(k->wtype))
        n += round_up16(T * EX_KC) + (k->wtype != GM_F32 ? (int64_t)EX_KC * EX_PANEL : 0);
    return n;
}

static float *act(const exec_engine *j, int v) {
    if (j->fixed && j->fixed[v]) return j->fixed[v];
    return j->in_head[v] ? j->head_arena + j->offset[v] * j->head_rows : j->arena + j->offset[v] * j->room;
}

/* The two arenas (and the kernels' scratch) for calls of T rows; head_rows of them reach the head. */
static void reserve_rows(exec_engine *j, int T, int head_rows) {
    j->head_rows = head_rows;
    if (head_rows > j->head_room) {
        free(j->head_arena);
        j->head_arena = gm_malloc((size_t)j->head_width * head_rows * sizeof(float));
        j->head_room = head_rows;
    }
    if (T <= j->room) return;
    free(j->arena);
    j->arena = gm_malloc((size_t)j->width * T * sizeof(float));
    j->room = T;
    j->scratch_stride = 0;
    for (int i = 0; i < j->n_ks; i++) {
        int64_t need = round_up16(ex_scratch_floats(&j->ks[i], T));
        if (need > j->scratch_stride) j->scratch_stride = need;
    }
    free(j->scratch);
    j->scratch = gm_aligned64((size_t)j->scratch_stride * rt_pool_threads(j->pool) * sizeof(float));
}

/* Value v as a kernel input, from row `row` on. */
static const void *input_of(const exec_engine *j, int v, const int32_t *tokens, int64_t row) {
    switch (j->g->values[v].kind) {
    case IR_INPUT: return (v == j->g->targets ? j->targets : tokens) + row;
    case IR_WEIGHT: return j->bound[v]->data;
    default: return act(j, v) + row * ir_value_cols(j->g, v);
    }
}

typedef struct {
    ex_kernel_fn fn;
    const ex_call *call;
    int64_t unit;              /* columns a part's range is a multiple of */
    float *scratch;            /* part p's: scratch + p · stride */
    int64_t stride;
} split_job;

/* Part `part` of `parts` of [0, n) in equal shares, multiples of unit: [*lo, *hi). */
static void share_of(int64_t n, int64_t unit, int part, int parts, int64_t *lo, int64_t *hi) {
    int64_t step = (n + unit * parts - 1) / (unit * parts) * unit;
    *lo = part * step < n ? part * step : n;
    *hi = *lo + step < n ? *lo + step : n;
}

/* Part `part` of the output columns, in multiples of the kernel's tiles or panels. */
static void column_part(void *arg, int part, int parts) {
    const split_job *s = arg;
    ex_call c = *s->call;
    share_of(c.n1, s->unit, part, parts, &c.n0, &c.n1);
    c.scratch = s->scratch + part * s->stride;
    if (c.n0 < c.n1) s->fn(&c);
}

/* Output columns [0, c->n1) split over the cores in multiples of unit when
 * there are `work` multiply-adds or more to share. */
static void run_columns(exec_engine *j, ex_kernel_fn fn, ex_call *c, int64_t unit, int64_t work) {
    c->scratch = j->scratch;
    if (rt_pool_threads(j->pool) > 1 && work >= SPLIT_MIN)
        rt_pool_run(j->pool, column_part, &(split_job){fn, c, unit, j->scratch, j->scratch_stride});
    else
        fn(c);
}

static void run_matmul(exec_engine *j, ex_kernel_fn fn, ex_call *c, const ir_node *n) {
    int64_t K = ir_value_cols(j->g, n->in[0]), panel = j->g->values[n->in[1]].panel;
    if (gm_dtype_quantized(j->bound[n->in[1]]->dtype)) panel = EX_PANEL; /* prefill decodes them into panels */
    run_columns(j, fn, c, panel ? panel : 4, c->T * K * c->n1);
}

/* matmul_dx, matmul_dw and embed_dw by columns of their output: whole
 * blocks of a quantized weight's rows (matmul_dx decodes them), else
 * multiples of 16 floats, so no two parts share a cache line. */
static void run_gradient_columns(exec_engine *j, ex_kernel_fn fn, ex_call *c, const ir_node *n) {
    int64_t block = n->op == IR_MATMUL_DX ? gm_dtype_block(j->bound[n->in[1]]->dtype) : 1;
    int64_t depth = n->op == IR_EMBED_DW ? 1 : ir_value_cols(j->g, n->in[0]);
    run_columns(j, fn, c, block > 16 ? block : 16, c->T * depth * c->n1);
}

typedef struct {
    ex_kernel_fn fn;
    const ex_call *call;
    int64_t window;
    int key_rows;              /* the op's rows are keys (attention_dk, _dv), else queries */
    float *scratch;            /* part p's: scratch + p · stride */
    int64_t stride;
} attention_job;

/* The work of row t: the keys query row t sees, or the queries that see key t. */
static int64_t keys_of(const attention_job *s, int64_t t) {
    int64_t n = s->key_rows ? s->call->T - t : s->call->pos + t + 1;
    return s->window > 0 && s->window < n ? s->window : n;
}

/* The first row of part `part`: rows go to parts by equal shares of work. */
static int64_t first_row(const attention_job *s, int part, int parts) {
    int64_t T = s->call->T, total = 0, seen = 0, t = 0;
    for (int64_t r = 0; r < T; r++) total += keys_of(s, r);
    while (t < T && seen * parts < total * part) seen += keys_of(s, t++);
    return t;
}

static void attention_part(void *arg, int part, int parts) {
    const attention_job *s = arg;
    ex_call c = *s->call;
    c.n0 = first_row(s, part, parts), c.n1 = first_row(s, part + 1, parts);
    c.scratch = s->scratch + part * s->stride;
    if (c.n0 < c.n1) s->fn(&c);
}

/* Attention (or one of its gradients) over rows [0, T), split by rows (and
 * so by keys) when there are several and enough work: decode's one row
 * stays on one thread. */
static void run_attention(exec_engine *j, ex_kernel_fn fn, ex_call *c, const ir_node *n) {
    attention_job s = {fn, c, (int64_t)n->attr[IR_A_WINDOW], n->op == IR_ATTENTION_DK || n->op == IR_ATTENTION_DV,
                       j->scratch, j->scratch_stride};
    int64_t work = 2 * (int64_t)n->attr[IR_A_HEADS] * (int64_t)n->attr[IR_A_HEAD_DIM]; /* multiply-adds a key */
    int64_t keys = 0;
    for (int64_t t = 0; t < c->T; t++) keys += keys_of(&s, t);
    c->n0 = 0, c->n1 = c->T;
    c->scratch = j->scratch;
    if (rt_pool_threads(j->pool) > 1 && c->T > 1 && keys * work >= SPLIT_MIN)
        rt_pool_run(j->pool, attention_part, &s);
    else
        fn(c);
}

typedef struct {
    ex_kernel_fn fn;
    const ex_call *call;
    int64_t cols;
    int n_in;
} rows_job;

/* Part `part` of an elementwise call's rows: its inputs and output from row r0 on. */
static void rows_part(void *arg, int part, int parts) {
    const rows_job *s = arg;
    ex_call c = *s->call;
    int64_t r0, r1;
    share_of(c.T, 1, part, parts, &r0, &r1);
    for (int k = 0; k < s->n_in; k++) c.in[k] = (const float *)c.in[k] + r0 * s->cols;
    c.out += r0 * s->cols;
    c.T = r1 - r0;
    if (c.T > 0) s->fn(&c);
}

/* An elementwise op by rows over the cores when it has many elements (a
 * gradient's sum over a whole embedding table). */
static void run_elementwise(exec_engine *j, ex_kernel_fn fn, ex_call *c, const ir_node *n) {
    int64_t cols = ir_value_cols(j->g, n->out);
    if (rt_pool_threads(j->pool) > 1 && c->T * cols >= 16 * SPLIT_MIN)
        rt_pool_run(j->pool, rows_part, &(rows_job){fn, c, cols, ir_ops[n->op].n_inputs});
    else
        fn(c);
}

/* Kernel fn of node n on call c, over the cores as its op splits. */
static void run_kernel(exec_engine *j, ex_kernel_fn fn, ex_call *c, const ir_node *n) {
    switch ((int)n->op) {
    case IR_MATMUL:
    case IR_NORM_MATMUL:
    case IR_MATMUL_ADD: run_matmul(j, fn, c, n); break;
    case IR_ATTENTION:
    case IR_ATTENTION_DQ:
    case IR_ATTENTION_DK:
    case IR_ATTENTION_DV: run_attention(j, fn, c, n); break;
    case IR_MATMUL_DX:
    case IR_MATMUL_DW:
    case IR_EMBED_DW: run_gradient_columns(j, fn, c, n); break;
    case IR_CROSS_ENTROPY_DX: /* by rows, as many as the call has */
        c->n1 = c->T;
        run_columns(j, fn, c, 1, c->T * ir_value_cols(j->g, n->out));
        break;
    default:
        if (ir_ops[n->op].kind == ELEMWISE) run_elementwise(j, fn, c, n);
        else fn(c);
    }
}

/* Node i on rows [row, row + T) of the arenas, the first at position pos,
 * attention on cache kv. */
static void run_rows(exec_engine *j, int i, const int32_t *tokens, int64_t row, int T, int pos, rt_kv_cache *kv) {
    const ir_node *n = &j->g->nodes[i];
    int64_t C = ir_value_cols(j->g, n->out);
    ex_call c = {.out = act(j, n->out) + row * C, .T = T, .pos = pos, .n1 = C};
    for (int k = 0; k < ir_ops[n->op].n_inputs; k++) c.in[k] = input_of(j, n->in[k], tokens, row);
    rt_kv_slot *slot = n->op == IR_ATTENTION && n->cache_slot >= 0 ? &kv->slots[n->cache_slot] : NULL;
    if (slot) c.k_cache = slot->k, c.v_cache = slot->v, c.rows = slot->rows;
    else c.rows = 1; /* a training graph's attention: no key before pos 0, but the kernel takes positions mod rows */
    run_kernel(j, j->kernel[i], &c, n);
    if (slot) rt_kv_store(slot, pos, T, c.in[1], c.in[2]);
}

/* Node i on the T rows of a call: one sequence's, from position pos on, or
 * (seqs) one row of each sequence seqs[r] at its position pos_of[r]. */
static void run_node(exec_engine *j, int i, const int32_t *tokens, int T, int pos, const int *seqs, const int *pos_of) {
    const ir_node *n = &j->g->nodes[i];
    double t0 = j->base.profile ? gm_now_s() : 0;
    if (!seqs) run_rows(j, i, tokens, 0, T, pos, j->kv[j->seq]);
    else if (n->op != IR_ROPE && n->op != IR_ATTENTION) run_rows(j, i, tokens, 0, T, 0, NULL);
    else
        for (int r = 0; r < T; r++) run_rows(j, i, tokens, r, 1, pos_of[r], j->kv[seqs[r]]);
    if (j->base.profile) rt_profile_add(j->base.profile, ir_ops[n->op].name, gm_now_s() - t0);
}

static int exec_prefill(rt_engine *en, const int32_t *tokens, int n, int pos, float *logits, int all_rows,
                       gm_err *e) {
    exec_engine *j = (exec_engine *)en;
    if (rt_check_span(en, tokens, n, pos, e)) return -1;
    const ir_graph *g = j->g;
    reserve_rows(j, n, all_rows ? n : 1);
    int head = ir_head_start(g);
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *nd = &g->nodes[i];
        if (i == head && !all_rows && n > 1) { /* the head needs the last row only */
            int64_t C = ir_value_cols(g, nd->in[0]);
            memmove(act(j, nd->in[0]), act(j, nd->in[0]) + (n - 1) * C, C * sizeof(float));
            tokens += n - 1, n = 1;
        }
        run_node(j, i, tokens, n, pos, NULL, NULL);
    }
    memcpy(logits, act(j, g->logits), (size_t)n * g->vocab * sizeof(float));
    return 0;
}

static int exec_decode(rt_engine *en, int32_t token, int pos, float *logits, gm_err *e) {
    return exec_prefill(en, &token, 1, pos, logits, 0, e);
}

static int exec_use_sequence(rt_engine *en, int seq, gm_err *e) {
    if (seq < 0 || seq >= en->sequences) return gm_fail(e, "sequence %d: expected 0 to %d", seq, en->sequences - 1);
    ((exec_engine *)en)->seq = seq;
    return 0;
}

static int exec_copy_sequence(rt_engine *en, int from, int to, int n, gm_err *e) {
    exec_engine *j = (exec_engine *)en;
    if (from < 0 || from >= en->sequences || to < 0 || to >= en->sequences)
        return gm_fail(e, "copying sequence %d to %d: expected sequences 0 to %d", from, to, en->sequences - 1);
    if (n < 0 || n > en->context) return gm_fail(e, "copying %d positions: the context holds %d", n, en->context);
    if (from != to) rt_kv_copy(j->kv[to], j->kv[from], n);
    return 0;
}

static int exec_decode_batch(rt_engine *en, int n, const int32_t *tokens, const int *seq, const int *pos, float *logits,
                             gm_err *e) {
    exec_engine *j = (exec_engine *)en;
    if (rt_check_batch(en, n, tokens, seq, pos, e)) return -1;
    reserve_rows(j, n, n);
    for (int i = 0; i < j->g->n_nodes; i++) run_node(j, i, tokens, n, 0, seq, pos);
    memcpy(logits, act(j, j->g->logits), (size_t)n * j->g->vocab * sizeof(float));
    return 0;
}

static void exec_free(rt_engine *en) {
    exec_engine *j = (exec_engine *)en;
    if (j->handle) j->resolver.release(j->handle);
    for (int s = 0; j->kv && s < j->base.sequences; s++) rt_kv_free(j->kv[s]);
    free(j->kv);
    free(j->offset);
    free(j->kernel);
    free(j->arena);
    free(j->head_arena);
    free(j->in_head);
    free(j->scratch);
    free(j->ks);
    rt_pool_free(j->pool);
    free(j);
}

int ex_kernels_of(const ir_graph *g, const gm_tensor *const *bound, ex_kernel *ks, int *which) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        ex_kernel_of(g, &g->nodes[i], bound, &ks[n]);
        which[i] = 0;
        while (which[i] < n && memcmp(&ks[which[i]], &ks[n], sizeof *ks)) which[i]++;
        if (which[i] == n) n++;
    }
    return n;
}

/* One kernel per distinct description: resolves them and points every node at its own. */
static int resolve_kernels(exec_engine *j, gm_err *e) {
    const ir_graph *g = j->g;
    ex_kernel *ks = gm_malloc(g->n_nodes * sizeof *ks);
    int *which = gm_malloc(g->n_nodes * sizeof *which), n = ex_kernels_of(g, j->bound, ks, which);
    ex_kernel_fn *fns = gm_calloc(n, sizeof *fns);
    int rc = j->resolver.resolve(j->resolver.ctx, ks, n, fns, &j->handle, &j->base.from_cache, e);
    j->kernel = gm_malloc(g->n_nodes * sizeof *j->kernel);
    for (int i = 0; !rc && i < g->n_nodes; i++) j->kernel[i] = fns[which[i]];
    j->ks = ks;
    j->n_ks = n;
    free(fns);
    free(which);
    return rc;
}

/* The head (the nodes after the last layer) runs on one row in a normal
 * call, so its values — the logits, vocab columns wide, above all — get an
 * arena of their own instead of `room` rows of the shared one; so do a
 * training graph's values of S rows (passes/score_head.c), which are as
 * many as the batch's scored rows. head: the inference head's first node,
 * -1 for a training graph. */
static void split_arena(exec_engine *j, int head) {
    const ir_graph *g = j->g;
    j->in_head = gm_calloc(g->n_values, 1);
    for (int i = head < 0 ? g->n_nodes : head; i < g->n_nodes; i++) j->in_head[g->nodes[i].out] = 1;
    for (int v = 0; v < g->n_values; v++) {
        if (g->loss >= 0) j->in_head[v] = g->values[v].dims[0] == IR_DIM_S;
        if (j->offset[v] < 0) continue;
        int64_t end = j->offset[v] + ir_value_cols(g, v), *w = j->in_head[v] ? &j->head_width : &j->width;
        if (end > *w) *w = end;
    }
}

/* What inference and training engines share: the kernels, resolved and
 * timed, the arena's layout and the threads. */
static exec_engine *engine_new(const ir_graph *g, const gm_tensor *const *bound, const ex_resolver *r, int head,
                               gm_err *e) {
    exec_engine *j = gm_calloc(1, sizeof *j);
    j->base.free = exec_free;
    j->resolver = *r;
    j->g = g;
    j->bound = bound;
    double t0 = gm_now_s();
    if (resolve_kernels(j, e)) {
        exec_free(&j->base);
        return NULL;
    }
    j->base.compile_s = gm_now_s() - t0;
    j->offset = gm_malloc(g->n_values * sizeof *j->offset);
    ir_arena_layout(g, j->offset);
    split_arena(j, head);
    j->pool = rt_pool_new(rt_default_threads());
    return j;
}

rt_engine *ex_engine_create(const ir_graph *g, const gm_tensor *const *bound, const rt_engine_opts *o,
                            const char *name, const ex_resolver *r, gm_err *e) {
    if (rt_check_opts(o, g->max_context, name, 1, e)) return NULL;
    exec_engine *j = engine_new(g, bound, r, ir_head_start(g), e);
    if (!j) return NULL;
    double compile_s = j->base.compile_s;
    j->base = (rt_engine){.backend = name, .vocab = g->vocab, .context = o->context, .compile_s = compile_s,
                          .prefill = exec_prefill, .decode = exec_decode, .free = exec_free,
                          .from_cache = j->base.from_cache, .sequences = o->sequences > 1 ? o->sequences : 1,
                          .use_sequence = exec_use_sequence, .decode_batch = exec_decode_batch,
                          .copy_sequence = exec_copy_sequence};
    int *windows = gm_malloc(g->n_cache_slots * sizeof(int)), *cols = gm_malloc(g->n_cache_slots * sizeof(int));
    ir_cache_slots(g, windows, cols);
    j->kv = gm_calloc(j->base.sequences, sizeof *j->kv);
    for (int s = 0; s < j->base.sequences; s++) {
        j->kv[s] = rt_kv_create(g->n_cache_slots, windows, cols, o->context, o->full_kv);
        j->base.kv_bytes += rt_kv_bytes(j->kv[s]);
    }
    free(windows);
    free(cols);
    return &j->base;
}

/* ---- training graphs ---- */

typedef struct {
    rt_trainer base;
    exec_engine *j;
} exec_trainer;

/* Whether op depends on a row's position in its sequence, and so runs a sequence at a time. */
static int per_sequence(ir_op op) {
    return op == IR_ROPE || op == IR_ROPE_DX || op == IR_ATTENTION || op == IR_ATTENTION_DQ ||
           op == IR_ATTENTION_DK || op == IR_ATTENTION_DV;
}

/* Training node i on batch b (of which `scored` rows have a target): a
 * position-dependent op on each packed sequence from position 0, any other
 * on the rows it walks: the batch's, the scored ones (passes/score_head.c),
 * or a sum of gradients' own. */
static void train_node(exec_engine *j, int i, const rt_batch *b, int scored) {
    const ir_node *n = &j->g->nodes[i];
    const ir_value *out = &j->g->values[n->out];
    double t0 = j->base.profile ? gm_now_s() : 0;
    if (!per_sequence(n->op)) {
        int64_t rows = ir_node_rows(j->g, n);
        int T = rows == IR_DIM_T ? b->T : rows == IR_DIM_S ? scored : (int)(ir_value_elems(out) / ir_value_cols(j->g, n->out));
        run_rows(j, i, b->tokens, 0, T, 0, NULL);
    } else {
        for (int s0 = 0, s1; s0 < b->T; s0 = s1) {
            for (s1 = s0 + 1; s1 < b->T && (!b->start || b->start[s1] == s0);) s1++;
            run_rows(j, i, b->tokens, s0, s1 - s0, 0, NULL);
        }
    }
    if (j->base.profile) rt_profile_add(j->base.profile, ir_ops[n->op].name, gm_now_s() - t0);
}

static float *const *exec_train_run(rt_trainer *t, const rt_batch *b, gm_err *e) {
    exec_engine *j = ((exec_trainer *)t)->j;
    const ir_graph *g = j->g;
    if (rt_check_training_batch(b, g->vocab, g->max_context, e)) return NULL;
    int scored = rt_batch_scored(b);
    reserve_rows(j, b->T, scored);
    j->targets = b->targets;
    j->base.profile = t->profile;
    for (int i = 0; i < g->n_nodes && !(b->loss_only && i > 0 && g->nodes[i - 1].out == g->loss); i++)
        train_node(j, i, b, scored);
    t->activation_bytes = ((size_t)j->width * j->room + (size_t)j->head_width * j->head_room) * sizeof(float);
    return j->fixed;
}

static void exec_train_free(rt_trainer *t) {
    exec_engine *j = ((exec_trainer *)t)->j;
    for (int v = 0; v < j->g->n_values; v++) free(j->fixed[v]);
    free(j->fixed);
    exec_free(&j->base);
    free(t);
}

rt_trainer *ex_trainer_create(const ir_graph *g, const gm_tensor *const *bound, const char *name,
                              const ex_resolver *r, gm_err *e) {
    if (g->loss < 0) {
        gm_fail(e, "%s: not a training graph (no loss)", g->name);
        return NULL;
    }
    exec_engine *j = engine_new(g, bound, r, -1, e);
    if (!j) return NULL;
    j->fixed = gm_calloc(g->n_values, sizeof *j->fixed);
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].kind == IR_ACT && ir_value_fixed(&g->values[v]))
            j->fixed[v] = gm_calloc(ir_value_elems(&g->values[v]), sizeof(float));
    exec_trainer *x = gm_calloc(1, sizeof *x);
    x->base = (rt_trainer){.backend = name, .compile_s = j->base.compile_s, .from_cache = j->base.from_cache,
                           .run = exec_train_run, .free = exec_train_free};
    x->j = j;
    return &x->base;
}
