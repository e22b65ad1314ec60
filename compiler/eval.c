/* eval.c — benchmark tasks as data (eval.h): a task file names its data
 * (a JSONL file per split, relative to the task file), the fields holding
 * the question and the reference, a preamble and few-shot exemplars (the
 * prefix every prompt shares, prefilled once), the template of a question,
 * the stop strings and the answer rules. eval/gsm8k.json states the Gemma
 * release's GSM8K colab this way; the rules restate its find_number. */
#include "eval.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>

/* s with every `from` replaced by `to` (malloc'd). */
static char *replace(const char *s, const char *from, const char *to) {
    gm_buf b = {0};
    gm_buf_puts(&b, "");
    for (const char *at; (at = strstr(s, from)); s = at + strlen(from)) gm_buf_put(&b, s, (size_t)(at - s)), gm_buf_puts(&b, to);
    gm_buf_puts(&b, s);
    return b.s;
}

/* A string member of j, required unless def is given (then def when absent). */
static int text_of(const cJSON *j, const char *key, const char *def, const char *path, char **out, gm_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v && def) return *out = gm_strdup(def), 0;
    if (!cJSON_IsString(v)) return gm_fail(e, "%s: %s: expected a string", path, key);
    *out = gm_strdup(v->valuestring);
    return 0;
}

/* The preamble and the first `shots` exemplars (none when the task has
 * none: zero-shot), each followed by a blank line. */
static int make_prefix(const cJSON *j, int shots, const char *path, eval_task *t, gm_err *e) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "shots");
    if (list && !cJSON_IsArray(list)) return gm_fail(e, "%s: shots: expected a list of exemplars", path);
    int have = cJSON_GetArraySize(list);
    if (shots > have) return gm_fail(e, "%s: --shots %d, but the task has %d exemplars", path, shots, have);
    t->shots = shots < 0 ? have : shots;
    char *pre = NULL, *shot = NULL;
    if (text_of(j, "preamble", "", path, &pre, e) || (t->shots && text_of(j, "shot_template", NULL, path, &shot, e)))
        return free(pre), -1;
    gm_buf b = {0};
    gm_buf_puts(&b, "");
    if (*pre) gm_buf_printf(&b, "%s\n\n", pre);
    int rc = 0;
    for (int i = 0; !rc && i < t->shots; i++) {
        const cJSON *s = cJSON_GetArrayItem(list, i), *in = cJSON_GetObjectItem(s, "input"), *out = cJSON_GetObjectItem(s, "output");
        if (!cJSON_IsString(in) || !cJSON_IsString(out)) {
            rc = gm_fail(e, "%s: shots[%d]: expected {\"input\": TEXT, \"output\": TEXT}", path, i);
            break;
        }
        char *a = replace(shot, "{input}", in->valuestring), *c = replace(a, "{output}", out->valuestring);
        gm_buf_printf(&b, "%s\n\n", c);
        free(a), free(c);
    }
    free(pre), free(shot);
    if (rc) return free(b.s), -1;
    t->prefix = b.s;
    return 0;
}

static int load_stops(const cJSON *j, const char *path, eval_task *t, gm_err *e) {
    const cJSON *stops = cJSON_GetObjectItemCaseSensitive(j, "stops"), *s;
    if (stops && !cJSON_IsArray(stops)) return gm_fail(e, "%s: stops: expected a list of strings", path);
    cJSON_ArrayForEach(s, stops) {
        if (!cJSON_IsString(s) || !*s->valuestring || t->n_stops == EVAL_MAX_STOPS)
            return gm_fail(e, "%s: stops: expected at most %d non-empty strings", path, EVAL_MAX_STOPS);
        t->stops[t->n_stops++] = gm_strdup(s->valuestring);
    }
    return 0;
}

/* The split's data file, relative to the task file. */
static int data_path(const cJSON *j, const char *path, const char *split, eval_task *t, gm_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "splits"), split);
    if (!cJSON_IsString(v))
        return gm_fail(e, "%s: no split \"%s\" (splits lists the JSONL file of each); pass another --split, or --data FILE",
                       path, split);
    char *copy = gm_strdup(path), *dir = dirname(copy);
    gm_buf b = {0};
    gm_buf_printf(&b, v->valuestring[0] == '/' ? "%.0s%s" : "%s/%s", dir, v->valuestring);
    t->data = b.s;
    free(copy);
    return 0;
}

static int check_rule(const char *rule, const char *path, const char *key, gm_err *e) {
    if (!strcmp(rule, "answer_is") || !strcmp(rule, "last_number") || !strncmp(rule, "after:", 6) || !strcmp(rule, "line"))
        return 0;
    return gm_fail(e, "%s: %s: expected \"answer_is\", \"last_number\", \"after:MARK\" or \"line\", found \"%s\"", path,
                   key, rule);
}

/* "format" (jsonl or tsv) and "metric" (exact or chrf); a TSV's columns need no field names. */
static int format_and_metric(const cJSON *j, const char *path, eval_task *t, gm_err *e) {
    char *format = NULL, *metric = NULL;
    int rc = text_of(j, "format", "jsonl", path, &format, e) || text_of(j, "metric", "exact", path, &metric, e);
    if (!rc && strcmp(format, "jsonl") && strcmp(format, "tsv"))
        rc = gm_fail(e, "%s: format: expected \"jsonl\" or \"tsv\", found \"%s\"", path, format);
    if (!rc && strcmp(metric, "exact") && strcmp(metric, "chrf"))
        rc = gm_fail(e, "%s: metric: expected \"exact\" or \"chrf\", found \"%s\"", path, metric);
    if (!rc) t->tsv = !strcmp(format, "tsv"), t->chrf = !strcmp(metric, "chrf");
    free(format), free(metric);
    return rc;
}

int eval_task_load(const char *path, const char *split, int shots, eval_task *t, gm_err *e) {
    memset(t, 0, sizeof *t);
    gm_json_where bad;
    cJSON *j = gm_read_json(path, &bad, e);
    if (!j && !e->msg[0]) return gm_fail(e, "%s:%d: malformed JSON near byte %zu; expected an eval task", path, bad.line, bad.byte);
    if (!j) return -1;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "max_new");
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    t->name = gm_strdup(base);
    if (gm_ends_with(t->name, ".json")) t->name[strlen(t->name) - 5] = 0;
    t->max_new = cJSON_IsNumber(n) && n->valuedouble >= 1 && n->valuedouble <= 1 << 20 ? n->valueint : 256;
    int rc = data_path(j, path, split, t, e) || format_and_metric(j, path, t, e) ||
             text_of(j, "input", t->tsv ? "column 1" : NULL, path, &t->input_field, e) ||
             text_of(j, "target", t->tsv ? "column 2" : NULL, path, &t->target_field, e) ||
             text_of(j, "template", NULL, path, &t->template_text, e) ||
             text_of(j, "extract", "answer_is", path, &t->extract, e) ||
             text_of(j, "target_extract", "last_number", path, &t->target_extract, e) ||
             check_rule(t->extract, path, "extract", e) || check_rule(t->target_extract, path, "target_extract", e) ||
             load_stops(j, path, t, e) || make_prefix(j, shots, path, t, e);
    cJSON_Delete(j);
    if (rc) eval_task_free(t);
    return rc ? -1 : 0;
}

void eval_task_free(eval_task *t) {
    free(t->name), free(t->data), free(t->input_field), free(t->target_field), free(t->prefix);
    free(t->template_text), free(t->extract), free(t->target_extract);
    for (int i = 0; i < t->n_stops; i++) free(t->stops[i]);
    memset(t, 0, sizeof *t);
}

/* One line of the data: its input and target fields (a TSV's two columns). */
static int item_of(const eval_task *t, char *line, const char *file, int lineno, eval_item *it, gm_err *e) {
    if (t->tsv) {
        char *in, *target;
        if (gm_split_tab(line, &in, &target)) return gm_fail(e, "%s:%d: expected INPUT<TAB>TARGET, both non-empty", file, lineno);
        it->input = gm_strdup(in), it->target = gm_strdup(target);
        return 0;
    }
    cJSON *j = cJSON_Parse(line);
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, t->input_field), *tg = cJSON_GetObjectItemCaseSensitive(j, t->target_field);
    int ok = cJSON_IsString(in) && cJSON_IsString(tg);
    if (ok) it->input = gm_strdup(in->valuestring), it->target = gm_strdup(tg->valuestring);
    cJSON_Delete(j);
    return ok ? 0 : gm_fail(e, "%s:%d: expected a JSON object with string fields \"%s\" and \"%s\"", file, lineno,
                            t->input_field, t->target_field);
}

int eval_items_load(const eval_task *t, const char *data, eval_item **items, int *n, gm_err *e) {
    const char *file = data ? data : t->data;
    char *text = gm_read_file(file, NULL, e), *line = text;
    int cap = 0, lineno = 0;
    *items = NULL, *n = 0;
    while (line && *line) {
        char *end = strchr(line, '\n');
        if (end) *end = 0;
        lineno++;
        if (*line) {
            if (*n == cap) *items = gm_realloc(*items, (cap = 2 * cap + 64) * sizeof **items);
            if (item_of(t, line, file, lineno, &(*items)[*n], e)) break;
            (*n)++;
        }
        line = end ? end + 1 : line + strlen(line);
    }
    int rc = !text || (line && *line) ? -1 : 0;
    free(text);
    if (!rc && !*n) rc = gm_fail(e, "%s: no questions", file);
    if (rc) eval_items_free(*items, *n), *items = NULL, *n = 0;
    return rc;
}

void eval_items_free(eval_item *items, int n) {
    for (int i = 0; i < n; i++) free(items[i].input), free(items[i].target);
    free(items);
}

char *eval_prompt(const eval_task *t, const char *input) { return replace(t->template_text, "{input}", input); }

/* The number -?[0-9,]*\.?[0-9]+ that starts at s, its length; 0 if none does. */
static size_t number_at(const char *s) {
    size_t j = *s == '-', k = j, last_digit = 0;
    while (isdigit((unsigned char)s[k]) || s[k] == ',') last_digit = isdigit((unsigned char)s[k]) ? k + 1 : last_digit, k++;
    if (s[k] == '.' && isdigit((unsigned char)s[k + 1])) {
        for (k++; isdigit((unsigned char)s[k]); k++) {}
        return k;
    }
    return last_digit;
}

/* The first (or last) number of text, commas dropped; NULL if none. */
static char *number_in(const char *text, int last) {
    const char *found = NULL;
    size_t len = 0;
    for (const char *p = text; *p;) {
        size_t n = number_at(p);
        if (!n) {
            p++;
            continue;
        }
        found = p, len = n;
        if (!last) break;
        p += n;
    }
    if (!found) return NULL;
    char *out = gm_malloc(len + 1), *o = out;
    for (size_t i = 0; i < len; i++)
        if (found[i] != ',') *o++ = found[i];
    *o = 0;
    return out;
}

/* The first line of text, spaces trimmed (malloc'd). */
static char *first_line(const char *text) {
    while (*text == ' ' || *text == '\t') text++;
    size_t n = strcspn(text, "\r\n");
    while (n && (text[n - 1] == ' ' || text[n - 1] == '\t')) n--;
    char *out = gm_malloc(n + 1);
    memcpy(out, text, n);
    out[n] = 0;
    return out;
}

char *eval_extract(const char *text, const char *rule) {
    if (!strcmp(rule, "line")) return first_line(text);
    const char *mark = !strcmp(rule, "answer_is") ? "The answer is" : !strncmp(rule, "after:", 6) ? rule + 6 : NULL;
    const char *after = NULL;
    for (const char *p = mark && *mark ? strstr(text, mark) : NULL; p; p = strstr(p + 1, mark)) after = p + strlen(mark);
    char *n = after ? number_in(after, 0) : NULL;
    if (!n) n = number_in(text, 1);
    return n ? n : gm_strdup("");
}

int eval_same_answer(const char *a, const char *b) {
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (*a && *b && !*ea && !*eb) return x == y;
    return !strcmp(a, b) && *a;
}
