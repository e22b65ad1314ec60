/* x86_64.c — vector width and dot products for x86-64 CPUs, read from
 * LLVM's host feature string ("+avx512f,-amx-tile,..."), so the same test
 * that LLVM itself uses decides, and a CPU LLVM does not know by name is
 * still handled; only whether bf16 dot products pay goes by the CPU's name. */
#include "x86_64.h"

/* AMD's Zen 4 and 5 run vdpbf16ps at twice the multiplies of their f32
 * FMAs; Intel's AVX512_BF16 CPUs at the same rate, so there rounding and
 * pairing x costs more than it saves: on the Sapphire Rapids-class Xeon of
 * bench/README.md a 2B BF16 prefill ran at 47 tok/s by vdpbf16ps and 68 by
 * f32 FMAs, on a Zen 4 at 80 and 46. */
static int bf16_dot_pays(const lv_target *t) { return !strncmp(t->cpu, "znver", 5); }

void x86_64_tune(lv_target *t) {
    if (lv_has_feature(t, "avx512f")) {
        t->width = 16;
        t->regs = 32;
        t->prefer_width = "512";
        if (lv_has_feature(t, "avx512vnni")) t->int8_dot = LV_INT8_VNNI;
        t->bf16_dot = lv_has_bf16_dot(t) && bf16_dot_pays(t);
    } else if (lv_has_feature(t, "avx")) {
        t->width = 8;
        t->prefer_width = "256";
    } else {
        t->width = 4;
    }
}
