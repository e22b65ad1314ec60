/* target.h — the machine the kernels are compiled for: LLVM's triple, CPU
 * name and feature string, and the choices that follow from them (how many
 * f32 lanes the kernels' vectors have, and the "prefer-vector-width" hint for
 * what LLVM vectorises itself). The host is asked through LLVM; the choices
 * for x86-64 CPUs live in backends/x86_64, other architectures get a portable
 * 128-bit default. */
#ifndef GM_LLVM_TARGET_H
#define GM_LLVM_TARGET_H

#include "runtime/common.h"

#include <llvm-c/TargetMachine.h>

/* How --activations int8 multiplies bytes: widened to i32 (any CPU), or by
 * a dot product of 4 bytes into each i32 lane: vpdpbusd (AVX512_VNNI),
 * USDOT (Arm's FEAT_I8MM: unsigned × signed, as vpdpbusd), SDOT (Armv8.2's
 * FEAT_DotProd: signed × signed). */
typedef enum { LV_INT8_WIDEN, LV_INT8_VNNI, LV_INT8_USDOT, LV_INT8_SDOT } lv_int8_product;

typedef struct {
    char *triple, *cpu, *features; /* LLVM's strings (LLVMDisposeMessage) */
    int width;                     /* f32 lanes of the kernels' vectors: 4, 8 or 16 */
    int regs;                      /* vector registers, which size the matmul and attention tiles */
    const char *prefer_width;      /* "prefer-vector-width" attribute value, or NULL */
    const char *blob_section;      /* the section directive of embedded files (aot.c) */
    lv_int8_product int8_dot;         /* --activations int8's byte products */
    int bf16_dot;                  /* --activations bf16 by bf16 pair dot products (vdpbf16ps,
                                      BFDOT), taken where they beat f32 FMAs; else x is rounded
                                      and the f32 kernels run */
} lv_target;

/* The CPU this process runs on. GEMMAC_BF16_DOT=1 or 0 overrides the
 * choice of bf16_dot where the CPU has the instruction (to measure it, or
 * to test the kernels on a CPU where it does not pay). */
void lv_target_host(lv_target *t);
/* A target by name: native (the host), x86_64 (SSE2 baseline), x86_64-v3
 * (AVX2, FMA), x86_64-v4 (AVX-512), or aarch64 for the Arm CPU cpu (NULL:
 * generic ARMv8-A with NEON); -1 after reporting an unknown name or CPU. */
int lv_target_named(lv_target *t, const char *name, const char *cpu, gm_err *e);
void lv_target_free(lv_target *t);

/* Whether "+name" is one of the entries of t's feature string. */
int lv_has_feature(const lv_target *t, const char *name);
/* Whether t has a bf16 pair dot product the kernels use: vdpbf16ps
 * (AVX512_BF16, with 16-lane vectors) or BFDOT (Arm's bf16). */
int lv_has_bf16_dot(const lv_target *t);

/* A target machine for t at the highest optimisation level, with the JIT's
 * code model when jit, else the default one of linked objects; NULL after
 * reporting when LLVM does not know the triple. */
LLVMTargetMachineRef lv_target_machine(const lv_target *t, int jit, gm_err *e);

#endif
