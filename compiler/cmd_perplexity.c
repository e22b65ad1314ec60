/* cmd_perplexity.c — `gemmac perplexity`: how well a model predicts a text,
 * and with --base how far its next-token distributions lie from another
 * model's (a quantization against its f32 original, one backend against
 * another). The protocol is llama.cpp's perplexity tool's, so the numbers
 * compare: the whole text is tokenized with BOS in front and cut into chunks
 * of --context tokens, each chunk's first token is replaced by BOS, each
 * chunk runs from an empty KV cache, and only its second half is scored: the
 * log-probability of token i+1 given tokens ≤ i, for i in [N/2, N−1). The
 * first half is prefilled in one call that keeps no logits, the scored
 * positions in slices of at most 64 MB of logits, so a 262 144-id vocabulary
 * needs no 512 MB buffer. The sums and estimates are compiler/perplexity.c's. */
#include "cli.h"
#include "cli_number.h"
#include "perplexity.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#define MIN_CONTEXT 16
#define DEFAULT_CONTEXT 512
#define SLICE_BYTES ((int64_t)64 << 20)

static const char usage[] =
    "usage: gemmac perplexity <model> <text file> [--context N] [--chunks N] [--backend NAME]\n"
    "                         [--weights DIR] [--tokenizer FILE] [--threads N] [--json]\n"
    "                         [--base MODEL [--base-weights DIR] [--base-backend NAME]]\n"
    "  <model>             a Hugging Face checkpoint dir, its config.json, a .gguf, or a description\n"
    "  <text file>         UTF-8 text, tokenized whole with BOS in front\n"
    "  --context N         tokens per chunk, at least 16 (default 512, or the model's context if less)\n"
    "  --chunks N          score only the first N chunks (default: every whole chunk of the text)\n"
    "  --backend NAME      jit (default), reference or nvptx\n"
    "  --weights DIR       the checkpoint, when <model> is a description\n"
    "  --tokenizer FILE    the SentencePiece model for both models (default: each model's own)\n"
    "  --threads N         worker threads (default: $GEMMAC_THREADS or all cores)\n"
    "  --base MODEL        compare with MODEL too: KL(base || model) over the whole vocabulary at\n"
    "                      every scored position, top-1 agreement, and both perplexities\n"
    "  --base-weights DIR  the base's checkpoint, when MODEL is a description\n"
    "  --base-backend NAME the base's backend (default: --backend); the pass flags below apply\n"
    "                      to <model> only, the base always runs the default passes\n"
    "  --json              print one JSON object with every number instead of the text lines\n"
    "  --no-cache          neither read nor write the JIT and packed-weight caches\n"
    CLI_PIPELINE_HELP
    "llama.cpp's protocol: each chunk's first token is replaced by BOS and the second half of it\n"
    "is scored. Prints the running perplexity after each chunk ([1]12.3456,[2]...), then\n"
    "\"perplexity: PPL ± SE over T tokens (C chunks of N)\".\n";

typedef struct {
    const char *model, *text, *backend, *weights, *tokenizer;
    const char *base, *base_weights, *base_backend;
    int context, chunks, threads, json, no_cache;
    gm_pipeline_opts pipeline;
} ppl_args;

/* One model under evaluation. */
typedef struct {
    gm_model *m;
    rt_engine *en;
    float *rows;        /* the logits of one slice, [slice][vocab] */
} side;

typedef struct {
    side model, base;   /* base.m is NULL without --base */
    int32_t *tokens;    /* the text's ids, BOS first */
    int n_tokens;
    int32_t bos;        /* -1 when the tokenizer has none: chunks keep their first token */
    int context, chunks;
    ppl_stats stats;
    double *chunk_ppl;  /* the running perplexity after each chunk */
    double seconds;     /* evaluating the chunks */
} ppl_run;

static int parse_int(const char *flag, const char *s, int min, int *out) {
    return cli_int_flag("perplexity", flag, s, min, 1 << 24, out);
}

static int parse_flag(int argc, char **argv, int *i, ppl_args *a) {
    const char *v;
    if ((v = cli_value(argc, argv, i, "--context"))) return parse_int("--context", v, MIN_CONTEXT, &a->context);
    if ((v = cli_value(argc, argv, i, "--chunks"))) return parse_int("--chunks", v, 1, &a->chunks);
    if ((v = cli_value(argc, argv, i, "--threads"))) return parse_int("--threads", v, 1, &a->threads);
    if ((v = cli_value(argc, argv, i, "--backend"))) return a->backend = v, 0;
    if ((v = cli_value(argc, argv, i, "--weights"))) return a->weights = v, 0;
    if ((v = cli_value(argc, argv, i, "--tokenizer"))) return a->tokenizer = v, 0;
    if ((v = cli_value(argc, argv, i, "--base"))) return a->base = v, 0;
    if ((v = cli_value(argc, argv, i, "--base-weights"))) return a->base_weights = v, 0;
    if ((v = cli_value(argc, argv, i, "--base-backend"))) return a->base_backend = v, 0;
    if (cli_is(argv[*i], "--json")) return a->json = 1, 0;
    if (cli_is(argv[*i], "--no-cache")) return a->no_cache = 1, 0;
    if (cli_pipeline_flag(argc, argv, i, &a->pipeline)) return 0;
    return cli_usage_error("perplexity", "unknown flag %s", argv[*i]);
}

static int parse_args(int argc, char **argv, ppl_args *a) {
    for (int i = 1; i < argc; i++) {
        int rc = 0;
        if (argv[i][0] == '-') rc = parse_flag(argc, argv, &i, a);
        else if (!a->model) a->model = argv[i];
        else if (!a->text) a->text = argv[i];
        else rc = cli_usage_error("perplexity", "unexpected argument %s", argv[i]);
        if (rc) return rc;
    }
    if (!a->model || !a->text) return cli_usage_error("perplexity", "expected a model and a text file");
    if (!a->base && (a->base_weights || a->base_backend))
        return cli_usage_error("perplexity", "%s needs --base MODEL",
                               a->base_weights ? "--base-weights" : "--base-backend");
    if (!a->base_backend) a->base_backend = a->backend;
    if (cli_check_backend("perplexity", "--backend", a->backend) ||
        cli_check_backend("perplexity", "--base-backend", a->base_backend))
        return 2;
    return cli_check_options("perplexity", &a->pipeline);
}

/* --context, or 512 unless the model's context is shorter. */
static int pick_context(const ppl_args *a, const gm_model *m, int *context, gm_err *e) {
    int64_t max = m->graph->max_context;
    *context = a->context ? a->context : max < DEFAULT_CONTEXT ? (int)max : DEFAULT_CONTEXT;
    if (*context > max)
        return gm_fail(e, "--context %d exceeds %s's context of %lld positions (config.max_context); pass at most that",
                       *context, a->model, (long long)max);
    if (*context < MIN_CONTEXT)
        return gm_fail(e, "%s: a context of %d positions is shorter than the %d a chunk needs", a->model, *context,
                       MIN_CONTEXT);
    return 0;
}

/* The text through the model's tokenizer, and how many chunks it makes. */
static int tokenize(const ppl_args *a, ppl_run *r, const char *text, size_t len, gm_err *e) {
    rt_tokenizer *t = cli_open_tokenizer(r->model.m, a->tokenizer, a->weights, e);
    int rc = t ? rt_tok_encode_bos(t, text, len, &r->tokens, &r->n_tokens, e) : -1;
    r->bos = t ? rt_tok_bos(t) : -1;
    rt_tok_free(t);
    if (rc) return -1;
    if (r->n_tokens == (r->bos >= 0))
        return gm_fail(e, "%s: the text is empty; give a text of at least %d tokens", a->text, r->context);
    r->chunks = r->n_tokens / r->context;
    char hint[64] = "give a longer text";
    if (r->n_tokens >= MIN_CONTEXT)
        snprintf(hint, sizeof hint, "pass --context %d or less, or give a longer text", r->n_tokens);
    if (!r->chunks)
        return gm_fail(e, "%s: the text is %d tokens (with BOS) but one chunk of --context %d needs %d; %s (a chunk is at "
                       "least %d tokens)", a->text, r->n_tokens, r->context, r->context, hint, MIN_CONTEXT);
    if (a->chunks && a->chunks < r->chunks) r->chunks = a->chunks;
    return 0;
}

/* The base reads the same ids: its own tokenizer must split the text alike. */
static int check_base_tokens(const ppl_args *a, const ppl_run *r, const char *text, size_t len, gm_err *e) {
    rt_tokenizer *t = cli_open_tokenizer(r->base.m, NULL, a->base_weights, e);
    int32_t *ids = NULL;
    int n = 0, rc = t ? rt_tok_encode_bos(t, text, len, &ids, &n, e) : -1, i = 0;
    while (!rc && i < n && i < r->n_tokens && ids[i] == r->tokens[i]) i++;
    if (!rc && (i < n || i < r->n_tokens))
        rc = gm_fail(e, "--base %s: its tokenizer splits %s differently from %s's (token %d is id %d, not %d); the KL "
                     "divergence needs one tokenizer: pass --tokenizer FILE to use the same for both", a->base, a->text,
                     a->model, i, i < n ? ids[i] : -1, i < r->n_tokens ? r->tokens[i] : -1);
    free(ids);
    rt_tok_free(t);
    return rc;
}

static int open_base(const ppl_args *a, ppl_run *r, const char *text, size_t len, gm_err *e) {
    gm_pipeline_opts po = {.level = GM_DEFAULT_LEVEL, .target = gm_backend_target(a->base_backend)};
    if (!(r->base.m = gm_model_open_with(a->base, a->base_weights, &po, e))) return -1;
    const ir_graph *g = r->model.m->graph, *gb = r->base.m->graph;
    if (gb->vocab != g->vocab)
        return gm_fail(e, "--base %s: the base has a vocabulary of %lld ids but %s has %lld; the KL divergence "
                       "needs one vocabulary (the same tokenizer)", a->base, (long long)gb->vocab, a->model,
                       (long long)g->vocab);
    if (r->context > gb->max_context)
        return gm_fail(e, "--context %d exceeds the base %s's context of %lld positions; pass at most that",
                       r->context, a->base, (long long)gb->max_context);
    return a->tokenizer ? 0 : check_base_tokens(a, r, text, len, e);
}

static int open_engine(side *s, const char *backend, int context, int no_cache, gm_err *e) {
    s->en = gm_model_engine(s->m, backend, &(rt_engine_opts){.context = context, .no_cache = no_cache}, e);
    return s->en ? 0 : -1;
}

/* Models, text, tokens and engines; every check before the slow part. */
static int prepare(const ppl_args *a, ppl_run *r, gm_err *e) {
    gm_pipeline_opts po = a->pipeline;
    po.target = gm_backend_target(a->backend);
    if (!(r->model.m = gm_model_open_with(a->model, a->weights, &po, e)) || pick_context(a, r->model.m, &r->context, e))
        return -1;
    size_t len;
    char *text = gm_read_file(a->text, &len, e);
    int rc = text ? tokenize(a, r, text, len, e) : -1;
    if (!rc && a->base) rc = open_base(a, r, text, len, e);
    free(text);
    if (!rc) rc = open_engine(&r->model, a->backend, r->context, a->no_cache, e);
    if (!rc && a->base) rc = open_engine(&r->base, a->base_backend, r->context, a->no_cache, e);
    return rc;
}

/* Feeds n tokens at pos to every side; rows only when asked. */
static int prefill(ppl_run *r, const int32_t *tokens, int n, int pos, int rows, gm_err *e) {
    side *sides[2] = {&r->model, &r->base};
    for (int s = 0; s < 2 && sides[s]->m; s++)
        if (sides[s]->en->prefill(sides[s]->en, tokens, n, pos, sides[s]->rows, rows, e)) return -1;
    return 0;
}

/* One chunk from an empty cache: the first half without logits, then the
 * scored positions slice by slice, each row scored against the next token. */
static int run_chunk(ppl_run *r, const int32_t *chunk, int slice, gm_err *e) {
    int first = r->context / 2;
    int64_t V = r->model.en->vocab;
    if (prefill(r, chunk, first, 0, 0, e)) return -1;
    for (int p = first; p < r->context - 1; p += slice) {
        int n = r->context - 1 - p < slice ? r->context - 1 - p : slice;
        if (prefill(r, chunk + p, n, p, 1, e)) return -1;
        for (int i = 0; i < n; i++)
            ppl_add(&r->stats, r->model.rows + i * V, r->base.m ? r->base.rows + i * V : NULL, V, chunk[p + i + 1]);
    }
    return 0;
}

/* Every chunk, printing the running perplexity after each as llama.cpp does. */
static int evaluate(const ppl_args *a, ppl_run *r, gm_err *e) {
    int64_t V = r->model.en->vocab, scored = r->context - 1 - r->context / 2;
    int slice = (int)(SLICE_BYTES / (V * (int64_t)sizeof(float)));
    slice = slice < 1 ? 1 : slice > scored ? (int)scored : slice;
    r->model.rows = gm_malloc(slice * V * sizeof(float));
    if (r->base.m) r->base.rows = gm_malloc(slice * V * sizeof(float));
    r->chunk_ppl = gm_malloc(r->chunks * sizeof *r->chunk_ppl);
    int32_t *chunk = gm_malloc(r->context * sizeof *chunk);
    FILE *progress = a->json ? stderr : stdout;
    double t0 = gm_now_s();
    int rc = 0, c;
    for (c = 0; c < r->chunks; c++) {
        memcpy(chunk, r->tokens + (int64_t)c * r->context, r->context * sizeof *chunk);
        if (r->bos >= 0) chunk[0] = r->bos;
        if ((rc = run_chunk(r, chunk, slice, e))) break;
        r->chunk_ppl[c] = ppl_model(&r->stats).value;
        fprintf(progress, "[%d]%.4f,", c + 1, r->chunk_ppl[c]);
        fflush(progress);
    }
    if (c) fputc('\n', progress);
    r->seconds = gm_now_s() - t0;
    free(chunk);
    return rc;
}

static void print_text(ppl_run *r) {
    ppl_estimate p = ppl_model(&r->stats);
    printf("perplexity: %.4f ± %.5f over %lld tokens (%d chunk%s of %d)\n", p.value, p.se, (long long)r->stats.count,
           r->chunks, r->chunks == 1 ? "" : "s", r->context);
    if (!r->base.m) return;
    ppl_stats *s = &r->stats;
    ppl_estimate b = ppl_base(s), q = ppl_ratio(s), kl = ppl_mean_kl(s), top = ppl_top1(s);
    printf("base perplexity: %.4f ± %.5f\n", b.value, b.se);
    printf("perplexity ratio (model / base): %.6f ± %.2g\n", q.value, q.se);
    printf("KL divergence (base || model): mean %.6g ± %.2g, median %.6g, max %.6g\n", kl.value, kl.se,
           ppl_median_kl(s), ppl_max_kl(s));
    printf("top-1 agreement: %.3f ± %.3f %%\n", 100 * top.value, 100 * top.se);
}

static void add_estimate(cJSON *j, const char *name, ppl_estimate x, double scale) {
    char se[64];
    snprintf(se, sizeof se, "%s_se", name);
    cJSON_AddNumberToObject(j, name, scale * x.value);
    cJSON_AddNumberToObject(j, se, scale * x.se);
}

static void print_json(const ppl_args *a, ppl_run *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", a->model);
    cJSON_AddStringToObject(j, "text", a->text);
    cJSON_AddStringToObject(j, "backend", a->backend);
    cJSON_AddNumberToObject(j, "context", r->context);
    cJSON_AddNumberToObject(j, "chunks", r->chunks);
    cJSON_AddNumberToObject(j, "text_tokens", r->n_tokens);
    cJSON_AddNumberToObject(j, "tokens", (double)r->stats.count);
    add_estimate(j, "ppl", ppl_model(&r->stats), 1);
    cJSON_AddItemToObject(j, "chunk_ppl", cJSON_CreateDoubleArray(r->chunk_ppl, r->chunks));
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    if (r->base.m) {
        cJSON_AddStringToObject(j, "base", a->base);
        cJSON_AddStringToObject(j, "base_backend", a->base_backend);
        add_estimate(j, "base_ppl", ppl_base(&r->stats), 1);
        add_estimate(j, "ppl_ratio", ppl_ratio(&r->stats), 1);
        add_estimate(j, "kl_mean", ppl_mean_kl(&r->stats), 1);
        cJSON_AddNumberToObject(j, "kl_median", ppl_median_kl(&r->stats));
        cJSON_AddNumberToObject(j, "kl_max", ppl_max_kl(&r->stats));
        add_estimate(j, "top1_percent", ppl_top1(&r->stats), 100);
    }
    char *text = cJSON_Print(j);
    puts(text);
    free(text);
    cJSON_Delete(j);
}

static void free_side(side *s) {
    if (s->en) s->en->free(s->en);
    gm_model_free(s->m);
    free(s->rows);
}

int cmd_perplexity(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return cli_help(usage);
    ppl_args a = {.backend = "jit", .pipeline = {.level = GM_DEFAULT_LEVEL}};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    cli_use_threads(a.threads);
    gm_err e;
    ppl_run r = {0};
    if (prepare(&a, &r, &e) || evaluate(&a, &r, &e)) rc = cli_error(&e);
    else {
        gm_say("%d chunk%s of %d tokens in %.2f s (%.1f tok/s per model)\n", r.chunks,
                r.chunks == 1 ? "" : "s", r.context, r.seconds, r.chunks * (r.context - 1) / r.seconds);
        a.json ? print_json(&a, &r) : print_text(&r);
    }
    free_side(&r.model);
    free_side(&r.base);
    free(r.tokens);
    free(r.chunk_ppl);
    ppl_free(&r.stats);
    return rc;
}
