/* pipeline.c — the pass pipeline: a flat list of passes, each switched by
 * the -O level and --passes, each followed by the verifier, and the IR
 * printed after any of them on request (--dump-after=PASS). */
#include "pipeline.h"

#include "passes/passes.h"
#include "targets.h"

#include <stdlib.h>

/* The passes, in the order they run, with the lowest -O level that runs
 * them (3: none; a pass that changes the numbers runs only when asked);
 * cleanup passes only tidy what the graph holds (the nodes and weights
 * other passes leave unread, the arena) and change no op. */
static const struct {
    const char *name;
    void (*run)(ir_graph *g);
    int level, cleanup;
} passes[] = {
    {"fold_constants", pass_fold_constants, 1, 0},
    {"eliminate_common", pass_eliminate_common, 1, 0},
    {"fuse_elementwise", pass_fuse_elementwise, 2, 0},
    {"fuse_matmul", pass_fuse_matmul, 2, 0},
    {"pack_weights", pass_pack_weights, 2, 0},
    {"quantize_activations", pass_quantize_activations, 3, 0}, /* reduced precision: --activations int8 only */
    {"round_activations", pass_round_activations, 3, 0},       /* reduced precision: --activations bf16 only */
    {"eliminate_dead", pass_eliminate_dead, 1, 1},
    {"plan_memory", pass_plan_memory, 1, 1},
};
#define N_PASSES (int)(sizeof passes / sizeof passes[0])

int pipeline_pass_count(void) { return N_PASSES; }
const char *pipeline_pass_name(int i) { return passes[i].name; }
int pipeline_pass_level(int i) { return passes[i].level; }
int pipeline_pass_is_cleanup(int i) { return passes[i].cleanup; }

static int find_pass(const char *name, size_t len) {
    for (int i = 0; i < N_PASSES; i++)
        if (strlen(passes[i].name) == len && !strncmp(passes[i].name, name, len)) return i;
    return -1;
}

static int known_names(gm_err *e, const char *flag, const char *name, size_t len) {
    char list[256] = "";
    for (int i = 0; i < N_PASSES; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", passes[i].name);
    return gm_fail(e, "%s: unknown pass \"%.*s\" (passes: %s)", flag, (int)len, name, list);
}

/* Whether pass i runs: its level, then the last mention in --passes wins;
 * the layout pass only for a target whose kernels read packed weights. */
static int enabled(const gm_pipeline_opts *o, int i) {
    const gm_target_row *t = gm_target_find(o->target);
    if (passes[i].run == pass_pack_weights && t && !t->panel) return 0;
    int on = o->level >= passes[i].level;
    if (passes[i].run == pass_quantize_activations) on = o->activations && !strcmp(o->activations, "int8");
    if (passes[i].run == pass_round_activations) on = o->activations && !strcmp(o->activations, "bf16");
    for (const char *p = o->passes; p && *p;) {
        size_t len = strcspn(p, ",");
        int off = *p == '-';
        if (find_pass(p + off, len - off) == i) on = !off;
        p += len + (p[len] == ',');
    }
    return on;
}

int pipeline_check(const gm_pipeline_opts *o, gm_err *e) {
    if (o->level < 0 || o->level > 2) return gm_fail(e, "-O%d: levels are -O0, -O1 and -O2", o->level);
    if (o->activations && strcmp(o->activations, "f32") && strcmp(o->activations, "int8") && strcmp(o->activations, "bf16"))
        return gm_fail(e, "--activations %.40s: expected f32 (exact, the default), int8 (quantized weights' matmuls on "
                          "activations rounded to 8 bits) or bf16 (bf16 weights' matmuls on activations rounded to bf16)",
                       o->activations);
    for (const char *p = o->passes; p && *p;) {
        size_t len = strcspn(p, ",");
        int off = *p == '-';
        if (find_pass(p + off, len - off) < 0) return known_names(e, "--passes", p + off, len - off);
        p += len + (p[len] == ',');
    }
    const char *d = o->dump_after;
    if (d && strcmp(d, "frontend") && find_pass(d, strlen(d)) < 0) return known_names(e, "--dump-after", d, strlen(d));
    gm_dtype dt;
    const char *w = o->weights_dtype;
    if (w && (gm_dtype_from_name(w, &dt) || !(gm_dtype_quantized(dt) || dt == GM_BF16 || dt == GM_F16)))
        return gm_fail(e, "--weights-dtype %.40s: expected bf16, f16 or a GGUF block type: q8_0, q4_0, q4_1, q5_0, q5_1, "
                          "q4_k, q5_k or q6_k", w);
    return 0;
}

static void dump(const ir_graph *g, const gm_pipeline_opts *o, const char *after) {
    if (!o->dump_after || strcmp(o->dump_after, after)) return;
    FILE *out = o->dump ? o->dump : stderr;
    fprintf(out, "; IR after %s\n", after);
    ir_print(g, out);
}

int pipeline_run(ir_graph *g, const gm_pipeline_opts *o, char *applied, size_t len, gm_err *e) {
    if (pipeline_check(o, e)) return -1;
    const gm_target_row *t = gm_target_find(o->target);
    g->panel = t ? t->panel : 0;
    if (applied && len) applied[0] = 0;
    dump(g, o, "frontend");
    for (int i = 0; i < N_PASSES; i++) {
        if (!enabled(o, i)) continue;
        ir_drop_plan(g); /* made for the graph as it was */
        passes[i].run(g);
        gm_err ve;
        if (ir_verify(g, &ve)) return gm_fail(e, "internal error: the IR is invalid after %s: %s", passes[i].name, ve.msg);
        dump(g, o, passes[i].name);
        if (applied) snprintf(applied + strlen(applied), len - strlen(applied), "%s%s", *applied ? "," : "", passes[i].name);
    }
    return 0;
}
