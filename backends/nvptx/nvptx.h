/* nvptx.h — the contract between the NVPTX kernels (ptx.c, emitted with
 * LLVM) and the GPU engine that launches them (gpu_engine.c, no LLVM): each
 * kernel's parameters and how many threads it is launched with.
 *
 * Every kernel takes the same nine parameters, nv_args in order, so the
 * engine launches them all alike; what a node fixes (sizes, dtypes,
 * attributes) is baked into the kernel as constants, as on the CPU. The
 * launch geometry lives here once (nv_launch_of) and the emitters are
 * written against it: a kernel reads blockIdx/threadIdx the way its row of
 * nv_launch_of lays them out. A matmul has two entries: "<name>" tiles any
 * number of rows through shared memory, "<name>_gemv" takes one row (decode)
 * with a warp per output column, so the weights stream from memory once, in
 * their own dtype. */
#ifndef GM_NVPTX_H
#define GM_NVPTX_H

#include "backends/llvm/kernels.h"

#include <stdint.h>

/* The kernels' parameters (device pointers as integers). rope reads its
 * cos/sin table [rows][hd/2] (cos), then the same for sin, at in[1]. */
typedef struct {
    uint64_t in[IR_MAX_IN];  /* the node's inputs */
    uint64_t out;            /* [T][C] */
    int64_t T, pos;          /* rows of this call; absolute position of the first */
    uint64_t k_cache, v_cache; /* attention: its KV slot, [rows][kv_cols] each */
    int64_t rows;            /* attention: the slot's rows; rope: the table's */
} nv_args;
#define NV_N_PARAMS 9

#define NV_THREADS 256       /* threads of a block, but for attention */
#define NV_WARP 32
#define NV_ATTN_WARPS 4      /* attention: a block per (query row, head), its warps split the keys */
/* Tiled matmul: a block computes NV_BM rows × NV_BN columns, NV_BK values of k at a time,
 * each thread a 4 × 4 tile of them. */
#define NV_BM 64
#define NV_BN 64
#define NV_BK 16

typedef struct {
    unsigned grid[3], block;
    int gemv;                /* matmul: launch the "<name>_gemv" entry */
} nv_launch;

/* How kernel k is launched for a call of T rows. */
void nv_launch_of(const lv_kernel *k, int64_t T, nv_launch *l);
/* The PTX text of kernels ks[0..n) for a GPU architecture ("sm_80", ...),
 * malloc'd; NULL after reporting. Defined in ptx.c, with LLVM. */
char *nv_ptx(const lv_kernel *ks, int n, const char *gpu, gm_err *e);
/* The symbol of kernel i's (first) entry. */
void nv_kernel_symbol(char *buf, size_t len, const lv_kernel *k, int i);

#endif
