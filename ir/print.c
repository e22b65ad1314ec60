/* print.c — the IR as text, one node a line, for `--dump-after` and tests:
 *   %L3.q = matmul(%L3.h, @model.layers.3.self_attn.q_proj.weight) : f32[T,2048]
 * Weights print with @ and their tensor name, activations with %, and
 * attributes that differ from their defaults in braces. Once plan_memory has
 * laid out the arena, each node's output also shows its columns there:
 *   ... : f32[T,2048]  ; arena[4096, 6144) */
#include "ir.h"

static void print_type(const ir_value *v, FILE *out) {
    fprintf(out, "%s[", gm_dtype_name(v->dtype));
    for (int i = 0; i < v->ndim; i++) {
        if (i) fputc(',', out);
        if (v->dims[i] < 0) fputc(v->dims[i] == IR_DIM_T ? 'T' : 'S', out);
        else fprintf(out, "%lld", (long long)v->dims[i]);
    }
    fputc(']', out);
}

static void print_ref(const ir_value *v, FILE *out) {
    fprintf(out, "%c%s", v->kind == IR_WEIGHT ? '@' : '%', v->name);
}

static void print_node(const ir_graph *g, const ir_node *n, FILE *out) {
    print_ref(&g->values[n->out], out);
    fprintf(out, " = %s(", ir_ops[n->op].name);
    for (int i = 0; i < ir_ops[n->op].n_inputs; i++) {
        if (i) fputs(", ", out);
        print_ref(&g->values[n->in[i]], out);
    }
    fputc(')', out);
    const char *sep = " {";
    for (int a = 0; a < IR_ATTR_COUNT; a++) {
        if (!(ir_ops[n->op].attrs >> a & 1) || n->attr[a] == ir_attr_defaults[a]) continue;
        fprintf(out, "%s%s=%.9g", sep, ir_attr_names[a], n->attr[a]);
        sep = ", ";
    }
    if (n->cache_slot >= 0) fprintf(out, "%scache=%d", sep, n->cache_slot), sep = ", ";
    if (sep[0] == ',') fputc('}', out);
    fputs(" : ", out);
    print_type(&g->values[n->out], out);
    if (g->arena_offset) {
        int64_t at = g->arena_offset[n->out];
        fprintf(out, "  ; arena[%lld, %lld)", (long long)at, (long long)(at + ir_value_cols(g, n->out)));
    }
    fputc('\n', out);
}

void ir_print(const ir_graph *g, FILE *out) {
    fprintf(out, "graph %s  ; vocab %lld, %d layers, %lld parameters", g->name, (long long)g->vocab, g->n_layers,
            (long long)ir_param_count(g));
    if (g->arena_offset) fprintf(out, ", arena %lld columns", (long long)g->arena_width);
    fputc('\n', out);
    for (int i = 0; i < g->n_values; i++) {
        const ir_value *v = &g->values[i];
        if (v->kind == IR_ACT) continue;
        fputs(v->kind == IR_INPUT ? "input " : "weight ", out);
        print_ref(v, out);
        fputs(" : ", out);
        print_type(v, out);
        fputc('\n', out);
    }
    for (int i = 0; i < g->n_nodes; i++) print_node(g, &g->nodes[i], out);
}
