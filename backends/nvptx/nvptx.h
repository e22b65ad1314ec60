/* nvptx.h — the contract between the NVPTX kernels (ptx.c, emitted with
 * LLVM) and the GPU engine that launches them (gpu_engine.c, no LLVM): each
 * kernel's parameters and how many threads it is launched with.
 *
 * Every kernel takes the same ten parameters, nv_args in order, so the
 * engine launches them all alike; what a node fixes (sizes, dtypes,
 * attributes) is baked into the kernel as constants, as on the CPU. The
 * launch geometry lives here once (nv_launch_of) and the emitters are
 * written against it: a kernel reads blockIdx/threadIdx the way its row of
 * nv_launch_of lays them out. A matmul has two entries: "<name>" tiles any
 * number of rows through shared memory, "<name>_gemv" takes one row (decode)
 * with a warp per output column, so the weights stream from memory once, in
 * their own dtype. An attention kernel has a second entry, "<name>_store",
 * that appends the call's k and v rows to its KV cache slot; in decode the
 * attention kernel does that itself, and "_store" serves prefill. */
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
    uint64_t in[IR_MAX_KERNEL_IN];  /* the node's inputs */
    uint64_t out;            /* [T][C] */
    int64_t T;               /* rows of this call */
    uint64_t pos;            /* -> int64: absolute position of the call's first row */
    uint64_t k_cache, v_cache; /* attention: its KV slot, [rows][kv_cols] each; a decode gemv's
                                * twin: its matrix and output; a rope's twin: its output */
    int64_t rows;            /* attention: the slot's rows; rope: the table's */
    uint64_t scratch;        /* attention: nv_attn_scratch_floats of device memory, zeroed once */
} nv_args;
#define NV_N_PARAMS 10

/* Kernels for this GPU (Hopper) open with griddepcontrol.wait and .launch_dependents, and the
 * engine launches them with programmatic stream serialization: each kernel's blocks are
 * launched while the one before it runs its last blocks, and start when it has finished, so
 * a decode step's ~200 small kernels do not each wait for a launch. GEMMAC_CUDA_PDL=0
 * launches them plainly (the instructions then wait for nothing), for comparison. */
#define NV_PDL_GPU "sm_90"

#define NV_THREADS 256       /* threads of a block, but for attention */
#define NV_WARP 32
#define NV_ATTN_WARPS 8      /* attention: a block per (query row, head), its warps split the keys */
/* Decode attention (T = 1) splits each head's keys over P blocks (grid.y; 128 blocks in all,
 * at most 32 a head), so that a step fills the GPU: a block per head kept 8 of an H200's 132
 * SMs busy. Each block leaves its
 * partial result (max, sum, accumulators) in the scratch, and the head's last block to finish
 * merges them; a counter per head, after the partial results, says which is last. */
static inline int nv_attn_splits(int64_t heads) { return heads >= 128 ? 1 : heads >= 4 ? (int)(128 / heads) : 32; }
static inline int64_t nv_attn_scratch_floats(const ex_kernel *k) {
    int64_t heads = (int64_t)k->attr[IR_A_HEADS];
    return heads * nv_attn_splits(heads) * ((int64_t)k->attr[IR_A_HEAD_DIM] + 2) + heads;
}

/* Tiled matmul: a block computes NV_BM rows × NV_BN columns, NV_BK values of k at a time,
 * each thread a 4 × 4 tile of them. */
#define NV_BM 64
#define NV_BN 64
#define NV_BK 16

/* Prefill under --activations bf16 (the matmul's x_bf16) on a bf16 weight whose rows are
 * whole 16-byte chunks runs on the tensor cores: mma.sync m16n8k16, bf16 x and w, f32 sums,
 * the same numbers as the CPU's bf16 mode but for the order of the sums. A block computes
 * NV_MMA_BM rows × NV_MMA_BN columns, NV_MMA_BK values of k a step; its 8 warps 2 × 4 tiles
 * of 32 × 32. Other bf16-mode matmuls round x as they read it and multiply in f32. */
#define NV_MMA_BM 64
#define NV_MMA_BN 128
#define NV_MMA_BK 32
/* Whether matmul k rounds x to bf16: --activations bf16 (x_bf16) on a bf16 weight. */
static inline int nv_rounds_x(const ex_kernel *k) { return k->attr[IR_A_X_BF16] != 0 && k->wtype == GM_BF16; }
static inline int nv_uses_mma(const ex_kernel *k) { return nv_rounds_x(k) && k->k % 8 == 0; }

/* The gemv's shape for kernel k (N output columns of K values): R columns per warp, two
 * for wide matrices (the loads of x shared), and S warps per column, each over a 1/S part
 * of k. S is the smallest of 1, 2, 4, 8 that makes some 4096 warps, but never parts under
 * 2 KB of weights, so that each warp keeps four 512-byte loads in flight (an H200: a
 * 2048 × 2048 bf16 matrix in 8 parts of 512 bytes streamed at 1 TB/s). S divides the
 * block's 8 warps. */
#define NV_GEMV_MAX_ROWS 2
static inline int nv_gemv_rows(int64_t N) { return N >= 8192 ? 2 : 1; }
static inline int nv_gemv_split(const ex_kernel *k) {
    int64_t warps = k->n / nv_gemv_rows(k->n), row_bytes = (int64_t)gm_dtype_bytes(k->wtype, k->k);
    int S = 1;
    while (S < 8 && warps * S < 4096 && row_bytes / (2 * S) >= 2048) S *= 2;
    return S;
}

/* A norm_matmul or plain matmul kernel also has a "<name>_gemv_geglu" entry: one row of x
 * against two matrices of its description, the gate (in[1]) and the up projection (k_cache),
 * storing gelu_tanh(x·gate) · (x·up): the engine runs decode's gate, up and geglu nodes as
 * that one launch. */
static inline int nv_has_geglu_entry(const ex_kernel *k) {
    return (k->op == IR_NORM_MATMUL || k->op == IR_MATMUL) && k->attr[IR_A_SOFTCAP] == 0;
}

/* Columns of the table an embed thread stores: one, or a block-quantized table's sub-block of
 * 32, decoded at once. */
static inline int nv_embed_columns(const ex_kernel *k) { return gm_dtype_quantized(k->wtype) ? 32 : 1; }

typedef struct {
    unsigned grid[3], block;
    int gemv;                /* matmul: launch the "<name>_gemv" entry */
} nv_launch;

/* How kernel k is launched for a call of T rows; nv_store_launch: an attention's "_store";
 * nv_geglu_launch: a matmul's "_gemv_geglu". */
void nv_launch_of(const ex_kernel *k, int64_t T, nv_launch *l);
void nv_store_launch(const ex_kernel *k, int64_t T, nv_launch *l);
void nv_geglu_launch(const ex_kernel *k, nv_launch *l);
/* The PTX text of kernels ks[0..n) for a GPU architecture ("sm_80", ...),
 * malloc'd; NULL after reporting. Defined in ptx.c, with LLVM. */
char *nv_ptx(const ex_kernel *ks, int n, const char *gpu, gm_err *e);

#endif
