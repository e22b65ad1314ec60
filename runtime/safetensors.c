/* safetensors.c — opens Hugging Face safetensors checkpoints without copying.
 *
 * A .safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON mapping each tensor name to {dtype, shape, data_offsets}, then the raw
 * data; offsets count from the end of the header. Each file is mmapped
 * read-only and its header parsed with cJSON; every claim in it is checked
 * against the mapping before a tensor may point there: the header fits the
 * file, entries are well typed, offsets lie inside the data section, sizes
 * equal elements × dtype size (in overflow-checked uint64 arithmetic) and no
 * two tensors share a byte. A sharded checkpoint is an index JSON whose
 * weight_map names each tensor's shard: every distinct shard is opened once
 * and the map is checked against what the shards really hold. The tensors of
 * all files live in one array sorted by name, so lookup is a binary search.
 * A file may also come as bytes already in memory (st_open_memory: the
 * checkpoint an AOT executable carries); it is parsed and checked the same
 * way, and only what was mapped here is unmapped. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSON_INT_MAX 9007199254740992.0 /* 2^53: larger JSON numbers are inexact */
#define SUPPORTED_DTYPES "F32, BF16, F16, I32"
#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

typedef struct {
    char *path;
    void *map;
    size_t size;
    int mapped;                   /* map is ours to munmap */
} st_file;

struct gm_weights {
    st_file *files;
    int n_files;
    gm_tensor *tensors;
    int n_tensors, cap;
    void **owned;                 /* buffers freed by weights_close (weights_from) */
    int n_owned;
};

/* ---- small helpers ---- */

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir), m = strlen(name);
    char *p = gm_malloc(n + m + 2);
    memcpy(p, dir, n);
    if (n && dir[n - 1] != '/') p[n++] = '/';
    memcpy(p + n, name, m + 1);
    return p;
}

/* A JSON value as short text for messages ("2.5", "\"abc\"", "null"). */
static const char *json_text(const cJSON *j, char *buf, size_t len) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    snprintf(buf, len, "%s", s ? s : "missing");
    if (s && strlen(s) >= len && len > 4) memcpy(buf + len - 4, "...", 4);
    free(s);
    return buf;
}

/* A JSON number that is an exact non-negative integer. */
static int json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= JSON_INT_MAX) || d != (double)(uint64_t)d) return -1;
    *v = (uint64_t)d;
    return 0;
}

static void shape_text(char *buf, size_t len, int ndim, const int64_t *dims) {
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

static int has_control_char(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

/* ---- one header entry ---- */

static int parse_dtype(const char *file, const char *name, const cJSON *j, gm_tensor *t, gm_err *e) {
    char buf[64];
    if (!cJSON_IsString(j))
        return gm_fail(e, "%s: tensor %s: dtype is %s, expected a string such as \"F32\"; the header is malformed",
                       file, name, json_text(j, buf, sizeof buf));
    if (gm_dtype_from_name(j->valuestring, &t->dtype) || gm_dtype_quantized(t->dtype))
        return gm_fail(e, "%s: tensor %s: unknown dtype \"%.40s\" (supported: " SUPPORTED_DTYPES
                       "); convert the checkpoint to one of these", file, name, j->valuestring);
    return 0;
}

static int parse_shape(const char *file, const char *name, const cJSON *j, gm_tensor *t, gm_err *e) {
    char buf[64];
    if (!cJSON_IsArray(j))
        return gm_fail(e, "%s: tensor %s: shape is %s, expected an array of dimensions; the header is malformed",
                       file, name, json_text(j, buf, sizeof buf));
    int n = cJSON_GetArraySize(j);
    if (n > GM_MAX_DIMS)
        return gm_fail(e, "%s: tensor %s: shape has %d dimensions, at most %d supported", file, name, n,
                       GM_MAX_DIMS);
    t->ndim = 0;
    for (const cJSON *d = j->child; d; d = d->next) {
        uint64_t v;
        if (json_uint(d, &v))
            return gm_fail(e, "%s: tensor %s: shape[%d] is %s, expected a non-negative integer; the header is malformed",
                           file, name, t->ndim, json_text(d, buf, sizeof buf));
        t->shape[t->ndim++] = (int64_t)v;
    }
    return 0;
}

/* Elements × dtype size, or -1 on uint64 overflow. */
static int shape_bytes(const gm_tensor *t, uint64_t *bytes) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) return *bytes = 0, 0;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d = (uint64_t)t->shape[i];
        if (n > UINT64_MAX / d) return -1;
        n *= d;
    }
    uint64_t size = gm_dtype_size(t->dtype);
    if (n > UINT64_MAX / size) return -1;
    *bytes = n * size;
    return 0;
}

static int parse_offsets(const char *file, const char *name, const cJSON *j, uint64_t off[2],
                         uint64_t data_size, gm_err *e) {
    char buf[64];
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2 || json_uint(j->child, &off[0]) ||
        json_uint(j->child->next, &off[1]))
        return gm_fail(e, "%s: tensor %s: data_offsets is %s, expected two non-negative integers [begin, end]; the header is malformed",
                       file, name, json_text(j, buf, sizeof buf));
    if (off[0] > off[1])
        return gm_fail(e, "%s: tensor %s: data_offsets [%llu, %llu] begin after end; the header is corrupt",
                       file, name, (unsigned long long)off[0], (unsigned long long)off[1]);
    if (off[1] > data_size)
        return gm_fail(e, "%s: tensor %s: data_offsets [%llu, %llu] end past the data section (%llu bytes); the file is truncated or the header lies",
                       file, name, (unsigned long long)off[0], (unsigned long long)off[1],
                       (unsigned long long)data_size);
    return 0;
}

static int parse_entry(const char *file, const cJSON *j, const uint8_t *data, uint64_t data_size,
                       gm_tensor *t, gm_err *e) {
    const char *name = j->string;
    if (has_control_char(name))
        return gm_fail(e, "%s: a tensor name holds control characters; the header is corrupt", file);
    if (!cJSON_IsObject(j))
        return gm_fail(e, "%s: tensor %s: entry is not an object, expected {\"dtype\", \"shape\", \"data_offsets\"}; the header is malformed",
                       file, name);
    uint64_t off[2] = {0, 0}, want;
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    if (parse_dtype(file, name, dtype, t, e) ||
        parse_shape(file, name, cJSON_GetObjectItemCaseSensitive(j, "shape"), t, e) ||
        parse_offsets(file, name, cJSON_GetObjectItemCaseSensitive(j, "data_offsets"), off, data_size, e))
        return -1;
    char shape[160];
    shape_text(shape, sizeof shape, t->ndim, t->shape);
    if (shape_bytes(t, &want))
        return gm_fail(e, "%s: tensor %s: shape %s is too large (its byte size overflows 64 bits); the header is corrupt",
                       file, name, shape);
    if (want != off[1] - off[0])
        return gm_fail(e, "%s: tensor %s: shape %s of %s needs %llu bytes but data_offsets [%llu, %llu] hold %llu; the header is inconsistent",
                       file, name, shape, dtype->valuestring, (unsigned long long)want,
                       (unsigned long long)off[0], (unsigned long long)off[1],
                       (unsigned long long)(off[1] - off[0]));
    t->name = gm_strdup(name);
    t->data = data + off[0];
    t->nbytes = (size_t)want;
    t->file = file;
    return 0;
}

/* ---- one file ---- */

static int by_data(const void *x, const void *y) {
    const gm_tensor *a = *(const gm_tensor *const *)x, *b = *(const gm_tensor *const *)y;
    const uint8_t *p = a->data, *q = b->data;
    return p < q ? -1 : p > q;
}

/* No two non-empty tensors of tensors[0..n) share a byte. */
static int check_overlap(const char *file, const uint8_t *data, gm_tensor *tensors, int n, gm_err *e) {
    gm_tensor **order = gm_malloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = &tensors[i];
    qsort(order, (size_t)n, sizeof *order, by_data);
    const gm_tensor *last = NULL; /* the non-empty tensor reaching furthest so far */
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const gm_tensor *t = order[i];
        const uint8_t *p = t->data;
        if (!t->nbytes) continue;
        if (last && p < (const uint8_t *)last->data + last->nbytes) {
            size_t lb = (size_t)((const uint8_t *)last->data - data), tb = (size_t)(p - data);
            rc = gm_fail(e, "%s: tensors %s [%zu, %zu] and %s [%zu, %zu] overlap in the data section; the header is corrupt",
                         file, last->name, lb, lb + last->nbytes, t->name, tb, tb + t->nbytes);
        }
        if (!last || p + t->nbytes > (const uint8_t *)last->data + last->nbytes) last = t;
    }
    free(order);
    return rc;
}

static int by_name_ptr(const void *x, const void *y) {
    return strcmp((*(const gm_tensor *const *)x)->name, (*(const gm_tensor *const *)y)->name);
}

/* No name is held twice by tensors[0..n) (cJSON keeps a key that a header
 * repeats): checked before the overlap, which a repeated entry would report. */
static int check_names(const char *file, gm_tensor *tensors, int n, gm_err *e) {
    gm_tensor **order = gm_malloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = &tensors[i];
    qsort(order, (size_t)n, sizeof *order, by_name_ptr);
    int rc = 0;
    for (int i = 1; i < n && !rc; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name))
            rc = gm_fail(e, "%s: tensor %s appears twice in the header; a checkpoint must hold each tensor once", file,
                         order[i]->name);
    free(order);
    return rc;
}

static gm_tensor *new_tensor(gm_weights *a) {
    if (a->n_tensors == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->tensors = gm_realloc(a->tensors, (size_t)a->cap * sizeof *a->tensors);
    }
    gm_tensor *t = &a->tensors[a->n_tensors];
    memset(t, 0, sizeof *t);
    return t;
}

static int parse_header(gm_weights *a, const st_file *f, gm_err *e) {
    const uint8_t *p = f->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | p[i];
    uint64_t rest = f->size - 8;
    if (n == 0)
        return gm_fail(e, "%s: header length is 0; this is not a safetensors file", f->path);
    if (n > rest)
        return gm_fail(e, "%s: header length %llu runs past the end of the file (%llu bytes after the length); the file is truncated or not safetensors",
                       f->path, (unsigned long long)n, (unsigned long long)rest);
    const char *end = NULL;
    cJSON *h = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)n, &end, 0);
    if (!h)
        return gm_fail(e, "%s: header is not valid JSON (error near byte %lld of %llu); the file is corrupt or not safetensors",
                       f->path, end ? (long long)(end - (const char *)p - 8) : -1LL, (unsigned long long)n);
    int rc = 0, first = a->n_tensors;
    if (!cJSON_IsObject(h))
        rc = gm_fail(e, "%s: header is not a JSON object; this is not a safetensors file", f->path);
    for (const cJSON *j = cJSON_IsObject(h) ? h->child : NULL; j && !rc; j = j->next) {
        if (!strcmp(j->string, "__metadata__")) continue;
        gm_tensor *t = new_tensor(a);
        rc = parse_entry(f->path, j, p + 8 + n, rest - n, t, e);
        if (!rc) a->n_tensors++;
    }
    cJSON_Delete(h);
    if (!rc && a->n_tensors > first) /* a header of metadata alone has no tensors (and a->tensors may be NULL) */
        rc = check_names(f->path, a->tensors + first, a->n_tensors - first, e) ||
             check_overlap(f->path, p + 8 + n, a->tensors + first, a->n_tensors - first, e);
    return rc;
}

/* Adds the file of `size` bytes at map, and its tensors; the file joins
 * a->files even on failure so that weights_close releases it. */
static int add_file(gm_weights *a, const char *path, void *map, size_t size, int mapped, gm_err *e) {
    a->files = gm_realloc(a->files, (size_t)(a->n_files + 1) * sizeof *a->files);
    st_file *f = &a->files[a->n_files++];
    *f = (st_file){gm_strdup(path), map, size, mapped};
    if (size < 8)
        return gm_fail(e, "%s: file is %zu bytes, shorter than the 8-byte header length; the file is truncated",
                       path, size);
    return parse_header(a, f, e);
}

static int open_file(gm_weights *a, const char *path, gm_err *e) {
    void *map;
    size_t size;
    return gm_map_file(path, "safetensors", &map, &size, e) ? -1 : add_file(a, path, map, size, 1, e);
}

/* ---- the archive ---- */

static int by_name(const void *x, const void *y) {
    return strcmp(((const gm_tensor *)x)->name, ((const gm_tensor *)y)->name);
}

/* Sorts by name; a name held twice is an error. */
static int sort_tensors(gm_weights *a, gm_err *e) {
    if (a->n_tensors > 1) qsort(a->tensors, (size_t)a->n_tensors, sizeof *a->tensors, by_name);
    for (int i = 1; i < a->n_tensors; i++) {
        const gm_tensor *p = &a->tensors[i - 1], *t = &a->tensors[i];
        if (strcmp(p->name, t->name)) continue;
        if (p->file == t->file)
            return gm_fail(e, "%s: tensor %s appears twice in the header; a checkpoint must hold each tensor once",
                           t->file, t->name);
        return gm_fail(e, "%s: tensor %s is held twice (also in %s); a checkpoint must hold each tensor once",
                       t->file, t->name, p->file);
    }
    return 0;
}

static const st_file *find_file(const gm_weights *a, const char *path) {
    for (int i = 0; i < a->n_files; i++)
        if (!strcmp(a->files[i].path, path)) return &a->files[i];
    return NULL;
}

/* Shard names are relative to the index's directory. */
static char *shard_path(const char *index, const char *shard) {
    const char *slash = strrchr(index, '/');
    if (!slash) return gm_strdup(shard);
    size_t n = (size_t)(slash - index) + 1;
    char *p = gm_malloc(n + strlen(shard) + 1);
    memcpy(p, index, n);
    strcpy(p + n, shard);
    return p;
}

static int open_shards(gm_weights *a, const char *index, const cJSON *map, gm_err *e) {
    for (const cJSON *j = map->child; j; j = j->next) {
        if (!cJSON_IsString(j))
            return gm_fail(e, "%s: weight_map: tensor %s: shard is not a string; the index is malformed",
                           index, j->string);
        char *path = shard_path(index, j->valuestring);
        int rc = find_file(a, path) ? 0 : open_file(a, path, e);
        free(path);
        if (rc) {
            if (e) {
                gm_err inner = *e;
                gm_fail(e, "%s (shard %s named by %s)", inner.msg, j->valuestring, index);
            }
            return rc;
        }
    }
    return 0;
}

/* Every tensor of the weight map sits in the shard the map names. */
static int check_weight_map(const gm_weights *a, const char *index, const cJSON *map, gm_err *e) {
    for (const cJSON *j = map->child; j; j = j->next) {
        const gm_tensor *t = weights_find(a, j->string);
        char *path = shard_path(index, j->valuestring);
        int bad = !t || strcmp(t->file, path);
        free(path);
        if (bad && !t)
            return gm_fail(e, "%s: weight_map puts tensor %s in %s, but that shard does not hold it; the checkpoint is incomplete",
                           index, j->string, j->valuestring);
        if (bad)
            return gm_fail(e, "%s: weight_map puts tensor %s in %s, but it is in %s; the index does not match its shards",
                           index, j->string, j->valuestring, t->file);
    }
    return 0;
}

static int open_index(gm_weights *a, const char *index, gm_err *e) {
    gm_json_where bad;
    cJSON *root = gm_read_json(index, &bad, e);
    if (!root && e->msg[0]) return -1;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int rc = 0;
    if (!root)
        rc = gm_fail(e, "%s: not valid JSON (error near byte %zu); the index is corrupt", index, bad.byte);
    else if (!cJSON_IsObject(map))
        rc = gm_fail(e, "%s: no \"weight_map\" object; expected a model.safetensors.index.json", index);
    else if (!map->child)
        rc = gm_fail(e, "%s: weight_map is empty; the index names no shards", index);
    else if (!(rc = open_shards(a, index, map, e)) && !(rc = sort_tensors(a, e)))
        rc = check_weight_map(a, index, map, e);
    cJSON_Delete(root);
    return rc;
}

static int open_path(gm_weights *a, const char *path, gm_err *e) {
    struct stat st;
    if (stat(path, &st)) return gm_fail(e, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (gm_ends_with(path, ".json")) return open_index(a, path, e);
        return open_file(a, path, e) || sort_tensors(a, e) ? -1 : 0;
    }
    char *index = join_path(path, INDEX_NAME), *single = join_path(path, SINGLE_NAME);
    int rc;
    if (gm_is_file(index)) rc = open_index(a, index, e);
    else if (gm_is_file(single)) rc = open_file(a, single, e) || sort_tensors(a, e) ? -1 : 0;
    else rc = gm_fail(e, "%s: directory holds neither " INDEX_NAME " nor " SINGLE_NAME "; pass a safetensors checkpoint", path);
    free(index);
    free(single);
    return rc;
}

/* a, or NULL after closing it when rc reports a failure. */
static gm_weights *opened(gm_weights *a, int rc) {
    if (!rc) return a;
    weights_close(a);
    return NULL;
}

gm_weights *st_open(const char *path, gm_err *e) {
    gm_err local;
    if (!e) e = &local;
    e->msg[0] = 0;
    gm_weights *a = gm_calloc(1, sizeof *a);
    return opened(a, open_path(a, path, e));
}

gm_weights *st_open_memory(const void *data, size_t len, const char *origin, gm_err *e) {
    gm_err local;
    if (!e) e = &local;
    e->msg[0] = 0;
    gm_weights *a = gm_calloc(1, sizeof *a);
    return opened(a, add_file(a, origin, (void *)data, len, 0, e) || sort_tensors(a, e));
}

gm_weights *weights_from(gm_tensor *tensors, int n, void **owned, int n_owned, gm_err *e) {
    gm_err local;
    if (!e) e = &local;
    gm_weights *a = gm_calloc(1, sizeof *a);
    *a = (gm_weights){.tensors = tensors, .n_tensors = n, .cap = n, .owned = owned, .n_owned = n_owned};
    return opened(a, sort_tensors(a, e));
}

void weights_close(gm_weights *a) {
    if (!a) return;
    for (int i = 0; i < a->n_owned; i++) free(a->owned[i]);
    free(a->owned);
    for (int i = 0; i < a->n_tensors; i++) free(a->tensors[i].name);
    for (int i = 0; i < a->n_files; i++) {
        if (a->files[i].mapped) munmap(a->files[i].map, a->files[i].size);
        free(a->files[i].path);
    }
    free(a->tensors);
    free(a->files);
    free(a);
}

int weights_count(const gm_weights *a) { return a ? a->n_tensors : 0; }

const gm_tensor *weights_get(const gm_weights *a, int i) {
    return a && i >= 0 && i < a->n_tensors ? &a->tensors[i] : NULL;
}

const gm_tensor *weights_find(const gm_weights *a, const char *name) {
    if (!a || !name || !a->n_tensors) return NULL;
    gm_tensor key = {.name = (char *)name};
    return bsearch(&key, a->tensors, (size_t)a->n_tensors, sizeof *a->tensors, by_name);
}
