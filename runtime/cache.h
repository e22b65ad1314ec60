/* cache.h — the on-disk caches under ${GEMMAC_CACHE:-$HOME/.cache/gemmac}:
 * atomic stores, least-recently-used trimming to $GEMMAC_CACHE_MAX, listing
 * and clearing (see cache.c). */
#pragma once

#include "common.h"

#include <time.h>

typedef struct {
    char path[4608];
    const char *kind;  /* "jit" or "packed" */
    uint64_t size;     /* bytes */
    time_t used;       /* last stored or read */
    int temp;          /* a store in progress (or a crashed one's leftovers) */
} gm_cache_entry;

/* The cache's root directory into buf; -1 when neither GEMMAC_CACHE nor HOME is set. */
int gm_cache_root(char *buf, size_t len);

/* mkdir -p of the root's sub directory, its path into buf; -1 if impossible. */
int gm_cache_dir(const char *sub, char *buf, size_t len);

/* "10G", "512M", "1048576", "2GiB": bytes (K, M, G, T are powers of 1024); -1 when malformed. */
int gm_cache_parse_size(const char *s, uint64_t *bytes);

/* $GEMMAC_CACHE_MAX, or 10G (a malformed value is said once on stderr and the default used). */
uint64_t gm_cache_limit(void);

/* Marks the entry at path as just used (its modification time), for the LRU order. */
void gm_cache_used(const char *path);

/* Writes the entry atomically, then trims the cache to its limit, removing
 * least recently used entries but this one. -1 when it was not stored (it is
 * larger than the limit, or the directory cannot be written). */
int gm_cache_store(const char *path, const void *data, size_t len);

/* Every entry and temporary file, least recently used first (*n of them; free the list). */
gm_cache_entry *gm_cache_list(int *n);

/* Removes every entry of kind ("jit", "packed", or NULL for both); how many, and their bytes. */
int gm_cache_clear(const char *kind, uint64_t *freed);
