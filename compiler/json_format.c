/* json_format.c — writes JSON laid out for reading, as the files in models/
 * are: a value that fits on its line stays on one line; an object or array
 * that does not gets one member per line, except arrays of plain values,
 * which are packed into lines of at most WIDTH columns. Numbers are written
 * with the fewest digits that read back to the same double (cJSON's own
 * printer may drop the last digit). */
#include "json_format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define WIDTH 100


static void put_number(gm_buf *t, double v) {
    char buf[40];
    if (!isfinite(v)) return gm_buf_puts(t, "null"); /* as cJSON writes it */
    if (fabs(v) < 1e15 && v == (double)(int64_t)v) {
        snprintf(buf, sizeof buf, "%lld", (long long)v);
        return gm_buf_puts(t, buf);
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    gm_buf_puts(t, buf);
}

static void put_string(gm_buf *t, const char *s) {
    cJSON *tmp = cJSON_CreateString(s);
    char *q = cJSON_PrintUnformatted(tmp);
    gm_buf_puts(t, q);
    free(q);
    cJSON_Delete(tmp);
}

static void put_inline(gm_buf *t, const cJSON *j) {
    if (cJSON_IsNumber(j)) return put_number(t, j->valuedouble);
    if (!cJSON_IsArray(j) && !cJSON_IsObject(j)) {
        char *s = cJSON_PrintUnformatted(j);
        gm_buf_puts(t, s);
        free(s);
        return;
    }
    gm_buf_puts(t, cJSON_IsArray(j) ? "[" : "{");
    for (const cJSON *c = j->child; c; c = c->next) {
        if (cJSON_IsObject(j)) put_string(t, c->string), gm_buf_puts(t, ": ");
        put_inline(t, c);
        if (c->next) gm_buf_puts(t, ", ");
    }
    gm_buf_puts(t, cJSON_IsArray(j) ? "]" : "}");
}

static int all_plain(const cJSON *j) {
    for (const cJSON *c = j->child; c; c = c->next)
        if (cJSON_IsArray(c) || cJSON_IsObject(c)) return 0;
    return 1;
}

static void indent(gm_buf *t, int n) {
    for (int i = 0; i < n; i++) gm_buf_put(t, " ", 1);
}

static void put_packed(gm_buf *t, const cJSON *j, int ind) {
    gm_buf_puts(t, "[\n");
    int col = 0;
    for (const cJSON *c = j->child; c; c = c->next) {
        gm_buf item = {0};
        put_inline(&item, c);
        if (col && col + item.len + 2 > WIDTH) gm_buf_puts(t, "\n"), col = 0;
        if (!col) indent(t, ind + 2), col = ind + 2;
        else gm_buf_puts(t, " "), col++;
        gm_buf_puts(t, item.s);
        col += item.len;
        if (c->next) gm_buf_puts(t, ","), col++;
        free(item.s);
    }
    gm_buf_puts(t, "\n");
    indent(t, ind);
    gm_buf_puts(t, "]");
}

static void put_value(gm_buf *t, const cJSON *j, int ind, int col) {
    gm_buf one = {0};
    put_inline(&one, j);
    int fits = col + one.len <= WIDTH || !j->child;
    if (fits) gm_buf_puts(t, one.s);
    free(one.s);
    if (fits) return;
    if (cJSON_IsArray(j) && all_plain(j)) return put_packed(t, j, ind);
    gm_buf_puts(t, cJSON_IsArray(j) ? "[\n" : "{\n");
    for (const cJSON *c = j->child; c; c = c->next) {
        indent(t, ind + 2);
        size_t start = t->len;
        if (cJSON_IsObject(j)) put_string(t, c->string), gm_buf_puts(t, ": ");
        put_value(t, c, ind + 2, ind + 2 + (int)(t->len - start) + 1);
        gm_buf_puts(t, c->next ? ",\n" : "\n");
    }
    indent(t, ind);
    gm_buf_puts(t, cJSON_IsArray(j) ? "]" : "}");
}

char *json_format(const cJSON *j) {
    gm_buf t = {0};
    put_value(&t, j, 0, 0);
    gm_buf_puts(&t, "\n");
    return t.s;
}
