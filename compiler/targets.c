/* targets.c — every target gemmac knows, one row each (targets.h). The
 * x86-64 rows share the CPU kernels of backends/llvm (vector width from the
 * CPU's features); nvptx is backends/nvptx, whose kernels read row-major
 * weights (a warp per output column reads a row with coalesced loads), so
 * pack_weights leaves its weights as the checkpoint stores them. */
#include "targets.h"

#include "ir/ir.h"

#include <string.h>

static const gm_target_row targets[] = {
    {"native", "this CPU (LLVM's host CPU name and features)", IR_PANEL, "jit / aot"},
    {"x86_64", "x86-64 baseline (SSE2)", IR_PANEL, "aot"},
    {"x86_64-v3", "x86-64-v3 (AVX2, FMA)", IR_PANEL, "aot"},
    {"x86_64-v4", "x86-64-v4 (AVX-512)", IR_PANEL, "aot"},
    {"nvptx", "NVIDIA GPUs: PTX for --gpu sm_80, sm_86, sm_89 or sm_90, run by the CUDA driver", 0, "nvptx"},
};
#define N_TARGETS (int)(sizeof targets / sizeof *targets)

const gm_target_row *gm_target_find(const char *name) {
    for (int i = 0; i < N_TARGETS; i++)
        if (!strcmp(targets[i].name, name ? name : "native")) return &targets[i];
    return NULL;
}

const char *gm_target_names(void) { return "native, x86_64, x86_64-v3, x86_64-v4, nvptx"; }

void gm_targets_print(FILE *out) {
    fprintf(out, "%-10s %-14s %-10s %s\n", "target", "weights", "engine", "compiles for");
    for (int i = 0; i < N_TARGETS; i++) {
        char layout[32];
        snprintf(layout, sizeof layout, targets[i].panel ? "panels of %d" : "row-major", targets[i].panel);
        fprintf(out, "%-10s %-14s %-10s %s\n", targets[i].name, layout, targets[i].engine, targets[i].summary);
    }
}
