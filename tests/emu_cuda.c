/* emu_cuda.c — a GPU emulated on the CPU behind the CUDA driver's API (emu_cuda.h): the
 * kernels' runtime (thread and block ids, barriers, warp shuffles, mma.sync's fragments as the
 * PTX ISA lays them out), the pool of threads that runs a block, and the driver calls the
 * GPU engine makes. Built only for test_nvptx_emu, as libcuda.so.1. */
#include "emu_cuda.h"

#include "backends/nvptx/nvptx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <ucontext.h>


/* ---- the kernels' runtime: one block at a time ---- */

/* A block's threads are fibers on this one OS thread: each runs until it waits at a barrier or
 * ends, then the next, round after round, so a barrier costs a few jumps, not the wake-up of
 * 256 threads. A fiber starts on its own stack by setcontext (once a block) and switches by
 * _setjmp/_longjmp, which leave the signal mask alone: swapcontext's system call on every
 * switch made a warp shuffle (two syncs of 32 fibers) cost some 64 of them. */
#define WARPS (NV_THREADS / NV_WARP)
#define STACK (256 << 10)

static unsigned cta[3];                 /* the block running */
static unsigned block_threads, cur;     /* its threads; the one running (its tid) */
static ucontext_t starts[NV_THREADS];
static jmp_buf scheduler, fibers[NV_THREADS];
static char *stacks;
static int started[NV_THREADS], finished[NV_THREADS];
static unsigned long events;            /* arrivals and ends: a round without one is a deadlock */
typedef struct {
    unsigned arrived, generation;
} group;
static group block_group, warp_group[WARPS];
static union { float f; int32_t i; } lanes[WARPS][NV_WARP];
static int32_t frag_a[WARPS][NV_WARP][4], frag_b[WARPS][NV_WARP][2];

/* Waits until all `size` threads of the group have arrived (__syncthreads, __syncwarp). */
static void group_wait(group *g, unsigned size) {
    unsigned seen = g->generation;
    events++;
    if (++g->arrived == size) {
        g->arrived = 0, g->generation++;
        return;
    }
    while (g->generation == seen)
        if (!_setjmp(fibers[cur])) _longjmp(scheduler, 1);
}

static unsigned warp_threads(unsigned w) { return block_threads - w * NV_WARP < NV_WARP ? block_threads - w * NV_WARP : NV_WARP; }

static int32_t emu_tid_x(void) { return (int32_t)cur; }
static int32_t emu_ctaid_x(void) { return (int32_t)cta[0]; }
static int32_t emu_ctaid_y(void) { return (int32_t)cta[1]; }
static int32_t emu_ctaid_z(void) { return (int32_t)cta[2]; }
static void emu_barrier(void) { group_wait(&block_group, block_threads); }
static void emu_warp_sync(int32_t mask) { (void)mask, group_wait(&warp_group[cur / NV_WARP], warp_threads(cur / NV_WARP)); }
static void emu_membar(void) {}

/* Lane `from` of the warp's values x (a butterfly: lane ^ from when bfly). */
static int32_t exchange(int32_t x, int32_t from, int bfly) {
    unsigned w = cur / NV_WARP, lane = cur % NV_WARP;
    lanes[w][lane].i = x;
    emu_warp_sync(-1);
    int32_t y = lanes[w][bfly ? lane ^ (unsigned)from : (unsigned)from & 31].i;
    emu_warp_sync(-1);
    return y;
}
static float as_float(int32_t i) { return (union { int32_t i; float f; }){.i = i}.f; }
static int32_t as_int(float f) { return (union { float f; int32_t i; }){.f = f}.i; }
static float emu_shfl_bfly_f32(int32_t mask, float x, int32_t off, int32_t c) { return (void)mask, (void)c, as_float(exchange(as_int(x), off, 1)); }
static float emu_shfl_idx_f32(int32_t mask, float x, int32_t src, int32_t c) { return (void)mask, (void)c, as_float(exchange(as_int(x), src, 0)); }
static int32_t emu_shfl_idx_i32(int32_t mask, int32_t x, int32_t src, int32_t c) { return (void)mask, (void)c, exchange(x, src, 0); }

static float bf16_at(int32_t word, int half) { return as_float((int32_t)(((uint32_t)word >> (16 * half)) << 16)); }

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 for the calling lane (g = lane/4,
 * q = lane%4): A's element (row, k) is in lane (row%8)·4 + (k%8)/2, register (row ≥ 8) +
 * 2·(k ≥ 8), half k%2; B's (k, col) in lane col·4 + (k%8)/2, register k ≥ 8, half k%2; this
 * lane's d[e] is (row g + 8·(e ≥ 2), col 2q + e%2). */
static void emu_mma(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t b0, int32_t b1, float c0, float c1, float c2,
                    float c3, float *d) {
    unsigned w = cur / NV_WARP, lane = cur % NV_WARP, g = lane / 4, q = lane % 4;
    int32_t a[4] = {a0, a1, a2, a3}, b[2] = {b0, b1};
    memcpy(frag_a[w][lane], a, sizeof a), memcpy(frag_b[w][lane], b, sizeof b);
    emu_warp_sync(-1);
    float c[4] = {c0, c1, c2, c3};
    for (int e = 0; e < 4; e++) {
        unsigned row = g + 8 * (e / 2), col = 2 * q + e % 2;
        float s = c[e];
        for (unsigned k = 0; k < 16; k++)
            s += bf16_at(frag_a[w][(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)], k % 2) *
                 bf16_at(frag_b[w][col * 4 + (k % 8) / 2][k >= 8], k % 2);
        d[e] = s;
    }
    emu_warp_sync(-1);
}

typedef void (*kernel_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
static kernel_fn running;
static uint64_t running_args[NV_N_PARAMS];

static void fiber_main(void) {
    const uint64_t *a = running_args;
    running(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
    finished[cur] = 1, events++;
    _longjmp(scheduler, 1);
}

static void make_fibers(void) {
    static unsigned t; /* static: run_block's _setjmp may share this frame once inlined */
    for (t = 0; t < block_threads; t++) {
        getcontext(&starts[t]);
        starts[t].uc_stack = (stack_t){.ss_sp = stacks + (size_t)t * STACK, .ss_size = STACK};
        starts[t].uc_link = NULL;
        makecontext(&starts[t], fiber_main, 0);
        started[t] = finished[t] = 0;
    }
}

/* The block cta[] to its end: rounds over its unfinished threads. */
static void run_block(void) {
    make_fibers();
    static unsigned left; /* static: kept across the fibers' jumps back here */
    static unsigned long before;
    for (left = block_threads; left;) {
        before = events;
        for (cur = 0; cur < block_threads; cur++) {
            if (finished[cur]) continue;
            if (!_setjmp(scheduler)) {
                if (!started[cur]) started[cur] = 1, setcontext(&starts[cur]);
                _longjmp(fibers[cur], 1);
            }
            left -= finished[cur];
        }
        if (events == before) fprintf(stderr, "emu_cuda: block (%u, %u, %u) waits at a barrier forever\n", cta[0], cta[1], cta[2]), abort();
    }
}

void emu_launch(void *fn, const unsigned grid[3], unsigned block, void **params) {
    if (!block || block > NV_THREADS) fprintf(stderr, "emu_cuda: a block of %u threads\n", block), abort();
    if (!stacks && !(stacks = malloc((size_t)NV_THREADS * STACK))) abort();
    running = (kernel_fn)fn, block_threads = block;
    for (int i = 0; i < NV_N_PARAMS; i++) memcpy(&running_args[i], params[i], sizeof running_args[i]);
    for (cta[2] = 0; cta[2] < grid[2]; cta[2]++)
        for (cta[1] = 0; cta[1] < grid[1]; cta[1]++)
            for (cta[0] = 0; cta[0] < grid[0]; cta[0]++) run_block();
}

const emu_intrinsic emu_intrinsics[] = {
    {"llvm.nvvm.read.ptx.sreg.tid.x", "emu_tid_x", (void *)emu_tid_x},
    {"llvm.nvvm.read.ptx.sreg.ctaid.x", "emu_ctaid_x", (void *)emu_ctaid_x},
    {"llvm.nvvm.read.ptx.sreg.ctaid.y", "emu_ctaid_y", (void *)emu_ctaid_y},
    {"llvm.nvvm.read.ptx.sreg.ctaid.z", "emu_ctaid_z", (void *)emu_ctaid_z},
    {"llvm.nvvm.barrier0", "emu_barrier", (void *)emu_barrier},
    {"llvm.nvvm.bar.warp.sync", "emu_warp_sync", (void *)emu_warp_sync},
    {"llvm.nvvm.membar.gl", "emu_membar", (void *)emu_membar},
    {"llvm.nvvm.shfl.sync.bfly.f32", "emu_shfl_bfly_f32", (void *)emu_shfl_bfly_f32},
    {"llvm.nvvm.shfl.sync.idx.f32", "emu_shfl_idx_f32", (void *)emu_shfl_idx_f32},
    {"llvm.nvvm.shfl.sync.idx.i32", "emu_shfl_idx_i32", (void *)emu_shfl_idx_i32},
    {"llvm.nvvm.mma.m16n8k16.row.col.bf16", "emu_mma", (void *)emu_mma},
};
const int emu_n_intrinsics = sizeof emu_intrinsics / sizeof *emu_intrinsics;

/* ---- the driver ---- */

typedef int CUresult;
enum { OK = 0, INVALID_VALUE = 1, NOT_FOUND = 500, CC_MAJOR = 75, CC_MINOR = 76 };

typedef struct {
    char name[96];
    void *fn;
} kernel;
#define MAX_KERNELS 4096
static kernel kernels[MAX_KERNELS]; /* fixed: cuModuleGetFunction hands out their addresses */
static int n_kernels;

void emu_register(const char *name, void *fn) {
    if (!fn) {
        n_kernels = 0;
        return;
    }
    if (n_kernels == MAX_KERNELS) fprintf(stderr, "emu_cuda: more than %d kernels\n", MAX_KERNELS), abort();
    snprintf(kernels[n_kernels].name, sizeof kernels[n_kernels].name, "%s", name);
    kernels[n_kernels++].fn = fn;
}

/* A stream's work while it is captured, and a graph's: launches and device copies. */
typedef struct {
    const kernel *k;             /* NULL: a copy */
    unsigned grid[3], block;
    uint64_t args[NV_N_PARAMS];
    void *dst;
    const void *src;
    size_t bytes;
} step;
typedef struct {
    step *steps;
    int n;
} graph;
static graph *capturing;

static void record(const step *s) {
    capturing->steps = realloc(capturing->steps, (capturing->n + 1) * sizeof *capturing->steps);
    capturing->steps[capturing->n++] = *s;
}

static void run(const step *s) {
    if (!s->k) {
        memmove(s->dst, s->src, s->bytes);
        return;
    }
    void *params[NV_N_PARAMS];
    for (int i = 0; i < NV_N_PARAMS; i++) params[i] = (void *)&s->args[i];
    emu_launch(s->k->fn, s->grid, s->block, params);
}

static void submit(const step *s) {
    if (capturing) record(s);
    else run(s);
}

CUresult cuInit(unsigned flags) { return (void)flags, OK; }
CUresult cuDeviceGetCount(int *n) { return *n = 1, OK; }
CUresult cuDeviceGet(int *d, int ordinal) { return *d = ordinal, OK; }
CUresult cuDeviceGetName(char *name, int len, int d) { return (void)d, snprintf(name, (size_t)len, "gemmac's CPU emulator"), OK; }
CUresult cuDeviceGetAttribute(int *v, int attr, int d) {
    (void)d;
    *v = attr == CC_MAJOR ? 8 : 0;
    return attr == CC_MAJOR || attr == CC_MINOR ? OK : INVALID_VALUE;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int d) { return (void)d, *bytes = (size_t)16 << 30, OK; }
CUresult cuDevicePrimaryCtxRetain(void **ctx, int d) { return (void)d, *ctx = (void *)kernels, OK; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { return (void)d, OK; }
CUresult cuCtxSetCurrent(void *ctx) { return (void)ctx, OK; }
CUresult cuCtxSynchronize(void) { return OK; }
CUresult cuGetErrorString(CUresult r, const char **s) {
    *s = r == NOT_FOUND ? "no kernel of that name was registered with the emulator" : "the emulator refused the call";
    return OK;
}
CUresult cuModuleLoadDataEx(void **mod, const void *ptx, unsigned n, int *opts, void **vals) {
    return (void)ptx, (void)n, (void)opts, (void)vals, *mod = (void *)kernels, OK;
}
CUresult cuModuleUnload(void *mod) { return (void)mod, OK; }
CUresult cuModuleGetFunction(void **fn, void *mod, const char *name) {
    (void)mod;
    for (int i = 0; i < n_kernels; i++)
        if (!strcmp(kernels[i].name, name)) return *fn = &kernels[i], OK;
    return NOT_FOUND;
}
CUresult cuMemAlloc_v2(uint64_t *p, size_t bytes) {
    void *m = aligned_alloc(256, (bytes + 255) / 256 * 256);
    return m ? (*p = (uint64_t)(uintptr_t)m, OK) : 2 /* out of memory */;
}
CUresult cuMemFree_v2(uint64_t p) { return free((void *)(uintptr_t)p), OK; }
CUresult cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t bytes) { return memcpy((void *)(uintptr_t)dst, src, bytes), OK; }
CUresult cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t bytes) { return memcpy(dst, (void *)(uintptr_t)src, bytes), OK; }
CUresult cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t bytes, void *stream) {
    (void)stream;
    if (capturing) return INVALID_VALUE; /* a host buffer cannot be captured: the engine uploads outside graphs */
    return memcpy((void *)(uintptr_t)dst, src, bytes), OK;
}
CUresult cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t bytes, void *stream) {
    (void)stream;
    submit(&(step){.dst = (void *)(uintptr_t)dst, .src = (const void *)(uintptr_t)src, .bytes = bytes});
    return OK;
}
CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared,
                        void *stream, void **params, void **extra) {
    (void)shared, (void)stream, (void)extra;
    if (by != 1 || bz != 1) return INVALID_VALUE;
    step s = {.k = fn, .grid = {gx, gy, gz}, .block = bx};
    for (int i = 0; i < NV_N_PARAMS; i++) memcpy(&s.args[i], params[i], sizeof s.args[i]);
    submit(&s);
    return OK;
}
CUresult cuStreamCreate(void **stream, unsigned flags) { return (void)flags, *stream = (void *)kernels, OK; }
CUresult cuStreamDestroy_v2(void *stream) { return (void)stream, OK; }
CUresult cuStreamSynchronize(void *stream) { return (void)stream, OK; }
CUresult cuStreamBeginCapture_v2(void *stream, int mode) {
    (void)stream, (void)mode;
    return capturing ? INVALID_VALUE : (capturing = calloc(1, sizeof *capturing)) ? OK : 2;
}
CUresult cuStreamEndCapture(void *stream, void **g) {
    (void)stream;
    *g = capturing, capturing = NULL;
    return *g ? OK : INVALID_VALUE;
}
CUresult cuGraphInstantiateWithFlags(void **exec, void *g, unsigned long long flags) { return (void)flags, *exec = g, OK; }
CUresult cuGraphLaunch(void *exec, void *stream) {
    (void)stream;
    const graph *g = exec;
    for (int i = 0; i < g->n; i++) run(&g->steps[i]);
    return OK;
}
CUresult cuGraphExecDestroy(void *exec) { return (void)exec, OK; }
CUresult cuGraphDestroy(void *g) {
    graph *gr = g;
    free(gr->steps), free(gr);
    return OK;
}
