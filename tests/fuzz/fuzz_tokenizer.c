/* fuzz_tokenizer.c — libFuzzer harness: the real Gemma and Gemma 3
 * SentencePiece models (tests/tokenizers) on arbitrary bytes. The first byte
 * picks the model; the rest is encoded as text (a prompt, a perplexity file
 * and `gemmac tokenize` input are arbitrary bytes: NULs, invalid UTF-8), the
 * ids decoded back, and the same bytes read as little-endian 32-bit ids
 * decoded too (`gemmac tokenize --decode` takes any integers; an id out of
 * range must be a one-line error) and each id's piece looked up. Everything
 * crosses the C++ shim (runtime/tokenizer.cc), which must turn every failure
 * into an error and never throw or crash. Where the text is valid UTF-8
 * without NUL or U+2581, decode(encode(text)) must give it back
 * (tokenizer.h). Built by scripts/fuzz.sh; its seeds are the texts of
 * tests/tokenizers' cases. */
#include "runtime/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static rt_tokenizer *models[2];

static rt_tokenizer *load(const char *name) {
    char path[4096];
    gm_err e;
    snprintf(path, sizeof path, "%s/tests/tokenizers/%s", GM_SOURCE_DIR, name);
    rt_tokenizer *t = rt_tok_load(path, &e);
    if (!t) fprintf(stderr, "fuzz_tokenizer: %s\n", e.msg), abort();
    return t;
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF),
 * without NUL and U+2581, which SentencePiece does not give back as typed. */
static int round_trips(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n || c == 0) return 0;
        uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!models[0]) models[0] = load("gemma-tokenizer.model"), models[1] = load("gemma3-tokenizer.model");
    if (size < 1) return 0;
    const rt_tokenizer *t = models[data[0] & 1];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    gm_err e;
    int32_t *ids;
    int n;
    if (rt_tok_encode(t, text, len, &ids, &n, &e)) __builtin_trap(); /* any bytes are text */
    size_t back_len;
    char *back = rt_tok_decode(t, ids, n, &back_len, &e);
    if (!back) __builtin_trap(); /* its own ids always decode */
    if (round_trips(data + 1, len) && (back_len != len || memcmp(back, text, len))) __builtin_trap();
    free(back);
    free(ids);

    int32_t raw[64];
    int n_raw = (int)(len / 4 < 64 ? len / 4 : 64);
    memcpy(raw, text, (size_t)n_raw * 4);
    char *decoded = rt_tok_decode(t, raw, n_raw, NULL, &e);
    int in_range = 1;
    for (int i = 0; i < n_raw; i++) {
        char *piece = rt_tok_piece(t, raw[i]);
        in_range &= piece != NULL;
        free(piece);
    }
    if (!decoded != !in_range || (!decoded && !e.msg[0])) __builtin_trap(); /* refused exactly when out of range */
    free(decoded);
    return 0;
}
