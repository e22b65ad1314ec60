/* kernels.h — the kernels of the LLVM backend and how they are called.
 *
 * A kernel is one IR op specialised for everything a node fixes: the column
 * sizes, the weight dtype and the attributes (baked in as constants). What
 * changes per call (tokens T, position, the KV slot) comes in an lv_call, the
 * one argument every kernel takes, so the engine (and, later, an AOT main)
 * calls them all the same way. Nodes with equal lv_kernel descriptions share
 * one compiled kernel: the layers of a model differ only in their weights. */
#ifndef GM_LLVM_KERNELS_H
#define GM_LLVM_KERNELS_H

#include "ir/ir.h"
#include "runtime/safetensors.h"

typedef struct {
    const void *in[IR_MAX_IN]; /* the node's inputs: f32 activations [T][C], weights, i32 token ids */
    float *out;                /* [T][C] */
    int64_t T, pos;            /* rows in this call; absolute position of the first */
    int64_t n0, n1;            /* matmul: the output columns [n0, n1) to compute */
    float *k_cache, *v_cache;  /* attention: its KV slot, [rows][kv_heads · head_dim] each */
    int64_t rows;
    float *scores;             /* attention: scratch for pos + T floats */
    float *scratch;            /* per thread: lv_scratch_floats(kernel, T) floats, 64-byte aligned */
} lv_call;

typedef void (*lv_kernel_fn)(const lv_call *c);

typedef struct lv_kernel {
    ir_op op;
    gm_dtype wtype;              /* embed, rms_norm, matmul: the weight's dtype */
    int64_t n;                   /* columns of the output */
    int64_t k;                   /* matmul: in-features; rms_norm: the group G */
    double attr[IR_ATTR_COUNT];  /* the op's attributes, 0 for those it does not take */
} lv_kernel;

/* The kernel node n needs (bound[v]: the tensor of weight v). Zeroed first,
 * so nodes that can share a kernel compare equal with memcmp. */
void lv_kernel_of(const ir_graph *g, const ir_node *n, const st_tensor *const *bound, lv_kernel *k);

/* The distinct kernels of g's nodes into ks[0..n), returning n (at most
 * n_nodes); which[i] is node i's. Both defined in exec.c (no LLVM). */
int lv_kernels_of(const ir_graph *g, const st_tensor *const *bound, lv_kernel *ks, int *which);

#endif
