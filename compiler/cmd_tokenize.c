/* cmd_tokenize.c — `gemmac tokenize <tokenizer.model> [--decode]`: the
 * SentencePiece tokenizer (runtime/tokenizer.h) as a line filter, so that
 * prompts can be turned into the token ids a compiled model consumes (and
 * ids back into text) from the shell, and so that gemmac's ids can be
 * compared with any other Gemma tokenizer line by line.
 *
 * Each line of stdin, without its "\n", is one text; the output is one line
 * per input line: the ids comma-separated (no BOS added; an empty text gives
 * an empty line). With --decode each input line holds comma-separated ids
 * and the output line is their text, written byte for byte. Errors go to
 * stderr as "gemmac: <message>" and return 1; bad usage returns 2. */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"
#include "runtime/tokenizer.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gemmac tokenize <tokenizer.model> [--decode]\n"
    "\n"
    "Reads lines on stdin. For each line prints the token ids of its text\n"
    "(the line without its newline), comma-separated, with no BOS added; an\n"
    "empty line gives an empty line. With --decode, each line holds\n"
    "comma-separated token ids and the decoded text is printed instead.\n"
    "\n"
    "  <tokenizer.model>   a SentencePiece model (Gemma's tokenizer.model)\n"
    "  --tokenizer FILE    the same, as a flag\n"
    "  --decode            ids -> text instead of text -> ids\n"
    "  -h, --help          print this help\n";

/* Parses "1, 2,3" into ids; whitespace around ids is allowed, an all-blank
 * line is zero ids. Returns -1 with e filled on anything else. */
static int parse_ids(const char *s, size_t len, int32_t **ids, int *n, gm_err *e) {
    *ids = NULL;
    *n = 0;
    int cap = 0;
    const char *p = s, *end = s + len;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    if (p == end) {
        *ids = gm_malloc(sizeof **ids);
        return 0;
    }
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        const char *start = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t' && *p != '\r') p++;
        size_t fl = (size_t)(p - start);
        char field[32];
        long v = 0;
        char *stop = NULL;
        int ok = fl > 0 && fl < sizeof field;
        if (ok) {
            memcpy(field, start, fl);
            field[fl] = 0;
            errno = 0;
            v = strtol(field, &stop, 10);
            ok = errno == 0 && *stop == 0 && v >= INT32_MIN && v <= INT32_MAX;
        }
        if (!ok) {
            free(*ids);
            *ids = NULL;
            *n = 0;
            if (fl == 0) return gm_fail(e, "empty field where a token id was expected");
            return gm_fail(e, "'%.*s' is not a token id (expected comma-separated integers)",
                           fl > 40 ? 40 : (int)fl, start);
        }
        if (*n == cap) *ids = gm_realloc(*ids, (size_t)(cap = cap ? cap * 2 : 64) * sizeof **ids);
        (*ids)[(*n)++] = (int32_t)v;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
        if (p == end) return 0;
        if (*p != ',') {
            free(*ids);
            *ids = NULL;
            *n = 0;
            return gm_fail(e, "expected ',' between token ids, found '%c'", *p);
        }
        p++;
    }
}

static int encode_line(const rt_tokenizer *t, const char *line, size_t len, gm_err *e) {
    int32_t *ids = NULL;
    int n = 0;
    if (rt_tok_encode(t, line, len, &ids, &n, e) != 0) return -1;
    for (int i = 0; i < n; i++) printf(i ? ",%ld" : "%ld", (long)ids[i]);
    putchar('\n');
    free(ids);
    return 0;
}

static int decode_line(const rt_tokenizer *t, const char *line, size_t len, gm_err *e) {
    int32_t *ids = NULL;
    int n = 0;
    if (parse_ids(line, len, &ids, &n, e) != 0) return -1;
    size_t tl = 0;
    char *text = rt_tok_decode(t, ids, n, &tl, e);
    free(ids);
    if (!text) return -1;
    fwrite(text, 1, tl, stdout);
    putchar('\n');
    free(text);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return fputs(usage, stdout), 0;
    const char *model = NULL, *v;
    int decode = 0;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_value(argc, argv, &i, "--tokenizer"))) {
            if (model) return cli_usage_error("tokenize", "more than one tokenizer given (%s and %s)", model, v);
            model = v;
        } else if (cli_is(argv[i], "--decode")) decode = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("tokenize", "unknown flag %s", argv[i]);
        else if (model) return cli_usage_error("tokenize", "unexpected argument %s", argv[i]);
        else model = argv[i];
    }
    if (!model) return cli_usage_error("tokenize", "no tokenizer model given");
    if (!*model) return cli_usage_error("tokenize", "empty tokenizer path");

    gm_err e = {{0}};
    rt_tokenizer *t = rt_tok_load(model, &e);
    if (!t) return cli_error(&e);

    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') len--;
        int r = decode ? decode_line(t, line, len, &e) : encode_line(t, line, len, &e);
        if (r != 0) {
            fflush(stdout);
            gm_say("stdin line %ld: %s\n", lineno, e.msg);
            rc = 1;
            break;
        }
        if (fflush(stdout) != 0) break; /* reported below */
    }
    if (rc == 0 && ferror(stdin)) {
        gm_say("tokenize: error reading stdin: %s\n", strerror(errno));
        rc = 1;
    }
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        gm_say("tokenize: error writing stdout: %s\n", strerror(errno));
        rc = 1;
    }
    free(line);
    rt_tok_free(t);
    return rc;
}
