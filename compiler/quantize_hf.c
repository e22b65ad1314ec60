/* quantize_hf.c — a Hugging Face Gemma checkpoint as llama.cpp's converter
 * (convert_hf_to_gguf.py, its Gemma, Gemma 2 and Gemma 3 classes) writes it.
 *
 * The numbers come from import.c (import_hf_decoder), and go out as the
 * `{arch}.*` keys import_gguf.c reads back (the inverse of its table):
 * gemma, gemma2 or gemma3; context, embedding and feed-forward lengths,
 * block and head counts, key/value length, RMS epsilon, RoPE bases and
 * linear scaling, softcaps, the sliding window, and the layer pattern as one
 * bool per layer when it is not the architecture's default period. The
 * tensor names are llama.cpp's: import_describe makes the description twice
 * from the same numbers, once with HF names and once with GGUF ones, and a
 * role's two names pair up. Every norm weight (an HF name ending in
 * "norm.weight") gets the +1 Gemma's RMSNorm adds, in f32 as the converter
 * does, and like every 1-D tensor is written as F32. The tokenizer comes
 * from tokenizer.model (a SentencePiece ModelProto, read here in protobuf
 * wire format) as tokenizer.ggml.*: model "llama", tokens, scores and token
 * types in id order (SentencePiece's and GGUF's type numbers are the same),
 * padded with [PADi] tokens up to the embedding's rows as the converter
 * does, the bos/eos ids of config.json, the unk/pad ids of the trainer
 * spec, add_bos_token, and the normalizer's add_dummy_prefix as
 * add_space_prefix (false for Gemma, which the converter always writes).
 * The converter takes USER_DEFINED pieces' types from tokenizer_config.json
 * instead; keeping SentencePiece's own keeps the vocabulary
 * runtime/gguf_vocab.c rebuilds identical to tokenizer.model. What a GGUF
 * cannot say (a query scale other than llama.cpp's rule, an attention
 * softcap on Gemma 3) is said on stderr. */
#define _XOPEN_SOURCE 700 /* realpath */

#include "quantize.h"

#include "compiler/import.h"
#include "runtime/safetensors.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the architecture ---- */

typedef struct {
    const char *model_type, *arch; /* HF family, llama.cpp architecture */
    int period;                    /* llama.cpp's default: layer i slides iff i % period < period - 1; 0: none */
    int big_layers;                /* its 27B, whose query scale is 1/sqrt(hidden/heads) */
} arch_row;

static const arch_row archs[] = {
    {"gemma", "gemma", 0, 0},
    {"gemma2", "gemma2", 2, 46},
    {"gemma3_text", "gemma3", 6, 62},
    {"gemma3", "gemma3", 6, 62},
};

static const arch_row *arch_of(const char *model_type) {
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(archs[i].model_type, model_type)) return &archs[i];
    return NULL;
}

typedef struct {
    gguf_out *w;
    const char *arch;
} meta;

static const char *key(const meta *m, const char *suffix) {
    static char k[128];
    snprintf(k, sizeof k, "%s.%s", m->arch, suffix);
    return k;
}

static void u32(const meta *m, const char *suffix, int64_t v) { gguf_set_int(m->w, key(m, suffix), GGUF_T_UINT32, v); }
static void f32(const meta *m, const char *suffix, double v) { gguf_set_float(m->w, key(m, suffix), GGUF_T_FLOAT32, v); }

/* Whether the layer kinds are the architecture's default pattern. */
static int default_pattern(const arch_row *a, const import_decoder *d) {
    for (int i = 0; i < d->n_layers; i++)
        if (d->global[i] != (!a->period || i % a->period == a->period - 1)) return 0;
    return 1;
}

static void put_attention(const meta *m, const arch_row *a, const import_decoder *d) {
    if (!strcmp(a->arch, "gemma2")) {
        f32(m, "attn_logit_softcapping", d->attn_cap);
        f32(m, "final_logit_softcapping", d->final_cap);
    } else if (!strcmp(a->arch, "gemma3") && d->final_cap) {
        f32(m, "final_logit_softcapping", d->final_cap);
    }
    if (a->period && d->window > 0) u32(m, "attention.sliding_window", (int64_t)d->window);
    if (a->period && !default_pattern(a, d)) {
        uint8_t *sliding = gm_malloc((size_t)d->n_layers);
        for (int i = 0; i < d->n_layers; i++) sliding[i] = !d->global[i];
        gguf_set_array(m->w, key(m, "attention.sliding_window_pattern"), GGUF_T_BOOL, (uint64_t)d->n_layers, sliding);
        free(sliding);
    }
    f32(m, "rope.freq_base", d->theta_global);
    if (!strcmp(a->arch, "gemma3")) f32(m, "rope.freq_base_swa", d->theta_local);
    if (d->pos_scale != 1.0) {
        gguf_set_string(m->w, key(m, "rope.scaling.type"), "linear");
        f32(m, "rope.scaling.factor", d->pos_scale);
    }
}

/* What llama.cpp (and import_gguf) cannot read back from the keys. */
static void warn_lost(const char *dir, const arch_row *a, const import_decoder *d) {
    double scalar = d->n_layers == a->big_layers ? (double)d->hidden / (double)d->heads : (double)d->head_dim;
    if (d->query_scalar != scalar)
        gm_say("%s: query_pre_attn_scalar is %g, which a GGUF cannot state: llama.cpp (and gemmac) "
                        "will scale queries by 1/sqrt(%g)\n", dir, d->query_scalar, scalar);
    if (!strcmp(a->arch, "gemma3") && d->attn_cap)
        gm_say("%s: attn_logit_softcapping %g is lost: llama.cpp's gemma3 has no attention softcap\n",
                dir, d->attn_cap);
}

static void put_model(const meta *m, const arch_row *a, const import_decoder *d, const char *name) {
    gguf_set_string(m->w, "general.architecture", a->arch);
    gguf_set_string(m->w, "general.name", name);
    u32(m, "context_length", d->max_context);
    u32(m, "embedding_length", d->hidden);
    u32(m, "block_count", d->n_layers);
    u32(m, "feed_forward_length", d->ffn);
    u32(m, "attention.head_count", d->heads);
    u32(m, "attention.head_count_kv", d->kv_heads);
    f32(m, "attention.layer_norm_rms_epsilon", d->norm_eps);
    u32(m, "attention.key_length", d->head_dim);
    u32(m, "attention.value_length", d->head_dim);
    put_attention(m, a, d);
}

/* ---- tokenizer.model: protobuf wire format ---- */

typedef struct {
    const uint8_t *p, *end;
} pb;

static int pb_varint(pb *r, uint64_t *v) {
    *v = 0;
    for (int shift = 0; r->p < r->end && shift < 64; shift += 7) {
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* The next field: its number, and its value (a varint or fixed number in *v,
 * a length-delimited one in *sub). -1 at the end or on malformed bytes. */
static int pb_next(pb *r, int *field, uint64_t *v, pb *sub) {
    uint64_t tag, len;
    if (r->p >= r->end || pb_varint(r, &tag)) return -1;
    *field = (int)(tag >> 3);
    switch (tag & 7) {
    case 0: return pb_varint(r, v);
    case 1: case 5: {
        size_t n = (tag & 7) == 1 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n) return -1;
        *v = 0;
        for (size_t i = 0; i < n; i++) *v |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        return 0;
    }
    case 2:
        if (pb_varint(r, &len) || len > (uint64_t)(r->end - r->p)) return -1;
        *sub = (pb){r->p, r->p + len};
        r->p += len;
        return 0;
    default: return -1;
    }
}

typedef struct {
    char **tokens;
    float *scores;
    int32_t *types;
    int n, cap;
    int64_t unk, pad;                  /* the trainer spec's ids (-1: none) */
    int add_dummy_prefix, remove_spaces;
} sp_vocab;

static void add_token(sp_vocab *v, char *text, float score, int32_t type) {
    if (v->n == v->cap) {
        v->cap = 2 * v->cap + 1024;
        v->tokens = gm_realloc(v->tokens, (size_t)v->cap * sizeof *v->tokens);
        v->scores = gm_realloc(v->scores, (size_t)v->cap * sizeof *v->scores);
        v->types = gm_realloc(v->types, (size_t)v->cap * sizeof *v->types);
    }
    v->tokens[v->n] = text, v->scores[v->n] = score, v->types[v->n] = type;
    v->n++;
}

/* One SentencePiece: piece (1), score (2), type (3, default NORMAL). */
static int read_piece(pb r, sp_vocab *v) {
    int field;
    uint64_t x;
    pb s = {0};
    char *text = NULL;
    float score = 0;
    int32_t type = 1;
    while (r.p < r.end) {
        if (pb_next(&r, &field, &x, &s)) return free(text), -1;
        if (field == 1 && !text && !memchr(s.p, 0, (size_t)(s.end - s.p))) {
            text = gm_malloc((size_t)(s.end - s.p) + 1);
            memcpy(text, s.p, (size_t)(s.end - s.p));
            text[s.end - s.p] = 0;
        } else if (field == 2) {
            uint32_t u = (uint32_t)x;
            memcpy(&score, &u, 4);
        } else if (field == 3) {
            type = (int32_t)x;
        }
    }
    if (!text) return -1;
    add_token(v, text, score, type);
    return 0;
}

/* The trainer spec's unk (40) and pad (43) ids, or the normalizer's
 * add_dummy_prefix (3) and remove_extra_whitespaces (4). */
static int read_spec(pb r, sp_vocab *v, int normalizer) {
    int field;
    uint64_t x;
    pb s;
    while (r.p < r.end) {
        if (pb_next(&r, &field, &x, &s)) return -1;
        if (!normalizer && field == 40) v->unk = (int32_t)x;
        if (!normalizer && field == 43) v->pad = (int32_t)x;
        if (normalizer && field == 3) v->add_dummy_prefix = x != 0;
        if (normalizer && field == 4) v->remove_spaces = x != 0;
    }
    return 0;
}

static int read_model_proto(const char *path, sp_vocab *v, gm_err *e) {
    size_t len;
    char *bytes = gm_read_file(path, &len, e);
    if (!bytes) return -1;
    *v = (sp_vocab){.unk = 0, .pad = -1, .add_dummy_prefix = 1, .remove_spaces = 1}; /* the proto's defaults */
    pb r = {(const uint8_t *)bytes, (const uint8_t *)bytes + len}, s;
    int field, rc = 0;
    uint64_t x;
    while (!rc && r.p < r.end) {
        if (pb_next(&r, &field, &x, &s)) rc = -1;
        else if (field == 1) rc = read_piece(s, v);
        else if (field == 2 || field == 3) rc = read_spec(s, v, field == 3);
    }
    free(bytes);
    if (rc || !v->n)
        return gm_fail(e, "%s: not a SentencePiece model (malformed protobuf, or no pieces); expected Gemma's tokenizer.model",
                       path);
    return 0;
}

static void free_vocab(sp_vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->tokens[i]);
    free(v->tokens), free(v->scores), free(v->types);
}

/* tokenizer.ggml.*, the vocabulary cut or padded to `rows` tokens. */
static int put_tokenizer(gguf_out *w, const char *dir, const import_decoder *d, gm_err *e) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    if (!gm_is_file(path)) {
        gm_say("%s: no tokenizer.model; the GGUF gets no vocabulary (run it with --tokenizer)\n", dir);
        return 0;
    }
    sp_vocab v;
    if (read_model_proto(path, &v, e)) return -1;
    if (v.n > d->vocab)
        gm_say("%s: %d pieces, more than the embedding's %lld rows; the last %lld are left out, as llama.cpp's converter does\n",
                path, v.n, (long long)d->vocab, (long long)(v.n - d->vocab));
    while (v.n > d->vocab) free(v.tokens[--v.n]);
    while (v.n < d->vocab) {
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%d]", v.n);
        add_token(&v, gm_strdup(pad), -10000.0f, 5); /* UNUSED */
    }
    gguf_set_string(w, "tokenizer.ggml.model", "llama");
    gguf_set_string(w, "tokenizer.ggml.pre", "default");
    gguf_set_array(w, "tokenizer.ggml.tokens", GGUF_T_STRING, (uint64_t)v.n, v.tokens);
    gguf_set_array(w, "tokenizer.ggml.scores", GGUF_T_FLOAT32, (uint64_t)v.n, v.scores);
    gguf_set_array(w, "tokenizer.ggml.token_type", GGUF_T_INT32, (uint64_t)v.n, v.types);
    gguf_set_int(w, "tokenizer.ggml.bos_token_id", GGUF_T_UINT32, d->bos);
    gguf_set_int(w, "tokenizer.ggml.eos_token_id", GGUF_T_UINT32, d->eos);
    if (v.unk >= 0) gguf_set_int(w, "tokenizer.ggml.unknown_token_id", GGUF_T_UINT32, v.unk);
    if (v.pad >= 0) gguf_set_int(w, "tokenizer.ggml.padding_token_id", GGUF_T_UINT32, v.pad);
    gguf_set_int(w, "tokenizer.ggml.add_bos_token", GGUF_T_BOOL, 1);
    gguf_set_int(w, "tokenizer.ggml.add_eos_token", GGUF_T_BOOL, 0);
    gguf_set_int(w, "tokenizer.ggml.add_space_prefix", GGUF_T_BOOL, v.add_dummy_prefix);
    if (v.remove_spaces) gguf_set_int(w, "tokenizer.ggml.remove_extra_whitespaces", GGUF_T_BOOL, 1);
    free_vocab(&v);
    return 0;
}

/* ---- tensors ---- */

static const char *shape_text(const int64_t *shape, int n, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && k < len; i++) k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

/* The tensor an HF role is stored under, checked against the description's shape. */
static int take_tensor(const gm_weights *a, const char *dir, const char *hf, const char *gg, const cJSON *shape,
                       gm_quant_input *x, gm_err *e) {
    const gm_tensor *t = weights_find(a, hf);
    if (!t) return gm_fail(e, "%s: no tensor %s (llama.cpp's %s); is the checkpoint complete?", dir, hf, gg);
    int64_t want[4] = {0};
    int n = cJSON_GetArraySize(shape), same = t->ndim == n;
    for (int i = 0; i < n && i < 4; i++) want[i] = (int64_t)cJSON_GetArrayItem(shape, i)->valuedouble;
    for (int i = 0; same && i < n; i++) same = t->shape[i] == want[i];
    char found[96], expected[96];
    if (!same)
        return gm_fail(e, "%s: tensor %s: shape %s expected (from config.json), found %s", t->file, hf,
                       shape_text(want, n, expected, sizeof expected), shape_text(t->shape, t->ndim, found, sizeof found));
    if (t->dtype != GM_F32 && t->dtype != GM_BF16 && t->dtype != GM_F16)
        return gm_fail(e, "%s: tensor %s: dtype %s, expected F32, BF16 or F16", t->file, hf, gm_dtype_name(t->dtype));
    *x = (gm_quant_input){.name = gm_strdup(gg), .ndim = n, .ne = {1, 1, 1, 1}, .src_type = (uint32_t)gguf_ggml_type(t->dtype),
                          .kept = n == 1 || gm_ends_with(gg, "_norm.weight") ? GM_F32 : t->dtype, .data = t->data,
                          .nbytes = t->nbytes, .add_one = gm_ends_with(hf, "norm.weight")};
    for (int i = 0; i < n; i++) x->ne[i] = t->shape[n - 1 - i];
    return 0;
}

/* s with "{i}" replaced by layer i. */
static void expand(char *out, size_t len, const char *s, int i) {
    const char *at = strstr(s, "{i}");
    if (!at) snprintf(out, len, "%s", s);
    else snprintf(out, len, "%.*s%d%s", (int)(at - s), s, i, at + 3);
}

/* Every role of the GGUF description's table `which`, paired with the HF one's. */
static int take_table(const gm_weights *a, const char *dir, const cJSON *hf_desc, const cJSON *gg_desc,
                      const char *which, int layers, gm_quant_input **t, int *n, gm_err *e) {
    const cJSON *role;
    cJSON_ArrayForEach(role, cJSON_GetObjectItemCaseSensitive(gg_desc, which)) {
        const cJSON *hf_role = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(hf_desc, which), role->string);
        const char *gg = cJSON_GetObjectItemCaseSensitive(role, "tensor")->valuestring;
        const char *hf = cJSON_GetObjectItemCaseSensitive(hf_role, "tensor")->valuestring;
        for (int i = 0; i < (layers ? layers : 1); i++) {
            char hf_name[512], gg_name[512];
            expand(hf_name, sizeof hf_name, hf, i);
            expand(gg_name, sizeof gg_name, gg, i);
            *t = gm_realloc(*t, (size_t)(*n + 1) * sizeof **t);
            if (take_tensor(a, dir, hf_name, gg_name, cJSON_GetObjectItemCaseSensitive(role, "shape"), &(*t)[*n], e))
                return -1;
            (*n)++;
        }
    }
    return 0;
}

/* The directory's name, for general.name. */
static char *model_name(const char *dir) {
    char *real = realpath(dir, NULL);
    const char *p = real ? real : dir, *slash = strrchr(p, '/');
    char *name = gm_strdup(slash && slash[1] ? slash + 1 : p);
    free(real);
    return name;
}

int gm_quant_from_hf(const char *path, gguf_out *w, gm_quant_input **t, int *n, gm_weights **archive, gm_err *e) {
    import_decoder d;
    const char *model_type;
    char *dir;
    *t = NULL, *n = 0, *archive = NULL;
    if (import_hf_decoder(path, &d, &model_type, &dir, e)) return -1;
    const arch_row *a = arch_of(model_type);
    char *name = model_name(dir);
    cJSON *hf = import_describe(name, model_type, &d), *gg = NULL;
    d.gguf = true;
    gg = import_describe(name, model_type, &d);
    int rc = (*archive = st_open(dir, e)) ? 0 : -1;
    if (!rc) rc = take_table(*archive, dir, hf, gg, "weights", 0, t, n, e) ||
                  take_table(*archive, dir, hf, gg, "layer_weights", (int)d.n_layers, t, n, e) ? -1 : 0;
    if (!rc) {
        meta m = {w, a->arch};
        put_model(&m, a, &d, name);
        warn_lost(dir, a, &d);
        rc = put_tokenizer(w, dir, &d, e);
    }
    cJSON_Delete(hf), cJSON_Delete(gg);
    free(name), free(dir), free(d.global);
    return rc;
}
