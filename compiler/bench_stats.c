/* bench_stats.c — rotation, median intervals and paired effects for
 * `gemmac bench` (bench_stats.h says why each). */
#include "bench_stats.h"

#include <math.h>
#include <stdlib.h>

int bs_rotation(int rep, int slot, int n) {
    int base = slot % 2 ? (slot + 1) / 2 : (n - slot / 2) % n; /* 0, 1, n−1, 2, n−2, ... */
    return (base + rep) % n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* P(B <= j) for B ~ Binomial(n, 1/2). */
static double binomial_cdf(int n, int j) {
    double term = pow(0.5, n), sum = 0; /* C(n, 0) / 2^n */
    for (int i = 0; i <= j; i++) {
        sum += term;
        term *= (double)(n - i) / (i + 1);
    }
    return sum;
}

void bs_median_interval(double *x, int n, bs_interval *out) {
    qsort(x, n, sizeof *x, cmp_double);
    out->median = n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
    int k = 1; /* [x(k), x(n + 1 - k)] covers the median with probability 1 − 2 P(B <= k − 1) */
    while (2 * (k + 1) <= n && 1 - 2 * binomial_cdf(n, k) >= 0.95) k++;
    out->lo = x[k - 1], out->hi = x[n - k];
    out->coverage = 1 - 2 * binomial_cdf(n, k - 1);
}

double bs_t975(int df) {
    static const double t[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                               2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df <= 30) return t[df - 1];
    double z = 1.959964, z3 = z * z * z, z5 = z3 * z * z; /* Cornish-Fisher, within 1e-3 beyond 30 */
    return z + (z3 + z) / (4.0 * df) + (5 * z5 + 16 * z3 + 3 * z) / (96.0 * df * df);
}

void bs_paired_effect(const double *a, const double *b, int n, bs_effect *out) {
    double mean = 0, ss = 0;
    for (int r = 0; r < n; r++) mean += log(b[r] / a[r]);
    mean /= n;
    for (int r = 0; r < n; r++) {
        double d = log(b[r] / a[r]) - mean;
        ss += d * d;
    }
    double half = bs_t975(n - 1) * sqrt(ss / (n - 1) / n);
    out->effect = exp(mean) - 1;
    out->lo = exp(mean - half) - 1, out->hi = exp(mean + half) - 1;
    out->significant = out->lo > 0 || out->hi < 0;
}
