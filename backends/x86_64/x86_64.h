/* x86_64.h — the x86-64 choices of the LLVM backend: how wide the kernels'
 * vectors are on this CPU. */
#ifndef GM_X86_64_H
#define GM_X86_64_H

#include "backends/llvm/target.h"

/* From LLVM's feature string: AVX-512 gives 16 lanes (zmm) in 32 registers and
 * asks LLVM to prefer 512-bit vectors too (it defaults to 256 on these CPUs),
 * with vpdpbusd for int8 where it has AVX512_VNNI and vdpbf16ps for bf16 on
 * the CPUs where it pays (AMD's); AVX gives 8 in 16; anything older keeps
 * SSE's 4 in 16. */
void x86_64_tune(lv_target *t);

#endif
