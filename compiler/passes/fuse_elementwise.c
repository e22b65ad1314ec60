/* fuse_elementwise.c — merges chains of elementwise ops into one kernel, so
 * the intermediate never goes to memory. Gemma's MLP computes
 * gelu_tanh(gate) ⊙ up; the pass turns the gelu_tanh whose only reader is
 * that mul into one geglu op (a [T, ffn] activation less written and read
 * per layer). The gelu node is left unread; eliminate_dead removes it. */
#include "passes.h"

#include <stdlib.h>

void pass_fuse_elementwise(ir_graph *g) {
    int *producer = ir_producers(g), *uses = ir_use_counts(g);
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *m = &g->nodes[i];
        if (m->op != IR_MUL) continue;
        for (int k = 0; k < 2; k++) {
            int p = producer[m->in[k]];
            if (p < 0 || g->nodes[p].op != IR_GELU_TANH || uses[m->in[k]] != 1 || m->in[0] == m->in[1]) continue;
            int other = m->in[1 - k];
            m->op = IR_GEGLU;
            m->in[0] = g->nodes[p].in[0];
            m->in[1] = other;
            break;
        }
    }
    free(producer);
    free(uses);
}
