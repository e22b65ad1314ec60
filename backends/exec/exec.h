/* exec.h — an engine that runs a graph on compiled kernels (exec.c), with
 * the code supplied by a resolver: the JIT's, or the table an AOT executable
 * links. No LLVM here. */
#ifndef GM_EXEC_EXEC_H
#define GM_EXEC_EXEC_H

#include "kernel.h"
#include "runtime/engine.h"

typedef struct {
    /* Fills fns[0..n) with code for ks[0..n) and sets *from_cache; *handle
     * (may stay NULL) is released with the engine. -1 after reporting. */
    int (*resolve)(const void *ctx, const ex_kernel *ks, int n, ex_kernel_fn *fns, void **handle, int *from_cache,
                   gm_err *e);
    void (*release)(void *handle);
    const void *ctx;
} ex_resolver;

/* bound[v] is the checkpoint tensor of weight value v (NULL for others).
 * The graph and the tensors must outlive the engine. name: its backend. */
rt_engine *ex_engine_create(const ir_graph *g, const gm_tensor *const *bound, const rt_engine_opts *o,
                            const char *name, const ex_resolver *r, gm_err *e);

/* The trainer (runtime/engine.h) of training graph g on compiled kernels:
 * the ops that depend on a row's position (rope, attention and their
 * gradients) run a packed sequence at a time, every other op on the whole
 * batch; the loss and the gradients, of fixed shapes, have buffers of
 * their own, every other value its block of the arena. */
rt_trainer *ex_trainer_create(const ir_graph *g, const gm_tensor *const *bound, const char *name,
                              const ex_resolver *r, gm_err *e);

#endif
