/* reference.c — the reference backend: a plain, readable C interpreter of the
 * IR, the oracle every other backend is compared with and the unfused
 * baseline of the benchmarks.
 *
 * Each call walks the nodes in order. Every activation gets its own [T, C]
 * buffer for the call (no memory planning, on purpose). Weights stay in the
 * checkpoint's mapping, in its own row-major layout (the reference's row of
 * compiler/targets.c keeps the layout pass away) and its own dtype: matmul converts blocks of weight
 * rows to f32 (decoding GGUF's block formats by runtime/quant.c) and hands
 * them to OpenBLAS, so a BF16 or quantized model is never expanded whole. Each attention op owns a slot of the KV cache (runtime/kv_cache.h):
 * a call attends over the cached positions before pos and its own fresh k, v
 * rows under the causal and sliding-window mask, then stores those rows.
 * Reductions accumulate in double. */
#include "reference.h"
#include "reference_ops.h"

#include "runtime/kv_cache.h"

#include <cblas.h>
#include <stdlib.h>

typedef struct {
    rt_engine base;
    const ir_graph *g;
    const gm_tensor *const *bound; /* per value id */
    rt_kv_cache *kv;               /* one slot per attention op */
    float **act;                   /* per value id, during a call: [T][C] */
    int pos;                       /* position of the call in progress */
    const rt_batch *batch;        /* a training graph's batch: targets, sequence starts */
} ref_engine;

#define ROW_BLOCK 256

void ref_weight_rows_f32(const gm_tensor *w, int64_t row, int64_t n_rows, int64_t cols, float *dst) {
    gm_to_f32(w->dtype, (const char *)w->data + gm_dtype_bytes(w->dtype, row * cols), dst, n_rows * cols);
}

int64_t ref_block_rows(const gm_tensor *w, int64_t N) { return w->dtype == GM_F32 ? N : ROW_BLOCK; }

float *ref_block_buffer(const gm_tensor *w, int64_t N, int64_t K) {
    return w->dtype == GM_F32 ? NULL : gm_malloc(ref_block_rows(w, N) * K * sizeof(float));
}

const float *ref_weight_block(const gm_tensor *w, int64_t row, int64_t n_rows, int64_t K, float *buf) {
    if (w->dtype == GM_F32) return (const float *)w->data + row * K;
    ref_weight_rows_f32(w, row, n_rows, K, buf);
    return buf;
}

/* y[T][N] = x[T][K] · wᵀ, w [N][K] row-major in its checkpoint dtype. */
static void matmul(const float *x, int T, int64_t K, const gm_tensor *w, int64_t N, float *y) {
    int64_t step = ref_block_rows(w, N);
    float *buf = ref_block_buffer(w, N, K);
    for (int64_t r = 0; r < N; r += step) {
        int64_t nr = N - r < step ? N - r : step;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)nr, (int)K, 1.0f, x, (int)K,
                    ref_weight_block(w, r, nr, K, buf), (int)K, 0.0f, y + r, (int)N);
    }
    free(buf);
}

static void embed(const int32_t *ids, int T, const gm_tensor *table, int64_t C, float *y) {
    for (int t = 0; t < T; t++) ref_weight_rows_f32(table, ids[t], 1, C, y + t * C);
}

static void rms_norm(const float *x, int T, int64_t C, const gm_tensor *w, double eps, double add_one, float *y) {
    int64_t G = w->shape[0];
    float *wf = gm_malloc(G * sizeof(float));
    ref_weight_rows_f32(w, 0, 1, G, wf);
    for (int64_t r = 0; r < T * C / G; r++) {
        const float *xr = x + r * G;
        double ss = 0;
        for (int64_t i = 0; i < G; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / G + eps));
        for (int64_t i = 0; i < G; i++) y[r * G + i] = xr[i] * inv * (float)(wf[i] + add_one);
    }
    free(wf);
}

/* y = r + y: the residual add of norm_add and matmul_add, the same sum as add(r, y). */
static void add_residual(const float *r, int64_t len, float *y) {
    for (int64_t i = 0; i < len; i++) y[i] = r[i] + y[i];
}

double ref_softcap(double v, double cap) { return cap * tanh(v / cap); }

/* x as --activations int8 gives it to a quantized weight's matmul
 * (passes/quantize_activations.c): per block of 32, d = max|x| / 127 and
 * each value d · round(x / d), ties to even. */
static void round_to_int8(float *x, int64_t n) {
    for (int64_t b = 0; b < n; b += 32) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b + i]));
        float d = amax / 127, id = d != 0 ? 1 / d : 0;
        for (int i = 0; i < 32; i++) x[b + i] = d * rintf(x[b + i] * id);
    }
}

/* x as --activations bf16 gives it to a bf16 weight's matmul
 * (passes/round_activations.c): each value rounded to bf16, ties to even. */
static void round_to_bf16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = gm_bf16_to_f32(gm_f32_to_bf16(x[i]));
}

/* matmul and its fused forms, step by step as the unfused ops compute them:
 * the norm before (norm_matmul), x rounded to 8 bits (x_int8) or to bf16 (x_bf16), then the
 * output scale, the residual add or the softcap after. */
static void linear(ref_engine *r, const ir_node *n, int T, float *y) {
    const ir_graph *g = r->g;
    int64_t K = ir_value_cols(g, n->in[0]), N = ir_value_cols(g, n->out);
    const float *x = r->act[n->in[0]];
    float *normed = NULL;
    int int8 = n->attr[IR_A_X_INT8] && gm_dtype_quantized(r->bound[n->in[1]]->dtype);
    int bf16 = n->attr[IR_A_X_BF16] && r->bound[n->in[1]]->dtype == GM_BF16;
    if (n->op == IR_NORM_MATMUL || int8 || bf16) x = normed = gm_malloc((size_t)T * K * sizeof(float));
    if (n->op == IR_NORM_MATMUL)
        rms_norm(r->act[n->in[0]], T, K, r->bound[n->in[2]], n->attr[IR_A_EPS], n->attr[IR_A_ADD_ONE], normed);
    else if (int8 || bf16)
        memcpy(normed, r->act[n->in[0]], (size_t)T * K * sizeof(float));
    if (int8) round_to_int8(normed, T * K);
    if (bf16) round_to_bf16(normed, T * K);
    matmul(x, T, K, r->bound[n->in[1]], N, y);
    free(normed);
    for (int64_t i = 0; n->attr[IR_A_OUT_SCALE] != 1 && i < T * N; i++) y[i] = (float)(y[i] * n->attr[IR_A_OUT_SCALE]);
    if (n->op == IR_MATMUL_ADD) add_residual(r->act[n->in[2]], T * N, y);
    double cap = n->op == IR_MATMUL_ADD ? 0 : n->attr[IR_A_SOFTCAP];
    for (int64_t i = 0; cap > 0 && i < T * N; i++) y[i] = (float)ref_softcap(y[i], cap);
}

void ref_rope(float *x, int T, int64_t C, int pos, const int32_t *start, const double *a, int inverse) {
    int hd = (int)a[IR_A_HEAD_DIM], half = hd / 2;
    for (int t = 0; t < T; t++) {
        double p = (inverse ? -1 : 1) * (pos + t - (start ? start[t] : 0)) / a[IR_A_POS_SCALE];
        for (int i = 0; i < half; i++) {
            double angle = p * pow(a[IR_A_THETA], -2.0 * i / hd);
            float c = (float)cos(angle), s = (float)sin(angle);
            for (int64_t h = 0; h < C; h += hd) {
                float *v = x + t * C + h;
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x1 * c + x0 * s;
            }
        }
    }
}

/* The keys and values one attention call sees: cached before pos, fresh
 * after (a training graph's attention has no cache: slot NULL, pos 0). */
typedef struct {
    const rt_kv_slot *slot;
    const float *k_new, *v_new; /* [T][cols] of this call */
    int pos, cols;
} kv_view;

static const float *key_at(const kv_view *kv, int j) {
    return j < kv->pos ? rt_kv_key(kv->slot, j) : kv->k_new + (size_t)(j - kv->pos) * kv->cols;
}

static const float *value_at(const kv_view *kv, int j) {
    return j < kv->pos ? rt_kv_value(kv->slot, j) : kv->v_new + (size_t)(j - kv->pos) * kv->cols;
}

/* One query head over keys lo..hi of kv head column offset `off`. */
static void attend_one(const float *q, const kv_view *kv, int off, int lo, int hi, int hd, const double *a,
                       float *scores, float *out) {
    double mx = -INFINITY;
    for (int j = lo; j <= hi; j++) {
        const float *k = key_at(kv, j) + off;
        double s = 0;
        for (int d = 0; d < hd; d++) s += (double)q[d] * k[d];
        s *= a[IR_A_SCALE];
        if (a[IR_A_SOFTCAP] > 0) s = ref_softcap(s, a[IR_A_SOFTCAP]);
        scores[j - lo] = (float)s;
        if (s > mx) mx = s;
    }
    double sum = 0;
    for (int j = lo; j <= hi; j++) sum += scores[j - lo] = (float)exp(scores[j - lo] - mx);
    for (int d = 0; d < hd; d++) {
        double o = 0;
        for (int j = lo; j <= hi; j++) o += (double)scores[j - lo] * value_at(kv, j)[off + d];
        out[d] = (float)(o / sum);
    }
}

static void attention(ref_engine *r, const ir_node *n, int T, float *y) {
    const double *a = n->attr;
    int nh = (int)a[IR_A_HEADS], nkv = (int)a[IR_A_KV_HEADS], hd = (int)a[IR_A_HEAD_DIM];
    int W = (int)a[IR_A_WINDOW], group = nh / nkv;
    rt_kv_slot *slot = n->cache_slot >= 0 ? &r->kv->slots[n->cache_slot] : NULL;
    kv_view kv = {slot, r->act[n->in[1]], r->act[n->in[2]], r->pos, nkv * hd};
    float *scores = gm_malloc((size_t)(r->pos + T) * sizeof(float));
    for (int t = 0; t < T; t++) {
        int i = r->pos + t, lo = ref_first_key(i, W, r->batch && r->batch->start ? r->batch->start[t] : 0);
        for (int h = 0; h < nh; h++)
            attend_one(r->act[n->in[0]] + (size_t)t * nh * hd + h * hd, &kv, (h / group) * hd, lo, i, hd, a,
                       scores, y + (size_t)t * nh * hd + h * hd);
    }
    free(scores);
    if (slot) rt_kv_store(slot, r->pos, T, kv.k_new, kv.v_new);
}

float ref_gelu_tanh(double v) {
    return (float)(0.5 * v * (1 + tanh(REF_GELU_C * (v + 0.044715 * v * v * v))));
}

static void elementwise(const ir_node *n, const float *x, const float *b, int64_t len, float *y) {
    const double *a = n->attr;
    for (int64_t i = 0; i < len; i++) {
        double v = x[i];
        switch ((int)n->op) {
        case IR_SCALE: y[i] = (float)(v * a[IR_A_BY]); break;
        case IR_GELU_TANH: y[i] = ref_gelu_tanh(v); break;
        case IR_GEGLU: y[i] = ref_gelu_tanh(v) * b[i]; break;
        case IR_SOFTCAP: y[i] = (float)ref_softcap(v, a[IR_A_CAP]); break;
        case IR_MUL: y[i] = x[i] * b[i]; break;
        case IR_ADD: y[i] = x[i] + b[i]; break;
        default: abort(); /* not elementwise: the interpreter's dispatch is wrong */
        }
    }
}

int64_t ref_value_len(const ir_graph *g, int v, int T) {
    const ir_value *x = &g->values[v];
    return ir_value_elems(x) * (x->dims[0] < 0 ? T : 1);
}

static void run_node(ref_engine *r, const ir_node *n, const int32_t *tokens, int T) {
    const ir_graph *g = r->g;
    int64_t C = ir_value_cols(g, n->out);
    float *y = r->act[n->out] = gm_malloc(ref_value_len(g, n->out, T) * sizeof(float));
    if (ir_ops[n->op].training) {
        ref_backward_node(g, n, r->bound, r->act, r->batch, y);
        return;
    }
    float *x = r->act[n->in[0]];
    switch (n->op) {
    case IR_EMBED: embed(tokens, T, r->bound[n->in[1]], C, y); break;
    case IR_RMS_NORM:
    case IR_NORM_ADD:
        rms_norm(x, T, C, r->bound[n->in[1]], n->attr[IR_A_EPS], n->attr[IR_A_ADD_ONE], y);
        if (n->op == IR_NORM_ADD) add_residual(r->act[n->in[2]], T * C, y);
        break;
    case IR_MATMUL:
    case IR_NORM_MATMUL:
    case IR_MATMUL_ADD: linear(r, n, T, y); break;
    case IR_ROPE:
        memcpy(y, x, (size_t)T * C * sizeof(float));
        ref_rope(y, T, C, r->pos, r->batch ? r->batch->start : NULL, n->attr, 0);
        break;
    case IR_ATTENTION: attention(r, n, T, y); break;
    default: elementwise(n, x, ir_ops[n->op].n_inputs > 1 ? r->act[n->in[1]] : NULL, ref_value_len(g, n->out, T), y); break;
    }
}

static int ref_prefill(rt_engine *en, const int32_t *tokens, int n, int pos, float *logits, int all_rows, gm_err *e) {
    ref_engine *r = (ref_engine *)en;
    if (rt_check_span(en, tokens, n, pos, e)) return -1;
    const ir_graph *g = r->g;
    r->pos = pos;
    int head = ir_head_start(g);
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *nd = &g->nodes[i];
        if (i == head && !all_rows && n > 1) { /* the head needs the last row only */
            int64_t C = ir_value_cols(g, nd->in[0]);
            memmove(r->act[nd->in[0]], r->act[nd->in[0]] + (n - 1) * C, C * sizeof(float));
            tokens += n - 1, n = 1;
        }
        run_node(r, nd, tokens, n);
    }
    memcpy(logits, r->act[g->logits], (size_t)n * g->vocab * sizeof(float));
    for (int v = 0; v < g->n_values; v++) {
        free(r->act[v]);
        r->act[v] = NULL;
    }
    return 0;
}

static int ref_decode(rt_engine *en, int32_t token, int pos, float *logits, gm_err *e) {
    return ref_prefill(en, &token, 1, pos, logits, 0, e);
}

static void ref_free(rt_engine *en) {
    ref_engine *r = (ref_engine *)en;
    rt_kv_free(r->kv);
    free(r->act);
    free(r);
}

rt_engine *ref_engine_create(const ir_graph *g, const gm_tensor *const *bound, const rt_engine_opts *o,
                             gm_err *e) {
    if (rt_check_opts(o, g->max_context, "reference", 0, e)) return NULL;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].panel) {
            gm_fail(e, "reference: weight %s is packed in panels for the CPU kernels; open the model for the reference "
                       "backend (gemmac does for --backend reference)", g->values[v].name);
            return NULL;
        }
    ref_engine *r = gm_calloc(1, sizeof *r);
    r->base = (rt_engine){.backend = "reference", .vocab = g->vocab, .context = o->context, .sequences = 1,
                          .prefill = ref_prefill, .decode = ref_decode, .free = ref_free};
    r->g = g;
    r->bound = bound;
    r->act = gm_calloc(g->n_values, sizeof *r->act);
    int *windows = gm_malloc(g->n_cache_slots * sizeof(int)), *cols = gm_malloc(g->n_cache_slots * sizeof(int));
    ir_cache_slots(g, windows, cols);
    r->kv = rt_kv_create(g->n_cache_slots, windows, cols, o->context, o->full_kv);
    r->base.kv_bytes = rt_kv_bytes(r->kv);
    free(windows);
    free(cols);
    return &r->base;
}

/* The reference's trainer: each run walks the nodes like a prefill, with
 * every value its own buffer, freeing each after its last reader (the loss
 * and the gradients kept), and stops at the loss for a loss_only batch. */
typedef struct {
    rt_trainer base;
    const ir_graph *g;
    const gm_tensor *const *bound;
    float **act;                   /* the last run's values */
    int *last;                     /* per value: its last reader (ir_live_ranges) */
} ref_trainer;

static void drop_values(ref_trainer *r) {
    for (int v = 0; v < r->g->n_values; v++) free(r->act[v]), r->act[v] = NULL;
}

static float *const *ref_train_run(rt_trainer *t, const rt_batch *b, gm_err *e) {
    ref_trainer *r = (ref_trainer *)t;
    const ir_graph *g = r->g;
    drop_values(r);
    if (rt_check_training_batch(b, g->vocab, g->max_context, e)) return NULL;
    rt_batch head = {.targets = b->targets, .T = rt_batch_scored(b)}; /* for nodes of S rows (passes/score_head.c) */
    ref_engine run = {.g = g, .bound = r->bound, .act = r->act};
    for (int i = 0; i < g->n_nodes && !(b->loss_only && r->act[g->loss]); i++) {
        run.batch = ir_node_rows(g, &g->nodes[i]) == IR_DIM_S ? &head : b;
        double t0 = t->profile ? gm_now_s() : 0;
        run_node(&run, &g->nodes[i], run.batch->tokens, run.batch->T);
        if (t->profile) rt_profile_add(t->profile, ir_ops[g->nodes[i].op].name, gm_now_s() - t0);
        for (int k = 0; k < ir_ops[g->nodes[i].op].n_inputs; k++) { /* done with values read for the last time */
            int v = g->nodes[i].in[k];
            if (r->last[v] == i && v != g->loss && !g->values[v].grad_of) free(r->act[v]), r->act[v] = NULL;
        }
    }
    return r->act;
}

static void ref_train_free(rt_trainer *t) {
    ref_trainer *r = (ref_trainer *)t;
    drop_values(r);
    free(r->act);
    free(r->last);
    free(r);
}

rt_trainer *ref_trainer_create(const ir_graph *g, const gm_tensor *const *bound, gm_err *e) {
    if (g->loss < 0) {
        gm_fail(e, "%s: not a training graph (no loss)", g->name);
        return NULL;
    }
    ref_trainer *r = gm_calloc(1, sizeof *r);
    r->base = (rt_trainer){.backend = "reference", .run = ref_train_run, .free = ref_train_free};
    r->g = g, r->bound = bound;
    r->act = gm_calloc(g->n_values, sizeof *r->act);
    r->last = gm_malloc(g->n_values * sizeof(int));
    int *first = gm_malloc(g->n_values * sizeof(int));
    ir_live_ranges(g, first, r->last);
    free(first);
    return &r->base;
}
