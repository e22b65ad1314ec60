/* aot.c — the object of an AOT executable (see aot.h): the JIT's optimised
 * module (codegen.h) for a named target, plus constant globals holding the
 * kernel table, the description, the weights path and the manifest that
 * `NAME --version` prints, and the table of embedded files with the module
 * assembly that includes them (aot.h). The target machine uses the default code model,
 * position-independent, so the object links into an ordinary PIE. */
#include "aot.h"

#include "codegen.h"
#include "emit.h"
#include "backends/nvptx/ptx.h"

#include <llvm-c/Core.h>
#include <stdio.h>
#include <stdlib.h>

static void add_global(LLVMModuleRef mod, const char *name, LLVMValueRef init) {
    LLVMValueRef g = LLVMAddGlobal(mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
}

static void add_text(LLVMModuleRef mod, const char *name, const char *text) {
    add_global(mod, name, LLVMConstStringInContext2(LLVMGetModuleContext(mod), text, strlen(text), 0));
}

static char *manifest(const lv_aot_model *m, const lv_target *t, const char *ptx) {
    gm_buf b = {0};
    gm_buf_printf(&b, "model: %s\n", m->model_name);
    if (!m->n_blobs) gm_buf_printf(&b, "weights: %s\n", m->weights);
    for (int i = 0; i < m->n_blobs; i++)
        gm_buf_printf(&b, "%s: embedded (%zu bytes, fnv1a-64 %016llx) from %s\n", m->blobs[i].role, m->blobs[i].size,
                      (unsigned long long)m->blobs[i].fnv1a, m->blobs[i].path);
    gm_buf_printf(&b, "gemmac: %s\n", GM_VERSION);
    if (*ptx) gm_buf_printf(&b, "target: nvptx (PTX for %s, run by the CUDA driver; host %s)\n", m->gpu, t->triple);
    else gm_buf_printf(&b, "target: %s (cpu %s, features %s)\n", t->triple, t->cpu, *t->features ? t->features : "baseline");
    gm_buf_printf(&b, "passes: %s; kernels: LLVM O3\n", *m->passes ? m->passes : "none");
    return b.s;
}

/* s as the body of an assembler string: \ and " escaped, other bytes
 * outside printable ASCII as octal escapes. */
static void asm_string(gm_buf *b, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == '"' || *p == '\\') gm_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f) gm_buf_printf(b, "\\%03o", *p);
        else gm_buf_put(b, (const char *)p, 1);
}

/* Module assembly that includes each blob's file between its symbols. */
static void add_blob_asm(LLVMModuleRef mod, const lv_aot_model *m, const lv_target *t) {
    gm_buf b = {0};
    for (int i = 0; i < m->n_blobs; i++) {
        gm_buf_printf(&b, "%s\n.balign 64\n.globl gm_blob_%d_start\ngm_blob_%d_start:\n.incbin \"", t->blob_section, i, i);
        asm_string(&b, m->blobs[i].path);
        gm_buf_printf(&b, "\"\n.globl gm_blob_%d_end\ngm_blob_%d_end:\n.balign 8\n.globl gm_blob_%d_size\n"
                          "gm_blob_%d_size:\n.quad gm_blob_%d_end - gm_blob_%d_start\n", i, i, i, i, i, i);
    }
    LLVMSetModuleInlineAsm2(mod, b.s, strlen(b.s));
    free(b.s);
}

/* gm_aot_blobs: {name, start, end} of each blob, and gm_aot_n_blobs. */
static void add_blobs(LLVMModuleRef mod, const lv_aot_model *m, const lv_target *t) {
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0), i8 = LLVMInt8TypeInContext(ctx);
    LLVMTypeRef entry = LLVMStructTypeInContext(ctx, (LLVMTypeRef[]){ptr, ptr, ptr}, 3, 0);
    LLVMValueRef *rows = gm_malloc((m->n_blobs + 1) * sizeof *rows);
    for (int i = 0; i < m->n_blobs; i++) {
        char start[40], end[40], name[40];
        snprintf(start, sizeof start, "gm_blob_%d_start", i);
        snprintf(end, sizeof end, "gm_blob_%d_end", i);
        snprintf(name, sizeof name, "gm_blob_%d_name", i);
        add_text(mod, name, m->blobs[i].name);
        LLVMValueRef f[] = {LLVMGetNamedGlobal(mod, name), LLVMAddGlobal(mod, i8, start), LLVMAddGlobal(mod, i8, end)};
        rows[i] = LLVMConstStructInContext(ctx, f, 3, 0);
    }
    add_global(mod, "gm_aot_blobs", LLVMConstArray2(entry, rows, m->n_blobs));
    add_global(mod, "gm_aot_n_blobs", LLVMConstInt(LLVMInt32TypeInContext(ctx), m->n_blobs, 0));
    free(rows);
    if (m->n_blobs) add_blob_asm(mod, m, t);
}

/* The tables of aot.h; ptx: the kernels' PTX (nvptx), where gm_aot_fns are null, or "". */
static void add_tables(LLVMModuleRef mod, const lv_aot_model *m, const lv_target *t, const ex_kernel *ks, int n,
                       const char *ptx) {
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    add_global(mod, "gm_aot_kernels", LLVMConstStringInContext2(ctx, (const char *)ks, n * sizeof *ks, 1));
    add_global(mod, "gm_aot_n", LLVMConstInt(LLVMInt32TypeInContext(ctx), n, 0));
    LLVMValueRef *fns = gm_malloc(n * sizeof *fns);
    for (int i = 0; i < n; i++) {
        char name[64];
        ex_kernel_symbol(name, sizeof name, &ks[i], i);
        fns[i] = *ptx ? LLVMConstNull(LLVMPointerTypeInContext(ctx, 0)) : LLVMGetNamedFunction(mod, name);
    }
    add_global(mod, "gm_aot_fns", LLVMConstArray2(LLVMPointerTypeInContext(ctx, 0), fns, n));
    free(fns);
    add_text(mod, "gm_aot_description", m->description);
    add_text(mod, "gm_aot_weights", m->weights);
    add_text(mod, "gm_aot_passes", m->passes);
    add_text(mod, "gm_aot_ptx", ptx);
    char *text = manifest(m, t, ptx);
    add_text(mod, "gm_aot_manifest", text);
    free(text);
    add_blobs(mod, m, t);
}

/* Assembly is verbose: loop headers, spills and reloads are marked, for readers and for the tests
 * that scan the hot loops (test_spills). */
static int write_module(LLVMTargetMachineRef tm, LLVMModuleRef mod, lv_emit_kind kind, const char *path, gm_err *e) {
    char *msg = NULL;
    if (kind == LV_EMIT_ASM) LLVMSetTargetMachineAsmVerbosity(tm, 1);
    int bad = kind == LV_EMIT_LLVM_IR
                  ? LLVMPrintModuleToFile(mod, path, &msg)
                  : LLVMTargetMachineEmitToFile(tm, mod, path, kind == LV_EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile,
                                                &msg);
    if (bad) gm_fail(e, "%s: cannot write: %s (does the directory of -o exist, and is it writable?)", path, msg);
    LLVMDisposeMessage(msg);
    return bad ? -1 : 0;
}

/* nvptx's PTX: the text itself (asm), or a host object holding it and the tables (obj). */
static int emit_ptx(const lv_aot_model *m, const ex_kernel *ks, int n, lv_emit_kind kind, const char *path, gm_err *e) {
    char *ptx = nv_ptx(ks, n, m->gpu, e);
    if (!ptx) return -1;
    int rc = -1;
    if (kind == LV_EMIT_ASM) {
        rc = gm_write_file_atomic(path, ptx, strlen(ptx), e);
    } else {
        lv_target t;
        lv_target_host(&t);
        LLVMTargetMachineRef tm = lv_target_machine(&t, 0, e);
        LLVMContextRef ctx = LLVMContextCreate();
        LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("gemmac-host", ctx);
        LLVMSetTarget(mod, t.triple);
        if (tm) {
            LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
            LLVMSetModuleDataLayout(mod, layout);
            LLVMDisposeTargetData(layout);
            add_tables(mod, m, &t, ks, n, ptx);
            rc = write_module(tm, mod, kind, path, e);
            LLVMDisposeTargetMachine(tm);
        }
        LLVMDisposeModule(mod);
        LLVMContextDispose(ctx);
        lv_target_free(&t);
    }
    free(ptx);
    return rc;
}

/* The kernels as an object with the tables, assembly or LLVM IR for a CPU target; for
 * nvptx, LLVM IR of its kernels here (no tables: they go in the host object), the rest
 * through emit_ptx. */
int lv_aot_emit(const lv_aot_model *m, const ex_kernel *ks, int n, lv_emit_kind kind, const char *path, gm_err *e) {
    int gpu = !strcmp(m->target, "nvptx");
    if (gpu && kind != LV_EMIT_LLVM_IR) return emit_ptx(m, ks, n, kind, path, e);
    lv_target t;
    if (gpu ? nv_target(&t, m->gpu, e) : lv_target_named(&t, m->target, m->cpu, e)) return -1;
    LLVMTargetMachineRef tm = lv_target_machine(&t, 0, e);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = tm ? lv_module_build(ctx, &t, tm, ks, n, gpu ? nv_emit_kernel : lv_emit_kernel, e) : NULL;
    int rc = -1;
    if (mod) {
        if (!gpu) add_tables(mod, m, &t, ks, n, "");
        rc = write_module(tm, mod, kind, path, e);
        LLVMDisposeModule(mod);
    }
    LLVMContextDispose(ctx);
    if (tm) LLVMDisposeTargetMachine(tm);
    lv_target_free(&t);
    return rc;
}
