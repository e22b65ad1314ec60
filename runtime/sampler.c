/* sampler.c — the token sampler (see sampler.h for the exact semantics).
 *
 * It runs once per generated token on rows of up to 262144 logits, so it
 * never sorts the whole vocabulary to sample. With top-k on, a min-heap of k
 * picks the k best in one pass (O(V log k), and almost every logit loses
 * against the heap's root at once) and only those k are sorted. With top-k
 * off, one pass computes the softmax weights and, for top-p, a histogram of
 * the weight per bucket of (max - logit) / T, 0.01 wide. The cumulative
 * histogram names the bucket where the top-p cut falls: every token in the
 * buckets before it is kept without sorting, and only the cut bucket's
 * tokens are sorted to find the exact cut. Min-p is a weight floor, p / p_max
 * >= min_p, applied by filtering. The scratch memory is allocated once, in
 * rt_sampler_new, and the random stream is a PCG32 held in the sampler: no
 * global state. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>

enum { HIST_N = 4096, HIST_SCALE = 100 };

typedef struct {
    int32_t id;
    float logit;   /* after the penalty; NaN stored as -inf */
    double w;      /* exp((logit - max) / T): the unnormalised probability */
} cand;

struct rt_sampler {
    rt_sampler_opts o;
    int64_t vocab;
    uint64_t rng, inc;   /* PCG32 state and stream */
    uint32_t *seen;      /* [vocab] penalty dedupe: seen[t] == stamp */
    uint32_t stamp;
    cand *c;             /* [vocab] the candidates */
    double *w;           /* [vocab] weights by id (top-k off) */
    float max;           /* the row's max logit (top-k off) */
    double hist[HIST_N]; /* weight per bucket of (max - logit) / T (top-k off) */
};

rt_sampler_opts rt_sampler_defaults(void) {
    return (rt_sampler_opts){.temperature = 1.0f, .top_k = 64, .top_p = 0.95f, .min_p = 0.0f,
                             .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
}

int rt_sampler_check(const rt_sampler_opts *o, gm_err *e) {
    if (!(isfinite(o->temperature) && o->temperature >= 0))
        return gm_fail(e, "--temperature: expected a number >= 0, found %g", o->temperature);
    if (o->top_k < 0) return gm_fail(e, "--top-k: expected an integer >= 0, found %d", o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1))
        return gm_fail(e, "--top-p: expected a number in (0, 1], found %g", o->top_p);
    if (!(o->min_p >= 0 && o->min_p <= 1))
        return gm_fail(e, "--min-p: expected a number in [0, 1], found %g", o->min_p);
    if (!(isfinite(o->repeat_penalty) && o->repeat_penalty > 0))
        return gm_fail(e, "--repeat-penalty: expected a number > 0, found %g", o->repeat_penalty);
    if (o->repeat_last_n < 0)
        return gm_fail(e, "--repeat-last-n: expected an integer >= 0, found %d", o->repeat_last_n);
    return 0;
}

/* ---- PCG32 (O'Neill, pcg-random.org), one stream per sampler ---- */

static uint32_t pcg32(rt_sampler *s) {
    uint64_t x = s->rng;
    s->rng = x * 6364136223846793005ULL + s->inc;
    uint32_t xs = (uint32_t)(((x >> 18) ^ x) >> 27), rot = (uint32_t)(x >> 59);
    return (xs >> rot) | (xs << ((32 - rot) & 31));
}

static void pcg32_seed(rt_sampler *s, uint64_t seed) {
    s->rng = 0;
    s->inc = (0xda3e39cb94b95bdbULL << 1) | 1;
    pcg32(s);
    s->rng += seed;
    pcg32(s);
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform(rt_sampler *s) {
    uint64_t hi = pcg32(s), lo = pcg32(s);
    return (double)(((hi << 32) | lo) >> 11) * 0x1.0p-53;
}

/* ---- lifetime ---- */

rt_sampler *rt_sampler_new(const rt_sampler_opts *o, int64_t vocab) {
    if (vocab < 1 || vocab > INT32_MAX || rt_sampler_check(o, NULL) != 0) return NULL;
    rt_sampler *s = gm_calloc(1, sizeof *s);
    s->o = *o;
    s->vocab = vocab;
    s->seen = gm_calloc((size_t)vocab, sizeof *s->seen);
    s->c = gm_malloc((size_t)vocab * sizeof *s->c);
    s->w = gm_malloc((size_t)vocab * sizeof *s->w);
    pcg32_seed(s, o->seed);
    return s;
}

void rt_sampler_free(rt_sampler *s) {
    if (!s) return;
    free(s->seen);
    free(s->c);
    free(s->w);
    free(s);
}

int rt_sampler_max_candidates(const rt_sampler *s) {
    if (s->o.temperature == 0) return 1;
    if (s->o.top_k > 0 && s->o.top_k < s->vocab) return s->o.top_k;
    return (int)s->vocab;
}

/* ---- step 1: repetition penalty ---- */

static void penalize(rt_sampler *s, float *logits, const int32_t *recent, int n_recent) {
    float pen = s->o.repeat_penalty;
    if (pen == 1 || !recent || n_recent <= 0) return;
    if (++s->stamp == 0) { /* wrapped after 2^32 calls: forget every mark */
        memset(s->seen, 0, (size_t)s->vocab * sizeof *s->seen);
        s->stamp = 1;
    }
    int from = n_recent > s->o.repeat_last_n ? n_recent - s->o.repeat_last_n : 0;
    for (int i = from; i < n_recent; i++) {
        int32_t t = recent[i];
        if (t < 0 || t >= s->vocab || s->seen[t] == s->stamp) continue;
        s->seen[t] = s->stamp;
        logits[t] = logits[t] > 0 ? logits[t] / pen : logits[t] * pen;
    }
}

/* ---- step 2: greedy ---- */

static float key(float l) { return l == l ? l : -INFINITY; }

int32_t rt_argmax(const float *logits, int64_t vocab) {
    int32_t best = 0;
    float top = key(logits[0]);
    for (int64_t i = 1; i < vocab; i++)
        if (logits[i] > top) top = logits[i], best = (int32_t)i;
    return best;
}

/* ---- step 3: top-k ---- */

/* The candidate order: larger logit first, then lower id. */
static int cmp_cand(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Restores the min-heap h[0..n) (root: the worst candidate) below i. */
static void sift_down(cand *h, int n, int i) {
    for (;;) {
        int worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && cmp_cand(&h[l], &h[worst]) > 0) worst = l;
        if (r < n && cmp_cand(&h[r], &h[worst]) > 0) worst = r;
        if (worst == i) return;
        cand t = h[i];
        h[i] = h[worst], h[worst] = t;
        i = worst;
    }
}

/* The k best of logits into c[0..k), sorted. Ids arrive in increasing
 * order, so a newcomer that ties the root loses: ties keep the lowest ids. */
static void select_top_k(cand *c, const float *logits, int64_t vocab, int k) {
    for (int i = 0; i < k; i++) c[i] = (cand){.id = i, .logit = key(logits[i])};
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
    for (int64_t i = k; i < vocab; i++) {
        if (!(logits[i] > c[0].logit)) continue;
        c[0] = (cand){.id = (int32_t)i, .logit = logits[i]};
        sift_down(c, k, 0);
    }
    qsort(c, (size_t)k, sizeof *c, cmp_cand);
}

/* ---- step 4: softmax weights ---- */

/* Weights of the sorted c[0..n) (c[0] the max); returns their sum. */
static double weigh_sorted(cand *c, int n, double temp) {
    double max = c[0].logit, z = 0;
    for (int i = 0; i < n; i++) z += c[i].w = exp((c[i].logit - max) / temp);
    return z;
}

/* The histogram bucket of a token d = (max - logit) / T below the max, that
 * is of weight exp(-d): buckets of width 1/HIST_SCALE, the last one taking
 * everything from d = 40.95 (weight 1.6e-18) on, and NaN. */
static int bucket(double d) {
    d *= HIST_SCALE;
    return d < HIST_N - 1 ? (int)d : HIST_N - 1;
}

/* Weights of the whole row into s->w, and when hist the weight per bucket
 * into s->hist; returns their sum, or -1 when the max is not finite. NaN
 * logits get NaN weights, which no `>=` keeps, and add nothing. */
static double weigh_all(rt_sampler *s, const float *logits, double temp, int hist) {
    float max = -INFINITY;
    for (int64_t i = 0; i < s->vocab; i++)
        if (logits[i] > max) max = logits[i];
    if (!isfinite(max)) return -1;
    s->max = max;
    if (hist) memset(s->hist, 0, sizeof s->hist);
    double z = 0;
    for (int64_t i = 0; i < s->vocab; i++) {
        double d = ((double)max - logits[i]) / temp, w = s->w[i] = exp(-d);
        if (!(w >= 0)) continue;
        z += w;
        if (hist) s->hist[bucket(d)] += w;
    }
    return z;
}

/* The tokens of weight >= t into s->c, sorted when asked; returns the count. */
static int collect(rt_sampler *s, const float *logits, double t, int sorted) {
    int n = 0;
    for (int64_t i = 0; i < s->vocab; i++)
        if (s->w[i] >= t) s->c[n++] = (cand){.id = (int32_t)i, .logit = logits[i], .w = s->w[i]};
    if (sorted) qsort(s->c, (size_t)n, sizeof *s->c, cmp_cand);
    return n;
}

/* ---- steps 5 and 6: top-p and min-p ---- */

/* The shortest prefix of the sorted c whose weight reaches (p - slack) · z;
 * all n when none does. */
static int top_p_len(const cand *c, int n, double z, double p) {
    double goal = (p - RT_SAMPLER_SLACK) * z, cum = 0;
    for (int i = 0; i < n; i++)
        if ((cum += c[i].w) >= goal) return i + 1;
    return n;
}

/* How many of the sorted c have p / p_max = w >= min_p - slack (c[0].w is 1). */
static int min_p_len(const cand *c, int n, double min_p) {
    int m = 1;
    while (m < n && c[m].w >= min_p - RT_SAMPLER_SLACK) m++;
    return m;
}

/* Drops the candidates under weight t, keeping the order; returns the count. */
static int drop_below(cand *c, int n, double t) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (c[i].w >= t) c[m++] = c[i];
    return m;
}

/* Top-p without top-k, from the histogram of weigh_all: the buckets before
 * the one where the cumulative weight reaches the goal are wholly inside
 * the prefix, so only that bucket's tokens get sorted. The whole buckets go
 * to the front of s->c, the cut bucket to its back, then the cut bucket's
 * best are moved next to the others. Returns the count, the whole buckets
 * in id order, then the cut bucket's, sorted. */
static int top_p_set(rt_sampler *s, const float *logits, double z, double temp) {
    double goal = (s->o.top_p - RT_SAMPLER_SLACK) * z, cum = 0;
    int cut = 0;
    while (cut < HIST_N - 1 && cum + s->hist[cut] < goal) cum += s->hist[cut++];
    int n = 0, back = (int)s->vocab;
    for (int64_t i = 0; i < s->vocab; i++) {
        if (!(s->w[i] >= 0)) continue;
        int b = bucket(((double)s->max - logits[i]) / temp);
        if (b > cut) continue;
        s->c[b < cut ? n++ : --back] = (cand){.id = (int32_t)i, .logit = logits[i], .w = s->w[i]};
    }
    int nc = (int)s->vocab - back;
    qsort(s->c + back, (size_t)nc, sizeof *s->c, cmp_cand);
    int m = 0; /* at least one; all when rounding leaves the goal a hair away */
    while (m < nc && (cum < goal || n + m == 0)) cum += s->c[back + m++].w;
    memmove(s->c + n, s->c + back, (size_t)m * sizeof *s->c);
    return n + m;
}

/* Steps 3-6 on penalised logits: the kept candidates in s->c[0..n), sorted
 * when asked (always with top-k on). Returns n, or 0 when the max is not
 * finite (greedy then). */
static int keep(rt_sampler *s, const float *logits, int sorted) {
    const rt_sampler_opts *o = &s->o;
    double temp = o->temperature, z, floor = o->min_p > 0 ? o->min_p - RT_SAMPLER_SLACK : 0;
    int n;
    if (o->top_k > 0 && o->top_k < s->vocab) {
        select_top_k(s->c, logits, s->vocab, o->top_k);
        if (!isfinite(s->c[0].logit)) return 0;
        z = weigh_sorted(s->c, o->top_k, temp);
        n = o->top_p < 1 ? top_p_len(s->c, o->top_k, z, o->top_p) : o->top_k;
        return o->min_p > 0 ? min_p_len(s->c, n, o->min_p) : n;
    }
    if ((z = weigh_all(s, logits, temp, o->top_p < 1)) < 0) return 0;
    if (o->top_p == 1) return collect(s, logits, floor, sorted);
    n = drop_below(s->c, top_p_set(s, logits, z, temp), floor);
    if (sorted) qsort(s->c, (size_t)n, sizeof *s->c, cmp_cand);
    return n;
}

/* ---- step 7: the draw ---- */

static int32_t draw(rt_sampler *s, const cand *c, int n) {
    double total = 0, cum = 0;
    for (int i = 0; i < n; i++) total += c[i].w;
    double target = uniform(s) * total;
    int32_t last = c[0].id;
    for (int i = 0; i < n; i++) {
        if (!(c[i].w > 0)) continue; /* weight 0 (logit -inf) is never drawn */
        if ((cum += c[i].w) > target) return c[i].id;
        last = c[i].id;
    }
    return last; /* only when rounding put target at total */
}

int32_t rt_sample(rt_sampler *s, float *logits, const int32_t *recent, int n_recent) {
    penalize(s, logits, recent, n_recent);
    if (s->o.temperature == 0) return rt_argmax(logits, s->vocab);
    int n = keep(s, logits, 0);
    return n > 0 ? draw(s, s->c, n) : rt_argmax(logits, s->vocab);
}

int rt_sampler_candidates(rt_sampler *s, float *logits, const int32_t *recent, int n_recent, int32_t *ids,
                          float *probs) {
    penalize(s, logits, recent, n_recent);
    int n = s->o.temperature == 0 ? 0 : keep(s, logits, 1);
    if (n == 0) {
        ids[0] = rt_argmax(logits, s->vocab);
        probs[0] = 1;
        return 1;
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += s->c[i].w;
    for (int i = 0; i < n; i++) {
        ids[i] = s->c[i].id;
        probs[i] = (float)(s->c[i].w / total);
    }
    return n;
}
