/* aot_lib.h — the C API of a model compiled with `gemmac compile --emit lib`
 * (implemented by aot_lib.c). The declarations live in aot_lib_api.h, which
 * cmd_compile.c also writes, with a comment naming the model, into the NAME.h
 * it makes beside NAME.a.
 *
 * Positions are absolute, as in runtime/engine.h: a call at pos appends its
 * tokens to the KV cache after the first pos ones, which it keeps. Calls
 * return 0, or -1 with the reason in gm_lib_error. */
#ifndef GM_AOT_LIB_H
#define GM_AOT_LIB_H

#include <stddef.h>
#include <stdint.h>

#include "aot_lib_api.h"

#endif
