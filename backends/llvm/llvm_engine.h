/* llvm_engine.h — the "jit" backend: the IR compiled to native kernels with
 * LLVM, in process, for the CPU it runs on. */
#ifndef GM_LLVM_ENGINE_H
#define GM_LLVM_ENGINE_H

#include "ir/ir.h"
#include "runtime/engine.h"
#include "runtime/weights.h"

/* bound[v] is the checkpoint tensor of weight value v (NULL for others).
 * The graph and the tensors must outlive the engine. */
rt_engine *llvm_engine_create(const ir_graph *g, const gm_tensor *const *bound, const rt_engine_opts *o,
                              gm_err *e);

/* The same for training graph g (compiler/passes/differentiate.c). */
rt_trainer *llvm_trainer_create(const ir_graph *g, const gm_tensor *const *bound, int no_cache, gm_err *e);

#endif
