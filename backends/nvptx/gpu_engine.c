/* gpu_engine.c — the engine of the NVPTX target: an rt_engine that runs a
 * graph's PTX kernels on an NVIDIA GPU through the driver API (runtime/
 * cuda.h, loaded with dlopen). No LLVM: the JIT backend hands it the PTX it
 * just generated, an executable the PTX compiled into it.
 *
 * Creation loads the PTX into a module (the driver compiles it for the GPU
 * present), finds each node's kernel by its description among those the PTX
 * was made for, uploads every weight once in its checkpoint dtype, makes a
 * KV cache in device memory (a ring of window rows for sliding layers, as
 * runtime/kv_cache.h lays it out on the host) and, for each rope kernel, a
 * table of cos and sin for every position of the context, computed in
 * double on the host as the reference does. A call copies the token ids
 * in, launches each node's kernel on one arena of activations laid out as
 * the graph says (ir_arena_layout), appends the call's k and v rows to the
 * cache (each attention's "_store" entry in prefill; decode's attention
 * does it itself), and copies back only the logits
 * asked for. All of it goes to one stream in order, so a step's launches
 * queue back to back and the host waits once, on the logits. The kernels
 * read the position from a device word, so the launches of a decode step do
 * not depend on it: the first decode captures them into a CUDA graph, and
 * every later one uploads the token and position and launches the graph
 * (recaptured when a longer prefill moves the arena), one launch instead of
 * one per node. GEMMAC_CUDA_GRAPHS=0 launches the nodes one by one instead,
 * for comparison. On Hopper each decode launch is a programmatic dependent
 * one (nvptx.h, NV_PDL_GPU; GEMMAC_CUDA_PDL=0 turns it off).
 *
 * Decode runs some neighbouring nodes as one launch (plan_fusion): the
 * feed-forward's gate, up and geglu; an attention's k and v projections;
 * its q and k ropes. Prefill launches every node. */
#include "gpu_engine.h"

#include "runtime/cuda.h"
#include "runtime/kv_cache.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    int rows, cols;              /* as rt_kv_slot */
    cu_ptr k, v;
} gpu_slot;

typedef struct {
    rt_engine base;
    const ir_graph *g;
    rt_cuda *cu;
    cu_handle module;
    cu_handle *fn, *second;      /* per node: its kernel's entry, and a matmul's "_gemv" or an attention's "_store" */
    cu_handle *geglu_fn;         /* per node: a matmul's "_gemv_geglu" entry, else NULL */
    int *geglu_of;               /* per node: for a geglu that decode fuses, its gate node, else -1 */
    int *twin;                   /* per node: the matmul or rope decode runs with it in one launch, else -1 */
    char *fused;                 /* per node: decode runs it inside a later node's launch */
    cu_handle stream;            /* where everything is queued */
    cu_handle graph, step_graph; /* the captured decode step and its executable form, or NULL */
    cu_ptr graph_arena;          /* the arena the graph was captured with, and its room */
    int graph_room;
    cu_ptr pos;                  /* the device word the kernels read the position from */
    cu_ptr scratch;              /* decode attention's partial results and counters (nv_attn_scratch_floats) */
    int use_graphs;
    int use_pdl;                 /* launch with programmatic dependent launch (nvptx.h's NV_PDL_GPU) */
    ex_kernel *kernel;           /* per node: its description */
    cu_ptr *weight;              /* per value id: the weight's device copy, else 0 */
    cu_ptr *table;               /* per node: a rope's cos/sin table, else 0 */
    int64_t *offset, width;      /* the arena layout (ir_arena_layout) */
    cu_ptr arena, tokens;        /* width × room floats; room token ids */
    int room;
    gpu_slot *slots;             /* per KV cache slot */
    cu_ptr *owned;               /* every allocation, freed with the engine */
    int n_owned, cap_owned;
} gpu_engine;

static int alloc(gpu_engine *j, cu_ptr *p, size_t bytes, const char *what, gm_err *e) {
    if (rt_cuda_check(j->cu, j->cu->MemAlloc(p, bytes ? bytes : 4), what, e)) return -1;
    if (j->n_owned == j->cap_owned) j->owned = gm_realloc(j->owned, (j->cap_owned = 2 * j->cap_owned + 16) * sizeof *j->owned);
    j->owned[j->n_owned++] = *p;
    return 0;
}

static void release(gpu_engine *j, cu_ptr p) {
    for (int i = 0; i < j->n_owned; i++)
        if (j->owned[i] == p) {
            j->cu->MemFree(p);
            j->owned[i] = j->owned[--j->n_owned];
            return;
        }
}

static int upload(gpu_engine *j, cu_ptr *p, const void *src, size_t bytes, const char *what, gm_err *e) {
    return alloc(j, p, bytes, what, e) || rt_cuda_check(j->cu, j->cu->MemcpyHtoD(*p, src, bytes), what, e);
}

/* Every weight in its own dtype; one copy per checkpoint tensor. */
static int upload_weights(gpu_engine *j, const gm_tensor *const *bound, gm_err *e) {
    const ir_graph *g = j->g;
    for (int v = 0; v < g->n_values; v++) {
        const gm_tensor *t = bound[v];
        if (g->values[v].kind != IR_WEIGHT || !t) continue;
        if (g->values[v].panel)
            return gm_fail(e, "nvptx: weight %s is packed in panels for a CPU target; open the model for the nvptx "
                              "target (gemmac does this for --backend nvptx)", g->values[v].name);
        for (int u = 0; u < v && !j->weight[v]; u++)
            if (bound[u] == t) j->weight[v] = j->weight[u];
        if (!j->weight[v] && upload(j, &j->weight[v], t->data, t->nbytes, g->values[v].name, e)) return -1;
    }
    return 0;
}

/* cos then sin of (p / pos_scale) · θ^(−2i/hd) for p < context, i < hd/2, as f32. */
static int rope_table(gpu_engine *j, const ir_node *n, cu_ptr *p, gm_err *e) {
    int64_t hd = (int64_t)n->attr[IR_A_HEAD_DIM], half = hd / 2, ctx = j->base.context;
    float *t = gm_malloc((size_t)2 * ctx * half * sizeof *t);
    for (int64_t r = 0; r < ctx; r++)
        for (int64_t i = 0; i < half; i++) {
            double angle = r / n->attr[IR_A_POS_SCALE] * pow(n->attr[IR_A_THETA], -2.0 * i / hd);
            t[r * half + i] = (float)cos(angle);
            t[(ctx + r) * half + i] = (float)sin(angle);
        }
    int rc = upload(j, p, t, (size_t)2 * ctx * half * sizeof *t, "rope table", e);
    free(t);
    return rc;
}

/* Whether two rope kernels turn by the same angles (one cos/sin table serves both). */
static int same_angles(const ex_kernel *a, const ex_kernel *b) {
    return a->attr[IR_A_HEAD_DIM] == b->attr[IR_A_HEAD_DIM] && a->attr[IR_A_THETA] == b->attr[IR_A_THETA] &&
           a->attr[IR_A_POS_SCALE] == b->attr[IR_A_POS_SCALE];
}

/* Each node's kernel among the compiled ones (their symbols: ex_kernel_symbol of their index). */
static int find_kernels(gpu_engine *j, const gm_tensor *const *bound, const ex_kernel *compiled, int n_compiled, gm_err *e) {
    const ir_graph *g = j->g;
    for (int i = 0; i < g->n_nodes; i++) {
        ex_kernel_of(g, &g->nodes[i], bound, &j->kernel[i]);
        int k = 0;
        while (k < n_compiled && memcmp(&compiled[k], &j->kernel[i], sizeof *compiled)) k++;
        if (k == n_compiled)
            return gm_fail(e, "nvptx: the checkpoint needs a %s kernel this model was not compiled with (different "
                              "weight dtypes?); recompile it", ir_ops[g->nodes[i].op].name);
        char name[80];
        ex_kernel_symbol(name, sizeof name, &compiled[k], k);
        if (rt_cuda_check(j->cu, j->cu->ModuleGetFunction(&j->fn[i], j->module, name), name, e)) return -1;
        strcat(name, g->nodes[i].op == IR_ATTENTION ? "_store" : "_gemv");
        int has_second = ir_is_matmul(g->nodes[i].op) || g->nodes[i].op == IR_ATTENTION;
        if (has_second && rt_cuda_check(j->cu, j->cu->ModuleGetFunction(&j->second[i], j->module, name), name, e)) return -1;
        strcat(name, "_geglu");
        if (nv_has_geglu_entry(&j->kernel[i]) &&
            rt_cuda_check(j->cu, j->cu->ModuleGetFunction(&j->geglu_fn[i], j->module, name), name, e))
            return -1;
        if (g->nodes[i].op == IR_ROPE) {
            for (int p = 0; p < i && !j->table[i]; p++)
                if (j->table[p] && same_angles(&j->kernel[p], &j->kernel[i])) j->table[i] = j->table[p];
            if (!j->table[i] && rope_table(j, &g->nodes[i], &j->table[i], e)) return -1;
        }
    }
    return 0;
}

/* How many nodes (and the graph's output) read value v. */
static int readers(const ir_graph *g, int v) {
    int n = v == g->logits;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < ir_ops[g->nodes[i].op].n_inputs; k++) n += g->nodes[i].in[k] == v;
    return n;
}

/* Whether activations a and b share arena columns. */
static int overlap(const gpu_engine *j, int a, int b) {
    int64_t a0 = j->offset[a], b0 = j->offset[b];
    return a0 < b0 + ir_value_cols(j->g, b) && b0 < a0 + ir_value_cols(j->g, a);
}

/* Whether nodes a and b are matmuls of one kernel over the same input (and norm weight), so
 * that one launch can compute both. */
static int same_matmul(const gpu_engine *j, int a, int b) {
    const ir_node *na = &j->g->nodes[a], *nb = &j->g->nodes[b];
    return ir_is_matmul(na->op) && !memcmp(&j->kernel[a], &j->kernel[b], sizeof *j->kernel) && na->in[0] == nb->in[0] &&
           (na->op != IR_NORM_MATMUL || na->in[2] == nb->in[2]);
}

/* Whether decode can run node i + 1 as node i's twin, in one launch: matmuls of the same kernel
 * over the same input (and norm weight), no residual (node i's gemv with grid.y = 2), or ropes
 * by the same angles (node i's blocks, then i + 1's); each output apart from the other node's
 * output and input; neither fused otherwise. */
static int twin_of(const gpu_engine *j, int i) {
    const ir_node *a = &j->g->nodes[i], *b = a + 1;
    if (j->fused[i] || j->fused[i + 1] || a->op != b->op || overlap(j, a->out, b->out) || overlap(j, a->out, b->in[0]) ||
        overlap(j, b->out, a->in[0]))
        return 0;
    if (a->op == IR_ROPE) return j->table[i] == j->table[i + 1];
    return a->op != IR_MATMUL_ADD && same_matmul(j, i, i + 1);
}

/* Decode's fusions. The feed-forward's gate, up and geglu (nodes r − 2, r − 1, r) run as one
 * launch of the gate's "_gemv_geglu" entry, where the two are same_matmul, only r reads them,
 * and r's output leaves their input intact. Then each pair of twins (twin_of: an attention's
 * k and v projections, its q and k ropes) runs as one. */
static void plan_fusion(gpu_engine *j) {
    const ir_graph *g = j->g;
    for (int r = 0; r < g->n_nodes; r++) j->geglu_of[r] = -1;
    for (int r = 2; r < g->n_nodes; r++) {
        const ir_node *n = &g->nodes[r], *gate = &g->nodes[r - 2], *up = &g->nodes[r - 1];
        if (n->op != IR_GEGLU || !j->geglu_fn[r - 2] || gate->out != n->in[0] || up->out != n->in[1] ||
            !same_matmul(j, r - 2, r - 1) || readers(g, gate->out) != 1 || readers(g, up->out) != 1 ||
            overlap(j, n->out, gate->in[0]))
            continue;
        j->geglu_of[r] = r - 2;
        j->fused[r - 2] = j->fused[r - 1] = 1;
    }
    for (int i = 0; i < g->n_nodes; i++) j->twin[i] = i + 1 < g->n_nodes && twin_of(j, i) ? i + 1 : -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (j->twin[i] >= 0) j->fused[i + 1] = 1, j->twin[i + 1] = -1;
}

static int load_module(gpu_engine *j, const char *ptx, gm_err *e) {
    static char log[8192];
    int opts[] = {5 /* CU_JIT_ERROR_LOG_BUFFER */, 6 /* CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES */};
    void *vals[] = {log, (void *)(uintptr_t)sizeof log};
    log[0] = 0;
    cu_result r = j->cu->ModuleLoadDataEx(&j->module, ptx, 2, opts, vals);
    if (r && log[0]) return gm_fail(e, "cuda: the driver refused the PTX: %.900s", log);
    return rt_cuda_check(j->cu, r, "cuModuleLoadDataEx", e);
}

/* The largest scratch any attention kernel needs, zeroed (its counters must start at 0). */
static int make_scratch(gpu_engine *j, gm_err *e) {
    int64_t floats = 1;
    for (int i = 0; i < j->g->n_nodes; i++)
        if (j->kernel[i].op == IR_ATTENTION && nv_attn_scratch_floats(&j->kernel[i]) > floats)
            floats = nv_attn_scratch_floats(&j->kernel[i]);
    float *zeros = gm_calloc((size_t)floats, sizeof *zeros);
    int rc = upload(j, &j->scratch, zeros, (size_t)floats * sizeof *zeros, "attention scratch", e);
    free(zeros);
    return rc;
}

static int make_cache(gpu_engine *j, const rt_engine_opts *o, gm_err *e) {
    const ir_graph *g = j->g;
    int *windows = gm_malloc(g->n_cache_slots * sizeof(int)), *cols = gm_malloc(g->n_cache_slots * sizeof(int)), rc = 0;
    ir_cache_slots(g, windows, cols);
    j->slots = gm_calloc(g->n_cache_slots, sizeof *j->slots);
    for (int s = 0; s < g->n_cache_slots && !rc; s++) {
        gpu_slot *sl = &j->slots[s];
        sl->rows = rt_kv_slot_rows(windows[s], o->context, o->full_kv);
        sl->cols = cols[s];
        size_t bytes = (size_t)sl->rows * sl->cols * sizeof(float);
        rc = alloc(j, &sl->k, bytes, "KV cache", e) || alloc(j, &sl->v, bytes, "KV cache", e);
        j->base.kv_bytes += 2 * bytes;
    }
    free(windows);
    free(cols);
    return rc;
}

/* Room for T rows, rounded up to 4 so that every activation block starts on 16 bytes
 * (the gemv kernels read x with vector loads). */
static int reserve_rows(gpu_engine *j, int T, gm_err *e) {
    if (T <= j->room) return 0;
    T = (T + 3) & ~3;
    release(j, j->arena);
    release(j, j->tokens);
    j->room = 0;
    if (alloc(j, &j->arena, (size_t)j->width * T * sizeof(float), "activation arena", e) ||
        alloc(j, &j->tokens, (size_t)T * sizeof(int32_t), "token ids", e))
        return -1;
    j->room = T;
    return 0;
}

static cu_ptr act(const gpu_engine *j, int v) { return j->arena + (cu_ptr)(j->offset[v] * j->room) * sizeof(float); }

static cu_ptr value_ptr(const gpu_engine *j, int v, cu_ptr tokens) {
    switch (j->g->values[v].kind) {
    case IR_INPUT: return tokens;
    case IR_WEIGHT: return j->weight[v];
    default: return act(j, v);
    }
}

/* Launches fn on the stream; decode's launches (T = 1) are programmatic dependent ones where
 * the engine uses them (prefill's many-block kernels ran slower so on an H200). */
static int launch(gpu_engine *j, cu_handle fn, const nv_launch *l, nv_args *a, const char *what, gm_err *e) {
    void *params[NV_N_PARAMS] = {&a->in[0], &a->in[1], &a->in[2], &a->out, &a->T, &a->pos, &a->k_cache, &a->v_cache, &a->rows,
                                 &a->scratch};
    if (!j->use_pdl || a->T != 1)
        return rt_cuda_check(j->cu, j->cu->LaunchKernel(fn, l->grid[0], l->grid[1], l->grid[2], l->block, 1, 1, 0, j->stream,
                                                        params, NULL), what, e);
    cu_launch_attr pdl = {.id = CU_LAUNCH_ATTR_PROGRAMMATIC, .v.value = 1};
    cu_launch_config c = {{l->grid[0], l->grid[1], l->grid[2]}, {l->block, 1, 1}, 0, j->stream, &pdl, 1};
    return rt_cuda_check(j->cu, j->cu->LaunchKernelEx(&c, fn, params, NULL), what, e);
}

/* Decode's gate, up and geglu: geglu node r's launch of its gate's "_gemv_geglu" (plan_fusion). */
static int run_geglu(gpu_engine *j, int r, cu_ptr tokens, gm_err *e) {
    int p = j->geglu_of[r];
    const ir_node *gate = &j->g->nodes[p], *up = &j->g->nodes[p + 1];
    nv_args a = {.out = act(j, j->g->nodes[r].out), .T = 1, .pos = j->pos, .scratch = j->scratch};
    for (int k = 0; k < ir_ops[gate->op].n_inputs; k++) a.in[k] = value_ptr(j, gate->in[k], tokens);
    a.k_cache = value_ptr(j, up->in[1], tokens);
    nv_launch l;
    nv_geglu_launch(&j->kernel[p], &l);
    return launch(j, j->geglu_fn[p], &l, &a, "gate, up and geglu", e);
}

/* Node i's launch (a, l) made to run its twin too (nvptx.h): a matmul's second matrix and output
 * at k_cache and v_cache, grid.y = 2; a rope's second input at in[2], its output at v_cache,
 * its heads' blocks after node i's. */
static void pair_twin(gpu_engine *j, int twin, cu_ptr tokens, nv_args *a, nv_launch *l) {
    const ir_node *b = &j->g->nodes[twin];
    a->v_cache = act(j, b->out);
    if (b->op == IR_ROPE) {
        nv_launch own;
        nv_launch_of(&j->kernel[twin], 1, &own);
        a->in[2] = act(j, b->in[0]);
        l->grid[1] += own.grid[1];
    } else {
        a->k_cache = value_ptr(j, b->in[1], tokens);
        l->grid[1] = 2;
    }
}

static int run_node(gpu_engine *j, int i, cu_ptr tokens, int T, gm_err *e) {
    if (T == 1 && j->fused[i]) return 0;
    if (T == 1 && j->geglu_of[i] >= 0) return run_geglu(j, i, tokens, e);
    const ir_node *n = &j->g->nodes[i];
    int twin = T == 1 ? j->twin[i] : -1;
    nv_args a = {.out = act(j, n->out), .T = T, .pos = j->pos, .scratch = j->scratch};
    for (int k = 0; k < ir_ops[n->op].n_inputs; k++) a.in[k] = value_ptr(j, n->in[k], tokens);
    const gpu_slot *slot = n->op == IR_ATTENTION ? &j->slots[n->cache_slot] : NULL;
    if (slot) a.k_cache = slot->k, a.v_cache = slot->v, a.rows = slot->rows;
    if (n->op == IR_ROPE) a.in[1] = j->table[i], a.rows = j->base.context;
    nv_launch l;
    nv_launch_of(&j->kernel[i], T, &l);
    if (twin >= 0) pair_twin(j, twin, tokens, &a, &l);
    if (launch(j, l.gemv ? j->second[i] : j->fn[i], &l, &a, ir_ops[n->op].name, e)) return -1;
    if (!slot || T == 1) return 0; /* decode's attention stores its own row */
    nv_args store = a;
    store.in[0] = a.in[1], store.in[1] = a.in[2];
    nv_store_launch(&j->kernel[i], T, &l);
    return launch(j, j->second[i], &l, &store, "KV store", e);
}

/* The position (and the token ids) for the kernels to read. */
static int upload_call(gpu_engine *j, const int32_t *tokens, int n, int pos, gm_err *e) {
    int64_t p = pos;
    return rt_cuda_check(j->cu, j->cu->MemcpyHtoDAsync(j->tokens, tokens, n * sizeof *tokens, j->stream), "token ids", e) ||
           rt_cuda_check(j->cu, j->cu->MemcpyHtoDAsync(j->pos, &p, sizeof p, j->stream), "position", e);
}

static int copy_logits(gpu_engine *j, float *logits, int n, gm_err *e) {
    size_t bytes = (size_t)n * j->g->vocab * sizeof(float);
    return rt_cuda_check(j->cu, j->cu->StreamSynchronize(j->stream), "decode step", e) ||
           rt_cuda_check(j->cu, j->cu->MemcpyDtoH(logits, act(j, j->g->logits), bytes), "logits", e);
}

static void drop_graph(gpu_engine *j) {
    if (j->step_graph) j->cu->GraphExecDestroy(j->step_graph);
    if (j->graph) j->cu->GraphDestroy(j->graph);
    j->graph = j->step_graph = NULL;
}

/* One decode step's launches (token ids and position read from the device) as a CUDA graph. */
static int capture_step(gpu_engine *j, gm_err *e) {
    drop_graph(j);
    if (rt_cuda_check(j->cu, j->cu->StreamBeginCapture(j->stream, 1 /* thread-local */), "cuStreamBeginCapture", e))
        return -1;
    int rc = 0;
    for (int i = 0; i < j->g->n_nodes && !rc; i++) rc = run_node(j, i, j->tokens, 1, e);
    cu_result r = j->cu->StreamEndCapture(j->stream, &j->graph);
    if (rc || rt_cuda_check(j->cu, r, "cuStreamEndCapture", e) ||
        rt_cuda_check(j->cu, j->cu->GraphInstantiate(&j->step_graph, j->graph, 0), "cuGraphInstantiate", e)) {
        drop_graph(j);
        return -1;
    }
    j->graph_arena = j->arena, j->graph_room = j->room;
    return 0;
}

static int gpu_prefill(rt_engine *en, const int32_t *tokens, int n, int pos, float *logits, int all_rows, gm_err *e) {
    gpu_engine *j = (gpu_engine *)en;
    if (rt_check_span(en, tokens, n, pos, e) || reserve_rows(j, n, e) || upload_call(j, tokens, n, pos, e)) return -1;
    const ir_graph *g = j->g;
    cu_ptr ids = j->tokens;
    int head = ir_head_start(g);
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *nd = &g->nodes[i];
        if (i == head && !all_rows && n > 1) { /* the head needs the last row only */
            size_t row = (size_t)ir_value_cols(g, nd->in[0]) * sizeof(float);
            cu_ptr x = act(j, nd->in[0]);
            if (rt_cuda_check(j->cu, j->cu->MemcpyDtoDAsync(x, x + (n - 1) * row, row, j->stream), "last row", e)) return -1;
            ids += (n - 1) * sizeof(int32_t), n = 1;
        }
        if (run_node(j, i, ids, n, e)) return -1;
    }
    return copy_logits(j, logits, n, e);
}

static int gpu_decode(rt_engine *en, int32_t token, int pos, float *logits, gm_err *e) {
    gpu_engine *j = (gpu_engine *)en;
    if (!j->use_graphs) return gpu_prefill(en, &token, 1, pos, logits, 0, e);
    if (rt_check_span(en, &token, 1, pos, e) || reserve_rows(j, 1, e)) return -1;
    int moved = j->graph_arena != j->arena || j->graph_room != j->room;
    if ((!j->step_graph || moved) && capture_step(j, e)) return -1;
    return upload_call(j, &token, 1, pos, e) ||
           rt_cuda_check(j->cu, j->cu->GraphLaunch(j->step_graph, j->stream), "cuGraphLaunch", e) ||
           copy_logits(j, logits, 1, e);
}

static void gpu_free(rt_engine *en) {
    gpu_engine *j = (gpu_engine *)en;
    if (j->cu) drop_graph(j);
    if (j->stream) j->cu->StreamDestroy(j->stream);
    for (int i = 0; j->cu && i < j->n_owned; i++) j->cu->MemFree(j->owned[i]);
    if (j->module) j->cu->ModuleUnload(j->module);
    rt_cuda_close(j->cu);
    free(j->owned);
    free(j->fn);
    free(j->second);
    free(j->geglu_fn);
    free(j->geglu_of);
    free(j->twin);
    free(j->fused);
    free(j->kernel);
    free(j->weight);
    free(j->table);
    free(j->offset);
    free(j->slots);
    free(j);
}

static int setup(gpu_engine *j, const gm_tensor *const *bound, const rt_engine_opts *o, const char *ptx,
                 const ex_kernel *compiled, int n_compiled, gm_err *e) {
    const ir_graph *g = j->g;
    j->fn = gm_calloc(g->n_nodes, sizeof *j->fn);
    j->second = gm_calloc(g->n_nodes, sizeof *j->second);
    j->geglu_fn = gm_calloc(g->n_nodes, sizeof *j->geglu_fn);
    j->geglu_of = gm_calloc(g->n_nodes, sizeof *j->geglu_of);
    j->twin = gm_calloc(g->n_nodes, sizeof *j->twin);
    j->fused = gm_calloc(g->n_nodes, sizeof *j->fused);
    j->kernel = gm_calloc(g->n_nodes, sizeof *j->kernel);
    j->table = gm_calloc(g->n_nodes, sizeof *j->table);
    j->weight = gm_calloc(g->n_values, sizeof *j->weight);
    j->offset = gm_malloc(g->n_values * sizeof *j->offset);
    j->width = ir_arena_layout(g, j->offset);
    if (!(j->cu = rt_cuda_open(e))) return -1;
    const char *graphs = getenv("GEMMAC_CUDA_GRAPHS"), *pdl = getenv("GEMMAC_CUDA_PDL");
    j->use_graphs = !graphs || strcmp(graphs, "0");
    j->use_pdl = (!pdl || strcmp(pdl, "0")) && j->cu->LaunchKernelEx && j->cu->cc_major >= 9 &&
                 strstr(ptx, ".target " NV_PDL_GPU);
    if (rt_cuda_check(j->cu, j->cu->StreamCreate(&j->stream, 0), "cuStreamCreate", e) ||
        alloc(j, &j->pos, sizeof(int64_t), "position", e))
        return -1;
    double t0 = gm_now_s();
    if (load_module(j, ptx, e) || find_kernels(j, bound, compiled, n_compiled, e)) return -1;
    j->base.compile_s = gm_now_s() - t0;
    plan_fusion(j);
    return upload_weights(j, bound, e) || make_cache(j, o, e) || make_scratch(j, e);
}

rt_engine *nv_engine_create(const ir_graph *g, const gm_tensor *const *bound, const rt_engine_opts *o, const char *ptx,
                            const ex_kernel *compiled, int n_compiled, gm_err *e) {
    if (rt_check_opts(o, g->max_context, "nvptx", 0, e)) return NULL;
    gpu_engine *j = gm_calloc(1, sizeof *j);
    j->base = (rt_engine){.backend = "nvptx", .vocab = g->vocab, .context = o->context, .sequences = 1,
                          .prefill = gpu_prefill, .decode = gpu_decode, .free = gpu_free};
    j->g = g;
    if (setup(j, bound, o, ptx, compiled, n_compiled, e)) {
        gpu_free(&j->base);
        return NULL;
    }
    return &j->base;
}

int nv_host_gpu(char *buf, size_t len, gm_err *e) {
    rt_cuda *cu = rt_cuda_open(e);
    if (!cu) return -1;
    int cc = cu->cc_major * 10 + cu->cc_minor, rc = 0;
    if (cc < 80) rc = gm_fail(e, "nvptx: %s has compute capability %d.%d; the kernels need 8.0 or newer", cu->name, cu->cc_major, cu->cc_minor);
    else snprintf(buf, len, "sm_%d", cc >= 90 ? 90 : cc >= 89 ? 89 : cc >= 86 ? 86 : 80);
    rt_cuda_close(cu);
    return rc;
}
