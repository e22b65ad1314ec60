/* aot_lib_api.h — the declarations of a model library made by `gemmac
 * compile --emit lib`. The one source of them: aot_lib.h includes this file,
 * and the build embeds its text into gemmac, which writes it into NAME.h. */
typedef struct gm_lib_model gm_lib_model;

/* Opens the model with a KV cache of `context` positions (0: the model's maximum).
 * weights: a checkpoint (a Hugging Face directory, or its .safetensors or .gguf file),
 * or NULL for the embedded one (--embed-weights), else the one it was compiled from.
 * NULL on failure, with the reason in err[err_len] (err may be NULL). */
gm_lib_model *gm_lib_open(const char *weights, int context, char *err, size_t err_len);
int gm_lib_vocab(const gm_lib_model *m);   /* logits per row */
int gm_lib_context(const gm_lib_model *m); /* positions the KV cache holds */
/* Feeds tokens[0..n) at positions pos..pos+n-1 (the cache keeps the first pos
 * ones) and writes the logits of the last one, logits[vocab]. 0, or -1 with the
 * reason in gm_lib_error(m). */
int gm_lib_prefill(gm_lib_model *m, const int32_t *tokens, int n, int pos, float *logits);
/* One token at position pos; logits[vocab]. 0, or -1 as prefill. */
int gm_lib_decode(gm_lib_model *m, int32_t token, int pos, float *logits);
/* Several sequences at once (batched decoding: each weight read once a step for all).
 * gm_lib_open_batch keeps a KV cache for each of `sequences` (gm_lib_open: one);
 * prefill and decode work on the sequence gm_lib_use_sequence chose (0 at first). */
gm_lib_model *gm_lib_open_batch(const char *weights, int context, int sequences, char *err, size_t err_len);
int gm_lib_sequences(const gm_lib_model *m);
int gm_lib_use_sequence(gm_lib_model *m, int seq);
/* n distinct sequences one step each: tokens[i] of sequence seq[i] at position pos[i];
 * logits[n][vocab]. 0, or -1 as prefill. */
int gm_lib_decode_batch(gm_lib_model *m, int n, const int32_t *tokens, const int *seq, const int *pos, float *logits);
/* Sequence `to` takes the first n positions of `from`'s cache (a shared prefix prefilled
 * once) and goes on at position n. 0, or -1 as prefill. */
int gm_lib_copy_sequence(gm_lib_model *m, int from, int to, int n);
const char *gm_lib_error(const gm_lib_model *m); /* the last call's failure, else "" */
const char *gm_lib_manifest(void); /* what it was compiled from, as `NAME --version` */
void gm_lib_close(gm_lib_model *m);
