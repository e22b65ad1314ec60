/* aot_lib_prog.c — a C program on the API of a model library made by
 * `gemmac compile tests/golden/tiny-gemma2 --emit lib -o out/tg2` (compiled
 * by test_aot and test_aarch64, for the host and for aarch64): prints the 16
 * greedy tokens of the oracle's prompt 1, then checks that a step past the
 * context is refused; then, with three sequences, prefills the prompt on
 * sequence 0, copies it to 2 and decodes both in one batch: both must give
 * the same tokens (it prints "batch: same" or where they differ). */
#include "tg2.h"

#include <stdio.h>
#include <stdlib.h>

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The prompt on sequence 0, copied to 2, both stepped together 15 times. */
static int batch(const int32_t *prompt, int n, float *logits) {
    char err[256];
    gm_lib_model *m = gm_lib_open_batch(NULL, 24, 3, err, sizeof err);
    if (!m) return fprintf(stderr, "%s\n", err), 1;
    int V = gm_lib_vocab(m), seq[2] = {2, 0}, pos[2] = {n, n};
    float *rows = malloc(2 * V * sizeof *rows);
    int32_t next[2];
    if (gm_lib_sequences(m) != 3 || gm_lib_use_sequence(m, 0) || gm_lib_prefill(m, prompt, n, 0, logits) ||
        gm_lib_copy_sequence(m, 0, 2, n))
        return fprintf(stderr, "%s\n", gm_lib_error(m)), 1;
    next[0] = next[1] = argmax(logits, V);
    for (int s = 1; s < 16; s++) {
        if (gm_lib_decode_batch(m, 2, next, seq, pos, rows)) return fprintf(stderr, "%s\n", gm_lib_error(m)), 1;
        next[0] = argmax(rows, V), next[1] = argmax(rows + V, V), pos[0]++, pos[1]++;
        if (next[0] != next[1]) return printf("batch: step %d differs\n", s), 1;
    }
    printf("batch: same\n");
    free(rows);
    free(logits);
    gm_lib_close(m);
    return 0;
}

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
    gm_lib_close(m);
    return batch(prompt, n, logits);
}
