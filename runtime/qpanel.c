/* qpanel.c — repacking block-quantized weights into the int8 kernels'
 * panels (qpanel.h states the layout): each block's integers
 * (gm_quant_ints) scattered to where the kernels read them; and one row
 * gathered back, for the embedding lookup of a table kept only in panels. */
#include "qpanel.h"

#include "quant.h"

gm_qpanel gm_qpanel_of(gm_dtype t) {
    gm_qpanel q = {4, 0, 64, 512, 0, -1, -1, -1, -1, 0};
    switch (t) {
    case GM_Q8_0: q.bits = 8, q.offset = 128, q.sub = 1024; break;
    case GM_Q4_0: q.offset = 8; break;
    case GM_Q5_0: q.bits = 5, q.offset = 16, q.sub = 640, q.hi = 0, q.q = 128; break;
    case GM_Q4_1: q.head = 128, q.d2 = 64; break;
    case GM_Q5_1: q.bits = 5, q.head = 128, q.d2 = 64, q.sub = 640, q.hi = 0, q.q = 128; break;
    case GM_Q4_K: q.head = 128, q.d2 = 64, q.sc = 0, q.mn = 32, q.q = 64, q.sub = 576; break;
    case GM_Q5_K: q.bits = 5, q.head = 128, q.d2 = 64, q.sc = 0, q.mn = 32, q.hi = 64, q.q = 192, q.sub = 704; break;
    case GM_Q6_K: q.bits = 6, q.offset = 32, q.sc = 0, q.q = 64, q.sub = 832; break;
    default: break;
    }
    q.unit = q.head + gm_dtype_block(t) / 32 * q.sub;
    return q;
}

int gm_qpanel_scales_at(const gm_qpanel *l, int g) {
    int per_sub = l->bits == 6 ? 2 : 1;
    return l->head + g / per_sub * l->sub + l->sc + 32 * (g % per_sub);
}

int gm_qpanel_mins_at(const gm_qpanel *l, int s) { return l->head + s * l->sub + l->mn; }

int gm_qpanel_vector_at(const gm_qpanel *l, int quad, int half) {
    if (l->bits == 8) return l->q + (quad * 32 + 16 * half) * 4;
    if (l->bits == 6) return l->q + 384 * (quad / 4) + 64 * half;
    return l->q + (quad / 2 * 2 + half) * 64;
}

size_t gm_qpanel_bytes(gm_dtype t, int64_t N, int64_t K) {
    int64_t panels = (N + GM_QPANEL_ROWS - 1) / GM_QPANEL_ROWS;
    return (size_t)(panels * (K / gm_dtype_block(t)) * gm_qpanel_of(t).unit);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

/* Row r's header fields into the unit. */
static void put_head(const gm_qpanel *l, uint8_t *unit, int r, const gm_block_ints *h) {
    put16(unit + 2 * r, h->d);
    if (l->d2 >= 0) put16(unit + l->d2 + 2 * r, h->d2);
    for (int j = 0; l->sc >= 0 && j < (l->bits == 6 ? 16 : 8); j++) unit[gm_qpanel_scales_at(l, j) + r] = h->sc[j];
    for (int j = 0; l->mn >= 0 && j < 8; j++) unit[gm_qpanel_mins_at(l, j) + r] = h->mn[j];
}

/* Row r's 32 quants q of the sub-block at s into its planes. */
static void put_sub(const gm_qpanel *l, uint8_t *s, int r, const uint8_t *q) {
    int half = r / 16, rr = r % 16;
    for (int k = 0; k < 32; k++) {
        int quad = k / 4, at = gm_qpanel_vector_at(l, quad, half) + 4 * rr + k % 4;
        if (l->bits == 8) {
            s[at] = q[k];
        } else if (l->bits == 6 && quad % 4 < 3) {
            s[at + GM_QPANEL_PLANE * (quad % 4)] |= q[k];
        } else if (l->bits == 6) {
            for (int j = 0; j < 3; j++) s[at + GM_QPANEL_PLANE * j] |= (uint8_t)((q[k] >> 2 * j & 3) << 6);
        } else {
            s[at] |= (uint8_t)((q[k] & 15) << 4 * (quad & 1));
            if (l->bits == 5) s[l->hi + half * 64 + 4 * rr + k % 4] |= (uint8_t)((q[k] >> 4 & 1) << quad);
        }
    }
}

void gm_qpanel_pack(gm_dtype t, const void *src, int64_t N, int64_t K, int64_t p0, int64_t p1, void *dst) {
    gm_qpanel l = gm_qpanel_of(t);
    int B = gm_dtype_block(t);
    int64_t blocks = K / B;
    size_t row_bytes = (size_t)blocks * gm_dtype_size(t);
    uint8_t q[256];
    gm_block_ints h;
    for (int64_t p = p0; p < p1; p++)
        for (int r = 0; r < GM_QPANEL_ROWS && p * GM_QPANEL_ROWS + r < N; r++) {
            const uint8_t *row = (const uint8_t *)src + (size_t)(p * GM_QPANEL_ROWS + r) * row_bytes;
            for (int64_t b = 0; b < blocks; b++) {
                uint8_t *unit = (uint8_t *)dst + (size_t)(p * blocks + b) * l.unit;
                gm_quant_ints(t, row + b * gm_dtype_size(t), q, &h);
                put_head(&l, unit, r, &h);
                for (int s = 0; s < B / 32; s++) put_sub(&l, unit + l.head + s * l.sub, r, q + 32 * s);
            }
        }
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* put_head and put_sub undone: row r's header and one sub-block's quants. */
static void get_head(const gm_qpanel *l, const uint8_t *unit, int r, gm_block_ints *h) {
    h->d = get16(unit + 2 * r);
    h->d2 = l->d2 >= 0 ? get16(unit + l->d2 + 2 * r) : 0;
    for (int j = 0; l->sc >= 0 && j < (l->bits == 6 ? 16 : 8); j++) h->sc[j] = unit[gm_qpanel_scales_at(l, j) + r];
    for (int j = 0; l->mn >= 0 && j < 8; j++) h->mn[j] = unit[gm_qpanel_mins_at(l, j) + r];
}

static void get_sub(const gm_qpanel *l, const uint8_t *s, int r, uint8_t *q) {
    int half = r / 16, rr = r % 16;
    for (int k = 0; k < 32; k++) {
        int quad = k / 4, at = gm_qpanel_vector_at(l, quad, half) + 4 * rr + k % 4;
        if (l->bits == 8) {
            q[k] = s[at];
        } else if (l->bits == 6 && quad % 4 < 3) {
            q[k] = s[at + GM_QPANEL_PLANE * (quad % 4)] & 63;
        } else if (l->bits == 6) {
            q[k] = 0;
            for (int j = 0; j < 3; j++) q[k] |= (uint8_t)((s[at + GM_QPANEL_PLANE * j] >> 6) << 2 * j);
        } else {
            q[k] = s[at] >> 4 * (quad & 1) & 15;
            if (l->bits == 5) q[k] |= (uint8_t)((s[l->hi + half * 64 + 4 * rr + k % 4] >> quad & 1) << 4);
        }
    }
}

void gm_qpanel_row(int dtype, const void *panels, int64_t K, int64_t row, float *y) {
    gm_dtype t = (gm_dtype)dtype;
    gm_qpanel l = gm_qpanel_of(t);
    int B = gm_dtype_block(t), r = (int)(row % GM_QPANEL_ROWS);
    int64_t blocks = K / B;
    const uint8_t *panel = (const uint8_t *)panels + (size_t)(row / GM_QPANEL_ROWS * blocks) * l.unit;
    uint8_t q[256];
    gm_block_ints h = {0};
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *unit = panel + (size_t)b * l.unit;
        get_head(&l, unit, r, &h);
        for (int s = 0; s < B / 32; s++) get_sub(&l, unit + l.head + s * l.sub, r, q + 32 * s);
        gm_dequantize_ints(t, q, &h, y + b * B);
    }
}
