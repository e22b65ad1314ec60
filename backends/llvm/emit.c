/* emit.c — IR-building helpers for the kernel emitters (see emit.h). */
#include "emit.h"

#include "backends/exec/kernel.h"

#include <math.h>
#include <stddef.h>

void lv_emit_init(lv_emit *m, LLVMModuleRef mod, const lv_target *t) {
    memset(m, 0, sizeof *m);
    m->ctx = LLVMGetModuleContext(mod);
    m->mod = mod;
    m->b = LLVMCreateBuilderInContext(m->ctx);
    m->target = t;
    m->f32 = LLVMFloatTypeInContext(m->ctx);
    m->f64 = LLVMDoubleTypeInContext(m->ctx);
    m->f16 = LLVMHalfTypeInContext(m->ctx);
    m->i16 = LLVMInt16TypeInContext(m->ctx);
    m->i32 = LLVMInt32TypeInContext(m->ctx);
    m->i64 = LLVMInt64TypeInContext(m->ctx);
    m->ptr = LLVMPointerTypeInContext(m->ctx, 0);
    m->void_t = LLVMVoidTypeInContext(m->ctx);
}

void lv_emit_dispose(lv_emit *m) { LLVMDisposeBuilder(m->b); }

static void add_attr(lv_emit *m, LLVMValueRef fn, const char *key, const char *value) {
    LLVMAttributeRef a = LLVMCreateStringAttribute(m->ctx, key, (unsigned)strlen(key), value, (unsigned)strlen(value));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, a);
}

static void add_enum_attr(lv_emit *m, LLVMValueRef fn, unsigned index, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, index, LLVMCreateEnumAttribute(m->ctx, kind, 0));
}

void lv_kernel_begin(lv_emit *m, const char *name) {
    LLVMTypeRef ty = LLVMFunctionType(m->void_t, &m->ptr, 1, 0);
    m->name = name;
    m->fn = LLVMAddFunction(m->mod, name, ty);
    m->call = LLVMGetParam(m->fn, 0);
    add_enum_attr(m, m->fn, LLVMAttributeFunctionIndex, "nounwind");
    add_enum_attr(m, m->fn, 1, "nocapture");
    add_enum_attr(m, m->fn, 1, "readonly");
    if (m->target->prefer_width) add_attr(m, m->fn, "prefer-vector-width", m->target->prefer_width);
    LLVMPositionBuilderAtEnd(m->b, LLVMAppendBasicBlockInContext(m->ctx, m->fn, "entry"));
}

void lv_kernel_end(lv_emit *m) { LLVMBuildRetVoid(m->b); }

LLVMValueRef lv_field(lv_emit *m, size_t offset, LLVMTypeRef ty) {
    LLVMValueRef at = lv_int(m, (int64_t)offset);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(m->b, LLVMInt8TypeInContext(m->ctx), m->call, &at, 1, "");
    return LLVMBuildLoad2(m->b, ty, p, "");
}

LLVMValueRef lv_field_ptr(lv_emit *m, size_t offset) { return lv_field(m, offset, m->ptr); }
LLVMValueRef lv_field_i64(lv_emit *m, size_t offset) { return lv_field(m, offset, m->i64); }

LLVMValueRef lv_int(lv_emit *m, int64_t v) { return LLVMConstInt(m->i64, (unsigned long long)v, 1); }

LLVMValueRef lv_real(lv_emit *m, double v, int w) { return lv_splat(m, LLVMConstReal(m->f32, v), w); }

LLVMValueRef lv_add(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildNSWAdd(m->b, a, b, ""); }
LLVMValueRef lv_sub(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildNSWSub(m->b, a, b, ""); }
LLVMValueRef lv_mul(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildNSWMul(m->b, a, b, ""); }
LLVMValueRef lv_muli(lv_emit *m, LLVMValueRef a, int64_t b) { return lv_mul(m, a, lv_int(m, b)); }
LLVMValueRef lv_addi(lv_emit *m, LLVMValueRef a, int64_t b) { return lv_add(m, a, lv_int(m, b)); }

static LLVMValueRef fast(LLVMValueRef v) {
    if (LLVMIsAInstruction(v) && LLVMCanValueUseFastMathFlags(v))
        LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
    return v;
}

LLVMValueRef lv_fadd(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return fast(LLVMBuildFAdd(m->b, a, b, "")); }
LLVMValueRef lv_fsub(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return fast(LLVMBuildFSub(m->b, a, b, "")); }
LLVMValueRef lv_fmul(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return fast(LLVMBuildFMul(m->b, a, b, "")); }
LLVMValueRef lv_fdiv(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return fast(LLVMBuildFDiv(m->b, a, b, "")); }

LLVMValueRef lv_splat(lv_emit *m, LLVMValueRef scalar, int w) {
    if (w == 1) return scalar;
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(scalar), (unsigned)w);
    LLVMValueRef one = LLVMBuildInsertElement(m->b, LLVMGetPoison(vt), scalar, LLVMConstInt(m->i32, 0, 0), "");
    LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(m->i32, (unsigned)w));
    return LLVMBuildShuffleVector(m->b, one, LLVMGetPoison(vt), zeros, "");
}

LLVMValueRef lv_intrinsic(lv_emit *m, const char *name, LLVMTypeRef *overloads, size_t n_over,
                                 LLVMValueRef *args, unsigned n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(m->mod, id, overloads, n_over);
    LLVMTypeRef ty = LLVMIntrinsicGetType(m->ctx, id, overloads, n_over);
    return LLVMBuildCall2(m->b, ty, fn, args, n, "");
}

static LLVMValueRef intrinsic(lv_emit *m, const char *name, LLVMTypeRef overload, LLVMValueRef *args, unsigned n) {
    return lv_intrinsic(m, name, &overload, 1, args, n);
}

LLVMValueRef lv_hsum(lv_emit *m, LLVMValueRef v) {
    if (LLVMGetTypeKind(LLVMTypeOf(v)) != LLVMVectorTypeKind) return v;
    LLVMValueRef args[2] = {LLVMConstReal(m->f32, -0.0), v};
    return fast(intrinsic(m, "llvm.vector.reduce.fadd", LLVMTypeOf(v), args, 2));
}

LLVMValueRef lv_sqrt(lv_emit *m, LLVMValueRef x) { return intrinsic(m, "llvm.sqrt", LLVMTypeOf(x), &x, 1); }

LLVMValueRef lv_fma(lv_emit *m, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMValueRef args[3] = {a, b, c};
    return intrinsic(m, "llvm.fma", LLVMTypeOf(a), args, 3);
}

void lv_prefetch_l2(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, gm_dtype dt) {
    LLVMValueRef args[4] = {LLVMBuildInBoundsGEP2(m->b, lv_elem_type(m, dt), base, &idx, 1, ""),
                            LLVMConstInt(m->i32, 0, 0), LLVMConstInt(m->i32, 1, 0), LLVMConstInt(m->i32, 1, 0)};
    intrinsic(m, "llvm.prefetch", m->ptr, args, 4);
}

/* ---- e^x and tanh in straight-line code, so they vectorise; built
 * without fast-math flags, since reassociation would undo the split of ln2. */

static int width_of(LLVMValueRef x) {
    LLVMTypeRef t = LLVMTypeOf(x);
    return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? (int)LLVMGetVectorSize(t) : 1;
}


/* c[0]·z^(n-1) + ... + c[n-1], by Horner with FMAs. */
static LLVMValueRef polynomial(lv_emit *m, LLVMValueRef z, const double *c, int n) {
    LLVMValueRef p = lv_real(m, c[0], width_of(z));
    for (int i = 1; i < n; i++) p = lv_fma(m, p, z, lv_real(m, c[i], width_of(z)));
    return p;
}

static LLVMValueRef clamp(lv_emit *m, LLVMValueRef x, double lo, double hi) {
    LLVMValueRef l = lv_real(m, lo, width_of(x)), h = lv_real(m, hi, width_of(x));
    x = LLVMBuildSelect(m->b, LLVMBuildFCmp(m->b, LLVMRealOLT, x, l, ""), l, x, "");
    return LLVMBuildSelect(m->b, LLVMBuildFCmp(m->b, LLVMRealOGT, x, h, ""), h, x, "");
}

/* x = n·ln2 + r, |r| ≤ ln2/2, with ln2 in two parts so that n·ln2 is exact;
 * e^r = 1 + r + r²·P(r) with Cephes' expf coefficients (about 1 ulp); 2^n
 * made in the exponent bits. x is clamped to [-88, 88]: from -88 down the
 * result is 0 (e^-inf of a masked score must be), up top it stays finite. */
LLVMValueRef lv_exp(lv_emit *m, LLVMValueRef x) {
    static const double p[] = {1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                               4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1};
    int w = width_of(x);
    x = clamp(m, x, -88, 88);
    LLVMValueRef scaled = LLVMBuildFMul(m->b, x, lv_real(m, 1.44269504088896341, w), "");
    LLVMValueRef n = intrinsic(m, "llvm.rint", LLVMTypeOf(x), &scaled, 1);
    LLVMValueRef r = lv_fma(m, n, lv_real(m, -0.693359375, w), x);
    r = lv_fma(m, n, lv_real(m, 2.12194440e-4, w), r);
    LLVMValueRef r2 = LLVMBuildFMul(m->b, r, r, "");
    LLVMValueRef er = lv_fma(m, polynomial(m, r, p, 6), r2, LLVMBuildFAdd(m->b, r, lv_real(m, 1, w), ""));
    LLVMTypeRef it = w == 1 ? m->i32 : LLVMVectorType(m->i32, (unsigned)w);
    LLVMValueRef biased = LLVMBuildAdd(m->b, LLVMBuildFPToSI(m->b, n, it, ""), lv_splat(m, LLVMConstInt(m->i32, 127, 0), w), "");
    LLVMValueRef bits = LLVMBuildShl(m->b, biased, lv_splat(m, LLVMConstInt(m->i32, 23, 0), w), "");
    return LLVMBuildFMul(m->b, er, LLVMBuildBitCast(m->b, bits, LLVMTypeOf(x), ""), "");
}

/* tanh: for |x| < 0.625 an odd polynomial, x + x³·P(x²) (Cephes' tanhf
 * coefficients), where 1 − 2/(e^2|x| + 1) would cancel; beyond, that with
 * x's sign. */
LLVMValueRef lv_tanh(lv_emit *m, LLVMValueRef x) {
    static const double p[] = {-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                               1.33314422036e-1, -3.33332819422e-1};
    int w = width_of(x);
    LLVMValueRef a = intrinsic(m, "llvm.fabs", LLVMTypeOf(x), &x, 1);
    LLVMValueRef e = lv_exp(m, LLVMBuildFAdd(m->b, a, a, ""));
    LLVMValueRef big = LLVMBuildFSub(m->b, lv_real(m, 1, w),
                                     LLVMBuildFDiv(m->b, lv_real(m, 2, w), LLVMBuildFAdd(m->b, e, lv_real(m, 1, w), ""), ""), "");
    LLVMValueRef args[2] = {big, x};
    big = intrinsic(m, "llvm.copysign", LLVMTypeOf(x), args, 2);
    LLVMValueRef z = LLVMBuildFMul(m->b, x, x, "");
    LLVMValueRef small = lv_fma(m, LLVMBuildFMul(m->b, polynomial(m, z, p, 5), z, ""), x, x);
    return LLVMBuildSelect(m->b, LLVMBuildFCmp(m->b, LLVMRealOLT, a, lv_real(m, 0.625, w), ""), small, big, "");
}

LLVMValueRef lv_libm(lv_emit *m, const char *name, LLVMValueRef x) {
    LLVMTypeRef t = LLVMTypeOf(x), ty = LLVMFunctionType(t, &t, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(m->mod, name);
    if (!fn) {
        fn = LLVMAddFunction(m->mod, name, ty);
        add_enum_attr(m, fn, LLVMAttributeFunctionIndex, "nounwind");
    }
    return LLVMBuildCall2(m->b, ty, fn, &x, 1, "");
}

static LLVMTypeRef of_width(LLVMTypeRef elem, int w) { return w == 1 ? elem : LLVMVectorType(elem, (unsigned)w); }

LLVMTypeRef lv_elem_type(lv_emit *m, gm_dtype dt) { return dt == GM_BF16 ? m->i16 : dt == GM_F16 ? m->f16 : m->f32; }

LLVMValueRef lv_load(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, gm_dtype dt, int w) {
    return lv_load_aligned(m, base, idx, dt, w, (unsigned)gm_dtype_size(dt));
}

LLVMValueRef lv_load_aligned(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, gm_dtype dt, int w, unsigned align) {
    LLVMTypeRef elem = lv_elem_type(m, dt);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(m->b, elem, base, &idx, 1, "");
    LLVMValueRef v = LLVMBuildLoad2(m->b, of_width(elem, w), p, "");
    LLVMSetAlignment(v, align);
    if (dt == GM_BF16) { /* the high half of an f32 */
        v = LLVMBuildZExt(m->b, v, of_width(m->i32, w), "");
        v = LLVMBuildShl(m->b, v, lv_splat(m, LLVMConstInt(m->i32, 16, 0), w), "");
        v = LLVMBuildBitCast(m->b, v, of_width(m->f32, w), "");
    } else if (dt == GM_F16) {
        v = LLVMBuildFPExt(m->b, v, of_width(m->f32, w), "");
    }
    return v;
}

void lv_store(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v) {
    LLVMValueRef p = LLVMBuildInBoundsGEP2(m->b, m->f32, base, &idx, 1, "");
    LLVMSetAlignment(LLVMBuildStore(m->b, v, p), 4);
}

LLVMValueRef lv_load_masked(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef mask, int w) {
    LLVMTypeRef types[2] = {of_width(m->f32, w), m->ptr};
    LLVMValueRef args[4] = {LLVMBuildInBoundsGEP2(m->b, m->f32, base, &idx, 1, ""), LLVMConstInt(m->i32, 4, 0), mask,
                            lv_real(m, 0, w)};
    return lv_intrinsic(m, "llvm.masked.load", types, 2, args, 4);
}

void lv_store_masked(lv_emit *m, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v, LLVMValueRef mask) {
    LLVMTypeRef types[2] = {LLVMTypeOf(v), m->ptr};
    LLVMValueRef args[4] = {v, LLVMBuildInBoundsGEP2(m->b, m->f32, base, &idx, 1, ""), LLVMConstInt(m->i32, 4, 0), mask};
    lv_intrinsic(m, "llvm.masked.store", types, 2, args, 4);
}

void lv_loop_begin(lv_emit *m, lv_loop *l, LLVMValueRef lo, LLVMValueRef hi, int64_t step, int n,
                   const LLVMValueRef *init) {
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(m->b);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "body");
    l->head = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "loop");
    l->exit = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "done");
    l->step = step;
    l->n = n;
    LLVMBuildBr(m->b, l->head);
    LLVMPositionBuilderAtEnd(m->b, l->head);
    l->i = LLVMBuildPhi(m->b, m->i64, "i");
    LLVMAddIncoming(l->i, &lo, &pre, 1);
    for (int k = 0; k < n; k++) {
        l->v[k] = LLVMBuildPhi(m->b, LLVMTypeOf(init[k]), "");
        LLVMAddIncoming(l->v[k], (LLVMValueRef *)&init[k], &pre, 1);
    }
    LLVMValueRef more = LLVMBuildICmp(m->b, LLVMIntSLE, lv_addi(m, l->i, step), hi, "");
    LLVMBuildCondBr(m->b, more, body, l->exit);
    LLVMPositionBuilderAtEnd(m->b, body);
}

LLVMValueRef lv_call_in(lv_emit *m, int i) { return lv_field_ptr(m, offsetof(ex_call, in) + i * sizeof(void *)); }
LLVMValueRef lv_call_out(lv_emit *m) { return lv_field_ptr(m, offsetof(ex_call, out)); }
LLVMValueRef lv_call_T(lv_emit *m) { return lv_field_i64(m, offsetof(ex_call, T)); }

LLVMBasicBlockRef lv_if_begin(lv_emit *m, LLVMValueRef cond) {
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "then");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "endif");
    LLVMBuildCondBr(m->b, cond, then, done);
    LLVMPositionBuilderAtEnd(m->b, then);
    return done;
}

void lv_if_end(lv_emit *m, LLVMBasicBlockRef done) {
    LLVMBuildBr(m->b, done);
    LLVMPositionBuilderAtEnd(m->b, done);
}

LLVMBasicBlockRef lv_else(lv_emit *m, LLVMBasicBlockRef otherwise) {
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "endif");
    LLVMBuildBr(m->b, done);
    LLVMPositionBuilderAtEnd(m->b, otherwise);
    return done;
}

void lv_loop_end(lv_emit *m, lv_loop *l, const LLVMValueRef *next) {
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(m->b);
    LLVMValueRef i_next = lv_addi(m, l->i, l->step);
    LLVMAddIncoming(l->i, &i_next, &latch, 1);
    for (int k = 0; k < l->n; k++) LLVMAddIncoming(l->v[k], (LLVMValueRef *)&next[k], &latch, 1);
    LLVMBuildBr(m->b, l->head);
    LLVMPositionBuilderAtEnd(m->b, l->exit);
}

void lv_span(lv_emit *m, int64_t n, int unroll, int n_sums, lv_span_fn *body, void *ctx, LLVMValueRef *sums) {
    int W = m->target->width, carried = n_sums * unroll;
    int64_t bulk = n / (W * unroll) * (W * unroll), at, w;
    LLVMValueRef terms[LV_MAX_CARRY], zeros[LV_MAX_CARRY], next[LV_MAX_CARRY];
    for (int s = 0; s < n_sums; s++) sums[s] = lv_real(m, 0, 1);
    for (int s = 0; s < carried; s++) zeros[s] = lv_real(m, 0, W);
    if (bulk > 0) {
        lv_loop l;
        lv_loop_begin(m, &l, lv_int(m, 0), lv_int(m, bulk), W * unroll, carried, zeros);
        for (int u = 0; u < unroll; u++) {
            body(m, ctx, lv_addi(m, l.i, u * W), W, terms);
            for (int s = 0; s < n_sums; s++) next[u * n_sums + s] = lv_fadd(m, l.v[u * n_sums + s], terms[s]);
        }
        lv_loop_end(m, &l, next);
        for (int s = 0; s < n_sums; s++) {
            LLVMValueRef v = l.v[s];
            for (int u = 1; u < unroll; u++) v = lv_fadd(m, v, l.v[u * n_sums + s]);
            sums[s] = lv_hsum(m, v);
        }
    }
    for (at = bulk, w = W; at < n; at += w) {
        while (at + w > n) w /= 2;
        body(m, ctx, lv_int(m, at), (int)w, terms);
        for (int s = 0; s < n_sums; s++) sums[s] = lv_fadd(m, sums[s], lv_hsum(m, terms[s]));
    }
}
