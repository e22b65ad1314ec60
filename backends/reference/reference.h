/* reference.h — the reference backend: a plain C interpreter of the IR. */
#ifndef GM_REFERENCE_H
#define GM_REFERENCE_H

#include "ir/ir.h"
#include "runtime/engine.h"
#include "runtime/weights.h"

/* bound[v] is the checkpoint tensor of weight value v (NULL for others).
 * The graph and the tensors must outlive the engine. */
rt_engine *ref_engine_create(const ir_graph *g, const gm_tensor *const *bound, const rt_engine_opts *o,
                             gm_err *e);

/* A training batch: T rows of token ids and of targets (the id row t
 * predicts, -1: not scored). Several sequences may be packed one after
 * another: start[t] is the first row of row t's sequence (NULL: one
 * sequence), so that each row attends within its sequence and is rotated by
 * its position there, and one call runs them all. */
typedef struct {
    const int32_t *tokens, *targets, *start;
    int T;
    int loss_only;          /* stop at the loss: no gradients (a held-out loss) */
} ref_batch;

/* Runs training graph g (passes/differentiate.c) on batch b, with bound as
 * above. Returns every value's buffer by id (NULL for inputs, weights and
 * intermediates already dropped): the loss (the mean over every scored row)
 * at [g->loss][0], and each weight's gradient at the value whose grad_of
 * names it, f32 in the weight's shape. Free with ref_free_values. NULL with
 * e set on bad ids or a sequence longer than the context. */
float **ref_run_training(const ir_graph *g, const gm_tensor *const *bound, const ref_batch *b, gm_err *e);
void ref_free_values(const ir_graph *g, float **act);

#endif
