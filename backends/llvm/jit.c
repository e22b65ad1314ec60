/* jit.c — kernels → one module → O3 → object code → LLJIT → function
 * pointers (see jit.h), with an on-disk cache of the object code.
 *
 * The pass pipeline gets the target machine (without it the vectorisers have
 * no cost model), and LLJIT a second, identical one, because it takes
 * ownership of the one it is given. The module is always lowered to an
 * object in memory and handed to LLJIT as one; that object is also what the
 * cache stores, in ${GEMMAC_CACHE:-$HOME/.cache/gemmac}/jit/<key>.o, where
 * key hashes everything the code depends on: the kernels' LLVM IR as
 * emitted (before optimisation: emitting takes milliseconds, optimising and
 * code generation the rest), so a changed emitter never meets a stale
 * object, the target (triple, CPU, features), LLVM's version and gemmac's. A file starts
 * with a header (magic, key, size, a hash of the object) so that a stale,
 * truncated or corrupt file is recompiled rather than loaded. Files are
 * written atomically; a cache that cannot be written is silently skipped. */
#include "jit.h"

#include "codegen.h"
#include "emit.h"
#include "runtime/cache.h"
#include "runtime/qpanel.h"

#include <errno.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm/Config/llvm-config.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

struct lv_jit {
    LLVMOrcLLJITRef jit;
    ex_kernel_fn *fns;
    int n;
    int from_cache;
};

#define CACHE_MAGIC 0x31544a4943414d47ull /* "GMACIJT1" */

typedef struct {
    uint64_t magic, key, size, hash;
} cache_header;

int lv_llvm_fail(LLVMErrorRef err, const char *what, gm_err *e) {
    if (!err) return 0;
    char *msg = LLVMGetErrorMessage(err);
    gm_fail(e, "llvm: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return -1;
}

static LLVMModuleRef emit_module(LLVMContextRef ctx, const lv_target *t, LLVMTargetMachineRef tm,
                                 const ex_kernel *ks, int n, lv_kernel_emitter *emit) {
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("gemmac", ctx);
    LLVMSetTarget(mod, t->triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, layout);
    LLVMDisposeTargetData(layout);
    lv_emit m;
    lv_emit_init(&m, mod, t);
    for (int i = 0; i < n; i++) {
        char name[64];
        ex_kernel_symbol(name, sizeof name, &ks[i], i);
        emit(&m, &ks[i], name);
    }
    lv_emit_dispose(&m);
    return mod;
}

/* Verifies and optimises mod at O3; CPU targets (vectors wider than one lane) with the
 * loop and SLP vectorisers on, the GPU's (one thread a lane) with LLVM's defaults. */
static int optimise(LLVMModuleRef mod, const lv_target *t, LLVMTargetMachineRef tm, gm_err *e) {
    char *msg = NULL;
    if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
        gm_fail(e, "%s: the emitted module is invalid (a bug in its kernel emitters): %.900s", t->triple, msg);
        LLVMDisposeMessage(msg);
        return -1;
    }
    LLVMDisposeMessage(msg);
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
    if (t->width > 1) {
        LLVMPassBuilderOptionsSetLoopVectorization(o, 1);
        LLVMPassBuilderOptionsSetSLPVectorization(o, 1);
        LLVMPassBuilderOptionsSetLoopUnrolling(o, 1);
    }
    int rc = lv_llvm_fail(LLVMRunPasses(mod, "default<O3>", tm, o), "O3", e);
    LLVMDisposePassBuilderOptions(o);
    return rc;
}

LLVMModuleRef lv_module_build(LLVMContextRef ctx, const lv_target *t, LLVMTargetMachineRef tm, const ex_kernel *ks,
                              int n, lv_kernel_emitter *emit, gm_err *e) {
    LLVMModuleRef mod = emit_module(ctx, t, tm, ks, n, emit);
    if (!optimise(mod, t, tm, e)) return mod;
    LLVMDisposeModule(mod);
    return NULL;
}

/* ---- the cache ---- */

static uint64_t cache_key(const lv_target *t, LLVMModuleRef mod) {
    const char *parts[] = {t->triple, t->cpu, t->features, LLVM_VERSION_STRING, GM_VERSION};
    char *ir = LLVMPrintModuleToString(mod);
    uint64_t h = gm_fnv1a(GM_FNV1A_SEED, ir, strlen(ir));
    LLVMDisposeMessage(ir);
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) h = gm_fnv1a(h, parts[i], strlen(parts[i]) + 1);
    return h;
}

static int cache_path(char *buf, size_t len, uint64_t key) {
    char dir[4096];
    if (gm_cache_dir("jit", dir, sizeof dir)) return -1;
    snprintf(buf, len, "%s/%016llx.o", dir, (unsigned long long)key);
    return 0;
}

/* The cached object for key, or NULL when absent or invalid. */
static LLVMMemoryBufferRef cache_load(uint64_t key) {
    char path[4200];
    size_t len;
    gm_err e;
    char *data = cache_path(path, sizeof path, key) ? NULL : gm_read_file(path, &len, &e);
    if (!data) return NULL;
    gm_cache_used(path);
    cache_header h;
    LLVMMemoryBufferRef buf = NULL;
    if (len >= sizeof h) {
        memcpy(&h, data, sizeof h);
        if (h.magic == CACHE_MAGIC && h.key == key && h.size == len - sizeof h &&
            h.hash == gm_fnv1a(GM_FNV1A_SEED, data + sizeof h, h.size))
            buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(data + sizeof h, h.size, "gemmac-jit-cache");
    }
    free(data);
    return buf;
}

static void cache_store(uint64_t key, LLVMMemoryBufferRef obj) {
    char path[4200];
    if (cache_path(path, sizeof path, key)) return;
    size_t size = LLVMGetBufferSize(obj);
    cache_header h = {CACHE_MAGIC, key, size, gm_fnv1a(GM_FNV1A_SEED, LLVMGetBufferStart(obj), size)};
    char *data = gm_malloc(sizeof h + size);
    memcpy(data, &h, sizeof h);
    memcpy(data + sizeof h, LLVMGetBufferStart(obj), size);
    gm_cache_store(path, data, sizeof h + size);
    free(data);
}

/* ---- compiling and linking ---- */

/* The object code of the kernels: from the cache when it has their key, else
 * optimised and generated (and stored unless no_cache). */
static LLVMMemoryBufferRef kernel_object(const lv_target *t, const ex_kernel *ks, int n, int no_cache, int *from_cache,
                                         gm_err *e) {
    LLVMTargetMachineRef tm = lv_target_machine(t, 1, e);
    if (!tm) return NULL;
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = emit_module(ctx, t, tm, ks, n, lv_emit_kernel);
    uint64_t key = cache_key(t, mod);
    LLVMMemoryBufferRef obj = no_cache ? NULL : cache_load(key);
    char *msg = NULL;
    *from_cache = obj != NULL;
    if (!obj && !optimise(mod, t, tm, e)) {
        if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &msg, &obj)) {
            gm_fail(e, "jit: code generation failed: %s", msg);
            LLVMDisposeMessage(msg);
            obj = NULL;
        }
        if (obj && !no_cache) cache_store(key, obj);
    }
    LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    return obj;
}

/* The runtime functions kernels call (the process generator finds libm's, but
 * not those linked statically into this program): defined at their addresses. */
static int define_runtime(LLVMOrcLLJITRef jit, gm_err *e) {
    LLVMJITSymbolFlags flags = {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0};
    LLVMOrcCSymbolMapPair row = {LLVMOrcLLJITMangleAndIntern(jit, "gm_qpanel_row"),
                                 {(LLVMOrcExecutorAddress)(uintptr_t)gm_qpanel_row, flags}};
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(&row, 1);
    return lv_llvm_fail(LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(jit), mu), "runtime symbols", e);
}

static LLVMOrcLLJITRef make_jit(const lv_target *t, gm_err *e) {
    LLVMTargetMachineRef tm = lv_target_machine(t, 1, e);
    if (!tm) return NULL;
    LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    LLVMOrcLLJITRef jit;
    if (lv_llvm_fail(LLVMOrcCreateLLJIT(&jit, b), "creating LLJIT", e)) return NULL;
    LLVMOrcDefinitionGeneratorRef process;
    if (lv_llvm_fail(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&process, LLVMOrcLLJITGetGlobalPrefix(jit),
                                                                          NULL, NULL),
                     "process symbols", e)) {
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit), process);
    if (define_runtime(jit, e)) {
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    return jit;
}

/* Adds the object to the JIT (which takes it) and looks every kernel up. */
static int link_kernels(lv_jit *j, LLVMMemoryBufferRef obj, const ex_kernel *ks, gm_err *e) {
    LLVMOrcJITDylibRef main = LLVMOrcLLJITGetMainJITDylib(j->jit);
    if (lv_llvm_fail(LLVMOrcLLJITAddObjectFile(j->jit, main, obj), "adding the object", e)) return -1;
    for (int i = 0; i < j->n; i++) {
        char name[64];
        LLVMOrcExecutorAddress addr;
        ex_kernel_symbol(name, sizeof name, &ks[i], i);
        if (lv_llvm_fail(LLVMOrcLLJITLookup(j->jit, &addr, name), name, e)) return -1;
        j->fns[i] = (ex_kernel_fn)(uintptr_t)addr;
    }
    return 0;
}

static int build(lv_jit *j, const lv_target *t, const ex_kernel *ks, int no_cache, gm_err *e) {
    LLVMMemoryBufferRef obj = kernel_object(t, ks, j->n, no_cache, &j->from_cache, e);
    if (!obj) return -1;
    if (!(j->jit = make_jit(t, e))) {
        LLVMDisposeMemoryBuffer(obj);
        return -1;
    }
    return link_kernels(j, obj, ks, e);
}

lv_jit *lv_jit_compile(const ex_kernel *ks, int n, int no_cache, gm_err *e) {
    lv_target t;
    lv_target_host(&t);
    lv_jit *j = gm_calloc(1, sizeof *j);
    j->n = n;
    j->fns = gm_calloc(n, sizeof *j->fns);
    int rc = build(j, &t, ks, no_cache, e);
    lv_target_free(&t);
    if (rc) {
        lv_jit_free(j);
        return NULL;
    }
    return j;
}

ex_kernel_fn lv_jit_kernel(const lv_jit *j, int i) { return j->fns[i]; }

int lv_jit_from_cache(const lv_jit *j) { return j->from_cache; }

void lv_jit_free(lv_jit *j) {
    if (!j) return;
    if (j->jit) LLVMOrcDisposeLLJIT(j->jit);
    free(j->fns);
    free(j);
}
