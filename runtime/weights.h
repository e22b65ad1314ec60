/* weights.h — a checkpoint's tensors by name, whatever file they came from.
 *
 * gm_weights is what the compiler and the engines read weights through: a
 * sorted table of named tensors pointing into mapped files or buffers it
 * owns. The safetensors reader (safetensors.h) builds one over its mapped
 * files; the GGUF reader (gguf.h) over its tensors, block-quantized ones
 * included, with weights_from. The table itself lives in safetensors.c,
 * beside the reader that made it first. */
#ifndef GM_WEIGHTS_H
#define GM_WEIGHTS_H

#include "common.h"

#define GM_MAX_DIMS 8

typedef struct {
    char *name;                   /* tensor name as in its file */
    gm_dtype dtype;               /* F32, BF16, F16, I32, or a GGUF block format */
    int ndim;                     /* number of dimensions, 0..GM_MAX_DIMS */
    int64_t shape[GM_MAX_DIMS];   /* dimensions, outermost first */
    const void *data;             /* first byte, inside the mapping or an owned buffer */
    size_t nbytes;                /* its bytes (gm_dtype_bytes) */
    const char *file;             /* path of the file that holds it */
} gm_tensor;

typedef struct gm_weights gm_weights;

void weights_close(gm_weights *a); /* NULL is fine */

/* An archive over tensors another reader has made (e.g. gguf_weights): it
 * takes ownership of the malloc'd array `tensors`, each tensor's malloc'd
 * name, the malloc'd array `owned` and every buffer in it — on failure too.
 * Tensors are sorted by name; a name held twice fails with a message naming
 * the tensor's `file`. Tensor data not in `owned` must outlive the archive. */
gm_weights *weights_from(gm_tensor *tensors, int n, void **owned, int n_owned, gm_err *e);

int weights_count(const gm_weights *a);
const gm_tensor *weights_get(const gm_weights *a, int i);
const gm_tensor *weights_find(const gm_weights *a, const char *name); /* NULL if absent */

#endif
