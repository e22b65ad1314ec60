/* gguf_vocab.c — the SentencePiece model inside a llama.cpp GGUF file.
 *
 * llama.cpp's converter keeps a SentencePiece vocabulary as three parallel
 * arrays (tokenizer.ggml.tokens, .scores, .token_type) plus the special ids,
 * and drops the ModelProto around them. gemmac tokenizes with libsentencepiece
 * (runtime/tokenizer.h), so this file writes that ModelProto back, by hand in
 * protobuf wire format (varints and length-delimited fields; the field
 * numbers are sentencepiece_model.proto's):
 *
 *   pieces         piece, score, type, in id order
 *   trainer_spec   model_type BPE, vocab_size, byte_fallback, split_digits,
 *                  allow_whitespace_only_pieces, unk/bos/eos/pad ids and pieces
 *   normalizer_spec "identity" (no NFKC), escape_whitespaces, no whitespace
 *                  removal, a dummy prefix only if add_space_prefix says so
 *
 * Two things the converter changed are undone (notes/gguf-gemma.md §4):
 * it wrote every token that tokenizer_config.json calls special as CONTROL,
 * while Gemma's tokenizer.model has only <pad>, <eos>, <bos> as CONTROL and
 * <unk> as UNKNOWN — the rest (<start_of_turn>, <mask>, <unusedN>, ...) are
 * USER_DEFINED, which is what makes SentencePiece match them inside text; and
 * it turned "▁" into " " in added tokens (the whitespace runs). The trainer
 * settings are Gemma's; the GGUF does not store them. */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>

enum { WIRE_VARINT = 0, WIRE_BYTES = 2, WIRE_F32 = 5 };
enum { SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_BYTE = 6 };
enum { SP_BPE = 2 };

/* ---- protobuf wire format ------------------------------------------------ */

static void put_varint(gm_buf *b, uint64_t v) {
    char c[10];
    size_t n = 0;
    do {
        c[n++] = (char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    gm_buf_put(b, c, n);
}

static void put_tag(gm_buf *b, int field, int wire) { put_varint(b, (uint64_t)field << 3 | (unsigned)wire); }

static void put_uint(gm_buf *b, int field, uint64_t v) {
    put_tag(b, field, WIRE_VARINT);
    put_varint(b, v);
}

static void put_bytes(gm_buf *b, int field, const char *s, size_t n) {
    put_tag(b, field, WIRE_BYTES);
    put_varint(b, n);
    gm_buf_put(b, s, n);
}

static void put_float(gm_buf *b, int field, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    char c[4] = {(char)u, (char)(u >> 8), (char)(u >> 16), (char)(u >> 24)};
    put_tag(b, field, WIRE_F32);
    gm_buf_put(b, c, 4);
}

/* ---- reading the vocabulary ---------------------------------------------- */

typedef struct {
    const gguf_kv *tokens, *scores, *types;
    int64_t unk, bos, eos, pad;
    int dummy_prefix, remove_spaces;
} vocab;

static const gguf_kv *array(const gguf_file *g, const char *key, gguf_value_type elem, gm_err *e) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || kv->type != GGUF_T_ARRAY || kv->elem_type != elem) {
        gm_fail(e, "%s: %s: %s (a SentencePiece vocabulary needs tokens, scores and token_type arrays)",
                gguf_path(g), key, kv ? "not an array of the expected type" : "missing");
        return NULL;
    }
    return kv;
}

static int flag(const gguf_file *g, const char *key, int def) {
    const gguf_kv *kv = gguf_find(g, key);
    return kv && kv->type == GGUF_T_BOOL ? *(const uint8_t *)kv->data != 0 : def;
}

/* An optional token id; -1 when absent. */
static int id(const gguf_file *g, const char *key, int64_t *out, gm_err *e) {
    *out = -1;
    return gguf_find(g, key) ? gguf_get_int(g, key, out, e) : 0;
}

static int read_vocab(const gguf_file *g, vocab *v, gm_err *e) {
    char *model = NULL;
    if (gguf_get_string(g, "tokenizer.ggml.model", &model, e)) return -1;
    int spm = !strcmp(model, "llama");
    if (!spm)
        gm_fail(e, "%s: tokenizer.ggml.model is \"%.60s\"; gemmac rebuilds SentencePiece (\"llama\") vocabularies only",
                gguf_path(g), model);
    free(model);
    if (!spm || !(v->tokens = array(g, "tokenizer.ggml.tokens", GGUF_T_STRING, e)) ||
        !(v->scores = array(g, "tokenizer.ggml.scores", GGUF_T_FLOAT32, e)) ||
        !(v->types = array(g, "tokenizer.ggml.token_type", GGUF_T_INT32, e)))
        return -1;
    if (v->scores->count != v->tokens->count || v->types->count != v->tokens->count || !v->tokens->count ||
        v->tokens->count > INT32_MAX)
        return gm_fail(e, "%s: tokenizer.ggml: %llu tokens, %llu scores and %llu token types; expected as many of each",
                       gguf_path(g), (unsigned long long)v->tokens->count, (unsigned long long)v->scores->count,
                       (unsigned long long)v->types->count);
    if (id(g, "tokenizer.ggml.unknown_token_id", &v->unk, e) || id(g, "tokenizer.ggml.bos_token_id", &v->bos, e) ||
        id(g, "tokenizer.ggml.eos_token_id", &v->eos, e) || id(g, "tokenizer.ggml.padding_token_id", &v->pad, e))
        return -1;
    const int64_t n = (int64_t)v->tokens->count, ids[4] = {v->unk, v->bos, v->eos, v->pad};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= n)
            return gm_fail(e, "%s: a special token id is %lld, past the %lld tokens", gguf_path(g),
                           (long long)ids[i], (long long)n);
    if (v->unk < 0) return gm_fail(e, "%s: tokenizer.ggml.unknown_token_id: missing (SentencePiece needs an <unk>)", gguf_path(g));
    v->dummy_prefix = flag(g, "tokenizer.ggml.add_space_prefix", 1); /* llama.cpp's SPM default */
    v->remove_spaces = flag(g, "tokenizer.ggml.remove_extra_whitespaces", 0);
    return 0;
}

/* The SentencePiece type of token i (see the top of the file). */
static int piece_type(const vocab *v, int64_t i) {
    int t = (int)gguf_array_number(v->types, (uint64_t)i);
    if (i == v->unk) return SP_UNKNOWN;
    if (i == v->bos || i == v->eos || i == v->pad) return SP_CONTROL;
    if (t == SP_CONTROL || t == SP_UNKNOWN) return SP_USER_DEFINED;
    return t >= SP_NORMAL && t <= SP_BYTE ? t : SP_NORMAL;
}

/* ---- writing the ModelProto ---------------------------------------------- */

/* The text of token i, every " " written back as "▁" (U+2581). A token
 * holds no NUL: the reader's strings are C strings of the file's bytes. */
static void token_text(const vocab *v, int64_t i, gm_buf *out) {
    char *s = gguf_array_string(v->tokens, (uint64_t)i);
    out->len = 0;
    gm_buf_put(out, "", 0);
    for (const char *c = s; *c; c++)
        if (*c == ' ') gm_buf_put(out, "\xE2\x96\x81", 3);
        else gm_buf_put(out, c, 1);
    free(s);
}

static void put_pieces(gm_buf *b, const vocab *v) {
    gm_buf text = {0}, msg = {0};
    for (uint64_t i = 0; i < v->tokens->count; i++) {
        token_text(v, (int64_t)i, &text);
        msg.len = 0;
        put_bytes(&msg, 1, text.s, text.len);
        put_float(&msg, 2, (float)gguf_array_number(v->scores, i));
        int type = piece_type(v, (int64_t)i);
        if (type != SP_NORMAL) put_uint(&msg, 3, (uint64_t)type);
        put_bytes(b, 1, msg.s, msg.len);
    }
    free(text.s);
    free(msg.s);
}

/* An id and its piece; an absent id as -1 (an int32 varint of 10 bytes). */
static void put_special(gm_buf *spec, const vocab *v, int id_field, int piece_field, int64_t id) {
    if (id < 0) return put_uint(spec, id_field, UINT64_MAX);
    gm_buf text = {0};
    token_text(v, id, &text);
    put_uint(spec, id_field, (uint64_t)id);
    put_bytes(spec, piece_field, text.s, text.len);
    free(text.s);
}

static void put_trainer_spec(gm_buf *b, const vocab *v) {
    gm_buf spec = {0};
    put_uint(&spec, 3, SP_BPE);
    put_uint(&spec, 4, v->tokens->count);
    put_uint(&spec, 25, 1); /* split_digits */
    put_uint(&spec, 26, 1); /* allow_whitespace_only_pieces: Gemma's runs of spaces */
    put_uint(&spec, 35, 1); /* byte_fallback */
    put_special(&spec, v, 40, 45, v->unk);
    put_special(&spec, v, 41, 46, v->bos);
    put_special(&spec, v, 42, 47, v->eos);
    put_special(&spec, v, 43, 48, v->pad);
    put_bytes(b, 2, spec.s, spec.len);
    free(spec.s);
}

static void put_normalizer_spec(gm_buf *b, const vocab *v) {
    gm_buf spec = {0};
    put_bytes(&spec, 1, "identity", 8);
    put_bytes(&spec, 2, "", 0); /* no precompiled charsmap: no NFKC */
    put_uint(&spec, 3, (uint64_t)v->dummy_prefix);
    put_uint(&spec, 4, (uint64_t)v->remove_spaces);
    put_uint(&spec, 5, 1); /* escape_whitespaces: " " → "▁" */
    put_bytes(b, 3, spec.s, spec.len);
    free(spec.s);
}

char *gguf_sentencepiece_model(const gguf_file *g, size_t *len, gm_err *e) {
    vocab v = {0};
    if (read_vocab(g, &v, e)) return NULL;
    gm_buf b = {0};
    put_pieces(&b, &v);
    put_trainer_spec(&b, &v);
    put_normalizer_spec(&b, &v);
    *len = b.len;
    return b.s;
}

rt_tokenizer *gguf_tokenizer(const gguf_file *g, gm_err *e) {
    size_t len;
    char *proto = gguf_sentencepiece_model(g, &len, e);
    if (!proto) return NULL;
    char origin[4200];
    snprintf(origin, sizeof origin, "%s (its tokenizer.ggml vocabulary)", gguf_path(g));
    rt_tokenizer *t = rt_tok_load_from_memory(proto, len, origin, e);
    free(proto);
    return t;
}
