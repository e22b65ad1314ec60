/* import.h — Hugging Face checkpoint config to a gemmac model description.
 *
 * With import_gguf.c (GGUF metadata), the one place that knows the Gemma families: it reads a
 * config.json (model_type gemma, gemma2, gemma3_text, or the multimodal
 * gemma3's text part) and writes the sizes, layer kinds, tensor names and the
 * op graph as data (docs/model-format.md). Everything after it is generic. */
#ifndef GM_IMPORT_H
#define GM_IMPORT_H

#include "runtime/common.h"

#include "runtime/gguf.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

/* path: a checkpoint directory (holding config.json, maybe *.safetensors) or
 * a config.json file. Returns a new description, or NULL with e set. When the
 * directory holds safetensors, the vocabulary size is taken from the
 * embedding tensor's row count. */
cJSON *import_hf(const char *path, gm_err *e);

/* The most layers an imported description may list (it lists every one):
 * 8x any Gemma's 62, and within what the frontend builds (frontend.c's
 * MAX_LAYER_OPS at ~33 ops and weights a layer). A config or GGUF asking for
 * more is refused, by its own key, before anything is allocated for them. */
#define IMPORT_MAX_LAYERS 512

/* A Gemma decoder's numbers, whichever file they were read from. */
typedef struct {
    int64_t vocab, hidden, heads, kv_heads, head_dim, ffn, n_layers, max_context, bos, eos;
    double norm_eps, query_scalar, attn_cap, final_cap;
    double theta_global, theta_local, pos_scale, window;
    char *global;        /* n_layers flags: 1 global, 0 sliding */
    const char *prefix;  /* HF tensor-name prefix ("model.") */
    bool gguf;           /* llama.cpp tensor names (blk.{i}.attn_q.weight), norm weights holding the +1 */
    bool untied;         /* an LM head of its own (GGUF output.weight) instead of the embedding */
} import_decoder;

/* The description of decoder d of HF family model_type ("gemma", "gemma2",
 * "gemma3_text"); the one builder behind import_hf and import_gguf. NULL for
 * an unknown family. */
cJSON *import_describe(const char *name, const char *model_type, const import_decoder *d);

/* What import_hf reads before it writes the description: the decoder's
 * numbers (d->global malloc'd), its family (*model_type: "gemma",
 * "gemma2", "gemma3_text" or "gemma3", for import_describe) and the
 * checkpoint directory (*dir, malloc'd). 0, or -1 with e set. */
int import_hf_decoder(const char *path, import_decoder *d, const char **model_type, char **dir, gm_err *e);

/* A llama.cpp GGUF file (general.architecture gemma, gemma2 or gemma3) to a
 * description whose tensor names are the file's. origin names the file in
 * messages. NULL with e set for any other architecture or a missing key. */
cJSON *import_gguf(const gguf_file *g, const char *origin, gm_err *e);

#endif
