/* common.c — error records, checked allocation, whole-file I/O with atomic
 * writes, and the element types. See common.h for why errors are records. */
#include "common.h"
#include "quant.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int gm_fail(gm_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *gm_program = "gemmac";

void gm_say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", gm_program);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void *check_alloc(void *p) {
    if (!p) {
        gm_say("out of memory\n");
        abort();
    }
    return p;
}

void *gm_malloc(size_t n) { return check_alloc(malloc(n ? n : 1)); }
void *gm_calloc(size_t n, size_t size) { return check_alloc(calloc(n ? n : 1, size ? size : 1)); }
void *gm_aligned64(size_t n) { return check_alloc(aligned_alloc(64, (n + 63) / 64 * 64 + 64)); }
void *gm_realloc(void *p, size_t n) { return check_alloc(realloc(p, n ? n : 1)); }
char *gm_strdup(const char *s) { return check_alloc(strdup(s)); }

char *gm_read_file(const char *path, size_t *len, gm_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        gm_fail(e, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = gm_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) buf = gm_realloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        gm_fail(e, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int gm_split_tab(char *line, char **first, char **second) {
    char *tab = strchr(line, '\t');
    if (!tab) return -1;
    *tab = 0, *first = line, *second = tab + 1;
    return **first && **second ? 0 : 1;
}

int gm_write_atomic_with(const char *path, int (*write)(FILE *f, void *arg), void *arg, gm_err *e) {
    size_t n = strlen(path) + 32;
    char *tmp = gm_malloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int r = gm_fail(e, "%s: cannot create: %s; check that its directory exists and can be written", path,
                        strerror(errno));
        free(tmp);
        return r;
    }
    errno = 0;
    int ok = write(f, arg) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int r = gm_fail(e, "%s: cannot write: %s", path, errno ? strerror(errno) : "I/O error");
        unlink(tmp);
        free(tmp);
        return r;
    }
    free(tmp);
    return 0;
}

typedef struct {
    const void *data;
    size_t len;
} bytes;

static int write_bytes(FILE *f, void *arg) {
    const bytes *b = arg;
    return fwrite(b->data, 1, b->len, f) == b->len ? 0 : -1;
}

int gm_write_file_atomic(const char *path, const void *data, size_t len, gm_err *e) {
    return gm_write_atomic_with(path, write_bytes, &(bytes){data, len}, e);
}

/* The slot of name in t: where it is, or the empty one where it would go. */
static int names_slot(const gm_names *t, const char *name) {
    int mask = t->cap - 1, i = (int)(gm_fnv1a(GM_FNV1A_SEED, name, strlen(name)) & (uint64_t)mask);
    while (t->keys[i] && strcmp(t->keys[i], name)) i = (i + 1) & mask;
    return i;
}

void gm_names_put(gm_names *t, const char *name, int id) {
    if (2 * (t->n + 1) > t->cap) { /* at most half full */
        gm_names old = *t;
        t->cap = old.cap ? 2 * old.cap : 64, t->n = 0;
        t->keys = gm_calloc(t->cap, sizeof *t->keys);
        t->ids = gm_malloc(t->cap * sizeof *t->ids);
        for (int i = 0; i < old.cap; i++)
            if (old.keys[i]) gm_names_put(t, old.keys[i], old.ids[i]);
        free(old.keys), free(old.ids);
    }
    int i = names_slot(t, name);
    if (!t->keys[i]) t->keys[i] = name, t->n++;
    t->ids[i] = id;
}

int gm_names_get(const gm_names *t, const char *name) {
    if (!t->cap) return -1;
    int i = names_slot(t, name);
    return t->keys[i] ? t->ids[i] : -1;
}

void gm_names_clear(gm_names *t) {
    free(t->keys), free(t->ids);
    *t = (gm_names){0};
}

void gm_buf_put(gm_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) b->s = gm_realloc(b->s, b->cap = 2 * (b->len + n + 1));
    memcpy(b->s + b->len, s, n);
    b->s[b->len += n] = 0;
}

void gm_buf_puts(gm_buf *b, const char *s) { gm_buf_put(b, s, strlen(s)); }

void gm_buf_printf(gm_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < (int)sizeof small) return gm_buf_put(b, small, n);
    char *big = gm_malloc(n + 1);
    va_start(ap, fmt);
    vsnprintf(big, n + 1, fmt, ap);
    va_end(ap);
    gm_buf_put(b, big, n);
    free(big);
}

static const struct {
    const char *name, *upper;
    size_t size;  /* bytes of a block */
    int block;    /* elements of a block */
} dtypes[GM_DTYPE_COUNT] = {
    [GM_F32] = {"f32", "F32", 4, 1},       [GM_BF16] = {"bf16", "BF16", 2, 1},
    [GM_F16] = {"f16", "F16", 2, 1},       [GM_I32] = {"i32", "I32", 4, 1},
    [GM_Q8_0] = {"q8_0", "Q8_0", 34, 32},  [GM_Q4_0] = {"q4_0", "Q4_0", 18, 32},
    [GM_Q4_1] = {"q4_1", "Q4_1", 20, 32},  [GM_Q5_0] = {"q5_0", "Q5_0", 22, 32},
    [GM_Q5_1] = {"q5_1", "Q5_1", 24, 32},  [GM_Q4_K] = {"q4_k", "Q4_K", 144, 256},
    [GM_Q5_K] = {"q5_k", "Q5_K", 176, 256}, [GM_Q6_K] = {"q6_k", "Q6_K", 210, 256},
};

size_t gm_dtype_size(gm_dtype t) { return dtypes[t].size; }
int gm_dtype_block(gm_dtype t) { return dtypes[t].block; }
size_t gm_dtype_bytes(gm_dtype t, int64_t n) { return (size_t)(n / dtypes[t].block) * dtypes[t].size; }
const char *gm_dtype_name(gm_dtype t) { return dtypes[t].name; }

int gm_dtype_from_name(const char *s, gm_dtype *t) {
    for (int i = 0; i < GM_DTYPE_COUNT; i++)
        if (!strcmp(s, dtypes[i].name) || !strcmp(s, dtypes[i].upper)) {
            *t = (gm_dtype)i;
            return 0;
        }
    return -1;
}

float gm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int shift = 0;
            while (!(man & 0x400)) man <<= 1, shift++;
            u = sign | ((uint32_t)(127 - 15 - shift + 1) << 23) | ((man & 0x3ff) << 13);
        }
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void gm_to_f32(gm_dtype t, const void *src, float *dst, size_t n) {
    const uint16_t *h = src;
    switch (t) {
    case GM_F32: memcpy(dst, src, n * 4); break;
    case GM_BF16: for (size_t i = 0; i < n; i++) dst[i] = gm_bf16_to_f32(h[i]); break;
    case GM_F16: for (size_t i = 0; i < n; i++) dst[i] = gm_f16_to_f32(h[i]); break;
    case GM_I32: for (size_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i]; break;
    default: gm_dequantize(t, src, dst, (int64_t)n); break;
    }
}

int gm_map_file(const char *path, const char *kind, void **map, size_t *size, gm_err *e) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return gm_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st))
        rc = gm_fail(e, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = gm_fail(e, "%s: not a regular file; expected a %s file", path, kind);
    else if (st.st_size == 0)
        rc = gm_fail(e, "%s: file is empty; expected a %s file", path, kind);
    void *m = rc ? MAP_FAILED : mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (!rc && m == MAP_FAILED) rc = gm_fail(e, "%s: cannot mmap: %s", path, strerror(errno));
    close(fd);
    if (!rc) *map = m, *size = (size_t)st.st_size;
    return rc;
}

#define HUGE_PAGE ((size_t)2 << 20)

void *gm_huge_alloc(size_t n) {
    size_t len = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE + HUGE_PAGE;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) check_alloc(NULL);
    size_t lead = (HUGE_PAGE - (uintptr_t)m % HUGE_PAGE) % HUGE_PAGE;
    if (lead) munmap(m, lead);
    munmap(m + lead + len - HUGE_PAGE, HUGE_PAGE - lead);
    madvise(m + lead, len - HUGE_PAGE, MADV_HUGEPAGE);
    return m + lead;
}

void gm_huge_free(void *p, size_t n) {
    if (p) munmap(p, (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE);
}

void gm_drop_file_pages(const void *p, size_t n) {
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) / page * page, hi = ((uintptr_t)p + n) / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void *gm_huge_copy(const void *file_mapping, size_t n) {
    unsigned char *region = gm_huge_alloc(n);
    const unsigned char *src = file_mapping;
    for (size_t at = 0, step = 16 * HUGE_PAGE; at < n; at += step) {
        size_t len = n - at < step ? n - at : step;
        memcpy(region + at, src + at, len);
        gm_drop_file_pages(src + at, len);
    }
    return region;
}

uint64_t gm_fnv1a(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int gm_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int gm_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int gm_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

double gm_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

cJSON *gm_read_json(const char *path, gm_json_where *bad, gm_err *e) {
    size_t len;
    char *text = gm_read_file(path, &len, e);
    if (!text) return NULL;
    e->msg[0] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        *bad = (gm_json_where){end && end >= text && end <= text + len ? (size_t)(end - text) : 0, 1, 1};
        for (size_t i = 0; i < bad->byte; i++, bad->col++)
            if (text[i] == '\n') bad->line++, bad->col = 0;
    }
    free(text);
    return root;
}
