/* gguf_write.c — writes llama.cpp GGUF files (version 3), the inverse of gguf.c.
 *
 * A writer collects the metadata (key/value pairs of every GGUF value type,
 * kept as the bytes the file will hold) and the tensor infos first, so that
 * the header, the metadata, the infos and every tensor's offset are known
 * before any data: then the tensors' bytes are streamed in order, in
 * pieces of any size, so that a model never has to sit in memory whole.
 * Each tensor starts at a multiple of general.alignment (32 unless the
 * metadata says otherwise) and is followed by zeros up to the next one, as
 * llama.cpp's gguf writer lays it out. Setting a key that is already there
 * removes the old pair and appends the new one (gguf_set_val_* do the
 * same), which keeps a copied file's key order. The file is written under
 * a temporary name beside the output and renamed only when complete, so
 * a failure never leaves a half-written file under the output's name. */
#define _POSIX_C_SOURCE 200809L

#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define DEFAULT_ALIGNMENT 32

typedef struct {
    char *key;
    gm_buf bytes; /* value type (uint32), then the value as the file holds it */
} wkv;

typedef struct {
    char *name;
    int ndim;
    int64_t ne[4];
    gm_dtype dtype;
    uint64_t offset, nbytes; /* in the data section */
} wtensor;

struct gguf_out {
    wkv *kvs;
    int n_kvs, cap_kvs;
    wtensor *tensors;
    int n_tensors, cap_tensors;
    char *path, *tmp;   /* output and temporary file, once begun */
    FILE *f;
    uint64_t alignment;
    int next;           /* tensor whose bytes come next */
    uint64_t written;   /* bytes of it written so far */
};

/* ---- little-endian bytes ---- */

static void put_le(gm_buf *b, uint64_t v, int n) {
    char c[8];
    for (int i = 0; i < n; i++) c[i] = (char)(v >> (8 * i));
    gm_buf_put(b, c, (size_t)n);
}

static void put_string(gm_buf *b, const char *s, size_t n) {
    put_le(b, n, 8);
    gm_buf_put(b, s, n);
}

static int value_size(gguf_value_type t) {
    static const int SIZES[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return (unsigned)t <= GGUF_T_FLOAT64 ? SIZES[t] : 0;
}

/* One fixed-size value of type t from a native C value at p. */
static void put_native(gm_buf *b, gguf_value_type t, const void *p) {
    int n = value_size(t);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u = 0;
    if (n == 1) memcpy(&u8, p, 1), u = u8;
    else if (n == 2) memcpy(&u16, p, 2), u = u16;
    else if (n == 4) memcpy(&u32, p, 4), u = u32;
    else memcpy(&u, p, 8);
    put_le(b, u, n);
}

/* ---- metadata ---- */

gguf_out *gguf_out_new(void) {
    gguf_out *w = gm_calloc(1, sizeof *w);
    w->alignment = DEFAULT_ALIGNMENT;
    return w;
}

void gguf_remove(gguf_out *w, const char *key) {
    for (int i = 0; i < w->n_kvs; i++)
        if (!strcmp(w->kvs[i].key, key)) {
            free(w->kvs[i].key);
            free(w->kvs[i].bytes.s);
            memmove(&w->kvs[i], &w->kvs[i + 1], (size_t)(w->n_kvs - i - 1) * sizeof *w->kvs);
            w->n_kvs--;
            return;
        }
}

/* A fresh pair for key at the end (an older one removed); its value type written. */
static gm_buf *new_kv(gguf_out *w, const char *key, gguf_value_type t) {
    gguf_remove(w, key);
    if (w->n_kvs == w->cap_kvs) w->kvs = gm_realloc(w->kvs, (size_t)(w->cap_kvs = 2 * w->cap_kvs + 16) * sizeof *w->kvs);
    wkv *kv = &w->kvs[w->n_kvs++];
    *kv = (wkv){.key = gm_strdup(key)};
    put_le(&kv->bytes, (uint64_t)t, 4);
    return &kv->bytes;
}

void gguf_set_int(gguf_out *w, const char *key, gguf_value_type t, int64_t v) {
    put_le(new_kv(w, key, t), (uint64_t)v, value_size(t));
}

void gguf_set_float(gguf_out *w, const char *key, gguf_value_type t, double v) {
    gm_buf *b = new_kv(w, key, t);
    if (t == GGUF_T_FLOAT64) return put_native(b, t, &v);
    float f = (float)v;
    put_native(b, GGUF_T_FLOAT32, &f);
}

void gguf_set_string(gguf_out *w, const char *key, const char *s) {
    put_string(new_kv(w, key, GGUF_T_STRING), s, strlen(s));
}

void gguf_set_array(gguf_out *w, const char *key, gguf_value_type elem, uint64_t n, const void *values) {
    gm_buf *b = new_kv(w, key, GGUF_T_ARRAY);
    put_le(b, (uint64_t)elem, 4);
    put_le(b, n, 8);
    for (uint64_t i = 0; i < n; i++)
        if (elem == GGUF_T_STRING) put_string(b, ((const char *const *)values)[i], strlen(((const char *const *)values)[i]));
        else put_native(b, elem, (const uint8_t *)values + i * (uint64_t)value_size(elem));
}

/* Bytes of `count` strings as a file holds them (length-prefixed, back to back) at p. */
static size_t strings_bytes(const uint8_t *p, uint64_t count) {
    size_t n = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t len = 0;
        for (int k = 0; k < 8; k++) len |= (uint64_t)p[n + k] << (8 * k);
        n += 8 + (size_t)len;
    }
    return n;
}

void gguf_set_kv(gguf_out *w, const gguf_kv *kv) {
    gm_buf *b = new_kv(w, kv->key, kv->type);
    if (kv->type == GGUF_T_ARRAY) {
        put_le(b, (uint64_t)kv->elem_type, 4);
        put_le(b, kv->count, 8);
    }
    size_t n = kv->elem_type == GGUF_T_STRING ? strings_bytes(kv->data, kv->count)
                                               : (size_t)kv->count * (size_t)value_size(kv->elem_type);
    gm_buf_put(b, kv->data, n);
}

/* ---- tensors ---- */

int gguf_ggml_type(gm_dtype t) {
    static const int IDS[GM_DTYPE_COUNT] = {
        [GM_F32] = 0, [GM_F16] = 1, [GM_BF16] = 30, [GM_I32] = 26, [GM_Q8_0] = 8, [GM_Q4_0] = 2,
        [GM_Q4_1] = 3, [GM_Q5_0] = 6, [GM_Q5_1] = 7, [GM_Q4_K] = 12, [GM_Q5_K] = 13, [GM_Q6_K] = 14,
    };
    return (unsigned)t < GM_DTYPE_COUNT ? IDS[t] : -1;
}

int gguf_add_tensor(gguf_out *w, const char *name, int ndim, const int64_t *ne, gm_dtype t, gm_err *e) {
    if (ndim < 1 || ndim > 4)
        return gm_fail(e, "tensor %s: %d dimensions, a GGUF tensor has 1 to 4", name, ndim);
    if (ne[0] % gm_dtype_block(t))
        return gm_fail(e, "tensor %s: row length %lld is not a multiple of the %s block (%d); choose another type",
                       name, (long long)ne[0], gm_dtype_name(t), gm_dtype_block(t));
    for (int i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return gm_fail(e, "tensor %s: added twice; a GGUF file holds each name once", name);
    if (w->n_tensors == w->cap_tensors)
        w->tensors = gm_realloc(w->tensors, (size_t)(w->cap_tensors = 2 * w->cap_tensors + 16) * sizeof *w->tensors);
    wtensor *x = &w->tensors[w->n_tensors++];
    *x = (wtensor){.name = gm_strdup(name), .ndim = ndim, .ne = {1, 1, 1, 1}, .dtype = t};
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) x->ne[i] = ne[i], n *= ne[i];
    x->nbytes = gm_dtype_bytes(t, n);
    return 0;
}

/* ---- writing ---- */

static uint64_t pad(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* general.alignment, when set: a uint32 power of two, a multiple of 8 (what gguf.c accepts). */
static int read_alignment(gguf_out *w, gm_err *e) {
    for (int i = 0; i < w->n_kvs; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment")) continue;
        const uint8_t *p = (const uint8_t *)w->kvs[i].bytes.s;
        uint32_t type = (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t a = w->kvs[i].bytes.len == 8 ? (uint32_t)(p[4] | p[5] << 8 | p[6] << 16 | (uint32_t)p[7] << 24) : 0;
        if (type != GGUF_T_UINT32 || a < 8 || (a & (a - 1)))
            return gm_fail(e, "%s: general.alignment must be a uint32 power of two, a multiple of 8 (default 32)", w->path);
        w->alignment = a;
    }
    return 0;
}

static int write_bytes(gguf_out *w, const void *p, size_t n, gm_err *e) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return gm_fail(e, "%s: cannot write %s: %s", w->path, w->tmp, strerror(errno));
    return 0;
}

static int write_zeros(gguf_out *w, uint64_t n, gm_err *e) {
    static const char zeros[64];
    for (; n; n -= n < 64 ? n : 64)
        if (write_bytes(w, zeros, n < 64 ? (size_t)n : 64, e)) return -1;
    return 0;
}

/* Header, metadata and tensor infos, as one buffer. */
static gm_buf head(const gguf_out *w) {
    gm_buf b = {0};
    gm_buf_put(&b, "GGUF", 4);
    put_le(&b, 3, 4);
    put_le(&b, (uint64_t)w->n_tensors, 8);
    put_le(&b, (uint64_t)w->n_kvs, 8);
    for (int i = 0; i < w->n_kvs; i++) {
        put_string(&b, w->kvs[i].key, strlen(w->kvs[i].key));
        gm_buf_put(&b, w->kvs[i].bytes.s, w->kvs[i].bytes.len);
    }
    for (int i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        put_string(&b, t->name, strlen(t->name));
        put_le(&b, (uint64_t)t->ndim, 4);
        for (int d = 0; d < t->ndim; d++) put_le(&b, (uint64_t)t->ne[d], 8);
        put_le(&b, (uint64_t)gguf_ggml_type(t->dtype), 4);
        put_le(&b, t->offset, 8);
    }
    return b;
}

int gguf_write_begin(gguf_out *w, const char *path, gm_err *e) {
    size_t n = strlen(path) + 32;
    w->path = gm_strdup(path);
    w->tmp = gm_malloc(n);
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    if (read_alignment(w, e)) return -1;
    uint64_t offset = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = offset;
        offset += pad(w->tensors[i].nbytes, w->alignment);
    }
    if (!(w->f = fopen(w->tmp, "wb")))
        return gm_fail(e, "%s: cannot create %s: %s (is the directory writable?)", path, w->tmp, strerror(errno));
    gm_buf b = head(w);
    int rc = write_bytes(w, b.s, b.len, e) || write_zeros(w, pad(b.len, w->alignment) - b.len, e) ? -1 : 0;
    free(b.s);
    return rc;
}

/* Past the tensors that hold no bytes, which nothing is written for. */
static void skip_empty(gguf_out *w) {
    while (w->next < w->n_tensors && !w->tensors[w->next].nbytes) w->next++;
}

int gguf_write_data(gguf_out *w, const void *data, size_t n, gm_err *e) {
    const uint8_t *p = data;
    skip_empty(w);
    while (n) {
        if (w->next >= w->n_tensors)
            return gm_fail(e, "%s: %zu bytes of tensor data more than the %d tensors hold", w->path, n, w->n_tensors);
        const wtensor *t = &w->tensors[w->next];
        uint64_t take = t->nbytes - w->written < n ? t->nbytes - w->written : n;
        if (write_bytes(w, p, (size_t)take, e)) return -1;
        p += take, n -= (size_t)take, w->written += take;
        if (w->written == t->nbytes) {
            if (write_zeros(w, pad(t->nbytes, w->alignment) - t->nbytes, e)) return -1;
            w->next++, w->written = 0;
            skip_empty(w);
        }
    }
    return 0;
}

int gguf_write_finish(gguf_out *w, gm_err *e) {
    skip_empty(w);
    if (w->next < w->n_tensors)
        return gm_fail(e, "%s: tensor %s: %llu of its %llu bytes written; the file is incomplete", w->path,
                       w->tensors[w->next].name, (unsigned long long)w->written,
                       (unsigned long long)w->tensors[w->next].nbytes);
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) return gm_fail(e, "%s: cannot write %s: %s", w->path, w->tmp, strerror(errno));
    if (rename(w->tmp, w->path) != 0) return gm_fail(e, "%s: cannot rename %s to it: %s", w->path, w->tmp, strerror(errno));
    free(w->tmp);
    w->tmp = NULL;
    return 0;
}

void gguf_out_free(gguf_out *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    for (int i = 0; i < w->n_kvs; i++) free(w->kvs[i].key), free(w->kvs[i].bytes.s);
    for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w->path);
    free(w->tmp);
    free(w);
}
