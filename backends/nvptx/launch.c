/* launch.c — how each NVPTX kernel is launched (nvptx.h); no LLVM, so the
 * engine of an executable links it. */
#include "nvptx.h"

#include <stdio.h>

static unsigned blocks(int64_t n, int64_t per) { return (unsigned)((n + per - 1) / per); }

void nv_launch_of(const ex_kernel *k, int64_t T, nv_launch *l) {
    *l = (nv_launch){{1, 1, 1}, NV_THREADS, 0};
    switch (k->op) {
    case IR_EMBED: l->grid[0] = blocks(k->n / nv_embed_columns(k), NV_THREADS), l->grid[1] = (unsigned)T; break;
    case IR_RMS_NORM:
    case IR_NORM_ADD: l->grid[0] = (unsigned)(T * (k->n / k->k)); break; /* a block per group */
    case IR_ROPE: {
        int64_t hd = (int64_t)k->attr[IR_A_HEAD_DIM];
        l->grid[0] = (unsigned)T, l->grid[1] = (unsigned)(k->n / hd), l->block = (unsigned)(hd / 2);
        break;
    }
    case IR_ATTENTION:
        l->grid[0] = (unsigned)k->attr[IR_A_HEADS], l->grid[1] = T == 1 ? (unsigned)nv_attn_splits(k->attr[IR_A_HEADS]) : (unsigned)T;
        l->block = NV_ATTN_WARPS * NV_WARP;
        break;
    case IR_MATMUL:
    case IR_NORM_MATMUL:
    case IR_MATMUL_ADD:
        if (T == 1) l->gemv = 1, l->grid[0] = blocks(k->n, NV_THREADS / NV_WARP / nv_gemv_split(k) * nv_gemv_rows(k->n));
        else if (nv_uses_mma(k)) l->grid[0] = blocks(k->n, NV_MMA_BN), l->grid[1] = blocks(T, NV_MMA_BM);
        else l->grid[0] = blocks(k->n, NV_BN), l->grid[1] = blocks(T, NV_BM);
        break;
    default: l->grid[0] = blocks(T * k->n, NV_THREADS); break; /* elementwise */
    }
}

void nv_store_launch(const ex_kernel *k, int64_t T, nv_launch *l) {
    int64_t cols = (int64_t)(k->attr[IR_A_KV_HEADS] * k->attr[IR_A_HEAD_DIM]);
    *l = (nv_launch){{(unsigned)T, blocks(cols, NV_THREADS), 1}, NV_THREADS, 0};
}

void nv_geglu_launch(const ex_kernel *k, nv_launch *l) {
    *l = (nv_launch){{blocks(k->n, NV_THREADS / NV_WARP / nv_gemv_split(k)), 1, 1}, NV_THREADS, 1};
}
