/* ptx.h — the NVPTX target's code generation (ptx.c): the kernels of a
 * model as an LLVM module for nvptx64-nvidia-cuda, and as PTX text. */
#ifndef GM_NVPTX_PTX_H
#define GM_NVPTX_PTX_H

#include "nvptx.h"
#include "backends/llvm/target.h"

/* The target for a GPU architecture ("sm_80", "sm_90", ...); -1 after
 * reporting an unknown one. */
int nv_target(lv_target *t, const char *gpu, gm_err *e);
/* The optimised module of ks[0..n) (NULL after reporting). */
LLVMModuleRef nv_module_build(LLVMContextRef ctx, const lv_target *t, LLVMTargetMachineRef tm, const lv_kernel *ks,
                              int n, gm_err *e);

#endif
