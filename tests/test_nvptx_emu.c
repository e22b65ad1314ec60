/* test_nvptx_emu.c — the nvptx target run on this CPU: its kernels against the CPU's own, and
 * the GPU engine on every oracle case.
 *
 * GPU machines are lent rarely, so what ptx.c emits is also checked where none is: the module
 * it builds for the GPU (optimised nvptx64 IR, as PTX is made from) is retargeted to this CPU
 * and JIT-compiled. Each NVVM intrinsic becomes a call into the emulator (emu_cuda.h: thread
 * and block ids, __syncthreads, warp shuffles and syncs, mma.sync's fragments as the PTX ISA
 * lays them out), inline PTX (L2 prefetches) is dropped, and a conversion to bf16 becomes its
 * integer rounding (to nearest even). A launch runs as nv_launch_of lays it out, block after
 * block, each block's threads as fibers that meet at its barriers as a GPU block's do.
 *
 * The matmul family (decode's gemv, its twins and geglu, prefill's tiles and tensor-core
 * tiles; out_scale and softcap in their epilogues) and embed, on the eight block formats, bf16
 * and f32 weights, f32 and bf16 activations, and attention (decode's split and merge, the
 * ring's new row; prefill), must give the CPU kernels' outputs (the jit backend, row-major
 * weights) for the same description: within 2e-6 of the output's largest magnitude in f32
 * (the order of the sums differs), 4e-3 under --activations bf16 (one x on either side of a
 * bf16 rounding boundary may round the other way: 2^-8 of one product). Then the GPU engine
 * itself (nv_engine_create), over the emulator's CUDA driver (the test's libcuda.so.1), runs
 * every oracle case to Google's reference within 1e-3. It cannot see timing, nor the memory
 * model beyond barriers, nor the real driver, which test_nvptx's GPU suite runs. */
#include "emu_cuda.h"
#include "kernel_data.h"
#include "oracle_exe.h"
#include "testing.h"

#include "backends/nvptx/gpu_engine.h"
#include "compiler/model.h"
#include "runtime/sampler.h"

#include "backends/llvm/codegen.h"
#include "backends/llvm/target.h"
#include "backends/nvptx/ptx.h"
#include "runtime/quant.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/LLJIT.h>
#include <cjson/cJSON.h>
#include <llvm-c/Orc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kernel fn over nv_launch l's grid with nv_args a, on the emulator (emu_cuda.h). */
static void launch(void *fn, const nv_launch *l, const nv_args *a) {
    void *params[NV_N_PARAMS] = {(void *)&a->in[0], (void *)&a->in[1], (void *)&a->in[2], (void *)&a->out, (void *)&a->T,
                                 (void *)&a->pos, (void *)&a->k_cache, (void *)&a->v_cache, (void *)&a->rows, (void *)&a->scratch};
    emu_launch(fn, l->grid, l->block, params);
}

/* ---- the GPU's module, made to run here ---- */

/* Each call of the mma intrinsic (returning {float × 4}) as a call of emu_mma, which writes
 * the four floats through a pointer: a struct of four floats is returned otherwise in C. */
static void lower_mma(LLVMModuleRef mod, LLVMBuilderRef b, LLVMValueRef intrinsic) {
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx), f32 = LLVMFloatTypeInContext(ctx), ptr = LLVMPointerTypeInContext(ctx, 0);
    LLVMTypeRef params[11] = {i32, i32, i32, i32, i32, i32, f32, f32, f32, f32, ptr};
    LLVMTypeRef ty = LLVMFunctionType(LLVMVoidTypeInContext(ctx), params, 11, 0);
    LLVMValueRef fn = LLVMAddFunction(mod, "emu_mma", ty);
    for (LLVMValueRef use; (use = LLVMGetFirstUse(intrinsic) ? LLVMGetUser(LLVMGetFirstUse(intrinsic)) : NULL);) {
        LLVMValueRef f = LLVMGetBasicBlockParent(LLVMGetInstructionParent(use)), args[11];
        LLVMPositionBuilderBefore(b, LLVMGetFirstInstruction(LLVMGetEntryBasicBlock(f)));
        LLVMValueRef out = LLVMBuildAlloca(b, LLVMArrayType2(f32, 4), "");
        LLVMPositionBuilderBefore(b, use);
        for (int i = 0; i < 10; i++) args[i] = LLVMGetOperand(use, (unsigned)i);
        args[10] = out;
        LLVMBuildCall2(b, ty, fn, args, 11, "");
        LLVMValueRef d = LLVMGetUndef(LLVMTypeOf(use));
        for (int i = 0; i < 4; i++) {
            LLVMValueRef at = LLVMConstInt(i32, (unsigned)i, 0);
            d = LLVMBuildInsertValue(b, d, LLVMBuildLoad2(b, f32, LLVMBuildGEP2(b, f32, out, &at, 1, ""), ""), (unsigned)i, "");
        }
        LLVMReplaceAllUsesWith(use, d);
        LLVMInstructionEraseFromParent(use);
    }
}

/* An fptrunc to bfloat (scalar or vector) as integer rounding to nearest even. */
static void lower_bf16_trunc(LLVMBuilderRef b, LLVMValueRef inst) {
    LLVMTypeRef to = LLVMTypeOf(inst), ctx_i32 = LLVMInt32TypeInContext(LLVMGetTypeContext(to));
    int n = LLVMGetTypeKind(to) == LLVMVectorTypeKind ? (int)LLVMGetVectorSize(to) : 0;
    LLVMTypeRef i32 = n ? LLVMVectorType(ctx_i32, (unsigned)n) : ctx_i32;
    LLVMTypeRef i16 = n ? LLVMVectorType(LLVMInt16TypeInContext(LLVMGetTypeContext(to)), (unsigned)n)
                        : LLVMInt16TypeInContext(LLVMGetTypeContext(to));
#define K(c) (n ? LLVMConstVector((LLVMValueRef[16]){[0 ... 15] = LLVMConstInt(ctx_i32, (c), 0)}, (unsigned)n) : LLVMConstInt(ctx_i32, (c), 0))
    LLVMPositionBuilderBefore(b, inst);
    LLVMValueRef u = LLVMBuildBitCast(b, LLVMGetOperand(inst, 0), i32, "");
    LLVMValueRef odd = LLVMBuildAnd(b, LLVMBuildLShr(b, u, K(16), ""), K(1), "");
    LLVMValueRef r = LLVMBuildLShr(b, LLVMBuildAdd(b, u, LLVMBuildAdd(b, odd, K(0x7fff), ""), ""), K(16), "");
#undef K
    LLVMValueRef v = LLVMBuildBitCast(b, LLVMBuildTrunc(b, r, i16, ""), to, "");
    LLVMReplaceAllUsesWith(inst, v);
    LLVMInstructionEraseFromParent(inst);
}

/* Inline PTX (prefetch.L2; griddepcontrol on sm_90) dropped; fptrunc to bfloat lowered. */
static void lower_instructions(LLVMModuleRef mod, LLVMBuilderRef b) {
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f))
        for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(f); bb; bb = LLVMGetNextBasicBlock(bb))
            for (LLVMValueRef i = LLVMGetFirstInstruction(bb), next; i; i = next) {
                next = LLVMGetNextInstruction(i);
                if (LLVMIsACallInst(i) && LLVMIsAInlineAsm(LLVMGetCalledValue(i))) LLVMInstructionEraseFromParent(i);
                else if (LLVMGetInstructionOpcode(i) == LLVMFPTrunc &&
                         LLVMGetTypeKind(LLVMGetTypeKind(LLVMTypeOf(i)) == LLVMVectorTypeKind ? LLVMGetElementType(LLVMTypeOf(i))
                                                                                               : LLVMTypeOf(i)) == LLVMBFloatTypeKind)
                    lower_bf16_trunc(b, i);
            }
}

/* The NVVM intrinsics as calls of the emulator; 0, or -1 naming one it lacks. */
static int lower_intrinsics(LLVMModuleRef mod, LLVMBuilderRef b) {
    for (LLVMValueRef f = LLVMGetFirstFunction(mod), next; f; f = next) {
        next = LLVMGetNextFunction(f);
        size_t len;
        const char *name = LLVMGetValueName2(f, &len);
        if (strncmp(name, "llvm.nvvm.", 10)) continue;
        int e = 0;
        while (e < emu_n_intrinsics && strcmp(emu_intrinsics[e].intrinsic, name)) e++;
        if (e == emu_n_intrinsics) return printf("\n  no emulation of %s", name), -1;
        if (!strcmp(emu_intrinsics[e].name, "emu_mma")) lower_mma(mod, b, f);
        else LLVMReplaceAllUsesWith(f, LLVMAddFunction(mod, emu_intrinsics[e].name, LLVMGlobalGetValueType(f)));
        LLVMDeleteFunction(f);
    }
    return 0;
}

typedef struct {
    LLVMOrcLLJITRef jit;
} emu_module;

/* ks[0..n) as the GPU's module, lowered as above and JIT-compiled for this CPU. */
static int emu_compile(emu_module *em, const ex_kernel *ks, int n) {
    gm_err e;
    lv_target nv, host;
    CU_ASSERT_FATAL(nv_target(&nv, "sm_80", &e) == 0);
    LLVMTargetMachineRef tm = lv_target_machine(&nv, 0, &e);
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMContextRef ctx = LLVMOrcThreadSafeContextGetContext(tsc);
    LLVMModuleRef mod = tm ? lv_module_build(ctx, &nv, tm, ks, n, nv_emit_kernel, &e) : NULL;
    if (!mod) printf("\n  %s", e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mod);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    lower_instructions(mod, b);
    int rc = lower_intrinsics(mod, b);
    LLVMDisposeBuilder(b);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    lv_target_host(&host);
    LLVMTargetMachineRef htm = lv_target_machine(&host, 1, &e);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(htm);
    char *dls = LLVMCopyStringRepOfTargetData(dl);
    LLVMSetDataLayout(mod, dls);
    LLVMSetTarget(mod, host.triple);
    char *msg = NULL;
    if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) printf("\n  the lowered module: %s", msg);
    LLVMDisposeMessage(msg);
    LLVMDisposeMessage(dls);
    LLVMDisposeTargetData(dl);
    LLVMDisposeTargetMachine(htm);
    LLVMDisposeTargetMachine(tm);
    lv_target_free(&nv);
    lv_target_free(&host);
    CU_ASSERT_FATAL(lv_llvm_fail(LLVMOrcCreateLLJIT(&em->jit, NULL), "LLJIT", &e) == 0);
    LLVMOrcJITDylibRef main = LLVMOrcLLJITGetMainJITDylib(em->jit);
    LLVMJITSymbolFlags flags = {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0};
    LLVMOrcCSymbolMapPair syms[32];
    CU_ASSERT_FATAL(emu_n_intrinsics <= 32);
    for (int i = 0; i < emu_n_intrinsics; i++)
        syms[i] = (LLVMOrcCSymbolMapPair){LLVMOrcLLJITMangleAndIntern(em->jit, emu_intrinsics[i].name),
                                          {(LLVMOrcExecutorAddress)(uintptr_t)emu_intrinsics[i].fn, flags}};
    CU_ASSERT_FATAL(lv_llvm_fail(LLVMOrcJITDylibDefine(main, LLVMOrcAbsoluteSymbols(syms, (size_t)emu_n_intrinsics)), "emulator", &e) == 0);
    LLVMOrcDefinitionGeneratorRef process;
    CU_ASSERT_FATAL(lv_llvm_fail(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&process, LLVMOrcLLJITGetGlobalPrefix(em->jit),
                                                                                      NULL, NULL), "process", &e) == 0);
    LLVMOrcJITDylibAddGenerator(main, process);
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc);
    CU_ASSERT_FATAL(lv_llvm_fail(LLVMOrcLLJITAddLLVMIRModule(em->jit, main, tsm), "adding the module", &e) == 0);
    return 0;
}

static void *emu_lookup(emu_module *em, const ex_kernel *k, int i, const char *suffix) {
    char name[96];
    gm_err e;
    ex_kernel_symbol(name, sizeof name, k, i);
    strcat(name, suffix);
    LLVMOrcExecutorAddress addr = 0;
    int rc = lv_llvm_fail(LLVMOrcLLJITLookup(em->jit, &addr, name), name, &e);
    if (rc) printf("\n  %s", e.msg);
    CU_ASSERT_FATAL(rc == 0);
    return (void *)(uintptr_t)addr;
}

/* ---- the matmul family and embed against the CPU's kernels ---- */

static void *aligned_copy(const void *src, size_t bytes) {
    void *p = gm_aligned64(bytes ? bytes : 64);
    memcpy(p, src, bytes);
    return p;
}

/* The worst |gpu − cpu| over the largest |cpu|, printed when over tol. */
static double compare(const char *what, const ex_kernel *k, int T, const float *gpu, const float *cpu, int64_t n, double tol) {
    double top = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) top = fmax(top, fabs(cpu[i]));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)gpu[i] - cpu[i]);
        if (!(d <= worst)) worst = d; /* NaN counts as the worst */
    }
    worst /= top > 0 ? top : 1;
    if (!(worst <= tol))
        printf("\n  %s %s %s x_bf16 %g N %lld K %lld T %d: worst %.3g of the largest output (tolerance %.1g)", what,
               ir_ops[k->op].name, gm_dtype_name(k->wtype), k->attr[IR_A_X_BF16], (long long)k->n, (long long)k->k, T, worst, tol);
    CU_ASSERT(worst <= tol);
    return worst;
}

/* Kernel i of ks (compiled both ways) on T rows: the GPU's entry nv_launch_of picks. */
static double check_matmul(emu_module *em, lv_jit *cpu, const ex_kernel *ks, int i, int T) {
    const ex_kernel *k = &ks[i];
    int64_t K = k->k, N = k->n;
    kd_weights w = kd_random_weights(k->wtype, N * K, 1), nw = kd_random_weights(k->ntype, K, 1);
    float *x = kd_random_f32(T * K, 1), *r = kd_random_f32(T * N, 1);
    float *want = gm_malloc(T * N * sizeof *want), *got = gm_aligned64(T * N * sizeof *got);
    float *scratch = gm_aligned64(ex_scratch_floats(k, T) * sizeof(float));
    const void *in2 = k->op == IR_NORM_MATMUL ? (const void *)nw.data : k->op == IR_MATMUL_ADD ? r : NULL;
    lv_jit_kernel(cpu, i)(&(ex_call){.in = {x, w.data, in2}, .out = want, .T = T, .n0 = 0, .n1 = N, .scratch = scratch});
    void *gx = aligned_copy(x, T * K * sizeof *x), *gw = aligned_copy(w.data, gm_dtype_bytes(k->wtype, N * K));
    void *g2 = in2 ? aligned_copy(in2, k->op == IR_NORM_MATMUL ? gm_dtype_bytes(k->ntype, K) : T * N * sizeof(float)) : NULL;
    int64_t pos = 0;
    nv_launch l;
    nv_launch_of(k, T, &l);
    nv_args a = {.in = {(uintptr_t)gx, (uintptr_t)gw, (uintptr_t)g2}, .out = (uintptr_t)got, .T = T, .pos = (uintptr_t)&pos};
    for (int64_t j = 0; j < T * N; j++) got[j] = NAN;
    launch(emu_lookup(em, k, i, l.gemv ? "_gemv" : ""), &l, &a);
    int bf16 = k->attr[IR_A_X_BF16] != 0 && k->wtype == GM_BF16;
    double worst = compare(l.gemv ? "gemv" : nv_uses_mma(k) ? "mma" : "tiles", k, T, got, want, T * N, bf16 ? 4e-3 : 2e-6);
    kd_free_weights(w), kd_free_weights(nw);
    free(x), free(r), free(want), free(got), free(scratch), free(gx), free(gw), free(g2);
    return worst;
}

/* Every kernel of ks on one row (decode's gemv) and on 70 (a 64-row tile and a part). */
static void check_family(const ex_kernel *ks, int n, const char *label) {
    emu_module em;
    emu_compile(&em, ks, n);
    lv_jit *cpu = kd_compile(ks, n);
    double worst = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fmax(check_matmul(&em, cpu, ks, i, 1), check_matmul(&em, cpu, ks, i, 70)));
    printf("[%s: %d kernels, worst %.2g of the largest output] ", label, n, worst);
    lv_jit_free(cpu);
    LLVMOrcDisposeLLJIT(em.jit);
}

static const gm_dtype qtypes[] = {GM_Q8_0, GM_Q4_0, GM_Q4_1, GM_Q5_0, GM_Q5_1, GM_Q4_K, GM_Q5_K, GM_Q6_K};
#define N_QTYPES 8
static const ir_op family[] = {IR_MATMUL, IR_NORM_MATMUL, IR_MATMUL_ADD};

/* The eight block formats, each op of the family: K = 512 (two 256-value blocks, a part per
 * warp), N = 100 (a partial 64-column tile). */
static void test_quantized(void) {
    ex_kernel ks[N_QTYPES * 3];
    for (int i = 0; i < N_QTYPES * 3; i++) {
        ks[i] = ex_kernel_default(family[i % 3], qtypes[i / 3], 100, 512);
        if (i % 4 == 0) ks[i].attr[IR_A_OUT_SCALE] = 0.0625; /* a folded query scale the blocks could not take */
    }
    check_family(ks, N_QTYPES * 3, "block formats, f32 activations");
}

/* bf16 weights under --activations bf16 (prefill on the tensor cores): K = 96 (a partial
 * step of 32) and 320, N = 200 (a partial 128-column tile); and bf16 and f32 weights in f32. */
static void test_bf16(void) {
    static const int64_t Ks[] = {96, 320};
    ex_kernel ks[12];
    for (int i = 0; i < 6; i++) {
        ks[i] = ex_kernel_default(family[i % 3], GM_BF16, 200, Ks[i / 3]);
        ks[i].attr[IR_A_X_BF16] = 1;
        ks[i].attr[IR_A_SOFTCAP] = i == 0 ? 30 : 0;
    }
    for (int i = 6; i < 12; i++) ks[i] = ex_kernel_default(family[i % 3], i < 9 ? GM_BF16 : GM_F32, 200, 320);
    check_family(ks, 12, "bf16 activations on the tensor cores; bf16 and f32 weights");
}

/* gelu_tanh(a) · b, as the geglu op defines it. */
static double geglu(double a, double b) { return 0.5 * a * (1 + tanh(0.7978845608028654 * (a + 0.044715 * a * a * a))) * b; }

/* Decode's two-matrix launches of kernel i: "_gemv" with grid.y = 2 (a twin: the second matrix
 * at k_cache into v_cache, as an attention's k and v projections run) and "_gemv_geglu" (gate
 * at in[1], up at k_cache: gelu_tanh(x·gate) · (x·up)); against two CPU calls. */
static double check_pair(emu_module *em, lv_jit *cpu, const ex_kernel *ks, int i) {
    const ex_kernel *k = &ks[i];
    int64_t K = k->k, N = k->n;
    kd_weights w0 = kd_random_weights(k->wtype, N * K, 1), w1 = kd_random_weights(k->wtype, N * K, 1);
    kd_weights nw = kd_random_weights(k->ntype, K, 1);
    float *x = kd_random_f32(K, 1), *y0 = gm_malloc(N * sizeof *y0), *y1 = gm_malloc(N * sizeof *y1), *want = gm_malloc(N * sizeof *want);
    float *got0 = gm_aligned64(N * sizeof *got0), *got1 = gm_aligned64(N * sizeof *got1);
    float *scratch = gm_aligned64(ex_scratch_floats(k, 1) * sizeof(float));
    const void *in2 = k->op == IR_NORM_MATMUL ? nw.data : NULL;
    lv_jit_kernel(cpu, i)(&(ex_call){.in = {x, w0.data, in2}, .out = y0, .T = 1, .n0 = 0, .n1 = N, .scratch = scratch});
    lv_jit_kernel(cpu, i)(&(ex_call){.in = {x, w1.data, in2}, .out = y1, .T = 1, .n0 = 0, .n1 = N, .scratch = scratch});
    void *gx = aligned_copy(x, K * sizeof *x), *g0 = aligned_copy(w0.data, gm_dtype_bytes(k->wtype, N * K));
    void *g1 = aligned_copy(w1.data, gm_dtype_bytes(k->wtype, N * K));
    void *g2 = in2 ? aligned_copy(in2, gm_dtype_bytes(k->ntype, K)) : NULL;
    int64_t pos = 0;
    nv_launch l;
    nv_launch_of(k, 1, &l);
    l.grid[1] = 2;
    nv_args a = {.in = {(uintptr_t)gx, (uintptr_t)g0, (uintptr_t)g2}, .out = (uintptr_t)got0, .T = 1, .pos = (uintptr_t)&pos,
                 .k_cache = (uintptr_t)g1, .v_cache = (uintptr_t)got1};
    launch(emu_lookup(em, k, i, "_gemv"), &l, &a);
    double worst = fmax(compare("twin 0", k, 1, got0, y0, N, 2e-6), compare("twin 1", k, 1, got1, y1, N, 2e-6));
    for (int64_t n = 0; n < N; n++) want[n] = (float)geglu(y0[n], y1[n]);
    nv_geglu_launch(k, &l);
    launch(emu_lookup(em, k, i, "_gemv_geglu"), &l, &a);
    worst = fmax(worst, compare("geglu", k, 1, got0, want, N, 1e-5));
    kd_free_weights(w0), kd_free_weights(w1), kd_free_weights(nw);
    free(x), free(y0), free(y1), free(want), free(got0), free(got1), free(scratch), free(gx), free(g0), free(g1), free(g2);
    return worst;
}

/* Twins and geglu on block formats, bf16 weights under bf16 activations, and f32 weights. */
static void test_pairs(void) {
    static const gm_dtype dts[] = {GM_Q4_K, GM_Q6_K, GM_Q8_0, GM_Q5_0, GM_BF16, GM_BF16, GM_F32};
    enum { N = 7 };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        ks[i] = ex_kernel_default(i % 2 ? IR_MATMUL : IR_NORM_MATMUL, dts[i], 300, 512);
        ks[i].attr[IR_A_X_BF16] = i == 4;
        ks[i].attr[IR_A_OUT_SCALE] = i == 0 ? 0.25 : 1;
    }
    emu_module em;
    emu_compile(&em, ks, N);
    lv_jit *cpu = kd_compile(ks, N);
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, check_pair(&em, cpu, ks, i));
    printf("[%d kernels, worst %.2g of the largest output] ", N, worst);
    lv_jit_free(cpu);
    LLVMOrcDisposeLLJIT(em.jit);
}

/* ---- attention against the CPU's ---- */

/* Attention of T query rows at position pos over a ring of `rows` rows (the earlier keys,
 * random) and the call's own k and v: decode's split over the keys (T = 1: the parts merged
 * by the last block through the scratch, the call's row appended to the ring by the kernel)
 * and prefill's block per (row, head); the output against the CPU kernel's, and in decode
 * the ring's row pos % rows against the call's k and v. */
static double check_attention(emu_module *em, lv_jit *cpu, const ex_kernel *k, int i, int T, int pos) {
    int64_t H = (int64_t)k->attr[IR_A_HEADS], hd = (int64_t)k->attr[IR_A_HEAD_DIM];
    int64_t kv = (int64_t)k->attr[IR_A_KV_HEADS] * hd, ring = k->attr[IR_A_WINDOW] > 0 ? (int64_t)k->attr[IR_A_WINDOW] : 64;
    float *q = kd_random_f32(T * H * hd, 1), *kn = kd_random_f32(T * kv, 1), *vn = kd_random_f32(T * kv, 1);
    float *kc = kd_random_f32(ring * kv, 1), *vc = kd_random_f32(ring * kv, 1);
    float *want = gm_malloc(T * H * hd * sizeof *want), *got = gm_aligned64(T * H * hd * sizeof *got);
    float *scratch = gm_aligned64((ex_scratch_floats(k, T) + 1) * sizeof(float));
    lv_jit_kernel(cpu, i)(&(ex_call){.in = {q, kn, vn}, .out = want, .T = T, .pos = pos, .n0 = 0, .n1 = T, .k_cache = kc,
                                     .v_cache = vc, .rows = ring, .scratch = scratch});
    float *gkc = aligned_copy(kc, ring * kv * sizeof *kc), *gvc = aligned_copy(vc, ring * kv * sizeof *vc);
    float *parts = gm_aligned64(nv_attn_scratch_floats(k) * sizeof(float));
    memset(parts, 0, nv_attn_scratch_floats(k) * sizeof(float));
    int64_t at = pos;
    nv_launch l;
    nv_launch_of(k, T, &l);
    nv_args a = {.in = {(uintptr_t)q, (uintptr_t)kn, (uintptr_t)vn}, .out = (uintptr_t)got, .T = T, .pos = (uintptr_t)&at,
                 .k_cache = (uintptr_t)gkc, .v_cache = (uintptr_t)gvc, .rows = ring, .scratch = (uintptr_t)parts};
    launch(emu_lookup(em, k, i, ""), &l, &a);
    double worst = compare(T == 1 ? "attention (decode)" : "attention (prefill)", k, T, got, want, T * H * hd, 2e-6);
    if (T == 1) {
        int64_t r = pos % ring;
        CU_ASSERT(!memcmp(gkc + r * kv, kn, kv * sizeof *kn) && !memcmp(gvc + r * kv, vn, kv * sizeof *vn));
        CU_ASSERT(!memcmp(gkc, kc, r * kv * sizeof *kc)); /* no other row touched */
    }
    free(q), free(kn), free(vn), free(kc), free(vc), free(want), free(got), free(scratch), free(gkc), free(gvc), free(parts);
    return worst;
}

/* Gemma 1's multi-query and Gemma 2's grouped heads with a softcap and a sliding window of 8
 * (the ring of 8 rows wraps), Gemma 3's 256-wide heads; decode at positions 0, 5 and 40,
 * prefill of 5 rows after 30. */
static void test_attention(void) {
    static const struct { double heads, kv_heads, hd, softcap, window; } shapes[] = {
        {8, 1, 32, 0, 0}, {4, 2, 64, 50, 8}, {4, 1, 256, 0, 0}, {16, 8, 128, 0, 16}};
    enum { N = 4 };
    ex_kernel ks[N];
    for (int i = 0; i < N; i++) {
        ks[i] = ex_kernel_default(IR_ATTENTION, GM_F32, (int64_t)(shapes[i].heads * shapes[i].hd), 0);
        ks[i].attr[IR_A_HEADS] = shapes[i].heads, ks[i].attr[IR_A_KV_HEADS] = shapes[i].kv_heads;
        ks[i].attr[IR_A_HEAD_DIM] = shapes[i].hd, ks[i].attr[IR_A_SCALE] = 1 / sqrt(shapes[i].hd);
        ks[i].attr[IR_A_SOFTCAP] = shapes[i].softcap, ks[i].attr[IR_A_WINDOW] = shapes[i].window;
    }
    emu_module em;
    emu_compile(&em, ks, N);
    lv_jit *cpu = kd_compile(ks, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        static const int positions[] = {0, 5, 40};
        for (int p = 0; p < 3; p++) worst = fmax(worst, check_attention(&em, cpu, &ks[i], i, 1, positions[p]));
        worst = fmax(worst, check_attention(&em, cpu, &ks[i], i, 5, 30));
    }
    printf("[%d shapes, worst %.2g of the largest output] ", N, worst);
    lv_jit_free(cpu);
    LLVMOrcDisposeLLJIT(em.jit);
}

/* A quantized table's rows: embed decodes a sub-block per thread. */
static void test_embed(void) {
    ex_kernel ks[N_QTYPES];
    for (int i = 0; i < N_QTYPES; i++) ks[i] = ex_kernel_default(IR_EMBED, qtypes[i], 512, 0);
    emu_module em;
    emu_compile(&em, ks, N_QTYPES);
    lv_jit *cpu = kd_compile(ks, N_QTYPES);
    const int rows = 9, T = 4;
    int32_t ids[4] = {0, 8, 3, 8};
    for (int i = 0; i < N_QTYPES; i++) {
        kd_weights w = kd_random_weights(qtypes[i], rows * ks[i].n, 1);
        float *want = gm_malloc(T * ks[i].n * sizeof *want), *got = gm_aligned64(T * ks[i].n * sizeof *got);
        lv_jit_kernel(cpu, i)(&(ex_call){.in = {ids, w.data}, .out = want, .T = T, .n0 = 0, .n1 = ks[i].n});
        nv_launch l;
        nv_launch_of(&ks[i], T, &l);
        nv_args a = {.in = {(uintptr_t)ids, (uintptr_t)w.data}, .out = (uintptr_t)got, .T = T};
        launch(emu_lookup(&em, &ks[i], i, ""), &l, &a);
        compare("embed", &ks[i], T, got, want, T * ks[i].n, 0);
        kd_free_weights(w);
        free(want), free(got);
    }
    lv_jit_free(cpu);
    LLVMOrcDisposeLLJIT(em.jit);
}

/* ---- whole models through the GPU engine, on the emulator ---- */

/* Each kernel's entries (nvptx.h) registered with the emulator's driver by name. */
static void register_kernels(emu_module *em, const ex_kernel *ks, int n) {
    emu_register(NULL, NULL);
    for (int i = 0; i < n; i++) {
        const char *entries[4] = {"", NULL, NULL, NULL};
        if (ir_is_matmul(ks[i].op)) entries[1] = "_gemv", entries[2] = nv_has_geglu_entry(&ks[i]) ? "_gemv_geglu" : NULL;
        if (ks[i].op == IR_ATTENTION) entries[1] = "_store";
        for (int s = 0; s < 4 && entries[s]; s++) {
            char name[128];
            ex_kernel_symbol(name, sizeof name, &ks[i], i);
            strcat(name, entries[s]);
            emu_register(name, emu_lookup(em, &ks[i], i, entries[s]));
        }
    }
}

/* The largest |Δ| of n logits against the oracle's; printed with what and where when over 1e-3. */
static double oracle_diff(const char *what, const char *name, int p, int row, const float *got, const float *want, int64_t n) {
    double d = oracle_max_diff(got, want, (size_t)n);
    if (!(d <= 1e-3)) printf("\n  %s prompt %d %s row %d: max |dlogit| %.3g", name, p, what, row, d);
    CU_ASSERT(d <= 1e-3);
    return d;
}

/* One prompt of the oracle: prefill's every row, then a last-row prefill and 16 greedy steps. */
static double check_prompt(rt_engine *en, const char *name, int p, const cJSON *pr, const float *prefill, const float *steps) {
    const cJSON *prompt = cJSON_GetObjectItem(pr, "prompt"), *cont = cJSON_GetObjectItem(pr, "continuation");
    int n = cJSON_GetArraySize(prompt);
    int64_t V = en->vocab;
    int32_t *ids = gm_malloc(n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(prompt, i)->valueint;
    float *rows = gm_malloc(n * V * sizeof *rows);
    gm_err e;
    double worst = 0;
    CU_ASSERT_EQUAL_FATAL(en->prefill(en, ids, n, 0, rows, 1, &e), 0);
    for (int i = 0; i < n; i++) worst = fmax(worst, oracle_diff("prefill", name, p, i, rows + i * V, prefill + i * V, V));
    CU_ASSERT_EQUAL_FATAL(en->prefill(en, ids, n, 0, rows, 0, &e), 0);
    for (int s = 0; s < 16; s++) {
        int32_t want = cJSON_GetArrayItem(cont, s)->valueint;
        if (s) CU_ASSERT_EQUAL_FATAL(en->decode(en, cJSON_GetArrayItem(cont, s - 1)->valueint, n + s - 1, rows, &e), 0);
        worst = fmax(worst, oracle_diff("greedy", name, p, s, rows, steps + s * V, V));
        if (rt_argmax(rows, V) != want) printf("\n  %s prompt %d step %d: token %d, expected %d", name, p, s, rt_argmax(rows, V), want);
        CU_ASSERT_EQUAL(rt_argmax(rows, V), want);
    }
    free(ids), free(rows);
    return worst;
}

/* Oracle case `name` opened for the nvptx target, its kernels compiled for the emulator, the
 * GPU engine (nv_engine_create: uploads, KV rings, rope tables, decode's fusions, CUDA graphs)
 * over the emulator's driver: its first `prompts` prompts' prefill rows and 16 greedy steps
 * within 1e-3 of Google's reference, with its tokens. */
static void check_model(const char *name, int prompts) {
    char rel[256], dir[4096];
    snprintf(rel, sizeof rel, "golden/%s", name);
    snprintf(dir, sizeof dir, "%s", test_path(rel));
    gm_err e;
    gm_pipeline_opts po = {.level = 2, .target = gm_backend_target("nvptx")};
    gm_model *m = gm_model_open_with(dir, NULL, &po, &e);
    if (!m) printf("\n  %s: %s", name, e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    gm_model_pack(m, 1);
    const ir_graph *g = m->graph;
    ex_kernel *ks = gm_malloc(g->n_nodes * sizeof *ks);
    int *which = gm_malloc(g->n_nodes * sizeof *which), n = ex_kernels_of(g, m->bound, ks, which);
    emu_module em;
    emu_compile(&em, ks, n);
    register_kernels(&em, ks, n);
    rt_engine *en = nv_engine_create(g, m->bound, &(rt_engine_opts){.context = 128}, "(the emulator reads no PTX)", ks, n, &e);
    if (!en) printf("\n  %s: %s", name, e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(en);
    char *text = test_slurp(dir, "expected.json");
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    size_t np, ns;
    float *prefill = oracle_read_f32(dir, "expected_prefill_logits.f32", &np), *steps = oracle_read_f32(dir, "expected_logits.f32", &ns);
    CU_ASSERT_FATAL(j && prefill && steps);
    const cJSON *pr;
    size_t at = 0;
    int p = 0;
    double worst = 0;
    cJSON_ArrayForEach(pr, cJSON_GetObjectItem(j, "prompts")) {
        worst = fmax(worst, check_prompt(en, name, p, pr, prefill + at * en->vocab, steps + (size_t)p * 16 * en->vocab));
        at += cJSON_GetArraySize(cJSON_GetObjectItem(pr, "prompt"));
        if (++p == prompts) break;
    }
    printf("[%s%s: %d prompt%s, max |dlogit| %.2e] ", name, getenv("GEMMAC_CUDA_GRAPHS") ? " kernel by kernel" : "", p, p > 1 ? "s" : "", worst);
    en->free(en);
    emu_register(NULL, NULL);
    LLVMOrcDisposeLLJIT(em.jit);
    cJSON_Delete(j);
    free(text), free(prefill), free(steps), free(ks), free(which);
    gm_model_free(m);
}

/* Every case's first prompt (the rest take 2 minutes more here, and test the same kernels
 * on other tokens), and tiny-gemma2's decode kernel by kernel instead of as a graph. */
static void test_models(void) {
    for (int c = 0; c < ORACLE_CASES; c++) check_model(oracle_cases[c], 1);
    setenv("GEMMAC_CUDA_GRAPHS", "0", 1);
    check_model("tiny-gemma2", 1);
    unsetenv("GEMMAC_CUDA_GRAPHS");
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("nvptx kernels, emulated on this CPU", NULL, NULL);
    CU_add_test(s, "matmul family on the eight block formats", test_quantized);
    CU_add_test(s, "matmul family, bf16 activations (mma.sync) and float weights", test_bf16);
    CU_add_test(s, "decode's twins and geglu", test_pairs);
    CU_add_test(s, "embed of block-quantized tables", test_embed);
    CU_add_test(s, "attention: decode's split over the keys, prefill", test_attention);
    CU_add_test(s, "every oracle case through the GPU engine", test_models);
    return test_run_all();
}
