/* memory.c — whether a model fits in this machine's memory, asked before
 * any weight is packed or any cache allocated (model.h).
 *
 * A model needs its weights as bound (mapped checkpoint tensors are read
 * for every token, so they must stay in the page cache; folded and packed
 * copies are their own memory) and its KV cache; the kernels' code and the
 * activation arena are small beside them and left out. The machine has
 * what Linux calls MemAvailable: free memory plus what the page cache can
 * give back. A model that needs more is refused with both numbers and what
 * to do, instead of being killed by the kernel, or thrashing, halfway
 * through loading. $GEMMAC_MEMORY_LIMIT sets the limit in bytes instead
 * (a machine's share, or a test), or turns the check off. */
#include "model.h"

#include "runtime/kv_cache.h"

#include <stdio.h>
#include <stdlib.h>

/* Whether value v's tensor data is also an earlier value's (a tied head reading the embedding as stored). */
static int bound_before(const gm_model *m, int v) {
    for (int u = 0; u < v; u++)
        if (m->bound[u] && m->bound[u]->data == m->bound[v]->data && m->bound[v]->data) return 1;
    return 0;
}

size_t gm_model_memory(const gm_model *m, int context, size_t *weights, size_t *cache) {
    const ir_graph *g = m->graph;
    *weights = 0;
    for (int v = 0; v < g->n_values; v++)
        if (m->bound[v] && !bound_before(m, v)) *weights += m->bound[v]->nbytes;
    int *windows = gm_malloc((g->n_cache_slots + 1) * sizeof *windows), *cols = gm_malloc((g->n_cache_slots + 1) * sizeof *cols);
    ir_cache_slots(g, windows, cols);
    *cache = rt_kv_plan_bytes(g->n_cache_slots, windows, cols, context, 0);
    free(windows);
    free(cols);
    return *weights + *cache;
}

/* MemAvailable in bytes, or 0 when /proc/meminfo does not say. */
static size_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return (size_t)kb * 1024;
}

int gm_model_check_memory(const gm_model *m, int context, int sequences, gm_err *e) {
    const char *limit = getenv("GEMMAC_MEMORY_LIMIT");
    if (limit && !strcmp(limit, "off")) return 0;
    char *end = NULL;
    size_t have = limit ? (size_t)strtoull(limit, &end, 10) : mem_available();
    if (limit && (end == limit || *end))
        return gm_fail(e, "GEMMAC_MEMORY_LIMIT=%.40s: expected a number of bytes or \"off\"", limit);
    size_t weights, cache, need = gm_model_memory(m, context, &weights, &cache);
    char each[48] = "";
    if (sequences > 1) need += (sequences - 1) * cache, cache *= sequences;
    if (sequences > 1) snprintf(each, sizeof each, " in each of %d sequences", sequences);
    if (!have || need <= have) return 0;
    return gm_fail(e, "%s: needs %.2f GB of memory (weights %.2f GB as bound, KV cache %.2f GB for %d positions%s); %.2f GB "
                      "%s; use a quantized checkpoint (a smaller GGUF, or gemmac quantize), a shorter --context, or "
                      "GEMMAC_MEMORY_LIMIT=off to try anyway",
                   m->weights_path, need / 1e9, weights / 1e9, cache / 1e9, context, each, have / 1e9,
                   limit ? "allowed by GEMMAC_MEMORY_LIMIT" : "available (MemAvailable)");
}
