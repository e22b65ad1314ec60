/* cli.h — the gemmac subcommands and the little they share: reading flags
 * and reporting errors as `gemmac: <message>` with the documented exit codes
 * (1: the input is wrong, 2: the command line is wrong). */
#ifndef GM_CLI_H
#define GM_CLI_H

#include "model.h"
#include "pipeline.h"
#include "runtime/common.h"
#include "runtime/tokenizer.h"

int cmd_import(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* If argv[*i] is `flag VALUE` or `flag=VALUE`, returns VALUE and advances *i
 * past it; NULL otherwise. A flag missing its value is a usage error. */
const char *cli_value(int argc, char **argv, int *i, const char *flag);
int cli_is(const char *arg, const char *flag);   /* argv entry is this switch */

/* The pass flags every model-opening command takes: -O0 / -O1, --passes=LIST
 * (names switch passes on, -name off), --dump-after=PASS, --activations, --weights-dtype. Returns 1 when
 * argv[*i] was one of them (advancing *i past a value), 0 otherwise. */
int cli_pipeline_flag(int argc, char **argv, int *i, gm_pipeline_opts *po);
/* Where a usage text lists the pipeline's passes: cli_help prints their names there. */
#define CLI_PASS_LIST "@PASSES@"
#define CLI_PIPELINE_HELP \
    "  -O0, -O1, -O2      IR passes: none; folding, common subexpressions, dead code and the memory\n" \
    "                     plan; and fusion and weight packing (default)\n" \
    "  --passes LIST      switch single passes on (name) or off (-name), of\n" \
    "                     " CLI_PASS_LIST "\n" \
    "  --dump-after PASS  print the IR after PASS (or after \"frontend\") on stderr\n" \
    "  --activations A    f32 (default, exact); int8: the matmuls of block-quantized weights\n" \
    "                     round their input rows to 8 bits per block of 32 (int8 dot products);\n" \
    "                     bf16: those of bf16 weights round them to bf16 (bf16 dot products)\n" \
    "  --weights-dtype T  quantize a float checkpoint's matrices at load to T (q8_0, q4_0, q4_1,\n" \
    "                     q5_0, q5_1, q4_k, q5_k, q6_k), as gemmac quantize --to T would; or\n" \
    "                     convert any checkpoint's matrices to bf16 or f16\n"

/* The tokenizer of model m: the file `tokenizer` when given, else the vocabulary
 * inside a .gguf, the executable's embedded one, or tokenizer.model beside the
 * checkpoint (`weights`, else the description). Refused when its size does not
 * fit the model's logits. */
rt_tokenizer *cli_open_tokenizer(const gm_model *m, const char *tokenizer, const char *weights, gm_err *e);

int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The values of the pass flags and --weights-dtype, checked before any file is
 * read: a wrong one is a usage error of cmd (returns 2), like any other flag's.
 * Then the environment's GEMMAC_THREADS and GEMMAC_BF16_DOT: a value they do not
 * take is reported (returns 1) rather than silently ignored. po may be NULL. */
int cli_check_options(const char *cmd, const gm_pipeline_opts *po);
/* A --backend value (flag names it; NULL passes): reference, jit or nvptx
 * (compiler/engines.c), or in a compiled executable aot; else a usage error (2). */
int cli_check_backend(const char *cmd, const char *flag, const char *backend);
/* Prints usage on stdout, CLI_PASS_LIST replaced by the passes of compiler/pipeline.c; returns 0. */
int cli_help(const char *usage);
/* A flag's integer value within [min, max] into *out: 0, or the usage error
 * (exit status 2) that names the flag, the range and what was found. */
int cli_int_flag(const char *cmd, const char *flag, const char *v, long min, long max, int *out);
int cli_error(const gm_err *e);                  /* prints, returns 1 */
/* A directory gemmac ships (models/demo, eval): beside the build tree's
 * gemmac, in an installed share/gemmac/<installed>, or in the source tree it
 * was built from; NULL with e set when none is there. */
char *cli_shipped(const char *rel, const char *installed, gm_err *e);
/* --threads N: the worker pools this process makes get n threads (0: leave $GEMMAC_THREADS as it is). */
void cli_use_threads(int n);

#endif
