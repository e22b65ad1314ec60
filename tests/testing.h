/* testing.h — what every CUnit suite of gemmac shares: where the test data
 * lives, and a main loop whose exit status is non-zero when any test failed
 * (CU_basic_run_tests alone returns success even then). */
#ifndef GM_TESTING_H
#define GM_TESTING_H

#include <CUnit/Basic.h>
#include <cjson/cJSON.h>

/* Absolute path of a file in the source tree's tests/ folder, e.g.
 * test_path("golden/tiny-gemma2"). Returns a static buffer. The source and
 * build trees are where the build was; GM_TEST_SOURCE_DIR and
 * GM_TEST_BINARY_DIR move them (test binaries run on another machine). */
const char *test_path(const char *rel);

/* A fresh empty directory under the build tree for one test's files. */
const char *test_tmpdir(const char *name);

/* The value at a path like "config.layers[3].window" (NULL if absent), and
 * its number (NAN otherwise) or string ("" otherwise). */
const cJSON *test_json_at(const cJSON *j, const char *path);
double test_json_num(const cJSON *j, const char *path);
const char *test_json_str(const cJSON *j, const char *path);

/* Where scripts/fetch-model.sh puts the real Gemma 3 270M:
 * ${GEMMAC_CACHE:-$HOME/.cache/gemmac}/gemma-3-270m-q4_k_m.gguf (a static buffer). */
const char *test_real_model_path(void);

/* Runs cmd with sh in dir, stdout to dir/out.txt and stderr to dir/err.txt;
 * returns its exit status. test_slurp: dir/name read whole, NUL-terminated
 * (malloc'd), or NULL; test_exists: whether it is there. */
int test_sh(const char *dir, const char *cmd);
char *test_slurp(const char *dir, const char *name);
int test_exists(const char *dir, const char *name);

/* What a program that links this build's libraries needs on its cc line: the
 * sanitizers of a scripts/sanitize.sh build (CMake's GM_SANITIZE), else nothing. */
#ifdef GM_SANITIZE_LINK
#define TEST_LINK_FLAGS " " GM_SANITIZE_LINK
#else
#define TEST_LINK_FLAGS ""
#endif

/* Runs every registered suite verbosely; returns 0 only when all passed. */
int test_run_all(void);

#endif
