/* cmd_grad.c — `gemmac grad`, the gradient probe: the training counterpart
 * of the logits probe, for tests and for checks against other
 * implementations. It differentiates the model's graph (passes/
 * differentiate.c; no pass runs before it, so every gradient belongs to a
 * checkpoint tensor), runs it on one token sequence with the reference
 * backend (or, --backend jit, fused and compiled as finetune runs it),
 * prints the loss and writes d loss / d w of every weight, f32, under the
 * checkpoint's own tensor names.
 *
 * The loss is the mean cross-entropy of predicting token i from the
 * positions before it, over the positions i whose target flag is 1: a
 * prompt's flags are 0 and its answer's 1. With --lora-rank the graph gets
 * the adapters `finetune` trains (passes/lora.c) at their start, A drawn
 * from --seed and B zero, and only their gradients are written. */
#include "cli.h"
#include "cli_number.h"
#include "train.h"
#include "backends/reference/reference.h"
#include "runtime/safetensors.h"

#include <stdio.h>
#include <stdlib.h>

static const char usage[] =
    "usage: gemmac grad <model> --tokens ID,ID,... --targets 0|1,... [--out FILE] [--lora-rank R]\n"
    "  <model>          a Hugging Face checkpoint dir, its config.json, a .gguf, or a description .json\n"
    "  --tokens         the sequence as token ids (include BOS yourself)\n"
    "  --targets        one flag per token: 1 where the token is predicted (scored) from the\n"
    "                   ones before it, 0 elsewhere; the first must be 0\n"
    "  --out FILE       write d loss / d w of every weight, f32, under the checkpoint's tensor\n"
    "                   names (safetensors)\n"
    "  --lora-rank R    the gradients of LoRA adapters of rank R instead (A and B of each\n"
    "                   layer matrix, at finetune's start: B zero, so only B's are non-zero)\n"
    "  --lora-alpha A   the adapters' scale is A / R (default 2R)\n"
    "  --seed S         the adapters' A (default 0, as finetune)\n"
    "  --weights DIR    the checkpoint, when <model> is a description\n"
    "  --backend B      reference (default: f32 with sums in double, the oracle) or jit (the\n"
    "                   training graph fused and compiled by LLVM, as finetune runs it)\n"
    "  --no-cache       jit: neither read nor write the on-disk cache of compiled code\n"
    "Prints the loss (mean cross-entropy over the scored tokens, in nats) on stdout.\n";

typedef struct {
    const char *model, *tokens, *targets, *out, *weights, *backend;
    int lora_rank, seed, no_cache;
    float alpha;
} grad_args;

static int parse_args(int argc, char **argv, grad_args *a) {
    const char *v;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_value(argc, argv, &i, "--tokens"))) a->tokens = v;
        else if ((v = cli_value(argc, argv, &i, "--targets"))) a->targets = v;
        else if ((v = cli_value(argc, argv, &i, "--out"))) a->out = v;
        else if ((v = cli_value(argc, argv, &i, "--weights"))) a->weights = v;
        else if ((v = cli_value(argc, argv, &i, "--backend"))) a->backend = v;
        else if (cli_is(argv[i], "--no-cache")) a->no_cache = 1;
        else if ((v = cli_value(argc, argv, &i, "--lora-rank"))) {
            if (cli_int_flag("grad", "--lora-rank", v, 1, 4096, &a->lora_rank)) return 2;
        } else if ((v = cli_value(argc, argv, &i, "--seed"))) {
            if (cli_int_flag("grad", "--seed", v, 0, INT32_MAX, &a->seed)) return 2;
        } else if ((v = cli_value(argc, argv, &i, "--lora-alpha"))) {
            if (cli_float(v, &a->alpha) || a->alpha <= 0)
                return cli_usage_error("grad", "--lora-alpha: expected a number > 0, found \"%s\"", v);
        } else if (argv[i][0] == '-') return cli_usage_error("grad", "unknown flag %s", argv[i]);
        else if (!a->model) a->model = argv[i];
        else return cli_usage_error("grad", "unexpected argument %s", argv[i]);
    }
    if (!a->model) return cli_usage_error("grad", "no model given");
    if (!a->tokens || !a->targets) return cli_usage_error("grad", "--tokens and --targets are required");
    if (a->backend && strcmp(a->backend, "reference") && strcmp(a->backend, "jit"))
        return cli_usage_error("grad", "--backend %s: gradients run on reference (the default) or jit", a->backend);
    return 0;
}

/* The target id of each position from the flags: position t predicts token t+1 where its flag is 1. */
static int target_ids(const grad_args *a, const int32_t *ids, int n, int32_t **out) {
    int32_t *flags = NULL;
    int nf = 0, scored = 0;
    if (cli_int_list(a->targets, 0, 1, &flags, &nf))
        return cli_usage_error("grad", "--targets: expected comma-separated 0s and 1s, found \"%s\"", a->targets);
    for (int t = 0; t < nf; t++) scored += flags[t];
    int rc = nf != n    ? cli_usage_error("grad", "--targets has %d flags for %d tokens: expected one per token", nf, n)
             : flags[0] ? cli_usage_error("grad", "--targets: the first flag must be 0 (no position predicts the first token)")
             : !scored  ? cli_usage_error("grad", "--targets: no flag is 1, so no token is scored")
                        : 0;
    if (rc) return free(flags), rc;
    train_targets_from_flags(ids, flags, n);
    *out = flags;
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(((const gm_tensor *)a)->name, ((const gm_tensor *)b)->name); }

/* Every weight's gradient, sorted by tensor name, to path. */
static int write_grads(const ir_graph *g, float *const *act, const char *path, gm_err *e) {
    gm_tensor *ts = gm_calloc(g->n_values, sizeof *ts);
    int n = 0;
    for (int v = 0; v < g->n_values; v++) {
        const ir_value *x = &g->values[v];
        if (!x->grad_of) continue;
        gm_tensor *t = &ts[n++];
        *t = (gm_tensor){.name = x->grad_of, .dtype = GM_F32, .ndim = x->ndim, .data = act[v],
                         .nbytes = (size_t)ir_value_elems(x) * sizeof(float)};
        for (int d = 0; d < x->ndim; d++) t->shape[d] = x->dims[d];
    }
    qsort(ts, n, sizeof *ts, by_name);
    int rc = st_write(path, ts, n, e);
    free(ts);
    return rc;
}

int cmd_grad(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return cli_help(usage);
    grad_args a = {0};
    int rc = parse_args(argc, argv, &a);
    int32_t *ids = NULL, *targets = NULL;
    int n = 0;
    if (!rc && cli_int_list(a.tokens, 0, INT32_MAX, &ids, &n))
        rc = cli_usage_error("grad", "--tokens: expected comma-separated ids, found \"%s\"", a.tokens);
    if (!rc) rc = target_ids(&a, ids, n, &targets);
    gm_err e;
    trainer *t = NULL;
    float *const *act = NULL;
    if (!rc) {
        train_opts o = {.lora_rank = a.lora_rank, .lora_alpha = a.alpha > 0 ? a.alpha : 2.0 * a.lora_rank,
                        .seed = (uint64_t)a.seed, .backend = a.backend, .no_cache = a.no_cache};
        t = train_open(a.model, a.weights, &o, &e);
        if (t) act = t->run->run(t->run, &(rt_batch){ids, targets, NULL, n, 0}, &e);
        rc = act && (!a.out || !write_grads(t->g, act, a.out, &e)) ? 0 : cli_error(&e);
    }
    if (!rc) printf("loss %.9g\n", act[t->g->loss][0]);
    train_free(t);
    free(ids);
    free(targets);
    return rc;
}
