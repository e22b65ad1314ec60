/* test_ir.c — the op table, the frontend and the verifier: a small valid
 * description builds into the expected unrolled graph, and each kind of
 * mistake in a description gives a one-line message that names the file,
 * the JSON path and what was expected. */
#include "testing.h"

#include "compiler/frontend.h"

#include <stdio.h>
#include <stdlib.h>

/* Two layers of a Gemma-like block, small enough to read. */
static const char *const base_desc =
    "{\"format\": \"gemmac-model/1\", \"name\": \"toy\","
    " \"config\": {\"vocab\": 10, \"max_context\": 32, \"bos\": 2, \"eos\": 1, \"eps\": 1e-6,"
    "   \"heads\": 2, \"kv_heads\": 1, \"head_dim\": 4, \"qs\": 0.5},"
    " \"layer_kinds\": {\"local\": {\"window\": 4, \"theta\": 10000}, \"global\": {\"window\": 0, \"theta\": 1e6}},"
    " \"layers\": [\"local\", \"global\"],"
    " \"weights\": {\"embed\": {\"tensor\": \"emb\", \"shape\": [10, 8]}, \"final\": {\"tensor\": \"fn\", \"shape\": [8]}},"
    " \"layer_weights\": {\"n\": {\"tensor\": \"l{i}.n\", \"shape\": [8]},"
    "   \"wq\": {\"tensor\": \"l{i}.q\", \"shape\": [8, 8]}, \"wk\": {\"tensor\": \"l{i}.k\", \"shape\": [4, 8]},"
    "   \"wv\": {\"tensor\": \"l{i}.v\", \"shape\": [4, 8]}, \"wo\": {\"tensor\": \"l{i}.o\", \"shape\": [8, 8]}},"
    " \"graph\": {"
    "  \"embed\": [{\"op\": \"embed\", \"in\": [\"tokens\", \"embed\"], \"out\": \"x\"}],"
    "  \"layer\": ["
    "   {\"op\": \"rms_norm\", \"in\": [\"x\", \"n\"], \"out\": \"h\", \"eps\": \"@eps\", \"add_one\": true},"
    "   {\"op\": \"matmul\", \"in\": [\"h\", \"wq\"], \"out\": \"q\"},"
    "   {\"op\": \"matmul\", \"in\": [\"h\", \"wk\"], \"out\": \"k\"},"
    "   {\"op\": \"matmul\", \"in\": [\"h\", \"wv\"], \"out\": \"v\"},"
    "   {\"op\": \"rope\", \"in\": [\"q\"], \"out\": \"q\", \"head_dim\": \"@head_dim\", \"theta\": \"@theta\"},"
    "   {\"op\": \"attention\", \"in\": [\"q\", \"k\", \"v\"], \"out\": \"a\", \"heads\": \"@heads\","
    "    \"kv_heads\": \"@kv_heads\", \"head_dim\": \"@head_dim\", \"scale\": \"@qs\", \"window\": \"@window\"},"
    "   {\"op\": \"matmul\", \"in\": [\"a\", \"wo\"], \"out\": \"o2\"},"
    "   {\"op\": \"add\", \"in\": [\"x\", \"o2\"], \"out\": \"x\"}],"
    "  \"head\": [{\"op\": \"rms_norm\", \"in\": [\"x\", \"final\"], \"out\": \"h\", \"eps\": 1e-6},"
    "   {\"op\": \"matmul\", \"in\": [\"h\", \"embed\"], \"out\": \"logits\"}]}}";

static cJSON *desc(void) { return cJSON_Parse(base_desc); }

/* Builds d (consumed) and returns the error message, or "" on success. */
static const char *build_error(cJSON *d) {
    static gm_err e;
    e.msg[0] = 0;
    ir_graph *g = frontend_build(d, "toy.json", &e);
    ir_graph_free(g);
    cJSON_Delete(d);
    CU_ASSERT_PTR_NULL(strchr(e.msg, '\n'));
    return e.msg;
}

static cJSON *layer_op(cJSON *d, int i) {
    return cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "graph"), "layer"), i);
}

static void expect(const char *msg, const char *part) {
    if (!strstr(msg, part)) printf("\n  message \"%s\" lacks \"%s\"\n", msg, part);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, part));
}

static void test_op_table(void) {
    for (int i = 0; i < IR_OP_COUNT; i++) {
        CU_ASSERT_PTR_NOT_NULL(ir_ops[i].name);
        CU_ASSERT_EQUAL(ir_op_from_name(ir_ops[i].name), i);
        CU_ASSERT(ir_ops[i].n_inputs >= 1 && ir_ops[i].n_inputs <= IR_MAX_IN);
        if (!ir_ops[i].training) CU_ASSERT(ir_ops[i].n_inputs <= IR_MAX_KERNEL_IN); /* what compiled kernels take */
    }
    CU_ASSERT_EQUAL(ir_ops[IR_MATMUL].kind, OUT_EWISE);
    CU_ASSERT_EQUAL(ir_ops[IR_RMS_NORM].kind, REDUCTION);
    CU_ASSERT_EQUAL(ir_op_from_name("conv2d"), -1);
    for (int a = 0; a < IR_ATTR_COUNT; a++) CU_ASSERT_EQUAL(ir_attr_from_name(ir_attr_names[a]), a);
}

static void test_build_valid(void) {
    cJSON *d = desc();
    gm_err e;
    ir_graph *g = frontend_build(d, "toy.json", &e);
    cJSON_Delete(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_EQUAL(g->n_layers, 2);
    CU_ASSERT_EQUAL(g->n_nodes, 1 + 2 * 8 + 2);
    CU_ASSERT_EQUAL(g->n_cache_slots, 2);
    CU_ASSERT_EQUAL(ir_param_count(g), 10 * 8 + 8 + 2 * (8 + 64 + 32 + 32 + 64));
    CU_ASSERT_EQUAL(g->values[g->logits].dims[1], 10);
    CU_ASSERT_STRING_EQUAL(g->layers[1].kind, "global");
    const ir_node *attn0 = &g->nodes[1 + 5], *attn1 = &g->nodes[1 + 8 + 5];
    CU_ASSERT_EQUAL(attn0->op, IR_ATTENTION);
    CU_ASSERT_EQUAL(attn0->attr[IR_A_WINDOW], 4);   /* "@window" from the local kind */
    CU_ASSERT_EQUAL(attn1->attr[IR_A_WINDOW], 0);
    CU_ASSERT_EQUAL(attn1->attr[IR_A_SOFTCAP], 0);  /* default */
    CU_ASSERT_EQUAL(g->nodes[1 + 8 + 4].attr[IR_A_THETA], 1e6);
    CU_ASSERT_EQUAL(g->nodes[1].attr[IR_A_ADD_ONE], 1);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ir_print(g, f);
    fclose(f);
    expect(text, "weight @l1.q : f32[8,8]");
    expect(text, "%L1.q = matmul(%L1.h, @l1.q) : f32[T,8]");
    expect(text, "%logits = matmul(%h, @emb) : f32[T,10]");
    free(text);
    ir_graph_free(g);
}

static void test_json_errors(void) {
    const char *dir = test_tmpdir("ir-json");
    char path[4200];
    snprintf(path, sizeof path, "%s/broken.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"format\": \"gemmac-model/1\",\n \"config\": {\"vocab\": 10,,}\n}\n", f);
    fclose(f);
    gm_err e;
    CU_ASSERT_PTR_NULL(frontend_load(path, &e));
    expect(e.msg, "broken.json:2: malformed JSON");
    snprintf(path, sizeof path, "%s/absent.json", dir);
    CU_ASSERT_PTR_NULL(frontend_load(path, &e));
    expect(e.msg, "absent.json: cannot open");
}

static void test_description_errors(void) {
    cJSON *d = desc();
    cJSON_ReplaceItemInObject(d, "format", cJSON_CreateString("gemmac-model/9"));
    expect(build_error(d), "toy.json: format: expected \"gemmac-model/1\", found \"gemmac-model/9\"");

    d = desc();
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(d, "config"), "vocab");
    expect(build_error(d), "toy.json: config.vocab: expected a number, found nothing");

    d = desc(); /* found by fuzz_description: an id past int was converted to int */
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(d, "config"), "eos", cJSON_CreateNumber(16470680237.0));
    expect(build_error(d), "toy.json: config.eos: expected a whole number in [0, 9], found 16470680237");

    d = desc();
    cJSON *shape = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "weights"), "embed"), "shape");
    cJSON_ReplaceItemInArray(shape, 0, cJSON_CreateNumber(1e300));
    expect(build_error(d), "weights.embed: expected a shape of whole numbers in [1, 2147483647], found [1e+300");

    d = desc(); /* the layer block unrolls to more than the IR's bound: refused before it is built */
    cJSON *layers = cJSON_GetObjectItem(d, "layers");
    for (int i = 0; i < 3000; i++) cJSON_AddItemToArray(layers, cJSON_CreateString("local"));
    expect(build_error(d), "layers, graph.layer, layer_weights: expected at most 32768 ops and weights in all, "
                           "found 3002 layers of 13");

    d = desc();
    cJSON_ReplaceItemInObject(layer_op(d, 5), "window", cJSON_CreateString("4096x"));
    expect(build_error(d), "graph.layer[5].window: expected a number, true/false or \"@key\", found \"4096x\"");

    d = desc();
    cJSON_ReplaceItemInObject(layer_op(d, 5), "window", cJSON_CreateString("@nowhere"));
    expect(build_error(d), "graph.layer[5].window: expected a number named in the layer kind or config");

    d = desc();
    cJSON_ReplaceItemInArray(cJSON_GetObjectItem(layer_op(d, 1), "in"), 1, cJSON_CreateString("q_prj"));
    expect(build_error(d), "toy.json: graph.layer[1].in[1]: unknown value or weight \"q_prj\"");

    d = desc();
    cJSON_ReplaceItemInObject(layer_op(d, 1), "op", cJSON_CreateString("conv"));
    expect(build_error(d), "graph.layer[1]: expected a known op");

    d = desc(); /* training ops exist only in graphs the differentiate pass makes */
    cJSON_ReplaceItemInObject(layer_op(d, 1), "op", cJSON_CreateString("matmul_dx"));
    expect(build_error(d), "graph.layer[1]: expected a known op");

    d = desc();
    cJSON_AddNumberToObject(layer_op(d, 0), "epsilon", 1);
    expect(build_error(d), "rms_norm takes no attribute 'epsilon' (it takes: eps, add_one)");

    d = desc();
    cJSON_DeleteItemFromObject(layer_op(d, 5), "scale");
    expect(build_error(d), "layer 0 graph.layer[5] (attention): attribute scale is required");

    d = desc();
    cJSON_ReplaceItemInArray(cJSON_GetObjectItem(d, "layers"), 1, cJSON_CreateString("glbal"));
    expect(build_error(d), "layers[1]: expected the name of an entry of layer_kinds, found \"glbal\"");

    d = desc();
    cJSON_AddItemToArray(cJSON_GetObjectItem(layer_op(d, 7), "in"), cJSON_CreateString("x"));
    expect(build_error(d), "graph.layer[7]: expected 2 inputs for add");
}

static void test_verifier_errors(void) {
    cJSON *d = desc(); /* k projection with the wrong in-features */
    cJSON *k = cJSON_GetObjectItem(cJSON_GetObjectItem(d, "layer_weights"), "wk");
    cJSON_ReplaceItemInObject(k, "shape", cJSON_Parse("[4, 6]"));
    expect(build_error(d), "layer 0 graph.layer[2] (matmul): weight columns (in-features) must equal the input's columns: expected 8, found 6");

    d = desc(); /* more kv heads than the k projection provides */
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(d, "config"), "kv_heads", cJSON_CreateNumber(2));
    expect(build_error(d), "(attention): k/v columns (kv_heads·head_dim): expected 8, found 4");

    d = desc(); /* a norm weight that does not divide the row */
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "layer_weights"), "n"), "shape",
                              cJSON_Parse("[3]"));
    expect(build_error(d), "weight 'l0.n' has 3 elements, which must divide the 8 columns");

    d = desc(); /* the head must produce vocab columns */
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(d, "config"), "vocab", cJSON_CreateNumber(11));
    expect(build_error(d), "logits have 10 columns, expected config.vocab = 11");

    d = desc(); /* a weight role reused as an output name */
    cJSON_ReplaceItemInObject(layer_op(d, 6), "out", cJSON_CreateString("wo"));
    expect(build_error(d), "graph.layer[6]: expected an output name that is not a weight role");
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("ir", NULL, NULL);
    CU_add_test(s, "op table", test_op_table);
    CU_add_test(s, "build a valid description", test_build_valid);
    CU_add_test(s, "malformed JSON", test_json_errors);
    CU_add_test(s, "description errors", test_description_errors);
    CU_add_test(s, "verifier errors", test_verifier_errors);
    return test_run_all();
}
