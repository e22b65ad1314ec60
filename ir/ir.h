/* ir.h — the tensor IR of gemmac.
 *
 * A graph is a flat list of nodes in execution order over values. A value is
 * the graph input (token ids), a weight (a checkpoint tensor, bound later), or
 * an activation produced by exactly one node. Activations are row-major f32
 * matrices [T, C], where T is symbolic (tokens in this call); weights have
 * concrete shapes, and so have a training graph's loss and weight gradients
 * (passes/differentiate.c). The layer block of a description is unrolled: layer 3's
 * values are named "L3.q", "L3.x", ... so the printer and the error messages
 * point at one place. Ops come from ops.def; each op's attributes are numbers
 * indexed by the ids of attrs.def. */
#ifndef GM_IR_H
#define GM_IR_H

#include "runtime/common.h"

#include <math.h>
#include <stdio.h>

#define IR_MAX_DIMS 4
#define IR_MAX_IN 4       /* the backward ops of attention take (q, k, v, dy) */
#define IR_MAX_KERNEL_IN 3 /* inference ops, the most a GPU kernel takes (backends/nvptx) */
#define IR_DIM_T (-1) /* the symbolic token dimension */
#define IR_DIM_S (-2) /* a training call's scored rows, those with a target (passes/score_head.c) */

typedef enum { ELEMWISE, BROADCAST, INJECTIVE, REDUCTION, OUT_EWISE, OPAQUE } ir_pattern;

typedef enum {
#define OP(id, name, nin, kind, attrs, vjp) IR_##id,
#include "ops.def"
#undef OP
    IR_OP_COUNT
} ir_op;

typedef enum {
#define ATTR(id, name, dflt) IR_A_##id,
#include "attrs.def"
#undef ATTR
    IR_ATTR_COUNT
} ir_attr;

typedef struct {
    const char *name;  /* as written in descriptions and printed IR */
    int n_inputs;      /* exact input count */
    ir_pattern kind;   /* fusion pattern kind */
    unsigned attrs;    /* bit (1 << IR_A_x) for each attribute it takes */
    int training;      /* only in training graphs (ops.def's TRAIN_OP): never in a description */
} ir_op_info;

extern const ir_op_info ir_ops[IR_OP_COUNT];
extern const char *const ir_attr_names[IR_ATTR_COUNT];
extern const double ir_attr_defaults[IR_ATTR_COUNT];
const char *ir_pattern_name(ir_pattern k);
int ir_op_from_name(const char *name);     /* -1 when unknown */
/* The matmul family: x · Wᵀ with W at input 1, plus a prologue or epilogue. */
static inline int ir_is_matmul(ir_op op) { return op == IR_MATMUL || op == IR_NORM_MATMUL || op == IR_MATMUL_ADD; }
/* Whether op's kernels compute each element of a row from that row of its
 * inputs only, reading what they need before writing it (elementwise ops,
 * cross_entropy_dx: a row's softmax), so that plan_memory may lay its output
 * over an input it reads last. */
static inline int ir_writes_in_place(ir_op op) { return ir_ops[op].kind == ELEMWISE || op == IR_CROSS_ENTROPY_DX; }
int ir_attr_from_name(const char *name);   /* -1 when unknown */

typedef enum { IR_INPUT, IR_WEIGHT, IR_ACT } ir_value_kind;

typedef struct {
    char *name;                  /* "tokens", "L3.q", or the weight's tensor name */
    ir_value_kind kind;          /* graph input, weight or activation */
    gm_dtype dtype;              /* i32 for tokens, f32 for activations; weights: as bound */
    int ndim;                    /* 1 or 2 */
    int64_t dims[IR_MAX_DIMS];   /* IR_DIM_T for the token dimension */
    int layer;                   /* layer index, -1 outside the layer block */
    char *role;                  /* weights: the description's role ("q_proj"); else NULL */
    int pin_dtype;               /* weights: 1 if the description fixes dtype */
    char *derived_from;          /* folded weights: the checkpoint tensor it is made from, else NULL */
    double derived_add, derived_mul; /* folded weights: value = (source + add) · mul, in f32 */
    int panel;                   /* weights: 0 row-major [N][K]; P > 0: packed by pack_weights into
                                    panels of P rows, [ceil(N/P)][K][P], the last zero-padded */
    int frozen;                  /* weights: trained around, never trained (LoRA's base; passes/lora.c) */
    char *grad_of;               /* training graphs: the weight whose whole gradient this value is
                                    (its name, which outlives renumbering); else NULL */
} ir_value;

typedef struct {
    ir_op op;                    /* what it computes */
    int in[IR_MAX_IN];           /* input value ids */
    int out;                     /* the value it defines */
    double attr[IR_ATTR_COUNT];  /* attribute values (defaults where not given) */
    int layer;                   /* layer index, -1 in embed/head */
    int cache_slot;              /* attention: its KV cache slot; -1 in training graphs, where it
                                    attends over the call's own rows only (causal, windowed) */
    char *where;                 /* description path, e.g. "graph.layer[3]" (layer 5) */
} ir_node;

typedef struct {
    char *name;                  /* model name from the description */
    char *kind;                  /* layer kind name */
    double window;               /* its attention window, 0 = global (for reports) */
} ir_layer;

typedef struct {
    char *name;                  /* variant name */
    ir_value *values;            /* all values, by id */
    int n_values, cap_values;
    gm_names value_ids;          /* value names to ids (the first value of a name) */
    ir_node *nodes;              /* execution order */
    int n_nodes, cap_nodes;
    int tokens;                  /* id of the token-id input */
    int logits;                  /* id of the output [T, vocab] */
    int targets, loss;           /* training graphs (passes/differentiate.c): the target ids, i32 [T]
                                    (-1: not scored), and the loss [1]; else -1 */
    ir_layer *layers;            /* per-layer kind */
    int n_layers;
    int n_cache_slots;           /* attention ops (each has a KV cache) */
    int64_t vocab, max_context;  /* from the description's config */
    int bos, eos;                /* special token ids */
    int panel;                   /* the panel width its target's matmul kernels read weights in, 0
                                    row-major: set by the pipeline from compiler/targets.c, used by
                                    pack_weights */
    /* The activation arena, as plan_memory lays it out (NULL until it runs).
     * A call with room for R rows gives activation v the [R][C] block that
     * starts at arena_offset[v] · R floats (C its columns); -1 for inputs and
     * weights. arena_width: the arena's columns, floats per row of room.
     * Value ids change under the passes (eliminate_dead renumbers them), so
     * the plan is only valid for the graph it was made on: a pass that changes
     * the graph after plan_memory must drop it (ir_drop_plan; the pipeline
     * does so before every pass). */
    int64_t *arena_offset;
    int64_t arena_width;
} ir_graph;

ir_graph *ir_graph_new(const char *name);
void ir_graph_free(ir_graph *g);

/* Adds a value; returns its id. dims has ndim entries. */
/* Rebuilds g->value_ids after values were removed or renumbered (eliminate_dead). */
void ir_index_values(ir_graph *g);
int ir_add_value(ir_graph *g, const char *name, ir_value_kind kind, gm_dtype dt,
                 int ndim, const int64_t *dims, int layer);
/* Appends a node with default attributes; returns a pointer valid until the
 * next ir_add_node. */
ir_node *ir_add_node(ir_graph *g, ir_op op, const int *in, int out, int layer, const char *where);

int64_t ir_value_elems(const ir_value *v);         /* concrete elements (T and S counted as 1) */
/* Whether v has a fixed shape (a weight's, or a training graph's loss and
 * gradients) rather than one row per token: such activations have no block
 * in the arena; a backend gives each its own buffer. */
static inline int ir_value_fixed(const ir_value *v) { return v->dims[0] >= 0; }
int64_t ir_param_count(const ir_graph *g);          /* elements of all weights */

/* For each KV cache slot: the attention window (0 = global) and the columns
 * of k and v (kv_heads · head_dim). Arrays of g->n_cache_slots entries. */
void ir_cache_slots(const ir_graph *g, int *windows, int *cols);

/* The first node of the head (the nodes after the last layer, which only the
 * last position's logits need), or -1 when the graph has no layer block. */
int ir_head_start(const ir_graph *g);

/* Per value id (malloc'd arrays of g->n_values): the node that defines it
 * (-1 for inputs and weights), and how many node inputs read it. */
int *ir_producers(const ir_graph *g);
int *ir_use_counts(const ir_graph *g);

/* Each activation's live range in node indices: first[v] the node that
 * defines it, last[v] the last node that reads it (first[v] when none; the
 * logits of an inference graph live to g->n_nodes, past the end). An output and the inputs of its
 * node share that node's index, so their ranges overlap. -1 for inputs and
 * weights. Arrays of g->n_values. */
void ir_live_ranges(const ir_graph *g, int *first, int *last);
int64_t ir_value_cols(const ir_graph *g, int v);     /* last dimension: an activation's C (1 for ids [T]) */
/* The rows node n walks: IR_DIM_T or IR_DIM_S, those of its row inputs
 * (scored_rows and all_rows: T, which they gather from or scatter to), or 0
 * for a node of fixed-shape values only (a sum of gradients). */
int64_t ir_node_rows(const ir_graph *g, const ir_node *n);

/* The arena layout a backend uses: the graph's plan when plan_memory made
 * one, else the unplanned layout (each activation its own block, in id
 * order). Fills offset (g->n_values entries, -1 for all but the activations
 * of one row per token); returns the arena's columns. */
int64_t ir_arena_layout(const ir_graph *g, int64_t *offset);
void ir_drop_plan(ir_graph *g);

/* Adds a weight computed from another (by constant folding): (src + add) · mul. */
int ir_add_derived_weight(ir_graph *g, int src, double add, double mul);
/* Adds src repacked into panels of `panel` rows (pack_weights). */
int ir_add_packed_weight(ir_graph *g, int src, int panel);

/* Infers every activation's shape from its node and checks the graph: input
 * counts, shapes that agree, attributes in range, values defined before use.
 * The message names the node (its description path) and the mismatch. */
int ir_verify(ir_graph *g, gm_err *e);

/* Writes the graph as text, one node a line. */
void ir_print(const ir_graph *g, FILE *out);

#endif
