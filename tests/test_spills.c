/* test_spills.c — the matmul kernels' hot loops keep everything in registers
 * on every CPU target: each oracle model's kernels are emitted as (verbose)
 * assembly for x86_64-v3 (16 vector registers), x86_64-v4 (32) and aarch64
 * (generic and Neoverse V1, 32), and no innermost loop of a matmul,
 * norm_matmul or matmul_add kernel (LLVM marks each "Inner Loop Header")
 * that multiplies (holds an FMA) has a "Spill" or "Reload" before the branch
 * back to its header: the register tiles are sized from the target's
 * registers (backends/llvm/matmul.c). (The loops that pack rows of x for
 * the tiles may reload a pointer.) The attention kernels' loops are counted and printed, not
 * asserted: their key blocks (4 heads × 8 keys of scores) do spill on these
 * targets. The GPU's kernels are checked by ptxas in test_nvptx. */
#include "testing.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *gemmac;
static char dir[4096];

static const char *const targets[] = {"x86_64-v3", "x86_64-v4", "aarch64", "aarch64 --cpu neoverse-v1"};
static const char *const models[] = {"golden/tiny-gemma2", "golden/medium-gemma1-bf16", "golden/tiny-gemma3"};

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

static void check(const char *target, const char *model) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' compile '%s' --target %s --emit asm -o k.s", gemmac, test_path(model), target);
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
        matmul = matmul && fmas; /* its hot loops: the ones that multiply */
        loops += matmul;
        if (matmul) matmul_spills += s;
        else attention_spills += s;
        if (matmul && s) printf("\n  %s %s: %.40s inner loop at line %d: %d spills/reloads", target, model, fn, i + 1, s);
    }
    printf("[%s %s: %d matmul inner loops with FMAs, %d spills%s; attention: %d spills/reloads] ", target, model + 7,
           loops, matmul_spills, matmul_spills ? " FAILED" : "", attention_spills);
    CU_ASSERT(loops > 0);
    CU_ASSERT_EQUAL(matmul_spills, 0);
    free(lines);
    free(text);
}

static void test_matmul_loops(void) {
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++)
        for (size_t m = 0; m < sizeof models / sizeof *models; m++) check(targets[t], models[m]);
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: test_spills GEMMAC\n"), 2;
    gemmac = argv[1];
    snprintf(dir, sizeof dir, "%s", test_tmpdir("spills"));
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("spills", NULL, NULL);
    CU_add_test(s, "matmul inner loops on every CPU target", test_matmul_loops);
    return test_run_all();
}
