/* frontend.h — model description (gemmac-model/1 JSON, docs/model-format.md)
 * to IR. Errors name the file (`origin`), the JSON path, expected vs found. */
#ifndef GM_FRONTEND_H
#define GM_FRONTEND_H

#include "ir/ir.h"

#include <cjson/cJSON.h>

ir_graph *frontend_build(const cJSON *desc, const char *origin, gm_err *e);
cJSON *frontend_parse(const char *path, gm_err *e);   /* reads a JSON file */
ir_graph *frontend_load(const char *path, gm_err *e); /* reads and builds a .json file */

#endif
