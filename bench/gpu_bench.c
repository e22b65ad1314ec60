/* gpu_bench.c — prefill and decode speed of a model compiled for the GPU
 * (`gemmac compile MODEL --target nvptx --emit lib -o NAME`), linked with
 * NAME.a, beside the GPU's own copy bandwidth measured in the same run.
 *
 *   gpu_bench WEIGHTS [--prompt 512] [--gen 128] [--reps 3]
 *
 * Prefill: `prompt` tokens at position 0, the best of `reps` after a warm-up.
 * Decode: `gen` steps after the prompt, tokens/s over all of them. The bound
 * of decode is the device's bandwidth over the bytes of the weights file
 * (every weight read once per token); the bandwidth is a device-to-device
 * copy of 2 GiB, bytes read plus bytes written over its time. The cost of a
 * kernel launch is that of an empty kernel launched back to back. */
#include "runtime/cuda.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct gm_lib_model gm_lib_model;
gm_lib_model *gm_lib_open(const char *weights, int context, char *err, size_t err_len);
int gm_lib_vocab(const gm_lib_model *m);
int gm_lib_prefill(gm_lib_model *m, const int32_t *tokens, int n, int pos, float *logits);
int gm_lib_decode(gm_lib_model *m, int32_t token, int pos, float *logits);
const char *gm_lib_error(const gm_lib_model *m);
const char *gm_lib_manifest(void);
void gm_lib_close(gm_lib_model *m);

static double copy_bandwidth(void) {
    gm_err e;
    rt_cuda *cu = rt_cuda_open(&e);
    size_t bytes = (size_t)2 << 30;
    cu_ptr a, b;
    if (!cu || cu->MemAlloc(&a, bytes) || cu->MemAlloc(&b, bytes)) return 0;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        cu->CtxSynchronize();
        double t0 = gm_now_s();
        cu->MemcpyDtoDAsync(b, a, bytes, NULL);
        cu->CtxSynchronize();
        double bw = 2.0 * bytes / (gm_now_s() - t0);
        if (bw > best) best = bw;
    }
    cu->MemFree(a);
    cu->MemFree(b);
    rt_cuda_close(cu);
    return best;
}

/* Microseconds per launch of an empty kernel, 10000 back to back on the default stream. */
static double launch_us(void) {
    static const char ptx[] = ".version 7.8\n.target sm_80\n.address_size 64\n.visible .entry nop()\n{\n ret;\n}\n";
    gm_err e;
    rt_cuda *cu = rt_cuda_open(&e);
    cu_handle mod, fn;
    if (!cu || cu->ModuleLoadDataEx(&mod, ptx, 0, NULL, NULL) || cu->ModuleGetFunction(&fn, mod, "nop")) return 0;
    cu->CtxSynchronize();
    double t0 = gm_now_s();
    for (int i = 0; i < 10000; i++) cu->LaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL);
    cu->CtxSynchronize();
    double us = (gm_now_s() - t0) / 10000 * 1e6;
    cu->ModuleUnload(mod);
    rt_cuda_close(cu);
    return us;
}

static int fail(gm_lib_model *m) {
    fprintf(stderr, "gpu_bench: %s\n", gm_lib_error(m));
    return 1;
}

int main(int argc, char **argv) {
    int prompt = 512, gen = 128, reps = 3;
    const char *weights = argc > 1 ? argv[1] : NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prompt")) prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gen")) gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    if (!weights) return fprintf(stderr, "usage: gpu_bench WEIGHTS [--prompt N] [--gen N] [--reps N]\n"), 2;
    char err[1024];
    double t0 = gm_now_s();
    gm_lib_model *m = gm_lib_open(weights, prompt + gen + 1, err, sizeof err);
    if (!m) return fprintf(stderr, "gpu_bench: %s\n", err), 1;
    double open_s = gm_now_s() - t0;
    int32_t *ids = malloc(prompt * sizeof *ids);
    float *logits = malloc((size_t)gm_lib_vocab(m) * sizeof *logits);
    for (int i = 0; i < prompt; i++) ids[i] = 2 + (i * 7919) % 1000;
    double best = 1e30;
    for (int r = 0; r <= reps; r++) { /* r = 0: warm-up */
        t0 = gm_now_s();
        if (gm_lib_prefill(m, ids, prompt, 0, logits)) return fail(m);
        double t = gm_now_s() - t0;
        if (r && t < best) best = t;
    }
    t0 = gm_now_s();
    for (int s = 0; s < gen; s++)
        if (gm_lib_decode(m, 2 + s % 1000, prompt + s, logits)) return fail(m);
    double decode_s = gm_now_s() - t0;
    struct stat st;
    double wbytes = stat(weights, &st) ? 0 : (double)st.st_size, bw = copy_bandwidth();
    printf("%s", gm_lib_manifest());
    printf("open (upload, PTX load): %.2f s\n", open_s);
    printf("prefill %d tokens: %.1f tok/s (%.2f ms)\n", prompt, prompt / best, best * 1e3);
    printf("decode %d steps: %.1f tok/s (%.3f ms/step)\n", gen, gen / decode_s, decode_s / gen * 1e3);
    if (wbytes > 0 && bw > 0)
        printf("weights %.2f GB, device copy bandwidth %.0f GB/s: decode bound %.1f tok/s, share %.2f\n", wbytes / 1e9,
               bw / 1e9, bw / wbytes, gen / decode_s / (bw / wbytes));
    printf("empty kernel launch: %.2f us each, back to back\n", launch_us());
    gm_lib_close(m);
    free(ids);
    free(logits);
    return 0;
}
