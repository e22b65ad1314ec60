/* chrf.h — chrF (Popović, 2015) as sacreBLEU 2 computes it by default:
 * character n-grams of orders 1 to 6 with whitespace removed, no word
 * n-grams, β = 2, and a corpus score from statistics summed over segments
 * (not a mean of segment scores). tests/test_eval.c checks it against
 * sacreBLEU's own values (tests/golden/chrf). */
#ifndef GM_CHRF_H
#define GM_CHRF_H

#include <stdint.h>

#define CHRF_ORDER 6
#define CHRF_STATS (3 * CHRF_ORDER) /* per order: hypothesis n-grams, reference n-grams, matches */

/* Adds the statistics of one hypothesis against its reference (UTF-8) to stats. */
void chrf_add(const char *hyp, const char *ref, int64_t stats[CHRF_STATS]);
/* The chrF of summed statistics, 0 to 100. */
double chrf_score(const int64_t stats[CHRF_STATS]);

#endif
