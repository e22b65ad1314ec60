/* targets.c — every target gemmac knows, one row each (targets.h). The CPU
 * rows share the kernels of backends/llvm (vector width and registers from
 * backends/x86_64 or backends/aarch64); aarch64 executables link with
 * Debian's cross compiler and the runtime the build cross-compiles into
 * build/aarch64 (scripts/deps.sh installs both). nvptx is backends/nvptx,
 * whose kernels read row-major weights (a warp per output column reads a row
 * with coalesced loads), so pack_weights leaves its weights as the
 * checkpoint stores them; its executables are host programs. The reference
 * interpreter is a row too: it reads the checkpoint's own row-major layout,
 * so the layout pass never runs for it, and it compiles nothing (no cc). */
#include "targets.h"

#include "backends/exec/kernel.h"

#include <string.h>

static const gm_target_row targets[] = {
    {"native", "this CPU (LLVM's host CPU name and features)", EX_PANEL, "jit / aot", "cc", "", NULL},
    {"x86_64", "x86-64 baseline (SSE2)", EX_PANEL, "aot", "cc", "", NULL},
    {"x86_64-v3", "x86-64-v3 (AVX2, FMA)", EX_PANEL, "aot", "cc", "", NULL},
    {"x86_64-v4", "x86-64-v4 (AVX-512)", EX_PANEL, "aot", "cc", "", NULL},
    {"aarch64", "64-bit Arm Linux, NEON (--cpu neoverse-v1, cortex-a76, ...; default generic)", EX_PANEL, "aot",
     "aarch64-linux-gnu-gcc", "aarch64", "aarch64-deps/usr/lib/aarch64-linux-gnu"},
    {"nvptx", "NVIDIA GPUs: PTX for --gpu sm_80, sm_86, sm_89 or sm_90, run by the CUDA driver", 0, "nvptx", "cc", "",
     NULL},
    {"reference", "the C interpreter (--backend reference), the oracle; runs, never compiles", 0, "reference", NULL, "",
     NULL},
};
#define N_TARGETS (int)(sizeof targets / sizeof *targets)

const gm_target_row *gm_target_find(const char *name) {
    for (int i = 0; i < N_TARGETS; i++)
        if (!strcmp(targets[i].name, name ? name : "native")) return &targets[i];
    return NULL;
}

const char *gm_target_names(void) { return "native, x86_64, x86_64-v3, x86_64-v4, aarch64, nvptx"; }

void gm_targets_print(FILE *out) {
    fprintf(out, "%-10s %-14s %-10s %s\n", "target", "weights", "engine", "compiles for");
    for (int i = 0; i < N_TARGETS; i++) {
        char layout[32];
        snprintf(layout, sizeof layout, targets[i].panel ? "panels of %d" : "row-major", targets[i].panel);
        fprintf(out, "%-10s %-14s %-10s %s\n", targets[i].name, layout, targets[i].engine, targets[i].summary);
    }
}
