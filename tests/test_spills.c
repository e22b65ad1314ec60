/* test_spills.c — the matmul and attention kernels' hot loops keep everything
 * in registers on every CPU target: each model's kernels are emitted as
 * (verbose) assembly for x86_64-v3 (16 vector registers), x86_64-v4 (32) and
 * aarch64 (generic and Neoverse V1, 32), and no innermost loop of a matmul,
 * norm_matmul, matmul_add or attention kernel (LLVM marks each "Inner Loop
 * Header") that multiplies (holds an FMA) has a "Spill" or "Reload" before
 * the branch back to its header: the tiles are sized from the target's
 * registers (backends/llvm/matmul.c, kernels.c). (The loops that pack rows
 * of x for the tiles, or gather a block of keys, may reload a pointer.)
 *
 * The models: the oracle's, and random checkpoints (synth_checkpoint) with
 * the attention shapes of Gemma 1 2B, Gemma 2 9B and 27B and Gemma 3 270M
 * (heads, kv heads, head dim) on a small residual stream. The oracle's head
 * dims (16-80) are so short that LLVM unrolls the loop over them into the
 * loop over keys, whose whole body then counts: their attention is printed,
 * not asserted. The GPU's kernels are checked by ptxas in test_nvptx. */
#include "testing.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *gemmac, *synth;
static char dir[4096];

static const char *const targets[] = {"x86_64-v3", "x86_64-v4", "aarch64", "aarch64 --cpu neoverse-v1"};
static const char *const models[] = {"golden/tiny-gemma2", "golden/medium-gemma1-bf16", "golden/tiny-gemma3"};

/* Published models' attention: name, heads, kv heads, head dim. */
static const struct { const char *name; int heads, kv_heads, head_dim; } shapes[] = {
    {"gemma-2b", 8, 1, 256}, {"gemma-2-9b", 16, 8, 256}, {"gemma-2-27b", 32, 16, 128}, {"gemma-3-270m", 4, 1, 256}};

/* The label that opens the loop whose header comment is at lines[i]: the nearest label line before it. */
static const char *loop_label(char **lines, int i, char *buf, size_t len) {
    while (i > 0 && !(lines[i][0] == '.' && strchr(lines[i], ':'))) i--;
    snprintf(buf, len, "%.*s", (int)(strchr(lines[i], ':') - lines[i]), lines[i]);
    return buf;
}

/* Spills and reloads in the innermost loop headed at lines[i], up to the branch back to its label;
 * *fmas: its fused multiply-adds (vfmadd on x86, fmla on Arm), which make it a hot loop. */
static int loop_spills(char **lines, int n, int i, int *fmas) {
    char label[128], pattern[200];
    regex_t branch;
    snprintf(pattern, sizeof pattern, "^\t(j[a-z]+|b|b\\.[a-z]+|cbn?z|tbn?z)\t.*%s$", loop_label(lines, i, label, sizeof label));
    regcomp(&branch, pattern, REG_EXTENDED | REG_NOSUB);
    int spills = 0;
    *fmas = 0;
    for (int k = i + 1; k < n && regexec(&branch, lines[k], 0, NULL, 0); k++) {
        spills += strstr(lines[k], "Spill") || strstr(lines[k], "Reload");
        *fmas += strstr(lines[k], "\tvfmadd") || strstr(lines[k], "\tfmla");
    }
    regfree(&branch);
    return spills;
}

/* The lines of dir/name (the text modified in place). */
static char **lines_of(char *text, int *n) {
    int cap = 1024;
    char **lines = malloc(cap * sizeof *lines);
    *n = 0;
    for (char *p = strtok(text, "\n"); p; p = strtok(NULL, "\n")) {
        if (*n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[(*n)++] = p;
    }
    return lines;
}

/* The kernels of the checkpoint at path for target; attention's spills fail the test when `attention`. */
static void check(const char *target, const char *path, const char *name, int attention) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target %s --emit asm -o k.s", gemmac, path, target);
    CU_ASSERT_EQUAL_FATAL(test_sh(dir, cmd), 0);
    char *text = test_slurp(dir, "k.s");
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    int n, loops = 0, matmul_spills = 0, attention_spills = 0;
    char **lines = lines_of(text, &n);
    const char *fn = "";
    for (int i = 0; i < n; i++) {
        if (!strncmp(lines[i], "gm_", 3) && strchr(lines[i], ':')) fn = lines[i];
        if (!strstr(lines[i], "Inner Loop Header")) continue;
        int fmas, matmul = !strncmp(fn, "gm_matmul", 9) || !strncmp(fn, "gm_norm_matmul", 14);
        if (!matmul && strncmp(fn, "gm_attention", 12)) continue;
        int s = loop_spills(lines, n, i, &fmas);
        if (!fmas) continue; /* the hot loops: the ones that multiply */
        loops += matmul;
        if (matmul) matmul_spills += s;
        else attention_spills += s;
        if (s && (matmul || attention)) printf("\n  %s %s: %.40s inner loop at line %d: %d spills/reloads", target, name, fn, i + 1, s);
    }
    printf("[%s %s: %d matmul inner loops with FMAs, %d spills%s; attention: %d spills/reloads%s] ", target, name,
           loops, matmul_spills, matmul_spills ? " FAILED" : "", attention_spills,
           attention && attention_spills ? " FAILED" : "");
    CU_ASSERT(loops > 0);
    CU_ASSERT_EQUAL(matmul_spills, 0);
    if (attention) CU_ASSERT_EQUAL(attention_spills, 0);
    free(lines);
    free(text);
}

static void test_matmul_loops(void) {
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++)
        for (size_t m = 0; m < sizeof models / sizeof *models; m++) check(targets[t], test_path(models[m]), models[m] + 7, 0);
}

/* A random checkpoint with shape s's attention, 2 layers of a 64-wide stream over 512 tokens. */
static const char *shape_checkpoint(int s) {
    static char path[4200];
    char config[1024], cmd[8192];
    snprintf(config, sizeof config,
             "{\"architectures\": [\"Gemma2ForCausalLM\"], \"model_type\": \"gemma2\", \"hidden_size\": 64, "
             "\"intermediate_size\": 128, \"num_hidden_layers\": 2, \"vocab_size\": 512, \"num_attention_heads\": %d, "
             "\"num_key_value_heads\": %d, \"head_dim\": %d, \"query_pre_attn_scalar\": %d, \"rms_norm_eps\": 1e-06, "
             "\"rope_theta\": 10000.0, \"sliding_window\": 4096, \"max_position_embeddings\": 8192, "
             "\"attn_logit_softcapping\": 50.0, \"final_logit_softcapping\": 30.0, \"hidden_activation\": \"gelu_pytorch_tanh\"}",
             shapes[s].heads, shapes[s].kv_heads, shapes[s].head_dim, shapes[s].head_dim);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && printf '%%s' '%s' > %s/config.json && '%s' %s/config.json -o %s > /dev/null",
             shapes[s].name, config, shapes[s].name, synth, shapes[s].name, shapes[s].name);
    CU_ASSERT_EQUAL(test_sh(dir, cmd), 0);
    snprintf(path, sizeof path, "%s/%s", dir, shapes[s].name);
    return path;
}

static void test_attention_loops(void) {
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const char *path = shape_checkpoint((int)s);
        for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) check(targets[t], path, shapes[s].name, 1);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: test_spills GEMMAC SYNTH_CHECKPOINT\n"), 2;
    gemmac = argv[1];
    synth = argv[2];
    snprintf(dir, sizeof dir, "%s", test_tmpdir("spills"));
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("spills", NULL, NULL);
    CU_add_test(s, "matmul inner loops on every CPU target", test_matmul_loops);
    CU_add_test(s, "attention inner loops of published shapes on every CPU target", test_attention_loops);
    return test_run_all();
}
