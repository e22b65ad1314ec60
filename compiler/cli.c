/* cli.c — the flag helpers and error reporting every subcommand shares
 * (cli.h); a library of their own so that AOT executables, which run the
 * same `run` and `logits` code, link them too. */
#include "cli.h"

#include "cli_number.h"
#include "pipeline.h"
#include "runtime/threads.h"

#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *cli_value(int argc, char **argv, int *i, const char *flag) {
    const char *a = argv[*i];
    size_t n = strlen(flag);
    if (strncmp(a, flag, n)) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n]) return NULL;
    if (*i + 1 >= argc) {
        gm_say("%s needs a value\n", flag);
        exit(2);
    }
    return argv[++*i];
}

int cli_is(const char *arg, const char *flag) { return !strcmp(arg, flag); }

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", gm_program);
    vfprintf(stderr, fmt, ap);
    if (!strcmp(gm_program, "gemmac")) fprintf(stderr, "; see gemmac %s --help\n", cmd);
    else fprintf(stderr, "; see %s%s%s --help\n", gm_program, strcmp(cmd, "run") ? " " : "", strcmp(cmd, "run") ? cmd : "");
    va_end(ap);
    return 2;
}

int cli_check_options(const char *cmd, const gm_pipeline_opts *po) {
    gm_err e;
    if (po && pipeline_check(po, &e)) return cli_usage_error(cmd, "%s", e.msg);
    const char *threads = getenv("GEMMAC_THREADS"), *bf16 = getenv("GEMMAC_BF16_DOT");
    int n;
    if (threads && cli_int(threads, 1, INT32_MAX, &n))
        return gm_fail(&e, "GEMMAC_THREADS=%.40s: expected a whole number of threads >= 1 (at most %d are used); "
                           "unset it for one per core", threads, RT_MAX_THREADS), cli_error(&e);
    if (bf16 && strcmp(bf16, "0") && strcmp(bf16, "1"))
        return gm_fail(&e, "GEMMAC_BF16_DOT=%.40s: expected 0 (off) or 1 (on, where the CPU has bf16 dot products); "
                           "unset it for the target's choice", bf16), cli_error(&e);
    return 0;
}

int cli_int_flag(const char *cmd, const char *flag, const char *v, long min, long max, int *out) {
    if (!cli_int(v, min, max, out)) return 0;
    return cli_usage_error(cmd, "%s: expected a whole number in [%ld, %ld], found \"%s\"", flag, min, max, v);
}

int cli_check_backend(const char *cmd, const char *flag, const char *b) {
    if (!b) return 0;
    if (gm_builtin_description)
        return strcmp(b, "aot") ? cli_usage_error(cmd, "%s: unknown backend \"%s\" (a compiled model has one: aot)", flag, b)
                                : 0;
    if (strcmp(b, "jit") && strcmp(b, "reference") && strcmp(b, "nvptx"))
        return cli_usage_error(cmd, "%s: unknown backend \"%s\" (available: reference, jit, nvptx)", flag, b);
    return 0;
}

char *cli_shipped(const char *rel, const char *installed, gm_err *e) {
    char exe[4096], path[4200], real[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        const char *dir = dirname(exe);
        const char *tries[] = {"%s/../%s", "%s/%s", "%s/../share/gemmac/%s"};
        for (int i = 0; i < 4; i++) {
            if (i < 3) snprintf(path, sizeof path, tries[i], dir, i < 2 ? rel : installed);
            else snprintf(path, sizeof path, "%s/%s", GM_SOURCE_ROOT, rel);
            if (gm_is_dir(path) && realpath(path, real)) return gm_strdup(real);
        }
    }
    gm_fail(e, "%s was not found beside %s (nor in its share/gemmac/%s, nor in the source tree it was built from); "
               "pass a path", rel, n > 0 ? exe : "gemmac", installed);
    return NULL;
}

int cli_error(const gm_err *e) {
    gm_say("%s\n", e->msg);
    return 1;
}

int cli_pipeline_flag(int argc, char **argv, int *i, gm_pipeline_opts *po) {
    const char *v, *a = argv[*i];
    if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '9' && !a[3]) return po->level = a[2] - '0', 1;
    if ((v = cli_value(argc, argv, i, "--passes"))) return po->passes = v, 1;
    if ((v = cli_value(argc, argv, i, "--dump-after"))) return po->dump_after = v, 1;
    if ((v = cli_value(argc, argv, i, "--activations"))) return po->activations = v, 1;
    if ((v = cli_value(argc, argv, i, "--weights-dtype"))) return po->weights_dtype = v, 1;
    return 0;
}

void cli_use_threads(int n) {
    if (!n) return;
    char buf[16];
    snprintf(buf, sizeof buf, "%d", n);
    setenv("GEMMAC_THREADS", buf, 1);
}

int cli_help(const char *usage) {
    const char *at = strstr(usage, CLI_PASS_LIST);
    if (!at) return fputs(usage, stdout), 0;
    fwrite(usage, 1, (size_t)(at - usage), stdout);
    for (int i = 0; i < pipeline_pass_count(); i++) printf("%s%s", i ? ", " : "", pipeline_pass_name(i));
    fputs(at + strlen(CLI_PASS_LIST), stdout);
    return 0;
}

rt_tokenizer *cli_open_tokenizer(const gm_model *m, const char *tokenizer, const char *weights, gm_err *e) {
    char path[4200];
    const gm_blob *blob = tokenizer || weights || m->gguf ? NULL : gm_builtin_tokenizer;
    if (tokenizer) snprintf(path, sizeof path, "%s", tokenizer);
    else if (m->gguf) snprintf(path, sizeof path, "%s", m->weights_path); /* the vocabulary inside it */
    else if (blob) snprintf(path, sizeof path, "%s", blob->name);
    else {
        char *dir = gm_strdup(weights ? weights : m->origin);
        char *slash = strrchr(dir, '/');
        if (!gm_is_dir(dir)) slash ? (void)(*slash = 0) : (void)strcpy(dir, ".");
        snprintf(path, sizeof path, "%s/tokenizer.model", dir);
        free(dir);
        if (access(path, R_OK)) {
            gm_fail(e, "no tokenizer: %s not found; pass --tokenizer FILE", path);
            return NULL;
        }
    }
    rt_tokenizer *t = !tokenizer && m->gguf ? gguf_tokenizer(m->gguf, e)
                      : blob                ? rt_tok_load_from_memory(blob->data, blob->size, path, e)
                                            : rt_tok_load(path, e);
    int64_t tv = t ? rt_tok_vocab_size(t) : 0, mv = m->graph->vocab;
    if (t && (tv > mv || mv - tv > 128)) {
        gm_fail(e, "%s: the tokenizer has %lld pieces but the model has %lld logits; they do not belong together "
                "(pass the model's own --tokenizer)", path, (long long)tv, (long long)mv);
        rt_tok_free(t);
        return NULL;
    }
    return t;
}
