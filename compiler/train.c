/* train.c — the trainer of train.h: the training graph and its parameters,
 * AdamW, the state file and the fine-tuned checkpoint. */
#include "train.h"

#include "backends/reference/reference.h"
#include "passes/passes.h"
#include "pipeline.h"
#include "runtime/safetensors.h"
#include "runtime/threads.h"

#include <math.h>
#include <stdlib.h>

/* Uniform in (−bound, bound) from a 64-bit LCG: the adapters' A, as PEFT's
 * kaiming_uniform(a=√5) draws it (bound 1/√K). */
static void draw_uniform(uint64_t *state, float *x, int64_t n, double bound) {
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)(bound * (2.0 * (double)(*state >> 11) / 9007199254740992.0 - 1));
    }
}

/* Parameter p's first values: an adapter's (A drawn, B zero), else its checkpoint tensor as f32. */
static void init_param(trainer *t, train_param *p, uint64_t *rng) {
    const ir_value *x = &t->g->values[p->value];
    if (gm_ends_with(p->name, ".lora_a")) draw_uniform(rng, p->w, p->n, 1 / sqrt((double)x->dims[1]));
    else if (!gm_ends_with(p->name, ".lora_b")) gm_to_f32(t->model_bound[p->value]->dtype, t->model_bound[p->value]->data, p->w, p->n);
}

/* One parameter per weight gradient of the graph, bound to its master copy. */
static void make_params(trainer *t) {
    ir_graph *g = t->g;
    for (int v = 0; v < g->n_values; v++) t->n_p += g->values[v].grad_of != NULL;
    t->p = gm_calloc(t->n_p, sizeof *t->p);
    uint64_t rng = t->o.seed * 0x9E3779B97F4A7C15ull + 1;
    int k = 0;
    for (int v = 0; v < g->n_values; v++) {
        if (!g->values[v].grad_of) continue;
        train_param *p = &t->p[k++];
        int weight = gm_names_get(&g->value_ids, g->values[v].grad_of);
        const ir_value *w = &g->values[weight];
        *p = (train_param){.name = w->name, .value = weight, .grad = v, .n = ir_value_elems(w)};
        p->w = gm_calloc(p->n, sizeof(float)), p->m = gm_calloc(p->n, sizeof(float)), p->v = gm_calloc(p->n, sizeof(float));
        p->sum = gm_calloc(p->n, sizeof(double));
        p->t = (gm_tensor){.name = (char *)p->name, .dtype = GM_F32, .ndim = w->ndim, .data = p->w,
                           .nbytes = p->n * sizeof(float), .file = "(training)"};
        memcpy(p->t.shape, w->dims, w->ndim * sizeof w->dims[0]);
        init_param(t, p, &rng);
        t->bound[p->value] = &p->t;
    }
}

/* The passes a compiled trainer's graph goes through after differentiation
 * and score_head: the fusions and the memory plan, never constant folding
 * (it would bind a trained weight's folded copy, made once) nor the panel
 * layout (made once too, and the gradient kernels read weights row-major).
 * The reference runs the graph as differentiate made it: the oracle. */
static const gm_pipeline_opts train_passes = {.level = GM_DEFAULT_LEVEL, .target = "reference", .passes = "-fold_constants"};

/* The training graph: adapters, gradients, and for a compiled backend the
 * head on the scored rows and the passes, which renumber values: the
 * checkpoint's tensors are bound anew by name. */
static int make_graph(trainer *t, gm_err *e) {
    gm_model *m = t->model;
    ir_graph *g = m->graph;
    int n_before = g->n_values;
    gm_names before = {0}; /* by the names' copies: eliminate_dead frees the values it drops */
    char **names = gm_malloc(n_before * sizeof *names);
    for (int v = 0; v < n_before; v++) gm_names_put(&before, names[v] = gm_strdup(g->values[v].name), v);
    const gm_tensor **bound = gm_calloc(n_before, sizeof *bound);
    memcpy(bound, m->bound, n_before * sizeof *bound);
    int rc = (t->o.lora_rank && pass_add_lora(g, t->o.lora_rank, t->o.lora_alpha, e)) || pass_differentiate(g, e);
    if (!rc && strcmp(t->o.backend, "reference")) {
        pass_score_head(g);
        rc = ir_verify(g, e) || pipeline_run(g, &train_passes, NULL, 0, e);
    }
    t->bound = gm_calloc(g->n_values, sizeof *t->bound);
    t->model_bound = gm_calloc(g->n_values, sizeof *t->model_bound);
    for (int v = 0; !rc && v < g->n_values; v++) {
        int old = g->values[v].kind == IR_WEIGHT ? gm_names_get(&before, g->values[v].name) : -1;
        if (old >= 0) t->bound[v] = t->model_bound[v] = bound[old];
    }
    gm_names_clear(&before);
    for (int v = 0; v < n_before; v++) free(names[v]);
    free(names);
    free(bound);
    return rc ? -1 : 0;
}

trainer *train_open(const char *model, const char *weights, const train_opts *o, gm_err *e) {
    gm_model *m = gm_model_open_with(model, weights, &(gm_pipeline_opts){.level = 0, .target = "reference"}, e);
    if (!m) return NULL;
    trainer *t = gm_calloc(1, sizeof *t);
    *t = (trainer){.model = m, .g = m->graph, .o = *o};
    if (!t->o.backend) t->o.backend = "reference";
    if (make_graph(t, e)) {
        train_free(t);
        return NULL;
    }
    make_params(t);
    t->pool = rt_pool_new(rt_default_threads());
    t->run = gm_trainer_create(t->g, t->bound, t->o.backend, t->o.no_cache, e);
    if (!t->run) {
        train_free(t);
        return NULL;
    }
    return t;
}

void train_free(trainer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_p; i++) free(t->p[i].w), free(t->p[i].m), free(t->p[i].v), free(t->p[i].sum);
    free(t->p);
    if (t->run) t->run->free(t->run);
    if (t->pool) rt_pool_free(t->pool);
    free(t->bound);
    free(t->model_bound);
    train_pack_free(&t->pending);
    gm_model_free(t->model);
    free(t);
}

void train_targets_from_flags(const int32_t *ids, int32_t *targets, int n) {
    for (int i = 0; i < n; i++) targets[i] = i + 1 < n && targets[i + 1] ? ids[i + 1] : -1;
}

void train_pack_add(train_pack *p, const int32_t *tokens, const int32_t *targets, int T) {
    if (p->rows + T > p->cap) {
        p->cap = p->rows + T > 2 * p->cap ? p->rows + T : 2 * p->cap;
        p->tokens = gm_realloc(p->tokens, p->cap * sizeof(int32_t));
        p->targets = gm_realloc(p->targets, p->cap * sizeof(int32_t));
        p->start = gm_realloc(p->start, p->cap * sizeof(int32_t));
    }
    memcpy(p->tokens + p->rows, tokens, T * sizeof(int32_t));
    memcpy(p->targets + p->rows, targets, T * sizeof(int32_t));
    for (int i = 0; i < T; i++) p->start[p->rows + i] = p->rows;
    p->rows += T;
}

rt_batch train_pack_batch(const train_pack *p, int loss_only) {
    return (rt_batch){p->tokens, p->targets, p->start, p->rows, loss_only};
}

void train_pack_free(train_pack *p) {
    free(p->tokens), free(p->targets), free(p->start);
    *p = (train_pack){0};
}

/* Adds batch b's scored rows, and their cross-entropy summed (from its run's
 * values act), to *scored and *sum; returns the rows. */
static int add_loss(const trainer *t, float *const *act, const rt_batch *b, double *sum, int64_t *scored) {
    int n = rt_batch_scored(b);
    *sum += (double)n * act[t->g->loss][0];
    *scored += n;
    return n;
}

/* An update of every parameter's elements [i0, i1), split over the cores
 * (a full fine-tuning's 268 M elements take a second on one): each element
 * on its own, so any split gives the same bits. */
typedef struct param_job {
    trainer *t;
    void (*update)(const struct param_job *j, train_param *p, int64_t i0, int64_t i1);
    float *const *act;          /* accumulate: the run's values */
    double scale;               /* accumulate: the run's scored rows; adamw: 1 / the step's */
} param_job;

static void param_part(void *arg, int part, int parts) {
    const param_job *j = arg;
    for (int k = 0; k < j->t->n_p; k++) {
        train_param *p = &j->t->p[k];
        j->update(j, p, p->n * part / parts, p->n * (part + 1) / parts);
    }
}

static void for_each_param(trainer *t, param_job *j) { rt_pool_run(t->pool, param_part, j); }

/* The step's sums gain a run's gradients, each the mean over its scored rows, times those rows. */
static void accumulate(const param_job *j, train_param *p, int64_t i0, int64_t i1) {
    const float *g = j->act[p->grad];
    for (int64_t i = i0; i < i1; i++) p->sum[i] += j->scale * g[i];
}

/* Runs the packed sequences; their gradients (each the mean over the
 * scored rows) add to the step's sums, weighted by those rows. */
static int run_pending(trainer *t, gm_err *e) {
    if (!t->pending.rows) return 0;
    rt_batch b = train_pack_batch(&t->pending, 0);
    float *const *act = t->run->run(t->run, &b, e);
    t->pending.rows = 0;
    if (!act) return -1;
    int scored = add_loss(t, act, &b, &t->loss_sum, &t->scored);
    for_each_param(t, &(param_job){t, accumulate, act, scored});
    return 0;
}

int train_add(trainer *t, const int32_t *tokens, const int32_t *targets, int T, gm_err *e) {
    if (t->pending.rows && t->pending.rows + T > TRAIN_PACK_ROWS && run_pending(t, e)) return -1;
    train_pack_add(&t->pending, tokens, targets, T);
    return 0;
}

/* PyTorch's AdamW: w ← w·(1 − lr·wd), then w ← w − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps). */
static void adamw(const param_job *j, train_param *p, int64_t i0, int64_t i1) {
    const train_opts *o = &j->t->o;
    double bc1 = 1 - pow(o->beta1, (double)j->t->step), bc2 = 1 - pow(o->beta2, (double)j->t->step);
    for (int64_t i = i0; i < i1; i++) {
        double g = p->sum[i] * j->scale;
        p->m[i] = (float)(o->beta1 * p->m[i] + (1 - o->beta1) * g);
        p->v[i] = (float)(o->beta2 * p->v[i] + (1 - o->beta2) * g * g);
        double w = p->w[i] * (1 - o->lr * o->weight_decay);
        p->w[i] = (float)(w - o->lr / bc1 * p->m[i] / (sqrt(p->v[i]) / sqrt(bc2) + o->eps));
        p->sum[i] = 0;
    }
}

int train_step(trainer *t, double *loss, gm_err *e) {
    if (run_pending(t, e)) return -1;
    if (!t->scored) return gm_fail(e, "a training step with no scored token");
    *loss = t->loss_sum / (double)t->scored;
    t->step++;
    for_each_param(t, &(param_job){t, adamw, NULL, 1.0 / (double)t->scored});
    t->scored = 0;
    t->loss_sum = 0;
    return 0;
}

int train_eval_loss(trainer *t, const rt_batch *b, double *sum, int64_t *scored, gm_err *e) {
    rt_batch only = *b;
    only.loss_only = 1;
    float *const *act = t->run->run(t->run, &only, e);
    if (!act) return -1;
    add_loss(t, act, b, sum, scored);
    return 0;
}

/* ---- the state file: each parameter, its moments, the step and the adapter shape ---- */

#define STATE_PARTS 3
static const char *const state_suffix[STATE_PARTS] = {"", ".adam_m", ".adam_v"}; /* master, moments */
static float *state_part(const train_param *p, int j) { return j == 0 ? p->w : j == 1 ? p->m : p->v; }

int train_save(const trainer *t, const char *path, gm_err *e) {
    int n = STATE_PARTS * t->n_p + 2;
    gm_tensor *ts = gm_calloc(n, sizeof *ts);
    char **names = gm_calloc(n, sizeof *names);
    int32_t step[1] = {(int32_t)t->step};
    float lora[2] = {(float)t->o.lora_rank, (float)t->o.lora_alpha};
    for (int k = 0; k < t->n_p; k++) {
        const train_param *p = &t->p[k];
        for (int j = 0; j < STATE_PARTS; j++) {
            int i = STATE_PARTS * k + j;
            names[i] = gm_malloc(strlen(p->name) + 16);
            sprintf(names[i], "%s%s", p->name, state_suffix[j]);
            ts[i] = p->t;
            ts[i].name = names[i], ts[i].data = state_part(p, j);
        }
    }
    ts[n - 2] = (gm_tensor){.name = "train.step", .dtype = GM_I32, .ndim = 1, .shape = {1}, .data = step, .nbytes = 4};
    ts[n - 1] = (gm_tensor){.name = "train.lora", .dtype = GM_F32, .ndim = 1, .shape = {2}, .data = lora, .nbytes = 8};
    int rc = st_write(path, ts, n, e);
    for (int i = 0; i < n - 2; i++) free(names[i]);
    free(names);
    free(ts);
    return rc;
}

/* State tensor name (+ suffix) of path into dst, checked against the size it must have. */
static int load_part(const gm_weights *s, const char *path, const char *name, const char *suffix, gm_dtype dt,
                     void *dst, size_t bytes, gm_err *e) {
    char key[600];
    snprintf(key, sizeof key, "%s%s", name, suffix);
    const gm_tensor *x = weights_find(s, key);
    if (!x) return gm_fail(e, "%s: tensor %s is missing; the state belongs to another model or --lora-rank", path, key);
    if (x->dtype != dt || x->nbytes != bytes)
        return gm_fail(e, "%s: tensor %s has %zu bytes of %s, expected %zu of %s; the state belongs to another model "
                          "or --lora-rank", path, key, x->nbytes, gm_dtype_name(x->dtype), bytes, gm_dtype_name(dt));
    memcpy(dst, x->data, bytes);
    return 0;
}

int train_load(trainer *t, const char *path, gm_err *e) {
    gm_weights *s = st_open(path, e);
    if (!s) return -1;
    int32_t step = 0;
    float lora[2];
    int rc = load_part(s, path, "train.step", "", GM_I32, &step, 4, e) ||
             load_part(s, path, "train.lora", "", GM_F32, lora, 8, e);
    if (!rc && (lora[0] != (float)t->o.lora_rank || lora[1] != (float)t->o.lora_alpha))
        rc = gm_fail(e, "%s: made with --lora-rank %g --lora-alpha %g, resumed with %d and %g; resume with the same "
                        "adapters", path, lora[0], lora[1], t->o.lora_rank, t->o.lora_alpha);
    for (int k = 0; k < t->n_p && !rc; k++)
        for (int j = 0; j < STATE_PARTS && !rc; j++)
            rc = load_part(s, path, t->p[k].name, state_suffix[j], GM_F32, state_part(&t->p[k], j),
                           t->p[k].n * sizeof(float), e);
    if (!rc) t->step = step;
    weights_close(s);
    return rc ? -1 : 0;
}
