/* oracle_exe.h — an executable made by `gemmac compile` against an oracle
 * case (tests/golden): for every prompt of expected.json, its logits probe
 * (`EXE logits --tokens ... --steps 16 --out ... --prefill-out ...`) must give
 * the prefill logits of every position and 16 greedy KV-cache steps within
 * |Δlogit| ≤ 1e-3 of Google's reference, with identical greedy tokens. The
 * targets' suites (test_nvptx on a GPU, test_aarch64 under qemu) share it. */
#ifndef GM_ORACLE_EXE_H
#define GM_ORACLE_EXE_H

#include <stddef.h>

/* The oracle cases in tests/golden, by name. */
#define ORACLE_CASES 7
extern const char *const oracle_cases[ORACLE_CASES];

/* Runs `runner exe logits ... extra` in dir (runner: "" or an emulator command;
 * extra: more flags, e.g. " --weights DIR"); asserts as above and returns the
 * worst |Δlogit|, printing it with the case's name and label. */
double oracle_check_exe(const char *dir, const char *runner, const char *exe, const char *extra, const char *name,
                        const char *label);

/* tiny-gemma2 written as Q8_0, Q4_0 and BF16 by gemmac quantize, compiled
 * for each of the targets (--target NAME [--cpu CPU]), each executable's
 * prefill logits (run through runner, "" or an emulator) against the
 * reference backend's on the same file. f32 activations: the oracle's 1e-3.
 * int8 activations (bf16 for the BF16 file): the reference rounds the same
 * way, but a value within an f32 rounding of a rounding boundary (the sums
 * before it are ordered differently on every target) may round the other
 * way and move the logits as much as the rounding itself does; measured on
 * x86, flips of 0.27 and 0.67 where int8 moves the logits by up to `effect`
 * from f32. So a reduced executable must stay within 2 · effect of the
 * reference: a wrong scale, offset or order moves them by the logits' own size. */
void oracle_check_reduced(const char *dir, const char *gemmac, const char *runner, const char *const *targets, int n);

/* dir/name as floats (malloc'd; *n of them), or NULL; the largest |a[i] − b[i]| (NaN the worst). */
float *oracle_read_f32(const char *dir, const char *name, size_t *n);
double oracle_max_diff(const float *a, const float *b, size_t n);
/* The largest |Δ| between two logit files of dir (1e9 when one is missing, or their lengths differ). */
double oracle_logits_diff(const char *dir, const char *a, const char *b);

#endif
