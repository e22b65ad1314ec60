/* perplexity.c — per-position scores (NLL, KL divergence, top-1 agreement)
 * and the estimates `gemmac perplexity` prints (perplexity.h). Sums are kept
 * the way llama.cpp keeps them (Σx and Σx² per quantity, Σ NLL·NLL_base for
 * the covariance), so the same data give the same mean and the same ± as
 * its perplexity and --kl-divergence modes; only the precision differs:
 * llama.cpp stores the base's log-probabilities in 16 bits and skips base
 * probabilities below e^−16, here every term is exact in double. */
#include "perplexity.h"

#include "runtime/common.h"

#include <math.h>
#include <stdlib.h>

/* log Σ exp(x), and the first index of the largest x. */
static double log_sum_exp(const float *x, int64_t V, int64_t *argmax) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    double max = x[best], sum = 0;
    for (int64_t i = 0; i < V; i++) sum += exp((double)x[i] - max);
    *argmax = best;
    return max + log(sum);
}

double ppl_nll(const float *logits, int64_t V, int32_t target) {
    int64_t top;
    return log_sum_exp(logits, V, &top) - logits[target];
}

/* Σ p_base (log p_base − log p_model), given both log-normalisers. */
static double kl_divergence(const float *base, double lse_base, const float *model, double lse_model, int64_t V) {
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        double lb = base[i] - lse_base, p = exp(lb);
        if (p > 0) sum += p * (lb - (model[i] - lse_model));
    }
    return sum;
}

void ppl_add(ppl_stats *s, const float *logits, const float *base, int64_t V, int32_t next) {
    int64_t top, base_top;
    double lse = log_sum_exp(logits, V, &top), nll = lse - logits[next];
    s->count++;
    s->nll += nll, s->nll2 += nll * nll;
    if (!base) return;
    double lse_base = log_sum_exp(base, V, &base_top), nll_base = lse_base - base[next];
    double kl = kl_divergence(base, lse_base, logits, lse, V);
    s->base += nll_base, s->base2 += nll_base * nll_base, s->cross += nll * nll_base;
    s->kl += kl, s->kl2 += kl * kl;
    s->same_top += top == base_top;
    if (s->count > s->cap) s->kls = gm_realloc(s->kls, (s->cap = 2 * s->count) * sizeof *s->kls);
    s->kls[s->count - 1] = kl;
}

void ppl_free(ppl_stats *s) { free(s->kls); }

/* The mean of n values from Σx and Σx², and its standard error. */
static ppl_estimate mean(double sum, double sum2, int64_t n) {
    double m = sum / n, var = sum2 / n - m * m;
    return (ppl_estimate){m, var > 0 && n > 1 ? sqrt(var / (n - 1)) : 0};
}

/* exp of a mean log, its error carried through exp's derivative. */
static ppl_estimate exp_of(ppl_estimate log) {
    double v = exp(log.value);
    return (ppl_estimate){v, v * log.se};
}

ppl_estimate ppl_model(const ppl_stats *s) { return exp_of(mean(s->nll, s->nll2, s->count)); }
ppl_estimate ppl_base(const ppl_stats *s) { return exp_of(mean(s->base, s->base2, s->count)); }
ppl_estimate ppl_mean_kl(const ppl_stats *s) { return mean(s->kl, s->kl2, s->count); }

ppl_estimate ppl_ratio(const ppl_stats *s) {
    ppl_estimate a = mean(s->nll, s->nll2, s->count), b = mean(s->base, s->base2, s->count);
    int64_t n = s->count;
    double cov = n > 1 ? (s->cross / n - a.value * b.value) / (n - 1) : 0;
    double var = a.se * a.se + b.se * b.se - 2 * cov;
    return exp_of((ppl_estimate){a.value - b.value, var > 0 ? sqrt(var) : 0});
}

ppl_estimate ppl_top1(const ppl_stats *s) {
    double p = (double)s->same_top / s->count;
    return (ppl_estimate){p, s->count > 1 ? sqrt(p * (1 - p) / (s->count - 1)) : 0};
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ppl_median_kl(ppl_stats *s) {
    int64_t n = s->count;
    qsort(s->kls, n, sizeof *s->kls, by_value);
    return n % 2 ? s->kls[n / 2] : 0.5 * (s->kls[n / 2 - 1] + s->kls[n / 2]);
}

double ppl_max_kl(const ppl_stats *s) {
    double max = s->kls[0];
    for (int64_t i = 1; i < s->count; i++) max = fmax(max, s->kls[i]);
    return max;
}
