/* report.h — `gemmac compile --report`: the kernels of a model, what each
 * absorbed, and the bytes each reads and writes (see report.c). */
#ifndef GM_REPORT_H
#define GM_REPORT_H

#include "model.h"

#include <stdio.h>

void gm_report(const gm_model *m, FILE *out);

#endif
