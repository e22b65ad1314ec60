/* fuzz_gguf.c — libFuzzer harness: arbitrary bytes as a .gguf file
 * (gguf_open_memory): every metadata value read back (numbers, strings,
 * array elements), every tensor info, and the weights dequantized
 * (gguf_weights). Built by scripts/fuzz.sh; its seed corpus is GGUF files the
 * tests write and, where fetched, the real Gemma 3 270M's first bytes. */
#include "runtime/gguf.h"

#include <stdint.h>
#include <stdlib.h>

static void read_values(const gguf_file *g) {
    gm_err e;
    for (int i = 0; i < gguf_kv_count(g); i++) {
        const gguf_kv *kv = gguf_kv_at(g, i);
        int64_t n;
        double d;
        char *s = NULL;
        gguf_get_int(g, kv->key, &n, &e);
        gguf_get_float(g, kv->key, &d, &e);
        if (!gguf_get_string(g, kv->key, &s, &e)) free(s);
        for (uint64_t k = 0; k < kv->count && k < 64; k++) {
            free(gguf_array_string(kv, k));
            (void)gguf_array_number(kv, k);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gm_err e;
    gguf_file *g = gguf_open_memory(data, size, "fuzz.gguf", &e);
    if (!g) return 0;
    read_values(g);
    for (int i = 0; i < gguf_tensor_count(g); i++) (void)gguf_type_name(gguf_tensor_at(g, i)->ggml_type);
    gm_weights *w = gguf_weights(g, &e);
    weights_close(w);
    gguf_close(g);
    return 0;
}
