/* fold_constants.c — moves constant arithmetic from every call into the
 * weights, once, at load.
 *
 * 1. Gemma's zero-centred norms: rms_norm(x, w, add_one=1) multiplies by
 *    (1 + w) on every call; the pass binds a folded weight (w + 1) instead
 *    and clears add_one. The folded value is the same f32 the kernel would
 *    have formed, so this is exact.
 * 2. The attention query scale, where exact: when the scale is a power of
 *    two (Gemma with head_dim 256: 1/16) it moves into the weight that makes
 *    q — the q-norm's weight (Gemma 3) or the q projection (Gemma 1/2) —
 *    through rope, which is linear. Scaling by 2^k is exact in every float
 *    format, so the scores are bitwise those of the unfolded graph. Other
 *    scales stay in the attention op.
 * The embedding's sqrt(hidden) cannot move: the table is also the tied head. */
#include "passes.h"

#include <stdlib.h>

static void fold_norm_offsets(ir_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        if (n->op != IR_RMS_NORM || n->attr[IR_A_ADD_ONE] == 0) continue;
        n->in[1] = ir_add_derived_weight(g, n->in[1], n->attr[IR_A_ADD_ONE], 1);
        n->attr[IR_A_ADD_ONE] = 0;
    }
}

static int is_power_of_two(double s) {
    int exp;
    return s > 0 && frexp(s, &exp) == 0.5;
}

/* The node that makes q's scale foldable: walks back through single-use
 * rope ops to a single-use matmul or (already folded) rms_norm; -1 if none. */
static int scale_sink(const ir_graph *g, const int *producer, const int *uses, int q) {
    while (q >= 0 && uses[q] == 1 && producer[q] >= 0) {
        const ir_node *n = &g->nodes[producer[q]];
        if (n->op == IR_ROPE) q = n->in[0];
        else return (n->op == IR_MATMUL || (n->op == IR_RMS_NORM && n->attr[IR_A_ADD_ONE] == 0)) ? producer[q] : -1;
    }
    return -1;
}

static void fold_query_scales(ir_graph *g) {
    int *producer = ir_producers(g), *uses = ir_use_counts(g);
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *a = &g->nodes[i];
        double s = a->attr[IR_A_SCALE];
        if (a->op != IR_ATTENTION || s == 1 || !is_power_of_two(s)) continue;
        int sink = scale_sink(g, producer, uses, a->in[0]);
        if (sink < 0) continue;
        ir_node *n = &g->nodes[sink];
        n->in[1] = ir_add_derived_weight(g, n->in[1], 0, s);
        a->attr[IR_A_SCALE] = 1;
    }
    free(producer);
    free(uses);
}

void pass_fold_constants(ir_graph *g) {
    fold_norm_offsets(g);
    fold_query_scales(g);
}
