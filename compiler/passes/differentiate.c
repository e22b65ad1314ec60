/* differentiate.c — reverse-mode differentiation as a pass: a model's
 * forward graph becomes a training graph that also computes the loss and
 * the gradient of the loss with respect to every weight.
 *
 * The pass appends an input of target ids and the loss (cross_entropy of the
 * logits), then walks the nodes backwards. Each op's vector-Jacobian rule,
 * named beside the op in ir/ops.def and defined here, turns the gradient of
 * the node's output into contributions to the gradients of its inputs, as
 * new nodes of the backward ops (matmul_dx, rms_norm_dx, ...). A value read
 * by several nodes gets the sum of their contributions (add nodes), so a
 * tied embedding's gradient is its lookup's plus the head's. Only gradients
 * that a trainable (not frozen) weight flows into are made, so LoRA's frozen
 * base costs no weight gradient. Every weight's whole gradient is marked with
 * grad_of, its tensor name. Attention in a
 * training graph keeps no KV cache: it attends over the sequence itself.
 * Ops without a rule are refused by name; nothing gets a silent zero. The
 * fused ops' rules are their parts' rules in turn, a fused norm recomputed
 * from its input (the forward graph does not keep it). */
#include "passes.h"

#include <stdlib.h>

typedef struct {
    ir_graph *g;
    int *grad;      /* per forward value id: its gradient so far, or -1 */
    char *needs;    /* per forward value id: whether a trainable weight flows into it (so its gradient is wanted) */
    int n_forward;  /* values of the forward graph */
    ir_node node;   /* a copy of the node whose rule runs (g->nodes moves as nodes are added) */
    gm_err *e;
} differ;

typedef int (*vjp_rule)(differ *d, int dy);

/* A new node op(in...) for the rule's node: its layer and place, and the
 * attributes of that node that op takes too. Returns its output. */
static int emit(differ *d, ir_op op, int in0, int in1, int in2, int in3, const char *what) {
    ir_graph *g = d->g;
    char name[320], where[200];
    snprintf(name, sizeof name, "d%s.%d", what, g->n_values);
    snprintf(where, sizeof where, "%s, gradient", d->node.where);
    int out = ir_add_value(g, name, IR_ACT, GM_F32, 0, NULL, d->node.layer);
    int in[IR_MAX_IN] = {in0, in1, in2, in3};
    ir_node *n = ir_add_node(g, op, in, out, d->node.layer, where);
    for (int k = 0; k < IR_ATTR_COUNT; k++)
        if (ir_ops[op].attrs >> k & 1) n->attr[k] = d->node.attr[k];
    return out;
}

static int input_of(const differ *d, int k) { return d->node.in[k]; }
static const char *name_of(const differ *d, int v) { return d->g->values[v].name; }

/* Adds contribution c to the gradient of value v. */
static void accumulate(differ *d, int v, int c) {
    d->grad[v] = d->grad[v] < 0 ? c : emit(d, IR_ADD, d->grad[v], c, -1, -1, name_of(d, v));
}

/* Adds op(a, b, c)'s output to v's gradient, when v's is wanted at all. */
static void contribute(differ *d, int v, ir_op op, int a, int b, int c) {
    if (d->needs[v]) accumulate(d, v, emit(d, op, a, b, c, -1, name_of(d, v)));
}

/* The gradients of rms_norm(x, w) given dy, accumulated. */
static void norm_grads(differ *d, int x, int w, int dy) {
    contribute(d, w, IR_RMS_NORM_DW, dy, x, w);
    contribute(d, x, IR_RMS_NORM_DX, dy, x, w);
}

/* The gradient of softcap(out_scale · x · Wᵀ) given dy, its output y: W's
 * accumulated, x's returned when wanted (else -2), or -1 after failing on
 * activations of reduced precision (an explicit inference mode with no
 * gradient). */
static int matmul_grads(differ *d, int x, int W, int y, int dy, int wanted) {
    const double *a = d->node.attr;
    if (a[IR_A_X_INT8] || a[IR_A_X_BF16])
        return gm_fail(d->e, "%s (%s): activations rounded to int8 or bf16 have no gradient; train with --activations f32",
                       d->node.where, ir_ops[d->node.op].name);
    if (d->node.op != IR_MATMUL_ADD && a[IR_A_SOFTCAP] > 0) {
        d->node.attr[IR_A_CAP] = a[IR_A_SOFTCAP];
        dy = emit(d, IR_SOFTCAP_DX, dy, y, -1, -1, name_of(d, y));
    }
    if (a[IR_A_OUT_SCALE] != 1) {
        d->node.attr[IR_A_BY] = a[IR_A_OUT_SCALE];
        dy = emit(d, IR_SCALE, dy, -1, -1, -1, name_of(d, y));
    }
    contribute(d, W, IR_MATMUL_DW, dy, x, -1);
    return wanted ? emit(d, IR_MATMUL_DX, dy, W, -1, -1, name_of(d, x)) : -2;
}

/* A value passed on as it is (an add's inputs, a residual). */
static void pass_on(differ *d, int v, int dy) {
    if (d->needs[v]) accumulate(d, v, dy);
}

static int vjp_embed(differ *d, int dy) {
    contribute(d, input_of(d, 1), IR_EMBED_DW, input_of(d, 0), input_of(d, 1), dy);
    return 0;
}

static int vjp_scale(differ *d, int dy) {
    contribute(d, input_of(d, 0), IR_SCALE, dy, -1, -1);
    return 0;
}

static int vjp_rms_norm(differ *d, int dy) {
    norm_grads(d, input_of(d, 0), input_of(d, 1), dy);
    return 0;
}

static int vjp_matmul(differ *d, int dy) {
    int dx = matmul_grads(d, input_of(d, 0), input_of(d, 1), d->node.out, dy, d->needs[input_of(d, 0)]);
    if (dx == -1) return -1;
    if (dx >= 0) accumulate(d, input_of(d, 0), dx);
    return 0;
}

/* norm_matmul(x, W, nw): the norm is recomputed, then matmul's rule and the norm's. */
static int vjp_norm_matmul(differ *d, int dy) {
    int x = input_of(d, 0), h = emit(d, IR_RMS_NORM, x, input_of(d, 2), -1, -1, name_of(d, x));
    int dh = matmul_grads(d, h, input_of(d, 1), d->node.out, dy, d->needs[x] || d->needs[input_of(d, 2)]);
    if (dh == -1) return -1;
    if (dh >= 0) norm_grads(d, x, input_of(d, 2), dh);
    return 0;
}

static int vjp_matmul_add(differ *d, int dy) {
    pass_on(d, input_of(d, 2), dy);
    return vjp_matmul(d, dy);
}

static int vjp_norm_add(differ *d, int dy) {
    pass_on(d, input_of(d, 2), dy);
    return vjp_rms_norm(d, dy);
}

static int vjp_rope(differ *d, int dy) {
    contribute(d, input_of(d, 0), IR_ROPE_DX, dy, -1, -1);
    return 0;
}

static int vjp_attention(differ *d, int dy) {
    static const ir_op parts[3] = {IR_ATTENTION_DQ, IR_ATTENTION_DK, IR_ATTENTION_DV};
    int q = input_of(d, 0), k = input_of(d, 1), v = input_of(d, 2);
    int grads[3];
    for (int i = 0; i < 3; i++) grads[i] = d->needs[input_of(d, i)] ? emit(d, parts[i], q, k, v, dy, name_of(d, input_of(d, i))) : -1;
    for (int i = 0; i < 3; i++)
        if (grads[i] >= 0) accumulate(d, input_of(d, i), grads[i]);
    return 0;
}

static int vjp_gelu_tanh(differ *d, int dy) {
    contribute(d, input_of(d, 0), IR_GELU_TANH_DX, dy, input_of(d, 0), -1);
    return 0;
}

static int vjp_mul(differ *d, int dy) {
    contribute(d, input_of(d, 0), IR_MUL, dy, input_of(d, 1), -1);
    contribute(d, input_of(d, 1), IR_MUL, dy, input_of(d, 0), -1);
    return 0;
}

/* geglu(a, b) = gelu_tanh(a) ⊙ b. */
static int vjp_geglu(differ *d, int dy) {
    int a = input_of(d, 0), b = input_of(d, 1);
    if (d->needs[a]) contribute(d, a, IR_GELU_TANH_DX, emit(d, IR_MUL, dy, b, -1, -1, name_of(d, a)), a, -1);
    if (d->needs[b]) contribute(d, b, IR_MUL, dy, emit(d, IR_GELU_TANH, a, -1, -1, -1, name_of(d, a)), -1);
    return 0;
}

static int vjp_add(differ *d, int dy) {
    pass_on(d, input_of(d, 0), dy);
    pass_on(d, input_of(d, 1), dy);
    return 0;
}

static int vjp_softcap(differ *d, int dy) {
    contribute(d, input_of(d, 0), IR_SOFTCAP_DX, dy, d->node.out, -1);
    return 0;
}

/* The loss is the root: its own gradient is 1, so dy is not read. */
static int vjp_cross_entropy(differ *d, int dy) {
    (void)dy;
    contribute(d, input_of(d, 0), IR_CROSS_ENTROPY_DX, input_of(d, 0), input_of(d, 1), -1);
    return 0;
}

#define NO_RULE NULL
static const vjp_rule rules[IR_OP_COUNT] = {
#define OP(id, name, nin, kind, attrs, vjp) [IR_##id] = vjp,
#include "ir/ops.def"
#undef OP
};

/* The loss and the target ids it reads. */
static void add_loss(ir_graph *g) {
    int64_t t = IR_DIM_T;
    g->targets = ir_add_value(g, "targets", IR_INPUT, GM_I32, 1, &t, -1);
    g->loss = ir_add_value(g, "loss", IR_ACT, GM_F32, 0, NULL, -1);
    ir_add_node(g, IR_CROSS_ENTROPY, (int[]){g->logits, g->targets}, g->loss, -1, "loss");
}

/* Marks each weight's whole gradient; weights of one tensor name (one
 * checkpoint tensor bound twice) share the sum of theirs. */
static void mark_weight_grads(differ *d) {
    ir_graph *g = d->g;
    gm_names first = {0};
    for (int v = 0; v < d->n_forward; v++) {
        if (g->values[v].kind != IR_WEIGHT || d->grad[v] < 0) continue;
        int w = gm_names_get(&first, g->values[v].name);
        if (w < 0) gm_names_put(&first, g->values[v].name, v);
        else d->grad[w] = emit(d, IR_ADD, d->grad[w], d->grad[v], -1, -1, g->values[v].name), d->grad[v] = -1;
    }
    for (int v = 0; v < d->n_forward; v++)
        if (g->values[v].kind == IR_WEIGHT && d->grad[v] >= 0) g->values[d->grad[v]].grad_of = gm_strdup(g->values[v].name);
    gm_names_clear(&first);
}

/* needs[v]: v is a trainable (not frozen) weight, or an op's output with such an input. */
static char *trainable_flow(const ir_graph *g) {
    char *needs = gm_calloc(g->n_values, 1);
    for (int v = 0; v < g->n_values; v++) needs[v] = g->values[v].kind == IR_WEIGHT && !g->values[v].frozen;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < ir_ops[g->nodes[i].op].n_inputs; k++) needs[g->nodes[i].out] |= needs[g->nodes[i].in[k]];
    return needs;
}

int pass_differentiate(ir_graph *g, gm_err *e) {
    if (g->loss >= 0) return gm_fail(e, "%s: the graph is a training graph already", g->name);
    add_loss(g);
    for (int i = 0; i < g->n_nodes; i++) g->nodes[i].cache_slot = -1;
    g->n_cache_slots = 0;
    differ d = {g, gm_malloc(g->n_values * sizeof(int)), trainable_flow(g), g->n_values, {0}, e};
    for (int v = 0; v < g->n_values; v++) d.grad[v] = -1;
    int rc = 0;
    for (int i = g->n_nodes - 1; i >= 0 && !rc; i--) {
        d.node = g->nodes[i];
        int dy = d.node.out == g->loss ? -1 : d.grad[d.node.out]; /* the loss is the root (its rule reads no dy) */
        if (dy < 0 && d.node.out != g->loss) continue;             /* nothing the loss depends on */
        if (!rules[d.node.op])
            rc = gm_fail(e, "%s (%s): this op has no gradient rule, so the graph cannot be trained", d.node.where,
                         ir_ops[d.node.op].name);
        else rc = rules[d.node.op](&d, dy);
    }
    d.node = (ir_node){.where = "tied weights", .layer = -1};
    if (!rc) mark_weight_grads(&d);
    free(d.grad);
    free(d.needs);
    return rc ? rc : ir_verify(g, e);
}
