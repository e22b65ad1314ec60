/* test_real_model.c — the real Gemma 3 270M (llama.cpp GGUF, Q4_K_M) end to
 * end, and the GGUF importer on tiny files written here.
 *
 * `test_real_model gguf` (always runs): a small GGUF writer makes files with
 * only the keys and tensors import_gguf reads; a gemma3 and a gemma2 file
 * must import to the layer kinds, scales, softcaps and tensor names of
 * llama.cpp's loader rules, and a "llama" file must be refused by name.
 *
 * `test_real_model real`: the model scripts/fetch-model.sh puts in
 * ${GEMMAC_CACHE:-$HOME/.cache/gemmac}; without it the run exits 77 (ctest:
 * skipped). The file must import and bind; the tokenizer rebuilt from its
 * metadata must give exactly the ids of tests/tokenizers (ids_gemma3 and the
 * spm_ids_gemma3 of the divergent cases) and of the reference prompts, and
 * hold the pieces of tests/tokenizers/gemma3-tokenizer.model; and
 * every backend must reproduce tests/real-model/expected.json, computed by
 * Hugging Face transformers on the same dequantized weights (README.md
 * there): the same greedy token at every step of every prompt, and the
 * reference's top-40 logits and log-sum-exp within LOGIT_TOL. The reference's
 * continuation is fed back (teacher forcing), so every step is compared.
 * And GSM8K's first questions, batched after a shared prefix longer than the
 * sliding window, give the replies each gives alone. */
#include "compiler/eval.h"
#include "compiler/frontend.h"
#include "compiler/import.h"
#include "compiler/model.h"
#include "runtime/generate.h"
#include "runtime/parallel.h"
#include "runtime/sampler.h"
#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* max |Δ| of a logit vs the reference; observed 1.0e-4 (README.md) */
#define LOGIT_TOL 1e-3

/* ---- JSON helpers ------------------------------------------------------- */

/* The item at a path like "config.vocab", "layers[5]", "graph.head[1].in[0]". */
/* ---- a tiny GGUF writer --------------------------------------------------- */

typedef struct {
    gm_buf kvs, infos, data;
    int n_kvs, n_tensors;
} gguf_writer;

static void put_u32(gm_buf *b, uint32_t v) { gm_buf_put(b, (const char *)&v, 4); }
static void put_u64(gm_buf *b, uint64_t v) { gm_buf_put(b, (const char *)&v, 8); }

static void put_str(gm_buf *b, const char *s) {
    put_u64(b, strlen(s));
    gm_buf_put(b, s, strlen(s));
}

/* A key and its value type; the value follows. */
static gm_buf *kv(gguf_writer *w, const char *key, gguf_value_type t) {
    put_str(&w->kvs, key);
    put_u32(&w->kvs, t);
    w->n_kvs++;
    return &w->kvs;
}

static void kv_str(gguf_writer *w, const char *key, const char *v) { put_str(kv(w, key, GGUF_T_STRING), v); }
static void kv_u32(gguf_writer *w, const char *key, uint32_t v) { put_u32(kv(w, key, GGUF_T_UINT32), v); }
static void kv_f32(gguf_writer *w, const char *key, float v) {
    gm_buf_put(kv(w, key, GGUF_T_FLOAT32), (const char *)&v, 4);
}

/* An F32 tensor of ggml shape (ne0, ne1), filled with zeros. */
static void tensor_f32(gguf_writer *w, const char *name, int64_t ne0, int64_t ne1) {
    put_str(&w->infos, name);
    put_u32(&w->infos, 2); /* dimensions */
    put_u64(&w->infos, (uint64_t)ne0);
    put_u64(&w->infos, (uint64_t)ne1);
    put_u32(&w->infos, 0); /* F32 */
    put_u64(&w->infos, w->data.len);
    size_t n = (size_t)(ne0 * ne1 * 4 + 31) / 32 * 32;
    char *zeros = gm_calloc(n, 1);
    gm_buf_put(&w->data, zeros, n);
    free(zeros);
    w->n_tensors++;
}

/* Writes the file (alignment 32) and frees the writer; returns its path. */
static const char *gguf_write(gguf_writer *w, const char *name) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(name), name);
    gm_buf f = {0};
    gm_buf_put(&f, "GGUF", 4);
    put_u32(&f, 3);
    put_u64(&f, (uint64_t)w->n_tensors);
    put_u64(&f, (uint64_t)w->n_kvs);
    gm_buf_put(&f, w->kvs.s ? w->kvs.s : "", w->kvs.len);
    gm_buf_put(&f, w->infos.s ? w->infos.s : "", w->infos.len);
    while (f.len % 32) gm_buf_put(&f, "", 1);
    gm_buf_put(&f, w->data.s ? w->data.s : "", w->data.len);
    gm_err e;
    CU_ASSERT_EQUAL_FATAL(gm_write_file_atomic(path, f.s, f.len, &e), 0);
    free(f.s), free(w->kvs.s), free(w->infos.s), free(w->data.s);
    return path;
}

/* A Gemma file of arch with n layers: hidden 8, 2 heads, 1 kv head, head_dim 4,
 * vocab 16; sizes only, plus the embedding (and an LM head when untied). */
static const char *tiny_gemma(const char *arch, int n_layers, int window, int untied) {
    gguf_writer w = {0};
    char k[128];
    kv_str(&w, "general.architecture", arch);
#define ARCH_U32(suffix, v) (snprintf(k, sizeof k, "%s." suffix, arch), kv_u32(&w, k, v))
    ARCH_U32("block_count", (uint32_t)n_layers);
    ARCH_U32("embedding_length", 8);
    ARCH_U32("feed_forward_length", 32);
    ARCH_U32("attention.head_count", 2);
    ARCH_U32("attention.head_count_kv", 1);
    ARCH_U32("attention.key_length", 4);
    ARCH_U32("attention.value_length", 4);
    ARCH_U32("context_length", 128);
    if (window) ARCH_U32("attention.sliding_window", (uint32_t)window);
#undef ARCH_U32
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
    kv_f32(&w, k, 1e-6f);
    tensor_f32(&w, "token_embd.weight", 8, 16);
    if (untied) tensor_f32(&w, "output.weight", 8, 16);
    char file[64];
    snprintf(file, sizeof file, "%s.gguf", arch);
    return gguf_write(&w, file);
}

/* import_gguf on a file; NULL with the message in e. */
static cJSON *import_file(const char *path, gm_err *e) {
    gguf_file *g = gguf_open(path, e);
    cJSON *d = g ? import_gguf(g, path, e) : NULL;
    gguf_close(g);
    return d;
}

/* ---- the importer on tiny files ----------------------------------------- */

static void test_llama_refused(void) {
    gguf_writer w = {0};
    kv_str(&w, "general.architecture", "llama");
    kv_u32(&w, "llama.block_count", 2);
    const char *path = gguf_write(&w, "llama.gguf");
    gm_err e = {{0}};
    CU_ASSERT_PTR_NULL(import_file(path, &e));
    char want[4400];
    snprintf(want, sizeof want,
             "%s: general.architecture is \"llama\"; gemmac reads gemma, gemma2 and gemma3 GGUF files", path);
    CU_ASSERT_STRING_EQUAL(e.msg, want);
}

/* Every rms_norm of the graph has add_one false: GGUF norms hold the +1. */
static int norms_with_add_one(const cJSON *d) {
    int n = 0;
    const char *lists[] = {"graph.embed", "graph.layer", "graph.head"};
    for (int l = 0; l < 3; l++) {
        const cJSON *o;
        cJSON_ArrayForEach(o, test_json_at(d, lists[l])) if (!strcmp(test_json_str(o, "op"), "rms_norm") &&
                                                   !cJSON_IsFalse(test_json_at(o, "add_one"))) n++;
    }
    return n;
}

static void test_gemma3_tiny(void) {
    gm_err e = {{0}};
    cJSON *d = import_file(tiny_gemma("gemma3", 7, 12, 0), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    const char *kinds = "sssssgs";
    for (int i = 0; i < 7; i++) {
        char p[32];
        snprintf(p, sizeof p, "layers[%d]", i);
        CU_ASSERT_STRING_EQUAL(test_json_str(d, p), kinds[i] == 'g' ? "global" : "sliding");
    }
    CU_ASSERT_EQUAL(test_json_num(d, "config.vocab"), 16);
    CU_ASSERT_DOUBLE_EQUAL(test_json_num(d, "config.query_scale"), 0.5, 1e-7);  /* 1/sqrt(head_dim 4) */
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.window"), 12);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.rope_theta"), 10000.0);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.rope_theta"), 1000000.0);
    CU_ASSERT_PTR_NULL(test_json_at(d, "config.attn_softcap"));
    CU_ASSERT_PTR_NULL(test_json_at(d, "config.final_softcap"));
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layer_weights.q_proj.tensor"), "blk.{i}.attn_q.weight");
    CU_ASSERT_EQUAL(test_json_num(d, "layer_weights.q_proj.shape[0]"), 8);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_weights.q_proj.shape[1]"), 8);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layer_weights.q_norm.tensor"), "blk.{i}.attn_q_norm.weight");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layer_weights.ffn_norm.tensor"), "blk.{i}.ffn_norm.weight");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layer_weights.post_ffn_norm.tensor"), "blk.{i}.post_ffw_norm.weight");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "weights.embed.tensor"), "token_embd.weight");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "weights.final_norm.tensor"), "output_norm.weight");
    CU_ASSERT_PTR_NULL(test_json_at(d, "weights.lm_head"));
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "graph.head[1].in[1]"), "embed");
    CU_ASSERT_EQUAL(norms_with_add_one(d), 0);
    ir_graph *g = frontend_build(d, "tiny gemma3", &e);
    CU_ASSERT_PTR_NOT_NULL(g);
    ir_graph_free(g);
    cJSON_Delete(d);
}

static void test_gemma3_untied_and_27b(void) {
    gm_err e = {{0}};
    cJSON *d = import_file(tiny_gemma("gemma3", 7, 12, 1), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "weights.lm_head.tensor"), "output.weight");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "graph.head[1].in[1]"), "lm_head");
    cJSON_Delete(d);
    /* 62 layers is llama.cpp's Gemma 3 27B: scale 1/sqrt(hidden / heads) = 1/2 */
    CU_ASSERT_PTR_NOT_NULL_FATAL(d = import_file(tiny_gemma("gemma3", 62, 12, 0), &e));
    CU_ASSERT_DOUBLE_EQUAL(test_json_num(d, "config.query_scale"), 0.5, 1e-7);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[59]"), "global");
    cJSON_Delete(d);
    /* no sliding_window: every layer global */
    CU_ASSERT_PTR_NOT_NULL_FATAL(d = import_file(tiny_gemma("gemma3", 7, 0, 0), &e));
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[0]"), "global");
    cJSON_Delete(d);
}

static void test_gemma2_defaults(void) {
    gm_err e = {{0}};
    cJSON *d = import_file(tiny_gemma("gemma2", 4, 0, 0), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[0]"), "sliding");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[1]"), "global");
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.window"), 4096);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.rope_theta"), 10000.0);
    CU_ASSERT_EQUAL(test_json_num(d, "config.attn_softcap"), 50.0);
    CU_ASSERT_EQUAL(test_json_num(d, "config.final_softcap"), 30.0);
    CU_ASSERT_PTR_NULL(test_json_at(d, "layer_weights.q_norm"));
    CU_ASSERT_EQUAL(norms_with_add_one(d), 0);
    cJSON_Delete(d);
}

static void test_missing_key(void) {
    gguf_writer w = {0};
    kv_str(&w, "general.architecture", "gemma");
    const char *path = gguf_write(&w, "nokeys.gguf");
    gm_err e = {{0}};
    CU_ASSERT_PTR_NULL(import_file(path, &e));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "gemma.block_count: missing required key"));
    CU_ASSERT_PTR_NULL(strchr(e.msg, '\n'));
}

/* ---- the real model ------------------------------------------------------- */

static gm_model *model;
static rt_tokenizer *tok;
static cJSON *expected;


static void test_import_real(void) {
    const ir_graph *g = model->graph;
    CU_ASSERT_EQUAL(g->n_layers, 18);
    CU_ASSERT_EQUAL(g->vocab, 262144);
    gm_err e = {{0}};
    cJSON *d = import_gguf(model->gguf, test_real_model_path(), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    for (int i = 0; i < 18; i++) {
        char p[32];
        snprintf(p, sizeof p, "layers[%d]", i);
        CU_ASSERT_STRING_EQUAL(test_json_str(d, p), i % 6 == 5 ? "global" : "sliding");
    }
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.window"), 512);
    CU_ASSERT_EQUAL(test_json_num(d, "config.heads"), 4);
    CU_ASSERT_EQUAL(test_json_num(d, "config.kv_heads"), 1);
    CU_ASSERT_EQUAL(test_json_num(d, "config.query_scale"), 0.0625);
    cJSON_Delete(d);
}

/* Decodes the JSON string literal in lit (opening quote included) onto out,
 * and starts lit afresh. */
static void decode_literal(gm_buf *out, gm_buf *lit) {
    gm_buf_puts(lit, "\"");
    cJSON *s = cJSON_Parse(lit->s);
    if (cJSON_IsString(s)) gm_buf_puts(out, s->valuestring);
    cJSON_Delete(s);
    lit->len = 0;
    gm_buf_puts(lit, "\"");
}

/* The "text" of a tokenizer case line with its length. cJSON decodes it,
 * except that a NUL (\u0000) would end its C string: the literal is cut at
 * each \u0000 and the pieces decoded one by one. */
static char *case_text(const char *line, size_t *len) {
    const char *p = strstr(line, "\"text\": \"");
    if (!p) return NULL;
    gm_buf out = {0}, lit = {0};
    gm_buf_put(&out, "", 0);
    gm_buf_puts(&lit, "\"");
    for (p += 9; *p && *p != '"'; p++) {
        if (!strncmp(p, "\\u0000", 6)) {
            decode_literal(&out, &lit);
            gm_buf_put(&out, "", 1); /* the NUL */
            p += 5;
        } else {
            gm_buf_put(&lit, p, *p == '\\' ? 2 : 1); /* an escape is two characters */
            p += *p == '\\';
        }
    }
    decode_literal(&out, &lit);
    free(lit.s);
    *len = out.len;
    return out.s;
}

/* Cases of a jsonl file whose ids under key the GGUF tokenizer reproduces. */
static int conformance(const char *rel, const char *key, int *total) {
    gm_err e = {{0}};
    char *buf = gm_read_file(test_path(rel), NULL, &e), *save = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    int ok = 0;
    *total = 0;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t len;
        char *text = case_text(line, &len);
        cJSON *j = cJSON_Parse(line);
        const cJSON *want = test_json_at(j, key);
        int32_t *ids = NULL;
        int n = 0, same = text && rt_tok_encode(tok, text, len, &ids, &n, &e) == 0 && n == cJSON_GetArraySize(want);
        for (int i = 0; same && i < n; i++) same = ids[i] == (int32_t)cJSON_GetArrayItem(want, i)->valueint;
        if (!same) fprintf(stderr, "\n%s: %s differs for %.80s\n", rel, key, line);
        ok += same;
        (*total)++;
        free(ids), free(text), cJSON_Delete(j);
    }
    free(buf);
    return ok;
}

static void test_tokenizer_real(void) {
    int total;
    CU_ASSERT_EQUAL(conformance("tokenizers/tokenizer-cases.jsonl", "ids_gemma3", &total), total);
    CU_ASSERT_EQUAL(total, 244);
    CU_ASSERT_EQUAL(conformance("tokenizers/tokenizer-divergent-cases.jsonl", "spm_ids_gemma3", &total), total);
    CU_ASSERT_EQUAL(total, 38);
    CU_ASSERT_EQUAL(rt_tok_bos(tok), 2);
    CU_ASSERT_EQUAL(rt_tok_eos(tok), 1);
    CU_ASSERT_EQUAL(rt_tok_piece_id(tok, "<end_of_turn>"), 106);
    /* the same pieces, in the same order, as the Gemma 3 tokenizer.model there */
    gm_err e = {{0}};
    rt_tokenizer *ref = rt_tok_load(test_path("tokenizers/gemma3-tokenizer.model"), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    CU_ASSERT_EQUAL(rt_tok_vocab_size(tok), rt_tok_vocab_size(ref));
    int differ = 0;
    for (int32_t id = 0; id < rt_tok_vocab_size(ref); id++) {
        char *a = rt_tok_piece(tok, id), *b = rt_tok_piece(ref, id);
        differ += !a || !b || strcmp(a, b);
        free(a), free(b);
    }
    CU_ASSERT_EQUAL(differ, 0);
    rt_tok_free(ref);
}

/* The reference prompts, chat-formatted, encode to the reference's ids. */
static void test_prompt_ids(void) {
    const cJSON *p;
    cJSON_ArrayForEach(p, test_json_at(expected, "prompts")) {
        char *chat = rt_chat_turn(NULL, test_json_str(p, "text"), 1, 0);
        int32_t *ids = NULL;
        int n = 0;
        gm_err e = {{0}};
        CU_ASSERT_EQUAL_FATAL(rt_tok_encode(tok, chat, strlen(chat), &ids, &n, &e), 0);
        const cJSON *want = test_json_at(p, "ids");
        CU_ASSERT_EQUAL(n + 1, cJSON_GetArraySize(want)); /* + BOS */
        int same = n + 1 == cJSON_GetArraySize(want) && cJSON_GetArrayItem(want, 0)->valueint == 2;
        for (int i = 0; same && i < n; i++) same = ids[i] == cJSON_GetArrayItem(want, i + 1)->valueint;
        CU_ASSERT(same);
        free(ids), free(chat);
    }
}

static int32_t *id_array(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int32_t *v = gm_malloc((size_t)*n * sizeof *v);
    for (int i = 0; i < *n; i++) v[i] = (int32_t)cJSON_GetArrayItem(a, i)->valueint;
    return v;
}

static double logsumexp(const float *x, int64_t n) {
    double m = x[0], s = 0;
    for (int64_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int64_t i = 0; i < n; i++) s += exp(x[i] - m);
    return m + log(s);
}

/* Worst |Δ| of step s's logits against the reference row. */
static double step_error(const cJSON *p, int s, const float *logits, int64_t V) {
    char path[64];
    snprintf(path, sizeof path, "logsumexp[%d]", s);
    double worst = fabs(logsumexp(logits, V) - test_json_num(p, path));
    const cJSON *ids = cJSON_GetArrayItem(test_json_at(p, "top_ids"), s), *vals = cJSON_GetArrayItem(test_json_at(p, "top_logits"), s);
    for (int k = 0; k < cJSON_GetArraySize(ids); k++) {
        double d = fabs(logits[cJSON_GetArrayItem(ids, k)->valueint] - cJSON_GetArrayItem(vals, k)->valuedouble);
        worst = d > worst ? d : worst;
    }
    return worst;
}

/* One prompt on one engine: prefill, then the reference's continuation fed
 * back; returns the steps whose argmax agrees, *worst the largest |Δ|. */
static int run_prompt(rt_engine *en, const cJSON *p, int steps, double *worst) {
    int n, nc, agree = 0;
    int32_t *ids = id_array(test_json_at(p, "ids"), &n), *cont = id_array(test_json_at(p, "continuation"), &nc);
    float *logits = gm_malloc((size_t)en->vocab * sizeof *logits);
    gm_err e = {{0}};
    int rc = en->prefill(en, ids, n, 0, logits, 0, &e);
    *worst = 0;
    for (int s = 0; !rc && s < steps && s < nc; s++) {
        if (s && (rc = en->decode(en, cont[s - 1], n + s - 1, logits, &e))) break;
        agree += rt_argmax(logits, en->vocab) == cont[s];
        double d = step_error(p, s, logits, en->vocab);
        *worst = d > *worst ? d : *worst;
    }
    if (rc) fprintf(stderr, "\n%s\n", e.msg);
    free(ids), free(cont), free(logits);
    return agree;
}

static void test_reference_logits(void) {
    int steps = (int)test_json_num(expected, "steps"), longest = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, test_json_at(expected, "prompts")) {
        int n = cJSON_GetArraySize(test_json_at(p, "ids"));
        longest = n > longest ? n : longest;
    }
    CU_ASSERT_FATAL(steps >= 32);
    for (int b = 0; gm_backend_names[b]; b++) {
        gm_err e = {{0}};
        if (!gm_backend_available(gm_backend_names[b], &e)) {
            fprintf(stderr, "\n  %s: not run here: %s", gm_backend_names[b], e.msg);
            continue;
        }
        const char *target = gm_backend_target(gm_backend_names[b]);
        gm_model *own = target ? gm_model_open_with(test_real_model_path(), NULL, &(gm_pipeline_opts){.level = GM_DEFAULT_LEVEL,
                                                                                         .target = target}, &e) : NULL;
        CU_ASSERT_FATAL(!target || own);
        rt_engine *en = gm_model_engine(own ? own : model, gm_backend_names[b], &(rt_engine_opts){.context = longest + steps}, &e);
        if (!en) fprintf(stderr, "\n%s\n", e.msg);
        CU_ASSERT_PTR_NOT_NULL_FATAL(en);
        int i = 0;
        cJSON_ArrayForEach(p, test_json_at(expected, "prompts")) {
            double worst;
            int agree = run_prompt(en, p, steps, &worst);
            fprintf(stderr, "\n  %s, prompt %d: %d/%d greedy steps agree, max |dlogit| %.2g", gm_backend_names[b], i++,
                    agree, steps, worst);
            CU_ASSERT_EQUAL(agree, steps);
            CU_ASSERT(worst <= LOGIT_TOL);
        }
        en->free(en);
        gm_model_free(own);
    }
}

/* KL(p ‖ q) of the softmaxes of logits a (p) and b (q), in double. */
static double kl_of_logits(const float *a, const float *b, int64_t V) {
    double ma = a[0], mb = b[0], za = 0, zb = 0, kl = 0;
    for (int64_t i = 1; i < V; i++) ma = a[i] > ma ? a[i] : ma, mb = b[i] > mb ? b[i] : mb;
    for (int64_t i = 0; i < V; i++) za += exp(a[i] - ma), zb += exp(b[i] - mb);
    for (int64_t i = 0; i < V; i++) {
        double la = a[i] - ma - log(za), lb = b[i] - mb - log(zb);
        kl += exp(la) * (la - lb);
    }
    return kl;
}

/* The mean KL(base ‖ m) of the next-token distributions and the top-1
 * agreement of model m against base, teacher-forced on the reference
 * continuations (jit both), printed under label. */
static void compare_models(gm_model *base, gm_model *m, const char *label, double *mean_kl, double *agreement) {
    int steps = (int)test_json_num(expected, "steps"), context = steps;
    const cJSON *p;
    cJSON_ArrayForEach(p, test_json_at(expected, "prompts")) {
        int n = cJSON_GetArraySize(test_json_at(p, "ids"));
        context = n + steps > context ? n + steps : context;
    }
    gm_err e = {{0}};
    rt_engine *en[2] = {gm_model_engine(base, "jit", &(rt_engine_opts){.context = context}, &e),
                        gm_model_engine(m, "jit", &(rt_engine_opts){.context = context}, &e)};
    CU_ASSERT_FATAL(en[0] && en[1]);
    int64_t V = en[0]->vocab;
    float *lg[2] = {gm_malloc(V * sizeof(float)), gm_malloc(V * sizeof(float))};
    double kl = 0;
    int agree = 0, positions = 0;
    cJSON_ArrayForEach(p, test_json_at(expected, "prompts")) {
        int n, nc;
        int32_t *ids = id_array(test_json_at(p, "ids"), &n), *cont = id_array(test_json_at(p, "continuation"), &nc);
        for (int s = 0; s < steps && s < nc; s++, positions++) {
            for (int k = 0; k < 2; k++)
                CU_ASSERT_EQUAL_FATAL(s ? en[k]->decode(en[k], cont[s - 1], n + s - 1, lg[k], &e)
                                        : en[k]->prefill(en[k], ids, n, 0, lg[k], 0, &e), 0);
            kl += kl_of_logits(lg[0], lg[1], V);
            agree += rt_argmax(lg[0], V) == rt_argmax(lg[1], V);
        }
        free(ids), free(cont);
    }
    *mean_kl = kl / positions, *agreement = (double)agree / positions;
    fprintf(stderr, "\n  %s over %d positions: mean KL %.6f, top-1 agreement %.1f %%", label, positions, *mean_kl,
            100 * *agreement);
    for (int k = 0; k < 2; k++) en[k]->free(en[k]), free(lg[k]);
}

static gm_model *open_real_with(const gm_pipeline_opts *po) {
    gm_err e = {{0}};
    gm_model *m = gm_model_open_with(test_real_model_path(), NULL, po, &e);
    if (!m) fprintf(stderr, "\n  %s", e.msg);
    return m;
}

/* --activations int8 against the exact f32 path. Rounding x to 8 bits per
 * block of 32 is a relative error of up to 1/254 per value; on
 * bench/text/tico19-en.txt (5355 positions, gemmac perplexity --base) it
 * measured a mean KL of 0.0020 and 97.7 % top-1 agreement, and perplexity
 * +0.10 %. The thresholds, mean KL below 0.01 and agreement at least 90 %,
 * leave room for these prompts' fewer positions while a broken kernel (a
 * wrong scale, offset or sign in any format) gives KLs of order 1 and
 * agreement near 0. */
static void test_int8_activations(void) {
    gm_model *m8 = open_real_with(&(gm_pipeline_opts){.level = GM_DEFAULT_LEVEL, .activations = "int8"});
    CU_ASSERT_PTR_NOT_NULL_FATAL(m8);
    double kl, agree;
    compare_models(model, m8, "int8 vs f32", &kl, &agree);
    CU_ASSERT(kl < 0.01);
    CU_ASSERT(agree >= 0.9);
    gm_model_free(m8);
}

/* --activations bf16 against the exact f32 path, both on the model's
 * matrices converted to bf16 (--weights-dtype bf16). Rounding x to bf16 is
 * a relative error of up to 2^-9 per value, 4x below int8's; on
 * bench/text/tico19-en.txt (4 chunks of 512, gemmac perplexity --base on the
 * model written as a bf16 GGUF) it measured a mean KL of 0.00004 and 99.8 %
 * top-1 agreement. The thresholds, mean KL below 0.002 and agreement at
 * least 95 %, sit far above that and far below what a broken kernel gives
 * (products of the wrong pairs of k, a lost tail pair or panel: KLs of
 * order 1). */
static void test_bf16_activations(void) {
    gm_model *m[2] = {open_real_with(&(gm_pipeline_opts){.level = GM_DEFAULT_LEVEL, .weights_dtype = "bf16"}),
                      open_real_with(&(gm_pipeline_opts){.level = GM_DEFAULT_LEVEL, .weights_dtype = "bf16",
                                                         .activations = "bf16"})};
    CU_ASSERT_FATAL(m[0] && m[1]);
    double kl, agree;
    compare_models(m[0], m[1], "bf16 vs f32 activations on bf16 weights", &kl, &agree);
    CU_ASSERT(kl < 0.002);
    CU_ASSERT(agree >= 0.95);
    for (int i = 0; i < 2; i++) gm_model_free(m[i]);
}

/* ---- GSM8K, batched ------------------------------------------------------- */

typedef struct {
    const eval_task *t;
    const eval_item *items;
    char *replies[3];
} gsm8k_io;

static int gsm8k_next(void *user, int index, int32_t **ids, int *n, gm_err *e) {
    gsm8k_io *g = user;
    if (index == 3) return 0;
    char *prompt = eval_prompt(g->t, g->items[index].input);
    int rc = rt_tok_encode(tok, prompt, strlen(prompt), ids, n, e);
    free(prompt);
    return rc ? -1 : 1;
}

static int gsm8k_done(void *user, int index, const char *reply, rt_stop_reason why, gm_err *e) {
    (void)why, (void)e;
    ((gsm8k_io *)user)->replies[index] = gm_strdup(reply);
    return 0;
}

/* The first 3 GSM8K questions as gemmac eval runs them (its 785-token
 * few-shot prefix, longer than the 512-position window, prefilled once and
 * copied; 3 sequences decoding together) give the greedy replies each gives
 * alone, prefix and question fed to a session of its own. (On the first 20
 * questions, eval --parallel 8 and gemmac run --temp 0 on each whole prompt
 * were measured identical, 2026-12-06.) */
static void test_gsm8k_batched(void) {
    gm_err e;
    eval_task t;
    eval_item *items;
    int n, n_prefix;
    int32_t *prefix, *text, bos = rt_tok_bos(tok);
    CU_ASSERT_EQUAL_FATAL(eval_task_load(test_path("../eval/gsm8k.json"), "test", -1, &t, &e), 0);
    CU_ASSERT_EQUAL_FATAL(eval_items_load(&t, NULL, &items, &n, &e), 0);
    CU_ASSERT_EQUAL_FATAL(rt_tok_encode(tok, t.prefix, strlen(t.prefix), &text, &n_prefix, &e), 0);
    prefix = gm_malloc((n_prefix + 1) * sizeof *prefix);
    prefix[0] = bos, memcpy(prefix + 1, text, n_prefix * sizeof *text), n_prefix++;
    free(text);
    rt_sampler_opts greedy = rt_sampler_defaults();
    greedy.temperature = 0;
    rt_gen_opts go = {t.max_new, (const char *const *)t.stops, t.n_stops, NULL, NULL};
    rt_engine *en = gm_model_engine(model, "jit", &(rt_engine_opts){.context = 1536, .sequences = 4}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(en);
    gsm8k_io g = {&t, items, {NULL}};
    rt_parallel_stats st;
    CU_ASSERT_EQUAL(rt_generate_parallel(en, tok, &greedy, prefix, n_prefix, &go, &(rt_parallel_io){gsm8k_next, gsm8k_done, &g},
                                         &st, &e), 0);
    en->free(en);
    rt_engine *one = gm_model_engine(model, "jit", &(rt_engine_opts){.context = 1536}, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(one);
    int same = 0;
    for (int i = 0; i < 3; i++) {
        rt_session *s = rt_session_new(one, tok, &greedy, &e);
        char *prompt = eval_prompt(&t, items[i].input), *reply = NULL;
        rt_stop_reason why;
        CU_ASSERT_EQUAL(rt_session_feed(s, prefix, n_prefix, &e) || rt_session_feed_text(s, prompt, &e) ||
                        rt_session_generate(s, &go, &reply, &why, &e), 0);
        same += reply && g.replies[i] && !strcmp(reply, g.replies[i]);
        free(reply), free(prompt), free(g.replies[i]);
        rt_session_free(s);
    }
    printf("[prefix %d tokens; %d of 3 replies as alone, %lld tokens in %d steps] ", n_prefix, same, st.decode_tokens, st.steps);
    CU_ASSERT(n_prefix > 512);
    CU_ASSERT_EQUAL(same, 3);
    one->free(one);
    free(prefix);
    eval_items_free(items, n);
    eval_task_free(&t);
}

/* ---- main ----------------------------------------------------------------- */

static cJSON *read_json(const char *path, gm_err *e) {
    char *text = gm_read_file(path, NULL, e);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    if (text && !j) gm_fail(e, "%s: malformed JSON", path);
    free(text);
    return j;
}

static int open_real(void) {
    struct stat st;
    if (stat(test_real_model_path(), &st) != 0) {
        printf("skipped: %s not found (scripts/fetch-model.sh gemma-3-270m fetches it)\n", test_real_model_path());
        return 77;
    }
    gm_err e = {{0}};
    if (!(model = gm_model_open(test_real_model_path(), NULL, &e)) || !(tok = gguf_tokenizer(model->gguf, &e)) ||
        !(expected = read_json(test_path("real-model/expected.json"), &e))) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int real = argc > 1 && !strcmp(argv[1], "real");
    int rc = real ? open_real() : 0;
    if (rc) return rc;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s;
    if (real) {
        s = CU_add_suite("real Gemma 3 270M", NULL, NULL);
        CU_add_test(s, "import and bind", test_import_real);
        CU_add_test(s, "tokenizer from the file vs tests/tokenizers", test_tokenizer_real);
        CU_add_test(s, "reference prompts tokenize alike", test_prompt_ids);
        CU_add_test(s, "greedy steps and logits vs transformers", test_reference_logits);
        CU_add_test(s, "int8 activations vs f32: KL, top-1", test_int8_activations);
        CU_add_test(s, "bf16 activations vs f32 on bf16 weights: KL, top-1", test_bf16_activations);
        CU_add_test(s, "GSM8K's first questions batched as each alone", test_gsm8k_batched);
    } else {
        s = CU_add_suite("GGUF import", NULL, NULL);
        CU_add_test(s, "a llama file is refused", test_llama_refused);
        CU_add_test(s, "gemma3: kinds, scales, names, add_one", test_gemma3_tiny);
        CU_add_test(s, "gemma3: untied head, 27B scale, no window", test_gemma3_untied_and_27b);
        CU_add_test(s, "gemma2: loader defaults", test_gemma2_defaults);
        CU_add_test(s, "a missing key is one line", test_missing_key);
    }
    rc = test_run_all();
    rt_tok_free(tok);
    gm_model_free(model);
    cJSON_Delete(expected);
    return rc;
}
