/* safetensors.h — read-only access to Hugging Face safetensors checkpoints.
 *
 * A checkpoint is one `model.safetensors` file or several shards listed by
 * `model.safetensors.index.json`. Every file is mmapped; tensors point into
 * the mapping and are never copied. Opening validates everything a lying or
 * truncated file could get wrong (header length, header JSON, dtype, shape,
 * offsets inside the file and not overlapping, size = elements ×
 * dtype size) so that later code may trust what it reads. */
#ifndef GM_SAFETENSORS_H
#define GM_SAFETENSORS_H

#include "common.h"

#define ST_MAX_DIMS 8

typedef struct {
    char *name;                   /* tensor name as in the header */
    gm_dtype dtype;               /* F32, BF16 or F16 (I32 also accepted) */
    int ndim;                     /* number of dimensions, 0..ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];   /* dimensions, outermost first */
    const void *data;             /* first byte, inside the mapping */
    size_t nbytes;                /* elements × dtype size */
    const char *file;             /* path of the file that holds it */
} st_tensor;

typedef struct st_archive st_archive;

/* Opens `path`: a .safetensors file, a model.safetensors.index.json, or a
 * directory holding either (the index wins when both exist). */
st_archive *st_open(const char *path, gm_err *e);
/* The same for the bytes of one .safetensors file already in memory (the
 * checkpoint an AOT executable carries), validated the same way; `origin`
 * names it in messages. data must outlive the archive, which never frees it. */
st_archive *st_open_memory(const void *data, size_t len, const char *origin, gm_err *e);
void st_close(st_archive *a);

/* An archive over tensors another reader has made (e.g. gguf_weights): it
 * takes ownership of the malloc'd array `tensors`, each tensor's malloc'd
 * name, the malloc'd array `owned` and every buffer in it — on failure too.
 * Tensors are sorted by name; a name held twice fails with a message naming
 * the tensor's `file`. Tensor data not in `owned` must outlive the archive. */
st_archive *st_archive_from(st_tensor *tensors, int n, void **owned, int n_owned, gm_err *e);

int st_count(const st_archive *a);
const st_tensor *st_get(const st_archive *a, int i);
const st_tensor *st_find(const st_archive *a, const char *name); /* NULL if absent */

#endif
