/* test_sampler.c — the token sampler (runtime/sampler.h) against its
 * documented semantics: greedy is the argmax with ties to the lowest id and
 * top-k 1 is greedy; a seed fixes the sequence of draws; top-p and min-p
 * keep exactly the documented sets, at their boundaries too; the repetition
 * penalty moves exactly the recent tokens' logits, each once, in the
 * documented direction; draws follow the distribution; and bad options get
 * a one-line message naming their flag. Every draw uses a fixed seed, so
 * the statistical checks are deterministic. */
#include "runtime/sampler.h"
#include "tests/testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* A small local PRNG for test data (not the sampler's). */
static uint64_t test_rng = 0x9e3779b97f4a7c15ULL;

static double rnd(void) {
    test_rng ^= test_rng << 13, test_rng ^= test_rng >> 7, test_rng ^= test_rng << 17;
    return (double)(test_rng >> 11) * 0x1.0p-53;
}

static void random_logits(float *l, int n, float scale) {
    for (int i = 0; i < n; i++) l[i] = (float)((rnd() * 2 - 1) * scale);
}

static rt_sampler_opts opts(float temp, int top_k, float top_p, float min_p) {
    rt_sampler_opts o = rt_sampler_defaults();
    o.temperature = temp, o.top_k = top_k, o.top_p = top_p, o.min_p = min_p;
    return o;
}

/* The candidate set of logits[0..n) under o, written to ids/probs. */
static int candidates(rt_sampler_opts o, const float *logits, int n, int32_t *ids, float *probs) {
    rt_sampler *s = rt_sampler_new(&o, n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    float *copy = malloc(n * sizeof *copy);
    memcpy(copy, logits, n * sizeof *copy);
    int k = rt_sampler_candidates(s, copy, NULL, 0, ids, probs);
    CU_ASSERT(k >= 1 && k <= rt_sampler_max_candidates(s));
    free(copy);
    rt_sampler_free(s);
    return k;
}

/* Candidates equal exactly the ids want[0..n_want), in that order. */
static void expect_ids(rt_sampler_opts o, const float *logits, int n, const int32_t *want, int n_want) {
    int32_t ids[n];
    float probs[n];
    int k = candidates(o, logits, n, ids, probs);
    CU_ASSERT_EQUAL(k, n_want);
    if (k != n_want) printf("\n  top_p %g min_p %g: %d candidates, expected %d\n", o.top_p, o.min_p, k, n_want);
    for (int i = 0; i < k && i < n_want; i++) CU_ASSERT_EQUAL(ids[i], want[i]);
}

static void expect_msg(rt_sampler_opts o, const char *part) {
    gm_err e = {{0}};
    CU_ASSERT_EQUAL(rt_sampler_check(&o, &e), -1);
    if (!strstr(e.msg, part)) printf("\n  message \"%s\" lacks \"%s\"\n", e.msg, part);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, part));
    CU_ASSERT_PTR_NULL(strchr(e.msg, '\n'));
    CU_ASSERT_PTR_NULL(rt_sampler_new(&o, 10));
}

/* ---- options ---- */

static void test_defaults(void) {
    rt_sampler_opts o = rt_sampler_defaults();
    CU_ASSERT_EQUAL(o.temperature, 1.0f);
    CU_ASSERT_EQUAL(o.top_k, 64);
    CU_ASSERT_EQUAL(o.top_p, 0.95f);
    CU_ASSERT_EQUAL(o.min_p, 0.0f);
    CU_ASSERT_EQUAL(o.repeat_penalty, 1.0f);
    CU_ASSERT_EQUAL(o.repeat_last_n, 64);
    CU_ASSERT_EQUAL(rt_sampler_check(&o, NULL), 0);
    CU_ASSERT_PTR_NULL(rt_sampler_new(&o, 0));
}

static void test_check(void) {
    rt_sampler_opts o = rt_sampler_defaults();
    /* the edges of every range are accepted */
    o.temperature = 0, o.top_k = 0, o.top_p = 1, o.min_p = 1, o.repeat_penalty = 1e-3f, o.repeat_last_n = 0;
    CU_ASSERT_EQUAL(rt_sampler_check(&o, NULL), 0);
    o.min_p = 0, o.top_p = 1e-6f;
    CU_ASSERT_EQUAL(rt_sampler_check(&o, NULL), 0);

    rt_sampler_opts d = rt_sampler_defaults();
    o = d, o.temperature = -0.5f;
    expect_msg(o, "--temperature: expected a number >= 0, found -0.5");
    o = d, o.temperature = INFINITY;
    expect_msg(o, "--temperature");
    o = d, o.temperature = NAN;
    expect_msg(o, "--temperature");
    o = d, o.top_k = -1;
    expect_msg(o, "--top-k: expected an integer >= 0, found -1");
    o = d, o.top_p = 1.5f;
    expect_msg(o, "--top-p: expected a number in (0, 1], found 1.5");
    o = d, o.top_p = 0;
    expect_msg(o, "--top-p: expected a number in (0, 1], found 0");
    o = d, o.top_p = NAN;
    expect_msg(o, "--top-p");
    o = d, o.min_p = -0.1f;
    expect_msg(o, "--min-p: expected a number in [0, 1], found -0.1");
    o = d, o.min_p = 1.01f;
    expect_msg(o, "--min-p: expected a number in [0, 1], found 1.01");
    o = d, o.repeat_penalty = 0;
    expect_msg(o, "--repeat-penalty: expected a number > 0, found 0");
    o = d, o.repeat_penalty = -1;
    expect_msg(o, "--repeat-penalty");
    o = d, o.repeat_last_n = -1;
    expect_msg(o, "--repeat-last-n: expected an integer >= 0, found -1");
}

/* ---- greedy and top-k ---- */

static int32_t sample_once(rt_sampler_opts o, const float *logits, int n) {
    rt_sampler *s = rt_sampler_new(&o, n);
    float *copy = malloc(n * sizeof *copy);
    memcpy(copy, logits, n * sizeof *copy);
    int32_t t = rt_sample(s, copy, NULL, 0);
    free(copy);
    rt_sampler_free(s);
    return t;
}

static void test_greedy(void) {
    rt_sampler_opts g = opts(0, 64, 0.95f, 0);
    float a[] = {0.5f, -1, 3, 2.9f, 3, -INFINITY, 3};
    CU_ASSERT_EQUAL(sample_once(g, a, 7), 2); /* ties: the lowest id */
    float b[] = {-7, -3, -5};
    CU_ASSERT_EQUAL(sample_once(g, b, 3), 1);
    float c[] = {1, 1, 1, 1};
    CU_ASSERT_EQUAL(sample_once(g, c, 4), 0);
    float d[] = {NAN, -2, NAN, -1}; /* NaN counts as -inf */
    CU_ASSERT_EQUAL(sample_once(g, d, 4), 3);
    int32_t ids[7];
    float probs[7];
    CU_ASSERT_EQUAL(candidates(g, a, 7, ids, probs), 1);
    CU_ASSERT_EQUAL(ids[0], 2);
    CU_ASSERT_EQUAL(probs[0], 1.0f);

    /* random rows: the argmax, whatever the seed */
    enum { V = 5000 };
    static float l[V];
    for (int r = 0; r < 20; r++) {
        random_logits(l, V, 10);
        int32_t best = 0;
        for (int i = 1; i < V; i++)
            if (l[i] > l[best]) best = i;
        g.seed = (uint64_t)r;
        CU_ASSERT_EQUAL(sample_once(g, l, V), best);
    }
}

/* top_k 1 at any temperature (and top-p, min-p) is greedy, ties included. */
static void test_top_k_one_is_greedy(void) {
    enum { V = 3000 };
    static float l[V];
    const float temps[] = {1e-3f, 0.5f, 1, 2, 100};
    for (int r = 0; r < 40; r++) {
        random_logits(l, V, 5);
        if (r % 2) l[17] = l[2900] = l[300] = 6; /* a three-way tie for the max */
        rt_sampler_opts g = opts(0, 0, 1, 0);
        int32_t want = sample_once(g, l, V);
        if (r % 2) CU_ASSERT_EQUAL(want, 17);
        rt_sampler_opts o = opts(temps[r % 5], 1, r % 3 ? 0.9f : 1, r % 4 ? 0 : 0.5f);
        rt_sampler *s = rt_sampler_new(&o, V);
        for (int i = 0; i < 10; i++) {
            float copy[V];
            memcpy(copy, l, sizeof copy);
            CU_ASSERT_EQUAL(rt_sample(s, copy, NULL, 0), want);
        }
        rt_sampler_free(s);
    }
}

static void test_top_k_set(void) {
    float l[] = {1, 5, 3, 5, 2, 4, 5};
    int32_t want3[] = {1, 3, 6}, want4[] = {1, 3, 6, 5};
    expect_ids(opts(1, 3, 1, 0), l, 7, want3, 3);
    expect_ids(opts(1, 4, 1, 0), l, 7, want4, 4);
    int32_t want2[] = {1, 3}; /* a tie at the cut keeps the lowest ids */
    expect_ids(opts(1, 2, 1, 0), l, 7, want2, 2);
    int32_t all[] = {1, 3, 6, 5, 2, 4, 0};
    expect_ids(opts(1, 7, 1, 0), l, 7, all, 7);
    expect_ids(opts(1, 100, 1, 0), l, 7, all, 7);
    expect_ids(opts(1, 0, 1, 0), l, 7, all, 7);

    /* top-k is applied before the softmax: the kept probabilities sum to 1 */
    int32_t ids[7];
    float probs[7];
    int k = candidates(opts(1, 3, 1, 0), l, 7, ids, probs);
    for (int i = 0; i < k; i++) CU_ASSERT_DOUBLE_EQUAL(probs[i], 1.0 / 3, 1e-6);
}

/* ---- seeds ---- */

static void draws(rt_sampler_opts o, const float *l, int V, int32_t *out, int n) {
    rt_sampler *s = rt_sampler_new(&o, V);
    float *copy = malloc(V * sizeof *copy);
    for (int i = 0; i < n; i++) {
        memcpy(copy, l, V * sizeof *copy);
        out[i] = rt_sample(s, copy, NULL, 0);
    }
    free(copy);
    rt_sampler_free(s);
}

static void test_seed(void) {
    enum { V = 2000, N = 1000 };
    static float l[V];
    static int32_t a[N], b[N], c[N];
    random_logits(l, V, 3);
    const rt_sampler_opts cases[] = {rt_sampler_defaults(), opts(1, 0, 1, 0), opts(0.7f, 0, 0.9f, 0.05f)};
    for (int k = 0; k < 3; k++) {
        rt_sampler_opts o = cases[k];
        o.seed = 42;
        draws(o, l, V, a, N);
        draws(o, l, V, b, N);
        CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
        o.seed = 43;
        draws(o, l, V, c, N);
        int differ = 0;
        for (int i = 0; i < N; i++) differ += a[i] != c[i];
        CU_ASSERT(differ > N / 2);
        int distinct = 0; /* and the draws do vary */
        for (int i = 1; i < N; i++) distinct += a[i] != a[0];
        CU_ASSERT(distinct > N / 2);
    }
}

/* ---- top-p ---- */

static void test_top_p(void) {
    /* p = 0.5, 0.3, 0.15, 0.05, stored out of order: ids 2, 0, 3, 1 */
    float l[] = {logf(0.3f), logf(0.05f), logf(0.5f), logf(0.15f)};
    int32_t order[] = {2, 0, 3, 1};
    struct { float p; int n; } cases[] = {
        {1e-7f, 1}, {1e-6f, 1}, {0.49f, 1}, {0.5f, 1}, {0.51f, 2}, {0.79f, 2}, {0.8f, 2}, {0.81f, 3},
        {0.95f, 3}, {0.951f, 4}, {0.99f, 4}, {1, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_ids(opts(1, 0, cases[i].p, 0), l, 4, order, cases[i].n);
    /* the same with top-k on (and >= the vocabulary) */
    expect_ids(opts(1, 4, 0.8f, 0), l, 4, order, 2);
    expect_ids(opts(1, 9, 0.81f, 0), l, 4, order, 3);
    /* top-k 3 renormalises first: 0.5/0.95 + 0.3/0.95 = 0.842 reaches 0.84 */
    expect_ids(opts(1, 3, 0.84f, 0), l, 4, order, 2);
    expect_ids(opts(1, 3, 0.85f, 0), l, 4, order, 3);

    /* renormalised probabilities of the kept set */
    int32_t ids[4];
    float probs[4];
    CU_ASSERT_EQUAL(candidates(opts(1, 0, 0.8f, 0), l, 4, ids, probs), 2);
    CU_ASSERT_DOUBLE_EQUAL(probs[0], 0.625, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(probs[1], 0.375, 1e-6);

    /* equal logits give exact quarters: boundaries without rounding */
    float eq[] = {2, 2, 2, 2};
    int32_t ids0123[] = {0, 1, 2, 3};
    expect_ids(opts(1, 0, 0.25f, 0), eq, 4, ids0123, 1);
    expect_ids(opts(1, 0, 0.5f, 0), eq, 4, ids0123, 2);
    expect_ids(opts(1, 0, 0.5001f, 0), eq, 4, ids0123, 3);
    expect_ids(opts(1, 0, 0.75f, 0), eq, 4, ids0123, 3);
    expect_ids(opts(1, 2, 0.5f, 0), eq, 4, ids0123, 1); /* top-k 2: halves */
    CU_ASSERT_EQUAL(candidates(opts(1, 0, 0.5f, 0), eq, 4, ids, probs), 2);
    CU_ASSERT_EQUAL(probs[0], 0.5f);
    CU_ASSERT_EQUAL(probs[1], 0.5f);

    /* temperature flattens before the cut: at T = 2, p ∝ sqrt(p) */
    double q[4] = {sqrt(0.5), sqrt(0.3), sqrt(0.15), sqrt(0.05)}, z = q[0] + q[1] + q[2] + q[3];
    float p2 = (float)((q[0] + q[1]) / z); /* 0.6726 */
    expect_ids(opts(2, 0, p2 - 0.001f, 0), l, 4, order, 2);
    expect_ids(opts(2, 0, p2 + 0.001f, 0), l, 4, order, 3);
}

/* A large flat tail forces the threshold below its first guess; the cut is
 * still the shortest prefix, ties taken in id order. */
static void test_top_p_long_tail(void) {
    enum { V = 100000 };
    static float l[V];
    static int32_t ids[V], want[V];
    static float probs[V];
    for (int i = 0; i < V; i++) l[i] = -10;
    l[V - 1] = 0;
    double w = exp(-10.0), z = 1 + (V - 1) * w;
    for (int r = 0; r < 3; r++) {
        float p = (float[]){0.3f, 0.5f, 0.9f}[r];
        int m = 1; /* the shortest prefix reaching p */
        while ((1 + (m - 1) * w) / z < p - RT_SAMPLER_SLACK) m++;
        want[0] = V - 1;
        for (int i = 1; i < m; i++) want[i] = i - 1;
        expect_ids(opts(1, 0, p, 0), l, V, want, m);
        CU_ASSERT_EQUAL(candidates(opts(1, 0, p, 0), l, V, ids, probs), m);
        CU_ASSERT_DOUBLE_EQUAL(probs[0], 1 / (1 + (m - 1) * w), 1e-5);
    }
    /* all equal: exactly half the vocabulary */
    for (int i = 0; i < V; i++) l[i] = 1, want[i] = i;
    expect_ids(opts(1, 0, 0.5f, 0), l, V, want, V / 2);
}

/* Random rows against a reference computed here: sort everything, sum in
 * order, cut; then min-p. Rows whose cut lies within 1e-9 of a step are
 * skipped (rounding may go either way there). */
static const float *ref_logits;

static int cmp_ref(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    const float *l = ref_logits;
    if (l[a] != l[b]) return l[a] > l[b] ? -1 : 1;
    return a - b;
}

static void test_top_p_random(void) {
    enum { V = 5000 };
    static float l[V];
    static int32_t ref[V], ids[V];
    static float probs[V];
    int checked = 0;
    for (int r = 0; r < 60; r++) {
        random_logits(l, V, r % 3 ? 8.0f : 0.5f);
        l[r * 37] += 10; /* a peak */
        rt_sampler_opts o = opts((float)(0.2 + 2 * rnd()), r % 4 ? 0 : V / 3, (float)(0.05 + 0.9 * rnd()),
                                 r % 5 ? 0 : (float)(rnd() * 0.05));
        for (int i = 0; i < V; i++) ref[i] = i;
        ref_logits = l;
        qsort(ref, V, sizeof *ref, cmp_ref);
        int k = o.top_k ? o.top_k : V;
        double w[V], z = 0, cum = 0, goal;
        for (int i = 0; i < k; i++) z += w[i] = exp((l[ref[i]] - l[ref[0]]) / (double)o.temperature);
        goal = (o.top_p - RT_SAMPLER_SLACK) * z;
        int m = 0, near;
        while (m < k && cum < goal) cum += w[m++];
        near = fabs(cum - goal) < 1e-9 * z || fabs(cum - w[m - 1] - goal) < 1e-9 * z;
        while (o.min_p > 0 && m > 1 && w[m - 1] < o.min_p - RT_SAMPLER_SLACK) m--;
        for (int i = 0; i < k; i++) near |= o.min_p > 0 && fabs(w[i] - o.min_p) < 1e-9;
        if (near) continue;
        checked++;
        double kept = 0;
        for (int i = 0; i < m; i++) kept += w[i];
        int n = candidates(o, l, V, ids, probs);
        CU_ASSERT_EQUAL(n, m);
        for (int i = 0; i < n && i < m; i++) {
            CU_ASSERT_EQUAL(ids[i], ref[i]);
            CU_ASSERT_DOUBLE_EQUAL(probs[i], w[i] / kept, 1e-6);
        }
    }
    CU_ASSERT(checked > 50);
}

/* ---- min-p ---- */

static void test_min_p(void) {
    float l[] = {logf(0.3f), logf(0.05f), logf(0.5f), logf(0.15f)};
    int32_t order[] = {2, 0, 3, 1};
    struct { float m; int n; } cases[] = {
        {1e-3f, 4}, {0.1f, 4}, {0.101f, 3}, {0.3f, 3}, {0.301f, 2}, {0.6f, 2}, {0.601f, 1}, {1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        expect_ids(opts(1, 0, 1, cases[i].m), l, 4, order, cases[i].n);
        expect_ids(opts(1, 3, 1, cases[i].m), l, 4, order, cases[i].n < 3 ? cases[i].n : 3);
    }
    /* after top-p: the intersection of both cuts */
    expect_ids(opts(1, 0, 0.8f, 0.1f), l, 4, order, 2);
    expect_ids(opts(1, 0, 0.95f, 0.5f), l, 4, order, 2);
    /* min_p 1 keeps exactly the tokens tied with the max */
    float t[] = {3, 1, 3, 2, 3};
    int32_t tied[] = {0, 2, 4};
    expect_ids(opts(1, 0, 1, 1), t, 5, tied, 3);
    expect_ids(opts(5, 0, 1, 1), t, 5, tied, 3);
}

/* Random rows: the kept set is exactly {p >= min_p · p_max}, in order. */
static void test_min_p_random(void) {
    enum { V = 4000 };
    static float l[V];
    static int32_t ids[V];
    static float probs[V];
    for (int r = 0; r < 30; r++) {
        random_logits(l, V, 8);
        rt_sampler_opts o = opts((float)(0.3 + 2 * rnd()), r % 2 ? 0 : V / 2, 1, (float)(rnd() * 0.5));
        double temp = o.temperature, min_p = o.min_p, lmax = -INFINITY;
        for (int i = 0; i < V; i++) lmax = fmax(lmax, l[i]);
        int want = 0, near = 0;
        for (int i = 0; i < V; i++) {
            double ratio = exp((l[i] - lmax) / temp);
            want += ratio >= min_p;
            near |= fabs(ratio - min_p) < 1e-5;
        }
        if (near) continue;
        int n = candidates(o, l, V, ids, probs);
        if (o.top_k && want > o.top_k) want = o.top_k;
        CU_ASSERT_EQUAL(n, want);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double ratio = exp((l[ids[i]] - lmax) / temp);
            CU_ASSERT(ratio >= min_p);
            if (i) CU_ASSERT(probs[i] <= probs[i - 1]);
            CU_ASSERT_DOUBLE_EQUAL(probs[i] / probs[0], ratio, 1e-4);
            sum += probs[i];
        }
        CU_ASSERT_DOUBLE_EQUAL(sum, 1, 1e-4);
    }
}

/* ---- repetition penalty ---- */

static void test_penalty(void) {
    enum { V = 10 };
    const float base[V] = {2, -2, 0, 4, -1, 3, 1.5f, -3, 0.5f, 6};
    float l[V];
    rt_sampler_opts o = opts(0, 0, 1, 0);
    o.repeat_penalty = 2, o.repeat_last_n = 6;
    /* 9 is outside the last 6; 3 and 1 repeat; -1 and 99 are not ids */
    const int32_t recent[] = {9, 0, 3, 1, 3, -1, 99, 4, 1};
    rt_sampler *s = rt_sampler_new(&o, V);
    for (int round = 0; round < 3; round++) { /* the dedupe marks reset per call */
        memcpy(l, base, sizeof l);
        CU_ASSERT_EQUAL(rt_sample(s, l, recent, 9), 9);
        for (int i = 0; i < V; i++) {
            int hit = i == 3 || i == 1 || i == 4;
            float want = !hit ? base[i] : base[i] > 0 ? base[i] / 2 : base[i] * 2;
            CU_ASSERT_EQUAL(l[i], want);
        }
    }
    rt_sampler_free(s);

    /* the penalty can move the choice: 6/2 < 4 */
    o.repeat_last_n = 64;
    s = rt_sampler_new(&o, V);
    memcpy(l, base, sizeof l);
    CU_ASSERT_EQUAL(rt_sample(s, l, (const int32_t[]){9}, 1), 3);
    CU_ASSERT_EQUAL(l[9], 3.0f);
    rt_sampler_free(s);

    /* penalty 1 or last_n 0: nothing moves */
    for (int k = 0; k < 2; k++) {
        o.repeat_penalty = k ? 1.0f : 1.3f, o.repeat_last_n = k ? 64 : 0;
        s = rt_sampler_new(&o, V);
        memcpy(l, base, sizeof l);
        CU_ASSERT_EQUAL(rt_sample(s, l, recent, 9), 9);
        CU_ASSERT_EQUAL(memcmp(l, base, sizeof l), 0);
        rt_sampler_free(s);
    }

    /* a penalty below 1 encourages, and candidates applies it too */
    o.repeat_penalty = 0.5f, o.repeat_last_n = 64;
    o.temperature = 1;
    s = rt_sampler_new(&o, V);
    memcpy(l, base, sizeof l);
    int32_t ids[V];
    float probs[V];
    rt_sampler_candidates(s, l, (const int32_t[]){7, 7}, 2, ids, probs);
    CU_ASSERT_EQUAL(l[7], -1.5f);
    rt_sampler_free(s);
}

/* ---- the draw ---- */

static void frequencies(rt_sampler_opts o, const float *l, int V, const double *want) {
    enum { N = 20000 };
    int count[8] = {0};
    static int32_t t[N];
    draws(o, l, V, t, N);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_FATAL(t[i] >= 0 && t[i] < V);
        count[t[i]]++;
    }
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / N;
        if (fabs(f - want[i]) >= 0.02) printf("\n  token %d: frequency %.4f, probability %.4f\n", i, f, want[i]);
        CU_ASSERT(fabs(f - want[i]) < 0.02);
    }
}

static void test_frequencies(void) {
    const double p[4] = {0.1, 0.4, 0.2, 0.3};
    float l[4];
    for (int i = 0; i < 4; i++) l[i] = (float)log(p[i]) + 7;
    frequencies(opts(1, 0, 1, 0), l, 4, p);        /* nothing cuts: the id-order walk */
    frequencies(rt_sampler_defaults(), l, 4, p);   /* top-k 64, top-p 0.95: the sorted walk */
    frequencies(opts(1, 0, 0.99f, 0), l, 4, p);    /* top-k off, sorted */
    /* T = 0.5: p² renormalised */
    double q[4], z = 0;
    for (int i = 0; i < 4; i++) z += q[i] = p[i] * p[i];
    for (int i = 0; i < 4; i++) q[i] /= z;
    frequencies(opts(0.5f, 0, 1, 0), l, 4, q);
    /* top-p 0.7 keeps {1, 3}: 4/7, 3/7 */
    const double cut[4] = {0, 4.0 / 7, 0, 3.0 / 7};
    frequencies(opts(1, 0, 0.7f, 0), l, 4, cut);
    /* -inf is never drawn */
    float m[4] = {0, -INFINITY, 0, -INFINITY};
    const double half[4] = {0.5, 0, 0.5, 0};
    frequencies(opts(1, 0, 1, 0), m, 4, half);
    frequencies(opts(1, 3, 1, 0), m, 4, half);
}

/* Every draw is one of the candidates, on a full-size vocabulary. */
static void test_draws_within_candidates(void) {
    enum { V = 262144 };
    static float l[V], copy[V];
    static int32_t ids[V];
    static float probs[V];
    static unsigned char in[V];
    random_logits(l, V, 12);
    const rt_sampler_opts cases[] = {rt_sampler_defaults(), opts(0.8f, 0, 0.9f, 0), opts(1, 0, 1, 0.2f),
                                     opts(1.5f, 200, 0.5f, 0.01f)};
    for (int k = 0; k < 4; k++) {
        rt_sampler *s = rt_sampler_new(&cases[k], V);
        memcpy(copy, l, sizeof l);
        int n = rt_sampler_candidates(s, copy, NULL, 0, ids, probs);
        CU_ASSERT(n >= 1 && n <= rt_sampler_max_candidates(s));
        memset(in, 0, sizeof in);
        for (int i = 0; i < n; i++) in[ids[i]] = 1;
        for (int i = 0; i < 50; i++) {
            memcpy(copy, l, sizeof l);
            int32_t t = rt_sample(s, copy, NULL, 0);
            CU_ASSERT_FATAL(t >= 0 && t < V);
            CU_ASSERT(in[t]);
        }
        rt_sampler_free(s);
    }
}

/* Non-finite maxima fall back to greedy rather than fail. */
static void test_odd_logits(void) {
    float a[] = {1, INFINITY, 2, INFINITY};
    float b[] = {-INFINITY, -INFINITY, -INFINITY};
    float c[] = {NAN, 1, NAN, 3, 2};
    const rt_sampler_opts cases[] = {rt_sampler_defaults(), opts(1, 0, 1, 0), opts(1, 0, 0.5f, 0.1f)};
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL(sample_once(cases[k], a, 4), 1);
        CU_ASSERT_EQUAL(sample_once(cases[k], b, 3), 0);
        int32_t t = sample_once(cases[k], c, 5);
        CU_ASSERT(t == 1 || t == 3 || t == 4);
    }
    float one[] = {0.25f};
    CU_ASSERT_EQUAL(sample_once(rt_sampler_defaults(), one, 1), 0);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("sampler", NULL, NULL);
    CU_add_test(s, "defaults", test_defaults);
    CU_add_test(s, "option checks name the flag", test_check);
    CU_add_test(s, "greedy is the argmax, ties to the lowest id", test_greedy);
    CU_add_test(s, "top-k 1 is greedy at any temperature", test_top_k_one_is_greedy);
    CU_add_test(s, "top-k keeps the k best", test_top_k_set);
    CU_add_test(s, "a seed fixes the draws", test_seed);
    CU_add_test(s, "top-p keeps the shortest prefix", test_top_p);
    CU_add_test(s, "top-p over a long tail", test_top_p_long_tail);
    CU_add_test(s, "top-p and min-p on random rows", test_top_p_random);
    CU_add_test(s, "min-p keeps p >= min_p * p_max", test_min_p);
    CU_add_test(s, "min-p on random rows", test_min_p_random);
    CU_add_test(s, "repetition penalty", test_penalty);
    CU_add_test(s, "draw frequencies", test_frequencies);
    CU_add_test(s, "draws are candidates", test_draws_within_candidates);
    CU_add_test(s, "non-finite logits", test_odd_logits);
    return test_run_all();
}
