/* test_generate.c — the generation loop, streaming and chat on the embedded
 * demo model (models/demo) with its real SentencePiece tokenizer: greedy
 * generation is the argmax chain of the engine's logits, a seed reproduces
 * a run, stop strings stop and are not shown, the stream never splits a
 * UTF-8 character, a two-turn chat feeds exactly Gemma's template, and a
 * full context stops generation instead of failing. */
#include "testing.h"

#include "compiler/model.h"
#include "compiler/frontend.h"
#include "runtime/generate.h"
#include "runtime/kv_cache.h"

#include <stdio.h>
#include <stdlib.h>

static gm_model *model;
static rt_tokenizer *tok;

typedef struct {
    char buf[1 << 16];
    size_t len;
    int split_char; /* a chunk started inside a UTF-8 sequence */
} sink;

static void collect(void *user, const char *text, size_t len) {
    sink *s = user;
    if (len && ((unsigned char)text[0] & 0xC0) == 0x80) s->split_char = 1;
    if (s->len + len < sizeof s->buf) memcpy(s->buf + s->len, text, len), s->len += len;
    s->buf[s->len] = 0;
}

static rt_engine *engine(int context) {
    gm_err e;
    rt_engine *en = gm_model_engine(model, "reference", &(rt_engine_opts){.context = context}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(en);
    return en;
}

static rt_sampler_opts sampling(float temp, uint64_t seed) {
    rt_sampler_opts o = rt_sampler_defaults();
    o.temperature = temp;
    o.seed = seed;
    return o;
}

/* Feeds BOS + text and generates; returns the reply (malloc'd). */
static char *generate(rt_engine *en, rt_sampler_opts so, const char *text, int max_new, const char *stop,
                      sink *out, rt_session **keep) {
    gm_err e;
    rt_session *s = rt_session_new(en, tok, &so, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int32_t bos = 2;
    CU_ASSERT_EQUAL_FATAL(rt_session_feed(s, &bos, 1, &e), 0);
    CU_ASSERT_EQUAL_FATAL(rt_session_feed_text(s, text, &e), 0);
    const char *stops[1] = {stop};
    rt_gen_opts go = {max_new, stops, stop ? 1 : 0, collect, out};
    char *reply = NULL;
    CU_ASSERT_EQUAL(rt_session_generate(s, &go, &reply, NULL, &e), 0);
    if (keep) *keep = s;
    else rt_session_free(s);
    return reply;
}

static void test_greedy_is_argmax(void) {
    rt_engine *en = engine(64);
    sink out = {0};
    rt_session *s;
    char *reply = generate(en, sampling(0, 1), "The weather today", 12, NULL, &out, &s);
    int n_prompt = s->n_history - s->decode_tokens;
    /* replay through the raw engine: each generated token is the argmax */
    float *logits = gm_malloc(en->vocab * sizeof(float));
    gm_err e;
    CU_ASSERT_EQUAL_FATAL(en->prefill(en, s->history, n_prompt, 0, logits, 0, &e), 0);
    for (int i = n_prompt; i < s->n_history; i++) {
        CU_ASSERT_EQUAL(s->history[i], rt_argmax(logits, en->vocab));
        CU_ASSERT_EQUAL_FATAL(en->decode(en, s->history[i], i, logits, &e), 0);
    }
    CU_ASSERT_STRING_EQUAL(reply, out.buf); /* the stream is the reply */
    free(logits);
    free(reply);
    rt_session_free(s);
    en->free(en);
}

static void test_seed_reproduces(void) {
    rt_engine *en = engine(128);
    sink a = {0}, b = {0}, c = {0};
    char *ra = generate(en, sampling(1, 42), "Once upon a time", 40, NULL, &a, NULL);
    char *rb = generate(en, sampling(1, 42), "Once upon a time", 40, NULL, &b, NULL);
    char *rc = generate(en, sampling(1, 43), "Once upon a time", 40, NULL, &c, NULL);
    CU_ASSERT_STRING_EQUAL(ra, rb);
    CU_ASSERT_STRING_NOT_EQUAL(ra, rc);
    free(ra);
    free(rb);
    free(rc);
    en->free(en);
}

static void test_stop_string(void) {
    rt_engine *en = engine(128);
    sink full = {0}, cut = {0};
    char *whole = generate(en, sampling(0, 1), "Numbers:", 40, NULL, &full, NULL);
    size_t n = strlen(whole);
    CU_ASSERT_FATAL(n > 12);
    char stop[5];
    memcpy(stop, whole + n / 2, 4);
    stop[4] = 0;
    const char *first = strstr(whole, stop);
    char *reply = generate(en, sampling(0, 1), "Numbers:", 40, stop, &cut, NULL);
    CU_ASSERT_EQUAL(strlen(reply), (size_t)(first - whole));
    CU_ASSERT_EQUAL(strncmp(reply, whole, first - whole), 0);
    CU_ASSERT_STRING_EQUAL(cut.buf, reply); /* no part of the stop string was streamed */
    free(whole);
    free(reply);
    en->free(en);
}

static void test_stream_keeps_characters_whole(void) {
    rt_engine *en = engine(256);
    for (uint64_t seed = 1; seed <= 6; seed++) {
        sink out = {0};
        char *reply = generate(en, sampling(1.5f, seed), "café 東京 — naïve", 120, NULL, &out, NULL);
        CU_ASSERT_FALSE(out.split_char);
        CU_ASSERT_STRING_EQUAL(reply, out.buf);
        free(reply);
    }
    en->free(en);
}

static int32_t *encode(const char *text, int *n) {
    int32_t *ids;
    gm_err e;
    CU_ASSERT_EQUAL_FATAL(rt_tok_encode(tok, text, strlen(text), &ids, n, &e), 0);
    return ids;
}

/* expected[at..] must hold `text` encoded by hand; returns the new offset. */
static int expect_text(const rt_session *s, int at, const char *text) {
    int n;
    int32_t *ids = encode(text, &n);
    CU_ASSERT_FATAL(at + n <= s->n_history);
    for (int i = 0; i < n; i++) CU_ASSERT_EQUAL(s->history[at + i], ids[i]);
    free(ids);
    return at + n;
}

static void test_chat_template(void) {
    rt_engine *en = engine(512);
    rt_sampler_opts so = sampling(0, 1);
    gm_err e;
    rt_session *s = rt_session_new(en, tok, &so, &e);
    rt_gen_opts go = {6, NULL, 0, NULL, NULL};
    CU_ASSERT_EQUAL_FATAL(rt_session_chat(s, "Be brief.", "Hello there", &go, NULL, NULL, &e), 0);
    int reply1_end = s->n_history;
    CU_ASSERT_EQUAL_FATAL(rt_session_chat(s, "ignored after the first turn", "And again?", &go, NULL, NULL, &e), 0);
    /* the whole token stream, built by hand from Gemma's template */
    CU_ASSERT_EQUAL(s->history[0], 2);
    int at = expect_text(s, 1, "<start_of_turn>user\nBe brief.\n\nHello there<end_of_turn>\n<start_of_turn>model\n");
    CU_ASSERT_EQUAL(reply1_end - at, 6); /* the first reply: 6 generated tokens, all fed */
    at = expect_text(s, reply1_end, "<end_of_turn>\n<start_of_turn>user\nAnd again?<end_of_turn>\n<start_of_turn>model\n");
    CU_ASSERT_EQUAL(s->n_history - at, 6);
    CU_ASSERT_EQUAL(s->prefill_tokens + s->decode_tokens, s->n_history); /* nothing prefilled twice */
    rt_session_free(s);
    en->free(en);
}

static void test_chat_turn_text(void) {
    char *t = rt_chat_turn("SYS", "hi", 1, 0);
    CU_ASSERT_STRING_EQUAL(t, "<start_of_turn>user\nSYS\n\nhi<end_of_turn>\n<start_of_turn>model\n");
    free(t);
    t = rt_chat_turn(NULL, "hi", 1, 0);
    CU_ASSERT_STRING_EQUAL(t, "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n");
    free(t);
    t = rt_chat_turn("SYS", "next", 0, 1);
    CU_ASSERT_STRING_EQUAL(t, "\n<start_of_turn>user\nnext<end_of_turn>\n<start_of_turn>model\n");
    free(t);
}

static void test_context_limits(void) {
    rt_engine *en = engine(16);
    sink out = {0};
    rt_sampler_opts so = sampling(0, 1);
    gm_err e;
    rt_session *s = rt_session_new(en, tok, &so, &e);
    int32_t ids[20] = {2};
    for (int i = 1; i < 20; i++) ids[i] = 100 + i;
    CU_ASSERT_EQUAL(rt_session_feed(s, ids, 20, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "the prompt needs 20 positions, but the context holds 16"));
    CU_ASSERT_EQUAL_FATAL(rt_session_feed(s, ids, 10, &e), 0);
    rt_gen_opts go = {50, NULL, 0, collect, &out};
    rt_stop_reason why;
    CU_ASSERT_EQUAL(rt_session_generate(s, &go, NULL, &why, &e), 0);
    CU_ASSERT_EQUAL(why, RT_STOP_CONTEXT);
    CU_ASSERT_EQUAL(s->n_history, 16);
    rt_session_free(s);
    en->free(en);
}

/* The window-sized rings give exactly the logits of full-length caches, with
 * a prompt and a generation well past the demo's window of 64. */
static void test_ring_equals_full_cache(void) {
    gm_err e;
    rt_engine *ring = gm_model_engine(model, "reference", &(rt_engine_opts){.context = 256}, &e);
    rt_engine *full = gm_model_engine(model, "reference", &(rt_engine_opts){.context = 256, .full_kv = 1}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ring);
    CU_ASSERT_PTR_NOT_NULL_FATAL(full);
    CU_ASSERT(ring->kv_bytes < full->kv_bytes);
    int32_t ids[150];
    for (int i = 0; i < 150; i++) ids[i] = i ? 5 + (i * 37) % 2000 : 2;
    int64_t V = ring->vocab;
    float *a = gm_malloc(150 * V * sizeof(float)), *b = gm_malloc(150 * V * sizeof(float));
    CU_ASSERT_EQUAL_FATAL(ring->prefill(ring, ids, 150, 0, a, 1, &e), 0);
    CU_ASSERT_EQUAL_FATAL(full->prefill(full, ids, 150, 0, b, 1, &e), 0);
    CU_ASSERT_EQUAL(memcmp(a, b, 150 * V * sizeof(float)), 0);
    for (int pos = 150; pos < 230; pos++) {
        int32_t next = rt_argmax(a, V);
        CU_ASSERT_EQUAL_FATAL(ring->decode(ring, next, pos, a, &e), 0);
        CU_ASSERT_EQUAL_FATAL(full->decode(full, next, pos, b, &e), 0);
        CU_ASSERT_EQUAL(memcmp(a, b, V * sizeof(float)), 0);
    }
    free(a);
    free(b);
    ring->free(ring);
    full->free(full);
}

/* Gemma 3's 5 local : 1 global layers keep about a sixth of the naive cache
 * at its full context (gemma-3-1b: 32768 positions, window 512). */
static void test_ring_memory_gemma3(void) {
    gm_err e;
    ir_graph *g = frontend_load(test_path("../models/gemma-3-1b.json"), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    int n = g->n_cache_slots, windows[64], cols[64];
    ir_cache_slots(g, windows, cols);
    double ring = rt_kv_plan_bytes(n, windows, cols, 32768, 0), full = rt_kv_plan_bytes(n, windows, cols, 32768, 1);
    CU_ASSERT_DOUBLE_EQUAL(ring / full, (4 * 32768.0 + 22 * 512.0) / (26 * 32768.0), 1e-12);
    CU_ASSERT(ring / full < 0.17);
    ir_graph_free(g);
}

int main(void) {
    gm_err e;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_path("../models/demo"));
    model = gm_model_open_with(dir, NULL, &(gm_pipeline_opts){.level = GM_DEFAULT_LEVEL, .target = "reference"}, &e);
    strncat(dir, "/tokenizer.model", sizeof dir - strlen(dir) - 1);
    tok = model ? rt_tok_load(dir, &e) : NULL;
    if (!tok) return fprintf(stderr, "cannot open the demo model: %s\n", e.msg), 1;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("generate", NULL, NULL);
    CU_add_test(s, "greedy is the argmax chain", test_greedy_is_argmax);
    CU_add_test(s, "a seed reproduces a run", test_seed_reproduces);
    CU_add_test(s, "stop strings stop, unseen", test_stop_string);
    CU_add_test(s, "the stream keeps UTF-8 characters whole", test_stream_keeps_characters_whole);
    CU_add_test(s, "chat turn text", test_chat_turn_text);
    CU_add_test(s, "two chat turns feed Gemma's template", test_chat_template);
    CU_add_test(s, "context limits", test_context_limits);
    CU_add_test(s, "window rings equal full caches", test_ring_equals_full_cache);
    CU_add_test(s, "gemma 3 rings take a sixth", test_ring_memory_gemma3);
    int rc = test_run_all();
    rt_tok_free(tok);
    gm_model_free(model);
    return rc;
}
