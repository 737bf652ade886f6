/* The XML decoder's fast path (src/core/xml_fast.c) against its libxml2 path on arbitrary
 * bytes: it accepts only what libxml2 and the schema accept, with the same tree, and
 * pm_xml_decode gives libxml2's verdict (xml_diff.h). */
#include <stdio.h>

#include "fuzz_common.h"
#include "xml_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *what = xml_diff(data, size);
  if (what != NULL)
    fprintf(stderr, "fuzz_xml_diff: %s\n", what);
  FUZZ_CHECK(what == NULL);
  return 0;
}
