/* aot_main.c — the main of an executable made by `gemmac compile`.
 *
 * The object linked with it (backends/llvm/aot.h) holds the model's kernels,
 * their descriptions, the model description and the checkpoint's path. At
 * start-up the model is installed (aot_model.h), so the ordinary `run`
 * and `logits` commands rebuild the IR and bind the weights from it, with the
 * compiled kernels as the "aot" backend. No LLVM here. Compiled with
 * --embed-weights, it carries the checkpoint (and tokenizer) as blobs, opened
 * from memory, and no --weights path is fixed; a user's --weights still
 * overrides.
 *
 *   NAME [run flags]            as `gemmac run MODEL [run flags]`
 *   NAME logits --tokens ...    as `gemmac logits MODEL --tokens ...`
 *   NAME --version              the manifest */
#include "aot_model.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc == 2 && cli_is(argv[1], "--version")) return fputs(gm_aot_manifest_text(), stdout), 0;
    const char *slash = strrchr(argv[0], '/');
    gm_program = slash ? slash + 1 : argv[0];
    const char *weights = gm_aot_install();
    int logits = argc > 1 && cli_is(argv[1], "logits"), skip = 1 + logits;
    /* COMMAND MODEL --backend aot [--weights W], then the user's flags (which may override these) */
    char **args = gm_calloc(argc + 6, sizeof *args);
    const char *fixed[] = {logits ? "logits" : "run", argv[0], "--backend", "aot", "--weights", weights};
    int n = 0;
    for (; n < (weights ? 6 : 4); n++) args[n] = (char *)fixed[n];
    for (int i = skip; i < argc; i++) args[n++] = argv[i];
    int rc = logits ? cmd_logits(n, args) : cmd_run(n, args);
    free(args);
    return rc;
}
