/* cli_number.c — the command line's numbers (cli_number.h): strtol and
 * strtod with every way they can stop short checked (no digits, text after
 * the number, overflow, a value outside the flag's range, a double that is
 * no finite float). */
#include "cli_number.h"

#include "runtime/common.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

/* The integer at s; *end is where it stops. -1 when there is none or it is
 * out of [min, max] or of int32's range. */
static int int_at(const char *s, long min, long max, const char **end, long *out) {
    char *stop;
    errno = 0;
    long v = strtol(s, &stop, 10);
    *end = stop;
    if (stop == s || errno || v < min || v > max || v < INT32_MIN || v > INT32_MAX) return -1;
    *out = v;
    return 0;
}

int cli_int(const char *s, long min, long max, int *out) {
    const char *end;
    long v;
    if (int_at(s, min, max, &end, &v) || *end) return -1;
    *out = (int)v;
    return 0;
}

int cli_float(const char *s, float *out) {
    char *end;
    double x = strtod(s, &end);
    if (end == s || *end || !isfinite(x) || fabs(x) > FLT_MAX) return -1;
    *out = (float)x;
    return 0;
}

int cli_int_list(const char *s, long min, long max, int32_t **out, int *n) {
    int cap = 16;
    *out = gm_malloc(cap * sizeof **out);
    *n = 0;
    while (*s) {
        const char *end;
        long v;
        if (int_at(s, min, max, &end, &v) || (*end && *end != ',')) break;
        if (*n == cap) *out = gm_realloc(*out, (size_t)(cap *= 2) * sizeof **out);
        (*out)[(*n)++] = (int32_t)v;
        s = *end ? end + 1 : end;
    }
    if (!*s && *n) return 0;
    free(*out);
    *out = NULL;
    *n = 0;
    return -1;
}
