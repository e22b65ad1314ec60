/* engines.c — gm_model_engine: an engine from a backend named on the
 * command line. Apart from model.c because it links every backend, LLVM
 * included; an AOT executable defines its own (compiler/aot_model.c). The
 * nvptx backend generates PTX for the GPU it finds and hands it to the GPU
 * engine (backends/nvptx/gpu_engine.h). */
#include "model.h"

#include "backends/llvm/llvm_engine.h"
#include "backends/nvptx/gpu_engine.h"
#include "backends/reference/reference.h"

#include <stdlib.h>

const char *const gm_backend_names[] = {"reference", "jit", "nvptx", NULL};

static rt_engine *nvptx_engine(gm_model *m, const rt_engine_opts *o, gm_err *e) {
    char gpu[16];
    if (nv_host_gpu(gpu, sizeof gpu, e)) return NULL;
    const ir_graph *g = m->graph;
    ex_kernel *ks = gm_malloc(g->n_nodes * sizeof *ks);
    int *which = gm_malloc(g->n_nodes * sizeof *which), n = ex_kernels_of(g, m->bound, ks, which);
    double t0 = gm_now_s();
    char *ptx = nv_ptx(ks, n, gpu, e);
    double ptx_s = gm_now_s() - t0;
    rt_engine *en = ptx ? nv_engine_create(g, m->bound, o, ptx, ks, n, e) : NULL;
    if (en) en->compile_s += ptx_s;
    free(ptx);
    free(ks);
    free(which);
    return en;
}

rt_engine *gm_model_engine(gm_model *m, const char *backend, const rt_engine_opts *o, gm_err *e) {
    if (gm_model_check_memory(m, o->context, o->sequences, e)) return NULL;
    gm_model_pack(m, o->no_cache);
    if (!strcmp(backend, "reference")) return ref_engine_create(m->graph, m->bound, o, e);
    if (!strcmp(backend, "jit")) return llvm_engine_create(m->graph, m->bound, o, e);
    if (!strcmp(backend, "nvptx")) return nvptx_engine(m, o, e);
    gm_fail(e, "unknown backend \"%s\" (available: reference, jit, nvptx)", backend);
    return NULL;
}

rt_trainer *gm_trainer_create(const ir_graph *g, const gm_tensor *const *bound, const char *backend, int no_cache,
                              gm_err *e) {
    if (!strcmp(backend, "reference")) return ref_trainer_create(g, bound, e);
    if (!strcmp(backend, "jit")) return llvm_trainer_create(g, bound, no_cache, e);
    gm_fail(e, "--backend %s: training runs on the reference or jit backend", backend);
    return NULL;
}
