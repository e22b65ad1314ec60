/* engines.c — gm_model_engine: an engine from a backend named on the
 * command line. Apart from model.c because it links every backend, LLVM
 * included; an AOT executable defines its own (compiler/aot_main.c). */
#include "model.h"

#include "backends/llvm/llvm_engine.h"
#include "backends/reference/reference.h"

const char *const gm_backend_names[] = {"reference", "jit", NULL};

rt_engine *gm_model_engine(gm_model *m, const char *backend, const rt_engine_opts *o, gm_err *e) {
    gm_model_pack(m, o->no_cache);
    if (!strcmp(backend, "reference")) return ref_engine_create(m->graph, m->bound, o, e);
    if (!strcmp(backend, "jit")) return llvm_engine_create(m->graph, m->bound, o, e);
    gm_fail(e, "unknown backend \"%s\" (available: reference, jit)", backend);
    return NULL;
}
