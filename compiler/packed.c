/* packed.c — the packed weights of a model (passes/pack_weights.c): made
 * once from the checkpoint, kept on disk, and handed to every backend.
 *
 * A packed weight W[N][K] is stored as ceil(N/P) panels of P rows
 * interleaved by k: panel p holds W[p·P + j][k] at (p·K + k)·P + j, rows
 * past N zero; a block-quantized one as runtime/qpanel.h lays it out. Its dtype is the source's (bf16 stays bf16: the kernels
 * compute on it directly), or the folded dtype when constant folding also
 * touched it (model.c).
 *
 * All packed weights of a model live in one region, each at a 64-byte
 * aligned offset, which is also a file: ${GEMMAC_CACHE}/packed/<model>.<key>.bin (runtime/cache.c),
 * a 64-byte header (magic, key, data bytes, recipe) and the region. The
 * recipe hashes every packed weight's derivation, shape and dtype; the key
 * that and the checkpoint files (path, size, mtime), so a changed checkpoint
 * or pass setting never reads a stale file. An embedded pack (below) comes
 * with its own embedded checkpoint, so the recipe is all it must match. The first load packs (on every core) and writes
 * the file atomically; later loads copy it into huge pages (gm_huge_copy:
 * decode streams the region every token, faster there than from the file's
 * mapping), so packing costs nothing and the checkpoint's own copies of
 * those tensors are never read. An AOT executable built with
 * --embed-weights carries the file inside itself (gm_builtin_packed). Without a cache (--no-cache, or no writable cache
 * directory) the region is packed in memory each time. */
#include "model.h"

#include "runtime/cache.h"
#include "runtime/qpanel.h"
#include "runtime/threads.h"

#include <ctype.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PACK_MAGIC "GMPACK03" /* 03: each sub-block's scales beside its quants (runtime/qpanel.h) */
#define PACK_HEADER 64

const gm_blob *gm_builtin_packed;

size_t gm_packed_bytes(const gm_tensor *t, int panel) {
    int64_t N = t->shape[0], K = t->shape[1];
    if (gm_dtype_quantized(t->dtype)) return gm_qpanel_bytes(t->dtype, N, K);
    return (size_t)((N + panel - 1) / panel * panel) * K * gm_dtype_size(t->dtype);
}

typedef struct {
    const unsigned char *src;
    unsigned char *dst;
    int64_t N, K;
    int P;
    gm_dtype dtype;
} pack_job;

/* Panels [part·n/parts, (part+1)·n/parts) of one weight. */
static void pack_part(void *arg, int part, int parts) {
    const pack_job *j = arg;
    int64_t panels = (j->N + j->P - 1) / j->P, p0 = panels * part / parts, p1 = panels * (part + 1) / parts;
    size_t es = gm_dtype_size(j->dtype);
    if (gm_dtype_quantized(j->dtype)) { /* runtime/qpanel.h: panels of GM_QPANEL_ROWS = EX_PANEL rows */
        size_t panel_bytes = gm_qpanel_bytes(j->dtype, j->P, j->K);
        memset(j->dst + p0 * panel_bytes, 0, (size_t)(p1 - p0) * panel_bytes);
        gm_qpanel_pack(j->dtype, j->src, j->N, j->K, p0, p1, j->dst);
        return;
    }
    for (int64_t p = p0; p < p1; p++)
        for (int r = 0; r < j->P; r++) {
            int64_t n = p * j->P + r;
            unsigned char *col = j->dst + ((size_t)p * j->K * j->P + r) * es;
            for (int64_t k = 0; k < j->K; k++, col += j->P * es) {
                if (n < j->N) memcpy(col, j->src + ((size_t)n * j->K + k) * es, es);
                else memset(col, 0, es);
            }
        }
}

/* Whether value v is a weight that pack_weights gave a panel layout. */
static int is_packed(const gm_model *m, int v) {
    return m->graph->values[v].kind == IR_WEIGHT && m->graph->values[v].panel;
}

static uint64_t stat_key(uint64_t h, const char *file) {
    struct stat st;
    if (stat(file, &st)) return h;
    int64_t facts[2] = {(int64_t)st.st_size, (int64_t)st.st_mtime};
    return gm_fnv1a(gm_fnv1a(h, file, strlen(file) + 1), facts, sizeof facts);
}

/* The recipe of m's packed weights, and with files, the key: what they are made from and how. */
static uint64_t packed_key(const gm_model *m, int files) {
    uint64_t h = gm_fnv1a(GM_FNV1A_SEED, PACK_MAGIC GM_VERSION, sizeof PACK_MAGIC GM_VERSION);
    const char *last_file = NULL;
    for (int v = 0; v < m->graph->n_values; v++) {
        if (!is_packed(m, v)) continue;
        const ir_value *w = &m->graph->values[v];
        const gm_tensor *src = gm_model_tensor(m, w->derived_from);
        if (files && src->file != last_file) h = stat_key(h, last_file = src->file);
        double facts[6] = {w->derived_add, w->derived_mul, w->panel, (double)w->dims[0], (double)w->dims[1],
                           (double)m->bound[v]->dtype};
        h = gm_fnv1a(gm_fnv1a(h, w->derived_from, strlen(w->derived_from) + 1), facts, sizeof facts);
    }
    return h;
}

/* Where each packed weight goes in the region; returns the data bytes. */
static size_t lay_out(gm_model *m, size_t *offset) {
    size_t at = 0;
    for (int v = 0; v < m->graph->n_values; v++) {
        if (!is_packed(m, v)) continue;
        const ir_value *w = &m->graph->values[v];
        offset[v] = at;
        at += (gm_packed_bytes(m->bound[v], w->panel) + 63) / 64 * 64;
    }
    return at;
}

static void point_into(gm_model *m, const unsigned char *data, const size_t *offset) {
    for (int v = 0; v < m->graph->n_values; v++)
        if (is_packed(m, v)) {
            gm_tensor *t = (gm_tensor *)m->bound[v];
            t->data = data + offset[v];
            t->nbytes = gm_packed_bytes(t, m->graph->values[v].panel);
        }
}

typedef struct {
    uint64_t key, bytes, recipe;
} pack_header;

static void write_header(unsigned char *region, const pack_header *h) {
    memset(region, 0, PACK_HEADER);
    memcpy(region, PACK_MAGIC, 8);
    memcpy(region + 8, h, sizeof *h);
}

/* A pack file (or blob) of the right size and recipe, and key unless
 * any_key: its data, else NULL. */
static const unsigned char *valid_pack(const unsigned char *p, size_t len, const pack_header *want, int any_key) {
    pack_header h;
    if (len != PACK_HEADER + want->bytes || memcmp(p, PACK_MAGIC, 8)) return NULL;
    memcpy(&h, p + 8, sizeof h);
    return (any_key || h.key == want->key) && h.bytes == want->bytes && h.recipe == want->recipe ? p + PACK_HEADER
                                                                                                : NULL;
}

typedef struct {
    size_t bytes;
    int v;
} pack_order;

static int larger_first(const void *a, const void *b) {
    const pack_order *x = a, *y = b;
    return x->bytes != y->bytes ? (x->bytes < y->bytes ? 1 : -1) : x->v - y->v;
}

/* The packed weights, largest first. */
static pack_order *packing_order(const gm_model *m, int *n) {
    pack_order *o = gm_malloc((size_t)m->graph->n_values * sizeof *o);
    *n = 0;
    for (int v = 0; v < m->graph->n_values; v++)
        if (is_packed(m, v))
            o[(*n)++] = (pack_order){gm_packed_bytes(m->bound[v], m->graph->values[v].panel), v};
    qsort(o, (size_t)*n, sizeof *o, larger_first);
    return o;
}

/* Packs every packed weight into region (after its header) from the
 * checkpoint; the sources' pages are given back to the page cache as each
 * is done (file mappings only), and the largest go first, while the region
 * is still mostly untouched, so peak memory stays near one copy: the region
 * plus the smallest sources, not plus the 256k-row embedding. */
static void pack_all(gm_model *m, unsigned char *region, const size_t *offset, const pack_header *h) {
    rt_pool *pool = rt_pool_new(rt_default_threads());
    write_header(region, h);
    int n;
    pack_order *order = packing_order(m, &n);
    for (int i = 0; i < n; i++) {
        int v = order[i].v;
        const ir_value *w = &m->graph->values[v];
        const gm_tensor *t = m->bound[v];
        void *unpacked = gm_unpacked_values(m, w, gm_model_tensor(m, w->derived_from));
        pack_job job = {unpacked, region + PACK_HEADER + offset[v], t->shape[0], t->shape[1], w->panel, t->dtype};
        rt_pool_run(pool, pack_part, &job);
        gm_release_unpacked(m, w, unpacked);
    }
    free(order);
    rt_pool_free(pool);
}

/* The cache file for key, named after the model for `gemmac cache list`
 * (its name's letters, digits, '-', '_' and '.'), or -1 when there is no
 * cache directory. */
static int pack_path(char *buf, size_t len, const gm_model *m, uint64_t key) {
    char dir[4096], name[64];
    if (gm_cache_dir("packed", dir, sizeof dir)) return -1;
    int n = 0;
    for (const char *c = m->graph->name; *c && n < (int)sizeof name - 1; c++)
        name[n++] = isalnum((unsigned char)*c) || strchr("-_.", *c) ? *c : '_';
    name[n] = 0;
    snprintf(buf, len, "%s/%s%s%016llx.bin", dir, name, n ? "." : "", (unsigned long long)key);
    return 0;
}

/* The pack at p (a file mapping, len bytes) copied into huge pages
 * (gm_huge_copy) if it is valid; NULL otherwise. */
static const unsigned char *take_pack(gm_model *m, const unsigned char *p, size_t len, const pack_header *want, int any_key) {
    if (!valid_pack(p, len, want, any_key)) return NULL;
    m->pack_region = gm_huge_copy(p, len);
    m->pack_size = len;
    return m->pack_region + PACK_HEADER;
}

/* The cache file at path, if it is a valid pack; NULL otherwise. */
static const unsigned char *read_pack(gm_model *m, const char *path, const pack_header *want) {
    void *map;
    size_t size;
    gm_err ignored;
    if (gm_map_file(path, "packed weights", &map, &size, &ignored)) return NULL;
    const unsigned char *data = take_pack(m, map, size, want, 0);
    munmap(map, size);
    if (data) gm_cache_used(path);
    return data;
}

void gm_model_pack(gm_model *m, int no_cache) {
    if (m->packed_ready) return;
    size_t *offset = gm_calloc(m->graph->n_values, sizeof *offset);
    pack_header h = {packed_key(m, 1), lay_out(m, offset), packed_key(m, 0)};
    char path[4200];
    int cached = !no_cache && pack_path(path, sizeof path, m, h.key) == 0;
    const unsigned char *data = NULL;
    if (gm_builtin_packed) data = take_pack(m, gm_builtin_packed->data, gm_builtin_packed->size, &h, 1);
    if (!data && cached) data = read_pack(m, path, &h);
    if (!data && h.bytes) {
        m->pack_size = PACK_HEADER + h.bytes;
        m->pack_region = gm_huge_alloc(m->pack_size);
        pack_all(m, m->pack_region, offset, &h);
        if (cached) gm_cache_store(path, m->pack_region, m->pack_size); /* else the next load repacks */
        data = m->pack_region + PACK_HEADER;
    }
    if (data) point_into(m, data, offset);
    free(offset);
    m->packed_ready = 1;
    m->pack_key = h.key;
    m->pack_recipe = h.recipe;
    m->pack_bytes = h.bytes;
}

int gm_model_write_pack(gm_model *m, const char *path, gm_err *e) {
    gm_model_pack(m, 1);
    unsigned char *region = gm_aligned64(PACK_HEADER + m->pack_bytes);
    size_t *offset = gm_calloc(m->graph->n_values, sizeof *offset);
    lay_out(m, offset);
    write_header(region, &(pack_header){m->pack_key, m->pack_bytes, m->pack_recipe});
    for (int v = 0; v < m->graph->n_values; v++)
        if (is_packed(m, v))
            memcpy(region + PACK_HEADER + offset[v], m->bound[v]->data, m->bound[v]->nbytes);
    int rc = gm_write_file_atomic(path, region, PACK_HEADER + m->pack_bytes, e);
    free(region);
    free(offset);
    return rc;
}
