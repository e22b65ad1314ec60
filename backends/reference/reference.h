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

/* The reference's trainer (runtime/engine.h) of training graph g, with
 * bound as above; its sums in double make it the oracle of the others. */
rt_trainer *ref_trainer_create(const ir_graph *g, const gm_tensor *const *bound, gm_err *e);

#endif
