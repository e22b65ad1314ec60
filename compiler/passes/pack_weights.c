/* pack_weights.c — the layout pass: every matmul's weight is bound in the
 * panel layout its kernel reads (ir_value.panel: g->panel output columns
 * interleaved by k, the target's width from compiler/targets.c), repacked once when the model is loaded
 * (compiler/packed.c, which also keeps the packed copy on disk). It runs
 * for the targets whose kernels read panels (compiler/targets.c: the CPU
 * ones); the GPU's read weights row-major and the pipeline skips it there. A panel
 * kernel then reads one contiguous stream per panel, with no horizontal
 * sums, and its register tiles load each weight vector once for many rows.
 * The checkpoint's own tensor stays where something else reads it row by
 * row — the embedding table, also the tied output head — and is dropped by
 * eliminate_dead everywhere else. Backends read weights through their
 * layout; the reference interpreter unpacks rows as it converts them. */
#include "passes.h"

void pass_pack_weights(ir_graph *g) {
    for (int i = 0; g->panel && i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        if (ir_is_matmul(n->op) && g->values[n->in[1]].panel == 0) n->in[1] = ir_add_packed_weight(g, n->in[1], g->panel);
    }
}
