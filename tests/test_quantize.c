/* test_quantize.c — the encoders of runtime/quant.c, the GGUF writer, the type
 * rules of llama-quantize, and `gemmac quantize` end to end.
 *
 * Encoders: every format's bytes for tests/quantize/input.f32 equal, bit for
 * bit, those llama.cpp's own quantizers made (tests/quantize/README.md says
 * how); on 64k random values (normal, uniform, offset) each round trip stays
 * within a stated bound: per element for the 32-element formats (Q8_0
 * 0.57·d, Q4_0/Q5_0 1.01·|d| — the end opposite the extreme can clip by one
 * step —, Q4_1/Q5_1 0.52·d + 2^-10·|m|, d and m the block's f16 scale and
 * min), and as RMS error over RMS value for all (ERR_RMS below: about 1.2×
 * what they give on normal data); encoding what a 32-element format
 * decodes gives back the same bytes (llama.cpp's K quantizers search
 * their scales and are not idempotent, so they are not asked to be);
 * f16/bf16 round to nearest even at ties, overflow and subnormals.
 * Writer: keys of every value type and arrays read back through gguf.c, a
 * replaced key moves to the end, a file of copied pairs is byte-identical,
 * data written in pieces lands at general.alignment, and an unfinished
 * write leaves no file. Rules: the Gemma 3 270M's shapes give the types of
 * llama.cpp's Q4_K_M file (and, when the real file is cached, every one of
 * its 236 tensors; `gemmac quantize` of it to q4_k_m is the same file byte
 * for byte), fallbacks, pure targets, --keep-embedding, an untied head.
 * End to end (the gemmac binary on models/demo and tests/golden): an f32
 * GGUF from an HF checkpoint gives the HF model's logits (|Δ| ≤ 1e-5; 1e-4
 * from BF16), the tokenizer rebuilt from it has the same pieces and ids as
 * tokenizer.model, a q8_0 one stays within 5% RMS of the f32 logits (3.3%
 * observed: the random demo amplifies weight error), a GGUF→GGUF run keeps
 * every key but the two it sets and encodes as gm_quantize does, and bad
 * input is one line and a non-zero exit with no file left behind. */
#include "compiler/model.h"
#include "compiler/quantize.h"
#include "runtime/quant.h"
#include "testing.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *gemmac;
static char dir[4096]; /* where the command-line tests run */

/* ---- encoders ----------------------------------------------------------- */

static const gm_dtype ENCODED[] = {GM_Q8_0, GM_Q4_0, GM_Q4_1, GM_Q5_0, GM_Q5_1, GM_Q4_K, GM_Q5_K, GM_Q6_K, GM_F16, GM_BF16};
#define N_ENCODED (int)(sizeof ENCODED / sizeof ENCODED[0])
/* RMS error / RMS value bounds, in ENCODED's order (normal data gives 0.0054,
 * 0.086, 0.079, 0.043, 0.038, 0.072, 0.036, 0.018, 2.1e-4, 1.7e-3). */
static const double ERR_RMS[] = {0.0065, 0.10, 0.095, 0.052, 0.046, 0.086, 0.044, 0.022, 2.5e-4, 2.0e-3};

#define N_RANDOM (1 << 16)

static uint64_t rng_state;
static double uniform(void) { /* xorshift64, (0, 1) */
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

/* N_RANDOM values: kind 0 normal, 1 uniform in (-1, 1), 2 small and off zero (mostly one-signed blocks). */
static float *random_values(int kind) {
    float *x = gm_malloc(N_RANDOM * sizeof *x);
    rng_state = 88172645463325252ull + (uint64_t)kind;
    for (int i = 0; i < N_RANDOM; i++) {
        double g = sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
        x[i] = (float)(kind == 0 ? g : kind == 1 ? uniform() * 2 - 1 : g * 0.02 + 0.01);
    }
    return x;
}

static void *read_test_file(const char *rel, size_t *len) {
    gm_err e;
    char *p = gm_read_file(test_path(rel), len, &e);
    if (!p) fprintf(stderr, "\n%s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    return p;
}

static void test_golden_bytes(void) {
    size_t len;
    float *x = read_test_file("quantize/input.f32", &len);
    CU_ASSERT_EQUAL_FATAL(len, 1024 * sizeof(float));
    for (int k = 0; k < N_ENCODED; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "quantize/%s.bin", gm_dtype_name(ENCODED[k]));
        size_t n;
        uint8_t *want = read_test_file(rel, &n), *got = gm_malloc(n);
        CU_ASSERT_EQUAL(n, gm_dtype_bytes(ENCODED[k], 1024));
        CU_ASSERT_EQUAL(gm_quantize(ENCODED[k], x, got, 1024), 0);
        size_t first = n;
        for (size_t i = 0; i < n && first == n; i++)
            if (got[i] != want[i]) first = i;
        if (first < n) printf("\n  %s: byte %zu is %02x, llama.cpp's %02x", rel, first, got[first], want[first]);
        CU_ASSERT_EQUAL(first, n);
        free(want), free(got);
    }
    free(x);
}

static float f16_at(const uint8_t *p) { return gm_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* The worst per-element error over its bound, for a 32-element format. */
static double worst_element(gm_dtype t, const float *x, const float *y, const uint8_t *q) {
    double worst = 0;
    for (int i = 0; i < N_RANDOM; i++) {
        const uint8_t *b = q + (size_t)(i / 32) * gm_dtype_size(t);
        double d = fabs(f16_at(b)), bound;
        if (t == GM_Q8_0) bound = 0.57 * d;
        else if (t == GM_Q4_0 || t == GM_Q5_0) bound = 1.01 * d;
        else bound = 0.52 * d + fabs(f16_at(b + 2)) / 1024;
        double r = fabs((double)x[i] - y[i]) / bound;
        if (r > worst) worst = r;
    }
    return worst;
}

static void test_round_trip_bounds(void) {
    for (int kind = 0; kind < 3; kind++) {
        float *x = random_values(kind), *y = gm_malloc(N_RANDOM * sizeof *y);
        uint8_t *q = gm_malloc(N_RANDOM * 4);
        for (int k = 0; k < N_ENCODED; k++) {
            gm_dtype t = ENCODED[k];
            CU_ASSERT_EQUAL_FATAL(gm_quantize(t, x, q, N_RANDOM), 0);
            gm_to_f32(t, q, y, N_RANDOM);
            double e = 0, r = 0;
            for (int i = 0; i < N_RANDOM; i++) e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]), r += (double)x[i] * x[i];
            double rel = sqrt(e / r), worst = gm_dtype_block(t) == 32 ? worst_element(t, x, y, q) : 0;
            if (rel > ERR_RMS[k] || worst > 1)
                printf("\n  %s, data kind %d: RMS error %.4g of RMS (bound %.4g), worst element %.3g of its bound",
                       gm_dtype_name(t), kind, rel, ERR_RMS[k], worst);
            CU_ASSERT(rel <= ERR_RMS[k]);
            CU_ASSERT(worst <= 1);
        }
        free(x), free(y), free(q);
    }
}

static void test_idempotent(void) {
    const gm_dtype blocks32[] = {GM_Q8_0, GM_Q4_0, GM_Q4_1, GM_Q5_0, GM_Q5_1};
    float *x = random_values(0), *y = gm_malloc(N_RANDOM * sizeof *y);
    uint8_t *q = gm_malloc(N_RANDOM * 2), *q2 = gm_malloc(N_RANDOM * 2);
    for (int k = 0; k < 5; k++) {
        size_t n = gm_dtype_bytes(blocks32[k], N_RANDOM);
        gm_quantize(blocks32[k], x, q, N_RANDOM);
        gm_dequantize(blocks32[k], q, y, N_RANDOM);
        gm_quantize(blocks32[k], y, q2, N_RANDOM);
        CU_ASSERT(!memcmp(q, q2, n));
    }
    free(x), free(y), free(q), free(q2);
}

static uint16_t half_of(gm_dtype t, float f) {
    uint8_t b[2];
    gm_quantize(t, &f, b, 1);
    return (uint16_t)(b[0] | b[1] << 8);
}

static void test_float_rounding(void) {
    CU_ASSERT_EQUAL(half_of(GM_F16, 1.0f + 0x1p-11f), 0x3c00);     /* a tie: to even */
    CU_ASSERT_EQUAL(half_of(GM_F16, 1.0f + 0x3p-11f), 0x3c02);     /* a tie: to even, up */
    CU_ASSERT_EQUAL(half_of(GM_F16, 65519.0f), 0x7bff);            /* the largest finite */
    CU_ASSERT_EQUAL(half_of(GM_F16, 65520.0f), 0x7c00);            /* overflows to infinity */
    CU_ASSERT_EQUAL(half_of(GM_F16, -0x1p-24f), 0x8001);           /* the smallest subnormal */
    CU_ASSERT_EQUAL(half_of(GM_F16, 0x1p-25f), 0x0000);            /* a subnormal tie: to even (zero) */
    CU_ASSERT_EQUAL(half_of(GM_F16, 0x3p-25f), 0x0002);
    CU_ASSERT_EQUAL(half_of(GM_F16, NAN) & 0x7fff, 0x7e00);
    CU_ASSERT_EQUAL(half_of(GM_BF16, 1.0f + 0x1p-8f), 0x3f80);     /* a tie: to even */
    CU_ASSERT_EQUAL(half_of(GM_BF16, 1.0f + 0x3p-8f), 0x3f82);
    CU_ASSERT_EQUAL(half_of(GM_BF16, -2.0f), 0xc000);
    CU_ASSERT_EQUAL(half_of(GM_BF16, NAN) & 0x7fc0, 0x7fc0);       /* quiet */
    float x[64] = {0};
    uint8_t q[256];
    CU_ASSERT_EQUAL(gm_quantize(GM_I32, x, q, 64), -1);
    CU_ASSERT_EQUAL(gm_quantize(GM_Q4_0, x, q, 48), -1);
    CU_ASSERT_EQUAL(gm_quantize(GM_Q4_0, x, q, 64), 0);
}

/* ---- the GGUF writer ---------------------------------------------------- */

/* Writes w to where/name (its path into path); 0 or -1. */
static int finish(gguf_out *w, const char *where, const char *name, char *path, size_t len) {
    gm_err e = {{0}};
    snprintf(path, len, "%s/%s", where, name);
    int rc = gguf_write_begin(w, path, &e) || gguf_write_finish(w, &e) ? -1 : 0;
    if (rc) printf("\n%s", e.msg);
    gguf_out_free(w);
    return rc;
}

static void test_writer_values(void) {
    const char *tmp = test_tmpdir("quantize-writer");
    char path[4200], copy[4200];
    gm_err e = {{0}};
    gguf_out *w = gguf_out_new();
    for (int t = GGUF_T_UINT8; t <= GGUF_T_FLOAT64; t++) {
        char k[32];
        int is_unsigned = t == GGUF_T_UINT8 || t == GGUF_T_UINT16 || t == GGUF_T_UINT32 || t == GGUF_T_UINT64;
        snprintf(k, sizeof k, "v.%d", t);
        if (t == GGUF_T_FLOAT32 || t == GGUF_T_FLOAT64) gguf_set_float(w, k, (gguf_value_type)t, -2.5);
        else if (t == GGUF_T_STRING) gguf_set_string(w, k, "héllo");
        else if (t == GGUF_T_BOOL) gguf_set_int(w, k, GGUF_T_BOOL, 1);
        else if (t != GGUF_T_ARRAY) gguf_set_int(w, k, (gguf_value_type)t, is_unsigned ? 200 : -100);
    }
    const char *words[] = {"<pad>", "", "▁the"};
    int32_t ints[] = {-1, 0, 7};
    float floats[] = {0.5f, -1e-3f, 3};
    uint8_t bools[] = {1, 0, 1};
    gguf_set_array(w, "a.strings", GGUF_T_STRING, 3, words);
    gguf_set_array(w, "a.i32", GGUF_T_INT32, 3, ints);
    gguf_set_array(w, "a.f32", GGUF_T_FLOAT32, 3, floats);
    gguf_set_array(w, "a.bool", GGUF_T_BOOL, 3, bools);
    gguf_set_int(w, "v.4", GGUF_T_UINT32, 77); /* replaced: moves to the end */
    CU_ASSERT_EQUAL_FATAL(finish(w, tmp, "values.gguf", path, sizeof path), 0);
    gguf_file *g = gguf_open(path, &e);
    if (!g) printf("\n%s", e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    int64_t v;
    double f;
    char *s;
    CU_ASSERT(!gguf_get_int(g, "v.0", &v, &e) && v == 200);
    CU_ASSERT(!gguf_get_int(g, "v.1", &v, &e) && v == -100);
    CU_ASSERT(!gguf_get_int(g, "v.2", &v, &e) && v == 200);
    CU_ASSERT(!gguf_get_int(g, "v.3", &v, &e) && v == -100);
    CU_ASSERT(!gguf_get_int(g, "v.5", &v, &e) && v == -100);
    CU_ASSERT(!gguf_get_int(g, "v.10", &v, &e) && v == 200);
    CU_ASSERT(!gguf_get_int(g, "v.11", &v, &e) && v == -100);
    CU_ASSERT(!gguf_get_float(g, "v.6", &f, &e) && f == -2.5);
    CU_ASSERT(!gguf_get_float(g, "v.12", &f, &e) && f == -2.5);
    CU_ASSERT(gguf_find(g, "v.7")->type == GGUF_T_BOOL && gguf_array_number(gguf_find(g, "v.7"), 0) == 1);
    CU_ASSERT(!gguf_get_string(g, "v.8", &s, &e) && !strcmp(s, "héllo"));
    free(s);
    const gguf_kv *kv = gguf_kv_at(g, gguf_kv_count(g) - 1);
    CU_ASSERT(!strcmp(kv->key, "v.4") && kv->type == GGUF_T_UINT32 && gguf_array_number(kv, 0) == 77);
    CU_ASSERT_EQUAL(gguf_kv_count(g), 16);
    kv = gguf_find(g, "a.strings");
    s = gguf_array_string(kv, 2);
    CU_ASSERT(kv->count == 3 && !strcmp(s, "▁the"));
    free(s);
    CU_ASSERT_EQUAL(gguf_array_number(gguf_find(g, "a.i32"), 0), -1);
    CU_ASSERT_EQUAL(gguf_array_number(gguf_find(g, "a.f32"), 1), (double)-1e-3f);
    CU_ASSERT_EQUAL(gguf_array_number(gguf_find(g, "a.bool"), 1), 0);
    /* every pair copied into a new file: the same file, byte for byte */
    w = gguf_out_new();
    for (int i = 0; i < gguf_kv_count(g); i++) gguf_set_kv(w, gguf_kv_at(g, i));
    CU_ASSERT_EQUAL_FATAL(finish(w, tmp, "copy.gguf", copy, sizeof copy), 0);
    size_t n1, n2;
    char *f1 = gm_read_file(path, &n1, &e), *f2 = gm_read_file(copy, &n2, &e);
    CU_ASSERT(f1 && f2 && n1 == n2 && !memcmp(f1, f2, n1));
    free(f1), free(f2);
    gguf_close(g);
}

static void test_writer_tensors(void) {
    const char *tmp = test_tmpdir("quantize-tensors");
    char path[4200];
    gm_err e = {{0}};
    gguf_out *w = gguf_out_new();
    gguf_set_int(w, "general.alignment", GGUF_T_UINT32, 64);
    int64_t ne[2] = {32, 3};
    float data[96];
    uint8_t q8[34];
    for (int i = 0; i < 96; i++) data[i] = (float)i / 7;
    gm_quantize(GM_Q8_0, data, q8, 32);
    CU_ASSERT_EQUAL(gguf_add_tensor(w, "a", 2, ne, GM_F32, &e), 0);
    CU_ASSERT_EQUAL(gguf_add_tensor(w, "b", 1, ne, GM_Q8_0, &e), 0);
    CU_ASSERT_EQUAL(gguf_add_tensor(w, "c", 1, (int64_t[]){48}, GM_Q8_0, &e), -1); /* 48 is no multiple of 32 */
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "tensor c: row length 48 is not a multiple of the q8_0 block (32)"));
    CU_ASSERT_EQUAL(gguf_add_tensor(w, "a", 1, ne, GM_F32, &e), -1);
    snprintf(path, sizeof path, "%s/tensors.gguf", tmp);
    /* the data in pieces that straddle the tensors */
    CU_ASSERT_FATAL(!gguf_write_begin(w, path, &e) && !gguf_write_data(w, data, 100, &e) &&
                    !gguf_write_data(w, (uint8_t *)data + 100, 284, &e) && !gguf_write_data(w, q8, 34, &e) &&
                    !gguf_write_finish(w, &e));
    CU_ASSERT_EQUAL(gguf_write_data(w, q8, 1, &e), -1); /* past the last tensor */
    gguf_out_free(w);
    gguf_file *g = gguf_open(path, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    const gguf_tensor *a = gguf_find_tensor(g, "a"), *b = gguf_find_tensor(g, "b");
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT(a->ndim == 2 && a->ne[0] == 32 && a->ne[1] == 3 && a->ggml_type == 0 && !memcmp(a->data, data, 384));
    CU_ASSERT(b->ndim == 1 && b->ggml_type == 8 && !memcmp(b->data, q8, 34));
    CU_ASSERT_EQUAL(((const uint8_t *)b->data - (const uint8_t *)a->data), 384);    /* 384 = 6 × 64 */
    gguf_close(g);
}

static int dir_has_entries(const char *path) {
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", path);
    return system(cmd) != 0;
}

static void test_writer_atomic(void) {
    const char *tmp = test_tmpdir("quantize-atomic");
    char path[4200];
    snprintf(path, sizeof path, "%s/out.gguf", tmp);
    gm_err e = {{0}};
    gguf_out *w = gguf_out_new();
    int64_t ne[1] = {32};
    CU_ASSERT_EQUAL(gguf_add_tensor(w, "t", 1, ne, GM_F32, &e), 0);
    CU_ASSERT_EQUAL(gguf_write_begin(w, path, &e), 0);
    CU_ASSERT_EQUAL(gguf_write_data(w, "0123", 4, &e), 0);
    CU_ASSERT_EQUAL(gguf_write_finish(w, &e), -1); /* 124 bytes short */
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "tensor t: 4 of its 128 bytes written"));
    gguf_out_free(w);
    CU_ASSERT(!dir_has_entries(tmp)); /* neither the file nor its temporary */
    snprintf(path, sizeof path, "%s/no/such/dir/out.gguf", tmp);
    w = gguf_out_new();
    CU_ASSERT_EQUAL(gguf_write_begin(w, path, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "cannot create"));
    gguf_out_free(w);
}

/* ---- the rules ---------------------------------------------------------- */

/* The type of a tensor of ggml shape ne under target `to`. */
static gm_dtype rule(const char *to, const char *name, int ndim, int64_t ne0, int64_t ne1, int n_layers, int tied,
                     gm_dtype embedding) {
    int64_t ne[2] = {ne0, ne1};
    gm_quant_tensor t = {name, ndim, ne, GM_F32, n_layers, tied};
    gm_dtype wanted;
    const gm_quant_target *q = gm_quant_target_find(to);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    return gm_quant_type(q, &t, embedding, &wanted);
}

/* llama.cpp's Q4_K_M file of Gemma 3 270M (18 layers, hidden 640, ffn 2048):
 * its types, layer by layer. use_more_bits(i, 18) holds for 0, 1, 4, 7, 10, 13, 15, 16, 17. */
static void test_rules_270m(void) {
    const char *more = "110010010010010111";
    CU_ASSERT_EQUAL(rule("q4_k_m", "token_embd.weight", 2, 640, 262144, 18, 1, GM_DTYPE_COUNT), GM_Q8_0);
    CU_ASSERT_EQUAL(rule("q4_k_m", "output_norm.weight", 1, 640, 1, 18, 1, GM_DTYPE_COUNT), GM_F32);
    for (int i = 0; i < 18; i++) {
        char n[64];
        int m = more[i] == '1';
#define R(suffix, ne0, ne1) (snprintf(n, sizeof n, "blk.%d." suffix, i), rule("q4_k_m", n, 2, ne0, ne1, 18, 1, GM_DTYPE_COUNT))
        CU_ASSERT_EQUAL(R("attn_q.weight", 640, 1024), GM_Q5_0);
        CU_ASSERT_EQUAL(R("attn_k.weight", 640, 256), GM_Q5_0);
        CU_ASSERT_EQUAL(R("attn_v.weight", 640, 256), m ? GM_Q8_0 : GM_Q5_0);
        CU_ASSERT_EQUAL(R("attn_output.weight", 1024, 640), GM_Q4_K);
        CU_ASSERT_EQUAL(R("ffn_gate.weight", 640, 2048), GM_Q5_0);
        CU_ASSERT_EQUAL(R("ffn_up.weight", 640, 2048), GM_Q5_0);
        CU_ASSERT_EQUAL(R("ffn_down.weight", 2048, 640), m ? GM_Q6_K : GM_Q4_K);
        CU_ASSERT_EQUAL(rule("q5_k_m", n, 2, 2048, 640, 18, 1, GM_DTYPE_COUNT), m ? GM_Q6_K : GM_Q5_K);
        CU_ASSERT_EQUAL(R("attn_q_norm.weight", 256, 1), GM_F32);
#undef R
    }
}

static void test_rules_other(void) {
    /* rows of 2304 (Gemma 2 2B): the mixes keep their K types */
    CU_ASSERT_EQUAL(rule("q4_k_m", "token_embd.weight", 2, 2304, 256000, 26, 1, GM_DTYPE_COUNT), GM_Q6_K);
    CU_ASSERT_EQUAL(rule("q4_k_m", "token_embd.weight", 2, 2304, 256000, 26, 0, GM_DTYPE_COUNT), GM_Q4_K); /* untied */
    CU_ASSERT_EQUAL(rule("q4_k_m", "output.weight", 2, 2304, 256000, 26, 0, GM_DTYPE_COUNT), GM_Q6_K);
    CU_ASSERT_EQUAL(rule("q5_k_m", "blk.5.attn_v.weight", 2, 2304, 1024, 26, 1, GM_DTYPE_COUNT), GM_Q6_K);
    CU_ASSERT_EQUAL(rule("q5_k_m", "blk.4.attn_v.weight", 2, 2304, 1024, 26, 1, GM_DTYPE_COUNT), GM_Q5_K);
    /* pure targets: one type, the row-length fallbacks */
    CU_ASSERT_EQUAL(rule("q4_0", "token_embd.weight", 2, 2304, 256000, 26, 1, GM_DTYPE_COUNT), GM_Q4_0);
    CU_ASSERT_EQUAL(rule("q4_k", "blk.0.ffn_down.weight", 2, 640, 2048, 18, 1, GM_DTYPE_COUNT), GM_Q5_0);
    CU_ASSERT_EQUAL(rule("q5_k", "blk.0.ffn_down.weight", 2, 640, 2048, 18, 1, GM_DTYPE_COUNT), GM_Q5_1);
    CU_ASSERT_EQUAL(rule("q6_k", "blk.0.ffn_down.weight", 2, 640, 2048, 18, 1, GM_DTYPE_COUNT), GM_Q8_0);
    CU_ASSERT_EQUAL(rule("q6_k", "blk.0.ffn_down.weight", 2, 48, 2048, 18, 1, GM_DTYPE_COUNT), GM_F16);
    CU_ASSERT_EQUAL(rule("q8_0", "blk.0.ffn_down.weight", 2, 48, 2048, 18, 1, GM_DTYPE_COUNT), GM_F16);
    CU_ASSERT_EQUAL(rule("bf16", "blk.0.ffn_down.weight", 2, 48, 2048, 18, 1, GM_DTYPE_COUNT), GM_BF16);
    CU_ASSERT_EQUAL(rule("Q4_K_M", "blk.0.attn_norm.weight", 1, 640, 1, 18, 1, GM_DTYPE_COUNT), GM_F32);
    /* --keep-embedding */
    CU_ASSERT_EQUAL(rule("q4_k_m", "token_embd.weight", 2, 2304, 256000, 26, 1, GM_F16), GM_F16);
    CU_ASSERT_EQUAL(rule("q4_0", "token_embd.weight", 2, 640, 262144, 18, 1, GM_Q6_K), GM_Q8_0);
    CU_ASSERT_PTR_NULL(gm_quant_target_find("q3_k"));
    CU_ASSERT_EQUAL(gm_quant_target_find("q4_k_m")->ftype, 15);
    CU_ASSERT_EQUAL(gm_quant_target_find("bf16")->ftype, 32);
}

/* ---- gemmac quantize end to end ----------------------------------------- */

/* gemmac with args (a shell fragment) in dir, stdout and stderr to out.txt
 * and err.txt there; its exit status. */
static int run(const char *args) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' %s", gemmac, args);
    return test_sh(dir, cmd);
}

static const char *in_dir(const char *name) {
    static char buf[2][4200];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* The logits of every prompt position, [n][vocab], on the reference backend. */
static float *prefill_logits(const char *model, const int32_t *ids, int n, int64_t *vocab) {
    gm_err e = {{0}};
    gm_pipeline_opts po = {.level = GM_DEFAULT_LEVEL, .target = gm_backend_target("reference")};
    gm_model *m = gm_model_open_with(model, NULL, &po, &e);
    rt_engine *en = m ? gm_model_engine(m, "reference", &(rt_engine_opts){.context = 32}, &e) : NULL;
    if (!en) printf("\n%s: %s", model, e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(en);
    *vocab = en->vocab;
    float *logits = gm_malloc((size_t)(n * en->vocab) * sizeof *logits);
    int rc = en->prefill(en, ids, n, 0, logits, 1, &e);
    if (rc) printf("\n%s: %s", model, e.msg);
    CU_ASSERT_EQUAL(rc, 0);
    en->free(en);
    gm_model_free(m);
    return logits;
}

static const int32_t PROMPT[] = {2, 100, 200, 300, 400, 500, 311, 17, 13, 5}; /* ids < 512, every oracle vocabulary's */
#define N_PROMPT 10

/* max |Δ| and RMS(Δ) / RMS(a) of two logit arrays. */
static void compare(const float *a, const float *b, size_t n, double *max, double *rel) {
    double d2 = 0, a2 = 0;
    *max = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        *max = d > *max ? d : *max;
        d2 += d * d, a2 += (double)a[i] * a[i];
    }
    *rel = sqrt(d2 / a2);
}

static void test_hf_to_gguf(void) {
    const char *demo = test_path("../models/demo");
    char args[8192];
    snprintf(args, sizeof args, "quantize '%s' --to f32 -o demo-f32.gguf", demo);
    CU_ASSERT_EQUAL_FATAL(run(args), 0);
    snprintf(args, sizeof args, "quantize '%s' --to q8_0 -o demo-q8.gguf", demo);
    CU_ASSERT_EQUAL_FATAL(run(args), 0);
    int64_t vocab;
    float *hf = prefill_logits(demo, PROMPT, N_PROMPT, &vocab);
    float *f32 = prefill_logits(in_dir("demo-f32.gguf"), PROMPT, N_PROMPT, &vocab);
    float *q8 = prefill_logits(in_dir("demo-q8.gguf"), PROMPT, N_PROMPT, &vocab);
    double max, rel;
    compare(hf, f32, (size_t)(N_PROMPT * vocab), &max, &rel);
    CU_ASSERT(max <= 1e-5);
    compare(f32, q8, (size_t)(N_PROMPT * vocab), &max, &rel);
    if (rel > 0.05) printf("\n  q8_0: RMS logit error %.3g of the RMS logit (bound 0.05)", rel);
    CU_ASSERT(rel <= 0.05);
    free(hf), free(f32), free(q8);
    /* the tokenizer rebuilt from the file is tokenizer.model's */
    gm_err e = {{0}};
    gguf_file *g = gguf_open(in_dir("demo-f32.gguf"), &e);
    rt_tokenizer *a = g ? gguf_tokenizer(g, &e) : NULL, *b = rt_tok_load(test_path("../models/demo/tokenizer.model"), &e);
    if (!a || !b) printf("\n%s", e.msg);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL(rt_tok_vocab_size(a), rt_tok_vocab_size(b));
    int differ = 0;
    for (int32_t id = 0; id < rt_tok_vocab_size(b); id++) {
        char *p = rt_tok_piece(a, id), *q = rt_tok_piece(b, id);
        differ += !p || !q || strcmp(p, q);
        free(p), free(q);
    }
    CU_ASSERT_EQUAL(differ, 0);
    char *corpus = gm_read_file(test_path("../models/demo/corpus.txt"), NULL, &e), *save = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(corpus);
    int lines = 0, same = 0;
    for (char *l = strtok_r(corpus, "\n", &save); l && lines < 200; l = strtok_r(NULL, "\n", &save), lines++) {
        int32_t *x = NULL, *y = NULL;
        int nx = 0, ny = 0;
        int ok = !rt_tok_encode(a, l, strlen(l), &x, &nx, &e) && !rt_tok_encode(b, l, strlen(l), &y, &ny, &e);
        same += ok && nx == ny && !memcmp(x, y, (size_t)nx * sizeof *x);
        free(x), free(y);
    }
    CU_ASSERT_EQUAL(same, lines);
    CU_ASSERT(lines > 20);
    int64_t v;
    CU_ASSERT(!gguf_get_int(g, "general.file_type", &v, &e) && v == 0);
    CU_ASSERT(!gguf_get_int(g, "gemma3.attention.sliding_window", &v, &e) && v == 64);
    free(corpus);
    rt_tok_free(a), rt_tok_free(b);
    gguf_close(g);
}

/* Oracle checkpoints without a tokenizer.model to GGUF: Gemma 1 in F32 and
 * BF16 gives the HF model's logits (|Δ| ≤ 1e-5 and 1e-4: the HF path
 * multiplies the bf16 weights as stored; 0 and 4.3e-6 observed), its norms
 * F32 with the +1 added; Gemma 2's query scale, which a GGUF cannot state,
 * is said on stderr, and its 64-wide rows fall back from Q5_K. */
static void test_golden_checkpoints(void) {
    const char *cases[] = {"golden/tiny-gemma1-mqa", "golden/medium-gemma1-bf16"};
    const double tol[] = {1e-5, 1e-4};
    char args[8192];
    for (int c = 0; c < 2; c++) {
        snprintf(args, sizeof args, "quantize '%s' --to f32 -o g1.gguf", test_path(cases[c]));
        CU_ASSERT_EQUAL_FATAL(run(args), 0);
        char *err = test_slurp(dir, "err.txt");
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "no tokenizer.model"));
        free(err);
        int64_t vocab;
        float *hf = prefill_logits(test_path(cases[c]), PROMPT, N_PROMPT, &vocab),
              *gg = prefill_logits(in_dir("g1.gguf"), PROMPT, N_PROMPT, &vocab);
        double max, rel;
        compare(hf, gg, (size_t)(N_PROMPT * vocab), &max, &rel);
        if (max > tol[c]) printf("\n  %s: max |dlogit| %.3g (bound %.3g)", cases[c], max, tol[c]);
        CU_ASSERT(max <= tol[c]);
        free(hf), free(gg);
        gm_err e = {{0}};
        gguf_file *g = gguf_open(in_dir("g1.gguf"), &e);
        CU_ASSERT_PTR_NOT_NULL_FATAL(g);
        CU_ASSERT_EQUAL(gguf_find_tensor(g, "blk.0.attn_norm.weight")->ggml_type, 0);
        gguf_close(g);
    }
    snprintf(args, sizeof args, "quantize '%s' --to q5_k_m -o g2.gguf", test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL_FATAL(run(args), 0);
    char *err = test_slurp(dir, "err.txt");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "query_pre_attn_scalar is 24, which a GGUF cannot state"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "blk.0.attn_q.weight: row length 64 is not a multiple of Q5_K's block of 256; Q5_1 instead"));
    free(err);
    int64_t vocab;
    free(prefill_logits(in_dir("g2.gguf"), PROMPT, 4, &vocab));
}

/* GGUF in, GGUF out: every key copied but general.file_type and
 * general.quantization_version, which go last; types by the rules; a
 * tensor re-encoded from the input's values holds gm_quantize's bytes. */
static void test_gguf_to_gguf(void) {
    CU_ASSERT_EQUAL_FATAL(run("quantize demo-f32.gguf --to q4_0 -o demo-q4.gguf --keep-embedding q8_0"), 0);
    char *out = test_slurp(dir, "out.txt");
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "blk.3.ffn_up.weight"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "[512, 128]          F32 -> Q4_0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "demo-q4.gguf: 80 tensors, 6.45 MiB -> "));
    free(out);
    gm_err e = {{0}};
    gguf_file *a = gguf_open(in_dir("demo-f32.gguf"), &e), *b = gguf_open(in_dir("demo-q4.gguf"), &e);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL(gguf_kv_count(a), gguf_kv_count(b));
    for (int i = 0; i < gguf_kv_count(a) - 2; i++) {
        const gguf_kv *x = gguf_kv_at(a, i), *y = gguf_kv_at(b, i);
        CU_ASSERT(!strcmp(x->key, y->key) && x->type == y->type && x->count == y->count);
    }
    int64_t v;
    CU_ASSERT(!strcmp(gguf_kv_at(b, gguf_kv_count(b) - 1)->key, "general.file_type"));
    CU_ASSERT(!gguf_get_int(b, "general.file_type", &v, &e) && v == 2);
    CU_ASSERT(!gguf_get_int(b, "general.quantization_version", &v, &e) && v == 2);
    const gguf_tensor *emb = gguf_find_tensor(b, "token_embd.weight"), *up = gguf_find_tensor(b, "blk.3.ffn_up.weight"),
                      *src = gguf_find_tensor(a, "blk.3.ffn_up.weight"), *norm = gguf_find_tensor(b, "blk.3.ffn_norm.weight");
    CU_ASSERT_FATAL(emb && up && src && norm);
    CU_ASSERT_EQUAL(emb->ggml_type, 8);
    CU_ASSERT_EQUAL(norm->ggml_type, 0);
    CU_ASSERT_EQUAL_FATAL(up->ggml_type, 2);
    uint8_t *want = gm_malloc(up->nbytes);
    gm_quantize(GM_Q4_0, src->data, want, (int64_t)(src->nbytes / 4));
    CU_ASSERT(!memcmp(up->data, want, up->nbytes));
    free(want);
    gguf_close(a), gguf_close(b);
    /* the model runs, with the vocabulary it carries */
    CU_ASSERT_EQUAL(run("run demo-q4.gguf -p 'Once upon a time' -n 4 --temp 0 --backend reference"), 0);
}

/* The real Gemma 3 270M, when cached: the rules give every tensor the type
 * llama.cpp gave it, and rewriting the file as q4_k_m reproduces it byte
 * for byte (each tensor keeps its type, so its bytes are copied). */
static void test_real_270m(void) {
    gm_err e = {{0}};
    gguf_file *g = gguf_open(test_real_model_path(), &e);
    if (!g) {
        printf("\n  skipped: %s not cached", test_real_model_path());
        return;
    }
    int same = 0;
    for (int i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        gm_quant_tensor q = {t->name, t->ndim, t->ne, GM_F32, 18, 1};
        gm_dtype wanted, to = gm_quant_type(gm_quant_target_find("q4_k_m"), &q, GM_DTYPE_COUNT, &wanted);
        same += gguf_ggml_type(to) == (int)t->ggml_type;
    }
    CU_ASSERT_EQUAL(same, 236);
    CU_ASSERT_EQUAL(gguf_tensor_count(g), 236);
    gguf_close(g);
    char args[8192];
    snprintf(args, sizeof args, "quantize '%s' --to q4_k_m -o real.gguf", test_real_model_path());
    CU_ASSERT_EQUAL(run(args), 0);
    snprintf(args, sizeof args, "cmp '%s' real.gguf && rm real.gguf", test_real_model_path());
    CU_ASSERT_EQUAL(test_sh(dir, args), 0);
}

/* `pre gemmac args` exits with code and one "gemmac: " line on stderr holding
 * part, and leaves no file named out.gguf* behind. */
static void expect_error(const char *pre, const char *args, int code, const char *part) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s '%s' %s", pre, gemmac, args);
    int rc = test_sh(dir, cmd);
    char *err = test_slurp(dir, "err.txt");
    size_t n = err ? strlen(err) : 0;
    int one_line = n && err[n - 1] == '\n' && !memchr(err, '\n', n - 1) && !strncmp(err, "gemmac: ", 8);
    if (rc != code || !one_line || !strstr(err, part))
        printf("\n  %s\n  exit %d (expected %d), stderr: %s  (expected \"%s\")", cmd, rc, code, err, part);
    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT(one_line && strstr(err, part));
    free(err);
    CU_ASSERT_EQUAL(test_sh(dir, "ls | grep '^out.gguf'"), 1);
}

static void test_errors(void) {
    char args[8192];
    expect_error("", "quantize demo-f32.gguf --to q3_k -o out.gguf", 2, "--to q3_k: unknown type (expected one of f32,");
    expect_error("", "quantize demo-f32.gguf --to q8_0", 2, "no -o OUT.gguf given");
    expect_error("", "quantize demo-f32.gguf -o out.gguf", 2, "no --to TYPE given");
    expect_error("", "quantize demo-f32.gguf --to q8_0 --keep-embedding q4_k_m -o out.gguf", 2, "--keep-embedding q4_k_m");
    expect_error("", "quantize missing.gguf --to q8_0 -o out.gguf", 1, "missing.gguf: cannot open");
    snprintf(args, sizeof args, "quantize '%s' --to q8_0 -o out.gguf", test_path("../models/demo/config.json"));
    expect_error("", args, 1, "this is not a GGUF file");
    expect_error("", "quantize demo-f32.gguf --to q8_0 -o nodir/out.gguf", 1, "nodir/out.gguf: cannot create");
    /* a directory the user may not write to (root writes anywhere, so there it is not tried) */
    if (test_sh(dir, "mkdir -p ro && chmod 555 ro && test ! -w ro") == 0) {
        expect_error("", "quantize demo-f32.gguf --to q8_0 -o ro/out.gguf", 1, "ro/out.gguf: cannot create");
        CU_ASSERT_EQUAL(test_sh(dir, "test -z \"$(ls -A ro)\""), 0);
    }
    /* a write that fails half way: past the file-size limit (SIGXFSZ ignored, so write() says EFBIG) */
    expect_error("trap '' XFSZ; ulimit -f 1024;", "quantize demo-f32.gguf --to f32 -o out.gguf", 1, "out.gguf: cannot write");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_quantize PATH_TO_GEMMAC\n");
        return 2;
    }
    static char real[4096];
    gemmac = realpath(argv[1], real) ? real : argv[1]; /* the tests run it from their own directory */
    snprintf(dir, sizeof dir, "%s", test_tmpdir("quantize"));
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("encoders", NULL, NULL);
    CU_add_test(s, "bytes equal llama.cpp's for tests/quantize/input.f32", test_golden_bytes);
    CU_add_test(s, "round trips within each format's bound", test_round_trip_bounds);
    CU_add_test(s, "32-element formats are idempotent", test_idempotent);
    CU_add_test(s, "f16 and bf16 rounding, unsupported types", test_float_rounding);
    s = CU_add_suite("GGUF writer", NULL, NULL);
    CU_add_test(s, "every value type, replacing, copying, alignment", test_writer_values);
    CU_add_test(s, "tensor infos, data in pieces, alignment", test_writer_tensors);
    CU_add_test(s, "an unfinished file leaves nothing", test_writer_atomic);
    s = CU_add_suite("llama-quantize's rules", NULL, NULL);
    CU_add_test(s, "Gemma 3 270M as Q4_K_M", test_rules_270m);
    CU_add_test(s, "fallbacks, pure targets, --keep-embedding, untied head", test_rules_other);
    s = CU_add_suite("gemmac quantize", NULL, NULL);
    CU_add_test(s, "HF demo to f32 and q8_0 GGUF: logits and tokenizer", test_hf_to_gguf);
    CU_add_test(s, "oracle checkpoints of Gemma 1 (F32, BF16) and 2", test_golden_checkpoints);
    CU_add_test(s, "GGUF to GGUF keeps the metadata", test_gguf_to_gguf);
    CU_add_test(s, "the real Gemma 3 270M (when cached)", test_real_270m);
    CU_add_test(s, "bad input: one line, no file", test_errors);
    return test_run_all();
}
