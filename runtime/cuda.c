/* cuda.c — the CUDA driver loaded with dlopen (see cuda.h). */
#include "cuda.h"

#include <dlfcn.h>
#include <stdlib.h>

/* Attribute ids of CUdevice_attribute. */
#define CC_MAJOR 75
#define CC_MINOR 76

typedef struct {
    const char *name;
    size_t offset;
} entry;

#define E(field, symbol) {symbol, offsetof(rt_cuda, field)}
static const entry entries[] = {
    E(GetErrorString, "cuGetErrorString"),       E(ModuleLoadDataEx, "cuModuleLoadDataEx"),
    E(ModuleUnload, "cuModuleUnload"),           E(ModuleGetFunction, "cuModuleGetFunction"),
    E(MemAlloc, "cuMemAlloc_v2"),                E(MemFree, "cuMemFree_v2"),
    E(MemcpyHtoD, "cuMemcpyHtoD_v2"),            E(MemcpyDtoH, "cuMemcpyDtoH_v2"),
    E(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
    E(LaunchKernel, "cuLaunchKernel"),           E(CtxSynchronize, "cuCtxSynchronize"),
    E(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    E(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),  E(StreamCreate, "cuStreamCreate"),
    E(StreamDestroy, "cuStreamDestroy_v2"),      E(StreamSynchronize, "cuStreamSynchronize"),
    E(StreamBeginCapture, "cuStreamBeginCapture_v2"), E(StreamEndCapture, "cuStreamEndCapture"),
    E(GraphInstantiate, "cuGraphInstantiateWithFlags"), E(GraphLaunch, "cuGraphLaunch"),
    E(GraphExecDestroy, "cuGraphExecDestroy"),   E(GraphDestroy, "cuGraphDestroy"),
};
#undef E

int rt_cuda_check(const rt_cuda *cu, cu_result r, const char *what, gm_err *e) {
    if (r == 0) return 0;
    const char *msg = NULL;
    if (cu->GetErrorString(r, &msg) || !msg) msg = "unknown error";
    return gm_fail(e, "cuda: %s: %s (error %d)", what, msg, r);
}

/* The calls used only here, while opening. */
typedef struct {
    cu_result (*Init)(unsigned);
    cu_result (*DeviceGetCount)(int *);
    cu_result (*DeviceGet)(int *, int);
    cu_result (*DeviceGetName)(char *, int, int);
    cu_result (*DeviceGetAttribute)(int *, int, int);
    cu_result (*DeviceTotalMem)(size_t *, int);
    cu_result (*DevicePrimaryCtxRetain)(cu_handle *, int);
    cu_result (*CtxSetCurrent)(cu_handle);
} opening;

static int load(rt_cuda *cu, opening *o, gm_err *e) {
    const char *names[] = {"cuInit", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName", "cuDeviceGetAttribute",
                           "cuDeviceTotalMem_v2", "cuDevicePrimaryCtxRetain", "cuCtxSetCurrent"};
    void **slots[] = {(void **)&o->Init, (void **)&o->DeviceGetCount, (void **)&o->DeviceGet,
                      (void **)&o->DeviceGetName, (void **)&o->DeviceGetAttribute, (void **)&o->DeviceTotalMem,
                      (void **)&o->DevicePrimaryCtxRetain, (void **)&o->CtxSetCurrent};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!(*slots[i] = dlsym(cu->lib, names[i]))) return gm_fail(e, "cuda: libcuda.so.1 has no %s (driver too old?)", names[i]);
    for (size_t i = 0; i < sizeof entries / sizeof *entries; i++) {
        void *f = dlsym(cu->lib, entries[i].name);
        if (!f) return gm_fail(e, "cuda: libcuda.so.1 has no %s (driver too old?)", entries[i].name);
        memcpy((char *)cu + entries[i].offset, &f, sizeof f);
    }
    void *ex = dlsym(cu->lib, "cuLaunchKernelEx"); /* optional */
    memcpy(&cu->LaunchKernelEx, &ex, sizeof ex);
    return 0;
}

static int open_device(rt_cuda *cu, const opening *o, gm_err *e) {
    int count = 0;
    cu_result r = o->Init(0);
    if (r == 0) r = o->DeviceGetCount(&count);
    if (r || count == 0) return gm_fail(e, "cuda: no CUDA GPU found (cuInit/cuDeviceGetCount: error %d, %d devices)", r, count);
    if (rt_cuda_check(cu, o->DeviceGet(&cu->device, 0), "cuDeviceGet", e) ||
        rt_cuda_check(cu, o->DeviceGetName(cu->name, sizeof cu->name, cu->device), "cuDeviceGetName", e) ||
        rt_cuda_check(cu, o->DeviceGetAttribute(&cu->cc_major, CC_MAJOR, cu->device), "cuDeviceGetAttribute", e) ||
        rt_cuda_check(cu, o->DeviceGetAttribute(&cu->cc_minor, CC_MINOR, cu->device), "cuDeviceGetAttribute", e) ||
        rt_cuda_check(cu, o->DeviceTotalMem(&cu->total_mem, cu->device), "cuDeviceTotalMem", e) ||
        rt_cuda_check(cu, o->DevicePrimaryCtxRetain(&cu->ctx, cu->device), "cuDevicePrimaryCtxRetain", e))
        return -1;
    if (rt_cuda_check(cu, o->CtxSetCurrent(cu->ctx), "cuCtxSetCurrent", e)) {
        cu->DevicePrimaryCtxRelease(cu->device);
        cu->ctx = NULL;
        return -1;
    }
    return 0;
}

rt_cuda *rt_cuda_open(gm_err *e) {
    rt_cuda *cu = gm_calloc(1, sizeof *cu);
    opening o;
    cu->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!cu->lib) {
        gm_fail(e, "cuda: no NVIDIA driver here (libcuda.so.1 not found); the nvptx backend needs an NVIDIA GPU and its driver");
        free(cu);
        return NULL;
    }
    if (load(cu, &o, e) || open_device(cu, &o, e)) {
        rt_cuda_close(cu);
        return NULL;
    }
    return cu;
}

void rt_cuda_close(rt_cuda *cu) {
    if (!cu) return;
    if (cu->ctx) cu->DevicePrimaryCtxRelease(cu->device);
    dlclose(cu->lib);
    free(cu);
}
