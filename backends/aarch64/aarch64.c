/* aarch64.c — the AArch64 target: 64-bit Arm Linux, NEON vectors of 4 f32
 * lanes in 32 registers (so the matmul's register tiles are 3 rows × 8
 * vectors). The CPU is a name LLVM knows, and LLVM derives its features from
 * it: bf16 and fp16 arithmetic, dot products, SVE, only where that CPU has
 * them. The kernels' own code is portable NEON, but for the dot products
 * this file names per CPU: bf16 (BFDOT, for --activations bf16), and for
 * --activations int8 i8mm (USDOT) or else dotprod (SDOT). */
#include "aarch64.h"

#include "backends/llvm/aot.h"

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>

/* The CPUs --cpu accepts, LLVM 19 knows each, from the cores of cheap boards
 * to servers; with the features of theirs the kernels use (Arm's manuals:
 * dot products from Armv8.2's optional FEAT_DotProd, bf16 from FEAT_BF16,
 * unsigned × signed int8 dot products from FEAT_I8MM). */
static const struct {
    const char *name, *features;
} cpus[] = {{"generic", "+neon"},
            {"cortex-a53", "+neon"},
            {"cortex-a55", "+neon,+dotprod"},
            {"cortex-a72", "+neon"},
            {"cortex-a76", "+neon,+dotprod"},
            {"cortex-a78", "+neon,+dotprod"},
            {"cortex-x1", "+neon,+dotprod"},
            {"cortex-x2", "+neon,+dotprod,+bf16,+i8mm"},
            {"neoverse-n1", "+neon,+dotprod"},
            {"neoverse-n2", "+neon,+dotprod,+bf16,+i8mm"},
            {"neoverse-v1", "+neon,+dotprod,+bf16,+i8mm"},
            {"neoverse-v2", "+neon,+dotprod,+bf16,+i8mm"},
            {"apple-m1", "+neon,+dotprod"},
            {"apple-m2", "+neon,+dotprod,+bf16,+i8mm"},
            {"ampere1", "+neon,+dotprod,+bf16,+i8mm"},
            {NULL, NULL}};

static int cpu_index(const char *cpu) {
    int i = 0;
    while (cpus[i].name && strcmp(cpus[i].name, cpu)) i++;
    return cpus[i].name ? i : -1;
}

int aarch64_cpu_known(const char *cpu) { return cpu_index(cpu) >= 0; }

const char *aarch64_cpu_names(void) {
    static char names[512];
    if (!*names)
        for (int i = 0; cpus[i].name; i++) strcat(strcat(names, i ? ", " : ""), cpus[i].name);
    return names;
}

int aarch64_target(lv_target *t, const char *cpu, gm_err *e) {
    if (!cpu) cpu = "generic";
    int i = cpu_index(cpu);
    if (i < 0) return gm_fail(e, "--cpu: unknown Arm CPU \"%s\" (available: %s)", cpu, aarch64_cpu_names());
    LLVMInitializeAArch64TargetInfo();
    LLVMInitializeAArch64Target();
    LLVMInitializeAArch64TargetMC();
    LLVMInitializeAArch64AsmPrinter();
    LLVMInitializeAArch64AsmParser();
    t->triple = LLVMCreateMessage("aarch64-unknown-linux-gnu");
    t->cpu = LLVMCreateMessage(cpu);
    t->features = LLVMCreateMessage(cpus[i].features);
    return 0;
}

void aarch64_tune(lv_target *t) {
    t->width = 4;
    t->regs = 32;
    t->int8_dot = lv_has_feature(t, "i8mm") ? LV_INT8_USDOT : lv_has_feature(t, "dotprod") ? LV_INT8_SDOT : LV_INT8_WIDEN;
    t->bf16_dot = lv_has_bf16_dot(t);
}
