/* ptx.c — the NVPTX target's kernels: every IR op as a PTX kernel, emitted
 * with the LLVM C API for nvptx64-nvidia-cuda and lowered to PTX text by
 * LLVM's NVPTX backend (the driver's JIT turns that into machine code for
 * the GPU present).
 *
 * Each kernel is an `.entry` (nvvm.annotations "kernel") taking nv_args'
 * ten parameters, and reads blockIdx/threadIdx as nv_launch_of (launch.c)
 * lays them out; on sm_90 each opens with programmatic dependent launch
 * (nvptx.h). Sizes, dtypes and attributes are constants, as on the CPU;
 * the arithmetic helpers of backends/llvm/emit.h (lv_exp, lv_tanh, the
 * elementwise ops, the bf16/f16 loads) are shared with the CPU kernels, used
 * here on scalars.
 *   elementwise  one thread per value
 *   embed        one thread per column of a row, the table read as stored
 *   rms_norm     a block per group: Σx² by warp shuffles and shared memory
 *   rope         a thread per pair of a head; cos/sin from the engine's table
 *                (in decode, a second rope's heads may ride along)
 *   attention    a block per (query row, head) in prefill; in decode a
 *                block per (head, part of the keys), the parts merged by
 *                the head's last block through the engine's scratch. Its
 *                8 warps take every 8th key, 4 keys a step with their
 *                loads issued together: each lane holds ⌈hd/32⌉ dimensions
 *                of q and of the accumulator, a key's score is a warp sum,
 *                then the online softmax (running max and sum, the
 *                accumulator rescaled); keys before pos come from the
 *                ring, the rest from this call's k and v; the warps'
 *                partial results are merged through shared memory at the
 *                end. Decode appends the call's k and v rows to the ring
 *                itself; in prefill its "_store" entry does, afterwards.
 *   matmul       T = 1 (decode): a warp per output column (two for wide
 *                matrices, sharing the loads of x; for narrow ones up to 8
 *                warps per column, each over a part of k, joined through
 *                shared memory), lanes striding over k with 16-byte loads
 *                of the weight rows as stored, up to 8 at a time, then
 *                warp sums; norm_matmul first stages x · (g + 1) in shared
 *                memory and scales the finished sums by 1/rms. Small
 *                matrices are prefetched into L2 before the kernel waits
 *                for the one before it. A second matrix may ride along
 *                (grid.y = 2), and "_gemv_geglu" computes gate and up for
 *                gelu(gate) · up. T > 1: 64 × 64 output tiles of a block,
 *                k in steps of 16 through shared memory (weights converted
 *                to f32 as they are staged), 4 × 4 outputs a thread (128 ×
 *                128 tiles of 8 × 8 were slower on an H200: 4 times fewer
 *                blocks, too few to fill its 132 SMs at these sizes).
 *                norm_matmul computes each row's 1/rms first (a warp sum)
 *                and normalises x as it is staged; the residual add
 *                and the softcap act on each output before it is stored. */
#include "ptx.h"

#include "backends/llvm/aot.h"
#include "backends/llvm/codegen.h"
#include "backends/llvm/emit.h"
#include "backends/llvm/quant.h"

#include <llvm-c/Target.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { P_IN0, P_IN1, P_IN2, P_OUT, P_T, P_POS, P_KC, P_VC, P_ROWS, P_SCRATCH };

static LLVMValueRef param(lv_emit *m, int i) { return LLVMGetParam(m->fn, (unsigned)i); }
/* The call's position, read from the device word P_POS points at. */
static LLVMValueRef call_pos(lv_emit *m) { return LLVMBuildLoad2(m->b, m->i64, param(m, P_POS), "pos"); }

static LLVMValueRef call_intrinsic(lv_emit *m, const char *name, LLVMTypeRef *over, size_t n_over, LLVMValueRef *args,
                                   unsigned n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(m->mod, id, over, n_over);
    return LLVMBuildCall2(m->b, LLVMIntrinsicGetType(m->ctx, id, over, n_over), fn, args, n, "");
}

/* A special register (threadIdx.x, blockIdx.y, ...) as i64. */
static LLVMValueRef sreg(lv_emit *m, const char *name) {
    char full[64];
    snprintf(full, sizeof full, "llvm.nvvm.read.ptx.sreg.%s", name);
    return LLVMBuildZExt(m->b, call_intrinsic(m, full, NULL, 0, NULL, 0), m->i64, "");
}

static void barrier(lv_emit *m) { call_intrinsic(m, "llvm.nvvm.barrier0", NULL, 0, NULL, 0); }

/* Σ (or the max) of x over the 32 lanes of the warp, in every lane. */
static LLVMValueRef warp_reduce(lv_emit *m, LLVMValueRef x, int max) {
    for (int off = NV_WARP / 2; off > 0; off /= 2) {
        LLVMValueRef args[4] = {LLVMConstInt(m->i32, 0xffffffffu, 0), x, LLVMConstInt(m->i32, off, 0),
                                LLVMConstInt(m->i32, 31, 0)};
        LLVMValueRef y = call_intrinsic(m, "llvm.nvvm.shfl.sync.bfly.f32", NULL, 0, args, 4);
        x = max ? LLVMBuildSelect(m->b, LLVMBuildFCmp(m->b, LLVMRealOGT, y, x, ""), y, x, "") : lv_fadd(m, x, y);
    }
    return x;
}
static LLVMValueRef warp_sum(lv_emit *m, LLVMValueRef x) { return warp_reduce(m, x, 0); }

/* x of lane `from` (a constant), in every lane. */
static LLVMValueRef lane_value(lv_emit *m, LLVMValueRef x, int from) {
    LLVMValueRef args[4] = {LLVMConstInt(m->i32, 0xffffffffu, 0), x, LLVMConstInt(m->i32, (unsigned)from, 0),
                            LLVMConstInt(m->i32, 31, 0)};
    return call_intrinsic(m, "llvm.nvvm.shfl.sync.idx.f32", NULL, 0, args, 4);
}

/* A __shared__ float array of n elements. */
static LLVMValueRef shared_array(lv_emit *m, const char *what, int64_t n) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", m->name, what);
    LLVMTypeRef ty = LLVMArrayType2(m->f32, (uint64_t)n);
    LLVMValueRef g = LLVMAddGlobalInAddressSpace(m->mod, ty, name, 3);
    LLVMSetInitializer(g, LLVMGetUndef(ty));
    LLVMSetLinkage(g, LLVMInternalLinkage);
    LLVMSetAlignment(g, 16);
    return g;
}

static LLVMValueRef shared_at(lv_emit *m, LLVMValueRef arr, LLVMValueRef idx) {
    return LLVMBuildInBoundsGEP2(m->b, m->f32, arr, &idx, 1, "");
}
static LLVMValueRef shared_load(lv_emit *m, LLVMValueRef arr, LLVMValueRef idx) {
    return LLVMBuildLoad2(m->b, m->f32, shared_at(m, arr, idx), "");
}
static void shared_store(lv_emit *m, LLVMValueRef arr, LLVMValueRef idx, LLVMValueRef v) {
    LLVMBuildStore(m->b, v, shared_at(m, arr, idx));
}

static LLVMValueRef is_zero(lv_emit *m, LLVMValueRef x) { return LLVMBuildICmp(m->b, LLVMIntEQ, x, lv_int(m, 0), ""); }
static LLVMValueRef lt(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildICmp(m->b, LLVMIntSLT, a, b, ""); }
static LLVMValueRef imin(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSelect(m->b, lt(m, a, b), a, b, ""); }
static LLVMValueRef imax(lv_emit *m, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSelect(m->b, lt(m, a, b), b, a, ""); }

/* "for (i = lo; i < n; i += step)" carrying k values. */
static void strided_loop(lv_emit *m, lv_loop *l, LLVMValueRef lo, LLVMValueRef n, int64_t step, int k,
                         const LLVMValueRef *init) {
    lv_loop_begin(m, l, lo, lv_addi(m, n, step - 1), step, k, init);
}

/* An nvvm.annotations entry {fn, key, value} of the kernel being emitted. */
static void annotate(lv_emit *m, const char *key, int value) {
    LLVMMetadataRef md[] = {LLVMValueAsMetadata(m->fn), LLVMMDStringInContext2(m->ctx, key, strlen(key)),
                            LLVMValueAsMetadata(LLVMConstInt(m->i32, (unsigned)value, 0))};
    LLVMAddNamedMetadataOperand(m->mod, "nvvm.annotations", LLVMMetadataAsValue(m->ctx, LLVMMDNodeInContext2(m->ctx, md, 3)));
}

/* A PTX instruction with no operands, which the compiler moves nothing across. */
static void ptx_instruction(lv_emit *m, const char *text) {
    LLVMTypeRef ty = LLVMFunctionType(m->void_t, NULL, 0, 0);
    LLVMValueRef as = LLVMGetInlineAsm(ty, (char *)text, strlen(text), "~{memory}", 9, 1, 0, LLVMInlineAsmDialectATT, 0);
    LLVMBuildCall2(m->b, ty, as, NULL, 0, "");
}

/* Programmatic dependent launch (nvptx.h), on sm_90: waits for the kernel before this one to
 * finish (its outputs visible), then lets the next one be launched, whose blocks wait in turn.
 * Nothing before it may read an activation or write anything. */
static void wait_for_previous(lv_emit *m) {
    if (strcmp(m->target->cpu, NV_PDL_GPU)) return;
    ptx_instruction(m, "griddepcontrol.wait;");
    ptx_instruction(m, "griddepcontrol.launch_dependents;");
}

/* A kernel entry of nv_args' parameters for blocks of `threads` threads; unless the emitter
 * waits for the previous kernel itself (after work that reads only weights), it waits first. */
static void kernel_begin(lv_emit *m, const char *name, int threads, int waits_itself) {
    LLVMTypeRef p[NV_N_PARAMS] = {m->ptr, m->ptr, m->ptr, m->ptr, m->i64, m->ptr, m->ptr, m->ptr, m->i64, m->ptr};
    m->name = name;
    m->fn = LLVMAddFunction(m->mod, name, LLVMFunctionType(m->void_t, p, NV_N_PARAMS, 0));
    annotate(m, "kernel", 1);
    annotate(m, "maxntidx", threads);
    LLVMPositionBuilderAtEnd(m->b, LLVMAppendBasicBlockInContext(m->ctx, m->fn, "entry"));
    if (!waits_itself) wait_for_previous(m);
}

/* Σ x over the block's NV_THREADS threads, in every thread (red: NV_THREADS/32 floats of shared memory). */
static LLVMValueRef block_sum(lv_emit *m, LLVMValueRef x, LLVMValueRef red) {
    LLVMValueRef tid = sreg(m, "tid.x"), warp = LLVMBuildUDiv(m->b, tid, lv_int(m, NV_WARP), "");
    x = warp_sum(m, x);
    LLVMBasicBlockRef done = lv_if_begin(m, is_zero(m, LLVMBuildURem(m->b, tid, lv_int(m, NV_WARP), "")));
    shared_store(m, red, warp, x);
    lv_if_end(m, done);
    barrier(m);
    LLVMValueRef s = shared_load(m, red, lv_int(m, 0));
    for (int w = 1; w < NV_THREADS / NV_WARP; w++) s = lv_fadd(m, s, shared_load(m, red, lv_int(m, w)));
    barrier(m);
    return s;
}

/* 1 / sqrt(ss / G + eps), in f64 like the CPU kernels. */
static LLVMValueRef inv_rms(lv_emit *m, LLVMValueRef ss, int64_t G, double eps) {
    LLVMValueRef mean = LLVMBuildFDiv(m->b, LLVMBuildFPExt(m->b, ss, m->f64, ""), LLVMConstReal(m->f64, (double)G), "");
    LLVMValueRef root = lv_sqrt(m, LLVMBuildFAdd(m->b, mean, LLVMConstReal(m->f64, eps), ""));
    return LLVMBuildFPTrunc(m->b, LLVMBuildFDiv(m->b, LLVMConstReal(m->f64, 1), root, ""), m->f32, "");
}

/* ---- elementwise and embed ---- */

static void emit_elementwise(lv_emit *m, const ex_kernel *k) {
    LLVMValueRef i = lv_add(m, lv_muli(m, sreg(m, "ctaid.x"), NV_THREADS), sreg(m, "tid.x"));
    LLVMBasicBlockRef done = lv_if_begin(m, lt(m, i, lv_muli(m, param(m, P_T), k->n)));
    LLVMValueRef x = lv_load(m, param(m, P_IN0), i, GM_F32, 1);
    LLVMValueRef b = ir_ops[k->op].n_inputs > 1 ? lv_load(m, param(m, P_IN1), i, GM_F32, 1) : NULL;
    lv_store(m, param(m, P_OUT), i, lv_elementwise_value(m, k, x, b, 1));
    lv_if_end(m, done);
}

/* Values [k, k + w) of row n of a K-column weight at base as f32: w values of a float dtype
 * (a 16-byte load when w > 1), or, for a block-quantized one, the sub-block of LV_QSUB values
 * from k on (k a multiple of LV_QSUB), decoded in registers (backends/llvm/quant.c). */
static LLVMValueRef weight_values(lv_emit *m, gm_dtype dt, LLVMValueRef base, int64_t K, LLVMValueRef n, LLVMValueRef k, int w) {
    if (!gm_dtype_quantized(dt)) return lv_load_aligned(m, base, lv_add(m, lv_muli(m, n, K), k), dt, w, w > 1 ? 16 : (unsigned)gm_dtype_size(dt));
    return lv_quant_values(m, dt, base, n, K, k);
}

/* Thread i of row t stores columns [i·w, i·w + w) of the table's row of token t, w =
 * nv_embed_columns: one value, or a quantized table's sub-block. */
static void emit_embed(lv_emit *m, const ex_kernel *k) {
    int w = nv_embed_columns(k);
    LLVMValueRef col = lv_muli(m, lv_add(m, lv_muli(m, sreg(m, "ctaid.x"), NV_THREADS), sreg(m, "tid.x")), w);
    LLVMValueRef t = sreg(m, "ctaid.y");
    LLVMBasicBlockRef done = lv_if_begin(m, lt(m, col, lv_int(m, k->n)));
    LLVMValueRef idp = LLVMBuildInBoundsGEP2(m->b, m->i32, param(m, P_IN0), &t, 1, "");
    LLVMValueRef id = LLVMBuildSExt(m->b, LLVMBuildLoad2(m->b, m->i32, idp, ""), m->i64, "");
    lv_store(m, param(m, P_OUT), lv_add(m, lv_muli(m, t, k->n), col), weight_values(m, k->wtype, param(m, P_IN1), k->n, id, col, w));
    lv_if_end(m, done);
}

/* ---- rms_norm and norm_add: a block per group of G values ---- */

static void emit_norm(lv_emit *m, const ex_kernel *k) {
    int64_t G = k->k;
    LLVMValueRef x = param(m, P_IN0), w = param(m, P_IN1), tid = sreg(m, "tid.x");
    LLVMValueRef base = lv_muli(m, sreg(m, "ctaid.x"), G), zero = lv_real(m, 0, 1);
    lv_loop l;
    strided_loop(m, &l, tid, lv_int(m, G), NV_THREADS, 1, &zero);
    LLVMValueRef xv = lv_load(m, x, lv_add(m, base, l.i), GM_F32, 1), ss = lv_fadd(m, l.v[0], lv_fmul(m, xv, xv));
    lv_loop_end(m, &l, &ss);
    LLVMValueRef inv = inv_rms(m, block_sum(m, l.v[0], shared_array(m, "red", NV_THREADS / NV_WARP)), G, k->attr[IR_A_EPS]);
    strided_loop(m, &l, tid, lv_int(m, G), NV_THREADS, 0, NULL);
    LLVMValueRef at = lv_add(m, base, l.i), g = lv_load(m, w, l.i, k->wtype, 1);
    if (k->attr[IR_A_ADD_ONE] != 0) g = lv_fadd(m, g, lv_real(m, k->attr[IR_A_ADD_ONE], 1));
    LLVMValueRef y = lv_fmul(m, lv_fmul(m, lv_load(m, x, at, GM_F32, 1), inv), g);
    if (k->op == IR_NORM_ADD) y = lv_fadd(m, lv_load(m, param(m, P_IN2), at, GM_F32, 1), y);
    lv_store(m, param(m, P_OUT), at, y);
    lv_loop_end(m, &l, NULL);
}

/* ---- rope: thread i of block (t, head) rotates the pair (i, i + hd/2) ---- */

/* In decode (T = 1) the blocks of head y ≥ n/hd rotate a twin launched with it, head y − n/hd
 * of its rows at in[2] into v_cache: an attention's k beside its q (the engine pairs them). */
static void emit_rope(lv_emit *m, const ex_kernel *k) {
    int64_t hd = (int64_t)k->attr[IR_A_HEAD_DIM], half = hd / 2, heads = k->n / hd;
    LLVMValueRef t = sreg(m, "ctaid.x"), i = sreg(m, "tid.x"), tbl = param(m, P_IN1), y = sreg(m, "ctaid.y");
    LLVMValueRef twin = LLVMBuildICmp(m->b, LLVMIntSGE, y, lv_int(m, heads), "");
    LLVMValueRef head = LLVMBuildSelect(m->b, twin, lv_addi(m, y, -heads), y, "");
    LLVMValueRef x = LLVMBuildSelect(m->b, twin, param(m, P_IN2), param(m, P_IN0), "");
    LLVMValueRef out = LLVMBuildSelect(m->b, twin, param(m, P_VC), param(m, P_OUT), "");
    LLVMValueRef row = lv_muli(m, lv_add(m, call_pos(m), t), half);
    LLVMValueRef c = lv_load(m, tbl, lv_add(m, row, i), GM_F32, 1);
    LLVMValueRef s = lv_load(m, tbl, lv_add(m, lv_add(m, lv_muli(m, param(m, P_ROWS), half), row), i), GM_F32, 1);
    LLVMValueRef lo = lv_add(m, lv_add(m, lv_muli(m, t, k->n), lv_muli(m, head, hd)), i);
    LLVMValueRef hi = lv_addi(m, lo, half);
    LLVMValueRef x0 = lv_load(m, x, lo, GM_F32, 1), x1 = lv_load(m, x, hi, GM_F32, 1);
    lv_store(m, out, lo, lv_fsub(m, lv_fmul(m, x0, c), lv_fmul(m, x1, s)));
    lv_store(m, out, hi, lv_fadd(m, lv_fmul(m, x1, c), lv_fmul(m, x0, s)));
}

/* ---- attention: a block per (query row, head), its warps over the keys ---- */

#define MAX_DIMS 8 /* dimensions a lane holds: head_dim up to 256 */
#define KEYS 4     /* keys a warp takes per step, their loads issued together */

typedef struct {
    const ex_kernel *k;
    int64_t hd, kv_cols;
    int dims;                               /* ⌈hd / 32⌉ */
    LLVMValueRef d[MAX_DIMS], ok[MAX_DIMS]; /* this lane's dimensions (clamped below hd) and whether real */
    LLVMValueRef q[MAX_DIMS];               /* q at them (0 where not real) */
    LLVMValueRef pos, rows, kv_at, hi;
} attn_ctx;

/* The key (cache) or value row of key j, with kv head offset: the ring for j < pos, else this call's rows. */
static LLVMValueRef kv_row(lv_emit *m, const attn_ctx *a, LLVMValueRef cache, LLVMValueRef fresh, LLVMValueRef j) {
    LLVMValueRef old = lt(m, j, a->pos);
    LLVMValueRef row = LLVMBuildSelect(m->b, old, LLVMBuildSRem(m->b, j, a->rows, ""), lv_sub(m, j, a->pos), "");
    LLVMValueRef at = lv_add(m, lv_muli(m, row, a->kv_cols), a->kv_at);
    return LLVMBuildInBoundsGEP2(m->b, m->f32, LLVMBuildSelect(m->b, old, cache, fresh, ""), &at, 1, "");
}

/* Keys j, j + W, ... (KEYS of them, W the block's warps; those from hi on masked) into the
 * warp's running max (v[0]), sum (v[1]) and accumulators (v[2..]). */
static void attend_keys(lv_emit *m, const attn_ctx *a, LLVMValueRef j, const LLVMValueRef *v, LLVMValueRef *next) {
    LLVMValueRef kd[KEYS][MAX_DIMS], vd[KEYS][MAX_DIMS], s[KEYS], valid[KEYS], last = lv_addi(m, a->hi, -1);
    for (int u = 0; u < KEYS; u++) {
        LLVMValueRef ju = lv_addi(m, j, u * NV_ATTN_WARPS), jc = imin(m, ju, last);
        LLVMValueRef key = kv_row(m, a, param(m, P_KC), param(m, P_IN1), jc), val = kv_row(m, a, param(m, P_VC), param(m, P_IN2), jc);
        valid[u] = lt(m, ju, a->hi);
        for (int i = 0; i < a->dims; i++) kd[u][i] = lv_load(m, key, a->d[i], GM_F32, 1), vd[u][i] = lv_load(m, val, a->d[i], GM_F32, 1);
    }
    LLVMValueRef top = v[0];
    for (int u = 0; u < KEYS; u++) {
        LLVMValueRef dot = lv_real(m, 0, 1);
        for (int i = 0; i < a->dims; i++) dot = lv_fadd(m, dot, lv_fmul(m, a->q[i], kd[u][i]));
        s[u] = lv_fmul(m, warp_sum(m, dot), lv_real(m, a->k->attr[IR_A_SCALE], 1));
        if (a->k->attr[IR_A_SOFTCAP] > 0) s[u] = lv_softcap(m, s[u], a->k->attr[IR_A_SOFTCAP], 1);
        s[u] = LLVMBuildSelect(m->b, valid[u], s[u], lv_real(m, -INFINITY, 1), "");
        top = LLVMBuildSelect(m->b, LLVMBuildFCmp(m->b, LLVMRealOGT, s[u], top, ""), s[u], top, "");
    }
    LLVMValueRef rescale = lv_exp(m, lv_fsub(m, v[0], top)), p[KEYS];
    next[0] = top;
    next[1] = lv_fmul(m, v[1], rescale);
    for (int u = 0; u < KEYS; u++) {
        p[u] = LLVMBuildSelect(m->b, valid[u], lv_exp(m, lv_fsub(m, s[u], top)), lv_real(m, 0, 1), "");
        next[1] = lv_fadd(m, next[1], p[u]);
    }
    for (int i = 0; i < a->dims; i++) {
        next[2 + i] = lv_fmul(m, v[2 + i], rescale);
        for (int u = 0; u < KEYS; u++) next[2 + i] = lv_fadd(m, next[2 + i], lv_fmul(m, p[u], vd[u][i]));
    }
}

/* Folds one partial result (its max mw, sum sw and this lane's accumulators aw) into the running
 * merge r = [max, sum, acc[dims]], each side rescaled by e^(its max − the larger); a part with
 * no keys (max −∞) adds nothing, and no e^(−∞ + ∞) is taken. */
static void merge_step(lv_emit *m, const attn_ctx *a, const LLVMValueRef *r, LLVMValueRef mw, LLVMValueRef sw,
                       const LLVMValueRef *aw, LLVMValueRef *next) {
    LLVMValueRef bigger = LLVMBuildFCmp(m->b, LLVMRealOGT, mw, r[0], ""), one = lv_real(m, 1, 1);
    LLVMValueRef some = LLVMBuildFCmp(m->b, LLVMRealOGT, mw, lv_real(m, -INFINITY, 1), "");
    LLVMValueRef keep = LLVMBuildSelect(m->b, bigger, lv_exp(m, lv_fsub(m, r[0], mw)), one, "");
    LLVMValueRef add = LLVMBuildSelect(m->b, bigger, one, lv_exp(m, lv_fsub(m, mw, r[0])), "");
    add = LLVMBuildSelect(m->b, some, add, lv_real(m, 0, 1), "");
    next[0] = LLVMBuildSelect(m->b, bigger, mw, r[0], "");
    next[1] = lv_fadd(m, lv_fmul(m, r[1], keep), lv_fmul(m, sw, add));
    for (int i = 0; i < a->dims; i++) next[2 + i] = lv_fadd(m, lv_fmul(m, r[2 + i], keep), lv_fmul(m, aw[i], add));
}

/* A partial result's value i (0: max, 1: sum, 2 + d: accumulator d) at base + at: shared memory, or the
 * engine's scratch in global memory, read volatile (other blocks wrote it; L1 may hold an old copy). */
static LLVMValueRef part_value(lv_emit *m, LLVMValueRef base, LLVMValueRef at, int from_global) {
    LLVMValueRef v = lv_load(m, base, at, GM_F32, 1);
    if (from_global) LLVMSetVolatile(v, 1);
    return v;
}

/* The warp's partial result in shared memory at part + at ([max, sum, acc[hd]]) folded into r. */
static void merge_part(lv_emit *m, const attn_ctx *a, LLVMValueRef part, LLVMValueRef at, LLVMValueRef *r) {
    LLVMValueRef aw[MAX_DIMS], next[2 + MAX_DIMS];
    for (int i = 0; i < a->dims; i++) aw[i] = part_value(m, part, lv_add(m, lv_addi(m, at, 2), a->d[i]), 0);
    merge_step(m, a, r, part_value(m, part, at, 0), part_value(m, part, lv_addi(m, at, 1), 0), aw, next);
    memcpy(r, next, (2 + a->dims) * sizeof *r);
}

/* This lane's dimensions of the merged accumulators over the merged sum, stored at out + y_at. */
static void store_output(lv_emit *m, const attn_ctx *a, const LLVMValueRef *r, LLVMValueRef y_at) {
    LLVMValueRef inv = lv_fdiv(m, lv_real(m, 1, 1), r[1]);
    for (int i = 0; i < a->dims; i++) {
        LLVMBasicBlockRef stored = lv_if_begin(m, a->ok[i]);
        lv_store(m, param(m, P_OUT), lv_add(m, y_at, a->d[i]), lv_fmul(m, r[2 + i], inv));
        lv_if_end(m, stored);
    }
}

/* The warp's running max (v[0]), sum (v[1]) and accumulators (v[2..]) into part[w] = [max, sum, acc[hd]]. */
static void leave_part(lv_emit *m, const attn_ctx *a, LLVMValueRef part, LLVMValueRef base, LLVMValueRef lane, const LLVMValueRef *v) {
    LLVMBasicBlockRef first = lv_if_begin(m, is_zero(m, lane));
    lv_store(m, part, base, v[0]);
    lv_store(m, part, lv_addi(m, base, 1), v[1]);
    lv_if_end(m, first);
    for (int i = 0; i < a->dims; i++) {
        LLVMBasicBlockRef stored = lv_if_begin(m, a->ok[i]);
        lv_store(m, part, lv_add(m, lv_addi(m, base, 2), a->d[i]), v[2 + i]);
        lv_if_end(m, stored);
    }
}

/* The head's P partial results in the scratch from slots on, merged by the warp: lane p < P reads
 * part p's max and sum, so that the max of all and each part's factor e^(its max − that) take a
 * warp reduction; each lane then sums its dimensions of the parts' accumulators, every load
 * issued at once. All parts' values are read volatile (other blocks wrote them). */
static void merge_all_parts(lv_emit *m, const attn_ctx *a, LLVMValueRef slots, int P, LLVMValueRef lane, LLVMValueRef y_at) {
    int64_t stride = a->hd + 2;
    LLVMValueRef scratch = param(m, P_SCRATCH), mine = lv_add(m, slots, lv_muli(m, imin(m, lane, lv_int(m, P - 1)), stride));
    LLVMValueRef real = lt(m, lane, lv_int(m, P)), r[2 + MAX_DIMS];
    LLVMValueRef mp = LLVMBuildSelect(m->b, real, part_value(m, scratch, mine, 1), lv_real(m, -INFINITY, 1), "");
    LLVMValueRef sp = LLVMBuildSelect(m->b, real, part_value(m, scratch, lv_addi(m, mine, 1), 1), lv_real(m, 0, 1), "");
    r[0] = warp_reduce(m, mp, 1);
    LLVMValueRef some = LLVMBuildFCmp(m->b, LLVMRealOGT, mp, lv_real(m, -INFINITY, 1), "");
    LLVMValueRef scale = LLVMBuildSelect(m->b, some, lv_exp(m, lv_fsub(m, mp, r[0])), lv_real(m, 0, 1), "");
    r[1] = warp_sum(m, lv_fmul(m, scale, sp));
    for (int i = 0; i < a->dims; i++) r[2 + i] = lv_real(m, 0, 1);
    for (int p = 0; p < P; p++) {
        LLVMValueRef f = lane_value(m, scale, p), at = lv_addi(m, slots, p * stride + 2);
        for (int i = 0; i < a->dims; i++)
            r[2 + i] = lv_fadd(m, r[2 + i], lv_fmul(m, f, part_value(m, scratch, lv_add(m, at, a->d[i]), 1)));
    }
    store_output(m, a, r, y_at);
}

/* Decode's split: this block (part p of P) publishes its result r in the scratch slot of (head, p);
 * the last of the head's P blocks to do so (a counter per head, after a fence) merges all P, stores
 * the output and resets the counter for the next call. Run by warp 0. */
static void meet_parts(lv_emit *m, const attn_ctx *a, const LLVMValueRef *r, LLVMValueRef h, LLVMValueRef p, int P,
                       LLVMValueRef lane, LLVMValueRef y_at) {
    int64_t stride = a->hd + 2, nh = (int64_t)a->k->attr[IR_A_HEADS];
    LLVMValueRef scratch = param(m, P_SCRATCH), slots = lv_muli(m, h, P * stride);
    leave_part(m, a, scratch, lv_add(m, slots, lv_muli(m, p, stride)), lane, r);
    call_intrinsic(m, "llvm.nvvm.membar.gl", NULL, 0, NULL, 0);
    LLVMValueRef all = LLVMConstInt(m->i32, 0xffffffffu, 0);
    call_intrinsic(m, "llvm.nvvm.bar.warp.sync", NULL, 0, &all, 1);
    LLVMValueRef at = lv_add(m, lv_int(m, nh * P * stride), h);
    LLVMValueRef counter = LLVMBuildInBoundsGEP2(m->b, m->i32, scratch, &at, 1, "");
    LLVMBasicBlockRef entry = LLVMGetInsertBlock(m->b), counted = lv_if_begin(m, is_zero(m, lane));
    LLVMValueRef old = LLVMBuildAtomicRMW(m->b, LLVMAtomicRMWBinOpAdd, counter, LLVMConstInt(m->i32, 1, 0),
                                          LLVMAtomicOrderingMonotonic, 0);
    LLVMBasicBlockRef added = LLVMGetInsertBlock(m->b);
    lv_if_end(m, counted);
    LLVMValueRef phi = LLVMBuildPhi(m->b, m->i32, "");
    LLVMValueRef in[2] = {LLVMConstInt(m->i32, 0, 0), old};
    LLVMBasicBlockRef from[2] = {entry, added};
    LLVMAddIncoming(phi, in, from, 2);
    LLVMValueRef args[4] = {all, phi, LLVMConstInt(m->i32, 0, 0), LLVMConstInt(m->i32, 31, 0)};
    LLVMValueRef seen = call_intrinsic(m, "llvm.nvvm.shfl.sync.idx.i32", NULL, 0, args, 4);
    LLVMBasicBlockRef last = lv_if_begin(m, LLVMBuildICmp(m->b, LLVMIntEQ, seen, LLVMConstInt(m->i32, P - 1, 0), ""));
    call_intrinsic(m, "llvm.nvvm.membar.gl", NULL, 0, NULL, 0);
    merge_all_parts(m, a, slots, P, lane, y_at);
    LLVMBasicBlockRef reset = lv_if_begin(m, is_zero(m, lane));
    LLVMSetVolatile(LLVMBuildStore(m->b, LLVMConstInt(m->i32, 0, 0), counter), 1);
    lv_if_end(m, reset);
    lv_if_end(m, last);
}

/* Decode appends the call's k and v row to the ring itself, at pos mod rows: a row no block of
 * this call reads (keys before pos lie in the ring's other rows, the key at pos is read from the
 * call's row). The first query head of each kv head's group writes, in its part 0. */
static void store_kv_row(lv_emit *m, const attn_ctx *a, LLVMValueRef h, LLVMValueRef p, LLVMValueRef tid) {
    int64_t group = (int64_t)(a->k->attr[IR_A_HEADS] / a->k->attr[IR_A_KV_HEADS]);
    LLVMValueRef mine = LLVMBuildAnd(m->b, is_zero(m, LLVMBuildURem(m->b, h, lv_int(m, group), "")), is_zero(m, p), "");
    lv_loop l;
    LLVMBasicBlockRef done = lv_if_begin(m, mine);
    LLVMValueRef to = lv_add(m, lv_muli(m, LLVMBuildSRem(m->b, a->pos, a->rows, ""), a->kv_cols), a->kv_at);
    strided_loop(m, &l, tid, lv_int(m, a->hd), NV_ATTN_WARPS * NV_WARP, 0, NULL);
    lv_store(m, param(m, P_KC), lv_add(m, to, l.i), lv_load(m, param(m, P_IN1), lv_add(m, a->kv_at, l.i), GM_F32, 1));
    lv_store(m, param(m, P_VC), lv_add(m, to, l.i), lv_load(m, param(m, P_IN2), lv_add(m, a->kv_at, l.i), GM_F32, 1));
    lv_loop_end(m, &l, NULL);
    lv_if_end(m, done);
}

/* Keys [lo, hi) of the block: all of them in prefill (a block per query row), part p of P in
 * decode (T = 1: a block per part, grid.y). */
static void block_keys(lv_emit *m, LLVMValueRef decode, LLVMValueRef p, int P, LLVMValueRef *lo, LLVMValueRef *hi) {
    if (P == 1) return;
    LLVMValueRef per = LLVMBuildSDiv(m->b, lv_addi(m, lv_sub(m, *hi, *lo), P - 1), lv_int(m, P), "");
    LLVMValueRef from = imin(m, lv_add(m, *lo, lv_mul(m, p, per)), *hi);
    *hi = LLVMBuildSelect(m->b, decode, imin(m, lv_add(m, from, per), *hi), *hi, "");
    *lo = LLVMBuildSelect(m->b, decode, from, *lo, "");
}

static void emit_attention(lv_emit *m, const ex_kernel *k) {
    int64_t nh = (int64_t)k->attr[IR_A_HEADS], nkv = (int64_t)k->attr[IR_A_KV_HEADS];
    int64_t window = (int64_t)k->attr[IR_A_WINDOW];
    int P = nv_attn_splits(nh);
    attn_ctx a = {.k = k, .hd = (int64_t)k->attr[IR_A_HEAD_DIM], .pos = call_pos(m), .rows = param(m, P_ROWS)};
    a.kv_cols = nkv * a.hd;
    a.dims = (int)((a.hd + NV_WARP - 1) / NV_WARP);
    LLVMValueRef tid = sreg(m, "tid.x"), lane = LLVMBuildURem(m->b, tid, lv_int(m, NV_WARP), "");
    LLVMValueRef warp = LLVMBuildUDiv(m->b, tid, lv_int(m, NV_WARP), ""), h = sreg(m, "ctaid.x"), y = sreg(m, "ctaid.y");
    LLVMValueRef decode = LLVMBuildICmp(m->b, LLVMIntEQ, param(m, P_T), lv_int(m, 1), "");
    LLVMValueRef t = LLVMBuildSelect(m->b, decode, lv_int(m, 0), y, ""), p = LLVMBuildSelect(m->b, decode, y, lv_int(m, 0), "");
    a.kv_at = lv_muli(m, LLVMBuildSDiv(m->b, h, lv_int(m, nh / nkv), ""), a.hd);
    LLVMValueRef q_at = lv_add(m, lv_muli(m, t, nh * a.hd), lv_muli(m, h, a.hd));
    LLVMValueRef init[2 + MAX_DIMS] = {lv_real(m, -INFINITY, 1), lv_real(m, 0, 1)}, next[2 + MAX_DIMS];
    for (int i = 0; i < a.dims; i++) {
        LLVMValueRef d = lv_addi(m, lane, i * NV_WARP);
        a.ok[i] = lt(m, d, lv_int(m, a.hd));
        a.d[i] = imin(m, d, lv_int(m, a.hd - 1));
        a.q[i] = LLVMBuildSelect(m->b, a.ok[i], lv_load(m, param(m, P_IN0), lv_add(m, q_at, a.d[i]), GM_F32, 1), lv_real(m, 0, 1), "");
        init[2 + i] = lv_real(m, 0, 1);
    }
    LLVMValueRef hi = lv_add(m, lv_add(m, a.pos, t), lv_int(m, 1)), lo = lv_int(m, 0);
    if (window > 0) lo = imax(m, lo, lv_addi(m, hi, -window));
    block_keys(m, decode, p, P, &lo, &hi);
    a.hi = hi;
    lv_loop j;
    strided_loop(m, &j, lv_add(m, lo, warp), a.hi, NV_ATTN_WARPS * KEYS, 2 + a.dims, init);
    attend_keys(m, &a, j.i, j.v, next);
    lv_loop_end(m, &j, next);
    LLVMValueRef part = shared_array(m, "part", NV_ATTN_WARPS * (a.hd + 2));
    leave_part(m, &a, part, lv_muli(m, warp, a.hd + 2), lane, j.v);
    barrier(m);
    LLVMBasicBlockRef store = lv_if_begin(m, decode);
    store_kv_row(m, &a, h, p, tid);
    lv_if_end(m, store);
    LLVMBasicBlockRef done = lv_if_begin(m, is_zero(m, warp));
    LLVMValueRef r[2 + MAX_DIMS];
    memcpy(r, init, sizeof r);
    for (int w = 0; w < NV_ATTN_WARPS; w++) merge_part(m, &a, part, lv_int(m, w * (a.hd + 2)), r);
    if (P > 1) {
        LLVMBasicBlockRef whole = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "whole");
        LLVMBasicBlockRef split = LLVMAppendBasicBlockInContext(m->ctx, m->fn, "split");
        LLVMBuildCondBr(m->b, decode, split, whole);
        LLVMPositionBuilderAtEnd(m->b, split);
        meet_parts(m, &a, r, h, p, P, lane, q_at);
        LLVMBuildBr(m->b, done);
        LLVMPositionBuilderAtEnd(m->b, whole);
    }
    store_output(m, &a, r, q_at);
    lv_if_end(m, done);
}

/* The "_store" entry: row t of the call's k and v (in0, in1) into the ring at (pos + t) mod rows,
 * for the last `rows` rows only (the ring keeps no more). */
static void emit_kv_store(lv_emit *m, const ex_kernel *k) {
    int64_t cols = (int64_t)(k->attr[IR_A_KV_HEADS] * k->attr[IR_A_HEAD_DIM]);
    LLVMValueRef t = sreg(m, "ctaid.x"), c = lv_add(m, lv_muli(m, sreg(m, "ctaid.y"), NV_THREADS), sreg(m, "tid.x"));
    LLVMValueRef T = param(m, P_T), rows = param(m, P_ROWS);
    LLVMValueRef keep = LLVMBuildAnd(m->b, lt(m, c, lv_int(m, cols)), LLVMBuildICmp(m->b, LLVMIntSGE, t, lv_sub(m, T, rows), ""), "");
    LLVMBasicBlockRef done = lv_if_begin(m, keep);
    LLVMValueRef to = lv_add(m, lv_muli(m, LLVMBuildSRem(m->b, lv_add(m, call_pos(m), t), rows, ""), cols), c);
    LLVMValueRef from = lv_add(m, lv_muli(m, t, cols), c);
    lv_store(m, param(m, P_KC), to, lv_load(m, param(m, P_IN0), from, GM_F32, 1));
    lv_store(m, param(m, P_VC), to, lv_load(m, param(m, P_IN1), from, GM_F32, 1));
    lv_if_end(m, done);
}

/* ---- the matmul family ---- */

typedef struct {
    const ex_kernel *k;
    int64_t K, N;
    LLVMValueRef x, w, g;  /* g: norm_matmul's norm weight, else NULL */
    LLVMValueRef out;      /* where the outputs go */
    int bf16;              /* --activations bf16 on a bf16 weight: x rounded to bf16 as it is read */
} mm_ctx;

/* v (an f32 scalar or vector) rounded to bf16, to nearest even, and widened back: exactly
 * what a bf16 multiplier takes in (cvt.rn.bf16.f32). */
static LLVMValueRef round_bf16(lv_emit *m, LLVMValueRef v) {
    LLVMTypeRef t = LLVMTypeOf(v), bf = LLVMBFloatTypeInContext(m->ctx);
    if (LLVMGetTypeKind(t) == LLVMVectorTypeKind) bf = LLVMVectorType(bf, LLVMGetVectorSize(t));
    return LLVMBuildFPExt(m->b, LLVMBuildFPTrunc(m->b, v, bf, ""), t, "");
}

/* x[at..at+w) as read by the kernel: normalised (· inv · (g + add_one)) for norm_matmul. */
/* With w > 1 (the gemv), at and k are multiples of w and the row starts on 16 bytes
 * (the engine's arena blocks do), so the loads are vector loads. inv NULL: x · g
 * (the gemv applies 1/rms to the finished sums). */
static LLVMValueRef x_value(lv_emit *m, const mm_ctx *c, LLVMValueRef at, LLVMValueRef k, LLVMValueRef inv, int w) {
    LLVMValueRef x = lv_load_aligned(m, c->x, at, GM_F32, w, w > 1 ? 16 : 4);
    if (c->g) {
        unsigned gsize = (unsigned)gm_dtype_size(c->k->ntype), galign = w * gsize < 16 ? w * gsize : 16;
        LLVMValueRef g = lv_load_aligned(m, c->g, k, c->k->ntype, w, galign);
        if (c->k->attr[IR_A_ADD_ONE] != 0) g = lv_fadd(m, g, lv_real(m, c->k->attr[IR_A_ADD_ONE], w));
        x = lv_fmul(m, inv ? lv_fmul(m, x, lv_splat(m, inv, w)) : x, g);
    }
    return c->bf16 ? round_bf16(m, x) : x;
}

/* A finished dot product times the matmul's out_scale (a power of two folded into a quantized
 * weight whose block scales could not take it: compiler/model.c). */
static LLVMValueRef scaled(lv_emit *m, const mm_ctx *c, LLVMValueRef v) {
    double s = c->k->attr[IR_A_OUT_SCALE];
    return s != 1 ? lv_fmul(m, v, lv_real(m, s, 1)) : v;
}

/* The output v of y[t][n]: · out_scale, + r, then the softcap; stored. */
static void epilogue(lv_emit *m, const mm_ctx *c, LLVMValueRef at, LLVMValueRef v) {
    v = scaled(m, c, v);
    if (c->k->op == IR_MATMUL_ADD) v = lv_fadd(m, lv_load(m, param(m, P_IN2), at, GM_F32, 1), v);
    double cap = c->k->op == IR_MATMUL_ADD ? 0 : c->k->attr[IR_A_SOFTCAP];
    lv_store(m, c->out, at, cap > 0 ? lv_softcap(m, v, cap, 1) : v);
}

static LLVMValueRef w_values(lv_emit *m, const mm_ctx *c, LLVMValueRef base, LLVMValueRef n, LLVMValueRef k, int w) {
    return weight_values(m, c->k->wtype, base, c->K, n, k, w);
}

/* Bytes of `count` values of the weight's dtype (count a multiple of its block). */
static LLVMValueRef weight_bytes(lv_emit *m, gm_dtype dt, LLVMValueRef count) {
    return lv_muli(m, LLVMBuildSDiv(m->b, count, lv_int(m, gm_dtype_block(dt)), ""), (int64_t)gm_dtype_size(dt));
}

/* The address of value k of row n (k a multiple of the dtype's block). */
static LLVMValueRef weight_at(lv_emit *m, gm_dtype dt, LLVMValueRef base, int64_t K, LLVMValueRef n, LLVMValueRef k) {
    if (gm_dtype_quantized(dt)) return lv_quant_block(m, dt, base, n, K, k);
    LLVMValueRef at = lv_add(m, lv_muli(m, n, K), k);
    return LLVMBuildInBoundsGEP2(m->b, lv_elem_type(m, dt), base, &at, 1, "");
}

/* Values of k a gemv lane takes at once: 16 bytes of a float weight (one value where rows
 * do not start on 16 bytes), or a block-quantized weight's sub-block. */
static int gemv_width(const ex_kernel *k) {
    if (gm_dtype_quantized(k->wtype)) return LV_QSUB;
    int64_t size = (int64_t)gm_dtype_size(k->wtype);
    return k->k * size % 16 ? 1 : (int)(16 / size);
}

#define GEMV_UNROLL 8   /* at most, chunks of a weight row a lane loads at once */
#define GEMV_UNROLL_Q 2 /* the same for quantized sub-blocks, each decoded into 32 registers */

/* A warp's running sums over k: R dot products of x·(g) with weight rows, and Σx² for
 * norm_matmul's 1/rms, which is factored out of the sums (applied to each finished one). */
typedef struct {
    const mm_ctx *c;
    int rows;                         /* R: nv_gemv_rows, or 2 for "_gemv_geglu" */
    int unroll;                       /* chunks a lane loads at once: GEMV_UNROLL, or a part's if fewer */
    LLVMValueRef w[NV_GEMV_MAX_ROWS]; /* each dot product's matrix */
    LLVMValueRef n[NV_GEMV_MAX_ROWS]; /* and its row there (clamped below N) */
} gemv_ctx;

/* Adds the chunk at k (w values) to the scalar sums v[0..R) (dots) and v[R] (Σx²). */
static void gemv_piece(lv_emit *m, const gemv_ctx *g, LLVMValueRef k, int w, const LLVMValueRef *v, LLVMValueRef *next) {
    const mm_ctx *c = g->c;
    LLVMValueRef x = x_value(m, c, k, k, NULL, w), ws[NV_GEMV_MAX_ROWS];
    for (int r = 0; r < g->rows; r++) ws[r] = w_values(m, c, g->w[r], g->n[r], k, w);
    if (c->g) {
        LLVMValueRef raw = lv_load_aligned(m, c->x, k, GM_F32, w, w > 1 ? 16 : 4);
        next[g->rows] = lv_fadd(m, v[g->rows], lv_hsum(m, lv_fmul(m, raw, raw)));
    }
    for (int r = 0; r < g->rows; r++) next[r] = lv_fadd(m, v[r], lv_hsum(m, lv_fmul(m, x, ws[r])));
}

/* The warp's sums (dots and Σx², partial per lane) over k in [k0, k1) into out[0..R]: lanes
 * take chunks of w values (16 bytes of weights, or a quantized sub-block), 32·w apart,
 * g->unroll chunks at a time with their loads issued together, then single chunks, then
 * single values (none for a quantized weight: k1 − k0 is whole sub-blocks, so the single
 * chunks take it to k1). Each chunk's products are summed at once, so the loop carries
 * scalars (few registers, more warps resident). k0 is a multiple of 32·w. */
static void gemv_sums(lv_emit *m, const gemv_ctx *g, LLVMValueRef lane, int w, LLVMValueRef k0, LLVMValueRef k1,
                      LLVMValueRef *out) {
    int64_t chunk = NV_WARP * w, big = g->unroll * chunk;
    int n = g->rows + 1, U = g->unroll;
    LLVMValueRef len = lv_sub(m, k1, k0), at = lv_add(m, k0, lv_muli(m, lane, w));
    LLVMValueRef unrolled = lv_add(m, k0, lv_muli(m, LLVMBuildSDiv(m->b, len, lv_int(m, big), ""), big));
    int whole = gm_dtype_quantized(g->c->k->wtype);
    LLVMValueRef bulk = whole ? k1 : lv_add(m, k0, lv_muli(m, LLVMBuildSDiv(m->b, len, lv_int(m, chunk), ""), chunk));
    LLVMValueRef acc[GEMV_UNROLL * (NV_GEMV_MAX_ROWS + 1)], sum[NV_GEMV_MAX_ROWS + 1];
    for (int i = 0; i < U * n; i++) acc[i] = lv_real(m, 0, 1);
    lv_loop l;
    strided_loop(m, &l, at, unrolled, big, U * n, acc);
    memcpy(acc, l.v, U * n * sizeof *acc);
    for (int u = 0; u < U; u++) gemv_piece(m, g, lv_addi(m, l.i, u * chunk), w, l.v + u * n, acc + u * n);
    lv_loop_end(m, &l, acc);
    for (int i = 0; i < n; i++) {
        sum[i] = l.v[i];
        for (int u = 1; u < U; u++) sum[i] = lv_fadd(m, sum[i], l.v[u * n + i]);
    }
    strided_loop(m, &l, lv_add(m, unrolled, lv_muli(m, lane, w)), bulk, chunk, n, sum);
    memcpy(sum, l.v, n * sizeof *sum);
    gemv_piece(m, g, l.i, w, l.v, sum);
    lv_loop_end(m, &l, sum);
    memcpy(sum, l.v, n * sizeof *sum);
    if (!whole) {
        strided_loop(m, &l, lv_add(m, bulk, lane), k1, NV_WARP, n, sum);
        memcpy(sum, l.v, n * sizeof *sum);
        gemv_piece(m, g, l.i, 1, l.v, sum);
        lv_loop_end(m, &l, sum);
    }
    memcpy(out, l.v, n * sizeof *out);
}

/* Each column's S parts (warps w·S .. w·S + S−1 of the block) summed by the first of them,
 * through shared memory; its lane 0 then has the totals in sums. */
static void gemv_join(lv_emit *m, const gemv_ctx *g, int S, LLVMValueRef warp, LLVMValueRef lane, LLVMValueRef *sums) {
    int n = g->rows + 1;
    LLVMValueRef part = shared_array(m, "parts", (NV_THREADS / NV_WARP) * n);
    LLVMBasicBlockRef first = lv_if_begin(m, is_zero(m, lane));
    for (int i = 0; i < n; i++) shared_store(m, part, lv_addi(m, lv_muli(m, warp, n), i), sums[i]);
    lv_if_end(m, first);
    barrier(m);
    LLVMValueRef lead = lv_sub(m, warp, LLVMBuildURem(m->b, warp, lv_int(m, S), ""));
    for (int i = 0; i < n; i++) {
        sums[i] = lv_real(m, 0, 1);
        for (int p = 0; p < S; p++) sums[i] = lv_fadd(m, sums[i], shared_load(m, part, lv_addi(m, lv_muli(m, lv_addi(m, lead, p), n), i)));
    }
}

#define GEMV_STAGE 8192 /* norm_matmul's normalised x in shared memory for K up to this (32 KB) */

/* norm_matmul's x · (g + add_one) into shared memory, once per block, and 1/rms of x (a block
 * sum): the warps then read x as a plain matmul does, with no Σx² or norm weight in their loops
 * (an H200 streamed gate/up at 3.2 TB/s with them there, the plain head at 4.0). */
static LLVMValueRef stage_normalised(lv_emit *m, mm_ctx *c) {
    LLVMValueRef xs = shared_array(m, "xn", c->K), tid = sreg(m, "tid.x"), zero = lv_real(m, 0, 1);
    lv_loop l;
    strided_loop(m, &l, tid, lv_int(m, c->K), NV_THREADS, 1, &zero);
    LLVMValueRef xv = lv_load(m, c->x, l.i, GM_F32, 1), ss = lv_fadd(m, l.v[0], lv_fmul(m, xv, xv));
    if (!c->bf16) shared_store(m, xs, l.i, x_value(m, c, l.i, l.i, NULL, 1));
    lv_loop_end(m, &l, &ss);
    LLVMValueRef inv = inv_rms(m, block_sum(m, l.v[0], shared_array(m, "red", NV_THREADS / NV_WARP)), c->K,
                               c->k->attr[IR_A_EPS]);
    if (c->bf16) { /* the normalised x is rounded, so 1/rms goes in before, not after the sums */
        strided_loop(m, &l, tid, lv_int(m, c->K), NV_THREADS, 0, NULL);
        shared_store(m, xs, l.i, x_value(m, c, l.i, l.i, inv, 1));
        lv_loop_end(m, &l, NULL);
        barrier(m);
        inv = NULL;
    }
    c->x = xs, c->g = NULL;
    return inv;
}

/* Asks L2 for the bytes [0, len) from p on (len < lines · 4096), a 128-byte line per lane. */
static void prefetch_l2(lv_emit *m, LLVMValueRef p, LLVMValueRef len, int lines, LLVMValueRef lane) {
    LLVMTypeRef ty = LLVMFunctionType(m->void_t, &m->i64, 1, 0);
    LLVMValueRef as = LLVMGetInlineAsm(ty, "prefetch.L2 [$0];", 17, "l", 1, 1, 0, LLVMInlineAsmDialectATT, 0);
    for (int i = 0; i < lines; i++) {
        LLVMValueRef off = lv_muli(m, lv_addi(m, lane, i * NV_WARP), 128);
        LLVMBasicBlockRef done = lv_if_begin(m, lt(m, off, len));
        LLVMValueRef at = LLVMBuildAdd(m->b, LLVMBuildPtrToInt(m->b, p, m->i64, ""), off, "");
        LLVMBuildCall2(m->b, ty, as, &at, 1, "");
        lv_if_end(m, done);
    }
}

#define GEMV_PREFETCH (4 << 20) /* matrices up to this many bytes are prefetched */

/* Before a small matrix's gemv waits for the kernel before it (wait_for_previous), it has L2
 * fetch the warp's part of its weight rows, which no kernel writes, a line per lane per
 * instruction. Measured on an H200 (each kernel alone): the 270M's matrices of 0.3-2.6 MB
 * took 0.5 µs less, and the 2B's 8 MB q and o up to 1 µs more; its 64 MB ones twice as long
 * (their prefetched lines left L2 before they were read). Prefetching only the first 2, 4 or
 * 8 KB of each warp's part of the large ones cost 2B decode 4-12 %. */
static void prefetch_rows(lv_emit *m, const gemv_ctx *g, LLVMValueRef lane, LLVMValueRef k0, LLVMValueRef k1, int64_t P) {
    gm_dtype dt = g->c->k->wtype;
    if ((int64_t)gm_dtype_bytes(dt, g->c->N * g->c->K) > GEMV_PREFETCH) return;
    int lines = (int)(((int64_t)gm_dtype_bytes(dt, P) + NV_WARP * 128 - 1) / (NV_WARP * 128));
    LLVMValueRef len = weight_bytes(m, dt, lv_sub(m, k1, k0));
    for (int r = 0; r < g->rows; r++) prefetch_l2(m, weight_at(m, dt, g->w[r], g->c->K, g->n[r], k0), len, lines, lane);
}

/* Output column n of the gemv from its finished dot products d[0..): the "_gemv" entry's d[0]
 * through the epilogue; "_gemv_geglu"'s gelu_tanh(d[0]) · d[1], each scaled (gate and up are
 * one kernel, so one out_scale). */
static void gemv_store(lv_emit *m, const mm_ctx *c, int geglu, LLVMValueRef n, const LLVMValueRef *d) {
    static const ex_kernel geglu_op = {.op = IR_GEGLU};
    if (geglu) lv_store(m, c->out, n, lv_elementwise_value(m, &geglu_op, scaled(m, c, d[0]), scaled(m, c, d[1]), 1));
    else epilogue(m, c, n, d[0]);
}

/* The "_gemv" entry: one row of x. Each warp takes R = nv_gemv_rows(N) output columns and a
 * 1/S part of k, S = nv_gemv_split, so a small matrix still spreads over many warps. With
 * grid.y = 2 its blocks of y = 1 compute a twin: the matrix at k_cache into v_cache. The
 * "_gemv_geglu" entry takes one column n of two matrices, the gate (in[1]) and the up
 * projection (k_cache), for the output gelu_tanh(gate) · up: decode's feed-forward in one
 * launch (nvptx.h). */
static void emit_gemv(lv_emit *m, const mm_ctx *matmul, int geglu) {
    mm_ctx staged = *matmul, *c = &staged;
    if (!geglu && c->k->op != IR_MATMUL_ADD) { /* twins have no residual */
        LLVMValueRef twin = LLVMBuildICmp(m->b, LLVMIntNE, sreg(m, "ctaid.y"), lv_int(m, 0), "");
        c->w = LLVMBuildSelect(m->b, twin, param(m, P_KC), c->w, "");
        c->out = LLVMBuildSelect(m->b, twin, param(m, P_VC), c->out, "");
    }
    int cols = geglu ? 1 : nv_gemv_rows(c->N);
    gemv_ctx g = {c, geglu ? 2 : cols, GEMV_UNROLL, {0}, {0}};
    int S = nv_gemv_split(c->k), w = gemv_width(c->k), most = gm_dtype_quantized(c->k->wtype) ? GEMV_UNROLL_Q : GEMV_UNROLL;
    int64_t chunk = NV_WARP * w, P = (c->K / S + chunk - 1) / chunk * chunk; /* k per part */
    LLVMValueRef tid = sreg(m, "tid.x"), lane = LLVMBuildURem(m->b, tid, lv_int(m, NV_WARP), "");
    LLVMValueRef warp = LLVMBuildUDiv(m->b, tid, lv_int(m, NV_WARP), ""), sums[NV_GEMV_MAX_ROWS + 1];
    LLVMValueRef col = lv_add(m, lv_muli(m, sreg(m, "ctaid.x"), NV_THREADS / NV_WARP / S), LLVMBuildUDiv(m->b, warp, lv_int(m, S), ""));
    LLVMValueRef n0 = lv_muli(m, col, cols), k0 = imin(m, lv_muli(m, LLVMBuildURem(m->b, warp, lv_int(m, S), ""), P), lv_int(m, c->K));
    int64_t part_chunks = (P < c->K ? P : c->K) / chunk;
    g.unroll = part_chunks < 1 ? 1 : part_chunks < most ? (int)part_chunks : most;
    for (int r = 0; r < g.rows; r++) {
        g.w[r] = geglu && r ? param(m, P_KC) : c->w;
        g.n[r] = imin(m, geglu ? n0 : lv_addi(m, n0, r), lv_int(m, c->N - 1));
    }
    LLVMValueRef k1 = imin(m, lv_addi(m, k0, P), lv_int(m, c->K));
    prefetch_rows(m, &g, lane, k0, k1, P);
    wait_for_previous(m);
    LLVMValueRef inv = c->g && c->K <= GEMV_STAGE ? stage_normalised(m, c) : NULL; /* nv_ptx refuses bf16 above */
    gemv_sums(m, &g, lane, w, k0, k1, sums);
    for (int i = 0; i <= g.rows; i++) sums[i] = warp_sum(m, sums[i]);
    if (S > 1) gemv_join(m, &g, S, warp, lane, sums);
    if (c->g) inv = inv_rms(m, sums[g.rows], c->K, c->k->attr[IR_A_EPS]);
    for (int r = 0; r < g.rows; r++) sums[r] = inv ? lv_fmul(m, sums[r], inv) : sums[r];
    LLVMValueRef lead = LLVMBuildAnd(m->b, is_zero(m, lane),
                                     is_zero(m, LLVMBuildURem(m->b, warp, lv_int(m, S), "")), "");
    LLVMBasicBlockRef first = lv_if_begin(m, lead);
    for (int r = 0; r < cols; r++) {
        LLVMValueRef n = lv_addi(m, n0, r);
        LLVMBasicBlockRef stored = lv_if_begin(m, lt(m, n, lv_int(m, c->N)));
        gemv_store(m, c, geglu, n, sums + r);
        lv_if_end(m, stored);
    }
    lv_if_end(m, first);
}

/* norm_matmul's 1/rms of the block's NV_BM rows into inv[]: a warp per row in turn. */
static void tile_inv_rms(lv_emit *m, const mm_ctx *c, LLVMValueRef t0, LLVMValueRef inv) {
    LLVMValueRef tid = sreg(m, "tid.x"), lane = LLVMBuildURem(m->b, tid, lv_int(m, NV_WARP), ""), zero = lv_real(m, 0, 1);
    lv_loop r, k;
    strided_loop(m, &r, LLVMBuildUDiv(m->b, tid, lv_int(m, NV_WARP), ""), lv_int(m, NV_BM), NV_THREADS / NV_WARP, 0, NULL);
    LLVMValueRef t = imin(m, lv_add(m, t0, r.i), lv_addi(m, param(m, P_T), -1));
    strided_loop(m, &k, lane, lv_int(m, c->K), NV_WARP, 1, &zero);
    LLVMValueRef xv = lv_load(m, c->x, lv_add(m, lv_muli(m, t, c->K), k.i), GM_F32, 1);
    LLVMValueRef ss = lv_fadd(m, k.v[0], lv_fmul(m, xv, xv));
    lv_loop_end(m, &k, &ss);
    shared_store(m, inv, r.i, inv_rms(m, warp_sum(m, k.v[0]), c->K, c->k->attr[IR_A_EPS]));
    lv_loop_end(m, &r, NULL);
    barrier(m);
}

/* Stages element e of the block's [64 rows][bk k] slices of x and w into xs, ws ([bk][64],
 * k-major); ws NULL: x alone. */
static void stage(lv_emit *m, const mm_ctx *c, int bk, LLVMValueRef e, LLVMValueRef k0, LLVMValueRef t0, LLVMValueRef n0,
                  LLVMValueRef inv, LLVMValueRef xs, LLVMValueRef ws) {
    LLVMValueRef row = LLVMBuildUDiv(m->b, e, lv_int(m, bk), ""), kk = LLVMBuildURem(m->b, e, lv_int(m, bk), "");
    LLVMValueRef k = lv_add(m, k0, kk), k_ok = lt(m, k, lv_int(m, c->K)), kc = imin(m, k, lv_int(m, c->K - 1));
    LLVMValueRef t = lv_add(m, t0, row), n = lv_add(m, n0, row), T = param(m, P_T), zero = lv_real(m, 0, 1);
    LLVMValueRef tc = imin(m, t, lv_addi(m, T, -1)), nc = imin(m, n, lv_int(m, c->N - 1));
    LLVMValueRef x = x_value(m, c, lv_add(m, lv_muli(m, tc, c->K), kc), kc, inv ? shared_load(m, inv, row) : NULL, 1);
    LLVMValueRef w = ws ? w_values(m, c, c->w, nc, kc, 1) : NULL, at = lv_add(m, lv_muli(m, kk, NV_BM), row);
    shared_store(m, xs, at, LLVMBuildSelect(m->b, LLVMBuildAnd(m->b, k_ok, lt(m, t, T), ""), x, zero, ""));
    if (ws) shared_store(m, ws, at, LLVMBuildSelect(m->b, LLVMBuildAnd(m->b, k_ok, lt(m, n, lv_int(m, c->N)), ""), w, zero, ""));
}

/* A block-quantized weight's [64 rows][32 k] slice into ws: thread i < 64 decodes the
 * sub-block of row n0 + i from k0 on (K is whole sub-blocks, so every k is real; rows from N
 * on are zero) and stores it. */
static void stage_quantized(lv_emit *m, const mm_ctx *c, LLVMValueRef k0, LLVMValueRef n0, LLVMValueRef ws) {
    LLVMValueRef row = sreg(m, "tid.x"), n = lv_add(m, n0, row);
    LLVMBasicBlockRef done = lv_if_begin(m, lt(m, row, lv_int(m, NV_BN)));
    LLVMValueRef v = w_values(m, c, c->w, imin(m, n, lv_int(m, c->N - 1)), k0, LV_QSUB), real = lt(m, n, lv_int(m, c->N));
    for (int kk = 0; kk < LV_QSUB; kk++)
        shared_store(m, ws, lv_addi(m, row, kk * NV_BN), LLVMBuildSelect(m->b, real, lv_slice(m, v, kk, 1), lv_real(m, 0, 1), ""));
    lv_if_end(m, done);
}

/* The tiled entry: block (n tile, t tile), thread (ty, tx) owns rows ty·4.. and columns tx·4..;
 * k in steps of NV_BK, or of a sub-block for a quantized weight (decoded once, whole). */
static void emit_tiled(lv_emit *m, const mm_ctx *c) {
    int quantized = gm_dtype_quantized(c->k->wtype), bk = quantized ? LV_QSUB : NV_BK;
    LLVMValueRef tid = sreg(m, "tid.x"), tx = LLVMBuildURem(m->b, tid, lv_int(m, 16), ""), ty = LLVMBuildUDiv(m->b, tid, lv_int(m, 16), "");
    LLVMValueRef n0 = lv_muli(m, sreg(m, "ctaid.x"), NV_BN), t0 = lv_muli(m, sreg(m, "ctaid.y"), NV_BM);
    LLVMValueRef xs = shared_array(m, "xs", bk * NV_BM), ws = shared_array(m, "ws", bk * NV_BN), inv = NULL;
    if (c->g) tile_inv_rms(m, c, t0, inv = shared_array(m, "inv", NV_BM));
    LLVMValueRef init[16], next[16];
    for (int i = 0; i < 16; i++) init[i] = lv_real(m, 0, 1);
    lv_loop k;
    strided_loop(m, &k, lv_int(m, 0), lv_int(m, c->K), bk, 16, init);
    for (int q = 0; q < bk * NV_BM / NV_THREADS; q++)
        stage(m, c, bk, lv_addi(m, tid, q * NV_THREADS), k.i, t0, n0, inv, xs, quantized ? NULL : ws);
    if (quantized) stage_quantized(m, c, k.i, n0, ws);
    barrier(m);
    memcpy(next, k.v, sizeof next);
    for (int kk = 0; kk < bk; kk++) {
        LLVMValueRef a[4], b[4];
        for (int i = 0; i < 4; i++) {
            a[i] = shared_load(m, xs, lv_add(m, lv_int(m, kk * NV_BM + i), lv_muli(m, ty, 4)));
            b[i] = shared_load(m, ws, lv_add(m, lv_int(m, kk * NV_BN + i), lv_muli(m, tx, 4)));
        }
        for (int i = 0; i < 16; i++) next[i] = lv_fadd(m, next[i], lv_fmul(m, a[i / 4], b[i % 4]));
    }
    barrier(m);
    lv_loop_end(m, &k, next);
    for (int i = 0; i < 16; i++) {
        LLVMValueRef t = lv_add(m, t0, lv_addi(m, lv_muli(m, ty, 4), i / 4));
        LLVMValueRef n = lv_add(m, n0, lv_addi(m, lv_muli(m, tx, 4), i % 4));
        LLVMBasicBlockRef done = lv_if_begin(m, LLVMBuildAnd(m->b, lt(m, t, param(m, P_T)), lt(m, n, lv_int(m, c->N)), ""));
        epilogue(m, c, lv_add(m, lv_muli(m, t, c->N), n), k.v[i]);
        lv_if_end(m, done);
    }
}

/* ---- tensor cores: prefill under --activations bf16 on bf16 weights (nv_uses_mma) ---- */

/* The block stages [64 rows][32 k] of x and [128 rows][32 k] of w in shared memory as bf16
 * pairs, a row MMA_ROW 32-bit words apart (16 pairs and 4 of padding: a fragment's 32 loads,
 * rows g = lane/4 and pairs lane%4, then fall in 32 different banks). */
#define MMA_ROW 20

_Static_assert(NV_MMA_BM == NV_BM, "norm_matmul's 1/rms of a tile's rows (tile_inv_rms) serves both tiles");

static LLVMValueRef word_at(lv_emit *m, LLVMValueRef arr, LLVMValueRef idx) {
    return LLVMBuildInBoundsGEP2(m->b, m->i32, arr, &idx, 1, "");
}

static LLVMValueRef bf16_word(lv_emit *m, LLVMValueRef v) {
    LLVMValueRef h = LLVMBuildBitCast(m->b, LLVMBuildFPTrunc(m->b, v, LLVMBFloatTypeInContext(m->ctx), ""), m->i16, "");
    return LLVMBuildZExt(m->b, h, m->i32, "");
}

/* Values i and i + 1 of the f32 vector v rounded to bf16 (to nearest even) in one 32-bit word,
 * value i in the low half: an mma fragment register's pair of k. */
static LLVMValueRef pack_bf16(lv_emit *m, LLVMValueRef v, int i) {
    LLVMValueRef lo = bf16_word(m, lv_slice(m, v, i, 1)), hi = bf16_word(m, lv_slice(m, v, i + 1, 1));
    return LLVMBuildOr(m->b, lo, LLVMBuildShl(m->b, hi, LLVMConstInt(m->i32, 16, 0), ""), "");
}

/* Each thread's share of a step's staging: MMA_CHUNKS chunks of x (4 f32 values each, x[i])
 * and of w (8 bf16 values, 4 words each, w[i]). Chunk i of thread tid is chunk tid + 256·i of
 * the block's: x row e/8, values 4·(e%8)..; w row e/4, values 8·(e%4)... */
#define MMA_CHUNKS 2
_Static_assert(NV_MMA_BM * NV_MMA_BK / 4 == MMA_CHUNKS * NV_THREADS && NV_MMA_BN * NV_MMA_BK / 8 == MMA_CHUNKS * NV_THREADS,
               "each thread stages MMA_CHUNKS chunks of x and of w");
typedef struct {
    LLVMValueRef x[MMA_CHUNKS], w[MMA_CHUNKS];
} mma_fetch;

static LLVMValueRef chunk_of(lv_emit *m, int i) { return lv_addi(m, sreg(m, "tid.x"), i * NV_THREADS); }

/* Loads the step at k0 into registers: x's rows [t0, t0 + 64) normalised (by inv[] and g for
 * norm_matmul) and w's rows [n0, n0 + 128) as stored, 16-byte loads; rows from T or N on and
 * k from K on are zero (so a step past the end loads zeros, harmlessly). */
static void mma_fetch_step(lv_emit *m, const mm_ctx *c, LLVMValueRef k0, LLVMValueRef t0, LLVMValueRef n0, LLVMValueRef inv,
                           mma_fetch *f) {
    LLVMValueRef T = param(m, P_T);
    LLVMTypeRef quad = LLVMVectorType(m->i32, 4);
    mm_ctx unrounded = *c; /* the store rounds */
    unrounded.bf16 = 0;
    for (int i = 0; i < MMA_CHUNKS; i++) {
        LLVMValueRef e = chunk_of(m, i), row = LLVMBuildUDiv(m->b, e, lv_int(m, NV_MMA_BK / 4), "");
        LLVMValueRef t = lv_add(m, t0, row), k = lv_add(m, k0, lv_muli(m, LLVMBuildURem(m->b, e, lv_int(m, NV_MMA_BK / 4), ""), 4));
        LLVMValueRef ok = LLVMBuildAnd(m->b, lt(m, t, T), lt(m, k, lv_int(m, c->K)), "");
        LLVMValueRef tc = imin(m, t, lv_addi(m, T, -1)), kc = imin(m, k, lv_int(m, c->K - 4));
        LLVMValueRef v = x_value(m, &unrounded, lv_add(m, lv_muli(m, tc, c->K), kc), kc, inv ? shared_load(m, inv, row) : NULL, 4);
        f->x[i] = LLVMBuildSelect(m->b, ok, v, lv_real(m, 0, 4), "");
        e = chunk_of(m, i), row = LLVMBuildUDiv(m->b, e, lv_int(m, NV_MMA_BK / 8), "");
        LLVMValueRef n = lv_add(m, n0, row);
        k = lv_add(m, k0, lv_muli(m, LLVMBuildURem(m->b, e, lv_int(m, NV_MMA_BK / 8), ""), 8));
        ok = LLVMBuildAnd(m->b, lt(m, n, lv_int(m, c->N)), lt(m, k, lv_int(m, c->K)), "");
        LLVMValueRef at = lv_add(m, lv_muli(m, imin(m, n, lv_int(m, c->N - 1)), c->K), imin(m, k, lv_int(m, c->K - 8)));
        LLVMValueRef wv = LLVMBuildLoad2(m->b, quad, LLVMBuildInBoundsGEP2(m->b, m->i16, c->w, &at, 1, ""), "");
        LLVMSetAlignment(wv, 16);
        f->w[i] = LLVMBuildSelect(m->b, ok, wv, LLVMConstNull(quad), "");
    }
}

/* The fetched step into shared memory: x rounded to bf16 pairs into xs, w as it came into ws. */
static void mma_store_step(lv_emit *m, const mma_fetch *f, LLVMValueRef xs, LLVMValueRef ws) {
    for (int i = 0; i < MMA_CHUNKS; i++) {
        LLVMValueRef e = chunk_of(m, i), per = lv_int(m, NV_MMA_BK / 4);
        LLVMValueRef pair = LLVMBuildInsertElement(m->b, LLVMGetUndef(LLVMVectorType(m->i32, 2)), pack_bf16(m, f->x[i], 0), lv_int(m, 0), "");
        pair = LLVMBuildInsertElement(m->b, pair, pack_bf16(m, f->x[i], 2), lv_int(m, 1), "");
        LLVMValueRef at = lv_add(m, lv_muli(m, LLVMBuildUDiv(m->b, e, per, ""), MMA_ROW), lv_muli(m, LLVMBuildURem(m->b, e, per, ""), 2));
        LLVMSetAlignment(LLVMBuildStore(m->b, pair, word_at(m, xs, at)), 8);
        per = lv_int(m, NV_MMA_BK / 8);
        at = lv_add(m, lv_muli(m, LLVMBuildUDiv(m->b, e, per, ""), MMA_ROW), lv_muli(m, LLVMBuildURem(m->b, e, per, ""), 4));
        LLVMSetAlignment(LLVMBuildStore(m->b, f->w[i], word_at(m, ws, at)), 16);
    }
}

/* acc (4 floats) += the 16 × 8 product of a (4 words: rows g and g + 8, k pairs q and q + 4 of
 * a 16-value step) and b (2 words: column g, k pairs q and q + 4), g = lane/4, q = lane%4. */
static void mma(lv_emit *m, const LLVMValueRef *a, const LLVMValueRef *b, LLVMValueRef *acc) {
    LLVMValueRef args[10] = {a[0], a[1], a[2], a[3], b[0], b[1], acc[0], acc[1], acc[2], acc[3]};
    LLVMValueRef d = call_intrinsic(m, "llvm.nvvm.mma.m16n8k16.row.col.bf16", NULL, 0, args, 10);
    for (int i = 0; i < 4; i++) acc[i] = LLVMBuildExtractValue(m->b, d, (unsigned)i, "");
}

#define MMA_TILES_M 2 /* a warp's 32 × 32: 2 × 4 mma tiles of 16 × 8 */
#define MMA_TILES_N 4
#define MMA_ACC (MMA_TILES_M * MMA_TILES_N * 4)
#define MMA_CARRY (MMA_ACC + 2 * MMA_CHUNKS)
_Static_assert(MMA_CARRY <= LV_MAX_CARRY, "the k loop carries the accumulators and the next step's chunks");

/* The warp's mma steps over the staged 32 values of k: two of 16, its 2 × 4 tiles each. */
static void mma_block(lv_emit *m, LLVMValueRef xs, LLVMValueRef ws, LLVMValueRef wm, LLVMValueRef wn, LLVMValueRef lane,
                      LLVMValueRef *acc) {
    LLVMValueRef g = LLVMBuildUDiv(m->b, lane, lv_int(m, 4), ""), q = LLVMBuildURem(m->b, lane, lv_int(m, 4), "");
    for (int kk = 0; kk < NV_MMA_BK / 16; kk++) {
        LLVMValueRef a[MMA_TILES_M][4], b[MMA_TILES_N][2], col = lv_addi(m, q, kk * 8);
        for (int i = 0; i < MMA_TILES_M; i++) {
            LLVMValueRef r = lv_add(m, lv_muli(m, wm, 32), lv_addi(m, g, i * 16));
            for (int h = 0; h < 4; h++) { /* rows r, r + 8; pairs col, col + 4 */
                LLVMValueRef at = lv_add(m, lv_muli(m, lv_addi(m, r, 8 * (h & 1)), MMA_ROW), lv_addi(m, col, 4 * (h / 2)));
                a[i][h] = LLVMBuildLoad2(m->b, m->i32, word_at(m, xs, at), "");
            }
        }
        for (int j = 0; j < MMA_TILES_N; j++) {
            LLVMValueRef n = lv_add(m, lv_muli(m, wn, 32), lv_addi(m, g, j * 8));
            for (int h = 0; h < 2; h++)
                b[j][h] = LLVMBuildLoad2(m->b, m->i32, word_at(m, ws, lv_add(m, lv_muli(m, n, MMA_ROW), lv_addi(m, col, 4 * h))), "");
        }
        for (int i = 0; i < MMA_TILES_M; i++)
            for (int j = 0; j < MMA_TILES_N; j++) mma(m, a[i], b[j], acc + (i * MMA_TILES_N + j) * 4);
    }
}

/* The tensor-core entry: block (n tile of 128, t tile of 64); warp w computes rows 32·(w/4)..
 * and columns 32·(w%4).. of it. Each step of 32 values of k stores the chunks fetched during
 * the step before into shared memory, fetches the next step's into registers and runs its
 * mma on the stored one, so the loads from memory overlap the tensor cores. The epilogue
 * (residual, softcap) acts on each output as the f32 tiles' does. */
static void emit_mma(lv_emit *m, const mm_ctx *c) {
    LLVMValueRef tid = sreg(m, "tid.x"), lane = LLVMBuildURem(m->b, tid, lv_int(m, NV_WARP), "");
    LLVMValueRef warp = LLVMBuildUDiv(m->b, tid, lv_int(m, NV_WARP), "");
    LLVMValueRef wm = LLVMBuildUDiv(m->b, warp, lv_int(m, 4), ""), wn = LLVMBuildURem(m->b, warp, lv_int(m, 4), "");
    LLVMValueRef n0 = lv_muli(m, sreg(m, "ctaid.x"), NV_MMA_BN), t0 = lv_muli(m, sreg(m, "ctaid.y"), NV_MMA_BM);
    LLVMValueRef xs = shared_array(m, "xs", NV_MMA_BM * MMA_ROW), ws = shared_array(m, "ws", NV_MMA_BN * MMA_ROW), inv = NULL;
    /* two blocks an SM are enough: ptxas may then give the kernel 128 registers, where its own
     * guess capped some at 64 and spilled (the accumulators and the step fetched ahead) */
    annotate(m, "minctasm", 2);
    if (c->g) tile_inv_rms(m, c, t0, inv = shared_array(m, "inv", NV_MMA_BM));
    /* carried: the accumulators, then the step fetched ahead (x's chunks, w's) */
    LLVMValueRef init[MMA_CARRY], next[MMA_CARRY];
    mma_fetch f;
    mma_fetch_step(m, c, lv_int(m, 0), t0, n0, inv, &f);
    for (int i = 0; i < MMA_ACC; i++) init[i] = lv_real(m, 0, 1);
    memcpy(init + MMA_ACC, f.x, sizeof f.x);
    memcpy(init + MMA_ACC + MMA_CHUNKS, f.w, sizeof f.w);
    lv_loop k;
    strided_loop(m, &k, lv_int(m, 0), lv_int(m, c->K), NV_MMA_BK, MMA_CARRY, init);
    memcpy(f.x, k.v + MMA_ACC, sizeof f.x);
    memcpy(f.w, k.v + MMA_ACC + MMA_CHUNKS, sizeof f.w);
    mma_store_step(m, &f, xs, ws);
    barrier(m);
    mma_fetch_step(m, c, lv_addi(m, k.i, NV_MMA_BK), t0, n0, inv, &f); /* in flight while the tensor cores work */
    memcpy(next, k.v, MMA_ACC * sizeof *next);
    mma_block(m, xs, ws, wm, wn, lane, next);
    memcpy(next + MMA_ACC, f.x, sizeof f.x);
    memcpy(next + MMA_ACC + MMA_CHUNKS, f.w, sizeof f.w);
    barrier(m);
    lv_loop_end(m, &k, next);
    LLVMValueRef g = LLVMBuildUDiv(m->b, lane, lv_int(m, 4), ""), q = LLVMBuildURem(m->b, lane, lv_int(m, 4), "");
    for (int i = 0; i < MMA_ACC; i++) { /* tile (i/16, i/4 % 4), value i%4: row g (+8 for 2, 3), column 2q (+1 for odd) */
        int tile_m = i / (4 * MMA_TILES_N), tile_n = i / 4 % MMA_TILES_N, e = i % 4;
        LLVMValueRef t = lv_add(m, t0, lv_add(m, lv_muli(m, wm, 32), lv_addi(m, g, tile_m * 16 + 8 * (e / 2))));
        LLVMValueRef n = lv_add(m, n0, lv_add(m, lv_muli(m, wn, 32), lv_addi(m, lv_muli(m, q, 2), tile_n * 8 + (e & 1))));
        LLVMBasicBlockRef done = lv_if_begin(m, LLVMBuildAnd(m->b, lt(m, t, param(m, P_T)), lt(m, n, lv_int(m, c->N)), ""));
        epilogue(m, c, lv_add(m, lv_muli(m, t, c->N), n), k.v[i]);
        lv_if_end(m, done);
    }
}

/* A matmul kernel's entry: the tiled one (suffix ""), or the gemv, plain or geglu. */
static void matmul_entry(lv_emit *m, const ex_kernel *k, const char *name, const char *suffix, int gemv, int geglu) {
    char full[96];
    snprintf(full, sizeof full, "%s%s", name, suffix);
    kernel_begin(m, full, NV_THREADS, gemv);
    mm_ctx c = {.k = k, .K = k->k, .N = k->n, .x = param(m, P_IN0), .w = param(m, P_IN1),
                .g = k->op == IR_NORM_MATMUL ? param(m, P_IN2) : NULL, .out = param(m, P_OUT),
                .bf16 = nv_rounds_x(k)};
    if (gemv) emit_gemv(m, &c, geglu);
    else if (nv_uses_mma(k)) emit_mma(m, &c);
    else emit_tiled(m, &c);
    LLVMBuildRetVoid(m->b);
}

static void emit_matmul(lv_emit *m, const ex_kernel *k, const char *name) {
    matmul_entry(m, k, name, "", 0, 0);
    matmul_entry(m, k, name, "_gemv", 1, 0);
    if (nv_has_geglu_entry(k)) matmul_entry(m, k, name, "_gemv_geglu", 1, 1);
}

void nv_emit_kernel(lv_emit *m, const ex_kernel *k, const char *name) {
    if (ir_is_matmul(k->op)) {
        emit_matmul(m, k, name);
        return;
    }
    nv_launch l;
    nv_launch_of(k, 1, &l);
    kernel_begin(m, name, (int)l.block, 0);
    switch (k->op) {
    case IR_EMBED: emit_embed(m, k); break;
    case IR_RMS_NORM:
    case IR_NORM_ADD: emit_norm(m, k); break;
    case IR_ROPE: emit_rope(m, k); break;
    case IR_ATTENTION: emit_attention(m, k); break;
    default: emit_elementwise(m, k); break; /* lv_elementwise_value refuses any other op */
    }
    LLVMBuildRetVoid(m->b);
    if (k->op != IR_ATTENTION) return;
    char store[80];
    snprintf(store, sizeof store, "%s_store", name);
    kernel_begin(m, store, NV_THREADS, 0);
    emit_kv_store(m, k);
    LLVMBuildRetVoid(m->b);
}

/* ---- the module ---- */

/* The architectures the kernels are written for (compute capability 8.0 on). */
static const char *const gpus[] = {"sm_80", "sm_86", "sm_89", "sm_90", NULL};

int nv_gpu_known(const char *gpu) {
    for (int i = 0; gpus[i]; i++)
        if (!strcmp(gpus[i], gpu)) return 1;
    return 0;
}

const char *nv_gpu_names(void) {
    static char names[64];
    if (!*names)
        for (int i = 0; gpus[i]; i++) strcat(strcat(names, i ? ", " : ""), gpus[i]);
    return names;
}

int nv_target(lv_target *t, const char *gpu, gm_err *e) {
    if (!nv_gpu_known(gpu)) return gm_fail(e, "--gpu: unknown GPU \"%s\" (available: %s)", gpu, nv_gpu_names());
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
    t->triple = LLVMCreateMessage("nvptx64-nvidia-cuda");
    t->cpu = LLVMCreateMessage(gpu);
    t->features = LLVMCreateMessage("+ptx78");
    t->width = 1;
    t->prefer_width = NULL;
    t->int8_dot = LV_INT8_WIDEN;
    t->bf16_dot = 0;
    return 0;
}

/* The reduced-precision modes the GPU kernels have: bf16 activations on bf16 weights (the
 * tensor cores in prefill; decode's norm_matmul normalises its row in shared memory first,
 * so up to GEMV_STAGE values); int8 activations have no GPU kernels. */
static int gpu_modes(const ex_kernel *ks, int n, gm_err *e) {
    for (int i = 0; i < n; i++) {
        const ex_kernel *k = &ks[i];
        if (k->attr[IR_A_X_INT8] != 0 && gm_dtype_quantized(k->wtype))
            return gm_fail(e, "nvptx: --activations int8 has no GPU kernels (the %s kernels read %s weights); use f32, "
                              "or bf16 with bf16 weights", ir_ops[k->op].name, gm_dtype_name(k->wtype));
        if (k->op == IR_NORM_MATMUL && nv_rounds_x(k) && k->k > GEMV_STAGE)
            return gm_fail(e, "nvptx: --activations bf16 normalises rows of up to %d values on the GPU; this model's "
                              "norm_matmul rows have %lld (use f32 activations)", GEMV_STAGE, (long long)k->k);
    }
    return 0;
}

char *nv_ptx(const ex_kernel *ks, int n, const char *gpu, gm_err *e) {
    lv_target t;
    if (gpu_modes(ks, n, e) || nv_target(&t, gpu, e)) return NULL;
    LLVMTargetMachineRef tm = lv_target_machine(&t, 0, e);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = tm ? lv_module_build(ctx, &t, tm, ks, n, nv_emit_kernel, e) : NULL;
    char *text = NULL, *msg = NULL;
    LLVMMemoryBufferRef buf;
    if (mod && LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMAssemblyFile, &msg, &buf)) {
        gm_fail(e, "nvptx: PTX generation failed: %s", msg);
        LLVMDisposeMessage(msg);
    } else if (mod) {
        size_t len = LLVMGetBufferSize(buf);
        text = gm_malloc(len + 1);
        memcpy(text, LLVMGetBufferStart(buf), len);
        text[len] = 0;
        LLVMDisposeMemoryBuffer(buf);
    }
    if (mod) LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    if (tm) LLVMDisposeTargetMachine(tm);
    lv_target_free(&t);
    return text;
}
