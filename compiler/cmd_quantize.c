/* cmd_quantize.c — `gemmac quantize <checkpoint> --to TYPE -o out.gguf`: what
 * llama.cpp's converter and llama-quantize do, in one step and without Python.
 *
 * The input is a GGUF file of any type gemmac reads (its metadata is copied
 * as it is, but for general.file_type, which becomes llama.cpp's
 * LLAMA_FTYPE of the target, general.quantization_version = 2, and the
 * split.* keys of a sharded file), or a Hugging Face safetensors directory
 * (quantize_hf.c makes the metadata, names and +1 norms llama.cpp's
 * converter would). Each tensor gets the type quantize_rules.c chooses,
 * llama-quantize's; a row length the type's block does not divide falls
 * back as llama.cpp does, with a line on stderr. Tensors are written in
 * llama.cpp's order (the non-layer ones, then layer by layer, by name
 * within each), each decoded to f32 (gguf_dequantize) and encoded by
 * gm_quantize, llama.cpp's reference quantizers bit for bit; a tensor that
 * keeps its type is copied byte for byte. Rows are encoded in slabs of
 * about 4M values split over the worker pool, and written as they are
 * done, so memory stays small whatever the model. Per tensor it prints the
 * name, the shape (row-major), the types from and to, and the sizes; then
 * the totals and the time. The output is written atomically. */
#include "quantize.h"

#include "cli.h"
#include "runtime/quant.h"
#include "runtime/threads.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define SLAB_ELEMS (1 << 22) /* values decoded and encoded at a time */

static const char usage[] =
    "usage: gemmac quantize <model.gguf | hf checkpoint dir> --to TYPE -o OUT.gguf [--keep-embedding TYPE]\n"
    "\n"
    "Writes the model as a llama.cpp GGUF file whose tensors are of TYPE, encoded bit for bit as\n"
    "llama.cpp's quantizers do. The input is a GGUF file (any type; its metadata is kept) or a\n"
    "Hugging Face safetensors directory (F32, BF16 or F16; written as llama.cpp's converter would,\n"
    "tokenizer.model included).\n"
    "\n"
    "  --to TYPE               f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k: every\n"
    "                          matrix as TYPE (llama-quantize --pure); q4_k_m, q5_k_m: llama.cpp's mixes\n"
    "                          (Q6_K for the LM head / tied embedding and for some layers' attn_v and\n"
    "                          ffn_down). Norms and other 1-D tensors keep their type (F32).\n"
    "  -o FILE                 the output (written atomically)\n"
    "  --keep-embedding TYPE   token_embd.weight as TYPE instead (any of the single types)\n"
    "\n"
    "A row length the type's block does not divide falls back as llama.cpp does (Q4_K -> Q5_0,\n"
    "Q5_K -> Q5_1, Q6_K -> Q8_0, else F16), said on stderr. docs/gguf.md has the rules.\n";

typedef struct {
    const char *input, *out;
    const gm_quant_target *to;
    gm_dtype embedding; /* GM_DTYPE_COUNT: by the rules */
} quant_args;

static int parse_args(int argc, char **argv, quant_args *a) {
    const char *v, *to = NULL;
    *a = (quant_args){.embedding = GM_DTYPE_COUNT};
    for (int i = 1; i < argc; i++) {
        if ((v = cli_value(argc, argv, &i, "-o"))) a->out = v;
        else if ((v = cli_value(argc, argv, &i, "--to"))) to = v;
        else if ((v = cli_value(argc, argv, &i, "--keep-embedding"))) {
            const gm_quant_target *t = gm_quant_target_find(v);
            if (!t || t->mix)
                return cli_usage_error("quantize", "--keep-embedding %s: expected one of f32, f16, bf16, q8_0, q4_0, "
                                                   "q4_1, q5_0, q5_1, q4_k, q5_k, q6_k", v);
            a->embedding = t->base;
        } else if (argv[i][0] == '-') return cli_usage_error("quantize", "unknown flag %s", argv[i]);
        else if (!a->input) a->input = argv[i];
        else return cli_usage_error("quantize", "unexpected argument %s", argv[i]);
    }
    if (!a->input) return cli_usage_error("quantize", "no checkpoint given");
    if (!to) return cli_usage_error("quantize", "no --to TYPE given (one of %s)", gm_quant_target_names());
    if (!(a->to = gm_quant_target_find(to)))
        return cli_usage_error("quantize", "--to %s: unknown type (expected one of %s)", to, gm_quant_target_names());
    if (!a->out) return cli_usage_error("quantize", "no -o OUT.gguf given");
    return cli_check_options("quantize", NULL);
}

/* ---- a GGUF input ---- */

/* The gemmac dtype of a ggml type; Q2_K and Q3_K, held as f32, as F32. */
static gm_dtype dtype_of(uint32_t ggml_type) {
    for (int d = 0; d < GM_DTYPE_COUNT; d++)
        if (gguf_ggml_type((gm_dtype)d) == (int)ggml_type) return (gm_dtype)d;
    return GM_F32;
}

static int is_split_key(const char *k) { return !strncmp(k, "split.", 6); }

/* Every key but the ones llama-quantize sets or drops; every tensor. */
static void from_gguf(const gguf_file *g, gguf_out *w, gm_quant_input **t, int *n) {
    for (int i = 0; i < gguf_kv_count(g); i++) {
        const gguf_kv *kv = gguf_kv_at(g, i);
        if (strcmp(kv->key, "general.file_type") && strcmp(kv->key, "general.quantization_version") &&
            !is_split_key(kv->key))
            gguf_set_kv(w, kv);
    }
    *n = gguf_tensor_count(g);
    *t = gm_calloc((size_t)*n + 1, sizeof **t);
    for (int i = 0; i < *n; i++) {
        const gguf_tensor *s = gguf_tensor_at(g, i);
        gm_quant_input *x = &(*t)[i];
        *x = (gm_quant_input){.name = gm_strdup(s->name), .ndim = s->ndim, .src_type = s->ggml_type,
                              .kept = dtype_of(s->ggml_type), .data = s->data, .nbytes = s->nbytes};
        memcpy(x->ne, s->ne, sizeof x->ne);
    }
}

/* ---- the plan ---- */

static int layer_of(const char *name) {
    int i;
    return sscanf(name, "blk.%d.", &i) == 1 ? i : -1;
}

/* llama.cpp's order (llama_model_loader's weight_name_comparer). */
static int by_layer_then_name(const void *x, const void *y) {
    const gm_quant_input *a = x, *b = y;
    int la = layer_of(a->name), lb = layer_of(b->name);
    return la != lb ? (la < lb ? -1 : 1) : strcmp(a->name, b->name);
}

static int64_t elements(const gm_quant_input *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->ne[i];
    return n;
}

/* The row-major shape, "[rows, cols]". */
static const char *shape_text(const gm_quant_input *t, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int i = t->ndim - 1; i >= 0 && k < len; i--)
        k += (size_t)snprintf(buf + k, len - k, "%lld%s", (long long)t->ne[i], i ? ", " : "]");
    return buf;
}

/* Each tensor's type, its info added to w; fallbacks said on stderr. */
static int plan(const quant_args *a, gm_quant_input *t, int n, gm_dtype *to, gguf_out *w, gm_err *e) {
    int n_layers = 0, tied = 1;
    for (int i = 0; i < n; i++) {
        if (layer_of(t[i].name) >= n_layers) n_layers = layer_of(t[i].name) + 1;
        if (!strcmp(t[i].name, "output.weight")) tied = 0;
    }
    for (int i = 0; i < n; i++) {
        gm_quant_tensor q = {t[i].name, t[i].ndim, t[i].ne, t[i].kept, n_layers, tied};
        gm_dtype wanted;
        to[i] = gm_quant_type(a->to, &q, a->embedding, &wanted);
        if (to[i] != wanted)
            gm_say("%s: row length %lld is not a multiple of %s's block of %d; %s instead, as llama.cpp falls back\n",
                    t[i].name, (long long)t[i].ne[0], gguf_type_name((uint32_t)gguf_ggml_type(wanted)),
                    gm_dtype_block(wanted), gguf_type_name((uint32_t)gguf_ggml_type(to[i])));
        if (gguf_add_tensor(w, t[i].name, t[i].ndim, t[i].ne, to[i], e)) return -1;
    }
    return 0;
}

/* ---- converting ---- */

/* Rows [0, rows) of a slab, split over the pool's threads. */
typedef struct {
    const gm_quant_input *t;
    const uint8_t *src;       /* the slab's first row in the input */
    size_t src_row, dst_row;  /* bytes of a row */
    uint8_t *dst;
    float *f32;               /* rows × ne[0] scratch */
    int64_t rows;
    gm_dtype to;
    atomic_llong bad_row;     /* a row holding a NaN or an infinity (not encoded), or -1 */
} slab;

static void convert_rows(void *arg, int part, int parts) {
    slab *s = arg;
    int64_t cols = s->t->ne[0], first = s->rows * part / parts, last = s->rows * (part + 1) / parts;
    for (int64_t r = first; r < last; r++) {
        float *x = s->f32 + r * cols;
        gguf_dequantize(s->t->src_type, s->src + r * s->src_row, x, cols);
        if (s->t->add_one)
            for (int64_t j = 0; j < cols; j++) x[j] += 1.0f;
        if (gm_all_finite(x, cols)) gm_quantize(s->to, x, s->dst + r * s->dst_row, cols);
        else atomic_store(&s->bad_row, r);
    }
}

/* One tensor's bytes as type `to`, written to w slab by slab; `input` names the file in messages. */
static int convert(rt_pool *pool, const char *input, const gm_quant_input *t, gm_dtype to, gguf_out *w, gm_err *e) {
    if ((gguf_ggml_type(to) == (int)t->src_type && !t->add_one) || !elements(t))
        return gguf_write_data(w, t->data, t->nbytes, e);
    int64_t cols = t->ne[0], rows = elements(t) / cols, step = SLAB_ELEMS / cols > 0 ? SLAB_ELEMS / cols : 1;
    slab s = {.t = t, .src_row = t->nbytes / (size_t)rows, .dst_row = gm_dtype_bytes(to, cols), .to = to, .bad_row = -1};
    int64_t most = rows < step ? rows : step;
    s.f32 = gm_malloc((size_t)(most * cols) * sizeof *s.f32);
    s.dst = gm_malloc((size_t)most * s.dst_row);
    int rc = 0;
    for (int64_t r = 0; r < rows && !rc; r += step) {
        s.src = (const uint8_t *)t->data + (size_t)r * s.src_row;
        s.rows = rows - r < step ? rows - r : step;
        rt_pool_run(pool, convert_rows, &s);
        long long bad = atomic_load(&s.bad_row);
        rc = bad >= 0 ? gm_fail(e, "%s: tensor %s: row %lld holds a NaN or an infinity; only finite weights can be "
                                   "quantized (is the checkpoint damaged?)", input, t->name, r + bad)
                      : gguf_write_data(w, s.dst, (size_t)s.rows * s.dst_row, e);
    }
    free(s.f32);
    free(s.dst);
    return rc;
}

static int write_all(const quant_args *a, gm_quant_input *t, int n, gguf_out *w, gm_err *e) {
    qsort(t, (size_t)n, sizeof *t, by_layer_then_name);
    gguf_set_int(w, "general.quantization_version", GGUF_T_UINT32, 2);
    gguf_set_int(w, "general.file_type", GGUF_T_UINT32, a->to->ftype);
    gm_dtype *to = gm_malloc(((size_t)n + 1) * sizeof *to);
    int rc = plan(a, t, n, to, w, e) || gguf_write_begin(w, a->out, e) ? -1 : 0;
    rt_pool *pool = rt_pool_new(rt_default_threads());
    double start = gm_now_s(), in = 0, out = 0;
    for (int i = 0; i < n && !rc; i++) {
        char shape[96];
        size_t bytes = gm_dtype_bytes(to[i], elements(&t[i]));
        printf("[%4d/%4d] %-36s %-16s %6s -> %-6s %9.2f MiB -> %9.2f MiB\n", i + 1, n, t[i].name,
               shape_text(&t[i], shape, sizeof shape), gguf_type_name(t[i].src_type),
               gguf_type_name((uint32_t)gguf_ggml_type(to[i])), t[i].nbytes / 1048576.0, bytes / 1048576.0);
        fflush(stdout);
        rc = convert(pool, a->input, &t[i], to[i], w, e);
        in += (double)t[i].nbytes, out += (double)bytes;
    }
    if (!rc) rc = gguf_write_finish(w, e);
    if (!rc)
        printf("%s: %d tensors, %.2f MiB -> %.2f MiB (%s), %.2f s\n", a->out, n, in / 1048576.0, out / 1048576.0,
               a->to->name, gm_now_s() - start);
    rt_pool_free(pool);
    free(to);
    return rc;
}

int cmd_quantize(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return fputs(usage, stdout), 0;
    quant_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    gm_err e = {{0}};
    gguf_out *w = gguf_out_new();
    gm_quant_input *t = NULL;
    int n = 0;
    gguf_file *g = NULL;
    gm_weights *st = NULL;
    if (gm_is_dir(a.input)) rc = gm_quant_from_hf(a.input, w, &t, &n, &st, &e);
    else if ((g = gguf_open(a.input, &e))) from_gguf(g, w, &t, &n);
    else rc = -1;
    if (rc && strstr(e.msg, "this is not a GGUF file")) {
        gm_err why = e;
        gm_fail(&e, "%s; gemmac quantize takes a .gguf file or a Hugging Face checkpoint directory", why.msg);
    }
    if (!rc) rc = write_all(&a, t, n, w, &e);
    for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
    gguf_out_free(w);
    gguf_close(g);
    weights_close(st);
    return rc ? cli_error(&e) : 0;
}
