/* safetensors.h — read-only access to Hugging Face safetensors checkpoints.
 *
 * A checkpoint is one `model.safetensors` file or several shards listed by
 * `model.safetensors.index.json`. Every file is mmapped; tensors point into
 * the mapping and are never copied. Opening validates everything a lying or
 * truncated file could get wrong (header length, header JSON, dtype, shape,
 * offsets inside the file and not overlapping, size = elements ×
 * dtype size) so that later code may trust what it reads. The tensors are
 * a gm_weights (weights.h), as GGUF's are. */
#ifndef GM_SAFETENSORS_H
#define GM_SAFETENSORS_H

#include "weights.h"

/* Opens `path`: a .safetensors file, a model.safetensors.index.json, or a
 * directory holding either (the index wins when both exist). */
gm_weights *st_open(const char *path, gm_err *e);
/* The same for the bytes of one .safetensors file already in memory (the
 * checkpoint an AOT executable carries), validated the same way; `origin`
 * names it in messages. data must outlive the archive, which never frees it. */
gm_weights *st_open_memory(const void *data, size_t len, const char *origin, gm_err *e);

/* Writes the tensors (name, dtype, shape, data, nbytes) to path as one
 * safetensors file, data in the order given; atomically: no partial file
 * is ever left under path. */
int st_write(const char *path, const gm_tensor *ts, int n, gm_err *e);
/* The header st_write writes, data offsets following the tensors' nbytes in
 * order, for a writer that streams the data itself (gm_write_atomic_with):
 * st_write_length writes its length and the header, the data follows. */
void st_header(gm_buf *b, const gm_tensor *ts, int n);
int st_write_length(FILE *f, const gm_buf *header);

#endif
