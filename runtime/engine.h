/* engine.h — the compiled-model ABI, one for every backend.
 *
 * An engine is a model ready to run: weights bound, a KV cache for `context`
 * positions, and scratch memory. The sampling loop, chat mode and the CLI sit
 * on this struct only, so the reference interpreter, JIT and AOT code share
 * everything above it. Positions are absolute: a call at `pos` appends its
 * tokens to the cache after the first `pos` ones (which it keeps).
 *
 * An engine made for several sequences (rt_engine_opts.sequences, the CPU
 * engines) keeps a KV cache for each: prefill and decode work on the one
 * use_sequence chose (0 at first), and decode_batch steps many at once, each
 * at its own position, so every weight is read once for all of them. */
#ifndef GM_ENGINE_H
#define GM_ENGINE_H

#include "common.h"

typedef struct rt_engine rt_engine;

/* Where a profiling caller collects each kernel's wall time, summed by op
 * name over calls (gemmac bench --profile). */
#define RT_PROFILE_MAX 32
typedef struct {
    int n;
    const char *name[RT_PROFILE_MAX];
    double seconds[RT_PROFILE_MAX];
} rt_profile;

void rt_profile_add(rt_profile *p, const char *name, double seconds);

struct rt_engine {
    const char *backend;   /* "reference", ... */
    int64_t vocab;         /* logits per row */
    int context;           /* positions the KV cache holds */
    size_t kv_bytes;       /* memory of the KV cache */
    double compile_s;      /* seconds spent compiling the model (JIT backends), else 0 */
    /* Feeds tokens[0..n) at positions pos..pos+n-1. Writes logits [n][vocab]
     * when all_rows, else only the last row [vocab]. */
    int (*prefill)(rt_engine *en, const int32_t *tokens, int n, int pos, float *logits,
                   int all_rows, gm_err *e);
    /* One token at position pos; logits [vocab]. */
    int (*decode)(rt_engine *en, int32_t token, int pos, float *logits, gm_err *e);
    int sequences;         /* KV caches kept: 1, or rt_engine_opts.sequences where the backend batches */
    /* The sequence prefill and decode work on, in [0, sequences). NULL for one sequence. */
    int (*use_sequence)(rt_engine *en, int seq, gm_err *e);
    /* n sequences (seq[i] distinct, in [0, sequences)) one step each: token[i]
     * at position pos[i]; logits [n][vocab]. NULL where the backend runs one
     * sequence (rt_decode_batch then steps them one after another). */
    int (*decode_batch)(rt_engine *en, int n, const int32_t *tokens, const int *seq, const int *pos, float *logits,
                        gm_err *e);
    /* Sequence `to` takes the first n positions of `from`'s cache, as if it
     * had prefilled them itself, and goes on at position n: a shared prompt
     * prefix (a few-shot block) prefilled once. NULL for one sequence. */
    int (*copy_sequence)(rt_engine *en, int from, int to, int n, gm_err *e);
    void (*free)(rt_engine *en);
    int from_cache;        /* the compiled code came from the on-disk JIT cache */
    rt_profile *profile;   /* when set, the compiled backends add each kernel's time to it */
};

#define RT_MAX_SEQUENCES 1024

/* A training batch: T rows of token ids and of targets (the id row t
 * predicts, -1: not scored). Several sequences may be packed one after
 * another: start[t] is the first row of row t's sequence (NULL: one
 * sequence), so that each row attends within its sequence and is rotated by
 * its position there, and one call runs them all. */
typedef struct {
    const int32_t *tokens, *targets, *start;
    int T;
    int loss_only;          /* stop at the loss: no gradients (a held-out loss) */
} rt_batch;

/* A training graph (compiler/passes/differentiate.c) ready to run, the
 * training counterpart of an engine. run returns every value's buffer by
 * id (NULL where none is kept): the loss (the mean over every scored row)
 * at [loss][0], and each weight's gradient, f32 in the weight's shape, at
 * the value whose grad_of names it. The buffers are the trainer's, valid
 * until its next run. NULL with e set on bad ids or a sequence longer than
 * the context. Weights are read at each run, so a trainer sees its
 * parameters change between steps. */
typedef struct rt_trainer rt_trainer;
struct rt_trainer {
    const char *backend;
    double compile_s;      /* seconds spent compiling its kernels (JIT), else 0 */
    int from_cache;        /* the compiled code came from the on-disk JIT cache */
    float *const *(*run)(rt_trainer *t, const rt_batch *b, gm_err *e);
    void (*free)(rt_trainer *t);
    rt_profile *profile;   /* when set, each op's time is added to it */
    size_t activation_bytes; /* the compiled backends: the activations' memory (arenas) after the last run */
};

/* The rows of b that have a target (>= 0): those its loss is the mean over. */
int rt_batch_scored(const rt_batch *b);

/* Batch b against a model of vocab ids and max_context positions: each
 * sequence within the context, ids and targets in the vocabulary. */
int rt_check_training_batch(const rt_batch *b, int64_t vocab, int64_t max_context, gm_err *e);

/* How an engine is made; the same for every backend. */
typedef struct {
    int context;        /* KV cache positions, 1..the model's max_context */
    int full_kv;        /* keep every position even for sliding layers (tests) */
    int no_cache;       /* JIT: neither read nor write the on-disk cache of compiled code */
    int sequences;      /* KV caches to keep, for decode_batch (0 or 1: one; CPU engines only) */
} rt_engine_opts;

/* opts against the model's max_context and what the backend can do (batches: keep several sequences). */
int rt_check_opts(const rt_engine_opts *o, int64_t max_context, const char *backend, int batches, gm_err *e);

/* The check every backend makes before a call. */
int rt_check_span(const rt_engine *en, const int32_t *tokens, int n, int pos, gm_err *e);
/* en->decode_batch, or each row by decode where the backend has none. */
int rt_decode_batch(rt_engine *en, int n, const int32_t *tokens, const int *seq, const int *pos, float *logits,
                    gm_err *e);
/* decode_batch's: every token and position in range, sequences distinct and kept. */
int rt_check_batch(const rt_engine *en, int n, const int32_t *tokens, const int *seq, const int *pos, gm_err *e);

#endif
