/* test_llvm_attention_grad.c — the LLVM backend's kernels of attention's
 * gradients (attention_dq, _dk, _dv; backends/llvm/attention_grad.c), run on
 * random inputs and compared with a double-precision version of the
 * formulas written out here: with c_tj = softcap(scale · q_t·k_j) and p_tj
 * its softmax over the keys t sees, dp_tj = dy_t·v_j, D_t = Σ_j p_tj dp_tj,
 * ds_tj = p_tj (dp_tj − D_t) · cap'(c_tj) · scale: dq_t = Σ_j ds_tj k_j,
 * dk_j = Σ_t ds_tj q_t, dv_j = Σ_t p_tj dy_t (over the heads of a kv head).
 *
 * Sequences of T = 1, 5 and 37 rows; heads / kv heads 1/1, 4/1 (GQA) and
 * 4/2; head_dim 8 and 40 (on AVX-512 half a vector, and two and a half:
 * the narrow pieces), and 256 in a test of its own; window 0 and 3; softcap 0, and 50 on scores of size 30
 * (q and k scaled up), where the cap bends them. Tolerance: 1e-5 absolute +
 * 1e-5 relative to the sum of the absolute values of the gradient's terms
 * (what f32 rounding scales with; the gradients here are up to 8, those
 * sums up to 13). Every call is made again split into 2 and 3 ranges of
 * output rows, as the engine's threads split it: each part writes its rows
 * only, the same bits as the whole call, and no float past the scratch
 * ex_scratch_floats gives; the inputs end at an unreadable page, so that a
 * read past them faults. Each test prints its worst error against its
 * tolerance. */
#include "testing.h"

#include "kernel_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    int heads, kv_heads, hd, window;
    double cap;
} shape;

static const ir_op ops[3] = {IR_ATTENTION_DQ, IR_ATTENTION_DK, IR_ATTENTION_DV};

static const int lengths[] = {1, 5, 37};
#define N_LENGTHS 3
#define GUARD 16 /* floats past the scratch that must stay untouched */

/* ---- random data ---- */

/* The bytes of n floats rounded up to whole pages. */
static size_t pages_of(int64_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n * sizeof(float) + page - 1) / page * page;
}

/* n random floats that end where an unreadable page begins, so that a
 * kernel reading past them faults; freed with free_guarded. */
static float *random_guarded(int64_t n, double scale) {
    size_t span = pages_of(n), page = (size_t)sysconf(_SC_PAGESIZE);
    char *base = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(base != MAP_FAILED && mprotect(base + span, page, PROT_NONE) == 0);
    float *x = (float *)(base + span) - n;
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * kd_uniform());
    return x;
}

static void free_guarded(float *x, int64_t n) {
    munmap((char *)(x + n) - pages_of(n), pages_of(n) + (size_t)sysconf(_SC_PAGESIZE));
}

/* ---- the reference ---- */

/* The gradients of one sequence in double, dq, dk and dv (as ops[]), and
 * per element the sum of the absolute values of its terms. */
typedef struct {
    double *want[3], *size[3];
} grads;

static void add_term(grads *g, int o, int64_t i, double term) { g->want[o][i] += term, g->size[o][i] += fabs(term); }

static grads reference(const shape *s, int T, float *const in[4]) {
    const float *q = in[0], *k = in[1], *v = in[2], *dy = in[3];
    int hd = s->hd, qc = s->heads * hd, kvc = s->kv_heads * hd;
    grads g;
    for (int o = 0; o < 3; o++) {
        g.want[o] = gm_calloc(T * (o ? kvc : qc), sizeof(double));
        g.size[o] = gm_calloc(T * (o ? kvc : qc), sizeof(double));
    }
    double scale = 1 / sqrt(hd), *c = gm_malloc(T * sizeof *c), *p = gm_malloc(T * sizeof *p);
    double *dp = gm_malloc(T * sizeof *dp);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < s->heads; h++) {
            int lo = s->window && t - s->window + 1 > 0 ? t - s->window + 1 : 0;
            int off = h / (s->heads / s->kv_heads) * hd;
            const float *qt = q + t * qc + h * hd, *dyt = dy + t * qc + h * hd;
            double max = -INFINITY, sum = 0, D = 0;
            for (int j = lo; j <= t; j++) {
                double x = 0;
                for (int d = 0; d < hd; d++) x += (double)qt[d] * k[j * kvc + off + d];
                c[j] = s->cap > 0 ? s->cap * tanh(x * scale / s->cap) : x * scale;
                max = fmax(max, c[j]);
            }
            for (int j = lo; j <= t; j++) sum += p[j] = exp(c[j] - max);
            for (int j = lo; j <= t; j++) {
                p[j] /= sum, dp[j] = 0;
                for (int d = 0; d < hd; d++) dp[j] += (double)dyt[d] * v[j * kvc + off + d];
                D += p[j] * dp[j];
            }
            for (int j = lo; j <= t; j++) {
                double ds = p[j] * (dp[j] - D) * (s->cap > 0 ? 1 - (c[j] / s->cap) * (c[j] / s->cap) : 1) * scale;
                for (int d = 0; d < hd; d++) {
                    add_term(&g, 0, t * qc + h * hd + d, ds * k[j * kvc + off + d]);
                    add_term(&g, 1, j * kvc + off + d, ds * qt[d]);
                    add_term(&g, 2, j * kvc + off + d, p[j] * dyt[d]);
                }
            }
        }
    free(c), free(p), free(dp);
    return g;
}

/* ---- the kernels ---- */

static ex_kernel kernel_of(const shape *s, ir_op op) {
    ex_kernel k;
    memset(&k, 0, sizeof k);
    k.op = op;
    k.n = (op == IR_ATTENTION_DQ ? s->heads : s->kv_heads) * s->hd;
    k.attr[IR_A_HEADS] = s->heads;
    k.attr[IR_A_KV_HEADS] = s->kv_heads;
    k.attr[IR_A_HEAD_DIM] = s->hd;
    k.attr[IR_A_SCALE] = 1 / sqrt(s->hd);
    k.attr[IR_A_SOFTCAP] = s->cap;
    k.attr[IR_A_WINDOW] = s->window;
    return k;
}

/* Rows [n0, n1) of kernel k's output for a sequence of T rows, with a
 * scratch of ex_scratch_floats floats, NaN until written (so that a value
 * read before it is written shows), followed by GUARD that must stay NaN. */
static void call(ex_kernel_fn fn, const ex_kernel *k, float *const in[4], int T, int n0, int n1, float *out) {
    int64_t n = ex_scratch_floats(k, T);
    float *scratch = gm_aligned64((n + GUARD) * sizeof *scratch);
    for (int64_t i = 0; i < n + GUARD; i++) scratch[i] = NAN;
    ex_call c = {.in = {in[0], in[1], in[2], in[3]}, .out = out, .T = T, .n0 = n0, .n1 = n1, .scratch = scratch};
    fn(&c);
    for (int i = 0; i < GUARD; i++) CU_ASSERT(isnan(scratch[n + i]));
    free(scratch);
}

typedef struct {
    double worst; /* the largest error / tolerance seen */
    double err;   /* its absolute error */
    int split_diffs; /* floats where a split call differs from the whole, or wrote outside its rows */
} score;

static void compare(score *sc, const float *got, const double *want, const double *size, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]), r = err / (1e-5 + 1e-5 * size[i]);
        if (!(r <= sc->worst)) sc->worst = r, sc->err = err;
    }
}

/* The call split into `parts` ranges of rows, each on an output of NaNs:
 * its rows must equal whole's bit for bit, the others stay NaN. */
static void check_split(score *sc, ex_kernel_fn fn, const ex_kernel *k, float *const in[4], int T, int parts,
                        const float *whole) {
    float *out = gm_malloc(T * k->n * sizeof *out);
    for (int p = 0; p < parts; p++) {
        int n0 = T * p / parts, n1 = T * (p + 1) / parts;
        if (n0 == n1) continue; /* the engine skips an empty part */
        for (int64_t i = 0; i < T * k->n; i++) out[i] = NAN;
        call(fn, k, in, T, n0, n1, out);
        for (int64_t i = 0; i < T * k->n; i++) {
            int mine = i / k->n >= n0 && i / k->n < n1;
            sc->split_diffs += mine ? memcmp(&out[i], &whole[i], sizeof *out) != 0 : !isnan(out[i]);
        }
    }
    free(out);
}

/* Kernel k of shape s (op ops[o]) on a random sequence of T rows, whole and split. */
static void check_case(score *sc, ex_kernel_fn fn, const ex_kernel *k, const shape *s, int T, int o) {
    int qc = s->heads * s->hd, kvc = s->kv_heads * s->hd;
    double big = s->cap > 0 ? sqrt(90) : 2; /* q·k·scale of size 30 with the cap, else 1 */
    int64_t len[4] = {T * qc, T * kvc, T * kvc, T * qc};
    float *in[4] = {random_guarded(len[0], big), random_guarded(len[1], big), random_guarded(len[2], 1),
                    random_guarded(len[3], 1)};
    grads g = reference(s, T, in);
    float *got = gm_malloc(T * k->n * sizeof *got);
    call(fn, k, in, T, 0, T, got);
    compare(sc, got, g.want[o], g.size[o], T * k->n);
    for (int parts = 2; parts <= 3; parts++) check_split(sc, fn, k, in, T, parts, got);
    for (int i = 0; i < 4; i++) free_guarded(in[i], len[i]);
    for (int i = 0; i < 3; i++) free(g.want[i]), free(g.size[i]);
    free(got);
}

/* Every shape's kernel of ops[o] on each sequence length. */
static void check_op(int o, const shape *shapes, int n_shapes, const char *label) {
    ex_kernel *ks = gm_malloc(n_shapes * sizeof *ks);
    for (int i = 0; i < n_shapes; i++) ks[i] = kernel_of(&shapes[i], ops[o]);
    gm_err e = {{0}};
    lv_jit *j = lv_jit_compile(ks, n_shapes, 1, &e);
    if (!j) printf("\n  %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    score sc = {0, 0, 0};
    for (int i = 0; i < n_shapes; i++)
        for (int l = 0; l < N_LENGTHS; l++) check_case(&sc, lv_jit_kernel(j, i), &ks[i], &shapes[i], lengths[l], o);
    printf("[%s: worst %.2f of tolerance, |err| %.2g; split calls: %d floats differ] ", label, sc.worst, sc.err,
           sc.split_diffs);
    CU_ASSERT(sc.worst <= 1);
    CU_ASSERT_EQUAL(sc.split_diffs, 0);
    lv_jit_free(j);
    free(ks);
}

/* heads/kv heads 1/1, 4/1, 4/2 × head_dim 8, 40 × window 0, 3 × softcap 0, 50. */
static int small_shapes(shape *s) {
    static const int hk[3][2] = {{1, 1}, {4, 1}, {4, 2}}, dims[2] = {8, 40}, windows[2] = {0, 3};
    static const double caps[2] = {0, 50};
    int n = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++)
            for (int w = 0; w < 2; w++)
                for (int c = 0; c < 2; c++) s[n++] = (shape){hk[a][0], hk[a][1], dims[b], windows[w], caps[c]};
    return n;
}

static void check_small(int o) {
    shape s[24];
    check_op(o, s, small_shapes(s), ir_ops[ops[o]].name);
}

static void test_dq(void) { check_small(0); }
static void test_dk(void) { check_small(1); }
static void test_dv(void) { check_small(2); }

static void test_head_dim_256(void) {
    static const shape s[] = {{4, 1, 256, 0, 50}, {4, 2, 256, 3, 0}};
    for (int o = 0; o < 3; o++) check_op(o, s, 2, ir_ops[ops[o]].name);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("llvm attention gradients", NULL, NULL);
    CU_add_test(s, "attention_dq", test_dq);
    CU_add_test(s, "attention_dk", test_dk);
    CU_add_test(s, "attention_dv", test_dv);
    CU_add_test(s, "head_dim 256", test_head_dim_256);
    return test_run_all();
}
