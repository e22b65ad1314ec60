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
 * their own dtype. An attention kernel has a second entry, "<name>_store",
 * that appends the call's k and v rows to its KV cache slot. */
#ifndef GM_NVPTX_H
#define GM_NVPTX_H

#include "backends/exec/kernel.h"

#include <stdint.h>

/* The kernels' parameters (device pointers as integers). rope reads its
 * cos/sin table [rows][hd/2] (cos), then the same for sin, at in[1]. The
 * position is read from device memory, so that a decode step captured once
 * (a CUDA graph) replays at any position. An attention kernel's "_store"
 * entry takes the call's k, v rows at in[0], in[1] and the slot as attention does. */
typedef struct {
    uint64_t in[IR_MAX_IN];  /* the node's inputs */
    uint64_t out;            /* [T][C] */
    int64_t T;               /* rows of this call */
    uint64_t pos;            /* -> int64: absolute position of the call's first row */
    uint64_t k_cache, v_cache; /* attention: its KV slot, [rows][kv_cols] each */
    int64_t rows;            /* attention: the slot's rows; rope: the table's */
} nv_args;
#define NV_N_PARAMS 9

#define NV_THREADS 256       /* threads of a block, but for attention */
#define NV_WARP 32
#define NV_ATTN_WARPS 8      /* attention: a block per (query row, head), its warps split the keys */
/* Tiled matmul: a block computes NV_BM rows × NV_BN columns, NV_BK values of k at a time,
 * each thread a 4 × 4 tile of them. */
#define NV_BM 64
#define NV_BN 64
#define NV_BK 16

/* The gemv's shape for N output columns: R columns per warp, two for wide matrices (the
 * loads of x shared), and S warps per column, each over a 1/S part of k, for narrow ones,
 * so that some 16K warps stream every matrix. S divides the block's 8 warps. */
#define NV_GEMV_MAX_ROWS 2
static inline int nv_gemv_rows(int64_t N) { return N >= 8192 ? 2 : 1; }
static inline int nv_gemv_split(int64_t N) { return N >= 16384 ? 1 : N >= 8192 ? 2 : N >= 4096 ? 4 : 8; }

typedef struct {
    unsigned grid[3], block;
    int gemv;                /* matmul: launch the "<name>_gemv" entry */
} nv_launch;

/* How kernel k is launched for a call of T rows; nv_store_launch: an attention's "_store". */
void nv_launch_of(const ex_kernel *k, int64_t T, nv_launch *l);
void nv_store_launch(const ex_kernel *k, int64_t T, nv_launch *l);
/* The PTX text of kernels ks[0..n) for a GPU architecture ("sm_80", ...),
 * malloc'd; NULL after reporting. Defined in ptx.c, with LLVM. */
char *nv_ptx(const ex_kernel *ks, int n, const char *gpu, gm_err *e);

#endif
