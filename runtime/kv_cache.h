/* kv_cache.h — the KV cache of a model, one slot per attention op.
 *
 * A slot holds the keys and values of the positions an attention op can
 * still look at. A global layer keeps every position (rows = context); a
 * sliding-window layer of window W keeps only the last W (rows = min(W,
 * context)), as a ring: position j lives in row j mod rows. With Gemma 3's
 * 5 local : 1 global layers that is about a sixth of the naive cache at long
 * contexts. A call at position pos with T new tokens reads old positions
 * (< pos) from the ring and its own from the fresh k/v rows, then stores the
 * last min(T, rows) of them, so the ring never has to hold more than W. */
#ifndef GM_KV_CACHE_H
#define GM_KV_CACHE_H

#include "common.h"

typedef struct {
    int rows;        /* positions kept: context, or the window for sliding layers */
    int cols;        /* kv_heads · head_dim */
    int window;      /* 0 for global attention */
    float *k, *v;    /* [rows][cols] each */
} rt_kv_slot;

typedef struct {
    rt_kv_slot *slots;
    int n_slots;
    int context;     /* positions a sequence may reach */
} rt_kv_cache;

/* Rows a slot keeps: the window for a sliding layer shorter than the context
 * (unless full_length), else the context. Also the GPU engine's rule. */
int rt_kv_slot_rows(int window, int context, int full_length);

/* windows[s] and cols[s] describe slot s; full_length keeps every position
 * even for sliding layers (for tests that compare the two). */
rt_kv_cache *rt_kv_create(int n_slots, const int *windows, const int *cols, int context, int full_length);
/* The memory such a cache takes, without making it. */
size_t rt_kv_plan_bytes(int n_slots, const int *windows, const int *cols, int context, int full_length);
void rt_kv_free(rt_kv_cache *c);
size_t rt_kv_bytes(const rt_kv_cache *c);

/* Key / value row of position j (< the call's pos) in slot s. */
static inline const float *rt_kv_key(const rt_kv_slot *s, int j) { return s->k + (size_t)(j % s->rows) * s->cols; }
static inline const float *rt_kv_value(const rt_kv_slot *s, int j) { return s->v + (size_t)(j % s->rows) * s->cols; }

/* dst's slots take positions [0, n) of src's (caches of one model and
 * context): a prefix prefilled once, carried on from position n. */
void rt_kv_copy(rt_kv_cache *dst, const rt_kv_cache *src, int n);

/* Stores the k, v rows [T][cols] of positions pos..pos+T-1. */
void rt_kv_store(rt_kv_slot *s, int pos, int T, const float *k, const float *v);

#endif
