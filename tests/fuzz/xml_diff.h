#ifndef PM_XML_DIFF_H
#define PM_XML_DIFF_H

/* The differential check of the XML decoder's fast path (src/core/xml_fast.c) against its
 * libxml2 path, shared by the fuzz target fuzz_xml_diff and the unit test test_xml_fast. */
#include <stddef.h>
#include <stdint.h>

/* Runs p..len through pm__xml_fast_decode, pm__xml_slow_decode and pm_xml_decode. The fast
 * path may only accept what the libxml2 path accepts, with the same kind and the same tree,
 * member order included; pm_xml_decode must give the libxml2 path's verdict, code and reason.
 * Returns NULL when all agree, else what differs (a static string). */
const char *xml_diff(const uint8_t *p, size_t len);

#endif
