/* quantize.h — `gemmac quantize`: a checkpoint (GGUF, or a Hugging Face
 * safetensors directory) to a llama.cpp GGUF file of another type.
 *
 * quantize_rules.c chooses each tensor's type the way llama-quantize does
 * (llama-quant.cpp); quantize_hf.c turns an HF checkpoint into the tensors
 * and metadata llama.cpp's converter would write; cmd_quantize.c reads a
 * GGUF, runs the rules and writes the file (runtime/gguf_write.c) with the
 * encoders of runtime/quant.c. */
#ifndef GM_QUANTIZE_H
#define GM_QUANTIZE_H

#include "runtime/gguf.h"
#include "runtime/weights.h"

/* A --to value. */
typedef struct {
    const char *name;  /* "q4_k_m" */
    gm_dtype base;     /* the type of every quantizable tensor unless a rule says otherwise */
    int ftype;         /* llama.cpp's LLAMA_FTYPE_* number, for general.file_type */
    int mix;           /* 1: llama.cpp's Q4_K_M / Q5_K_M per-tensor rules; 0: base everywhere (--pure) */
} gm_quant_target;

/* The target called name (lower or upper case), or NULL. */
const gm_quant_target *gm_quant_target_find(const char *name);
/* "f32, f16, bf16, ..." for messages. */
const char *gm_quant_target_names(void);

/* A tensor as the rules see it. */
typedef struct {
    const char *name;   /* llama.cpp's name: token_embd.weight, blk.3.attn_v.weight, ... */
    int ndim;
    const int64_t *ne;  /* ggml order: ne[0] is the row length */
    gm_dtype src;       /* its type in the input (what a 1-D tensor keeps) */
    int n_layers;       /* the model's layer count */
    int tied;           /* the file has no output.weight: token_embd is the LM head too */
} gm_quant_tensor;

/* The type t gets under q. embedding: --keep-embedding's type for
 * token_embd.weight, GM_DTYPE_COUNT when not given. *wanted gets the
 * type the rules chose before the row-length fallback (equal to the
 * result unless the row length forced another). */
gm_dtype gm_quant_type(const gm_quant_target *q, const gm_quant_tensor *t, gm_dtype embedding, gm_dtype *wanted);

/* One tensor of the output and where its values come from. */
typedef struct {
    char *name;           /* llama.cpp's */
    int ndim;
    int64_t ne[4];        /* ggml order */
    uint32_t src_type;    /* ggml type id of data */
    gm_dtype kept;        /* the type it keeps when not quantized: its own, but F32 for an HF
                             norm or 1-D tensor (the converter writes those as F32) */
    const void *data;     /* the input's bytes, in a mapping */
    size_t nbytes;
    int add_one;          /* an HF Gemma norm weight: + 1 first, as llama.cpp's converter does */
} gm_quant_input;

/* An HF checkpoint directory as llama.cpp's converter writes it: the
 * metadata (general.*, {arch}.*, tokenizer.ggml.* from tokenizer.model)
 * set on w, the tensors under their GGUF names in *t (malloc'd, n in *n;
 * data pointing into *archive, which the caller closes after writing). */
int gm_quant_from_hf(const char *dir, gguf_out *w, gm_quant_input **t, int *n, gm_weights **archive, gm_err *e);

int cmd_quantize(int argc, char **argv);

#endif
