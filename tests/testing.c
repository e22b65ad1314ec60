/* testing.c — shared CUnit plumbing; see testing.h. */
#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The build's directory, or the environment's when the tree was moved (a
 * machine that runs test binaries built elsewhere). */
static const char *where(const char *env, const char *built) {
    const char *v = getenv(env);
    return v && *v ? v : built;
}

const char *test_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/%s", where("GM_TEST_SOURCE_DIR", GM_SOURCE_DIR), rel);
    return buf;
}

const char *test_tmpdir(const char *name) {
    static char buf[4096];
    char cmd[8300];
    snprintf(buf, sizeof buf, "%s/tmp-%s", where("GM_TEST_BINARY_DIR", GM_BINARY_DIR), name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", buf, buf);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot create %s\n", buf);
        exit(2);
    }
    return buf;
}

const char *test_real_model_path(void) {
    static char path[4200];
    const char *cache = getenv("GEMMAC_CACHE"), *home = getenv("HOME");
    if (cache && *cache) snprintf(path, sizeof path, "%s/gemma-3-270m-q4_k_m.gguf", cache);
    else snprintf(path, sizeof path, "%s/.cache/gemmac/gemma-3-270m-q4_k_m.gguf", home ? home : ".");
    return path;
}

int test_sh(const char *dir, const char *cmd) {
    size_t len = strlen(dir) + strlen(cmd) + 64;
    char *line = malloc(len);
    snprintf(line, len, "cd '%s' && %s > out.txt 2> err.txt", dir, cmd);
    int st = system(line);
    free(line);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *test_slurp(const char *dir, const char *name) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    char *s = malloc(n > 0 ? n + 1 : 1);
    rewind(f);
    size_t got = n > 0 ? fread(s, 1, n, f) : 0;
    s[got] = 0;
    fclose(f);
    return s;
}

int test_exists(const char *dir, const char *name) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

int test_run_all(void) {
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed() + CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

const cJSON *test_json_at(const cJSON *j, const char *path) {
    char key[128];
    const char *p = path;
    while (j && *p) {
        if (*p == '[') {
            int i = atoi(p + 1);
            j = cJSON_GetArrayItem(j, i);
            p = strchr(p, ']');
            if (!p) return NULL;
            p++;
        } else {
            size_t n = strcspn(p, ".[");
            if (n >= sizeof key) return NULL;
            memcpy(key, p, n);
            key[n] = 0;
            j = cJSON_GetObjectItemCaseSensitive(j, key);
            p += n;
        }
        if (*p == '.') p++;
    }
    return j;
}

double test_json_num(const cJSON *j, const char *path) {
    const cJSON *v = test_json_at(j, path);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *test_json_str(const cJSON *j, const char *path) {
    const cJSON *v = test_json_at(j, path);
    return cJSON_IsString(v) ? v->valuestring : "";
}
