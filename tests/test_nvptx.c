/* test_nvptx.c — the NVPTX target through the real gemmac binary.
 *
 *   test_nvptx ptx GEMMAC     (no GPU needed) every oracle case's kernels, and
 *       tiny-gemma1-mha's in each of GGUF's eight block formats (Q8_0 ... Q6_K,
 *       read as stored), as
 *       PTX for sm_80 and sm_90: ptxas accepts each (skipped, exit 77, where
 *       the CUDA toolkit's ptxas is not on PATH), no kernel spills to local
 *       memory (ptxas -v), every kernel is an .entry of nv_args'
 *       parameters, the matmuls have "_gemv_geglu" entries, and only
 *       sm_90's kernels wait with griddepcontrol; `--emit exe` links an executable without LLVM whose
 *       manifest names the target; where no GPU is present, --backend nvptx
 *       and that executable fail with one line saying so.
 *   test_nvptx gpu GEMMAC | --prebuilt DIR   (exit 77 without a GPU) every
 *       oracle case compiled with --target nvptx --embed-weights (or taken
 *       from DIR, where a machine without LLVM runs executables compiled
 *       elsewhere) runs on the GPU: for every prompt, the prefill logits of
 *       every position and 16 greedy KV-cache decode steps within |Δlogit|
 *       ≤ 1e-3 of Google's reference, with identical greedy tokens; each
 *       block format against the CPU's logits of the same file (within 1e-3,
 *       identical greedy tokens; test_gpu_quantized); and the
 *       real Gemma 3 270M (when fetched, or DIR/gemma-3-270m given) answers
 *       " Paris" to the capital of France.
 *   test_nvptx agree CPU_EXE GPU_EXE WEIGHTS   (exit 77 without a GPU) the
 *       same model compiled for a CPU and for nvptx, on the same checkpoint
 *       (a random-weight one of a published shape, too big for the oracle):
 *       a 24-token prefill's logits at every position and 8 greedy steps
 *       agree within |Δlogit| ≤ 1e-4 of the largest |logit| (at least 1e-3:
 *       the oracle's tolerance at its logits of about 10; random weights
 *       make logits of about 100, and f32 sums in another order differ by
 *       about 1e-6 of them per layer), with identical tokens.
 *   test_nvptx prepare GEMMAC DIR   writes the block-format cases (their
 *       executables and the CPU's logits) into DIR for `gpu --prebuilt DIR`. */
#include "oracle_exe.h"
#include "testing.h"

#include "backends/nvptx/nvptx.h"
#include "runtime/common.h"
#include "runtime/cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *gemmac, *prebuilt;
static char dir[4096];


static int sh(const char *cmd) { return test_sh(dir, cmd); }
static char *slurp(const char *name) { return test_slurp(dir, name); }

/* Whether the file holds text. */
static int holds(const char *name, const char *text) {
    char *s = slurp(name);
    int found = s && strstr(s, text);
    free(s);
    return found;
}

static int exists(const char *name) { return test_exists(dir, name); }

/* Lines of the file. */
static int lines_of(const char *name) {
    char *s = slurp(name);
    int n = 0;
    for (char *p = s; p && *p; p++) n += *p == '\n';
    free(s);
    return n;
}

/* ---- PTX ---- */

/* Each ".entry name(" block of the PTX has NV_N_PARAMS ".param" lines; returns the entries seen. */
static int check_entries(const char *ptx) {
    int n = 0;
    for (const char *p = strstr(ptx, ".entry "); p; p = strstr(p + 1, ".entry ")) {
        const char *end = strchr(p, ')'), *q = p;
        int params = 0;
        while ((q = strstr(q + 1, ".param ")) && q < end) params++;
        if (params != NV_N_PARAMS) printf("\n  %.60s: %d parameters, expected %d", p, params, NV_N_PARAMS);
        CU_ASSERT_EQUAL(params, NV_N_PARAMS);
        n++;
    }
    return n;
}

/* The model's kernels as PTX for sm_80 and sm_90, through ptxas. */
static void check_ptx(const char *model, const char *label) {
    for (int g = 0; g < 2; g++) {
        const char *gpu = g ? "sm_90" : "sm_80";
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target nvptx --gpu %s --emit asm -o k.ptx", gemmac, model, gpu);
        CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
        char *ptx = slurp("k.ptx");
        CU_ASSERT_PTR_NOT_NULL_FATAL(ptx);
        CU_ASSERT(check_entries(ptx) >= 8);
        CU_ASSERT(strstr(ptx, "_gemv_geglu(") != NULL);
        /* programmatic dependent launch on Hopper only */
        CU_ASSERT_EQUAL(strstr(ptx, "griddepcontrol.wait;") != NULL, g == 1);
        free(ptx);
        snprintf(cmd, sizeof cmd, "ptxas -arch=%s -v k.ptx -o k.cubin", gpu);
        int rc = sh(cmd);
        if (rc) printf("\n  %s %s: ptxas failed:\n%s", label, gpu, slurp("err.txt"));
        CU_ASSERT_EQUAL(rc, 0);
        /* every kernel's line says "0 bytes spill stores, 0 bytes spill loads" */
        CU_ASSERT(holds("err.txt", "0 bytes spill stores, 0 bytes spill loads"));
        if (sh("grep spill err.txt | grep -v '0 bytes spill stores, 0 bytes spill loads'") != 1)
            printf("\n  %s %s spills:\n%s", label, gpu, slurp("out.txt"));
        CU_ASSERT_EQUAL(sh("grep spill err.txt | grep -v '0 bytes spill stores, 0 bytes spill loads'"), 1);
    }
}

static void test_ptx(void) {
    for (int c = 0; c < ORACLE_CASES; c++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/%s", oracle_cases[c]);
        check_ptx(test_path(rel), oracle_cases[c]);
    }
}

/* ---- block-quantized weights ---- */

/* tiny-gemma1-mha written in each of GGUF's block formats by gemmac quantize: its 96-column
 * matrices fall back to Q5_0, Q5_1 or Q8_0 under the K-quants, whose 256-value blocks its
 * 512-column down projections take. */
#define N_QTYPES 8
static const char *const qtypes[N_QTYPES] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"};
#define Q_TOKENS "2,17,311,45,600,9,128,77,5,300,12,41" /* 12 tokens of the 640 */

static void quantize_case(const char *type) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' --to %s -o q-%s.gguf", gemmac, test_path("golden/tiny-gemma1-mha"), type, type);
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
}

static void test_ptx_quantized(void) {
    for (int q = 0; q < N_QTYPES; q++) {
        char model[4200];
        quantize_case(qtypes[q]);
        snprintf(model, sizeof model, "%s/q-%s.gguf", dir, qtypes[q]);
        check_ptx(model, qtypes[q]);
    }
}

/* For the GPU suite, in dir: each format's file compiled for nvptx with its weights embedded
 * (q-TYPE), and the CPU's answer (the jit backend; f32 activations, the weights decoded to the
 * same f32 values): the prefill logits of Q_TOKENS and 16 greedy steps, q-TYPE.prefill.f32,
 * q-TYPE.steps.f32, and the greedy tokens, q-TYPE.tokens. */
static void prepare_quantized(void) {
    for (int q = 0; q < N_QTYPES; q++) {
        const char *t = qtypes[q];
        char cmd[8192];
        quantize_case(t);
        snprintf(cmd, sizeof cmd, "'%s' logits q-%s.gguf --tokens " Q_TOKENS " --steps 16 --prefill-out q-%s.prefill.f32 --out "
                                  "q-%s.steps.f32", gemmac, t, t, t);
        CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
        snprintf(cmd, sizeof cmd, "mv out.txt q-%s.tokens && '%s' compile q-%s.gguf --target nvptx --embed-weights -o q-%s && rm q-%s.gguf",
                 t, gemmac, t, t, t);
        CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    }
}

/* --emit exe and llvm-ir; without a GPU, the one-line refusal. */
static void test_executable(void) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target nvptx -o tg2", gemmac, test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    CU_ASSERT_EQUAL(sh("ldd ./tg2 | grep -ci llvm"), 1); /* grep found nothing */
    CU_ASSERT_EQUAL(sh("./tg2 --version"), 0);
    CU_ASSERT(holds("out.txt", "target: nvptx (PTX for sm_80"));
    snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target nvptx --emit llvm-ir -o k.ll", gemmac, test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL(sh(cmd), 0);
    CU_ASSERT(holds("k.ll", "nvptx64-nvidia-cuda"));
    snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target nvptx --gpu sm_70 -o bad", gemmac, test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL(sh(cmd), 2); /* a usage error, refused before the model is opened */
    CU_ASSERT(holds("err.txt", "unknown GPU \"sm_70\""));
    CU_ASSERT(!exists("bad"));
    gm_err e;
    rt_cuda *cu = rt_cuda_open(&e);
    if (cu) return rt_cuda_close(cu); /* the GPU suite runs them */
    CU_ASSERT_EQUAL(sh("./tg2 logits --tokens 2,5"), 1);
    CU_ASSERT(holds("err.txt", "cuda: ") && lines_of("err.txt") == 1);
    snprintf(cmd, sizeof cmd, "'%s' logits '%s' --tokens 2,5 --backend nvptx", gemmac, test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL(sh(cmd), 1);
    CU_ASSERT(holds("err.txt", "cuda: ") && lines_of("err.txt") == 1);
}

/* ---- GPU ---- */

/* The executable of an oracle case: compiled now with the weights embedded,
 * or from --prebuilt (compiled elsewhere, so weights gets the case's --weights). */
static void executable(const char *name, char *exe, char *weights, size_t len) {
    char cmd[8192], rel[256];
    snprintf(rel, sizeof rel, "golden/%s", name);
    *weights = 0;
    if (prebuilt) {
        snprintf(exe, len, "%s/%s", prebuilt, name);
        snprintf(weights, len, " --weights '%s'", test_path(rel));
        return;
    }
    snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target nvptx --embed-weights -o '%s'", gemmac, test_path(rel), name);
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    snprintf(exe, len, "%s/%s", dir, name);
}

static void check_case(const char *name) {
    char exe[4200], weights[4200];
    executable(name, exe, weights, sizeof exe);
    oracle_check_exe(dir, "", exe, weights, name, "nvptx");
}

#define GPU_CASE(i) \
    static void test_gpu_##i(void) { check_case(oracle_cases[i]); }
GPU_CASE(0) GPU_CASE(1) GPU_CASE(2) GPU_CASE(3) GPU_CASE(4) GPU_CASE(5) GPU_CASE(6)
static void (*const gpu_tests[ORACLE_CASES])(void) = {test_gpu_0, test_gpu_1, test_gpu_2, test_gpu_3,
                                                 test_gpu_4, test_gpu_5, test_gpu_6};

/* The real Gemma 3 270M: " Paris". */
static void test_real_model(void) {
    char exe[4200], cmd[9000], model[4096];
    snprintf(model, sizeof model, "%s", test_real_model_path());
    if (prebuilt) snprintf(exe, sizeof exe, "%s/gemma-3-270m", prebuilt);
    if (access(prebuilt ? exe : model, R_OK)) {
        printf("\n  the real Gemma 3 270M is not here (scripts/fetch-model.sh gemma-3-270m): not run ");
        return;
    }
    if (!prebuilt) {
        snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target nvptx -o g270m", gemmac, model);
        CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
        snprintf(exe, sizeof exe, "%s/g270m", dir);
    }
    snprintf(cmd, sizeof cmd, "'%s' -p \"$(printf 'Question: What is the capital of France?\\nAnswer:')\" -n 4 --temp 0%s%s",
             exe, prebuilt ? " --weights " : "", prebuilt ? model : "");
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    char *out = slurp("out.txt");
    printf("[270M on the GPU: \"%s\"] ", out);
    CU_ASSERT(!strncmp(out, " Paris", 6));
    free(out);
}

/* ---- CPU against GPU ---- */

static const char *agree_args[3]; /* CPU executable, GPU executable, weights */

/* exe's 24-token prefill (every row) and 8 greedy steps into tag.prefill, tag.steps; its tokens returned. */
static char *probe(const char *exe, const char *tag) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' logits --tokens 2,651,9,77,1204,5,33,810,46,2,3000,71,12,600,8,940,15,203,88,7,4,1500,66,9"
                              " --steps 8 --weights '%s' --out %s.steps --prefill-out %s.prefill", exe, agree_args[2], tag, tag);
    int rc = sh(cmd);
    if (rc) printf("\n  %s: %s", exe, slurp("err.txt"));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return slurp("out.txt");
}

/* The CPU's logits (cpu_dir/a) against the GPU's (dir/b): within 1e-4 of the largest |logit|,
 * and never less than the oracle's 1e-3. */
static void compare_logits(const char *cpu_dir, const char *a, const char *b, const char *label) {
    size_t na, nb;
    float *x = oracle_read_f32(cpu_dir, a, &na), *y = oracle_read_f32(dir, b, &nb);
    CU_ASSERT_FATAL(x && y && na == nb && na > 0);
    double w = oracle_max_diff(x, y, na), top = 0;
    for (size_t i = 0; i < na; i++) top = fmax(top, fabs(x[i]));
    printf("[%s: %zu logits up to %.1f, max |dlogit| %.2e] ", label, na, top, w);
    CU_ASSERT(w <= 1e-4 * fmax(top, 10));
    free(x);
    free(y);
}

static void compare_files(const char *name) {
    char a[64], b[64];
    snprintf(a, sizeof a, "cpu.%s", name);
    snprintf(b, sizeof b, "gpu.%s", name);
    compare_logits(dir, a, b, name);
}

/* Each block format on the GPU against the CPU's answer (prepare_quantized: made now, or
 * taken from --prebuilt): the same greedy tokens, and logits within compare_logits' bound. */
static void test_gpu_quantized(void) {
    if (!prebuilt) prepare_quantized();
    const char *from = prebuilt ? prebuilt : dir;
    for (int q = 0; q < N_QTYPES; q++) {
        const char *t = qtypes[q];
        char cmd[8400], name[64];
        snprintf(cmd, sizeof cmd, "'%s/q-%s' logits --tokens " Q_TOKENS " --steps 16 --prefill-out gpu.prefill --out gpu.steps", from, t);
        int rc = sh(cmd);
        if (rc) printf("\n  %s: %s", t, slurp("err.txt"));
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        snprintf(name, sizeof name, "q-%s.tokens", t);
        char *cpu = test_slurp(from, name), *gpu = slurp("out.txt");
        if (!cpu || !gpu || strcmp(cpu, gpu)) printf("\n  %s greedy tokens: cpu %s  gpu %s", t, cpu, gpu);
        CU_ASSERT(cpu && gpu && !strcmp(cpu, gpu));
        free(cpu);
        free(gpu);
        snprintf(name, sizeof name, "q-%s.prefill.f32", t);
        compare_logits(from, name, "gpu.prefill", t);
        snprintf(name, sizeof name, "q-%s.steps.f32", t);
        compare_logits(from, name, "gpu.steps", t);
    }
}

static void test_agree(void) {
    char *cpu = probe(agree_args[0], "cpu"), *gpu = probe(agree_args[1], "gpu");
    if (strcmp(cpu, gpu)) printf("\n  greedy tokens: cpu %s  gpu %s", cpu, gpu);
    CU_ASSERT_STRING_EQUAL(cpu, gpu);
    free(cpu);
    free(gpu);
    compare_files("prefill");
    compare_files("steps");
}

/* test_nvptx prepare GEMMAC DIR: the quantized cases of the GPU suite into DIR (prepare_quantized),
 * for a GPU machine without LLVM (scripts/gpu-check.sh). */
static int prepare(const char *exe, const char *out) {
    static char path[4096];
    if (!realpath(exe, path)) return fprintf(stderr, "test_nvptx: %s: no such program\n", exe), 2;
    gemmac = path;
    snprintf(dir, sizeof dir, "%s", out);
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_add_test(CU_add_suite("nvptx: quantized cases for a GPU", NULL, NULL), "prepare", prepare_quantized);
    return test_run_all();
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: test_nvptx ptx|gpu GEMMAC | gpu --prebuilt DIR | agree CPU GPU WEIGHTS | prepare GEMMAC DIR\n"), 2;
    if (!strcmp(argv[1], "prepare") && argc == 4) return prepare(argv[2], argv[3]);
    int agree = !strcmp(argv[1], "agree") && argc == 5, gpu = !strcmp(argv[1], "gpu") || agree;
    if (agree) agree_args[0] = argv[2], agree_args[1] = argv[3], agree_args[2] = argv[4];
    if (gpu && !strcmp(argv[2], "--prebuilt") && argc > 3) prebuilt = argv[3];
    else gemmac = argv[2];
    gm_err e;
    rt_cuda *cu = gpu ? rt_cuda_open(&e) : NULL;
    if (gpu && !cu) return printf("test_nvptx: skipped, no GPU: %s\n", e.msg), 77;
    if (gpu) printf("test_nvptx: %s, compute capability %d.%d, %.0f GiB\n", cu->name, cu->cc_major, cu->cc_minor, cu->total_mem / 1073741824.0);
    rt_cuda_close(cu);
    if (!gpu && system("ptxas --version > /dev/null 2>&1")) return printf("test_nvptx: skipped, no ptxas on PATH (the CUDA toolkit)\n"), 77;
    snprintf(dir, sizeof dir, "%s", test_tmpdir(agree ? "nvptx-agree" : gpu ? "nvptx-gpu" : "nvptx"));
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite(gpu ? "nvptx on the GPU" : "nvptx PTX", NULL, NULL);
    if (agree) {
        CU_add_test(s, "CPU and GPU agree", test_agree);
    } else if (gpu) {
        for (int i = 0; i < ORACLE_CASES; i++) CU_add_test(s, oracle_cases[i], gpu_tests[i]);
        CU_add_test(s, "block-quantized weights, 8 formats", test_gpu_quantized);
        CU_add_test(s, "real Gemma 3 270M", test_real_model);
    } else {
        CU_add_test(s, "ptxas on every kernel", test_ptx);
        CU_add_test(s, "ptxas on every kernel, block-quantized weights", test_ptx_quantized);
        CU_add_test(s, "executable", test_executable);
    }
    return test_run_all();
}
