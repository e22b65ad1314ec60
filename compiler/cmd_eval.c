/* cmd_eval.c — `gemmac eval <task> <model>`: a benchmark run as its authors
 * run it, at batched speed. The task (eval.h: eval/gsm8k.json, or any task
 * file) says how prompts are made and answers scored; the questions go
 * through rt_generate_parallel (runtime/parallel.h) on --parallel sequences,
 * the few-shot prefix prefilled once. Each answer is written to --out as a
 * JSON line the moment it is scored (index, question, reply, answer,
 * expected, correct), after a first line naming the run (task, split,
 * shots, model); a run started again with the same --out skips the
 * questions already there (a cut-off last line is dropped), so a killed
 * evaluation resumes. stderr shows progress (questions, accuracy so far,
 * tokens/s, ETA) and ends with the accuracy, its 95 % Wilson interval,
 * questions/s and tokens/s. */
#include "chrf.h"
#include "cli.h"
#include "eval.h"
#include "model.h"
#include "runtime/parallel.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char usage[] =
    "usage: gemmac eval <task> <model> [--shots N] [--limit N] [--parallel N] [--split NAME]\n"
    "                   [--out FILE] [--data FILE] [--max-new N] [--context N] [--backend NAME]\n"
    "\n"
    "Runs a benchmark: <task> is a task file (.json) or the name of one gemmac ships in eval/\n"
    "(gsm8k: GSM8K as the Gemma release's colab runs it, 8-shot chain of thought, greedy;\n"
    "en-fr: English to French as the fine-tuning tutorial prompts it, scored by chrF).\n"
    "\n"
    "  --shots N        the first N few-shot exemplars (default: all the task has)\n"
    "  --limit N        the first N questions only\n"
    "  --parallel N     questions generated at once (default 8; the reference and nvptx backends\n"
    "                   take them one at a time)\n"
    "  --split NAME     the task's data split (default test)\n"
    "  --data FILE      a JSONL file of questions instead of the split's\n"
    "  --out FILE       one JSON line per question, written as it is scored; a run with the same\n"
    "                   FILE resumes where it stopped\n"
    "  --max-new N      tokens a reply may take (default: the task's)\n"
    "  --context N      KV cache positions (default: the prefix, the longest question and --max-new)\n"
    "  --backend NAME   jit (default) or reference (one question at a time)\n"
    "  --tokenizer FILE, --weights DIR, --no-cache, and the pass flags, as for gemmac run\n"
    CLI_PIPELINE_HELP;

typedef struct {
    const char *task, *model, *split, *out, *data, *backend, *tokenizer, *weights;
    int shots, limit, parallel, max_new, context, no_cache;
    gm_pipeline_opts pipeline;
} eval_args;

/* `flag N` at argv[*i] into *out: 1 when it is that flag (*bad set when N is
 * out of [min, max], the usage error said), else 0. */
static int int_flag(int argc, char **argv, int *i, const char *flag, long min, long max, int *out, int *bad) {
    const char *v = cli_value(argc, argv, i, flag);
    if (v && cli_int_flag("eval", flag, v, min, max, out)) *bad = 1;
    return v != NULL;
}

static int parse_args(int argc, char **argv, eval_args *a) {
    for (int i = 1; i < argc; i++) {
        const char *v;
        int bad = 0;
        if (cli_pipeline_flag(argc, argv, &i, &a->pipeline)) continue;
        if (int_flag(argc, argv, &i, "--shots", 0, 1 << 16, &a->shots, &bad) ||
            int_flag(argc, argv, &i, "--limit", 1, INT32_MAX, &a->limit, &bad) ||
            int_flag(argc, argv, &i, "--parallel", 1, RT_MAX_SEQUENCES, &a->parallel, &bad) ||
            int_flag(argc, argv, &i, "--max-new", 1, 1 << 20, &a->max_new, &bad) ||
            int_flag(argc, argv, &i, "--context", 1, 1 << 24, &a->context, &bad)) {
            if (bad) return 2;
            continue;
        }
        if ((v = cli_value(argc, argv, &i, "--split"))) a->split = v;
        else if ((v = cli_value(argc, argv, &i, "--out"))) a->out = v;
        else if ((v = cli_value(argc, argv, &i, "--data"))) a->data = v;
        else if ((v = cli_value(argc, argv, &i, "--backend"))) a->backend = v;
        else if ((v = cli_value(argc, argv, &i, "--tokenizer"))) a->tokenizer = v;
        else if ((v = cli_value(argc, argv, &i, "--weights"))) a->weights = v;
        else if (cli_is(argv[i], "--no-cache")) a->no_cache = 1;
        else if (argv[i][0] == '-') return cli_usage_error("eval", "unknown flag %s", argv[i]);
        else if (!a->task) a->task = argv[i];
        else if (!a->model) a->model = argv[i];
        else return cli_usage_error("eval", "unexpected argument %s", argv[i]);
    }
    if (!a->task || !a->model) return cli_usage_error("eval", "expected a task and a model (gemmac eval gsm8k MODEL)");
    if (cli_check_backend("eval", "--backend", a->backend)) return 2;
    return cli_check_options("eval", &a->pipeline);
}

/* The task file: a path, or eval/NAME.json of the shipped tasks. */
static char *task_path(const char *task, gm_err *e) {
    if (strchr(task, '/') || gm_ends_with(task, ".json")) return gm_strdup(task);
    char *dir = cli_shipped("eval", "eval", e);
    if (!dir) return NULL;
    gm_buf b = {0};
    gm_buf_printf(&b, "%s/%s.json", dir, task);
    free(dir);
    if (access(b.s, R_OK)) {
        gm_fail(e, "no task %s: %s is not there; name a task of eval/ (gsm8k, en-fr) or pass a task file", task, b.s);
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* What a run is, for --out's first line: a resumed run must be the same one. */
static char *run_header(const eval_args *a, const eval_task *t) {
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "task", t->name);
    cJSON_AddStringToObject(h, "split", a->data ? a->data : a->split);
    cJSON_AddNumberToObject(h, "shots", t->shots);
    cJSON_AddStringToObject(h, "model", a->model);
    char *s = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    return s;
}

typedef struct {
    const eval_args *a;
    const eval_task *t;
    const eval_item *items;
    int n_items;
    rt_tokenizer *tok;
    const int32_t *prefix;
    int n_prefix;
    char *done;              /* per item: scored (this run or an earlier one) */
    int *item_of;            /* per prompt of this run: its item */
    int cursor, correct, scored, resumed;
    FILE *out;
    double t0;
    rt_parallel_stats st;    /* as the run goes: progress reads its decode tokens */
    int tty;
    int64_t chrf[CHRF_STATS]; /* a chrF task's statistics summed over the answers so far */
} eval_run;

/* The score so far, for progress and the summary: accuracy or chrF, in %. */
static double score_so_far(const eval_run *r) {
    if (r->t->chrf) return chrf_score(r->chrf);
    return r->scored ? 100.0 * r->correct / r->scored : 0.0;
}

/* The earlier lines of --out: which items are done and how many right; a
 * cut-off last line is dropped. -1 when the file is another run's. */
static int read_earlier(eval_run *r, const char *header, gm_err *e) {
    size_t len;
    gm_err missing;
    char *text = gm_read_file(r->a->out, &len, &missing), *line = text;
    if (!text) return 0;
    int rc = 0, lineno = 0;
    size_t keep = 0;
    for (char *end; !rc && (end = strchr(line, '\n')); line = end + 1) {
        *end = 0, lineno++;
        keep = (size_t)(end + 1 - text);
        if (lineno == 1) {
            if (strcmp(line, header))
                rc = gm_fail(e, "%s: holds another run (%.120s); pass another --out, or delete it to start again",
                             r->a->out, line);
            continue;
        }
        cJSON *j = cJSON_Parse(line);
        const cJSON *idx = cJSON_GetObjectItem(j, "index"), *ok = cJSON_GetObjectItem(j, "correct");
        const cJSON *stats = cJSON_GetObjectItem(j, "chrf_stats");
        int i = cJSON_IsNumber(idx) ? idx->valueint : -1;
        if (i >= 0 && i < r->n_items && !r->done[i]) {
            r->done[i] = 1, r->resumed++, r->scored++, r->correct += cJSON_IsTrue(ok);
            for (int k = 0; k < CHRF_STATS && cJSON_GetArraySize(stats) == CHRF_STATS; k++)
                r->chrf[k] += (int64_t)cJSON_GetArrayItem(stats, k)->valuedouble;
        }
        cJSON_Delete(j);
    }
    free(text);
    if (!rc && keep < len && truncate(r->a->out, (off_t)keep))
        rc = gm_fail(e, "%s: cannot drop its cut-off last line: %s", r->a->out, strerror(errno));
    return rc;
}

/* The next item not done yet: its prompt's tokens after the prefix. */
static int next_question(void *user, int index, int32_t **ids, int *n, gm_err *e) {
    eval_run *r = user;
    while (r->cursor < r->n_items && r->done[r->cursor]) r->cursor++;
    if (r->cursor == r->n_items) return 0;
    r->item_of = gm_realloc(r->item_of, (index + 1) * sizeof *r->item_of);
    r->item_of[index] = r->cursor;
    char *prompt = eval_prompt(r->t, r->items[r->cursor++].input);
    int rc = rt_tok_encode(r->tok, prompt, strlen(prompt), ids, n, e);
    free(prompt);
    return rc ? -1 : 1;
}

static void progress(eval_run *r, int final) {
    double s = gm_now_s() - r->t0, rate = s > 0 ? (r->scored - r->resumed) / s : 0;
    int left = 0;
    for (int i = 0; i < r->n_items; i++) left += !r->done[i];
    if (!final && !r->tty && r->scored % 50) return;
    fprintf(stderr, "%s[%d/%d] %s %.1f%s, %.1f tok/s, ETA %.0f s%s", r->tty ? "\r" : "", r->scored, r->n_items,
            r->t->chrf ? "chrF" : "accuracy", score_so_far(r), r->t->chrf ? "" : "%", s > 0 ? r->st.decode_tokens / s : 0.0,
            rate > 0 ? left / rate : 0.0, r->tty && !final ? "   " : "\n");
}

static int score(void *user, int index, const char *reply, rt_stop_reason why, gm_err *e) {
    eval_run *r = user;
    int i = r->item_of[index];
    char *got = eval_extract(reply, r->t->extract), *want = eval_extract(r->items[i].target, r->t->target_extract);
    int ok = eval_same_answer(got, want);
    int64_t one[CHRF_STATS] = {0};
    (void)why;
    r->done[i] = 1, r->scored++, r->correct += ok;
    if (r->t->chrf) {
        chrf_add(got, want, one);
        for (int k = 0; k < CHRF_STATS; k++) r->chrf[k] += one[k];
    }
    if (r->out) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "index", i);
        cJSON_AddStringToObject(j, "question", r->items[i].input);
        cJSON_AddStringToObject(j, "reply", reply);
        cJSON_AddStringToObject(j, "answer", got);
        cJSON_AddStringToObject(j, "expected", want);
        cJSON_AddBoolToObject(j, "correct", ok);
        if (r->t->chrf) {
            cJSON_AddNumberToObject(j, "chrf", chrf_score(one));
            cJSON *stats = cJSON_AddArrayToObject(j, "chrf_stats");
            for (int k = 0; k < CHRF_STATS; k++) cJSON_AddItemToArray(stats, cJSON_CreateNumber((double)one[k]));
        }
        char *line = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        int bad = fprintf(r->out, "%s\n", line) < 0 || fflush(r->out);
        cJSON_free(line);
        if (bad) {
            free(got), free(want);
            return gm_fail(e, "%s: cannot write: %s", r->a->out, strerror(errno));
        }
    }
    free(got), free(want);
    progress(r, 0);
    return 0;
}

/* --out opened for appending (its first line written when new); earlier answers read. */
static int open_out(eval_run *r, gm_err *e) {
    char *header = run_header(r->a, r->t);
    int rc = read_earlier(r, header, e);
    if (!rc && !(r->out = fopen(r->a->out, "a")))
        rc = gm_fail(e, "%s: cannot write: %s; check that its directory exists and can be written", r->a->out,
                     strerror(errno));
    if (!rc && ftell(r->out) == 0 && (fprintf(r->out, "%s\n", header) < 0 || fflush(r->out)))
        rc = gm_fail(e, "%s: cannot write: %s", r->a->out, strerror(errno));
    cJSON_free(header);
    return rc;
}

/* Whether the prefix and the first prompt, encoded apart, are other tokens
 * than the two encoded as one text (SentencePiece may merge across the
 * seam): then the run would not be the benchmark's. */
static int split_changes_tokens(eval_run *r, const int32_t *prefix, int n_prefix, gm_err *e) {
    char *prompt = eval_prompt(r->t, r->items[0].input);
    gm_buf whole = {0};
    gm_buf_printf(&whole, "%s%s", r->t->prefix, prompt);
    int32_t *a = NULL, *b = NULL;
    int na = 0, nb = 0, rc = rt_tok_encode(r->tok, whole.s, whole.len, &a, &na, e) ||
                             rt_tok_encode(r->tok, prompt, strlen(prompt), &b, &nb, e);
    if (!rc && (na != n_prefix + nb || memcmp(a, prefix, n_prefix * sizeof *a) || memcmp(a + n_prefix, b, nb * sizeof *b)))
        rc = gm_fail(e, "%s: the prefix and the template encode to other tokens apart than together; end the shots "
                        "and start the template where the tokenizer cannot merge them (a blank line, then a word)",
                     r->t->name);
    free(a), free(b), free(whole.s), free(prompt);
    return rc ? -1 : 0;
}

/* BOS and the task's prefix, and the context every question fits in. */
static int encode_prefix(eval_run *r, int32_t **ids, int *n, int *context, gm_err *e) {
    int longest = 0, lead = rt_tok_bos(r->tok) >= 0;
    if (rt_tok_encode_bos(r->tok, r->t->prefix, strlen(r->t->prefix), ids, n, e) ||
        split_changes_tokens(r, *ids + lead, *n - lead, e))
        return -1;
    for (int i = 0; i < r->n_items; i++) {
        char *prompt = eval_prompt(r->t, r->items[i].input);
        int32_t *q;
        int nq;
        int rc = rt_tok_encode(r->tok, prompt, strlen(prompt), &q, &nq, e);
        free(prompt);
        if (rc) return -1;
        free(q);
        if (nq > longest) longest = nq;
    }
    *context = *n + longest + (r->a->max_new ? r->a->max_new : r->t->max_new) + 1;
    return 0;
}

static void summary(const eval_run *r, const rt_parallel_stats *st, int parallel) {
    double n = r->scored, p = n ? r->correct / n : 0, z = 1.96, d = 1 + z * z / n;
    double center = n ? (p + z * z / (2 * n)) / d : 0, half = n ? z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d : 0;
    char score[192];
    progress((eval_run *)r, 1);
    if (r->t->chrf)
        snprintf(score, sizeof score, "chrF %.2f over %d answers (sacreBLEU's default chrF: character 6-grams, beta 2, "
                 "corpus statistics)", chrf_score(r->chrf), r->scored);
    else snprintf(score, sizeof score, "%d/%d correct, %.1f%% (95%% CI %.1f-%.1f%%)", r->correct, r->scored, 100 * p,
                  100 * fmax(0, center - half), 100 * fmin(1, center + half));
    gm_say("%s: %s; %d questions in %.1f s (%.2f/s), decode %lld tokens at %.1f tok/s on %d sequences\n", r->t->name,
           score, st->prompts, st->wall_s, st->wall_s > 0 ? st->prompts / st->wall_s : 0, st->decode_tokens,
           st->decode_s > 0 ? st->decode_tokens / st->decode_s : 0, parallel);
}

static int evaluate(eval_run *r, gm_model *m, gm_err *e) {
    int32_t *prefix = NULL;
    int n_prefix = 0, context;
    if (encode_prefix(r, &prefix, &n_prefix, &context, e)) return free(prefix), -1;
    if (r->a->context) context = r->a->context;
    if (context > m->graph->max_context) context = (int)m->graph->max_context;
    /* one sequence more where the backend batches keeps the prefix: each question copies it */
    int batches = gm_backend_batches(r->a->backend), parallel = batches ? r->a->parallel : 1;
    rt_engine *en = gm_model_engine(m, r->a->backend, &(rt_engine_opts){.context = context, .no_cache = r->a->no_cache,
                                                                         .sequences = batches ? parallel + 1 : 1}, e);
    int rc = en ? 0 : -1;
    rt_sampler_opts greedy = rt_sampler_defaults();
    greedy.temperature = 0;
    rt_gen_opts go = {r->a->max_new ? r->a->max_new : r->t->max_new, (const char *const *)r->t->stops, r->t->n_stops,
                      NULL, NULL};
    r->t0 = gm_now_s();
    if (!rc) rc = rt_generate_parallel(en, r->tok, &greedy, prefix, n_prefix, &go,
                                       &(rt_parallel_io){next_question, score, r}, &r->st, e);
    if (!rc) summary(r, &r->st, parallel);
    if (en) en->free(en);
    free(prefix);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return cli_help(usage);
    eval_args a = {.split = "test", .backend = "jit", .shots = -1, .parallel = 8, .pipeline = {.level = GM_DEFAULT_LEVEL}};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    gm_err e;
    eval_task t = {0};
    eval_run r = {.a = &a, .t = &t, .tty = isatty(STDERR_FILENO)};
    char *path = task_path(a.task, &e);
    eval_item *items = NULL;
    int n_all = 0;
    rc = !path || eval_task_load(path, a.split, a.shots, &t, &e) || eval_items_load(&t, a.data, &items, &n_all, &e);
    r.n_items = a.limit && a.limit < n_all ? a.limit : n_all;
    r.items = items;
    r.done = gm_calloc(r.n_items + 1, 1);
    if (!rc && a.out) rc = open_out(&r, &e);
    a.pipeline.target = gm_backend_target(a.backend);
    gm_model *m = rc ? NULL : gm_model_open_with(a.model, a.weights, &a.pipeline, &e);
    r.tok = m ? cli_open_tokenizer(m, a.tokenizer, a.weights, &e) : NULL;
    rc = r.tok && !evaluate(&r, m, &e) ? 0 : cli_error(&e);
    if (r.out) fclose(r.out);
    rt_tok_free(r.tok);
    gm_model_free(m);
    eval_items_free(items, n_all);
    eval_task_free(&t);
    free(r.done), free(r.item_of), free(path);
    return rc;
}
