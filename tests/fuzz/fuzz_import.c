/* fuzz_import.c — libFuzzer harness: arbitrary bytes as a Hugging Face
 * config.json, taken the way `gemmac import` takes one: import_hf on the
 * file (family, defaults, sizes, layer kinds, rope scaling), then the
 * description it writes built into IR and formatted. The file comes from
 * whoever published the checkpoint, so it must end in a one-line error or a
 * description that builds, never a crash or a runaway allocation. import_hf
 * reads a path, so each input is written to config.json in a directory of
 * its own (no safetensors beside it). Built by scripts/fuzz.sh; its seeds are
 * tests/hf-configs and the oracle cases' configs. */
#define _XOPEN_SOURCE 700 /* mkdtemp */

#include "compiler/frontend.h"
#include "compiler/import.h"
#include "compiler/json_format.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static char config[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!config[0]) {
        char dir[] = "/tmp/fuzz_import.XXXXXX";
        if (!mkdtemp(dir)) __builtin_trap();
        snprintf(config, sizeof config, "%s/config.json", dir);
    }
    FILE *f = fopen(config, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) __builtin_trap();
    gm_err e;
    cJSON *desc = import_hf(config, &e);
    if (!desc) {
        if (!e.msg[0]) __builtin_trap(); /* a refusal always says why */
        return 0;
    }
    ir_graph *g = frontend_build(desc, config, &e);
    if (g) free(json_format(desc));
    else if (!e.msg[0]) __builtin_trap();
    ir_graph_free(g);
    cJSON_Delete(desc);
    return 0;
}
