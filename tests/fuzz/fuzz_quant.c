/* fuzz_quant.c — libFuzzer harness: arbitrary bytes as the blocks of every
 * GGUF tensor type gemmac decodes (runtime/quant.c, gguf_dequantize), each
 * block's integers as the int8 repacking reads them (gm_quant_ints), and the
 * decoded values, when finite, through every encoder of `gemmac quantize`
 * (gm_quantize) and the power-of-two scale folding (gm_quant_scale_pow2).
 * fuzz_gguf reaches only the types still decoded at load (Q2_K, Q3_K): the
 * others are computed as stored, so their bytes come from a checkpoint
 * unchecked, and every bit pattern, the f16 scales' NaNs, infinities and
 * subnormals included, must decode and re-encode without undefined
 * behaviour. The first byte picks the type, the rest are its blocks; the
 * second picks the power of two. Built by scripts/fuzz.sh; its seeds are
 * blocks cut from tests/quantize's llama.cpp outputs. */
#include "runtime/gguf.h"
#include "runtime/quant.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* The GGUF types gguf_dequantize decodes, and gemmac's dtype of each (the
 * quantized ones gm_quant_ints takes; GM_F32 for the others). */
static const struct {
    uint32_t ggml_type;
    gm_dtype dtype;
    int block_elems, block_bytes;
} types[] = {
    {0, GM_F32, 1, 4},       {1, GM_F32, 1, 2},       {30, GM_F32, 1, 2},      {2, GM_Q4_0, 32, 18},
    {3, GM_Q4_1, 32, 20},    {6, GM_Q5_0, 32, 22},    {7, GM_Q5_1, 32, 24},    {8, GM_Q8_0, 32, 34},
    {10, GM_F32, 256, 84},   {11, GM_F32, 256, 110},  {12, GM_Q4_K, 256, 144}, {13, GM_Q5_K, 256, 176},
    {14, GM_Q6_K, 256, 210},
};
#define N_TYPES (int)(sizeof types / sizeof types[0])

/* Encodes x (n a multiple of 256) as every quantized dtype, then scales the
 * blocks by 2^p and decodes them again. */
static void reencode(const float *x, int64_t n, int p) {
    uint8_t *q = malloc(gm_dtype_bytes(GM_Q8_0, n) + 1);
    float *y = malloc((size_t)n * sizeof *y + 1);
    for (gm_dtype t = GM_Q8_0; t < GM_DTYPE_COUNT; t++) {
        if (gm_quantize(t, x, q, n)) __builtin_trap(); /* n is whole blocks of every type */
        (void)gm_quant_scale_pow2(t, q, n, ldexp(1.0, p - 16));
        gm_dequantize(t, q, y, n);
    }
    free(q);
    free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int which = data[0] % N_TYPES, p = data[1] % 32;
    data += 2, size -= 2;
    int64_t blocks = (int64_t)(size / (size_t)types[which].block_bytes);
    int64_t n = blocks * types[which].block_elems;
    int64_t padded = (n + 255) / 256 * 256;
    float *x = calloc((size_t)padded + 1, sizeof *x);
    if (gguf_dequantize(types[which].ggml_type, data, x, n)) __builtin_trap();
    gm_dtype t = types[which].dtype;
    if (gm_dtype_quantized(t))
        for (int64_t b = 0; b < blocks; b++) {
            uint8_t q[256];
            gm_block_ints h;
            gm_quant_ints(t, data + b * types[which].block_bytes, q, &h);
        }
    if (padded && gm_all_finite(x, padded)) reencode(x, padded, p);
    free(x);
    return 0;
}
