/* cmd_bench.c — `gemmac bench`: how fast a model runs, measured, not claimed.
 *
 * For each backend of the ablation and each prompt length it times prefill
 * (the whole prompt in one call) and decode (gen-tokens single-token calls
 * after that prompt) over several repetitions and reports min / median /
 * max tokens/s. Decode reads every weight once per token, so its speed is
 * bounded by memory bandwidth: the bench measures the machine's read
 * bandwidth (a multi-threaded sum over a buffer larger than the caches,
 * on huge pages where the kernel gives them) before each repetition's
 * decode and every few steps within it, untimed, and takes the highest,
 * since a shared host's bandwidth swings by tens of percent within seconds;
 * it prints decode's effective bandwidth and its share of that bound. Token ids are a fixed pseudo-random sequence, so runs compare. */
#include "cli.h"
#include "model.h"
#include "runtime/threads.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define MAX_LENGTHS 8
#define MAX_CONFIGS 32
#define MAX_REPS 32
#define BW_BYTES ((size_t)1 << 30) /* well past the L3 */
#define PROBE_EVERY 8              /* decode steps between two bandwidth probes */

static const char usage[] =
    "usage: gemmac bench <model> [--prompt-tokens 128,512] [--gen-tokens 64] [--reps 3]\n"
    "                    [--threads N] [--backend jit] [--configs LIST] [--json] [--svg F] [--profile]\n"
    "                    [--weights DIR]\n"
    "  --prompt-tokens L  prompt lengths to time prefill with (comma-separated)\n"
    "  --gen-tokens N     decode steps timed after each prompt (default 64)\n"
    "  --reps N           repetitions; min/median/max are over them (default 3)\n"
    "  --threads N        worker threads (default: $GEMMAC_THREADS or all cores)\n"
    "  --backend NAME     the configuration reported at the top level of --json, with all its passes\n"
    "                     (default jit); the ablation table always runs: reference (the unfused\n"
    "                     interpreter), jit -O0 (no IR passes), then the passes of -O2 added one at\n"
    "                     a time, the cleanup passes first (+eliminate_dead, +plan_memory, then\n"
    "                     +fold_constants, ...), the last row being -O2\n"
    "  --configs LIST     run only the ablation rows whose label contains one of these\n"
    "                     (comma-separated; e.g. reference,-O0,-O2 or -O0,fuse_matmul,-O2)\n"
    "  --json             one JSON object on stdout instead of the table\n"
    "  --svg FILE         also draw the ablation (median prefill and decode tokens/s) as a chart\n"
    "  --profile          also print where each row's time went: wall time per token by op\n"
    "                     (compiled backends; the kernel calls are timed one by one)\n";

typedef struct {
    const char *model, *weights, *backend, *svg, *configs;
    int lengths[MAX_LENGTHS], n_lengths, gen, reps, threads, json, profile;
} bench_args;

typedef struct {
    double min, median, max;
} stat3;

/* One configuration of the ablation: a backend and the passes it runs. */
typedef struct {
    const char *backend;
    char label[48];
    char passes[256];      /* for --passes at -O0: the passes switched on */
} bench_config;

/* The unfused baseline, the JIT without passes, then the JIT with the
 * passes of -O2 switched on one more at a time (so a pass added to the
 * pipeline shows up here); the last one is -O2. The cleanup passes come
 * first: a rewriting pass leaves the nodes it replaced for eliminate_dead,
 * and without it they would still run and hide what the rewrite bought. */
static int ablation_configs(bench_config *cs) {
    int n = 0;
    const char *last = NULL;
    char on[256] = "";
    cs[n++] = (bench_config){"reference", "reference", ""};
    cs[n++] = (bench_config){"jit", "jit -O0", ""};
    for (int j = 0; j < 2 * pipeline_pass_count() && n < MAX_CONFIGS; j++) {
        int i = j % pipeline_pass_count();
        if (pipeline_pass_level(i) > GM_DEFAULT_LEVEL || pipeline_pass_is_cleanup(i) != (j < pipeline_pass_count()))
            continue;
        last = pipeline_pass_name(i);
        snprintf(on + strlen(on), sizeof on - strlen(on), "%s%s", *on ? "," : "", last);
        bench_config *c = &cs[n++];
        *c = (bench_config){"jit", "", ""};
        memcpy(c->passes, on, sizeof on);
        snprintf(c->label, sizeof c->label, "jit +%s", last);
    }
    if (last) snprintf(cs[n - 1].label, sizeof cs[n - 1].label, "jit -O2 (+%s)", last);
    return n;
}

typedef struct {
    const char *backend;   /* the config's label */
    const char *passes;    /* the passes it ran, comma-separated */
    int prompt;
    stat3 prefill, decode;  /* tokens/s */
    stat3 bound;            /* decode's bandwidth / the read bandwidth measured after it */
    double bandwidth;       /* the median read bandwidth, bytes/s */
    double compile_s;
    rt_profile pre, dec;    /* --profile: seconds by op over all repetitions */
} bench_row;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static stat3 stats(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return (stat3){v[0], n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[n - 1]};
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1 << 20 || (*end && *end != ',')) return -1;
        out[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return *s ? -1 : n;
}

static int parse_positive(const char *flag, const char *v, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < 1 || x > 1 << 20)
        return cli_usage_error("bench", "%s: expected a positive integer, found \"%s\"", flag, v);
    *out = (int)x;
    return 0;
}

static int parse_args(int argc, char **argv, bench_args *a) {
    const char *v;
    for (int i = 1; i < argc; i++) {
        int rc = 0;
        if ((v = cli_value(argc, argv, &i, "--prompt-tokens"))) {
            if ((a->n_lengths = parse_list(v, a->lengths, MAX_LENGTHS)) < 1)
                return cli_usage_error("bench", "--prompt-tokens: expected up to %d comma-separated lengths, found \"%s\"",
                                       MAX_LENGTHS, v);
        } else if ((v = cli_value(argc, argv, &i, "--gen-tokens"))) rc = parse_positive("--gen-tokens", v, &a->gen);
        else if ((v = cli_value(argc, argv, &i, "--reps"))) rc = parse_positive("--reps", v, &a->reps);
        else if ((v = cli_value(argc, argv, &i, "--threads"))) rc = parse_positive("--threads", v, &a->threads);
        else if ((v = cli_value(argc, argv, &i, "--backend"))) a->backend = v;
        else if ((v = cli_value(argc, argv, &i, "--configs"))) a->configs = v;
        else if ((v = cli_value(argc, argv, &i, "--weights"))) a->weights = v;
        else if (cli_is(argv[i], "--json")) a->json = 1;
        else if (cli_is(argv[i], "--profile")) a->profile = 1;
        else if ((v = cli_value(argc, argv, &i, "--svg"))) a->svg = v;
        else if (argv[i][0] == '-') return cli_usage_error("bench", "unknown flag %s", argv[i]);
        else if (!a->model) a->model = argv[i];
        else return cli_usage_error("bench", "unexpected argument %s", argv[i]);
        if (rc) return rc;
    }
    if (a->reps > MAX_REPS) return cli_usage_error("bench", "--reps: at most %d", MAX_REPS);
    return a->model ? 0 : cli_usage_error("bench", "no model given");
}

typedef struct {
    const uint64_t *data;
    size_t n;
    uint64_t sums[64];
} sum_job;

typedef uint64_t u64x2 __attribute__((vector_size(16)));

/* Integer sums in four independent 16-byte accumulators: one scalar chain
 * adds 8 bytes a cycle, which on a 2 GHz core is less than memory delivers
 * (measured on a Zen 1 host: 20 GB/s with one chain, 26 with four). */
static void sum_part(void *arg, int part, int parts) {
    sum_job *j = arg;
    const u64x2 *v = (const u64x2 *)j->data;
    size_t lo = j->n / 8 * part / parts * 4, hi = j->n / 8 * (part + 1) / parts * 4;
    u64x2 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (size_t i = lo; i < hi; i += 4) a0 += v[i], a1 += v[i + 1], a2 += v[i + 2], a3 += v[i + 3];
    u64x2 s = a0 + a1 + a2 + a3;
    j->sums[part % 64] = s[0] + s[1];
}

/* The read-bandwidth probe: a buffer past the caches, written once (so
 * really backed), and the threads that sum it. */
typedef struct {
    sum_job job;
    rt_pool *pool;
    size_t weight_bytes;   /* what decode reads per token */
} bw_probe;

/* The probe's buffer, written once (so really backed), on 2 MB pages where
 * the kernel has them: 4 KB pages stop the hardware prefetchers at every
 * page and understate what a stream can get. */
static uint64_t *probe_buffer(void) {
    uint64_t *b = aligned_alloc((size_t)2 << 20, BW_BYTES);
    if (b) madvise(b, BW_BYTES, MADV_HUGEPAGE);
    else b = gm_malloc(BW_BYTES);
    memset(b, 1, BW_BYTES);
    return b;
}

/* Read bandwidth in bytes/s: the better of two passes. */
static double read_bandwidth(bw_probe *p) {
    double best = 0;
    for (int rep = 0; rep < 2; rep++) {
        double t0 = gm_now_s();
        rt_pool_run(p->pool, sum_part, &p->job);
        double bw = BW_BYTES / (gm_now_s() - t0);
        if (bw > best) best = bw;
    }
    return best;
}

static size_t weight_bytes(const gm_model *m, const char **dtype) {
    size_t n = 0;
    *dtype = NULL;
    for (int v = 0; v < m->graph->n_values; v++) {
        const st_tensor *t = m->bound[v];
        if (!t) continue;
        n += t->nbytes;
        const char *name = gm_dtype_name(t->dtype);
        *dtype = !*dtype || !strcmp(*dtype, name) ? name : "mixed";
    }
    return n;
}

/* Times one backend at one prompt length, reps times. */
static int time_backend(rt_engine *en, const int32_t *ids, int prompt, int gen, int reps, int profile,
                        bw_probe *p, bench_row *row, gm_err *e) {
    double pre[MAX_REPS], dec[MAX_REPS], bw[MAX_REPS], bound[MAX_REPS];
    float *logits = gm_malloc(en->vocab * sizeof(float));
    /* warm-up: a short call reads every weight once, so no repetition pays for page faults */
    int rc = en->prefill(en, ids, prompt < 8 ? prompt : 8, 0, logits, 0, e);
    for (int r = 0; r < reps && !rc; r++) {
        en->profile = profile ? &row->pre : NULL;
        double t0 = gm_now_s();
        rc = en->prefill(en, ids, prompt, 0, logits, 0, e);
        pre[r] = prompt / (gm_now_s() - t0);
        bw[r] = read_bandwidth(p);
        double spent = 0;
        for (int s = 0; s < gen && !rc; s++) {
            en->profile = profile ? &row->dec : NULL;
            t0 = gm_now_s();
            rc = en->decode(en, ids[prompt + s], prompt + s, logits, e);
            spent += gm_now_s() - t0;
            en->profile = NULL;
            if (s % PROBE_EVERY == PROBE_EVERY - 1 || s == gen - 1) bw[r] = fmax(bw[r], read_bandwidth(p));
        }
        dec[r] = gen / spent;
        bound[r] = dec[r] * p->weight_bytes / bw[r];
    }
    free(logits);
    if (!rc) {
        row->prefill = stats(pre, reps), row->decode = stats(dec, reps), row->bound = stats(bound, reps);
        row->bandwidth = stats(bw, reps).median;
    }
    return rc;
}

static void print_table(const bench_args *a, const gm_model *m, const bench_row *rows, int n, size_t wbytes,
                        const char *dtype, int threads) {
    printf("gemmac bench: %s (%s), %lld parameters, weights %s %.1f MB, %d threads\n", m->graph->name, m->origin,
           (long long)ir_param_count(m->graph), dtype, wbytes / 1e6, threads);
    printf("%-26s %6s %9s | %-26s | %-26s | %7s %7s %6s\n", "backend", "prompt", "compile", "prefill tok/s min/med/max",
           "decode tok/s min/med/max", "dec GB/s", "read", "bound");
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        double gbs = r->decode.median * wbytes / 1e9;
        printf("%-26s %6d %8.2fs | %8.1f %8.1f %8.1f | %8.2f %8.2f %8.2f | %7.2f %7.2f %5.0f%%\n", r->backend,
               r->prompt, r->compile_s, r->prefill.min, r->prefill.median, r->prefill.max, r->decode.min,
               r->decode.median, r->decode.max, gbs, r->bandwidth / 1e9, 100 * r->bound.median);
    }
    printf("(%d decode steps after each prompt, %d repetitions after an untimed warm-up; read: the read bandwidth,\n"
           "the highest of the probes taken before each repetition's decode and every %d steps of it (untimed),\n"
           "GB/s, median over repetitions; bound: decode GB/s / that, median over repetitions)\n", a->gen, a->reps,
           PROBE_EVERY);
}

static double profile_total(const rt_profile *p) {
    double t = 0;
    for (int i = 0; i < p->n; i++) t += p->seconds[i];
    return t;
}

/* --profile: each row's time per token by op, prefill beside decode. */
static void print_profiles(const bench_args *a, const bench_row *rows, int n) {
    for (int r = 0; r < n; r++) {
        const bench_row *w = &rows[r];
        if (!w->pre.n) continue;
        double tp = profile_total(&w->pre), td = profile_total(&w->dec);
        double per_p = 1e3 / ((double)w->prompt * a->reps), per_d = 1e3 / ((double)a->gen * a->reps);
        printf("\nprofile: %s, prompt %d (wall ms per token by op)\n%-16s | %9s %6s | %9s %6s\n", w->backend,
               w->prompt, "op", "prefill", "share", "decode", "share");
        for (int i = 0; i < w->pre.n; i++) {
            double sd = 0;
            for (int k = 0; k < w->dec.n; k++)
                if (!strcmp(w->dec.name[k], w->pre.name[i])) sd = w->dec.seconds[k];
            printf("%-16s | %9.3f %5.1f%% | %9.3f %5.1f%%\n", w->pre.name[i], w->pre.seconds[i] * per_p,
                   100 * w->pre.seconds[i] / tp, sd * per_d, td > 0 ? 100 * sd / td : 0);
        }
        printf("%-16s | %9.3f %6s | %9.3f\n", "total", tp * per_p, "", td * per_d);
    }
}

static void print_json(const bench_args *a, const gm_model *m, const bench_row *rows, int n, size_t wbytes,
                       const char *dtype, int threads) {
    const bench_row *main_row = NULL;
    for (int i = 0; i < n; i++) /* the configuration asked: its backend with all its passes, the last row */
        if (!strncmp(rows[i].backend, a->backend, strlen(a->backend))) main_row = &rows[i];
    printf("{\"model\": \"%s\", \"backend\": \"%s\", \"threads\": %d, \"weights_dtype\": \"%s\", \"weight_bytes\": %zu, "
           "\"read_bandwidth_gb_s\": %.3f, \"prompt_tokens\": %d, \"gen_tokens\": %d, \"reps\": %d, "
           "\"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f, \"ablation\": [",
           m->graph->name, a->backend, threads, dtype, wbytes, main_row ? main_row->bandwidth / 1e9 : 0,
           main_row ? main_row->prompt : 0, a->gen,
           a->reps, main_row ? main_row->prefill.median : 0, main_row ? main_row->decode.median : 0);
    for (int i = 0; i < n; i++)
        printf("%s{\"config\": \"%s\", \"passes\": \"%s\", \"prompt_tokens\": %d, \"compile_s\": %.3f, \"prefill_tok_s\": [%.3f, %.3f, %.3f], "
               "\"decode_tok_s\": [%.3f, %.3f, %.3f], \"decode_gb_s\": %.3f, \"read_bandwidth_gb_s\": %.3f, "
               "\"decode_of_bound\": %.4f}",
               i ? ", " : "", rows[i].backend, rows[i].passes, rows[i].prompt, rows[i].compile_s, rows[i].prefill.min,
               rows[i].prefill.median, rows[i].prefill.max, rows[i].decode.min, rows[i].decode.median,
               rows[i].decode.max, rows[i].decode.median * wbytes / 1e9, rows[i].bandwidth / 1e9,
               rows[i].bound.median);
    printf("]}\n");
}

/* One panel of the chart: horizontal bars of one measure, scaled to its max. */
static void svg_panel(gm_buf *b, const bench_row *rows, int n, int decode, double x0, const char *title) {
    double top = 0;
    for (int i = 0; i < n; i++) top = fmax(top, decode ? rows[i].decode.median : rows[i].prefill.median);
    gm_buf_printf(b, "<text x='%.0f' y='20' font-weight='bold'>%s</text>\n", x0, title);
    for (int i = 0; i < n; i++) {
        double v = decode ? rows[i].decode.median : rows[i].prefill.median, y = 34 + 26 * i;
        double w = top > 0 ? 260 * v / top : 0;
        gm_buf_printf(b, "<text x='%.0f' y='%.0f' text-anchor='end'>%s, %d</text>\n", x0 + 190, y + 14,
                      rows[i].backend, rows[i].prompt);
        gm_buf_printf(b, "<rect x='%.0f' y='%.0f' width='%.1f' height='18' fill='%s'/>\n", x0 + 198, y, w,
                      decode ? "#d9822b" : "#3b6ea8");
        gm_buf_printf(b, "<text x='%.1f' y='%.0f'>%.1f</text>\n", x0 + 202 + w, y + 14, v);
    }
}

/* The ablation as an SVG chart, written atomically. */
static int write_svg(const char *path, const gm_model *m, const bench_row *rows, int n, int threads, gm_err *e) {
    gm_buf b = {0};
    int h = 60 + 26 * n;
    gm_buf_printf(&b, "<svg xmlns='http://www.w3.org/2000/svg' width='1060' height='%d' font-family='sans-serif' "
                      "font-size='12'>\n<rect width='1060' height='%d' fill='white'/>\n", h, h);
    svg_panel(&b, rows, n, 0, 10, "prefill tokens/s (median)");
    svg_panel(&b, rows, n, 1, 530, "decode tokens/s (median)");
    gm_buf_printf(&b, "<text x='10' y='%d' fill='#555'>gemmac bench: %s, %d threads</text>\n</svg>\n", h - 8,
                  m->graph->name, threads);
    int rc = gm_write_file_atomic(path, b.s, b.len, e);
    free(b.s);
    return rc;
}

/* Runs one configuration at every prompt length into rows + *n. */
static int run_config(const bench_args *a, const bench_config *c, const int32_t *ids, int context, bw_probe *p,
                      bench_row *rows, int *n, gm_err *e) {
    gm_pipeline_opts po = {.level = 0, .passes = c->passes, .target = gm_backend_target(c->backend)};
    gm_model *m = gm_model_open_with(a->model, a->weights, &po, e);
    rt_engine *en = m ? gm_model_engine(m, c->backend, &(rt_engine_opts){.context = context}, e) : NULL;
    int rc = en ? 0 : -1;
    for (int l = 0; en && l < a->n_lengths && !rc; l++, (*n)++) {
        rows[*n] = (bench_row){.backend = c->label, .passes = c->passes, .prompt = a->lengths[l], .compile_s = en->compile_s};
        rc = time_backend(en, ids, a->lengths[l], a->gen, a->reps, a->profile, p, &rows[*n], e);
    }
    if (en) en->free(en);
    gm_model_free(m);
    return rc;
}

/* Whether --configs (NULL: all) names a part of the label. */
static int selected(const char *configs, const char *label) {
    for (const char *p = configs; p && *p;) {
        size_t len = strcspn(p, ",");
        char item[64];
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        if (len && strstr(label, item)) return 1;
        p += len + (p[len] == ',');
    }
    return !configs;
}

/* Runs every selected configuration at every prompt length into rows; returns the count. */
static int run_ablation(const bench_args *a, gm_model *m, const bench_config *cs, int n_configs, bw_probe *p,
                        bench_row *rows, gm_err *e) {
    int longest = 0, n = 0;
    for (int i = 0; i < a->n_lengths; i++) longest = a->lengths[i] > longest ? a->lengths[i] : longest;
    int context = longest + a->gen;
    if (context > m->graph->max_context)
        return gm_fail(e, "prompt %d + %d steps exceed the model's context of %lld", longest, a->gen,
                       (long long)m->graph->max_context);
    int32_t *ids = gm_malloc(context * sizeof *ids);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < context; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, ids[i] = 3 + (int32_t)(x % (m->graph->vocab - 3));
    ids[0] = m->graph->bos;
    int rc = 0;
    for (int c = 0; c < n_configs && !rc; c++)
        if (selected(a->configs, cs[c].label)) rc = run_config(a, &cs[c], ids, context, p, rows, &n, e);
    free(ids);
    return rc ? -1 : n;
}

int cmd_bench(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return fputs(usage, stdout), 0;
    bench_args a = {.backend = "jit", .lengths = {128, 512}, .n_lengths = 2, .gen = 64, .reps = 3};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (a.threads) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", a.threads);
        setenv("GEMMAC_THREADS", buf, 1);
    }
    gm_err e;
    gm_model *m = gm_model_open_with(a.model, a.weights, &(gm_pipeline_opts){.level = 0}, &e);
    if (!m) return cli_error(&e);
    const char *dtype;
    size_t wbytes = weight_bytes(m, &dtype);
    bw_probe probe = {{probe_buffer(), BW_BYTES / sizeof(uint64_t), {0}}, rt_pool_new(rt_default_threads()), wbytes};
    int threads = rt_pool_threads(probe.pool);
    bench_config cs[MAX_CONFIGS];
    int n_configs = ablation_configs(cs);
    bench_row *rows = gm_malloc(n_configs * MAX_LENGTHS * sizeof *rows);
    int n = run_ablation(&a, m, cs, n_configs, &probe, rows, &e);
    free((void *)probe.job.data);
    rt_pool_free(probe.pool);
    if (n < 0) rc = cli_error(&e);
    else if (a.json) print_json(&a, m, rows, n, wbytes, dtype, threads);
    else print_table(&a, m, rows, n, wbytes, dtype, threads);
    if (n >= 0 && !a.json && a.profile) print_profiles(&a, rows, n);
    if (n >= 0 && a.svg && write_svg(a.svg, m, rows, n, threads, &e)) rc = cli_error(&e);
    free(rows);
    gm_model_free(m);
    return rc;
}
