/* parallel.h — many prompts through one engine of several sequences
 * (rt_engine_opts.sequences): continuous batching with a shared prefix
 * (see parallel.c). `gemmac run --parallel` and `gemmac eval` sit on it. */
#ifndef GM_PARALLEL_H
#define GM_PARALLEL_H

#include "generate.h"

typedef struct {
    /* Prompt `index`'s tokens after the prefix, malloc'd into *ids: 1; 0
     * when there are no more prompts; -1 with e set to stop. */
    int (*next)(void *user, int index, int32_t **ids, int *n, gm_err *e);
    /* Prompt `index`'s reply, in the order replies finish: 0, or -1 with e set to stop. */
    int (*done)(void *user, int index, const char *reply, rt_stop_reason why, gm_err *e);
    void *user;
} rt_parallel_io;

typedef struct {
    int prompts, steps;           /* prompts taken; decode_batch calls */
    long long prefill_tokens;     /* the prompts' (and the prefix's, once) */
    long long decode_tokens;      /* tokens decoded, all sequences together */
    double decode_s, wall_s;      /* in decode_batch; the whole run */
} rt_parallel_stats;

/* Every prompt io->next gives, each after prefix[0..n_prefix) (may be
 * empty), generated as o says (o->emit is not called: replies go to
 * io->done). With a prefix the engine's last sequence keeps it (prefilled
 * once, copied for each prompt), so N prompts at once take N + 1 sequences;
 * an engine of one prefills it for each prompt. Sequence i samples with
 * seed so->seed + i. */
int rt_generate_parallel(rt_engine *en, rt_tokenizer *tok, const rt_sampler_opts *so, const int32_t *prefix,
                         int n_prefix, const rt_gen_opts *o, const rt_parallel_io *io, rt_parallel_stats *stats,
                         gm_err *e);

#endif
