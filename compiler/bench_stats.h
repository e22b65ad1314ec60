/* bench_stats.h — the statistics behind `gemmac bench`, apart from the
 * timing so that tests can feed them synthetic samples.
 *
 * A shared host drifts: its read bandwidth can halve within a run. So the
 * bench runs every configuration once per repetition, in an order rotated
 * from one repetition to the next (drift falls on all rows alike), and
 * reports each row's median with a distribution-free 95 % interval, and
 * each effect (one row against another) from the pairs of samples taken in
 * the same repetition: the mean log ratio with a Student t interval, so a
 * slow moment of the host, which slows both rows of a pair, cancels. An
 * effect whose interval contains zero is within noise. */
#ifndef GM_BENCH_STATS_H
#define GM_BENCH_STATS_H

/* Which row runs at position `slot` of repetition `rep` (0-based) among n
 * rows: repetition rep runs the order 0, 1, n−1, 2, n−2, ... rotated by rep
 * (a Williams design), so over n repetitions every row runs at every
 * position once and, for even n, right after every other row once: what a
 * row leaves in the caches falls on all rows alike. (Rotating 0, 1, 2, ...
 * instead ran the A/A row right after its twin every time, and the real
 * 270M's A/A prefill came out 5 % faster, [+0.2, +9.9].) */
int bs_rotation(int rep, int slot, int n);

typedef struct {
    double median;
    double lo, hi;     /* order statistics x(k) and x(n + 1 - k) */
    double coverage;   /* the probability that [lo, hi] holds the true median */
} bs_interval;

/* The median of x[0..n) (n >= 1; sorted in place) and the widest-k order-
 * statistic interval whose coverage (binomial, p = 1/2) is at least 95 %;
 * below 6 samples none reaches it, and the range is given with its own
 * coverage (5 samples: 93.75 %). */
void bs_median_interval(double *x, int n, bs_interval *out);

typedef struct {
    double effect;     /* b / a − 1, from the mean log ratio */
    double lo, hi;     /* its 95 % interval */
    int significant;   /* the interval excludes 0 */
} bs_effect;

/* The effect of b over a from paired samples a[r], b[r] (the same
 * repetition), n >= 2, every sample > 0. */
void bs_paired_effect(const double *a, const double *b, int n, bs_effect *out);

/* Student's t at 97.5 % for df degrees of freedom (df >= 1). */
double bs_t975(int df);

#endif
