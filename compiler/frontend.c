/* frontend.c — a model description (gemmac-model/1, docs/model-format.md) to IR.
 *
 * The description's three op lists are instantiated in order: `embed` once,
 * `layer` once per entry of `layers` (with that layer's weights and kind), and
 * `head` once. Names resolve through a small scope: values defined so far in
 * this list, then the residual `x` carried in, then weight roles. Attribute
 * strings "@key" are looked up in the layer's kind, then in `config`. The
 * result is a flat, unrolled graph, verified by ir_verify. Every error gives
 * the file, the JSON path, what was expected and what was found. */
#include "frontend.h"

#include <math.h>
#include <stdlib.h>

/* Ops and weights the layer block may unroll to: a bound on the IR a
 * description makes, checked before it is built (Gemma 3 27B: 62 layers of
 * 24 ops and 13 weights, 2294; the bound is 14 times that). Passes compare
 * nodes pairwise (eliminate_common), so the bound also keeps a hostile
 * description to a second or two of compiling. */
#define MAX_LAYER_OPS (1 << 15)

typedef gm_names scope; /* names bound so far to value ids; a later binding of a name wins */

typedef struct {
    const char *origin;     /* file name for messages */
    const cJSON *config;    /* the config object */
    const cJSON *kinds;     /* layer_kinds */
    ir_graph *g;
    gm_err *e;
} frontend;

static int fail(frontend *f, const char *path, const char *expected, const cJSON *found) {
    char *text = found ? cJSON_PrintUnformatted(found) : NULL;
    char shown[64];
    snprintf(shown, sizeof shown, "%s", text ? text : "nothing");
    if (text && strlen(text) >= sizeof shown) strcpy(shown + sizeof shown - 4, "...");
    free(text);
    return gm_fail(f->e, "%s: %s: expected %s, found %s", f->origin, path, expected, shown);
}

static void bind(scope *s, const char *name, int id) { gm_names_put(s, name, id); }

static int lookup(const scope *s, const char *name) { return gm_names_get(s, name); }

static const cJSON *member(frontend *f, const cJSON *obj, const char *key, const char *path, int type) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[256];
    int n = snprintf(p, sizeof p, "%s%s", path, *path ? "." : "");
    if (n >= 0 && (size_t)n < sizeof p) snprintf(p + n, sizeof p - n, "%s", key);
    static const char *const names[] = {[cJSON_Number] = "a number", [cJSON_String] = "a string",
                                        [cJSON_Array] = "an array", [cJSON_Object] = "an object"};
    if (!j || !(j->type & type)) {
        fail(f, p, names[type], j);
        return NULL;
    }
    return j;
}

/* Whether v is a whole number in [min, max]. */
static int is_whole(double v, int64_t min, int64_t max) { return v == floor(v) && v >= (double)min && v <= (double)max; }

/* A whole number in [min, max] (at most INT32_MAX: sizes, ids) under key. */
static int whole(frontend *f, const cJSON *obj, const char *key, const char *path, int64_t min, int64_t max,
                 int64_t *out) {
    const cJSON *j = member(f, obj, key, path, cJSON_Number);
    if (!j) return -1;
    double v = j->valuedouble;
    if (!is_whole(v, min, max)) {
        char p[256], want[96];
        snprintf(p, sizeof p, "%s.%s", path, key);
        snprintf(want, sizeof want, "a whole number in [%lld, %lld]", (long long)min, (long long)max);
        return fail(f, p, want, j);
    }
    *out = (int64_t)v;
    return 0;
}

/* "@key": the layer kind first (kind may be NULL), then config. */
static int attr_value(frontend *f, const cJSON *j, const cJSON *kind, const char *path, double *out) {
    if (cJSON_IsNumber(j)) return *out = j->valuedouble, 0;
    if (cJSON_IsBool(j)) return *out = cJSON_IsTrue(j), 0;
    if (cJSON_IsString(j) && j->valuestring[0] == '@') {
        const char *key = j->valuestring + 1;
        const cJSON *v = kind ? cJSON_GetObjectItemCaseSensitive(kind, key) : NULL;
        if (!v) v = cJSON_GetObjectItemCaseSensitive(f->config, key);
        if (cJSON_IsNumber(v)) return *out = v->valuedouble, 0;
        if (cJSON_IsBool(v)) return *out = cJSON_IsTrue(v), 0;
        return fail(f, path, kind ? "a number named in the layer kind or config" : "a number named in config", j);
    }
    return fail(f, path, "a number, true/false or \"@key\"", j);
}

/* Declares the weights of one object (weights or layer_weights) for layer
 * (or -1) and binds their roles in s. */
static int declare_weights(frontend *f, const cJSON *ws, const char *path, int layer, scope *s) {
    const cJSON *w;
    cJSON_ArrayForEach(w, ws) {
        char p[256], tensor[512];
        snprintf(p, sizeof p, "%s.%s", path, w->string);
        const cJSON *t = member(f, w, "tensor", p, cJSON_String);
        const cJSON *shape = t ? member(f, w, "shape", p, cJSON_Array) : NULL;
        if (!shape) return -1;
        int ndim = cJSON_GetArraySize(shape);
        if (ndim < 1 || ndim > 2) return fail(f, p, "a shape of 1 or 2 dimensions", shape);
        int64_t dims[2];
        for (int d = 0; d < ndim; d++) {
            const cJSON *x = cJSON_GetArrayItem(shape, d);
            if (!cJSON_IsNumber(x) || !is_whole(x->valuedouble, 1, INT32_MAX))
                return fail(f, p, "a shape of whole numbers in [1, 2147483647]", shape);
            dims[d] = (int64_t)x->valuedouble;
        }
        const char *at = strstr(t->valuestring, "{i}");
        if (at) snprintf(tensor, sizeof tensor, "%.*s%d%s", (int)(at - t->valuestring), t->valuestring, layer, at + 3);
        else snprintf(tensor, sizeof tensor, "%s", t->valuestring);
        int id = ir_add_value(f->g, tensor, IR_WEIGHT, GM_F32, ndim, dims, layer);
        ir_value *v = &f->g->values[id];
        v->role = gm_strdup(w->string);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(w, "dtype");
        if (dt && (!cJSON_IsString(dt) || gm_dtype_from_name(dt->valuestring, &v->dtype) || v->dtype == GM_I32))
            return fail(f, p, "dtype \"f32\", \"bf16\" or \"f16\"", dt);
        v->pin_dtype = dt != NULL;
        bind(s, v->role, id);
    }
    return 0;
}

static int op_attrs(frontend *f, const cJSON *op, ir_node *n, const cJSON *kind, const char *path) {
    const cJSON *a;
    cJSON_ArrayForEach(a, op) {
        if (!strcmp(a->string, "op") || !strcmp(a->string, "in") || !strcmp(a->string, "out")) continue;
        char p[256], allowed[256] = "";
        snprintf(p, sizeof p, "%s.%s", path, a->string);
        int id = ir_attr_from_name(a->string);
        if (id < 0 || !(ir_ops[n->op].attrs >> id & 1)) {
            for (int k = 0; k < IR_ATTR_COUNT; k++)
                if (ir_ops[n->op].attrs >> k & 1)
                    snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s",
                             *allowed ? ", " : "", ir_attr_names[k]);
            return gm_fail(f->e, "%s: %s: %s takes no attribute '%s' (it takes: %s)", f->origin, p,
                           ir_ops[n->op].name, a->string, *allowed ? allowed : "none");
        }
        if (attr_value(f, a, kind, p, &n->attr[id])) return -1;
    }
    return 0;
}

/* Instantiates one op list. layer is -1 outside the layer block. */
static int build_list(frontend *f, const cJSON *list, const char *section, int layer,
                      const cJSON *kind, scope *s) {
    int i = 0;
    const cJSON *op;
    cJSON_ArrayForEach(op, list) {
        char path[128], where[160], vname[256];
        snprintf(path, sizeof path, "graph.%s[%d]", section, i++);
        if (layer >= 0) snprintf(where, sizeof where, "layer %d %s", layer, path);
        else snprintf(where, sizeof where, "%s", path);
        const cJSON *name = member(f, op, "op", path, cJSON_String);
        const cJSON *in = name ? member(f, op, "in", path, cJSON_Array) : NULL;
        const cJSON *out = in ? member(f, op, "out", path, cJSON_String) : NULL;
        if (!out) return -1;
        int code = ir_op_from_name(name->valuestring);
        if (code < 0 || ir_ops[code].training) return fail(f, path, "a known op (see docs/model-format.md)", name);
        if (cJSON_GetArraySize(in) != ir_ops[code].n_inputs) {
            char want[64];
            snprintf(want, sizeof want, "%d inputs for %s", ir_ops[code].n_inputs, name->valuestring);
            return fail(f, path, want, in);
        }
        int ids[IR_MAX_IN], k = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, in) {
            char p[160];
            snprintf(p, sizeof p, "%s.in[%d]", path, k);
            if (!cJSON_IsString(x)) return fail(f, p, "a value or weight name", x);
            if ((ids[k++] = lookup(s, x->valuestring)) < 0)
                return gm_fail(f->e, "%s: %s: unknown value or weight \"%s\"", f->origin, p, x->valuestring);
        }
        int prev = lookup(s, out->valuestring);
        if (prev >= 0 && f->g->values[prev].kind == IR_WEIGHT)
            return fail(f, path, "an output name that is not a weight role", out);
        if (layer >= 0) snprintf(vname, sizeof vname, "L%d.%s", layer, out->valuestring);
        else snprintf(vname, sizeof vname, "%s", out->valuestring);
        if (prev >= 0) snprintf(vname + strlen(vname), sizeof vname - strlen(vname), ".%d", f->g->n_values);
        int id = ir_add_value(f->g, vname, IR_ACT, GM_F32, 0, NULL, layer);
        ir_node *n = ir_add_node(f->g, (ir_op)code, ids, id, layer, where);
        if (op_attrs(f, op, n, kind, path)) return -1;
        if (code == IR_ATTENTION) n->cache_slot = f->g->n_cache_slots++;
        bind(s, out->valuestring, id);
    }
    return 0;
}

static int build_layers(frontend *f, const cJSON *desc, const cJSON *graph, scope *model) {
    const cJSON *layers = member(f, desc, "layers", "", cJSON_Array);
    const cJSON *lw = layers ? member(f, desc, "layer_weights", "", cJSON_Object) : NULL;
    const cJSON *block = lw ? member(f, graph, "layer", "graph", cJSON_Array) : NULL;
    if (!block) return -1;
    ir_graph *g = f->g;
    int n = cJSON_GetArraySize(layers), ops = cJSON_GetArraySize(block) + cJSON_GetArraySize(lw);
    if ((int64_t)n * ops > MAX_LAYER_OPS)
        return gm_fail(f->e, "%s: layers, graph.layer, layer_weights: expected at most %d ops and weights in all, "
                             "found %d layers of %d", f->origin, MAX_LAYER_OPS, n, ops);
    g->n_layers = n;
    g->layers = gm_calloc(g->n_layers, sizeof *g->layers);
    for (int i = 0; i < g->n_layers; i++) {
        const cJSON *k = cJSON_GetArrayItem(layers, i);
        char p[64];
        snprintf(p, sizeof p, "layers[%d]", i);
        const cJSON *kind = cJSON_IsString(k) ? cJSON_GetObjectItemCaseSensitive(f->kinds, k->valuestring) : NULL;
        if (!cJSON_IsObject(kind)) return fail(f, p, "the name of an entry of layer_kinds", k);
        g->layers[i].kind = gm_strdup(k->valuestring);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(kind, "window");
        g->layers[i].window = cJSON_IsNumber(w) ? w->valuedouble : 0;
        scope s = {0};
        for (int b = 0; b < model->cap; b++)
            if (model->keys[b]) bind(&s, model->keys[b], model->ids[b]);
        int rc = declare_weights(f, lw, "layer_weights", i, &s);
        if (!rc) rc = build_list(f, block, "layer", i, kind, &s);
        int x = lookup(&s, "x");
        gm_names_clear(&s);
        if (rc) return -1;
        bind(model, "x", x);
    }
    return 0;
}

static int read_config(frontend *f, const cJSON *desc) {
    const cJSON *fmt = member(f, desc, "format", "", cJSON_String);
    if (!fmt) return -1;
    if (strcmp(fmt->valuestring, "gemmac-model/1")) return fail(f, "format", "\"gemmac-model/1\"", fmt);
    f->config = member(f, desc, "config", "", cJSON_Object);
    f->kinds = f->config ? member(f, desc, "layer_kinds", "", cJSON_Object) : NULL;
    int64_t bos, eos;
    if (!f->kinds || whole(f, f->config, "vocab", "config", 1, INT32_MAX, &f->g->vocab) ||
        whole(f, f->config, "max_context", "config", 1, INT32_MAX, &f->g->max_context) ||
        whole(f, f->config, "bos", "config", 0, f->g->vocab - 1, &bos) ||
        whole(f, f->config, "eos", "config", 0, f->g->vocab - 1, &eos)) return -1;
    f->g->bos = (int)bos;
    f->g->eos = (int)eos;
    return 0;
}

ir_graph *frontend_build(const cJSON *desc, const char *origin, gm_err *e) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(desc, "name");
    frontend f = {origin, NULL, NULL, ir_graph_new(cJSON_IsString(name) ? name->valuestring : origin), e};
    scope s = {0};
    const cJSON *graph = NULL, *ws = NULL;
    int rc = !cJSON_IsObject(desc) ? fail(&f, "(top level)", "an object", desc) : read_config(&f, desc);
    if (!rc) rc = !(ws = member(&f, desc, "weights", "", cJSON_Object)) ||
                  !(graph = member(&f, desc, "graph", "", cJSON_Object));
    if (!rc) rc = declare_weights(&f, ws, "weights", -1, &s);
    if (!rc) {
        int64_t t = IR_DIM_T;
        f.g->tokens = ir_add_value(f.g, "tokens", IR_INPUT, GM_I32, 1, &t, -1);
        bind(&s, "tokens", f.g->tokens);
        const cJSON *list = member(&f, graph, "embed", "graph", cJSON_Array);
        rc = !list || build_list(&f, list, "embed", -1, NULL, &s);
    }
    if (!rc && lookup(&s, "x") < 0) rc = gm_fail(e, "%s: graph.embed: no op defines \"x\"", origin);
    if (!rc) rc = build_layers(&f, desc, graph, &s);
    if (!rc) {
        const cJSON *list = member(&f, graph, "head", "graph", cJSON_Array);
        rc = !list || build_list(&f, list, "head", -1, NULL, &s);
    }
    if (!rc) f.g->logits = lookup(&s, "logits");
    gm_err ve;
    if (!rc && ir_verify(f.g, &ve)) rc = gm_fail(e, "%s: %s", origin, ve.msg);
    gm_names_clear(&s);
    if (rc) {
        ir_graph_free(f.g);
        return NULL;
    }
    return f.g;
}

cJSON *frontend_parse(const char *path, gm_err *e) {
    gm_json_where bad;
    cJSON *desc = gm_read_json(path, &bad, e);
    if (!desc && !e->msg[0] && bad.byte == 0)
        gm_fail(e, "%s: not JSON; expected a model description (.json), a Hugging Face checkpoint directory or its "
                   "config.json, or a .gguf file", path);
    else if (!desc && !e->msg[0])
        gm_fail(e, "%s:%d: malformed JSON near byte %zu; check for a missing comma, quote or brace", path,
                bad.line, bad.byte);
    return desc;
}

ir_graph *frontend_load(const char *path, gm_err *e) {
    cJSON *desc = frontend_parse(path, e);
    ir_graph *g = desc ? frontend_build(desc, path, e) : NULL;
    cJSON_Delete(desc);
    return g;
}
