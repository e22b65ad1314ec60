/* quant.c — decoding and encoding GGUF's block-quantized formats (quant.h).
 *
 * The decoders restate llama.cpp's published block layouts one format a
 * function, n whole blocks at a time; the data may sit anywhere in a
 * mapping, so multi-byte fields are read little-endian byte by byte. They
 * are the definition the compiled kernels (backends/llvm/quant.c) are
 * tested against. */
#include "quant.h"

#include <math.h>

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16; }
static float f16_at(const uint8_t *p) { return gm_f16_to_f32(le16(p)); }

/* Q4_0: f16 d, 16 bytes of nibbles; byte j holds element j (low) and j+16 (high). */
static void dq_q4_0(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 18, y += 32) {
        float d = f16_at(b);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((b[2 + j] & 15) - 8) * d;
            y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
    }
}

/* Q4_1: as Q4_0 without the -8, plus an f16 min. */
static void dq_q4_1(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 20, y += 32) {
        float d = f16_at(b), m = f16_at(b + 2);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(b[4 + j] & 15) * d + m;
            y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
        }
    }
}

/* Q5_0: as Q4_0 with a fifth bit per element in a 32-bit mask; offset -16. */
static void dq_q5_0(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 22, y += 32) {
        float d = f16_at(b);
        uint32_t high = le32(b + 2);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 15) | (int)((high >> j) & 1) << 4;
            int hi = (qs[j] >> 4) | (int)((high >> (j + 16)) & 1) << 4;
            y[j] = (float)(lo - 16) * d;
            y[j + 16] = (float)(hi - 16) * d;
        }
    }
}

/* Q5_1: as Q5_0 without the -16, plus an f16 min. */
static void dq_q5_1(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 24, y += 32) {
        float d = f16_at(b), m = f16_at(b + 2);
        uint32_t high = le32(b + 4);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 15) | (int)((high >> j) & 1) << 4;
            int hi = (qs[j] >> 4) | (int)((high >> (j + 16)) & 1) << 4;
            y[j] = (float)lo * d + m;
            y[j + 16] = (float)hi * d + m;
        }
    }
}

/* Q8_0: f16 d, 32 signed bytes. */
static void dq_q8_0(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 34, y += 32) {
        float d = f16_at(b);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

/* Q4_K/Q5_K: the 6-bit scale and min of sub-block j from the 12 packed bytes. */
static void scale_min_k4(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q4_K: f16 d and dmin, 12 scale bytes, 128 quant bytes; each 64-element
 * chunk takes 32 bytes, low nibbles first, then high nibbles. */
static void dq_q4_k(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 144, y += 256) {
        float d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t *s = b + 4, *qs = b + 16;
        for (int c = 0; c < 4; c++) {
            int sc1, m1, sc2, m2;
            scale_min_k4(s, 2 * c, &sc1, &m1);
            scale_min_k4(s, 2 * c + 1, &sc2, &m2);
            float d1 = d * (float)sc1, o1 = dmin * (float)m1, d2 = d * (float)sc2, o2 = dmin * (float)m2;
            const uint8_t *q = qs + 32 * c;
            float *out = y + 64 * c;
            for (int l = 0; l < 32; l++) {
                out[l] = d1 * (float)(q[l] & 15) - o1;
                out[l + 32] = d2 * (float)(q[l] >> 4) - o2;
            }
        }
    }
}

/* Q5_K: Q4_K plus a fifth bit; bit j of qh[l] belongs to sub-block j. */
static void dq_q5_k(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 176, y += 256) {
        float d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t *s = b + 4, *qh = b + 16, *qs = b + 48;
        for (int c = 0; c < 4; c++) {
            int sc1, m1, sc2, m2;
            scale_min_k4(s, 2 * c, &sc1, &m1);
            scale_min_k4(s, 2 * c + 1, &sc2, &m2);
            float d1 = d * (float)sc1, o1 = dmin * (float)m1, d2 = d * (float)sc2, o2 = dmin * (float)m2;
            const uint8_t *q = qs + 32 * c;
            float *out = y + 64 * c;
            for (int l = 0; l < 32; l++) {
                int lo = (q[l] & 15) | ((qh[l] >> (2 * c)) & 1) << 4;
                int hi = (q[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4;
                out[l] = d1 * (float)lo - o1;
                out[l + 32] = d2 * (float)hi - o2;
            }
        }
    }
}

/* Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 int8 scales,
 * f16 d. Per 128-element half, each ql byte feeds two elements 64 apart and
 * each qh byte four elements 32 apart. */
static void dq_q6_k(const uint8_t *b, float *y, int64_t n) {
    for (; n--; b += 210, y += 256) {
        float d = f16_at(b + 208);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            const int8_t *sc = (const int8_t *)(b + 192 + 8 * h);
            float *out = y + 128 * h;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                out[l] = d * (float)sc[is] * (float)q1;
                out[l + 32] = d * (float)sc[is + 2] * (float)q2;
                out[l + 64] = d * (float)sc[is + 4] * (float)q3;
                out[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}


typedef void dequant_fn(const uint8_t *src, float *dst, int64_t n_blocks);

static dequant_fn *const decoders[GM_DTYPE_COUNT] = {
    [GM_Q8_0] = dq_q8_0, [GM_Q4_0] = dq_q4_0, [GM_Q4_1] = dq_q4_1, [GM_Q5_0] = dq_q5_0,
    [GM_Q5_1] = dq_q5_1, [GM_Q4_K] = dq_q4_k, [GM_Q5_K] = dq_q5_k, [GM_Q6_K] = dq_q6_k,
};

void gm_dequantize(gm_dtype t, const void *src, float *dst, int64_t n) {
    decoders[t](src, dst, n / gm_dtype_block(t));
}

/* The f16 nearest to f (round to nearest even; f finite and within range). */
static uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    float a = fabsf(f);
    if (a < 6.103515625e-05f) /* subnormal f16: a multiple of 2^-24 */
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
    uint32_t exp = ((u >> 23) & 0xff) - 127 + 15, man = u & 0x7fffff;
    uint32_t h = exp << 10 | man >> 13, rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

void gm_quantize_q8_0(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += 32, b += 34, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127, id = d ? 1 / d : 0;
        put16(b, f32_to_f16(d));
        for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)lrintf(x[j] * id);
    }
}

/* Where a block's f16 scales sit: byte offsets, -1 past the last. */
static const int scale_fields[GM_DTYPE_COUNT][3] = {
    [GM_Q8_0] = {0, -1}, [GM_Q4_0] = {0, -1}, [GM_Q5_0] = {0, -1}, [GM_Q4_1] = {0, 2, -1},
    [GM_Q5_1] = {0, 2, -1}, [GM_Q4_K] = {0, 2, -1}, [GM_Q5_K] = {0, 2, -1}, [GM_Q6_K] = {208, -1},
};

int gm_quant_scale_pow2(gm_dtype t, void *data, int64_t n, double s) {
    uint8_t *b = data;
    size_t size = gm_dtype_size(t);
    for (int64_t i = 0; i < n / gm_dtype_block(t); i++, b += size)
        for (const int *f = scale_fields[t]; *f >= 0; f++) {
            float v = f16_at(b + *f), w = (float)(v * s);
            if (v != 0 && (fabsf(w) < 6.103515625e-05f || fabsf(w) > 65504.0f || fabsf(v) < 6.103515625e-05f))
                return -1;
            put16(b + *f, f32_to_f16(w));
        }
    return 0;
}
