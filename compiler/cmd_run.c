/* cmd_run.c — `gemmac run`: text in, text out. It opens a model (or the
 * embedded demo), its tokenizer, an engine from the chosen backend, and
 * runs the generation loop of runtime/generate.h: one prompt, or a chat on
 * stdin that keeps the KV cache between turns. Text streams to stdout; the
 * prompt and generation speeds go to stderr at the end, like llama.cpp's
 * timings. The flags of Gemma's reference sampling script are accepted as
 * aliases. A .gguf model brings its own tokenizer (runtime/gguf_vocab.c). */
#include "cli.h"
#include "cli_number.h"
#include "model.h"
#include "runtime/generate.h"
#include "runtime/kv_cache.h"
#include "runtime/parallel.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_STOPS 8

static const char usage[] =
    "usage: gemmac run [MODEL] [-p PROMPT] [-n N] [--chat] [--system S] [sampling flags]\n"
    "  MODEL              a Hugging Face checkpoint dir, its config.json, a llama.cpp .gguf file,\n"
    "                     or a description .json\n"
    "                     with --weights; without one, the embedded demo (a tiny trained model)\n"
    "  -p, --prompt TEXT  the prompt (BOS is added); in --chat mode, the first user turn\n"
    "  -n, --max-new N    tokens to generate at most (default 256)\n"
    "  --chat             Gemma's chat format; after -p, read one user turn per stdin line,\n"
    "                     keeping the KV cache between turns\n"
    "  --system TEXT      a system prompt, folded into the first user turn\n"
    "  --parallel N       one prompt per stdin line, N generated at once (batched decoding: each\n"
    "                     weight read once a step for all N; other backends than jit take them\n"
    "                     one at a time); -p, if given, is a\n"
    "                     prefix of every line, prefilled once; with --chat each line is a user\n"
    "                     turn (and --system folded in). One JSON line per prompt, in input order: index, prompt,\n"
    "                     reply, stop (token, string, length or context). Sequence i samples\n"
    "                     with seed + i\n"
    "  --temp T           temperature; 0 is greedy (default 1.0)\n"
    "  --top-k K          keep the K most likely tokens; 0: off (default 64)\n"
    "  --top-p P          keep the most likely tokens up to probability P; 1: off (default 0.95)\n"
    "  --min-p P          keep tokens with probability >= P times the top one; 0: off (default 0)\n"
    "  --repeat-penalty R penalise recent tokens' logits by R; 1: off (default 1)\n"
    "  --repeat-last-n N  how many recent tokens the penalty sees (default 64)\n"
    "  --seed S           random seed; the same seed gives the same text (default: from the clock)\n"
    "  --stop TEXT        stop when TEXT appears (not printed); may be given up to 8 times\n"
    "  --tokenizer FILE   the SentencePiece model (default: tokenizer.model beside the checkpoint,\n"
    "                     or a .gguf model's own vocabulary)\n"
    "  --weights DIR      the checkpoint, when MODEL is a description\n"
    "  --context N        KV cache positions (default: the model's, at most 4096)\n"
    "  --backend NAME     jit (default: native code through LLVM), reference (the C interpreter)\n"
    "                     or nvptx (PTX kernels on an NVIDIA GPU, through its driver)\n"
    "  --no-cache         compile the kernels and pack the weights afresh: neither read nor\n"
    "                     write the JIT cache or the packed-weight cache\n"
    "                     (${GEMMAC_CACHE:-~/.cache/gemmac}/jit and /packed)\n"
    "  --verbose          print the model, backend, passes, compile time and KV cache memory\n"
    CLI_PIPELINE_HELP
    "Aliases from Gemma's reference script: --path_checkpoint (MODEL), --path_tokenizer,\n"
    "--string_to_sample (-p), --total_generation_steps (-n).\n";

typedef struct {
    const char *model, *prompt, *system, *tokenizer, *weights, *backend;
    const char *stops[MAX_STOPS];
    int n_stops, max_new, context, chat, verbose, seeded, no_cache, parallel;
    rt_sampler_opts sampling;
    gm_pipeline_opts pipeline;
} run_args;

static int parse_int(const char *flag, const char *v, int min, int *out) {
    return cli_int_flag("run", flag, v, min, INT32_MAX, out);
}

static int parse_float(const char *flag, const char *v, float *out) {
    if (cli_float(v, out)) return cli_usage_error("run", "%s: expected a number, found \"%s\"", flag, v);
    return 0;
}

/* One flag of argv at *i; returns 0, 2 on a usage error, or -1 if unknown. */
static int parse_flag(int argc, char **argv, int *i, run_args *a) {
    const char *v;
    rt_sampler_opts *s = &a->sampling;
    if ((v = cli_value(argc, argv, i, "-p")) || (v = cli_value(argc, argv, i, "--prompt")) ||
        (v = cli_value(argc, argv, i, "--string_to_sample"))) return a->prompt = v, 0;
    if ((v = cli_value(argc, argv, i, "-n")) || (v = cli_value(argc, argv, i, "--max-new")) ||
        (v = cli_value(argc, argv, i, "--total_generation_steps"))) return parse_int("-n", v, 1, &a->max_new);
    if ((v = cli_value(argc, argv, i, "--path_checkpoint"))) return a->model = v, 0;
    if ((v = cli_value(argc, argv, i, "--tokenizer")) || (v = cli_value(argc, argv, i, "--path_tokenizer")))
        return a->tokenizer = v, 0;
    if ((v = cli_value(argc, argv, i, "--system"))) return a->system = v, 0;
    if ((v = cli_value(argc, argv, i, "--weights"))) return a->weights = v, 0;
    if ((v = cli_value(argc, argv, i, "--backend"))) return a->backend = v, 0;
    if ((v = cli_value(argc, argv, i, "--context"))) return parse_int("--context", v, 1, &a->context);
    if ((v = cli_value(argc, argv, i, "--parallel"))) return cli_int_flag("run", "--parallel", v, 1, RT_MAX_SEQUENCES, &a->parallel);
    if ((v = cli_value(argc, argv, i, "--temp")) || (v = cli_value(argc, argv, i, "--temperature")))
        return parse_float("--temp", v, &s->temperature);
    if ((v = cli_value(argc, argv, i, "--top-k"))) return parse_int("--top-k", v, 0, &s->top_k);
    if ((v = cli_value(argc, argv, i, "--top-p"))) return parse_float("--top-p", v, &s->top_p);
    if ((v = cli_value(argc, argv, i, "--min-p"))) return parse_float("--min-p", v, &s->min_p);
    if ((v = cli_value(argc, argv, i, "--repeat-penalty"))) return parse_float("--repeat-penalty", v, &s->repeat_penalty);
    if ((v = cli_value(argc, argv, i, "--repeat-last-n"))) return parse_int("--repeat-last-n", v, 0, &s->repeat_last_n);
    if ((v = cli_value(argc, argv, i, "--seed"))) {
        int seed;
        a->seeded = 1;
        return parse_int("--seed", v, 0, &seed) ? 2 : (s->seed = (uint64_t)seed, 0);
    }
    if ((v = cli_value(argc, argv, i, "--stop"))) {
        if (a->n_stops == MAX_STOPS) return cli_usage_error("run", "--stop: at most %d stop strings", MAX_STOPS);
        return a->stops[a->n_stops++] = v, 0;
    }
    if (cli_pipeline_flag(argc, argv, i, &a->pipeline)) return 0;
    if (cli_is(argv[*i], "--chat")) return a->chat = 1, 0;
    if (cli_is(argv[*i], "--verbose") || cli_is(argv[*i], "-v")) return a->verbose = 1, 0;
    if (cli_is(argv[*i], "--no-cache")) return a->no_cache = 1, 0;
    return -1;
}

static int parse_args(int argc, char **argv, run_args *a) {
    for (int i = 1; i < argc; i++) {
        int rc = parse_flag(argc, argv, &i, a);
        if (rc > 0) return rc;
        if (rc == 0) continue;
        if (argv[i][0] == '-') return cli_usage_error("run", "unknown flag %s", argv[i]);
        if (a->model) return cli_usage_error("run", "unexpected argument %s", argv[i]);
        a->model = argv[i];
    }
    if (!a->prompt && !a->chat && !a->parallel) return cli_usage_error("run", "no prompt: pass -p TEXT, --chat or --parallel N");
    if (a->parallel && a->chat && a->prompt)
        return cli_usage_error("run", "--parallel --chat takes each stdin line as a user turn; -p has no place (use --system)");
    gm_err e;
    if (rt_sampler_check(&a->sampling, &e)) return cli_usage_error("run", "%s", e.msg);
    return cli_check_backend("run", "--backend", a->backend) ? 2 : cli_check_options("run", &a->pipeline);
}

static void emit_stdout(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static void report_speed(const rt_session *s) {
    fputc('\n', stderr), gm_say("prompt %d tokens in %.3f s (%.1f tok/s); generation %d tokens in %.3f s (%.1f tok/s)\n",
            s->prefill_tokens, s->prefill_s, s->prefill_s > 0 ? s->prefill_tokens / s->prefill_s : 0.0,
            s->decode_tokens, s->decode_s, s->decode_s > 0 ? s->decode_tokens / s->decode_s : 0.0);
}

static int run_prompt(rt_session *s, const run_args *a, const rt_gen_opts *go, gm_err *e) {
    int32_t bos = rt_tok_bos(s->tok);
    if (bos >= 0 && rt_session_feed(s, &bos, 1, e)) return -1;
    if (rt_session_feed_text(s, a->prompt, e)) return -1;
    rt_stop_reason why;
    if (rt_session_generate(s, go, NULL, &why, e)) return -1;
    putchar('\n');
    if (why == RT_STOP_CONTEXT) gm_say("stopped: the context of %d positions is full\n", s->en->context);
    return 0;
}

static int run_chat(rt_session *s, const run_args *a, const rt_gen_opts *go, gm_err *e) {
    char *line = NULL;
    size_t cap = 0;
    int interactive = isatty(STDIN_FILENO), rc = 0;
    const char *turn = a->prompt;
    for (;;) {
        if (!turn) {
            if (interactive) fputs("> ", stderr);
            ssize_t n = getline(&line, &cap, stdin);
            if (n < 0) break;
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
            if (!n) continue;
            turn = line;
        }
        rt_stop_reason why;
        if ((rc = rt_session_chat(s, a->system, turn, go, NULL, &why, e))) break;
        putchar('\n');
        fflush(stdout);
        turn = NULL;
    }
    free(line);
    return rc;
}

static void print_verbose(const gm_model *m, const rt_engine *en) {
    int slots = m->graph->n_cache_slots;
    int *windows = gm_malloc(slots * sizeof(int)), *cols = gm_malloc(slots * sizeof(int));
    ir_cache_slots(m->graph, windows, cols);
    size_t full = rt_kv_plan_bytes(slots, windows, cols, en->context, 1);
    gm_say("model %s (%s), %d layers, %lld parameters, backend %s (compiled in %.2f s%s)\n",
            m->graph->name, m->origin, m->graph->n_layers, (long long)ir_param_count(m->graph), en->backend,
            en->compile_s, en->from_cache ? ", from cache" : "");
    gm_say("passes: %s\n", *m->passes ? m->passes : "none");
    gm_say("kv cache for %d positions: %.2f MiB (%.2f MiB without sliding-window rings)\n",
            en->context, en->kv_bytes / 1048576.0, full / 1048576.0);
    free(windows);
    free(cols);
}

/* --parallel: the prompts of stdin's lines, and their replies printed in input order. */
typedef struct {
    const run_args *a;
    rt_tokenizer *tok;
    char **prompts, **lines;  /* per index: the line; its JSON line once replied */
    int n, cap, printed;
    char *line;
    size_t line_cap;
} parallel_io;

static int next_line(void *user, int index, int32_t **ids, int *n, gm_err *e) {
    parallel_io *p = user;
    ssize_t len;
    while ((len = getline(&p->line, &p->line_cap, stdin)) >= 0) {
        while (len > 0 && (p->line[len - 1] == '\n' || p->line[len - 1] == '\r')) p->line[--len] = 0;
        if (len) break;
    }
    if (len < 0) return 0;
    if (index == p->cap) {
        p->cap = 2 * p->cap + 16;
        p->prompts = gm_realloc(p->prompts, p->cap * sizeof *p->prompts);
        p->lines = gm_realloc(p->lines, p->cap * sizeof *p->lines);
    }
    p->prompts[index] = gm_strdup(p->line), p->lines[index] = NULL, p->n = index + 1;
    char *text = p->a->chat ? rt_chat_turn(p->a->system, p->line, 1, 0) : NULL;
    int rc = rt_tok_encode(p->tok, text ? text : p->line, strlen(text ? text : p->line), ids, n, e);
    free(text);
    return rc ? -1 : 1;
}

static int print_reply(void *user, int index, const char *reply, rt_stop_reason why, gm_err *e) {
    parallel_io *p = user;
    static const char *const reasons[] = {"token", "string", "length", "context"};
    (void)e;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "index", index);
    cJSON_AddStringToObject(j, "prompt", p->prompts[index]);
    cJSON_AddStringToObject(j, "reply", reply);
    cJSON_AddStringToObject(j, "stop", reasons[why]);
    p->lines[index] = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    for (; p->printed < p->n && p->lines[p->printed]; p->printed++) puts(p->lines[p->printed]);
    fflush(stdout);
    return 0;
}

static int run_parallel(const run_args *a, rt_engine *en, rt_tokenizer *tok, gm_err *e) {
    parallel_io p = {a, tok, NULL, NULL, 0, 0, 0, NULL, 0};
    int32_t *prefix = NULL; /* BOS and -p's text: the prefix of every line */
    int n_prefix = 0, rc = rt_tok_encode_bos(tok, a->prompt ? a->prompt : "", a->prompt ? strlen(a->prompt) : 0, &prefix,
                                             &n_prefix, e);
    rt_gen_opts go = {a->max_new, a->stops, a->n_stops, NULL, NULL};
    rt_parallel_stats st;
    if (!rc) rc = rt_generate_parallel(en, tok, &a->sampling, prefix, n_prefix, &go, &(rt_parallel_io){next_line, print_reply, &p},
                                       &st, e);
    if (!rc)
        gm_say("%d prompts on %d sequences in %.2f s; prefill %lld tokens; decode %lld tokens in %d steps "
                        "(%.1f a step), %.1f tok/s\n", st.prompts, en->sequences > 1 ? en->sequences - 1 : 1, st.wall_s, st.prefill_tokens,
                st.decode_tokens, st.steps, st.steps ? (double)st.decode_tokens / st.steps : 0.0,
                st.decode_s > 0 ? st.decode_tokens / st.decode_s : 0.0);
    for (int i = 0; i < p.n; i++) free(p.prompts[i]), cJSON_free(p.lines[i]);
    free(p.prompts), free(p.lines), free(p.line), free(prefix);
    return rc;
}

/* --parallel N: N sequences and the prefix's, where the backend batches; else one at a time. */
static int run_sequences(const run_args *a) {
    return a->parallel && gm_backend_batches(a->backend) ? a->parallel + 1 : 1;
}

static int run_session(const run_args *a, gm_model *m, rt_tokenizer *tok, gm_err *e) {
    int context = a->context ? a->context : (int)(m->graph->max_context < 4096 ? m->graph->max_context : 4096);
    rt_engine *en = gm_model_engine(m, a->backend, &(rt_engine_opts){.context = context, .no_cache = a->no_cache,
                                                                     .sequences = run_sequences(a)}, e);
    if (!en) return -1;
    if (a->verbose) print_verbose(m, en);
    if (a->parallel) {
        int rc = run_parallel(a, en, tok, e);
        en->free(en);
        return rc;
    }
    rt_session *s = rt_session_new(en, tok, &a->sampling, e);
    rt_gen_opts go = {a->max_new, a->stops, a->n_stops, emit_stdout, NULL};
    int rc = !s ? -1 : a->chat ? run_chat(s, a, &go, e) : run_prompt(s, a, &go, e);
    if (!rc) report_speed(s);
    rt_session_free(s);
    en->free(en);
    return rc;
}

int cmd_run(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return cli_help(usage);
    run_args a = {.backend = "jit", .max_new = 256, .sampling = rt_sampler_defaults(),
                  .pipeline = {.level = GM_DEFAULT_LEVEL}};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (!a.seeded) a.sampling.seed = (uint64_t)time(NULL);
    gm_err e;
    char *demo = NULL;
    if (!a.model && !(a.model = demo = cli_shipped("models/demo", "demo", &e))) return cli_error(&e);
    if (demo) gm_say("no model given: running the embedded demo (%s), a 1.7M-parameter model trained on "
                     "its corpus: expect text like the corpus, not sense\n", demo);
    a.pipeline.target = gm_backend_target(a.backend);
    gm_model *m = gm_model_open_with(a.model, a.weights, &a.pipeline, &e);
    rt_tokenizer *tok = m ? cli_open_tokenizer(m, a.tokenizer, a.weights, &e) : NULL;
    rc = tok && !run_session(&a, m, tok, &e) ? 0 : cli_error(&e);
    rt_tok_free(tok);
    gm_model_free(m);
    free(demo);
    return rc;
}
