/* model.c — opens a description and its checkpoint, binds every weight of
 * the IR to a tensor (present, float dtype, exact shape), and creates an
 * engine from a named backend. A mismatch names the checkpoint file, the
 * tensor and its role, expected vs found, so a wrong or transposed
 * checkpoint is caught before any arithmetic runs. A .gguf file is both:
 * its metadata imports to a description (import_gguf.c) and its tensors,
 * dequantized at load, are the weights; the file stays open in gm_model. */
#include "model.h"

#include "backends/llvm/llvm_engine.h"
#include "backends/reference/reference.h"
#include "frontend.h"
#include "import.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void shape_text(char *buf, size_t len, int ndim, const int64_t *dims) {
    size_t at = snprintf(buf, len, "[");
    for (int i = 0; i < ndim && at < len; i++) at += snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

static int bind_weight(gm_model *m, int v, gm_err *e) {
    ir_value *w = &m->graph->values[v];
    const st_tensor *t = st_find(m->weights, w->name);
    char where[160];
    if (w->layer >= 0) snprintf(where, sizeof where, "role %s of layer %d", w->role, w->layer);
    else snprintf(where, sizeof where, "role %s", w->role);
    if (!t)
        return gm_fail(e, "%s: tensor %s (%s) is missing; the checkpoint does not match %s",
                       m->weights_path, w->name, where, m->origin);
    int same = t->ndim == w->ndim;
    for (int d = 0; same && d < w->ndim; d++) same = t->shape[d] == w->dims[d];
    if (!same) {
        char want[96], got[96];
        shape_text(want, sizeof want, w->ndim, w->dims);
        shape_text(got, sizeof got, t->ndim, t->shape);
        int transposed = t->ndim == 2 && w->ndim == 2 && t->shape[0] == w->dims[1] && t->shape[1] == w->dims[0];
        return gm_fail(e, "%s: tensor %s (%s): shape %s expected, found %s%s", t->file, w->name, where,
                       want, got, transposed ? " — is this checkpoint transposed?" : "");
    }
    if (t->dtype == GM_I32 || (w->pin_dtype && t->dtype != w->dtype))
        return gm_fail(e, "%s: tensor %s (%s): dtype %s expected, found %s", t->file, w->name, where,
                       w->pin_dtype ? gm_dtype_name(w->dtype) : "f32, bf16 or f16", gm_dtype_name(t->dtype));
    w->dtype = t->dtype;
    m->bound[v] = t;
    return 0;
}

cJSON *gm_description_load(const char *path, char **origin, char **ckpt, gm_err *e) {
    char buf[4096];
    int dir = is_dir(path);
    snprintf(buf, sizeof buf, dir ? "%s/config.json" : "%s", path);
    *origin = gm_strdup(buf);
    *ckpt = NULL;
    if (!dir && ends_with(path, ".gguf")) {
        gguf_file *g = gguf_open(path, e);
        cJSON *desc = g ? import_gguf(g, path, e) : NULL;
        gguf_close(g);
        *ckpt = gm_strdup(path);
        return desc;
    }
    if (!dir && !ends_with(path, "config.json")) return frontend_parse(path, e);
    cJSON *desc = import_hf(path, e);
    char *slash = strrchr(buf, '/');
    if (slash) *slash = 0;
    *ckpt = gm_strdup(slash ? buf : ".");
    return desc;
}

static ir_graph *open_description(const char *path, char **origin, char **ckpt, gm_err *e) {
    cJSON *desc = gm_description_load(path, origin, ckpt, e);
    ir_graph *g = desc ? frontend_build(desc, *origin, e) : NULL;
    cJSON_Delete(desc);
    return g;
}

gm_model *gm_model_open(const char *path, const char *weights, gm_err *e) {
    gm_model *m = gm_calloc(1, sizeof *m);
    char *ckpt = NULL;
    m->graph = open_description(path, &m->origin, &ckpt, e);
    if (m->graph && !weights && !ckpt)
        gm_fail(e, "%s: a description holds no weights; pass --weights DIR (a safetensors checkpoint, or a .gguf file)", path);
    else if (m->graph) {
        m->weights_path = gm_strdup(weights ? weights : ckpt);
        if (!ends_with(m->weights_path, ".gguf")) m->weights = st_open(m->weights_path, e);
        else if ((m->gguf = gguf_open(m->weights_path, e))) m->weights = gguf_weights(m->gguf, e);
    }
    free(ckpt);
    if (!m->weights) {
        gm_model_free(m);
        return NULL;
    }
    m->bound = gm_calloc(m->graph->n_values, sizeof *m->bound);
    for (int v = 0; v < m->graph->n_values; v++)
        if (m->graph->values[v].kind == IR_WEIGHT && bind_weight(m, v, e)) {
            gm_model_free(m);
            return NULL;
        }
    return m;
}

void gm_model_free(gm_model *m) {
    if (!m) return;
    ir_graph_free(m->graph);
    st_close(m->weights);
    gguf_close(m->gguf);
    free(m->bound);
    free(m->origin);
    free(m->weights_path);
    free(m);
}

const char *const gm_backend_names[] = {"reference", "jit", NULL};

rt_engine *gm_model_engine(gm_model *m, const char *backend, const rt_engine_opts *o, gm_err *e) {
    if (!strcmp(backend, "reference")) return ref_engine_create(m->graph, m->bound, o, e);
    if (!strcmp(backend, "jit")) return llvm_engine_create(m->graph, m->bound, o, e);
    gm_fail(e, "unknown backend \"%s\" (available: reference, jit)", backend);
    return NULL;
}
