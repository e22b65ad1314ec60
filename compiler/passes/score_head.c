/* score_head.c — a training graph's head on its scored rows only.
 *
 * The head (the nodes after the layer block: the final norm, the matmul to
 * the vocabulary, its softcap, the loss) and its gradients are most of a
 * fine-tuning step when the vocabulary is Gemma's 262 144 ids, yet only the
 * rows with a target reach the loss: a prompt's rows have no target, so
 * their logits are never read and their gradients are zero. This pass
 * gathers the rows of the head's input that have a target (scored_rows, S
 * of the call's T rows), runs the head and the backward nodes that read only
 * its values on those S rows, and puts each such gradient back in place
 * (all_rows, zero at the other rows) where a node of T rows reads it: the
 * layer block's backward. The numbers are the same; the head's work shrinks
 * by S/T (about half of a tutorial step's rows are its prompts').
 *
 * A head node is one outside the layer block (layer −1) after the head's
 * start whose row inputs are all the head's input, the target ids, or values
 * of other head nodes; it reads their scored versions. embed and embed_dw
 * read the tokens of every row and so never qualify. */
#include "passes.h"

#include <stdlib.h>

/* The first node of the forward pass's head, or -1. */
static int forward_head(const ir_graph *g) {
    int head = -1;
    for (int i = 1; i < g->n_nodes && g->nodes[i - 1].out != g->loss; i++)
        if (g->nodes[i].layer < 0 && g->nodes[i - 1].layer >= 0) head = i;
    return head;
}

typedef struct {
    ir_graph *g;
    int *scored;        /* per value: its S-row version (itself for a head node's output), or -1 */
    int *widened;       /* per head node's output: its T-row version made by all_rows, or -1 */
    int n_values;       /* the values the arrays cover */
} scoring;

static void grow(scoring *s) {
    int n = s->g->n_values;
    s->scored = gm_realloc(s->scored, n * sizeof(int));
    s->widened = gm_realloc(s->widened, n * sizeof(int));
    for (int v = s->n_values; v < n; v++) s->scored[v] = s->widened[v] = -1;
    s->n_values = n;
}

/* A new activation made by op (rows of src changed), named after src. */
static int change_rows(scoring *s, ir_op op, int src, const char *suffix, const char *where) {
    ir_graph *g = s->g;
    char name[512];
    snprintf(name, sizeof name, "%s.%s", g->values[src].name, suffix);
    int out = ir_add_value(g, name, IR_ACT, g->values[src].dtype, 0, NULL, -1);
    ir_add_node(g, op, (int[]){src, g->targets}, out, -1, where);
    grow(s);
    return out;
}

/* Whether node n reads rows and all of them have scored versions. */
static int is_head_node(const scoring *s, const ir_node *n) {
    if (n->layer >= 0 || n->op == IR_EMBED || n->op == IR_EMBED_DW) return 0;
    int rows = 0;
    for (int k = 0; k < ir_ops[n->op].n_inputs; k++) {
        const ir_value *v = &s->g->values[n->in[k]];
        if (v->kind == IR_WEIGHT || v->dims[0] >= 0) continue;
        if (s->scored[n->in[k]] < 0) return 0;
        rows++;
    }
    return rows > 0;
}

/* Appends node n, its inputs moved to their scored versions (a head node)
 * or their S-row inputs widened back to T rows (any other). */
static void place(scoring *s, ir_node n) {
    ir_graph *g = s->g;
    int head = is_head_node(s, &n);
    for (int k = 0; k < ir_ops[n.op].n_inputs; k++) {
        int v = n.in[k];
        if (head && s->scored[v] >= 0) n.in[k] = s->scored[v];
        else if (!head && s->scored[v] == v && g->values[v].dims[0] < 0) {
            if (s->widened[v] < 0) {
                int wide = change_rows(s, IR_ALL_ROWS, v, "all_rows", n.where); /* grows the arrays */
                s->widened[v] = wide;
            }
            n.in[k] = s->widened[v];
        }
    }
    ir_node *k = ir_add_node(g, n.op, n.in, n.out, n.layer, n.where);
    memcpy(k->attr, n.attr, sizeof k->attr);
    k->cache_slot = n.cache_slot;
    if (head) s->scored[n.out] = n.out;
}

void pass_score_head(ir_graph *g) {
    int head = g->loss >= 0 ? forward_head(g) : -1;
    if (head < 0) return;
    ir_node *old = g->nodes;
    int n_old = g->n_nodes;
    g->nodes = NULL, g->n_nodes = g->cap_nodes = 0;
    scoring s = {g, NULL, NULL, 0};
    grow(&s);
    for (int i = 0; i < n_old; i++) {
        if (i == head) {
            int x = old[i].in[0], xs = change_rows(&s, IR_SCORED_ROWS, x, "scored", "head, scored rows");
            int ts = change_rows(&s, IR_SCORED_ROWS, g->targets, "scored", "head, scored rows");
            s.scored[x] = xs, s.scored[g->targets] = ts;
        }
        place(&s, old[i]);
        free(old[i].where);
    }
    free(old);
    free(s.scored);
    free(s.widened);
}
