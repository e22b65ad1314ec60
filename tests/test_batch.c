/* test_batch.c — batched decoding (engine.h's decode_batch) against one
 * sequence at a time: N = 1, 2, 7 and 32 sequences of prompts of different
 * lengths (2 to 22 tokens, past the oracle cases' sliding windows of 6 to
 * 12), prefilled one by one on a jit engine of N KV caches, then stepped
 * together for 12 steps, each row at its own position. Every step's logits
 * must be those of the same sequence run alone on an engine of one cache,
 * and the greedy tokens the same. Up to 7 rows they are bit for bit; from 8
 * on the matmuls take the register tiles of prefill, the same sums in
 * another order than a lone row's two accumulator chains, so |Δ| may reach
 * a few dozen float roundings of the largest logit: the bound is 1e-5 of it
 * (at least 1e-4; measured at N = 32: 1.8e-4 of 24.8 for Gemma 2, 3.7e-5
 * and 2.5e-5 for Gemma 1 and 3); a batch that steps a
 * sequence twice, or one the engine does not keep, is refused; a backend
 * that keeps one sequence refuses more. And a shared prefix: prefilled once,
 * copied into other sequences' caches (copy_sequence); and generation of
 * many prompts through rt_generate_parallel, as each alone. */
#include "testing.h"

#include "compiler/model.h"
#include "runtime/parallel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { STEPS = 12, MAX_N = 32, CONTEXT = 40 };

/* n tokens of stream s. */
static void tokens_of(int s, int64_t vocab, int n, int32_t *tokens) {
    uint32_t x = 2166136261u ^ (uint32_t)s;
    for (int i = 0; i < n; i++) x = x * 16777619u + 12345u, tokens[i] = 2 + (int32_t)(x % (uint32_t)(vocab - 2));
}

/* Sequence s's prompt: 2 + (5s mod 21) tokens, 2 to 22. */
static int prompt_of(int s, int64_t vocab, int32_t *tokens) {
    int n = 2 + (5 * s) % 21;
    tokens_of(s, vocab, n, tokens);
    return n;
}

static int argmax(const float *x, int64_t n) {
    int best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = (int)i;
    return best;
}

/* Sequence s alone: the logits of its STEPS greedy steps into want[STEPS][vocab]. */
static void run_alone(rt_engine *en, int s, float *want) {
    gm_err e;
    int32_t tokens[32];
    int n = prompt_of(s, en->vocab, tokens);
    float *logits = gm_malloc(en->vocab * sizeof *logits);
    CU_ASSERT_EQUAL_FATAL(en->prefill(en, tokens, n, 0, logits, 0, &e), 0);
    for (int k = 0; k < STEPS; k++) {
        CU_ASSERT_EQUAL_FATAL(en->decode(en, argmax(logits, en->vocab), n + k, want + k * en->vocab, &e), 0);
        memcpy(logits, want + k * en->vocab, en->vocab * sizeof *logits);
    }
    free(logits);
}

/* N sequences prefilled one by one, then STEPS batched steps; the worst |Δ|
 * against want, and in *scale the largest |logit| of want's. */
static double run_batched(rt_engine *en, int N, const float *want, int *token_mismatches, double *scale) {
    gm_err e;
    int64_t V = en->vocab;
    int32_t tokens[32], next[MAX_N];
    int seq[MAX_N], pos[MAX_N];
    float *logits = gm_malloc((size_t)N * V * sizeof *logits);
    for (int s = 0; s < N; s++) {
        int n = prompt_of(s, V, tokens);
        CU_ASSERT_EQUAL_FATAL(en->use_sequence(en, s, &e), 0);
        CU_ASSERT_EQUAL_FATAL(en->prefill(en, tokens, n, 0, logits + s * V, 0, &e), 0);
        /* rows in another order than the sequences: row r steps sequence N-1-r */
        seq[N - 1 - s] = s, pos[N - 1 - s] = n, next[N - 1 - s] = argmax(logits + s * V, V);
    }
    double worst = 0;
    for (int k = 0; k < STEPS; k++) {
        CU_ASSERT_EQUAL_FATAL(rt_decode_batch(en, N, next, seq, pos, logits, &e), 0);
        for (int r = 0; r < N; r++) {
            const float *w = want + ((size_t)seq[r] * STEPS + k) * V;
            for (int64_t v = 0; v < V; v++) worst = fmax(worst, fabs(logits[r * V + v] - w[v]));
            for (int64_t v = 0; v < V; v++) *scale = fmax(*scale, fabs(w[v]));
            next[r] = argmax(logits + r * V, V);
            *token_mismatches += next[r] != argmax(w, V);
            pos[r]++;
        }
    }
    free(logits);
    return worst;
}

static void check_model(const char *rel) {
    gm_err e;
    gm_model *m = gm_model_open(test_path(rel), NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    rt_engine *alone = gm_model_engine(m, "jit", &(rt_engine_opts){.context = CONTEXT, .no_cache = 1}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(alone);
    int64_t V = alone->vocab;
    float *want = gm_malloc((size_t)MAX_N * STEPS * V * sizeof *want);
    for (int s = 0; s < MAX_N; s++) run_alone(alone, s, want + (size_t)s * STEPS * V);
    alone->free(alone);
    const int sizes[] = {1, 2, 7, 32};
    for (int i = 0; i < 4; i++) {
        rt_engine *en = gm_model_engine(m, "jit", &(rt_engine_opts){.context = CONTEXT, .sequences = sizes[i]}, &e);
        CU_ASSERT_PTR_NOT_NULL_FATAL(en);
        int mismatches = 0;
        double scale = 0, worst = run_batched(en, sizes[i], want, &mismatches, &scale);
        printf("[%s N=%d: |Δ| %.2g of logits to %.3g, %d tokens differ] ", rel, sizes[i], worst, scale, mismatches);
        CU_ASSERT(worst <= 1e-5 * fmax(scale, 10));
        CU_ASSERT_EQUAL(mismatches, 0);
        en->free(en);
    }
    free(want);
    gm_model_free(m);
}

static void test_gemma1(void) { check_model("golden/tiny-gemma1-mqa"); }
static void test_gemma2(void) { check_model("golden/tiny-gemma2"); }
static void test_gemma3(void) { check_model("golden/tiny-gemma3"); }

/* rows [n][V] of a and b: the worst |Δ| */
static double worst_diff(const float *a, const float *b, int64_t n) {
    double w = 0;
    for (int64_t i = 0; i < n; i++) w = fmax(w, fabs(a[i] - b[i]));
    return w;
}

/* A 13-token prefix (past the window of 8) prefilled once on sequence 0 and
 * copied to sequences 1-3, each then prefilling a suffix of its own: every
 * suffix's logits are bit for bit those of prefilling prefix then suffix on
 * an engine of one sequence, and within the tiling's rounding (1e-5 of the
 * largest logit) of the whole prompt in one call; sequence 0 goes on as if
 * nothing had been copied from it. */
static void test_shared_prefix(void) {
    gm_err e;
    gm_model *m = gm_model_open(test_path("golden/tiny-gemma2"), NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    rt_engine *en = gm_model_engine(m, "jit", &(rt_engine_opts){.context = CONTEXT, .sequences = 4}, &e);
    rt_engine *one = gm_model_engine(m, "jit", &(rt_engine_opts){.context = CONTEXT}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(en && one);
    int64_t V = en->vocab;
    int32_t prompt[32];
    int P = 13;
    tokens_of(99, V, P + 8, prompt); /* the prefix, then every suffix's tokens */
    float *got = gm_malloc(8 * V * sizeof *got), *want = gm_malloc(8 * V * sizeof *want), *whole = gm_malloc(32 * V * sizeof *whole);
    CU_ASSERT_EQUAL_FATAL(en->prefill(en, prompt, P, 0, got, 0, &e), 0);
    double exact = 0, near = 0, scale = 0;
    for (int s = 3; s >= 0; s--) { /* sequence 0, the source, last */
        int n = 2 + 2 * s;
        if (s) CU_ASSERT_EQUAL(en->copy_sequence(en, 0, s, P, &e), 0);
        CU_ASSERT_EQUAL_FATAL(en->use_sequence(en, s, &e), 0);
        CU_ASSERT_EQUAL_FATAL(en->prefill(en, prompt + P, n, P, got, 1, &e), 0);
        CU_ASSERT_EQUAL_FATAL(one->prefill(one, prompt, P, 0, want, 0, &e), 0);
        CU_ASSERT_EQUAL_FATAL(one->prefill(one, prompt + P, n, P, want, 1, &e), 0);
        exact = fmax(exact, worst_diff(got, want, n * V));
        CU_ASSERT_EQUAL_FATAL(one->prefill(one, prompt, P + n, 0, whole, 1, &e), 0);
        near = fmax(near, worst_diff(got, whole + P * V, n * V));
        for (int64_t i = 0; i < n * V; i++) scale = fmax(scale, fabs(whole[P * V + i]));
    }
    printf("[copied prefix: |Δ| %.2g against prefix then suffix, %.2g against the whole prompt] ", exact, near);
    CU_ASSERT_EQUAL(exact, 0);
    CU_ASSERT(near <= 1e-5 * fmax(scale, 10));
    CU_ASSERT_EQUAL(en->copy_sequence(en, 0, 4, P, &e), -1);
    free(got), free(want), free(whole);
    en->free(en), one->free(one);
    gm_model_free(m);
}

/* rt_generate_parallel's io: prompts from a list, replies kept by index. */
typedef struct {
    rt_tokenizer *tok;
    const char *const *prompts;
    int n;
    char *replies[16];
    int order[16], n_done;
} list_io;

static int list_next(void *user, int index, int32_t **ids, int *n, gm_err *e) {
    list_io *l = user;
    if (index == l->n) return 0;
    return rt_tok_encode(l->tok, l->prompts[index], strlen(l->prompts[index]), ids, n, e) ? -1 : 1;
}

static int list_done(void *user, int index, const char *reply, rt_stop_reason why, gm_err *e) {
    list_io *l = user;
    (void)why, (void)e;
    l->replies[index] = gm_strdup(reply);
    l->order[l->n_done++] = index;
    return 0;
}

/* Ten prompts after a shared prefix longer than the window, greedy, a stop
 * string that ends some replies early: 3 at once (continuous batching: a
 * finished sequence takes the next prompt while the others go on; each
 * starts from a copy of the prefix's cache, whose rings later prompts
 * wrap) give every reply a session gives the prefix and prompt alone; and
 * one at a time too. */
static void test_parallel_generation(void) {
    gm_err e;
    gm_model *m = gm_model_open(test_path("../models/demo"), NULL, &e);
    rt_tokenizer *tok = rt_tok_load(test_path("../models/demo/tokenizer.model"), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m && tok);
    static const char *const prompts[] = {"Hello", "The sky is", "Once upon a time", "a", "Seven", "x y z",
                                          "Numbers: 1 2 3", "Why", "The end", "Go"};
    /* a prefix past the demo's window of 64: prompts wrap the rings over its rows */
    const char *prefix_text = "Tell me, and tell me true, of every ship and every sea, of cabbages and kings and why "
                              "the sea is boiling hot, and whether pigs have wings; tell me of the walrus and the "
                              "carpenter, of oysters young and old, and of the things they said. Tell me:",
               *stops[] = {" the sun,"}; /* in some of the demo's replies, not all */
    rt_gen_opts go = {12, stops, 1, NULL, NULL};
    rt_sampler_opts greedy = rt_sampler_defaults();
    greedy.temperature = 0;
    int32_t *prefix, *body, bos = rt_tok_bos(tok);
    int n_prefix, n_body;
    CU_ASSERT_EQUAL_FATAL(rt_tok_encode(tok, prefix_text, strlen(prefix_text), &body, &n_body, &e), 0);
    CU_ASSERT(n_body > 64);
    prefix = gm_malloc((n_body + 1) * sizeof *prefix);
    prefix[0] = bos, memcpy(prefix + 1, body, n_body * sizeof *body), n_prefix = n_body + 1;
    free(body);
    char *want[10];
    rt_engine *one = gm_model_engine(m, "jit", &(rt_engine_opts){.context = 160}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(one);
    int stopped_early = 0;
    for (int i = 0; i < 10; i++) {
        rt_session *s = rt_session_new(one, tok, &greedy, &e);
        rt_stop_reason why;
        CU_ASSERT_EQUAL_FATAL(rt_session_feed(s, prefix, n_prefix, &e), 0);
        CU_ASSERT_EQUAL_FATAL(rt_session_feed_text(s, prompts[i], &e), 0);
        CU_ASSERT_EQUAL_FATAL(rt_session_generate(s, &go, &want[i], &why, &e), 0);
        stopped_early += why == RT_STOP_STRING;
        rt_session_free(s);
    }
    one->free(one);
    CU_ASSERT(stopped_early > 0 && stopped_early < 10); /* replies of several lengths */
    const int sequences[] = {4, 1}; /* 3 at once and the prefix's; 1: the prefix prefilled for each prompt */
    for (int c = 0; c < 2; c++) {
        rt_engine *en = gm_model_engine(m, "jit", &(rt_engine_opts){.context = 160, .sequences = sequences[c]}, &e);
        CU_ASSERT_PTR_NOT_NULL_FATAL(en);
        list_io l = {tok, prompts, 10, {0}, {0}, 0};
        rt_parallel_stats st;
        CU_ASSERT_EQUAL_FATAL(rt_generate_parallel(en, tok, &greedy, prefix, n_prefix, &go,
                                                   &(rt_parallel_io){list_next, list_done, &l}, &st, &e), 0);
        int same = 0, in_order = 1;
        for (int i = 0; i < 10; i++) same += l.replies[i] && !strcmp(l.replies[i], want[i]);
        for (int i = 0; i < 10; i++) in_order &= l.order[i] == i;
        printf("[%d sequences: %d of 10 replies as alone, %d steps for %lld tokens%s] ", sequences[c], same, st.steps,
               st.decode_tokens, in_order ? "" : ", finished out of order");
        CU_ASSERT_EQUAL(same, 10);
        CU_ASSERT_EQUAL(st.prompts, 10);
        if (sequences[c] > 1) CU_ASSERT(st.steps < st.decode_tokens && !in_order);
        for (int i = 0; i < 10; i++) free(l.replies[i]);
        en->free(en);
    }
    for (int i = 0; i < 10; i++) free(want[i]);
    free(prefix);
    rt_tok_free(tok);
    gm_model_free(m);
}

static void test_refused(void) {
    gm_err e;
    gm_model *m = gm_model_open(test_path("golden/tiny-gemma2"), NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    rt_engine *en = gm_model_engine(m, "jit", &(rt_engine_opts){.context = 16, .sequences = 3}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(en);
    int32_t tokens[3] = {2, 3, 4};
    int seq[3] = {0, 2, 0}, pos[3] = {0, 0, 0};
    float *logits = gm_malloc(3 * en->vocab * sizeof *logits);
    CU_ASSERT_EQUAL(en->decode_batch(en, 3, tokens, seq, pos, logits, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "batch rows 0 and 2 both step sequence 0"));
    seq[2] = 3;
    CU_ASSERT_EQUAL(en->decode_batch(en, 3, tokens, seq, pos, logits, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "batch row 2: sequence 3, expected 0 to 2"));
    seq[2] = 1, pos[1] = 16;
    CU_ASSERT_EQUAL(en->decode_batch(en, 3, tokens, seq, pos, logits, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "exceed the context of 16 positions"));
    CU_ASSERT_EQUAL(en->use_sequence(en, 3, &e), -1);
    en->free(en);
    free(logits);
    gm_model_free(m);
    m = gm_model_open_with(test_path("golden/tiny-gemma2"), NULL,
                           &(gm_pipeline_opts){.level = GM_DEFAULT_LEVEL, .target = "reference"}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_PTR_NULL(gm_model_engine(m, "reference", &(rt_engine_opts){.context = 16, .sequences = 2}, &e));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "2 sequences: the reference backend keeps one"));
    gm_model_free(m);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("batched decoding", NULL, NULL);
    CU_add_test(s, "Gemma 1 (multi-query): N sequences at once as one at a time", test_gemma1);
    CU_add_test(s, "Gemma 2 (sliding window 8, softcaps)", test_gemma2);
    CU_add_test(s, "Gemma 3 (sliding window 6, q/k norms)", test_gemma3);
    CU_add_test(s, "a prefix prefilled once, copied to other sequences", test_shared_prefix);
    CU_add_test(s, "many prompts, continuous batching, a shared prefix", test_parallel_generation);
    CU_add_test(s, "bad batches and backends of one sequence are refused", test_refused);
    return test_run_all();
}
