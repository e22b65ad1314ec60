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
#include "runtime/weights.h"

#include <cjson/cJSON.h>

typedef struct {
    ir_graph *graph;            /* verified IR */
    gm_weights *weights;        /* the mmapped checkpoint */
    const gm_tensor **bound;    /* per value id: the tensor bound to a weight, else NULL */
    char *origin;               /* the description's file, for messages */
    char *weights_path;         /* the checkpoint file or directory */
    gm_tensor **folded;         /* weights made by constant folding, owned */
    int n_folded;
    gm_tensor **packed;         /* packed weights (packed.c): owned descriptors of data in the pack region */
    int n_packed;
    int packed_ready;           /* gm_model_pack has filled them */
    uint64_t pack_key, pack_recipe; /* what they are made from, and how (packed.c) */
    size_t pack_bytes;          /* the pack region's data bytes */
    unsigned char *pack_region; /* the packed weights (read from the cache or packed here), huge pages, or NULL */
    size_t pack_size;
    char passes[128];           /* the passes that ran, comma-separated */
    gguf_file *gguf;            /* a .gguf checkpoint, kept open for weights and tokenizer; else NULL */
    int shares_weights;         /* weights belong to another model (gm_model_open_sharing) */
    gm_weights *source_weights; /* --weights-dtype: the checkpoint under `weights`, its quantized copy; else NULL */
    gm_weights *absent;         /* an executable's tensors kept only as packed copies (no data), or NULL */
} gm_model;

/* The metadata key under which an executable's embedded GGUF lists the
 * tensors it left out because only their packed copies are read ("NAME
 * DTYPE ROWS COLS" strings; cmd_compile.c writes it, model.c binds them). */
#define GM_PACKED_ONLY_KEY "gemmac.packed_only"

/* The checkpoint's tensor called name, or an executable's absent one (no data); NULL if neither. */
const gm_tensor *gm_model_tensor(const gm_model *m, const char *name);

/* The description behind path as JSON: read, or imported from a HF config.
 * *origin gets the file it came from; *ckpt the checkpoint directory of an
 * HF import (else NULL). Both are malloc'd. */
cJSON *gm_description_load(const char *path, char **origin, char **ckpt, gm_err *e);

/* When set (by an AOT executable, to the description compiled into it),
 * gm_description_load parses this text for any path, which is then only the
 * origin named in messages. */
extern const char *gm_builtin_description;
/* When set (by an AOT executable), every model is opened with exactly these
 * passes (comma-separated, "" for none), whatever the options say: its
 * kernels were compiled for the graph they make. */
extern const char *gm_builtin_passes;

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

/* Fills the packed weights (passes/pack_weights.c; packed.c): from the
 * executable's gm_builtin_packed, the cache file, or by packing the
 * checkpoint (then written to the cache unless no_cache). Every backend's
 * engine needs them; gm_model_engine calls it. */
void gm_model_pack(gm_model *m, int no_cache);
/* Writes the packed weights as a pack file (what --embed-weights embeds). */
int gm_model_write_pack(gm_model *m, const char *path, gm_err *e);
/* Bytes of t packed in panels of `panel` rows. */
size_t gm_packed_bytes(const gm_tensor *t, int panel);
/* The row-major values a packed weight is made from (the checkpoint's, or
 * folded into a buffer), and giving them back when packed. */
void *gm_unpacked_values(gm_model *m, const ir_value *w, const gm_tensor *src);
void gm_release_unpacked(gm_model *m, const ir_value *w, void *values);
/* Set by an executable built with --embed-weights: its pack file. */
extern const gm_blob *gm_builtin_packed;

/* Opens with the default passes (-O2). */
gm_model *gm_model_open(const char *path, const char *weights, gm_err *e);
gm_model *gm_model_open_with(const char *path, const char *weights, const gm_pipeline_opts *po, gm_err *e);
/* The same model through other passes over share's checkpoint (opened, and
 * for --weights-dtype quantized, once): share must outlive it.
 * The bench keeps one engine per configuration open this way. */
gm_model *gm_model_open_sharing(const char *path, const char *weights, const gm_pipeline_opts *po, const gm_model *share,
                                gm_err *e);
void gm_model_free(gm_model *m);

/* The bytes m needs in memory to run with a KV cache of `context`
 * positions: every weight as bound (the checkpoint's tensors it reads,
 * folded and packed copies) and the cache; code and activations come on
 * top. gm_model_check_memory refuses, with what it needs and what there is,
 * a model that needs more than the machine has available (MemAvailable of
 * /proc/meminfo, or $GEMMAC_MEMORY_LIMIT bytes; "off": no check), before
 * anything is packed or allocated: never an OOM kill halfway (memory.c). */
size_t gm_model_memory(const gm_model *m, int context, size_t *weights, size_t *cache);
int gm_model_check_memory(const gm_model *m, int context, int sequences, gm_err *e); /* a KV cache per sequence */

/* Names of the backends, NULL-terminated, and an engine from one of them
 * (engines.c). */
extern const char *const gm_backend_names[];
rt_engine *gm_model_engine(gm_model *m, const char *backend, const rt_engine_opts *o, gm_err *e);
/* A trainer of training graph g (runtime/engine.h) on the reference or jit backend. */
rt_trainer *gm_trainer_create(const ir_graph *g, const gm_tensor *const *bound, const char *backend, int no_cache,
                              gm_err *e);
/* The target a backend's graph is compiled for (gm_pipeline_opts.target): "nvptx" and
 * "reference" for theirs (row-major weights), NULL (native) for jit. */
const char *gm_backend_target(const char *backend);
/* Whether the backend can run here (nvptx: a GPU and its driver); 0 with the reason in e. */
int gm_backend_available(const char *backend, gm_err *e);
/* Whether the backend's engines keep several sequences (decode_batch): jit and aot. */
int gm_backend_batches(const char *backend);

#endif
