/* sampler.h — picks the next token from a row of logits: the last step of
 * the generation loop.
 *
 * The steps, in this order, written down so that a flag always means the
 * same thing. Temperature comes before top-p and min-p (as in Hugging Face
 * transformers), so the cuts see the distribution that is drawn from;
 * llama.cpp's default chain applies it after them.
 *
 *  1. Repetition penalty (CTRL-style). Each distinct token among the last
 *     repeat_last_n of recent[] has its logit divided by repeat_penalty when
 *     it is > 0 and multiplied by it otherwise, once however often it occurs.
 *     Ids outside [0, vocab) in recent[] are ignored. penalty 1: off.
 *  2. Greedy. temperature 0 returns the argmax; ties go to the lowest id.
 *  3. Top-k. Keeps the k largest logits, ties at the cut going to the lowest
 *     ids. k 0 (or >= vocab): off. k 1 is the same as greedy.
 *  4. Softmax at temperature over what is left: p_i ∝ exp((l_i - l_max) / T),
 *     in double.
 *  5. Top-p. The candidates sorted by probability, descending, ties by id
 *     ascending; keeps the shortest prefix whose cumulative probability
 *     reaches top_p. The max is always kept. top_p 1: off.
 *  6. Min-p. Keeps the candidates with p >= min_p · p_max. min_p 0: off.
 *     (p/p_max does not depend on normalisation, so renormalising after
 *     top-p would not change this set.)
 *  7. Renormalise the kept probabilities and draw one with the sampler's own
 *     PCG32 stream: u uniform in [0, 1), the first kept token whose
 *     cumulative probability exceeds u. The walk is most probable first with
 *     top-k on; with it off, rt_sample walks in an order of its own, fixed by
 *     the inputs, which has the same distribution and spares it sorting the
 *     whole vocabulary (rt_sampler_candidates sorts).
 *
 * The cut points of 5 and 6 compare with a slack of 1e-6 (RT_SAMPLER_SLACK):
 * probabilities come from f32 logits and the options are f32 too (0.8f is
 * 0.800000012), so without it --top-p 0.8 on probabilities 0.5, 0.3, 0.15,
 * 0.05 would keep three tokens or two depending on rounding. With it, top-p
 * keeps the shortest prefix with cumulative >= top_p - 1e-6, and min-p keeps
 * p / p_max >= min_p - 1e-6.
 *
 * Randomness: the same options (seed included), the same logits and recent
 * tokens give the same choices, call after call. Each non-greedy rt_sample
 * takes one u (two PCG32 outputs, 53 bits) from the stream; greedy takes
 * none, nor does rt_sampler_candidates.
 *
 * Odd logits: a NaN counts as -inf everywhere. When the largest logit is
 * not finite (+inf, or every logit -inf) the sampler falls back to greedy. */
#ifndef GM_SAMPLER_H
#define GM_SAMPLER_H

#include "common.h"

#define RT_SAMPLER_SLACK 1e-6

typedef struct {
    float temperature;     /* 0: greedy (argmax, ties to the lowest id) */
    int top_k;             /* keep the k most likely; 0: off */
    float top_p;           /* keep the smallest set whose probability reaches p; 1: off */
    float min_p;           /* keep tokens with p >= min_p * p(max); 0: off */
    float repeat_penalty;  /* CTRL-style penalty on recently seen tokens; 1: off */
    int repeat_last_n;     /* how many recent tokens the penalty looks at; 0: none */
    uint64_t seed;         /* same seed, same choices */
} rt_sampler_opts;

/* Gemma's recommended sampling: temperature 1.0, top_k 64, top_p 0.95;
 * min_p 0 (off), repeat_penalty 1 (off), repeat_last_n 64, seed 0 (a fixed
 * seed: the CLI may pick one from the clock, the library stays reproducible). */
rt_sampler_opts rt_sampler_defaults(void);

/* Checks every range and names the CLI flag of the first bad one, e.g.
 * "--top-p: expected a number in (0, 1], found 1.5". Ranges: --temperature
 * finite >= 0, --top-k >= 0, --top-p in (0, 1], --min-p in [0, 1],
 * --repeat-penalty finite > 0, --repeat-last-n >= 0. */
int rt_sampler_check(const rt_sampler_opts *o, gm_err *e);

typedef struct rt_sampler rt_sampler;

/* A sampler for rows of `vocab` logits (1 <= vocab <= INT32_MAX) with
 * options that pass rt_sampler_check; NULL otherwise. It owns O(vocab)
 * scratch memory, so one rt_sample allocates nothing. */
rt_sampler *rt_sampler_new(const rt_sampler_opts *o, int64_t vocab);
void rt_sampler_free(rt_sampler *s);

/* The next token. logits[vocab] is modified in place (penalty, step 1);
 * recent[0..n_recent) are the tokens so far (prompt + generated). */
int32_t rt_sample(rt_sampler *s, float *logits, const int32_t *recent, int n_recent);

/* The candidate set after steps 1-6, sorted by probability descending (ties
 * by id ascending), with renormalised probabilities; returns the count.
 * ids/probs need room for rt_sampler_max_candidates(s) entries (vocab always
 * suffices). Applies the penalty to logits in place like rt_sample, so give
 * each call its own copy of a row. Draws nothing. */
int rt_sampler_candidates(rt_sampler *s, float *logits, const int32_t *recent, int n_recent, int32_t *ids,
                          float *probs);

/* The greedy choice: the largest logit, ties to the lowest id, NaN as -inf. */
int32_t rt_argmax(const float *logits, int64_t vocab);

/* The most rt_sampler_candidates can return: top_k when 0 < top_k < vocab,
 * else vocab (1 for greedy). */
int rt_sampler_max_candidates(const rt_sampler *s);

#endif
