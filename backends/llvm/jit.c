/* jit.c — kernels → one module → O3 → LLJIT → function pointers (see jit.h).
 * The pass pipeline gets the target machine (without it the vectorisers have
 * no cost model), and LLJIT a second, identical one, because it takes
 * ownership of the one it is given. */
#include "jit.h"

#include "emit.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm/Config/llvm-config.h>
#include <stdio.h>
#include <stdlib.h>

struct lv_jit {
    LLVMOrcLLJITRef jit;
    lv_kernel_fn *fns;
    int n;
};

/* Moves an LLVM error into e; returns -1 (0 when err is success). */
static int llvm_fail(LLVMErrorRef err, const char *what, gm_err *e) {
    if (!err) return 0;
    char *msg = LLVMGetErrorMessage(err);
    gm_fail(e, "jit: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return -1;
}

static void kernel_name(char *buf, size_t len, const lv_kernel *k, int i) {
    snprintf(buf, len, "gm_%s_%d", ir_ops[k->op].name, i);
}

static LLVMModuleRef emit_module(LLVMContextRef ctx, const lv_target *t, LLVMTargetMachineRef tm,
                                 const lv_kernel *ks, int n) {
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("gemmac", ctx);
    LLVMSetTarget(mod, t->triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, layout);
    LLVMDisposeTargetData(layout);
    lv_emit m;
    lv_emit_init(&m, mod, t);
    for (int i = 0; i < n; i++) {
        char name[64];
        kernel_name(name, sizeof name, &ks[i], i);
        lv_emit_kernel(&m, &ks[i], name);
    }
    lv_emit_dispose(&m);
    return mod;
}

static int optimise(LLVMModuleRef mod, LLVMTargetMachineRef tm, gm_err *e) {
    char *msg = NULL;
    if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
        gm_fail(e, "jit: the emitted module is invalid (a bug in backends/llvm): %.900s", msg);
        LLVMDisposeMessage(msg);
        return -1;
    }
    LLVMDisposeMessage(msg);
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(o, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(o, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(o, 1);
    int rc = llvm_fail(LLVMRunPasses(mod, "default<O3>", tm, o), "O3", e);
    LLVMDisposePassBuilderOptions(o);
    return rc;
}

static LLVMOrcLLJITRef make_jit(const lv_target *t, gm_err *e) {
    LLVMTargetMachineRef tm = lv_target_machine(t, e);
    if (!tm) return NULL;
    LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    LLVMOrcLLJITRef jit;
    if (llvm_fail(LLVMOrcCreateLLJIT(&jit, b), "creating LLJIT", e)) return NULL;
    LLVMOrcDefinitionGeneratorRef process;
    if (llvm_fail(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&process, LLVMOrcLLJITGetGlobalPrefix(jit),
                                                                       NULL, NULL),
                  "process symbols", e)) {
        LLVMOrcDisposeLLJIT(jit);
        return NULL;
    }
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit), process);
    return jit;
}

static LLVMOrcThreadSafeContextRef new_context(LLVMContextRef *ctx) {
#if LLVM_VERSION_MAJOR >= 21
    *ctx = LLVMContextCreate();
    return LLVMOrcCreateNewThreadSafeContextFromLLVMContext(*ctx);
#else
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    *ctx = LLVMOrcThreadSafeContextGetContext(tsc);
    return tsc;
#endif
}

/* Adds the module to the JIT (which takes it) and looks every kernel up. */
static int link_kernels(lv_jit *j, LLVMModuleRef mod, LLVMOrcThreadSafeContextRef tsc, const lv_kernel *ks,
                        gm_err *e) {
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
    LLVMOrcJITDylibRef main = LLVMOrcLLJITGetMainJITDylib(j->jit);
    if (llvm_fail(LLVMOrcLLJITAddLLVMIRModule(j->jit, main, tsm), "adding the module", e)) {
        LLVMOrcDisposeThreadSafeModule(tsm);
        return -1;
    }
    for (int i = 0; i < j->n; i++) {
        char name[64];
        LLVMOrcExecutorAddress addr;
        kernel_name(name, sizeof name, &ks[i], i);
        if (llvm_fail(LLVMOrcLLJITLookup(j->jit, &addr, name), name, e)) return -1;
        j->fns[i] = (lv_kernel_fn)(uintptr_t)addr;
    }
    return 0;
}

static int build(lv_jit *j, const lv_target *t, const lv_kernel *ks, gm_err *e) {
    LLVMTargetMachineRef tm = lv_target_machine(t, e);
    if (!tm) return -1;
    LLVMContextRef ctx;
    LLVMOrcThreadSafeContextRef tsc = new_context(&ctx);
    LLVMModuleRef mod = emit_module(ctx, t, tm, ks, j->n);
    int rc = optimise(mod, tm, e);
    LLVMDisposeTargetMachine(tm);
    if (!rc && !(j->jit = make_jit(t, e))) rc = -1;
    if (rc) LLVMDisposeModule(mod);
    else rc = link_kernels(j, mod, tsc, ks, e);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return rc;
}

lv_jit *lv_jit_compile(const lv_kernel *ks, int n, gm_err *e) {
    lv_target t;
    lv_target_host(&t);
    lv_jit *j = gm_calloc(1, sizeof *j);
    j->n = n;
    j->fns = gm_calloc(n, sizeof *j->fns);
    int rc = build(j, &t, ks, e);
    lv_target_free(&t);
    if (rc) {
        lv_jit_free(j);
        return NULL;
    }
    return j;
}

lv_kernel_fn lv_jit_kernel(const lv_jit *j, int i) { return j->fns[i]; }

void lv_jit_free(lv_jit *j) {
    if (!j) return;
    if (j->jit) LLVMOrcDisposeLLJIT(j->jit);
    free(j->fns);
    free(j);
}
