/* passes.h — the IR rewrites, one file each, run in order by pipeline.c. A
 * pass keeps the graph's meaning: every backend must give the oracle's
 * numbers at every pass setting (tests/test_golden.c runs them all). */
#ifndef GM_PASSES_H
#define GM_PASSES_H

#include "ir/ir.h"

void pass_fold_constants(ir_graph *g);
void pass_eliminate_common(ir_graph *g);
void pass_fuse_elementwise(ir_graph *g);
void pass_fuse_matmul(ir_graph *g);
void pass_pack_weights(ir_graph *g);
void pass_quantize_activations(ir_graph *g);
void pass_round_activations(ir_graph *g);
void pass_eliminate_dead(ir_graph *g);
void pass_plan_memory(ir_graph *g);
/* Not in the pipeline's list: makes a training graph (loss and weight
 * gradients) of a forward graph; `gemmac grad` and `finetune` run it. */
int pass_differentiate(ir_graph *g, gm_err *e);
/* Also for training only: LoRA adapters of this rank on the layer block's
 * matmuls, every other weight frozen (lora.c); before pass_differentiate. */
int pass_add_lora(ir_graph *g, int rank, double alpha, gm_err *e);
/* And after pass_differentiate: the head and its gradients on the rows
 * that have a target only (score_head.c). */
void pass_score_head(ir_graph *g);

/* What the fusion passes share. A fused op replaces its last node in place
 * (that node's inputs are all defined before it, so the order stays valid)
 * and leaves the absorbed producers unread for eliminate_dead. */

/* Whether value v has one reader and is not the graph's output (uses from
 * ir_use_counts): its producer may then be absorbed into that reader. */
static inline int read_once(const ir_graph *g, const int *uses, int v) { return uses[v] == 1 && v != g->logits; }

/* Whether n is an rms_norm over whole rows (its weight spans all columns). */
static inline int is_row_norm(const ir_graph *g, const ir_node *n) {
    const ir_value *x = &g->values[n->in[0]];
    return n->op == IR_RMS_NORM && g->values[n->in[1]].dims[0] == x->dims[x->ndim - 1];
}

/* Turns n into op, its attributes back to the defaults. */
static inline void retype(ir_node *n, ir_op op) {
    n->op = op;
    for (int a = 0; a < IR_ATTR_COUNT; a++) n->attr[a] = ir_attr_defaults[a];
}

#endif
