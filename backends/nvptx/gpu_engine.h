/* gpu_engine.h — the NVPTX target's engine (gpu_engine.c): a graph's PTX
 * kernels run on the GPU through the CUDA driver. No LLVM here. */
#ifndef GM_NVPTX_GPU_ENGINE_H
#define GM_NVPTX_GPU_ENGINE_H

#include "nvptx.h"
#include "runtime/engine.h"

/* An engine for g on GPU 0 running ptx, the PTX of the kernels compiled[0..n_compiled)
 * (each node's kernel is looked up there by its description). The graph must have
 * been made for the nvptx target (row-major weights); graph and tensors must
 * outlive the engine. NULL after reporting (no driver, no GPU, a refused PTX). */
rt_engine *nv_engine_create(const ir_graph *g, const gm_tensor *const *bound, const rt_engine_opts *o, const char *ptx,
                            const ex_kernel *compiled, int n_compiled, gm_err *e);
/* The GPU architecture to generate PTX for on this machine's GPU 0 ("sm_90"); -1 after reporting. */
int nv_host_gpu(char *buf, size_t len, gm_err *e);

#endif
