/* aot.h — ahead-of-time compilation: a model's kernels for a named target,
 * written as one object (or its assembly, or its LLVM IR) together with what
 * an AOT executable needs to rebuild and run the model without LLVM
 * (compiler/aot_main.c reads these symbols):
 *   gm_aot_kernels  the ex_kernel descriptions, gm_aot_n of them, as bytes
 *   gm_aot_fns      their code, in the same order (null for nvptx)
 *   gm_aot_ptx      nvptx: the kernels' PTX (backends/nvptx), loaded by the
 *                   GPU engine at start-up; "" for CPU targets
 *   gm_aot_description, gm_aot_weights, gm_aot_passes, gm_aot_manifest
 *                   NUL-terminated text (gm_aot_passes: the passes the
 *                   kernels were compiled after, which the executable reruns)
 *   gm_aot_blobs    gm_aot_n_blobs files embedded whole (--embed-weights),
 *                   each {name, start, end}: the checkpoint, its
 *                   tokenizer.model when there is one, and the packed weights
 *                   (compiler/packed.c), told apart by name. Their bytes are not
 *                   IR constants (models run to GBs): module-level assembly
 *                   `.incbin`s each file into the target's blob section
 *                   (target.c: .lrodata on x86-64) between the symbols
 *                   gm_blob_N_start and gm_blob_N_end (gm_blob_N_size holds
 *                   the difference). */
#ifndef GM_LLVM_AOT_H
#define GM_LLVM_AOT_H

#include "backends/exec/kernel.h"

typedef enum { LV_EMIT_OBJ, LV_EMIT_ASM, LV_EMIT_LLVM_IR } lv_emit_kind;

typedef struct {
    const char *name;         /* for messages at run time: "embedded:model.safetensors" */
    const char *role;         /* for the manifest: weights, tokenizer, packed weights */
    const char *path;         /* absolute */
    size_t size;              /* for the manifest, with the hash */
    uint64_t fnv1a;
} lv_aot_blob;

typedef struct {
    const char *target;       /* native, x86_64, x86_64-v3, x86_64-v4, nvptx */
    const char *gpu;          /* nvptx: the GPU architecture of the PTX (sm_80, ...) */
    const char *cpu;          /* aarch64: the Arm CPU (--cpu), or NULL */
    const char *model_name;   /* for the manifest */
    const char *description;  /* the description's JSON */
    const char *weights;      /* the checkpoint's path */
    const char *passes;       /* the IR passes that ran, comma-separated */
    const lv_aot_blob *blobs; /* the files to embed (see above), n_blobs of them */
    int n_blobs;
} lv_aot_model;

/* Writes ks[0..n) and the model's data to path (not atomically: the caller
 * writes a temporary and renames it); -1 after reporting. */
int lv_aot_emit(const lv_aot_model *m, const ex_kernel *ks, int n, lv_emit_kind kind, const char *path, gm_err *e);

/* For the command line, before anything is compiled: whether cpu is an Arm CPU
 * --target aarch64 takes (backends/aarch64/aarch64.c), whether gpu is a GPU
 * architecture --target nvptx emits (backends/nvptx/ptx.c), and the names
 * each takes, comma-separated, for messages. */
int aarch64_cpu_known(const char *cpu);
const char *aarch64_cpu_names(void);
int nv_gpu_known(const char *gpu);
const char *nv_gpu_names(void);

#endif
