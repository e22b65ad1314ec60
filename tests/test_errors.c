/* test_errors.c — docs/errors.md, run: every row of its error tables is a
 * command that must fail the way the row says. The doc is the test's input,
 * so the two cannot drift apart: a row the binary no longer provokes, a
 * message reworded without its row, or a row that cannot be parsed fails.
 *
 * The doc's first ```sh block prepares the fixtures (copies of the demo
 * model and a golden checkpoint, small bad files) in a scratch directory,
 * with SRC set to the source tree and the built gemmac first on PATH. A table
 * whose header begins `| Message |` holds rows of five cells:
 *
 *   | `excerpt` ... | meaning | what to do | `command` | exit |
 *
 * Each row becomes one CUnit test, named by its line in the doc. The command
 * runs with sh in the scratch directory, stdin from /dev/null unless it pipes
 * its own, under a 120 s timeout; it must exit with the row's status, print
 * exactly one line on stderr that starts "gemmac: " (a compiled executable's
 * own name for ./NAME rows) and holds the excerpt, and leave the directory as
 * it found it (no output file, no temporary, no fixture changed). The rows
 * about a missing NVIDIA driver are skipped on a machine that has one. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "testing.h"

#include <dlfcn.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ROWS 512

typedef struct {
    int line;                  /* in docs/errors.md */
    char *excerpt, *command;   /* the message excerpt and the provoking shell command */
    int exit;                  /* expected exit status */
    char *error;               /* why the row could not be parsed, or NULL */
} row;

static row rows[MAX_ROWS];
static int n_rows, next_row;
static char scratch[4096], work[4200], env[16384];

/* The first code span of a cell, unescaped (`\|` is a `|` in a table), or NULL. */
static char *code_span(const char *cell) {
    const char *a = strchr(cell, '`'), *b = a ? strchr(a + 1, '`') : NULL;
    if (!b || b == a + 1) return NULL;
    char *s = malloc((size_t)(b - a)), *o = s;
    for (const char *p = a + 1; p < b; p++) {
        if (p[0] == '\\' && p[1] == '|') p++;
        *o++ = *p;
    }
    *o = 0;
    return s;
}

/* Splits a table line into at most max cells at the `|` not escaped as `\|`;
 * the cells point into line, which is modified. Returns the count. */
static int split_cells(char *line, char **cells, int max) {
    int n = 0;
    char *p = line + 1; /* past the leading | */
    while (*p && n < max) {
        char *start = p;
        while (*p && !(*p == '|' && p[-1] != '\\')) p++;
        if (!*p) break; /* text after the last | */
        *p++ = 0;
        cells[n++] = start;
    }
    return n;
}

static void parse_row(char *text, int line) {
    row *r = &rows[n_rows++];
    char *cells[8], copy[4096];
    snprintf(copy, sizeof copy, "%s", text);
    r->line = line;
    int n = split_cells(copy, cells, 8);
    char *end = NULL;
    if (n != 5) {
        r->error = strdup("expected 5 cells: | `message` | meaning | what to do | `command` | exit |");
        return;
    }
    r->excerpt = code_span(cells[0]);
    r->command = code_span(cells[3]);
    r->exit = (int)strtol(cells[4], &end, 10);
    if (!r->excerpt) r->error = strdup("the Message cell has no `excerpt`");
    else if (!r->command) r->error = strdup("the Provoked by cell has no `command`");
    else if (end == cells[4] || strspn(end, " ") != strlen(end)) r->error = strdup("the Exit cell is not a number");
    else if (r->exit == 0) r->error = strdup("an error row must exit non-zero");
}

/* The rows of docs/errors.md, and its fixture script into *setup (malloc'd). */
static int read_doc(const char *path, char **setup) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    size_t cap = 1 << 16, len = 0;
    *setup = calloc(cap, 1);
    int in_table = 0, in_sh = 0, sh_done = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = 0;
        if (!sh_done && !in_sh && !strncmp(line, "```sh", 5)) {
            in_sh = 1;
            continue;
        }
        if (in_sh) {
            if (!strncmp(line, "```", 3)) in_sh = 0, sh_done = 1;
            else if (len + strlen(line) + 2 < cap) len += (size_t)sprintf(*setup + len, "%s\n", line);
            continue;
        }
        if (line[0] != '|') {
            in_table = 0;
            continue;
        }
        if (!strncmp(line, "| Message |", 11)) in_table = 1;
        else if (in_table && strncmp(line, "|---", 4) && strncmp(line, "| ---", 5) && n_rows < MAX_ROWS)
            parse_row(line, lineno);
    }
    fclose(f);
    return 0;
}

/* ---- the state of the scratch directory: every path with its size and mtime ---- */

static char **paths;
static int n_paths, cap_paths;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)ftw;
    char buf[8400];
    if (type == FTW_D) snprintf(buf, sizeof buf, "%s/", path + strlen(work)); /* its mtime follows temporaries */
    else
        snprintf(buf, sizeof buf, "%s %lld %lld.%09ld", path + strlen(work), (long long)st->st_size,
                 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    if (n_paths == cap_paths) paths = realloc(paths, (cap_paths = 2 * cap_paths + 64) * sizeof *paths);
    paths[n_paths++] = strdup(buf);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The listing as one malloc'd string, a line per path. */
static char *snapshot(void) {
    n_paths = 0;
    nftw(work, collect, 16, FTW_PHYS);
    qsort(paths, (size_t)n_paths, sizeof *paths, by_name);
    size_t len = 1;
    for (int i = 0; i < n_paths; i++) len += strlen(paths[i]) + 1;
    char *s = calloc(len, 1);
    for (int i = 0; i < n_paths; i++) strcat(strcat(s, paths[i]), "\n"), free(paths[i]);
    return s;
}

/* The first line of a that b lacks, for the failure message. */
static void first_difference(const char *a, const char *b, char *out, size_t len) {
    *out = 0;
    for (const char *p = a; *p;) {
        size_t n = strcspn(p, "\n");
        int found = 0;
        for (const char *q = b; *q && !found;) {
            size_t m = strcspn(q, "\n");
            found = m == n && !strncmp(p, q, n);
            q += m + (q[m] == '\n');
        }
        if (!found) {
            snprintf(out, len, "%.*s", (int)n, p);
            return;
        }
        p += n + (p[n] == '\n');
    }
}

/* ---- one row ---- */

/* Whether this machine has an NVIDIA driver: then the rows about its absence
 * describe another machine, and are skipped. */
static int has_cuda_driver(void) {
    void *lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (lib) dlclose(lib);
    return lib != NULL;
}

static void test_row(void) {
    row *r = &rows[next_row++];
    if (r->excerpt && strstr(r->excerpt, "no NVIDIA driver here") && has_cuda_driver()) {
        printf("skipped: this machine has an NVIDIA driver ");
        return;
    }
    if (r->error) {
        printf("\n  docs/errors.md:%d: %s\n", r->line, r->error);
        CU_FAIL("a row of docs/errors.md cannot be parsed");
        return;
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/row.sh", scratch);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "%s\n", r->command);
    fclose(f);
    char *before = snapshot();
    char cmd[32768];
    snprintf(cmd, sizeof cmd, "(%s; cd '%s' && timeout 120 sh ../row.sh < /dev/null)", env, work);
    int rc = test_sh(scratch, cmd);
    char *after = snapshot(), *err = test_slurp(scratch, "err.txt");
    size_t n = err ? strlen(err) : 0;
    int one_line = n > 0 && err[n - 1] == '\n' && !memchr(err, '\n', n - 1);
    char program[64] = "gemmac: "; /* a compiled executable's messages begin with its own name */
    if (!strncmp(r->command, "./", 2)) snprintf(program, sizeof program, "%.*s: ", (int)strcspn(r->command + 2, " "), r->command + 2);
    int prefixed = err && !strncmp(err, program, strlen(program)), holds = err && strstr(err, r->excerpt);
    char added[8400] = "", removed[8400] = "";
    first_difference(after, before, added, sizeof added);
    first_difference(before, after, removed, sizeof removed);
    if (rc != r->exit || !one_line || !prefixed || !holds || *added || *removed) {
        printf("\n  docs/errors.md:%d: %s\n  exit %d (expected %d); stderr%s:\n%s  expected one \"%s\" line "
               "holding \"%s\"\n", r->line, r->command, rc, r->exit, one_line ? "" : " (not one line)",
               err ? err : "(none)\n", program, r->excerpt);
        if (*added) printf("  left behind or changed: %s\n", added);
        if (*removed) printf("  removed or changed: %s\n", removed);
    }
    CU_ASSERT_EQUAL(rc, r->exit);
    CU_ASSERT(one_line);
    CU_ASSERT(prefixed);
    CU_ASSERT(holds);
    CU_ASSERT(!*added && !*removed);
    free(before);
    free(after);
    free(err);
}

/* The doc has rows, and a section for every command of `gemmac --help`. */
static void test_doc_covers_commands(void) {
    CU_ASSERT(n_rows >= 100);
    char cmd[32768];
    snprintf(cmd, sizeof cmd, "(%s; gemmac --help)", env);
    CU_ASSERT_EQUAL(test_sh(scratch, cmd), 0);
    char *help = test_slurp(scratch, "out.txt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(help);
    for (const char *p = strstr(help, "\n  "); p; p = strstr(p + 1, "\n  ")) {
        char name[32], want[64];
        if (sscanf(p + 3, "%31s", name) != 1) continue;
        int found = 0;
        snprintf(want, sizeof want, "gemmac %s ", name);
        for (int i = 0; i < n_rows && !found; i++) found = rows[i].command && strstr(rows[i].command, want);
        if (!found) printf("\n  no row of docs/errors.md runs `gemmac %s`\n", name);
        CU_ASSERT(found);
    }
    free(help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_errors GEMMAC\n");
        return 2;
    }
    char doc[4200], *setup = NULL, bin[4096];
    snprintf(doc, sizeof doc, "%s", test_path("../docs/errors.md"));
    if (read_doc(doc, &setup) || !*setup) {
        fprintf(stderr, "test_errors: %s: cannot read it, or it has no ```sh fixture block\n", doc);
        return 1;
    }
    snprintf(bin, sizeof bin, "%s", argv[1]);
    char *slash = strrchr(bin, '/');
    if (slash) *slash = 0;
    snprintf(scratch, sizeof scratch, "%s", test_tmpdir("errors"));
    snprintf(work, sizeof work, "%s/work", scratch);
    mkdir(work, 0755);
    char source[4096];
    snprintf(source, sizeof source, "%s", test_path(".."));
    snprintf(env, sizeof env,
             "export PATH='%s':\"$PATH\" SRC='%s' GEMMAC_CACHE='%s/cache' LC_ALL=C; unset GEMMAC_MEMORY_LIMIT "
             "GEMMAC_THREADS GEMMAC_BF16_DOT",
             slash ? bin : ".", source, scratch);
    char path[4400], cmd[32768];
    snprintf(path, sizeof path, "%s/fixtures.sh", scratch);
    FILE *f = fopen(path, "w");
    fputs(setup, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "(%s; cd '%s' && sh -e ../fixtures.sh)", env, work);
    if (test_sh(scratch, cmd)) {
        char *err = test_slurp(scratch, "err.txt");
        fprintf(stderr, "test_errors: the fixture script of %s failed:\n%s", doc, err ? err : "");
        return 1;
    }
    free(setup);
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("errors", NULL, NULL);
    for (int i = 0; i < n_rows; i++) {
        char name[4400];
        snprintf(name, sizeof name, "errors.md:%d %s", rows[i].line, rows[i].command ? rows[i].command : "?");
        CU_add_test(s, name, test_row); /* CUnit copies the name; test_row takes the rows in order */
    }
    CU_add_test(s, "every command has rows", test_doc_covers_commands);
    return test_run_all();
}
