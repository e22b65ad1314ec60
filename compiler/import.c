/* import.c — Hugging Face Gemma config.json to a gemmac model description.
 *
 * This file (and import_gguf.c, which maps GGUF metadata onto the same
 * rows) is the only code in gemmac that knows the Gemma generations. It reads
 * an HF config (model_type gemma, gemma2, gemma3_text, or the multimodal
 * gemma3, whose text decoder is described by its `text_config`), fills the
 * keys the file leaves out with the defaults of the matching transformers
 * config class, and writes the description of docs/model-format.md: named
 * sizes, layer kinds, tensor names with their exact shapes, and the op graph.
 * The differences between the generations are kept as data — one row of
 * `families` each (which norms exist, how layers alternate, which keys hold
 * the window and the rope bases, what the defaults are) — and a few short
 * builders turn a row plus the numbers into JSON. When the checkpoint
 * directory holds safetensors, the vocabulary is taken from the embedding's
 * row count (the multimodal Gemma 3 embedding has 64 rows more than the
 * tokenizer) and the tensor prefix from the name the embedding is stored
 * under. Errors are one line: file, key, expected vs found, and a hint.
 * The tables also carry llama.cpp's tensor names, so that import_gguf.c
 * reaches the same builders through import_describe. */
#define _XOPEN_SOURCE 700 /* realpath, stat */

#include "compiler/import.h"

#include "runtime/safetensors.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the Gemma generations, as data ------------------------------------ */

typedef struct {
    const char *key;
    double value;
} hf_default;

/* How the layers get their kinds. */
typedef enum {
    KINDS_ALL_GLOBAL, /* Gemma 1: every layer attends globally */
    KINDS_ALTERNATE,  /* Gemma 2: even layers sliding, odd global (or layer_types) */
    KINDS_PATTERN,    /* Gemma 3: global iff (i+1) % pattern == 0 (or layer_types) */
} kind_rule;

typedef struct {
    const char *model_type;
    const char *text_key;       /* sub-object holding the decoder config, or NULL */
    const char *prefixes[3];    /* tensor-name prefixes; the first is the default */
    bool post_norms;            /* norms on the attention and MLP outputs */
    bool qk_norm;               /* per-head q/k RMSNorm before RoPE */
    bool softcaps;              /* reads attn_/final_logit_softcapping */
    bool query_pre_attn_scalar; /* scores scaled by it (else by head_dim) */
    kind_rule rule;
    const char *window_keys[3];   /* sliding window size, first present wins */
    const char *pattern_keys[3];  /* KINDS_PATTERN: period of the global layer */
    const char *local_theta_key;  /* θ of sliding layers; NULL: rope_theta */
    bool scale_sliding;           /* linear rope scaling on sliding layers too */
    const hf_default *defaults;   /* keys a file may leave out; others are required */
} family;

/* transformers GemmaConfig / Gemma2Config defaults. The sizes are not
 * defaulted: a config without them is not a real checkpoint's config. */
static const hf_default gemma1_defaults[] = {
    {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"max_position_embeddings", 8192},
    {"bos_token_id", 2}, {"eos_token_id", 1}, {NULL, 0}};

static const hf_default gemma2_defaults[] = {
    {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0}, {"max_position_embeddings", 8192},
    {"bos_token_id", 2}, {"eos_token_id", 1}, {"query_pre_attn_scalar", 256},
    {"sliding_window", 4096}, {"attn_logit_softcapping", 50.0},
    {"final_logit_softcapping", 30.0}, {NULL, 0}};

/* transformers Gemma3TextConfig (4.50): the published multimodal configs
 * state only what differs from these (tests/hf-configs/README.md). */
static const hf_default gemma3_defaults[] = {
    {"vocab_size", 262208}, {"num_attention_heads", 8}, {"num_key_value_heads", 4},
    {"head_dim", 256}, {"query_pre_attn_scalar", 256}, {"max_position_embeddings", 131072},
    {"rope_theta", 1000000.0}, {"rope_local_base_freq", 10000.0},
    {"sliding_window", 4096}, {"sliding_window_pattern", 6}, {"rms_norm_eps", 1e-6},
    {"bos_token_id", 2}, {"eos_token_id", 1}, {"attn_logit_softcapping", 0},
    {"final_logit_softcapping", 0}, {NULL, 0}};

static const family families[] = {
    {.model_type = "gemma", .prefixes = {"model."}, .rule = KINDS_ALL_GLOBAL,
     .scale_sliding = true, .defaults = gemma1_defaults},
    {.model_type = "gemma2", .prefixes = {"model."}, .post_norms = true, .softcaps = true,
     .query_pre_attn_scalar = true, .rule = KINDS_ALTERNATE,
     .window_keys = {"sliding_window", "sliding_window_size"}, .scale_sliding = true,
     .defaults = gemma2_defaults},
    {.model_type = "gemma3_text", .prefixes = {"model."}, .post_norms = true, .qk_norm = true,
     .softcaps = true, .query_pre_attn_scalar = true, .rule = KINDS_PATTERN,
     .window_keys = {"sliding_window"},
     .pattern_keys = {"sliding_window_pattern", "_sliding_window_pattern"},
     .local_theta_key = "rope_local_base_freq", .defaults = gemma3_defaults},
    {.model_type = "gemma3", .text_key = "text_config",
     .prefixes = {"language_model.model.", "model.language_model."}, .post_norms = true,
     .qk_norm = true, .softcaps = true, .query_pre_attn_scalar = true, .rule = KINDS_PATTERN,
     .window_keys = {"sliding_window"},
     .pattern_keys = {"sliding_window_pattern", "_sliding_window_pattern"},
     .local_theta_key = "rope_local_base_freq", .defaults = gemma3_defaults},
};
#define N_FAMILIES (sizeof families / sizeof families[0])
#define SUPPORTED_TYPES "gemma, gemma2, gemma3_text, gemma3"

/* Checkpoint tensors. Shapes are symbolic sizes; `need` says when a weight
 * exists. Layer tensors are named prefix + "layers.{i}." + tensor. */
typedef enum { D_NONE, D_VOCAB, D_HIDDEN, D_Q, D_KV, D_FFN, D_HEAD } dim;
typedef enum { ALWAYS, WITH_POST_NORMS, WITHOUT_POST_NORMS, WITH_QK_NORM, WHEN_UNTIED } need;

/* tensor: the HF name (after the prefix); gguf: llama.cpp's name. */
typedef struct {
    const char *role, *tensor, *gguf;
    need need;
    dim rows, cols;
} weight_spec;

static const weight_spec model_weights[] = {
    {"embed", "embed_tokens.weight", "token_embd.weight", ALWAYS, D_VOCAB, D_HIDDEN},
    {"final_norm", "norm.weight", "output_norm.weight", ALWAYS, D_HIDDEN, D_NONE},
    {"lm_head", "lm_head.weight", "output.weight", WHEN_UNTIED, D_VOCAB, D_HIDDEN},
};

static const weight_spec layer_weights[] = {
    {"attn_norm", "input_layernorm.weight", "attn_norm.weight", ALWAYS, D_HIDDEN, D_NONE},
    {"q_proj", "self_attn.q_proj.weight", "attn_q.weight", ALWAYS, D_Q, D_HIDDEN},
    {"k_proj", "self_attn.k_proj.weight", "attn_k.weight", ALWAYS, D_KV, D_HIDDEN},
    {"v_proj", "self_attn.v_proj.weight", "attn_v.weight", ALWAYS, D_KV, D_HIDDEN},
    {"o_proj", "self_attn.o_proj.weight", "attn_output.weight", ALWAYS, D_HIDDEN, D_Q},
    {"q_norm", "self_attn.q_norm.weight", "attn_q_norm.weight", WITH_QK_NORM, D_HEAD, D_NONE},
    {"k_norm", "self_attn.k_norm.weight", "attn_k_norm.weight", WITH_QK_NORM, D_HEAD, D_NONE},
    {"post_attn_norm", "post_attention_layernorm.weight", "post_attention_norm.weight",
     WITH_POST_NORMS, D_HIDDEN, D_NONE},
    /* Gemma 1 calls its pre-MLP norm post_attention_layernorm. */
    {"ffn_norm", "pre_feedforward_layernorm.weight", "ffn_norm.weight", WITH_POST_NORMS, D_HIDDEN, D_NONE},
    {"ffn_norm", "post_attention_layernorm.weight", "ffn_norm.weight", WITHOUT_POST_NORMS, D_HIDDEN, D_NONE},
    {"gate_proj", "mlp.gate_proj.weight", "ffn_gate.weight", ALWAYS, D_FFN, D_HIDDEN},
    {"up_proj", "mlp.up_proj.weight", "ffn_up.weight", ALWAYS, D_FFN, D_HIDDEN},
    {"down_proj", "mlp.down_proj.weight", "ffn_down.weight", ALWAYS, D_HIDDEN, D_FFN},
    {"post_ffn_norm", "post_feedforward_layernorm.weight", "post_ffw_norm.weight", WITH_POST_NORMS,
     D_HIDDEN, D_NONE},
};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- reading the config ------------------------------------------------- */

/* The decoder's numbers, after defaults (import.h). */
typedef import_decoder hf_model;

/* Where keys are read from, for lookups and messages. */
typedef struct {
    const char *file;    /* config.json path */
    const char *at;      /* "" or "text_config." */
    const cJSON *obj;    /* the decoder config */
    const cJSON *top;    /* the whole file (token ids may live there) */
    const family *fam;
    gm_err *e;
} hf_src;

/* A short description of a JSON value for "found ..." in messages. */
static const char *found(const cJSON *j, char *buf, size_t n) {
    if (!j) return "nothing";
    if (cJSON_IsString(j)) snprintf(buf, n, "\"%.60s\"", j->valuestring);
    else if (cJSON_IsNumber(j)) snprintf(buf, n, "%.15g", j->valuedouble);
    else if (cJSON_IsBool(j)) snprintf(buf, n, "%s", cJSON_IsTrue(j) ? "true" : "false");
    else if (cJSON_IsNull(j)) snprintf(buf, n, "null");
    else if (cJSON_IsArray(j)) snprintf(buf, n, "a list of %d", cJSON_GetArraySize(j));
    else snprintf(buf, n, "an object");
    return buf;
}

static int bad_value(const hf_src *s, const char *key, const char *expected, const cJSON *j) {
    char buf[96];
    return gm_fail(s->e, "%s: %s%s: expected %s, found %s", s->file, s->at, key, expected,
                   found(j, buf, sizeof buf));
}

static int bad_number(const hf_src *s, const char *key, const char *expected, double v) {
    return gm_fail(s->e, "%s: %s%s: expected %s, found %.15g", s->file, s->at, key, expected, v);
}

static const hf_default *default_for(const family *f, const char *key) {
    for (const hf_default *d = f->defaults; d->key; d++)
        if (!strcmp(d->key, key)) return d;
    return NULL;
}

/* The value of the first of keys present; *used gets its name. */
static const cJSON *lookup(const hf_src *s, const char *const *keys, const char **used) {
    for (int i = 0; i < 3 && keys[i]; i++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(s->obj, keys[i]);
        if (j) {
            *used = keys[i];
            return j;
        }
    }
    *used = keys[0];
    return NULL;
}

/* A number under one of keys; missing: the family default or an error.
 * null_is_zero: null means "none" (the softcaps). */
static int read_number_alt(const hf_src *s, const char *const *keys, bool null_is_zero,
                           double *out) {
    const char *key;
    const cJSON *j = lookup(s, keys, &key);
    if (!j) {
        const hf_default *d = default_for(s->fam, key);
        if (!d)
            return gm_fail(s->e, "%s: %s%s: missing required key (a %s config must state it)",
                           s->file, s->at, key, s->fam->model_type);
        *out = d->value;
        return 0;
    }
    if (null_is_zero && cJSON_IsNull(j)) {
        *out = 0;
        return 0;
    }
    if (!cJSON_IsNumber(j)) return bad_value(s, key, "a number", j);
    *out = j->valuedouble;
    return 0;
}

static int read_number(const hf_src *s, const char *key, double *out) {
    const char *keys[3] = {key};
    return read_number_alt(s, keys, false, out);
}

static int whole_number(const hf_src *s, const char *key, double v, int64_t min, int64_t *out) {
    if (v != floor(v) || v < (double)min || v > (double)INT32_MAX) {
        char want[64];
        snprintf(want, sizeof want, "a whole number in [%lld, %d]", (long long)min, INT32_MAX);
        return bad_number(s, key, want, v);
    }
    *out = (int64_t)v;
    return 0;
}

/* A whole number in [min, INT32_MAX] under one of keys. */
static int read_int_alt(const hf_src *s, const char *const *keys, int64_t min, int64_t *out) {
    double v;
    const char *key;
    lookup(s, keys, &key);
    return read_number_alt(s, keys, false, &v) ? -1 : whole_number(s, key, v, min, out);
}

static int read_int(const hf_src *s, const char *key, int64_t min, int64_t *out) {
    const char *keys[3] = {key};
    return read_int_alt(s, keys, min, out);
}

/* bos/eos: an id, or a list whose first entry counts (eos_token_id:
 * [1, 107]); a multimodal file keeps them at its top level. */
static int read_token(const hf_src *s, const char *key, int64_t *out) {
    hf_src where = *s;
    if (!cJSON_GetObjectItemCaseSensitive(s->obj, key) && cJSON_GetObjectItemCaseSensitive(s->top, key))
        where.obj = s->top, where.at = "";
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(where.obj, key);
    if (!cJSON_IsArray(j)) return read_int(&where, key, 0, out);
    const cJSON *first = cJSON_GetArrayItem(j, 0);
    if (!cJSON_IsNumber(first)) return bad_value(&where, key, "a token id or a list of them", j);
    return whole_number(&where, key, first->valuedouble, 0, out);
}

/* rope_scaling: null (none), linear (a factor), or "default" (none). */
static int read_rope_scaling(const hf_src *s, double *factor) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(s->obj, "rope_scaling");
    *factor = 1.0;
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) return bad_value(s, "rope_scaling", "an object or null", rs);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    const char *tkey = "rope_scaling.rope_type";
    if (!t) {
        t = cJSON_GetObjectItemCaseSensitive(rs, "type");
        tkey = "rope_scaling.type";
    }
    if (!cJSON_IsString(t)) return bad_value(s, tkey, "a string (\"linear\")", t);
    if (!strcmp(t->valuestring, "default")) return 0;
    if (strcmp(t->valuestring, "linear") != 0)
        return gm_fail(s->e,
                       "%s: %s%s: unsupported rope scaling \"%.60s\" (supported: \"linear\", "
                       "\"default\", or rope_scaling null)",
                       s->file, s->at, tkey, t->valuestring);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(rs, "factor");
    if (!cJSON_IsNumber(f) || !(f->valuedouble > 0))
        return bad_value(s, "rope_scaling.factor", "a positive number", f);
    *factor = f->valuedouble;
    return 0;
}

/* HF layer_types: "sliding_attention" / "full_attention" per layer. */
static int read_layer_types(const hf_src *s, const cJSON *lt, hf_model *m) {
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != m->n_layers) {
        char want[64];
        snprintf(want, sizeof want, "a list of %lld layer types", (long long)m->n_layers);
        return bad_value(s, "layer_types", want, lt);
    }
    for (int i = 0; i < m->n_layers; i++) {
        const cJSON *t = cJSON_GetArrayItem(lt, i);
        const char *v = cJSON_IsString(t) ? t->valuestring : "";
        if (strcmp(v, "sliding_attention") && strcmp(v, "full_attention")) {
            char key[48];
            snprintf(key, sizeof key, "layer_types[%d]", i);
            return bad_value(s, key, "\"sliding_attention\" or \"full_attention\"", t);
        }
        m->global[i] = !strcmp(v, "full_attention");
    }
    return 0;
}

/* The kind of every layer, by the family's rule unless layer_types says. */
static int read_layer_kinds(const hf_src *s, hf_model *m) {
    m->global = gm_calloc((size_t)m->n_layers, 1);
    const family *f = s->fam;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(s->obj, "layer_types");
    if (f->rule != KINDS_ALL_GLOBAL && lt && !cJSON_IsNull(lt)) return read_layer_types(s, lt, m);
    int64_t period = 2;
    if (f->rule == KINDS_PATTERN && read_int_alt(s, f->pattern_keys, 1, &period)) return -1;
    for (int i = 0; i < m->n_layers; i++)
        m->global[i] = f->rule == KINDS_ALL_GLOBAL || (i + 1) % period == 0;
    return 0;
}

static int read_sizes(const hf_src *s, hf_model *m) {
    if (read_int(s, "vocab_size", 1, &m->vocab) || read_int(s, "hidden_size", 1, &m->hidden) ||
        read_int(s, "num_attention_heads", 1, &m->heads) ||
        read_int(s, "num_key_value_heads", 1, &m->kv_heads) ||
        read_int(s, "head_dim", 1, &m->head_dim) ||
        read_int(s, "intermediate_size", 1, &m->ffn) ||
        read_int(s, "num_hidden_layers", 1, &m->n_layers) ||
        read_int(s, "max_position_embeddings", 1, &m->max_context) ||
        read_token(s, "bos_token_id", &m->bos) || read_token(s, "eos_token_id", &m->eos) ||
        read_number(s, "rms_norm_eps", &m->norm_eps))
        return -1;
    if (m->n_layers > IMPORT_MAX_LAYERS) /* the description lists every layer: bound it before it is written */
        return bad_number(s, "num_hidden_layers", "a whole number in [1, " STR(IMPORT_MAX_LAYERS) "]", (double)m->n_layers);
    if (m->heads % m->kv_heads) {
        char want[80];
        snprintf(want, sizeof want, "a divisor of num_attention_heads (%lld)", (long long)m->heads);
        return bad_number(s, "num_key_value_heads", want, (double)m->kv_heads);
    }
    return 0;
}

static int read_attention(const hf_src *s, hf_model *m) {
    const family *f = s->fam;
    const char *attn_cap[3] = {"attn_logit_softcapping"}, *final_cap[3] = {"final_logit_softcapping"};
    m->query_scalar = (double)m->head_dim;
    m->attn_cap = m->final_cap = m->window = 0;
    if (f->query_pre_attn_scalar && read_number(s, "query_pre_attn_scalar", &m->query_scalar))
        return -1;
    if (!(m->query_scalar > 0))
        return bad_number(s, "query_pre_attn_scalar", "a positive number", m->query_scalar);
    if (f->softcaps && (read_number_alt(s, attn_cap, true, &m->attn_cap) ||
                        read_number_alt(s, final_cap, true, &m->final_cap)))
        return -1;
    int64_t window = 0;
    if (f->window_keys[0] && read_int_alt(s, f->window_keys, 1, &window)) return -1;
    m->window = (double)window;
    if (read_number(s, "rope_theta", &m->theta_global)) return -1;
    m->theta_local = m->theta_global;
    if (f->local_theta_key && read_number(s, f->local_theta_key, &m->theta_local)) return -1;
    return read_rope_scaling(s, &m->pos_scale);
}

/* ---- finding the files -------------------------------------------------- */

static bool exists(const char *dir, const char *name) {
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

/* The last path component of dir, resolved so that "." and "x/" work. */
static char *dir_name(const char *dir) {
    char *real = realpath(dir, NULL);
    const char *p = real ? real : dir;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && p[b - 1] != '/') b--;
    char *name = gm_malloc(n - b + 1);
    memcpy(name, p + b, n - b);
    name[n - b] = 0;
    free(real);
    return name;
}

/* Splits path into the checkpoint directory and the config file. */
static int locate(const char *path, char **dir, char **cfg, gm_err *e) {
    struct stat st;
    if (stat(path, &st) != 0)
        return gm_fail(e, "%s: cannot open: %s (expected a checkpoint directory or a config.json)",
                       path, strerror(errno));
    size_t n = strlen(path);
    if (gm_is_dir(path)) {
        if (!exists(path, "config.json"))
            return gm_fail(e, "%s: no config.json in this directory (expected a Hugging Face "
                              "checkpoint directory or a config.json)", path);
        *dir = gm_strdup(path);
        *cfg = gm_malloc(n + 16);
        snprintf(*cfg, n + 16, "%s/config.json", path);
        return 0;
    }
    *cfg = gm_strdup(path);
    const char *slash = strrchr(path, '/');
    if (!slash) *dir = gm_strdup(".");
    else if (slash == path) *dir = gm_strdup("/");
    else {
        *dir = gm_malloc((size_t)(slash - path) + 1);
        memcpy(*dir, path, (size_t)(slash - path));
        (*dir)[slash - path] = 0;
    }
    return 0;
}

static cJSON *parse_json(const char *file, gm_err *e) {
    gm_json_where bad;
    cJSON *root = gm_read_json(file, &bad, e);
    if (!root && !e->msg[0])
        gm_fail(e, "%s: malformed JSON at line %d, column %d (is this a Hugging Face config.json?)", file,
                bad.line, bad.col);
    else if (root && !cJSON_IsObject(root)) {
        gm_fail(e, "%s: expected a JSON object at the top level", file);
        cJSON_Delete(root);
        root = NULL;
    }
    return root;
}

static const family *find_family(const char *file, const cJSON *root, gm_err *e) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!t) {
        gm_fail(e, "%s: model_type: missing required key (supported: " SUPPORTED_TYPES ")", file);
        return NULL;
    }
    if (!cJSON_IsString(t)) {
        char buf[96];
        gm_fail(e, "%s: model_type: expected a string, found %s", file, found(t, buf, sizeof buf));
        return NULL;
    }
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (!strcmp(families[i].model_type, t->valuestring)) return &families[i];
    gm_fail(e, "%s: model_type: unknown \"%.60s\" (supported: " SUPPORTED_TYPES ")", file,
            t->valuestring);
    return NULL;
}

/* With safetensors present: the prefix the embedding is stored under, and
 * the vocabulary from its row count. */
static int read_checkpoint(const char *dir, const family *f, hf_model *m, gm_err *e) {
    m->prefix = f->prefixes[0];
    if (!exists(dir, "model.safetensors") && !exists(dir, "model.safetensors.index.json"))
        return 0;
    gm_weights *a = st_open(dir, e);
    if (!a) return -1;
    const gm_tensor *t = NULL;
    char name[256];
    for (int i = 0; i < 3 && f->prefixes[i] && !t; i++) {
        snprintf(name, sizeof name, "%sembed_tokens.weight", f->prefixes[i]);
        if ((t = weights_find(a, name))) m->prefix = f->prefixes[i];
    }
    int rc = 0;
    if (!t)
        rc = gm_fail(e, "%s: no embedding tensor %sembed_tokens.weight%s%s%s (is this a %s checkpoint?)",
                     dir, f->prefixes[0], f->prefixes[1] ? " or " : "",
                     f->prefixes[1] ? f->prefixes[1] : "", f->prefixes[1] ? "embed_tokens.weight" : "",
                     f->model_type);
    else if (t->ndim != 2 || t->shape[1] != m->hidden || t->shape[0] < 1)
        rc = gm_fail(e, "%s: tensor %s: expected shape [vocab, %lld], found %d dimensions [%lld, ...]",
                     t->file, t->name, (long long)m->hidden, t->ndim,
                     (long long)(t->ndim ? t->shape[0] : 0));
    else
        m->vocab = t->shape[0];
    weights_close(a);
    return rc;
}

/* ---- writing the description -------------------------------------------- */

static int64_t dim_size(const hf_model *m, dim d) {
    switch (d) {
    case D_VOCAB: return m->vocab;
    case D_HIDDEN: return m->hidden;
    case D_Q: return m->heads * m->head_dim;
    case D_KV: return m->kv_heads * m->head_dim;
    case D_FFN: return m->ffn;
    case D_HEAD: return m->head_dim;
    default: return 0;
    }
}

static bool needed(const family *f, const hf_model *m, need n) {
    switch (n) {
    case WITH_POST_NORMS: return f->post_norms;
    case WITHOUT_POST_NORMS: return !f->post_norms;
    case WITH_QK_NORM: return f->qk_norm;
    case WHEN_UNTIED: return m->untied;
    default: return true;
    }
}

static cJSON *weight_table(const weight_spec *specs, size_t n, const char *prefix,
                           const family *f, const hf_model *m) {
    cJSON *obj = cJSON_CreateObject();
    for (size_t i = 0; i < n; i++) {
        const weight_spec *w = &specs[i];
        if (!needed(f, m, w->need)) continue;
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix, m->gguf ? w->gguf : w->tensor);
        cJSON *entry = cJSON_AddObjectToObject(obj, w->role);
        cJSON_AddStringToObject(entry, "tensor", name);
        cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)dim_size(m, w->rows)));
        if (w->cols != D_NONE)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)dim_size(m, w->cols)));
    }
    return obj;
}

static cJSON *config_object(const hf_model *m) {
    cJSON *c = cJSON_CreateObject();
    const struct { const char *key; double v; } nums[] = {
        {"vocab", (double)m->vocab}, {"hidden", (double)m->hidden}, {"heads", (double)m->heads},
        {"kv_heads", (double)m->kv_heads}, {"head_dim", (double)m->head_dim},
        {"ffn", (double)m->ffn}, {"max_context", (double)m->max_context},
        {"norm_eps", m->norm_eps}, {"bos", (double)m->bos}, {"eos", (double)m->eos},
        /* the f32 values an f32 activation is scaled by */
        {"embed_scale", (double)sqrtf((float)m->hidden)},
        {"query_scale", (double)(1.0f / sqrtf((float)m->query_scalar))},
    };
    for (size_t i = 0; i < N_OF(nums); i++) cJSON_AddNumberToObject(c, nums[i].key, nums[i].v);
    if (m->attn_cap) cJSON_AddNumberToObject(c, "attn_softcap", m->attn_cap);
    if (m->final_cap) cJSON_AddNumberToObject(c, "final_softcap", m->final_cap);
    return c;
}

static void add_kind(cJSON *kinds, const char *name, double window, double theta, double scale) {
    cJSON *k = cJSON_AddObjectToObject(kinds, name);
    cJSON_AddNumberToObject(k, "window", window);
    cJSON_AddNumberToObject(k, "rope_theta", theta);
    cJSON_AddNumberToObject(k, "rope_pos_scale", scale);
}

static cJSON *kinds_object(const family *f, const hf_model *m) {
    cJSON *kinds = cJSON_CreateObject();
    if (f->rule != KINDS_ALL_GLOBAL)
        add_kind(kinds, "sliding", m->window, m->theta_local, f->scale_sliding ? m->pos_scale : 1.0);
    add_kind(kinds, "global", 0, m->theta_global, m->pos_scale);
    return kinds;
}

static cJSON *layers_array(const hf_model *m) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < m->n_layers; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(m->global[i] ? "global" : "sliding"));
    return a;
}

/* One op: {"op", "in": [a, b, c], "out"}; unused inputs are NULL. */
static cJSON *op(cJSON *ops, const char *name, const char *a, const char *b, const char *c,
                 const char *out) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "op", name);
    cJSON *in = cJSON_AddArrayToObject(o, "in");
    const char *ins[3] = {a, b, c};
    for (int i = 0; i < 3 && ins[i]; i++) cJSON_AddItemToArray(in, cJSON_CreateString(ins[i]));
    cJSON_AddStringToObject(o, "out", out);
    cJSON_AddItemToArray(ops, o);
    return o;
}

/* attr = "@key" */
static void ref(cJSON *o, const char *attr, const char *key) {
    char at[64];
    snprintf(at, sizeof at, "@%s", key);
    cJSON_AddStringToObject(o, attr, at);
}

/* add_one: false where the checkpoint stores the weights with the +1 (GGUF). */
static void norm(cJSON *ops, const char *x, const char *w, const char *out, bool add_one) {
    cJSON *o = op(ops, "rms_norm", x, w, NULL, out);
    ref(o, "eps", "norm_eps");
    cJSON_AddBoolToObject(o, "add_one", add_one);
}

static void rope(cJSON *ops, const char *x) {
    cJSON *o = op(ops, "rope", x, NULL, NULL, x);
    ref(o, "head_dim", "head_dim");
    ref(o, "theta", "rope_theta");
    ref(o, "pos_scale", "rope_pos_scale");
}

static void attention(cJSON *ops, bool softcap) {
    cJSON *o = op(ops, "attention", "q", "k", "v", "a");
    ref(o, "heads", "heads");
    ref(o, "kv_heads", "kv_heads");
    ref(o, "head_dim", "head_dim");
    ref(o, "scale", "query_scale");
    if (softcap) ref(o, "softcap", "attn_softcap");
    ref(o, "window", "window");
}

static cJSON *embed_ops(void) {
    cJSON *ops = cJSON_CreateArray();
    op(ops, "embed", "tokens", "embed", NULL, "e");
    ref(op(ops, "scale", "e", NULL, NULL, "x"), "by", "embed_scale");
    return ops;
}

/* One decoder layer: pre-norm attention and gated-GELU MLP, each added to
 * the residual x; Gemma 2/3 also norm each branch's output (post_norms),
 * Gemma 3 norms every q/k head right after its projection (qk_norm). */
static cJSON *layer_ops(bool post_norms, bool qk_norm, bool softcap, bool one) {
    cJSON *ops = cJSON_CreateArray();
    norm(ops, "x", "attn_norm", "h", one);
    op(ops, "matmul", "h", "q_proj", NULL, "q");
    if (qk_norm) norm(ops, "q", "q_norm", "q", one);
    op(ops, "matmul", "h", "k_proj", NULL, "k");
    if (qk_norm) norm(ops, "k", "k_norm", "k", one);
    op(ops, "matmul", "h", "v_proj", NULL, "v");
    rope(ops, "q");
    rope(ops, "k");
    attention(ops, softcap);
    op(ops, "matmul", "a", "o_proj", NULL, "o");
    if (post_norms) norm(ops, "o", "post_attn_norm", "o", one);
    op(ops, "add", "x", "o", NULL, "x");
    norm(ops, "x", "ffn_norm", "h", one);
    op(ops, "matmul", "h", "gate_proj", NULL, "g");
    op(ops, "matmul", "h", "up_proj", NULL, "u");
    op(ops, "gelu_tanh", "g", NULL, NULL, "g"); /* every Gemma: tanh GELU, whatever hidden_act says */
    op(ops, "mul", "g", "u", NULL, "m");
    op(ops, "matmul", "m", "down_proj", NULL, "d");
    if (post_norms) norm(ops, "d", "post_ffn_norm", "d", one);
    op(ops, "add", "x", "d", NULL, "x");
    return ops;
}

/* Final norm, then the LM head (the tied embedding unless the file has its
 * own), then the softcap. */
static cJSON *head_ops(bool softcap, bool one, bool untied) {
    cJSON *ops = cJSON_CreateArray();
    norm(ops, "x", "final_norm", "h", one);
    op(ops, "matmul", "h", untied ? "lm_head" : "embed", NULL, softcap ? "z" : "logits");
    if (softcap) ref(op(ops, "softcap", "z", NULL, NULL, "logits"), "cap", "final_softcap");
    return ops;
}

static cJSON *describe(const char *name, const family *f, const hf_model *m) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "format", "gemmac-model/1");
    cJSON_AddStringToObject(d, "name", name);
    cJSON_AddItemToObject(d, "config", config_object(m));
    cJSON_AddItemToObject(d, "layer_kinds", kinds_object(f, m));
    cJSON_AddItemToObject(d, "layers", layers_array(m));
    const char *prefix = m->gguf ? "" : m->prefix;
    cJSON_AddItemToObject(d, "weights", weight_table(model_weights, N_OF(model_weights), prefix, f, m));
    char layer_prefix[128];
    if (m->gguf) snprintf(layer_prefix, sizeof layer_prefix, "blk.{i}.");
    else snprintf(layer_prefix, sizeof layer_prefix, "%slayers.{i}.", m->prefix);
    cJSON_AddItemToObject(d, "layer_weights",
                          weight_table(layer_weights, N_OF(layer_weights), layer_prefix, f, m));
    cJSON *g = cJSON_AddObjectToObject(d, "graph");
    cJSON_AddItemToObject(g, "embed", embed_ops());
    cJSON_AddItemToObject(g, "layer", layer_ops(f->post_norms, f->qk_norm, m->attn_cap != 0, !m->gguf));
    cJSON_AddItemToObject(g, "head", head_ops(m->final_cap != 0, !m->gguf, m->untied));
    return d;
}

cJSON *import_describe(const char *name, const char *model_type, const import_decoder *d) {
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (!strcmp(families[i].model_type, model_type)) return describe(name, &families[i], d);
    return NULL;
}

/* ---- the entry point ---------------------------------------------------- */

/* The decoder config: the file itself, or its text_config. */
static int decoder_source(const char *file, const cJSON *root, const family *f, hf_src *s,
                          gm_err *e) {
    *s = (hf_src){.file = file, .at = "", .obj = root, .top = root, .fam = f, .e = e};
    if (!f->text_key) return 0;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, f->text_key);
    if (!cJSON_IsObject(t)) {
        char buf[96];
        return gm_fail(e, "%s: %s: expected an object (the text decoder's config), found %s", file,
                       f->text_key, found(t, buf, sizeof buf));
    }
    s->obj = t;
    s->at = "text_config.";
    return 0;
}

int import_hf_decoder(const char *path, import_decoder *d, const char **model_type, char **dir, gm_err *e) {
    char *file = NULL;
    cJSON *root = NULL;
    hf_src src;
    const family *f = NULL;
    *d = (import_decoder){0};
    *dir = NULL;
    int rc = locate(path, dir, &file, e) || !(root = parse_json(file, e)) || !(f = find_family(file, root, e)) ||
                     decoder_source(file, root, f, &src, e) || read_sizes(&src, d) || read_attention(&src, d) ||
                     read_layer_kinds(&src, d) || read_checkpoint(*dir, f, d, e)
                 ? -1
                 : 0;
    if (rc) {
        free(d->global), free(*dir);
        d->global = NULL, *dir = NULL;
    } else {
        *model_type = f->model_type;
    }
    cJSON_Delete(root);
    free(file);
    return rc;
}

cJSON *import_hf(const char *path, gm_err *e) {
    import_decoder m;
    const char *model_type;
    char *dir;
    if (import_hf_decoder(path, &m, &model_type, &dir, e)) return NULL;
    char *name = dir_name(dir);
    cJSON *desc = import_describe(name, model_type, &m);
    free(name);
    free(m.global);
    free(dir);
    return desc;
}
