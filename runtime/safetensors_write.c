/* safetensors_write.c — writes tensors as a safetensors file: the 8-byte
 * header length, the header JSON (name → dtype, shape, data offsets),
 * padded with spaces to a multiple of 8, then the data in the order given.
 * The file appears whole or not at all (a temporary beside it, renamed). */
#include "safetensors.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void put_json_string(gm_buf *b, const char *s) {
    gm_buf_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') gm_buf_puts(b, "\\");
        if ((unsigned char)*s < 0x20) gm_buf_printf(b, "\\u%04x", (unsigned)(unsigned char)*s);
        else gm_buf_put(b, s, 1);
    }
    gm_buf_puts(b, "\"");
}

void st_header(gm_buf *b, const gm_tensor *ts, int n) {
    gm_buf_puts(b, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        char dtype[16];
        snprintf(dtype, sizeof dtype, "%s", gm_dtype_name(ts[i].dtype));
        for (char *c = dtype; *c; c++) *c = (char)toupper((unsigned char)*c);
        gm_buf_puts(b, ",");
        put_json_string(b, ts[i].name);
        gm_buf_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", dtype);
        for (int d = 0; d < ts[i].ndim; d++) gm_buf_printf(b, d ? ",%lld" : "%lld", (long long)ts[i].shape[d]);
        gm_buf_printf(b, "],\"data_offsets\":[%zu,%zu]}", offset, offset + ts[i].nbytes);
        offset += ts[i].nbytes;
    }
    gm_buf_puts(b, "}");
    while (b->len % 8) gm_buf_puts(b, " ");
}

int st_write_length(FILE *f, const gm_buf *header) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)header->len >> (8 * i));
    return fwrite(len8, 1, 8, f) == 8 && fwrite(header->s, 1, header->len, f) == header->len ? 0 : -1;
}

typedef struct {
    const gm_buf *header;
    const gm_tensor *ts;
    int n;
} file_parts;

static int write_all(FILE *f, void *arg) {
    const file_parts *p = arg;
    int ok = st_write_length(f, p->header) == 0;
    for (int i = 0; ok && i < p->n; i++) ok = fwrite(p->ts[i].data, 1, p->ts[i].nbytes, f) == p->ts[i].nbytes;
    return ok ? 0 : -1;
}

int st_write(const char *path, const gm_tensor *ts, int n, gm_err *e) {
    gm_buf h = {0};
    st_header(&h, ts, n);
    int rc = gm_write_atomic_with(path, write_all, &(file_parts){&h, ts, n}, e);
    free(h.s);
    return rc;
}
