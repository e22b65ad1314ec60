/* fuzz_import_gguf.c — libFuzzer harness: arbitrary bytes as the .gguf file
 * a command opens (gguf_open_memory), then import_gguf on it (architecture,
 * sizes, layer kinds and tensor shapes from the metadata), and the
 * description it writes built into IR and formatted, as `gemmac import
 * model.gguf` does. A GGUF comes from whatever converter made it, so it must
 * end in a one-line error or a description that builds, never a crash or a
 * runaway allocation (a block_count of a billion once built a description of
 * a billion layers until the process was killed). Built by scripts/fuzz.sh;
 * its seed is a two-layer Gemma 2 of hidden size 32 as `gemmac quantize
 * --to q8_0` writes it (18.8 KB). */
#include "compiler/frontend.h"
#include "compiler/import.h"
#include "compiler/json_format.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gm_err e;
    gguf_file *g = gguf_open_memory(data, size, "fuzz.gguf", &e);
    if (!g) return 0;
    cJSON *desc = import_gguf(g, "fuzz.gguf", &e);
    if (!desc && !e.msg[0]) __builtin_trap(); /* a refusal always says why */
    ir_graph *graph = desc ? frontend_build(desc, "fuzz.gguf", &e) : NULL;
    if (graph) free(json_format(desc));
    else if (desc && !e.msg[0]) __builtin_trap();
    ir_graph_free(graph);
    cJSON_Delete(desc);
    gguf_close(g);
    return 0;
}
