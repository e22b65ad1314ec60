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

int rt_check_opts(const rt_engine_opts *o, int64_t max_context, gm_err *e) {
    if (o->context < 1 || o->context > max_context)
        return gm_fail(e, "context of %d positions: expected 1 to %lld (the model's max_context)", o->context,
                       (long long)max_context);
    return 0;
}

void rt_profile_add(rt_profile *p, const char *name, double seconds) {
    int i = 0;
    while (i < p->n && strcmp(p->name[i], name)) i++;
    if (i == RT_PROFILE_MAX) return;
    if (i == p->n) p->name[p->n++] = name, p->seconds[i] = 0;
    p->seconds[i] += seconds;
}
