/* kernel.h — compiled kernels and how they are called, whoever compiled
 * them (backends/llvm for the CPU targets, backends/nvptx for the GPU) and
 * whatever runs them (exec.c, the GPU engine); no LLVM here.
 *
 * A kernel is one IR op specialised for everything a node fixes: the column
 * sizes, the weight dtype and the attributes (baked in as constants). What
 * changes per call (tokens T, position, the KV slot) comes in an ex_call, the
 * one argument every kernel takes, so the engine (the JIT's, and an AOT executable's)
 * calls them all the same way. Nodes with equal ex_kernel descriptions share
 * one compiled kernel: the layers of a model differ only in their weights. */
#ifndef GM_EXEC_KERNEL_H
#define GM_EXEC_KERNEL_H

#include "ir/ir.h"
#include "runtime/weights.h"

typedef struct {
    const void *in[IR_MAX_IN]; /* the node's inputs: f32 activations [T][C], weights, i32 token ids */
    float *out;                /* [T][C] */
    int64_t T, pos;            /* rows in this call; absolute position of the first */
    int64_t n0, n1;            /* matmul and its gradients, embed_dw: the output columns [n0, n1) to compute;
                                  attention: the query rows; attention_dq/_dk/_dv: the rows of their output */
    float *k_cache, *v_cache;  /* attention: its KV slot, [rows][kv_heads · head_dim] each */
    int64_t rows;
    float *scratch;            /* per thread: ex_scratch_floats(kernel, T) floats, 64-byte aligned */
} ex_call;

typedef void (*ex_kernel_fn)(const ex_call *c);

/* Packed weights: panels of EX_PANEL output columns (ir_value.panel), walked
 * by prefill in blocks of EX_KC values of k (matmul.c): a panel's block,
 * KC·P floats (32 KB), stays in L1 while the register tiles pass. */
#define EX_PANEL 32 /* two AVX-512 vectors of f32, four of AVX2, eight of NEON; compiler/targets.c gives it to the CPU targets */
#define EX_KC 256

typedef struct ex_kernel {
    ir_op op;
    gm_dtype wtype;              /* embed, rms_norm, matmul family, matmul_dx, rms_norm_dx/_dw: the weight's dtype */
    gm_dtype ntype;              /* norm_matmul: the norm weight's dtype */
    int panel;                   /* matmul family, embed: the weight's panel width (0: row-major) */
    int64_t n;                   /* columns of the output */
    int64_t k;                   /* matmul: in-features; rms_norm (and its gradients): the group G;
                                    matmul_dx, matmul_dw: dy's columns N (W's rows); embed_dw: the table's rows */
    double attr[IR_ATTR_COUNT];  /* the op's attributes, 0 for those it does not take */
} ex_kernel;

/* A kernel of op outside any graph (a kernel test, bench/qdecode): its
 * attributes' defaults, 0 for those that have none (a required one). */
ex_kernel ex_kernel_default(ir_op op, gm_dtype wtype, int64_t n, int64_t k);

/* The kernel node n needs (bound[v]: the tensor of weight v). Zeroed first,
 * so nodes that can share a kernel compare equal with memcmp. */
void ex_kernel_of(const ir_graph *g, const ir_node *n, const gm_tensor *const *bound, ex_kernel *k);

/* Floats of scratch one thread needs to run kernel k on T rows, each part
 * 64-byte aligned: the normalised rows of a norm_matmul, the rows packed
 * for a panel kernel's register tiles, a converted block of panel weights.
 * In exec.c (no LLVM). */
int64_t ex_scratch_floats(const ex_kernel *k, int64_t T);

/* The distinct kernels of g's nodes into ks[0..n), returning n (at most
 * n_nodes); which[i] is node i's. The symbol of kernel ks[i] in compiled
 * code ("gm_<op>_<i>"), for every target. Both defined in exec.c (no LLVM). */
void ex_kernel_symbol(char *buf, size_t len, const ex_kernel *k, int i);
int ex_kernels_of(const ir_graph *g, const gm_tensor *const *bound, ex_kernel *ks, int *which);

#endif
