/* codegen.h — what the JIT (jit.c, which defines these) and the AOT
 * compiler (aot.c) share: kernel symbols, building the optimised module,
 * and LLVM errors as gm_err. Needs LLVM's headers, unlike jit.h. */
#ifndef GM_LLVM_CODEGEN_H
#define GM_LLVM_CODEGEN_H

#include "backends/exec/kernel.h"
#include "target.h"

#include <llvm-c/Error.h>

/* The optimised module of ks[0..n) for t, each kernel emitted by emit under
 * its ex_kernel_symbol (NULL after reporting), and an LLVM error moved into
 * e (returns -1; 0 when err is success). */
typedef struct lv_emit lv_emit;
typedef void lv_kernel_emitter(lv_emit *m, const ex_kernel *k, const char *name);
LLVMModuleRef lv_module_build(LLVMContextRef ctx, const lv_target *t, LLVMTargetMachineRef tm, const ex_kernel *ks,
                              int n, lv_kernel_emitter *emit, gm_err *e);
int lv_llvm_fail(LLVMErrorRef err, const char *what, gm_err *e);

#endif
