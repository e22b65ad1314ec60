/* emit.h — the few IR-building helpers every kernel emitter uses, so that an
 * emitter reads like the loop nest it builds.
 *
 * All indices are i64 element offsets. Float values are either scalars
 * (width 1) or <w x float> vectors; the arithmetic helpers take both and set
 * the fast-math flags the reference tolerance allows (reassoc, so reductions
 * may be reordered and vectorised; contract, so a·b + c becomes an FMA).
 * Loads convert weights from their checkpoint dtype to f32 on the way in.
 *
 * lv_loop is "for i in [lo, hi) step s" with phis: the induction variable
 * and any carried values (accumulators). lv_span walks a row of constant
 * length in vector pieces: a loop of full vectors, then the remainder as
 * halving widths, so no size needs to be a multiple of the vector width. A
 * reduction may unroll the loop with one accumulator per copy, so that the
 * FMAs of one long dot product do not wait on each other. */
#ifndef GM_LLVM_EMIT_H
#define GM_LLVM_EMIT_H

#include "target.h"

#include <llvm-c/Core.h>

#define LV_MAX_CARRY 40 /* the nvptx tensor-core loop: 32 accumulators and 4 chunks fetched ahead */

typedef struct lv_emit {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    const lv_target *target;
    LLVMValueRef fn, call;   /* the kernel being emitted and its ex_call * argument */
    const char *name;        /* its symbol, a prefix for its globals */
    LLVMTypeRef f32, f64, f16, i16, i32, i64, ptr, void_t;
} lv_emit;

void lv_emit_init(lv_emit *m, LLVMModuleRef mod, const lv_target *t);
void lv_emit_dispose(lv_emit *m);

/* A kernel `void name(const ex_call *)`; the builder is left in its entry block. */
void lv_kernel_begin(lv_emit *m, const char *name);
void lv_kernel_end(lv_emit *m);
/* The field at byte offset `offset` of the kernel's ex_call; a pointer one, an i64 one. */
LLVMValueRef lv_field(lv_emit *m, size_t offset, LLVMTypeRef ty);
LLVMValueRef lv_field_ptr(lv_emit *m, size_t offset);
LLVMValueRef lv_field_i64(lv_emit *m, size_t offset);
/* Its input i, its output and its rows T: the fields every kernel reads. */
LLVMValueRef lv_call_in(lv_emit *m, int i);
LLVMValueRef lv_call_out(lv_emit *m);
LLVMValueRef lv_call_T(lv_emit *m);

LLVMValueRef lv_int(lv_emit *m, int64_t v);
LLVMValueRef lv_real(lv_emit *m, double v, int w);          /* f32 splat of width w */
LLVMValueRef lv_add(lv_emit *m, LLVMValueRef a, LLVMValueRef b); /* i64, nsw */
LLVMValueRef lv_sub(lv_emit *m, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef lv_mul(lv_emit *m, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef lv_muli(lv_emit *m, LLVMValueRef a, int64_t b);
LLVMValueRef lv_addi(lv_emit *m, LLVMValueRef a, int64_t b);

LLVMValueRef lv_fadd(lv_emit *m, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef lv_fsub(lv_emit *m, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef lv_fmul(lv_emit *m, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef lv_fdiv(lv_emit *m, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef lv_splat(lv_emit *m, LLVMValueRef scalar, int w);
LLVMValueRef lv_hsum(lv_emit *m, LLVMValueRef v);            /* sum of the lanes */
LLVMValueRef lv_sqrt(lv_emit *m, LLVMValueRef x);           /* llvm.sqrt, any float type */
/* a · b + c in one rounding, where it stands (lv_fadd's sums may be reassociated). */
LLVMValueRef lv_fma(lv_emit *m, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c);
/* e^x and tanh(x) of f32 scalars or vectors, inline (emit.c says how; within
 * 2 ulp of libm's expf and tanhf), so the loops around them vectorise. */
LLVMValueRef lv_exp(lv_emit *m, LLVMValueRef x);
LLVMValueRef lv_tanh(lv_emit *m, LLVMValueRef x);
/* A hint to bring the cache line of base[idx] (dtype dt) into L2; never faults. */
void lv_prefetch_l2(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, gm_dtype dt);
/* A call to the LLVM intrinsic `name` with its n_over overloaded types. */
LLVMValueRef lv_intrinsic(lv_emit *m, const char *name, LLVMTypeRef *overloads, size_t n_over, LLVMValueRef *args,
                          unsigned n);
/* A call to the libm function `name` of x's type (float or double). */
LLVMValueRef lv_libm(lv_emit *m, const char *name, LLVMValueRef x);

/* w elements of dtype dt at base[idx], as f32. */
LLVMValueRef lv_load(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, gm_dtype dt, int w);
/* The same from an address known to be a multiple of align bytes (a GPU's wide loads). */
LLVMValueRef lv_load_aligned(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, gm_dtype dt, int w, unsigned align);
/* Stores the f32 scalar or vector v at base[idx]. */
void lv_store(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v);
/* The same for f32 vectors, touching only the lanes where mask (<w x i1>) is set. */
LLVMValueRef lv_load_masked(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef mask, int w);
void lv_store_masked(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v, LLVMValueRef mask);
/* The LLVM type one element of dtype dt is stored as (bf16 as i16). */
LLVMTypeRef lv_elem_type(lv_emit *m, gm_dtype dt);

typedef struct {
    LLVMValueRef i;                 /* the induction variable; after lv_loop_end, where it stopped */
    LLVMValueRef v[LV_MAX_CARRY];   /* carried values: this iteration's; after lv_loop_end, the last */
    int n;
    int64_t step;
    LLVMBasicBlockRef head, exit;
} lv_loop;

/* Opens "for (i = lo; i + step <= hi; i += step)" carrying n values from init. */
void lv_loop_begin(lv_emit *m, lv_loop *l, LLVMValueRef lo, LLVMValueRef hi, int64_t step, int n,
                   const LLVMValueRef *init);
/* Closes it with the carried values of the next iteration (NULL when n = 0). */
void lv_loop_end(lv_emit *m, lv_loop *l, const LLVMValueRef *next);

/* "if (cond) {": the builder moves into the taken block; lv_if_end(done) is
 * the "}". "} else {" between them: done = lv_else(m, done), whose result
 * lv_if_end takes instead. */
LLVMBasicBlockRef lv_if_begin(lv_emit *m, LLVMValueRef cond);
LLVMBasicBlockRef lv_else(lv_emit *m, LLVMBasicBlockRef otherwise);
void lv_if_end(lv_emit *m, LLVMBasicBlockRef done);

/* Emits body(at, w) for pieces [at, at+w) covering [0, n), the loop over
 * full vectors unrolled `unroll` times. With n_sums > 0 the body leaves
 * n_sums terms of width w in `terms`, and sums[] receives their totals over
 * the row (n_sums · unroll <= LV_MAX_CARRY). */
typedef void lv_span_fn(lv_emit *m, void *ctx, LLVMValueRef at, int w, LLVMValueRef *terms);
void lv_span(lv_emit *m, int64_t n, int unroll, int n_sums, lv_span_fn *body, void *ctx, LLVMValueRef *sums);

/* The value of elementwise op k (scale, gelu_tanh, geglu, mul, add,
 * softcap, and the gradients gelu_tanh_dx and softcap_dx) at x (and b for
 * two inputs), width w; aborts on any other op.
 * lv_softcap: cap · tanh(x / cap), for the op and the fused epilogues. */
typedef struct ex_kernel ex_kernel;
LLVMValueRef lv_elementwise_value(lv_emit *m, const ex_kernel *k, LLVMValueRef x, LLVMValueRef b, int w);
LLVMValueRef lv_softcap(lv_emit *m, LLVMValueRef x, double cap, int w);
/* The softcap's derivative from its output y: 1 − (y / cap)² (softcap_dx, attention's gradients). */
LLVMValueRef lv_softcap_slope(lv_emit *m, LLVMValueRef y, double cap, int w);

/* Emits the kernel k as the function `name` (kernels.c); the matmul family's
 * body comes from matmul.c. */
void lv_emit_kernel(lv_emit *m, const ex_kernel *k, const char *name);
void lv_emit_matmul(lv_emit *m, const ex_kernel *k);
/* The training kernels of the matmuls' and embed's gradients (matmul_grad.c:
 * matmul_dx, matmul_dw, embed_dw), of attention's (attention_grad.c:
 * attention_dq, _dk, _dv), and the loss and rms_norm's (train_kernels.c:
 * cross_entropy, cross_entropy_dx, rms_norm_dx, rms_norm_dw). */
void lv_emit_matmul_grad(lv_emit *m, const ex_kernel *k);
void lv_emit_attention_grad(lv_emit *m, const ex_kernel *k);
void lv_emit_train_kernel(lv_emit *m, const ex_kernel *k);

/* RMS-normalised rows of G columns (kernels.c), shared by rms_norm, norm_add
 * and norm_matmul's prologue: y = x · rsqrt(mean(x²) + eps) · (w + add_one),
 * plus r when r is not NULL, for `rows` rows. */
typedef struct {
    LLVMValueRef x, w, r, y;
    gm_dtype wtype;
    int64_t G;
    double eps, add_one;
} lv_norm_rows;
void lv_emit_norm_rows(lv_emit *m, const lv_norm_rows *n, LLVMValueRef rows);

#endif
