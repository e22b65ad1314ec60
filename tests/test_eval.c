/* test_eval.c — `gemmac eval` (compiler/eval.c, cmd_eval.c): the answer
 * rules on a table of awkward replies, the GSM8K task file's prompt (the
 * Gemma colab's text, and a seam between the shared prefix and each
 * question that Gemma 3's real tokenizer never merges across, all 1319
 * questions), task files with mistakes, and runs on the demo model: --limit
 * 5 writes a header and five well-formed lines; a run cut off mid-line
 * resumes without repeating a question; another run's file is refused; and
 * the replies of 20 questions on 8 sequences are those of `gemmac run
 * --temp 0` on each whole prompt. */
#include "testing.h"

#include "compiler/chrf.h"
#include "compiler/eval.h"
#include "runtime/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *gemmac, *dir;

/* chrF against sacreBLEU 2.6.0's on the pairs of tests/golden/chrf (make_expected.py):
 * each sentence's score and the corpus score of all, to 1e-9 (the same
 * integer statistics, then the same few double operations). */
static void test_chrf(void) {
    char *pairs = gm_read_file(test_path("golden/chrf/pairs.tsv"), NULL, &(gm_err){0});
    char *json = gm_read_file(test_path("golden/chrf/expected.json"), NULL, &(gm_err){0});
    CU_ASSERT_PTR_NOT_NULL_FATAL(pairs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    cJSON *want = cJSON_Parse(json);
    int64_t corpus[CHRF_STATS] = {0};
    int i = 0;
    for (char *line = pairs, *next; line && *line; line = next, i++) {
        char *nl = strchr(line, '\n'), *tab = strchr(line, '\t');
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(tab);
        *tab = 0;
        int64_t one[CHRF_STATS] = {0};
        chrf_add(line, tab + 1, one);
        chrf_add(line, tab + 1, corpus);
        double expected = cJSON_GetArrayItem(cJSON_GetObjectItem(want, "sentence"), i)->valuedouble;
        if (fabs(chrf_score(one) - expected) > 1e-9) printf("\n  pair %d: chrF %.12g, sacreBLEU %.12g\n", i, chrf_score(one), expected);
        CU_ASSERT(fabs(chrf_score(one) - expected) <= 1e-9);
    }
    CU_ASSERT_EQUAL(i, cJSON_GetArraySize(cJSON_GetObjectItem(want, "sentence")));
    CU_ASSERT(fabs(chrf_score(corpus) - test_json_num(want, "corpus")) <= 1e-9);
    cJSON_Delete(want);
    free(pairs);
    free(json);
}

/* eval/en-fr.json: a TSV task scored by chrF; the tutorial's prompt. */
static void test_en_fr_task(void) {
    eval_task t;
    eval_item *items = NULL;
    int n = 0;
    gm_err e;
    CU_ASSERT_EQUAL_FATAL(eval_task_load(test_path("../eval/en-fr.json"), "test", -1, &t, &e), 0);
    CU_ASSERT(t.tsv && t.chrf && !strcmp(t.prefix, ""));
    CU_ASSERT_EQUAL_FATAL(eval_items_load(&t, NULL, &items, &n, &e), 0);
    CU_ASSERT_EQUAL(n, 2100);
    CU_ASSERT_STRING_EQUAL(items[2].input, "and along with a fever");
    CU_ASSERT_STRING_EQUAL(items[2].target, "et surtout si vous avez de la fièvre");
    char *prompt = eval_prompt(&t, items[2].input), *line = eval_extract(" et avec de la fièvre \nEnglish:", t.extract);
    CU_ASSERT_STRING_EQUAL(prompt, "English: and along with a fever\nFrench:");
    CU_ASSERT_STRING_EQUAL(line, "et avec de la fièvre");
    free(prompt), free(line);
    eval_items_free(items, n);
    eval_task_free(&t);
}

static void test_extract(void) {
    const struct { const char *text, *rule, *want; } cases[] = {
        {"So 3 + 4 = 7. The answer is 7.", "answer_is", "7"},
        {"The answer is $1,234.", "answer_is", "1234"},
        {"It drops by 5. The answer is -5", "answer_is", "-5"},
        {"The answer is 3.50 dollars", "answer_is", "3.50"},
        {"The answer is .5", "answer_is", ".5"},
        {"The answer is 5. Then we add 7 more.", "answer_is", "5"},
        {"The answer is 2. No wait. The answer is 4.", "answer_is", "4"},  /* after the last delimiter */
        {"12 apples, so The answer is unclear", "answer_is", "12"},       /* none after it: the last number */
        {"I have no idea.", "answer_is", ""},
        {"- 5 apples, - and 6,", "answer_is", "6"},
        {"1,2,3 go", "last_number", "123"},
        {"He paid $8.", "last_number", "8"},
        {"Janet sells 9 eggs.\nShe makes $18.\n#### 18", "after:####", "18"},
        {"#### 1,000", "after:####", "1000"},
        {"no mark, 42 then 7", "after:####", "7"},
        {"", "answer_is", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = eval_extract(cases[i].text, cases[i].rule);
        if (strcmp(got, cases[i].want)) printf("\n  \"%s\" (%s): \"%s\", expected \"%s\"", cases[i].text, cases[i].rule, got, cases[i].want);
        CU_ASSERT_STRING_EQUAL(got, cases[i].want);
        free(got);
    }
    CU_ASSERT(eval_same_answer("3.50", "3.5"));
    CU_ASSERT(eval_same_answer("18", "18.0"));
    CU_ASSERT(!eval_same_answer("", ""));
    CU_ASSERT(!eval_same_answer("18", "-18"));
}

/* eval/gsm8k.json: the colab's prompt, and a seam the tokenizer keeps. */
static void test_gsm8k_task(void) {
    gm_err e;
    eval_task t;
    CU_ASSERT_EQUAL_FATAL(eval_task_load(test_path("../eval/gsm8k.json"), "test", -1, &t, &e), 0);
    CU_ASSERT_EQUAL(t.shots, 8);
    const char *start = "As an expert problem solver solve step by step the following mathematical questions.\n\n"
                        "Q: There are 15 trees in the grove.";
    CU_ASSERT(!strncmp(t.prefix, start, strlen(start)));
    CU_ASSERT(gm_ends_with(t.prefix, "so now she has $23 - $15 = $8. The answer is 8.\n\n"));
    char *p = eval_prompt(&t, "How many?");
    CU_ASSERT_STRING_EQUAL(p, "Q: How many?\nA:");
    free(p);
    CU_ASSERT(t.n_stops == 2 && !strcmp(t.stops[0], "\nQ:") && !strcmp(t.stops[1], "\n\n"));
    eval_item *items;
    int n;
    CU_ASSERT_EQUAL_FATAL(eval_items_load(&t, NULL, &items, &n, &e), 0);
    CU_ASSERT_EQUAL(n, 1319);
    rt_tokenizer *tok = rt_tok_load(test_path("tokenizers/gemma3-tokenizer.model"), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    int32_t *pre, *q, *whole;
    int np, nq, nw, merged = 0, right = 0;
    CU_ASSERT_EQUAL_FATAL(rt_tok_encode(tok, t.prefix, strlen(t.prefix), &pre, &np, &e), 0);
    for (int i = 0; i < n; i++) {
        char *prompt = eval_prompt(&t, items[i].input), *all = gm_malloc(strlen(t.prefix) + strlen(prompt) + 1);
        strcat(strcpy(all, t.prefix), prompt);
        rt_tok_encode(tok, prompt, strlen(prompt), &q, &nq, &e);
        rt_tok_encode(tok, all, strlen(all), &whole, &nw, &e);
        merged += nw != np + nq || memcmp(whole, pre, np * sizeof *pre) || memcmp(whole + np, q, nq * sizeof *q);
        char *want = eval_extract(items[i].target, t.target_extract);
        char *mark = strstr(items[i].target, "#### "), *plain = gm_strdup(mark ? mark + 5 : "");
        for (char *r = plain, *w = plain;; r++) /* drop commas */
            if (*r != ',' && !(*w++ = *r)) break;
        right += *want && !strcmp(want, plain);
        free(plain);
        free(want), free(q), free(whole), free(all), free(prompt);
    }
    printf("[%d tokens of prefix; %d of 1319 prompts merge across the seam; %d references read] ", np, merged, right);
    CU_ASSERT_EQUAL(merged, 0);
    CU_ASSERT_EQUAL(right, 1319);
    free(pre);
    rt_tok_free(tok);
    eval_items_free(items, n);
    eval_task_free(&t);
}

/* A task file holding text, and eval_task_load's error on it. */
static void expect_task_error(const char *text, int shots, const char *part) {
    char path[4200];
    snprintf(path, sizeof path, "%s/task.json", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    gm_err e;
    eval_task t;
    CU_ASSERT_EQUAL(eval_task_load(path, "test", shots, &t, &e), -1);
    if (!strstr(e.msg, part)) printf("\n  %s (expected \"%s\")", e.msg, part);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, part));
}

static void test_task_errors(void) {
    const char *ok = "\"splits\": {\"test\": \"q.jsonl\"}, \"input\": \"q\", \"target\": \"a\", \"template\": \"Q: {input}\"";
    char text[1024];
    expect_task_error("{\"input\": ", -1, "malformed JSON");
    expect_task_error("{\"input\": \"q\"}", -1, "no split \"test\"");
    snprintf(text, sizeof text, "{%s, \"shots\": [{\"input\": \"a\", \"output\": \"b\"}]}", ok);
    expect_task_error(text, -1, "shot_template: expected a string");
    snprintf(text, sizeof text, "{%s, \"shots\": 3}", ok);
    expect_task_error(text, -1, "shots: expected a list of exemplars");
    snprintf(text, sizeof text, "{%s, \"shot_template\": \"{input}\", \"shots\": [], \"extract\": \"first\"}", ok);
    expect_task_error(text, -1, "extract: expected \"answer_is\", \"last_number\", \"after:MARK\" or \"line\", found \"first\"");
    snprintf(text, sizeof text, "{%s, \"shot_template\": \"{input}\", \"shots\": [{\"input\": \"a\", \"output\": \"b\"}]}", ok);
    expect_task_error(text, 2, "--shots 2, but the task has 1 exemplars");
    snprintf(text, sizeof text, "{%s, \"shot_template\": \"{input}\", \"shots\": [{\"input\": 1}]}", ok);
    expect_task_error(text, -1, "shots[0]: expected {\"input\": TEXT, \"output\": TEXT}");
    snprintf(text, sizeof text, "{%s, \"shot_template\": \"{input}\", \"shots\": [], \"stops\": [\"\"]}", ok);
    expect_task_error(text, -1, "stops: expected at most 8 non-empty strings");
}

static int lines_of(const char *name) {
    char *text = test_slurp(dir, name);
    int n = 0;
    for (char *p = text; p && *p; p++) n += *p == '\n';
    free(text);
    return n;
}

/* --limit 5, then a resume after a cut-off line, then another run's file. */
static void test_run_and_resume(void) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' eval gsm8k '%s' --limit 5 --max-new 8 --out r.jsonl", gemmac, test_path("../models/demo"));
    CU_ASSERT_EQUAL_FATAL(test_sh(dir, cmd), 0);
    char *err = test_slurp(dir, "err.txt");
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "gemmac: gsm8k: ") && strstr(err, "/5 correct") && strstr(err, "95% CI"));
    free(err);
    CU_ASSERT_EQUAL(lines_of("r.jsonl"), 6);
    char *text = test_slurp(dir, "r.jsonl"), *line = strchr(text, '\n') + 1;
    int seen[8] = {0};
    for (char *end; (end = strchr(line, '\n')); line = end + 1) {
        *end = 0;
        cJSON *j = cJSON_Parse(line);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        const char *fields[] = {"question", "reply", "answer", "expected"};
        for (int f = 0; f < 4; f++) CU_ASSERT(cJSON_IsString(cJSON_GetObjectItem(j, fields[f])));
        CU_ASSERT(cJSON_IsBool(cJSON_GetObjectItem(j, "correct")));
        int i = cJSON_GetObjectItem(j, "index")->valueint;
        CU_ASSERT(i >= 0 && i < 5 && !seen[i]++);
        cJSON_Delete(j);
    }
    free(text);
    /* killed while writing a line: the cut-off line goes, the run goes on to --limit 7 */
    CU_ASSERT_EQUAL(test_sh(dir, "printf '{\"index\":5,\"quest' >> r.jsonl"), 0);
    snprintf(cmd, sizeof cmd, "'%s' eval gsm8k '%s' --limit 7 --max-new 8 --out r.jsonl", gemmac, test_path("../models/demo"));
    CU_ASSERT_EQUAL(test_sh(dir, cmd), 0);
    CU_ASSERT_EQUAL(lines_of("r.jsonl"), 8);
    CU_ASSERT_EQUAL(test_sh(dir, "test $(grep -c '\"index\":[56],' r.jsonl) = 2 && ! grep -q quest'$' r.jsonl"), 0);
    /* another run's file */
    snprintf(cmd, sizeof cmd, "'%s' eval gsm8k '%s' --shots 2 --limit 7 --out r.jsonl", gemmac, test_path("../models/demo"));
    CU_ASSERT_EQUAL(test_sh(dir, cmd), 1);
    err = test_slurp(dir, "err.txt");
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "r.jsonl: holds another run"));
    free(err);
    CU_ASSERT_EQUAL(lines_of("r.jsonl"), 8);
}

/* The first 20 questions on 8 sequences: each reply is `gemmac run --temp 0`'s on the whole prompt. */
static void test_same_as_run(void) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' eval gsm8k '%s' --limit 20 --parallel 8 --max-new 12 --out same.jsonl", gemmac,
             test_path("../models/demo"));
    CU_ASSERT_EQUAL_FATAL(test_sh(dir, cmd), 0);
    gm_err e;
    eval_task t;
    CU_ASSERT_EQUAL_FATAL(eval_task_load(test_path("../eval/gsm8k.json"), "test", -1, &t, &e), 0);
    char *text = test_slurp(dir, "same.jsonl"), *line = strchr(text, '\n') + 1;
    int same = 0;
    FILE *prompt = NULL;
    for (char *end; (end = strchr(line, '\n')); line = end + 1) {
        *end = 0;
        cJSON *j = cJSON_Parse(line);
        char *q = eval_prompt(&t, cJSON_GetObjectItem(j, "question")->valuestring), path[4200];
        snprintf(path, sizeof path, "%s/prompt.txt", dir);
        prompt = fopen(path, "w");
        fprintf(prompt, "%s%s", t.prefix, q);
        fclose(prompt);
        snprintf(cmd, sizeof cmd, "'%s' run '%s' -p \"$(cat prompt.txt)\" --temp 0 -n 12 --stop '\nQ:' --stop '\n\n'",
                 gemmac, test_path("../models/demo"));
        CU_ASSERT_EQUAL(test_sh(dir, cmd), 0);
        char *alone = test_slurp(dir, "out.txt"), *reply = cJSON_GetObjectItem(j, "reply")->valuestring;
        size_t n = strlen(reply);
        int ok = alone && !strncmp(alone, reply, n) && !strcmp(alone + n, "\n");
        if (!ok) printf("\n  question %d: eval \"%s\", run \"%s\"", cJSON_GetObjectItem(j, "index")->valueint, reply, alone ? alone : "");
        same += ok;
        free(alone), free(q);
        cJSON_Delete(j);
    }
    printf("[%d of 20 replies as gemmac run's] ", same);
    CU_ASSERT_EQUAL(same, 20);
    free(text);
    eval_task_free(&t);
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: test_eval path/to/gemmac\n"), 2;
    gemmac = argv[1];
    dir = test_tmpdir("tmp-eval");
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("eval", NULL, NULL);
    CU_add_test(s, "chrF equals sacreBLEU's", test_chrf);
    CU_add_test(s, "eval/en-fr.json: TSV pairs scored by chrF", test_en_fr_task);
    CU_add_test(s, "answers taken as the Gemma colab takes them", test_extract);
    CU_add_test(s, "eval/gsm8k.json: the colab's prompt, a seam the tokenizer keeps", test_gsm8k_task);
    CU_add_test(s, "task files with mistakes", test_task_errors);
    CU_add_test(s, "--limit, --out, a resume after a cut-off line", test_run_and_resume);
    CU_add_test(s, "replies equal gemmac run --temp 0 on each whole prompt", test_same_as_run);
    return test_run_all();
}
