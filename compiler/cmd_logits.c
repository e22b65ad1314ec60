/* cmd_logits.c — `gemmac logits`, the logits probe: a stable interface for
 * tests and outside checks. It prefills a token prompt, decodes greedily
 * (argmax, ties to the lowest id, no stop at EOS) with the KV cache, prints
 * the continuation as comma-separated ids, and writes raw little-endian f32
 * logits: --out gets [steps][vocab], row s being the distribution that picked
 * continuation[s]; --prefill-out gets [T][vocab], one row per prompt position.
 * That is the layout of the oracle's expected_logits.f32 and
 * expected_prefill_logits.f32. */
#include "cli.h"
#include "cli_number.h"
#include "model.h"
#include "runtime/sampler.h"

#include <stdio.h>
#include <stdlib.h>

static const char usage[] =
    "usage: gemmac logits <model> --tokens ID,ID,... [--steps N] [--out FILE]\n"
    "                     [--prefill-out FILE] [--backend NAME] [--weights DIR] [--context N]\n"
    "  <model>          a Hugging Face checkpoint dir, its config.json, or a description .json\n"
    "  --tokens         the prompt as token ids (include BOS yourself)\n"
    "  --steps N        greedy steps to take (default 16)\n"
    "  --out FILE       write the logits of each step, f32 [steps][vocab]\n"
    "  --prefill-out F  write the logits of every prompt position, f32 [T][vocab]\n"
    "  --backend NAME   jit (default), reference or nvptx (an NVIDIA GPU)\n"
    "  --weights DIR    the checkpoint, when <model> is a description\n"
    "  --context N      KV cache positions (default: prompt + steps)\n"
    "  --no-cache       compile the kernels and pack the weights afresh: neither read nor\n"
    "                   write the JIT cache or the packed-weight cache\n"
    CLI_PIPELINE_HELP
    "Prints the continuation as comma-separated ids on stdout.\n";

typedef struct {
    const char *model, *tokens, *out, *prefill_out, *backend, *weights;
    int steps, context, no_cache;
    gm_pipeline_opts pipeline;
} probe_args;

static int parse_args(int argc, char **argv, probe_args *a) {
    const char *v;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_value(argc, argv, &i, "--tokens"))) a->tokens = v;
        else if ((v = cli_value(argc, argv, &i, "--out"))) a->out = v;
        else if ((v = cli_value(argc, argv, &i, "--prefill-out"))) a->prefill_out = v;
        else if ((v = cli_value(argc, argv, &i, "--backend"))) a->backend = v;
        else if ((v = cli_value(argc, argv, &i, "--weights"))) a->weights = v;
        else if (cli_pipeline_flag(argc, argv, &i, &a->pipeline)) continue;
        else if (cli_is(argv[i], "--no-cache")) a->no_cache = 1;
        else if ((v = cli_value(argc, argv, &i, "--steps"))) {
            if (cli_int_flag("logits", "--steps", v, 1, 1 << 24, &a->steps)) return 2;
        } else if ((v = cli_value(argc, argv, &i, "--context"))) {
            if (cli_int_flag("logits", "--context", v, 1, 1 << 24, &a->context)) return 2;
        } else if (argv[i][0] == '-') return cli_usage_error("logits", "unknown flag %s", argv[i]);
        else if (!a->model) a->model = argv[i];
        else return cli_usage_error("logits", "unexpected argument %s", argv[i]);
    }
    if (!a->model) return cli_usage_error("logits", "no model given");
    if (!a->tokens) return cli_usage_error("logits", "--tokens is required");
    return cli_check_backend("logits", "--backend", a->backend) ? 2 : cli_check_options("logits", &a->pipeline);
}

/* Prefill, then steps-1 decodes; fills cont[steps] and rows [steps][vocab]. */
static int run_probe(rt_engine *en, const int32_t *ids, int n, int steps, float *rows,
                     float *prefill_rows, int32_t *cont, gm_err *e) {
    int64_t V = en->vocab;
    if (prefill_rows) {
        if (en->prefill(en, ids, n, 0, prefill_rows, 1, e)) return -1;
        memcpy(rows, prefill_rows + (n - 1) * V, V * sizeof(float));
    } else if (en->prefill(en, ids, n, 0, rows, 0, e)) return -1;
    cont[0] = rt_argmax(rows, V);
    for (int s = 1; s < steps; s++) {
        if (en->decode(en, cont[s - 1], n + s - 1, rows + s * V, e)) return -1;
        cont[s] = rt_argmax(rows + s * V, V);
    }
    return 0;
}

int cmd_logits(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return cli_help(usage);
    probe_args a = {.backend = "jit", .steps = 16, .pipeline = {.level = GM_DEFAULT_LEVEL}};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    int32_t *ids = NULL;
    int n = 0;
    if (cli_int_list(a.tokens, 0, INT32_MAX, &ids, &n))
        return cli_usage_error("logits", "--tokens: expected comma-separated ids, found \"%s\"", a.tokens);
    gm_err e;
    a.pipeline.target = gm_backend_target(a.backend);
    gm_model *m = gm_model_open_with(a.model, a.weights, &a.pipeline, &e);
    int context = a.context ? a.context : n + a.steps;
    rt_engine *en = NULL;
    if (m && n + a.steps > context)
        gm_fail(&e, "prompt of %d tokens + %d steps exceeds --context %d", n, a.steps, context);
    else if (m && context > m->graph->max_context)
        gm_fail(&e, "prompt of %d tokens + %d steps exceeds the model's context of %lld positions (config.max_context)",
                n, a.steps, (long long)m->graph->max_context);
    else if (m) en = gm_model_engine(m, a.backend, &(rt_engine_opts){.context = context, .no_cache = a.no_cache}, &e);
    if (!en) {
        free(ids);
        gm_model_free(m);
        return cli_error(&e);
    }
    int64_t V = en->vocab;
    float *rows = gm_malloc(a.steps * V * sizeof(float));
    float *prefill_rows = a.prefill_out ? gm_malloc(n * V * sizeof(float)) : NULL;
    int32_t *cont = gm_malloc(a.steps * sizeof(int32_t));
    rc = run_probe(en, ids, n, a.steps, rows, prefill_rows, cont, &e);
    if (!rc && a.out) rc = gm_write_file_atomic(a.out, rows, a.steps * V * sizeof(float), &e);
    if (!rc && a.prefill_out) rc = gm_write_file_atomic(a.prefill_out, prefill_rows, n * V * sizeof(float), &e);
    if (rc) rc = cli_error(&e);
    else
        for (int s = 0; s < a.steps; s++) printf("%d%c", cont[s], s + 1 < a.steps ? ',' : '\n');
    free(rows);
    free(prefill_rows);
    free(cont);
    free(ids);
    en->free(en);
    gm_model_free(m);
    return rc;
}
