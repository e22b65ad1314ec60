/* test_grad.c — training graphs: every op's vector-Jacobian rule
 * (passes/differentiate.c) and the reference backend's backward ops against
 * central finite differences, op by op; whole-model gradients of every
 * oracle case, and LoRA adapters' gradients, against PyTorch's autograd
 * (tests/golden/grad, made once by make_reference.py and
 * make_training_reference.py in float64); ops without a rule refused by
 * name; packed sequences against the same sequences run apart; and the
 * trainer (compiler/train.h) through 50 AdamW steps against PyTorch's
 * torch.optim.AdamW, full and LoRA.
 *
 * Each op is tested in a toy graph built here: its activation inputs come
 * from embedding lookups (so that d loss / d input shows in the tables'
 * gradients), its output goes through a head matmul to logits and the
 * cross-entropy loss. Every weight element is perturbed by ±h and the loss
 * recomputed in double precision by a forward pass written here apart from
 * the backend: (L(w+h) − L(w−h)) / 2h must match the backend's gradient
 * (f32) to 1e-5 of the tensor's largest (measured: 2.3e-7; a 3 % change
 * of the smallest term of gelu's derivative fails it). */
#include "testing.h"

#include "backends/reference/reference.h"
#include "compiler/model.h"
#include "compiler/passes/passes.h"
#include "compiler/train.h"
#include "oracle_exe.h"
#include "runtime/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define T_TOY 7
#define V_TOY 11
#define MAX_W 8

static const char *backend = "reference"; /* the suite's: every test runs on both trainers */
static int on_reference(void) { return backend = "reference", 0; }
static int on_jit(void) { return backend = "jit", 0; }

typedef struct {
    ir_graph *g;
    int n_w, wid[MAX_W];
    float *w[MAX_W];
    gm_tensor t[MAX_W];
    const gm_tensor *bound[256];
    uint64_t seed;
} toy;

static double uniform(toy *m) {
    m->seed = m->seed * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(m->seed >> 11) / 9007199254740992.0 - 0.5;
}

static toy *toy_new(void) {
    toy *m = calloc(1, sizeof *m);
    m->g = ir_graph_new("toy");
    m->g->vocab = V_TOY;
    m->g->max_context = 64;
    m->seed = 7;
    int64_t t = IR_DIM_T;
    m->g->tokens = ir_add_value(m->g, "tokens", IR_INPUT, GM_I32, 1, &t, -1);
    return m;
}

/* A weight [rows, cols] (cols 0: [rows]) of values mean + spread · U(−½, ½). */
static int weight(toy *m, const char *name, int64_t rows, int64_t cols, double mean, double spread) {
    int64_t dims[2] = {rows, cols}, n = rows * (cols ? cols : 1);
    int i = m->n_w++, id = ir_add_value(m->g, name, IR_WEIGHT, GM_F32, cols ? 2 : 1, dims, -1);
    m->w[i] = malloc(n * sizeof(float));
    for (int64_t k = 0; k < n; k++) m->w[i][k] = (float)(mean + spread * uniform(m));
    m->t[i] = (gm_tensor){.name = m->g->values[id].name, .dtype = GM_F32, .ndim = cols ? 2 : 1, .shape = {rows, cols},
                          .data = m->w[i], .nbytes = n * sizeof(float)};
    m->wid[i] = id;
    m->bound[id] = &m->t[i];
    return id;
}

static int node(toy *m, ir_op op, int a, int b, int c, const char *out) {
    int id = ir_add_value(m->g, out, IR_ACT, GM_F32, 0, NULL, 0);
    ir_add_node(m->g, op, (int[]){a, b, c, -1}, id, 0, out);
    return id;
}

static int attr(toy *m, ir_attr a, double v) { return m->g->nodes[m->g->n_nodes - 1].attr[a] = v, 0; }

/* x = embed(tokens, a table of cols columns). */
static int lookup(toy *m, const char *table, int64_t cols) {
    char out[64];
    snprintf(out, sizeof out, "x_%s", table);
    return node(m, IR_EMBED, m->g->tokens, weight(m, table, V_TOY, cols, 0, 2), -1, out);
}

/* logits = matmul(y, head) and the loss. */
static void finish(toy *m, int y) {
    gm_err e;
    ir_verify(m->g, &e); /* infers y's shape; fails only for want of logits */
    int head = weight(m, "head", V_TOY, ir_value_cols(m->g, y), 0, 1);
    m->g->logits = node(m, IR_MATMUL, y, head, -1, "logits");
}

static const int32_t toy_tokens[T_TOY] = {3, 1, 4, 1, 5, 9, 2};
static const int32_t toy_targets[T_TOY] = {1, -1, 1, 5, 9, 2, -1}; /* one unscored row inside */

/* ---- the toy graphs' forward pass again, in double precision ------------- *
 * Written apart from the reference backend, op by op from docs/model-format.md,
 * so that the finite differences are those of the ops' definitions, exact to
 * ~1e-10, not of the f32 interpreter under test. */

typedef struct {
    const toy *m;
    double **w;   /* per weight of m, its values */
    double **v;   /* per value id: [T][C] */
} dbl;

static const double *dbl_weight(const dbl *d, int value) {
    for (int i = 0; i < d->m->n_w; i++)
        if (d->m->wid[i] == value) return d->w[i];
    return NULL;
}

static double gelu_d(double x) { return 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

static void norm_d(const double *x, int64_t C, const double *w, int64_t G, const double *a, double *y) {
    for (int64_t r = 0; r < T_TOY * C / G; r++) {
        double ss = 0;
        for (int64_t i = 0; i < G; i++) ss += x[r * G + i] * x[r * G + i];
        for (int64_t i = 0; i < G; i++) y[r * G + i] = x[r * G + i] / sqrt(ss / G + a[IR_A_EPS]) * (w[i] + a[IR_A_ADD_ONE]);
    }
}

static void matmul_d(const double *x, int64_t K, const double *W, int64_t N, const double *a, double *y) {
    for (int t = 0; t < T_TOY; t++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += x[t * K + k] * W[n * K + k];
            s *= a[IR_A_OUT_SCALE];
            y[t * N + n] = a[IR_A_SOFTCAP] > 0 ? a[IR_A_SOFTCAP] * tanh(s / a[IR_A_SOFTCAP]) : s;
        }
}

static void rope_d(double *x, int64_t C, const double *a) {
    int hd = (int)a[IR_A_HEAD_DIM], half = hd / 2;
    for (int t = 0; t < T_TOY; t++)
        for (int64_t h = 0; h < C; h += hd)
            for (int i = 0; i < half; i++) {
                double ang = t / a[IR_A_POS_SCALE] * pow(a[IR_A_THETA], -2.0 * i / hd), *v = x + t * C + h;
                double x0 = v[i], x1 = v[i + half];
                v[i] = x0 * cos(ang) - x1 * sin(ang), v[i + half] = x1 * cos(ang) + x0 * sin(ang);
            }
}

static void attention_d(const double *q, const double *k, const double *v, const double *a, double *y) {
    int nh = (int)a[IR_A_HEADS], nkv = (int)a[IR_A_KV_HEADS], hd = (int)a[IR_A_HEAD_DIM], W = (int)a[IR_A_WINDOW];
    for (int t = 0; t < T_TOY; t++)
        for (int h = 0; h < nh; h++) {
            int off = h / (nh / nkv) * hd, lo = W > 0 && t - W + 1 > 0 ? t - W + 1 : 0;
            double p[T_TOY], sum = 0;
            for (int j = lo; j <= t; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++) s += q[(t * nh + h) * hd + d] * k[j * nkv * hd + off + d];
                s *= a[IR_A_SCALE];
                sum += p[j] = exp(a[IR_A_SOFTCAP] > 0 ? a[IR_A_SOFTCAP] * tanh(s / a[IR_A_SOFTCAP]) : s);
            }
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int j = lo; j <= t; j++) o += p[j] / sum * v[j * nkv * hd + off + d];
                y[(t * nh + h) * hd + d] = o;
            }
        }
}

static double cross_entropy_d(const double *z, int64_t V) {
    double total = 0;
    int scored = 0;
    for (int t = 0; t < T_TOY; t++) {
        if (toy_targets[t] < 0) continue;
        double sum = 0;
        for (int64_t j = 0; j < V; j++) sum += exp(z[t * V + j]);
        total += log(sum) - z[t * V + toy_targets[t]], scored++;
    }
    return total / scored;
}

/* One forward node in double into d->v[n->out]; returns the loss at the loss node. */
static double node_d(dbl *d, const ir_node *n) {
    const ir_graph *g = d->m->g;
    const double *a = n->attr, *x = d->v[n->in[0]], *b = ir_ops[n->op].n_inputs > 1 ? d->v[n->in[1]] : NULL;
    int64_t C = ir_value_cols(g, n->out), K = ir_value_cols(g, n->in[0]), len = T_TOY * C;
    double *y = d->v[n->out] = calloc(len, sizeof(double)), *normed = NULL;
    switch ((int)n->op) {
    case IR_EMBED:
        for (int t = 0; t < T_TOY; t++) memcpy(y + t * C, dbl_weight(d, n->in[1]) + toy_tokens[t] * C, C * sizeof(double));
        break;
    case IR_RMS_NORM:
    case IR_NORM_ADD:
        norm_d(x, C, dbl_weight(d, n->in[1]), g->values[n->in[1]].dims[0], a, y);
        for (int64_t i = 0; n->op == IR_NORM_ADD && i < len; i++) y[i] += d->v[n->in[2]][i];
        break;
    case IR_MATMUL:
    case IR_NORM_MATMUL:
    case IR_MATMUL_ADD:
        if (n->op == IR_NORM_MATMUL) {
            normed = calloc(T_TOY * K, sizeof(double));
            norm_d(x, K, dbl_weight(d, n->in[2]), K, a, normed);
            x = normed;
        }
        matmul_d(x, K, dbl_weight(d, n->in[1]), C, a, y);
        for (int64_t i = 0; n->op == IR_MATMUL_ADD && i < len; i++) y[i] += d->v[n->in[2]][i];
        break;
    case IR_ROPE: memcpy(y, x, len * sizeof(double)), rope_d(y, C, a); break;
    case IR_ATTENTION: attention_d(x, b, d->v[n->in[2]], a, y); break;
    case IR_CROSS_ENTROPY: return cross_entropy_d(x, K);
    default:
        for (int64_t i = 0; i < len; i++)
            y[i] = n->op == IR_SCALE ? x[i] * a[IR_A_BY] : n->op == IR_GELU_TANH ? gelu_d(x[i]) : n->op == IR_MUL ? x[i] * b[i]
                 : n->op == IR_GEGLU ? gelu_d(x[i]) * b[i] : n->op == IR_ADD ? x[i] + b[i] : a[IR_A_CAP] * tanh(x[i] / a[IR_A_CAP]);
    }
    free(normed);
    return NAN;
}

/* The loss of m's forward nodes in double, weights from d->w. */
static double loss_d(dbl *d) {
    const ir_graph *g = d->m->g;
    d->v = calloc(g->n_values, sizeof *d->v);
    double L = NAN;
    for (int i = 0; i < g->n_nodes && isnan(L); i++) L = node_d(d, &g->nodes[i]);
    for (int v = 0; v < g->n_values; v++) free(d->v[v]);
    free(d->v);
    return L;
}

/* Differentiates m's graph and checks every weight's gradient (f32, the
 * reference backend) against central differences of the double-precision
 * forward pass with step h: |fd − g| ≤ tol · (max |g| of the tensor). */
static void check_grads(toy *m, double h, double tol) {
    gm_err e;
    if (ir_verify(m->g, &e)) printf("\n  %s\n", e.msg);
    int rc = pass_differentiate(m->g, &e);
    if (rc) printf("\n  %s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    rt_trainer *tr = gm_trainer_create(m->g, m->bound, backend, 1, &e);
    if (!tr) printf("\n  %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tr);
    float *const *act = tr->run(tr, &(rt_batch){toy_tokens, toy_targets, NULL, T_TOY, 0}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(act);
    dbl d = {m, calloc(m->n_w, sizeof(double *)), NULL};
    for (int i = 0; i < m->n_w; i++) {
        int64_t n = m->t[i].nbytes / sizeof(float);
        d.w[i] = malloc(n * sizeof(double));
        for (int64_t k = 0; k < n; k++) d.w[i][k] = m->w[i][k];
    }
    double f32_loss = act[m->g->loss][0], loss = loss_d(&d);
    CU_ASSERT(fabs(f32_loss - loss) < 1e-5 * fabs(loss)); /* the two forward passes agree */
    for (int i = 0; i < m->n_w; i++) {
        int gv = -1;
        for (int v = 0; v < m->g->n_values; v++)
            if (m->g->values[v].grad_of && !strcmp(m->g->values[v].grad_of, m->t[i].name)) gv = v;
        CU_ASSERT_FATAL(gv >= 0);
        int64_t n = m->t[i].nbytes / sizeof(float);
        double gmax = 0, worst = 0;
        for (int64_t k = 0; k < n; k++) gmax = fmax(gmax, fabs(act[gv][k]));
        for (int64_t k = 0; k < n; k++) {
            double keep = d.w[i][k];
            d.w[i][k] = keep + h;
            double up = loss_d(&d);
            d.w[i][k] = keep - h;
            double down = loss_d(&d);
            d.w[i][k] = keep;
            worst = fmax(worst, fabs((up - down) / (2 * h) - act[gv][k]));
        }
        if (getenv("GM_GRAD_VERBOSE") || worst > tol * gmax)
            printf("\n  %s: d/d %s: max |fd - grad| %.3g, max |grad| %.3g\n", m->g->name, m->t[i].name, worst, gmax);
        CU_ASSERT(worst <= tol * gmax);
        CU_ASSERT(gmax > 0); /* every weight reaches the loss */
    }
    for (int i = 0; i < m->n_w; i++) free(d.w[i]);
    free(d.w);
    tr->free(tr);
}

static void toy_free(toy *m) {
    for (int i = 0; i < m->n_w; i++) free(m->w[i]);
    ir_graph_free(m->g);
    free(m);
}

#define H 1e-5
#define TOL 1e-5

/* One test: an op over lookups, the head and the loss. */
static void run_toy(void (*build)(toy *m)) {
    toy *m = toy_new();
    build(m);
    check_grads(m, H, TOL);
    toy_free(m);
}

static void b_scale(toy *m) {
    int y = node(m, IR_SCALE, lookup(m, "a", 8), -1, -1, "y");
    attr(m, IR_A_BY, 1.7);
    finish(m, y);
}

static void b_rms_norm(toy *m) {
    int y = node(m, IR_RMS_NORM, lookup(m, "a", 8), weight(m, "w", 8, 0, 0, 0.4), -1, "y");
    attr(m, IR_A_EPS, 1e-6), attr(m, IR_A_ADD_ONE, 1);
    finish(m, y);
}

static void b_rms_norm_groups(toy *m) { /* a norm per head of 4, as Gemma 3's q_norm */
    int y = node(m, IR_RMS_NORM, lookup(m, "a", 8), weight(m, "w", 4, 0, 1, 0.4), -1, "y");
    attr(m, IR_A_EPS, 1e-6);
    finish(m, y);
}

static void b_matmul(toy *m) {
    finish(m, node(m, IR_MATMUL, lookup(m, "a", 8), weight(m, "W", 6, 8, 0, 1), -1, "y"));
}

static void b_matmul_softcap(toy *m) {
    int y = node(m, IR_MATMUL, lookup(m, "a", 8), weight(m, "W", 6, 8, 0, 1), -1, "y");
    attr(m, IR_A_SOFTCAP, 1.5), attr(m, IR_A_OUT_SCALE, 0.5);
    finish(m, y);
}

static void b_rope(toy *m) {
    int y = node(m, IR_ROPE, lookup(m, "a", 8), -1, -1, "y");
    attr(m, IR_A_HEAD_DIM, 4), attr(m, IR_A_THETA, 100), attr(m, IR_A_POS_SCALE, 2);
    finish(m, y);
}

static void attention(toy *m, double softcap, double window) {
    int q = lookup(m, "q", 16), k = lookup(m, "k", 8), v = lookup(m, "v", 8);
    int y = node(m, IR_ATTENTION, q, k, v, "y");
    attr(m, IR_A_HEADS, 4), attr(m, IR_A_KV_HEADS, 2), attr(m, IR_A_HEAD_DIM, 4), attr(m, IR_A_SCALE, 0.7);
    attr(m, IR_A_SOFTCAP, softcap), attr(m, IR_A_WINDOW, window);
    finish(m, y);
}

static void b_attention(toy *m) { attention(m, 0, 0); }
static void b_attention_capped(toy *m) { attention(m, 1.5, 3); }

static void b_gelu_tanh(toy *m) { finish(m, node(m, IR_GELU_TANH, lookup(m, "a", 8), -1, -1, "y")); }
static void b_mul(toy *m) { finish(m, node(m, IR_MUL, lookup(m, "a", 8), lookup(m, "b", 8), -1, "y")); }
static void b_geglu(toy *m) { finish(m, node(m, IR_GEGLU, lookup(m, "a", 8), lookup(m, "b", 8), -1, "y")); }
static void b_add(toy *m) { finish(m, node(m, IR_ADD, lookup(m, "a", 8), lookup(m, "b", 8), -1, "y")); }

static void b_softcap(toy *m) {
    int y = node(m, IR_SOFTCAP, lookup(m, "a", 8), -1, -1, "y");
    attr(m, IR_A_CAP, 0.8);
    finish(m, y);
}

static void b_norm_matmul(toy *m) {
    int y = node(m, IR_NORM_MATMUL, lookup(m, "a", 8), weight(m, "W", 6, 8, 0, 1), weight(m, "n", 8, 0, 0, 0.4), "y");
    attr(m, IR_A_EPS, 1e-6), attr(m, IR_A_ADD_ONE, 1), attr(m, IR_A_SOFTCAP, 2);
    finish(m, y);
}

static void b_matmul_add(toy *m) {
    finish(m, node(m, IR_MATMUL_ADD, lookup(m, "a", 8), weight(m, "W", 6, 8, 0, 1), lookup(m, "r", 6), "y"));
}

static void b_norm_add(toy *m) {
    int y = node(m, IR_NORM_ADD, lookup(m, "a", 8), weight(m, "n", 8, 0, 1, 0.4), lookup(m, "r", 8), "y");
    attr(m, IR_A_EPS, 1e-6);
    finish(m, y);
}

/* A tied table: the lookup's and the head's gradients add up. */
static void b_tied(toy *m) {
    int table = weight(m, "table", V_TOY, 8, 0, 2);
    int x = node(m, IR_EMBED, m->g->tokens, table, -1, "x");
    int y = node(m, IR_SCALE, x, -1, -1, "y");
    attr(m, IR_A_BY, 3);
    m->g->logits = node(m, IR_MATMUL, y, table, -1, "logits");
}

static void test_scale(void) { run_toy(b_scale); }
static void test_rms_norm(void) { run_toy(b_rms_norm); }
static void test_rms_norm_groups(void) { run_toy(b_rms_norm_groups); }
static void test_matmul(void) { run_toy(b_matmul); }
static void test_matmul_softcap(void) { run_toy(b_matmul_softcap); }
static void test_rope(void) { run_toy(b_rope); }
static void test_attention(void) { run_toy(b_attention); }
static void test_attention_capped(void) { run_toy(b_attention_capped); }
static void test_gelu_tanh(void) { run_toy(b_gelu_tanh); }
static void test_mul(void) { run_toy(b_mul); }
static void test_geglu(void) { run_toy(b_geglu); }
static void test_add(void) { run_toy(b_add); }
static void test_softcap(void) { run_toy(b_softcap); }
static void test_norm_matmul(void) { run_toy(b_norm_matmul); }
static void test_matmul_add(void) { run_toy(b_matmul_add); }
static void test_norm_add(void) { run_toy(b_norm_add); }
static void test_tied(void) { run_toy(b_tied); }

static void expect_refused(toy *m, const char *part) {
    gm_err e;
    CU_ASSERT_EQUAL(ir_verify(m->g, &e), 0);
    CU_ASSERT_NOT_EQUAL(pass_differentiate(m->g, &e), 0);
    if (!strstr(e.msg, part)) printf("\n  message \"%s\" lacks \"%s\"\n", e.msg, part);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, part));
    toy_free(m);
}

/* An op without a rule (here a backward op in a forward graph) is refused by
 * name and place; so are activations rounded to int8, and differentiating twice. */
static void test_refusals(void) {
    toy *m = toy_new();
    int y = node(m, IR_ROPE_DX, lookup(m, "a", 8), -1, -1, "y");
    attr(m, IR_A_HEAD_DIM, 4), attr(m, IR_A_THETA, 100);
    finish(m, y);
    expect_refused(m, "y (rope_dx): this op has no gradient rule, so the graph cannot be trained");
    m = toy_new();
    y = node(m, IR_MATMUL, lookup(m, "a", 8), weight(m, "W", 6, 8, 0, 1), -1, "y");
    attr(m, IR_A_X_INT8, 1);
    finish(m, y);
    expect_refused(m, "y (matmul): activations rounded to int8 or bf16 have no gradient");
    m = toy_new();
    finish(m, lookup(m, "a", 8));
    gm_err e;
    CU_ASSERT_EQUAL(pass_differentiate(m->g, &e), 0);
    expect_refused(m, "the graph is a training graph already");
}

/* ---- whole models against PyTorch ------------------------------------- */

/* The reference's r_i of tests/golden/grad/make_reference.py. */
static double probe_weight(uint64_t i) { return (double)((i * 2654435761ull) % 4294967296ull) / 4294967296.0 - 0.5; }

typedef struct {
    double norm, proj, sample; /* errors relative to the reference's norm (samples: to its RMS) */
} grad_error;

/* Compares gradient g (n floats) with the reference's figures of one tensor. */
static grad_error compare_tensor(const float *g, int64_t n, const cJSON *ref) {
    double norm = 0, proj = 0, ref_norm = test_json_num(ref, "norm");
    for (int64_t i = 0; i < n; i++) norm += (double)g[i] * g[i], proj += g[i] * probe_weight((uint64_t)i);
    grad_error err = {fabs(sqrt(norm) - ref_norm) / ref_norm, fabs(proj - test_json_num(ref, "proj")) / ref_norm, 0};
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(ref, "samples")) {
        int64_t at = (int64_t)cJSON_GetArrayItem(s, 0)->valuedouble;
        double want = cJSON_GetArrayItem(s, 1)->valuedouble;
        err.sample = fmax(err.sample, fabs(g[at] - want) / (ref_norm / sqrt((double)n)));
    }
    return err;
}

static cJSON *read_reference(const char *file) {
    char rel[160];
    snprintf(rel, sizeof rel, "golden/grad/%s", file);
    gm_err e;
    char *text = gm_read_file(test_path(rel), NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    cJSON *j = cJSON_Parse(text);
    free(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    return j;
}

/* Token ids and targets (the id each position predicts, -1 none) of a reference's {"tokens", "targets"} (flags). */
static int read_sequence(const cJSON *j, int32_t *tokens, int32_t *targets) {
    int T = 0;
    const cJSON *t, *flags = cJSON_GetObjectItem(j, "targets");
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tokens")) tokens[T++] = t->valueint;
    for (int i = 0; i < T; i++) targets[i] = i + 1 < T && cJSON_GetArrayItem(flags, i + 1)->valueint ? tokens[i + 1] : -1;
    return T;
}

/* The worst errors of every gradient in act against ref's "tensors"; *seen counts them. */
static grad_error compare_all(const ir_graph *g, float *const *act, const cJSON *ref, int *seen) {
    grad_error worst = {0};
    *seen = 0;
    for (int v = 0; v < g->n_values; v++) {
        const ir_value *x = &g->values[v];
        if (!x->grad_of) continue;
        const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "tensors"), x->grad_of);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        grad_error err = compare_tensor(act[v], ir_value_elems(x), r);
        worst = (grad_error){fmax(worst.norm, err.norm), fmax(worst.proj, err.proj), fmax(worst.sample, err.sample)};
        (*seen)++;
    }
    CU_ASSERT_EQUAL(*seen, cJSON_GetArraySize(cJSON_GetObjectItem(ref, "tensors")));
    return worst;
}

/* The references' start for adapters: A[i] = 0.2·probe(i), B[i] = 0.2·probe(i + 7919). */
static void set_formula_adapters(trainer *t) {
    for (int k = 0; k < t->n_p; k++) {
        train_param *p = &t->p[k];
        uint64_t shift = strstr(p->name, ".lora_b") ? 7919 : 0;
        for (int64_t i = 0; i < p->n; i++) p->w[i] = (float)(0.2 * probe_weight((uint64_t)i + shift));
    }
}

static trainer *open_trainer(const char *name, int rank, double lr) {
    char rel[128];
    snprintf(rel, sizeof rel, "golden/%s", name);
    train_opts o = {.lora_rank = rank, .lora_alpha = 2.0 * rank, .lr = lr, .weight_decay = 0.01, .beta1 = 0.9,
                    .beta2 = 0.999, .eps = 1e-8, .backend = backend, .no_cache = 1};
    gm_err e;
    trainer *t = train_open(test_path(rel), NULL, &o, &e);
    if (!t) printf("\n  %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    if (rank) set_formula_adapters(t);
    return t;
}

/* The graph's gradients (every weight's; with rank, LoRA adapters' of that
 * rank at the references' formula start) on the sequence of reference
 * `file` against its PyTorch figures.
 * Bounds: gemmac computes in f32 (sums in double), PyTorch in f64; over a
 * few layers the f32 rounding of activations (2^-24 relative) grows to about
 * 1e-5 of a gradient's norm (measured: up to 6e-6 of it in the Gemma 2 cases, samples up to 4.5e-5 of the RMS), so norms and
 * projections must agree to 1e-4 of the norm, samples to 1e-3 of the RMS. */
static void check_reference(const char *file, const char *name, int rank) {
    cJSON *ref = read_reference(file);
    trainer *t = open_trainer(name, rank, 0);
    int32_t tokens[64], targets[64];
    int T = read_sequence(ref, tokens, targets), seen;
    gm_err e;
    float *const *act = t->run->run(t->run, &(rt_batch){tokens, targets, NULL, T, 0}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(act);
    double loss_err = fabs(act[t->g->loss][0] - test_json_num(ref, "loss"));
    grad_error worst = compare_all(t->g, act, ref, &seen);
    printf("\n  %s (%s): loss |d| %.2g, %d tensors: norm %.2g, proj %.2g, samples %.2g", file, backend, loss_err, seen,
           worst.norm, worst.proj, worst.sample);
    CU_ASSERT(loss_err < 1e-4 * fmax(1, fabs(test_json_num(ref, "loss"))));
    CU_ASSERT(worst.norm < 1e-4 && worst.proj < 1e-4 && worst.sample < 1e-3);
    train_free(t);
    cJSON_Delete(ref);
}

static void test_oracle_cases(void) {
    char file[128];
    for (int i = 0; i < ORACLE_CASES; i++) {
        snprintf(file, sizeof file, "%s.json", oracle_cases[i]);
        check_reference(file, oracle_cases[i], 0);
    }
}

/* ---- LoRA and the trainer ------------------------------------------------ */

/* The adapters' gradients (rank 2, alpha 4, formula start), with the bounds of the full gradients. */
static void test_lora_cases(void) {
    check_reference("lora-tiny-gemma3.json", "tiny-gemma3", 2);
    check_reference("lora-tiny-gemma2.json", "tiny-gemma2", 2);
}

/* Two sequences packed into one call (rt_batch.start) give the gradients
 * of the two run apart, weighted by their scored rows, to f32 rounding:
 * every element within 1e-5 of its tensor's largest. */
/* A run's loss and gradients, copied out of the trainer's buffers. */
static float **kept_values(const ir_graph *g, float *const *act) {
    float **kept = calloc(g->n_values, sizeof *kept);
    for (int v = 0; v < g->n_values; v++)
        if (v == g->loss || g->values[v].grad_of) {
            size_t bytes = ir_value_elems(&g->values[v]) * sizeof(float);
            kept[v] = malloc(bytes);
            memcpy(kept[v], act[v], bytes);
        }
    return kept;
}

static void free_values(int n_values, float **kept) {
    for (int v = 0; v < n_values; v++) free(kept[v]);
    free(kept);
}

static void test_packed(void) {
    cJSON *ref = read_reference("adamw-full-tiny-gemma3.json");
    const cJSON *batch = cJSON_GetObjectItem(ref, "batch");
    trainer *t = open_trainer("tiny-gemma3", 0, 0);
    int32_t tokens[128], targets[128], start[128];
    int T[2], scored[2] = {0, 0};
    float **apart[2];
    gm_err e;
    for (int s = 0; s < 2; s++) {
        int at = s ? T[0] : 0;
        T[s] = read_sequence(cJSON_GetArrayItem(batch, s), tokens + at, targets + at);
        for (int i = 0; i < T[s]; i++) start[at + i] = at, scored[s] += targets[at + i] >= 0;
        float *const *act = t->run->run(t->run, &(rt_batch){tokens + at, targets + at, NULL, T[s], 0}, &e);
        CU_ASSERT_PTR_NOT_NULL_FATAL(act);
        apart[s] = kept_values(t->g, act);
    }
    float *const *packed = t->run->run(t->run, &(rt_batch){tokens, targets, start, T[0] + T[1], 0}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(packed);
    double worst = 0, w0 = (double)scored[0] / (scored[0] + scored[1]);
    for (int k = 0; k < t->n_p; k++) {
        const train_param *p = &t->p[k];
        double big = 0, err = 0;
        for (int64_t i = 0; i < p->n; i++) {
            double want = w0 * apart[0][p->grad][i] + (1 - w0) * apart[1][p->grad][i];
            big = fmax(big, fabs(want)), err = fmax(err, fabs(packed[p->grad][i] - want));
        }
        worst = fmax(worst, big > 0 ? err / big : err);
    }
    double loss = w0 * apart[0][t->g->loss][0] + (1 - w0) * apart[1][t->g->loss][0];
    printf("\n  packed against apart (%s): loss |d| %.2g, gradients %.2g of each tensor's largest", backend, fabs(packed[t->g->loss][0] - loss), worst);
    CU_ASSERT(fabs(packed[t->g->loss][0] - loss) < 1e-5 * loss);
    CU_ASSERT(worst < 1e-5);
    double held = 0, packed_loss = packed[t->g->loss][0]; /* the loss alone (a held-out loss) is the same forward pass */
    int64_t n_scored = 0;
    CU_ASSERT_EQUAL(train_eval_loss(t, &(rt_batch){tokens, targets, start, T[0] + T[1], 0}, &held, &n_scored, &e), 0);
    CU_ASSERT_EQUAL(n_scored, scored[0] + scored[1]);
    CU_ASSERT(fabs(held / n_scored - packed_loss) <= 1e-12 * held);
    for (int s = 0; s < 2; s++) free_values(t->g->n_values, apart[s]);
    train_free(t);
    cJSON_Delete(ref);
}

/* The score_head pass keeps the numbers: tiny-gemma3's training graph (a
 * tied head, and a batch whose prompt rows have no target) run on the
 * reference backend with and without it gives the same loss and gradients
 * to f32 rounding (1e-5 of each tensor's largest), with fewer head rows. */
static void test_score_head(void) {
    cJSON *ref = read_reference("adamw-full-tiny-gemma3.json");
    int32_t tokens[64], targets[64];
    int T = read_sequence(cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "batch"), 0), tokens, targets);
    gm_err e;
    float **values[2];
    int differentiated = 0; /* values after differentiate: the same ids in both graphs */
    for (int pass = 0; pass < 2; pass++) {
        gm_model *m = gm_model_open_with(test_path("golden/tiny-gemma3"), NULL, &(gm_pipeline_opts){.target = "reference"}, &e);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        int before = m->graph->n_values;
        CU_ASSERT_EQUAL_FATAL(pass_differentiate(m->graph, &e), 0);
        differentiated = m->graph->n_values;
        if (pass) pass_score_head(m->graph);
        CU_ASSERT_EQUAL_FATAL(ir_verify(m->graph, &e), 0);
        const gm_tensor **bound = calloc(m->graph->n_values, sizeof *bound); /* the passes append values only */
        memcpy(bound, m->bound, before * sizeof *bound);
        rt_trainer *tr = ref_trainer_create(m->graph, (const gm_tensor *const *)bound, &e);
        float *const *act = tr->run(tr, &(rt_batch){tokens, targets, NULL, T, 0}, &e);
        CU_ASSERT_PTR_NOT_NULL_FATAL(act);
        values[pass] = kept_values(m->graph, act);
        int scored_rows = 0;
        for (int v = 0; v < m->graph->n_values; v++) scored_rows += m->graph->values[v].dims[0] == IR_DIM_S;
        CU_ASSERT(pass ? scored_rows > 0 : scored_rows == 0);
        if (pass) { /* same value ids for the gradients: compare them */
            double worst = 0;
            int compared = 0;
            for (int v = 0; v < differentiated; v++) {
                const ir_value *x = &m->graph->values[v];
                if (!x->grad_of && v != m->graph->loss) continue;
                compared++;
                double big = 0, err = 0;
                for (int64_t i = 0; i < ir_value_elems(x); i++)
                    big = fmax(big, fabs(values[0][v][i])), err = fmax(err, fabs(values[1][v][i] - values[0][v][i]));
                worst = fmax(worst, big > 0 ? err / big : err);
            }
            printf("\n  score_head against none: %d tensors, %.2g of each one's largest", compared, worst);
            CU_ASSERT(compared > 1 && worst < 1e-5);
        }
        if (pass) free_values(differentiated, values[0]), free_values(m->graph->n_values, values[1]);
        tr->free(tr);
        free(bound);
        gm_model_free(m);
    }
    cJSON_Delete(ref);
}

/* 50 AdamW steps on the batch {S1, S2} against torch.optim.AdamW in float64
 * (tests/golden/grad/adamw-*.json): the loss before each step. f32 masters
 * and moments drift from f64 ones (measured: at most 9.5e-6 of the loss,
 * full tiny-gemma3) and these runs drive the loss from 15 to 1e-4
 * (memorising 26 tokens), where an absolute error of f32's order is large
 * in relative terms: each loss must be within 1e-4 relative or 1e-5
 * absolute of PyTorch's. */
static void check_adamw(const char *file) {
    cJSON *ref = read_reference(file);
    int rank = !strcmp(test_json_str(ref, "mode"), "lora") ? (int)test_json_num(ref, "rank") : 0;
    trainer *t = open_trainer(test_json_str(ref, "case"), rank, test_json_num(ref, "lr"));
    const cJSON *batch = cJSON_GetObjectItem(ref, "batch"), *losses = cJSON_GetObjectItem(ref, "losses");
    int32_t tokens[2][64], targets[2][64], T[2];
    for (int s = 0; s < 2; s++) T[s] = read_sequence(cJSON_GetArrayItem(batch, s), tokens[s], targets[s]);
    double worst_rel = 0, worst_abs = 0;
    int bad = 0;
    gm_err e;
    for (int step = 0; step < cJSON_GetArraySize(losses); step++) {
        double loss, want = cJSON_GetArrayItem(losses, step)->valuedouble;
        for (int s = 0; s < 2; s++) CU_ASSERT_EQUAL_FATAL(train_add(t, tokens[s], targets[s], T[s], &e), 0);
        CU_ASSERT_EQUAL_FATAL(train_step(t, &loss, &e), 0);
        double d = fabs(loss - want);
        worst_rel = fmax(worst_rel, d / want), worst_abs = fmax(worst_abs, d);
        bad += d > 1e-4 * want && d > 1e-5;
    }
    printf("\n  %s (%s): 50 steps, loss %.4g -> %.4g; worst |d| %.2g (%.2g relative)", file, backend,
           cJSON_GetArrayItem(losses, 0)->valuedouble, cJSON_GetArrayItem(losses, 49)->valuedouble, worst_abs, worst_rel);
    CU_ASSERT_EQUAL(bad, 0);
    train_free(t);
    cJSON_Delete(ref);
}

static void test_adamw(void) {
    check_adamw("adamw-full-tiny-gemma1-mqa.json");
    check_adamw("adamw-full-tiny-gemma3.json");
    check_adamw("adamw-lora-tiny-gemma3.json");
}

int main(void) {
    CU_initialize_registry();
    for (int jit = 0; jit < 2; jit++) {
        CU_pSuite s = CU_add_suite(jit ? "grad (jit)" : "grad (reference)", jit ? on_jit : on_reference, NULL);
        CU_add_test(s, "scale", test_scale);
        CU_add_test(s, "rms_norm", test_rms_norm);
        CU_add_test(s, "rms_norm over groups", test_rms_norm_groups);
        CU_add_test(s, "matmul", test_matmul);
        CU_add_test(s, "matmul with softcap and out_scale", test_matmul_softcap);
        CU_add_test(s, "rope", test_rope);
        CU_add_test(s, "attention (GQA)", test_attention);
        CU_add_test(s, "attention with softcap and window", test_attention_capped);
        CU_add_test(s, "gelu_tanh", test_gelu_tanh);
        CU_add_test(s, "mul", test_mul);
        CU_add_test(s, "geglu", test_geglu);
        CU_add_test(s, "add", test_add);
        CU_add_test(s, "softcap", test_softcap);
        CU_add_test(s, "norm_matmul", test_norm_matmul);
        CU_add_test(s, "matmul_add", test_matmul_add);
        CU_add_test(s, "norm_add", test_norm_add);
        CU_add_test(s, "tied embedding and head", test_tied);
        CU_add_test(s, "ops without a rule, int8 activations, twice: refused", test_refusals);
        CU_add_test(s, "every oracle case against PyTorch", test_oracle_cases);
        CU_add_test(s, "LoRA adapters' gradients against PyTorch", test_lora_cases);
        CU_add_test(s, "packed sequences as run apart", test_packed);
        if (!jit) CU_add_test(s, "score_head keeps the numbers", test_score_head);
        CU_add_test(s, "50 AdamW steps against torch.optim.AdamW", test_adamw);
    }
    return test_run_all();
}
