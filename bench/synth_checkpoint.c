/* synth_checkpoint.c — a random-weight Gemma checkpoint in Hugging Face layout.
 *
 *   synth_checkpoint <hf config.json | dir | description.json> -o DIR [--seed N] [--dtype f32|bf16]
 *                    [--init oracle|train]
 *
 * Benchmarks and demos need checkpoints of the real published shapes without
 * downloading gigabytes, and tests need tiny ones we may ship. This tool takes
 * the tensor list and shapes from the same IR the compiler builds (import_hf
 * then frontend_build for an HF config, frontend_build for a gemmac
 * description), so whatever gemmac expects is exactly what it writes:
 * DIR/model.safetensors (8-byte LE header length, a JSON header with
 * "__metadata__", tensors sorted by name, padded with spaces to a multiple of
 * 8, then raw LE data) and a copy of the input as DIR/config.json (HF input)
 * or DIR/gemmac.json (description input). Weights are drawn as the oracle's
 * random checkpoints are (tests/golden/ORACLE.md): matrices
 * N(0, 1/fan_in), embeddings N(0, 0.06²), norms N(0, 0.1²), post-norms
 * N(1.5, 0.1²), the final norm N(10, 0.1²); without those shifts a tied-embedding
 * random model just echoes its input. --init train draws a start for
 * training from scratch instead, as Hugging Face initialises Gemma: every
 * matrix and the embedding N(0, 0.02²) (initializer_range), every norm 0
 * (a gain of 1 + 0). One splitmix64 stream, consumed in the
 * graph's value order, feeds Box-Muller; since splitmix64's state after k draws
 * is seed + k·γ, each tensor can start its own slice of that stream, so the
 * file is written in name order, tensor by tensor, in fixed-size chunks: a
 * 5 GB gemma-2b in BF16 never sits in memory. The data goes to a temporary
 * file in DIR that is renamed at the end, so DIR never holds a partial file. */
#define _XOPEN_SOURCE 700 /* mkdtemp */

#include "runtime/safetensors.h"
#include "compiler/frontend.h"
#include "compiler/import.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1 << 20) /* elements generated per write; even, so pairs never split */

#define USAGE \
    "usage: synth_checkpoint <hf config.json | hf dir | description.json> -o DIR\n" \
    "                        [--seed N] [--dtype f32|bf16] [--init oracle|train]\n"

static const char *const help_text =
    USAGE
    "Writes DIR/model.safetensors with random weights of the model's shapes, and the\n"
    "input as DIR/config.json (HF config) or DIR/gemmac.json (gemmac description).\n"
    "  --seed N     PRNG seed (default 0); the same seed gives the same bytes\n"
    "  --dtype T    f32 (default) or bf16; a dtype pinned by the description wins\n"
    "  --init I     oracle (default): the oracle's scales, a random model that says something;\n"
    "               train: HF's start for training (matrices N(0, 0.02^2), norms 0)\n";

static int usage(const char *why) {
    if (why) fprintf(stderr, "synth_checkpoint: %s\n", why);
    fputs(USAGE, stderr);
    return 2;
}

/* ---- random numbers ------------------------------------------------------ */

#define GAMMA 0x9E3779B97F4A7C15ull

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += GAMMA);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state) { /* in (0, 1] */
    return (double)((splitmix64(state) >> 11) + 1) * 0x1p-53;
}

/* n standard normals (n even) by Box-Muller, two draws per pair. */
static void normals(uint64_t *state, float *out, size_t n) {
    for (size_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(uniform01(state)));
        double t = 2.0 * M_PI * uniform01(state);
        out[i] = (float)(r * cos(t));
        out[i + 1] = (float)(r * sin(t));
    }
}

/* ---- weight scales by role (as the oracle draws them) -------------------- */

typedef struct {
    double mean, std;
} scale;

static int init_for_training; /* --init train */

static scale role_scale(const ir_value *w) {
    const char *role = w->role ? w->role : "";
    if (init_for_training) return (scale){0.0, strstr(role, "norm") ? 0.0 : 0.02};
    if (strstr(role, "norm")) {
        double mean = !strcmp(role, "final_norm") ? 10.0 : !strncmp(role, "post_", 5) ? 1.5 : 0.0;
        return (scale){mean, 0.1};
    }
    if (strstr(role, "embed")) return (scale){0.0, 0.06};
    if (w->ndim == 2) return (scale){0.0, 1.0 / sqrt((double)w->dims[1])}; /* [out, in] */
    return (scale){0.0, 0.1};
}

/* ---- f32 to the 16-bit formats, round to nearest even -------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint16_t to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static uint16_t round_shift(uint32_t m, int shift) { /* m >> shift, ties to even */
    uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return (uint16_t)(h + (rem > half || (rem == half && (h & 1))));
}

static uint16_t to_f16(float f) {
    uint32_t u = f32_bits(f), man = u & 0x7fffffu;
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    int exp = (int)((u >> 23) & 0xff) - 127 + 15;
    if (((u >> 23) & 0xff) == 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
    if (exp >= 31) return sign | 0x7c00;
    if (exp <= 0) return exp < -10 ? sign : sign | round_shift(man | 0x800000u, 14 - exp);
    /* a carry out of the mantissa bumps the exponent, up to infinity: still right */
    return sign | round_shift(((uint32_t)exp << 23) | man, 13);
}

/* Stores n floats as little-endian dtype t into out. */
static void encode(gm_dtype t, const float *x, size_t n, unsigned char *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = t == GM_F32 ? f32_bits(x[i]) : t == GM_BF16 ? to_bf16(x[i]) : to_f16(x[i]);
        for (size_t b = 0; b < gm_dtype_size(t); b++) *out++ = (unsigned char)(u >> (8 * b));
    }
}

/* ---- the tensor list ---------------------------------------------------- */

typedef struct {
    const ir_value *w;
    int id;          /* value id: ties between equal names keep the first */
    gm_dtype dtype;  /* as written */
    uint64_t draw;   /* index of its first draw in the graph-order stream */
    uint64_t offset; /* data offset, bytes */
} tensor;

static uint64_t tensor_bytes(const tensor *t) {
    return (uint64_t)ir_value_elems(t->w) * gm_dtype_size(t->dtype);
}

static int by_name(const void *a, const void *b) {
    const tensor *x = a, *y = b;
    int c = strcmp(x->w->name, y->w->name);
    return c ? c : x->id - y->id;
}

/* The weights of g, sorted by name, each once; returns the count, or -1. */
static int list_tensors(const ir_graph *g, gm_dtype dtype, tensor **out, gm_err *e) {
    tensor *ts = gm_calloc((size_t)g->n_values + 1, sizeof *ts);
    int n = 0;
    uint64_t draw = 0;
    for (int i = 0; i < g->n_values; i++) {
        const ir_value *v = &g->values[i];
        if (v->kind != IR_WEIGHT) continue;
        uint64_t elems = (uint64_t)ir_value_elems(v);
        ts[n++] = (tensor){v, i, v->pin_dtype ? v->dtype : dtype, draw, 0};
        draw += elems + (elems & 1);
    }
    qsort(ts, (size_t)n, sizeof *ts, by_name);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (kept && !strcmp(ts[kept - 1].w->name, ts[i].w->name)) {
            const ir_value *a = ts[kept - 1].w, *b = ts[i].w;
            if (a->ndim != b->ndim || memcmp(a->dims, b->dims, sizeof a->dims[0] * (size_t)a->ndim)) {
                free(ts);
                return gm_fail(e, "tensor %s is declared twice with different shapes (roles %s and %s)",
                               a->name, a->role, b->role);
            }
            continue; /* one tensor bound to two roles (e.g. a tied head) */
        }
        ts[kept++] = ts[i];
    }
    uint64_t offset = 0;
    for (int i = 0; i < kept; i++) {
        ts[i].offset = offset;
        offset += tensor_bytes(&ts[i]);
    }
    *out = ts;
    return kept;
}

/* ---- the safetensors file ---------------------------------------------- */

/* The header JSON (runtime/safetensors_write.c's, padded to a multiple of 8). */
static gm_buf header(const tensor *ts, int n) {
    gm_tensor *infos = gm_calloc((size_t)n + 1, sizeof *infos);
    for (int i = 0; i < n; i++) {
        infos[i] = (gm_tensor){.name = ts[i].w->name, .dtype = ts[i].dtype, .ndim = ts[i].w->ndim,
                               .nbytes = (size_t)tensor_bytes(&ts[i])};
        for (int d = 0; d < ts[i].w->ndim; d++) infos[i].shape[d] = ts[i].w->dims[d];
    }
    gm_buf b = {0};
    st_header(&b, infos, n);
    free(infos);
    return b;
}

/* Streams one tensor's values to f. */
static int write_tensor(FILE *f, const tensor *t, uint64_t seed, float *x, unsigned char *bytes) {
    uint64_t state = seed + t->draw * GAMMA; /* the stream after t->draw draws */
    scale sc = role_scale(t->w);
    uint64_t left = (uint64_t)ir_value_elems(t->w);
    while (left) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        normals(&state, x, n + (n & 1));
        for (size_t i = 0; i < n; i++) x[i] = (float)(sc.mean + sc.std * x[i]);
        encode(t->dtype, x, n, bytes);
        if (fwrite(bytes, gm_dtype_size(t->dtype), n, f) != n) return -1;
        left -= n;
    }
    return 0;
}

typedef struct {
    const gm_buf *header;
    const tensor *ts;
    int n;
    uint64_t seed;
} file_parts;

/* Writes the header and every tensor to f; returns 0 or -1 (errno set). */
static int write_stream(FILE *f, void *arg) {
    const file_parts *p = arg;
    if (st_write_length(f, p->header)) return -1;
    float *x = gm_malloc((CHUNK + 1) * sizeof *x);
    unsigned char *bytes = gm_malloc(CHUNK * sizeof(float));
    int rc = 0;
    for (int i = 0; !rc && i < p->n; i++) rc = write_tensor(f, &p->ts[i], p->seed, x, bytes);
    free(x);
    free(bytes);
    return rc;
}

/* Writes path through a temporary file beside it, renamed when complete;
 * returns the file's size, or -1. */
static int64_t write_safetensors(const char *path, const tensor *ts, int n, uint64_t seed, gm_err *e) {
    gm_buf h = header(ts, n);
    int64_t size = 8 + (int64_t)h.len + (n ? (int64_t)(ts[n - 1].offset + tensor_bytes(&ts[n - 1])) : 0);
    if (gm_write_atomic_with(path, write_stream, &(file_parts){&h, ts, n, seed}, e)) size = -1;
    free(h.s);
    return size;
}

/* ---- reading the input ------------------------------------------------- */

/* Replaces the first `from` in e's message with `to`. */
static void rename_in_message(gm_err *e, const char *from, const char *to) {
    char *at = strstr(e->msg, from);
    if (!at) return;
    char rest[sizeof e->msg];
    snprintf(rest, sizeof rest, "%s", at + strlen(from));
    snprintf(at, sizeof e->msg - (size_t)(at - e->msg), "%s%s", to, rest);
}

/* Imports an HF config from a private copy, so that a checkpoint lying next
 * to the original (perhaps the one being replaced) cannot change the shapes. */
static cJSON *import_config(const char *path, const char *text, size_t len, gm_err *e) {
    const char *base = getenv("TMPDIR");
    char dir[4096], file[4200];
    snprintf(dir, sizeof dir, "%s/synth_checkpoint.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        gm_fail(e, "%s: cannot create a temporary directory: %s", dir, strerror(errno));
        return NULL;
    }
    snprintf(file, sizeof file, "%s/config.json", dir);
    cJSON *desc = gm_write_file_atomic(file, text, len, e) ? NULL : import_hf(file, e);
    if (!desc) rename_in_message(e, file, path);
    unlink(file);
    rmdir(dir);
    return desc;
}

typedef struct {
    char *text;     /* the input file, verbatim */
    size_t len;
    int is_hf;      /* an HF config (else a gemmac description) */
    ir_graph *graph;
} model_input;

static int read_input(const char *arg, model_input *in, gm_err *e) {
    char path[4096];
    snprintf(path, sizeof path, gm_is_dir(arg) ? "%s/config.json" : "%s", arg);
    cJSON *root = frontend_parse(path, e);
    if (!root) return -1;
    in->text = gm_read_file(path, &in->len, e);
    if (!in->text || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return in->text ? gm_fail(e, "%s: expected a JSON object (an HF config.json or a gemmac description)", path) : -1;
    }
    in->is_hf = !cJSON_HasObjectItem(root, "format");
    cJSON *desc = root;
    if (in->is_hf) {
        cJSON_Delete(root);
        if (!(desc = import_config(path, in->text, in->len, e))) return -1;
    }
    in->graph = frontend_build(desc, path, e);
    cJSON_Delete(desc);
    return in->graph ? 0 : -1;
}

/* ---- main ---------------------------------------------------------------- */

typedef struct {
    const char *input, *dir;
    uint64_t seed;
    gm_dtype dtype;
} options;

/* Returns 0, or the exit code for a usage error (-1: --help). */
static int parse_args(int argc, char **argv, options *o) {
    *o = (options){NULL, NULL, 0, GM_F32};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return -1;
        int flag = !strcmp(a, "-o") || !strcmp(a, "--seed") || !strcmp(a, "--dtype") || !strcmp(a, "--init");
        if (flag && i + 1 >= argc) {
            fprintf(stderr, "synth_checkpoint: %s needs a value\n", a);
            return usage(NULL);
        }
        const char *v = flag ? argv[++i] : NULL;
        char *end;
        if (!strcmp(a, "-o")) o->dir = v;
        else if (!strcmp(a, "--seed")) {
            errno = 0;
            o->seed = strtoull(v, &end, 0);
            if (!*v || *end || *v == '-' || errno) {
                fprintf(stderr, "synth_checkpoint: --seed: expected a non-negative integer, found \"%s\"\n", v);
                return usage(NULL);
            }
        } else if (!strcmp(a, "--dtype")) {
            if (gm_dtype_from_name(v, &o->dtype) || (o->dtype != GM_F32 && o->dtype != GM_BF16)) {
                fprintf(stderr, "synth_checkpoint: --dtype: expected f32 or bf16, found \"%s\"\n", v);
                return usage(NULL);
            }
        } else if (!strcmp(a, "--init")) {
            if (strcmp(v, "oracle") && strcmp(v, "train")) {
                fprintf(stderr, "synth_checkpoint: --init: expected oracle or train, found \"%s\"\n", v);
                return usage(NULL);
            }
            init_for_training = !strcmp(v, "train");
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "synth_checkpoint: unknown option %s\n", a);
            return usage(NULL);
        } else if (o->input) return usage("more than one input given");
        else o->input = a;
    }
    if (!o->input) return usage("no input config or description given");
    if (!o->dir) return usage("no output directory given (-o DIR)");
    return 0;
}

static int make_dir(const char *dir, gm_err *e) {
    if (mkdir(dir, 0777) == 0 || (errno == EEXIST && gm_is_dir(dir))) return 0;
    return gm_fail(e, "%s: cannot create the output directory: %s", dir, strerror(errno));
}

static int run(const options *o, gm_err *e) {
    model_input in = {0};
    tensor *ts = NULL;
    char path[4200];
    int n = -1, rc = read_input(o->input, &in, e);
    if (!rc) rc = make_dir(o->dir, e);
    if (!rc) rc = (n = list_tensors(in.graph, o->dtype, &ts, e)) < 0 ? -1 : 0;
    int64_t bytes = -1;
    if (!rc) {
        snprintf(path, sizeof path, "%s/model.safetensors", o->dir);
        rc = (bytes = write_safetensors(path, ts, n, o->seed, e)) < 0 ? -1 : 0;
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s", o->dir, in.is_hf ? "config.json" : "gemmac.json");
        rc = gm_write_file_atomic(path, in.text, in.len, e);
    }
    if (!rc)
        printf("synth_checkpoint: wrote %s/model.safetensors: %d tensors, %lld parameters, %lld bytes, %s, seed %llu\n",
               o->dir, n, (long long)ir_param_count(in.graph), (long long)bytes, gm_dtype_name(o->dtype),
               (unsigned long long)o->seed);
    free(ts);
    free(in.text);
    ir_graph_free(in.graph);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    int u = parse_args(argc, argv, &o);
    if (u < 0) {
        fputs(help_text, stdout);
        return 0;
    }
    if (u) return u;
    gm_err e = {{0}};
    if (run(&o, &e)) {
        fprintf(stderr, "synth_checkpoint: %s\n", e.msg);
        return 1;
    }
    return 0;
}
