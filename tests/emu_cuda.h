/* emu_cuda.h — a GPU emulated on the CPU, behind the CUDA driver's API (emu_cuda.c, built as
 * the test-only libcuda.so.1 that test_nvptx_emu links, so that the GPU engine's dlopen of
 * "libcuda.so.1" finds it already loaded).
 *
 * It runs kernels that test_nvptx_emu retargeted from the nvptx module to this CPU, whose NVVM
 * intrinsics call emu_intrinsics' functions. A launch runs block after block, each block's
 * threads as a pool of POSIX threads meeting at its barriers as a GPU block's do, a warp's 32
 * at its shuffles. The driver side: device memory is host memory (a device pointer is an
 * address), copies are memcpy, streams run in order at once, a captured stream records its
 * launches and copies for a graph to replay, and a module's functions are the kernels the test
 * registered by name (emu_register), whatever PTX the module was loaded from. */
#ifndef GM_EMU_CUDA_H
#define GM_EMU_CUDA_H

/* The NVVM intrinsics the emulator takes over: each is called as `name` with the
 * intrinsic's own signature, but for mma (see test_nvptx_emu.c's lower_mma). */
typedef struct {
    const char *intrinsic, *name;
    void *fn;
} emu_intrinsic;
extern const emu_intrinsic emu_intrinsics[];
extern const int emu_n_intrinsics;

/* Kernel `name` (nv_args' ten parameters, each 8 bytes) for cuModuleGetFunction; NULL fn:
 * forget every kernel. */
void emu_register(const char *name, void *fn);
/* Runs fn over grid blocks of `block` threads, its parameters at params[0..10). */
void emu_launch(void *fn, const unsigned grid[3], unsigned block, void **params);

#endif
