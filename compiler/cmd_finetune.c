/* cmd_finetune.c — `gemmac finetune`: supervised fine-tuning on pairs.
 *
 * Each line of --data is INPUT<TAB>OUTPUT. The template places them in one
 * sequence ("{in}" and "{out}"); what comes before {out} is the prompt, read
 * but not scored, and the output and EOS are the targets. With --text the
 * data is plain text instead, cut into pieces of --seq tokens, every token
 * a target (training a language model, e.g. models/demo from its corpus). A step takes
 * --batch pairs (in an order shuffled per epoch from --seed), adds their
 * gradients (train.h) and takes one AdamW step. Every --save-every steps and
 * at the end the state goes to OUT.state (atomically), so an interrupted run
 * loses only the steps since, and --resume carries on bit for bit; at the
 * end the fine-tuned checkpoint goes to OUT. */
#include "cli.h"
#include "cli_number.h"
#include "train.h"
#include "runtime/tokenizer.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char usage[] =
    "usage: gemmac finetune <checkpoint> --data PAIRS.tsv -o OUT [--lora-rank R | --full]\n"
    "                       [--steps N] [--batch B] [--lr X] [--seq N] [--template TEXT] [--resume]\n"
    "  <checkpoint>       a Hugging Face checkpoint dir, a .gguf, or a description .json (with --weights)\n"
    "  --data FILE        one pair a line: INPUT<TAB>OUTPUT\n"
    "  --text             --data is plain text: its tokens in pieces of --seq (BOS first), all scored\n"
    "  -o OUT             the fine-tuned checkpoint: a .gguf for a GGUF base, else a directory\n"
    "                     (config.json, model.safetensors, tokenizer.model); the training state\n"
    "                     goes to OUT.state\n"
    "  --lora-rank R      train LoRA adapters of rank R on the layers' matrices, the base frozen\n"
    "                     (default 8), merged into OUT at the end\n"
    "  --lora-alpha A     the adapters add (A / R) · B·A (default: 2R)\n"
    "  --full             train every weight instead (f32 master weights)\n"
    "  --steps N          AdamW steps in all, counting those of a resumed run (default 100)\n"
    "  --batch B          pairs per step, their gradients summed (default 8)\n"
    "  --lr X             learning rate (default 5e-4 with LoRA, 5e-5 with --full)\n"
    "  --warmup N         raise the rate linearly over the first N steps (default 0)\n"
    "  --cosine           then let it fall along a cosine to 0 at --steps (default: constant)\n"
    "  --weight-decay W   AdamW's decoupled weight decay (default 0.01)\n"
    "  --seq N            the longest sequence, template and both sides (default 256)\n"
    "  --template TEXT    how a pair becomes a sequence, with {in} and {out} once each; \\n and \\t\n"
    "                     are newline and tab (default \"{in}\\n{out}\")\n"
    "  --save-every N     write OUT.state every N steps (default 25)\n"
    "  --seed S           the data order and the adapters' start (default 0)\n"
    "  --resume           carry on from OUT.state\n"
    "  --loss-svg FILE    draw the loss of every step so far\n"
    "  --eval-data FILE   held-out data, as --data: its loss (no training) every --eval-every steps\n"
    "  --eval-every N     (default: --save-every) and at the end\n"
    "  --backend B        jit (default: the training graph fused and compiled by LLVM) or\n"
    "                     reference (f32 with sums in double, the oracle; slower)\n"
    "  --no-cache         jit: neither read nor write the on-disk cache of compiled code\n"
    "  --profile          at the end, the training graph's time by op (jit: and its activations' memory)\n"
    "  --weights DIR      the checkpoint, when <checkpoint> is a description\n"
    "  --tokenizer FILE   a tokenizer.model other than the checkpoint's\n"
    "Prints one line a step: step, loss (mean cross-entropy of the targets), rate, tokens/s, ETA.\n";

typedef struct {
    const char *model, *data, *out, *template_text, *weights, *tokenizer, *svg, *eval_data, *backend;
    int no_cache, profile, steps, batch, seq, save_every, resume, full, lora_rank, seed, text, warmup, cosine, eval_every;
    float lr, alpha, weight_decay;
} ft_args;

static int float_flag(const char *flag, const char *v, float *out) {
    if (cli_float(v, out) || *out < 0) return cli_usage_error("finetune", "%s: expected a number >= 0, found \"%s\"", flag, v);
    return 0;
}

static int parse_args(int argc, char **argv, ft_args *a) {
    const char *v;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        if ((v = cli_value(argc, argv, &i, "--data"))) a->data = v;
        else if ((v = cli_value(argc, argv, &i, "-o"))) a->out = v;
        else if ((v = cli_value(argc, argv, &i, "--template"))) a->template_text = v;
        else if ((v = cli_value(argc, argv, &i, "--weights"))) a->weights = v;
        else if ((v = cli_value(argc, argv, &i, "--tokenizer"))) a->tokenizer = v;
        else if ((v = cli_value(argc, argv, &i, "--loss-svg"))) a->svg = v;
        else if ((v = cli_value(argc, argv, &i, "--eval-data"))) a->eval_data = v;
        else if ((v = cli_value(argc, argv, &i, "--backend"))) a->backend = v;
        else if (cli_is(argv[i], "--no-cache")) a->no_cache = 1;
        else if (cli_is(argv[i], "--profile")) a->profile = 1;
        else if ((v = cli_value(argc, argv, &i, "--eval-every"))) rc = cli_int_flag("finetune", "--eval-every", v, 1, 1 << 30, &a->eval_every);
        else if ((v = cli_value(argc, argv, &i, "--steps"))) rc = cli_int_flag("finetune", "--steps", v, 1, 1 << 30, &a->steps);
        else if ((v = cli_value(argc, argv, &i, "--batch"))) rc = cli_int_flag("finetune", "--batch", v, 1, 1 << 20, &a->batch);
        else if ((v = cli_value(argc, argv, &i, "--seq"))) rc = cli_int_flag("finetune", "--seq", v, 2, 1 << 20, &a->seq);
        else if ((v = cli_value(argc, argv, &i, "--save-every"))) rc = cli_int_flag("finetune", "--save-every", v, 1, 1 << 30, &a->save_every);
        else if ((v = cli_value(argc, argv, &i, "--seed"))) rc = cli_int_flag("finetune", "--seed", v, 0, INT32_MAX, &a->seed);
        else if ((v = cli_value(argc, argv, &i, "--lora-rank"))) rc = cli_int_flag("finetune", "--lora-rank", v, 1, 4096, &a->lora_rank);
        else if ((v = cli_value(argc, argv, &i, "--lora-alpha"))) rc = float_flag("--lora-alpha", v, &a->alpha);
        else if ((v = cli_value(argc, argv, &i, "--lr"))) rc = float_flag("--lr", v, &a->lr);
        else if ((v = cli_value(argc, argv, &i, "--weight-decay"))) rc = float_flag("--weight-decay", v, &a->weight_decay);
        else if (cli_is(argv[i], "--full")) a->full = 1;
        else if (cli_is(argv[i], "--text")) a->text = 1;
        else if (cli_is(argv[i], "--cosine")) a->cosine = 1;
        else if ((v = cli_value(argc, argv, &i, "--warmup"))) rc = cli_int_flag("finetune", "--warmup", v, 0, 1 << 30, &a->warmup);
        else if (cli_is(argv[i], "--resume")) a->resume = 1;
        else if (argv[i][0] == '-') rc = cli_usage_error("finetune", "unknown flag %s", argv[i]);
        else if (!a->model) a->model = argv[i];
        else rc = cli_usage_error("finetune", "unexpected argument %s", argv[i]);
    }
    if (rc) return rc;
    if (!a->model) return cli_usage_error("finetune", "no checkpoint given");
    if (!a->data || !a->out) return cli_usage_error("finetune", "--data and -o are required");
    if (a->full && a->lora_rank) return cli_usage_error("finetune", "--full and --lora-rank exclude each other");
    if (a->text && a->template_text) return cli_usage_error("finetune", "--text takes no --template (text has no pairs)");
    if (a->backend && strcmp(a->backend, "reference") && strcmp(a->backend, "jit"))
        return cli_usage_error("finetune", "--backend %s: training runs on jit (the default) or reference", a->backend);
    return 0;
}

/* ---- the data: pairs, the template, tokens ---- */

typedef struct {
    int32_t *ids, *targets; /* targets[t]: the id position t predicts, or -1 */
    int n;
} example;

typedef struct {
    char *prompt_head, *prompt_tail, *after; /* before {in}, between {in} and {out}, after {out} */
} template;

/* The template with \n and \t read; {in} and {out} must appear once each, {in} first. */
static int parse_template(const char *text, template *t) {
    char *s = gm_strdup(text), *w = s;
    for (const char *r = text; *r; r++) *w++ = r[0] == '\\' && (r[1] == 'n' || r[1] == 't') ? (++r, *r == 'n' ? '\n' : '\t') : *r;
    *w = 0;
    char *in = strstr(s, "{in}"), *out = strstr(s, "{out}");
    if (!in || !out || strstr(in + 1, "{in}") || strstr(out + 1, "{out}") || out < in) {
        free(s);
        return cli_usage_error("finetune", "--template \"%s\": expected {in} and then {out}, once each", text);
    }
    *in = 0, *out = 0;
    *t = (template){gm_strdup(s), gm_strdup(in + 4), gm_strdup(out + 5)};
    free(s);
    return 0;
}

/* Appends the ids of text to ex, scored or not. */
static int append(const rt_tokenizer *tok, const char *text, int scored, example *ex, gm_err *e) {
    int32_t *ids = NULL;
    int n = 0;
    if (*text && rt_tok_encode(tok, text, strlen(text), &ids, &n, e)) return -1;
    ex->ids = gm_realloc(ex->ids, (ex->n + n + 1) * sizeof(int32_t));
    ex->targets = gm_realloc(ex->targets, (ex->n + n + 1) * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        ex->ids[ex->n] = ids[i];
        ex->targets[ex->n++] = scored;
    }
    free(ids);
    return 0;
}

/* One pair as a sequence: BOS, the prompt (its trailing spaces moved to the
 * output, as a model generating after the prompt writes them), the output
 * and EOS (BOS and EOS where the tokenizer has them). targets first holds
 * flags, then becomes the id each position predicts. */
static int make_example(const rt_tokenizer *tok, const template *tp, const char *in, const char *out, example *ex,
                        gm_err *e) {
    gm_buf prompt = {0}, answer = {0};
    gm_buf_printf(&prompt, "%s%s%s", tp->prompt_head, in, tp->prompt_tail);
    size_t keep = prompt.len;
    while (keep && prompt.s[keep - 1] == ' ') keep--;
    gm_buf_printf(&answer, "%s%s%s", prompt.s + keep, out, tp->after);
    prompt.s[keep] = 0;
    ex->n = 0;
    ex->ids = gm_malloc(sizeof(int32_t)), ex->targets = gm_malloc(sizeof(int32_t));
    if (rt_tok_bos(tok) >= 0) ex->ids[0] = rt_tok_bos(tok), ex->targets[ex->n++] = 0;
    int rc = append(tok, prompt.s, 0, ex, e) || append(tok, answer.s, 1, ex, e);
    if (!rc && rt_tok_eos(tok) >= 0) ex->ids[ex->n] = rt_tok_eos(tok), ex->targets[ex->n++] = 1;
    if (!rc) train_targets_from_flags(ex->ids, ex->targets, ex->n);
    free(prompt.s);
    free(answer.s);
    return rc;
}

/* Line `line` of path split at its first tab into in and out; checked. */
static int split_pair(const char *path, int line, char *text, char **in, char **out, gm_err *e) {
    int rc = gm_split_tab(text, in, out);
    if (rc < 0) return gm_fail(e, "%s:%d: no tab: expected INPUT<TAB>OUTPUT", path, line);
    return rc ? gm_fail(e, "%s:%d: the %s is empty", path, line, **in ? "output" : "input") : 0;
}

/* --text: the file's tokens in pieces of seq − 1 after a BOS, each token
 * predicted from those before it (a last piece of one token is dropped). */
static int read_text(const ft_args *a, const rt_tokenizer *tok, example **out, int *n, gm_err *e) {
    size_t len;
    char *text = gm_read_file(a->data, &len, e);
    int32_t *ids = NULL;
    int n_ids = 0;
    if (!text || rt_tok_encode(tok, text, len, &ids, &n_ids, e)) return free(text), 1;
    free(text);
    *n = 0;
    *out = gm_calloc(n_ids / (a->seq - 1) + 1, sizeof **out);
    for (int at = 0; at + 1 < n_ids; at += a->seq - 1) {
        int piece = n_ids - at < a->seq - 1 ? n_ids - at : a->seq - 1;
        example *ex = &(*out)[(*n)++];
        ex->n = piece + 1;
        ex->ids = gm_malloc(ex->n * sizeof(int32_t)), ex->targets = gm_malloc(ex->n * sizeof(int32_t));
        ex->ids[0] = rt_tok_bos(tok);
        memcpy(ex->ids + 1, ids + at, piece * sizeof(int32_t));
        for (int i = 0; i < ex->n; i++) ex->targets[i] = i + 1 < ex->n ? ex->ids[i + 1] : -1;
    }
    free(ids);
    return *n ? 0 : gm_fail(e, "%s: fewer than two tokens of text", a->data);
}

static int read_examples(const ft_args *a, const char *data, const rt_tokenizer *tok, example **out, int *n, gm_err *e) {
    ft_args from = *a;
    from.data = data;
    a = &from;
    if (a->text) return read_text(a, tok, out, n, e);
    template tp = {0};
    if (parse_template(a->template_text, &tp)) return 2;
    size_t len;
    char *text = gm_read_file(a->data, &len, e);
    int rc = text ? 0 : 1, line = 0;
    *n = 0;
    *out = NULL;
    for (char *l = text, *next; l && *l && !rc; l = next) {
        char *nl = strchr(l, '\n'), *in = NULL, *o = NULL;
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        line++;
        size_t ll = strlen(l);
        if (ll && l[ll - 1] == '\r') l[--ll] = 0;
        if (!ll) continue; /* blank lines are skipped */
        *out = gm_realloc(*out, (*n + 1) * sizeof **out);
        example *ex = &(*out)[(*n)++];
        *ex = (example){0};
        rc = split_pair(a->data, line, l, &in, &o, e) || make_example(tok, &tp, in, o, ex, e);
        if (!rc && ex->n > a->seq)
            rc = gm_fail(e, "%s:%d: %d tokens with the template, more than --seq %d; raise --seq or shorten the pair",
                         a->data, line, ex->n, a->seq);
    }
    if (!rc && !*n) rc = gm_fail(e, "%s: no pairs in it; expected lines INPUT<TAB>OUTPUT", a->data);
    free(text);
    free(tp.prompt_head), free(tp.prompt_tail), free(tp.after);
    return rc;
}

static void free_examples(example *ex, int n) {
    for (int i = 0; i < n; i++) free(ex[i].ids), free(ex[i].targets);
    free(ex);
}

/* ---- the run ---- */

/* The example at position q of the data stream: epoch q / n in an order
 * shuffled from the seed and the epoch (Fisher–Yates), the same on resume. */
static int example_at(int64_t q, int n, uint64_t seed) {
    int64_t epoch = q / n;
    uint64_t state = (seed + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)epoch * 0xBF58476D1CE4E5B9ull;
    int *order = gm_malloc(n * sizeof *order), pick;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((state >> 33) % (uint64_t)(i + 1)), x = order[i];
        order[i] = order[j], order[j] = x;
    }
    pick = order[q % n];
    free(order);
    return pick;
}

/* The loss of every step so far as an SVG line chart. */
static int write_svg(const char *path, const float *loss, int64_t n, gm_err *e) {
    double hi = 0, W = 640, H = 360, L = 56, B = 40;
    for (int64_t i = 0; i < n; i++) hi = loss[i] > hi ? loss[i] : hi;
    gm_buf s = {0};
    gm_buf_printf(&s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" "
                      "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    gm_buf_printf(&s, "<text x=\"%g\" y=\"20\">training loss (mean cross-entropy of the targets, nats) by step</text>\n", L);
    gm_buf_printf(&s, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, H - B, W - 16, H - B);
    gm_buf_printf(&s, "<line x1=\"%g\" y1=\"32\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, L, H - B);
    gm_buf_printf(&s, "<text x=\"4\" y=\"36\">%.3g</text><text x=\"4\" y=\"%g\">0</text>\n", hi, H - B);
    gm_buf_printf(&s, "<text x=\"%g\" y=\"%g\">1</text><text x=\"%g\" y=\"%g\">%lld</text>\n", L, H - B + 16, W - 40,
                  H - B + 16, (long long)n);
    gm_buf_puts(&s, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int64_t i = 0; i < n; i++)
        gm_buf_printf(&s, "%.1f,%.1f ", L + (W - 16 - L) * (n > 1 ? (double)i / (n - 1) : 0),
                      H - B - (H - B - 32) * (hi > 0 ? loss[i] / hi : 0));
    gm_buf_puts(&s, "\"/>\n</svg>\n");
    int rc = gm_write_file_atomic(path, s.s, s.len, e);
    free(s.s);
    return rc;
}

typedef struct {
    const ft_args *a;
    trainer *t;
    example *ex, *held; /* the training data, the held-out (or NULL) */
    int n_ex, n_held;
    char *state;
    float *losses; /* by step; kept in the state as train.losses */
} run;

static int save(run *r, gm_err *e) {
    if (train_save(r->t, r->state, e)) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s.losses", r->state);
    return gm_write_file_atomic(path, r->losses, r->t->step * sizeof(float), e);
}

/* The losses of a resumed run's earlier steps, from OUT.state.losses. */
static void load_losses(run *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s.losses", r->state);
    gm_err ignored;
    size_t len;
    char *data = gm_read_file(path, &len, &ignored);
    if (data) memcpy(r->losses, data, len < r->t->step * sizeof(float) ? len : r->t->step * sizeof(float));
    free(data);
}

/* The rate of step s (from 0): the linear warmup, then constant or a cosine down to 0 at --steps. */
static double rate_at(const ft_args *a, double lr, int64_t s) {
    if (s < a->warmup) return lr * (double)(s + 1) / a->warmup;
    if (!a->cosine || a->steps <= a->warmup) return lr;
    return lr * 0.5 * (1 + cos(M_PI * (double)(s - a->warmup) / (a->steps - a->warmup)));
}

/* The mean loss of the held-out examples, packed TRAIN_PACK_ROWS rows a call, printed. */
static int held_out_loss(run *r, gm_err *e) {
    double sum = 0;
    int64_t scored = 0;
    train_pack pack = {0};
    int rc = 0;
    for (int i = 0; i <= r->n_held && !rc; i++) {
        if (pack.rows && (i == r->n_held || pack.rows + r->held[i].n > TRAIN_PACK_ROWS)) {
            rt_batch b = train_pack_batch(&pack, 1);
            rc = train_eval_loss(r->t, &b, &sum, &scored, e);
            pack.rows = 0;
        }
        if (i < r->n_held) train_pack_add(&pack, r->held[i].ids, r->held[i].targets, r->held[i].n);
    }
    train_pack_free(&pack);
    if (!rc) fprintf(stderr, "step %lld/%d  held-out loss %.4f over %lld tokens\n", (long long)r->t->step, r->a->steps,
                     scored ? sum / (double)scored : 0, (long long)scored);
    return rc;
}

static int train_steps(run *r, gm_err *e) {
    const ft_args *a = r->a;
    trainer *t = r->t;
    double start = gm_now_s(), lr = t->o.lr;
    int64_t first = t->step, tokens = 0;
    while (t->step < a->steps) {
        t->o.lr = rate_at(a, lr, t->step);
        for (int b = 0; b < a->batch; b++) {
            const example *x = &r->ex[example_at(t->step * a->batch + b, r->n_ex, (uint64_t)a->seed)];
            if (train_add(t, x->ids, x->targets, x->n, e)) return -1;
            tokens += x->n;
        }
        double loss;
        if (train_step(t, &loss, e)) return -1;
        double rate = tokens / (gm_now_s() - start);
        r->losses[t->step - 1] = (float)loss;
        double eta = (double)(a->steps - t->step) * (gm_now_s() - start) / (double)(t->step - first);
        fprintf(stderr, "step %lld/%d  loss %.4f  lr %.3g  %.0f tok/s  ETA %dm%02ds\n", (long long)t->step, a->steps, loss,
                t->o.lr, rate, (int)eta / 60, (int)eta % 60);
        if ((t->step % a->save_every == 0 || t->step == a->steps) && save(r, e)) return -1;
        if (r->held && (t->step % a->eval_every == 0 || t->step == a->steps) && held_out_loss(r, e)) return -1;
    }
    t->o.lr = lr;
    return 0;
}

/* --profile: seconds by op over the run, the largest first, and the activations' memory. */
static void print_profile(rt_profile *p, const rt_trainer *t) {
    double total = 0;
    for (int i = 0; i < p->n; i++) total += p->seconds[i];
    fprintf(stderr, "profile: %.1f s in the training graph's ops", total);
    if (t->activation_bytes) fprintf(stderr, "; activations %.0f MB", t->activation_bytes / 1e6);
    fputc('\n', stderr);
    for (int done = 0; done < p->n; done++) {
        int top = done;
        for (int i = done + 1; i < p->n; i++) top = p->seconds[i] > p->seconds[top] ? i : top;
        const char *name = p->name[top];
        double sec = p->seconds[top];
        p->name[top] = p->name[done], p->seconds[top] = p->seconds[done];
        p->name[done] = name, p->seconds[done] = sec;
        fprintf(stderr, "  %-18s %8.2f s  %5.1f %%\n", name, sec, 100 * sec / total);
    }
}

static int finetune(const ft_args *a, gm_err *e) {
    train_opts o = {.lora_rank = a->full ? 0 : a->lora_rank ? a->lora_rank : 8, .lr = a->lr, .weight_decay = a->weight_decay,
                    .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .seed = (uint64_t)a->seed,
                    .backend = a->backend ? a->backend : "jit", .no_cache = a->no_cache};
    o.lora_alpha = a->alpha > 0 ? a->alpha : 2.0 * o.lora_rank;
    if (!o.lr) o.lr = a->full ? 5e-5 : 5e-4;
    run r = {.a = a, .t = train_open(a->model, a->weights, &o, e)};
    if (!r.t) return -1;
    rt_tokenizer *tok = cli_open_tokenizer(r.t->model, a->tokenizer, a->weights, e);
    int rc = tok ? read_examples(a, a->data, tok, &r.ex, &r.n_ex, e) : 1;
    if (!rc && a->eval_data) rc = read_examples(a, a->eval_data, tok, &r.held, &r.n_held, e);
    r.state = gm_malloc(strlen(a->out) + 16);
    sprintf(r.state, "%s.state", a->out);
    r.losses = gm_calloc(a->steps, sizeof(float));
    if (!rc && a->resume && access(r.state, R_OK))
        rc = gm_fail(e, "%s: no training state to resume; run without --resume to start, or give the -o of the run to "
                        "continue", r.state);
    if (!rc && a->resume && train_load(r.t, r.state, e)) rc = 1;
    if (!rc && r.t->step > a->steps)
        rc = gm_fail(e, "%s: already %lld steps in, more than --steps %d", r.state, (long long)r.t->step, a->steps);
    if (!rc && a->resume) load_losses(&r);
    rt_profile profile = {0};
    r.t->run->profile = a->profile ? &profile : NULL;
    if (!rc) rc = train_steps(&r, e) || train_export(r.t, a->out, e) || (a->svg && write_svg(a->svg, r.losses, r.t->step, e));
    if (!rc && a->profile) print_profile(&profile, r.t->run);
    rt_tok_free(tok);
    free_examples(r.ex, r.n_ex);
    free_examples(r.held, r.n_held);
    free(r.state);
    free(r.losses);
    train_free(r.t);
    return rc;
}

int cmd_finetune(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return cli_help(usage);
    ft_args a = {.steps = 100, .batch = 8, .seq = 256, .save_every = 25, .weight_decay = 0.01f};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (!a.template_text) a.template_text = "{in}\\n{out}";
    if (!a.eval_every) a.eval_every = a.save_every;
    /* Each step allocates and frees the same large activations (logits alone
     * are rows × vocab floats): kept in the heap rather than mapped afresh
     * and zeroed by the kernel each time (13 % of a step on the real 270M). */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, INT32_MAX);
    gm_err e;
    rc = finetune(&a, &e);
    return rc == 2 ? 2 : rc ? cli_error(&e) : 0;
}
