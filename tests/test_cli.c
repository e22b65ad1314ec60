/* test_cli.c — the gemmac command line as a user meets it: the logits probe
 * reproduces the oracle through the real binary and files, `perplexity`
 * scores a text and compares a model with a base, and every kind of
 * bad input (a truncated or lying checkpoint, a missing tensor, a wrong shape
 * or dtype, malformed JSON, a bad flag, a prompt too long) ends with exactly
 * one `gemmac: ...` line naming the problem and a non-zero exit, never a
 * crash and never a half-written output file. */
#include "testing.h"

#include "runtime/common.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *gemmac;
static char dir[4096];
static char err_text[8192];

/* Runs gemmac with args (a shell fragment); stdout to dir/out.txt, stderr
 * kept in err_text. Returns the exit status, or -1 when killed by a signal. */
static int run(const char *args) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s > out.txt 2> err.txt", dir, gemmac, args);
    int st = system(cmd);
    char path[4200];
    snprintf(path, sizeof path, "%s/err.txt", dir);
    gm_err e;
    char *text = gm_read_file(path, NULL, &e);
    snprintf(err_text, sizeof err_text, "%s", text ? text : "");
    free(text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The run failed with status `code` and one line holding `part`. */
static void expect_error(const char *args, int code, const char *part) {
    int rc = run(args);
    size_t n = strlen(err_text);
    int one_line = n > 0 && err_text[n - 1] == '\n' && !memchr(err_text, '\n', n - 1);
    if (rc != code || !one_line || !strstr(err_text, part) || strncmp(err_text, "gemmac: ", 8))
        printf("\n  gemmac %s\n  exit %d (expected %d), stderr: %s  (expected \"%s\")\n", args, rc, code, err_text, part);
    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT(one_line);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, part));
}

static void copy(const char *from, const char *to) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", from, to);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

static void write_text(const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* ckpt/model.safetensors with this header (padded) and data_len zero bytes. */
static void write_st(const char *header, size_t data_len, uint64_t claimed_len) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(header);
    uint64_t len = claimed_len ? claimed_len : n;
    fwrite(&len, 8, 1, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_len; i++) fputc(0, f);
    fclose(f);
}

static void fresh_ckpt(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("cli"));
    char to[4200];
    snprintf(to, sizeof to, "%s/ckpt", dir);
    copy(test_path("golden/tiny-gemma1-mqa"), to);
}

static void test_logits_probe(void) {
    fresh_ckpt();
    /* prompt 1 of tiny-gemma2 and its 16 greedy steps, from expected.json */
    char args[4096];
    snprintf(args, sizeof args, "logits '%s' --tokens 2,710,584,60,594,661,284,586 --out steps.f32 --prefill-out pre.f32",
             test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL_FATAL(run(args), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    gm_err e;
    size_t len;
    char *out = gm_read_file(path, NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_STRING_EQUAL(out, "736,656,428,688,680,423,651,557,701,712,100,321,627,253,532,658\n");
    free(out);
    snprintf(path, sizeof path, "%s/steps.f32", dir);
    float *got = (float *)gm_read_file(path, &len, &e);
    CU_ASSERT_EQUAL(len, 16 * 768 * 4);
    float *want = (float *)gm_read_file(test_path("golden/tiny-gemma2/expected_logits.f32"), NULL, &e);
    double worst = 0;
    for (int i = 0; got && i < 16 * 768; i++) worst = fmax(worst, fabs(got[i] - want[16 * 768 + i]));
    CU_ASSERT(worst <= 1e-3);
    snprintf(path, sizeof path, "%s/pre.f32", dir);
    free(got);
    got = (float *)gm_read_file(path, &len, &e);
    CU_ASSERT_EQUAL(len, 8 * 768 * 4);
    free(got);
    free(want);
}

/* Prefill logits of tiny-gemma2's first prompt, into name; NULL on failure. */
static float *prefill_logits(const char *flags, const char *name) {
    char args[4096], path[4200];
    snprintf(args, sizeof args, "logits '%s' --tokens 2,710,584,60,594,661,284,586 --steps 1 --prefill-out %s %s",
             test_path("golden/tiny-gemma2"), name, flags);
    if (run(args)) return NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gm_err e;
    size_t len;
    float *l = (float *)gm_read_file(path, &len, &e);
    CU_ASSERT_EQUAL(len, 8 * 768 * 4);
    return l;
}

/* --weights-dtype quantizes a float checkpoint's matrices at load: the JIT
 * and the reference compute the quantized weights alike (within the f32
 * tolerance), and both differ from f32 by Q8_0's rounding, which this tiny
 * random model amplifies to 7.7 % of the logits' RMS (measured; the bound is
 * 15 %). A wrong name, and compile, are refused. */
static void test_weights_dtype(void) {
    fresh_ckpt();
    float *f = prefill_logits("", "f32.f32"), *q = prefill_logits("--weights-dtype q8_0", "q8.f32");
    float *r = prefill_logits("--weights-dtype q8_0 --backend reference", "q8ref.f32");
    CU_ASSERT_FATAL(f && q && r);
    double err = 0, norm = 0, worst = 0;
    for (int i = 0; i < 8 * 768; i++) {
        err += (q[i] - f[i]) * (double)(q[i] - f[i]), norm += (double)f[i] * f[i];
        worst = fmax(worst, fabs(q[i] - r[i]));
    }
    printf("[q8_0 at load: relative RMS %.4f against f32; jit vs reference %.2g] ", sqrt(err / norm), worst);
    CU_ASSERT(err > 0 && sqrt(err / norm) < 0.15);
    CU_ASSERT(worst <= 1e-3);
    free(f), free(q), free(r);
    char args[4096];
    snprintf(args, sizeof args, "logits '%s' --tokens 2,3 --weights-dtype q3", test_path("golden/tiny-gemma2"));
    expect_error(args, 2, "--weights-dtype q3: expected bf16, f16 or a GGUF block type");
    snprintf(args, sizeof args, "compile '%s' -o x --weights-dtype q8_0", test_path("golden/tiny-gemma2"));
    expect_error(args, 2, "quantize the checkpoint first (gemmac quantize");
    /* A weight that is not a number has no block scale: refused by name and row. */
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt/model.safetensors", dir);
    FILE *st = fopen(path, "wb");
    const char *hdr = "{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[512,64],\"data_offsets\":[0,131072]}}";
    uint64_t n = strlen(hdr);
    fwrite(&n, 8, 1, st), fwrite(hdr, 1, n, st);
    for (int i = 0; i < 131072; i++) fputc(i >= 3 * 256 && i < 3 * 256 + 4 ? 0xff : 0, st); /* row 3's first value: NaN */
    fclose(st);
    expect_error("logits ckpt --tokens 2 --weights-dtype q4_0", 1, "tensor model.embed_tokens.weight: row 3 holds a NaN");
}

static void test_usage_errors(void) {
    fresh_ckpt();
    expect_error("frobnicate", 2, "unknown command \"frobnicate\"");
    expect_error("logits ckpt --tokens 2,3 --temperature 1", 2, "unknown flag --temperature");
    expect_error("logits ckpt", 2, "--tokens is required");
    expect_error("logits ckpt --tokens 2,x", 2, "--tokens: expected comma-separated ids");
    expect_error("logits ckpt --tokens 2,3 --steps 0", 2, "--steps: expected a whole number in [1, 16777216], found \"0\"");
    expect_error("logits ckpt --tokens 2,3 --backend gpu", 2, "--backend: unknown backend \"gpu\"");
}

static void test_prompt_errors(void) {
    fresh_ckpt();
    expect_error("logits ckpt --tokens 2,3,4,5 --steps 4 --context 6", 1, "exceeds --context 6");
    expect_error("logits ckpt --tokens 2,3 --steps 200", 1, "exceeds the model's context of 128 positions");
    expect_error("logits ckpt --tokens 2,512 --steps 1", 1, "token 1 (id 512) is outside the vocabulary of 512 ids");
    expect_error("logits ckpt --tokens 2,3 --out missing-dir/x.f32", 1, "missing-dir/x.f32");
    struct stat st;
    char path[4200];
    snprintf(path, sizeof path, "%s/missing-dir", dir);
    CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);
}

static void test_config_errors(void) {
    fresh_ckpt();
    write_text("ckpt/config.json", "{\"model_type\": \"gemma\", \"hidden_size\": 64,");
    expect_error("logits ckpt --tokens 2", 1, "ckpt/config.json");
    write_text("ckpt/config.json", "{\"model_type\": \"llama\"}");
    expect_error("logits ckpt --tokens 2", 1, "llama");
    expect_error("info nowhere", 1, "nowhere");
}

static void test_checkpoint_errors(void) {
    fresh_ckpt();
    const char *hdr = "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[0,256]}}";
    write_st(hdr, 100, 0);
    expect_error("logits ckpt --tokens 2", 1, "model.norm.weight");
    write_st(hdr, 256, 1 << 30);
    expect_error("logits ckpt --tokens 2", 1, "ckpt/model.safetensors");
    write_st("{\"model.norm.weight\":{\"dtype\":\"F64\",\"shape\":[64],\"data_offsets\":[0,512]}}", 512, 0);
    expect_error("logits ckpt --tokens 2", 1, "F64");
    write_st("{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[0,256]", 256, 0);
    expect_error("logits ckpt --tokens 2", 1, "ckpt/model.safetensors");
    write_st(hdr, 256, 0); /* valid, but without the embedding */
    expect_error("logits ckpt --tokens 2", 1, "model.embed_tokens.weight");
    write_st("{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[512,64],\"data_offsets\":[0,131072]},"
             "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[131072,131328]}}",
             131328, 0); /* valid, but the layers are missing */
    expect_error("logits ckpt --tokens 2", 1, "of layer 0) is missing; the checkpoint does not match ckpt/config.json");
    write_st("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 2, 0); /* truncated */
    expect_error("logits ckpt --tokens 2", 1, "ckpt/model.safetensors");
}

static void test_shape_errors(void) {
    fresh_ckpt();
    /* the description says 5 layers, the checkpoint has 3 */
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt/config.json", dir);
    gm_err e;
    char *cfg = gm_read_file(path, NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    char *at = strstr(cfg, "\"num_hidden_layers\": 3");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    at[strlen("\"num_hidden_layers\": ")] = '5';
    write_text("ckpt/config.json", cfg);
    expect_error("logits ckpt --tokens 2", 1, "tensor model.layers.3.");
    /* intermediate size that disagrees with the checkpoint */
    at[strlen("\"num_hidden_layers\": ")] = '3';
    char *inter = strstr(cfg, "\"intermediate_size\": 256");
    CU_ASSERT_PTR_NOT_NULL_FATAL(inter);
    memcpy(inter + strlen("\"intermediate_size\": "), "128", 3);
    write_text("ckpt/config.json", cfg);
    expect_error("logits ckpt --tokens 2", 1, "shape [128, 64] expected, found [256, 64]");
    free(cfg);
}

static char *read_out(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    gm_err e;
    char *text = gm_read_file(path, NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    return text;
}

static void test_run_errors(void) {
    fresh_ckpt();
    char args[8192], demo[4096];
    snprintf(demo, sizeof demo, "%s", test_path("../models/demo"));
    expect_error("run ckpt -p hi", 1, "no tokenizer: ckpt/tokenizer.model not found; pass --tokenizer FILE");
    snprintf(args, sizeof args, "run '%s' -p hi --tokenizer '%s'", demo, test_path("tokenizers/gemma-tokenizer.model"));
    expect_error(args, 1, "the tokenizer has 256000 pieces but the model has 2048 logits");
    snprintf(args, sizeof args, "run '%s' -p 'a prompt that is longer than four tokens' --context 4", demo);
    expect_error(args, 1, "the prompt needs");
    snprintf(args, sizeof args, "run '%s' -p hi --top-p 1.5", demo);
    expect_error(args, 2, "--top-p: expected a number in (0, 1], found 1.5");
    expect_error("run ckpt -p hi --frobnicate", 2, "unknown flag --frobnicate");
    expect_error("run ckpt", 2, "no prompt: pass -p TEXT, --chat or --parallel N");
    expect_error("run ckpt -p hi -n x", 2, "-n: expected a whole number in [1, 2147483647], found \"x\"");
    /* A model that needs more memory than there is: refused before loading, with both numbers. */
    snprintf(args, sizeof args, "run '%s' -p hi -n 1", demo);
    setenv("GEMMAC_MEMORY_LIMIT", "1000", 1);
    expect_error(args, 1, "0.00 GB allowed by GEMMAC_MEMORY_LIMIT; use a quantized checkpoint");
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "KV cache"));
    setenv("GEMMAC_MEMORY_LIMIT", "lots", 1);
    expect_error(args, 1, "GEMMAC_MEMORY_LIMIT=lots: expected a number of bytes or \"off\"");
    setenv("GEMMAC_MEMORY_LIMIT", "off", 1);
    CU_ASSERT_EQUAL(run(args), 0);
    unsetenv("GEMMAC_MEMORY_LIMIT");
}

static void test_run_demo(void) {
    fresh_ckpt();
    /* no model: the embedded demo, said plainly; a seed reproduces the text */
    CU_ASSERT_EQUAL_FATAL(run("run -p 'Hello there' -n 24 --seed 7"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "trained on its corpus"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "tok/s"));
    char *first = read_out();
    CU_ASSERT(strlen(first) > 1);
    CU_ASSERT_EQUAL_FATAL(run("run --path_checkpoint '" GM_SOURCE_DIR "/models/demo' --string_to_sample 'Hello there' "
                              "--total_generation_steps 24 --seed 7"), 0);
    char *second = read_out();
    CU_ASSERT_STRING_EQUAL(first, second);
    free(first);
    free(second);
}

/* run --parallel: one JSON line per stdin line, in input order, each reply
 * the one -p with the same prefix and line gives alone (greedy). */
static void test_run_parallel(void) {
    fresh_ckpt();
    CU_ASSERT_EQUAL_FATAL(run("run -p 'Say:' --parallel 2 --temp 0 -n 6 < /dev/null"), 0); /* no lines, no output */
    char *none = read_out();
    CU_ASSERT_STRING_EQUAL(none, "");
    free(none);
    write_text("prompts.txt", "Hello\n\nThe sky is\nGo\n");
    CU_ASSERT_EQUAL_FATAL(run("run -p 'Say:' --parallel 2 --temp 0 -n 6 --stop ' ar' < prompts.txt"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "3 prompts on 2 sequences"));
    char *out = read_out(), *line = out;
    const char *prompts[] = {"Hello", "The sky is", "Go"};
    for (int i = 0; i < 3; i++) {
        char *end = strchr(line, '\n');
        CU_ASSERT_PTR_NOT_NULL_FATAL(end);
        *end = 0;
        cJSON *j = cJSON_Parse(line);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_EQUAL(cJSON_GetObjectItem(j, "index")->valueint, i);
        CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "prompt")->valuestring, prompts[i]);
        char one[64];
        snprintf(one, sizeof one, "%s\n", prompts[i]);
        write_text("one.txt", one);
        const char *reply = cJSON_GetObjectItem(j, "reply")->valuestring;
        CU_ASSERT_EQUAL(run("run -p 'Say:' --parallel 1 --temp 0 -n 6 --stop ' ar' < one.txt"), 0);
        char *alone = read_out();
        CU_ASSERT_PTR_NOT_NULL(strstr(alone, reply));
        free(alone);
        cJSON_Delete(j);
        line = end + 1;
    }
    CU_ASSERT_STRING_EQUAL(line, "");
    free(out);
    expect_error("run --parallel 0", 2, "--parallel: expected a whole number in [1, 1024], found \"0\"");
    expect_error("run --parallel 2 --chat -p hi", 2, "-p has no place (use --system)");
    /* a backend of one sequence takes the lines one at a time: the same replies */
    CU_ASSERT_EQUAL(run("run -p 'Say:' --parallel 2 --temp 0 -n 6 --stop ' ar' --backend reference < prompts.txt"), 0);
    char *reference = read_out();
    CU_ASSERT_EQUAL(run("run -p 'Say:' --parallel 2 --temp 0 -n 6 --stop ' ar' < prompts.txt"), 0);
    char *jit = read_out();
    CU_ASSERT_STRING_EQUAL(reference, jit);
    free(reference), free(jit);
}

static void test_bench_json(void) {
    fresh_ckpt();
    CU_ASSERT_EQUAL_FATAL(run("bench '" GM_SOURCE_DIR "/models/demo' --prompt-tokens 8,16 --gen-tokens 4 --reps 2 "
                              "--threads 1 --json --svg chart.svg"), 0);
    char *out = read_out();
    cJSON *j = cJSON_Parse(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT(cJSON_GetObjectItem(j, "prefill_tok_s")->valuedouble > 0);
    CU_ASSERT(cJSON_GetObjectItem(j, "decode_tok_s")->valuedouble > 0);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(j, "threads")->valueint, 1);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "weights_dtype")->valuestring, "f32");
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(j, "backend")->valuestring, "jit");
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(j, "reps")->valueint, 2);
    CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItem(j, "median_coverage")->valuedouble, 0.5, 1e-9); /* the range of 2 */
    const cJSON *rows = cJSON_GetObjectItem(j, "ablation");
    /* reference, jit -O0, then one more pass each up to -O2, and -O2 again (A/A), at two prompt lengths */
    int n = cJSON_GetArraySize(rows);
    CU_ASSERT_FATAL(n >= 10 && n % 2 == 0);
    CU_ASSERT_STRING_EQUAL(test_json_str(rows, "[0].config"), "reference");
    CU_ASSERT_STRING_EQUAL(test_json_str(rows, "[2].config"), "jit -O0");
    CU_ASSERT_STRING_EQUAL(test_json_str(rows, "[4].config"), "jit +eliminate_dead"); /* cleanup passes first */
    CU_ASSERT_STRING_EQUAL(test_json_str(rows, "[4].passes"), "eliminate_dead");
    CU_ASSERT_STRING_EQUAL(test_json_str(rows, "[8].config"), "jit +fold_constants");
    CU_ASSERT_STRING_EQUAL(test_json_str(rows, "[8].passes"), "eliminate_dead,plan_memory,fold_constants");
    for (int i = 4; i + 4 < n; i += 2) { /* cumulative up to -O2: each row's passes extend the last row's */
        const char *p = cJSON_GetObjectItem(cJSON_GetArrayItem(rows, i), "passes")->valuestring;
        const char *next = cJSON_GetObjectItem(cJSON_GetArrayItem(rows, i + 2), "passes")->valuestring;
        CU_ASSERT(!strncmp(next, p, strlen(p)) && next[strlen(p)] == ',');
    }
    const cJSON *o2 = cJSON_GetArrayItem(rows, n - 3), *aa = cJSON_GetArrayItem(rows, n - 1);
    CU_ASSERT_STRING_EQUAL(test_json_str(o2, "config"), "jit -O2 (+pack_weights)");
    CU_ASSERT_STRING_EQUAL(test_json_str(aa, "config"), "jit -O2 (+pack_weights), again (A/A)");
    CU_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(aa, "aa")) && cJSON_IsFalse(cJSON_GetObjectItem(o2, "aa")));
    CU_ASSERT_STRING_EQUAL(test_json_str(aa, "passes"), test_json_str(o2, "passes"));
    CU_ASSERT_STRING_EQUAL(test_json_str(aa, "vs_previous.config"), "jit -O2 (+pack_weights)"); /* same prompt, 16 */
    CU_ASSERT_EQUAL(test_json_num(aa, "vs_previous.prompt_tokens"), 16);
    CU_ASSERT_STRING_EQUAL(test_json_str(o2, "vs_O0.config"), "jit -O0");
    CU_ASSERT_PTR_NULL(test_json_at(rows, "[2].vs_O0")); /* -O0 is not compared with itself */
    for (int i = 0; i < n; i++) { /* each median inside its interval, each effect inside its own */
        const cJSON *r = cJSON_GetArrayItem(rows, i);
        CU_ASSERT(test_json_num(r, "decode_tok_s_ci[0]") <= test_json_num(r, "decode_tok_s[1]"));
        CU_ASSERT(test_json_num(r, "decode_tok_s[1]") <= test_json_num(r, "decode_tok_s_ci[1]"));
        if (i < 2) continue;
        CU_ASSERT(test_json_num(r, "vs_previous.decode.ci[0]") <= test_json_num(r, "vs_previous.decode.effect"));
        CU_ASSERT(test_json_num(r, "vs_previous.decode.effect") <= test_json_num(r, "vs_previous.decode.ci[1]"));
    }
    cJSON_Delete(j);
    free(out);
    char path[4200];
    snprintf(path, sizeof path, "%s/chart.svg", dir);
    gm_err e;
    char *svg = gm_read_file(path, NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(svg);
    CU_ASSERT_EQUAL(strncmp(svg, "<svg ", 5), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(svg, "jit -O2 (+pack_weights), 16"));
    CU_ASSERT_PTR_NOT_NULL(strstr(svg, "(A/A), 16"));
    CU_ASSERT_PTR_NOT_NULL(strstr(svg, "<line ")); /* the intervals */
    CU_ASSERT_PTR_NOT_NULL(strstr(svg, "share of the bandwidth bound"));
    CU_ASSERT_PTR_NOT_NULL(strstr(svg, "</svg>"));
    free(svg);
    expect_error("bench ckpt --prompt-tokens 8,x", 2, "--prompt-tokens: expected");
    expect_error("bench ckpt --reps 65", 2, "--reps: at most 64");
    expect_error("bench '" GM_SOURCE_DIR "/models/demo' --configs nothing", 1, "no configuration of the ablation matches");
}

/* --reps auto stops when every effect is known to the precision asked, or at the budget, and says which. */
static void test_bench_auto(void) {
    const char *base = "bench '" GM_SOURCE_DIR "/models/demo' --prompt-tokens 8 --gen-tokens 2 --threads 1 "
                       "--configs=-O0,-O2 --json --reps auto ";
    char cmd[1024];
    fresh_ckpt();
    snprintf(cmd, sizeof cmd, "%s --precision 50 --budget 120", base);
    CU_ASSERT_EQUAL_FATAL(run(cmd), 0);
    char *out = read_out();
    cJSON *j = cJSON_Parse(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int reps = cJSON_GetObjectItem(j, "reps")->valueint;
    char expect[64];
    snprintf(expect, sizeof expect, "precise after %d repetitions", reps); /* judged from 5 repetitions on */
    CU_ASSERT(reps >= 5 && !strncmp(test_json_str(j, "auto_stop"), expect, strlen(expect)));
    cJSON_Delete(j);
    free(out);
    snprintf(cmd, sizeof cmd, "%s --precision 1 --budget 1", base);
    CU_ASSERT_EQUAL_FATAL(run(cmd), 0);
    out = read_out();
    j = cJSON_Parse(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    const char *why = test_json_str(j, "auto_stop");
    CU_ASSERT(!strncmp(why, "budget spent after 5", 20) || !strncmp(why, "precise after 5", 15));
    cJSON_Delete(j);
    free(out);
}

/* --profile: each row's time by op, the ops of its graph (fused at -O2, plain at -O0). */
static void test_bench_profile(void) {
    fresh_ckpt();
    CU_ASSERT_EQUAL_FATAL(run("bench '" GM_SOURCE_DIR "/models/demo' --prompt-tokens 8 --gen-tokens 4 --reps 1 "
                              "--threads 1 --configs=-O0,-O2 --profile"), 0);
    char *out = read_out();
    char *o0 = strstr(out, "profile: jit -O0, prompt 8"), *o2 = strstr(out, "profile: jit -O2 (+pack_weights), prompt 8");
    CU_ASSERT_PTR_NOT_NULL_FATAL(o0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o2);
    CU_ASSERT(o0 < o2);
    o2[-1] = 0; /* the -O0 profile ends where the -O2 one starts */
    CU_ASSERT_PTR_NOT_NULL(strstr(o0, "\ngelu_tanh "));
    CU_ASSERT_PTR_NOT_NULL(strstr(o0, "\nattention "));
    CU_ASSERT_PTR_NULL(strstr(o2, "\ngelu_tanh "));
    CU_ASSERT_PTR_NOT_NULL(strstr(o2, "\nnorm_matmul "));
    CU_ASSERT_PTR_NOT_NULL(strstr(o2, "\ntotal "));
    free(out);
}

static void test_compile_report(void) {
    fresh_ckpt();
    CU_ASSERT_EQUAL_FATAL(run("compile '" GM_SOURCE_DIR "/models/demo' --report"), 0);
    char *out = read_out();
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "passes: fold_constants,eliminate_common,fuse_elementwise,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, ",eliminate_dead,plan_memory"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "gelu_tanh + mul"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "B per cached position"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "total per token: reads 6.9 MB")); /* every weight once, and the activations */
    CU_ASSERT_PTR_NULL(strstr(out, "  gelu_tanh  ")); /* no gelu_tanh kernel left: fused away */
    free(out);
    CU_ASSERT_EQUAL_FATAL(run("compile '" GM_SOURCE_DIR "/models/demo' --report -O0"), 0); /* no passes */
    out = read_out();
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "passes: none"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "  gelu_tanh  "));
    free(out);
}

#define DEMO "'" GM_SOURCE_DIR "/models/demo'"
#define TICO "'" GM_SOURCE_DIR "/bench/text/tico19-en.txt'"

/* The JSON that a `perplexity ... --json` run printed. */
static cJSON *perplexity_json(const char *args) {
    CU_ASSERT_EQUAL_FATAL(run(args), 0);
    char *out = read_out();
    cJSON *j = cJSON_Parse(out);
    free(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    return j;
}

/* llama.cpp's protocol on the demo: 2 chunks of 32 score 15 positions each
 * (i in [16, 31)); a random model's perplexity is finite and above 1. */
static void test_perplexity(void) {
    fresh_ckpt();
    CU_ASSERT_EQUAL_FATAL(run("perplexity " DEMO " " TICO " --context 32 --chunks 2 --threads 1"), 0);
    char *out = read_out(), *line = strstr(out, "\nperplexity: ");
    double ppl = 0, se = -1;
    int tokens = 0, chunks = 0, context = 0;
    CU_ASSERT_EQUAL(strncmp(out, "[1]", 3), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, ",[2]"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(line);
    CU_ASSERT_EQUAL(sscanf(line, "\nperplexity: %lf ± %lf over %d tokens (%d chunks of %d)", &ppl, &se, &tokens, &chunks,
                           &context), 5);
    CU_ASSERT(isfinite(ppl) && ppl > 1 && se > 0);
    CU_ASSERT(tokens == 30 && chunks == 2 && context == 32);
    free(out);
}

/* The same model as its own base: no divergence at all, the same argmax everywhere. */
static void test_perplexity_base(void) {
    fresh_ckpt();
    cJSON *j = perplexity_json("perplexity " DEMO " " TICO " --context 32 --chunks 2 --threads 1 --base " DEMO " --json");
    CU_ASSERT(fabs(test_json_num(j, "kl_mean")) < 1e-9);
    CU_ASSERT(fabs(test_json_num(j, "kl_max")) < 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(test_json_num(j, "top1_percent"), 100, 0);
    CU_ASSERT_DOUBLE_EQUAL(test_json_num(j, "ppl"), test_json_num(j, "base_ppl"), 0);
    CU_ASSERT_EQUAL(test_json_num(j, "tokens"), 30);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(j, "chunk_ppl")), 2);
    cJSON_Delete(j);
    /* the JIT against the reference interpreter: the same distributions to f32 rounding */
    j = perplexity_json("perplexity " DEMO " " TICO " --context 32 --chunks 2 --threads 1 --base " DEMO
                        " --base-backend reference --json");
    CU_ASSERT(test_json_num(j, "kl_mean") < 1e-6 && test_json_num(j, "kl_max") < 1e-6);
    CU_ASSERT_STRING_EQUAL(test_json_str(j, "base_backend"), "reference");
    cJSON_Delete(j);
}

static void test_perplexity_errors(void) {
    fresh_ckpt();
    char args[8192];
    write_text("short.txt", "Hello world, this is short.");
    expect_error("perplexity " DEMO " short.txt", 1,
                 "short.txt: the text is 10 tokens (with BOS) but one chunk of --context 512 needs 512");
    expect_error("perplexity " DEMO " missing.txt", 1, "missing.txt");
    expect_error("perplexity " DEMO " " TICO " --context 8", 2, "--context: expected a whole number in [16, 16777216], found \"8\"");
    expect_error("perplexity " DEMO " " TICO " --context 4096", 1, "--context 4096 exceeds");
    snprintf(args, sizeof args, "perplexity " DEMO " " TICO " --context 16 --base '%s'", test_path("golden/tiny-gemma2"));
    expect_error(args, 1, "the base has a vocabulary of 768 ids but");
}

static int same_files(const char *a, const char *b) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cd '%s' && cmp -s '%s' '%s'", dir, a, b);
    return system(cmd) == 0;
}

/* finetune on the demo: 4 steps straight, and 2 then 2 more with --resume,
 * give the same bytes (state and checkpoint); the checkpoint runs; LoRA and
 * --full both train (the loss of step 4 is below step 1's on repeated data);
 * the reference backend's first step has the jit's loss; --profile prints
 * the time by op. */
static void test_finetune(void) {
    fresh_ckpt();
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "head -6 '%s' > '%s/p.tsv'", test_path("../data/en-fr/pairs.tsv"), dir);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
#define FT "finetune " DEMO " --data p.tsv --batch 3 --lr 0.01 --template 'English: {in}\\nFrench: {out}' "
    CU_ASSERT_EQUAL_FATAL(run(FT "-o a --steps 4"), 0);
    float first = 0, last = 0;
    char *step1 = strstr(err_text, "step 1/4  loss "), *step4 = strstr(err_text, "step 4/4  loss ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(step1 && step4);
    CU_ASSERT(sscanf(step1, "step 1/4  loss %f", &first) == 1 && sscanf(step4, "step 4/4  loss %f", &last) == 1);
    CU_ASSERT(last < first);
    CU_ASSERT_EQUAL_FATAL(run(FT "-o b --steps 2 --eval-data p.tsv"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "step 2/2  held-out loss "));
    CU_ASSERT_EQUAL_FATAL(run(FT "-o b --steps 4 --resume"), 0);
    CU_ASSERT_PTR_NULL(strstr(err_text, "step 2/4"));
    CU_ASSERT(same_files("a/model.safetensors", "b/model.safetensors"));
    CU_ASSERT(same_files("a.state", "b.state"));
    CU_ASSERT(same_files("a/config.json", DEMO "/config.json"));
    CU_ASSERT_EQUAL(run("run a -p 'English: Hello\\nFrench:' -n 4 --temp 0"), 0);
    CU_ASSERT_EQUAL_FATAL(run(FT "-o d --steps 1 --backend reference"), 0); /* the oracle's first step: the same loss */
    float oracle = 0;
    char *ref1 = strstr(err_text, "step 1/1  loss ");
    CU_ASSERT(ref1 && sscanf(ref1, "step 1/1  loss %f", &oracle) == 1 && fabsf(oracle - first) < 1e-4f * first);
    CU_ASSERT_EQUAL_FATAL(run(FT "-o d --steps 1 --profile"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err_text, "profile: ") && strstr(err_text, "matmul_dx"));
    CU_ASSERT_EQUAL_FATAL(run(FT "-o c --steps 2 --full --loss-svg c.svg"), 0);
    CU_ASSERT(!same_files("c/model.safetensors", DEMO "/model.safetensors"));
    char path[4200];
    snprintf(path, sizeof path, "%s/c.svg", dir);
    char *svg = gm_read_file(path, NULL, &(gm_err){0});
    CU_ASSERT_PTR_NOT_NULL(svg && strstr(svg, "<polyline"));
    free(svg);
#undef FT
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: test_cli PATH-TO-GEMMAC\n"), 2;
    static char exe[4096];
    if (!realpath(argv[1], exe)) return fprintf(stderr, "test_cli: %s not found\n", argv[1]), 2;
    gemmac = exe;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("cli", NULL, NULL);
    CU_add_test(s, "logits probe matches the oracle", test_logits_probe);
    CU_add_test(s, "--weights-dtype quantizes at load", test_weights_dtype);
    CU_add_test(s, "usage errors", test_usage_errors);
    CU_add_test(s, "prompt errors", test_prompt_errors);
    CU_add_test(s, "config errors", test_config_errors);
    CU_add_test(s, "checkpoint errors", test_checkpoint_errors);
    CU_add_test(s, "shape errors", test_shape_errors);
    CU_add_test(s, "run errors", test_run_errors);
    CU_add_test(s, "run the demo", test_run_demo);
    CU_add_test(s, "run --parallel", test_run_parallel);
    CU_add_test(s, "bench --json", test_bench_json);
    CU_add_test(s, "bench --profile", test_bench_profile);
    CU_add_test(s, "bench --reps auto", test_bench_auto);
    CU_add_test(s, "compile --report", test_compile_report);
    CU_add_test(s, "perplexity", test_perplexity);
    CU_add_test(s, "perplexity --base", test_perplexity_base);
    CU_add_test(s, "perplexity errors", test_perplexity_errors);
    CU_add_test(s, "finetune: resumes bit for bit, its checkpoint runs", test_finetune);
    return test_run_all();
}
