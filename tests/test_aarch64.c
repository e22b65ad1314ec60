/* test_aarch64.c — the aarch64 target through the real gemmac binary, its
 * executables run under qemu-aarch64 (Debian's qemu-user):
 *   - every oracle case compiled with --target aarch64 at -O0 and -O2: the
 *     prefill logits of every position and 16 greedy KV-cache steps within
 *     |Δlogit| ≤ 1e-3 of Google's reference, identical tokens (oracle_exe.h);
 *   - the executable is an ELF for the Arm machine (e_machine 183), and its
 *     manifest names the target and the --cpu it was compiled for;
 *   - --emit lib for aarch64: tests/aot_lib_prog.c, cross-compiled against
 *     it, prints the oracle's greedy tokens;
 *   - the real Gemma 3 270M (when fetched) compiled with --embed-weights for
 *     a Neoverse N1 answers " Paris" to the capital of France.
 * Skipped (exit 77, with the reason) where qemu-aarch64 or the aarch64
 * runtime (built beside gemmac when scripts/deps.sh installed the cross
 * toolchain) is missing. The executables run with GEMMAC_THREADS=1: under
 * Debian 12's qemu-user 7.2 on these machines pthread_create never returns
 * in an emulated aarch64 program (a two-line C program shows it), so the
 * thread pool is not exercised here. The arm64 SentencePiece, which cannot
 * be installed beside the host's, is found through LD_LIBRARY_PATH. */
#include "oracle_exe.h"
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *gemmac;
static char dir[4096], runner[8192], libs[4200];


static int sh(const char *cmd) { return test_sh(dir, cmd); }

/* gemmac compile golden/name --target aarch64 flags -o out */
static void compile(const char *name, const char *flags, const char *out) {
    char cmd[8192], rel[256];
    snprintf(rel, sizeof rel, "golden/%s", name);
    snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target aarch64%s -o %s", gemmac, test_path(rel), flags, out);
    int rc = sh(cmd);
    if (rc) printf("\n  %s", test_slurp(dir, "err.txt"));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

static void check_levels(const char *name) {
    static const char *const levels[] = {" -O0", " -O2"};
    for (int l = 0; l < 2; l++) {
        char exe[4300];
        compile(name, levels[l], "exe");
        snprintf(exe, sizeof exe, "%s/exe", dir);
        oracle_check_exe(dir, runner, exe, "", name, levels[l] + 1);
    }
}

#define ARM_CASE(i) \
    static void test_case_##i(void) { check_levels(oracle_cases[i]); }
ARM_CASE(0) ARM_CASE(1) ARM_CASE(2) ARM_CASE(3) ARM_CASE(4) ARM_CASE(5) ARM_CASE(6)
static void (*const case_tests[ORACLE_CASES])(void) = {test_case_0, test_case_1, test_case_2, test_case_3,
                                                  test_case_4, test_case_5, test_case_6};

/* An ELF for EM_AARCH64, whose manifest names the target and CPU. */
static void test_executable(void) {
    compile("tiny-gemma2", " --cpu neoverse-v1", "tg2");
    char *elf = test_slurp(dir, "tg2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(elf);
    CU_ASSERT(!memcmp(elf, "\177ELF", 4) && (unsigned char)elf[18] == 183 && elf[19] == 0);
    free(elf);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "%s./tg2 --version", runner);
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    char *out = test_slurp(dir, "out.txt");
    CU_ASSERT(strstr(out, "target: aarch64-unknown-linux-gnu (cpu neoverse-v1") != NULL);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target aarch64 --cpu pentium -o bad", gemmac, test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL(sh(cmd), 2); /* a usage error, refused before the model is opened */
    out = test_slurp(dir, "err.txt");
    CU_ASSERT(strstr(out, "unknown Arm CPU \"pentium\"") != NULL && !test_exists(dir, "bad"));
    free(out);
}

/* --emit lib, and a C program cross-compiled against it. */
static void test_library(void) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "mkdir -p out && '%s' compile '%s' --target aarch64 --emit lib -o out/tg2", gemmac,
             test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "aarch64-linux-gnu-gcc -std=c11 -Wall -Werror -Iout -o prog '%s' out/tg2.a -L'%s' "
                              "-lsentencepiece -lcjson -lopenblas -lstdc++ -lm -lpthread", test_path("aot_lib_prog.c"), libs);
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s./prog", runner);
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    char *out = test_slurp(dir, "out.txt");
    CU_ASSERT_STRING_EQUAL(out, "736,656,428,688,680,423,651,557,701,712,100,321,627,253,532,658\nbatch: same\n");
    free(out);
}

/* Q8_0, Q4_0 and BF16 weights with f32 and reduced activations, generic
 * NEON, a CPU with int8 dot products alone (SDOT; Q8_0's quants signed)
 * and one with unsigned × signed ones and bf16 (USDOT, BFDOT), against
 * the reference backend (oracle_check_reduced). */
static void test_reduced(void) {
    static const char *const targets[] = {"aarch64", "aarch64 --cpu cortex-a76", "aarch64 --cpu neoverse-v1"};
    oracle_check_reduced(dir, gemmac, runner, targets, 3);
}

static void test_real_model(void) {
    char model[4096], cmd[16384];
    snprintf(model, sizeof model, "%s", test_real_model_path());
    if (access(model, R_OK)) {
        printf("\n  the real Gemma 3 270M is not here (scripts/fetch-model.sh gemma-3-270m): not run ");
        return;
    }
    snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target aarch64 --cpu neoverse-n1 --embed-weights -o g270", gemmac, model);
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s./g270 -p \"$(printf 'Question: What is the capital of France?\\nAnswer:')\" -n 4 --temp 0",
             runner);
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    char *out = test_slurp(dir, "out.txt");
    printf("[270M, aarch64 under qemu: \"%s\"] ", out);
    CU_ASSERT(!strncmp(out, " Paris", 6));
    free(out);
    sh("rm -f g270"); /* 1.3 GB */
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: test_aarch64 GEMMAC\n"), 2;
    gemmac = argv[1];
    char runtime[4200];
    snprintf(runtime, sizeof runtime, "%.*s/aarch64/libgm_runtime.a", (int)(strrchr(gemmac, '/') - gemmac), gemmac);
    snprintf(libs, sizeof libs, "%.*s/aarch64-deps/usr/lib/aarch64-linux-gnu", (int)(strrchr(gemmac, '/') - gemmac), gemmac);
    if (system("qemu-aarch64 --version > /dev/null 2>&1"))
        return printf("test_aarch64: skipped, no qemu-aarch64 (scripts/deps.sh installs qemu-user)\n"), 77;
    if (access(runtime, R_OK))
        return printf("test_aarch64: skipped, no aarch64 runtime at %s (scripts/deps.sh installs the cross toolchain, "
                      "then rebuild)\n", runtime), 77;
    snprintf(runner, sizeof runner, "GEMMAC_THREADS=1 QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 -E "
                                    "LD_LIBRARY_PATH='%s' ", libs);
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aarch64"));
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("aarch64 under qemu", NULL, NULL);
    for (int i = 0; i < ORACLE_CASES; i++) CU_add_test(s, oracle_cases[i], case_tests[i]);
    CU_add_test(s, "executable and manifest", test_executable);
    CU_add_test(s, "library", test_library);
    CU_add_test(s, "Q8_0, Q4_0 and BF16, f32 and int8 or bf16 activations", test_reduced);
    CU_add_test(s, "real Gemma 3 270M", test_real_model);
    return test_run_all();
}
