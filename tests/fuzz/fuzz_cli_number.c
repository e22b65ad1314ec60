/* fuzz_cli_number.c — libFuzzer harness: arbitrary bytes as the value of a
 * numeric flag (compiler/cli_number.c: --temp, --top-p, --top-k, --threads,
 * --context, -n, --seed, --tokens 2,17,5, --prompt-tokens 128,512). A value
 * is accepted only when it is exactly a number in the flag's range, so what
 * a command goes on with is checked here: every accepted integer within its
 * range, every accepted float finite, every list non-empty and in range.
 * The first byte picks the range, as the commands use them. Built by
 * scripts/fuzz.sh; its seeds are the values the tests and README pass. */
#include "compiler/cli_number.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const long ranges[][2] = {
    {1, INT32_MAX}, {0, INT32_MAX}, {1, 1 << 20}, {1, 1 << 24}, {16, 1 << 24}, {INT32_MIN, INT32_MAX},
};
#define N_RANGES (int)(sizeof ranges / sizeof ranges[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    long min = ranges[data[0] % N_RANGES][0], max = ranges[data[0] % N_RANGES][1];
    char *s = strndup((const char *)data + 1, size - 1); /* argv strings end at their first NUL */
    int v;
    if (!cli_int(s, min, max, &v) && (v < min || v > max)) __builtin_trap();
    float f;
    if (!cli_float(s, &f) && !isfinite(f)) __builtin_trap();
    int32_t *ids;
    int n;
    if (!cli_int_list(s, min, max, &ids, &n)) {
        if (n < 1) __builtin_trap();
        for (int i = 0; i < n; i++)
            if (ids[i] < min || ids[i] > max) __builtin_trap();
        free(ids);
    } else if (ids || n) {
        __builtin_trap();
    }
    free(s);
    return 0;
}
