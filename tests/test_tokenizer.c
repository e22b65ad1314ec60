/* test_tokenizer.c — the SentencePiece tokenizer (runtime/tokenizer.h)
 * against golden ids. Gemma's ids are defined by Google's tokenizer, so the
 * only meaningful test is conformance: every line of
 * tests/tokenizers/tokenizer-cases.jsonl must encode to exactly its
 * ids_gemma (Gemma 1/2 model) and ids_gemma3 (Gemma 3 model), and every line
 * of tokenizer-divergent-cases.jsonl to its spm_ids_* (what libsentencepiece
 * gives where the JS reference tokenizer differs; see tests/tokenizers/
 * README.md). Around that: round trips, empty input, embedded NUL, the
 * behaviour pinned for invalid UTF-8, chat control tokens, and the
 * one-line errors for missing files, non-models and out-of-range ids.
 *
 * cJSON keeps strings NUL-terminated without a length, which would cut
 * "a\u0000b" short, so the "text" field is decoded from the raw line by a
 * small JSON string decoder here (checked against cJSON on every text
 * without NUL). */
#include "runtime/tokenizer.h"
#include "tests/testing.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rt_tokenizer *tok_gemma, *tok_gemma3;

/* ---- reading the golden files ---- */

typedef struct {
    int lineno;
    char *raw;     /* the JSON line as in the file */
    char *text;    /* decoded "text", may contain NUL */
    size_t len;
    cJSON *json;
} gcase;

typedef struct {
    gcase *v;
    int n;
} gcases;

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return p;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the JSON string literal at *pp (which points at its opening quote)
 * into a malloc'd buffer with its length; advances *pp past the closing quote.
 * NULL on malformed input. */
static char *json_string(const char **pp, size_t *len) {
    const char *p = *pp;
    if (*p != '"') return NULL;
    p++;
    char *out = gm_malloc(strlen(p) + 1), *o = out; /* decoding never grows */
    while (*p && *p != '"') {
        if (*p != '\\') { *o++ = *p++; continue; }
        p++;
        switch (*p) {
        case '"': case '\\': case '/': *o++ = *p++; break;
        case 'b': *o++ = '\b'; p++; break;
        case 'f': *o++ = '\f'; p++; break;
        case 'n': *o++ = '\n'; p++; break;
        case 'r': *o++ = '\r'; p++; break;
        case 't': *o++ = '\t'; p++; break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(p + 1, &cp)) goto bad;
            p += 5;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) goto bad;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += put_utf8(o, cp);
            break;
        }
        default: goto bad;
        }
    }
    if (*p != '"') goto bad;
    *pp = p + 1;
    *len = (size_t)(o - out);
    *o = 0;
    return out;
bad:
    free(out);
    return NULL;
}

/* Skips one JSON value at p; NULL when malformed. */
static const char *skip_value(const char *p) {
    p = skip_ws(p);
    if (*p == '"') {
        size_t l;
        char *s = json_string(&p, &l);
        if (!s) return NULL;
        free(s);
        return p;
    }
    if (*p == '[' || *p == '{') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = skip_value(p);
                if (!p) return NULL;
                continue;
            }
            if (*p == '[' || *p == '{') depth++;
            if (*p == ']' || *p == '}') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']') p++;
    return p;
}

/* The top-level string member `key` of the JSON object in line, decoded. */
static char *json_member_string(const char *line, const char *key, size_t *len) {
    const char *p = skip_ws(line);
    if (*p++ != '{') return NULL;
    for (;;) {
        p = skip_ws(p);
        size_t kl;
        char *k = json_string(&p, &kl);
        if (!k) return NULL;
        p = skip_ws(p);
        if (*p++ != ':') { free(k); return NULL; }
        p = skip_ws(p);
        int hit = strcmp(k, key) == 0;
        free(k);
        if (hit) return json_string(&p, len);
        p = skip_value(p);
        if (!p) return NULL;
        p = skip_ws(p);
        if (*p++ != ',') return NULL;
    }
}

static gcases load_cases(const char *rel) {
    gcases c = {0};
    gm_err e = {{0}};
    char *buf = gm_read_file(test_path(rel), NULL, &e);
    if (!buf) {
        fprintf(stderr, "%s\n", e.msg);
        return c;
    }
    int cap = 0, lineno = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        lineno++;
        char *nl = strchr(line, '\n');
        if (nl) { *nl = 0; next = nl + 1; } else next = NULL;
        if (!*skip_ws(line)) continue;
        if (c.n == cap) c.v = gm_realloc(c.v, (size_t)(cap = cap ? cap * 2 : 64) * sizeof *c.v);
        gcase *g = &c.v[c.n++];
        memset(g, 0, sizeof *g);
        g->lineno = lineno;
        g->raw = gm_strdup(line);
        g->json = cJSON_Parse(line);
        g->text = json_member_string(line, "text", &g->len);
    }
    free(buf);
    return c;
}

static void free_cases(gcases *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->v[i].raw);
        free(c->v[i].text);
        cJSON_Delete(c->v[i].json);
    }
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

static gcases cases, divergent;

/* Loads both models and both case files; done in main rather than in a
 * CUnit suite init, whose failure would not make the run fail. */
static int load_all(void) {
    gm_err e = {{0}};
    tok_gemma = rt_tok_load(test_path("tokenizers/gemma-tokenizer.model"), &e);
    if (!tok_gemma) { fprintf(stderr, "%s\n", e.msg); return -1; }
    tok_gemma3 = rt_tok_load(test_path("tokenizers/gemma3-tokenizer.model"), &e);
    if (!tok_gemma3) { fprintf(stderr, "%s\n", e.msg); return -1; }
    cases = load_cases("tokenizers/tokenizer-cases.jsonl");
    divergent = load_cases("tokenizers/tokenizer-divergent-cases.jsonl");
    return cases.n && divergent.n ? 0 : -1;
}

static void free_all(void) {
    rt_tok_free(tok_gemma);
    rt_tok_free(tok_gemma3);
    free_cases(&cases);
    free_cases(&divergent);
}

/* ---- helpers ---- */

static void print_ids(const int32_t *ids, int n) {
    fprintf(stderr, "[");
    for (int i = 0; i < n; i++) fprintf(stderr, "%s%d", i ? ", " : "", (int)ids[i]);
    fprintf(stderr, "]");
}

static int ids_equal(const cJSON *want, const int32_t *got, int n) {
    if (!cJSON_IsArray(want) || cJSON_GetArraySize(want) != n) return 0;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, want) {
        if (!cJSON_IsNumber(x) || x->valueint != got[i]) return 0;
        i++;
    }
    return 1;
}

/* Encodes every case with t and compares against field; returns matches and
 * reports the first mismatch in full. */
static int conformance(const char *file, const gcases *c, rt_tokenizer *t, const char *field) {
    int ok = 0, reported = 0;
    for (int i = 0; i < c->n; i++) {
        const gcase *g = &c->v[i];
        const cJSON *want = g->json ? cJSON_GetObjectItemCaseSensitive(g->json, field) : NULL;
        int32_t *ids = NULL;
        int n = 0;
        gm_err e = {{0}};
        int r = g->text && want ? rt_tok_encode(t, g->text, g->len, &ids, &n, &e) : -1;
        if (r == 0 && ids_equal(want, ids, n)) {
            ok++;
        } else if (!reported) {
            reported = 1;
            fprintf(stderr, "\nfirst mismatch, %s line %d, field %s:\n  %s\n  got: ", file, g->lineno, field, g->raw);
            if (r == 0) print_ids(ids, n);
            else fprintf(stderr, "error: %s", g->text && want ? e.msg : "cannot read the case");
            fprintf(stderr, "\n");
        }
        free(ids);
    }
    fprintf(stderr, "\n  conformance %s %s: %d/%d lines\n", file, field, ok, c->n);
    return ok;
}

/* ---- tests ---- */

static void test_metadata(void) {
    CU_ASSERT_EQUAL(rt_tok_vocab_size(tok_gemma), 256000);
    CU_ASSERT_EQUAL(rt_tok_vocab_size(tok_gemma3), 262144);
    CU_ASSERT_EQUAL(rt_tok_bos(tok_gemma), 2);
    CU_ASSERT_EQUAL(rt_tok_eos(tok_gemma), 1);
    CU_ASSERT_EQUAL(rt_tok_bos(tok_gemma3), 2);
    CU_ASSERT_EQUAL(rt_tok_eos(tok_gemma3), 1);
    char *p = rt_tok_piece(tok_gemma, 2);
    CU_ASSERT_STRING_EQUAL(p, "<bos>");
    free(p);
    p = rt_tok_piece(tok_gemma, 108);
    CU_ASSERT_STRING_EQUAL(p, "\n");
    free(p);
    p = rt_tok_piece(tok_gemma, 226); /* byte piece, renamed "\t" in HF json */
    CU_ASSERT_STRING_EQUAL(p, "<0x09>");
    free(p);
    CU_ASSERT_PTR_NULL(rt_tok_piece(tok_gemma, -1));
    CU_ASSERT_PTR_NULL(rt_tok_piece(tok_gemma, 256000));
    CU_ASSERT_EQUAL(rt_tok_piece_id(tok_gemma, "<bos>"), 2);
    CU_ASSERT_EQUAL(rt_tok_piece_id(tok_gemma, "<unk>"), 3);
    CU_ASSERT_EQUAL(rt_tok_piece_id(tok_gemma, "<0x09>"), 226);
    CU_ASSERT_EQUAL(rt_tok_piece_id(tok_gemma, "no such piece, surely"), -1);
    CU_ASSERT_EQUAL(rt_tok_piece_id(tok_gemma3, "<image_soft_token>"), -1); /* dropped, see README */
    CU_ASSERT_EQUAL(rt_tok_piece_id(tok_gemma, ""), -1);
    /* piece and piece_id are inverses over the whole vocabulary */
    int bad = 0;
    for (int id = 0; id < rt_tok_vocab_size(tok_gemma3); id++) {
        char *s = rt_tok_piece(tok_gemma3, id);
        if (!s || rt_tok_piece_id(tok_gemma3, s) != id) bad++;
        free(s);
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_conformance_gemma(void) {
    CU_ASSERT_EQUAL(cases.n, 244);
    CU_ASSERT_EQUAL(conformance("tokenizer-cases.jsonl", &cases, tok_gemma, "ids_gemma"), cases.n);
}

static void test_conformance_gemma3(void) {
    CU_ASSERT_EQUAL(conformance("tokenizer-cases.jsonl", &cases, tok_gemma3, "ids_gemma3"), cases.n);
}

static void test_conformance_divergent(void) {
    CU_ASSERT_EQUAL(divergent.n, 38);
    CU_ASSERT_EQUAL(conformance("tokenizer-divergent-cases.jsonl", &divergent, tok_gemma, "spm_ids_gemma"),
                    divergent.n);
    CU_ASSERT_EQUAL(conformance("tokenizer-divergent-cases.jsonl", &divergent, tok_gemma3, "spm_ids_gemma3"),
                    divergent.n);
}

/* Our JSON string decoder agrees with cJSON wherever cJSON can tell (no NUL). */
static void test_case_reader(void) {
    const gcases *all[2] = {&cases, &divergent};
    int nul = 0;
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < all[f]->n; i++) {
            const gcase *g = &all[f]->v[i];
            CU_ASSERT_PTR_NOT_NULL_FATAL(g->json);
            CU_ASSERT_PTR_NOT_NULL_FATAL(g->text);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(g->json, "text");
            CU_ASSERT_FATAL(cJSON_IsString(t));
            if (memchr(g->text, 0, g->len)) {
                nul++;
                CU_ASSERT(strcmp(t->valuestring, g->text) == 0); /* equal up to the NUL */
            } else {
                CU_ASSERT(strlen(t->valuestring) == g->len && memcmp(t->valuestring, g->text, g->len) == 0);
            }
        }
    CU_ASSERT_EQUAL(nul, 1); /* "a\u0000b" */
}

static int contains_u2581(const char *s, size_t len) {
    for (size_t i = 0; i + 2 < len; i++)
        if ((unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 && (unsigned char)s[i + 2] == 0x81)
            return 1;
    return 0;
}

/* decode(encode(x)) == x for every text without U+2581; with U+2581 the
 * result is x with each U+2581 turned into a space. */
static void round_trip(rt_tokenizer *t, const char *name) {
    const gcases *all[2] = {&cases, &divergent};
    int exact = 0, with_block = 0, bad = 0;
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < all[f]->n; i++) {
            const gcase *g = &all[f]->v[i];
            int32_t *ids = NULL;
            int n = 0;
            gm_err e = {{0}};
            size_t dl = 0;
            char *d = NULL;
            if (rt_tok_encode(t, g->text, g->len, &ids, &n, &e) == 0) d = rt_tok_decode(t, ids, n, &dl, &e);
            int ok;
            if (!contains_u2581(g->text, g->len)) {
                ok = d && dl == g->len && memcmp(d, g->text, dl) == 0;
                exact += ok;
            } else {
                /* expected: every "\xE2\x96\x81" replaced by ' ' */
                char *x = gm_malloc(g->len + 1);
                size_t xl = 0;
                for (size_t k = 0; k < g->len;) {
                    if (k + 2 < g->len && contains_u2581(g->text + k, 3)) { x[xl++] = ' '; k += 3; }
                    else x[xl++] = g->text[k++];
                }
                ok = d && dl == xl && memcmp(d, x, xl) == 0;
                with_block += ok;
                free(x);
            }
            if (!ok && !bad++)
                fprintf(stderr, "\nround trip (%s) fails on line %d: %s\n  decoded: %.*s\n", name, g->lineno, g->raw,
                        d ? (int)dl : 0, d ? d : "");
            free(ids);
            free(d);
        }
    fprintf(stderr, "\n  round trip %s: %d exact, %d with U+2581 -> space, %d bad\n", name, exact, with_block, bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(exact + with_block, cases.n + divergent.n);
}

static void test_round_trip_gemma(void) { round_trip(tok_gemma, "gemma"); }
static void test_round_trip_gemma3(void) { round_trip(tok_gemma3, "gemma3"); }

static void test_empty(void) {
    rt_tokenizer *ts[2] = {tok_gemma, tok_gemma3};
    for (int k = 0; k < 2; k++) {
        int32_t *ids = NULL;
        int n = -1;
        gm_err e = {{0}};
        CU_ASSERT_EQUAL(rt_tok_encode(ts[k], "", 0, &ids, &n, &e), 0);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_PTR_NOT_NULL(ids);
        free(ids);
        CU_ASSERT_EQUAL(rt_tok_encode(ts[k], NULL, 0, &ids, &n, &e), 0);
        CU_ASSERT_EQUAL(n, 0);
        free(ids);
        size_t len = 99;
        char *d = rt_tok_decode(ts[k], NULL, 0, &len, &e);
        CU_ASSERT_PTR_NOT_NULL(d);
        CU_ASSERT_EQUAL(len, 0);
        if (d) CU_ASSERT_STRING_EQUAL(d, "");
        free(d);
        /* control ids decode to nothing */
        int32_t ctl[3] = {2, 1, 0};
        d = rt_tok_decode(ts[k], ctl, 3, &len, &e);
        CU_ASSERT_PTR_NOT_NULL(d);
        CU_ASSERT_EQUAL(len, 0);
        free(d);
    }
}

static void test_embedded_nul(void) {
    static const char text[] = "a\0b\0\0c";
    int32_t *ids = NULL;
    int n = 0;
    gm_err e = {{0}};
    CU_ASSERT_EQUAL_FATAL(rt_tok_encode(tok_gemma3, text, sizeof text - 1, &ids, &n, &e), 0);
    CU_ASSERT(n >= 4);
    size_t len = 0;
    char *d = rt_tok_decode(tok_gemma3, ids, n, &len, &e);
    CU_ASSERT_EQUAL(len, sizeof text - 1);
    CU_ASSERT(d && memcmp(d, text, sizeof text - 1) == 0 && d[len] == 0);
    free(ids);
    free(d);
}

static int32_t *enc(rt_tokenizer *t, const char *s, size_t len, int *n) {
    int32_t *ids = NULL;
    gm_err e = {{0}};
    if (rt_tok_encode(t, s, len, &ids, n, &e) != 0) {
        fprintf(stderr, "encode failed: %s\n", e.msg);
        *n = -1;
    }
    return ids;
}

static int same_ids(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && na >= 0 && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/* Pinned: invalid UTF-8 is not an error; SentencePiece's normalizer turns
 * every byte that is not part of a well-formed UTF-8 sequence into its own
 * U+FFFD (a truncated 3-byte sequence gives two), so encoding equals that of
 * the text with those U+FFFD in place, and decoding gives them back. */
static void test_invalid_utf8(void) {
    static const struct {
        const char *bad, *as;
    } cases_[] = {
        {"a\xff" "b", "a\xef\xbf\xbd" "b"},                     /* stray byte */
        {"a\x80\x80" "b", "a\xef\xbf\xbd\xef\xbf\xbd" "b"},     /* two lone continuations */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},               /* overlong '/' */
        {"x\xed\xa0\x80y", "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy"}, /* UTF-16 surrogate */
        {"end\xe2\x82", "end\xef\xbf\xbd\xef\xbf\xbd"},        /* truncated 3-byte sequence */
        {"a\xf0\x9f\x98" "b", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "b"}, /* truncated emoji */
    };
    rt_tokenizer *ts[2] = {tok_gemma, tok_gemma3};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < sizeof cases_ / sizeof cases_[0]; i++) {
            int nb = 0, na = 0;
            int32_t *b = enc(ts[k], cases_[i].bad, strlen(cases_[i].bad), &nb);
            int32_t *a = enc(ts[k], cases_[i].as, strlen(cases_[i].as), &na);
            CU_ASSERT(same_ids(b, nb, a, na));
            if (!same_ids(b, nb, a, na)) {
                fprintf(stderr, "\ninvalid UTF-8 case %zu (model %d): got ", i, k);
                print_ids(b, nb);
                fprintf(stderr, " want ");
                print_ids(a, na);
                fprintf(stderr, "\n");
            }
            gm_err e = {{0}};
            size_t dl = 0;
            char *d = nb >= 0 ? rt_tok_decode(ts[k], b, nb, &dl, &e) : NULL;
            CU_ASSERT(d && dl == strlen(cases_[i].as) && memcmp(d, cases_[i].as, dl) == 0);
            free(d);
            free(a);
            free(b);
        }
    /* the exact ids, so that a library change cannot go unnoticed */
    int n = 0;
    int32_t *ids = enc(tok_gemma, "a\xff" "b", 3, &n);
    int32_t want[] = {235250, 236193, 235268}; /* a, U+FFFD, b */
    CU_ASSERT(same_ids(ids, n, want, 3));
    free(ids);
    char *p = rt_tok_piece(tok_gemma, 236193);
    CU_ASSERT_STRING_EQUAL(p, "\xef\xbf\xbd");
    free(p);
    /* a byte piece that is not valid UTF-8 on its own decodes to U+FFFD */
    int32_t ff = rt_tok_piece_id(tok_gemma, "<0xFF>");
    CU_ASSERT(ff > 0);
    gm_err e = {{0}};
    size_t dl = 0;
    char *d = rt_tok_decode(tok_gemma, &ff, 1, &dl, &e);
    CU_ASSERT(d && dl == 3 && memcmp(d, "\xef\xbf\xbd", 3) == 0);
    free(d);
    /* while byte pieces that spell valid UTF-8 decode to it */
    int32_t e9[2] = {rt_tok_piece_id(tok_gemma, "<0xC3>"), rt_tok_piece_id(tok_gemma, "<0xA9>")};
    d = rt_tok_decode(tok_gemma, e9, 2, &dl, &e);
    CU_ASSERT(d && dl == 2 && memcmp(d, "\xc3\xa9", 2) == 0);
    free(d);
}

static void chat(rt_tokenizer *t, int32_t sot, int32_t eot, int32_t nl) {
    static const char text[] = "<start_of_turn>user\nHi<end_of_turn>\n";
    CU_ASSERT_EQUAL(rt_tok_piece_id(t, "<start_of_turn>"), sot);
    CU_ASSERT_EQUAL(rt_tok_piece_id(t, "<end_of_turn>"), eot);
    int n = 0;
    int32_t *ids = enc(t, text, sizeof text - 1, &n);
    CU_ASSERT_FATAL(n >= 4);
    CU_ASSERT_EQUAL(ids[0], sot);
    CU_ASSERT_EQUAL(ids[n - 2], eot);
    CU_ASSERT_EQUAL(ids[n - 1], nl);
    int count_sot = 0, count_eot = 0;
    for (int i = 0; i < n; i++) {
        count_sot += ids[i] == sot;
        count_eot += ids[i] == eot;
    }
    CU_ASSERT_EQUAL(count_sot, 1);
    CU_ASSERT_EQUAL(count_eot, 1);
    /* "user" "\n" "Hi" in between */
    int nu = 0;
    int32_t *user = enc(t, "user\nHi", 7, &nu);
    CU_ASSERT(same_ids(ids + 1, n - 3, user, nu));
    gm_err e = {{0}};
    size_t dl = 0;
    char *d = rt_tok_decode(t, ids, n, &dl, &e);
    CU_ASSERT(d && dl == sizeof text - 1 && memcmp(d, text, dl) == 0);
    char *p = rt_tok_piece(t, sot);
    CU_ASSERT_STRING_EQUAL(p, "<start_of_turn>");
    free(p);
    free(d);
    free(user);
    free(ids);
    /* CONTROL pieces typed in text are plain text, not the special id */
    ids = enc(t, "<bos>", 5, &n);
    CU_ASSERT(n > 1);
    for (int i = 0; i < n; i++) CU_ASSERT_NOT_EQUAL(ids[i], rt_tok_bos(t));
    free(ids);
}

static void test_chat_gemma(void) { chat(tok_gemma, 106, 107, 108); }
static void test_chat_gemma3(void) { chat(tok_gemma3, 105, 106, 107); }

static void check_one_line(const gm_err *e, const char *must1, const char *must2) {
    CU_ASSERT(e->msg[0] != 0);
    CU_ASSERT(strchr(e->msg, '\n') == NULL);
    if (must1) CU_ASSERT(strstr(e->msg, must1) != NULL);
    if (must2) CU_ASSERT(strstr(e->msg, must2) != NULL);
    fprintf(stderr, "\n  error: %s", e->msg);
}

static void test_errors(void) {
    gm_err e = {{0}};
    const char *missing = test_path("tokenizers/no-such.model");
    CU_ASSERT_PTR_NULL(rt_tok_load(missing, &e));
    check_one_line(&e, "no-such.model", "--tokenizer");

    char jsonl[4096];
    snprintf(jsonl, sizeof jsonl, "%s", test_path("tokenizers/tokenizer-cases.jsonl"));
    memset(&e, 0, sizeof e);
    CU_ASSERT_PTR_NULL(rt_tok_load(jsonl, &e));
    check_one_line(&e, "tokenizer-cases.jsonl", "not a SentencePiece model");

    memset(&e, 0, sizeof e);
    CU_ASSERT_PTR_NULL(rt_tok_load(test_path("tokenizers/README.md"), &e));
    check_one_line(&e, "README.md", "not a SentencePiece model");

    memset(&e, 0, sizeof e);
    CU_ASSERT_PTR_NULL(rt_tok_load(test_path("tokenizers"), &e)); /* a directory */
    check_one_line(&e, "tokenizers", "--tokenizer");

    memset(&e, 0, sizeof e);
    CU_ASSERT_PTR_NULL(rt_tok_load_from_memory("", 0, "empty.model", &e)); /* parses as an empty proto */
    check_one_line(&e, "empty.model", "not a SentencePiece model");

    /* a truncated model */
    size_t len = 0;
    char *buf = gm_read_file(test_path("tokenizers/gemma3-tokenizer.model"), &len, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    memset(&e, 0, sizeof e);
    rt_tokenizer *t = rt_tok_load_from_memory(buf, len / 2, "half.model", &e);
    CU_ASSERT_PTR_NULL(t);
    rt_tok_free(t);
    check_one_line(&e, "half.model", "not a SentencePiece model");
    /* while the whole buffer loads (and the copy outlives it) */
    t = rt_tok_load_from_memory(buf, len, "gemma3 in memory", &e);
    free(buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(rt_tok_vocab_size(t), 262144);

    int32_t bad[3] = {818, 262144, 5};
    size_t dl = 7;
    memset(&e, 0, sizeof e);
    CU_ASSERT_PTR_NULL(rt_tok_decode(t, bad, 3, &dl, &e));
    check_one_line(&e, "262144", "262144 pieces");
    CU_ASSERT_EQUAL(dl, 0);
    int32_t neg = -1;
    memset(&e, 0, sizeof e);
    CU_ASSERT_PTR_NULL(rt_tok_decode(t, &neg, 1, NULL, &e));
    check_one_line(&e, "-1", "out of range");
    memset(&e, 0, sizeof e);
    CU_ASSERT_PTR_NULL(rt_tok_decode(tok_gemma, bad + 1, 1, NULL, &e));
    check_one_line(&e, "262144", "256000 pieces");
    rt_tok_free(t);
    rt_tok_free(NULL);
    fprintf(stderr, "\n");
}

int main(void) {
    if (load_all() != 0) {
        fprintf(stderr, "test_tokenizer: cannot load the test models or cases\n");
        free_all();
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    CU_pSuite s = CU_add_suite("tokenizer", NULL, NULL);
    CU_add_test(s, "case reader", test_case_reader);
    CU_add_test(s, "metadata", test_metadata);
    CU_add_test(s, "conformance gemma", test_conformance_gemma);
    CU_add_test(s, "conformance gemma3", test_conformance_gemma3);
    CU_add_test(s, "conformance divergent (spm ids)", test_conformance_divergent);
    CU_add_test(s, "round trip gemma", test_round_trip_gemma);
    CU_add_test(s, "round trip gemma3", test_round_trip_gemma3);
    CU_add_test(s, "empty input", test_empty);
    CU_add_test(s, "embedded NUL", test_embedded_nul);
    CU_add_test(s, "invalid UTF-8 pinned", test_invalid_utf8);
    CU_add_test(s, "chat tokens gemma", test_chat_gemma);
    CU_add_test(s, "chat tokens gemma3", test_chat_gemma3);
    CU_add_test(s, "errors", test_errors);
    int rc = test_run_all();
    free_all();
    return rc;
}
