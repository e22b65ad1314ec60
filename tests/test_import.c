/* test_import.c — Hugging Face config → model description (compiler/import.c).
 *
 * Every published Gemma config in tests/hf-configs must import, build into a
 * verified IR graph and give the text-decoder parameter count of
 * param_counts.json; the oracle checkpoints must import with the layer kinds,
 * rope and scales the oracle was computed with; models/ must hold what
 * the importer writes today; and broken configs must fail with one line that
 * names the file and the key. */
#include "compiler/frontend.h"
#include "compiler/import.h"
#include "testing.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

/* The item at a path like "config.vocab", "layers[5]" or
 * "graph.layer[2].in[1]"; NULL when absent. */
static int64_t shape_elems(const cJSON *w) {
    int64_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(w, "shape")) n *= (int64_t)d->valuedouble;
    return n;
}

/* Parameters as the description states them: model weights plus the layer
 * weights once per layer. */
static int64_t desc_params(const cJSON *d) {
    int64_t model = 0, layer = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, test_json_at(d, "weights")) model += shape_elems(w);
    cJSON_ArrayForEach(w, test_json_at(d, "layer_weights")) layer += shape_elems(w);
    return model + cJSON_GetArraySize(test_json_at(d, "layers")) * layer;
}

static cJSON *read_json(const char *path) {
    gm_err e = {{0}};
    char *text = gm_read_file(path, NULL, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    cJSON *j = cJSON_Parse(text);
    free(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    return j;
}

static cJSON *import_ok(const char *path) {
    gm_err e = {{0}};
    cJSON *d = import_hf(path, &e);
    if (!d) fprintf(stderr, "\nimport_hf(%s): %s\n", path, e.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    return d;
}

/* Builds the IR from d, verifies it and returns its parameter count (-1 on
 * failure, with the message printed). */
static int64_t ir_params(const cJSON *d, const char *origin) {
    gm_err e = {{0}};
    ir_graph *g = frontend_build(d, origin, &e);
    if (!g || ir_verify(g, &e) != 0) {
        fprintf(stderr, "\n%s: %s\n", origin, e.msg);
        ir_graph_free(g);
        return -1;
    }
    int64_t n = ir_param_count(g);
    ir_graph_free(g);
    return n;
}

static void write_text(const char *path, const char *text) {
    gm_err e = {{0}};
    CU_ASSERT_EQUAL_FATAL(gm_write_file_atomic(path, text, strlen(text), &e), 0);
}

/* The index of the first op in list that writes out (from start), or -1. */
static int find_op(const cJSON *list, const char *op, const char *out) {
    int i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, list) {
        if (!strcmp(test_json_str(o, "op"), op) && !strcmp(test_json_str(o, "out"), out)) return i;
        i++;
    }
    return -1;
}

/* ---- every published config ------------------------------------------- */

static void test_published_configs(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s", test_path("hf-configs/param_counts.json"));
    cJSON *counts = read_json(path);
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, counts) {
        char dir[4096], file[4200];
        snprintf(dir, sizeof dir, "%s", test_path("hf-configs"));
        snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", c->string);
        snprintf(file, sizeof file, "%s/config.json", dir);
        cJSON *d = import_ok(dir);
        int64_t want = (int64_t)c->valuedouble;
        CU_ASSERT_STRING_EQUAL(test_json_str(d, "name"), c->string);
        CU_ASSERT_STRING_EQUAL(test_json_str(d, "format"), "gemmac-model/1");
        CU_ASSERT_EQUAL(desc_params(d), want);
        int64_t got = ir_params(d, c->string);
        if (got != want)
            fprintf(stderr, "\n%s: %lld parameters, expected %lld\n", c->string, (long long)got,
                    (long long)want);
        CU_ASSERT_EQUAL(got, want);
        /* the config.json itself gives the same description */
        cJSON *f = import_ok(file);
        CU_ASSERT_TRUE(cJSON_Compare(d, f, true));
        cJSON_Delete(f);
        cJSON_Delete(d);
        n++;
    }
    CU_ASSERT_EQUAL(n, 15);
    cJSON_Delete(counts);
}

static cJSON *import_published(const char *name) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_path("hf-configs"));
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", name);
    return import_ok(dir);
}

static void test_gemma1_layout(void) {
    cJSON *d = import_published("gemma-7b");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(test_json_at(d, "layers")), 28);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[27]"), "global");
    CU_ASSERT_PTR_NULL(test_json_at(d, "layer_kinds.sliding"));
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.window"), 0);
    CU_ASSERT_PTR_NULL(test_json_at(d, "layer_weights.post_attn_norm"));
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layer_weights.ffn_norm.tensor"),
                           "model.layers.{i}.post_attention_layernorm.weight");
    CU_ASSERT_EQUAL(test_json_num(d, "layer_weights.q_proj.shape[0]"), 4096);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_weights.q_proj.shape[1]"), 3072);
    CU_ASSERT_EQUAL(test_json_num(d, "config.query_scale"), (double)(1.0f / sqrtf(256.0f)));
    CU_ASSERT_EQUAL(test_json_num(d, "config.embed_scale"), (double)sqrtf(3072.0f));
    CU_ASSERT_PTR_NULL(test_json_at(d, "config.attn_softcap"));
    /* "hidden_act": "gelu" in the file, tanh GELU in the graph */
    CU_ASSERT(find_op(test_json_at(d, "graph.layer"), "gelu_tanh", "g") >= 0);
    const cJSON *head = test_json_at(d, "graph.head");
    CU_ASSERT_STRING_EQUAL(test_json_str(head, "[1].op"), "matmul");
    CU_ASSERT_STRING_EQUAL(test_json_str(head, "[1].out"), "logits");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(head), 2);
    cJSON_Delete(d);
}

static void test_gemma2_layout(void) {
    cJSON *d = import_published("gemma-2-27b-it");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[0]"), "sliding");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[45]"), "global");
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.window"), 4096);
    CU_ASSERT_EQUAL(test_json_num(d, "config.eos"), 1);
    CU_ASSERT_EQUAL(test_json_num(d, "config.query_scale"), (double)(1.0f / sqrtf(144.0f)));
    CU_ASSERT_EQUAL(test_json_num(d, "config.attn_softcap"), 50);
    CU_ASSERT_EQUAL(test_json_num(d, "config.final_softcap"), 30);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "graph.head[2].op"), "softcap");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "graph.head[2].out"), "logits");
    cJSON_Delete(d);
    d = import_published("gemma-2-2b-it"); /* eos_token_id: [1, 107] */
    CU_ASSERT_EQUAL(test_json_num(d, "config.eos"), 1);
    cJSON_Delete(d);
}

static void test_gemma3_layout(void) {
    cJSON *d = import_published("gemma-3-1b-it"); /* no layer_types: pattern 6 */
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[4]"), "sliding");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[5]"), "global");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[25]"), "sliding");
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.rope_theta"), 1e6);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.rope_pos_scale"), 1);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.rope_theta"), 1e4);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.window"), 512);
    CU_ASSERT_EQUAL(test_json_num(d, "config.vocab"), 262144);
    const cJSON *layer = test_json_at(d, "graph.layer");
    int q = find_op(layer, "matmul", "q"), qn = find_op(layer, "rms_norm", "q");
    int k = find_op(layer, "matmul", "k"), kn = find_op(layer, "rms_norm", "k");
    CU_ASSERT(q >= 0 && qn == q + 1 && k >= 0 && kn == k + 1);
    CU_ASSERT(qn < find_op(layer, "rope", "q") && kn < find_op(layer, "rope", "k"));
    const cJSON *attn = cJSON_GetArrayItem(layer, find_op(layer, "attention", "a"));
    CU_ASSERT_PTR_NOT_NULL(attn);
    CU_ASSERT_PTR_NULL(test_json_at(attn, "softcap")); /* no attention softcap */
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "graph.head[1].out"), "logits");
    cJSON_Delete(d);

    d = import_published("gemma-3-27b-it"); /* multimodal: text_config plus defaults */
    CU_ASSERT_EQUAL(test_json_num(d, "config.vocab"), 262208);
    CU_ASSERT_EQUAL(test_json_num(d, "config.heads"), 32);
    CU_ASSERT_EQUAL(test_json_num(d, "config.max_context"), 131072);
    CU_ASSERT_EQUAL(test_json_num(d, "config.eos"), 1);
    CU_ASSERT_EQUAL(test_json_num(d, "config.query_scale"), (double)(1.0f / sqrtf(168.0f)));
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.rope_pos_scale"), 8);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.rope_pos_scale"), 1);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.window"), 1024);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "weights.embed.tensor"), "language_model.model.embed_tokens.weight");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layer_weights.q_norm.tensor"),
                           "language_model.model.layers.{i}.self_attn.q_norm.weight");
    CU_ASSERT_EQUAL(test_json_num(d, "layer_weights.q_norm.shape[0]"), 128);
    cJSON_Delete(d);

    d = import_published("gemma-3-4b-it"); /* heads, kv heads, head_dim all defaulted */
    CU_ASSERT_EQUAL(test_json_num(d, "config.heads"), 8);
    CU_ASSERT_EQUAL(test_json_num(d, "config.kv_heads"), 4);
    CU_ASSERT_EQUAL(test_json_num(d, "config.head_dim"), 256);
    cJSON_Delete(d);
}

/* Each models/<name>.json is what the importer writes for the published configs. */
static void test_models_up_to_date(void) {
    static const char *pairs[][2] = {
        {"gemma-2b", "gemma-2b"},         {"gemma-7b", "gemma-7b"},
        {"gemma-2-2b", "gemma-2-2b"},     {"gemma-2-9b", "gemma-2-9b"},
        {"gemma-2-27b", "gemma-2-27b"},   {"gemma-3-270m", "gemma-3-270m"},
        {"gemma-3-1b", "gemma-3-1b-it"},  {"gemma-3-4b", "gemma-3-4b-it"},
        {"gemma-3-12b", "gemma-3-12b-it"}, {"gemma-3-27b", "gemma-3-27b-it"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char rel[256], path[4096];
        snprintf(rel, sizeof rel, "../models/%s.json", pairs[i][0]);
        snprintf(path, sizeof path, "%s", test_path(rel));
        cJSON *file = read_json(path);
        cJSON *d = import_published(pairs[i][1]);
        cJSON_ReplaceItemInObject(d, "name", cJSON_CreateString(pairs[i][0]));
        if (!cJSON_Compare(file, d, true)) fprintf(stderr, "\n%s differs from the importer's output\n", path);
        CU_ASSERT_TRUE(cJSON_Compare(file, d, true));
        CU_ASSERT(ir_params(file, path) > 0);
        cJSON_Delete(d);
        cJSON_Delete(file);
    }
}

/* ---- the oracle checkpoints (vocab from the tensor) ------------------- */

static cJSON *import_golden(const char *name) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_path("golden"));
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", name);
    return import_ok(dir);
}

static void test_golden_cases(void) {
    static const struct { const char *name; int vocab, layers; } cases[] = {
        {"tiny-gemma1-mqa", 512, 3}, {"tiny-gemma1-mha", 640, 3}, {"tiny-gemma2", 768, 4},
        {"tiny-gemma2-bf16", 768, 4}, {"tiny-gemma3", 1000, 7}, {"tiny-gemma3-1b", 896, 6},
        {"medium-gemma1-bf16", 1500, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *d = import_golden(cases[i].name);
        CU_ASSERT_STRING_EQUAL(test_json_str(d, "name"), cases[i].name);
        CU_ASSERT_EQUAL(test_json_num(d, "config.vocab"), cases[i].vocab);
        CU_ASSERT_EQUAL(cJSON_GetArraySize(test_json_at(d, "layers")), cases[i].layers);
        CU_ASSERT_EQUAL(test_json_num(d, "config.max_context"), 128);
        CU_ASSERT(ir_params(d, cases[i].name) > 0);
        cJSON_Delete(d);
    }
}

static void test_golden_gemma3(void) {
    cJSON *d = import_golden("tiny-gemma3");
    const char *want[7] = {"sliding", "sliding", "sliding", "sliding", "sliding", "global", "sliding"};
    for (int i = 0; i < 7; i++) {
        char p[32];
        snprintf(p, sizeof p, "layers[%d]", i);
        CU_ASSERT_STRING_EQUAL(test_json_str(d, p), want[i]);
    }
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.rope_pos_scale"), 8);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.rope_theta"), 1e6);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.window"), 0);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.window"), 12);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.rope_theta"), 1e4);
    CU_ASSERT_EQUAL(test_json_num(d, "config.query_scale"), (double)(1.0f / sqrtf(48.0f)));
    CU_ASSERT_EQUAL(test_json_num(d, "config.embed_scale"), 8);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_weights.k_norm.shape[0]"), 32);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_weights.k_proj.shape[0]"), 64);
    cJSON_Delete(d);

    d = import_golden("tiny-gemma3-1b");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[5]"), "global");
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.rope_pos_scale"), 1);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.window"), 6);
    CU_ASSERT_EQUAL(test_json_num(d, "config.query_scale"), (double)(1.0f / sqrtf(32.0f)));
    cJSON_Delete(d);
}

static void test_golden_gemma1_gemma2(void) {
    cJSON *d = import_golden("tiny-gemma2");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[0]"), "sliding");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[3]"), "global");
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.sliding.window"), 8);
    CU_ASSERT_EQUAL(test_json_num(d, "config.query_scale"), (double)(1.0f / sqrtf(24.0f)));
    CU_ASSERT_EQUAL(test_json_num(d, "config.attn_softcap"), 50);
    CU_ASSERT_EQUAL(test_json_num(d, "config.final_softcap"), 30);
    cJSON_Delete(d);

    d = import_golden("tiny-gemma1-mha");
    CU_ASSERT_EQUAL(test_json_num(d, "config.query_scale"), (double)(1.0f / sqrtf(32.0f)));
    CU_ASSERT_EQUAL(test_json_num(d, "layer_weights.q_proj.shape[0]"), 128);
    CU_ASSERT_EQUAL(test_json_num(d, "layer_weights.o_proj.shape[1]"), 128);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layers[2]"), "global");
    cJSON_Delete(d);
}

/* ---- checkpoints written here ----------------------------------------- */

/* A one-tensor F32 safetensors file (zeros). */
static void write_safetensors(const char *path, const char *name, int rows, int cols) {
    char header[512];
    size_t bytes = (size_t)rows * (size_t)cols * 4;
    int n = snprintf(header, sizeof header,
                     "{\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[0,%zu]}}",
                     name, rows, cols, bytes);
    while (n % 8) header[n++] = ' ';
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    uint64_t len = (uint64_t)n;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(len >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, (size_t)n, f);
    for (size_t i = 0; i < bytes; i++) fputc(0, f);
    fclose(f);
}

static const char *small_multimodal =
    "{\"model_type\": \"gemma3\", \"eos_token_id\": [1, 106],\n"
    " \"text_config\": {\"model_type\": \"gemma3_text\", \"hidden_size\": 8,\n"
    "   \"intermediate_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,\n"
    "   \"num_key_value_heads\": 1, \"head_dim\": 4, \"sliding_window\": 4,\n"
    "   \"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"linear\"}}}\n";

static void test_multimodal_checkpoint_prefix(void) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", test_tmpdir("import-mm"));
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, small_multimodal);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_safetensors(path, "model.language_model.embed_tokens.weight", 10, 8);
    cJSON *d = import_ok(dir);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "name"), "tmp-import-mm");
    CU_ASSERT_EQUAL(test_json_num(d, "config.vocab"), 10);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "weights.embed.tensor"), "model.language_model.embed_tokens.weight");
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "layer_weights.up_proj.tensor"),
                           "model.language_model.layers.{i}.mlp.up_proj.weight");
    CU_ASSERT_EQUAL(test_json_num(d, "layer_kinds.global.rope_pos_scale"), 8);
    CU_ASSERT(ir_params(d, "import-mm") > 0);
    cJSON_Delete(d);

    /* the published prefix, and an embedding whose width is not hidden_size */
    write_safetensors(path, "language_model.model.embed_tokens.weight", 12, 8);
    d = import_ok(dir);
    CU_ASSERT_EQUAL(test_json_num(d, "config.vocab"), 12);
    CU_ASSERT_STRING_EQUAL(test_json_str(d, "weights.embed.tensor"), "language_model.model.embed_tokens.weight");
    cJSON_Delete(d);
    gm_err e = {{0}};
    write_safetensors(path, "language_model.model.embed_tokens.weight", 12, 6);
    CU_ASSERT_PTR_NULL(import_hf(dir, &e));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "embed_tokens.weight"));
    write_safetensors(path, "something.else", 12, 8);
    CU_ASSERT_PTR_NULL(import_hf(dir, &e));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "embed_tokens.weight"));

    /* no safetensors: text_config.vocab_size, else the default 262208 */
    CU_ASSERT_EQUAL(remove(path), 0);
    d = import_ok(dir);
    CU_ASSERT_EQUAL(test_json_num(d, "config.vocab"), 262208);
    cJSON_Delete(d);
}

/* ---- errors ------------------------------------------------------------ */

/* Writes text to dir/file, imports it, and checks for a one-line error that
 * names the file and each of the words. */
static void expect_error(const char *dir, const char *file, const char *text, const char *w1,
                         const char *w2) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    write_text(path, text);
    gm_err e = {{0}};
    cJSON *d = import_hf(path, &e);
    CU_ASSERT_PTR_NULL(d);
    cJSON_Delete(d);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, path));
    CU_ASSERT_PTR_NULL(strchr(e.msg, '\n'));
    if (w1) CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, w1));
    if (w2) CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, w2));
    if (w1 && !strstr(e.msg, w1)) fprintf(stderr, "\nmessage: %s\n", e.msg);
}

#define GEMMA2_BODY                                                                          \
    "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 8, "              \
    "\"intermediate_size\": 64, \"num_hidden_layers\": 2, \"vocab_size\": 100"

static void test_errors(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_tmpdir("import-errors"));
    expect_error(dir, "malformed.json", "{\"model_type\": \"gemma2\",\n \"hidden_size\": 16,,\n}",
                 "malformed JSON", "line 2");
    expect_error(dir, "missing.json", "{\"model_type\": \"gemma2\", " GEMMA2_BODY "}",
                 "hidden_size", "missing");
    expect_error(dir, "llama.json", "{\"model_type\": \"llama\", \"hidden_size\": 16, " GEMMA2_BODY "}",
                 "\"llama\"", "gemma3_text");
    expect_error(dir, "type.json", "{\"model_type\": \"gemma2\", \"hidden_size\": \"big\", " GEMMA2_BODY "}",
                 "hidden_size", "\"big\"");
    expect_error(dir, "rope.json",
                 "{\"model_type\": \"gemma3_text\", \"hidden_size\": 16, " GEMMA2_BODY
                 ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}",
                 "rope_scaling", "linear");
    expect_error(dir, "layers.json",
                 "{\"model_type\": \"gemma2\", \"hidden_size\": 16, " GEMMA2_BODY
                 ", \"layer_types\": [\"full_attention\"]}",
                 "layer_types", NULL);
    expect_error(dir, "many-layers.json", /* refused before 2e9 layer kinds are made */
                 "{\"model_type\": \"gemma\", \"hidden_size\": 16, \"num_attention_heads\": 4, \"head_dim\": 8, "
                 "\"num_key_value_heads\": 2, \"intermediate_size\": 64, \"num_hidden_layers\": 2000000000, "
                 "\"vocab_size\": 100}",
                 "num_hidden_layers: expected a whole number in [1, 512], found 2000000000", NULL);
    expect_error(dir, "mm.json", "{\"model_type\": \"gemma3\"}", "text_config", NULL);
    expect_error(dir, "mmsize.json",
                 "{\"model_type\": \"gemma3\", \"text_config\": {\"hidden_size\": 8}}",
                 "text_config.intermediate_size", NULL);

    gm_err e = {{0}};
    char path[4200];
    snprintf(path, sizeof path, "%s/absent", dir);
    CU_ASSERT_PTR_NULL(import_hf(path, &e));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, path));
    CU_ASSERT_PTR_NULL(import_hf(dir, &e)); /* a directory without config.json */
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "config.json"));
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    CU_pSuite s = CU_add_suite("import", NULL, NULL);
    CU_add_test(s, "published configs: import, IR, parameter counts", test_published_configs);
    CU_add_test(s, "Gemma 1 layout", test_gemma1_layout);
    CU_add_test(s, "Gemma 2 layout", test_gemma2_layout);
    CU_add_test(s, "Gemma 3 layout and multimodal defaults", test_gemma3_layout);
    CU_add_test(s, "models/*.json up to date", test_models_up_to_date);
    CU_add_test(s, "oracle checkpoints", test_golden_cases);
    CU_add_test(s, "oracle Gemma 3 kinds and scales", test_golden_gemma3);
    CU_add_test(s, "oracle Gemma 1 and 2 scales", test_golden_gemma1_gemma2);
    CU_add_test(s, "multimodal checkpoint prefix and vocab", test_multimodal_checkpoint_prefix);
    CU_add_test(s, "errors name the file and the key", test_errors);
    return test_run_all();
}
