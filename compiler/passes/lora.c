/* lora.c — low-rank adapters (LoRA: Hu et al., 2021) for fine-tuning: every
 * matmul of the layer block, y = x·Wᵀ, becomes
 *     y + (alpha / rank) · (x·Aᵀ)·Bᵀ
 * with A [rank, K] and B [N, rank] new weights named "<W>.lora_a" and
 * "<W>.lora_b", as plain matmul, scale and add nodes, so every backend runs
 * them and the differentiate pass needs no rule of its own. Every other
 * weight is frozen: the training graph computes the adapters' gradients
 * only. The head (outside the layer block) keeps no adapter, as PEFT's
 * default; the graph is the unfused one the training commands build. */
#include "passes.h"

#include <stdlib.h>

/* A [rows, cols] weight named "<base>.<suffix>", in W's layer. */
static int adapter(ir_graph *g, const ir_value *W, const char *suffix, int64_t rows, int64_t cols) {
    char name[512];
    snprintf(name, sizeof name, "%s.%s", W->name, suffix);
    int id = ir_add_value(g, name, IR_WEIGHT, GM_F32, 2, (int64_t[]){rows, cols}, W->layer);
    g->values[id].role = gm_strdup(suffix);
    return id;
}

/* An activation and the node making it, after node n. */
static int add_after(ir_graph *g, const ir_node *n, ir_op op, int a, int b, const char *what) {
    char name[512], where[256];
    snprintf(name, sizeof name, "%s.%s", g->values[n->out].name, what);
    snprintf(where, sizeof where, "%s, lora", n->where);
    int out = ir_add_value(g, name, IR_ACT, GM_F32, 0, NULL, n->layer);
    ir_add_node(g, op, (int[]){a, b}, out, n->layer, where);
    return out;
}

/* Appends node n (its where moved, not copied) to the rebuilt list, its inputs renamed by alias. */
static void keep(ir_graph *g, ir_node *n, const int *alias) {
    ir_node *k = ir_add_node(g, n->op, n->in, n->out, n->layer, n->where);
    for (int i = 0; i < ir_ops[n->op].n_inputs; i++) k->in[i] = alias[n->in[i]];
    memcpy(k->attr, n->attr, sizeof k->attr);
    k->cache_slot = n->cache_slot;
    free(n->where);
}

int pass_add_lora(ir_graph *g, int rank, double alpha, gm_err *e) {
    if (rank < 1) return gm_fail(e, "--lora-rank %d: expected a rank of at least 1", rank);
    ir_node *old = g->nodes;
    int n_old = g->n_nodes, adapted = 0;
    g->nodes = NULL, g->n_nodes = g->cap_nodes = 0;
    for (int v = 0; v < g->n_values; v++) g->values[v].frozen = g->values[v].kind == IR_WEIGHT;
    int *alias = gm_malloc(g->n_values * sizeof(int)); /* read only for the values old nodes name */
    for (int v = 0; v < g->n_values; v++) alias[v] = v;
    for (int i = 0; i < n_old; i++) {
        keep(g, &old[i], alias);
        ir_node n = g->nodes[g->n_nodes - 1]; /* its inputs renamed */
        if (n.op != IR_MATMUL || n.layer < 0) continue;
        const ir_value W = g->values[n.in[1]];
        int64_t N = W.dims[0], K = W.dims[1];
        int A = adapter(g, &W, "lora_a", rank, K), B = adapter(g, &W, "lora_b", N, rank);
        int down = add_after(g, &n, IR_MATMUL, n.in[0], A, "lora_down");
        int up = add_after(g, &n, IR_MATMUL, down, B, "lora_up");
        int scaled = add_after(g, &n, IR_SCALE, up, -1, "lora_scaled");
        g->nodes[g->n_nodes - 1].attr[IR_A_BY] = alpha / rank;
        alias[n.out] = add_after(g, &n, IR_ADD, n.out, scaled, "lora");
        adapted++;
    }
    if (g->logits >= 0) g->logits = alias[g->logits];
    free(alias);
    free(old);
    if (!adapted) return gm_fail(e, "%s: no matmul in the layer block to put an adapter on", g->name);
    return ir_verify(g, e);
}
