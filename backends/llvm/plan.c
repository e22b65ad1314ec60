/* plan.c — activation blocks reused by exact width (see plan.h). */
#include "plan.h"

#include <stdlib.h>

static int64_t cols_of(const ir_graph *g, int v) { return g->values[v].dims[g->values[v].ndim - 1]; }

typedef struct {
    int64_t *offset, *cols; /* free blocks */
    int n;
} free_list;

static int64_t take(free_list *f, int64_t cols, int64_t *width) {
    for (int i = 0; i < f->n; i++)
        if (f->cols[i] == cols) {
            int64_t at = f->offset[i];
            f->n--;
            f->offset[i] = f->offset[f->n];
            f->cols[i] = f->cols[f->n];
            return at;
        }
    *width += cols;
    return *width - cols;
}

static void give_back(free_list *f, int64_t offset, int64_t cols) {
    f->offset[f->n] = offset;
    f->cols[f->n++] = cols;
}

/* Index of the last node reading each value; the logits are never released. */
static int *last_uses(const ir_graph *g) {
    int *last = gm_malloc(g->n_values * sizeof *last);
    for (int v = 0; v < g->n_values; v++) last[v] = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < ir_ops[g->nodes[i].op].n_inputs; k++) last[g->nodes[i].in[k]] = i;
    last[g->logits] = g->n_nodes;
    return last;
}

void lv_plan_make(const ir_graph *g, lv_plan *p) {
    int *last = last_uses(g);
    free_list f = {gm_malloc(g->n_values * sizeof(int64_t)), gm_malloc(g->n_values * sizeof(int64_t)), 0};
    p->offset = gm_malloc(g->n_values * sizeof *p->offset);
    p->width = 0;
    for (int v = 0; v < g->n_values; v++) p->offset[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        p->offset[n->out] = take(&f, cols_of(g, n->out), &p->width);
        for (int k = 0; k < ir_ops[n->op].n_inputs; k++) {
            int v = n->in[k], seen = 0;
            for (int k2 = 0; k2 < k; k2++) seen |= n->in[k2] == v;
            if (g->values[v].kind == IR_ACT && last[v] == i && !seen) give_back(&f, p->offset[v], cols_of(g, v));
        }
        if (last[n->out] < i) give_back(&f, p->offset[n->out], cols_of(g, n->out));
    }
    free(f.offset);
    free(f.cols);
    free(last);
}

void lv_plan_free(lv_plan *p) { free(p->offset); }
