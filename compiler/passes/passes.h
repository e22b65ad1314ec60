/* passes.h — the IR rewrites, one file each, run in order by pipeline.c. A
 * pass keeps the graph's meaning: every backend must give the oracle's
 * numbers at every pass setting (tests/test_golden.c runs them all). */
#ifndef GM_PASSES_H
#define GM_PASSES_H

#include "ir/ir.h"

void pass_fold_constants(ir_graph *g);
void pass_fuse_elementwise(ir_graph *g);
void pass_eliminate_dead(ir_graph *g);

#endif
