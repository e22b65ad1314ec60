/* fuse_matmul.c — folds the ops around a matmul into its kernel: the norm
 * that makes its input, and the residual add or the softcap that consumes
 * its output, so neither goes to memory and back.
 * 1. Prologue: matmul(rms_norm(x, nw), W), the norm spanning whole rows,
 *    becomes norm_matmul(x, W, nw) with the norm's eps and add_one. Every
 *    matmul reading the norm is rewritten (Gemma's q/k/v share one norm,
 *    gate/up another, the head reads the final norm); the kernel recomputes
 *    the row's scale, which is cheap next to the matmul.
 * 2. Softcap: softcap(y) of a matmul or norm_matmul y read only there (Gemma
 *    2's final logits) becomes that op with its softcap attribute set.
 * 3. Residual: add(r, y) or add(y, r) of a plain matmul y read only there
 *    becomes matmul_add(a, W, r) (Gemma 1's attention and MLP outputs).
 * Each rewrites the consumer node in place, whose inputs are all defined
 * before it; the producers are left unread for eliminate_dead. Nothing here
 * depends on fold_constants having run: add_one travels with the norm. */
#include "passes.h"

#include <stdlib.h>

static void fuse_norm_prologues(ir_graph *g) {
    int *producer = ir_producers(g);
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *m = &g->nodes[i];
        int p = producer[m->in[0]];
        if (m->op != IR_MATMUL || p < 0 || !is_row_norm(g, &g->nodes[p])) continue;
        const ir_node *norm = &g->nodes[p];
        m->op = IR_NORM_MATMUL;
        m->in[0] = norm->in[0];
        m->in[2] = norm->in[1];
        m->attr[IR_A_EPS] = norm->attr[IR_A_EPS];
        m->attr[IR_A_ADD_ONE] = norm->attr[IR_A_ADD_ONE];
    }
    free(producer);
}

/* The matmul-family node making v when only one node reads v, else NULL. */
static const ir_node *lone_matmul(const ir_graph *g, const int *producer, const int *uses, int v) {
    const ir_node *p = producer[v] >= 0 && read_once(g, uses, v) ? &g->nodes[producer[v]] : NULL;
    return p && (p->op == IR_MATMUL || p->op == IR_NORM_MATMUL) ? p : NULL;
}

static void fuse_softcap(ir_graph *g, ir_node *s, const int *producer, const int *uses) {
    const ir_node *m = lone_matmul(g, producer, uses, s->in[0]);
    if (!m || m->attr[IR_A_SOFTCAP] > 0) return;
    double cap = s->attr[IR_A_CAP];
    s->op = m->op;
    memcpy(s->in, m->in, sizeof s->in);
    memcpy(s->attr, m->attr, sizeof s->attr);
    s->attr[IR_A_SOFTCAP] = cap;
}

static void fuse_residual(ir_graph *g, ir_node *a, const int *producer, const int *uses) {
    for (int k = 0; k < 2; k++) {
        const ir_node *m = lone_matmul(g, producer, uses, a->in[k]);
        if (!m || m->op != IR_MATMUL || m->attr[IR_A_SOFTCAP] > 0) continue;
        int residual = a->in[1 - k];
        retype(a, IR_MATMUL_ADD);
        a->in[0] = m->in[0];
        a->in[1] = m->in[1];
        a->in[2] = residual;
        return;
    }
}

void pass_fuse_matmul(ir_graph *g) {
    fuse_norm_prologues(g);
    int *producer = ir_producers(g), *uses = ir_use_counts(g);
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        if (n->op == IR_SOFTCAP) fuse_softcap(g, n, producer, uses);
        else if (n->op == IR_ADD) fuse_residual(g, n, producer, uses);
    }
    free(producer);
    free(uses);
}
