/* The JSON parser (src/core/json_parse.c) against jansson on arbitrary bytes: the same verdict
 * and the same tree, and the encoder against jansson's dump (json_diff.h). */
#include <stdio.h>

#include "fuzz_common.h"
#include "json_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *what = json_diff(data, size);
  if (what != NULL)
    fprintf(stderr, "fuzz_json_diff: %s\n", what);
  FUZZ_CHECK(what == NULL);
  return 0;
}
