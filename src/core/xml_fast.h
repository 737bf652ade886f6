#ifndef PIPEMSG_XML_FAST_H
#define PIPEMSG_XML_FAST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pipemsg/message.h"

/* The XML decoder's fast path (xml_fast.c): one pass over the bytes, without libxml2, for the
 * documents pipemsg's own encoder writes. It never rejects: it either accepts, with the tree
 * and kind the libxml2 path (pm__xml_slow_decode) would give for the same bytes, or does not
 * know, and then pm_xml_decode asks libxml2, whose verdict and reason stand.
 *
 * Returns the message's fields (an object the caller owns) and sets *kind to the root's name,
 * one of the six kinds (a static string); or returns NULL when the document is outside its
 * subset, invalid, or anything goes wrong (out of memory included). */
json_t *pm__xml_fast_decode(const uint8_t *p, size_t len, const char **kind);

/* pm_xml_decode without the fast path: libxml2's parse and the schema's validation for every
 * document. For the differential check of the fast path (tests/fuzz/xml_diff.c). */
int pm__xml_slow_decode(const void *buf, size_t len, pm_msg **out, char *why);

#endif
