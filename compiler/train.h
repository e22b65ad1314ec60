/* train.h — fine-tuning a model: its training graph (passes/differentiate.c,
 * with LoRA adapters from passes/lora.c or every weight trained), the
 * trainable parameters in f32 with AdamW's moments, gradient accumulation
 * over the sequences of a step, a state file that resumes bit for bit, and
 * the fine-tuned checkpoint gemmac runs and compiles directly. The graph
 * runs on the reference backend (OpenBLAS matmuls, sums in double, the
 * oracle) or, compiled by the fusion and memory passes and LLVM, on the
 * jit backend's trainer (backends/exec/exec.h). */
#ifndef GM_TRAIN_H
#define GM_TRAIN_H

#include "model.h"
#include "backends/reference/reference.h"

typedef struct {
    int lora_rank;          /* 0: full fine-tuning, every weight trained */
    double lora_alpha;      /* adapters add (alpha / rank) · B·A */
    double lr, weight_decay; /* AdamW: decoupled weight decay, as PyTorch's torch.optim.AdamW */
    double beta1, beta2, eps;
    uint64_t seed;          /* the adapters' A (B starts at zero) */
    const char *backend;    /* "reference" (NULL: the same) or "jit" */
    int no_cache;           /* jit: neither read nor write the on-disk cache of compiled code */
} train_opts;

/* Target flags of a sequence's tokens (1: token i is scored, predicted at
 * position i − 1) turned, in place, into the id each position predicts
 * (-1: none), as rt_batch.targets holds them. */
void train_targets_from_flags(const int32_t *ids, int32_t *targets, int n);

/* Sequences packed one after another into one batch (rt_batch.start). */
typedef struct {
    int32_t *tokens, *targets, *start;
    int rows, cap;
} train_pack;

void train_pack_add(train_pack *p, const int32_t *tokens, const int32_t *targets, int T);
rt_batch train_pack_batch(const train_pack *p, int loss_only);
void train_pack_free(train_pack *p);

typedef struct {
    const char *name;       /* the checkpoint's tensor (or "<W>.lora_a" / ".lora_b") */
    int value, grad;        /* its weight value and the value holding its gradient */
    int64_t n;              /* elements */
    float *w, *m, *v;       /* master weights in f32, AdamW's first and second moments */
    double *sum;            /* the step's gradients, each sequence's times its scored tokens */
    gm_tensor t;            /* bound to w */
} train_param;

typedef struct {
    gm_model *model;        /* opened without passes, for the reference backend */
    ir_graph *g;            /* model->graph, made a training graph */
    const gm_tensor **bound; /* per value of g: the masters of trained weights, else the checkpoint's */
    const gm_tensor **model_bound; /* per value of g: the checkpoint's tensor of each weight it has */
    rt_trainer *run;        /* the backend's trainer of g */
    struct rt_pool *pool;   /* the parameters' updates over the cores */
    train_param *p;
    int n_p;
    train_opts o;
    int64_t step;           /* AdamW steps taken */
    int64_t scored;         /* tokens scored in the step being accumulated */
    double loss_sum;        /* their cross-entropy, summed */
    train_pack pending;     /* sequences added and not yet run */
} trainer;

trainer *train_open(const char *model, const char *weights, const train_opts *o, gm_err *e);
void train_free(trainer *t);
/* Adds one sequence (targets[i]: the id position i predicts, -1 none) to
 * the step: sequences are packed into one call of up to TRAIN_PACK_ROWS rows
 * (a longer one alone), whose gradients add to the step's when it runs. */
#define TRAIN_PACK_ROWS 2048
int train_add(trainer *t, const int32_t *tokens, const int32_t *targets, int T, gm_err *e);
/* One AdamW step with the mean gradient over the tokens scored since the
 * last (pending sequences run first); *loss gets their mean loss. */
int train_step(trainer *t, double *loss, gm_err *e);
/* The loss of batch b at the current weights, no gradients: adds its scored
 * rows' cross-entropy to *sum and their count to *scored (a held-out loss). */
int train_eval_loss(trainer *t, const rt_batch *b, double *sum, int64_t *scored, gm_err *e);
/* The state (step, options, masters, moments) to path / back from it. */
int train_save(const trainer *t, const char *path, gm_err *e);
int train_load(trainer *t, const char *path, gm_err *e);
/* The fine-tuned checkpoint: adapters merged into their matrices
 * (W + alpha/rank · B·A, f32), trained tensors as f32, every other tensor as
 * stored. A GGUF base gives a .gguf at out; a safetensors one a directory
 * with config.json and tokenizer.model copied beside model.safetensors. */
int train_export(const trainer *t, const char *out, gm_err *e);

#endif
