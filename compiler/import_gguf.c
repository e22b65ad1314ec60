/* import_gguf.c — a llama.cpp GGUF file's metadata to a gemmac model description.
 *
 * llama.cpp keeps what a Hugging Face config says in `{arch}.*` keys and
 * leaves the rest to its loader's code: which layers slide (a period per
 * architecture), the local RoPE base, the attention scale (1/sqrt(head_dim),
 * except for the 27B models, recognised by their layer count), the softcap
 * defaults. This file states those loader rules as one table row per
 * architecture (gemma, gemma2, gemma3; docs/gguf.md
 * §2c and §3), reads the numbers into an import_decoder and hands it to
 * import_describe, the builder import_hf uses too: the description differs
 * only in its tensor names (the file's own: token_embd.weight,
 * blk.{i}.attn_q.weight, ...), in its rms_norm ops (add_one false: the
 * converter stored every norm weight with the +1 already added) and, when
 * the file has an output.weight, in its LM head. The vocabulary is the
 * embedding's row count. Any other architecture is refused by name. */
#include "compiler/import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The loader rules of one llama.cpp architecture. */
typedef struct {
    const char *arch;        /* general.architecture */
    const char *model_type;  /* the HF family import_describe builds */
    int64_t period;          /* layer i slides iff i % period < period - 1; 0: all global */
    double window;           /* sliding window when the file has none; 0: no sliding */
    int64_t big_layers;      /* the 27B's layer count: its query scale is 1/sqrt(hidden/heads) */
    double theta, theta_local; /* RoPE bases when the file has none; local 0: = global */
    double attn_cap, final_cap; /* softcap defaults; -1: the architecture has none */
} gguf_arch;

static const gguf_arch archs[] = {
    {"gemma", "gemma", 0, 0, 0, 10000.0, 0, -1, -1},
    {"gemma2", "gemma2", 2, 4096, 46, 10000.0, 0, 50.0, 30.0},
    {"gemma3", "gemma3_text", 6, 0, 62, 1000000.0, 10000.0, -1, 0},
};
#define N_ARCHS (sizeof archs / sizeof archs[0])

typedef struct {
    const gguf_file *g;
    const gguf_arch *a;
    const char *file;
    gm_err *e;
} src;

/* "{arch}.suffix", valid until the end of the full expression: key(s, x).s */
typedef struct {
    char s[128];
} arch_key;

static arch_key key(const src *s, const char *suffix) {
    arch_key k;
    snprintf(k.s, sizeof k.s, "%s.%s", s->a->arch, suffix);
    return k;
}

/* An integer in [min, INT32_MAX] at k; def when absent (def < 0: the key is required). */
static int get_int(const src *s, const char *k, int64_t def, int64_t min, int64_t *out) {
    if (!gguf_find(s->g, k)) {
        if (def < 0) return gm_fail(s->e, "%s: %s: missing required key", s->file, k);
        *out = def;
        return 0;
    }
    if (gguf_get_int(s->g, k, out, s->e)) return -1;
    if (*out < min || *out > INT32_MAX)
        return gm_fail(s->e, "%s: %s: expected a whole number in [%lld, %d], found %lld", s->file, k,
                       (long long)min, INT32_MAX, (long long)*out);
    return 0;
}

/* A number at k, def when absent; positive unless zero_ok. NAN def: required. */
static int get_num(const src *s, const char *k, double def, int zero_ok, double *out) {
    if (!gguf_find(s->g, k)) {
        if (isnan(def)) return gm_fail(s->e, "%s: %s: missing required key", s->file, k);
        *out = def;
        return 0;
    }
    if (gguf_get_float(s->g, k, out, s->e)) return -1;
    if (!isfinite(*out) || *out < 0 || (!zero_ok && *out == 0))
        return gm_fail(s->e, "%s: %s: expected a %s number, found %g", s->file, k,
                       zero_ok ? "non-negative" : "positive", *out);
    return 0;
}

static const gguf_arch *find_arch(const gguf_file *g, const char *file, gm_err *e) {
    char *name = NULL;
    if (gguf_get_string(g, "general.architecture", &name, e)) return NULL;
    for (size_t i = 0; i < N_ARCHS; i++)
        if (!strcmp(archs[i].arch, name)) return free(name), &archs[i];
    gm_fail(e, "%s: general.architecture is \"%.60s\"; gemmac reads gemma, gemma2 and gemma3 GGUF files",
            file, name);
    free(name);
    return NULL;
}

static int read_sizes(const src *s, import_decoder *d) {
    if (get_int(s, key(s, "block_count").s, -1, 1, &d->n_layers) ||
        get_int(s, key(s, "embedding_length").s, -1, 1, &d->hidden) ||
        get_int(s, key(s, "feed_forward_length").s, -1, 1, &d->ffn) ||
        get_int(s, key(s, "attention.head_count").s, -1, 1, &d->heads) ||
        get_int(s, key(s, "attention.head_count_kv").s, d->heads, 1, &d->kv_heads) ||
        get_int(s, key(s, "attention.key_length").s, d->hidden / d->heads, 1, &d->head_dim) ||
        get_int(s, key(s, "context_length").s, -1, 1, &d->max_context) ||
        get_num(s, key(s, "attention.layer_norm_rms_epsilon").s, NAN, 0, &d->norm_eps) ||
        get_int(s, "tokenizer.ggml.bos_token_id", 2, 0, &d->bos) ||
        get_int(s, "tokenizer.ggml.eos_token_id", 1, 0, &d->eos))
        return -1;
    if (d->n_layers > IMPORT_MAX_LAYERS) /* the description lists every layer: bound it before it is written */
        return gm_fail(s->e, "%s: %s: expected a whole number in [1, %d], found %lld", s->file,
                       key(s, "block_count").s, IMPORT_MAX_LAYERS, (long long)d->n_layers);
    int64_t v_len;
    if (get_int(s, key(s, "attention.value_length").s, d->head_dim, 1, &v_len)) return -1;
    if (v_len != d->head_dim)
        return gm_fail(s->e, "%s: %s: expected %lld (= key_length), found %lld", s->file,
                       key(s, "attention.value_length").s, (long long)d->head_dim, (long long)v_len);
    if (d->heads % d->kv_heads)
        return gm_fail(s->e, "%s: %s: expected a divisor of the head count %lld, found %lld", s->file,
                       key(s, "attention.head_count_kv").s, (long long)d->heads, (long long)d->kv_heads);
    return 0;
}

/* The vocabulary from token_embd's rows; an own LM head if output.weight exists. */
static int read_embedding(const src *s, import_decoder *d) {
    const gguf_tensor *t = gguf_find_tensor(s->g, "token_embd.weight");
    if (!t) return gm_fail(s->e, "%s: no tensor token_embd.weight (is this a Gemma GGUF?)", s->file);
    if (t->ndim != 2 || t->ne[0] != d->hidden || t->ne[1] < 1)
        return gm_fail(s->e, "%s: tensor token_embd.weight: expected ne [%lld, vocab], found %d dimensions [%lld, ...]",
                       s->file, (long long)d->hidden, t->ndim, (long long)t->ne[0]);
    d->vocab = t->ne[1];
    d->untied = gguf_find_tensor(s->g, "output.weight") != NULL;
    return 0;
}

/* A per-layer pattern given as booleans (true: sliding), newer files. */
static int read_pattern_array(const src *s, const gguf_kv *kv, import_decoder *d) {
    if (kv->elem_type != GGUF_T_BOOL || kv->count != (uint64_t)d->n_layers)
        return gm_fail(s->e, "%s: %s: expected a number or %lld booleans, found an array of %llu", s->file,
                       kv->key, (long long)d->n_layers, (unsigned long long)kv->count);
    for (int i = 0; i < d->n_layers; i++) d->global[i] = !((const uint8_t *)kv->data)[i];
    return 0;
}

/* Which layers attend globally, and the window of the others. */
static int read_layer_kinds(const src *s, import_decoder *d) {
    d->global = gm_calloc((size_t)d->n_layers, 1);
    int64_t window = 0, period = s->a->period;
    if (period && get_int(s, key(s, "attention.sliding_window").s, (int64_t)s->a->window, 0, &window))
        return -1;
    d->window = (double)window;
    const gguf_kv *kv = gguf_find(s->g, key(s, "attention.sliding_window_pattern").s);
    if (window && kv && kv->type == GGUF_T_ARRAY) return read_pattern_array(s, kv, d);
    if (window && get_int(s, key(s, "attention.sliding_window_pattern").s, period, 1, &period)) return -1;
    for (int i = 0; i < d->n_layers; i++) d->global[i] = !window || i % period == period - 1;
    return 0;
}

/* Rope scaling: none, or linear (applied to global layers, and to sliding ones
 * where the family says so). */
static int read_rope_scaling(const src *s, double *factor) {
    *factor = 1.0;
    char *type = NULL;
    if (gguf_find(s->g, key(s, "rope.scaling.type").s)) {
        if (gguf_get_string(s->g, key(s, "rope.scaling.type").s, &type, s->e)) return -1;
        int rc = 0;
        if (!strcmp(type, "linear")) rc = get_num(s, key(s, "rope.scaling.factor").s, NAN, 0, factor);
        else if (strcmp(type, "none"))
            rc = gm_fail(s->e, "%s: %s: unsupported rope scaling \"%.60s\" (supported: \"linear\", \"none\")",
                         s->file, key(s, "rope.scaling.type").s, type);
        free(type);
        return rc;
    }
    double scale = 1.0; /* older files: rope.scale_linear */
    if (get_num(s, key(s, "rope.scale_linear").s, 1.0, 0, &scale)) return -1;
    *factor = scale;
    return 0;
}

static int read_attention(const src *s, import_decoder *d) {
    const gguf_arch *a = s->a;
    d->query_scalar = d->n_layers == a->big_layers ? (double)d->hidden / (double)d->heads : (double)d->head_dim;
    d->attn_cap = d->final_cap = 0;
    if ((a->attn_cap >= 0 && get_num(s, key(s, "attn_logit_softcapping").s, a->attn_cap, 1, &d->attn_cap)) ||
        (a->final_cap >= 0 && get_num(s, key(s, "final_logit_softcapping").s, a->final_cap, 1, &d->final_cap)) ||
        get_num(s, key(s, "rope.freq_base").s, a->theta, 0, &d->theta_global))
        return -1;
    double local = a->theta_local ? a->theta_local : d->theta_global;
    if (get_num(s, key(s, "rope.freq_base_swa").s, local, 0, &d->theta_local)) return -1;
    return read_rope_scaling(s, &d->pos_scale);
}

/* The model's name: the file's base name without ".gguf". */
static char *model_name(const char *file) {
    const char *slash = strrchr(file, '/');
    char *name = gm_strdup(slash ? slash + 1 : file);
    size_t n = strlen(name);
    if (n > 5 && !strcmp(name + n - 5, ".gguf")) name[n - 5] = 0;
    return name;
}

cJSON *import_gguf(const gguf_file *g, const char *origin, gm_err *e) {
    src s = {.g = g, .file = origin, .e = e};
    import_decoder d = {.gguf = true};
    cJSON *desc = NULL;
    if ((s.a = find_arch(g, origin, e)) && !read_sizes(&s, &d) && !read_embedding(&s, &d) &&
        !read_layer_kinds(&s, &d) && !read_attention(&s, &d)) {
        char *name = model_name(origin);
        desc = import_describe(name, s.a->model_type, &d);
        free(name);
    }
    free(d.global);
    return desc;
}
