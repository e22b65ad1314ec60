/* gguf.h — llama.cpp's GGUF files (format v3): reading them, and writing
 * them (gguf_write.c, at the end of this header).
 *
 * The file is mmapped and validated at open the way safetensors are (magic,
 * version, counts, strings and arrays inside the file, tensor types known,
 * sizes = blocks × block bytes, data inside the file and aligned). Metadata
 * values and tensor data stay in the mapping. Quantized tensors (Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) are decoded by the
 * published block layouts; gguf_weights() turns the file into a weight
 * archive the rest of gemmac reads like a safetensors checkpoint: float
 * tensors and those of the block formats the kernels read (runtime/quant.h)
 * point into the mapping, as stored; only Q2_K and Q3_K are dequantized
 * once, at load, into owned f32 buffers. */
#ifndef GM_GGUF_H
#define GM_GGUF_H

#include "common.h"
#include "weights.h"
#include "tokenizer.h"

typedef enum {
    GGUF_T_UINT8, GGUF_T_INT8, GGUF_T_UINT16, GGUF_T_INT16, GGUF_T_UINT32, GGUF_T_INT32,
    GGUF_T_FLOAT32, GGUF_T_BOOL, GGUF_T_STRING, GGUF_T_ARRAY, GGUF_T_UINT64, GGUF_T_INT64,
    GGUF_T_FLOAT64
} gguf_value_type;

typedef struct {
    const char *key;             /* NUL-terminated copy of the key */
    gguf_value_type type;        /* scalar type, or GGUF_T_ARRAY */
    gguf_value_type elem_type;   /* arrays: the element type; scalars: `type` */
    uint64_t count;              /* arrays: element count; else 1 */
    const void *data;            /* the value (array: first element) in the mapping */
} gguf_kv;

typedef struct {
    const char *name;            /* NUL-terminated copy */
    uint32_t ggml_type;          /* ggml type id (0 F32, 1 F16, 30 BF16, 8 Q8_0, 2 Q4_0, 12 Q4_K, 13 Q5_K, 14 Q6_K;
                                    also 3 Q4_1, 6 Q5_0, 7 Q5_1, 10 Q2_K, 11 Q3_K) */
    int ndim;
    int64_t ne[4];               /* ggml order: ne[0] is the contiguous dimension */
    const void *data;            /* in the mapping */
    size_t nbytes;
} gguf_tensor;

typedef struct gguf_file gguf_file;

gguf_file *gguf_open(const char *path, gm_err *e);
/* The same for the bytes of a .gguf file already in memory (an AOT
 * executable's), validated the same way; `origin` names it in messages.
 * data must outlive the gguf_file, which never frees it. */
gguf_file *gguf_open_memory(const void *data, size_t len, const char *origin, gm_err *e);
void gguf_close(gguf_file *g);
const char *gguf_path(const gguf_file *g);

int gguf_kv_count(const gguf_file *g);
const gguf_kv *gguf_kv_at(const gguf_file *g, int i);
const gguf_kv *gguf_find(const gguf_file *g, const char *key);   /* NULL if absent */

/* Typed getters: 0 on success; -1 with a message naming the file and key
 * (absent, or of another type) otherwise. Integers of any width convert when
 * the value fits. */
int gguf_get_int(const gguf_file *g, const char *key, int64_t *out, gm_err *e);
int gguf_get_float(const gguf_file *g, const char *key, double *out, gm_err *e);   /* f32, f64 or integer */
int gguf_get_string(const gguf_file *g, const char *key, char **out, gm_err *e);   /* malloc'd */
/* Array element i of a string array (malloc'd) / of a numeric array (bools
 * read 0/1); a scalar is an array of one. NULL / NaN when i is out of range
 * or the element type does not fit. kv must come from gguf_kv_at/gguf_find. */
char *gguf_array_string(const gguf_kv *kv, uint64_t i);
double gguf_array_number(const gguf_kv *kv, uint64_t i);

int gguf_tensor_count(const gguf_file *g);
const gguf_tensor *gguf_tensor_at(const gguf_file *g, int i);
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name);

const char *gguf_type_name(uint32_t ggml_type);   /* "Q4_K", ...; "unknown" */

/* Decodes n elements (a multiple of the type's block size) of a tensor's
 * data into f32. Returns -1 for a type it does not know. */
int gguf_dequantize(uint32_t ggml_type, const void *src, float *dst, int64_t n);

/* A weight archive over the file's tensors, named as in the file, shapes in
 * row-major order (ne reversed), dtypes as stored but for Q2_K and Q3_K
 * (f32). The archive owns those dequantized buffers;
 * the gguf_file must outlive it. */
gm_weights *gguf_weights(const gguf_file *g, gm_err *e);

/* ---- writing (gguf_write.c) ----
 *
 * A writer takes the metadata and the tensor infos first, then the tensors'
 * bytes in the order they were added (in pieces of any size), and writes
 * version 3 to a temporary file beside `path`, renamed when complete:
 *
 *   gguf_out *w = gguf_out_new();
 *   gguf_set_string(w, "general.architecture", "gemma3");
 *   gguf_add_tensor(w, "token_embd.weight", 2, ne, GM_Q8_0, e);
 *   gguf_write_begin(w, path, e);  gguf_write_data(w, bytes, n, e); ...
 *   gguf_write_finish(w, e);       gguf_out_free(w);
 *
 * Setting a key that is there removes it and appends the new value (llama.cpp
 * does the same). Tensor data is aligned to general.alignment (default 32). */
typedef struct gguf_out gguf_out;

gguf_out *gguf_out_new(void);
/* Frees w; an unfinished file's temporary is removed, nothing is left at path. */
void gguf_out_free(gguf_out *w);

void gguf_set_int(gguf_out *w, const char *key, gguf_value_type t, int64_t v);   /* integer types, bool */
void gguf_set_float(gguf_out *w, const char *key, gguf_value_type t, double v);  /* FLOAT32, FLOAT64 */
void gguf_set_string(gguf_out *w, const char *key, const char *s);
/* n values of type elem: a native C array (uint8_t for bool, float for
 * FLOAT32, ...), or const char *const * for strings. */
void gguf_set_array(gguf_out *w, const char *key, gguf_value_type elem, uint64_t n, const void *values);
/* A reader's pair (gguf_kv_at / gguf_find), copied byte for byte. */
void gguf_set_kv(gguf_out *w, const gguf_kv *kv);
void gguf_remove(gguf_out *w, const char *key);

/* ggml's type id of t (F32 0, F16 1, BF16 30, Q8_0 8, Q4_K 12, ...). */
int gguf_ggml_type(gm_dtype t);
/* A tensor of ggml dimensions ne[0..ndim) (ne[0] contiguous, a multiple of
 * t's block) stored as t. -1 with e set for a bad shape or a name added twice. */
int gguf_add_tensor(gguf_out *w, const char *name, int ndim, const int64_t *ne, gm_dtype t, gm_err *e);

/* Creates the temporary file and writes the header, metadata and infos. */
int gguf_write_begin(gguf_out *w, const char *path, gm_err *e);
/* The next n bytes of the tensors' data, in the order they were added. */
int gguf_write_data(gguf_out *w, const void *data, size_t n, gm_err *e);
/* Checks that every tensor's bytes were written, then renames the file to path. */
int gguf_write_finish(gguf_out *w, gm_err *e);

/* The file's SentencePiece vocabulary (tokenizer.ggml.model "llama") as the
 * bytes of a serialized ModelProto, malloc'd, *len its size (gguf_vocab.c). */
char *gguf_sentencepiece_model(const gguf_file *g, size_t *len, gm_err *e);

/* The same, loaded: the tokenizer a GGUF model carries. */
rt_tokenizer *gguf_tokenizer(const gguf_file *g, gm_err *e);

#endif
