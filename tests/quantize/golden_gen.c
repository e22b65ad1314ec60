/* golden_gen.c — makes tests/quantize/'s reference bytes with llama.cpp's own
 * quantizers, and checks gemmac's encoders against them on random blocks.
 *
 * Not part of the build: make-golden.sh compiles it together with
 * ggml/src/ggml-quants.c from llama.cpp's source (the llama-cpp-python
 * sdist vendors it) and gemmac's runtime/quant.c, both with
 * -ffp-contract=off. It writes input.f32 (the fixed input of 1024 values
 * below) and, for every block format, <type>.bin: llama.cpp's
 * quantize_row_<type>_ref of that input; test_quantize compares gemmac's
 * bytes with them. `golden_gen fuzz N` compares gemmac's encoders with
 * llama.cpp's on N random 256-element inputs of several kinds (normal,
 * uniform, offset, sparse, outliers, constant, zero, tiny, huge) and
 * prints the first block that differs. */
#include "runtime/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* llama.cpp's reference quantizers (ggml-quants.c); blocks as bytes. */
void quantize_row_q8_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_1_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_1_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q6_K_ref(const float *x, void *y, int64_t k);

/* What ggml-quants.o refers to from the rest of ggml, unused here. */
void ggml_abort(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d %s\n", file, line, fmt);
    abort();
}
size_t ggml_row_size(int type, int64_t ne) { return (void)type, (size_t)ne; }
const char *ggml_type_name(int type) { return (void)type, "?"; }
size_t ggml_type_size(int type) { return (void)type, 0; }

static const struct {
    const char *name;
    gm_dtype t;
    void (*ref)(const float *, void *, int64_t);
} FORMATS[] = {
    {"q8_0", GM_Q8_0, quantize_row_q8_0_ref}, {"q4_0", GM_Q4_0, quantize_row_q4_0_ref},
    {"q4_1", GM_Q4_1, quantize_row_q4_1_ref}, {"q5_0", GM_Q5_0, quantize_row_q5_0_ref},
    {"q5_1", GM_Q5_1, quantize_row_q5_1_ref}, {"q4_k", GM_Q4_K, quantize_row_q4_K_ref},
    {"q5_k", GM_Q5_K, quantize_row_q5_K_ref}, {"q6_k", GM_Q6_K, quantize_row_q6_K_ref},
};
#define N_FORMATS (int)(sizeof FORMATS / sizeof FORMATS[0])

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next(void) { /* xorshift64* */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1Dull) >> 32);
}
static float uniform(void) { return ((float)(next() >> 8) + 0.5f) / 16777216.0f; } /* (0, 1) */
static float normal(void) { return sqrtf(-2 * logf(uniform())) * cosf(6.2831853f * uniform()); }

/* The golden input: 1024 values whose blocks differ in kind — a ramp,
 * random signed values at scales from 2^-12 to 2^6, one sub-block of zeros,
 * one constant, one with a single outlier, one all positive. Every value
 * is a multiple of a power of two built from integers, so it is the same
 * on every machine. */
static void golden_input(float *x) {
    for (int i = 0; i < 1024; i++) {
        int block = i / 32;
        float v = (float)((int32_t)(next() >> 9) - (1 << 22)) / (float)(1 << 22); /* [-1, 1) */
        x[i] = ldexpf(v, block % 19 - 12);
    }
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 11) / 8; /* a ramp */
    for (int i = 64; i < 96; i++) x[i] = 0;                   /* zeros */
    for (int i = 96; i < 128; i++) x[i] = 0.375f;             /* constant */
    x[200] = 96;                                              /* an outlier */
    for (int i = 256; i < 288; i++) x[i] = fabsf(x[i]) + 1;   /* all positive */
}

static int write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) return fprintf(stderr, "cannot write %s\n", path), 1;
    return 0;
}

static int golden(const char *dir) {
    float x[1024];
    uint8_t ref[4096], ours[4096];
    golden_input(x);
    int rc = write_file(dir, "input.f32", x, sizeof x);
    for (int f = 0; f < N_FORMATS; f++) {
        size_t n = gm_dtype_bytes(FORMATS[f].t, 1024);
        FORMATS[f].ref(x, ref, 1024);
        gm_quantize(FORMATS[f].t, x, ours, 1024);
        char name[32];
        snprintf(name, sizeof name, "%s.bin", FORMATS[f].name);
        rc |= write_file(dir, name, ref, n);
        printf("%s: %zu bytes, gemmac %s\n", name, n, memcmp(ref, ours, n) ? "DIFFERS" : "identical");
        rc |= memcmp(ref, ours, n) != 0;
    }
    return rc;
}

/* 256 values of kind k. */
static void random_input(float *x, int k) {
    float scale = ldexpf(1, (int)(next() % 24) - 12), shift = normal();
    for (int i = 0; i < 256; i++) {
        float v;
        switch (k % 9) {
        case 0: v = normal(); break;
        case 1: v = uniform() * 2 - 1; break;
        case 2: v = normal() + 3 * shift; break;                    /* offset: one-signed blocks */
        case 3: v = next() % 4 ? 0 : normal(); break;               /* sparse */
        case 4: v = next() % 97 ? normal() : 50 * normal(); break;  /* outliers */
        case 5: v = shift; break;                                   /* constant */
        case 6: v = 0; break;
        case 7: v = normal() * 1e-6f; break;                        /* f16 subnormal scales */
        default: v = normal() * 1e3f; break;
        }
        x[i] = v * scale;
    }
}

static int fuzz(long n) {
    float x[256];
    uint8_t ref[512], ours[512];
    for (long i = 0; i < n; i++) {
        random_input(x, (int)i);
        for (int f = 0; f < N_FORMATS; f++) {
            size_t bytes = gm_dtype_bytes(FORMATS[f].t, 256);
            FORMATS[f].ref(x, ref, 256);
            gm_quantize(FORMATS[f].t, x, ours, 256);
            for (size_t b = 0; b < bytes; b++)
                if (ref[b] != ours[b]) {
                    printf("%s: input %ld (kind %ld) differs at byte %zu: llama.cpp %02x, gemmac %02x\n",
                           FORMATS[f].name, i, i % 9, b, ref[b], ours[b]);
                    return 1;
                }
        }
    }
    printf("fuzz: %ld inputs of 256 values, all %d formats identical to llama.cpp\n", n, N_FORMATS);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "golden")) return golden(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "fuzz")) return fuzz(atol(argv[2]));
    fprintf(stderr, "usage: golden_gen golden DIR | fuzz N\n");
    return 2;
}
