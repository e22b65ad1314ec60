/* target.c — the CPU targets (see target.h): LLVM names the host CPU and its
 * features; each architecture's file picks the vector width and registers
 * (backends/x86_64, backends/aarch64). */
#include "target.h"

#include "backends/aarch64/aarch64.h"
#include "backends/x86_64/x86_64.h"

#include <llvm-c/Core.h>
#include <stdlib.h>

/* .lrodata is the x86-64 large-data section, laid out after .bss, so a blob of
 * GBs never pushes the code's 32-bit references out of reach; other
 * architectures reach further and take .rodata. */
static void tune(lv_target *t) {
    t->width = 4;
    t->regs = 16;
    t->prefer_width = NULL;
    t->int8_dot = LV_INT8_WIDEN;
    t->bf16_dot = 0;
    t->blob_section = ".section .rodata,\"a\",%progbits";
    if (!strncmp(t->triple, "x86_64", 6)) {
        t->blob_section = ".section .lrodata,\"a\",@progbits";
        x86_64_tune(t);
    }
    if (!strncmp(t->triple, "aarch64", 7)) aarch64_tune(t);
}

void lv_target_host(lv_target *t) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMInitializeNativeAsmParser(); /* for the module assembly of embedded weights (aot.h) */
    t->triple = LLVMGetDefaultTargetTriple();
    t->cpu = LLVMGetHostCPUName();
    t->features = LLVMGetHostCPUFeatures();
    tune(t);
    const char *force = getenv("GEMMAC_BF16_DOT");
    if (force && (!strcmp(force, "0") || !strcmp(force, "1")) && lv_has_bf16_dot(t)) t->bf16_dot = *force == '1';
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

int lv_target_named(lv_target *t, const char *name, const char *cpu, gm_err *e) {
    if (cpu && strcmp(name, "aarch64")) return gm_fail(e, "--cpu is for --target aarch64 (x86-64 has levels: x86_64-v3, x86_64-v4)");
    if (!strcmp(name, "aarch64")) {
        if (aarch64_target(t, cpu, e)) return -1;
        tune(t);
        return 0;
    }
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
            tune(t);
            return 0;
        }
    return gm_fail(e, "unknown target \"%s\" (available: native, x86_64, x86_64-v3, x86_64-v4, aarch64)", name);
}

int lv_has_feature(const lv_target *t, const char *name) {
    size_t n = strlen(name);
    const char *f = t->features;
    for (const char *p = f; (p = strstr(p, name)); p += n)
        if (p > f && p[-1] == '+' && (p - 1 == f || p[-2] == ',') && (p[n] == ',' || !p[n])) return 1;
    return 0;
}

int lv_has_bf16_dot(const lv_target *t) {
    return (t->width == 16 && lv_has_feature(t, "avx512bf16")) || (t->width == 4 && lv_has_feature(t, "bf16"));
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
