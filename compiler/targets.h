/* targets.h — the targets gemmac compiles for, one row each (targets.c):
 * what `--target` names, what the row compiles for, the weight layout its
 * matmul kernels read (which decides whether the layout pass packs weights),
 * the engine that runs its code, and how its executables are linked.
 * `gemmac targets` prints the table. */
#ifndef GM_TARGETS_H
#define GM_TARGETS_H

#include <stdio.h>

typedef struct {
    const char *name;        /* --target */
    const char *summary;     /* what it compiles for */
    int panel;               /* its matmul kernels read weights in panels of this many rows; 0: row-major */
    const char *engine;      /* the backend that runs its code */
    const char *cc;          /* the compiler driver that links its executables; NULL: not a compile target */
    const char *lib_dir;     /* its LLVM-free runtime libraries: this folder beside gemmac ("" the host's) */
    const char *deps_dir;    /* more of its libraries (-L) beside gemmac, or NULL */
} gm_target_row;

/* The row of name (NULL: native); NULL when unknown. */
const gm_target_row *gm_target_find(const char *name);
/* The names, comma-separated, for messages. */
const char *gm_target_names(void);
void gm_targets_print(FILE *out);

#endif
