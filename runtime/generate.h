/* generate.h — the generation loop over the engine ABI: a session keeps the
 * tokens already in the KV cache, feeds new ones (prefill), samples and
 * decodes, and streams text as it is produced. Chat mode (Gemma's turn
 * format) is built on the same session, so the cache carries over between
 * turns and the history is never prefilled twice.
 *
 * Streaming never splits a UTF-8 character and never shows part of a stop
 * string: the text of the turn so far is decoded after each token, and only
 * the part that later tokens cannot change is emitted (trailing U+FFFD from
 * an unfinished byte sequence, and any tail that could begin a stop string,
 * wait for the next token). */
#ifndef GM_GENERATE_H
#define GM_GENERATE_H

#include "engine.h"
#include "sampler.h"
#include "tokenizer.h"

typedef void (*rt_emit_fn)(void *user, const char *text, size_t len);

typedef struct {
    rt_engine *en;             /* the model */
    int seq;                   /* the engine's sequence (KV cache) it uses, where it keeps several */
    rt_tokenizer *tok;         /* its vocabulary */
    rt_sampler *sampler;       /* the next-token choice */
    int32_t *history;          /* every token in the KV cache, in order */
    int n_history, cap_history;
    float *logits;             /* logits after the last token fed [vocab] */
    int32_t pending;           /* a stop token sampled but not yet fed, or -1 */
    int32_t stop_ids[4];       /* tokens that end a reply (eos, <end_of_turn>) */
    int n_stop_ids;
    double prefill_s, decode_s; /* time spent, for the speed report */
    int prefill_tokens, decode_tokens;
} rt_session;

typedef struct {
    int max_new;               /* tokens to generate at most */
    const char *const *stops;  /* stop strings (not shown), n_stops of them */
    int n_stops;
    rt_emit_fn emit;           /* streamed text; may be NULL */
    void *user;
} rt_gen_opts;

typedef enum { RT_STOP_TOKEN, RT_STOP_STRING, RT_STOP_LENGTH, RT_STOP_CONTEXT } rt_stop_reason;

rt_session *rt_session_new(rt_engine *en, rt_tokenizer *tok, const rt_sampler_opts *so, gm_err *e);
void rt_session_free(rt_session *s);

/* Appends tokens to the cache (one prefill call). */
int rt_session_feed(rt_session *s, const int32_t *ids, int n, gm_err *e);
/* Appends text, encoded (no BOS). */
int rt_session_feed_text(rt_session *s, const char *text, gm_err *e);

/* Samples up to o->max_new tokens after what was fed; the reply's text goes
 * to o->emit, and into *reply (malloc'd) when reply is not NULL. */
int rt_session_generate(rt_session *s, const rt_gen_opts *o, char **reply, rt_stop_reason *why, gm_err *e);

/* Keeps only the first `keep` tokens of the history: the cache's positions
 * past them are overwritten by what is fed next (a new prompt after a
 * shared prefix). */
void rt_session_forget(rt_session *s, int keep);
/* The history becomes ids[0..n), which the session's sequence already
 * holds in the cache (copied there by copy_sequence). */
void rt_session_adopt(rt_session *s, const int32_t *ids, int n);

/* rt_session_generate's loop in steps, for callers that decode several
 * sessions at once (rt_generate_parallel): begin; while next gives a token,
 * decode it (its logits into s->logits) and report it fed; end gives the
 * reply as rt_session_generate does (failed: a decode failed). next returns
 * 1 with the token to decode, 0 when the reply is over, -1 on error. */
typedef struct rt_gen_state rt_gen_state;
rt_gen_state *rt_gen_begin(rt_session *s, const rt_gen_opts *o);
int rt_gen_next(rt_gen_state *g, int32_t *next, gm_err *e);
void rt_gen_fed(rt_gen_state *g, int32_t id, double seconds);
int rt_gen_end(rt_gen_state *g, int failed, char **reply, rt_stop_reason *why, gm_err *e);

/* Gemma's chat template: the text of one user turn and the opening of the
 * model's reply. The first turn folds the system prompt (may be NULL) into
 * the user's text, as Gemma's own template does:
 *   <start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n
 * Later turns start by closing the previous reply ("<end_of_turn>\n", or just
 * "\n" when the session's pending <end_of_turn> token is fed first). */
char *rt_chat_turn(const char *system, const char *user, int first, int after_end_of_turn);

/* Feeds one user turn (BOS before the first) and generates the reply. */
int rt_session_chat(rt_session *s, const char *system, const char *user, const rt_gen_opts *o, char **reply,
                    rt_stop_reason *why, gm_err *e);

#endif
