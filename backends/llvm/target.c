/* target.c — the host target (see target.h): LLVM names the CPU and its
 * features, the architecture's own file picks the vector width. */
#include "target.h"

#include "backends/x86_64/x86_64.h"

#include <llvm-c/Core.h>

void lv_target_host(lv_target *t) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    t->triple = LLVMGetDefaultTargetTriple();
    t->cpu = LLVMGetHostCPUName();
    t->features = LLVMGetHostCPUFeatures();
    t->width = 4;
    t->prefer_width = NULL;
    if (!strncmp(t->triple, "x86_64", 6)) x86_64_tune(t);
}

void lv_target_free(lv_target *t) {
    LLVMDisposeMessage(t->triple);
    LLVMDisposeMessage(t->cpu);
    LLVMDisposeMessage(t->features);
}

LLVMTargetMachineRef lv_target_machine(const lv_target *t, gm_err *e) {
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(t->triple, &target, &msg)) {
        gm_fail(e, "LLVM has no target for %s: %s", t->triple, msg);
        LLVMDisposeMessage(msg);
        return NULL;
    }
    return LLVMCreateTargetMachine(target, t->triple, t->cpu, t->features, LLVMCodeGenLevelAggressive,
                                   LLVMRelocPIC, LLVMCodeModelJITDefault);
}
