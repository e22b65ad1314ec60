/* test_safetensors.c — the safetensors reader (runtime/safetensors.h): the
 * golden checkpoints open by file and by directory with the shapes, dtypes
 * and data the header promises; a sharded checkpoint written here reads back
 * value for value; zero-element tensors and scalars are valid; and every
 * malformed input — truncated, lying header, bad JSON, bad dtype, shape or
 * offsets, overlapping or mis-sized tensors, broken index — is refused with
 * one line naming the file, the tensor where there is one, and the fault. */
#include "runtime/safetensors.h"
#include "tests/testing.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static char dir[4096];

/* ---- writing test files ---- */

static const char *in_dir(const char *name) {
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static void write_raw(const char *name, const void *data, size_t n) {
    FILE *f = fopen(in_dir(name), "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* A safetensors file whose header length field says `len` (the real header
 * length when len is UINT64_MAX), then header and data. */
static void write_st_len(const char *name, uint64_t len, const char *header, const void *data, size_t n) {
    size_t h = strlen(header);
    if (len == UINT64_MAX) len = h;
    uint8_t *buf = malloc(8 + h + n + 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(len >> (8 * i));
    memcpy(buf + 8, header, h);
    if (n) memcpy(buf + 8 + h, data, n);
    write_raw(name, buf, 8 + h + n);
    free(buf);
}

static void write_st(const char *name, const char *header, const void *data, size_t n) {
    write_st_len(name, UINT64_MAX, header, data, n);
}

/* ---- checking results ---- */

/* st_open(path) fails with one non-empty line holding every string of the
 * NULL-terminated list. */
static void expect_fail(const char *path, ...) {
    gm_err e = {{0}};
    gm_weights *a = st_open(path, &e);
    CU_ASSERT_PTR_NULL(a);
    weights_close(a);
    CU_ASSERT(e.msg[0] != 0);
    CU_ASSERT_PTR_NULL(strchr(e.msg, '\n'));
    va_list ap;
    va_start(ap, path);
    for (const char *part; (part = va_arg(ap, const char *));) {
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, part));
        if (!strstr(e.msg, part)) printf("\n  message \"%s\" lacks \"%s\"\n", e.msg, part);
    }
    va_end(ap);
}

/* A one-tensor file `name` with the given entry and `n` data bytes, which
 * must fail naming the file, the tensor and `part`. */
static void expect_entry_fail(const char *entry, size_t n, const char *part) {
    char header[1024];
    static uint8_t zeros[256];
    snprintf(header, sizeof header, "{\"w.bad\": %s}", entry);
    write_st("bad.safetensors", header, zeros, n);
    expect_fail(in_dir("bad.safetensors"), "bad.safetensors", "w.bad", part, NULL);
}

static int64_t elements(const gm_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* ---- the golden checkpoints ---- */

static void check_golden(const char *path, gm_dtype dtype) {
    gm_err e = {{0}};
    gm_weights *a = st_open(path, &e);
    if (!a) printf("\n  %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(weights_count(a), 46);
    for (int i = 0; i < weights_count(a); i++) {
        const gm_tensor *t = weights_get(a, i);
        CU_ASSERT_EQUAL(t->dtype, dtype);
        CU_ASSERT_EQUAL(t->nbytes, (size_t)elements(t) * gm_dtype_size(dtype));
        CU_ASSERT_PTR_EQUAL(weights_find(a, t->name), t);
        CU_ASSERT(strstr(t->file, "model.safetensors") != NULL);
        if (i) CU_ASSERT(strcmp(weights_get(a, i - 1)->name, t->name) < 0);
    }
    CU_ASSERT_PTR_NULL(weights_get(a, -1));
    CU_ASSERT_PTR_NULL(weights_get(a, weights_count(a)));
    CU_ASSERT_PTR_NULL(weights_find(a, "__metadata__"));
    CU_ASSERT_PTR_NULL(weights_find(a, "model.nope"));

    const gm_tensor *emb = weights_find(a, "model.embed_tokens.weight");
    const gm_tensor *q = weights_find(a, "model.layers.0.self_attn.q_proj.weight");
    const gm_tensor *norm = weights_find(a, "model.layers.0.input_layernorm.weight");
    CU_ASSERT_PTR_NOT_NULL_FATAL(emb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_PTR_NOT_NULL_FATAL(norm);
    CU_ASSERT(emb->ndim == 2 && emb->shape[0] == 768 && emb->shape[1] == 64);
    CU_ASSERT(q->ndim == 2 && q->shape[0] == 128 && q->shape[1] == 64);
    CU_ASSERT(norm->ndim == 1 && norm->shape[0] == 64);
    CU_ASSERT_EQUAL(emb->nbytes, 768 * 64 * gm_dtype_size(dtype));
    /* The embedding is first in the data section, the norm right after it. */
    CU_ASSERT_PTR_EQUAL((const uint8_t *)emb->data + emb->nbytes, norm->data);

    /* The embedding's bytes are the file's first data bytes. */
    size_t len;
    uint8_t *file = (uint8_t *)gm_read_file(emb->file, &len, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = h << 8 | file[i];
    CU_ASSERT_FATAL(8 + h + emb->nbytes <= len);
    CU_ASSERT_EQUAL(memcmp(file + 8 + h, emb->data, emb->nbytes), 0);
    free(file);
    weights_close(a);
}

static void test_golden_f32(void) {
    check_golden(test_path("golden/tiny-gemma2/model.safetensors"), GM_F32);
    check_golden(test_path("golden/tiny-gemma2"), GM_F32);
    check_golden(test_path("golden/tiny-gemma2/"), GM_F32);
}

/* st_open_memory over a file's bytes holds the same tensors as st_open,
 * pointing into those bytes; cut short, it fails as a truncated file does. */
static void test_open_memory(void) {
    gm_err e;
    size_t len;
    char *bytes = gm_read_file(test_path("golden/tiny-gemma2/model.safetensors"), &len, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    gm_weights *f = st_open(test_path("golden/tiny-gemma2"), &e), *m = st_open_memory(bytes, len, "mem", &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f && m);
    CU_ASSERT_EQUAL(weights_count(m), weights_count(f));
    for (int i = 0; i < weights_count(f); i++) {
        const gm_tensor *a = weights_get(f, i), *b = weights_find(m, a->name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT(b->nbytes == a->nbytes && !memcmp(a->data, b->data, a->nbytes));
        CU_ASSERT((const char *)b->data > bytes && (const char *)b->data < bytes + len);
        CU_ASSERT_STRING_EQUAL(b->file, "mem");
    }
    weights_close(m);
    weights_close(f);
    CU_ASSERT_PTR_NULL(st_open_memory(bytes, len - 1, "mem", &e));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "mem: tensor "));
    CU_ASSERT_PTR_NULL(st_open_memory(bytes, 4, "mem", &e));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "shorter than the 8-byte header length"));
    free(bytes);
}

static void test_golden_bf16(void) {
    check_golden(test_path("golden/tiny-gemma2-bf16/model.safetensors"), GM_BF16);
    check_golden(test_path("golden/tiny-gemma2-bf16"), GM_BF16);
}

/* The first weights of q_proj decode to what Python's struct reads there
 * (the two checkpoints come from different seeds). */
static void expect_first(const char *path, const float *want, int n) {
    gm_weights *a = st_open(test_path(path), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    const gm_tensor *t = weights_find(a, "model.layers.0.self_attn.q_proj.weight");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    float got[8];
    gm_to_f32(t->dtype, t->data, got, (size_t)n);
    for (int i = 0; i < n; i++) CU_ASSERT_EQUAL(got[i], want[i]);
    weights_close(a);
}

static void test_golden_values(void) {
    const float f[] = {-0.12062816321849823f, 0.4141814112663269f, 0.1407376527786255f, -0.2281433343887329f};
    const float b[] = {-0.1484375f, -0.189453125f, -0.294921875f, -0.0888671875f};
    expect_first("golden/tiny-gemma2", f, 4);
    expect_first("golden/tiny-gemma2-bf16", b, 4);
}

/* ---- written checkpoints ---- */

static void bf16_bytes(const float *x, uint16_t *out, int n) {
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        out[i] = (uint16_t)(u >> 16);
    }
}

static void expect_values(const gm_weights *a, const char *name, const float *want, int n, const char *file) {
    const gm_tensor *t = weights_find(a, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(elements(t), n);
    CU_ASSERT(strstr(t->file, file) != NULL);
    float got[16];
    gm_to_f32(t->dtype, t->data, got, (size_t)n);
    for (int i = 0; i < n; i++) CU_ASSERT_EQUAL(got[i], want[i]);
}

/* Shard 1: a F32 [2, 3], b F32 [4]. Shard 2: c BF16 [2], s F32 scalar,
 * z F32 [0, 3] (no bytes), i I32 [2]. */
static const float va[6] = {0, 1, 2, 3, 4, 5}, vb[4] = {-1, 0.5f, 1e6f, -2.25f};
static const float vc[2] = {1.5f, -3}, vs[1] = {42}, vi[2] = {7, -9};

static void write_shards(void) {
    float d1[10];
    memcpy(d1, va, sizeof va);
    memcpy(d1 + 6, vb, sizeof vb);
    write_st("m-1.safetensors",
             "{\"__metadata__\": {\"format\": \"pt\"},"
             " \"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [24, 40]}}   ",
             d1, sizeof d1);
    uint8_t d2[16];
    uint16_t c[2];
    int32_t i32[2] = {7, -9};
    bf16_bytes(vc, c, 2);
    memcpy(d2, c, 4);
    memcpy(d2 + 4, vs, 4);
    memcpy(d2 + 8, i32, 8);
    write_st("m-2.safetensors",
             "{\"s\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [4, 8]},"
             " \"z\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [8, 8]},"
             " \"i\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [8, 16]},"
             " \"c\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [0, 4]}}",
             d2, sizeof d2);
}

static void write_index(const char *name, const char *map) {
    char text[2048];
    snprintf(text, sizeof text, "{\"metadata\": {\"total_size\": 56}, \"weight_map\": {%s}}", map);
    write_raw(name, text, strlen(text));
}

#define GOOD_MAP \
    "\"a\": \"m-1.safetensors\", \"b\": \"m-1.safetensors\", \"c\": \"m-2.safetensors\"," \
    " \"s\": \"m-2.safetensors\", \"z\": \"m-2.safetensors\", \"i\": \"m-2.safetensors\""

static void check_sharded(const char *path) {
    gm_err e = {{0}};
    gm_weights *a = st_open(path, &e);
    if (!a) printf("\n  %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(weights_count(a), 6);
    expect_values(a, "a", va, 6, "m-1.safetensors");
    expect_values(a, "b", vb, 4, "m-1.safetensors");
    expect_values(a, "c", vc, 2, "m-2.safetensors");
    expect_values(a, "s", vs, 1, "m-2.safetensors");
    expect_values(a, "i", vi, 2, "m-2.safetensors");
    const gm_tensor *z = weights_find(a, "z"), *s = weights_find(a, "s"), *ta = weights_find(a, "a");
    CU_ASSERT(z && z->ndim == 2 && z->shape[0] == 0 && z->shape[1] == 3 && z->nbytes == 0);
    CU_ASSERT(s && s->ndim == 0 && s->nbytes == 4 && s->dtype == GM_F32);
    CU_ASSERT(ta && ta->ndim == 2 && ta->shape[0] == 2 && ta->shape[1] == 3);
    CU_ASSERT_EQUAL(weights_find(a, "c")->dtype, GM_BF16);
    CU_ASSERT_EQUAL(weights_find(a, "i")->dtype, GM_I32);
    const char *order[] = {"a", "b", "c", "i", "s", "z"};
    for (int i = 0; i < 6; i++) CU_ASSERT_STRING_EQUAL(weights_get(a, i)->name, order[i]);
    weights_close(a);
}

static void test_sharded(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("st-sharded"));
    write_shards();
    write_index("model.safetensors.index.json", GOOD_MAP);
    check_sharded(in_dir("model.safetensors.index.json"));
    check_sharded(dir);
    /* The index wins over a model.safetensors beside it. */
    write_st("model.safetensors", "{\"only\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
             vs, 4);
    check_sharded(dir);
    /* A single file opens on its own too. */
    gm_weights *a = st_open(in_dir("m-2.safetensors"), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(weights_count(a), 4);
    expect_values(a, "c", vc, 2, "m-2.safetensors");
    weights_close(a);
    /* An empty header object is a valid, empty checkpoint. */
    write_st("empty-header.safetensors", "{\"__metadata__\": {}}", NULL, 0);
    a = st_open(in_dir("empty-header.safetensors"), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(weights_count(a), 0);
    CU_ASSERT_PTR_NULL(weights_find(a, "a"));
    weights_close(a);
}

/* ---- refusals ---- */

static void test_bad_files(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("st-files"));
    write_raw("empty.safetensors", "", 0);
    expect_fail(in_dir("empty.safetensors"), "empty.safetensors", "empty", NULL);
    write_raw("short.safetensors", "\x10\0\0", 3);
    expect_fail(in_dir("short.safetensors"), "short.safetensors", "3 bytes", "shorter than the 8-byte", NULL);
    write_st_len("zero.safetensors", 0, "{}", NULL, 0);
    expect_fail(in_dir("zero.safetensors"), "zero.safetensors", "header length is 0", NULL);
    write_st_len("long.safetensors", 1000, "{}", "abcd", 4);
    expect_fail(in_dir("long.safetensors"), "long.safetensors", "header length 1000", "(6 bytes", "truncated", NULL);
    write_st_len("huge.safetensors", UINT64_MAX - 1, "{}", NULL, 0);
    expect_fail(in_dir("huge.safetensors"), "huge.safetensors", "18446744073709551614", "past the end", NULL);
    write_st("json.safetensors", "{\"a\": {\"dtype\": ", NULL, 0);
    expect_fail(in_dir("json.safetensors"), "json.safetensors", "not valid JSON", NULL);
    write_st("garbage.safetensors", "\x01\x02garbage", NULL, 0);
    expect_fail(in_dir("garbage.safetensors"), "garbage.safetensors", "not valid JSON", NULL);
    write_st("array.safetensors", "[1, 2]", NULL, 0);
    expect_fail(in_dir("array.safetensors"), "array.safetensors", "not a JSON object", NULL);
    expect_fail(in_dir("nowhere.safetensors"), "nowhere.safetensors", "No such file", NULL);
    expect_fail(dir, dir, "neither model.safetensors.index.json nor model.safetensors", NULL);
    /* A .safetensors path that is a directory. */
    CU_ASSERT_EQUAL(mkdir(in_dir("d.safetensors"), 0755), 0);
    write_index("dir.index.json", "\"x\": \"d.safetensors\"");
    expect_fail(in_dir("dir.index.json"), "d.safetensors", "not a regular file", NULL);
}

static void test_bad_entries(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("st-entries"));
    expect_entry_fail("5", 0, "not an object");
    expect_entry_fail("[1]", 0, "not an object");
    expect_entry_fail("{\"shape\": [1], \"data_offsets\": [0, 4]}", 4, "dtype is missing");
    expect_entry_fail("{\"dtype\": 42, \"shape\": [1], \"data_offsets\": [0, 4]}", 4, "dtype is 42");
    expect_entry_fail("{\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}", 8, "unknown dtype \"F64\"");
    expect_entry_fail("{\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 8]}", 8, "supported: F32, BF16");
    expect_entry_fail("{\"dtype\": \"\", \"shape\": [1], \"data_offsets\": [0, 8]}", 8, "unknown dtype");
    expect_entry_fail("{\"dtype\": \"F32\", \"data_offsets\": [0, 4]}", 4, "shape is missing");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 4]}", 4, "shape is 4");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1, -2], \"data_offsets\": [0, 4]}", 4, "shape[1] is -2");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 4]}", 4, "shape[0] is 2.5");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [\"4\"], \"data_offsets\": [0, 4]}", 4, "shape[0] is \"4\"");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 4]}", 4, "shape[0]");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}", 4,
                      "9 dimensions, at most 8");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1048576, 1048576, 1048576, 1048576], \"data_offsets\": [0, 4]}",
                      4, "overflows");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1]}", 4, "data_offsets is missing");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4]}", 4, "two non-negative integers");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}", 8, "data_offsets is [0,4,8]");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}", 4, "two non-negative integers");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4.5]}", 8, "two non-negative integers");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", \"4\"]}", 4, "two non-negative");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 1e300]}", 4, "two non-negative");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}", 8, "begin after end");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [100], \"data_offsets\": [0, 400]}", 256,
                      "data_offsets [0, 400] end past the data section (256 bytes)");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}", 20,
                      "shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] hold 20");
    expect_entry_fail("{\"dtype\": \"BF16\", \"shape\": [4], \"data_offsets\": [0, 16]}", 16, "of BF16 needs 8 bytes");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 4]}", 4, "needs 0 bytes");
    expect_entry_fail("{\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 0]}", 4, "needs 4 bytes");
}

static void test_overlap(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("st-overlap"));
    static uint8_t zeros[64];
    write_st("o.safetensors",
             "{\"x\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
             " \"y\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [12, 28]}}",
             zeros, 28);
    expect_fail(in_dir("o.safetensors"), "o.safetensors", "x [0, 16]", "y [12, 28]", "overlap", NULL);
    /* One inside another, listed in the other order. */
    write_st("o2.safetensors",
             "{\"in\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [20, 24]},"
             " \"big\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [4, 20]},"
             " \"out\": {\"dtype\": \"F32\", \"shape\": [10], \"data_offsets\": [0, 40]}}",
             zeros, 40);
    expect_fail(in_dir("o2.safetensors"), "o2.safetensors", "out", "overlap", NULL);
    /* Two tensors with the same name in one header. */
    write_st("dup.safetensors",
             "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
             " \"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
             zeros, 8);
    expect_fail(in_dir("dup.safetensors"), "dup.safetensors", "tensor x", "appears twice", NULL);
    /* ... and with the same bytes: named twice, not reported as an overlap. */
    write_st("dup2.safetensors",
             "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
             " \"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
             zeros, 4);
    expect_fail(in_dir("dup2.safetensors"), "dup2.safetensors", "tensor x", "appears twice", NULL);
    /* Empty tensors may sit anywhere, even inside another. */
    write_st("e.safetensors",
             "{\"x\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
             " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 8]},"
             " \"f\": {\"dtype\": \"F32\", \"shape\": [3, 0], \"data_offsets\": [16, 16]}}",
             zeros, 16);
    gm_weights *a = st_open(in_dir("e.safetensors"), NULL);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_EQUAL(weights_count(a), 3);
    weights_close(a);
}

/* A real checkpoint cut inside its data section. */
static void test_truncated(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("st-truncated"));
    gm_err e = {{0}};
    size_t len;
    char *file = gm_read_file(test_path("golden/tiny-gemma2/model.safetensors"), &len, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    write_raw("model.safetensors", file, len - 1000);
    expect_fail(in_dir("model.safetensors"), "model.safetensors", "tensor ", "end past the data section",
                "truncated", NULL);
    expect_fail(dir, "model.safetensors", "end past the data section", NULL);
    write_raw("head.safetensors", file, 4000); /* cut inside the header */
    expect_fail(in_dir("head.safetensors"), "head.safetensors", "header length 4840", "past the end", NULL);
    free(file);
}

static void test_bad_index(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("st-index"));
    write_shards();
    write_index("missing-shard.json", GOOD_MAP ", \"q\": \"m-3.safetensors\"");
    expect_fail(in_dir("missing-shard.json"), "m-3.safetensors", "No such file", "missing-shard.json", NULL);
    write_index("missing-tensor.json", GOOD_MAP ", \"q\": \"m-1.safetensors\"");
    expect_fail(in_dir("missing-tensor.json"), "missing-tensor.json", "tensor q", "m-1.safetensors",
                "does not hold it", NULL);
    write_index("wrong-shard.json", "\"a\": \"m-2.safetensors\", \"b\": \"m-1.safetensors\"");
    expect_fail(in_dir("wrong-shard.json"), "wrong-shard.json", "tensor a", "m-2.safetensors", "but it is in",
                NULL);
    write_index("not-string.json", "\"a\": 3");
    expect_fail(in_dir("not-string.json"), "not-string.json", "tensor a", "not a string", NULL);
    write_index("empty-map.json", "");
    expect_fail(in_dir("empty-map.json"), "empty-map.json", "weight_map is empty", NULL);
    write_raw("no-map.json", "{\"metadata\": {}}", 16);
    expect_fail(in_dir("no-map.json"), "no-map.json", "no \"weight_map\"", NULL);
    write_raw("bad.json", "{\"weight_map\": ", 15);
    expect_fail(in_dir("bad.json"), "bad.json", "not valid JSON", NULL);
    /* A shard with a broken header names both shard and index. */
    write_st("m-bad.safetensors", "{\"r\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}",
             "12345678", 8);
    write_index("bad-shard.json", GOOD_MAP ", \"r\": \"m-bad.safetensors\"");
    expect_fail(in_dir("bad-shard.json"), "m-bad.safetensors", "tensor r", "F64", "bad-shard.json", NULL);
    /* The same tensor in two shards. */
    write_st("m-dup.safetensors", "{\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
             vs, 4);
    write_index("dup.json", GOOD_MAP ", \"x\": \"m-dup.safetensors\"");
    expect_fail(in_dir("dup.json"), "tensor b", "held twice", "m-1.safetensors", "m-dup.safetensors", NULL);
    /* An index in a directory wins, and its faults are reported. */
    write_index("model.safetensors.index.json", "\"a\": \"gone.safetensors\"");
    expect_fail(dir, "gone.safetensors", "No such file", "model.safetensors.index.json", NULL);
}

/* A NULL error record is allowed. */
static void test_null_err(void) {
    CU_ASSERT_PTR_NULL(st_open("/nonexistent/gemmac/ckpt", NULL));
    CU_ASSERT_EQUAL(weights_count(NULL), 0);
    CU_ASSERT_PTR_NULL(weights_get(NULL, 0));
    CU_ASSERT_PTR_NULL(weights_find(NULL, "a"));
    weights_close(NULL);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("safetensors", NULL, NULL);
    CU_add_test(s, "st_open_memory: the same tensors, the same checks", test_open_memory);
    CU_add_test(s, "golden f32 checkpoint", test_golden_f32);
    CU_add_test(s, "golden bf16 checkpoint", test_golden_bf16);
    CU_add_test(s, "golden values decode", test_golden_values);
    CU_add_test(s, "sharded checkpoint reads back", test_sharded);
    CU_add_test(s, "bad files", test_bad_files);
    CU_add_test(s, "bad header entries", test_bad_entries);
    CU_add_test(s, "overlapping and duplicate tensors", test_overlap);
    CU_add_test(s, "truncated checkpoint", test_truncated);
    CU_add_test(s, "bad index", test_bad_index);
    CU_add_test(s, "NULL error record", test_null_err);
    return test_run_all();
}
