/* model.c — opens a description and its checkpoint, binds every weight of
 * the IR to a tensor (present, float dtype, exact shape), and creates an
 * engine from a named backend. A mismatch names the checkpoint file, the
 * tensor and its role, expected vs found, so a wrong or transposed
 * checkpoint is caught before any arithmetic runs. A .gguf file is both:
 * its metadata imports to a description (import_gguf.c) and its tensors,
 * mapped as stored (block-quantized ones too), are the weights; the file
 * stays open in gm_model.
 * An AOT executable with embedded weights hands them over as a gm_blob,
 * opened from memory instead of a path. */
#include "model.h"

#include "runtime/cuda.h"

#include "frontend.h"
#include "import.h"

#include "runtime/quant.h"
#include "runtime/safetensors.h"
#include "runtime/threads.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static void shape_text(char *buf, size_t len, int ndim, const int64_t *dims) {
    size_t at = snprintf(buf, len, "[");
    for (int i = 0; i < ndim && at < len; i++) at += snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

static int64_t elements(const gm_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static int is_pow2_scale(const ir_value *w) {
    int exp;
    return w->derived_add == 0 && frexp(w->derived_mul, &exp) == 0.5;
}

/* A quantized weight's blocks with the folded power of two in their f16
 * scales (exact), malloc'd; NULL when a scale would leave f16's normal range. */
static void *scaled_blocks(const ir_value *w, const gm_tensor *src) {
    void *q = gm_malloc(src->nbytes);
    memcpy(q, src->data, src->nbytes);
    if (is_pow2_scale(w) && !gm_quant_scale_pow2(src->dtype, q, elements(src), w->derived_mul)) return q;
    free(q);
    return NULL;
}

/* The values of a folded weight (see passes/fold_constants.c), (source +
 * add) · mul, malloc'd, and their dtype. A BF16 source only scaled by a
 * power of two stays BF16 (exactly); a block-quantized one stays quantized
 * (scaled_blocks: its f16 block scales scaled, exactly, quant.h), or, when
 * a scale would leave f16's normal range, as stored with the factor on the
 * outputs (scale_outputs); the rest becomes F32, computed as the unfolded
 * kernel would. folded_dtype: the dtype an unquantized one gets. */
static gm_dtype folded_dtype(const ir_value *w, gm_dtype src) {
    return src == GM_BF16 && is_pow2_scale(w) ? GM_BF16 : GM_F32;
}

static void *folded_values(const ir_value *w, const gm_tensor *src, gm_dtype *dt) {
    int keep_bf16 = folded_dtype(w, src->dtype) == GM_BF16;
    size_t n = (size_t)elements(src);
    float *f = gm_malloc(n * sizeof(float));
    gm_to_f32(src->dtype, src->data, f, n);
    for (size_t i = 0; i < n; i++) f[i] = (float)(((double)f[i] + w->derived_add) * w->derived_mul);
    if (keep_bf16) {
        uint16_t *h = (uint16_t *)f; /* in place: each bf16 is the top half of its exact f32 */
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &f[i], 4);
            h[i] = (uint16_t)(u >> 16);
        }
    }
    *dt = keep_bf16 ? GM_BF16 : GM_F32;
    return f;
}

static int is_identity(const ir_value *w) { return w->derived_add == 0 && w->derived_mul == 1; }

const gm_tensor *gm_model_tensor(const gm_model *m, const char *name) {
    const gm_tensor *t = weights_find(m->weights, name);
    return t || !m->absent ? t : weights_find(m->absent, name);
}

void *gm_unpacked_values(gm_model *m, const ir_value *w, const gm_tensor *src) {
    gm_dtype dt;
    if (!src->data) { /* absent: an executable whose embedded pack did not match its kernels */
        gm_say("%s: tensor %s is embedded only as packed weights, which do not match this "
                        "executable's kernels; compile it again\n", m->weights_path, src->name);
        exit(1);
    }
    if (is_identity(w)) return (void *)src->data;
    return gm_dtype_quantized(src->dtype) ? scaled_blocks(w, src) : folded_values(w, src, &dt);
}

void gm_release_unpacked(gm_model *m, const ir_value *w, void *values) {
    const gm_tensor *src = gm_model_tensor(m, w->derived_from);
    if (values != src->data) {
        free(values);
        return;
    }
    if (m->gguf) return; /* dequantized into memory: still the embedding's, maybe */
    gm_drop_file_pages(src->data, src->nbytes);
}

/* A power-of-two factor folded into a quantized weight whose block scales
 * cannot take it exactly (they would leave f16's normal range: Q8_0's and
 * Q4_K's small d): the weight stays as stored and the matmuls that read it
 * scale their outputs instead, the same exact product (out_scale). */
static int scale_outputs(gm_model *m, const ir_value *w) {
    int v = (int)(w - m->graph->values), found = 0;
    for (int i = 0; i < m->graph->n_nodes; i++) {
        ir_node *n = &m->graph->nodes[i];
        if (ir_is_matmul(n->op) && n->in[1] == v) n->attr[IR_A_OUT_SCALE] *= w->derived_mul, found = 1;
    }
    return found;
}

/* Whether only matmuls under --activations int8 read weight w, with K a
 * multiple of 64: what the int8 tiles over repacked panels take. */
static int int8_only(const gm_model *m, const ir_value *w) {
    int v = (int)(w - m->graph->values), found = 0;
    for (int i = 0; i < m->graph->n_nodes; i++) {
        const ir_node *n = &m->graph->nodes[i];
        if (ir_is_matmul(n->op) && n->in[1] == v && !n->attr[IR_A_X_INT8]) return 0;
        found |= ir_is_matmul(n->op) && n->in[1] == v;
    }
    return found && w->dims[1] % 64 == 0;
}

/* Whether a block-quantized weight keeps the panel layout pack_weights gave
 * it: repacked for the int8 tiles (runtime/qpanel.h) when they alone read
 * it, and a folded factor, if any, is a power of two that its block scales
 * take, or else the outputs (scale_outputs; the weight is then the source). */
static int keeps_qpanel(gm_model *m, ir_value *w, const gm_tensor *src) {
    if (!w->panel || !int8_only(m, w) || (!is_identity(w) && !is_pow2_scale(w))) return 0;
    void *scaled = is_identity(w) ? NULL : scaled_blocks(w, src);
    int in_scales = scaled != NULL;
    free(scaled);
    if (!is_identity(w) && !in_scales && scale_outputs(m, w)) w->derived_mul = 1;
    return is_identity(w) || in_scales;
}

/* A tied table kept in int8 panels for the head (an identity copy of the
 * embedding): the embedding lookup reads those panels too (gm_qpanel_row),
 * so nothing reads the table as stored and an executable with its weights
 * embedded need not carry it (cmd_compile.c). */
static void embed_from_panels(gm_model *m, int v) {
    ir_graph *g = m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        const ir_value *t = &g->values[n->in[1]];
        if (n->op == IR_EMBED && !t->derived_from && !strcmp(t->name, g->values[v].derived_from)) n->in[1] = v;
    }
}

/* The tensor a derived weight is bound to: folded now, or (packed) described
 * now and filled by gm_model_pack. A block-quantized weight is packed only
 * for the int8 tiles (keeps_qpanel); the other kernels read it as stored
 * (row-major blocks), so its value's panel goes back to 0 and, unless
 * folded, it is the checkpoint's own tensor. */
static const gm_tensor *derive_weight(gm_model *m, ir_value *w, const gm_tensor *src) {
    int quantized = gm_dtype_quantized(src->dtype);
    if (quantized && !keeps_qpanel(m, w, src)) w->panel = 0;
    if (is_identity(w) && !w->panel) return src;
    void *scaled = quantized && !w->panel ? scaled_blocks(w, src) : NULL;
    if (quantized && !w->panel && !scaled && is_pow2_scale(w) && scale_outputs(m, w)) return src;
    gm_tensor *t = gm_malloc(sizeof *t);
    *t = *src;
    t->name = w->name;
    t->data = NULL;
    if (w->panel) {
        t->dtype = is_identity(w) || quantized ? src->dtype : folded_dtype(w, src->dtype);
        m->packed = gm_realloc(m->packed, (m->n_packed + 1) * sizeof *m->packed);
        m->packed[m->n_packed++] = t;
        if (quantized && is_identity(w)) embed_from_panels(m, (int)(w - m->graph->values));
        return t;
    }
    t->data = scaled ? scaled : folded_values(w, src, &t->dtype);
    t->nbytes = gm_dtype_bytes(t->dtype, elements(src));
    m->folded = gm_realloc(m->folded, (m->n_folded + 1) * sizeof *m->folded);
    m->folded[m->n_folded++] = t;
    return t;
}

static int bind_weight(gm_model *m, int v, gm_err *e) {
    ir_value *w = &m->graph->values[v];
    const char *name = w->derived_from ? w->derived_from : w->name;
    const gm_tensor *t = gm_model_tensor(m, name);
    char where[160];
    if (w->layer >= 0) snprintf(where, sizeof where, "role %s of layer %d", w->role, w->layer);
    else snprintf(where, sizeof where, "role %s", w->role);
    if (!t)
        return gm_fail(e, "%s: tensor %s (%s) is missing; the checkpoint does not match %s",
                       m->weights_path, name, where, m->origin);
    int same = t->ndim == w->ndim;
    for (int d = 0; same && d < w->ndim; d++) same = t->shape[d] == w->dims[d];
    if (!same) {
        char want[96], got[96];
        shape_text(want, sizeof want, w->ndim, w->dims);
        shape_text(got, sizeof got, t->ndim, t->shape);
        int transposed = t->ndim == 2 && w->ndim == 2 && t->shape[0] == w->dims[1] && t->shape[1] == w->dims[0];
        return gm_fail(e, "%s: tensor %s (%s): shape %s expected, found %s%s", t->file, name, where,
                       want, got, transposed ? " — is this checkpoint transposed?" : "");
    }
    if (w->pin_dtype && t->dtype != w->dtype)
        return gm_fail(e, "%s: tensor %s (%s): dtype %s expected, found %s", t->file, name, where,
                       gm_dtype_name(w->dtype), gm_dtype_name(t->dtype));
    if (t->dtype == GM_I32)
        return gm_fail(e, "%s: tensor %s (%s): dtype i32, expected a float (f32, bf16, f16) or a GGUF block type; "
                          "an integer tensor holds no weights", t->file, name, where);
    if (gm_dtype_quantized(t->dtype) && w->ndim != 2)
        return gm_fail(e, "%s: tensor %s (%s): dtype %s on a vector; block formats are read for matrices only (embedding and "
                       "projections): store it as F32", t->file, name, where, gm_dtype_name(t->dtype));
    if (w->derived_from) t = derive_weight(m, w, t);
    w->dtype = t->dtype;
    m->bound[v] = t;
    return 0;
}

const char *gm_builtin_description, *gm_builtin_passes;
const gm_blob *gm_builtin_weights, *gm_builtin_tokenizer;

cJSON *gm_description_load(const char *path, char **origin, char **ckpt, gm_err *e) {
    char buf[4096];
    if (gm_builtin_description) {
        *origin = gm_strdup(path);
        *ckpt = NULL;
        return cJSON_Parse(gm_builtin_description);
    }
    int dir = gm_is_dir(path);
    snprintf(buf, sizeof buf, dir ? "%s/config.json" : "%s", path);
    *origin = gm_strdup(buf);
    *ckpt = NULL;
    if (!dir && gm_ends_with(path, ".gguf")) {
        gguf_file *g = gguf_open(path, e);
        cJSON *desc = g ? import_gguf(g, path, e) : NULL;
        gguf_close(g);
        *ckpt = gm_strdup(path);
        return desc;
    }
    if (!dir && !gm_ends_with(path, "config.json")) return frontend_parse(path, e);
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

/* m->absent from an executable's embedded GGUF (GM_PACKED_ONLY_KEY): the
 * tensors it left out, bound by name, dtype and shape, whose packed copies
 * it carries (gm_builtin_packed). */
static int open_absent(gm_model *m, gm_err *e) {
    const gguf_kv *kv = gguf_find(m->gguf, GM_PACKED_ONLY_KEY);
    if (!kv) return 0;
    if (!gm_builtin_packed)
        return gm_fail(e, "%s: %s lists tensors kept only as packed weights, but none are embedded; compile it again",
                       m->weights_path, GM_PACKED_ONLY_KEY);
    gm_tensor *ts = gm_calloc(kv->count + 1, sizeof *ts);
    int n = 0, rc = 0;
    for (uint64_t i = 0; i < kv->count && !rc; i++) {
        char *s = gguf_array_string(kv, i), name[256], dt[16];
        long long rows, cols;
        gm_tensor *t = &ts[n];
        if (!s || sscanf(s, "%255s %15s %lld %lld", name, dt, &rows, &cols) != 4 || gm_dtype_from_name(dt, &t->dtype))
            rc = gm_fail(e, "%s: %s[%llu]: expected \"NAME DTYPE ROWS COLS\", found \"%.60s\"", m->weights_path,
                         GM_PACKED_ONLY_KEY, (unsigned long long)i, s ? s : "(not a string)");
        else
            *t = (gm_tensor){gm_strdup(name), t->dtype, 2, {rows, cols}, NULL, 0, m->weights_path}, n++;
        free(s);
    }
    if (rc) {
        for (int i = 0; i < n; i++) free(ts[i].name);
        free(ts);
        return -1;
    }
    m->absent = weights_from(ts, n, NULL, 0, e);
    return m->absent ? 0 : -1;
}

/* m->weights from the file at m->weights_path, or from blob when there is one. */
static void open_weights(gm_model *m, const gm_blob *blob, gm_err *e) {
    const char *p = m->weights_path;
    if (!gm_ends_with(p, ".gguf"))
        m->weights = blob ? st_open_memory(blob->data, blob->size, p, e) : st_open(p, e);
    else if ((m->gguf = blob ? gguf_open_memory(blob->data, blob->size, p, e) : gguf_open(p, e)))
        m->weights = gguf_weights(m->gguf, e);
    if (m->weights && blob && m->gguf && open_absent(m, e)) {
        weights_close(m->weights);
        m->weights = NULL;
    }
}

/* --weights-dtype: rows [part·N/parts, ..) of a matrix into its copy of the new dtype. */
typedef struct {
    const gm_tensor *src;
    gm_dtype dt;
    unsigned char *dst;
    atomic_llong bad_row;  /* a row holding a NaN or an infinity (not encoded), or -1 */
} quantize_job;

static void quantize_part(void *arg, int part, int parts) {
    const quantize_job *j = arg;
    int64_t N = j->src->shape[0], K = j->src->shape[1];
    size_t in = gm_dtype_bytes(j->src->dtype, K), out = gm_dtype_bytes(j->dt, K);
    float *row = gm_malloc(K * sizeof *row);
    for (int64_t r = N * part / parts; r < N * (part + 1) / parts; r++) {
        gm_to_f32(j->src->dtype, (const unsigned char *)j->src->data + r * in, row, (size_t)K);
        if (gm_all_finite(row, K)) gm_quantize(j->dt, row, j->dst + r * out, K);
        else atomic_store(&j->bad_row, r);
    }
    free(row);
}

/* The checkpoint with its float matrices (the 2-D tensors whose rows the
 * block divides: embedding and projections) quantized to the dtype named,
 * as `gemmac quantize --to NAME` would encode them, or converted to bf16 or
 * f16 (block-quantized ones too: expanded); the rest as they are.
 * The new archive owns the copies; the original stays open under it. */
static int quantize_weights(gm_model *m, const char *name, gm_err *e) {
    gm_dtype dt;
    if (gm_dtype_from_name(name, &dt) || !(gm_dtype_quantized(dt) || dt == GM_BF16 || dt == GM_F16))
        return gm_fail(e, "--weights-dtype %.40s: expected bf16, f16 or a GGUF block type: q8_0, q4_0, q4_1, q5_0, q5_1, "
                          "q4_k, q5_k or q6_k", name);
    int n = weights_count(m->weights), n_owned = 0;
    gm_tensor *ts = gm_calloc((size_t)n + 1, sizeof *ts);
    void **owned = gm_calloc((size_t)n + 1, sizeof *owned);
    rt_pool *pool = rt_pool_new(rt_default_threads());
    long long bad = -1;
    int i = 0;
    for (; i < n && bad < 0; i++) {
        const gm_tensor *t = weights_get(m->weights, i);
        ts[i] = *t;
        ts[i].name = gm_strdup(t->name);
        if (t->ndim != 2 || t->dtype == GM_I32 || t->dtype == dt || (gm_dtype_quantized(t->dtype) && gm_dtype_quantized(dt)) ||
            t->shape[1] % gm_dtype_block(dt))
            continue;
        ts[i].dtype = dt;
        ts[i].nbytes = gm_dtype_bytes(dt, t->shape[0] * t->shape[1]);
        ts[i].data = owned[n_owned++] = gm_malloc(ts[i].nbytes);
        quantize_job job = {t, dt, owned[n_owned - 1], -1};
        rt_pool_run(pool, quantize_part, &job);
        if ((bad = atomic_load(&job.bad_row)) >= 0)
            gm_fail(e, "%s: tensor %s: row %lld holds a NaN or an infinity; --weights-dtype %s encodes finite weights only "
                       "(is the checkpoint damaged?)", t->file, t->name, bad, name);
    }
    rt_pool_free(pool);
    gm_weights *q = weights_from(ts, i, owned, n_owned, e);
    if (q && bad >= 0) weights_close(q), q = NULL;
    if (!q) return -1;
    m->source_weights = m->weights;
    m->weights = q;
    return 0;
}

gm_model *gm_model_open(const char *path, const char *weights, gm_err *e) {
    return gm_model_open_with(path, weights, &(gm_pipeline_opts){.level = GM_DEFAULT_LEVEL}, e);
}

/* The model at path through the passes of po, over its checkpoint, or over share's when given. */
static gm_model *open_model(const char *path, const char *weights, const gm_pipeline_opts *po, const gm_model *share,
                            gm_err *e) {
    gm_model *m = gm_calloc(1, sizeof *m);
    char *ckpt = NULL;
    gm_pipeline_opts builtin = {.level = 0, .passes = gm_builtin_passes, .dump_after = po->dump_after, .dump = po->dump};
    if (gm_builtin_passes) po = &builtin;
    m->graph = open_description(path, &m->origin, &ckpt, e);
    if (m->graph && pipeline_run(m->graph, po, m->passes, sizeof m->passes, e)) {
        ir_graph_free(m->graph);
        m->graph = NULL;
    }
    const gm_blob *blob = weights ? NULL : gm_builtin_weights;
    if (m->graph && !weights && !ckpt && !blob)
        gm_fail(e, "%s: a description holds no weights; pass --weights DIR (a safetensors checkpoint, or a .gguf file)", path);
    else if (m->graph) {
        m->weights_path = gm_strdup(blob ? blob->name : weights ? weights : ckpt);
        if (share) m->weights = share->weights, m->absent = share->absent, m->shares_weights = 1;
        else open_weights(m, blob, e);
        if (m->weights && !share && po->weights_dtype && quantize_weights(m, po->weights_dtype, e)) {
            weights_close(m->weights);
            m->weights = NULL;
        }
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

gm_model *gm_model_open_with(const char *path, const char *weights, const gm_pipeline_opts *po, gm_err *e) {
    return open_model(path, weights, po, NULL, e);
}

gm_model *gm_model_open_sharing(const char *path, const char *weights, const gm_pipeline_opts *po, const gm_model *share,
                                gm_err *e) {
    return open_model(path, weights, po, share, e);
}

void gm_model_free(gm_model *m) {
    if (!m) return;
    ir_graph_free(m->graph);
    if (!m->shares_weights) weights_close(m->weights), weights_close(m->absent);
    weights_close(m->source_weights);
    gguf_close(m->gguf);
    free(m->bound);
    for (int i = 0; i < m->n_folded; i++) {
        free((void *)m->folded[i]->data);
        free(m->folded[i]);
    }
    for (int i = 0; i < m->n_packed; i++) free(m->packed[i]);
    free(m->packed);
    gm_huge_free(m->pack_region, m->pack_size);
    free(m->folded);
    free(m->origin);
    free(m->weights_path);
    free(m);
}

const char *gm_backend_target(const char *backend) {
    return backend && (!strcmp(backend, "nvptx") || !strcmp(backend, "reference")) ? backend : NULL;
}

int gm_backend_batches(const char *backend) { return !strcmp(backend, "jit") || !strcmp(backend, "aot"); }

int gm_backend_available(const char *backend, gm_err *e) {
    if (strcmp(backend, "nvptx")) return 1;
    rt_cuda *cu = rt_cuda_open(e);
    rt_cuda_close(cu);
    return cu != NULL;
}
