/* aarch64.h — the AArch64 choices of the LLVM backend: the target for an Arm
 * CPU by name, and its vectors (NEON: 4 f32 lanes in 32 registers). */
#ifndef GM_AARCH64_H
#define GM_AARCH64_H

#include "backends/llvm/target.h"

/* aarch64-linux-gnu for cpu (NULL: generic ARMv8-A); -1 after reporting one LLVM's list lacks. */
int aarch64_target(lv_target *t, const char *cpu, gm_err *e);
void aarch64_tune(lv_target *t);

#endif
