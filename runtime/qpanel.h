/* qpanel.h — block-quantized weights repacked for the int8 kernels
 * (--activations int8): the layout pass's form of a Q8_0 … Q6_K weight, made
 * once at load (compiler/packed.c) and cached like the f32 panels.
 *
 * As stored, a row's blocks put each element's bits where that format's
 * encoder found room, and a kernel spends more instructions unpacking them
 * than two cores retire at memory speed. Repacked, GM_QPANEL_ROWS rows go
 * together (a panel, as EX_PANEL) in the order the integer dot products
 * read them: four consecutive k of one row in four bytes, sixteen rows in a
 * 64-byte vector, so one vpdpbusd multiplies them by four bytes of x. A
 * panel is K/B units, one per block of B = 32 or 256 k, each:
 *
 *   header  d: f16[32] at 0 (the block's d; a K-quant's super-block d)
 *           d2: f16[32] at 64 (Q4_1/Q5_1: m; Q4_K/Q5_K: dmin)
 *   then B/32 sub-blocks of 32 k, each:
 *     its scales: Q4_K/Q5_K sc u8[32] at 0, mn u8[32] at 32;
 *       Q6_K sc i8[2][32] at 0 (a group of 16 k each)
 *     for 5 bits, the fifth bits, 128 bytes (chunk half: bit j of byte
 *       4·r + i is bit 4 of k = 4·j + i of row 16·half + r)
 *     its quants (unsigned, gm_block_ints):
 *       8 bits (Q8_0): [8 quads][32 rows][4 k] bytes
 *       6 bits (Q6_K): 768 bytes, 384 per four quads, three planes
 *         there, each of two halves: plane j of half h at 384·(quad / 4) +
 *         128·j + 64·h, whose byte 4·r + i holds k = 16·(quad / 4) + 4·j +
 *         i of row 16·h + r in bits 0-5 and bits 2j, 2j+1 of k = 16·(quad /
 *         4) + 12 + i in bits 6, 7 (one mask for three quads of four, three
 *         shifts and two ors for the fourth);
 *       else 512 bytes of nibbles, chunk c = 2·pair + half at 64·c: byte
 *         4·r + i holds k = 8·pair + i (low) and 8·pair + 4 + i (high) of
 *         row 16·half + r.
 *
 * A decode reads each unit front to back: every sub-block's scales and
 * fifth bits just before its quants, Q6_K's two halves of a plane side by
 * side, and the kernels load d and d2 first. Until GMPACK03 the scales of
 * all eight sub-blocks sat in the unit's header, each sub-block sent the
 * reads back by up to 4 KB, and the CPU's stream prefetchers lost the
 * stream. On the Zen 4 host, two threads, bench/qdecode, Q4_K read at 0.56
 * of a plain read of the same bytes in that order, 0.83-0.88 with software
 * prefetches (which the kernels then issued), and in this order 0.95-1.01
 * with none; Q6_K 0.86-0.88 -> 0.97-1.01, Q5_0 0.69-0.74 -> 0.90-1.05.
 *
 * Every unit is a whole number of 64-byte lines, as large as the 32 rows'
 * blocks as stored (Q4_K and Q5_K: 128 bytes more, their scales unpacked).
 * Rows past N are zero. */
#ifndef GM_QPANEL_H
#define GM_QPANEL_H

#include "common.h"

#define GM_QPANEL_ROWS 32

typedef struct {
    int bits;      /* of a quant: 4, 5, 6 or 8 */
    int offset;    /* subtracted from each quant (0 with a min) */
    int head;      /* bytes of a unit's header */
    int sub;       /* bytes of one sub-block, its scales and fifth bits included */
    int unit;      /* bytes of a unit: head + B/32 · sub */
    int d2;        /* offset in the header, -1 where absent */
    int sc, mn, hi; /* offsets in a sub-block, -1 where absent */
    int q;         /* offset of the quants in a sub-block */
} gm_qpanel;

gm_qpanel gm_qpanel_of(gm_dtype t);
/* Offsets in a unit of the 32 rows' scales of scale group g (16 k for
 * Q6_K, else 32) and of the mins of sub-block s. */
int gm_qpanel_scales_at(const gm_qpanel *l, int g);
int gm_qpanel_mins_at(const gm_qpanel *l, int s);
/* Offset in a sub-block of the 64-byte vector that holds quad `quad` of
 * rows 16·half..: its bytes, nibbles, or (6 bits) plane 0 of its group, the
 * other planes GM_QPANEL_PLANE apart; byte 4·r + i there is row 16·half + r. */
#define GM_QPANEL_PLANE 128
int gm_qpanel_vector_at(const gm_qpanel *l, int quad, int half);
/* Bytes of a repacked [N][K] weight of type t. */
size_t gm_qpanel_bytes(gm_dtype t, int64_t N, int64_t K);
/* Panels [p0, p1) of src (row-major blocks as stored) into dst, a buffer of
 * gm_qpanel_bytes, zeroed beforehand. */
void gm_qpanel_pack(gm_dtype t, const void *src, int64_t N, int64_t K, int64_t p0, int64_t p1, void *dst);
/* Row `row` of a repacked [N][K] weight of type t (dtype: a gm_dtype) as K
 * floats, the values gm_dequantize gives the row as stored: the embedding
 * lookup of a table kept only in panels (the int8 head's, when tied). The
 * kernels compiled for such a lookup call it by this name. */
void gm_qpanel_row(int dtype, const void *panels, int64_t K, int64_t row, float *y);

#endif
