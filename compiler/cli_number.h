/* cli_number.h — the numbers of gemmac's command line (--temp, --top-k,
 * --threads, --context, --tokens 2,17,5, ...), read strictly: the whole
 * value must be the number, within the flag's range. Each command words its
 * own message; these only say yes or no. No dependency beyond libc and
 * runtime/common.c, so tests/fuzz/fuzz_cli_number.c links them alone. */
#ifndef GM_CLI_NUMBER_H
#define GM_CLI_NUMBER_H

#include <stdint.h>

/* A decimal integer (strtol's syntax: leading blanks and a sign allowed),
 * nothing after it, in [min, max]: 0 with *out set, else -1. */
int cli_int(const char *s, long min, long max, int *out);

/* A decimal or hexadecimal floating-point number (strtod's syntax), nothing
 * after it, finite as a float: 0 with *out set, else -1. */
int cli_float(const char *s, float *out);

/* Comma-separated cli_int's in [min, max] (a trailing comma is allowed);
 * at least one. 0 with *out malloc'd and *n entries, else -1 with *out NULL. */
int cli_int_list(const char *s, long min, long max, int32_t **out, int *n);

#endif
