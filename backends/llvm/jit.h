/* jit.h — compiles a set of kernels for this CPU, in process.
 *
 * All kernels go into one LLVM module, which is optimised once (O3 with the
 * host's target machine, so the vectoriser and the scheduler know the CPU),
 * lowered to object code and handed to ORC's LLJIT. libm and the C library
 * are found in the process. The object code is cached on disk (jit.c), so a
 * second engine for the same model skips IR building, O3 and codegen. The
 * code lives until lv_jit_free. */
#ifndef GM_LLVM_JIT_H
#define GM_LLVM_JIT_H

#include "backends/exec/kernel.h"

typedef struct lv_jit lv_jit;

/* Compiles ks[0..n), or loads them from the cache unless no_cache (which
 * neither reads nor writes it); NULL after reporting when LLVM fails. */
lv_jit *lv_jit_compile(const ex_kernel *ks, int n, int no_cache, gm_err *e);
ex_kernel_fn lv_jit_kernel(const lv_jit *j, int i);
int lv_jit_from_cache(const lv_jit *j);   /* 1 when the code came from the cache */
void lv_jit_free(lv_jit *j);

#endif
