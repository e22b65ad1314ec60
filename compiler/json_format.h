/* json_format.h — JSON laid out for reading (see json_format.c). */
#ifndef GM_JSON_FORMAT_H
#define GM_JSON_FORMAT_H

#include "runtime/common.h"

#include <cjson/cJSON.h>

char *json_format(const cJSON *j); /* malloc'd, ends in a newline */

#endif
