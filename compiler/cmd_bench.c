/* cmd_bench.c — `gemmac bench`: how fast a model runs, measured, not claimed.
 *
 * The ablation's configurations (the unfused reference, jit -O0, then the
 * passes of -O2 one more at a time, and -O2 a second time as an A/A row) are
 * all opened, compiled, packed and warmed up first, two engines each taking
 * the repetitions in turn, sharing one copy of the checkpoint; then each repetition times every (configuration, prompt
 * length) row once, prefill (the whole prompt in one call) and decode
 * (gen-tokens single-token calls after it), in an order rotated from one
 * repetition to the next, so that a shared host's drift falls on all rows
 * alike. Each row reports its median with a 95 % interval, and each pass
 * its effect, against the row before it and against -O0, from the pairs of
 * samples of the same repetition (bench_stats.h): "within noise" when that
 * interval contains zero, which the A/A row shows the rate of. `--reps auto`
 * repeats until every effect is known to a stated precision or a time
 * budget is spent. Decode reads every weight once per token, so its speed
 * is bounded by memory bandwidth: the bench measures the machine's read
 * bandwidth (a multi-threaded sum over a buffer larger than the caches, on
 * huge pages where the kernel gives them) before each decode and every few
 * steps within it, untimed, and reports decode's share of it, each few
 * steps against the probes beside them (time_row). Token ids are a fixed
 * pseudo-random sequence, so runs compare. */
#include "cli.h"
#include "cli_number.h"
#include "bench_stats.h"
#include "model.h"
#include "runtime/threads.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define MAX_LENGTHS 8
#define MAX_CONFIGS 32
#define MAX_REPS 64
#define AUTO_MIN_REPS 5             /* --reps auto judges the intervals from this many on */
#define BW_BYTES ((size_t)1 << 30) /* well past the L3 */
#define PROBE_EVERY 8              /* decode steps between two bandwidth probes */

static const char usage[] =
    "usage: gemmac bench <model> [--prompt-tokens 128,512] [--gen-tokens 64] [--reps 5|auto]\n"
    "                    [--precision 2] [--budget 600] [--threads N] [--backend jit] [--configs LIST]\n"
    "                    [--json] [--svg F] [--profile] [--weights DIR] [--activations f32|int8|bf16]\n"
    "  --prompt-tokens L  prompt lengths to time prefill with (comma-separated)\n"
    "  --gen-tokens N     decode steps timed after each prompt (default 64)\n"
    "  --reps N           repetitions (default 5, at most 64); each runs every row once, in an order\n"
    "                     rotated from the last; medians and 95 % intervals are over them\n"
    "  --reps auto        repeat until every pass's effect is known within ±precision % (95 %), or\n"
    "                     the budget is spent, and say which happened\n"
    "  --precision P      --reps auto: the half-width to reach, in percent (default 2)\n"
    "  --budget S         --reps auto: seconds of timing at most (default 600)\n"
    "  --threads N        worker threads (default: $GEMMAC_THREADS or all cores)\n"
    "  --backend NAME     the configuration reported at the top level of --json, with all its passes\n"
    "                     (default jit); the ablation table always runs: reference (the unfused\n"
    "                     interpreter), jit -O0 (no IR passes), then the passes of -O2 added one at\n"
    "                     a time, the cleanup passes first (+eliminate_dead, +plan_memory, then\n"
    "                     +fold_constants, ...), the last being -O2, and that last one again as an\n"
    "                     A/A row: the same configuration twice, so its effect shows the noise\n"
    "  --configs LIST     run only the ablation rows whose label contains one of these\n"
    "                     (comma-separated; e.g. reference,-O0,-O2 or -O0,fuse_matmul,-O2)\n"
    "  --json             one JSON object on stdout instead of the table\n"
    "  --svg FILE         also draw the ablation as a chart: median prefill and decode tokens/s and\n"
    "                     decode's share of the bandwidth bound, with their intervals\n"
    "  --profile          also print where each row's time went: wall time per token by op\n"
    "                     (compiled backends; the kernel calls are timed one by one)\n"
    "  --activations A    every row's: f32 (default, exact), int8 (quantized weights' matmuls on\n"
    "                     inputs rounded to 8 bits) or bf16 (bf16 weights' matmuls on inputs\n"
    "                     rounded to bf16; see gemmac run --help)\n";

typedef struct {
    const char *model, *weights, *backend, *svg, *configs, *activations;
    int lengths[MAX_LENGTHS], n_lengths, gen, reps, threads, json, profile;
    int auto_reps, precision, budget;
} bench_args;

/* One configuration of the ablation: a backend and the passes it runs. */
typedef struct {
    const char *backend;
    char label[64];
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

/* --prompt-tokens: up to max comma-separated lengths into out; their count, or -1. */
static int parse_list(const char *s, int *out, int max) {
    int32_t *v;
    int n;
    if (cli_int_list(s, 1, 1 << 20, &v, &n)) return -1;
    if (n <= max) memcpy(out, v, (size_t)n * sizeof *out);
    free(v);
    return n <= max ? n : -1;
}

static int parse_positive(const char *flag, const char *v, int *out) {
    return cli_int_flag("bench", flag, v, 1, 1 << 20, out);
}

/* --reps N, or auto: repeat until precise (--precision) or out of time (--budget). */
static int parse_reps(const char *v, bench_args *a) {
    a->auto_reps = !strcmp(v, "auto");
    if (a->auto_reps) return a->reps = MAX_REPS, 0;
    if (parse_positive("--reps", v, &a->reps)) return 2;
    return a->reps > MAX_REPS ? cli_usage_error("bench", "--reps: at most %d", MAX_REPS) : 0;
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
        else if ((v = cli_value(argc, argv, &i, "--reps"))) rc = parse_reps(v, a);
        else if ((v = cli_value(argc, argv, &i, "--precision"))) rc = parse_positive("--precision", v, &a->precision);
        else if ((v = cli_value(argc, argv, &i, "--budget"))) rc = parse_positive("--budget", v, &a->budget);
        else if ((v = cli_value(argc, argv, &i, "--threads"))) rc = parse_positive("--threads", v, &a->threads);
        else if ((v = cli_value(argc, argv, &i, "--backend"))) a->backend = v;
        else if ((v = cli_value(argc, argv, &i, "--configs"))) a->configs = v;
        else if ((v = cli_value(argc, argv, &i, "--weights"))) a->weights = v;
        else if ((v = cli_value(argc, argv, &i, "--activations"))) a->activations = v;
        else if (cli_is(argv[i], "--json")) a->json = 1;
        else if (cli_is(argv[i], "--profile")) a->profile = 1;
        else if ((v = cli_value(argc, argv, &i, "--svg"))) a->svg = v;
        else if (argv[i][0] == '-') return cli_usage_error("bench", "unknown flag %s", argv[i]);
        else if (!a->model) a->model = argv[i];
        else return cli_usage_error("bench", "unexpected argument %s", argv[i]);
        if (rc) return rc;
    }
    if (strcmp(a->backend, "jit") && strcmp(a->backend, "reference"))
        return cli_usage_error("bench", "--backend %s: the ablation times the CPU backends, jit and reference (a GPU is "
                                        "timed by bench/gpu_bench.c, scripts/gpu-check.sh)", a->backend);
    return a->model ? cli_check_options("bench", NULL) : cli_usage_error("bench", "no model given");
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
        const gm_tensor *t = m->bound[v];
        if (!t) continue;
        n += t->nbytes;
        const char *name = gm_dtype_name(t->dtype);
        *dtype = !*dtype || !strcmp(*dtype, name) ? name : "mixed";
    }
    return n;
}

/* A configuration opened once for the whole run: its model (sharing the first one's
 * checkpoint) and two engines of it, which take the repetitions in turn. An engine instance
 * has a speed of its own within a run (where its activations and threads landed): with one
 * engine a row, the real 270M's A/A decode came out −2.3 % [−3.3, −1.3] in one run and
 * +1.4 % [+0.5, +2.3] in another of ten; alternating two puts that spread into the intervals. */
#define INSTANCES 2
typedef struct {
    const bench_config *config;
    char label[80];        /* the config's, or the A/A row's */
    int aa;                /* the A/A row: the last configuration again */
    gm_model *m;
    rt_engine *en[INSTANCES];
} bench_unit;

/* One (configuration, prompt length) of the table, its samples one per repetition. */
typedef struct {
    bench_unit *unit;
    int prompt;
    int previous, base;    /* the rows its effects are taken against (same prompt): the one before, -O0; or -1 */
    int n;                 /* repetitions so far */
    double pre[MAX_REPS], dec[MAX_REPS], bound[MAX_REPS], bw[MAX_REPS]; /* tok/s, tok/s, share, bytes/s */
    bs_interval prefill, decode, share;
    double bandwidth;      /* the median read bandwidth, bytes/s */
    bs_effect eff_prev[2], eff_base[2]; /* prefill, decode */
    rt_profile pre_prof, dec_prof;      /* --profile: seconds by op over all repetitions */
} bench_row;

typedef struct {
    const bench_args *a;
    const int32_t *ids;
    bw_probe *probe;
    bench_row *rows;
    int n_rows;
    double seconds;        /* of timing */
    const char *stop;      /* why --reps auto stopped */
} bench_run;

static double median(double *x, int n) {
    bs_interval m;
    bs_median_interval(x, n, &m);
    return m.median;
}

/* One repetition of row r: a prefill of its prompt, then gen decode steps
 * in blocks of PROBE_EVERY with a bandwidth probe after each. A block's
 * share of the bound is its bytes per second over the mean of the probes
 * on either side of it: this VM's bandwidth moves by half from one minute
 * to the next, and only a probe taken beside a block bounds it. The
 * repetition's share is the median over its blocks, its bandwidth the
 * median probe. */
static int time_row(bench_run *b, bench_row *r, gm_err *e) {
    rt_engine *en = r->unit->en[r->n % INSTANCES];
    float *logits = gm_malloc(en->vocab * sizeof(float));
    int gen = b->a->gen, i = r->n, n_blocks = 0, steps = 0;
    int most = gen / PROBE_EVERY + 1; /* blocks */
    double *probes = gm_malloc((most + 1) * sizeof *probes), *shares = gm_malloc(most * sizeof *shares);
    en->profile = b->a->profile ? &r->pre_prof : NULL;
    double t0 = gm_now_s();
    int rc = en->prefill(en, b->ids, r->prompt, 0, logits, 0, e);
    r->pre[i] = r->prompt / (gm_now_s() - t0);
    probes[0] = read_bandwidth(b->probe);
    double spent = 0, block = 0;
    for (int s = 0; s < gen && !rc; s++) {
        en->profile = b->a->profile ? &r->dec_prof : NULL;
        t0 = gm_now_s();
        rc = en->decode(en, b->ids[r->prompt + s], r->prompt + s, logits, e);
        double dt = gm_now_s() - t0;
        spent += dt, block += dt, steps++;
        if (s % PROBE_EVERY != PROBE_EVERY - 1 && s != gen - 1) continue;
        probes[n_blocks + 1] = read_bandwidth(b->probe);
        shares[n_blocks] = steps / block * b->probe->weight_bytes / ((probes[n_blocks] + probes[n_blocks + 1]) / 2);
        n_blocks++, steps = 0, block = 0;
    }
    en->profile = NULL;
    r->dec[i] = gen / spent;
    r->bound[i] = n_blocks ? median(shares, n_blocks) : 0;
    r->bw[i] = median(probes, n_blocks + 1);
    r->n += !rc;
    free(logits), free(probes), free(shares);
    return rc;
}

/* Untimed: a whole prefill and a few decode steps of every row on each engine, so no
 * repetition pays for page faults or first-call work. */
static int warm_up(bench_run *b, gm_err *e) {
    int rc = 0;
    for (int i = 0; i < b->n_rows * INSTANCES && !rc; i++) {
        const bench_row *r = &b->rows[i / INSTANCES];
        rt_engine *en = r->unit->en[i % INSTANCES];
        float *logits = gm_malloc(en->vocab * sizeof(float));
        rc = en->prefill(en, b->ids, r->prompt, 0, logits, 0, e);
        for (int s = 0; s < 2 && !rc; s++) rc = en->decode(en, b->ids[r->prompt + s], r->prompt + s, logits, e);
        free(logits);
    }
    return rc;
}

/* The median of x[0..n) and its interval, x left as it is (paired effects need its order). */
static void median_of(const double *x, int n, bs_interval *out) {
    double tmp[MAX_REPS];
    memcpy(tmp, x, n * sizeof *tmp);
    bs_median_interval(tmp, n, out);
}

/* Each row's medians and intervals, and its effects against the rows it is compared with. */
static void summarise(bench_run *b) {
    for (int i = 0; i < b->n_rows; i++) {
        bench_row *r = &b->rows[i];
        bs_interval bw;
        median_of(r->pre, r->n, &r->prefill), median_of(r->dec, r->n, &r->decode);
        median_of(r->bound, r->n, &r->share), median_of(r->bw, r->n, &bw);
        r->bandwidth = bw.median;
        if (r->n < 2) continue;
        const bench_row *p = r->previous >= 0 ? &b->rows[r->previous] : NULL, *o = r->base >= 0 ? &b->rows[r->base] : NULL;
        if (p) bs_paired_effect(p->pre, r->pre, r->n, &r->eff_prev[0]), bs_paired_effect(p->dec, r->dec, r->n, &r->eff_prev[1]);
        if (o) bs_paired_effect(o->pre, r->pre, r->n, &r->eff_base[0]), bs_paired_effect(o->dec, r->dec, r->n, &r->eff_base[1]);
    }
}

/* The widest half-width, in percent, of the effects against the row before. */
static double widest_effect(const bench_run *b) {
    double w = 0;
    for (int i = 0; i < b->n_rows; i++)
        for (int k = 0; k < 2 && b->rows[i].previous >= 0; k++)
            w = fmax(w, 50 * (b->rows[i].eff_prev[k].hi - b->rows[i].eff_prev[k].lo));
    return w;
}

/* Repetitions: each times every row once, in its balanced rotated order (bs_rotation). */
static int run_repetitions(bench_run *b, gm_err *e) {
    static char why[160];
    const bench_args *a = b->a;
    double t0 = gm_now_s();
    for (int rep = 0; rep < a->reps; rep++) {
        for (int slot = 0; slot < b->n_rows; slot++)
            if (time_row(b, &b->rows[bs_rotation(rep, slot, b->n_rows)], e)) return -1;
        b->seconds = gm_now_s() - t0;
        if (!a->auto_reps || rep + 1 < AUTO_MIN_REPS) continue;
        summarise(b);
        double w = widest_effect(b);
        if (w <= a->precision || b->seconds >= a->budget || rep + 1 == MAX_REPS) {
            snprintf(why, sizeof why, "%s after %d repetitions: the widest effect interval is ±%.1f %%",
                     w <= a->precision ? "precise" : b->seconds >= a->budget ? "budget spent" : "repetition limit",
                     rep + 1, w);
            b->stop = why;
            break;
        }
    }
    summarise(b);
    return 0;
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

static void close_units(bench_unit *units, int n) {
    for (int u = 0; u < n; u++) {
        for (int k = 0; k < INSTANCES; k++)
            if (units[u].en[k]) units[u].en[k]->free(units[u].en[k]);
        gm_model_free(units[u].m);
    }
}

/* The selected configurations, each opened once over the first one's checkpoint, then the last
 * one again as the A/A row. */
static int open_units(const bench_args *a, gm_model *first, const bench_config *cs, int n_configs, int context,
                      bench_unit *units, gm_err *e) {
    int n = 0;
    for (int c = 0; c < n_configs; c++)
        if (selected(a->configs, cs[c].label)) {
            units[n].config = &cs[c];
            snprintf(units[n].label, sizeof units->label, "%s", cs[c].label);
            n++;
        }
    if (n) {
        units[n].config = units[n - 1].config, units[n].aa = 1;
        snprintf(units[n].label, sizeof units->label, "%s, again (A/A)", units[n - 1].config->label);
        n++;
    }
    for (int u = 0; u < n; u++) {
        const bench_config *c = units[u].config;
        gm_pipeline_opts po = {.level = 0, .passes = c->passes, .target = gm_backend_target(c->backend),
                               .activations = a->activations};
        units[u].m = gm_model_open_sharing(a->model, a->weights, &po, first, e);
        for (int k = 0; k < INSTANCES && units[u].m; k++)
            units[u].en[k] = gm_model_engine(units[u].m, c->backend, &(rt_engine_opts){.context = context}, e);
        if (!units[u].en[INSTANCES - 1]) return close_units(units, u + 1), -1;
    }
    return n;
}

/* The rows, unit-major: for each unit its prompt lengths; each compared with the unit before
 * (same length) and with jit -O0's row of that length. */
static int make_rows(const bench_args *a, bench_unit *units, int n_units, bench_row *rows) {
    int base = -1, n = 0;
    for (int u = 0; u < n_units; u++)
        if (!strcmp(units[u].label, "jit -O0")) base = u;
    for (int u = 0; u < n_units; u++)
        for (int l = 0; l < a->n_lengths; l++, n++) {
            rows[n] = (bench_row){.unit = &units[u], .prompt = a->lengths[l], .previous = u ? n - a->n_lengths : -1,
                                  .base = base >= 0 && base != u ? base * a->n_lengths + l : -1};
        }
    return n;
}

/* "+3.1 % [+1.0, +5.2]", with " ~" where within noise; "" without a comparison. */
static const char *effect_text(char *buf, size_t len, const bs_effect *e, int has) {
    if (!has) return "";
    snprintf(buf, len, "%+6.1f%% [%+5.1f,%+5.1f]%s", 100 * e->effect, 100 * e->lo, 100 * e->hi, e->significant ? "  " : " ~");
    return buf;
}

static void print_table(const bench_run *b, const gm_model *m, size_t wbytes, const char *dtype, int threads) {
    const bench_args *a = b->a;
    printf("gemmac bench: %s (%s), %lld parameters, weights %s %.1f MB, %s activations, %d threads\n", m->graph->name,
           m->origin, (long long)ir_param_count(m->graph), dtype, wbytes / 1e6, a->activations ? a->activations : "f32",
           threads);
    int w = 13; /* "configuration" */
    for (int i = 0; i < b->n_rows; i++)
        if ((int)strlen(b->rows[i].unit->label) > w) w = (int)strlen(b->rows[i].unit->label);
    printf("%-*s %6s %8s | %-27s | %-25s | %7s | %-15s\n", w, "configuration", "prompt", "compile",
           "prefill tok/s median [95%]", "decode tok/s median [95%]", "read", "bound [95%]");
    for (int i = 0; i < b->n_rows; i++) {
        const bench_row *r = &b->rows[i];
        printf("%-*s %6d %7.2fs | %9.1f [%7.1f,%7.1f] | %8.2f [%6.2f,%6.2f] | %7.2f | %3.0f%% [%3.0f,%3.0f]\n", w,
               r->unit->label, r->prompt, r->unit->en[0]->compile_s, r->prefill.median, r->prefill.lo, r->prefill.hi,
               r->decode.median, r->decode.lo, r->decode.hi, r->bandwidth / 1e9, 100 * r->share.median,
               100 * r->share.lo, 100 * r->share.hi);
    }
    printf("\neffects, from the pairs of samples of each repetition (95 %% intervals; ~ within noise):\n");
    printf("%-*s %6s | %-26s | %-26s | %-26s | %-26s\n", w, "configuration", "prompt", "prefill vs the row above",
           "decode vs the row above", "prefill vs jit -O0", "decode vs jit -O0");
    for (int i = 0; i < b->n_rows; i++) {
        const bench_row *r = &b->rows[i];
        char t[4][64];
        int p = r->previous >= 0 && r->n > 1, o = r->base >= 0 && r->n > 1;
        printf("%-*s %6d | %-26s | %-26s | %-26s | %-26s\n", w, r->unit->label, r->prompt,
               effect_text(t[0], 64, &r->eff_prev[0], p), effect_text(t[1], 64, &r->eff_prev[1], p),
               effect_text(t[2], 64, &r->eff_base[0], o), effect_text(t[3], 64, &r->eff_base[1], o));
    }
    printf("(%d repetitions of %d decode steps after each prompt, rows in a rotated order, after an untimed warm-up;\n"
           "intervals of the median: order statistics, coverage %.1f %%; read: the read bandwidth, GB/s, probed before\n"
           "and every %d steps of each decode, median; bound: each %d steps' bytes per second over the mean of the\n"
           "probes on either side, median)\n",
           b->rows[0].n, a->gen, 100 * b->rows[0].prefill.coverage, PROBE_EVERY, PROBE_EVERY);
    if (b->stop) printf("--reps auto: %s (precision ±%d %%, budget %d s, %.0f s spent)\n", b->stop, a->precision,
                        a->budget, b->seconds);
}

static double profile_total(const rt_profile *p) {
    double t = 0;
    for (int i = 0; i < p->n; i++) t += p->seconds[i];
    return t;
}

/* --profile: each row's time per token by op, prefill beside decode. */
static void print_profiles(const bench_run *b) {
    for (int r = 0; r < b->n_rows; r++) {
        const bench_row *w = &b->rows[r];
        if (!w->pre_prof.n) continue;
        double tp = profile_total(&w->pre_prof), td = profile_total(&w->dec_prof);
        double per_p = 1e3 / ((double)w->prompt * w->n), per_d = 1e3 / ((double)b->a->gen * w->n);
        printf("\nprofile: %s, prompt %d (wall ms per token by op)\n%-16s | %9s %6s | %9s %6s\n", w->unit->label,
               w->prompt, "op", "prefill", "share", "decode", "share");
        for (int i = 0; i < w->pre_prof.n; i++) {
            double sd = 0;
            for (int k = 0; k < w->dec_prof.n; k++)
                if (!strcmp(w->dec_prof.name[k], w->pre_prof.name[i])) sd = w->dec_prof.seconds[k];
            printf("%-16s | %9.3f %5.1f%% | %9.3f %5.1f%%\n", w->pre_prof.name[i], w->pre_prof.seconds[i] * per_p,
                   100 * w->pre_prof.seconds[i] / tp, sd * per_d, td > 0 ? 100 * sd / td : 0);
        }
        printf("%-16s | %9.3f %6s | %9.3f\n", "total", tp * per_p, "", td * per_d);
    }
}

/* "[min, median, max]" of x[0..n). */
static void json_spread(gm_buf *j, const char *key, const double *x, int n, const bs_interval *iv) {
    double lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    gm_buf_printf(j, ", \"%s\": [%.3f, %.3f, %.3f], \"%s_ci\": [%.3f, %.3f]", key, lo, iv->median, hi, key, iv->lo, iv->hi);
}

static void json_effect(gm_buf *j, const char *key, const bench_row *against, const bs_effect *e) {
    if (!against) return;
    gm_buf_printf(j, ", \"%s\": {\"config\": \"%s\", \"prompt_tokens\": %d", key, against->unit->label, against->prompt);
    for (int k = 0; k < 2; k++)
        gm_buf_printf(j, ", \"%s\": {\"effect\": %.5f, \"ci\": [%.5f, %.5f], \"within_noise\": %s}", k ? "decode" : "prefill",
                      e[k].effect, e[k].lo, e[k].hi, e[k].significant ? "false" : "true");
    gm_buf_puts(j, "}");
}

static void json_row(gm_buf *j, const bench_run *b, const bench_row *r, size_t wbytes) {
    gm_buf_printf(j, "{\"config\": \"%s\", \"passes\": \"%s\", \"aa\": %s, \"prompt_tokens\": %d, \"compile_s\": %.3f",
                  r->unit->label, r->unit->config->passes, r->unit->aa ? "true" : "false", r->prompt,
                  r->unit->en[0]->compile_s);
    json_spread(j, "prefill_tok_s", r->pre, r->n, &r->prefill);
    json_spread(j, "decode_tok_s", r->dec, r->n, &r->decode);
    json_spread(j, "decode_of_bound", r->bound, r->n, &r->share);
    gm_buf_printf(j, ", \"decode_gb_s\": %.3f, \"read_bandwidth_gb_s\": %.3f", r->decode.median * wbytes / 1e9, r->bandwidth / 1e9);
    if (r->n > 1) json_effect(j, "vs_previous", r->previous >= 0 ? &b->rows[r->previous] : NULL, r->eff_prev);
    if (r->n > 1) json_effect(j, "vs_O0", r->base >= 0 ? &b->rows[r->base] : NULL, r->eff_base);
    gm_buf_puts(j, "}");
}

static void print_json(const bench_run *b, const gm_model *m, size_t wbytes, const char *dtype, int threads) {
    const bench_args *a = b->a;
    const bench_row *main_row = NULL;
    for (int i = 0; i < b->n_rows; i++) /* the configuration asked: its backend with all its passes, not the A/A row */
        if (!strncmp(b->rows[i].unit->label, a->backend, strlen(a->backend)) && !b->rows[i].unit->aa)
            main_row = &b->rows[i];
    gm_buf j = {0};
    gm_buf_printf(&j, "{\"model\": \"%s\", \"backend\": \"%s\", \"threads\": %d, \"weights_dtype\": \"%s\", \"activations\": \"%s\", "
                      "\"weight_bytes\": %zu, \"read_bandwidth_gb_s\": %.3f, \"prompt_tokens\": %d, \"gen_tokens\": %d, "
                      "\"reps\": %d, \"median_coverage\": %.4f, \"timing_s\": %.1f, \"auto_stop\": ",
                  m->graph->name, a->backend, threads, dtype, a->activations ? a->activations : "f32", wbytes, main_row ? main_row->bandwidth / 1e9 : 0,
                  main_row ? main_row->prompt : 0, a->gen, b->rows[0].n, b->rows[0].prefill.coverage, b->seconds);
    if (b->stop) gm_buf_printf(&j, "\"%s\"", b->stop);
    else gm_buf_puts(&j, "null");
    gm_buf_printf(&j, ", \"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f, \"decode_of_bound\": %.4f, \"ablation\": [",
                  main_row ? main_row->prefill.median : 0, main_row ? main_row->decode.median : 0,
                  main_row ? main_row->share.median : 0);
    for (int i = 0; i < b->n_rows; i++) {
        if (i) gm_buf_puts(&j, ", ");
        json_row(&j, b, &b->rows[i], wbytes);
    }
    gm_buf_puts(&j, "]}\n");
    fputs(j.s, stdout);
    free(j.s);
}

/* One panel of the chart: horizontal bars of one measure (0 prefill, 1 decode tok/s, 2 decode's
 * share of the bound), scaled to the largest upper end, each with its interval as an error bar;
 * a bar whose change from the row above is within noise is pale and marked "~". */
static void svg_panel(gm_buf *s, const bench_run *b, int what, double x0, const char *title) {
    static const char *const fill[3] = {"#3b6ea8", "#d9822b", "#5a9e4b"}, *const pale[3] = {"#b9cbe2", "#f0d0ae", "#c4dfbd"};
    double top = 0;
    for (int i = 0; i < b->n_rows; i++) top = fmax(top, (what == 0 ? &b->rows[i].prefill : what == 1 ? &b->rows[i].decode : &b->rows[i].share)->hi);
    gm_buf_printf(s, "<text x='%.0f' y='20' font-weight='bold'>%s</text>\n", x0, title);
    for (int i = 0; i < b->n_rows; i++) {
        const bench_row *r = &b->rows[i];
        const bs_interval *v = what == 0 ? &r->prefill : what == 1 ? &r->decode : &r->share;
        int noise = what < 2 && r->previous >= 0 && r->n > 1 && !r->eff_prev[what].significant;
        double k = top > 0 ? 220 / top : 0, y = 34 + 26 * i, scale = what == 2 ? 100 : 1;
        if (x0 == 10)
            gm_buf_printf(s, "<text x='200' y='%.0f' text-anchor='end'>%s, %d</text>\n", y + 14, r->unit->label, r->prompt);
        gm_buf_printf(s, "<rect x='%.0f' y='%.0f' width='%.1f' height='18' fill='%s'/>\n", x0 + 198, y, k * v->median,
                      noise ? pale[what] : fill[what]);
        gm_buf_printf(s, "<line x1='%.1f' x2='%.1f' y1='%.0f' y2='%.0f' stroke='black'/>\n", x0 + 198 + k * v->lo,
                      x0 + 198 + k * v->hi, y + 9, y + 9);
        gm_buf_printf(s, "<text x='%.1f' y='%.0f'>%.1f%s%s</text>\n", x0 + 204 + k * v->hi, y + 14, scale * v->median,
                      what == 2 ? "%" : "", noise ? " ~" : "");
    }
}

/* The ablation as an SVG chart, written atomically. */
static int write_svg(const char *path, const bench_run *b, const gm_model *m, int threads, gm_err *e) {
    gm_buf s = {0};
    int h = 76 + 26 * b->n_rows;
    gm_buf_printf(&s, "<svg xmlns='http://www.w3.org/2000/svg' width='1560' height='%d' font-family='sans-serif' "
                      "font-size='12'>\n<rect width='1560' height='%d' fill='white'/>\n", h, h);
    svg_panel(&s, b, 0, 10, "prefill tokens/s (median, 95 % interval)");
    svg_panel(&s, b, 1, 520, "decode tokens/s (median, 95 % interval)");
    svg_panel(&s, b, 2, 1030, "decode, share of the bandwidth bound");
    gm_buf_printf(&s, "<text x='10' y='%d' fill='#555'>gemmac bench: %s, %d threads, %d repetitions in rotated order; pale "
                      "bars, ~: the change from the row above is within noise (its 95 %% interval holds 0)</text>\n</svg>\n",
                  h - 8, m->graph->name, threads, b->rows[0].n);
    int rc = gm_write_file_atomic(path, s.s, s.len, e);
    free(s.s);
    return rc;
}

/* The token ids every row is timed with: BOS, then a fixed pseudo-random sequence. */
static int32_t *bench_tokens(const gm_model *m, int context) {
    int32_t *ids = gm_malloc(context * sizeof *ids);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < context; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, ids[i] = 3 + (int32_t)(x % (m->graph->vocab - 3));
    ids[0] = m->graph->bos;
    return ids;
}

/* Opens every configuration, warms each row up, then runs the repetitions into b. */
static int run_bench(bench_run *b, gm_model *m, bench_unit *units, int *n_units, gm_err *e) {
    const bench_args *a = b->a;
    int longest = 0;
    for (int i = 0; i < a->n_lengths; i++) longest = a->lengths[i] > longest ? a->lengths[i] : longest;
    int context = longest + a->gen + 2; /* the warm-up decodes 2 steps */
    if (context > m->graph->max_context)
        return gm_fail(e, "prompt %d + %d steps exceed the model's context of %lld", longest, a->gen,
                       (long long)m->graph->max_context);
    static bench_config cs[MAX_CONFIGS];
    *n_units = open_units(a, m, cs, ablation_configs(cs), context, units, e);
    if (*n_units < 0) return -1;
    if (!*n_units) return gm_fail(e, "--configs %s: no configuration of the ablation matches", a->configs);
    b->n_rows = make_rows(a, units, *n_units, b->rows);
    int32_t *ids = bench_tokens(m, context);
    b->ids = ids;
    int rc = warm_up(b, e) || run_repetitions(b, e);
    free(ids);
    return rc ? -1 : 0;
}

int cmd_bench(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return fputs(usage, stdout), 0;
    bench_args a = {.backend = "jit", .lengths = {128, 512}, .n_lengths = 2, .gen = 64, .reps = 5, .precision = 2, .budget = 600};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    cli_use_threads(a.threads);
    gm_err e;
    gm_model *m = gm_model_open_with(a.model, a.weights, &(gm_pipeline_opts){.level = 0}, &e);
    if (!m) return cli_error(&e);
    const char *dtype;
    size_t wbytes = weight_bytes(m, &dtype);
    bw_probe probe = {{probe_buffer(), BW_BYTES / sizeof(uint64_t), {0}}, rt_pool_new(rt_default_threads()), wbytes};
    int threads = rt_pool_threads(probe.pool), n_units = 0;
    bench_unit *units = gm_calloc(MAX_CONFIGS + 1, sizeof *units);
    bench_run b = {.a = &a, .probe = &probe, .rows = gm_calloc((MAX_CONFIGS + 1) * MAX_LENGTHS, sizeof *b.rows)};
    if (run_bench(&b, m, units, &n_units, &e)) rc = cli_error(&e);
    else if (a.json) print_json(&b, m, wbytes, dtype, threads);
    else print_table(&b, m, wbytes, dtype, threads);
    if (!rc && !a.json && a.profile) print_profiles(&b);
    if (!rc && a.svg && write_svg(a.svg, &b, m, threads, &e)) rc = cli_error(&e);
    close_units(units, n_units);
    free((void *)probe.job.data);
    rt_pool_free(probe.pool);
    free(units);
    free(b.rows);
    gm_model_free(m);
    return rc;
}
