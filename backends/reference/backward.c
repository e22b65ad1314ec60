/* backward.c — the reference backend's training ops (ops.def's TRAIN_OPs):
 * the loss and the pieces the vector-Jacobian rules of
 * compiler/passes/differentiate.c are made of, in plain C over f32 buffers
 * with sums in double, as the forward ops of reference.c. They are the
 * oracle for compiled training kernels, and each is checked against central
 * finite differences (tests/test_grad.c). dy is the gradient of the forward
 * op's output; every formula is that op's derivative written out. */
#include "reference_ops.h"

#include <cblas.h>
#include <stdlib.h>

/* Mean cross-entropy of z [T][V] at rows with a target (>= 0) into *loss,
 * or its gradient (softmax − one-hot) / scored rows into dz. */
static void cross_entropy(const float *z, const int32_t *tgt, int T, int64_t V, float *loss, float *dz) {
    int scored = 0;
    for (int t = 0; t < T; t++) scored += tgt[t] >= 0;
    double total = 0;
    for (int t = 0; t < T; t++) {
        const float *zt = z + (size_t)t * V;
        if (tgt[t] < 0) {
            if (dz) memset(dz + (size_t)t * V, 0, V * sizeof(float));
            continue;
        }
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < V; j++) mx = zt[j] > mx ? zt[j] : mx;
        for (int64_t j = 0; j < V; j++) sum += exp(zt[j] - mx);
        double lse = mx + log(sum);
        total += lse - zt[tgt[t]];
        for (int64_t j = 0; dz && j < V; j++) dz[(size_t)t * V + j] = (float)((exp(zt[j] - lse) - (j == tgt[t])) / scored);
    }
    if (loss) *loss = scored ? (float)(total / scored) : 0;
}

/* dx [T][K] = dy [T][N] · W [N][K], W in its checkpoint dtype. */
static void matmul_dx(const float *dy, int T, const gm_tensor *w, int64_t N, int64_t K, float *dx) {
    int64_t step = ref_block_rows(w, N);
    float *buf = ref_block_buffer(w, N, K);
    for (int64_t r = 0; r < N; r += step) {
        int64_t nr = N - r < step ? N - r : step;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, (int)K, (int)nr, 1.0f, dy + r, (int)N,
                    ref_weight_block(w, r, nr, K, buf), (int)K, r ? 1.0f : 0.0f, dx, (int)K);
    }
    free(buf);
}

/* dw [N][K] = dyᵀ · x, summed over the T rows. */
static void matmul_dw(const float *dy, const float *x, int T, int64_t N, int64_t K, float *dw) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)N, (int)K, T, 1.0f, dy, (int)N, x, (int)K, 0.0f, dw,
                (int)K);
}

static void embed_dw(const int32_t *ids, const float *dy, int T, int64_t V, int64_t C, float *dw) {
    memset(dw, 0, V * C * sizeof(float));
    for (int t = 0; t < T; t++)
        for (int64_t c = 0; c < C; c++) dw[ids[t] * C + c] += dy[t * C + c];
}

/* rms_norm's gradients over groups of G = w's elements: with
 * inv = 1/sqrt(mean x² + eps) and gain g = w + add_one,
 * dx = inv·g·dy − inv³·x·Σ(g·dy·x)/G, and dw = Σ over the groups dy·x·inv. */
static void rms_norm_grads(const float *dy, const float *x, int T, int64_t C, const gm_tensor *w, const double *a,
                           float *dx, float *dw) {
    int64_t G = w->shape[0];
    float *g = gm_malloc(G * sizeof(float));
    double *dw_sum = gm_calloc(G, sizeof(double));
    ref_weight_rows_f32(w, 0, 1, G, g);
    for (int64_t r = 0; r < T * C / G; r++) {
        const float *xr = x + r * G, *dyr = dy + r * G;
        double ss = 0, dot = 0;
        for (int64_t i = 0; i < G; i++) ss += (double)xr[i] * xr[i];
        double inv = 1.0 / sqrt(ss / G + a[IR_A_EPS]);
        for (int64_t i = 0; i < G; i++) dot += (double)dyr[i] * (g[i] + a[IR_A_ADD_ONE]) * xr[i];
        for (int64_t i = 0; i < G; i++) {
            if (dx) dx[r * G + i] = (float)(inv * dyr[i] * (g[i] + a[IR_A_ADD_ONE]) - inv * inv * inv * xr[i] * dot / G);
            dw_sum[i] += dyr[i] * xr[i] * inv;
        }
    }
    for (int64_t i = 0; dw && i < G; i++) dw[i] = (float)dw_sum[i];
    free(g);
    free(dw_sum);
}

/* The gradients of attention (q, k, v) given dy, by recomputing each query's
 * probabilities p over its keys j (causal, windowed, from position 0):
 * dv_j += p_j·dy, and with dp_j = dy·v_j, ds_j = p_j·(dp_j − Σ p·dp), times
 * the softcap's derivative and the scale: dq += ds_j·k_j, dk_j += ds_j·q.
 * Whichever of dq, dk, dv is not NULL is written. */
typedef struct {
    const float *q, *k, *v, *dy;
    const int32_t *start; /* each row's sequence start, or NULL */
    int nh, nkv, hd, window;
    double scale, cap;
    double *p, *capped, *dp; /* per key: probability, softcapped score, dy·v */
} attn_args;

static void attend_back(const attn_args *A, int t, int h, double *dq, double *dk, double *dv) {
    int lo = ref_first_key(t, A->window, A->start ? A->start[t] : 0), kvc = A->nkv * A->hd;
    int off = (h / (A->nh / A->nkv)) * A->hd;
    const float *q = A->q + (size_t)t * A->nh * A->hd + h * A->hd, *dy = A->dy + (size_t)t * A->nh * A->hd + h * A->hd;
    double mx = -INFINITY, sum = 0, pdp = 0;
    for (int j = lo; j <= t; j++) {
        double s = 0;
        for (int d = 0; d < A->hd; d++) s += (double)q[d] * A->k[(size_t)j * kvc + off + d];
        s *= A->scale;
        A->capped[j] = A->cap > 0 ? ref_softcap(s, A->cap) : s;
        mx = A->capped[j] > mx ? A->capped[j] : mx;
    }
    for (int j = lo; j <= t; j++) sum += A->p[j] = exp(A->capped[j] - mx);
    for (int j = lo; j <= t; j++) {
        A->p[j] /= sum;
        A->dp[j] = 0;
        for (int d = 0; d < A->hd; d++) A->dp[j] += (double)dy[d] * A->v[(size_t)j * kvc + off + d];
        pdp += A->p[j] * A->dp[j];
    }
    for (int j = lo; j <= t; j++) {
        double dcap = A->cap > 0 ? 1 - (A->capped[j] / A->cap) * (A->capped[j] / A->cap) : 1;
        double ds = A->p[j] * (A->dp[j] - pdp) * dcap * A->scale;
        for (int d = 0; d < A->hd; d++) {
            if (dq) dq[d] += ds * A->k[(size_t)j * kvc + off + d];
            if (dk) dk[(size_t)j * kvc + off + d] += ds * q[d];
            if (dv) dv[(size_t)j * kvc + off + d] += A->p[j] * dy[d];
        }
    }
}

/* Writes the gradient the op asks for (attention_dq, _dk or _dv) into y. */
static void attention_grad(const ir_node *n, float *const *act, const int32_t *start, int T, float *y) {
    const double *a = n->attr;
    attn_args A = {act[n->in[0]], act[n->in[1]], act[n->in[2]], act[n->in[3]], start, (int)a[IR_A_HEADS],
                   (int)a[IR_A_KV_HEADS], (int)a[IR_A_HEAD_DIM], (int)a[IR_A_WINDOW], a[IR_A_SCALE], a[IR_A_SOFTCAP],
                   gm_malloc(3 * (size_t)T * sizeof(double)), NULL, NULL};
    A.capped = A.p + T, A.dp = A.p + 2 * T;
    int64_t cols = n->op == IR_ATTENTION_DQ ? A.nh * A.hd : A.nkv * A.hd;
    double *sum = gm_calloc((size_t)T * cols, sizeof(double));
    for (int t = 0; t < T; t++)
        for (int h = 0; h < A.nh; h++)
            attend_back(&A, t, h, n->op == IR_ATTENTION_DQ ? sum + (size_t)t * cols + h * A.hd : NULL,
                        n->op == IR_ATTENTION_DK ? sum : NULL, n->op == IR_ATTENTION_DV ? sum : NULL);
    for (int64_t i = 0; i < T * cols; i++) y[i] = (float)sum[i];
    free(sum);
    free(A.p);
}

/* gelu_tanh'(x) = ½(1 + t) + ½x(1 − t²)·c(1 + 3·0.044715x²), t = tanh(c(x + 0.044715x³)). */
static double gelu_tanh_slope(double x) {
    double t = tanh(REF_GELU_C * (x + 0.044715 * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * REF_GELU_C * (1 + 3 * 0.044715 * x * x);
}

/* scored_rows: the rows of x (cols 4-byte values, f32 or i32) with a
 * target, in order; all_rows: back to their places, zero elsewhere. */
static void change_rows(ir_op op, const void *x, const int32_t *tgt, int T, int64_t cols, void *y) {
    size_t row = cols * 4;
    for (int t = 0, s = 0; t < T; t++) {
        if (tgt[t] < 0 && op == IR_ALL_ROWS) memset((char *)y + t * row, 0, row);
        if (tgt[t] < 0) continue;
        if (op == IR_SCORED_ROWS) memcpy((char *)y + s * row, (const char *)x + t * row, row);
        else memcpy((char *)y + t * row, (const char *)x + s * row, row);
        s++;
    }
}

/* Value v's buffer: the batch's targets for the graph's target input, else its activation. */
static const void *value_of(const ir_graph *g, float *const *act, const rt_batch *b, int v) {
    return v == g->targets ? (const void *)b->targets : act[v];
}

void ref_backward_node(const ir_graph *g, const ir_node *n, const gm_tensor *const *bound, float *const *act,
                       const rt_batch *b, float *y) {
    int T = b->T;
    const float *x0 = act[n->in[0]], *x1 = ir_ops[n->op].n_inputs > 1 ? act[n->in[1]] : NULL;
    int64_t C = ir_value_cols(g, n->in[0]), len = ref_value_len(g, n->out, T);
    switch ((int)n->op) {
    case IR_CROSS_ENTROPY: cross_entropy(x0, value_of(g, act, b, n->in[1]), T, C, y, NULL); break;
    case IR_CROSS_ENTROPY_DX: cross_entropy(x0, value_of(g, act, b, n->in[1]), T, C, NULL, y); break;
    case IR_SCORED_ROWS:
    case IR_ALL_ROWS:
        change_rows(n->op, value_of(g, act, b, n->in[0]), b->targets, T, ir_value_cols(g, n->in[0]), y);
        break;
    case IR_MATMUL_DX: matmul_dx(x0, T, bound[n->in[1]], C, ir_value_cols(g, n->out), y); break;
    case IR_MATMUL_DW: matmul_dw(x0, x1, T, C, ir_value_cols(g, n->in[1]), y); break;
    case IR_EMBED_DW: embed_dw(b->tokens, act[n->in[2]], T, g->values[n->in[1]].dims[0], ir_value_cols(g, n->in[1]), y); break;
    case IR_RMS_NORM_DX: rms_norm_grads(x0, x1, T, C, bound[n->in[2]], n->attr, y, NULL); break;
    case IR_RMS_NORM_DW: rms_norm_grads(x0, x1, T, C, bound[n->in[2]], n->attr, NULL, y); break;
    case IR_ROPE_DX:
        memcpy(y, x0, len * sizeof(float));
        ref_rope(y, T, C, 0, b->start, n->attr, 1);
        break;
    case IR_ATTENTION_DQ:
    case IR_ATTENTION_DK:
    case IR_ATTENTION_DV: attention_grad(n, act, b->start, T, y); break;
    case IR_GELU_TANH_DX:
        for (int64_t i = 0; i < len; i++) y[i] = (float)(x0[i] * gelu_tanh_slope(x1[i]));
        break;
    case IR_SOFTCAP_DX:
        for (int64_t i = 0; i < len; i++) y[i] = (float)(x0[i] * (1 - (x1[i] / n->attr[IR_A_CAP]) * (x1[i] / n->attr[IR_A_CAP])));
        break;
    default: abort(); /* not a training op: the interpreter's dispatch is wrong */
    }
}
