/* aot_model.h — the model compiled into an executable or library by `gemmac
 * compile` (compiler/aot_model.c), for its main (aot_main.c) and its
 * embedding API (aot_lib.c). LLVM-free. */
#ifndef GM_AOT_MODEL_H
#define GM_AOT_MODEL_H

#include "model.h"

/* Installs the compiled model's description, and its embedded checkpoint
 * and tokenizer if any, as the builtin ones (model.h). Returns the
 * checkpoint path it was compiled with, or NULL when the weights are
 * embedded (open the model with weights NULL then). */
const char *gm_aot_install(void);

/* The engine of m whose kernels are those compiled in (the "aot" backend). */
rt_engine *gm_aot_engine(gm_model *m, const rt_engine_opts *o, gm_err *e);

/* What `NAME --version` prints: model, weights, gemmac version, target, passes. */
const char *gm_aot_manifest_text(void);

#endif
