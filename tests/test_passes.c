/* test_passes.c — the passes that reorganise the graph without changing its
 * numbers, on graphs built here by hand and on every published model:
 * plan_memory's offsets (worked out below), that no two activations alive at
 * once share arena columns, and eliminate_common merging repeated nodes and
 * weights while leaving attention (which has state) alone. */
#include "testing.h"

#include "compiler/frontend.h"
#include "compiler/model.h"
#include "compiler/passes/passes.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

static int weight(ir_graph *g, const char *name, int64_t rows, int64_t cols) {
    int64_t dims[2] = {rows, cols};
    return ir_add_value(g, name, IR_WEIGHT, GM_F32, cols ? 2 : 1, dims, -1);
}

static int act(ir_graph *g, const char *name) { return ir_add_value(g, name, IR_ACT, GM_F32, 0, NULL, -1); }

static ir_node *node(ir_graph *g, ir_op op, int a, int b, int out) {
    return ir_add_node(g, op, (int[]){a, b, -1}, out, -1, "test");
}

static void verify(ir_graph *g) {
    gm_err e;
    if (ir_verify(g, &e)) printf("\n  %s\n", e.msg);
    CU_ASSERT_EQUAL_FATAL(ir_verify(g, &e), 0);
}

/* Whether b is written over a: its node writes in place and reads a for
 * the last time, and the two have one block. */
static int overwrites(const ir_graph *g, const int *first, const int *last, const int64_t *offset, int a, int b) {
    const ir_node *n = &g->nodes[first[b]];
    int reads = 0;
    for (int k = 0; k < ir_ops[n->op].n_inputs; k++) reads |= n->in[k] == a;
    return reads && ir_writes_in_place(n->op) && last[a] == first[b] && offset[a] == offset[b] &&
           ir_value_cols(g, a) == ir_value_cols(g, b);
}

/* Pairs of activations alive at once (ir_live_ranges) whose columns in the
 * arena overlap, but for an output written over its input, and activations
 * outside it; 0 for a sound layout. */
static int layout_errors(const ir_graph *g, const int64_t *offset, int64_t width) {
    int *first = gm_malloc(g->n_values * sizeof *first), *last = gm_malloc(g->n_values * sizeof *last), bad = 0;
    ir_live_ranges(g, first, last);
    for (int a = 0; a < g->n_values; a++) {
        if (first[a] < 0) continue;
        int64_t ca = ir_value_cols(g, a);
        bad += offset[a] < 0 || offset[a] + ca > width;
        for (int b = a + 1; b < g->n_values; b++) {
            if (first[b] < 0 || last[a] < first[b] || last[b] < first[a]) continue;
            if (overwrites(g, first, last, offset, a, b)) continue;
            bad += offset[a] < offset[b] + ir_value_cols(g, b) && offset[b] < offset[a] + ca;
        }
    }
    free(first);
    free(last);
    return bad;
}

static int64_t unplanned_width(const ir_graph *g) {
    int64_t *offset = gm_malloc(g->n_values * sizeof *offset);
    ir_graph copy = *g;
    copy.arena_offset = NULL;
    int64_t width = ir_arena_layout(&copy, offset);
    free(offset);
    return width;
}

/*   node  value                       columns  live
 *   0     e = embed(tokens, E)        4        0..4
 *   1     a = matmul(e, W8)           8        1..2
 *   2     b = scale(a)                8        2..3
 *   3     c = matmul(b, W4)           4        3..4
 *   4     d = add(c, e)               4        4..5
 *   5     logits = matmul(d, L)       10       5..end
 * scale and add write in place: b over a (read last at 2), d over c (the
 * first input read last at 4), so a–b (1..3) and c–d (3..5) are one block
 * each. Widest first: logits 0, a–b 0 (logits comes later), e 8 (a–b is in
 * the way), c–d 12 (all three are). Unplanned: 38 columns. */
static ir_graph *chain_graph(void) {
    ir_graph *g = ir_graph_new("chain");
    g->vocab = 10;
    g->tokens = ir_add_value(g, "tokens", IR_INPUT, GM_I32, 1, (int64_t[]){IR_DIM_T}, -1);
    int E = weight(g, "E", 10, 4), W8 = weight(g, "W8", 8, 4), W4 = weight(g, "W4", 4, 8), L = weight(g, "L", 10, 4);
    int e = act(g, "e"), a = act(g, "a"), b = act(g, "b"), c = act(g, "c"), d = act(g, "d");
    g->logits = act(g, "logits");
    node(g, IR_EMBED, g->tokens, E, e);
    node(g, IR_MATMUL, e, W8, a);
    node(g, IR_SCALE, a, -1, b)->attr[IR_A_BY] = 2;
    node(g, IR_MATMUL, b, W4, c);
    node(g, IR_ADD, c, e, d);
    node(g, IR_MATMUL, d, L, g->logits);
    verify(g);
    return g;
}

static void test_plan_chain(void) {
    ir_graph *g = chain_graph();
    CU_ASSERT_EQUAL(unplanned_width(g), 38);
    pass_plan_memory(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g->arena_offset);
    const int64_t want[] = {-1, -1, -1, -1, -1, 8, 0, 0, 12, 12, 0}; /* tokens, 4 weights, e a b c d logits */
    for (int v = 0; v < g->n_values; v++) CU_ASSERT_EQUAL(g->arena_offset[v], want[v]);
    CU_ASSERT_EQUAL(g->arena_width, 16);
    CU_ASSERT_EQUAL(layout_errors(g, g->arena_offset, g->arena_width), 0);
    int64_t offset[11];
    CU_ASSERT_EQUAL(ir_arena_layout(g, offset), 16);
    CU_ASSERT_EQUAL(offset[9], 12);
    ir_drop_plan(g);
    CU_ASSERT_EQUAL(ir_arena_layout(g, offset), 38);
    CU_ASSERT_EQUAL(offset[5], 0);
    CU_ASSERT_EQUAL(offset[10], 28);
    ir_graph_free(g);
}

/* One published description at -O2: a sound plan, narrower than no plan. */
static void check_model_plan(const char *path) {
    gm_err e;
    char *origin = NULL, *ckpt = NULL;
    cJSON *desc = gm_description_load(path, &origin, &ckpt, &e);
    ir_graph *g = desc ? frontend_build(desc, origin, &e) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_EQUAL_FATAL(pipeline_run(g, &(gm_pipeline_opts){.level = GM_DEFAULT_LEVEL}, NULL, 0, &e), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g->arena_offset);
    int bad = layout_errors(g, g->arena_offset, g->arena_width);
    if (bad) printf("\n  %s: %d overlaps\n", path, bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(g->arena_width < unplanned_width(g));
    ir_graph_free(g);
    cJSON_Delete(desc);
    free(origin);
    free(ckpt);
}

static void test_plan_every_model(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models", GM_SOURCE_DIR);
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int n = 0;
    for (struct dirent *f; (f = readdir(d));) {
        if (!gm_ends_with(f->d_name, ".json")) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, f->d_name);
        check_model_plan(path);
        n++;
    }
    closedir(d);
    printf("[%d models] ", n);
    CU_ASSERT(n > 0);
}

/* A derived weight made by hand, so two can be equal (ir_add_derived_weight
 * would return the first). */
static int derived(ir_graph *g, const char *name, const char *from) {
    int w = weight(g, name, 4, 0);
    g->values[w].derived_from = gm_strdup(from);
    g->values[w].derived_add = 1;
    g->values[w].derived_mul = 1;
    return w;
}

static ir_node *attention(ir_graph *g, int x, int out) {
    ir_node *n = ir_add_node(g, IR_ATTENTION, (int[]){x, x, x}, out, -1, "test");
    n->attr[IR_A_HEADS] = n->attr[IR_A_KV_HEADS] = 1;
    n->attr[IR_A_HEAD_DIM] = 4;
    n->attr[IR_A_SCALE] = 0.5;
    n->cache_slot = g->n_cache_slots++;
    return n;
}

/* h1, h2: one norm twice through two equal derived weights; m1, m2: one
 * matmul of them; s1, s2: one attention twice; then the logits. */
static ir_graph *repeats_graph(void) {
    ir_graph *g = ir_graph_new("repeats");
    g->vocab = 10;
    g->tokens = ir_add_value(g, "tokens", IR_INPUT, GM_I32, 1, (int64_t[]){IR_DIM_T}, -1);
    int E = weight(g, "E", 10, 4), W = weight(g, "W", 4, 4), n1 = derived(g, "n1", "n"), n2 = derived(g, "n2", "n");
    int e = act(g, "e"), h1 = act(g, "h1"), h2 = act(g, "h2"), m1 = act(g, "m1"), m2 = act(g, "m2");
    int s = act(g, "s"), a1 = act(g, "a1"), a2 = act(g, "a2"), t = act(g, "t");
    g->logits = act(g, "logits");
    node(g, IR_EMBED, g->tokens, E, e);
    node(g, IR_RMS_NORM, e, n1, h1)->attr[IR_A_EPS] = 1e-6;
    node(g, IR_RMS_NORM, e, n2, h2)->attr[IR_A_EPS] = 1e-6;
    node(g, IR_MATMUL, h1, W, m1);
    node(g, IR_MATMUL, h2, W, m2);
    node(g, IR_ADD, m1, m2, s);
    attention(g, s, a1);
    attention(g, s, a2);
    node(g, IR_ADD, a1, a2, t);
    node(g, IR_MATMUL, t, E, g->logits);
    verify(g);
    return g;
}

static int count_op(const ir_graph *g, ir_op op) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

static const ir_node *defining(const ir_graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->values[g->nodes[i].out].name, name)) return &g->nodes[i];
    return NULL;
}

static void test_cse(void) {
    ir_graph *g = repeats_graph();
    pass_eliminate_common(g);
    pass_eliminate_dead(g);
    verify(g);
    CU_ASSERT_EQUAL(g->n_nodes, 8); /* embed, norm, matmul, add, 2 attention, add, logits */
    CU_ASSERT_EQUAL(count_op(g, IR_RMS_NORM), 1);
    CU_ASSERT_EQUAL(count_op(g, IR_MATMUL), 2);
    CU_ASSERT_EQUAL(count_op(g, IR_ATTENTION), 2);
    CU_ASSERT_EQUAL(g->n_cache_slots, 2);
    const ir_node *s = defining(g, "s"), *h = defining(g, "h1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(s->in[0], s->in[1]);
    CU_ASSERT_STRING_EQUAL(g->values[s->in[0]].name, "m1");
    CU_ASSERT_STRING_EQUAL(g->values[h->in[1]].name, "n1");
    int weights = 0;
    for (int v = 0; v < g->n_values; v++) weights += g->values[v].kind == IR_WEIGHT;
    CU_ASSERT_EQUAL(weights, 3); /* E, W and one (n+1)*1 */
    CU_ASSERT_STRING_EQUAL(g->values[g->logits].name, "logits");
    CU_ASSERT_PTR_EQUAL(defining(g, "logits"), &g->nodes[g->n_nodes - 1]);
    ir_graph_free(g);
}

/* Weights that differ in any of derived_add, derived_mul, panel stay apart. */
static void test_cse_keeps_different_weights(void) {
    for (int field = 0; field < 3; field++) {
        ir_graph *g = repeats_graph();
        ir_value *n2 = &g->values[4];
        if (field == 0) n2->derived_add = 2;
        if (field == 1) n2->derived_mul = 0.5;
        if (field == 2) n2->panel = 8;
        pass_eliminate_common(g);
        pass_eliminate_dead(g);
        CU_ASSERT_EQUAL(count_op(g, IR_RMS_NORM), 2);
        CU_ASSERT_EQUAL(count_op(g, IR_MATMUL), 3);
        ir_graph_free(g);
    }
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("passes", NULL, NULL);
    CU_add_test(s, "plan_memory: offsets of a hand-built chain", test_plan_chain);
    CU_add_test(s, "plan_memory: every model at -O2, no live overlap", test_plan_every_model);
    CU_add_test(s, "eliminate_common: repeated nodes and weights, not attention", test_cse);
    CU_add_test(s, "eliminate_common: different weights stay", test_cse_keeps_different_weights);
    return test_run_all();
}
