/* eval.h — benchmark tasks as data (eval/NAME.json; eval.c): where the
 * questions are, how a prompt is made (a preamble, few-shot exemplars, a
 * template), where generation stops, and how the answer is taken from the
 * reply and from the reference. A second benchmark is a JSON file, not C. */
#ifndef GM_EVAL_H
#define GM_EVAL_H

#include "runtime/common.h"

#define EVAL_MAX_STOPS 8

typedef struct {
    char *name;                   /* the file's name without .json */
    char *data;                   /* the split's JSONL (or TSV) file */
    int tsv;                      /* "format": "tsv": lines INPUT<TAB>TARGET instead of JSON objects */
    int chrf;                     /* "metric": "chrf" (compiler/chrf.h) instead of "exact" answers */
    char *input_field, *target_field;
    char *prefix;                 /* preamble and shots, shared by every prompt */
    char *template_text;          /* the question's part; {input} stands for the question */
    char *stops[EVAL_MAX_STOPS];
    int n_stops, max_new, shots;
    char *extract, *target_extract; /* "answer_is", "last_number", "after:MARK" or "line" */
} eval_task;

typedef struct {
    char *input, *target;         /* a line's fields */
} eval_item;

/* The task file at path, its split and its first `shots` exemplars (-1: all). */
int eval_task_load(const char *path, const char *split, int shots, eval_task *t, gm_err *e);
void eval_task_free(eval_task *t);
/* Every line of t->data (or of `data` when given). */
int eval_items_load(const eval_task *t, const char *data, eval_item **items, int *n, gm_err *e);
void eval_items_free(eval_item *items, int n);

/* The prompt's own part for an input (malloc'd): the template filled in. */
char *eval_prompt(const eval_task *t, const char *input);

/* The answer of text by rule (as the Gemma colab's find_number, commas
 * dropped): "answer_is" is "after:The answer is"; "after:MARK" the first
 * number after the last MARK, else the last number; "last_number" the last
 * number. A number is -?[0-9,]*\.?[0-9]+. "" when there is none. "line":
 * the first line, spaces trimmed (a translation). Malloc'd. */
char *eval_extract(const char *text, const char *rule);
/* Whether two extracted answers are the same number (or, not numbers, the same text). */
int eval_same_answer(const char *a, const char *b);

#endif
