/* cuda.h — the CUDA driver API, loaded at run time (cuda.c): gemmac and
 * the executables it makes build and run without CUDA installed, and find
 * the driver (libcuda.so.1) only when a model is run on a GPU.
 *
 * Only the calls the GPU engine uses are declared, with the driver's own
 * types spelled as plain C ones; versioned entry points are loaded by their
 * versioned names (cuMemAlloc_v2, ...), as CUDA's headers map them. */
#ifndef GM_CUDA_H
#define GM_CUDA_H

#include "common.h"

typedef int cu_result;             /* CUresult: 0 is success */
typedef unsigned long long cu_ptr; /* CUdeviceptr */
typedef void *cu_handle;           /* CUcontext, CUmodule, CUfunction, CUstream, CUevent */

/* cuLaunchKernelEx's CUlaunchConfig and CUlaunchAttribute (a 64-byte value union), for the
 * one attribute the engine sets: programmatic stream serialization (6), which lets a kernel
 * start while the one before it finishes (Hopper's programmatic dependent launch). */
typedef struct {
    int id;
    char pad[4];
    union {
        char bytes[64];
        int value;
    } v;
} cu_launch_attr;
#define CU_LAUNCH_ATTR_PROGRAMMATIC 6
typedef struct {
    unsigned grid[3], block[3], shared_bytes;
    cu_handle stream;
    cu_launch_attr *attrs;
    unsigned n_attrs;
} cu_launch_config;

typedef struct {
    void *lib;                     /* the dlopen handle */
    int device;                    /* CUdevice 0 */
    cu_handle ctx;                 /* its primary context, current on the opening thread */
    char name[256];                /* the GPU's name */
    int cc_major, cc_minor;        /* its compute capability */
    size_t total_mem;              /* its memory */
    cu_result (*GetErrorString)(cu_result, const char **);
    cu_result (*ModuleLoadDataEx)(cu_handle *, const void *, unsigned, int *, void **);
    cu_result (*ModuleUnload)(cu_handle);
    cu_result (*ModuleGetFunction)(cu_handle *, cu_handle, const char *);
    cu_result (*MemAlloc)(cu_ptr *, size_t);
    cu_result (*MemFree)(cu_ptr);
    cu_result (*MemcpyHtoD)(cu_ptr, const void *, size_t);
    cu_result (*MemcpyDtoH)(void *, cu_ptr, size_t);
    cu_result (*MemcpyDtoDAsync)(cu_ptr, cu_ptr, size_t, cu_handle);
    cu_result (*LaunchKernel)(cu_handle, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              cu_handle, void **, void **);
    cu_result (*CtxSynchronize)(void);
    cu_result (*DevicePrimaryCtxRelease)(int);
    cu_result (*MemcpyHtoDAsync)(cu_ptr, const void *, size_t, cu_handle);
    cu_result (*StreamCreate)(cu_handle *, unsigned);
    cu_result (*StreamDestroy)(cu_handle);
    cu_result (*StreamSynchronize)(cu_handle);
    cu_result (*StreamBeginCapture)(cu_handle, int);
    cu_result (*StreamEndCapture)(cu_handle, cu_handle *);
    cu_result (*GraphInstantiate)(cu_handle *, cu_handle, unsigned long long);
    cu_result (*GraphLaunch)(cu_handle, cu_handle);
    cu_result (*GraphExecDestroy)(cu_handle);
    cu_result (*GraphDestroy)(cu_handle);
    cu_result (*LaunchKernelEx)(const cu_launch_config *, cu_handle, void **, void **); /* NULL before CUDA 11.8 */
} rt_cuda;

/* Loads the driver and makes GPU 0's primary context current; NULL after
 * reporting, in one line, why not (no driver, no GPU). */
rt_cuda *rt_cuda_open(gm_err *e);
void rt_cuda_close(rt_cuda *cu);
/* 0 when r is success; else reports "cuda: what: the driver's message" and returns -1. */
int rt_cuda_check(const rt_cuda *cu, cu_result r, const char *what, gm_err *e);

#endif
