/* main.c — the gemmac command line: dispatch to the subcommands, the shared
 * flag helpers, and `import` / `info`, which only read descriptions.
 *
 *   gemmac import <hf dir | config.json> [-o FILE]   write a model description
 *   gemmac info <description | hf dir> [--plan]      sizes, layers, parameters, arena
 *   gemmac run [model] -p PROMPT | --chat            generate text, or chat
 *   gemmac logits <model> --tokens ...               the logits probe
 *   gemmac grad <model> --tokens ... --targets ...   the loss and every weight's gradient (cmd_grad.c)
 *   gemmac finetune <model> --data P.tsv -o OUT      LoRA or full fine-tuning (cmd_finetune.c, train.c)
 *   gemmac perplexity <model> <text>                 perplexity, and KL against --base (cmd_perplexity.c)
 *   gemmac bench <model>                             tokens/s, the pass ablation (cmd_bench.c)
 *   gemmac eval <task> <model>                       a benchmark, batched (cmd_eval.c)
 *   gemmac tokenize <tokenizer.model> [--decode]     SentencePiece ids
 *   gemmac compile <model> -o NAME                   an AOT executable
 *   gemmac quantize <model> --to TYPE -o OUT.gguf    a GGUF of another type (cmd_quantize.c)
 *   gemmac targets                                   the targets compile knows
 *   gemmac cache [list | clear [jit|packed]]         the on-disk caches (cmd_cache.c) */
#include "cli.h"
#include "frontend.h"
#include "import.h"
#include "json_format.h"
#include "model.h"
#include "quantize.h"
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>

static int cmd_targets(int argc, char **argv) {
    if (argc > 1 && !cli_is(argv[1], "--help") && !cli_is(argv[1], "-h"))
        return cli_usage_error("targets", "unexpected argument %s (targets takes none)", argv[1]);
    gm_targets_print(stdout);
    return 0;
}

static const struct {
    const char *name, *summary;
    int (*run)(int, char **);
} commands[] = {
    {"import", "write a model description from a Hugging Face config", cmd_import},
    {"info", "print a model's sizes, layer kinds and parameter count", cmd_info},
    {"run", "generate text from a prompt, or chat (the embedded demo without a model)", cmd_run},
    {"logits", "greedy continuation and raw logits of a token prompt", cmd_logits},
    {"grad", "the training loss of a token sequence and d loss / d w of every weight", cmd_grad},
    {"finetune", "fine-tune a model on INPUT<TAB>OUTPUT pairs (LoRA or full), AdamW, resumable", cmd_finetune},
    {"perplexity", "perplexity of a text (llama.cpp's protocol), and KL divergence against a base model", cmd_perplexity},
    {"bench", "prefill and decode tokens/s of every backend, with the bandwidth bound", cmd_bench},
    {"eval", "a benchmark (GSM8K, en-fr chrF) as its authors run it, batched, resumable", cmd_eval},
    {"tokenize", "SentencePiece: text lines to ids (or back with --decode)", cmd_tokenize},
    {"quantize", "write a model as a llama.cpp GGUF of another type (q4_k_m, q8_0, ...)", cmd_quantize},
    {"compile", "compile a model ahead of time to a standalone executable", cmd_compile},
    {"targets", "list the targets compile knows, their weight layout and engine", cmd_targets},
    {"cache", "list or clear the JIT and packed-weight caches (~/.cache/gemmac)", cmd_cache},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static int help_asked(int argc, char **argv, const char *usage) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return fputs(usage, stdout), 1;
    return 0;
}

int cmd_import(int argc, char **argv) {
    static const char usage[] =
        "usage: gemmac import <hf checkpoint dir | config.json | model.gguf> [-o FILE] [--name NAME]\n"
        "Writes the gemmac model description (docs/model-format.md) of a Hugging Face Gemma\n"
        "checkpoint or a llama.cpp GGUF file: to FILE (atomically), or to stdout. The model is\n"
        "named after its directory or file unless --name is given.\n";
    if (help_asked(argc, argv, usage)) return 0;
    const char *src = NULL, *out = NULL, *name = NULL, *v;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_value(argc, argv, &i, "-o"))) out = v;
        else if ((v = cli_value(argc, argv, &i, "--name"))) name = v;
        else if (argv[i][0] == '-') return cli_usage_error("import", "unknown flag %s", argv[i]);
        else if (!src) src = argv[i];
        else return cli_usage_error("import", "unexpected argument %s", argv[i]);
    }
    if (!src) return cli_usage_error("import", "no checkpoint given");
    gm_err e;
    char *origin = NULL, *ckpt = NULL;
    cJSON *desc = gm_description_load(src, &origin, &ckpt, &e);
    free(origin);
    free(ckpt);
    if (!desc) return cli_error(&e);
    if (name) cJSON_ReplaceItemInObject(desc, "name", cJSON_CreateString(name));
    ir_graph *g = frontend_build(desc, src, &e);
    char *text = g ? json_format(desc) : NULL;
    int rc = 0;
    if (!g) rc = cli_error(&e);
    else if (!out) fputs(text, stdout);
    else if (gm_write_file_atomic(out, text, strlen(text), &e)) rc = cli_error(&e);
    free(text);
    ir_graph_free(g);
    cJSON_Delete(desc);
    return rc;
}

static void print_config(const cJSON *desc) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(desc, "config"), *x;
    cJSON_ArrayForEach(x, c) {
        if (cJSON_IsNumber(x)) printf("  %-16s %.9g\n", x->string, x->valuedouble);
    }
}

static void print_layers(const ir_graph *g) {
    printf("layers: %d\n", g->n_layers);
    for (int i = 0; i < g->n_layers; i++) {
        printf("  %2d %-10s", i, g->layers[i].kind);
        if (g->layers[i].window > 0) printf(" window %.0f", g->layers[i].window);
        putchar('\n');
    }
}

/* One line per activation (its columns, bytes per token, arena offset, live
 * range in node indices), then what the layout costs against a block per
 * activation: per token, and at the model's context length. */
static void print_plan(const ir_graph *g, const char *passes) {
    int64_t *offset = gm_malloc(g->n_values * sizeof *offset), width = ir_arena_layout(g, offset), sum = 0;
    int *first = gm_malloc(g->n_values * sizeof *first), *last = gm_malloc(g->n_values * sizeof *last), n = 0;
    ir_live_ranges(g, first, last);
    printf("arena plan (passes: %s)%s\n", *passes ? passes : "none",
           g->arena_offset ? "" : ": plan_memory did not run, each activation has its own block");
    printf("  %-20s %7s %11s %9s  %s\n", "activation", "columns", "bytes/token", "offset", "live (nodes)");
    for (int v = 0; v < g->n_values; v++) {
        if (offset[v] < 0) continue;
        int64_t cols = ir_value_cols(g, v);
        printf("  %-20s %7lld %11lld %9lld  %d..", g->values[v].name, (long long)cols, (long long)cols * 4,
               (long long)offset[v], first[v]);
        if (last[v] < g->n_nodes) printf("%d\n", last[v]);
        else printf("end\n");
        sum += cols, n++;
    }
    double ctx = (double)g->max_context * 4;
    printf("activations: %d, %lld bytes/token one block each\n", n, (long long)sum * 4);
    printf("arena: %lld bytes/token (%.1f%% of that, %.1f%% saved)\n", (long long)width * 4,
           sum ? 100.0 * width / sum : 0, sum ? 100.0 - 100.0 * width / sum : 0);
    printf("at the context of %lld tokens: arena %.1f MB, one block each %.1f MB\n", (long long)g->max_context,
           width * ctx / 1e6, sum * ctx / 1e6);
    free(offset);
    free(first);
    free(last);
}

typedef struct {
    const char *path;
    int ir, plan, passes_given;
    gm_pipeline_opts po;
} info_args;

static int parse_info_args(int argc, char **argv, info_args *a) {
    for (int i = 1; i < argc; i++) {
        if (cli_is(argv[i], "--ir")) a->ir = 1;
        else if (cli_is(argv[i], "--plan")) a->plan = 1;
        else if (cli_pipeline_flag(argc, argv, &i, &a->po)) a->passes_given = 1;
        else if (argv[i][0] == '-') return cli_usage_error("info", "unknown flag %s", argv[i]);
        else if (!a->path) a->path = argv[i];
        else return cli_usage_error("info", "unexpected argument %s", argv[i]);
    }
    return a->path ? cli_check_options("info", &a->po) : cli_usage_error("info", "expected one model path");
}

int cmd_info(int argc, char **argv) {
    static const char usage[] =
        "usage: gemmac info <description.json | hf checkpoint dir | config.json> [--ir] [--plan] [-O0|-O1|-O2]\n"
        "                   [--passes LIST]\n"
        "Prints the model's sizes, the kind of each layer and the exact parameter count;\n"
        "with --ir, the unrolled tensor IR as well. With --plan (or any pass flag) the IR\n"
        "goes through the passes first (-O2 unless told), and --plan prints the activation\n"
        "arena: each activation's columns, bytes per token, offset and live range, and the\n"
        "arena's size against one block per activation.\n";
    if (help_asked(argc, argv, usage)) return 0;
    info_args a = {.po = {.level = GM_DEFAULT_LEVEL}};
    int rc = parse_info_args(argc, argv, &a);
    if (rc) return rc;
    gm_err e;
    char *origin = NULL, *ckpt = NULL, applied[256] = "";
    cJSON *desc = gm_description_load(a.path, &origin, &ckpt, &e);
    ir_graph *g = desc ? frontend_build(desc, origin, &e) : NULL;
    if (g && (a.plan || a.passes_given) && pipeline_run(g, &a.po, applied, sizeof applied, &e)) {
        ir_graph_free(g);
        g = NULL;
    }
    if (!g) rc = cli_error(&e);
    else {
        printf("model: %s (%s)\nconfig:\n", g->name, origin);
        print_config(desc);
        print_layers(g);
        printf("ops: %d, kv cache slots: %d\nparameters: %lld\n", g->n_nodes, g->n_cache_slots,
               (long long)ir_param_count(g));
        if (a.ir) ir_print(g, stdout);
        if (a.plan) print_plan(g, applied);
    }
    ir_graph_free(g);
    cJSON_Delete(desc);
    free(origin);
    free(ckpt);
    return rc;
}

static void usage(FILE *out) {
    fprintf(out, "gemmac %s — a compiler for Gemma language models\n\nusage: gemmac <command> [args]\n\n", GM_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`gemmac <command> --help` documents each command's flags.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr), 2;
    if (cli_is(argv[1], "--help") || cli_is(argv[1], "-h") || cli_is(argv[1], "help")) return usage(stdout), 0;
    if (cli_is(argv[1], "--version")) return printf("gemmac %s\n", GM_VERSION), 0;
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "gemmac: unknown command \"%s\"; see gemmac --help\n", argv[1]);
    return 2;
}
