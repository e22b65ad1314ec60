/* parallel.c — many prompts through one engine of several sequences
 * (parallel.h): continuous batching. Each free sequence takes the next
 * prompt and prefills it; then every busy sequence decodes its next token in
 * one decode_batch, so each weight is read once a step for all of them; a
 * finished reply frees its sequence for the next prompt at once, whatever
 * the others are doing. A prefix shared by every prompt (a few-shot block)
 * is prefilled once, on the last sequence, which keeps it: each prompt
 * starts from a copy of that cache (copy_sequence). A copy each time, not
 * once per sequence, because a sliding-window layer's ring wraps: a prompt
 * that runs past the window overwrites the prefix's rows. An engine of one
 * sequence prefills the prefix again for each prompt. Sampling, stop tokens
 * and stop strings are the sessions' own (generate.c), step by step. */
#include "parallel.h"

#include <stdlib.h>

typedef struct {
    rt_session *s;
    rt_gen_state *g;   /* the reply in the making; NULL when the sequence is free */
    int index;         /* its prompt's */
    int32_t next;      /* the token to decode this step */
} slot;

typedef struct {
    rt_engine *en;
    const int32_t *prefix;
    int n_prefix;
    const rt_gen_opts *o;
    const rt_parallel_io *io;
    rt_parallel_stats *stats;
    slot *slots;
    int n_slots, prompts, no_more;
    int holder;        /* the sequence keeping the prefix, or -1 (prefilled for each prompt) */
} run;

/* Slot k's reply is over (or failed): hands it to io->done and frees the slot. */
static int finish(run *r, slot *k, int failed, gm_err *e) {
    char *reply = NULL;
    rt_stop_reason why;
    int rc = rt_gen_end(k->g, failed, &reply, &why, e);
    k->g = NULL;
    if (!rc) rc = r->io->done(r->io->user, k->index, reply, why, e);
    free(reply);
    return rc;
}

/* Asks the reply of slot k for its next token; finishes it when there is none. */
static int advance(run *r, slot *k, gm_err *e) {
    int more = rt_gen_next(k->g, &k->next, e);
    return more > 0 ? 0 : finish(r, k, more < 0, e);
}

/* Slot k (free) takes the next prompt, if any: prefix, prompt, first token. */
static int start(run *r, slot *k, int seq, gm_err *e) {
    int32_t *ids = NULL;
    int n, got = r->io->next(r->io->user, r->prompts, &ids, &n, e);
    if (got <= 0) {
        r->no_more = 1;
        return got;
    }
    if (r->holder >= 0 && r->en->copy_sequence(r->en, r->holder, seq, r->n_prefix, e)) got = -1;
    if (got > 0 && r->holder >= 0) rt_session_adopt(k->s, r->prefix, r->n_prefix);
    if (got > 0 && r->holder < 0) rt_session_forget(k->s, 0);
    if (got > 0 && r->holder < 0 && rt_session_feed(k->s, r->prefix, r->n_prefix, e)) got = -1;
    if (got > 0 && rt_session_feed(k->s, ids, n, e)) got = -1;
    free(ids);
    if (got < 0) return -1;
    r->stats->prompts++, r->stats->prefill_tokens += n + (r->holder < 0 ? r->n_prefix : 0);
    k->index = r->prompts++;
    k->g = rt_gen_begin(k->s, r->o);
    return advance(r, k, e);
}

/* One decode_batch over the busy slots; their logits into their sessions. */
static int step(run *r, float *logits, gm_err *e) {
    int32_t *tokens = gm_malloc(r->n_slots * sizeof *tokens);
    int *seq = gm_malloc(r->n_slots * sizeof *seq), *pos = gm_malloc(r->n_slots * sizeof *pos), n = 0;
    for (int i = 0; i < r->n_slots; i++)
        if (r->slots[i].g) tokens[n] = r->slots[i].next, seq[n] = i, pos[n] = r->slots[i].s->n_history, n++;
    double t0 = gm_now_s();
    int rc = rt_decode_batch(r->en, n, tokens, seq, pos, logits, e);
    double seconds = gm_now_s() - t0;
    r->stats->decode_s += seconds, r->stats->decode_tokens += n, r->stats->steps++;
    for (int j = 0; !rc && j < n; j++) {
        slot *k = &r->slots[seq[j]];
        memcpy(k->s->logits, logits + (size_t)j * r->en->vocab, r->en->vocab * sizeof(float));
        rt_gen_fed(k->g, tokens[j], seconds / n);
        rc = advance(r, k, e);
    }
    free(tokens), free(seq), free(pos);
    return rc;
}

static int generate_all(run *r, gm_err *e) {
    float *logits = gm_malloc((size_t)r->n_slots * r->en->vocab * sizeof *logits);
    int rc = 0;
    for (;;) {
        for (int i = 0; !rc && !r->no_more && i < r->n_slots; i++)
            while (!rc && !r->no_more && !r->slots[i].g) rc = start(r, &r->slots[i], i, e);
        int busy = 0;
        for (int i = 0; i < r->n_slots; i++) busy += r->slots[i].g != NULL;
        if (rc || !busy) break;
        rc = step(r, logits, e);
    }
    for (int i = 0; i < r->n_slots; i++)
        if (r->slots[i].g) rt_gen_end(r->slots[i].g, 1, NULL, NULL, e);
    free(logits);
    return rc;
}

int rt_generate_parallel(rt_engine *en, rt_tokenizer *tok, const rt_sampler_opts *so, const int32_t *prefix,
                         int n_prefix, const rt_gen_opts *o, const rt_parallel_io *io, rt_parallel_stats *stats,
                         gm_err *e) {
    rt_gen_opts quiet = *o;
    quiet.emit = NULL; /* replies go to io->done whole */
    int holder = n_prefix && en->sequences > 1 ? en->sequences - 1 : -1;
    run r = {en, prefix, n_prefix, &quiet, io, stats, gm_calloc(en->sequences, sizeof(slot)),
             en->sequences - (holder >= 0), 0, 0, holder};
    memset(stats, 0, sizeof *stats);
    double t0 = gm_now_s();
    int rc = 0;
    for (int i = 0; !rc && i < r.n_slots; i++) {
        rt_sampler_opts own = *so;
        own.seed = so->seed + (uint64_t)i; /* each sequence its own stream */
        if (!(r.slots[i].s = rt_session_new(en, tok, &own, e))) rc = -1;
        else r.slots[i].s->seq = i;
    }
    if (!rc && holder >= 0) { /* once, on the sequence that keeps it */
        rt_session *keeper = rt_session_new(en, tok, so, e);
        if (!keeper) rc = -1;
        else keeper->seq = holder, rc = rt_session_feed(keeper, prefix, n_prefix, e);
        rt_session_free(keeper);
        stats->prefill_tokens += n_prefix;
    }
    if (!rc) rc = generate_all(&r, e);
    for (int i = 0; i < r.n_slots; i++) rt_session_free(r.slots[i].s);
    free(r.slots);
    stats->wall_s = gm_now_s() - t0;
    return rc;
}
