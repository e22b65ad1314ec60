/* oracle_exe.c — an executable's logits probe against an oracle case (see oracle_exe.h). */
#include "oracle_exe.h"

#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const oracle_cases[ORACLE_CASES] = {
    "tiny-gemma1-mqa", "tiny-gemma1-mha", "tiny-gemma2", "tiny-gemma2-bf16",
    "tiny-gemma3",     "tiny-gemma3-1b",  "medium-gemma1-bf16",
};

float *oracle_read_f32(const char *dir, const char *name, size_t *n) {
    FILE *f;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!(f = fopen(path, "rb"))) return *n = 0, NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    float *v = malloc(len > 0 ? len : 1);
    *n = fread(v, 1, len > 0 ? len : 0, f) / sizeof *v;
    fclose(f);
    return v;
}

double oracle_max_diff(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= w)) w = d; /* NaN counts as the worst */
    }
    return w;
}

/* "a,b,c" of a JSON array of ids into buf. */
static void ids_text(const cJSON *arr, char *buf, size_t len) {
    const cJSON *x;
    int n = 0;
    buf[0] = 0;
    cJSON_ArrayForEach(x, arr) snprintf(buf + strlen(buf), len - strlen(buf), "%s%d", n++ ? "," : "", x->valueint);
}

/* One prompt: prefill rows (n of them) and the 16 greedy steps against want_prefill, want_steps. */
static double check_prompt(const char *dir, const char *cmd_head, const cJSON *pr, const float *want_prefill,
                           const float *want_steps, long V) {
    char ids[8192], cont[8200], cmd[24576];
    ids_text(cJSON_GetObjectItem(pr, "prompt"), ids, sizeof ids);
    ids_text(cJSON_GetObjectItem(pr, "continuation"), cont, sizeof cont - 1);
    strcat(cont, "\n");
    snprintf(cmd, sizeof cmd, cmd_head, ids);
    int rc = test_sh(dir, cmd);
    char *out = test_slurp(dir, rc ? "err.txt" : "out.txt");
    if (rc) printf("\n  %s: %s", cmd, out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    if (strcmp(out, cont)) printf("\n  tokens %s: greedy %s expected %s", ids, out, cont);
    CU_ASSERT_STRING_EQUAL(out, cont);
    free(out);
    size_t np, ns, n = cJSON_GetArraySize(cJSON_GetObjectItem(pr, "prompt"));
    float *gp = oracle_read_f32(dir, "prefill.f32", &np), *gs = oracle_read_f32(dir, "steps.f32", &ns);
    CU_ASSERT_FATAL(gp && gs && np == n * V && ns == (size_t)16 * V);
    double w = fmax(oracle_max_diff(gp, want_prefill, np), oracle_max_diff(gs, want_steps, ns));
    if (!(w <= 1e-3)) printf("\n  tokens %s: max |dlogit| %.3g", ids, w);
    CU_ASSERT(w <= 1e-3);
    free(gp);
    free(gs);
    return w;
}

double oracle_check_exe(const char *dir, const char *runner, const char *exe, const char *extra, const char *name,
                        const char *label) {
    char gold[4096], cmd_head[16384];
    snprintf(gold, sizeof gold, "golden/%s", name);
    snprintf(gold, sizeof gold, "%s", test_path(gold));
    char *text = test_slurp(gold, "expected.json");
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    size_t np, ns;
    float *prefill = oracle_read_f32(gold, "expected_prefill_logits.f32", &np), *steps = oracle_read_f32(gold, "expected_logits.f32", &ns);
    long V = (long)test_json_num(j, "vocab_size");
    /* %%s: the prompt's ids, filled in per prompt */
    snprintf(cmd_head, sizeof cmd_head, "%s'%s' logits --tokens %%s --steps 16 --out steps.f32 --prefill-out prefill.f32%s",
             runner, exe, extra);
    const cJSON *pr;
    size_t at = 0;
    int p = 0;
    double worst = 0;
    cJSON_ArrayForEach(pr, cJSON_GetObjectItem(j, "prompts")) {
        CU_ASSERT_FATAL((at + cJSON_GetArraySize(cJSON_GetObjectItem(pr, "prompt"))) * V <= np && (size_t)(p + 1) * 16 * V <= ns);
        worst = fmax(worst, check_prompt(dir, cmd_head, pr, prefill + at * V, steps + (size_t)p * 16 * V, V));
        at += cJSON_GetArraySize(cJSON_GetObjectItem(pr, "prompt"));
        p++;
    }
    printf("[%s %s: %d prompts, max |dlogit| %.2e] ", name, label, p, worst);
    cJSON_Delete(j);
    free(text);
    free(prefill);
    free(steps);
    return worst;
}

/* Prefill logits of a fixed prompt by `cmd logits` (gemmac or an
 * executable) into name; 0 on success. */
static int quant_logits(const char *dir, const char *cmd, const char *model, const char *flags, const char *name) {
    char line[16384];
    snprintf(line, sizeof line, "%s logits %s --tokens 2,710,584,60,594,661,284,586 --steps 1 --prefill-out %s%s", cmd,
             model, name, flags);
    return test_sh(dir, line);
}

double oracle_logits_diff(const char *dir, const char *a, const char *b) {
    size_t na, nb;
    float *x = oracle_read_f32(dir, a, &na), *y = oracle_read_f32(dir, b, &nb);
    double d = x && y && na == nb && na ? oracle_max_diff(x, y, na) : 1e9;
    free(x), free(y);
    return d;
}

void oracle_check_reduced(const char *dir, const char *gemmac, const char *runner, const char *const *targets, int n) {
    static const char *types[] = {"q8_0", "q4_0", "bf16"};
    char gg[64], line[8400], cmd[4200], exe[8400];
    snprintf(cmd, sizeof cmd, "'%s'", gemmac);
    snprintf(exe, sizeof exe, "%s./q", runner);
    for (int q = 0; q < 3; q++) {
        const char *acts[] = {"f32", q == 2 ? "bf16" : "int8"};
        snprintf(gg, sizeof gg, "tg2-%s.gguf", types[q]);
        snprintf(line, sizeof line, "%s quantize '%s' --to %s -o %s 2>/dev/null", cmd, test_path("golden/tiny-gemma2"),
                 types[q], gg);
        CU_ASSERT_EQUAL_FATAL(test_sh(dir, line), 0);
        double effect = 0;
        for (int a = 0; a < 2; a++) {
            snprintf(line, sizeof line, " --activations %s --backend reference", acts[a]);
            CU_ASSERT_EQUAL_FATAL(quant_logits(dir, cmd, gg, line, a ? "ref.f32" : "ref32.f32"), 0);
            if (a) effect = oracle_logits_diff(dir, "ref32.f32", "ref.f32");
            if (!a) CU_ASSERT_EQUAL_FATAL(test_sh(dir, "cp ref32.f32 ref.f32"), 0);
            for (int t = 0; t < n; t++) {
                snprintf(line, sizeof line, "%s compile %s -o q --target %s --activations %s", cmd, gg, targets[t], acts[a]);
                CU_ASSERT_EQUAL_FATAL(test_sh(dir, line), 0);
                CU_ASSERT_EQUAL_FATAL(quant_logits(dir, exe, "", "", "exe.f32"), 0);
                double d = oracle_logits_diff(dir, "ref.f32", "exe.f32");
                printf("[%s %s %s: %.2g", types[q], targets[t], acts[a], d);
                printf(a ? ", effect %.2g] " : "] ", effect);
                CU_ASSERT(d <= (a ? 2 * effect : 1e-3));
            }
        }
    }
}
