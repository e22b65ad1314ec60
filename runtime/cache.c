/* cache.c — gemmac's on-disk caches under ${GEMMAC_CACHE:-$HOME/.cache/gemmac}:
 * the JIT's object code (jit/<key>.o) and packed weights (packed/<model>.<key>.bin).
 *
 * Several gemmac processes may share one cache, so an entry is written whole
 * to a temporary file beside it (NAME.tmp.PID) and renamed into place: a
 * reader sees the old entry, the new one or none, never half of one. A hit
 * touches its entry's modification time, and every store trims the cache to
 * $GEMMAC_CACHE_MAX bytes (default 10G) by removing the least recently used
 * entries, so the directory does not grow with every model and CPU it has
 * seen. Removing an entry another process is reading is safe: that process
 * holds the file open (or its copy). A temporary file younger than an hour is
 * another process's store in progress and is left alone; an older one is a
 * crashed writer's and is removed. Other files under the root (the real
 * models scripts/fetch-model.sh puts there) are never counted or removed. */
#define _GNU_SOURCE /* utimensat's AT_FDCWD with glibc's stat.h */

#include "cache.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_LIMIT (10ull << 30)
#define STALE_TEMP_S 3600

static const char *const kinds[] = {"jit", "packed"};
#define N_KINDS 2

int gm_cache_root(char *buf, size_t len) {
    const char *root = getenv("GEMMAC_CACHE"), *home = getenv("HOME");
    int n;
    if (root && *root) n = snprintf(buf, len, "%s", root);
    else if (home && *home) n = snprintf(buf, len, "%s/.cache/gemmac", home);
    else return -1;
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int gm_cache_dir(const char *sub, char *buf, size_t len) {
    char root[4096];
    if (gm_cache_root(root, sizeof root)) return -1;
    int n = snprintf(buf, len, "%s/%s", root, sub);
    if (n < 0 || (size_t)n >= len) return -1;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) && errno != EEXIST ? -1 : 0;
}

int gm_cache_parse_size(const char *s, uint64_t *bytes) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *s == '-' || errno) return -1;
    int shift = 0;
    if (*end) {
        const char *units = "KMGT", *u = strchr(units, toupper((unsigned char)*end));
        if (!u || !*u) return -1;
        shift = 10 * (int)(u - units + 1);
        end += 1 + (end[1] == 'i' || end[1] == 'I');
        if (*end == 'B' || *end == 'b') end++;
        if (*end) return -1;
    }
    if (shift && v > (UINT64_MAX >> shift)) return -1;
    *bytes = (uint64_t)v << shift;
    return 0;
}

uint64_t gm_cache_limit(void) {
    static int warned;
    const char *s = getenv("GEMMAC_CACHE_MAX");
    uint64_t v;
    if (!s || !*s) return DEFAULT_LIMIT;
    if (!gm_cache_parse_size(s, &v)) return v;
    if (!warned++)
        gm_say("GEMMAC_CACHE_MAX=%.40s: expected bytes with an optional K, M, G or T suffix "
                        "(10G); using the default 10G\n", s);
    return DEFAULT_LIMIT;
}

void gm_cache_used(const char *path) { utimensat(AT_FDCWD, path, NULL, 0); }

/* Adds the entries of root/kind to *list. */
static void list_kind(const char *root, int kind, gm_cache_entry **list, int *n, int *cap) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", root, kinds[kind]);
    DIR *d = opendir(dir);
    for (struct dirent *f; d && (f = readdir(d));) {
        const char *name = f->d_name, *ext = strrchr(name, '.');
        int temp = strstr(name, ".tmp.") != NULL;
        if (name[0] == '.' || (!temp && (!ext || strcmp(ext, kind ? ".bin" : ".o")))) continue;
        gm_cache_entry c = {.kind = kinds[kind], .temp = temp};
        snprintf(c.path, sizeof c.path, "%s/%s", dir, name);
        struct stat st;
        if (stat(c.path, &st) || !S_ISREG(st.st_mode)) continue;
        c.size = (uint64_t)st.st_size, c.used = st.st_mtime;
        if (*n == *cap) *list = gm_realloc(*list, (*cap = 2 * *cap + 16) * sizeof **list);
        (*list)[(*n)++] = c;
    }
    if (d) closedir(d);
}

static int by_use(const void *a, const void *b) {
    const gm_cache_entry *x = a, *y = b;
    return x->used < y->used ? -1 : x->used > y->used ? 1 : strcmp(x->path, y->path);
}

gm_cache_entry *gm_cache_list(int *n) {
    char root[4096];
    gm_cache_entry *list = NULL;
    int cap = 0;
    *n = 0;
    if (gm_cache_root(root, sizeof root)) return NULL;
    for (int k = 0; k < N_KINDS; k++) list_kind(root, k, &list, n, &cap);
    if (*n) qsort(list, *n, sizeof *list, by_use);
    return list;
}

/* Removes the least recently used entries (never `keep`) until the rest fit in
 * limit, and crashed writers' temporary files. */
static void trim(uint64_t limit, const char *keep) {
    int n;
    gm_cache_entry *list = gm_cache_list(&n);
    uint64_t total = 0;
    time_t now = time(NULL);
    for (int i = 0; i < n; i++) total += list[i].temp ? 0 : list[i].size;
    for (int i = 0; i < n; i++) {
        gm_cache_entry *c = &list[i];
        if (c->temp ? now - c->used > STALE_TEMP_S : total > limit && strcmp(c->path, keep))
            if (unlink(c->path) == 0 && !c->temp) total -= c->size;
    }
    free(list);
}

int gm_cache_store(const char *path, const void *data, size_t len) {
    uint64_t limit = gm_cache_limit();
    gm_err ignored;
    if (len > limit || gm_write_file_atomic(path, data, len, &ignored)) return -1;
    trim(limit, path);
    return 0;
}

int gm_cache_clear(const char *kind, uint64_t *freed) {
    int n, removed = 0;
    gm_cache_entry *list = gm_cache_list(&n);
    *freed = 0;
    for (int i = 0; i < n; i++)
        if ((!kind || !strcmp(kind, list[i].kind)) && unlink(list[i].path) == 0) removed++, *freed += list[i].size;
    free(list);
    return removed;
}
