/* test_bench_stats.c — the bench's statistics on synthetic timings: a known
 * effect is found, a null effect is called within noise at the stated rate
 * (95 %), median intervals have the coverage they claim, and the rotation
 * puts every row at every position and after every other row. Samples are throughputs with
 * multiplicative log-normal noise (a shared host's), drawn from a fixed
 * seed, so the test is repeatable. */
#include "compiler/bench_stats.h"
#include "testing.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static uint64_t state = 88172645463325252ull;

static double uniform(void) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return ((state >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void) { return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()); }

/* n paired samples: a around 100 tok/s, b = a · (1 + effect), each with its own noise of sigma
 * (log scale) and both with a shared drift of the repetition (which pairing cancels). */
static void draw(double *a, double *b, int n, double effect, double sigma, double drift) {
    for (int r = 0; r < n; r++) {
        double moment = drift * normal();
        a[r] = 100 * exp(moment + sigma * normal());
        b[r] = 100 * (1 + effect) * exp(moment + sigma * normal());
    }
}

static void test_known_effect(void) {
    double a[10], b[10];
    bs_effect e;
    draw(a, b, 10, 0.10, 0.03, 0.2); /* +10 % under 3 % noise and a 20 % drift between repetitions */
    bs_paired_effect(a, b, 10, &e);
    CU_ASSERT(e.significant);
    CU_ASSERT(e.lo > 0 && e.lo < 0.10 && e.hi > 0.10);
    CU_ASSERT(fabs(e.effect - 0.10) < 0.04);
    draw(a, b, 10, -0.10, 0.03, 0.2);
    bs_paired_effect(a, b, 10, &e);
    CU_ASSERT(e.significant && e.hi < 0);
}

/* Over 4000 null comparisons of 8 pairs, the share called within noise is 95 % give or take
 * sampling (its standard error is 0.34 %). */
static void test_null_rate(void) {
    int within = 0, trials = 4000;
    for (int t = 0; t < trials; t++) {
        double a[8], b[8];
        bs_effect e;
        draw(a, b, 8, 0, 0.05, 0.3);
        bs_paired_effect(a, b, 8, &e);
        within += !e.significant;
    }
    double rate = (double)within / trials;
    printf("\n  null effect within noise: %.3f", rate);
    CU_ASSERT(rate > 0.935 && rate < 0.965);
}

/* The median interval's stated coverage holds: the true median (100) inside it about as often. */
static void test_median_coverage(void) {
    int sizes[] = {5, 10, 20}, inside[3] = {0};
    double claimed[3];
    for (int s = 0; s < 3; s++)
        for (int t = 0; t < 4000; t++) {
            double x[20];
            bs_interval iv;
            for (int i = 0; i < sizes[s]; i++) x[i] = 100 * exp(0.05 * normal());
            bs_median_interval(x, sizes[s], &iv);
            inside[s] += iv.lo <= 100 && 100 <= iv.hi;
            claimed[s] = iv.coverage;
            CU_ASSERT(iv.lo <= iv.median && iv.median <= iv.hi);
        }
    CU_ASSERT_DOUBLE_EQUAL(claimed[0], 0.9375, 1e-9); /* the range of 5 */
    CU_ASSERT(claimed[1] >= 0.95 && claimed[2] >= 0.95);
    for (int s = 0; s < 3; s++) {
        printf("\n  median interval of %d: claims %.4f, holds %.4f", sizes[s], claimed[s], inside[s] / 4000.0);
        CU_ASSERT(fabs(inside[s] / 4000.0 - claimed[s]) < 0.015);
    }
}

static void test_rotation(void) {
    for (int n = 1; n <= 12; n++) {
        int seen[12][12] = {{0}};
        for (int rep = 0; rep < n; rep++) {
            int used[12] = {0};
            for (int slot = 0; slot < n; slot++) {
                int row = bs_rotation(rep, slot, n);
                CU_ASSERT_FATAL(row >= 0 && row < n);
                used[row]++, seen[row][slot]++;
            }
            for (int row = 0; row < n; row++) CU_ASSERT_EQUAL(used[row], 1); /* each repetition runs every row once */
        }
        for (int row = 0; row < n; row++)
            for (int slot = 0; slot < n; slot++) CU_ASSERT_EQUAL(seen[row][slot], 1);
    }
}

/* For an even number of rows, over n repetitions each row runs right after each other row once. */
static void test_neighbours(void) {
    for (int n = 2; n <= 12; n += 2) {
        int after[12][12] = {{0}};
        for (int rep = 0; rep < n; rep++)
            for (int slot = 1; slot < n; slot++) after[bs_rotation(rep, slot, n)][bs_rotation(rep, slot - 1, n)]++;
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) CU_ASSERT_EQUAL(after[a][b], a != b);
    }
}

static void test_t_quantiles(void) {
    CU_ASSERT_DOUBLE_EQUAL(bs_t975(1), 12.706, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(bs_t975(9), 2.262, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(bs_t975(40), 2.021, 2e-3);
    CU_ASSERT_DOUBLE_EQUAL(bs_t975(120), 1.980, 2e-3);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("bench statistics", NULL, NULL);
    CU_add_test(s, "a known effect is found", test_known_effect);
    CU_add_test(s, "a null effect is within noise 95 % of the time", test_null_rate);
    CU_add_test(s, "median intervals hold their coverage", test_median_coverage);
    CU_add_test(s, "rotation covers every position", test_rotation);
    CU_add_test(s, "each row follows every other once", test_neighbours);
    CU_add_test(s, "Student t quantiles", test_t_quantiles);
    return test_run_all();
}
