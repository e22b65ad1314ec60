/* kv_cache.c — per-layer KV storage, a ring for sliding-window layers (see
 * kv_cache.h for the layout and why). */
#include "kv_cache.h"

#include <stdlib.h>

int rt_kv_slot_rows(int window, int context, int full_length) {
    return window > 0 && window < context && !full_length ? window : context;
}

size_t rt_kv_plan_bytes(int n_slots, const int *windows, const int *cols, int context, int full_length) {
    size_t n = 0;
    for (int s = 0; s < n_slots; s++) n += 2 * (size_t)rt_kv_slot_rows(windows[s], context, full_length) * cols[s] * sizeof(float);
    return n;
}

rt_kv_cache *rt_kv_create(int n_slots, const int *windows, const int *cols, int context, int full_length) {
    rt_kv_cache *c = gm_calloc(1, sizeof *c);
    c->slots = gm_calloc(n_slots, sizeof *c->slots);
    c->n_slots = n_slots;
    c->context = context;
    for (int s = 0; s < n_slots; s++) {
        rt_kv_slot *sl = &c->slots[s];
        sl->window = windows[s];
        sl->rows = rt_kv_slot_rows(windows[s], context, full_length);
        sl->cols = cols[s];
        sl->k = gm_calloc((size_t)sl->rows * sl->cols, sizeof(float));
        sl->v = gm_calloc((size_t)sl->rows * sl->cols, sizeof(float));
    }
    return c;
}

void rt_kv_free(rt_kv_cache *c) {
    if (!c) return;
    for (int s = 0; s < c->n_slots; s++) {
        free(c->slots[s].k);
        free(c->slots[s].v);
    }
    free(c->slots);
    free(c);
}

size_t rt_kv_bytes(const rt_kv_cache *c) {
    size_t n = 0;
    for (int s = 0; s < c->n_slots; s++) n += 2 * (size_t)c->slots[s].rows * c->slots[s].cols * sizeof(float);
    return n;
}

void rt_kv_copy(rt_kv_cache *dst, const rt_kv_cache *src, int n) {
    for (int s = 0; s < src->n_slots; s++) {
        const rt_kv_slot *from = &src->slots[s];
        size_t bytes = (size_t)(n < from->rows ? n : from->rows) * from->cols * sizeof(float); /* rows of j mod rows */
        memcpy(dst->slots[s].k, from->k, bytes);
        memcpy(dst->slots[s].v, from->v, bytes);
    }
}

void rt_kv_store(rt_kv_slot *s, int pos, int T, const float *k, const float *v) {
    int first = T > s->rows ? T - s->rows : 0;
    for (int t = first; t < T; t++) {
        size_t row = (size_t)((pos + t) % s->rows) * s->cols;
        memcpy(s->k + row, k + (size_t)t * s->cols, s->cols * sizeof(float));
        memcpy(s->v + row, v + (size_t)t * s->cols, s->cols * sizeof(float));
    }
}
