/* cmd_cache.c — `gemmac cache [list | clear [jit|packed]]`: what gemmac keeps
 * on disk between runs (runtime/cache.c), so a user can see where the space
 * goes and give it back. `list` prints every entry least recently used first
 * (the order the size cap removes them in) with its size and last use, and the
 * total against $GEMMAC_CACHE_MAX; `clear` removes the entries, of one kind or
 * both. Models fetched into the same directory are not entries and stay. */
#include "cli.h"
#include "runtime/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gemmac cache [list | clear [jit|packed]]\n"
    "\n"
    "gemmac keeps the JIT's compiled kernels (jit/) and packed weights (packed/) in\n"
    "${GEMMAC_CACHE:-~/.cache/gemmac}. Each store trims them to $GEMMAC_CACHE_MAX bytes\n"
    "(K, M, G, T suffixes; default 10G) by removing the least recently used entries.\n"
    "\n"
    "  list             every entry, least recently used first, and the total (the default)\n"
    "  clear [KIND]     remove every entry, or only KIND's (jit or packed)\n"
    "  -h, --help       print this help\n";

/* b as "412.3 MiB" into buf. */
static const char *size_text(uint64_t b, char buf[24]) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, 24, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
    return buf;
}

static int list(const char *root) {
    int n;
    gm_cache_entry *e = gm_cache_list(&n);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += e[i].size;
    char a[24], b[24];
    printf("%s: %d entr%s, %s of %s ($GEMMAC_CACHE_MAX)\n", root, n, n == 1 ? "y" : "ies", size_text(total, a),
           size_text(gm_cache_limit(), b));
    if (n) printf("kind          size  last used         file (least recently used first)\n");
    for (int i = 0; i < n; i++) {
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&e[i].used));
        printf("%-6s %11s  %s  %s%s\n", e[i].kind, size_text(e[i].size, a), when, e[i].path + strlen(root) + 1,
               e[i].temp ? " (being written)" : "");
    }
    free(e);
    return 0;
}

int cmd_cache(int argc, char **argv) {
    if (argc > 1 && (cli_is(argv[1], "--help") || cli_is(argv[1], "-h"))) return cli_help(usage);
    const char *action = argc > 1 ? argv[1] : "list", *kind = argc > 2 ? argv[2] : NULL;
    int is_list = !strcmp(action, "list"), is_clear = !strcmp(action, "clear");
    if (!is_list && !is_clear) return cli_usage_error("cache", "unknown action '%s'; expected list or clear", action);
    if (argc > (is_list ? 2 : 3)) return cli_usage_error("cache", "unexpected argument '%s'", argv[is_list ? 2 : 3]);
    if (kind && strcmp(kind, "jit") && strcmp(kind, "packed"))
        return cli_usage_error("cache", "clear %s: expected jit or packed (or nothing, for both)", kind);
    char root[4096];
    if (gm_cache_root(root, sizeof root)) {
        gm_err e;
        gm_fail(&e, "no cache directory: set GEMMAC_CACHE or HOME");
        return cli_error(&e);
    }
    if (is_list) return list(root);
    uint64_t freed;
    int removed = gm_cache_clear(kind, &freed);
    char a[24];
    printf("%s: removed %d entr%s%s%s, %s\n", root, removed, removed == 1 ? "y" : "ies", kind ? " of " : "",
           kind ? kind : "", size_text(freed, a));
    return 0;
}
