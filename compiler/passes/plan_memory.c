/* plan_memory.c — lays the activations out in one arena, reusing memory
 * between values that are never alive at once.
 *
 * Every activation is f32 [T, C] with T the tokens of the call, so a block
 * is C columns wide (floats per row of room) and the problem is one of
 * intervals on a line: value v occupies columns [offset, offset + C) during
 * its live range [defining node, last reading node] (ir_live_ranges). Ranges
 * that touch overlap, so a node's output shares no memory with its inputs,
 * but one: an op whose kernels compute each row from that row alone,
 * reading before writing (elementwise ops, cross_entropy_dx), writes its
 * output over an input of its shape that no later node reads, so the two
 * are one block whose range spans both. The logits live to the end. Values are placed greedily, widest
 * first (ties: in definition order), each into the narrowest gap between the
 * already placed values whose ranges overlap its own that fits it, else after
 * the last of them: best fit by decreasing size. The result goes into the
 * graph (arena_offset, arena_width). A training graph's loss and
 * gradients, of fixed shapes, stay out of it, and its values of S rows (the
 * head on the scored rows, passes/score_head.c) are laid out apart, for an
 * arena of S rows (backends/exec). It runs last, after eliminate_dead has
 * renumbered the values, since any later change to the graph drops it. */
#include "passes.h"

#include <stdlib.h>

typedef struct {
    int64_t cols, rows; /* rows: IR_DIM_T, or IR_DIM_S (an arena of their own) */
    int first, last, v;
} live_value;

typedef struct {
    int64_t at, top; /* columns [at, top) */
} block;

static int wider_first(const void *a, const void *b) {
    const live_value *x = a, *y = b;
    if (x->cols != y->cols) return x->cols > y->cols ? -1 : 1;
    return x->first - y->first;
}

static int lower_first(const void *a, const void *b) {
    const block *x = a, *y = b;
    return (x->at > y->at) - (x->at < y->at);
}

static int alive_together(const live_value *a, const live_value *b) {
    return a->rows == b->rows && a->first <= b->last && b->first <= a->last;
}

/* The offset for a block of cols columns: the narrowest gap between the
 * blocks busy[0..n) (sorted here) that fits it, else the end of the last. */
static int64_t best_fit(block *busy, int n, int64_t cols) {
    qsort(busy, n, sizeof *busy, lower_first);
    int64_t end = 0, best = -1, best_gap = 0;
    for (int i = 0; i < n; i++) {
        int64_t gap = busy[i].at - end;
        if (gap >= cols && (best < 0 || gap < best_gap)) best = end, best_gap = gap;
        if (busy[i].top > end) end = busy[i].top;
    }
    return best >= 0 ? best : end;
}

/* home[v]: the value whose block v takes (itself, or the input its node
 * overwrites, and so on along a chain); last[] of each home extended to
 * the chain's end. */
static void chain_in_place(const ir_graph *g, int *home, int *first, int *last) {
    for (int v = 0; v < g->n_values; v++) home[v] = v;
    char *taken = gm_calloc(g->n_values, 1);
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        const ir_value *out = &g->values[n->out];
        if (!ir_writes_in_place(n->op) || ir_value_fixed(out)) continue;
        for (int k = 0; k < ir_ops[n->op].n_inputs; k++) {
            int x = n->in[k];
            const ir_value *in = &g->values[x];
            if (first[x] < 0 || last[x] != i || taken[x] || ir_value_fixed(in) || in->dims[0] != out->dims[0] ||
                ir_value_cols(g, x) != ir_value_cols(g, n->out))
                continue;
            taken[x] = 1;
            home[n->out] = home[x];
            if (last[n->out] > last[home[x]]) last[home[x]] = last[n->out];
            break;
        }
    }
    free(taken);
}

/* The blocks to place, one per chain, with their columns and live ranges, widest first. */
static live_value *by_width(const ir_graph *g, int *home, int *n) {
    int *first = gm_malloc(g->n_values * sizeof *first), *last = gm_malloc(g->n_values * sizeof *last);
    ir_live_ranges(g, first, last);
    chain_in_place(g, home, first, last);
    live_value *vs = gm_malloc(g->n_values * sizeof *vs);
    *n = 0;
    for (int v = 0; v < g->n_values; v++)
        if (first[v] >= 0 && !ir_value_fixed(&g->values[v]) && home[v] == v)
            vs[(*n)++] = (live_value){ir_value_cols(g, v), g->values[v].dims[0], first[v], last[v], v};
    qsort(vs, *n, sizeof *vs, wider_first);
    free(first);
    free(last);
    return vs;
}

void pass_plan_memory(ir_graph *g) {
    int n, *home = gm_malloc(g->n_values * sizeof *home);
    live_value *vs = by_width(g, home, &n);
    block *placed = gm_malloc(n * sizeof *placed), *busy = gm_malloc(n * sizeof *busy);
    ir_drop_plan(g);
    g->arena_offset = gm_malloc(g->n_values * sizeof *g->arena_offset);
    for (int v = 0; v < g->n_values; v++) g->arena_offset[v] = -1;
    for (int i = 0; i < n; i++) {
        int n_busy = 0;
        for (int k = 0; k < i; k++)
            if (alive_together(&vs[k], &vs[i])) busy[n_busy++] = placed[k];
        int64_t at = best_fit(busy, n_busy, vs[i].cols);
        placed[i] = (block){at, at + vs[i].cols};
        g->arena_offset[vs[i].v] = at;
        if (placed[i].top > g->arena_width) g->arena_width = placed[i].top;
    }
    for (int v = 0; v < g->n_values; v++)
        if (home[v] != v) g->arena_offset[v] = g->arena_offset[home[v]];
    free(home);
    free(vs);
    free(placed);
    free(busy);
}
