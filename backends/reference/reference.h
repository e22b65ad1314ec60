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

/* Runs training graph g (passes/differentiate.c) on one sequence of T
 * tokens, the target of position t being targets[t] (-1: not scored), with
 * bound as above. Returns every value's buffer by id (NULL for inputs,
 * weights and intermediates already dropped): the loss at [g->loss][0], and
 * each weight's gradient at the value whose grad_of names it, f32 in the
 * weight's shape. Free with ref_free_values. NULL with e set on bad ids or
 * a sequence longer than the context. */
float **ref_run_training(const ir_graph *g, const gm_tensor *const *bound, const int32_t *tokens,
                         const int32_t *targets, int T, gm_err *e);
void ref_free_values(const ir_graph *g, float **act);

#endif
