/* fuzz_safetensors.c — libFuzzer harness: arbitrary bytes as a .safetensors
 * file (st_open_memory), every tensor's descriptor read back. Built by
 * scripts/fuzz.sh; its seed corpus is the test fixtures' checkpoints. */
#include "runtime/safetensors.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gm_err e;
    st_archive *a = st_open_memory(data, size, "fuzz.safetensors", &e);
    if (!a) return 0;
    volatile size_t sum = 0;
    for (int i = 0; i < st_count(a); i++) {
        const st_tensor *t = st_get(a, i);
        sum += t->nbytes + (size_t)t->ndim + (t->nbytes ? ((const uint8_t *)t->data)[t->nbytes - 1] : 0);
        if (st_find(a, t->name) != t) __builtin_trap(); /* names are unique and findable */
    }
    st_close(a);
    return 0;
}
