/* import.h — Hugging Face checkpoint config to a gemmac model description.
 *
 * This is the one place that knows the Gemma families: it reads a
 * config.json (model_type gemma, gemma2, gemma3_text, or the multimodal
 * gemma3's text part) and writes the sizes, layer kinds, tensor names and the
 * op graph as data (docs/model-format.md). Everything after it is generic. */
#ifndef GM_IMPORT_H
#define GM_IMPORT_H

#include "runtime/common.h"

#include <cjson/cJSON.h>

/* path: a checkpoint directory (holding config.json, maybe *.safetensors) or
 * a config.json file. Returns a new description, or NULL with e set. When the
 * directory holds safetensors, the vocabulary size is taken from the
 * embedding tensor's row count. */
cJSON *import_hf(const char *path, gm_err *e);

#endif
