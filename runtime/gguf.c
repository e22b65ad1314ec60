/* gguf.c — reads llama.cpp GGUF files (v2/v3) and decodes their quantized tensors.
 *
 * A GGUF file is a 24-byte header (magic "GGUF", version, tensor and key
 * counts), a list of typed key/value pairs, a list of tensor infos (name,
 * dimensions, ggml type, offset), zero padding to the alignment, and the data
 * section. Nothing in it says how long a value is, so the reader walks every
 * field with a cursor that refuses to step past the mapping (or the bytes
 * gguf_open_memory was given), and checks every
 * claim before anything may point into the file: counts that the file size
 * can hold, strings and arrays inside the file, known value types, bools 0/1,
 * no duplicate keys or tensor names, general.alignment a uint32 power of two
 * (a multiple of 8), tensors of 1..4 dimensions whose type this reader
 * decodes, rows a whole number of blocks, sizes in overflow-checked uint64
 * arithmetic, offsets aligned, data inside the file and not overlapping.
 * Values and tensor data stay in the read-only mapping.
 *
 * Quantized types are decoded from their published block layouts (the table
 * TYPES: elements per block, bytes per block, the dtype gemmac holds them as;
 * the decoders are runtime/quant.c's). gguf_weights turns the file into an
 * gm_weights: float tensors and the block formats the kernels read point
 * into the mapping as stored; Q2_K and Q3_K, which no kernel reads, are
 * dequantized once into owned f32 buffers, split into chunks that the worker
 * pool (runtime/threads.h) decodes in parallel. */
#include "gguf.h"

#include "threads.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_BYTES 24
#define DEFAULT_ALIGNMENT 32
#define MAX_DIMS 4
#define MIN_KV_BYTES 14      /* key length 8 + 1 key byte + type 4 + 1 value byte */
#define MIN_TENSOR_BYTES 33  /* name length 8 + 1 name byte + ndim 4 + ne 8 + type 4 + offset 8 */
#define SUPPORTED_TYPES "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K"
#define CHUNK_ELEMS (1 << 20) /* elements one worker decodes at a time */

/* ---- little-endian loads (the mapping has no alignment guarantees) ---- */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }
static float f16_at(const uint8_t *p) { return gm_f16_to_f32(le16(p)); }

static float f32_at(const uint8_t *p) {
    uint32_t u = le32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double f64_at(const uint8_t *p) {
    uint64_t u = le64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* ---- block decoders: n whole blocks from src into dst ---- */

typedef void dequant_fn(const uint8_t *src, float *dst, int64_t n_blocks);

/* Q2_K: 16 scale/min nibble pairs, 64 bytes of 2-bit quants, f16 d and dmin
 * at the end. Each 128-element half reads 32 quant bytes four times, two bits
 * further each time; every 16 elements take the next scale byte. */
static void dq_q2_k(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 84, y += 256) {
        const uint8_t *scales = b, *qs = b + 16;
        float d = f16_at(b + 80), dmin = f16_at(b + 82);
        for (int h = 0; h < 2; h++)
            for (int shift = 0; shift < 4; shift++)
                for (int half = 0; half < 2; half++) {
                    uint8_t sc = scales[8 * h + 2 * shift + half];
                    float dl = d * (float)(sc & 15), ml = dmin * (float)(sc >> 4);
                    float *out = y + 128 * h + 32 * shift + 16 * half;
                    const uint8_t *q = qs + 32 * h + 16 * half;
                    for (int l = 0; l < 16; l++) out[l] = dl * (float)((q[l] >> (2 * shift)) & 3) - ml;
                }
    }
}

/* Q3_K: a 32-byte high-bit mask, 64 bytes of 2-bit quants, 16 signed 6-bit
 * scales packed in 12 bytes, f16 d. A clear high bit subtracts 4. */
static void dq_q3_k(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 110, y += 256) {
        const uint8_t *hmask = b, *qs = b + 32, *s = b + 96;
        float d = f16_at(b + 108), dl[16];
        for (int k = 0; k < 16; k++) {
            int low4 = (s[k % 8] >> (4 * (k / 8))) & 15, high2 = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
            dl[k] = d * (float)((low4 | high2 << 4) - 32);
        }
        for (int h = 0; h < 2; h++)
            for (int shift = 0; shift < 4; shift++) {
                float *out = y + 128 * h + 32 * shift;
                const float *scale = dl + 8 * h + 2 * shift;
                for (int l = 0; l < 32; l++) {
                    int q = ((qs[32 * h + l] >> (2 * shift)) & 3) - ((hmask[l] >> (4 * h + shift)) & 1 ? 0 : 4);
                    out[l] = scale[l / 16] * (float)q;
                }
            }
    }
}

/* ---- the type table ---- */

/* A type this reader knows is held in gemmac as `dtype`: the float types
 * and the block formats of runtime/quant.h as stored, mapped; Q2_K and Q3_K,
 * which no kernel reads, are decoded into f32 at load by `expand`. */
typedef struct {
    const char *name;
    int block_elems, block_bytes; /* 0 when this reader does not decode the type */
    gm_dtype dtype;
    dequant_fn *expand;           /* the decoder of a type held as f32 that is stored otherwise, else NULL */
} type_info;

static const type_info TYPES[] = {
    [0] = {"F32", 1, 4, GM_F32, 0},        [1] = {"F16", 1, 2, GM_F16, 0},
    [2] = {"Q4_0", 32, 18, GM_Q4_0, 0},    [3] = {"Q4_1", 32, 20, GM_Q4_1, 0},
    [4] = {"Q4_2 (removed)", 0, 0, 0},  [5] = {"Q4_3 (removed)", 0, 0, 0},
    [6] = {"Q5_0", 32, 22, GM_Q5_0, 0},    [7] = {"Q5_1", 32, 24, GM_Q5_1, 0},
    [8] = {"Q8_0", 32, 34, GM_Q8_0, 0},    [9] = {"Q8_1", 0, 0, 0},
    [10] = {"Q2_K", 256, 84, GM_F32, dq_q2_k},  [11] = {"Q3_K", 256, 110, GM_F32, dq_q3_k},
    [12] = {"Q4_K", 256, 144, GM_Q4_K, 0}, [13] = {"Q5_K", 256, 176, GM_Q5_K, 0},
    [14] = {"Q6_K", 256, 210, GM_Q6_K, 0}, [15] = {"Q8_K", 0, 0, 0},
    [16] = {"IQ2_XXS", 0, 0, 0},        [17] = {"IQ2_XS", 0, 0, 0},
    [18] = {"IQ3_XXS", 0, 0, 0},        [19] = {"IQ1_S", 0, 0, 0},
    [20] = {"IQ4_NL", 0, 0, 0},         [21] = {"IQ3_S", 0, 0, 0},
    [22] = {"IQ2_S", 0, 0, 0},          [23] = {"IQ4_XS", 0, 0, 0},
    [24] = {"I8", 0, 0, 0},             [25] = {"I16", 0, 0, 0},
    [26] = {"I32", 0, 0, 0},            [27] = {"I64", 0, 0, 0},
    [28] = {"F64", 0, 0, 0},            [29] = {"IQ1_M", 0, 0, 0},
    [30] = {"BF16", 1, 2, GM_BF16, 0},     [31] = {"Q4_0_4_4 (removed)", 0, 0, 0},
    [32] = {"Q4_0_4_8 (removed)", 0, 0, 0}, [33] = {"Q4_0_8_8 (removed)", 0, 0, 0},
    [34] = {"TQ1_0", 0, 0, 0},          [35] = {"TQ2_0", 0, 0, 0},
    [36] = {"IQ4_NL_4_4 (removed)", 0, 0, 0}, [37] = {"IQ4_NL_4_8 (removed)", 0, 0, 0},
    [38] = {"IQ4_NL_8_8 (removed)", 0, 0, 0}, [39] = {"MXFP4", 0, 0, 0},
    [40] = {"NVFP4", 0, 0, 0},          [41] = {"Q1_0", 0, 0, 0},
    [42] = {"Q2_0", 0, 0, 0},
};

#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

/* The table entry of a type this reader decodes, else NULL. */
static const type_info *decodable(uint32_t type) {
    return type < N_TYPES && TYPES[type].block_elems ? &TYPES[type] : NULL;
}

const char *gguf_type_name(uint32_t type) { return type < N_TYPES ? TYPES[type].name : "unknown"; }

int gguf_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    const type_info *t = decodable(type);
    if (!t || n < 0 || n % t->block_elems) return -1;
    if (t->expand) t->expand(src, dst, n / t->block_elems);
    else gm_to_f32(t->dtype, src, dst, (size_t)n);
    return 0;
}

/* ---- metadata value types ---- */

static const char *const VALUE_TYPE_NAMES[] = {"uint8", "int8",   "uint16", "int16", "uint32", "int32", "float32",
                                               "bool",  "string", "array",  "uint64", "int64", "float64"};
#define N_VALUE_TYPES 13

static const char *value_type_name(gguf_value_type t) {
    return (unsigned)t < N_VALUE_TYPES ? VALUE_TYPE_NAMES[t] : "unknown";
}

/* Bytes of one value of a fixed-size type; 0 for string and array. */
static uint64_t value_size(gguf_value_type t) {
    static const uint8_t SIZES[N_VALUE_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return SIZES[t];
}

static int is_integer(gguf_value_type t) {
    return t <= GGUF_T_INT32 || t == GGUF_T_UINT64 || t == GGUF_T_INT64;
}

/* Integer value at p: 0, or -1 when a uint64 exceeds int64. */
static int integer_at(gguf_value_type t, const uint8_t *p, int64_t *v) {
    switch (t) {
    case GGUF_T_UINT8: *v = p[0]; return 0;
    case GGUF_T_INT8: *v = (int8_t)p[0]; return 0;
    case GGUF_T_UINT16: *v = le16(p); return 0;
    case GGUF_T_INT16: *v = (int16_t)le16(p); return 0;
    case GGUF_T_UINT32: *v = le32(p); return 0;
    case GGUF_T_INT32: *v = (int32_t)le32(p); return 0;
    case GGUF_T_INT64: *v = (int64_t)le64(p); return 0;
    case GGUF_T_UINT64: *v = (int64_t)le64(p); return le64(p) > INT64_MAX ? -1 : 0;
    default: return -1;
    }
}

static double number_at(gguf_value_type t, const uint8_t *p) {
    int64_t v;
    switch (t) {
    case GGUF_T_FLOAT32: return f32_at(p);
    case GGUF_T_FLOAT64: return f64_at(p);
    case GGUF_T_BOOL: return p[0];
    case GGUF_T_UINT64: return (double)le64(p);
    default: return integer_at(t, p, &v) ? NAN : (double)v;
    }
}

/* ---- the file ---- */

typedef struct {
    gguf_kv kv;              /* first, so that a gguf_kv * leads back here */
    char *key;
    const uint8_t **strings; /* string values: each element's length prefix */
} kv_entry;

struct gguf_file {
    char *path;
    uint8_t *map;
    size_t size;
    int mapped;              /* map is ours to munmap (not gguf_open_memory's bytes) */
    kv_entry *kvs;
    int n_kvs;
    kv_entry **kvs_by_key;
    gguf_tensor *tensors;
    int n_tensors;
    gguf_tensor **tensors_by_name;
    uint64_t alignment, data_start;
};

/* A cursor over the mapping that fails rather than step past its end. */
typedef struct {
    const gguf_file *g;
    uint64_t pos;
    char what[128]; /* what is being read, for messages: "key general.name" */
    gm_err *e;
} reader;

static const uint8_t *take(reader *r, uint64_t n, const char *field) {
    uint64_t left = r->g->size - r->pos;
    if (n > left) {
        gm_fail(r->e, "%s: %s: %s (%llu bytes at offset %llu) runs past the end of the file (%llu bytes); the file is truncated",
                r->g->path, r->what, field, (unsigned long long)n, (unsigned long long)r->pos,
                (unsigned long long)r->g->size);
        return NULL;
    }
    const uint8_t *p = r->g->map + r->pos;
    r->pos += n;
    return p;
}

static int take_u32(reader *r, uint32_t *v, const char *field) {
    const uint8_t *p = take(r, 4, field);
    if (!p) return -1;
    *v = le32(p);
    return 0;
}

static int take_u64(reader *r, uint64_t *v, const char *field) {
    const uint8_t *p = take(r, 8, field);
    if (!p) return -1;
    *v = le64(p);
    return 0;
}

/* A gguf string (uint64 length + bytes); *s points at its bytes. */
static int take_string(reader *r, const uint8_t **s, uint64_t *len, const char *field) {
    if (take_u64(r, len, field)) return -1;
    uint64_t left = r->g->size - r->pos;
    if (*len > left)
        return gm_fail(r->e, "%s: %s: %s length %llu at offset %llu runs past the end of the file (%llu bytes left); the file is truncated or corrupt",
                       r->g->path, r->what, field, (unsigned long long)*len, (unsigned long long)(r->pos - 8),
                       (unsigned long long)left);
    *s = take(r, *len, field);
    return 0;
}

/* A key or tensor name: non-empty, printable, copied with a NUL. */
static char *take_name(reader *r, const char *field) {
    const uint8_t *s;
    uint64_t len;
    if (take_string(r, &s, &len, field)) return NULL;
    if (len == 0) {
        gm_fail(r->e, "%s: %s: %s is empty; the file is corrupt", r->g->path, r->what, field);
        return NULL;
    }
    for (uint64_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f) {
            gm_fail(r->e, "%s: %s: %s holds control byte 0x%02x at position %llu; the file is corrupt",
                    r->g->path, r->what, field, s[i], (unsigned long long)i);
            return NULL;
        }
    char *name = gm_malloc((size_t)len + 1);
    memcpy(name, s, (size_t)len);
    name[len] = 0;
    return name;
}

/* ---- header ---- */

static int parse_header(reader *r, uint64_t *n_tensors, uint64_t *n_kvs) {
    const gguf_file *g = r->g;
    snprintf(r->what, sizeof r->what, "header");
    if (g->size >= 4 && memcmp(g->map, "GGUF", 4)) {
        char found[16];
        snprintf(found, sizeof found, "%02x %02x %02x %02x", g->map[0], g->map[1], g->map[2], g->map[3]);
        return gm_fail(r->e, "%s: magic is [%s], expected \"GGUF\" [47 47 55 46]; this is not a GGUF file",
                       g->path, found);
    }
    if (g->size < HEADER_BYTES)
        return gm_fail(r->e, "%s: file is %zu bytes, shorter than the %d-byte GGUF header; the file is truncated",
                       g->path, g->size, HEADER_BYTES);
    uint32_t version;
    r->pos = 4;
    if (take_u32(r, &version, "version") || take_u64(r, n_tensors, "tensor count") ||
        take_u64(r, n_kvs, "key/value count"))
        return -1;
    if (version && !(version & 0xffff))
        return gm_fail(r->e, "%s: version is 0x%08x, which looks byte-swapped; this is probably a big-endian GGUF file, which gemmac does not read",
                       g->path, version);
    if (version == 1)
        return gm_fail(r->e, "%s: GGUF version 1 is obsolete (expected version 2 or 3); reconvert the model with a current llama.cpp",
                       g->path);
    if (version < 2 || version > 3)
        return gm_fail(r->e, "%s: GGUF version %u is not supported (expected 2 or 3)", g->path, version);
    uint64_t room = g->size - HEADER_BYTES;
    if (*n_kvs > room / MIN_KV_BYTES || *n_kvs > INT_MAX)
        return gm_fail(r->e, "%s: header claims %llu keys, more than the %llu bytes after it can hold; the file is truncated or its header corrupt",
                       g->path, (unsigned long long)*n_kvs, (unsigned long long)room);
    return 0;
}

/* ---- key/value pairs ---- */

/* count values of type t at the cursor: inside the file, bools 0/1, each
 * string's length prefix recorded in kv->strings. */
static int take_values(reader *r, kv_entry *kv, gguf_value_type t, uint64_t count) {
    const gguf_file *g = r->g;
    uint64_t size = value_size(t), left = g->size - r->pos;
    if (t == GGUF_T_STRING) {
        if (count > left / 8)
            return gm_fail(r->e, "%s: %s: %llu strings cannot fit in the %llu bytes left in the file; the file is truncated or corrupt",
                           g->path, r->what, (unsigned long long)count, (unsigned long long)left);
        kv->strings = gm_malloc((size_t)(count ? count : 1) * sizeof *kv->strings);
        kv->kv.data = g->map + r->pos;
        for (uint64_t i = 0; i < count; i++) {
            const uint8_t *s;
            uint64_t len;
            kv->strings[i] = g->map + r->pos;
            if (take_string(r, &s, &len, "string")) return -1;
        }
        return 0;
    }
    if (count > left / size)
        return gm_fail(r->e, "%s: %s: %llu values of %llu bytes run past the end of the file (%llu bytes left); the file is truncated or corrupt",
                       g->path, r->what, (unsigned long long)count, (unsigned long long)size, (unsigned long long)left);
    const uint8_t *p = take(r, count * size, "value");
    kv->kv.data = p;
    for (uint64_t i = 0; t == GGUF_T_BOOL && i < count; i++)
        if (p[i] > 1)
            return gm_fail(r->e, "%s: %s: bool value %llu is %u, expected 0 or 1; the file is corrupt", g->path,
                           r->what, (unsigned long long)i, p[i]);
    return 0;
}

static int take_value_type(reader *r, gguf_value_type *t, const char *field) {
    uint32_t v;
    if (take_u32(r, &v, field)) return -1;
    if (v >= N_VALUE_TYPES)
        return gm_fail(r->e, "%s: %s: %s %u is unknown (expected 0..12); the file is corrupt or from a newer GGUF",
                       r->g->path, r->what, field, v);
    *t = (gguf_value_type)v;
    return 0;
}

static int parse_kv(reader *r, int i, kv_entry *kv) {
    snprintf(r->what, sizeof r->what, "key #%d", i);
    if (!(kv->key = take_name(r, "name"))) return -1;
    kv->kv.key = kv->key;
    snprintf(r->what, sizeof r->what, "key %.100s", kv->key);
    if (take_value_type(r, &kv->kv.type, "value type")) return -1;
    kv->kv.elem_type = kv->kv.type;
    kv->kv.count = 1;
    if (kv->kv.type == GGUF_T_ARRAY) {
        if (take_value_type(r, &kv->kv.elem_type, "array element type") ||
            take_u64(r, &kv->kv.count, "array length"))
            return -1;
        if (kv->kv.elem_type == GGUF_T_ARRAY)
            return gm_fail(r->e, "%s: %s: an array of arrays is not supported (llama.cpp refuses them too)",
                           r->g->path, r->what);
    }
    return take_values(r, kv, kv->kv.elem_type, kv->kv.count);
}

static int by_key(const void *x, const void *y) {
    return strcmp((*(kv_entry *const *)x)->key, (*(kv_entry *const *)y)->key);
}

static int parse_kvs(reader *r, gguf_file *g, uint64_t n) {
    g->kvs = gm_calloc((size_t)n + 1, sizeof *g->kvs);
    for (; g->n_kvs < (int)n; g->n_kvs++)
        if (parse_kv(r, g->n_kvs, &g->kvs[g->n_kvs])) return g->n_kvs++, -1;
    g->kvs_by_key = gm_malloc(((size_t)n + 1) * sizeof *g->kvs_by_key);
    for (int i = 0; i < g->n_kvs; i++) g->kvs_by_key[i] = &g->kvs[i];
    qsort(g->kvs_by_key, (size_t)g->n_kvs, sizeof *g->kvs_by_key, by_key);
    for (int i = 1; i < g->n_kvs; i++)
        if (!strcmp(g->kvs_by_key[i - 1]->key, g->kvs_by_key[i]->key))
            return gm_fail(r->e, "%s: key %s appears twice; a GGUF file holds each key once", g->path,
                           g->kvs_by_key[i]->key);
    return 0;
}

static int find_alignment(gguf_file *g, gm_err *e) {
    const gguf_kv *kv = gguf_find(g, "general.alignment");
    g->alignment = DEFAULT_ALIGNMENT;
    if (!kv) return 0;
    if (kv->type != GGUF_T_UINT32)
        return gm_fail(e, "%s: key general.alignment has type %s, expected uint32; the file is corrupt", g->path,
                       value_type_name(kv->type));
    uint32_t a = le32(kv->data);
    if (a < 8 || (a & (a - 1)))
        return gm_fail(e, "%s: key general.alignment is %u, expected a power of two that is a multiple of 8 (default 32); the file is corrupt",
                       g->path, a);
    g->alignment = a;
    return 0;
}

/* ---- tensor infos ---- */

/* Bytes of the tensor's data, from its type and dimensions, overflow-checked. */
static int tensor_bytes(reader *r, const gguf_tensor *t, const type_info *ti, uint64_t *nbytes) {
    if (t->ne[0] % ti->block_elems)
        return gm_fail(r->e, "%s: %s: row length ne[0] = %lld is not a multiple of the %s block size %d; the file is corrupt",
                       r->g->path, r->what, (long long)t->ne[0], ti->name, ti->block_elems);
    uint64_t elems = 1, bytes = (uint64_t)(t->ne[0] / ti->block_elems) * (uint64_t)ti->block_bytes;
    int overflow = t->ne[0] && bytes / (uint64_t)ti->block_bytes != (uint64_t)(t->ne[0] / ti->block_elems);
    for (int i = 0; i < MAX_DIMS && !overflow; i++) {
        uint64_t d = (uint64_t)t->ne[i];
        if (d && elems > INT64_MAX / d) overflow = 1;
        elems *= d;
        if (i && d && bytes > UINT64_MAX / d) overflow = 1;
        if (i) bytes *= d;
    }
    if (overflow)
        return gm_fail(r->e, "%s: %s: dimensions [%lld, %lld, %lld, %lld] are too large (the size overflows 64 bits); the file is corrupt",
                       r->g->path, r->what, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                       (long long)t->ne[3]);
    *nbytes = bytes;
    return 0;
}

static int check_type(reader *r, uint32_t type) {
    if (decodable(type)) return 0;
    if (type < N_TYPES)
        return gm_fail(r->e, "%s: %s: type %s (%u) is not supported (supported: " SUPPORTED_TYPES
                       "); requantize the model to one of these", r->g->path, r->what, TYPES[type].name, type);
    return gm_fail(r->e, "%s: %s: type id %u is unknown (supported: " SUPPORTED_TYPES
                   "); the file is corrupt or from a newer ggml", r->g->path, r->what, type);
}

/* One tensor info; the data offset is kept in t->data until the data section is known. */
static int parse_tensor_info(reader *r, int i, gguf_tensor *t, uint64_t *offset) {
    snprintf(r->what, sizeof r->what, "tensor info #%d", i);
    if (!(t->name = take_name(r, "name"))) return -1;
    snprintf(r->what, sizeof r->what, "tensor %.100s", t->name);
    uint32_t ndim;
    if (take_u32(r, &ndim, "dimension count")) return -1;
    if (ndim < 1 || ndim > MAX_DIMS)
        return gm_fail(r->e, "%s: %s: %u dimensions, expected 1 to %d; the file is corrupt", r->g->path, r->what,
                       ndim, MAX_DIMS);
    t->ndim = (int)ndim;
    for (int d = 0; d < MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->ndim && take_u64(r, &ne, "dimension")) return -1;
        if (ne > INT64_MAX)
            return gm_fail(r->e, "%s: %s: ne[%d] = %llu is larger than 2^63-1; the file is corrupt", r->g->path,
                           r->what, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
    }
    uint64_t nbytes = 0;
    if (take_u32(r, &t->ggml_type, "type") || check_type(r, t->ggml_type) ||
        tensor_bytes(r, t, decodable(t->ggml_type), &nbytes) || take_u64(r, offset, "data offset"))
        return -1;
    t->nbytes = (size_t)nbytes;
    return 0;
}

/* The tensor's data lies aligned and inside the data section. */
static int place_tensor(const gguf_file *g, gguf_tensor *t, uint64_t offset, gm_err *e) {
    uint64_t data_size = g->size - g->data_start;
    if (offset % g->alignment)
        return gm_fail(e, "%s: tensor %s: data offset %llu is not a multiple of the alignment %llu; the file is corrupt",
                       g->path, t->name, (unsigned long long)offset, (unsigned long long)g->alignment);
    if (offset > data_size || t->nbytes > data_size - offset)
        return gm_fail(e, "%s: tensor %s: data [%llu, +%zu bytes) ends past the end of the data section (%llu bytes); the file is truncated or corrupt",
                       g->path, t->name, (unsigned long long)offset, t->nbytes, (unsigned long long)data_size);
    t->data = g->map + g->data_start + offset;
    return 0;
}

static int by_data(const void *x, const void *y) {
    const uint8_t *p = (*(gguf_tensor *const *)x)->data, *q = (*(gguf_tensor *const *)y)->data;
    return p < q ? -1 : p > q;
}

static int by_name(const void *x, const void *y) {
    return strcmp((*(gguf_tensor *const *)x)->name, (*(gguf_tensor *const *)y)->name);
}

/* No two tensors share a byte or a name; leaves tensors_by_name sorted. */
static int check_tensors_distinct(gguf_file *g, gm_err *e) {
    gguf_tensor **order = g->tensors_by_name;
    size_t n = (size_t)g->n_tensors;
    qsort(order, n, sizeof *order, by_data);
    const gguf_tensor *last = NULL; /* the non-empty tensor reaching furthest so far */
    for (size_t i = 0; i < n; i++) {
        const gguf_tensor *t = order[i];
        const uint8_t *p = t->data, *base = g->map + g->data_start;
        if (!t->nbytes) continue;
        if (last && p < (const uint8_t *)last->data + last->nbytes)
            return gm_fail(e, "%s: tensors %s [offset %zu, +%zu) and %s [offset %zu, +%zu) overlap in the data section; the file is corrupt",
                           g->path, last->name, (size_t)((const uint8_t *)last->data - base), last->nbytes,
                           t->name, (size_t)(p - base), t->nbytes);
        if (!last || p + t->nbytes > (const uint8_t *)last->data + last->nbytes) last = t;
    }
    qsort(order, n, sizeof *order, by_name);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name))
            return gm_fail(e, "%s: tensor %s appears twice; a GGUF file holds each tensor once", g->path,
                           order[i]->name);
    return 0;
}

static int parse_tensors(reader *r, gguf_file *g, uint64_t n) {
    uint64_t room = g->size - r->pos;
    if (n > room / MIN_TENSOR_BYTES || n > INT_MAX)
        return gm_fail(r->e, "%s: header claims %llu tensors, more than the %llu bytes after the metadata can hold; the file is truncated or its header corrupt",
                       g->path, (unsigned long long)n, (unsigned long long)room);
    g->tensors = gm_calloc((size_t)n + 1, sizeof *g->tensors);
    uint64_t *offsets = gm_malloc(((size_t)n + 1) * sizeof *offsets);
    int rc = 0;
    for (; g->n_tensors < (int)n && !rc; g->n_tensors++)
        rc = parse_tensor_info(r, g->n_tensors, &g->tensors[g->n_tensors], &offsets[g->n_tensors]);
    g->data_start = r->pos + (g->alignment - r->pos % g->alignment) % g->alignment;
    if (!rc && n && g->data_start > g->size)
        rc = gm_fail(r->e, "%s: the data section would start at offset %llu, past the end of the file (%zu bytes); the file is truncated",
                     g->path, (unsigned long long)g->data_start, g->size);
    for (int i = 0; i < g->n_tensors && !rc; i++) rc = place_tensor(g, &g->tensors[i], offsets[i], r->e);
    free(offsets);
    g->tensors_by_name = gm_malloc(((size_t)n + 1) * sizeof *g->tensors_by_name);
    for (int i = 0; i < g->n_tensors; i++) g->tensors_by_name[i] = &g->tensors[i];
    return rc ? rc : check_tensors_distinct(g, r->e);
}

/* ---- open / close ---- */

/* g over the bytes at map (mapped here when `mapped`, else borrowed), parsed
 * and checked; NULL after closing it on failure. */
static gguf_file *open_bytes(const char *path, void *map, size_t size, int mapped, int rc, gm_err *e) {
    gguf_file *g = gm_calloc(1, sizeof *g);
    *g = (gguf_file){.path = gm_strdup(path), .map = map, .size = size, .mapped = mapped};
    reader r = {.g = g, .e = e};
    uint64_t n_tensors, n_kvs;
    if (rc || parse_header(&r, &n_tensors, &n_kvs) || parse_kvs(&r, g, n_kvs) || find_alignment(g, e) ||
        parse_tensors(&r, g, n_tensors)) {
        gguf_close(g);
        return NULL;
    }
    return g;
}

gguf_file *gguf_open(const char *path, gm_err *e) {
    gm_err local;
    if (!e) e = &local;
    e->msg[0] = 0;
    void *map = NULL;
    size_t size = 0;
    int rc = gm_map_file(path, "GGUF", &map, &size, e);
    return open_bytes(path, map, size, !rc, rc, e);
}

gguf_file *gguf_open_memory(const void *data, size_t len, const char *origin, gm_err *e) {
    gm_err local;
    if (!e) e = &local;
    e->msg[0] = 0;
    return open_bytes(origin, (void *)data, len, 0, 0, e);
}

void gguf_close(gguf_file *g) {
    if (!g) return;
    for (int i = 0; i < g->n_kvs; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].strings);
    }
    for (int i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    if (g->mapped) munmap(g->map, g->size);
    free(g->kvs);
    free(g->kvs_by_key);
    free(g->tensors);
    free(g->tensors_by_name);
    free(g->path);
    free(g);
}

const char *gguf_path(const gguf_file *g) { return g ? g->path : NULL; }

/* ---- metadata access ---- */

int gguf_kv_count(const gguf_file *g) { return g ? g->n_kvs : 0; }

const gguf_kv *gguf_kv_at(const gguf_file *g, int i) {
    return g && i >= 0 && i < g->n_kvs ? &g->kvs[i].kv : NULL;
}

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    if (!g || !key || !g->kvs_by_key) return NULL;
    int lo = 0, hi = g->n_kvs;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(g->kvs_by_key[mid]->key, key);
        if (!c) return &g->kvs_by_key[mid]->kv;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static const gguf_kv *find_scalar(const gguf_file *g, const char *key, const char *expected, gm_err *e) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) gm_fail(e, "%s: key %s is absent; the file does not describe a complete model", gguf_path(g), key);
    else if (kv->type == GGUF_T_ARRAY)
        gm_fail(e, "%s: key %s is an array of %llu %s, expected %s", g->path, key, (unsigned long long)kv->count,
                value_type_name(kv->elem_type), expected);
    else return kv;
    return NULL;
}

static int wrong_type(const gguf_file *g, const gguf_kv *kv, const char *expected, gm_err *e) {
    return gm_fail(e, "%s: key %s has type %s, expected %s", g->path, kv->key, value_type_name(kv->type), expected);
}

int gguf_get_int(const gguf_file *g, const char *key, int64_t *out, gm_err *e) {
    const gguf_kv *kv = find_scalar(g, key, "an integer", e);
    if (!kv) return -1;
    if (!is_integer(kv->type)) return wrong_type(g, kv, "an integer", e);
    if (integer_at(kv->type, kv->data, out))
        return gm_fail(e, "%s: key %s is %llu, which does not fit in a signed 64-bit integer", g->path, key,
                       (unsigned long long)le64(kv->data));
    return 0;
}

int gguf_get_float(const gguf_file *g, const char *key, double *out, gm_err *e) {
    const gguf_kv *kv = find_scalar(g, key, "a number", e);
    if (!kv) return -1;
    if (kv->type != GGUF_T_FLOAT32 && kv->type != GGUF_T_FLOAT64 && !is_integer(kv->type))
        return wrong_type(g, kv, "a number", e);
    *out = number_at(kv->type, kv->data);
    return 0;
}

int gguf_get_string(const gguf_file *g, const char *key, char **out, gm_err *e) {
    const gguf_kv *kv = find_scalar(g, key, "a string", e);
    if (!kv) return -1;
    if (kv->type != GGUF_T_STRING) return wrong_type(g, kv, "a string", e);
    *out = gguf_array_string(kv, 0);
    return 0;
}

char *gguf_array_string(const gguf_kv *kv, uint64_t i) {
    if (!kv || kv->elem_type != GGUF_T_STRING || i >= kv->count) return NULL;
    const uint8_t *p = ((const kv_entry *)kv)->strings[i];
    size_t len = (size_t)le64(p);
    char *s = gm_malloc(len + 1);
    memcpy(s, p + 8, len);
    s[len] = 0;
    return s;
}

double gguf_array_number(const gguf_kv *kv, uint64_t i) {
    if (!kv || kv->elem_type == GGUF_T_STRING || kv->elem_type == GGUF_T_ARRAY || i >= kv->count) return NAN;
    return number_at(kv->elem_type, (const uint8_t *)kv->data + i * value_size(kv->elem_type));
}

/* ---- tensors ---- */

int gguf_tensor_count(const gguf_file *g) { return g ? g->n_tensors : 0; }

const gguf_tensor *gguf_tensor_at(const gguf_file *g, int i) {
    return g && i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name) {
    if (!g || !name || !g->tensors_by_name) return NULL;
    int lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(g->tensors_by_name[mid]->name, name);
        if (!c) return g->tensors_by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* ---- gguf_weights: parallel dequantization into an gm_weights ---- */

typedef struct {
    const type_info *type;
    const uint8_t *src;
    float *dst;
    int64_t n_blocks;
} chunk;

typedef struct {
    const chunk *chunks;
    int n_chunks;
    atomic_int next;
} chunk_queue;

/* One part of the pool's job: take chunks until none is left. */
static void decode_chunks(void *arg, int part, int parts) {
    (void)part, (void)parts;
    chunk_queue *q = arg;
    for (int i; (i = atomic_fetch_add(&q->next, 1)) < q->n_chunks;) {
        const chunk *c = &q->chunks[i];
        c->type->expand(c->src, c->dst, c->n_blocks);
    }
}

/* Decodes all chunks on the default number of threads ($GEMMAC_THREADS or
 * every online core). */
static void decode_all(const chunk *chunks, int n_chunks) {
    chunk_queue q = {.chunks = chunks, .n_chunks = n_chunks};
    atomic_init(&q.next, 0);
    int threads = rt_default_threads();
    if (threads > n_chunks) threads = n_chunks;
    if (threads <= 1) return decode_chunks(&q, 0, 1);
    rt_pool *pool = rt_pool_new(threads);
    rt_pool_run(pool, decode_chunks, &q);
    rt_pool_free(pool);
}

/* Splits the decoding of one tensor into chunks of about CHUNK_ELEMS elements. */
static void add_chunks(chunk **chunks, int *n, int *cap, const type_info *ti, const gguf_tensor *t, float *dst) {
    int64_t blocks = (int64_t)(t->nbytes / (size_t)ti->block_bytes);
    int64_t step = CHUNK_ELEMS / ti->block_elems;
    for (int64_t b = 0; b < blocks; b += step) {
        if (*n == *cap) *chunks = gm_realloc(*chunks, (size_t)(*cap = *cap ? 2 * *cap : 256) * sizeof **chunks);
        (*chunks)[(*n)++] = (chunk){ti, (const uint8_t *)t->data + b * ti->block_bytes, dst + b * ti->block_elems,
                                    blocks - b < step ? blocks - b : step};
    }
}

static int64_t element_count(const gguf_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->ne[i];
    return n;
}

/* The gm_tensor for t: float and block-quantized types point into the
 * mapping as stored; Q2_K and Q3_K get an f32 buffer (returned in *owned)
 * to be decoded later. */
static int weight_entry(const gguf_file *g, const gguf_tensor *t, gm_tensor *s, float **owned, gm_err *e) {
    s->name = gm_strdup(t->name);
    s->ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) s->shape[i] = t->ne[t->ndim - 1 - i];
    s->file = g->path;
    *owned = NULL;
    const type_info *ti = decodable(t->ggml_type);
    s->dtype = ti->dtype;
    if (ti->expand) {
        int64_t n = element_count(t);
        if ((uint64_t)n > SIZE_MAX / sizeof(float) || !(*owned = malloc((size_t)n * sizeof(float) + 1)))
            return gm_fail(e, "%s: tensor %s: cannot allocate %lld f32 values to dequantize its %s data; the model is too large for f32 in memory",
                           g->path, t->name, (long long)n, gguf_type_name(t->ggml_type));
        s->data = *owned;
        s->nbytes = (size_t)n * sizeof(float);
        return 0;
    }
    s->data = t->data;
    s->nbytes = t->nbytes;
    return 0;
}

gm_weights *gguf_weights(const gguf_file *g, gm_err *e) {
    if (!g) return NULL;
    int n = g->n_tensors, n_owned = 0, n_chunks = 0, cap = 0, rc = 0;
    gm_tensor *tensors = gm_calloc((size_t)n + 1, sizeof *tensors);
    void **owned = gm_calloc((size_t)n + 1, sizeof *owned);
    chunk *chunks = NULL;
    int i = 0;
    for (; i < n && !rc; i++) {
        const gguf_tensor *t = &g->tensors[i];
        float *buf;
        rc = weight_entry(g, t, &tensors[i], &buf, e);
        if (buf) {
            owned[n_owned++] = buf;
            add_chunks(&chunks, &n_chunks, &cap, decodable(t->ggml_type), t, buf);
        }
    }
    if (!rc) decode_all(chunks, n_chunks);
    free(chunks);
    gm_weights *a = weights_from(tensors, i, owned, n_owned, e); /* owns everything, even on failure */
    if (rc) {
        weights_close(a);
        return NULL;
    }
    return a;
}
