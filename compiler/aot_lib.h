/* aot_lib.h — the C API of a model compiled with `gemmac compile --emit lib`
 * (implemented by aot_lib.c). cmd_compile.c writes these declarations, with
 * a comment naming the model, into the NAME.h it makes beside NAME.a: keep
 * the two in step.
 *
 * Positions are absolute, as in runtime/engine.h: a call at pos appends its
 * tokens to the KV cache after the first pos ones, which it keeps. Calls
 * return 0, or -1 with the reason in gm_lib_error. */
#ifndef GM_AOT_LIB_H
#define GM_AOT_LIB_H

#include <stddef.h>
#include <stdint.h>

typedef struct gm_lib_model gm_lib_model;

gm_lib_model *gm_lib_open(const char *weights, int context, char *err, size_t err_len);
int gm_lib_vocab(const gm_lib_model *m);
int gm_lib_context(const gm_lib_model *m);
int gm_lib_prefill(gm_lib_model *m, const int32_t *tokens, int n, int pos, float *logits);
int gm_lib_decode(gm_lib_model *m, int32_t token, int pos, float *logits);
const char *gm_lib_error(const gm_lib_model *m);
const char *gm_lib_manifest(void);
void gm_lib_close(gm_lib_model *m);

#endif
