/* fuzz_safetensors.c — libFuzzer harness: arbitrary bytes as a .safetensors
 * file (st_open_memory), every tensor's descriptor read back. Built by
 * scripts/fuzz.sh; its seed corpus is the test fixtures' checkpoints. */
#include "runtime/safetensors.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gm_err e;
    gm_weights *a = st_open_memory(data, size, "fuzz.safetensors", &e);
    if (!a) return 0;
    volatile size_t sum = 0;
    for (int i = 0; i < weights_count(a); i++) {
        const gm_tensor *t = weights_get(a, i);
        sum += t->nbytes + (size_t)t->ndim + (t->nbytes ? ((const uint8_t *)t->data)[t->nbytes - 1] : 0);
        if (weights_find(a, t->name) != t) __builtin_trap(); /* names are unique and findable */
    }
    weights_close(a);
    return 0;
}
