/* generate.c — sessions, the sampling loop, streaming and the chat turn
 * format (see generate.h for the contract). */
#define _GNU_SOURCE /* memmem */

#include "generate.h"

#include <stdio.h>
#include <stdlib.h>

static void add_stop_id(rt_session *s, int32_t id) {
    if (id < 0 || id >= s->en->vocab || s->n_stop_ids == 4) return;
    for (int i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] == id) return;
    s->stop_ids[s->n_stop_ids++] = id;
}

rt_session *rt_session_new(rt_engine *en, rt_tokenizer *tok, const rt_sampler_opts *so, gm_err *e) {
    if (rt_sampler_check(so, e)) return NULL;
    rt_session *s = gm_calloc(1, sizeof *s);
    s->en = en;
    s->tok = tok;
    s->sampler = rt_sampler_new(so, en->vocab);
    s->logits = gm_calloc(en->vocab, sizeof(float));
    s->pending = -1;
    add_stop_id(s, rt_tok_eos(tok));
    add_stop_id(s, rt_tok_piece_id(tok, "<end_of_turn>"));
    return s;
}

void rt_session_free(rt_session *s) {
    if (!s) return;
    rt_sampler_free(s->sampler);
    free(s->history);
    free(s->logits);
    free(s);
}

static void remember(rt_session *s, const int32_t *ids, int n) {
    if (s->n_history + n > s->cap_history) {
        s->cap_history = 2 * (s->n_history + n);
        s->history = gm_realloc(s->history, s->cap_history * sizeof *s->history);
    }
    memcpy(s->history + s->n_history, ids, n * sizeof *ids);
    s->n_history += n;
}

void rt_session_forget(rt_session *s, int keep) {
    if (keep < s->n_history) s->n_history = keep;
    s->pending = -1;
}

void rt_session_adopt(rt_session *s, const int32_t *ids, int n) {
    s->n_history = 0;
    s->pending = -1;
    remember(s, ids, n);
}

/* Points the engine at the session's sequence, where it keeps several. */
static int use_own_sequence(rt_session *s, gm_err *e) {
    return s->en->sequences > 1 && s->en->use_sequence(s->en, s->seq, e) ? -1 : 0;
}

int rt_session_feed(rt_session *s, const int32_t *ids, int n, gm_err *e) {
    if (n == 0) return 0;
    if (s->n_history + n > s->en->context)
        return gm_fail(e, "the prompt needs %d positions, but the context holds %d (%d already used); "
                       "pass a larger --context or a shorter prompt", s->n_history + n, s->en->context, s->n_history);
    double t0 = gm_now_s();
    if (use_own_sequence(s, e) || s->en->prefill(s->en, ids, n, s->n_history, s->logits, 0, e)) return -1;
    s->prefill_s += gm_now_s() - t0;
    s->prefill_tokens += n;
    remember(s, ids, n);
    return 0;
}

int rt_session_feed_text(rt_session *s, const char *text, gm_err *e) {
    int32_t *ids;
    int n;
    if (rt_tok_encode(s->tok, text, strlen(text), &ids, &n, e)) return -1;
    int rc = rt_session_feed(s, ids, n, e);
    free(ids);
    return rc;
}

static int is_stop_id(const rt_session *s, int32_t id) {
    for (int i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] == id) return 1;
    return 0;
}

/* Bytes of text[0..len) that no later token can change: drops a trailing
 * U+FFFD run (an unfinished byte sequence), an incomplete UTF-8 sequence,
 * and a tail that could be the start of a stop string. */
static size_t stable_prefix(const char *text, size_t len, const rt_gen_opts *o) {
    while (len >= 3 && !memcmp(text + len - 3, "\xEF\xBF\xBD", 3)) len -= 3;
    size_t lead = len;
    while (lead > 0 && len - lead < 4 && ((unsigned char)text[lead - 1] & 0xC0) == 0x80) lead--;
    if (lead > 0 && len - lead < 4) {
        unsigned char c = (unsigned char)text[lead - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (len - (lead - 1) < need) len = lead - 1;
    }
    size_t keep = len;
    for (int i = 0; i < o->n_stops; i++) {
        size_t sl = strlen(o->stops[i]); /* an empty stop string never stops (find_stop) */
        for (size_t k = sl > len ? len : sl ? sl - 1 : 0; k > 0; k--)
            if (!memcmp(text + len - k, o->stops[i], k)) {
                if (len - k < keep) keep = len - k;
                break;
            }
    }
    return keep;
}

/* The first stop string in text[0..len), or NULL. The text may hold NUL
 * bytes (a <0x00> piece), so it is searched by length, not as a string. */
static const char *find_stop(const char *text, size_t len, const rt_gen_opts *o) {
    const char *first = NULL;
    for (int i = 0; i < o->n_stops; i++) {
        const char *at = o->stops[i][0] ? memmem(text, len, o->stops[i], strlen(o->stops[i])) : NULL;
        if (at && (!first || at < first)) first = at;
    }
    return first;
}

typedef struct {
    int32_t *ids;   /* the reply's tokens */
    int n;
    char *text;     /* their decoded text */
    size_t len, emitted;
} reply_text;

/* Decodes the reply so far; returns 1 when a stop string ended it. */
static int update_text(rt_session *s, reply_text *r, const rt_gen_opts *o, int final, gm_err *e) {
    free(r->text);
    if (!(r->text = rt_tok_decode(s->tok, r->ids, r->n, &r->len, e))) return -1;
    const char *stop = find_stop(r->text, r->len, o);
    size_t upto = stop ? (size_t)(stop - r->text) : final ? r->len : stable_prefix(r->text, r->len, o);
    if (upto > r->emitted && o->emit) o->emit(o->user, r->text + r->emitted, upto - r->emitted);
    if (upto > r->emitted) r->emitted = upto;
    if (stop) r->len = upto, r->text[upto] = 0;
    return stop != NULL;
}

/* A reply in the making (rt_session_generate's loop, and rt_generate_parallel's). */
struct rt_gen_state {
    rt_session *s;
    const rt_gen_opts *o;
    reply_text r;
    rt_stop_reason reason;
};

rt_gen_state *rt_gen_begin(rt_session *s, const rt_gen_opts *o) {
    rt_gen_state *g = gm_calloc(1, sizeof *g);
    *g = (rt_gen_state){s, o, {gm_malloc((o->max_new + 1) * sizeof(int32_t)), 0, NULL, 0, 0}, RT_STOP_LENGTH};
    s->pending = -1;
    return g;
}

int rt_gen_next(rt_gen_state *g, int32_t *next, gm_err *e) {
    rt_session *s = g->s;
    if (g->r.n >= g->o->max_new) return 0;
    int32_t id = rt_sample(s->sampler, s->logits, s->history, s->n_history);
    if (is_stop_id(s, id)) {
        s->pending = id, g->reason = RT_STOP_TOKEN;
        return 0;
    }
    g->r.ids[g->r.n++] = id;
    int rc = update_text(s, &g->r, g->o, 0, e);
    if (rc) {
        if (rc > 0) g->reason = RT_STOP_STRING;
        return rc > 0 ? 0 : -1;
    }
    if (s->n_history + 1 > s->en->context) {
        g->reason = RT_STOP_CONTEXT;
        return 0;
    }
    *next = id;
    return 1;
}

void rt_gen_fed(rt_gen_state *g, int32_t id, double seconds) {
    g->s->decode_s += seconds;
    g->s->decode_tokens++;
    remember(g->s, &id, 1);
}

int rt_gen_end(rt_gen_state *g, int failed, char **reply, rt_stop_reason *why, gm_err *e) {
    int rc = failed ? -1 : 0;
    if (!rc && g->reason != RT_STOP_STRING) rc = update_text(g->s, &g->r, g->o, 1, e) < 0 ? -1 : 0;
    if (why) *why = g->reason;
    if (reply && !rc) *reply = g->r.text, g->r.text = NULL;
    free(g->r.text);
    free(g->r.ids);
    free(g);
    return rc;
}

int rt_session_generate(rt_session *s, const rt_gen_opts *o, char **reply, rt_stop_reason *why, gm_err *e) {
    rt_gen_state *g = rt_gen_begin(s, o);
    int32_t id;
    int rc;
    while ((rc = rt_gen_next(g, &id, e)) > 0) {
        double t0 = gm_now_s();
        if ((rc = use_own_sequence(s, e)) || (rc = s->en->decode(s->en, id, s->n_history, s->logits, e))) break;
        rt_gen_fed(g, id, gm_now_s() - t0);
    }
    return rt_gen_end(g, rc < 0, reply, why, e);
}

static char *concat(const char *const *parts, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(parts[i]);
    char *s = gm_malloc(len);
    s[0] = 0;
    for (int i = 0; i < n; i++) strcat(s, parts[i]);
    return s;
}

char *rt_chat_turn(const char *system, const char *user, int first, int after_end_of_turn) {
    const char *close = first ? "" : after_end_of_turn ? "\n" : "<end_of_turn>\n";
    int sys = first && system && *system;
    const char *parts[] = {close, "<start_of_turn>user\n", sys ? system : "", sys ? "\n\n" : "", user,
                           "<end_of_turn>\n<start_of_turn>model\n"};
    return concat(parts, 6);
}

int rt_session_chat(rt_session *s, const char *system, const char *user, const rt_gen_opts *o, char **reply,
                    rt_stop_reason *why, gm_err *e) {
    int first = s->n_history == 0;
    int32_t lead[2];
    int n_lead = 0;
    if (first && rt_tok_bos(s->tok) >= 0) lead[n_lead++] = rt_tok_bos(s->tok);
    int after_eot = s->pending >= 0 && s->pending == rt_tok_piece_id(s->tok, "<end_of_turn>");
    if (after_eot) lead[n_lead++] = s->pending;
    char *text = rt_chat_turn(system, user, first, after_eot);
    int32_t *ids;
    int n;
    int rc = rt_tok_encode(s->tok, text, strlen(text), &ids, &n, e);
    free(text);
    if (rc) return -1;
    int32_t *all = gm_malloc((n + n_lead) * sizeof *all);
    memcpy(all, lead, n_lead * sizeof *all);
    memcpy(all + n_lead, ids, n * sizeof *ids);
    rc = rt_session_feed(s, all, n + n_lead, e);
    free(all);
    free(ids);
    return rc ? -1 : rt_session_generate(s, o, reply, why, e);
}
