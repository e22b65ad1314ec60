/* test_aot.c — `gemmac compile` through the real binary: the executable it
 * makes of the tiny-gemma2 oracle case reproduces the oracle's logits and
 * greedy tokens (natively and for x86_64-v3), does not link LLVM, and prints
 * its manifest; --emit writes the kernels as an object, assembly or LLVM IR;
 * a compile that fails (bad output directory, bad model, unknown target)
 * leaves no output file behind. With --embed-weights the executables of
 * tiny-gemma2 and of the demo (its tokenizer too) run after the copy of the
 * checkpoint they were compiled from is deleted. --emit lib makes a static
 * library and its header that a C program links, reproducing the oracle's
 * greedy tokens through the header's API. Quantized weights run in the
 * executables of every x86 target as in the reference backend. */
#include "oracle_exe.h"
#include "testing.h"

#include "runtime/common.h"
#include "runtime/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *gemmac;
static char dir[4096];

/* A shell command (fmt with a and b) in dir: test_sh. */
static int sh(const char *fmt, const char *a, const char *b) {
    char line[12000];
    snprintf(line, sizeof line, fmt, a, b);
    return test_sh(dir, line);
}

static char *slurp(const char *name) { return test_slurp(dir, name); }
static int exists(const char *name) { return test_exists(dir, name); }

/* gemmac compile tiny-gemma2 -o tg2 flags */
static void compile(const char *flags) {
    char args[8192];
    snprintf(args, sizeof args, "'%s' -o tg2%s", test_path("golden/tiny-gemma2"), flags);
    CU_ASSERT_EQUAL_FATAL(sh("'%s' compile %s", gemmac, args), 0);
}

/* ./exe logits on prompt 1 of expected.json matches its tokens and logits. */
static void check_probe(const char *exe) {
    CU_ASSERT_EQUAL_FATAL(sh("./%s logits --tokens 2,710,584,60,594,661,284,586 --out steps.f32%s", exe, ""), 0);
    char *out = slurp("out.txt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_STRING_EQUAL(out, "736,656,428,688,680,423,651,557,701,712,100,321,627,253,532,658\n");
    free(out);
    size_t len;
    gm_err e;
    char path[4200];
    snprintf(path, sizeof path, "%s/steps.f32", dir);
    float *got = (float *)gm_read_file(path, &len, &e);
    float *want = (float *)gm_read_file(test_path("golden/tiny-gemma2/expected_logits.f32"), NULL, &e);
    CU_ASSERT_EQUAL_FATAL(len, 16 * 768 * 4);
    double worst = 0;
    for (int i = 0; i < 16 * 768; i++) worst = fmax(worst, fabs(got[i] - want[16 * 768 + i]));
    CU_ASSERT(worst <= 1e-3);
    free(got);
    free(want);
}

static void test_executable(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot"));
    compile("");
    check_probe("tg2");
    CU_ASSERT_EQUAL(sh("ldd ./tg2 | grep -ci llvm%s%s", "", ""), 1); /* grep found nothing */
    CU_ASSERT_EQUAL(sh("./tg2 --version%s%s", "", ""), 0);
    char *v = slurp("out.txt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_PTR_NOT_NULL(strstr(v, "model: tiny-gemma2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(v, "golden/tiny-gemma2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(v, "gemmac: " GM_VERSION "\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(v, "target: x86_64"));
    CU_ASSERT_PTR_NOT_NULL(strstr(v, "passes: fold_constants,eliminate_common,fuse_elementwise,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(v, ",eliminate_dead,plan_memory"));
    free(v);
}

static void test_portable_target(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-v3"));
    compile(" --target x86_64-v3");
    check_probe("tg2");
    char *v = (sh("./tg2 --version%s%s", "", ""), slurp("out.txt"));
    CU_ASSERT_PTR_NOT_NULL(v && strstr(v, "cpu x86-64-v3"));
    free(v);
}

/* -O0 (no passes: row-major weights, unfused kernels), -O1, and the SSE2
 * baseline (panel kernels of 4-lane vectors) each match the oracle too. */
static void test_levels_and_baseline(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-levels"));
    const char *variants[] = {" -O0", " -O1", " --target x86_64"};
    for (int i = 0; i < 3; i++) {
        compile(variants[i]);
        check_probe("tg2");
    }
}

/* Block-quantized and bf16 weights in executables of every x86 target (the
 * SSE2 baseline, AVX2, AVX-512, this CPU: decode's integer dots through
 * widened multiplies where there is no VNNI, bf16 dot products only where
 * it has AVX512_BF16), against the reference backend (oracle_check_reduced). */
static void test_quantized_targets(void) {
    static const char *const targets[] = {"x86_64", "x86_64-v3", "x86_64-v4", "native"};
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-quant"));
    oracle_check_reduced(dir, gemmac, "", targets, 4);
}

static void test_emit_kinds(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-emit"));
    const char *model = test_path("golden/tiny-gemma2");
    CU_ASSERT_EQUAL(sh("'%s' compile '%s' -o k.ll --emit llvm-ir", gemmac, model), 0);
    CU_ASSERT_EQUAL(sh("'%s' compile '%s' -o k.s --emit asm", gemmac, model), 0);
    CU_ASSERT_EQUAL(sh("'%s' compile '%s' -o k.o --emit obj", gemmac, model), 0);
    char *ll = slurp("k.ll"), *s = slurp("k.s");
    CU_ASSERT_PTR_NOT_NULL(ll && strstr(ll, "@gm_aot_fns"));
    CU_ASSERT_PTR_NOT_NULL(s && strstr(s, "gm_matmul_"));
    CU_ASSERT_EQUAL(sh("nm k.o | grep -q 'R gm_aot_manifest'%s%s", "", ""), 0);
    free(ll);
    free(s);
}

/* Compiles a copy of test_path(model) with --embed-weights to exe, then deletes the copy. */
static void compile_embedded(const char *model, const char *exe) {
    CU_ASSERT_EQUAL_FATAL(sh("cp -r '%s' ckpt%s", test_path(model), ""), 0);
    CU_ASSERT_EQUAL_FATAL(sh("'%s' compile ckpt -o %s --embed-weights", gemmac, exe), 0);
    CU_ASSERT_EQUAL_FATAL(sh("rm -r ckpt%s%s", "", ""), 0);
}

static void test_embedded_weights(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-embed"));
    compile_embedded("golden/tiny-gemma2", "tg2");
    check_probe("tg2");
    CU_ASSERT_EQUAL(sh("./tg2 --version%s%s", "", ""), 0);
    char *v = slurp("out.txt");
    CU_ASSERT_PTR_NOT_NULL(v && strstr(v, "weights: embedded (1385456 bytes, fnv1a-64 "));
    CU_ASSERT_PTR_NOT_NULL(v && strstr(v, "packed weights: embedded ("));
    free(v);
    /* the embedded packed weights are used as they are: nothing is packed into a cache */
    CU_ASSERT_EQUAL(sh("GEMMAC_CACHE=$PWD/cache ./tg2 logits --tokens 2,710 --steps 1%s%s", "", ""), 0);
    CU_ASSERT_EQUAL(sh("test -z \"$(ls cache/packed 2>/dev/null)\"%s%s", "", ""), 0);
}

/* The bytes after `label` "embedded (" in an executable's --version text, or 0. */
static unsigned long long embedded_bytes(const char *version, const char *label) {
    char key[64];
    snprintf(key, sizeof key, "\n%s: embedded (", label);
    const char *at = version ? strstr(version, key) : NULL;
    return at ? strtoull(at + strlen(key), NULL, 10) : 0;
}

/* A Q8_0 GGUF compiled for int8 activations carries each weight once: the
 * matrices (the tied embedding too, which the lookup then reads from the
 * head's panels) only as packed weights, the rest in a GGUF that lists what
 * it left out; the executable computes the JIT's logits bit for bit. */
static void test_embedded_int8(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-embed-int8"));
    CU_ASSERT_EQUAL_FATAL(sh("'%s' quantize '%s' --to q8_0 -o tg2.gguf > /dev/null", gemmac, test_path("golden/tiny-gemma2")), 0);
#define PROBE "logits --tokens 2,710,584,60,594 --steps 4 --out"
    CU_ASSERT_EQUAL_FATAL(sh("'%s' " PROBE " jit.f32 tg2.gguf --activations int8%s", gemmac, ""), 0);
    CU_ASSERT_EQUAL_FATAL(sh("{ '%s' compile tg2.gguf --activations int8 --embed-weights -o q8 && stat -c %%s tg2.gguf && rm tg2.gguf; }",
                             gemmac, ""), 0);
    char *size = slurp("out.txt");
    unsigned long long gguf = size ? strtoull(size, NULL, 10) : 0;
    free(size);
    CU_ASSERT_EQUAL_FATAL(sh("./q8 " PROBE " exe.f32%s%s", "", ""), 0);
#undef PROBE
    CU_ASSERT_EQUAL(sh("cmp exe.f32 jit.f32%s%s", "", ""), 0);
    CU_ASSERT_EQUAL(sh("./q8 --version%s%s", "", ""), 0);
    char *v = slurp("out.txt");
    unsigned long long weights = embedded_bytes(v, "weights"), packed = embedded_bytes(v, "packed weights");
    printf("\n  GGUF %llu bytes; embedded: weights %llu, packed weights %llu\n", gguf, weights, packed);
    CU_ASSERT(gguf > 0 && weights > 0 && packed > 0);
    CU_ASSERT(weights < gguf / 8);                  /* the norms, the metadata and the vocabulary */
    CU_ASSERT(weights + packed <= gguf + gguf / 10); /* was the whole GGUF and the pack: 1.8x */
    free(v);
}

static void test_embedded_demo(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-embed-demo"));
    compile_embedded("../models/demo", "demo");
    CU_ASSERT_EQUAL(sh("./demo -p Hello -n 8 --temp 0 --seed 1%s%s", "", ""), 0);
    char *out = slurp("out.txt");
    CU_ASSERT_PTR_NOT_NULL(out && strlen(out) > 1);
    free(out);
    char *v = (sh("./demo --version%s%s", "", ""), slurp("out.txt"));
    CU_ASSERT_PTR_NOT_NULL(v && strstr(v, "tokenizer: embedded ("));
    free(v);
}

/* A C program using NAME.h: prompt 1 of expected.json, 16 greedy steps. */
static void test_library(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-lib"));
    CU_ASSERT_EQUAL_FATAL(sh("mkdir out && '%s' compile '%s' --emit lib -o out/tg2", gemmac, test_path("golden/tiny-gemma2")), 0);
    CU_ASSERT_EQUAL(sh("ls out | tr '\\n' ' '%s%s", "", ""), 0);
    char *ls = slurp("out.txt");
    CU_ASSERT_STRING_EQUAL(ls, "tg2.a tg2.h "); /* and no temporaries */
    free(ls);
    CU_ASSERT_EQUAL_FATAL(sh("cc -std=c11 -Wall -Werror -Iout -o prog '%s' out/tg2.a -lsentencepiece -lcjson "
                             "-lopenblas -lstdc++ -lm -lpthread" TEST_LINK_FLAGS "%s", test_path("aot_lib_prog.c"), ""), 0);
    CU_ASSERT_EQUAL_FATAL(sh("./prog%s%s", "", ""), 0);
    char *out = slurp("out.txt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_STRING_EQUAL(out, "736,656,428,688,680,423,651,557,701,712,100,321,627,253,532,658\nbatch: same\n");
    free(out);
    CU_ASSERT_EQUAL(sh("ldd ./prog | grep -ci llvm%s%s", "", ""), 1); /* no LLVM */
    /* a failure (here: a name ar -M cannot take) leaves neither file, nor temporaries */
    CU_ASSERT_EQUAL(sh("'%s' compile '%s' --emit lib -o 'out/t g2'", gemmac, test_path("golden/tiny-gemma2")), 2);
    char *err = slurp("err.txt");
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "--emit lib needs paths of"));
    free(err);
    CU_ASSERT_EQUAL(sh("ls out | tr '\\n' ' '%s%s", "", ""), 0);
    ls = slurp("out.txt");
    CU_ASSERT_STRING_EQUAL(ls, "tg2.a tg2.h ");
    free(ls);
}

/* dir/sharded: tiny-gemma2 as a checkpoint of one shard and its index. */
static void make_sharded(void) {
    gm_err e;
    gm_weights *a = st_open(test_path("golden/tiny-gemma2"), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL_FATAL(sh("mkdir sharded && cp '%s/model.safetensors' sharded/shard-1.safetensors%s",
                             test_path("golden/tiny-gemma2"), ""), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/sharded/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("{\"weight_map\": {", f);
    for (int i = 0; i < weights_count(a); i++) fprintf(f, "%s\"%s\": \"shard-1.safetensors\"", i ? ", " : "", weights_get(a, i)->name);
    fputs("}}\n", f);
    fclose(f);
    weights_close(a);
}

static void test_failures_leave_nothing(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-fail"));
    const char *model = test_path("golden/tiny-gemma2");
    CU_ASSERT_EQUAL(sh("'%s' compile '%s' -o missing-dir/x", gemmac, model), 1);
    CU_ASSERT_EQUAL(sh("'%s' compile '%s' -o x --target sparc", gemmac, model), 2);
    CU_ASSERT(!exists("x"));
    CU_ASSERT_EQUAL(sh("'%s' compile '%s' -o x", gemmac, test_path("golden")), 1);
    CU_ASSERT_EQUAL(sh("'%s' compile '%s' -o x --embed-everything", gemmac, model), 2);
    make_sharded();
    CU_ASSERT_EQUAL(sh("'%s' compile '%s' -o x --weights sharded --embed-weights", gemmac,
                       test_path("golden/tiny-gemma2/config.json")), 1);
    char *err = slurp("err.txt");
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "a sharded checkpoint cannot be embedded"));
    free(err);
    CU_ASSERT_EQUAL(sh("rm -r sharded%s%s", "", ""), 0);
    CU_ASSERT_EQUAL(sh("ls | grep -v -e out.txt -e err.txt%s%s", "", ""), 1); /* nothing else, no temporaries */
}

/* cmake --install of this build to a prefix: the installed gemmac runs the demo (found in
 * share/gemmac) and compiles an executable (its runtime found in lib/gemmac) that matches
 * the oracle; a program links the --emit lib output with the installed pkg-config file. */
static void test_install(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("aot-install"));
    char build[4200];
    snprintf(build, sizeof build, "%.*s", (int)(strrchr(gemmac, '/') - gemmac), gemmac);
    CU_ASSERT_EQUAL_FATAL(sh("cmake --install '%s' --prefix \"$PWD/prefix\"%s", build, ""), 0);
    CU_ASSERT_EQUAL_FATAL(sh("prefix/bin/gemmac run -p hello -n 4 --temp 0%s%s", "", ""), 0);
    char *err = slurp("err.txt");
    CU_ASSERT(strstr(err, "share/gemmac/demo") != NULL);
    free(err);
    CU_ASSERT_EQUAL_FATAL(sh("prefix/bin/gemmac compile '%s' -o tg2%s", test_path("golden/tiny-gemma2"), ""), 0);
    check_probe("tg2");
    CU_ASSERT_EQUAL_FATAL(sh("prefix/bin/gemmac compile '%s' --emit lib -o tg2%s", test_path("golden/tiny-gemma2"), ""), 0);
    CU_ASSERT_EQUAL_FATAL(sh("cc -std=c11 -I. -o prog '%s' tg2.a $(PKG_CONFIG_PATH=prefix/lib/pkgconfig pkg-config --cflags "
                             "--libs gemmac)" TEST_LINK_FLAGS "%s", test_path("aot_lib_prog.c"), ""), 0);
    CU_ASSERT_EQUAL_FATAL(sh("./prog%s%s", "", ""), 0);
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: test_aot PATH-TO-GEMMAC\n"), 2;
    gemmac = argv[1];
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("aot", NULL, NULL);
    CU_add_test(s, "the executable matches the oracle, without LLVM, with a manifest", test_executable);
    CU_add_test(s, "an x86_64-v3 executable matches the oracle", test_portable_target);
    CU_add_test(s, "-O0, -O1 and x86_64 (SSE2) executables match the oracle", test_levels_and_baseline);
    CU_add_test(s, "Q8_0, Q4_0 and BF16 executables of every x86 target, f32 and int8 or bf16 activations", test_quantized_targets);
    CU_add_test(s, "--emit llvm-ir, asm, obj", test_emit_kinds);
    CU_add_test(s, "--embed-weights: runs without the checkpoint, matching the oracle", test_embedded_weights);
    CU_add_test(s, "--embed-weights: the demo generates with its embedded tokenizer", test_embedded_demo);
    CU_add_test(s, "--embed-weights with int8 panels: each weight once", test_embedded_int8);
    CU_add_test(s, "--emit lib: a C program linking NAME.a matches the oracle", test_library);
    CU_add_test(s, "a failed compile leaves no output", test_failures_leave_nothing);
    CU_add_test(s, "cmake --install: the installed gemmac runs the demo and compiles", test_install);
    return test_run_all();
}
