/* json_format.c — writes JSON laid out for reading, as the files in models/
 * are: a value that fits on its line stays on one line; an object or array
 * that does not gets one member per line, except arrays of plain values,
 * which are packed into lines of at most WIDTH columns. Numbers are written
 * with the fewest digits that read back to the same double (cJSON's own
 * printer may drop the last digit). */
#include "json_format.h"

#include <stdio.h>
#include <stdlib.h>

#define WIDTH 100

typedef struct {
    char *s;
    size_t len, cap;
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) t->s = gm_realloc(t->s, t->cap = 2 * (t->len + n + 1));
    memcpy(t->s + t->len, s, n);
    t->s[t->len += n] = 0;
}

static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

static void put_number(text *t, double v) {
    char buf[40];
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    puts_(t, buf);
}

static void put_string(text *t, const char *s) {
    cJSON *tmp = cJSON_CreateString(s);
    char *q = cJSON_PrintUnformatted(tmp);
    puts_(t, q);
    free(q);
    cJSON_Delete(tmp);
}

static void put_inline(text *t, const cJSON *j) {
    if (cJSON_IsNumber(j)) return put_number(t, j->valuedouble);
    if (!cJSON_IsArray(j) && !cJSON_IsObject(j)) {
        char *s = cJSON_PrintUnformatted(j);
        puts_(t, s);
        free(s);
        return;
    }
    puts_(t, cJSON_IsArray(j) ? "[" : "{");
    for (const cJSON *c = j->child; c; c = c->next) {
        if (cJSON_IsObject(j)) put_string(t, c->string), puts_(t, ": ");
        put_inline(t, c);
        if (c->next) puts_(t, ", ");
    }
    puts_(t, cJSON_IsArray(j) ? "]" : "}");
}

static int all_plain(const cJSON *j) {
    for (const cJSON *c = j->child; c; c = c->next)
        if (cJSON_IsArray(c) || cJSON_IsObject(c)) return 0;
    return 1;
}

static void indent(text *t, int n) {
    for (int i = 0; i < n; i++) put(t, " ", 1);
}

static void put_packed(text *t, const cJSON *j, int ind) {
    puts_(t, "[\n");
    int col = 0;
    for (const cJSON *c = j->child; c; c = c->next) {
        text item = {0};
        put_inline(&item, c);
        if (col && col + item.len + 2 > WIDTH) puts_(t, "\n"), col = 0;
        if (!col) indent(t, ind + 2), col = ind + 2;
        else puts_(t, " "), col++;
        puts_(t, item.s);
        col += item.len;
        if (c->next) puts_(t, ","), col++;
        free(item.s);
    }
    puts_(t, "\n");
    indent(t, ind);
    puts_(t, "]");
}

static void put_value(text *t, const cJSON *j, int ind, int col) {
    text one = {0};
    put_inline(&one, j);
    int fits = col + one.len <= WIDTH || !j->child;
    if (fits) puts_(t, one.s);
    free(one.s);
    if (fits) return;
    if (cJSON_IsArray(j) && all_plain(j)) return put_packed(t, j, ind);
    puts_(t, cJSON_IsArray(j) ? "[\n" : "{\n");
    for (const cJSON *c = j->child; c; c = c->next) {
        indent(t, ind + 2);
        size_t start = t->len;
        if (cJSON_IsObject(j)) put_string(t, c->string), puts_(t, ": ");
        put_value(t, c, ind + 2, ind + 2 + (int)(t->len - start) + 1);
        puts_(t, c->next ? ",\n" : "\n");
    }
    indent(t, ind);
    puts_(t, cJSON_IsArray(j) ? "]" : "}");
}

char *json_format(const cJSON *j) {
    text t = {0};
    put_value(&t, j, 0, 0);
    puts_(&t, "\n");
    return t.s;
}
