/* plan.h — where each activation lives during a call.
 *
 * The arena of a call with room for R rows is one f32 buffer; activation v
 * gets the [R][C] block that starts at offset[v] · R. Blocks are reused: a
 * value's block becomes free after the last node that reads it, and a later
 * value with the same column count takes it (the output of a node never
 * shares a block with its own inputs). A model's activations then need a few
 * blocks per distinct width instead of one per value. Pure C, no LLVM: an AOT
 * model needs the same plan. */
#ifndef GM_LLVM_PLAN_H
#define GM_LLVM_PLAN_H

#include "ir/ir.h"

typedef struct {
    int64_t *offset;  /* per value id: columns before its block, -1 for non-activations */
    int64_t width;    /* columns of the whole arena: floats per row of room */
} lv_plan;

void lv_plan_make(const ir_graph *g, lv_plan *p);
void lv_plan_free(lv_plan *p);

#endif
