/* report.c — what the compiled model is made of: one line per kernel call
 * in execution order (after the passes), with the IR ops it absorbed, and
 * the bytes it reads and writes per token, so a user sees what fusion and
 * folding bought and where decode's memory traffic goes. Weights count
 * whole (every weight is read once per token at decode); the attention's
 * reads of the KV cache grow with the position and are given per cached
 * position. */
#include "report.h"

#include <stdio.h>

/* The IR ops a node stands for when it absorbed others; NULL for an op that is itself. */
static const char *absorbed(const ir_node *n) {
    int capped = n->op != IR_MATMUL_ADD && n->attr[IR_A_SOFTCAP] > 0;
    switch (n->op) {
    case IR_GEGLU: return "gelu_tanh + mul";
    case IR_NORM_ADD: return "rms_norm + add";
    case IR_MATMUL_ADD: return "matmul + add";
    case IR_NORM_MATMUL: return capped ? "rms_norm + matmul + softcap" : "rms_norm + matmul";
    case IR_MATMUL: return capped ? "matmul + softcap" : NULL;
    default: return NULL;
    }
}

static double value_bytes(const gm_model *m, int v) {
    const ir_value *x = &m->graph->values[v];
    if (x->kind == IR_WEIGHT) return m->bound[v] ? (double)m->bound[v]->nbytes : 0;
    if (x->kind == IR_INPUT) return 4;
    return 4.0 * x->dims[x->ndim - 1];
}

/* Bytes a node reads per token: the embedding reads one row of its table. */
static double read_bytes(const gm_model *m, const ir_node *n) {
    if (n->op == IR_EMBED) return 4 + value_bytes(m, n->in[1]) / m->graph->values[n->in[1]].dims[0];
    double b = 0;
    for (int k = 0; k < ir_ops[n->op].n_inputs; k++) b += value_bytes(m, n->in[k]);
    return b;
}

void gm_report(const gm_model *m, FILE *out) {
    const ir_graph *g = m->graph;
    double total_r = 0, total_w = 0;
    fprintf(out, "%s: %d kernel calls per token, passes: %s\n", g->name, g->n_nodes, *m->passes ? m->passes : "none");
    fprintf(out, "%5s  %-11s %-22s %14s %12s  %s\n", "#", "op", "output", "reads B/tok", "writes B/tok", "absorbed");
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        double r = read_bytes(m, n), w = value_bytes(m, n->out);
        total_r += r, total_w += w;
        fprintf(out, "%5d  %-11s %-22s %14.0f %12.0f  %s", i, ir_ops[n->op].name, g->values[n->out].name, r, w,
                absorbed(n) ? absorbed(n) : "");
        if (n->op == IR_ATTENTION)
            fprintf(out, "+ %.0f B per cached position (k, v)", 8 * n->attr[IR_A_KV_HEADS] * n->attr[IR_A_HEAD_DIM]);
        fputc('\n', out);
    }
    fprintf(out, "total per token: reads %.1f MB, writes %.1f kB (plus the KV cache)\n", total_r / 1e6, total_w / 1e3);
}
