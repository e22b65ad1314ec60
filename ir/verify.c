/* verify.c — shape inference and the graph verifier.
 *
 * One walk in execution order: each node's inputs must already exist, its
 * attributes must be in range, and its input shapes must agree; the node's
 * output shape is then inferred from them. Every message names the node by
 * its description path and op, and says expected vs found, so a wrong
 * description is fixed from the message alone. */
#include "ir.h"

#include <stdlib.h>

typedef struct {
    ir_graph *g;
    const ir_node *n;
    gm_err *e;
} checker;

static int fail_at(checker *c, const char *what, int64_t want, int64_t found) {
    return gm_fail(c->e, "%s (%s): %s: expected %lld, found %lld", c->n->where,
                   ir_ops[c->n->op].name, what, (long long)want, (long long)found);
}

static const ir_value *input(checker *c, int i) { return &c->g->values[c->n->in[i]]; }

/* An activation [T, C]; returns C, or -1 after reporting. */
static int64_t act_cols(checker *c, int i) {
    const ir_value *v = input(c, i);
    if (v->kind == IR_WEIGHT || v->ndim != 2 || v->dims[0] >= 0 || v->dtype != GM_F32)
        return gm_fail(c->e, "%s (%s): input %d '%s' must be an f32 activation [T, C]",
                       c->n->where, ir_ops[c->n->op].name, i, v->name);
    return v->dims[1];
}

static int weight_ndim(checker *c, int i, int ndim) {
    const ir_value *v = input(c, i);
    if (v->kind != IR_WEIGHT || v->ndim != ndim)
        return gm_fail(c->e, "%s (%s): input %d '%s' must be a weight with %d dimension%s",
                       c->n->where, ir_ops[c->n->op].name, i, v->name, ndim, ndim > 1 ? "s" : "");
    return 0;
}

static int attr_int(checker *c, ir_attr a, int64_t min) {
    double x = c->n->attr[a];
    if (x != floor(x) || x < (double)min || x > INT32_MAX)
        return gm_fail(c->e, "%s (%s): attribute %s: expected an integer in [%lld, %d], found %g",
                       c->n->where, ir_ops[c->n->op].name, ir_attr_names[a], (long long)min, INT32_MAX, x);
    return 0;
}

static int attr_positive(checker *c, ir_attr a) {
    double x = c->n->attr[a];
    if (!(x > 0) || isinf(x))
        return gm_fail(c->e, "%s (%s): attribute %s: expected a positive number, found %g",
                       c->n->where, ir_ops[c->n->op].name, ir_attr_names[a], x);
    return 0;
}

static int attr_nonnegative(checker *c, ir_attr a) {
    double x = c->n->attr[a];
    if (!(x >= 0) || isinf(x))
        return gm_fail(c->e, "%s (%s): attribute %s: expected a number >= 0 (0: none), found %g",
                       c->n->where, ir_ops[c->n->op].name, ir_attr_names[a], x);
    return 0;
}

static int check_attrs_present(checker *c) {
    for (int a = 0; a < IR_ATTR_COUNT; a++)
        if ((ir_ops[c->n->op].attrs >> a & 1) && isnan(c->n->attr[a]))
            return gm_fail(c->e, "%s (%s): attribute %s is required", c->n->where,
                           ir_ops[c->n->op].name, ir_attr_names[a]);
    return 0;
}

/* Input i, ids i32 [T] (`what`: token or target ids). */
static int ids_input(checker *c, int i, const char *what) {
    const ir_value *v = input(c, i);
    if (v->dtype != GM_I32 || v->ndim != 1 || v->dims[0] >= 0)
        return gm_fail(c->e, "%s (%s): input %d '%s' must be %s i32 [T]", c->n->where, ir_ops[c->n->op].name, i,
                       v->name, what);
    return 0;
}

static int64_t infer_embed(checker *c) {
    if (ids_input(c, 0, "token ids") || weight_ndim(c, 1, 2)) return -1;
    return input(c, 1)->dims[1];
}

/* The norm of rms_norm, norm_add and norm_matmul over activation input 0,
 * with weight input w; returns the columns, or -1 after reporting. */
static int64_t check_norm(checker *c, int w) {
    int64_t cols = act_cols(c, 0);
    if (cols < 0 || weight_ndim(c, w, 1) || attr_positive(c, IR_A_EPS)) return -1;
    int64_t group = input(c, w)->dims[0];
    if (group <= 0 || cols % group)
        return gm_fail(c->e, "%s (%s): weight '%s' has %lld elements, which must divide the %lld columns of '%s'",
                       c->n->where, ir_ops[c->n->op].name, input(c, w)->name, (long long)group, (long long)cols,
                       input(c, 0)->name);
    return cols;
}

/* r must be an activation with the output's columns. */
static int check_residual(checker *c, int r, int64_t cols) {
    int64_t found = act_cols(c, r);
    if (found < 0) return -1;
    return found != cols ? fail_at(c, "residual columns must equal the output's", cols, found) : 0;
}

static int64_t infer_norm(checker *c) {
    int64_t cols = check_norm(c, 1);
    if (cols < 0 || (c->n->op == IR_NORM_ADD && check_residual(c, 2, cols))) return -1;
    return cols;
}

/* matmul, norm_matmul (the norm spans whole rows) and matmul_add. */
static int64_t infer_matmul(checker *c) {
    int64_t k = c->n->op == IR_NORM_MATMUL ? check_norm(c, 2) : act_cols(c, 0);
    if (k < 0 || weight_ndim(c, 1, 2)) return -1;
    if (c->n->op == IR_NORM_MATMUL && input(c, 2)->dims[0] != k)
        return fail_at(c, "norm weight elements must equal the input's columns", k, input(c, 2)->dims[0]);
    if (input(c, 1)->dims[1] != k)
        return fail_at(c, "weight columns (in-features) must equal the input's columns", k, input(c, 1)->dims[1]);
    int64_t n = input(c, 1)->dims[0];
    if (c->n->op == IR_MATMUL_ADD) return check_residual(c, 2, n) ? -1 : n;
    return attr_nonnegative(c, IR_A_SOFTCAP) ? -1 : n;
}

static int64_t infer_rope(checker *c) {
    int64_t cols = act_cols(c, 0);
    if (cols < 0 || attr_int(c, IR_A_HEAD_DIM, 2) || attr_positive(c, IR_A_THETA) ||
        attr_positive(c, IR_A_POS_SCALE)) return -1;
    int64_t hd = (int64_t)c->n->attr[IR_A_HEAD_DIM];
    if (hd % 2 || cols % hd)
        return gm_fail(c->e, "%s (rope): head_dim %lld must be even and divide the %lld columns",
                       c->n->where, (long long)hd, (long long)cols);
    return cols;
}

static int64_t infer_attention(checker *c) {
    const double *a = c->n->attr;
    if (attr_int(c, IR_A_HEADS, 1) || attr_int(c, IR_A_KV_HEADS, 1) || attr_int(c, IR_A_HEAD_DIM, 1) ||
        attr_int(c, IR_A_WINDOW, 0) || attr_positive(c, IR_A_SCALE) || attr_nonnegative(c, IR_A_SOFTCAP))
        return -1;
    int64_t nh = (int64_t)a[IR_A_HEADS], nkv = (int64_t)a[IR_A_KV_HEADS], hd = (int64_t)a[IR_A_HEAD_DIM];
    if (nh % nkv) return fail_at(c, "heads must be a multiple of kv_heads; kv_heads", nh, nkv);
    int64_t want[3] = {nh * hd, nkv * hd, nkv * hd};
    for (int i = 0; i < 3; i++) {
        int64_t cols = act_cols(c, i);
        if (cols < 0) return -1;
        if (cols != want[i]) return fail_at(c, i ? "k/v columns (kv_heads·head_dim)" : "q columns (heads·head_dim)",
                                            want[i], cols);
    }
    return nh * hd;
}

static int64_t infer_same_shape(checker *c) {
    int64_t cols = act_cols(c, 0);
    if (cols < 0) return -1;
    if (ir_ops[c->n->op].n_inputs == 2) {
        int64_t other = act_cols(c, 1);
        if (other < 0) return -1;
        if (other != cols) return fail_at(c, "both inputs must have the same columns", cols, other);
    }
    if (c->n->op == IR_SCALE && !isfinite(c->n->attr[IR_A_BY])) return fail_at(c, "finite 'by'", 0, 0);
    if ((c->n->op == IR_SOFTCAP || c->n->op == IR_SOFTCAP_DX) && attr_positive(c, IR_A_CAP)) return -1;
    return cols;
}

/* Input i, an activation [T, want]; 0, or -1 after reporting. */
static int act_with_cols(checker *c, int i, int64_t want) {
    int64_t cols = act_cols(c, i);
    if (cols < 0) return -1;
    return cols != want ? fail_at(c, "columns of an input that must match", want, cols) : 0;
}

static int64_t infer_attention_grad(checker *c) {
    int64_t q_cols = infer_attention(c);
    if (q_cols < 0 || act_with_cols(c, 3, q_cols)) return -1;
    return c->n->op == IR_ATTENTION_DQ ? q_cols : input(c, 1)->dims[1];
}

/* The backward ops with [T, C] outputs. */
static int64_t infer_grad_cols(checker *c) {
    int64_t cols = 0;
    switch (c->n->op) {
    case IR_CROSS_ENTROPY_DX: return ids_input(c, 1, "target ids") ? -1 : act_cols(c, 0);
    case IR_MATMUL_DX:
        if ((cols = act_cols(c, 0)) < 0 || weight_ndim(c, 1, 2)) return -1;
        return input(c, 1)->dims[0] != cols ? fail_at(c, "weight rows must equal dy's columns", cols, input(c, 1)->dims[0])
                                            : input(c, 1)->dims[1];
    case IR_RMS_NORM_DX: return (cols = check_norm(c, 2)) < 0 || act_with_cols(c, 1, cols) ? -1 : cols;
    case IR_ROPE_DX: return infer_rope(c);
    case IR_ATTENTION_DQ:
    case IR_ATTENTION_DK:
    case IR_ATTENTION_DV: return infer_attention_grad(c);
    default: return infer_same_shape(c);
    }
}

/* Whether node c's output has a fixed shape (no T): the loss, a weight's
 * gradient, or the sum of two such. */
static int fixed_output(checker *c) {
    ir_op op = c->n->op;
    return op == IR_CROSS_ENTROPY || op == IR_MATMUL_DW || op == IR_EMBED_DW || op == IR_RMS_NORM_DW ||
           (op == IR_ADD && input(c, 0)->kind == IR_ACT && input(c, 0)->dims[0] >= 0);
}

/* The fixed shape of such an output into out; 0, or -1 after reporting. */
static int infer_fixed(checker *c, ir_value *out) {
    const ir_value *a = input(c, 0), *b = input(c, 1), *w = NULL;
    int64_t cols;
    out->ndim = 1, out->dims[0] = 1;
    switch (c->n->op) {
    case IR_CROSS_ENTROPY: return act_cols(c, 0) < 0 || ids_input(c, 1, "target ids") ? -1 : 0;
    case IR_MATMUL_DW:
        if (act_cols(c, 0) < 0 || act_cols(c, 1) < 0) return -1;
        out->ndim = 2, out->dims[0] = a->dims[1], out->dims[1] = b->dims[1];
        return 0;
    case IR_EMBED_DW:
        if (ids_input(c, 0, "token ids") || weight_ndim(c, 1, 2) || act_with_cols(c, 2, b->dims[1])) return -1;
        w = b;
        break;
    case IR_RMS_NORM_DW:
        if ((cols = check_norm(c, 2)) < 0 || act_with_cols(c, 1, cols)) return -1;
        w = input(c, 2);
        break;
    default: /* add */
        if (b->kind != IR_ACT || b->ndim != a->ndim || memcmp(b->dims, a->dims, a->ndim * sizeof a->dims[0]))
            return gm_fail(c->e, "%s (add): inputs '%s' and '%s' must have the same shape", c->n->where, a->name, b->name);
        w = a;
    }
    out->ndim = w->ndim;
    memcpy(out->dims, w->dims, sizeof out->dims);
    return 0;
}

/* scored_rows (x, targets): x's rows that have a target, f32 [S, C] or
 * (the targets themselves) i32 [S]; all_rows: [S, C] back to [T, C]. */
static int infer_rows_change(checker *c, ir_value *out) {
    const ir_value *x = input(c, 0);
    if (ids_input(c, 1, "target ids")) return -1;
    int scored = c->n->op == IR_SCORED_ROWS, ids = scored && x->dtype == GM_I32;
    if (x->kind == IR_WEIGHT || x->dims[0] != (scored ? IR_DIM_T : IR_DIM_S) || (ids ? ids_input(c, 0, "ids") : act_cols(c, 0) < 0))
        return gm_fail(c->e, "%s (%s): input 0 '%s' must be an activation of %s rows", c->n->where, ir_ops[c->n->op].name,
                       x->name, scored ? "T" : "S");
    out->dtype = x->dtype, out->ndim = x->ndim;
    memcpy(out->dims, x->dims, sizeof out->dims);
    out->dims[0] = scored ? IR_DIM_S : IR_DIM_T;
    return 0;
}

/* The rows of node c into *rows: those of its activation and id inputs,
 * which must agree (all T or all S), or 0 when it has none (a sum of
 * gradients); 0, or -1 after reporting. */
static int node_rows(checker *c, int64_t *rows) {
    *rows = 0;
    for (int k = 0; k < ir_ops[c->n->op].n_inputs; k++) {
        const ir_value *v = input(c, k);
        if (v->kind == IR_WEIGHT || v->dims[0] >= 0) continue;
        if (*rows && v->dims[0] != *rows)
            return gm_fail(c->e, "%s (%s): input %d '%s' has %s rows where the others have %s", c->n->where,
                           ir_ops[c->n->op].name, k, v->name, v->dims[0] == IR_DIM_T ? "T" : "S", *rows == IR_DIM_T ? "T" : "S");
        *rows = v->dims[0];
    }
    return 0;
}

static int64_t infer_cols(checker *c) {
    if (ir_ops[c->n->op].training) return infer_grad_cols(c);
    switch (c->n->op) {
    case IR_EMBED: return infer_embed(c);
    case IR_RMS_NORM:
    case IR_NORM_ADD: return infer_norm(c);
    case IR_MATMUL:
    case IR_NORM_MATMUL:
    case IR_MATMUL_ADD: return infer_matmul(c);
    case IR_ROPE: return infer_rope(c);
    case IR_ATTENTION: return infer_attention(c);
    default: return infer_same_shape(c);
    }
}

int ir_verify(ir_graph *g, gm_err *e) {
    char *made = gm_calloc(g->n_values, 1);
    int rc = 0;
    for (int i = 0; i < g->n_nodes && !rc; i++) {
        checker c = {g, &g->nodes[i], e};
        const ir_node *n = c.n;
        for (int k = 0; k < ir_ops[n->op].n_inputs && !rc; k++) {
            const ir_value *v = &g->values[n->in[k]];
            if (v->kind == IR_ACT && !made[n->in[k]])
                rc = gm_fail(e, "%s (%s): input %d '%s' is used before it is defined", n->where,
                             ir_ops[n->op].name, k, v->name);
        }
        if (rc || (rc = check_attrs_present(&c))) break;
        ir_value *out = &g->values[n->out];
        if (out->kind != IR_ACT || made[n->out]) {
            rc = gm_fail(e, "%s (%s): output '%s' must be a new activation", n->where, ir_ops[n->op].name, out->name);
            break;
        }
        if (n->op == IR_SCORED_ROWS || n->op == IR_ALL_ROWS) {
            if ((rc = infer_rows_change(&c, out))) break;
            made[n->out] = 1;
            continue;
        }
        int64_t rows;
        if ((rc = node_rows(&c, &rows))) break;
        if (fixed_output(&c)) {
            if ((rc = infer_fixed(&c, out))) break;
        } else {
            int64_t cols = infer_cols(&c);
            if (cols < 0 && (rc = -1)) break;
            out->ndim = 2;
            out->dims[0] = rows ? rows : IR_DIM_T;
            out->dims[1] = cols;
        }
        out->dtype = GM_F32;
        made[n->out] = 1;
    }
    if (!rc && (g->logits < 0 || !made[g->logits]))
        rc = gm_fail(e, "graph.head: no op defines 'logits'");
    if (!rc && g->values[g->logits].dims[1] != g->vocab)
        rc = gm_fail(e, "graph.head: logits have %lld columns, expected config.vocab = %lld",
                     (long long)g->values[g->logits].dims[1], (long long)g->vocab);
    free(made);
    return rc;
}
