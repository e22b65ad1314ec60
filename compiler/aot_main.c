/* aot_main.c — the main of an executable made by `gemmac compile`.
 *
 * The object linked with it (backends/llvm/aot.h) holds the model's kernels,
 * their descriptions, the model description and the checkpoint's path. At
 * start-up the description is installed as the builtin one (model.h), so the
 * ordinary `run` and `logits` commands rebuild the IR and bind the weights
 * from it, and their engine is the one of backends/llvm/exec.h with each
 * kernel looked up in the linked table instead of compiled. No LLVM here.
 * Compiled with --embed-weights, it carries the checkpoint (and tokenizer)
 * as blobs: they become the builtin weights (model.h), opened from memory,
 * and no --weights path is fixed; a user's --weights still overrides.
 *
 *   NAME [run flags]            as `gemmac run MODEL [run flags]`
 *   NAME logits --tokens ...    as `gemmac logits MODEL --tokens ...`
 *   NAME --version              the manifest */
#include "backends/llvm/exec.h"
#include "cli.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>

extern const unsigned char gm_aot_kernels[];
extern const int32_t gm_aot_n;
extern const lv_kernel_fn gm_aot_fns[];
extern const char gm_aot_description[], gm_aot_weights[], gm_aot_manifest[];
extern const struct {
    const char *name;
    const unsigned char *start, *end;
} gm_aot_blobs[];
extern const int32_t gm_aot_n_blobs;

static int aot_resolve(const void *ctx, const lv_kernel *ks, int n, lv_kernel_fn *fns, void **handle,
                       int *from_cache, gm_err *e) {
    (void)ctx, (void)handle, (void)from_cache;
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < gm_aot_n && memcmp(gm_aot_kernels + k * sizeof *ks, &ks[i], sizeof *ks)) k++;
        if (k == gm_aot_n)
            return gm_fail(e, "the checkpoint needs a %s kernel this executable was not compiled with "
                              "(different weight dtypes?); recompile it with gemmac compile",
                           ir_ops[ks[i].op].name);
        fns[i] = gm_aot_fns[k];
    }
    return 0;
}

rt_engine *gm_model_engine(gm_model *m, const char *backend, const rt_engine_opts *o, gm_err *e) {
    if (strcmp(backend, "aot")) {
        gm_fail(e, "unknown backend \"%s\" (a compiled model has one: aot)", backend);
        return NULL;
    }
    return lv_engine_create(m->graph, m->bound, o, "aot", &(lv_resolver){aot_resolve, NULL, NULL}, e);
}

/* Blob i of the table (aot.h: [0] weights, [1] tokenizer) into *b; b or NULL. */
static const gm_blob *blob(int i, gm_blob *b) {
    if (i >= gm_aot_n_blobs) return NULL;
    *b = (gm_blob){gm_aot_blobs[i].name, gm_aot_blobs[i].start, (size_t)(gm_aot_blobs[i].end - gm_aot_blobs[i].start)};
    return b;
}

int main(int argc, char **argv) {
    if (argc == 2 && cli_is(argv[1], "--version")) return fputs(gm_aot_manifest, stdout), 0;
    gm_builtin_description = gm_aot_description;
    gm_blob weights, tokenizer;
    gm_builtin_weights = blob(0, &weights);
    gm_builtin_tokenizer = blob(1, &tokenizer);
    int logits = argc > 1 && cli_is(argv[1], "logits"), skip = 1 + logits;
    /* COMMAND MODEL --backend aot [--weights W], then the user's flags (which may override these) */
    char **args = gm_calloc(argc + 6, sizeof *args);
    const char *fixed[] = {logits ? "logits" : "run", argv[0], "--backend", "aot", "--weights", gm_aot_weights};
    int n = 0;
    for (; n < (gm_builtin_weights ? 4 : 6); n++) args[n] = (char *)fixed[n];
    for (int i = skip; i < argc; i++) args[n++] = argv[i];
    int rc = logits ? cmd_logits(n, args) : cmd_run(n, args);
    free(args);
    return rc;
}
