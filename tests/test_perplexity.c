/* test_perplexity.c — the arithmetic of `gemmac perplexity` on hand-made
 * logits whose answers are known in closed form: the NLL of a two-way
 * softmax, its invariance to a shift of 1000 (log-sum-exp, no overflow), the
 * KL divergence of two small distributions, top-1 agreement with ties, and
 * the estimates (exp of the mean NLL with llama.cpp's standard error, the
 * ratio's covariance, the median and max). */
#include "compiler/perplexity.h"
#include "testing.h"

#include <math.h>

static void test_nll(void) {
    float uniform[4] = {0, 0, 0, 0}, two[2] = {0, (float)log(3)}, shifted[2] = {1000, 1000 + (float)log(3)};
    CU_ASSERT_DOUBLE_EQUAL(ppl_nll(uniform, 4, 2), log(4), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ppl_nll(two, 2, 1), log(4.0 / 3), 1e-7); /* p = 3/4 */
    CU_ASSERT_DOUBLE_EQUAL(ppl_nll(two, 2, 0), log(4), 1e-7);       /* p = 1/4 */
    CU_ASSERT_DOUBLE_EQUAL(ppl_nll(shifted, 2, 1), log(4.0 / 3), 1e-4); /* float spacing at 1000 is 6e-5 */
    CU_ASSERT(isfinite(ppl_nll(shifted, 2, 0)));
}

/* base p = (1/2, 1/2), model q = (1/4, 3/4): KL(p || q) = 1/2 log 2 + 1/2 log 2/3 = 1/2 log 4/3. */
static void test_kl(void) {
    float base[2] = {0, 0}, model[2] = {0, (float)log(3)};
    ppl_stats s = {0};
    ppl_add(&s, model, base, 2, 0);
    CU_ASSERT_DOUBLE_EQUAL(ppl_mean_kl(&s).value, 0.5 * log(4.0 / 3), 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(ppl_base(&s).value, 2, 1e-12);     /* base NLL log 2 */
    CU_ASSERT_DOUBLE_EQUAL(ppl_model(&s).value, 4, 1e-6);     /* model NLL log 4 */
    CU_ASSERT_DOUBLE_EQUAL(ppl_top1(&s).value, 0, 0);         /* a tie goes to id 0; the model picks 1 */
    ppl_add(&s, base, base, 2, 1);                            /* identical rows: KL exactly 0 */
    CU_ASSERT_DOUBLE_EQUAL(ppl_max_kl(&s), 0.5 * log(4.0 / 3), 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(ppl_median_kl(&s), 0.25 * log(4.0 / 3), 1e-7); /* the mean of the middle two */
    CU_ASSERT_DOUBLE_EQUAL(ppl_top1(&s).value, 0.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(ppl_top1(&s).se, 0.5, 1e-12);     /* sqrt(p (1 − p) / (n − 1)) */
    ppl_free(&s);
}

/* NLLs log(1 + e^x) for x = 0, 1, 2, 3 (target 0 of logits {0, x}):
 * PPL = exp(mean), ± PPL · sqrt(var / (n − 1)) with the variance over n. */
static void test_estimates(void) {
    ppl_stats s = {0};
    double nll[4], mean = 0, var = 0;
    for (int i = 0; i < 4; i++) {
        float row[2] = {0, (float)i};
        ppl_add(&s, row, row, 2, 0);
        nll[i] = log1p(exp((float)i));
        mean += nll[i] / 4;
    }
    for (int i = 0; i < 4; i++) var += (nll[i] - mean) * (nll[i] - mean) / 4;
    ppl_estimate p = ppl_model(&s), q = ppl_ratio(&s);
    CU_ASSERT_DOUBLE_EQUAL(p.value, exp(mean), 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(p.se, exp(mean) * sqrt(var / 3), 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(ppl_base(&s).value, p.value, 0);
    CU_ASSERT_DOUBLE_EQUAL(q.value, 1, 0); /* the same model: the covariance cancels both variances */
    CU_ASSERT(q.se < 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(ppl_mean_kl(&s).value, 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(ppl_top1(&s).value, 1, 0);
    ppl_free(&s);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("perplexity", NULL, NULL);
    CU_add_test(s, "NLL by log-sum-exp", test_nll);
    CU_add_test(s, "KL divergence and top-1", test_kl);
    CU_add_test(s, "estimates and their errors", test_estimates);
    return test_run_all();
}
