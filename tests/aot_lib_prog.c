/* aot_lib_prog.c — a C program on the API of a model library made by
 * `gemmac compile tests/golden/tiny-gemma2 --emit lib -o out/tg2` (compiled
 * by test_aot and test_aarch64, for the host and for aarch64): prints the 16
 * greedy tokens of the oracle's prompt 1, then checks that a step past the
 * context is refused. */
#include "tg2.h"

#include <stdio.h>
#include <stdlib.h>

int main(void) {
    char err[256];
    gm_lib_model *m = gm_lib_open(NULL, 24, err, sizeof err);
    if (!m) return fprintf(stderr, "%s\n", err), 1;
    int32_t prompt[] = {2, 710, 584, 60, 594, 661, 284, 586}, n = 8, tok = 0;
    float *logits = malloc(gm_lib_vocab(m) * sizeof *logits);
    for (int s = 0; s < 16; s++) {
        if (s ? gm_lib_decode(m, tok, n + s - 1, logits) : gm_lib_prefill(m, prompt, n, 0, logits))
            return fprintf(stderr, "%s\n", gm_lib_error(m)), 1;
        tok = 0;
        for (int i = 1; i < gm_lib_vocab(m); i++)
            if (logits[i] > logits[tok]) tok = i;
        printf("%d%c", (int)tok, s < 15 ? ',' : '\n');
    }
    if (gm_lib_decode(m, tok, 100, logits) != -1 || !*gm_lib_error(m)) return 1; /* past the context */
    free(logits);
    gm_lib_close(m);
    return 0;
}
