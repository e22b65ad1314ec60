/* engine.c — checks shared by every engine (see engine.h), and the profile
 * the compiled backends fill. */
#include "engine.h"

#include <string.h>

int rt_check_span(const rt_engine *en, const int32_t *tokens, int n, int pos, gm_err *e) {
    if (n < 1) return gm_fail(e, "nothing to run: 0 tokens");
    if (pos < 0 || (int64_t)pos + n > en->context)
        return gm_fail(e, "%d tokens at position %d exceed the context of %d positions; "
                       "pass a larger --context or a shorter prompt", n, pos, en->context);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= en->vocab)
            return gm_fail(e, "token %d (id %d) is outside the vocabulary of %lld ids", i,
                           (int)tokens[i], (long long)en->vocab);
    return 0;
}

int rt_check_batch(const rt_engine *en, int n, const int32_t *tokens, const int *seq, const int *pos, gm_err *e) {
    if (n < 1 || n > en->sequences)
        return gm_fail(e, "a batch of %d sequences: expected 1 to %d (the engine's sequences)", n, en->sequences);
    for (int i = 0; i < n; i++) {
        if (seq[i] < 0 || seq[i] >= en->sequences)
            return gm_fail(e, "batch row %d: sequence %d, expected 0 to %d", i, seq[i], en->sequences - 1);
        for (int k = 0; k < i; k++)
            if (seq[k] == seq[i]) return gm_fail(e, "batch rows %d and %d both step sequence %d", k, i, seq[i]);
        if (rt_check_span(en, &tokens[i], 1, pos[i], e)) return -1;
    }
    return 0;
}

int rt_decode_batch(rt_engine *en, int n, const int32_t *tokens, const int *seq, const int *pos, float *logits,
                    gm_err *e) {
    if (en->decode_batch) return en->decode_batch(en, n, tokens, seq, pos, logits, e);
    if (rt_check_batch(en, n, tokens, seq, pos, e)) return -1;
    for (int i = 0; i < n; i++)
        if ((en->use_sequence && en->use_sequence(en, seq[i], e)) || en->decode(en, tokens[i], pos[i], logits + i * en->vocab, e))
            return -1;
    return 0;
}

int rt_check_opts(const rt_engine_opts *o, int64_t max_context, const char *backend, int batches, gm_err *e) {
    if (o->context < 1 || o->context > max_context)
        return gm_fail(e, "context of %d positions: expected 1 to %lld (the model's max_context)", o->context,
                       (long long)max_context);
    if (!batches && o->sequences > 1)
        return gm_fail(e, "%d sequences: the %s backend keeps one; the jit backend and compiled executables batch",
                       o->sequences, backend);
    if (o->sequences < 0 || o->sequences > RT_MAX_SEQUENCES)
        return gm_fail(e, "%d sequences: expected 1 to %d", o->sequences, RT_MAX_SEQUENCES);
    return 0;
}

void rt_profile_add(rt_profile *p, const char *name, double seconds) {
    int i = 0;
    while (i < p->n && strcmp(p->name[i], name)) i++;
    if (i == RT_PROFILE_MAX) return;
    if (i == p->n) p->name[p->n++] = name, p->seconds[i] = 0;
    p->seconds[i] += seconds;
}

int rt_batch_scored(const rt_batch *b) {
    int n = 0;
    for (int t = 0; t < b->T; t++) n += b->targets[t] >= 0;
    return n;
}

int rt_check_training_batch(const rt_batch *b, int64_t vocab, int64_t max_context, gm_err *e) {
    int longest = 0;
    for (int t = 0; t < b->T; t++) {
        int len = t - (b->start ? b->start[t] : 0) + 1;
        longest = len > longest ? len : longest;
    }
    if (b->T < 1 || longest > max_context)
        return gm_fail(e, "a training sequence of %d tokens exceeds the model's context of %lld positions "
                          "(config.max_context); shorten it", b->T < 1 ? b->T : longest, (long long)max_context);
    rt_engine span = {.vocab = vocab, .context = b->T};
    if (rt_check_span(&span, b->tokens, b->T, 0, e)) return -1;
    for (int t = 0; t < b->T; t++)
        if (b->targets[t] < -1 || b->targets[t] >= vocab)
            return gm_fail(e, "target %d (id %d) is outside the vocabulary of %lld ids (-1: not scored)", t, b->targets[t],
                           (long long)vocab);
    return 0;
}
