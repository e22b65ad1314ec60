/* fuse_elementwise.c — merges chains of elementwise ops into one kernel, so
 * the intermediate never goes to memory.
 * 1. Gemma's MLP computes gelu_tanh(gate) ⊙ up; the gelu_tanh whose only
 *    reader is that mul becomes one geglu op (a [T, ffn] activation less
 *    written and read per layer).
 * 2. Gemma 2 and 3 normalise the attention and MLP outputs before the
 *    residual add: add(r, rms_norm(o, w)), in either order, becomes
 *    norm_add(o, w, r) when the norm spans whole rows and only the add reads
 *    it. The sum is commutative, so the numbers are the unfused ones.
 * Each rewrites the mul or add in place; the absorbed node is left unread
 * and eliminate_dead removes it. */
#include "passes.h"

#include <stdlib.h>

static void fuse_geglu(ir_graph *g, ir_node *m, const int *producer, const int *uses) {
    for (int k = 0; k < 2; k++) {
        int p = producer[m->in[k]];
        if (p < 0 || g->nodes[p].op != IR_GELU_TANH || !read_once(g, uses, m->in[k])) continue;
        int other = m->in[1 - k];
        m->op = IR_GEGLU;
        m->in[0] = g->nodes[p].in[0];
        m->in[1] = other;
        return;
    }
}

static void fuse_norm_add(ir_graph *g, ir_node *a, const int *producer, const int *uses) {
    for (int k = 0; k < 2; k++) {
        int p = producer[a->in[k]];
        if (p < 0 || !is_row_norm(g, &g->nodes[p]) || !read_once(g, uses, a->in[k])) continue;
        const ir_node *norm = &g->nodes[p];
        int residual = a->in[1 - k];
        retype(a, IR_NORM_ADD);
        a->in[0] = norm->in[0];
        a->in[1] = norm->in[1];
        a->in[2] = residual;
        a->attr[IR_A_EPS] = norm->attr[IR_A_EPS];
        a->attr[IR_A_ADD_ONE] = norm->attr[IR_A_ADD_ONE];
        return;
    }
}

void pass_fuse_elementwise(ir_graph *g) {
    int *producer = ir_producers(g), *uses = ir_use_counts(g);
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        if (n->op == IR_MUL) fuse_geglu(g, n, producer, uses);
        if (n->op == IR_ADD) fuse_norm_add(g, n, producer, uses);
    }
    free(producer);
    free(uses);
}
