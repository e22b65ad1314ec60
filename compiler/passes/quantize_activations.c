/* quantize_activations.c — the explicit reduced-precision mode of the
 * matmuls that read block-quantized weights (--activations int8): each sets
 * x_int8, and its kernel then rounds every row of x to 8 bits per block of
 * 32 (d = max|x| / 127, q = round(x / d), as llama.cpp's q8_0) before
 * multiplying: decode takes integer dot products of the weights' quants and
 * x's (vpdpbusd where the CPU has AVX-512 VNNI), prefill the same rounded
 * values through its f32 tiles. It is never on at an -O level: it changes
 * the numbers (bench/README.md gives its KL divergence and top-1 agreement
 * against f32), so it runs only when asked. A matmul whose weight is not
 * block-quantized ignores the attribute. It runs after the fusion passes,
 * which rebuild the attributes of the nodes they retype. */
#include "passes.h"

void pass_quantize_activations(ir_graph *g) {
    for (int i = 0; i < g->n_nodes; i++)
        if (ir_is_matmul(g->nodes[i].op)) g->nodes[i].attr[IR_A_X_INT8] = 1;
}
