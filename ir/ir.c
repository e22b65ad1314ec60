/* ir.c — the op and attribute tables (generated from ops.def / attrs.def) and
 * the graph builder. Building is append-only: values and nodes get dense ids
 * in the order they are added, which is also the execution order. */
#include "ir.h"

#include <stdlib.h>

#define A(id) (1u << IR_A_##id)
const ir_op_info ir_ops[IR_OP_COUNT] = {
#define OP(id, name, nin, kind, attrs, vjp) [IR_##id] = {name, nin, kind, attrs, 0},
#define TRAIN_OP(id, name, nin, kind, attrs, vjp) [IR_##id] = {name, nin, kind, attrs, 1},
#include "ops.def"
#undef OP
#undef TRAIN_OP
};
#undef A

const char *const ir_attr_names[IR_ATTR_COUNT] = {
#define ATTR(id, name, dflt) [IR_A_##id] = name,
#include "attrs.def"
#undef ATTR
};

const double ir_attr_defaults[IR_ATTR_COUNT] = {
#define ATTR(id, name, dflt) [IR_A_##id] = dflt,
#include "attrs.def"
#undef ATTR
};

const char *ir_pattern_name(ir_pattern k) {
    static const char *const names[] = {"elemwise", "broadcast", "injective",
                                        "reduction", "out-elemwise", "opaque"};
    return names[k];
}

int ir_op_from_name(const char *name) {
    for (int i = 0; i < IR_OP_COUNT; i++)
        if (!strcmp(ir_ops[i].name, name)) return i;
    return -1;
}

int ir_attr_from_name(const char *name) {
    for (int i = 0; i < IR_ATTR_COUNT; i++)
        if (!strcmp(ir_attr_names[i], name)) return i;
    return -1;
}

ir_graph *ir_graph_new(const char *name) {
    ir_graph *g = gm_calloc(1, sizeof *g);
    g->name = gm_strdup(name);
    g->tokens = g->logits = g->targets = g->loss = -1;
    return g;
}

void ir_graph_free(ir_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        free(g->values[i].role);
        free(g->values[i].derived_from);
        free(g->values[i].grad_of);
    }
    for (int i = 0; i < g->n_nodes; i++) free(g->nodes[i].where);
    for (int i = 0; i < g->n_layers; i++) free(g->layers[i].kind);
    gm_names_clear(&g->value_ids);
    free(g->values);
    free(g->nodes);
    free(g->layers);
    free(g->arena_offset);
    free(g->name);
    free(g);
}

int ir_add_value(ir_graph *g, const char *name, ir_value_kind kind, gm_dtype dt,
                 int ndim, const int64_t *dims, int layer) {
    if (g->n_values == g->cap_values) {
        g->cap_values = g->cap_values ? 2 * g->cap_values : 64;
        g->values = gm_realloc(g->values, g->cap_values * sizeof *g->values);
    }
    ir_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = gm_strdup(name);
    v->kind = kind;
    v->dtype = dt;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) v->dims[i] = dims[i];
    v->layer = layer;
    if (gm_names_get(&g->value_ids, v->name) < 0) gm_names_put(&g->value_ids, v->name, g->n_values);
    return g->n_values++;
}

void ir_index_values(ir_graph *g) {
    gm_names_clear(&g->value_ids);
    for (int v = g->n_values - 1; v >= 0; v--) gm_names_put(&g->value_ids, g->values[v].name, v);
}

ir_node *ir_add_node(ir_graph *g, ir_op op, const int *in, int out, int layer, const char *where) {
    if (g->n_nodes == g->cap_nodes) {
        g->cap_nodes = g->cap_nodes ? 2 * g->cap_nodes : 64;
        g->nodes = gm_realloc(g->nodes, g->cap_nodes * sizeof *g->nodes);
    }
    ir_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    for (int i = 0; i < ir_ops[op].n_inputs; i++) n->in[i] = in[i];
    n->out = out;
    for (int a = 0; a < IR_ATTR_COUNT; a++) n->attr[a] = ir_attr_defaults[a];
    n->layer = layer;
    n->cache_slot = -1;
    n->where = gm_strdup(where);
    return n;
}

int64_t ir_value_elems(const ir_value *v) {
    int64_t n = 1;
    for (int i = 0; i < v->ndim; i++) n *= v->dims[i] < 0 ? 1 : v->dims[i];
    return n;
}

int64_t ir_param_count(const ir_graph *g) {
    int64_t n = 0;
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].kind == IR_WEIGHT) n += ir_value_elems(&g->values[i]);
    return n;
}

void ir_cache_slots(const ir_graph *g, int *windows, int *cols) {
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (n->op != IR_ATTENTION) continue;
        windows[n->cache_slot] = (int)n->attr[IR_A_WINDOW];
        cols[n->cache_slot] = (int)(n->attr[IR_A_KV_HEADS] * n->attr[IR_A_HEAD_DIM]);
    }
}

/* The weight (src + add) · mul in panels of `panel` rows (0: row-major), made
 * once: a second request for the same derivation returns the first. */
static int add_derived(ir_graph *g, int src, double add, double mul, int panel) {
    const ir_value *s = &g->values[src];
    const char *tensor = s->derived_from ? s->derived_from : s->name;
    double base_add = s->derived_from ? s->derived_add : 0, base_mul = s->derived_from ? s->derived_mul : 1;
    double total_add = base_add + add / base_mul, total_mul = base_mul * mul;
    char name[512];
    int at = total_add == 0 && total_mul == 1 ? snprintf(name, sizeof name, "%s", tensor)
                                              : snprintf(name, sizeof name, "(%s+%g)*%g", tensor, total_add, total_mul);
    if (panel) snprintf(name + at, sizeof name - at, "@panel%d", panel);
    int found = gm_names_get(&g->value_ids, name);
    if (found >= 0) return found;
    ir_value w = *s;
    int id = ir_add_value(g, name, IR_WEIGHT, w.dtype, w.ndim, w.dims, w.layer);
    ir_value *d = &g->values[id];
    d->role = w.role ? gm_strdup(w.role) : NULL;
    d->pin_dtype = w.pin_dtype;
    d->derived_from = gm_strdup(tensor);
    d->derived_add = total_add;
    d->derived_mul = total_mul;
    d->panel = panel;
    return id;
}

int ir_add_derived_weight(ir_graph *g, int src, double add, double mul) {
    return add_derived(g, src, add, mul, g->values[src].panel);
}

int ir_add_packed_weight(ir_graph *g, int src, int panel) { return add_derived(g, src, 0, 1, panel); }

int *ir_producers(const ir_graph *g) {
    int *producer = gm_malloc(g->n_values * sizeof *producer);
    for (int v = 0; v < g->n_values; v++) producer[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) producer[g->nodes[i].out] = i;
    return producer;
}

int *ir_use_counts(const ir_graph *g) {
    int *uses = gm_calloc(g->n_values, sizeof *uses);
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < ir_ops[g->nodes[i].op].n_inputs; k++) uses[g->nodes[i].in[k]]++;
    return uses;
}

int ir_head_start(const ir_graph *g) {
    for (int i = g->n_nodes - 1; i > 0; i--)
        if (g->nodes[i].layer < 0 && g->nodes[i - 1].layer >= 0) return i;
    return -1;
}

int64_t ir_value_cols(const ir_graph *g, int v) {
    const ir_value *x = &g->values[v];
    return x->ndim == 1 && x->dims[0] < 0 ? 1 : x->dims[x->ndim - 1]; /* ids [T] are rows of one */
}

int64_t ir_node_rows(const ir_graph *g, const ir_node *n) {
    if (n->op == IR_SCORED_ROWS || n->op == IR_ALL_ROWS) return IR_DIM_T;
    for (int k = 0; k < ir_ops[n->op].n_inputs; k++)
        if (g->values[n->in[k]].kind != IR_WEIGHT && g->values[n->in[k]].dims[0] < 0) return g->values[n->in[k]].dims[0];
    return 0;
}

void ir_live_ranges(const ir_graph *g, int *first, int *last) {
    for (int v = 0; v < g->n_values; v++) first[v] = last[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) first[g->nodes[i].out] = last[g->nodes[i].out] = i;
    for (int i = 0; i < g->n_nodes; i++) /* in execution order: the last reader wins */
        for (int k = 0; k < ir_ops[g->nodes[i].op].n_inputs; k++)
            if (first[g->nodes[i].in[k]] >= 0) last[g->nodes[i].in[k]] = i;
    if (g->logits >= 0 && g->loss < 0) last[g->logits] = g->n_nodes; /* a training graph's output is its loss */
}

int64_t ir_arena_layout(const ir_graph *g, int64_t *offset) {
    if (g->arena_offset) {
        memcpy(offset, g->arena_offset, g->n_values * sizeof *offset);
        return g->arena_width;
    }
    int64_t width = 0;
    for (int v = 0; v < g->n_values; v++) {
        offset[v] = g->values[v].kind == IR_ACT && !ir_value_fixed(&g->values[v]) ? width : -1;
        if (offset[v] >= 0) width += ir_value_cols(g, v);
    }
    return width;
}

void ir_drop_plan(ir_graph *g) {
    free(g->arena_offset);
    g->arena_offset = NULL;
    g->arena_width = 0;
}
