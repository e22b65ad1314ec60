/* common.h — the few things every part of gemmac shares: the error record that
 * carries a user-facing message up to the CLI, the tensor element types, and
 * the conversions between the 16-bit float formats and f32.
 *
 * Errors never print from deep inside a module: a function that can fail on
 * user input fills a gm_err with one line (file, field or tensor, expected vs
 * found, a hint) and returns -1; the caller decides what to do with it. */
#ifndef GM_COMMON_H
#define GM_COMMON_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char msg[1024]; /* one line, no trailing newline; empty when no error */
} gm_err;

/* Formats msg into e (when e is not NULL) and returns -1, so that
 * `return gm_fail(e, "...")` reads naturally. */
int gm_fail(gm_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* malloc/calloc/realloc/strdup that abort on out-of-memory (an internal
 * failure, not a user error). */
void *gm_malloc(size_t n);
void *gm_aligned64(size_t n); /* 64-byte aligned, for vector scratch; free() it */
void *gm_calloc(size_t n, size_t size);
void *gm_realloc(void *p, size_t n);
char *gm_strdup(const char *s);

/* The name messages begin with: "gemmac", or a compiled executable's own
 * (aot_main.c), so that what a shipped program prints is in its name. */
extern const char *gm_program;
/* "<gm_program>: " and the formatted text on stderr. */
void gm_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a whole file into a NUL-terminated buffer; *len gets its size. */
char *gm_read_file(const char *path, size_t *len, gm_err *e);

/* Where a JSON text stopped parsing. */
typedef struct {
    size_t byte;   /* offset of the error */
    int line, col; /* 1-based */
} gm_json_where;

/* Reads and parses a JSON file (cJSON; the caller deletes it). NULL with e set
 * when the file cannot be read; NULL with e clear and *bad filled when it is
 * not valid JSON, so each caller words that error for its kind of file.
 * e must not be NULL. */
struct cJSON *gm_read_json(const char *path, gm_json_where *bad, gm_err *e);

/* Splits line at its first tab into *first and *second (the tab becomes
 * NUL): 0 when both are non-empty, 1 when one is empty, -1 without a tab. */
int gm_split_tab(char *line, char **first, char **second);

/* Writes data to path atomically: a temporary file beside it, then rename.
 * No partial output is ever left under `path`. */
int gm_write_file_atomic(const char *path, const void *data, size_t len, gm_err *e);
/* The same for bytes that write(f, arg) produces as it goes (a file too big
 * to hold); write returns 0, or -1 with errno set. */
int gm_write_atomic_with(const char *path, int (*write)(FILE *f, void *arg), void *arg, gm_err *e);

/* Names to ids, in time independent of how many there are (open addressing
 * on FNV-1a): a description's values, the names a layer binds. The names are
 * not copied: they must outlive the table. */
typedef struct {
    const char **keys;
    int *ids;
    int cap, n;
} gm_names;

void gm_names_put(gm_names *t, const char *name, int id); /* adds it, or binds it anew */
int gm_names_get(const gm_names *t, const char *name);    /* its id, or -1 */
void gm_names_clear(gm_names *t);                          /* empty, its memory freed */

/* A growable, always NUL-terminated byte string. */
typedef struct {
    char *s;      /* the text, NULL until the first append */
    size_t len;   /* bytes, without the NUL */
    size_t cap;   /* allocated bytes */
} gm_buf;

void gm_buf_put(gm_buf *b, const char *s, size_t n);
void gm_buf_puts(gm_buf *b, const char *s);
void gm_buf_printf(gm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Small facts about paths and time used across the tree. */
int gm_is_dir(const char *path);                       /* an existing directory */
int gm_is_file(const char *path);                      /* an existing regular file */
int gm_ends_with(const char *s, const char *suffix);
double gm_now_s(void);                                 /* monotonic clock, seconds */

/* Maps a whole regular, non-empty file read-only. `kind` names what was
 * expected in messages ("safetensors", "GGUF"). */
int gm_map_file(const char *path, const char *kind, void **map, size_t *size, gm_err *e);

/* Memory for weights the kernels stream: anonymous, 2 MiB aligned and
 * advised into transparent huge pages. On the virtual machines we measure,
 * a stream over a mapped file's page-cache pages reads at 11 GB/s where
 * the same bytes in huge pages read at 16 (one core), so weights that are
 * read whole every token are copied into such a region rather than mapped.
 * gm_huge_copy copies n bytes of a file mapping into a new one, dropping
 * the mapping's pages from the process as it goes (gm_drop_file_pages), so
 * resident memory never holds both. Free with gm_huge_free and the size. */
void *gm_huge_alloc(size_t n);
void *gm_huge_copy(const void *file_mapping, size_t n);
void gm_huge_free(void *p, size_t n);

/* Gives back the whole pages of [p, p + n), which must lie in a file
 * mapping never written: they leave the resident set and come back from
 * the file if read again (on anonymous memory they would read as zeros). */
void gm_drop_file_pages(const void *p, size_t n);

/* 64-bit FNV-1a of data, continuing from h (start with GM_FNV1A_SEED). */
#define GM_FNV1A_SEED 0xcbf29ce484222325ull
uint64_t gm_fnv1a(uint64_t h, const void *data, size_t len);

/* Element types. The block-quantized ones are GGUF's (runtime/quant.h):
 * a block of gm_dtype_block(t) elements is stored in gm_dtype_size(t)
 * bytes (its scales and its quants), so a row's bytes come from
 * gm_dtype_bytes, never from elements × a size. */
typedef enum {
    GM_F32,
    GM_BF16,
    GM_F16,
    GM_I32,
    GM_Q8_0,
    GM_Q4_0,
    GM_Q4_1,
    GM_Q5_0,
    GM_Q5_1,
    GM_Q4_K,
    GM_Q5_K,
    GM_Q6_K,
    GM_DTYPE_COUNT
} gm_dtype;

size_t gm_dtype_size(gm_dtype t);               /* bytes of one block (one element unless quantized) */
int gm_dtype_block(gm_dtype t);                 /* elements of one block: 1, 32 or 256 */
static inline int gm_dtype_quantized(gm_dtype t) { return t >= GM_Q8_0; }
/* Bytes of n elements (a whole number of blocks). */
size_t gm_dtype_bytes(gm_dtype t, int64_t n);
const char *gm_dtype_name(gm_dtype t);          /* "f32", "bf16", "q4_k", ... */
int gm_dtype_from_name(const char *s, gm_dtype *t); /* accepts f32/F32/bf16/BF16/q4_k/Q4_K/... */

static inline float gm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* GGML_FP32_TO_BF16: the top half of f rounded to nearest even; NaN quiet. */
static inline uint16_t gm_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 64);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

float gm_f16_to_f32(uint16_t h);

/* Converts n elements of type t starting at src into f32 (quantized: n a
 * whole number of blocks, decoded by runtime/quant.c). */
void gm_to_f32(gm_dtype t, const void *src, float *dst, size_t n);

#endif
