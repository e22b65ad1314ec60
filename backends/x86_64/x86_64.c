/* x86_64.c — vector width for x86-64 CPUs, read from LLVM's host feature
 * string ("+avx512f,-amx-tile,..."), so the same test that LLVM itself uses
 * decides, and a CPU LLVM does not know by name is still handled. */
#include "x86_64.h"

/* Whether "+name" is one of the comma-separated entries of features. */
static int has_feature(const char *features, const char *name) {
    size_t n = strlen(name);
    for (const char *p = features; (p = strstr(p, name)); p += n)
        if (p > features && p[-1] == '+' && (p - 1 == features || p[-2] == ',') && (p[n] == ',' || !p[n]))
            return 1;
    return 0;
}

void x86_64_tune(lv_target *t) {
    if (has_feature(t->features, "avx512f")) {
        t->width = 16;
        t->regs = 32;
        t->prefer_width = "512";
    } else if (has_feature(t->features, "avx")) {
        t->width = 8;
        t->prefer_width = "256";
    } else {
        t->width = 4;
    }
}
