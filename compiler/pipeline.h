/* pipeline.h — which passes run on a model's IR, and running them. */
#ifndef GM_PIPELINE_H
#define GM_PIPELINE_H

#include "ir/ir.h"

#include <stdio.h>

typedef struct {
    int level;               /* -O level: 0 no pass, 1 fold, merge repeats, drop dead code, plan memory; 2 (default) also fuse */
    const char *passes;      /* --passes: "name,-name,...", switches single passes on or off; may be NULL */
    const char *dump_after;  /* --dump-after: print the IR after this pass (or "frontend"); may be NULL */
    FILE *dump;              /* where dumps go (stderr when NULL) */
    const char *target;      /* the target the graph is compiled for (compiler/targets.h); NULL: native.
                                Its weight layout decides whether pack_weights runs. */
    const char *activations; /* --activations: "f32" (NULL: the same; exact), "int8" (quantize_activations) or "bf16" (round_activations) */
    const char *weights_dtype; /* --weights-dtype: a float checkpoint's matrices quantized at load (model.c); NULL: as stored */
} gm_pipeline_opts;

#define GM_DEFAULT_LEVEL 2

/* The passes in the order they run: pass i's name, the lowest -O level
 * that runs it, and whether it is a cleanup pass, one that drops what
 * other passes leave unread or lays out the arena and changes no op (for
 * tools that walk the pipeline, e.g. bench's ablation). */
int pipeline_pass_count(void);
const char *pipeline_pass_name(int i);
int pipeline_pass_level(int i);
int pipeline_pass_is_cleanup(int i);

/* Checks the option strings: the level, the names of passes, --activations and --weights-dtype. */
int pipeline_check(const gm_pipeline_opts *o, gm_err *e);
/* Runs the enabled passes in order, verifying after each; writes the names of
 * those that ran, comma-separated, to applied (may be NULL). */
int pipeline_run(ir_graph *g, const gm_pipeline_opts *o, char *applied, size_t len, gm_err *e);

#endif
