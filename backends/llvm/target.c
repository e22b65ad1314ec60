/* target.c — the host target (see target.h): LLVM names the CPU and its
 * features, the architecture's own file picks the vector width. */
#include "target.h"

#include "backends/x86_64/x86_64.h"

#include <llvm-c/Core.h>

void lv_target_host(lv_target *t) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMInitializeNativeAsmParser(); /* for the module assembly of embedded weights (aot.h) */
    t->triple = LLVMGetDefaultTargetTriple();
    t->cpu = LLVMGetHostCPUName();
    t->features = LLVMGetHostCPUFeatures();
    t->width = 4;
    t->prefer_width = NULL;
    if (!strncmp(t->triple, "x86_64", 6)) x86_64_tune(t);
}

static const struct {
    const char *name, *cpu, *features;
} x86_64_levels[] = {
    {"x86_64", "x86-64", ""},
    {"x86_64-v3", "x86-64-v3", "+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+lzcnt,+movbe,+popcnt,+sse4.2,+xsave"},
    {"x86_64-v4", "x86-64-v4",
     "+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+lzcnt,+movbe,+popcnt,+sse4.2,+xsave,"
     "+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl"},
};

int lv_target_named(lv_target *t, const char *name, gm_err *e) {
    if (!strcmp(name, "native")) return lv_target_host(t), 0;
    for (size_t i = 0; i < sizeof x86_64_levels / sizeof *x86_64_levels; i++)
        if (!strcmp(name, x86_64_levels[i].name)) {
            LLVMInitializeX86Target();
            LLVMInitializeX86TargetInfo();
            LLVMInitializeX86TargetMC();
            LLVMInitializeX86AsmPrinter();
            LLVMInitializeX86AsmParser();
            t->triple = LLVMCreateMessage("x86_64-pc-linux-gnu");
            t->cpu = LLVMCreateMessage(x86_64_levels[i].cpu);
            t->features = LLVMCreateMessage(x86_64_levels[i].features);
            t->prefer_width = NULL;
            x86_64_tune(t);
            return 0;
        }
    return gm_fail(e, "unknown target \"%s\" (available: native, x86_64, x86_64-v3, x86_64-v4)", name);
}

void lv_target_free(lv_target *t) {
    LLVMDisposeMessage(t->triple);
    LLVMDisposeMessage(t->cpu);
    LLVMDisposeMessage(t->features);
}

LLVMTargetMachineRef lv_target_machine(const lv_target *t, int jit, gm_err *e) {
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(t->triple, &target, &msg)) {
        gm_fail(e, "LLVM has no target for %s: %s", t->triple, msg);
        LLVMDisposeMessage(msg);
        return NULL;
    }
    return LLVMCreateTargetMachine(target, t->triple, t->cpu, t->features, LLVMCodeGenLevelAggressive,
                                   LLVMRelocPIC, jit ? LLVMCodeModelJITDefault : LLVMCodeModelDefault);
}
