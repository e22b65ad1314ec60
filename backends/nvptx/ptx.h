/* ptx.h — the NVPTX target's code generation (ptx.c): the kernels of a
 * model as an LLVM module for nvptx64-nvidia-cuda, and as PTX text. */
#ifndef GM_NVPTX_PTX_H
#define GM_NVPTX_PTX_H

#include "nvptx.h"
#include "backends/llvm/target.h"

/* The target for a GPU architecture ("sm_80", "sm_90", ...); -1 after
 * reporting an unknown one. */
int nv_target(lv_target *t, const char *gpu, gm_err *e);
/* Emits kernel k as the entry `name` (and its second entry, see nvptx.h): the
 * emitter lv_module_build (backends/llvm/codegen.h) takes for this target. */
typedef struct lv_emit lv_emit;
void nv_emit_kernel(lv_emit *m, const ex_kernel *k, const char *name);

#endif
