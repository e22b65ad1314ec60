/* test_nvptx.c — the NVPTX target through the real gemmac binary.
 *
 *   test_nvptx ptx GEMMAC     (no GPU needed) the kernels of every oracle case,
 *       of tiny-gemma1-mha in each of GGUF's eight block formats (Q8_0 ... Q6_K,
 *       read as stored), and of the bf16 cases under --activations bf16 (whose
 *       prefill holds mma.sync), as PTX for sm_80 and sm_90: ptxas accepts each
 *       (skipped, exit 77, where the CUDA toolkit's ptxas is not on PATH), no
 *       kernel spills to local memory (ptxas -v), every kernel is an .entry of
 *       nv_args' parameters, the matmuls have "_gemv_geglu" entries, and only
 *       sm_90's kernels wait with griddepcontrol; `--emit exe` links an
 *       executable without LLVM whose manifest names the target; where no GPU is
 *       present, --backend nvptx and that executable fail with one line saying so.
 *   test_nvptx gpu GEMMAC | --prebuilt DIR   (exit 77 without a GPU) every
 *       oracle case compiled with --target nvptx --embed-weights (or taken
 *       from DIR, where a machine without LLVM runs executables compiled
 *       elsewhere) runs on the GPU: for every prompt, the prefill logits of
 *       every position and 16 greedy KV-cache decode steps within |Δlogit|
 *       ≤ 1e-3 of Google's reference, with identical greedy tokens; each block
 *       format and bf16 case against the CPU's logits of the same file and
 *       activations (test_gpu_cases); and the real Gemma 3 270M (when fetched,
 *       or DIR/gemma-3-270m given) answers " Paris" to the capital of France.
 *   test_nvptx agree CPU_EXE GPU_EXE WEIGHTS   (exit 77 without a GPU) the
 *       same model compiled for a CPU and for nvptx, on the same checkpoint
 *       (a random-weight one of a published shape, too big for the oracle):
 *       a 24-token prefill's logits at every position and 8 greedy steps
 *       agree within |Δlogit| ≤ 1e-4 of the largest |logit| (at least 1e-3:
 *       the oracle's tolerance at its logits of about 10; random weights
 *       make logits of about 100, and f32 sums in another order differ by
 *       about 1e-6 of them per layer), with identical tokens.
 *   test_nvptx prepare GEMMAC DIR   writes those cases (their executables
 *       and the CPU's logits) into DIR for `gpu --prebuilt DIR`. */
#include "oracle_exe.h"
#include "testing.h"

#include "backends/nvptx/nvptx.h"
#include "runtime/common.h"
#include "runtime/cuda.h"

#include <math.h>
#include <stdarg.h>
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

/* The model's kernels (compiled with flags) as PTX for sm_80 and sm_90, through ptxas; the
 * PTX holds must_hold where it is not NULL. */
static void check_ptx(const char *model, const char *flags, const char *must_hold, const char *label) {
    for (int g = 0; g < 2; g++) {
        const char *gpu = g ? "sm_90" : "sm_80";
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target nvptx --gpu %s%s --emit asm -o k.ptx", gemmac, model, gpu, flags);
        CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
        char *ptx = slurp("k.ptx");
        CU_ASSERT_PTR_NOT_NULL_FATAL(ptx);
        CU_ASSERT(check_entries(ptx) >= 8);
        CU_ASSERT(strstr(ptx, "_gemv_geglu(") != NULL);
        if (must_hold && !strstr(ptx, must_hold)) printf("\n  %s %s: no %s", label, gpu, must_hold);
        CU_ASSERT(!must_hold || strstr(ptx, must_hold));
        /* programmatic dependent launch on Hopper only */
        CU_ASSERT_EQUAL(strstr(ptx, "griddepcontrol.wait;") != NULL, g == 1);
        free(ptx);
        snprintf(cmd, sizeof cmd, "ptxas -arch=%s -v k.ptx -o k.cubin", gpu);
        int rc = sh(cmd);
        char *why = rc ? slurp("err.txt") : NULL;
        if (rc) printf("\n  %s %s: ptxas failed:\n%s", label, gpu, why);
        free(why);
        CU_ASSERT_EQUAL(rc, 0);
        /* every kernel's line says "0 bytes spill stores, 0 bytes spill loads" */
        CU_ASSERT(holds("err.txt", "0 bytes spill stores, 0 bytes spill loads"));
        int spills = sh("grep spill err.txt | grep -v '0 bytes spill stores, 0 bytes spill loads'") != 1;
        char *lines = spills ? slurp("out.txt") : NULL;
        if (spills) printf("\n  %s %s spills:\n%s", label, gpu, lines);
        free(lines);
        CU_ASSERT(!spills);
    }
}

static void test_ptx(void) {
    for (int c = 0; c < ORACLE_CASES; c++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/%s", oracle_cases[c]);
        check_ptx(test_path(rel), "", NULL, oracle_cases[c]);
    }
}

/* ---- block formats and bf16 activations ---- */

/* The GPU's cases beside the oracle's: tiny-gemma1-mha written in each of GGUF's block formats
 * by gemmac quantize (its 96-column matrices fall back to Q5_0, Q5_1 or Q8_0 under the
 * K-quants, whose 256-value blocks its 512-column down projections take), f32 activations; and
 * the two bf16 oracle cases under --activations bf16 (prefill on the tensor cores). */
typedef struct {
    const char *name, *model, *to, *activations; /* to: gemmac quantize's type, or NULL: the case as it is */
} gpu_case;
#define N_GPU_CASES 10
static const gpu_case gpu_cases[N_GPU_CASES] = {
    {"q8_0", "tiny-gemma1-mha", "q8_0", "f32"},           {"q4_0", "tiny-gemma1-mha", "q4_0", "f32"},
    {"q4_1", "tiny-gemma1-mha", "q4_1", "f32"},           {"q5_0", "tiny-gemma1-mha", "q5_0", "f32"},
    {"q5_1", "tiny-gemma1-mha", "q5_1", "f32"},           {"q4_k", "tiny-gemma1-mha", "q4_k", "f32"},
    {"q5_k", "tiny-gemma1-mha", "q5_k", "f32"},           {"q6_k", "tiny-gemma1-mha", "q6_k", "f32"},
    {"bf16-tiny-gemma2", "tiny-gemma2-bf16", NULL, "bf16"}, {"bf16-medium-gemma1", "medium-gemma1-bf16", NULL, "bf16"},
};
/* 80 ids below every case's vocabulary (so prefill fills a 64-row tile and part of the next) and 16 steps. */
#define PROBE                                                                                                         \
    "--steps 16 --tokens 8,146,298,464,13,207,415,6,242,492,125,403,64,370,59,393,110,472,217,607,380,167,599,414,243,86," \
    "574,445,330,229,142,69,10,596,565,548,545,556,581,620,42,109,190,285,394,517,23,174,339,518,80,287,508,112,361,624," \
    "270,561,235,554,256,603,333,77,466,238,24,455,269,97,570,426,296,180,78,621,547,487,441,409"
#define MMA "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"

/* The case's model: the oracle case, or written now by gemmac quantize into dir/NAME.gguf. */
static void case_model(const gpu_case *c, char *path, size_t len) {
    char rel[256], cmd[8192];
    snprintf(rel, sizeof rel, "golden/%s", c->model);
    if (!c->to) return (void)snprintf(path, len, "%s", test_path(rel));
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' --to %s -o %s.gguf", gemmac, test_path(rel), c->to, c->name);
    CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
    snprintf(path, len, "%s/%s.gguf", dir, c->name);
}

static void test_ptx_cases(void) {
    for (int i = 0; i < N_GPU_CASES; i++) {
        char model[4200], flags[64];
        case_model(&gpu_cases[i], model, sizeof model);
        snprintf(flags, sizeof flags, " --activations %s", gpu_cases[i].activations);
        check_ptx(model, flags, strcmp(gpu_cases[i].activations, "bf16") ? NULL : MMA, gpu_cases[i].name);
    }
}

/* dir/NAME.SUFFIX ← the formatted text. */
static void write_text(const char *name, const char *suffix, const char *fmt, ...) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    CU_ASSERT_FATAL(!ferror(f) && !fclose(f));
}

/* For the GPU suite, in dir: each case compiled for nvptx with its weights embedded (NAME), and
 * the CPU's answer to PROBE (the jit backend, the same activations: a block format's weights
 * decoded to the same f32 values; bf16 rounding x alike): the prefill logits and 16 greedy
 * steps, NAME.prefill.f32 and NAME.steps.f32, and the greedy tokens, NAME.tokens. A bf16 case
 * also gets NAME.bound, twice the most bf16 moved the CPU's prefill logits from f32 (its
 * "effect"; the steps follow other tokens once a greedy token flips): the GPU rounds the same
 * way, but a value within an f32 rounding of a bf16 boundary (the sums before it ordered
 * otherwise) may round the other way, as oracle_exe.h says for the CPU targets. Measured:
 * the CPU's own jit and reference backends differ so by 0.079 (tiny-gemma2-bf16, effect 0.48)
 * and 0.010 (medium-gemma1-bf16, effect 0.036); a wrong rounding, pairing or scale moves the
 * logits by their own size. */
static void prepare_cases(void) {
    for (int i = 0; i < N_GPU_CASES; i++) {
        const gpu_case *c = &gpu_cases[i];
        char model[4200], cmd[16384];
        case_model(c, model, sizeof model);
        snprintf(cmd, sizeof cmd, "'%s' logits '%s' " PROBE " --activations %s --prefill-out %s.prefill.f32 --out %s.steps.f32",
                 gemmac, model, c->activations, c->name, c->name);
        CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
        char *tokens = slurp("out.txt");
        CU_ASSERT_PTR_NOT_NULL_FATAL(tokens);
        write_text(c->name, ".tokens", "%s", tokens);
        free(tokens);
        if (!strcmp(c->activations, "bf16")) {
            snprintf(cmd, sizeof cmd, "'%s' logits '%s' " PROBE " --prefill-out f32.prefill --out f32.steps", gemmac, model);
            CU_ASSERT_EQUAL_FATAL(sh(cmd), 0);
            char prefill[64];
            snprintf(prefill, sizeof prefill, "%s.prefill.f32", c->name);
            double effect = oracle_logits_diff(dir, "f32.prefill", prefill);
            CU_ASSERT_FATAL(effect < 1e9); /* both files there, of one length */
            write_text(c->name, ".bound", "%.9g\n", 2 * effect);
        }
        snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target nvptx --activations %s --embed-weights -o %s%s%s%s", gemmac,
                 model, c->activations, c->name, c->to ? " && rm " : "", c->to ? c->name : "", c->to ? ".gguf" : "");
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

/* The CPU's logits (cpu_dir/a) against the GPU's (dir/b): within bound, or (bound 0) within
 * 1e-4 of the largest |logit| and never less than the oracle's 1e-3. */
static void compare_logits(const char *cpu_dir, const char *a, const char *b, const char *label, double bound) {
    size_t na, nb;
    float *x = oracle_read_f32(cpu_dir, a, &na), *y = oracle_read_f32(dir, b, &nb);
    CU_ASSERT_FATAL(x && y && na == nb && na > 0);
    double w = oracle_max_diff(x, y, na), top = 0;
    for (size_t i = 0; i < na; i++) top = fmax(top, fabs(x[i]));
    if (bound == 0) bound = 1e-4 * fmax(top, 10);
    printf("[%s: %zu logits up to %.1f, max |dlogit| %.2e, bound %.2e] ", label, na, top, w, bound);
    CU_ASSERT(w <= bound);
    free(x);
    free(y);
}

static void compare_files(const char *name) {
    char a[64], b[64];
    snprintf(a, sizeof a, "cpu.%s", name);
    snprintf(b, sizeof b, "gpu.%s", name);
    compare_logits(dir, a, b, name, 0);
}

/* Each case of gpu_cases on the GPU against the CPU's answer (prepare_cases: made now, or
 * taken from --prebuilt): the same greedy tokens, and logits within compare_logits' bound, or
 * NAME.bound for a bf16 case. */
static void test_gpu_cases(void) {
    if (!prebuilt) prepare_cases();
    const char *from = prebuilt ? prebuilt : dir;
    for (int i = 0; i < N_GPU_CASES; i++) {
        const char *t = gpu_cases[i].name;
        char cmd[8400], name[96];
        snprintf(cmd, sizeof cmd, "'%s/%s' logits " PROBE " --prefill-out gpu.prefill --out gpu.steps", from, t);
        int rc = sh(cmd);
        if (rc) printf("\n  %s: %s", t, slurp("err.txt"));
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        snprintf(name, sizeof name, "%s.tokens", t);
        char *cpu = test_slurp(from, name), *gpu = slurp("out.txt");
        if (!cpu || !gpu || strcmp(cpu, gpu)) printf("\n  %s greedy tokens: cpu %s  gpu %s", t, cpu, gpu);
        CU_ASSERT(cpu && gpu && !strcmp(cpu, gpu));
        free(cpu);
        free(gpu);
        snprintf(name, sizeof name, "%s.bound", t);
        char *text = test_slurp(from, name);
        double bound = text ? atof(text) : 0;
        free(text);
        snprintf(name, sizeof name, "%s.prefill.f32", t);
        compare_logits(from, name, "gpu.prefill", t, bound);
        snprintf(name, sizeof name, "%s.steps.f32", t);
        compare_logits(from, name, "gpu.steps", t, bound);
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

/* test_nvptx prepare GEMMAC DIR: the block-format and bf16 cases of the GPU suite into DIR (prepare_cases),
 * for a GPU machine without LLVM (scripts/gpu-check.sh). */
static int prepare(const char *exe, const char *out) {
    static char path[4096];
    if (!realpath(exe, path)) return fprintf(stderr, "test_nvptx: %s: no such program\n", exe), 2;
    gemmac = path;
    if (!realpath(out, dir)) return fprintf(stderr, "test_nvptx: %s: no such folder\n", out), 2;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_add_test(CU_add_suite("nvptx: block-format and bf16 cases for a GPU", NULL, NULL), "prepare", prepare_cases);
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
        CU_add_test(s, "block formats and bf16 activations against the CPU", test_gpu_cases);
        CU_add_test(s, "real Gemma 3 270M", test_real_model);
    } else {
        CU_add_test(s, "ptxas on every kernel", test_ptx);
        CU_add_test(s, "ptxas: block formats, bf16 activations on the tensor cores", test_ptx_cases);
        CU_add_test(s, "executable", test_executable);
    }
    return test_run_all();
}
