/* test_gguf.c — the GGUF reader (runtime/gguf.h). Small GGUF files are written
 * here by a tiny writer: metadata of every value type (arrays of strings
 * too) reads back with its type, count and value through every getter;
 * float tensors point into the file with their shapes reversed; quantized
 * tensors decode to the worked examples of the format notes and, block for
 * block, to values this file computes itself from the published per-element
 * formulas (random blocks, constant blocks, ramps, scale and min extremes);
 * gguf_weights keeps the block formats the kernels read as stored (decoded
 * by gm_to_f32 to the same values) and gives Q2_K and Q3_K as owned f32
 * buffers. Every malformed
 * input — truncated in the keys, the tensor infos or the data, bad magic or
 * version, lying counts and lengths, unknown value or tensor types, bad
 * alignment, misaligned, overlapping or out-of-file tensor data, duplicate
 * keys or names — is refused with one line naming the file, the key or
 * tensor where there is one, and the fault. */
#include "runtime/gguf.h"
#include "tests/testing.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static char dir[4096];

static const char *in_dir(const char *name) {
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* ---- a tiny GGUF writer ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *s, size_t n) {
    if (b->n + n > b->cap) b->p = realloc(b->p, b->cap = 2 * (b->n + n) + 64);
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_le(bytes *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) put(b, &(uint8_t){(uint8_t)(v >> (8 * i))}, 1);
}

static void put_u8(bytes *b, uint8_t v) { put_le(b, v, 1); }
static void put_u16(bytes *b, uint16_t v) { put_le(b, v, 2); }
static void put_u32(bytes *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(bytes *b, uint64_t v) { put_le(b, v, 8); }

static void put_f32(bytes *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}

static void put_f64(bytes *b, double f) {
    uint64_t u;
    memcpy(&u, &f, 8);
    put_u64(b, u);
}

static void put_str(bytes *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

/* The metadata section: pairs written back to back, and their count. */
typedef struct {
    bytes b;
    uint64_t n;
} kvs;

static bytes *kv(kvs *k, const char *key, gguf_value_type type) {
    put_str(&k->b, key);
    put_u32(&k->b, type);
    k->n++;
    return &k->b;
}

static bytes *kv_array(kvs *k, const char *key, gguf_value_type elem, uint64_t count) {
    bytes *b = kv(k, key, GGUF_T_ARRAY);
    put_u32(b, elem);
    put_u64(b, count);
    return b;
}

typedef struct {
    const char *name;
    uint32_t ndim;
    uint64_t ne[4];
    uint32_t type;
    const void *data;
    size_t nbytes;
    uint64_t offset; /* 0: the next aligned offset (the writer's default) */
    int fixed;       /* 1: use offset as given and write no data */
} wtensor;

typedef struct {
    size_t infos, infos_end, data, size; /* where the tensor infos start and end, the data starts; file size */
} layout;

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* A whole file: header, the metadata of k, tensor infos, padding, data. */
static bytes build(uint32_t version, const kvs *k, const wtensor *ts, int nt, size_t alignment, layout *l) {
    bytes b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, version);
    put_u64(&b, (uint64_t)nt);
    put_u64(&b, k ? k->n : 0);
    if (k) put(&b, k->b.p, k->b.n);
    l->infos = b.n;
    uint64_t offsets[16], next = 0;
    for (int i = 0; i < nt; i++) {
        put_str(&b, ts[i].name);
        put_u32(&b, ts[i].ndim);
        for (uint32_t d = 0; d < ts[i].ndim; d++) put_u64(&b, d < 4 ? ts[i].ne[d] : 1);
        put_u32(&b, ts[i].type);
        offsets[i] = ts[i].fixed ? ts[i].offset : next;
        if (!ts[i].fixed) next = align_up(next + ts[i].nbytes, alignment);
        put_u64(&b, offsets[i]);
    }
    l->infos_end = b.n;
    l->data = align_up(b.n, alignment);
    size_t end = l->data + next;
    uint8_t *zeros = calloc(1, end - b.n + 1);
    put(&b, zeros, end - b.n);
    free(zeros);
    for (int i = 0; i < nt; i++)
        if (!ts[i].fixed && ts[i].nbytes) memcpy(b.p + l->data + offsets[i], ts[i].data, ts[i].nbytes);
    l->size = b.n;
    return b;
}

static void save(const char *name, const void *p, size_t n) {
    FILE *f = fopen(in_dir(name), "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void save_file(const char *name, uint32_t version, const kvs *k, const wtensor *ts, int nt) {
    layout l;
    bytes b = build(version, k, ts, nt, 32, &l);
    save(name, b.p, b.n);
    free(b.p);
}

static void patch_u32(bytes *b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++) b->p[at + i] = (uint8_t)(v >> (8 * i));
}

static void patch_u64(bytes *b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; i++) b->p[at + i] = (uint8_t)(v >> (8 * i));
}

/* ---- checking ---- */

/* gguf_open(name) fails with one non-empty line naming the file and holding
 * every string of the NULL-terminated list. */
static void expect_fail(const char *name, ...) {
    gm_err e = {{0}};
    gguf_file *g = gguf_open(in_dir(name), &e);
    CU_ASSERT_PTR_NULL(g);
    gguf_close(g);
    CU_ASSERT(e.msg[0] != 0);
    CU_ASSERT_PTR_NULL(strchr(e.msg, '\n'));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, name));
    va_list ap;
    va_start(ap, name);
    for (const char *part; (part = va_arg(ap, const char *));) {
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, part));
        if (!strstr(e.msg, part)) printf("\n  message \"%s\" lacks \"%s\"\n", e.msg, part);
    }
    va_end(ap);
}

static gguf_file *open_ok(const char *name) {
    gm_err e = {{0}};
    gguf_file *g = gguf_open(in_dir(name), &e);
    if (!g) printf("\n  %s\n", e.msg);
    return g;
}

static int close_to(float got, float want) {
    return fabsf(got - want) <= 1e-6f * fmaxf(1.0f, fabsf(want));
}

/* ---- per-element reference formulas (format notes, section 2.4) ---- */

static float f16(const uint8_t *p) { return gm_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static int nibble32(const uint8_t *qs, int e) { return (qs[e % 16] >> (4 * (e / 16))) & 15; }

static int bit5(const uint8_t *qh, int e) {
    uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    return (int)((h >> e) & 1);
}

static float ref_q4_0(const uint8_t *b, int e) { return (float)(nibble32(b + 2, e) - 8) * f16(b); }
static float ref_q4_1(const uint8_t *b, int e) { return (float)nibble32(b + 4, e) * f16(b) + f16(b + 2); }
static float ref_q5_0(const uint8_t *b, int e) {
    return (float)((nibble32(b + 6, e) | bit5(b + 2, e) << 4) - 16) * f16(b);
}
static float ref_q5_1(const uint8_t *b, int e) {
    return (float)(nibble32(b + 8, e) | bit5(b + 4, e) << 4) * f16(b) + f16(b + 2);
}
static float ref_q8_0(const uint8_t *b, int e) { return (float)(int8_t)b[2 + e] * f16(b); }

static float ref_q2_k(const uint8_t *b, int e) {
    int h = e / 128, j = (e % 128) / 32, l = e % 32, sc = b[e / 16];
    int q = (b[16 + 32 * h + l] >> (2 * j)) & 3;
    return f16(b + 80) * (float)(sc & 15) * (float)q - f16(b + 82) * (float)(sc >> 4);
}

static float ref_q3_k(const uint8_t *b, int e) {
    const uint8_t *hmask = b, *qs = b + 32, *s = b + 96;
    int k = e / 16, h = e / 128, j = (e % 128) / 32, l = e % 32;
    int low4 = (s[k % 8] >> (4 * (k / 8))) & 15, high2 = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
    int q2 = (qs[32 * h + l] >> (2 * j)) & 3, hbit = (hmask[l] >> (4 * h + j)) & 1;
    return f16(b + 108) * (float)((low4 | high2 << 4) - 32) * (float)(q2 - (hbit ? 0 : 4));
}

static void k4_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    *sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
    *m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
}

static int k4_low4(const uint8_t *qs, int e) {
    int c = e / 64, w = e % 64;
    return (qs[32 * c + w % 32] >> (4 * (w / 32))) & 15;
}

static float ref_q4_k(const uint8_t *b, int e) {
    int sc, m;
    k4_scale_min(b + 4, e / 32, &sc, &m);
    return f16(b) * (float)sc * (float)k4_low4(b + 16, e) - f16(b + 2) * (float)m;
}

static float ref_q5_k(const uint8_t *b, int e) {
    int sc, m, q = k4_low4(b + 48, e) + 16 * ((b[16 + e % 32] >> (e / 32)) & 1);
    k4_scale_min(b + 4, e / 32, &sc, &m);
    return f16(b) * (float)sc * (float)q - f16(b + 2) * (float)m;
}

static float ref_q6_k(const uint8_t *b, int e) {
    int h = e / 128, w = e % 128, k = w / 32, l = w % 32;
    int low4 = (b[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
    int high2 = (b[128 + 32 * h + l] >> (2 * k)) & 3;
    return f16(b + 208) * (float)(int8_t)b[192 + e / 16] * (float)((low4 | high2 << 4) - 32);
}

typedef struct {
    uint32_t type;
    int elems, bytes;
    float (*ref)(const uint8_t *block, int e);
    int f16_at[2]; /* byte offsets of the f16 scale fields (-1: none) */
} quant;

static const quant QUANTS[] = {
    {2, 32, 18, ref_q4_0, {0, -1}},      {3, 32, 20, ref_q4_1, {0, 2}},
    {6, 32, 22, ref_q5_0, {0, -1}},      {7, 32, 24, ref_q5_1, {0, 2}},
    {8, 32, 34, ref_q8_0, {0, -1}},      {10, 256, 84, ref_q2_k, {80, 82}},
    {11, 256, 110, ref_q3_k, {108, -1}}, {12, 256, 144, ref_q4_k, {0, 2}},
    {13, 256, 176, ref_q5_k, {0, 2}},    {14, 256, 210, ref_q6_k, {208, -1}},
};
#define N_QUANTS (int)(sizeof QUANTS / sizeof QUANTS[0])

/* gemmac's name of a GGUF type: "q4_k" for Q4_K. */
static const char *lower_name(uint32_t type) {
    static char buf[16];
    const char *n = gguf_type_name(type);
    size_t i = 0;
    for (; n[i] && i + 1 < sizeof buf; i++) buf[i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] - 'A' + 'a' : n[i]);
    buf[i] = 0;
    return buf;
}

static const quant *quant_of(uint32_t type) {
    for (int i = 0; i < N_QUANTS; i++)
        if (QUANTS[i].type == type) return &QUANTS[i];
    return NULL;
}

static uint32_t next_random(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void set_f16(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* n random blocks of q whose f16 fields are finite values of either sign
 * between 2^-10 and 2^5. */
static uint8_t *random_blocks(const quant *q, int n, uint32_t *seed) {
    uint8_t *b = malloc((size_t)(n * q->bytes));
    for (int i = 0; i < n * q->bytes; i++) b[i] = (uint8_t)next_random(seed);
    for (int i = 0; i < n; i++)
        for (int f = 0; f < 2; f++)
            if (q->f16_at[f] >= 0) {
                uint32_t r = next_random(seed);
                set_f16(b + i * q->bytes + q->f16_at[f], (uint16_t)((r & 0x83ff) | (5 + r % 15) << 10));
            }
    return b;
}

/* gguf_dequantize of n blocks matches the per-element formula everywhere. */
static void expect_formula(const quant *q, const uint8_t *blocks, int n) {
    float *y = malloc((size_t)(n * q->elems) * sizeof *y);
    CU_ASSERT_EQUAL_FATAL(gguf_dequantize(q->type, blocks, y, (int64_t)n * q->elems), 0);
    int bad = 0;
    for (int i = 0; i < n; i++)
        for (int e = 0; e < q->elems; e++) {
            float want = q->ref(blocks + i * q->bytes, e), got = y[i * q->elems + e];
            if (!close_to(got, want) && !bad++)
                printf("\n  %s block %d element %d: got %g, formula %g\n", gguf_type_name(q->type), i, e, got, want);
        }
    CU_ASSERT_EQUAL(bad, 0);
    free(y);
}

/* ---- metadata ---- */

static const char *const WORDS[] = {"<pad>", "", "héllo wörld", "▁the"};

static kvs every_value_type(void) {
    kvs k = {0};
    put_u8(kv(&k, "t.u8", GGUF_T_UINT8), 200);
    put_u8(kv(&k, "t.i8", GGUF_T_INT8), (uint8_t)-100);
    put_u16(kv(&k, "t.u16", GGUF_T_UINT16), 60000);
    put_u16(kv(&k, "t.i16", GGUF_T_INT16), (uint16_t)-30000);
    put_u32(kv(&k, "t.u32", GGUF_T_UINT32), 4000000000u);
    put_u32(kv(&k, "t.i32", GGUF_T_INT32), (uint32_t)-2000000000);
    put_f32(kv(&k, "t.f32", GGUF_T_FLOAT32), 1e-6f);
    put_u8(kv(&k, "t.bool", GGUF_T_BOOL), 1);
    put_str(kv(&k, "general.architecture", GGUF_T_STRING), "gemma3");
    put_u64(kv(&k, "t.u64", GGUF_T_UINT64), 1ull << 40);
    put_u64(kv(&k, "t.u64big", GGUF_T_UINT64), UINT64_MAX);
    put_u64(kv(&k, "t.i64", GGUF_T_INT64), (uint64_t)-(1ll << 50));
    put_f64(kv(&k, "t.f64", GGUF_T_FLOAT64), -2.5e300);
    bytes *b = kv_array(&k, "tokenizer.ggml.tokens", GGUF_T_STRING, 4);
    for (int i = 0; i < 4; i++) put_str(b, WORDS[i]);
    b = kv_array(&k, "tokenizer.ggml.scores", GGUF_T_FLOAT32, 3);
    put_f32(b, -1000);
    put_f32(b, 0.5f);
    put_f32(b, -3.25f);
    b = kv_array(&k, "t.i16s", GGUF_T_INT16, 2);
    put_u16(b, (uint16_t)-7);
    put_u16(b, 7);
    b = kv_array(&k, "t.bools", GGUF_T_BOOL, 3);
    put_u8(b, 0);
    put_u8(b, 1);
    put_u8(b, 1);
    kv_array(&k, "t.empty", GGUF_T_UINT32, 0);
    put_u32(kv(&k, "general.alignment", GGUF_T_UINT32), 64);
    return k;
}

static void test_metadata(void) {
    kvs k = every_value_type();
    const float w[6] = {1, 2, 3, 4, 5, 6};
    wtensor t = {"w", 2, {3, 2}, 0, w, sizeof w, 0, 0};
    layout l;
    bytes b = build(3, &k, &t, 1, 64, &l);
    save("meta.gguf", b.p, b.n);
    gguf_file *g = open_ok("meta.gguf");
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_STRING_EQUAL(gguf_path(g), in_dir("meta.gguf"));
    CU_ASSERT_EQUAL(gguf_kv_count(g), (int)k.n);
    CU_ASSERT_STRING_EQUAL(gguf_kv_at(g, 0)->key, "t.u8");
    CU_ASSERT_STRING_EQUAL(gguf_kv_at(g, (int)k.n - 1)->key, "general.alignment");
    CU_ASSERT_PTR_NULL(gguf_kv_at(g, -1));
    CU_ASSERT_PTR_NULL(gguf_kv_at(g, (int)k.n));
    for (int i = 0; i < gguf_kv_count(g); i++) CU_ASSERT_PTR_EQUAL(gguf_find(g, gguf_kv_at(g, i)->key), gguf_kv_at(g, i));
    CU_ASSERT_PTR_NULL(gguf_find(g, "t.nope"));
    CU_ASSERT_PTR_NULL(gguf_find(g, "t"));

    /* Integers of every width. */
    static const struct {
        const char *key;
        int64_t want;
    } ints[] = {{"t.u8", 200},           {"t.i8", -100},          {"t.u16", 60000},
                {"t.i16", -30000},       {"t.u32", 4000000000ll}, {"t.i32", -2000000000},
                {"t.u64", 1ll << 40},    {"t.i64", -(1ll << 50)}, {"general.alignment", 64}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = 0;
        CU_ASSERT_EQUAL(gguf_get_int(g, ints[i].key, &v, NULL), 0);
        CU_ASSERT_EQUAL(v, ints[i].want);
        double d = 0;
        CU_ASSERT_EQUAL(gguf_get_float(g, ints[i].key, &d, NULL), 0);
        CU_ASSERT_EQUAL(d, (double)ints[i].want);
    }
    const gguf_kv *u8 = gguf_find(g, "t.u8");
    CU_ASSERT(u8->type == GGUF_T_UINT8 && u8->count == 1 && *(const uint8_t *)u8->data == 200);

    /* Floats, bool, string. */
    double d = 0;
    CU_ASSERT_EQUAL(gguf_get_float(g, "t.f32", &d, NULL), 0);
    CU_ASSERT_EQUAL(d, (double)1e-6f);
    CU_ASSERT_EQUAL(gguf_get_float(g, "t.f64", &d, NULL), 0);
    CU_ASSERT_EQUAL(d, -2.5e300);
    const gguf_kv *flag = gguf_find(g, "t.bool");
    CU_ASSERT(flag && flag->type == GGUF_T_BOOL && gguf_array_number(flag, 0) == 1);
    char *s = NULL;
    CU_ASSERT_EQUAL(gguf_get_string(g, "general.architecture", &s, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s, "gemma3");
    free(s);

    /* Arrays. */
    const gguf_kv *tok = gguf_find(g, "tokenizer.ggml.tokens");
    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    CU_ASSERT(tok->type == GGUF_T_ARRAY && tok->elem_type == GGUF_T_STRING && tok->count == 4);
    for (int i = 0; i < 4; i++) {
        char *word = gguf_array_string(tok, (uint64_t)i);
        CU_ASSERT_STRING_EQUAL(word, WORDS[i]);
        free(word);
    }
    CU_ASSERT_PTR_NULL(gguf_array_string(tok, 4));
    CU_ASSERT(isnan(gguf_array_number(tok, 0)));
    const gguf_kv *scores = gguf_find(g, "tokenizer.ggml.scores");
    CU_ASSERT(scores && scores->elem_type == GGUF_T_FLOAT32 && scores->count == 3);
    CU_ASSERT_EQUAL(gguf_array_number(scores, 0), -1000);
    CU_ASSERT_EQUAL(gguf_array_number(scores, 1), 0.5);
    CU_ASSERT_EQUAL(gguf_array_number(scores, 2), -3.25);
    CU_ASSERT(isnan(gguf_array_number(scores, 3)));
    CU_ASSERT_PTR_NULL(gguf_array_string(scores, 0));
    const gguf_kv *i16s = gguf_find(g, "t.i16s"), *bools = gguf_find(g, "t.bools"), *empty = gguf_find(g, "t.empty");
    CU_ASSERT(gguf_array_number(i16s, 0) == -7 && gguf_array_number(i16s, 1) == 7);
    CU_ASSERT(gguf_array_number(bools, 0) == 0 && gguf_array_number(bools, 2) == 1);
    CU_ASSERT(empty && empty->type == GGUF_T_ARRAY && empty->elem_type == GGUF_T_UINT32 && empty->count == 0);
    CU_ASSERT(isnan(gguf_array_number(empty, 0)));

    /* Getter failures name the file and key. */
    gm_err e = {{0}};
    int64_t v;
    CU_ASSERT_EQUAL(gguf_get_int(g, "t.u64big", &v, &e), -1);
    CU_ASSERT(strstr(e.msg, "meta.gguf") && strstr(e.msg, "t.u64big") && strstr(e.msg, "does not fit"));
    CU_ASSERT_EQUAL(gguf_get_int(g, "t.f32", &v, &e), -1);
    CU_ASSERT(strstr(e.msg, "t.f32") && strstr(e.msg, "float32") && strstr(e.msg, "integer"));
    CU_ASSERT_EQUAL(gguf_get_int(g, "t.missing", &v, &e), -1);
    CU_ASSERT(strstr(e.msg, "meta.gguf") && strstr(e.msg, "t.missing") && strstr(e.msg, "absent"));
    CU_ASSERT_EQUAL(gguf_get_string(g, "t.u32", &s, &e), -1);
    CU_ASSERT(strstr(e.msg, "t.u32") && strstr(e.msg, "uint32") && strstr(e.msg, "string"));
    CU_ASSERT_EQUAL(gguf_get_float(g, "general.architecture", &d, &e), -1);
    CU_ASSERT(strstr(e.msg, "general.architecture") && strstr(e.msg, "string"));
    CU_ASSERT_EQUAL(gguf_get_int(g, "t.i16s", &v, &e), -1);
    CU_ASSERT(strstr(e.msg, "t.i16s") && strstr(e.msg, "array"));
    CU_ASSERT_EQUAL(gguf_get_float(g, "t.bool", &d, &e), -1);
    CU_ASSERT(strstr(e.msg, "t.bool") && strstr(e.msg, "bool"));

    /* The tensor sits at the 64-byte alignment the file asks for. */
    const gguf_tensor *t0 = gguf_find_tensor(g, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t0);
    CU_ASSERT_EQUAL(l.data % 64, 0);
    CU_ASSERT_EQUAL((uintptr_t)t0->data % 64, 0);
    CU_ASSERT_EQUAL(memcmp(t0->data, w, sizeof w), 0);
    gguf_close(g);

    /* Version 2 reads the same. */
    patch_u32(&b, 4, 2);
    save("v2.gguf", b.p, b.n);
    g = open_ok("v2.gguf");
    CU_ASSERT_PTR_NOT_NULL(g);
    CU_ASSERT_EQUAL(gguf_kv_count(g), (int)k.n);
    gguf_close(g);
    free(b.p);
    free(k.b.p);
}

/* ---- float tensors and gguf_weights ---- */

static uint16_t f16_bits(float f) { /* exact for the values used here */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = u >> 31, exp = (u >> 23) & 255, man = u & 0x7fffff;
    return f == 0 ? (uint16_t)(sign << 15) : (uint16_t)(sign << 15 | (exp - 112) << 10 | man >> 13);
}

static void test_float_tensors(void) {
    const float f32[24] = {0, 1, -2, 3.5f, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, -1e9f};
    const float half[6] = {1, -2, 0.5f, 49152, 0.25f, -0.125f}; /* exact in f16 and bf16 */
    uint16_t f16v[6], bf16v[6];
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, &half[i], 4);
        f16v[i] = f16_bits(half[i]);
        bf16v[i] = (uint16_t)(u >> 16);
    }
    wtensor ts[] = {
        {"blk.0.attn_q.weight", 2, {4, 6}, 0, f32, sizeof f32, 0, 0},
        {"h", 1, {6}, 1, f16v, sizeof f16v, 0, 0},
        {"b", 3, {3, 2, 1}, 30, bf16v, sizeof bf16v, 0, 0},
        {"cube", 4, {2, 3, 2, 2}, 0, f32, sizeof f32, 0, 0},
        {"nothing", 2, {0, 3}, 8, NULL, 0, 0, 0},
    };
    save_file("float.gguf", 3, NULL, ts, 5);
    gguf_file *g = open_ok("float.gguf");
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_EQUAL(gguf_kv_count(g), 0);
    CU_ASSERT_EQUAL(gguf_tensor_count(g), 5);
    const gguf_tensor *q = gguf_tensor_at(g, 0);
    CU_ASSERT_STRING_EQUAL(q->name, "blk.0.attn_q.weight");
    CU_ASSERT(q->ggml_type == 0 && q->ndim == 2 && q->ne[0] == 4 && q->ne[1] == 6 && q->ne[2] == 1 && q->ne[3] == 1);
    CU_ASSERT_EQUAL(q->nbytes, sizeof f32);
    CU_ASSERT_PTR_EQUAL(gguf_find_tensor(g, "cube"), gguf_tensor_at(g, 3));
    CU_ASSERT_PTR_NULL(gguf_find_tensor(g, "cub"));
    CU_ASSERT_PTR_NULL(gguf_tensor_at(g, 5));
    CU_ASSERT_EQUAL(gguf_tensor_at(g, 4)->nbytes, 0);
    /* No general.alignment: 32-byte alignment, tensors packed in file order. */
    CU_ASSERT_EQUAL((uintptr_t)q->data % 32, 0);
    CU_ASSERT_EQUAL((const uint8_t *)gguf_tensor_at(g, 1)->data - (const uint8_t *)q->data, 96);
    CU_ASSERT_EQUAL((const uint8_t *)gguf_tensor_at(g, 2)->data - (const uint8_t *)q->data, 128);

    gm_err e = {{0}};
    gm_weights *a = gguf_weights(g, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(weights_count(a), 5);
    const gm_tensor *sq = weights_find(a, "blk.0.attn_q.weight"), *sh = weights_find(a, "h"), *sb = weights_find(a, "b");
    const gm_tensor *sc = weights_find(a, "cube"), *sn = weights_find(a, "nothing");
    CU_ASSERT_FATAL(sq && sh && sb && sc && sn);
    CU_ASSERT(sq->dtype == GM_F32 && sq->ndim == 2 && sq->shape[0] == 6 && sq->shape[1] == 4);
    CU_ASSERT_PTR_EQUAL(sq->data, q->data);
    CU_ASSERT_STRING_EQUAL(sq->file, in_dir("float.gguf"));
    CU_ASSERT(sh->dtype == GM_F16 && sh->ndim == 1 && sh->shape[0] == 6 && sh->nbytes == 12);
    CU_ASSERT(sb->dtype == GM_BF16 && sb->ndim == 3 && sb->shape[0] == 1 && sb->shape[1] == 2 && sb->shape[2] == 3);
    CU_ASSERT(sc->ndim == 4 && sc->shape[0] == 2 && sc->shape[1] == 2 && sc->shape[2] == 3 && sc->shape[3] == 2);
    CU_ASSERT(sn->dtype == GM_Q8_0 && sn->ndim == 2 && sn->shape[0] == 3 && sn->shape[1] == 0 && sn->nbytes == 0);
    float got[6];
    gm_to_f32(sh->dtype, sh->data, got, 6);
    for (int i = 0; i < 6; i++) CU_ASSERT_EQUAL(got[i], half[i]);
    gm_to_f32(sb->dtype, sb->data, got, 6);
    for (int i = 0; i < 6; i++) CU_ASSERT_EQUAL(got[i], half[i]);
    /* gguf_dequantize reads float types too. */
    CU_ASSERT_EQUAL(gguf_dequantize(1, sh->data, got, 6), 0);
    for (int i = 0; i < 6; i++) CU_ASSERT_EQUAL(got[i], half[i]);
    CU_ASSERT_EQUAL(gguf_dequantize(30, sb->data, got, 6), 0);
    for (int i = 0; i < 6; i++) CU_ASSERT_EQUAL(got[i], half[i]);
    float all[24];
    CU_ASSERT_EQUAL(gguf_dequantize(0, sq->data, all, 24), 0);
    CU_ASSERT_EQUAL(memcmp(all, f32, sizeof f32), 0);
    weights_close(a);
    gguf_close(g);
}

/* ---- dequantization ---- */

/* Format notes 3.1: element 230 of a Q4_K block is 3.140625. */
static void test_worked_q4_k(void) {
    uint8_t b[144] = {0};
    set_f16(b, 0x2000);     /* d = 2^-7 */
    set_f16(b + 2, 0x2400); /* dmin = 2^-6 */
    b[7] = 0x85;            /* s[3]: sc3 = 5, high bits of sc7 = 2 */
    b[11] = 0x4a;           /* s[7]: m3 = 10, high bits of m7 = 1 */
    b[15] = 0x3c;           /* s[11]: sc7 low 12, m7 low 3 */
    b[118] = 0xa7;          /* qs[102] */
    float y[256];
    CU_ASSERT_EQUAL_FATAL(gguf_dequantize(12, b, y, 256), 0);
    CU_ASSERT_EQUAL(y[230], 3.140625f);
    CU_ASSERT_EQUAL(y[198], 0.0f);         /* low nibble 7, sub-block 6: scale 0, min 0 */
    CU_ASSERT_EQUAL(y[224], -0.296875f);   /* q 0 in sub-block 7: -dmin * 19 */
    CU_ASSERT_EQUAL(y[255], -0.296875f);
    CU_ASSERT_EQUAL(y[96], -0.15625f);     /* sub-block 3: -dmin * 10 */
    CU_ASSERT_EQUAL(y[0], 0.0f);
    expect_formula(quant_of(12), b, 1);
}

/* Format notes 3.2: element 165 of a Q6_K block is -1.171875. */
static void test_worked_q6_k(void) {
    uint8_t b[210] = {0};
    b[101] = 0x3e;          /* ql[101] */
    b[165] = 0x2c;          /* qh[37] */
    b[202] = 0xf6;          /* scales[10] = -10 */
    set_f16(b + 208, 0x1c00); /* d = 2^-8 */
    float y[256];
    CU_ASSERT_EQUAL_FATAL(gguf_dequantize(14, b, y, 256), 0);
    CU_ASSERT_EQUAL(y[165], -1.171875f);
    CU_ASSERT_EQUAL(y[160], 1.25f);        /* q = -32 in sub-block 10: 2^-8 * -10 * -32 */
    CU_ASSERT_EQUAL(y[175], 1.25f);
    CU_ASSERT_EQUAL(y[229], 0.0f);         /* shares ql[101], scale 0 */
    CU_ASSERT_EQUAL(y[133], 0.0f);
    expect_formula(quant_of(14), b, 1);
}

/* Format notes 3.3: Q4_0 elements 3 and 19 share byte qs[3]. */
static void test_worked_q4_0(void) {
    uint8_t b[18] = {0};
    set_f16(b, 0x3c00);
    b[5] = 0x2f;
    float y[32];
    CU_ASSERT_EQUAL_FATAL(gguf_dequantize(2, b, y, 32), 0);
    CU_ASSERT_EQUAL(y[3], 7.0f);
    CU_ASSERT_EQUAL(y[19], -6.0f);
    CU_ASSERT_EQUAL(y[0], -8.0f);
    CU_ASSERT_EQUAL(y[31], -8.0f);
}

/* Random blocks of every type against the per-element formulas. */
static void test_random_blocks(void) {
    uint32_t seed = 0x9e3779b9u;
    for (int i = 0; i < N_QUANTS; i++) {
        uint8_t *b = random_blocks(&QUANTS[i], 40, &seed);
        expect_formula(&QUANTS[i], b, 40);
        free(b);
    }
}

/* Hand-computed constant blocks, ramps and scale/min extremes. */
static void test_block_extremes(void) {
    float y[256];
    /* Q8_0 ramp: qs[j] = j - 16 with d = 0.5. */
    uint8_t q8[34];
    set_f16(q8, 0x3800);
    for (int j = 0; j < 32; j++) q8[2 + j] = (uint8_t)(j - 16);
    q8[2] = 0x80; /* -128 */
    q8[3] = 0x7f; /* 127 */
    CU_ASSERT_EQUAL(gguf_dequantize(8, q8, y, 32), 0);
    CU_ASSERT(y[0] == -64 && y[1] == 63.5f && y[2] == -7 && y[16] == 0 && y[31] == 7.5f);

    /* Q4_K, all scales and mins 63, all quants 15: d*63*15 - dmin*63. */
    uint8_t q4k[144];
    memset(q4k, 0xff, sizeof q4k);
    set_f16(q4k, 0x3c00);     /* d = 1 */
    set_f16(q4k + 2, 0x3800); /* dmin = 0.5 */
    CU_ASSERT_EQUAL(gguf_dequantize(12, q4k, y, 256), 0);
    for (int e = 0; e < 256; e++) CU_ASSERT_EQUAL(y[e], 945.0f - 31.5f);
    /* Same with all quants 0: -dmin*63 everywhere. */
    memset(q4k + 16, 0, 128);
    CU_ASSERT_EQUAL(gguf_dequantize(12, q4k, y, 256), 0);
    for (int e = 0; e < 256; e++) CU_ASSERT_EQUAL(y[e], -31.5f);

    /* Q5_K, scales 63, mins 0, quants all 31: 63*31 with d = 1. */
    uint8_t q5k[176];
    memset(q5k, 0xff, sizeof q5k);
    set_f16(q5k, 0x3c00);
    set_f16(q5k + 2, 0);
    memset(q5k + 4, 0, 12);
    for (int j = 0; j < 4; j++) q5k[4 + j] = 63;        /* sc0..3 = 63, m0..3 = 0 */
    for (int j = 8; j < 12; j++) q5k[4 + j] = 0x0f;      /* sc4..7 low bits 15, m4..7 = 0 */
    for (int j = 0; j < 4; j++) q5k[4 + j] |= 0xc0;      /* sc4..7 high bits 3 → 63 */
    CU_ASSERT_EQUAL(gguf_dequantize(13, q5k, y, 256), 0);
    for (int e = 0; e < 256; e++) CU_ASSERT_EQUAL(y[e], 63.0f * 31);
    expect_formula(quant_of(13), q5k, 1);

    /* Q6_K: scales -128, quants ramp through -32..31 in each sub-block pair. */
    uint8_t q6k[210] = {0};
    memset(q6k + 192, 0x80, 16);
    set_f16(q6k + 208, 0x3c00);
    CU_ASSERT_EQUAL(gguf_dequantize(14, q6k, y, 256), 0);
    for (int e = 0; e < 256; e++) CU_ASSERT_EQUAL(y[e], -128.0f * -32);
    memset(q6k, 0xff, 192); /* q = 63 - 32 = 31 */
    CU_ASSERT_EQUAL(gguf_dequantize(14, q6k, y, 256), 0);
    for (int e = 0; e < 256; e++) CU_ASSERT_EQUAL(y[e], -128.0f * 31);

    /* Q5_0 with only the fifth bits set: (16 - 16) * d = 0; with none: -16 d. */
    uint8_t q5[22] = {0};
    set_f16(q5, 0x4000); /* d = 2 */
    memset(q5 + 2, 0xff, 4);
    CU_ASSERT_EQUAL(gguf_dequantize(6, q5, y, 32), 0);
    for (int e = 0; e < 32; e++) CU_ASSERT_EQUAL(y[e], 0.0f);
    memset(q5 + 2, 0, 4);
    for (int j = 0; j < 16; j++) q5[6 + j] = (uint8_t)(j | (15 - j) << 4);
    CU_ASSERT_EQUAL(gguf_dequantize(6, q5, y, 32), 0);
    for (int e = 0; e < 16; e++) CU_ASSERT(y[e] == 2.0f * (e - 16) && y[e + 16] == 2.0f * (15 - e - 16));

    /* Q3_K: all scales decode to -32 (bytes 0), high bits clear: q = q2 - 4. */
    uint8_t q3k[110] = {0};
    set_f16(q3k + 108, 0x3c00);
    memset(q3k + 32, 0x1b, 64); /* 2-bit fields 3, 2, 1, 0 from low to high */
    CU_ASSERT_EQUAL(gguf_dequantize(11, q3k, y, 256), 0);
    for (int e = 0; e < 256; e++) CU_ASSERT_EQUAL(y[e], -32.0f * (float)(((0x1b >> (2 * ((e % 128) / 32))) & 3) - 4));

    /* Q2_K: scale 15 / min 15 in every sub-block, quants 3: 15*3*d - 15*dmin. */
    uint8_t q2k[84];
    memset(q2k, 0xff, 80);
    set_f16(q2k + 80, 0x3c00);
    set_f16(q2k + 82, 0x4000);
    CU_ASSERT_EQUAL(gguf_dequantize(10, q2k, y, 256), 0);
    for (int e = 0; e < 256; e++) CU_ASSERT_EQUAL(y[e], 45.0f - 30.0f);

    /* Q4_1 adds its min. */
    uint8_t q41[20] = {0};
    set_f16(q41, 0x3c00);
    set_f16(q41 + 2, 0xbc00); /* m = -1 */
    q41[4] = 0xf3;
    CU_ASSERT_EQUAL(gguf_dequantize(3, q41, y, 32), 0);
    CU_ASSERT(y[0] == 2 && y[16] == 14 && y[1] == -1);
}

static void test_dequantize_refuses(void) {
    uint8_t b[256] = {0};
    float y[256];
    CU_ASSERT_EQUAL(gguf_dequantize(99, b, y, 32), -1);
    CU_ASSERT_EQUAL(gguf_dequantize(16, b, y, 256), -1); /* IQ2_XXS */
    CU_ASSERT_EQUAL(gguf_dequantize(4, b, y, 32), -1);   /* removed Q4_2 */
    CU_ASSERT_EQUAL(gguf_dequantize(12, b, y, 100), -1); /* not whole blocks */
    CU_ASSERT_EQUAL(gguf_dequantize(8, b, y, -32), -1);
    CU_ASSERT_EQUAL(gguf_dequantize(8, b, y, 0), 0);
    CU_ASSERT_STRING_EQUAL(gguf_type_name(12), "Q4_K");
    CU_ASSERT_STRING_EQUAL(gguf_type_name(30), "BF16");
    CU_ASSERT_STRING_EQUAL(gguf_type_name(16), "IQ2_XXS");
    CU_ASSERT_STRING_EQUAL(gguf_type_name(99), "unknown");
}

/* A file of quantized tensors: gguf_weights keeps the block formats that
 * kernels read as stored (the mapping itself, their dtype), and gm_to_f32
 * (runtime/quant.c) decodes them to the formula's values; Q2_K and Q3_K
 * become owned f32 buffers holding the formula's values, rows and all, a
 * tensor above a million elements decoded in several chunks. */
static void test_quantized_weights(void) {
    uint32_t seed = 12345;
    static const uint32_t types[] = {8, 2, 3, 6, 7, 10, 11, 12, 13, 14};
    enum { N = sizeof types / sizeof types[0] };
    wtensor ts[N + 1];
    uint8_t *data[N + 1];
    char names[N][32];
    for (int i = 0; i < N; i++) {
        const quant *q = quant_of(types[i]);
        int cols = 2 * 256, rows = 3, blocks = cols / q->elems * rows;
        data[i] = random_blocks(q, blocks, &seed);
        snprintf(names[i], sizeof names[i], "blk.%d.%s", i, gguf_type_name(types[i]));
        ts[i] = (wtensor){names[i], 2, {(uint64_t)cols, (uint64_t)rows}, types[i], data[i],
                          (size_t)(blocks * q->bytes), 0, 0};
    }
    const quant *q8 = quant_of(8);
    int big_blocks = 1024 / 32 * 1100;
    data[N] = random_blocks(q8, big_blocks, &seed);
    ts[N] = (wtensor){"token_embd.weight", 2, {1024, 1100}, 8, data[N], (size_t)(big_blocks * q8->bytes), 0, 0};
    save_file("quant.gguf", 3, NULL, ts, N + 1);

    gguf_file *g = open_ok("quant.gguf");
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    gm_err e = {{0}};
    gm_weights *a = gguf_weights(g, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    for (int i = 0; i <= N; i++) {
        const quant *q = quant_of(ts[i].type);
        const gguf_tensor *t = gguf_find_tensor(g, ts[i].name);
        const gm_tensor *s = weights_find(a, ts[i].name);
        CU_ASSERT_FATAL(t && s);
        CU_ASSERT_EQUAL(t->nbytes, ts[i].nbytes);
        CU_ASSERT_EQUAL(memcmp(t->data, data[i], ts[i].nbytes), 0);
        int64_t cols = (int64_t)ts[i].ne[0], rows = (int64_t)ts[i].ne[1];
        int expanded = ts[i].type == 10 || ts[i].type == 11; /* Q2_K, Q3_K */
        CU_ASSERT(s->ndim == 2 && s->shape[0] == rows && s->shape[1] == cols);
        CU_ASSERT_EQUAL(s->dtype == GM_F32, expanded);
        if (!expanded) CU_ASSERT_STRING_EQUAL(gm_dtype_name(s->dtype), lower_name(ts[i].type));
        CU_ASSERT_EQUAL(s->nbytes, expanded ? (size_t)(rows * cols) * sizeof(float) : t->nbytes);
        CU_ASSERT_EQUAL(s->data != t->data, expanded); /* an owned buffer, else the mapping */
        float *y = malloc((size_t)(rows * cols) * sizeof(float));
        gm_to_f32(s->dtype, s->data, y, (size_t)(rows * cols));
        int bad = 0;
        for (int64_t k = 0; k < rows * cols; k++) {
            float want = q->ref(data[i] + (k / q->elems) * q->bytes, (int)(k % q->elems));
            if (!close_to(y[k], want) && !bad++)
                printf("\n  %s element %lld: got %g, formula %g\n", ts[i].name, (long long)k, y[k], want);
        }
        CU_ASSERT_EQUAL(bad, 0);
        free(y);
        free(data[i]);
    }
    weights_close(a);
    gguf_close(g);
}

/* weights_from: tensors sorted for lookup; a repeated name refused. */
static void test_archive_from(void) {
    gm_tensor *ts = calloc(3, sizeof *ts);
    float *buf = malloc(8);
    const char *names[] = {"c", "a", "b"};
    for (int i = 0; i < 3; i++) ts[i] = (gm_tensor){.name = strdup(names[i]), .dtype = GM_F32, .ndim = 1, .shape = {2}, .data = buf, .nbytes = 8, .file = "x.gguf"};
    void **owned = malloc(sizeof *owned);
    owned[0] = buf;
    gm_weights *a = weights_from(ts, 3, owned, 1, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_STRING_EQUAL(weights_get(a, 0)->name, "a");
    CU_ASSERT_PTR_EQUAL(weights_find(a, "c")->data, buf);
    weights_close(a);

    ts = calloc(2, sizeof *ts);
    for (int i = 0; i < 2; i++) ts[i] = (gm_tensor){.name = strdup("w"), .dtype = GM_F32, .file = "x.gguf"};
    gm_err e = {{0}};
    CU_ASSERT_PTR_NULL(weights_from(ts, 2, calloc(1, sizeof(void *)), 0, &e));
    CU_ASSERT(strstr(e.msg, "x.gguf") && strstr(e.msg, "tensor w") && strstr(e.msg, "twice"));
}

/* ---- malformed files ---- */

/* A valid file of two keys and two tensors, with its layout. */
static bytes good_file(layout *l) {
    static const float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    kvs k = {0};
    put_str(kv(&k, "general.architecture", GGUF_T_STRING), "gemma3");
    put_u32(kv(&k, "gemma3.block_count", GGUF_T_UINT32), 18);
    wtensor ts[] = {{"a.weight", 1, {8}, 0, w, 32, 0, 0}, {"bb.weight", 2, {4, 2}, 0, w, 32, 0, 0}}; /* padding before the data */
    bytes b = build(3, &k, ts, 2, 32, l);
    free(k.b.p);
    return b;
}

static void test_bad_header(void) {
    layout l;
    bytes b = good_file(&l);
    save("good.gguf", b.p, b.n);
    gguf_file *g = open_ok("good.gguf");
    CU_ASSERT_PTR_NOT_NULL(g);
    gguf_close(g);

    save("empty.gguf", b.p, 0);
    expect_fail("empty.gguf", "empty", NULL);
    save("short.gguf", b.p, 10);
    expect_fail("short.gguf", "10 bytes", "truncated", NULL);
    save("magic.gguf", "GGJT\3\0\0\0", 8);
    expect_fail("magic.gguf", "magic", "47 47 4a 54", "not a GGUF file", NULL);
    save("text.gguf", "hello, world, this is text\n", 27);
    expect_fail("text.gguf", "magic", "68 65 6c 6c", NULL);

    patch_u32(&b, 4, 1);
    save("v1.gguf", b.p, b.n);
    expect_fail("v1.gguf", "version 1", "obsolete", NULL);
    patch_u32(&b, 4, 4);
    save("v4.gguf", b.p, b.n);
    expect_fail("v4.gguf", "version 4", "not supported", NULL);
    patch_u32(&b, 4, 0);
    save("v0.gguf", b.p, b.n);
    expect_fail("v0.gguf", "version 0", "not supported", NULL);
    patch_u32(&b, 4, 0x03000000);
    save("swapped.gguf", b.p, b.n);
    expect_fail("swapped.gguf", "0x03000000", "big-endian", NULL);
    patch_u32(&b, 4, 3);

    patch_u64(&b, 8, 1ull << 60);
    save("many-tensors.gguf", b.p, b.n);
    expect_fail("many-tensors.gguf", "claims 1152921504606846976 tensors", "corrupt", NULL);
    patch_u64(&b, 8, 2);
    patch_u64(&b, 16, UINT64_MAX);
    save("many-keys.gguf", b.p, b.n);
    expect_fail("many-keys.gguf", "claims 18446744073709551615 keys", NULL);
    patch_u64(&b, 16, 3); /* one key more than written: the tensor infos read as a key */
    save("extra-key.gguf", b.p, b.n);
    expect_fail("extra-key.gguf", "tensor info #0", NULL);
    patch_u64(&b, 16, 2);
    free(b.p);
}

static void test_truncated(void) {
    layout l;
    bytes b = good_file(&l);
    CU_ASSERT_FATAL(l.data > l.infos_end);
    save("cut-count.gguf", b.p, 24 + 3);
    expect_fail("cut-count.gguf", "claims 2 keys", "truncated", NULL);
    save("cut-key.gguf", b.p, 24 + 46 + 5); /* in the second key's name length */
    expect_fail("cut-key.gguf", "key #1", "past the end of the file", "truncated", NULL);
    save("cut-value.gguf", b.p, 24 + 8 + 20 + 4 + 8 + 2); /* in the value of general.architecture */
    expect_fail("cut-value.gguf", "key general.architecture", "past the end of the file", NULL);
    save("cut-info.gguf", b.p, l.infos + 5);
    expect_fail("cut-info.gguf", "claims 2 tensors", "truncated", NULL);
    save("cut-info2.gguf", b.p, l.infos + 40 + 8 + 9 + 4 + 8 + 3); /* in bb.weight's second dimension */
    expect_fail("cut-info2.gguf", "tensor bb.weight", "dimension", "past the end of the file", "truncated", NULL);
    save("cut-pad.gguf", b.p, l.data - 1);
    expect_fail("cut-pad.gguf", "data section", "past the end of the file", NULL);
    save("cut-data.gguf", b.p, l.data + 40);
    expect_fail("cut-data.gguf", "tensor bb.weight", "past the end of the data section", "truncated", NULL);
    free(b.p);
}

static void test_bad_keys(void) {
    kvs k;
    /* Key length far past the end. */
    k = (kvs){0};
    put_u64(&k.b, 1ull << 62);
    put_u64(&k.b, 0);
    put_u64(&k.b, 0);
    k.n = 1;
    save_file("keylen.gguf", 3, &k, NULL, 0);
    expect_fail("keylen.gguf", "key #0", "length 4611686018427387904", "past the end of the file", NULL);
    free(k.b.p);
    /* String value length past the end. */
    k = (kvs){0};
    put_u64(kv(&k, "general.name", GGUF_T_STRING), 1000);
    save_file("strlen.gguf", 3, &k, NULL, 0);
    expect_fail("strlen.gguf", "key general.name", "length 1000", "past the end of the file", NULL);
    free(k.b.p);
    /* An array whose count cannot fit. */
    k = (kvs){0};
    kv_array(&k, "tokenizer.ggml.scores", GGUF_T_FLOAT32, 1ull << 62);
    save_file("arrlen.gguf", 3, &k, NULL, 0);
    expect_fail("arrlen.gguf", "key tokenizer.ggml.scores", "4611686018427387904 values", "past the end", NULL);
    free(k.b.p);
    k = (kvs){0};
    put_str(kv_array(&k, "tokenizer.ggml.tokens", GGUF_T_STRING, UINT64_MAX), "a");
    save_file("strarr.gguf", 3, &k, NULL, 0);
    expect_fail("strarr.gguf", "key tokenizer.ggml.tokens", "strings cannot fit", NULL);
    free(k.b.p);
    /* A string inside an array running off the end. */
    k = (kvs){0};
    bytes *b = kv_array(&k, "tokenizer.ggml.tokens", GGUF_T_STRING, 2);
    put_str(b, "ok");
    put_u64(b, 99);
    save_file("strarr2.gguf", 3, &k, NULL, 0);
    expect_fail("strarr2.gguf", "key tokenizer.ggml.tokens", "length 99", "past the end of the file", NULL);
    free(k.b.p);
    /* Unknown value type, nested array, bad bool. */
    k = (kvs){0};
    put_u32(kv(&k, "general.odd", 13), 0);
    save_file("vtype.gguf", 3, &k, NULL, 0);
    expect_fail("vtype.gguf", "key general.odd", "value type 13 is unknown", NULL);
    free(k.b.p);
    k = (kvs){0};
    b = kv_array(&k, "general.nest", GGUF_T_ARRAY, 1);
    put_u32(b, GGUF_T_UINT8);
    put_u64(b, 1);
    put_u8(b, 1);
    save_file("nested.gguf", 3, &k, NULL, 0);
    expect_fail("nested.gguf", "key general.nest", "array of arrays", NULL);
    free(k.b.p);
    k = (kvs){0};
    put_u8(kv(&k, "tokenizer.ggml.add_bos_token", GGUF_T_BOOL), 2);
    save_file("bool.gguf", 3, &k, NULL, 0);
    expect_fail("bool.gguf", "key tokenizer.ggml.add_bos_token", "bool value 0 is 2", "expected 0 or 1", NULL);
    free(k.b.p);
    k = (kvs){0};
    b = kv_array(&k, "t.flags", GGUF_T_BOOL, 3);
    put_u8(b, 1);
    put_u8(b, 0);
    put_u8(b, 255);
    save_file("bools.gguf", 3, &k, NULL, 0);
    expect_fail("bools.gguf", "key t.flags", "bool value 2 is 255", NULL);
    free(k.b.p);
    /* Empty key, control characters, duplicate key. */
    k = (kvs){0};
    put_u8(kv(&k, "", GGUF_T_UINT8), 1);
    save_file("emptykey.gguf", 3, &k, NULL, 0);
    expect_fail("emptykey.gguf", "key #0", "empty", NULL);
    free(k.b.p);
    k = (kvs){0};
    put_u8(kv(&k, "ok", GGUF_T_UINT8), 1);
    put_u8(kv(&k, "bad\nkey", GGUF_T_UINT8), 1);
    save_file("ctrlkey.gguf", 3, &k, NULL, 0);
    expect_fail("ctrlkey.gguf", "key #1", "control byte 0x0a", NULL);
    free(k.b.p);
    k = (kvs){0};
    put_u32(kv(&k, "gemma3.block_count", GGUF_T_UINT32), 18);
    put_u8(kv(&k, "general.x", GGUF_T_UINT8), 1);
    put_u32(kv(&k, "gemma3.block_count", GGUF_T_UINT32), 26);
    save_file("dupkey.gguf", 3, &k, NULL, 0);
    expect_fail("dupkey.gguf", "key gemma3.block_count", "appears twice", NULL);
    free(k.b.p);
    /* general.alignment of the wrong type or value. */
    k = (kvs){0};
    put_u64(kv(&k, "general.alignment", GGUF_T_UINT64), 32);
    save_file("align-type.gguf", 3, &k, NULL, 0);
    expect_fail("align-type.gguf", "general.alignment", "uint64", "expected uint32", NULL);
    free(k.b.p);
    k = (kvs){0};
    put_u32(kv(&k, "general.alignment", GGUF_T_UINT32), 24);
    save_file("align-24.gguf", 3, &k, NULL, 0);
    expect_fail("align-24.gguf", "general.alignment is 24", "power of two", NULL);
    free(k.b.p);
    k = (kvs){0};
    put_u32(kv(&k, "general.alignment", GGUF_T_UINT32), 0);
    save_file("align-0.gguf", 3, &k, NULL, 0);
    expect_fail("align-0.gguf", "general.alignment is 0", NULL);
    free(k.b.p);
}

/* A one-tensor file whose tensor is `t`, which must fail naming it and `part`. */
static void expect_tensor_fail(const char *file, wtensor t, const char *part) {
    save_file(file, 3, NULL, &t, 1);
    expect_fail(file, t.name, part, NULL);
}

static void test_bad_tensors(void) {
    static uint8_t zeros[4096];
    expect_tensor_fail("ndim0.gguf", (wtensor){"w", 0, {0}, 0, zeros, 0, 0, 0}, "0 dimensions, expected 1 to 4");
    expect_tensor_fail("ndim5.gguf", (wtensor){"w", 5, {1, 1, 1, 1}, 0, zeros, 4, 0, 0}, "5 dimensions");
    expect_tensor_fail("ne-huge.gguf", (wtensor){"w", 1, {1ull << 63}, 0, zeros, 4, 0, 0}, "larger than 2^63-1");
    expect_tensor_fail("ne-overflow.gguf", (wtensor){"w", 2, {1ull << 40, 1ull << 40}, 0, zeros, 4, 0, 0},
                       "overflows 64 bits");
    expect_tensor_fail("ne-overflow2.gguf", (wtensor){"w", 3, {1ull << 30, 1ull << 30, 1ull << 10}, 0, zeros, 4, 0, 0},
                       "overflows 64 bits");
    expect_tensor_fail("type99.gguf", (wtensor){"blk.0.w", 1, {32}, 99, zeros, 34, 0, 0}, "type id 99 is unknown");
    expect_tensor_fail("iq2.gguf", (wtensor){"blk.0.w", 1, {256}, 16, zeros, 66, 0, 0}, "IQ2_XXS (16) is not supported");
    save_file("iq2b.gguf", 3, NULL, &(wtensor){"blk.0.w", 1, {256}, 16, zeros, 66, 0, 0}, 1);
    expect_fail("iq2b.gguf", "supported: F32", "Q4_K", "Q6_K", NULL);
    expect_tensor_fail("removed.gguf", (wtensor){"w", 1, {32}, 4, zeros, 20, 0, 0}, "Q4_2 (removed) (4)");
    expect_tensor_fail("rowlen.gguf", (wtensor){"w", 2, {100, 2}, 12, zeros, 288, 0, 0},
                       "ne[0] = 100 is not a multiple of the Q4_K block size 256");
    expect_tensor_fail("misaligned.gguf", (wtensor){"w", 1, {4}, 0, zeros, 16, 4, 1},
                       "offset 4 is not a multiple of the alignment 32");
    expect_tensor_fail("outside.gguf", (wtensor){"w", 1, {4}, 0, zeros, 16, 1ull << 40, 1}, "past the end of the data section");
    expect_tensor_fail("outside2.gguf", (wtensor){"w", 1, {4}, 0, zeros, 16, UINT64_MAX - 31, 1}, "past the end");
    expect_tensor_fail("emptyname.gguf", (wtensor){"", 1, {4}, 0, zeros, 16, 0, 0}, "tensor info #0");

    /* Two tensors on the same bytes; the same name twice. */
    wtensor two[] = {{"x", 1, {16}, 0, zeros, 64, 0, 0}, {"y", 1, {4}, 0, zeros, 16, 32, 1}};
    save_file("overlap.gguf", 3, NULL, two, 2);
    expect_fail("overlap.gguf", "tensors x [offset 0, +64)", "and y [offset 32, +16)", "overlap", NULL);
    two[1] = (wtensor){"x", 1, {4}, 0, zeros, 16, 0, 0};
    save_file("dupname.gguf", 3, NULL, two, 2);
    expect_fail("dupname.gguf", "tensor x appears twice", NULL);
    /* A zero-size tensor may sit anywhere inside the data section, even on another's bytes. */
    two[1] = (wtensor){"z", 2, {0, 4}, 0, zeros, 0, 0, 1};
    save_file("zero.gguf", 3, NULL, two, 2);
    gguf_file *g = open_ok("zero.gguf");
    CU_ASSERT_PTR_NOT_NULL(g);
    gguf_close(g);

    /* Not a file at all. */
    gm_err e = {{0}};
    CU_ASSERT_PTR_NULL(gguf_open(dir, &e));
    CU_ASSERT(strstr(e.msg, "not a regular file") != NULL);
    CU_ASSERT_PTR_NULL(gguf_open(in_dir("missing.gguf"), &e));
    CU_ASSERT(strstr(e.msg, "missing.gguf") && strstr(e.msg, "cannot open"));
}

static void test_null(void) {
    CU_ASSERT_PTR_NULL(gguf_open("/nonexistent/gemmac/x.gguf", NULL));
    gguf_close(NULL);
    CU_ASSERT_EQUAL(gguf_kv_count(NULL), 0);
    CU_ASSERT_EQUAL(gguf_tensor_count(NULL), 0);
    CU_ASSERT_PTR_NULL(gguf_kv_at(NULL, 0));
    CU_ASSERT_PTR_NULL(gguf_find(NULL, "a"));
    CU_ASSERT_PTR_NULL(gguf_tensor_at(NULL, 0));
    CU_ASSERT_PTR_NULL(gguf_find_tensor(NULL, "a"));
    CU_ASSERT_PTR_NULL(gguf_array_string(NULL, 0));
    CU_ASSERT(isnan(gguf_array_number(NULL, 0)));
    CU_ASSERT_PTR_NULL(gguf_weights(NULL, NULL));
}

int main(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("gguf"));
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("gguf", NULL, NULL);
    CU_add_test(s, "metadata of every type", test_metadata);
    CU_add_test(s, "float tensors and weights", test_float_tensors);
    CU_add_test(s, "worked example Q4_K", test_worked_q4_k);
    CU_add_test(s, "worked example Q6_K", test_worked_q6_k);
    CU_add_test(s, "worked example Q4_0", test_worked_q4_0);
    CU_add_test(s, "random blocks match the formulas", test_random_blocks);
    CU_add_test(s, "constant blocks, ramps, extremes", test_block_extremes);
    CU_add_test(s, "dequantize refuses", test_dequantize_refuses);
    CU_add_test(s, "quantized weights", test_quantized_weights);
    CU_add_test(s, "weights_from", test_archive_from);
    CU_add_test(s, "bad header", test_bad_header);
    CU_add_test(s, "truncated file", test_truncated);
    CU_add_test(s, "bad keys and values", test_bad_keys);
    CU_add_test(s, "bad tensor infos", test_bad_tensors);
    CU_add_test(s, "NULL handles", test_null);
    return test_run_all();
}
