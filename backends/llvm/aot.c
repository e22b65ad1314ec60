/* aot.c — the object of an AOT executable (see aot.h): the JIT's optimised
 * module (codegen.h) for a named target, plus constant globals holding the
 * kernel table, the description, the weights path and the manifest that
 * `NAME --version` prints. The target machine uses the default code model,
 * position-independent, so the object links into an ordinary PIE. */
#include "aot.h"

#include "codegen.h"

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

static char *manifest(const lv_aot_model *m, const lv_target *t) {
    gm_buf b = {0};
    gm_buf_printf(&b, "model: %s\nweights: %s\ngemmac: %s\ntarget: %s (cpu %s, features %s)\npasses: %s; kernels: LLVM O3\n",
                  m->model_name, m->weights, GM_VERSION, t->triple, t->cpu, *t->features ? t->features : "baseline",
                  *m->passes ? m->passes : "none");
    return b.s;
}

static void add_tables(LLVMModuleRef mod, const lv_aot_model *m, const lv_target *t, const lv_kernel *ks, int n) {
    LLVMContextRef ctx = LLVMGetModuleContext(mod);
    add_global(mod, "gm_aot_kernels", LLVMConstStringInContext2(ctx, (const char *)ks, n * sizeof *ks, 1));
    add_global(mod, "gm_aot_n", LLVMConstInt(LLVMInt32TypeInContext(ctx), n, 0));
    LLVMValueRef *fns = gm_malloc(n * sizeof *fns);
    for (int i = 0; i < n; i++) {
        char name[64];
        lv_kernel_symbol(name, sizeof name, &ks[i], i);
        fns[i] = LLVMGetNamedFunction(mod, name);
    }
    add_global(mod, "gm_aot_fns", LLVMConstArray2(LLVMPointerTypeInContext(ctx, 0), fns, n));
    free(fns);
    add_text(mod, "gm_aot_description", m->description);
    add_text(mod, "gm_aot_weights", m->weights);
    char *text = manifest(m, t);
    add_text(mod, "gm_aot_manifest", text);
    free(text);
}

static int write_module(LLVMTargetMachineRef tm, LLVMModuleRef mod, lv_emit_kind kind, const char *path, gm_err *e) {
    char *msg = NULL;
    int bad = kind == LV_EMIT_LLVM_IR
                  ? LLVMPrintModuleToFile(mod, path, &msg)
                  : LLVMTargetMachineEmitToFile(tm, mod, path, kind == LV_EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile,
                                                &msg);
    if (bad) gm_fail(e, "%s: %s", path, msg);
    LLVMDisposeMessage(msg);
    return bad ? -1 : 0;
}

int lv_aot_emit(const lv_aot_model *m, const lv_kernel *ks, int n, lv_emit_kind kind, const char *path, gm_err *e) {
    lv_target t;
    if (lv_target_named(&t, m->target, e)) return -1;
    LLVMTargetMachineRef tm = lv_target_machine(&t, 0, e);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = tm ? lv_module_build(ctx, &t, tm, ks, n, e) : NULL;
    int rc = -1;
    if (mod) {
        add_tables(mod, m, &t, ks, n);
        rc = write_module(tm, mod, kind, path, e);
        LLVMDisposeModule(mod);
    }
    LLVMContextDispose(ctx);
    if (tm) LLVMDisposeTargetMachine(tm);
    lv_target_free(&t);
    return rc;
}
