/* eliminate_common.c — computes each thing once (common subexpression
 * elimination).
 *
 * 1. Weights: two weight values that read the same checkpoint tensor and
 *    transform it the same way (the same derived_from, derived_add,
 *    derived_mul and panel, shape and dtype; see ir_add_derived_weight) are
 *    one weight; every reader of the later one reads the earlier one, so it
 *    is bound and folded once.
 * 2. Nodes: two nodes with the same op, the same inputs (in the same order)
 *    and the same attributes compute the same value; the later node's
 *    readers are pointed at the earlier one's output, which leaves the later
 *    node unread for eliminate_dead to remove. Nodes are visited in order
 *    with their inputs already redirected, so whole duplicated chains merge.
 * Attention nodes are never merged: each owns a KV cache slot that it reads
 * and appends to, state that two identical-looking calls do not share. The
 * logits node is never the one replaced, so the logits stay the graph's
 * output. */
#include "passes.h"

#include <stdlib.h>

static const char *tensor_of(const ir_value *w) { return w->derived_from ? w->derived_from : w->name; }

static int same_weight(const ir_value *a, const ir_value *b) {
    double add_a = a->derived_from ? a->derived_add : 0, mul_a = a->derived_from ? a->derived_mul : 1;
    double add_b = b->derived_from ? b->derived_add : 0, mul_b = b->derived_from ? b->derived_mul : 1;
    if (strcmp(tensor_of(a), tensor_of(b)) || add_a != add_b || mul_a != mul_b || a->panel != b->panel) return 0;
    if (a->dtype != b->dtype || a->pin_dtype != b->pin_dtype || a->ndim != b->ndim) return 0;
    return !memcmp(a->dims, b->dims, a->ndim * sizeof *a->dims);
}

/* same[v]: the value that replaces v (v itself when none does). Weights are
 * looked up by their tensor's name, so the pass takes time in proportion to
 * the graph, not its square; same_weight then decides among those of a name. */
static void merge_weights(const ir_graph *g, int *same) {
    gm_names first = {0};  /* a tensor's name to its first weight */
    int *next = gm_malloc((g->n_values + 1) * sizeof *next); /* the next weight of the same tensor */
    for (int v = 0; v < g->n_values; v++) {
        same[v] = v, next[v] = -1;
        if (g->values[v].kind != IR_WEIGHT) continue;
        int u = gm_names_get(&first, tensor_of(&g->values[v])), last = -1;
        for (; u >= 0 && same[v] == v; last = u, u = next[u])
            if (same_weight(&g->values[u], &g->values[v])) same[v] = u;
        if (same[v] != v) continue;
        if (last < 0) gm_names_put(&first, tensor_of(&g->values[v]), v);
        else next[last] = v;
    }
    gm_names_clear(&first);
    free(next);
}

static int same_node(const ir_node *a, const ir_node *b) {
    if (a->op != b->op) return 0;
    for (int k = 0; k < ir_ops[a->op].n_inputs; k++)
        if (a->in[k] != b->in[k]) return 0;
    for (int at = 0; at < IR_ATTR_COUNT; at++)
        if (ir_ops[a->op].attrs >> at & 1 && a->attr[at] != b->attr[at]) return 0;
    return 1;
}

/* Points each node's inputs at their replacements, then makes a node that
 * repeats an earlier one replaced by it. */
static void merge_nodes(ir_graph *g, int *same) {
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        for (int k = 0; k < ir_ops[n->op].n_inputs; k++) n->in[k] = same[n->in[k]];
        if (n->op == IR_ATTENTION || n->out == g->logits) continue;
        for (int j = 0; j < i; j++)
            if (same[g->nodes[j].out] == g->nodes[j].out && same_node(&g->nodes[j], n)) {
                same[n->out] = g->nodes[j].out;
                break;
            }
    }
}

void pass_eliminate_common(ir_graph *g) {
    int *same = gm_malloc(g->n_values * sizeof *same);
    merge_weights(g, same);
    merge_nodes(g, same);
    free(same);
}
