/* train_export.c — the fine-tuned checkpoint (train.h's train_export): every
 * tensor of the base checkpoint, the trained ones replaced by f32 values (a
 * full parameter's master copy, or a matrix with its LoRA adapters merged
 * in: W + alpha/rank · B·A), in the base's own container, so that `run`,
 * `compile` and `--embed-weights` take it like any checkpoint. */
#include "train.h"

#include "runtime/gguf.h"
#include "runtime/safetensors.h"

#include <cblas.h>
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *name;
    float *data;
    int owned;
} trained;

static const train_param *param_named(const trainer *t, const char *name) {
    for (int k = 0; k < t->n_p; k++)
        if (!strcmp(t->p[k].name, name)) return &t->p[k];
    return NULL;
}

/* W + (alpha / rank) · B·A in f32, for the adapters named base.lora_a / .lora_b. */
static float *merge(const trainer *t, const char *base, const train_param *A) {
    char name[600];
    snprintf(name, sizeof name, "%s.lora_b", base);
    const train_param *B = param_named(t, name);
    const gm_tensor *W = t->model_bound[gm_names_get(&t->g->value_ids, base)];
    int64_t N = W->shape[0], K = W->shape[1], R = t->o.lora_rank;
    float *w = gm_malloc(N * K * sizeof(float));
    gm_to_f32(W->dtype, W->data, w, N * K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)K, (int)R, (float)(t->o.lora_alpha / R), B->w,
                (int)R, A->w, (int)K, 1.0f, w, (int)K);
    return w;
}

/* The trained tensors' new values; *n gets their count. */
static trained *trained_values(const trainer *t, int *n) {
    trained *out = gm_calloc(t->n_p, sizeof *out);
    *n = 0;
    for (int k = 0; k < t->n_p; k++) {
        const train_param *p = &t->p[k];
        if (gm_ends_with(p->name, ".lora_b")) continue;
        if (gm_ends_with(p->name, ".lora_a")) {
            char *base = gm_strdup(p->name);
            base[strlen(base) - strlen(".lora_a")] = 0;
            out[(*n)++] = (trained){base, merge(t, base, p), 1};
        } else out[(*n)++] = (trained){p->name, p->w, 0};
    }
    return out;
}

static void free_trained(trained *tr, int n) {
    for (int i = 0; i < n; i++)
        if (tr[i].owned) free((char *)tr[i].name), free(tr[i].data);
    free(tr);
}

/* The checkpoint's tensors, trained ones replaced by f32 (the array is malloc'd, the tensors borrowed). */
static gm_tensor *output_tensors(const trainer *t, const trained *tr, int n_tr, int *n) {
    const gm_weights *w = t->model->weights;
    *n = weights_count(w);
    gm_tensor *ts = gm_malloc(*n * sizeof *ts);
    for (int i = 0; i < *n; i++) {
        ts[i] = *weights_get(w, i);
        for (int k = 0; k < n_tr; k++)
            if (!strcmp(tr[k].name, ts[i].name)) {
                int64_t elems = 1;
                for (int d = 0; d < ts[i].ndim; d++) elems *= ts[i].shape[d];
                ts[i].dtype = GM_F32, ts[i].data = tr[k].data, ts[i].nbytes = elems * sizeof(float);
            }
    }
    return ts;
}

static int write_gguf(const trainer *t, const gm_tensor *ts, int n, const char *out, gm_err *e) {
    const gguf_file *g = t->model->gguf;
    gguf_out *w = gguf_out_new();
    for (int i = 0; i < gguf_kv_count(g); i++) gguf_set_kv(w, gguf_kv_at(g, i));
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t ne[GM_MAX_DIMS];
        for (int d = 0; d < ts[i].ndim; d++) ne[d] = ts[i].shape[ts[i].ndim - 1 - d];
        rc = gguf_add_tensor(w, ts[i].name, ts[i].ndim, ne, ts[i].dtype, e);
    }
    if (!rc) rc = gguf_write_begin(w, out, e);
    for (int i = 0; i < n && !rc; i++) rc = gguf_write_data(w, ts[i].data, ts[i].nbytes, e);
    if (!rc) rc = gguf_write_finish(w, e);
    gguf_out_free(w);
    return rc;
}

/* dir/name copied to into/name, when there. */
static int copy_beside(const char *dir, const char *name, const char *into, gm_err *e) {
    char src[8500], dst[8500];
    snprintf(src, sizeof src, "%s/%s", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", into, name);
    if (access(src, R_OK)) return 0;
    size_t len;
    char *data = gm_read_file(src, &len, e);
    int rc = data ? gm_write_file_atomic(dst, data, len, e) : -1;
    free(data);
    return rc;
}

/* A directory out with model.safetensors, and the base's config.json and
 * tokenizer.model: made under a temporary name, then renamed (a previous
 * export there is replaced). */
static int write_checkpoint_dir(const trainer *t, const gm_tensor *ts, int n, const char *out, gm_err *e) {
    char tmp[4200], file[8500], base[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    struct stat st;
    snprintf(base, sizeof base, "%s", t->model->weights_path);
    const char *dir = !stat(base, &st) && S_ISDIR(st.st_mode) ? base : dirname(base);
    if (mkdir(tmp, 0755)) return gm_fail(e, "%s: cannot create: %s", out, strerror(errno));
    snprintf(file, sizeof file, "%s/model.safetensors", tmp);
    int rc = st_write(file, ts, n, e) || copy_beside(dir, "config.json", tmp, e) || copy_beside(dir, "tokenizer.model", tmp, e);
    static const char *const ours[] = {"model.safetensors", "config.json", "tokenizer.model"};
    for (int i = 0; i < 3 && !rc && !stat(out, &st); i++) { /* the previous export's files */
        snprintf(file, sizeof file, "%s/%s", out, ours[i]);
        unlink(file);
    }
    if (!rc && !stat(out, &st) && rmdir(out)) rc = gm_fail(e, "%s: cannot replace it: %s (it holds other files)", out, strerror(errno));
    if (!rc && rename(tmp, out)) rc = gm_fail(e, "%s: cannot write: %s", out, strerror(errno));
    if (rc) {
        for (int i = 0; i < 3; i++) snprintf(file, sizeof file, "%s/%s", tmp, ours[i]), unlink(file);
        rmdir(tmp);
    }
    return rc;
}

int train_export(const trainer *t, const char *out, gm_err *e) {
    int n_tr, n;
    trained *tr = trained_values(t, &n_tr);
    gm_tensor *ts = output_tensors(t, tr, n_tr, &n);
    int rc = t->model->gguf ? write_gguf(t, ts, n, out, e) : write_checkpoint_dir(t, ts, n, out, e);
    free(ts);
    free_trained(tr, n_tr);
    return rc;
}
