/* aot_lib.c — the embedding API of a model compiled with `gemmac compile
 * --emit lib` (aot_lib.h; NAME.h declares it for the user): the model of the
 * linked object (aot_model.h), opened as its executable opens it, and its
 * engine's prefill, decode and batched decode over several sequences. No
 * LLVM here. */
#include "aot_lib.h"

#include "aot_model.h"

#include <stdio.h>
#include <stdlib.h>

struct gm_lib_model {
    gm_model *model;
    rt_engine *engine;
    gm_err err;
};

gm_lib_model *gm_lib_open(const char *weights, int context, char *err, size_t err_len) {
    return gm_lib_open_batch(weights, context, 1, err, err_len);
}

gm_lib_model *gm_lib_open_batch(const char *weights, int context, int sequences, char *err, size_t err_len) {
    const char *compiled = gm_aot_install();
    gm_lib_model *lm = gm_calloc(1, sizeof *lm);
    gm_err *e = &lm->err;
    lm->model = gm_model_open("gemmac model", weights ? weights : compiled, e);
    if (lm->model) {
        int64_t max = lm->model->graph->max_context;
        if (context < 0 || context > max)
            gm_fail(e, "context %d: expected 1..%lld (the model's maximum), or 0 for it", context, (long long)max);
        else
            lm->engine = gm_aot_engine(lm->model, &(rt_engine_opts){.context = context ? context : (int)max,
                                                                    .sequences = sequences}, e);
    }
    if (lm->engine) return lm;
    if (err && err_len) snprintf(err, err_len, "%s", e->msg);
    gm_lib_close(lm);
    return NULL;
}

int gm_lib_vocab(const gm_lib_model *m) {
    return (int)m->engine->vocab;
}

int gm_lib_context(const gm_lib_model *m) {
    return m->engine->context;
}

int gm_lib_prefill(gm_lib_model *m, const int32_t *tokens, int n, int pos, float *logits) {
    m->err.msg[0] = 0;
    return m->engine->prefill(m->engine, tokens, n, pos, logits, 0, &m->err) ? -1 : 0;
}

int gm_lib_decode(gm_lib_model *m, int32_t token, int pos, float *logits) {
    m->err.msg[0] = 0;
    return m->engine->decode(m->engine, token, pos, logits, &m->err) ? -1 : 0;
}

int gm_lib_sequences(const gm_lib_model *m) {
    return m->engine->sequences;
}

int gm_lib_use_sequence(gm_lib_model *m, int seq) {
    m->err.msg[0] = 0;
    if (seq == 0 && m->engine->sequences == 1) return 0;
    return m->engine->use_sequence(m->engine, seq, &m->err) ? -1 : 0;
}

int gm_lib_decode_batch(gm_lib_model *m, int n, const int32_t *tokens, const int *seq, const int *pos, float *logits) {
    m->err.msg[0] = 0;
    return rt_decode_batch(m->engine, n, tokens, seq, pos, logits, &m->err) ? -1 : 0;
}

int gm_lib_copy_sequence(gm_lib_model *m, int from, int to, int n) {
    m->err.msg[0] = 0;
    return m->engine->copy_sequence(m->engine, from, to, n, &m->err) ? -1 : 0;
}

const char *gm_lib_error(const gm_lib_model *m) {
    return m->err.msg;
}

const char *gm_lib_manifest(void) {
    return gm_aot_manifest_text();
}

void gm_lib_close(gm_lib_model *m) {
    if (!m) return;
    if (m->engine) m->engine->free(m->engine);
    gm_model_free(m->model);
    free(m);
}
