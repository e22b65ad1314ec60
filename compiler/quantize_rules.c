/* quantize_rules.c — which type each tensor gets, as llama-quantize decides.
 *
 * Restated from llama.cpp's src/llama-quant.cpp (llama_tensor_get_type,
 * llama_tensor_get_type_impl, tensor_type_fallback, tensor_allows_quantization),
 * the part that concerns dense Gemma models and the targets gemmac writes.
 * In that order:
 *
 *   tensor                          rule
 *   ------------------------------  --------------------------------------------------
 *   1-D, or a name not ending in    kept as it is (norms stay F32): not quantized
 *   "weight", or one holding
 *   "_norm.weight"
 *   token_embd.weight with          that type (llama-quantize --token-embedding-type)
 *     --keep-embedding TYPE
 *   target f32 / f16 / bf16         that type
 *   target q8_0 ... q6_k, q4_k,     that type (llama-quantize --pure: no per-tensor rules)
 *     q5_k (one type)
 *   q4_k_m, q5_k_m:
 *     output.weight, or             Q8_0 when ne[0] is not a multiple of 256; else Q6_K
 *     token_embd.weight when tied
 *     blk.i.attn_v.weight           Q6_K when use_more_bits(i, n), else the base type
 *     blk.i.ffn_down.weight         Q6_K when use_more_bits(i, n), else the base type
 *     anything else                 the base type (Q4_K or Q5_K)
 *   then, for a quantized type,     Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (a 32-block
 *     when ne[0] is not a           type stays); if ne[0] is still not a multiple of that
 *     multiple of its block         block: F16
 *
 * use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (integer
 * division): the first and last eighth of the layers and every third one
 * between. llama.cpp counts attn_v and ffn_down tensors in the order it
 * visits them (by layer) rather than reading the layer from the name; for a
 * model with one of each per layer the two are the same. The LLAMA_FTYPE of
 * a single-type target is the one llama-quantize --pure writes for it (q4_k:
 * Q4_K_S, q5_k: Q5_K_S). */
#include "quantize.h"

#include <ctype.h>
#include <stdio.h>

static const gm_quant_target targets[] = {
    {"f32", GM_F32, 0, 0},     {"f16", GM_F16, 1, 0},     {"bf16", GM_BF16, 32, 0},
    {"q8_0", GM_Q8_0, 7, 0},   {"q4_0", GM_Q4_0, 2, 0},   {"q4_1", GM_Q4_1, 3, 0},
    {"q5_0", GM_Q5_0, 8, 0},   {"q5_1", GM_Q5_1, 9, 0},   {"q4_k", GM_Q4_K, 14, 0},
    {"q5_k", GM_Q5_K, 16, 0},  {"q6_k", GM_Q6_K, 18, 0},  {"q4_k_m", GM_Q4_K, 15, 1},
    {"q5_k_m", GM_Q5_K, 17, 1},
};
#define N_TARGETS (int)(sizeof targets / sizeof targets[0])

const gm_quant_target *gm_quant_target_find(const char *name) {
    char lower[16];
    size_t n = strlen(name);
    if (n >= sizeof lower) return NULL;
    for (size_t i = 0; i <= n; i++) lower[i] = (char)tolower((unsigned char)name[i]);
    for (int i = 0; i < N_TARGETS; i++)
        if (!strcmp(targets[i].name, lower)) return &targets[i];
    return NULL;
}

const char *gm_quant_target_names(void) {
    return "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m, q5_k_m";
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int allows_quantization(const gm_quant_tensor *t) {
    return t->ndim >= 2 && ends_with(t->name, "weight") && !strstr(t->name, "_norm.weight");
}

static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The layer of a blk.N. tensor, else -1. */
static int layer_of(const char *name) {
    int i;
    return sscanf(name, "blk.%d.", &i) == 1 ? i : -1;
}

/* llama_tensor_get_type_impl for Q4_K_M / Q5_K_M on a dense model. */
static gm_dtype mix_rule(const gm_quant_target *q, const gm_quant_tensor *t) {
    int i = layer_of(t->name);
    if (!strcmp(t->name, "output.weight") || (t->tied && !strcmp(t->name, "token_embd.weight")))
        return t->ne[0] % gm_dtype_block(q->base) ? GM_Q8_0 : GM_Q6_K;
    if ((strstr(t->name, "attn_v.weight") || strstr(t->name, "ffn_down")) && i >= 0 && use_more_bits(i, t->n_layers))
        return GM_Q6_K;
    return q->base;
}

/* tensor_type_fallback: a type whose block divides the row length. */
static gm_dtype fallback(gm_dtype to, int64_t row) {
    if (!gm_dtype_quantized(to) || row % gm_dtype_block(to) == 0) return to;
    gm_dtype next = to == GM_Q4_K ? GM_Q5_0 : to == GM_Q5_K ? GM_Q5_1 : to == GM_Q6_K ? GM_Q8_0 : to;
    return row % gm_dtype_block(next) ? GM_F16 : next;
}

gm_dtype gm_quant_type(const gm_quant_target *q, const gm_quant_tensor *t, gm_dtype embedding, gm_dtype *wanted) {
    if (!allows_quantization(t)) return *wanted = t->src;
    int embed = embedding != GM_DTYPE_COUNT && !strcmp(t->name, "token_embd.weight");
    *wanted = embed ? embedding : q->mix ? mix_rule(q, t) : q->base;
    return fallback(*wanted, t->ne[0]);
}
