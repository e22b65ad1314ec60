/* round_activations.c — the explicit reduced-precision mode of the matmuls
 * that read bf16 weights (--activations bf16): each sets x_bf16, and its
 * kernel then rounds every row of x to bf16 (to nearest, ties to even)
 * before multiplying, so that a pair of products takes one bf16 dot
 * product (vdpbf16ps where the CPU has AVX512_BF16; the products of two
 * bf16 values are exact in f32, so only x's rounding and the order of the
 * sums differ from f32). It is never on at an -O level: it changes the
 * numbers (bench/README.md gives its KL divergence and top-1 agreement
 * against f32), so it runs only when asked. A matmul whose weight is not
 * bf16 ignores the attribute. It runs after the fusion passes, which
 * rebuild the attributes of the nodes they retype. */
#include "passes.h"

void pass_round_activations(ir_graph *g) {
    for (int i = 0; i < g->n_nodes; i++)
        if (ir_is_matmul(g->nodes[i].op)) g->nodes[i].attr[IR_A_X_BF16] = 1;
}
