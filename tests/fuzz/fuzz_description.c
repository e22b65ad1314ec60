/* fuzz_description.c — libFuzzer harness: arbitrary bytes as a model
 * description (models/NAME.json, docs/model-format.md), taken the way
 * `gemmac info --plan` takes one: parsed, built into IR by the frontend
 * (frontend_build, which ends in ir_verify), its parameters counted, run
 * through the -O2 pipeline (each pass verified) and its arena laid out. A
 * description is user input: whatever it holds must end in a one-line error,
 * never a crash or a runaway allocation. Built by scripts/fuzz.sh; its seeds
 * are the published models' descriptions and the oracle cases' configs. */
#include "compiler/frontend.h"
#include "compiler/pipeline.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *desc = cJSON_ParseWithLength((const char *)data, size);
    if (!desc) return 0;
    gm_err e;
    ir_graph *g = frontend_build(desc, "fuzz.json", &e);
    if (g) {
        volatile int64_t params = ir_param_count(g);
        (void)params;
        gm_pipeline_opts po = {.level = GM_DEFAULT_LEVEL};
        if (!pipeline_run(g, &po, NULL, 0, &e)) {
            int64_t *offset = gm_malloc((size_t)g->n_values * sizeof *offset);
            int *first = gm_malloc((size_t)g->n_values * sizeof *first);
            int *last = gm_malloc((size_t)g->n_values * sizeof *last);
            (void)ir_arena_layout(g, offset);
            ir_live_ranges(g, first, last);
            free(offset), free(first), free(last);
        }
        ir_graph_free(g);
    } else if (!e.msg[0]) {
        __builtin_trap(); /* a refusal always says why */
    }
    cJSON_Delete(desc);
    return 0;
}
