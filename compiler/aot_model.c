/* aot_model.c — the model of a compiled executable or library, as its
 * object (backends/llvm/aot.h) describes it: shared by the executable's main
 * (aot_main.c) and the embedding API (aot_lib.c). No LLVM here.
 *
 * gm_aot_install makes the description compiled into the object the builtin
 * one (model.h), and its embedded checkpoint and tokenizer, when it has them,
 * the builtin weights, so the ordinary model loading rebuilds the IR and binds
 * the weights from them. The engine is the one of backends/exec/exec.h with
 * each kernel looked up in the linked table instead of compiled, or, for
 * the nvptx target, the GPU engine running the PTX compiled in. */
#include "aot_model.h"

#include "backends/exec/exec.h"
#include "backends/nvptx/gpu_engine.h"

extern const unsigned char gm_aot_kernels[];
extern const int32_t gm_aot_n;
extern const ex_kernel_fn gm_aot_fns[];
extern const char gm_aot_description[], gm_aot_weights[], gm_aot_passes[], gm_aot_manifest[], gm_aot_ptx[];
extern const struct {
    const char *name;
    const unsigned char *start, *end;
} gm_aot_blobs[];
extern const int32_t gm_aot_n_blobs;

static int aot_resolve(const void *ctx, const ex_kernel *ks, int n, ex_kernel_fn *fns, void **handle,
                       int *from_cache, gm_err *e) {
    (void)ctx, (void)handle, (void)from_cache;
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < gm_aot_n && memcmp(gm_aot_kernels + k * sizeof *ks, &ks[i], sizeof *ks)) k++;
        if (k == gm_aot_n)
            return gm_fail(e, "the checkpoint needs a %s kernel this model was not compiled with "
                              "(different weight dtypes?); recompile it with gemmac compile",
                           ir_ops[ks[i].op].name);
        fns[i] = gm_aot_fns[k];
    }
    return 0;
}

rt_engine *gm_aot_engine(gm_model *m, const rt_engine_opts *o, gm_err *e) {
    gm_model_pack(m, o->no_cache);
    if (*gm_aot_ptx)
        return nv_engine_create(m->graph, m->bound, o, gm_aot_ptx, (const ex_kernel *)gm_aot_kernels, gm_aot_n, e);
    return ex_engine_create(m->graph, m->bound, o, "aot", &(ex_resolver){aot_resolve, NULL, NULL}, e);
}

rt_engine *gm_model_engine(gm_model *m, const char *backend, const rt_engine_opts *o, gm_err *e) {
    if (strcmp(backend, "aot")) {
        gm_fail(e, "unknown backend \"%s\" (a compiled model has one: aot)", backend);
        return NULL;
    }
    return gm_aot_engine(m, o, e);
}

/* The blob whose name ends with one of the suffixes into *b; b or NULL. */
static const gm_blob *blob(const char *suffix, const char *suffix2, gm_blob *b) {
    for (int i = 0; i < gm_aot_n_blobs; i++) {
        const char *name = gm_aot_blobs[i].name;
        if (!gm_ends_with(name, suffix) && !(suffix2 && gm_ends_with(name, suffix2))) continue;
        *b = (gm_blob){name, gm_aot_blobs[i].start, (size_t)(gm_aot_blobs[i].end - gm_aot_blobs[i].start)};
        return b;
    }
    return NULL;
}

const char *gm_aot_install(void) {
    static gm_blob weights, tokenizer, packed;
    gm_builtin_description = gm_aot_description;
    gm_builtin_passes = gm_aot_passes;
    gm_builtin_weights = blob(".safetensors", ".gguf", &weights);
    gm_builtin_tokenizer = blob("tokenizer.model", NULL, &tokenizer);
    gm_builtin_packed = blob("packed-weights", NULL, &packed);
    return gm_builtin_weights ? NULL : gm_aot_weights;
}

const char *gm_aot_manifest_text(void) {
    return gm_aot_manifest;
}
