/* llvm_engine.c — the "jit" backend: the engine (and the trainer) of exec.h
 * with kernels compiled by LLVM (jit.h) when it is made, or loaded from the
 * JIT cache. */
#include "llvm_engine.h"

#include "backends/exec/exec.h"
#include "jit.h"

static int jit_resolve(const void *ctx, const ex_kernel *ks, int n, ex_kernel_fn *fns, void **handle, int *from_cache,
                       gm_err *e) {
    const rt_engine_opts *o = ctx;
    lv_jit *j = lv_jit_compile(ks, n, o->no_cache, e);
    if (!j) return -1;
    for (int i = 0; i < n; i++) fns[i] = lv_jit_kernel(j, i);
    *from_cache = lv_jit_from_cache(j);
    *handle = j;
    return 0;
}

static void jit_release(void *handle) { lv_jit_free(handle); }

rt_engine *llvm_engine_create(const ir_graph *g, const gm_tensor *const *bound, const rt_engine_opts *o,
                              gm_err *e) {
    return ex_engine_create(g, bound, o, "jit", &(ex_resolver){jit_resolve, jit_release, o}, e);
}

rt_trainer *llvm_trainer_create(const ir_graph *g, const gm_tensor *const *bound, int no_cache, gm_err *e) {
    rt_engine_opts o = {.no_cache = no_cache};
    return ex_trainer_create(g, bound, "jit", &(ex_resolver){jit_resolve, jit_release, &o}, e);
}
