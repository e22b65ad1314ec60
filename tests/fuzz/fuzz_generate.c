/* fuzz_generate.c — libFuzzer harness: Gemma's chat template and the stop
 * strings of the generation loop (runtime/generate.c) on arbitrary system
 * prompts, user turns, stop strings and generated tokens. The model is a
 * stand-in engine whose greedy choice is read from the input, so any token
 * sequence (byte pieces that split UTF-8 characters, NUL bytes, control
 * pieces, <end_of_turn>) comes out of a real tokenizer: the demo model's
 * (2048 pieces, byte fallback, the chat markup) or Gemma 3's first 65536
 * pieces. Two chat turns run on one session, as `gemmac run --chat` does. What the loop
 * streams must be exactly the reply it returns, and never contain a stop
 * string. Input: a flags byte (stop count, context size, tokenizer), then NUL-separated
 * system, user and stop strings (they come from argv and stdin lines, so
 * hold no NUL), then the generated ids, 16 bits each. Built by
 * scripts/fuzz.sh; its seeds are chat-shaped inputs. */
#define _GNU_SOURCE /* memmem */

#include "runtime/generate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    rt_engine en;
    const uint8_t *ids;  /* the tokens it "predicts", 16-bit little-endian, modulo vocab */
    size_t n, at;
    int32_t last;        /* the id whose logit is 1 (all others 0) */
} script_engine;

/* Sets logits to the next scripted id (EOS once the script is spent). */
static int predict(rt_engine *en, float *logits) {
    script_engine *s = (script_engine *)en;
    int32_t id = 1;
    if (s->at + 2 <= s->n) id = (s->ids[s->at] | s->ids[s->at + 1] << 8) % (int)en->vocab, s->at += 2;
    logits[s->last] = 0;
    logits[s->last = id] = 1;
    return 0;
}

static int prefill(rt_engine *en, const int32_t *tokens, int n, int pos, float *logits, int all_rows, gm_err *e) {
    (void)tokens, (void)all_rows;
    if (pos + n > en->context) return gm_fail(e, "past the context");
    return predict(en, logits);
}

static int decode(rt_engine *en, int32_t token, int pos, float *logits, gm_err *e) {
    (void)token;
    if (pos >= en->context) return gm_fail(e, "past the context");
    return predict(en, logits);
}

/* What the loop streamed. */
typedef struct {
    char *text;
    size_t len;
} stream;

static void emit(void *user, const char *text, size_t len) {
    stream *s = user;
    s->text = realloc(s->text, s->len + len + 1);
    memcpy(s->text + s->len, text, len);
    s->len += len;
}

static rt_tokenizer *toks[2];

static rt_tokenizer *load(const char *path) {
    gm_err e;
    rt_tokenizer *t = rt_tok_load(path, &e);
    if (!t) fprintf(stderr, "fuzz_generate: %s\n", e.msg), abort();
    return t;
}

/* The next NUL-terminated field of data[*at..size), or NULL at the end. */
static char *field(const uint8_t *data, size_t size, size_t *at) {
    if (*at >= size) return NULL;
    const uint8_t *end = memchr(data + *at, 0, size - *at);
    size_t len = end ? (size_t)(end - data - *at) : size - *at;
    char *f = strndup((const char *)data + *at, len);
    *at += len + 1;
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!toks[0]) {
        toks[0] = load(GM_SOURCE_DIR "/models/demo/tokenizer.model");
        toks[1] = load(GM_SOURCE_DIR "/tests/tokenizers/gemma3-tokenizer.model");
    }
    if (size < 1) return 0;
    gm_err e;
    rt_tokenizer *tok = toks[data[0] >> 3 & 1];
    int vocab = rt_tok_vocab_size(tok) < 65536 ? rt_tok_vocab_size(tok) : 65536;
    size_t at = 1;
    char *system = field(data, size, &at), *user = field(data, size, &at), *stops[4] = {0};
    int n_stops = 0;
    while (n_stops < (data[0] & 3) && (stops[n_stops] = field(data, size, &at))) n_stops++;
    script_engine en = {.en = {.backend = "script", .vocab = vocab, .context = data[0] & 4 ? 48 : 4096,
                               .prefill = prefill, .decode = decode},
                        .ids = data + at, .n = at < size ? size - at : 0};
    rt_sampler_opts so = rt_sampler_defaults();
    so.temperature = 0;
    rt_session *s = rt_session_new(&en.en, tok, &so, &e);
    if (!s) __builtin_trap();
    for (int turn = 0; turn < 2 && user; turn++) {
        stream out = {0};
        rt_gen_opts o = {.max_new = 24, .stops = (const char *const *)stops, .n_stops = n_stops, .emit = emit,
                         .user = &out};
        char *reply = NULL;
        rt_stop_reason why;
        if (!rt_session_chat(s, system, user, &o, &reply, &why, &e)) {
            /* streamed = returned (up to a NUL byte, past which reply's length is unknown) */
            const char *nul = out.len ? memchr(out.text, 0, out.len) : NULL;
            size_t shown = nul ? (size_t)(nul - out.text) : out.len;
            if (strlen(reply) != shown || memcmp(out.text ? out.text : "", reply, shown)) __builtin_trap();
            for (int i = 0; i < n_stops; i++)
                if (*stops[i] && memmem(out.text ? out.text : "", out.len, stops[i], strlen(stops[i])))
                    __builtin_trap(); /* a stop string is never shown */
        } else if (!e.msg[0]) {
            __builtin_trap();
        }
        free(reply);
        free(out.text);
    }
    rt_session_free(s);
    for (int i = 0; i < n_stops; i++) free(stops[i]);
    free(system);
    free(user);
    return 0;
}
