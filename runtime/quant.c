/* quant.c — decoding and encoding GGUF's block-quantized formats (quant.h).
 *
 * The decoders restate llama.cpp's published block layouts one format a
 * function, n whole blocks at a time; the data may sit anywhere in a
 * mapping, so multi-byte fields are read little-endian byte by byte. They
 * are the definition the compiled kernels (backends/llvm/quant.c) are
 * tested against. The encoders restate llama.cpp's reference quantizers
 * bit for bit (tests/test_quantize.c compares them with bytes llama.cpp
 * made); `gemmac quantize` writes GGUF files with them. */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

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

/* The fifth (or fifth and sixth) bits of element e: Q5_0/Q5_1 keep them in a
 * 32-bit mask, Q5_K in bit e/32 of qh[e%32], Q6_K two bits of qh. */
static int q5_bit(const uint8_t *mask, int e) { return (int)(le32(mask) >> e & 1) << 4; }

static void ints_q6_k(const uint8_t *b, uint8_t *q, gm_block_ints *h) {
    for (int e = 0; e < 256; e++) {
        int half = e / 128, c = e % 128 / 32, l = e % 32;
        int lo = b[64 * half + 32 * (c & 1) + l] >> 4 * (c >> 1) & 15;
        q[e] = (uint8_t)(lo | (b[128 + 32 * half + l] >> 2 * c & 3) << 4);
    }
    for (int j = 0; j < 16; j++) h->sc[j] = b[192 + j];
    h->d = le16(b + 208);
}

static void ints_k4(const uint8_t *b, int five, uint8_t *q, gm_block_ints *h) {
    const uint8_t *qs = b + (five ? 48 : 16);
    for (int e = 0; e < 256; e++) {
        int j = e / 32, l = e % 32;
        q[e] = (uint8_t)(qs[32 * (j / 2) + l] >> 4 * (j & 1) & 15);
        if (five) q[e] |= (uint8_t)((b[16 + l] >> j & 1) << 4);
    }
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(b + 4, j, &sc, &m);
        h->sc[j] = (uint8_t)sc, h->mn[j] = (uint8_t)m;
    }
    h->d = le16(b), h->d2 = le16(b + 2);
}

void gm_quant_ints(gm_dtype t, const void *block, uint8_t *q, gm_block_ints *h) {
    const uint8_t *b = block;
    int min = t == GM_Q4_1 || t == GM_Q5_1, five = t == GM_Q5_0 || t == GM_Q5_1;
    memset(h, 0, sizeof *h);
    if (t == GM_Q4_K || t == GM_Q5_K) return ints_k4(b, t == GM_Q5_K, q, h);
    if (t == GM_Q6_K) return ints_q6_k(b, q, h);
    h->d = le16(b);
    if (min) h->d2 = le16(b + 2);
    if (t == GM_Q8_0) {
        for (int e = 0; e < 32; e++) q[e] = b[2 + e] ^ 0x80;
        return;
    }
    const uint8_t *qs = b + 2 + 2 * min + 4 * five;
    for (int e = 0; e < 32; e++) q[e] = (uint8_t)((qs[e % 16] >> 4 * (e / 16) & 15) | (five ? q5_bit(b + 2 + 2 * min, e) : 0));
}

void gm_dequantize_ints(gm_dtype t, const uint8_t *q, const gm_block_ints *h, float *y) {
    float d = gm_f16_to_f32(h->d), d2 = gm_f16_to_f32(h->d2);
    int B = gm_dtype_block(t), offset = t == GM_Q8_0 ? 128 : t == GM_Q4_0 ? 8 : t == GM_Q5_0 ? 16 : 0;
    for (int e = 0; e < B; e++) {
        if (t == GM_Q4_1 || t == GM_Q5_1) y[e] = (float)q[e] * d + d2;
        else if (t == GM_Q4_K || t == GM_Q5_K) y[e] = d * (float)h->sc[e / 32] * (float)q[e] - d2 * (float)h->mn[e / 32];
        else if (t == GM_Q6_K) y[e] = d * (float)(int8_t)h->sc[e / 16] * (float)(q[e] - 32);
        else y[e] = (float)(q[e] - offset) * d;
    }
}

/* ---- encoders ----------------------------------------------------------
 *
 * Each restates one of llama.cpp's reference quantizers (ggml-quants.c, the
 * quantize_row_*_ref functions llama-quantize uses when it has no
 * importance matrix) so that the bytes come out the same: the same float
 * operations in the same order (quant.c is built with -ffp-contract=off, so
 * no fused multiply-add changes a rounding), the same rounding helpers, and
 * the same truncating casts. Input must be finite. */

/* GGML_FP32_TO_FP16: the f16 nearest to f, ties to even; overflow gives
 * infinity and NaN a quiet NaN, as ggml's. */
static uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    float a = fabsf(f);
    if (a != a) return (uint16_t)(sign | 0x7e00u);
    if (a >= 65520.0f) return (uint16_t)(sign | 0x7c00u);
    if (a < 6.103515625e-05f) /* subnormal f16: a multiple of 2^-24 */
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
    uint32_t exp = ((u >> 23) & 0xff) - 127 + 15, man = u & 0x7fffff;
    uint32_t h = exp << 10 | man >> 13, rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v), put16(p + 2, (uint16_t)(v >> 16)); }
static float f16_round(float f) { return gm_f16_to_f32(f32_to_f16(f)); }

/* ggml's nearest_int: adding 1.5 * 2^23 leaves round-to-nearest-even(f) in
 * the low mantissa bits (|f| < 2^22). */
static int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* A float truncated to an integer as x86's cvttss2si does it, which is what
 * llama.cpp's (int8_t) and (uint8_t) casts of a float compile to there: NaN
 * and values outside int32 give INT32_MIN. C leaves those conversions
 * undefined, and a block's scale can make them: 1 / d overflows to infinity
 * when max|x| is an f32 subnormal, and 0 * infinity is NaN. */
static int32_t trunc_i32(float v) {
    return v >= -2147483648.0f && v < 2147483648.0f ? (int32_t)v : INT32_MIN;
}

/* The element of largest magnitude (the first of equals), signed. */
static float signed_absmax(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
    return max;
}

static void min_max(const float *x, int n, float *min, float *max) {
    *min = FLT_MAX, *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

/* quantize_row_q8_0_ref: d = max|x| / 127, q = roundf(x / d) (ties away from zero). */
static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    put16(b, f32_to_f16(d));
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)trunc_i32(roundf(x[j] * id));
}

/* quantize_row_q4_0_ref: d = max / -8 (max the signed extreme, which maps
 * to -8), q = trunc(x / d + 8.5) capped at 15. */
static void q_q4_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x, 32) / -8, id = d ? 1.0f / d : 0.0f;
    put16(b, f32_to_f16(d));
    for (int j = 0; j < 16; j++) {
        int lo = (int8_t)trunc_i32(x[j] * id + 8.5f), hi = (int8_t)trunc_i32(x[j + 16] * id + 8.5f);
        b[2 + j] = (uint8_t)((lo < 15 ? lo : 15) | (hi < 15 ? hi : 15) << 4);
    }
}

/* quantize_row_q4_1_ref: m = min, d = (max - min) / 15, q = trunc((x - m) / d + 0.5) capped at 15. */
static void q_q4_1(const float *x, uint8_t *b) {
    float min, max;
    min_max(x, 32, &min, &max);
    float d = (max - min) / 15, id = d ? 1.0f / d : 0.0f;
    put16(b, f32_to_f16(d));
    put16(b + 2, f32_to_f16(min));
    for (int j = 0; j < 16; j++) {
        int lo = (int8_t)trunc_i32((x[j] - min) * id + 0.5f), hi = (int8_t)trunc_i32((x[j + 16] - min) * id + 0.5f);
        b[4 + j] = (uint8_t)((lo < 15 ? lo : 15) | (hi < 15 ? hi : 15) << 4);
    }
}

/* The low nibbles of 32 five-bit quants into qs, their fifth bits into a mask. */
static uint32_t pack5(const int *q, uint8_t *qs) {
    uint32_t high = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        high |= (uint32_t)(q[j] >> 4 & 1) << j | (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    return high;
}

/* quantize_row_q5_0_ref: as Q4_0 with d = max / -16, offset 16.5, cap 31. */
static void q_q5_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x, 32) / -16, id = d ? 1.0f / d : 0.0f;
    int q[32];
    for (int j = 0; j < 32; j++) {
        int v = (int8_t)trunc_i32(x[j] * id + 16.5f);
        q[j] = v < 31 ? v : 31;
    }
    put16(b, f32_to_f16(d));
    put32(b + 2, pack5(q, b + 6));
}

/* quantize_row_q5_1_ref: as Q4_1 with d = (max - min) / 31 and no cap. */
static void q_q5_1(const float *x, uint8_t *b) {
    float min, max;
    min_max(x, 32, &min, &max);
    float d = (max - min) / 31, id = d ? 1.0f / d : 0.0f;
    int q[32];
    for (int j = 0; j < 32; j++) q[j] = (uint8_t)trunc_i32((x[j] - min) * id + 0.5f);
    put16(b, f32_to_f16(d));
    put16(b + 2, f32_to_f16(min));
    put32(b + 4, pack5(q, b + 8));
}

/* make_qkx2_quants (squared error): a scale and an offset for 32 values x
 * with weights w, as L[i] in [0, nmax] such that x ≈ scale * L - *neg_min.
 * Start from the range (min clamped to <= 0), then try nstep + 1 other
 * inverse scales, (nmax + rmin + rdelta * k) / range, each refined by
 * weighted least squares, and keep the one of least weighted error. */
static float fit_scale_min(int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin,
                           float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < 32; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, 32);
        *neg_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < 32; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        best_error += w[i] * diff;
    }
    uint8_t aux[32];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < 32; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            aux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float error = 0;
        for (int i = 0; i < 32; i++) {
            float diff = this_scale * aux[i] + this_min - x[i];
            diff = diff * diff;
            error += w[i] * diff;
        }
        if (error < best_error) {
            memcpy(L, aux, 32);
            best_error = error;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

/* The eight 6-bit scales and mins of a Q4_K/Q5_K block into its 12 bytes:
 * sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins),
 * sub-blocks 4-7 as nibbles in bytes 8-11 with their top two bits in the
 * spare high bits of bytes 0-7 (the inverse of scale_min_k4). */
static void pack_scales_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *s) {
    for (int j = 0; j < 4; j++) s[j] = ls[j], s[j + 4] = lm[j];
    for (int j = 4; j < 8; j++) {
        s[j + 4] = (uint8_t)((ls[j] & 15) | (lm[j] & 15) << 4);
        s[j - 4] |= (uint8_t)(ls[j] >> 4 << 6);
        s[j] |= (uint8_t)(lm[j] >> 4 << 6);
    }
}

/* The shared part of quantize_row_q4_K_ref and quantize_row_q5_K_ref: fit
 * each 32-element sub-block with weights sqrt(mean x²) + |x|, quantize
 * the eight scales and mins to 6 bits against the largest of each (f16 d
 * and dmin), then requantize every element to [0, nmax] against its
 * rounded sub-block scale and min. Writes d, dmin and the scales; L gets
 * the 256 quants. */
static void q_k_scales(const float *x, uint8_t *b, int nmax, float rmin, int nstep, uint8_t *L) {
    float scales[8], mins[8], max_scale = 0, max_min = 0, w[32];
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        uint8_t s = (uint8_t)nearest_int(inv_scale * scales[j]), m = (uint8_t)nearest_int(inv_min * mins[j]);
        ls[j] = s < 63 ? s : 63, lm[j] = m < 63 ? m : 63;
    }
    pack_scales_k4(ls, lm, b + 4);
    put16(b, f32_to_f16(max_scale / 63.f));
    put16(b + 2, f32_to_f16(max_min / 63.f));
    for (int j = 0; j < 8; j++) {
        float d = f16_round(max_scale / 63.f) * ls[j];
        if (!d) continue;
        float dm = f16_round(max_min / 63.f) * lm[j];
        for (int i = 0; i < 32; i++) {
            int l = nearest_int((x[32 * j + i] + dm) / d);
            L[32 * j + i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        }
    }
}

/* quantize_row_q4_K_ref: 4-bit quants, each 64 elements as 32 bytes (low nibbles first). */
static void q_q4_k(const float *x, uint8_t *b) {
    uint8_t L[256];
    q_k_scales(x, b, 15, -1.f, 20, L);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) b[16 + 32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + l + 32] << 4);
}

/* quantize_row_q5_K_ref: as Q4_K with 5-bit quants; the fifth bits go to
 * qh[l], bit 2c for element 64c + l and bit 2c + 1 for 64c + 32 + l. */
static void q_q5_k(const float *x, uint8_t *b) {
    uint8_t L[256], *qh = b + 16, *qs = b + 48;
    q_k_scales(x, b, 31, -0.5f, 15, L);
    memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int lo = L[64 * c + l], hi = L[64 * c + l + 32];
            qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
            qs[32 * c + l] = (uint8_t)((lo & 15) | (hi & 15) << 4);
        }
}

/* make_qx_quants with rmse_type 1 (weights x²), for 16 values and nmax 32:
 * a signed scale and L[i] in [0, 64) with x ≈ scale * (L - 32). The
 * extreme value maps to -32; 18 nearby inverse scales are tried, each
 * refined by weighted least squares, and the best kept. */
static float fit_scale_signed(const float *x, int8_t *L) {
    const int nmax = 32;
    float max = signed_absmax(x, 16);
    if (fabsf(max) < 1e-15f) { /* GROUP_MAX_EPS: all zero */
        memset(L, 0, 16);
        return 0.f;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < 16; i++) {
        int l = nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (!is) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < 16; i++) {
            int l = nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < 16; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* quantize_row_q6_K_ref: sixteen 16-element sub-blocks fitted alone, their
 * scales quantized to int8 against the one of largest magnitude (which maps
 * to -128; f16 d), then every element requantized to [-32, 31] against its
 * rounded scale. Layout: per 128-element half, ql holds elements l and
 * l + 64 (low, high nibble) at l and l + 32 at l + 32; qh[l] their top
 * two bits, elements l, l + 32, l + 64, l + 96 from bit 0 up. */
static void q_q6_k(const float *x, uint8_t *b) {
    int8_t L[256];
    float scales[16], max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_scale_signed(x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > max_abs) max_abs = fabsf(scales[j]), max_scale = scales[j];
    }
    memset(b, 0, 210);
    if (max_abs < 1e-15f) return;
    float iscale = -128.f / max_scale;
    put16(b + 208, f32_to_f16(1 / iscale));
    int8_t *sc = (int8_t *)(b + 192);
    for (int j = 0; j < 16; j++) {
        int s = nearest_int(iscale * scales[j]);
        sc[j] = (int8_t)(s < 127 ? s : 127);
    }
    for (int j = 0; j < 16; j++) {
        float d = f16_round(1 / iscale) * sc[j];
        if (!d) continue;
        for (int i = 0; i < 16; i++) {
            int l = nearest_int(x[16 * j + i] / d);
            L[16 * j + i] = (int8_t)((l < -32 ? -32 : l > 31 ? 31 : l) + 32);
        }
    }
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const int8_t *q = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((q[l] & 15) | (q[l + 64] & 15) << 4);
            ql[l + 32] = (uint8_t)((q[l + 32] & 15) | (q[l + 96] & 15) << 4);
            qh[l] = (uint8_t)(q[l] >> 4 | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6);
        }
    }
}

typedef void quant_fn(const float *x, uint8_t *block);

static quant_fn *const encoders[GM_DTYPE_COUNT] = {
    [GM_Q8_0] = q_q8_0, [GM_Q4_0] = q_q4_0, [GM_Q4_1] = q_q4_1, [GM_Q5_0] = q_q5_0,
    [GM_Q5_1] = q_q5_1, [GM_Q4_K] = q_q4_k, [GM_Q5_K] = q_q5_k, [GM_Q6_K] = q_q6_k,
};

int gm_quantize(gm_dtype t, const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    switch (t) {
    case GM_F32: memcpy(dst, x, (size_t)n * 4); return 0;
    case GM_F16: for (int64_t i = 0; i < n; i++) put16(b + 2 * i, f32_to_f16(x[i])); return 0;
    case GM_BF16: for (int64_t i = 0; i < n; i++) put16(b + 2 * i, gm_f32_to_bf16(x[i])); return 0;
    default: break;
    }
    if ((unsigned)t >= GM_DTYPE_COUNT || !encoders[t] || n % gm_dtype_block(t)) return -1;
    int block = gm_dtype_block(t);
    size_t size = gm_dtype_size(t);
    for (int64_t i = 0; i < n; i += block, b += size) encoders[t](x + i, b);
    return 0;
}

void gm_quantize_q8_0(const float *x, void *dst, int64_t n) { gm_quantize(GM_Q8_0, x, dst, n); }

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

int gm_all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}
