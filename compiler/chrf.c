/* chrf.c — chrF over code points (chrf.h). A segment is decoded from UTF-8
 * and its whitespace dropped (Python's str.split() notion of whitespace, as
 * sacreBLEU joins the split words); each n-gram of the hypothesis is matched
 * against the reference's, counts clipped. Segments are short (a sentence),
 * so the counting is the plain quadratic one. */
#include "chrf.h"

#include <stdlib.h>
#include <string.h>

/* Python's str.isspace() for the code points text holds. */
static int is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* The code points of s, whitespace left out; *n gets their count (malloc'd).
 * A byte that starts no valid sequence stands for itself. */
static uint32_t *code_points(const char *s, int *n) {
    const unsigned char *p = (const unsigned char *)s;
    uint32_t *out = malloc((strlen(s) + 1) * sizeof *out);
    *n = 0;
    while (*p) {
        uint32_t c = *p;
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        for (int k = 1; k < len; k++)
            if ((p[k] & 0xc0) != 0x80) len = 1;
        if (len > 1) {
            c &= 0x7f >> len;
            for (int k = 1; k < len; k++) c = c << 6 | (p[k] & 0x3f);
        }
        p += len;
        if (!is_space(c)) out[(*n)++] = c;
    }
    return out;
}

static int count(const uint32_t *text, int len, const uint32_t *gram, int n) {
    int c = 0;
    for (int i = 0; i + n <= len; i++) c += !memcmp(text + i, gram, n * sizeof *gram);
    return c;
}

void chrf_add(const char *hyp, const char *ref, int64_t stats[CHRF_STATS]) {
    int nh, nr;
    uint32_t *h = code_points(hyp, &nh), *r = code_points(ref, &nr);
    for (int n = 1; n <= CHRF_ORDER; n++) {
        int64_t hyp_grams = nh >= n ? nh - n + 1 : 0, ref_grams = nr >= n ? nr - n + 1 : 0, match = 0;
        for (int i = 0; i < hyp_grams; i++) {
            if (count(h, i + n - 1, h + i, n)) continue; /* counted at its first place */
            int in_hyp = count(h, nh, h + i, n), in_ref = count(r, nr, h + i, n);
            match += in_hyp < in_ref ? in_hyp : in_ref;
        }
        int64_t *s = stats + 3 * (n - 1);
        s[0] += ref_grams ? hyp_grams : 0; /* as sacreBLEU: no hits counted where the reference has no n-gram */
        s[1] += ref_grams;
        s[2] += match;
    }
    free(h);
    free(r);
}

double chrf_score(const int64_t stats[CHRF_STATS]) {
    const double beta2 = 4;
    double prec = 0, rec = 0;
    int effective = 0;
    for (int n = 0; n < CHRF_ORDER; n++) {
        const int64_t *s = stats + 3 * n;
        if (s[0] > 0 && s[1] > 0) prec += (double)s[2] / s[0], rec += (double)s[2] / s[1], effective++;
    }
    if (!effective) return 0;
    prec /= effective, rec /= effective;
    return prec + rec > 0 ? 100 * (1 + beta2) * prec * rec / (beta2 * prec + rec) : 0;
}
