/* eliminate_dead.c — drops what the outputs (the logits; in a training graph
 * also the loss and the weights' gradients) do not depend on: nodes whose
 * output nobody reads (transitively), and weights no node reads any more
 * (e.g. the zero-centred norm weights replaced by their folded copies, so
 * they are neither bound nor loaded). Value ids are renumbered densely and
 * KV cache slots follow their attention ops. */
#include "passes.h"

#include <stdlib.h>

static char *mark_live(const ir_graph *g) {
    char *live = gm_calloc(g->n_values, 1);
    live[g->logits] = live[g->tokens] = 1;
    for (int v = 0; v < g->n_values; v++) live[v] |= v == g->loss || v == g->targets || g->values[v].grad_of;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const ir_node *n = &g->nodes[i];
        if (!live[n->out]) continue;
        for (int k = 0; k < ir_ops[n->op].n_inputs; k++) live[n->in[k]] = 1;
    }
    return live;
}

static void drop_dead_nodes(ir_graph *g, const char *live) {
    int kept = 0, slot = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        if (!live[n->out]) {
            free(n->where);
            continue;
        }
        if (n->cache_slot >= 0) n->cache_slot = slot++;
        g->nodes[kept++] = *n;
    }
    g->n_nodes = kept;
    g->n_cache_slots = slot;
}

/* Compacts the values to the live ones and renumbers every reference. */
static void drop_dead_values(ir_graph *g, const char *live) {
    int *id = gm_malloc(g->n_values * sizeof *id), kept = 0;
    for (int v = 0; v < g->n_values; v++) {
        if (!live[v]) {
            free(g->values[v].name);
            free(g->values[v].role);
            free(g->values[v].derived_from);
            free(g->values[v].grad_of);
            id[v] = -1;
            continue;
        }
        id[v] = kept;
        g->values[kept++] = g->values[v];
    }
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        for (int k = 0; k < ir_ops[n->op].n_inputs; k++) n->in[k] = id[n->in[k]];
        n->out = id[n->out];
    }
    g->tokens = id[g->tokens];
    g->logits = id[g->logits];
    if (g->loss >= 0) g->loss = id[g->loss], g->targets = id[g->targets];
    g->n_values = kept;
    ir_index_values(g);
    free(id);
}

void pass_eliminate_dead(ir_graph *g) {
    char *live = mark_live(g);
    drop_dead_nodes(g, live);
    drop_dead_values(g, live);
    free(live);
}
