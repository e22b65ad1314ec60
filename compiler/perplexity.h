/* perplexity.h — the arithmetic of `gemmac perplexity`, apart from the
 * engines so that tests can feed it hand-made logits.
 *
 * Every scored position contributes the model's negative log-likelihood of
 * the next token and, when a base model is compared, the base's, the
 * KL divergence KL(base ‖ model) = Σ p_base (log p_base − log p_model) over
 * the whole vocabulary, and whether the two argmax tokens agree. All of it in
 * double precision through log-sum-exp, so a vocabulary of 262 144 logits of
 * any range neither overflows nor loses the small terms. The estimates follow
 * llama.cpp's perplexity tool (tools/perplexity): PPL = exp(mean NLL), its
 * standard error PPL · sqrt(var(NLL) / (n − 1)), and for the ratio of two
 * perplexities the covariance of the paired NLLs. */
#ifndef GM_PERPLEXITY_H
#define GM_PERPLEXITY_H

#include <stdint.h>

/* −log softmax(logits)[target] over V logits. */
double ppl_nll(const float *logits, int64_t V, int32_t target);

/* Sums over the scored positions; zero-initialise, then ppl_add each. */
typedef struct {
    int64_t count;                   /* positions scored */
    double nll, nll2;                /* the model's NLL, and its square */
    double base, base2, cross;       /* the base's NLL, its square, and NLL · base NLL */
    double kl, kl2;                  /* KL(base ‖ model), and its square */
    int64_t same_top;                /* positions where both argmaxes agree */
    double *kls;                     /* every position's KL (malloc'd), for the median and max */
    int64_t cap;
} ppl_stats;

/* One position: the model's logits, the base's (or NULL), the next token. */
void ppl_add(ppl_stats *s, const float *logits, const float *base, int64_t V, int32_t next);
void ppl_free(ppl_stats *s);

typedef struct {
    double value, se;                /* an estimate and its standard error */
} ppl_estimate;

ppl_estimate ppl_model(const ppl_stats *s);      /* the model's perplexity */
ppl_estimate ppl_base(const ppl_stats *s);       /* the base's */
ppl_estimate ppl_ratio(const ppl_stats *s);      /* PPL(model) / PPL(base) */
ppl_estimate ppl_mean_kl(const ppl_stats *s);
ppl_estimate ppl_top1(const ppl_stats *s);       /* the fraction of agreeing argmaxes */
double ppl_median_kl(ppl_stats *s);              /* sorts s->kls */
double ppl_max_kl(const ppl_stats *s);

#endif
