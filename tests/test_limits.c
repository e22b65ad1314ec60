/* test_limits.c — files that ask for absurd sizes are refused before anything
 * is allocated for them: a billion layers (config.json and GGUF), a
 * vocabulary of 2^40 (config.json, and a GGUF token list), a context of 2^40
 * (config.json and --context), a 2^60-element tensor (safetensors and GGUF),
 * data past the end of the file, and a model whose KV cache exceeds the
 * memory there is. Each case is a real file the test writes from the tiny
 * checkpoints (tests/golden/tiny-gemma2, models/demo) and one gemmac command,
 * which must exit 1 with one line naming the file, the field or tensor, what
 * was expected and what was found, within seconds (`timeout`: a command that
 * tried to allocate first would be killed or time out). */
#define _GNU_SOURCE /* memmem */

#include "testing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *gemmac, *dir;

/* Runs `gemmac args` in dir under a 30 s timeout; checks exit status and
 * that stderr is one "gemmac: " line holding every part. */
static void expect(const char *args, int code, const char *parts[]) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "timeout 30 '%s' %s", gemmac, args);
    int rc = test_sh(dir, cmd);
    char *err = test_slurp(dir, "err.txt");
    int ok = rc == code && err && !strncmp(err, "gemmac: ", 8) && strchr(err, '\n') == err + strlen(err) - 1;
    for (int i = 0; ok && parts[i]; i++) ok = strstr(err, parts[i]) != NULL;
    if (!ok) printf("\n  gemmac %s\n  exit %d (expected %d): %s", args, rc, code, err ? err : "(no stderr)\n");
    CU_ASSERT(ok);
    free(err);
}
#define EXPECT(args, code, ...) expect(args, code, (const char *[]){__VA_ARGS__, NULL})

/* A copy of tiny-gemma2 named name whose config.json has key set to the number v. */
static void config_with(const char *name, const char *key, double v) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r '%s' %s", name, test_path("golden/tiny-gemma2"), name);
    CU_ASSERT_EQUAL_FATAL(test_sh(dir, cmd), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s/config.json", dir, name);
    char *text = test_slurp(dir, strstr(path, name));
    cJSON *c = cJSON_Parse(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    cJSON_DeleteItemFromObject(c, "layer_types"); /* else it fixes the layer count */
    cJSON_DeleteItemFromObject(c, key);
    cJSON_AddNumberToObject(c, key, v);
    char *out = cJSON_Print(c);
    FILE *f = fopen(path, "w");
    fputs(out, f);
    fclose(f);
    free(out), free(text), cJSON_Delete(c);
}

/* dir/name read whole; *len its size. */
static unsigned char *read_all(const char *name, size_t *len) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len);
    CU_ASSERT_EQUAL_FATAL(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* A copy of dir/from as dir/to with the 8 or 4 bytes `skip` past the string
 * `at` set to v (little-endian): a GGUF key's value or a tensor's dimension. */
static void patched(const char *from, const char *to, const char *at, size_t skip, int width, uint64_t v) {
    size_t len;
    unsigned char *b = read_all(from, &len);
    unsigned char *p = memmem(b, len, at, strlen(at));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memcpy(p + strlen(at) + skip, &v, width); /* x86-64 and AArch64 are little-endian, as GGUF is */
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, to);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    free(b);
}

static void test_layers(void) {
    config_with("layers", "num_hidden_layers", 1e9);
    EXPECT("info layers", 1, "layers/config.json", "num_hidden_layers", "[1, 512]", "found 1000000000");
    /* block_count: a u32 (type 4) key in the GGUF gemmac quantize writes */
    patched("tiny.gguf", "layers.gguf", "gemma2.block_count", 4, 4, 1000000000);
    EXPECT("info layers.gguf", 1, "layers.gguf", "gemma2.block_count", "[1, 512]", "found 1000000000");
}

static void test_vocabulary(void) {
    config_with("vocab", "vocab_size", 1099511627776.0);
    EXPECT("info vocab", 1, "vocab/config.json", "vocab_size", "[1, 2147483647]", "found 1099511627776");
    /* tokenizer.ggml.tokens: array type (u32), element type (u32), then the count (u64) */
    patched("demo.gguf", "vocab.gguf", "tokenizer.ggml.tokens", 8, 8, 1ull << 40);
    EXPECT("logits vocab.gguf --tokens 2", 1, "vocab.gguf", "tokenizer.ggml.tokens", "1099511627776 strings",
           "truncated or corrupt");
}

static void test_context(void) {
    config_with("context", "max_position_embeddings", 1099511627776.0);
    EXPECT("info context", 1, "context/config.json", "max_position_embeddings", "found 1099511627776");
    char args[4200];
    snprintf(args, sizeof args, "logits '%s' --tokens 2 --context 1099511627776", test_path("golden/tiny-gemma2"));
    EXPECT(args, 2, "--context", "[1, 16777216]", "found \"1099511627776\"");
    /* A context the model allows whose KV cache the memory does not hold. */
    config_with("long", "max_position_embeddings", 16777216);
    setenv("GEMMAC_MEMORY_LIMIT", "100000000", 1);
    EXPECT("logits long --tokens 2 --context 16777216", 1, "needs", "KV cache", "16777216 positions",
           "0.10 GB allowed by GEMMAC_MEMORY_LIMIT", "a shorter --context");
    unsetenv("GEMMAC_MEMORY_LIMIT");
}

static void test_huge_tensors(void) {
    /* token_embd.weight's second dimension (after the name: ndim u32, ne[0] u64) */
    patched("tiny.gguf", "tensor.gguf", "token_embd.weight", 12, 8, 1ull << 54);
    EXPECT("logits tensor.gguf --tokens 2", 1, "tensor.gguf", "tensor token_embd.weight", "past the end of the data section");
    /* a safetensors header declaring [2^30, 2^30] floats in 196608 bytes */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf st && cp -r '%s' st", test_path("golden/tiny-gemma2"));
    CU_ASSERT_EQUAL_FATAL(test_sh(dir, cmd), 0);
    size_t len;
    unsigned char *b = read_all("st/model.safetensors", &len);
    uint64_t n;
    memcpy(&n, b, 8);
    char *header = strndup((char *)b + 8, n);
    cJSON *h = cJSON_Parse(header);
    cJSON *shape = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "model.embed_tokens.weight"), "shape");
    CU_ASSERT_PTR_NOT_NULL_FATAL(shape);
    cJSON_ReplaceItemInArray(shape, 0, cJSON_CreateNumber(1 << 30));
    cJSON_ReplaceItemInArray(shape, 1, cJSON_CreateNumber(1 << 30));
    char *text = cJSON_PrintUnformatted(h);
    uint64_t m = strlen(text);
    FILE *f = fopen(strcat(strcpy(cmd, dir), "/st/model.safetensors"), "wb");
    fwrite(&m, 8, 1, f), fwrite(text, 1, m, f), fwrite(b + 8 + n, 1, len - 8 - n, f);
    fclose(f);
    free(text), free(header), free(b), cJSON_Delete(h);
    EXPECT("logits st --tokens 2", 1, "st/model.safetensors", "tensor model.embed_tokens.weight",
           "[1073741824, 1073741824]", "4611686018427387904 bytes", "inconsistent");
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: test_limits path/to/gemmac\n"), 2;
    gemmac = argv[1];
    dir = test_tmpdir("tmp-limits");
    char cmd[8192], tiny[4096];
    snprintf(tiny, sizeof tiny, "%s", test_path("golden/tiny-gemma2")); /* test_path's buffer is static */
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' --to q8_0 -o tiny.gguf && '%s' quantize '%s' --to q8_0 -o demo.gguf",
             gemmac, tiny, gemmac, test_path("../models/demo"));
    if (test_sh(dir, cmd)) return fprintf(stderr, "test_limits: cannot write the GGUF fixtures\n"), 1;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("absurd sizes", NULL, NULL);
    CU_add_test(s, "a billion layers", test_layers);
    CU_add_test(s, "a vocabulary of 2^40", test_vocabulary);
    CU_add_test(s, "a context of 2^40, and a KV cache past memory", test_context);
    CU_add_test(s, "2^60-element tensors", test_huge_tensors);
    return test_run_all();
}
