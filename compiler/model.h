/* model.h — a model ready to hand to a backend: the verified IR plus the
 * checkpoint it reads, every weight checked against the description.
 *
 * `path` may be a Hugging Face checkpoint directory (config.json +
 * safetensors), its config.json, a llama.cpp .gguf file (description and
 * weights from the one file), or a gemmac description (.json, with
 * `weights` naming the checkpoint: safetensors or a .gguf). */
#ifndef GM_MODEL_H
#define GM_MODEL_H

#include "ir/ir.h"
#include "runtime/engine.h"
#include "pipeline.h"
#include "runtime/gguf.h"
#include "runtime/safetensors.h"

#include <cjson/cJSON.h>

typedef struct {
    ir_graph *graph;            /* verified IR */
    st_archive *weights;        /* the mmapped checkpoint */
    const st_tensor **bound;    /* per value id: the tensor bound to a weight, else NULL */
    char *origin;               /* the description's file, for messages */
    char *weights_path;         /* the checkpoint file or directory */
    st_tensor **folded;         /* weights made by constant folding, owned */
    int n_folded;
    char passes[128];           /* the passes that ran, comma-separated */
    gguf_file *gguf;            /* a .gguf checkpoint, kept open for weights and tokenizer; else NULL */
} gm_model;

/* The description behind path as JSON: read, or imported from a HF config.
 * *origin gets the file it came from; *ckpt the checkpoint directory of an
 * HF import (else NULL). Both are malloc'd. */
cJSON *gm_description_load(const char *path, char **origin, char **ckpt, gm_err *e);

/* When set (by an AOT executable, to the description compiled into it),
 * gm_description_load parses this text for any path, which is then only the
 * origin named in messages. */
extern const char *gm_builtin_description;

/* A file an AOT executable carries inside itself (compiled with
 * --embed-weights): its name for messages, and its bytes. */
typedef struct {
    const char *name;
    const unsigned char *data;
    size_t size;
} gm_blob;

/* When set (by such an executable), a model opened without a weights path
 * reads its checkpoint from gm_builtin_weights (a .safetensors file, or a
 * .gguf when its name says so), and `run` its tokenizer from
 * gm_builtin_tokenizer unless that is NULL. */
extern const gm_blob *gm_builtin_weights, *gm_builtin_tokenizer;

/* Opens with the default passes (-O2). */
gm_model *gm_model_open(const char *path, const char *weights, gm_err *e);
gm_model *gm_model_open_with(const char *path, const char *weights, const gm_pipeline_opts *po, gm_err *e);
void gm_model_free(gm_model *m);

/* Names of the backends, NULL-terminated, and an engine from one of them
 * (engines.c). */
extern const char *const gm_backend_names[];
rt_engine *gm_model_engine(gm_model *m, const char *backend, const rt_engine_opts *o, gm_err *e);

#endif
