#ifndef PIPEMSG_CODEC_H
#define PIPEMSG_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "pipemsg/message.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Payload codecs (PROTOCOL §2, §3). I/O-free: bytes in, message out, and back.
 *
 * Decoders are strict. JSON: invalid UTF-8, duplicate keys, NaN/Infinity, trailing data, a
 * top level other than an object with exactly one member, member names that are not XML
 * names, and nesting deeper than PM_NESTING_MAX are rejected. XML: a DOCTYPE (and so any DTD
 * or entity declaration) is rejected before it is processed, nothing is loaded from the
 * network or the file system, nesting deeper than PM_NESTING_MAX and mixed content are
 * rejected, and the document is validated against schema/RPSchema.xsd, which is built into
 * the library.
 *
 * Each decoder returns 0 and a new message, or a negative code and, when why is not NULL, a
 * reason of at most PM_REASON_MAX bytes suitable for a BadRequest Message.
 *
 * Both decoders bound their cost before the parser sees a byte: a linear scan of the payload
 * counts its nodes and refuses (PM_ELIMIT) more than PM_NODES_MAX of them, and, in XML, more
 * than PM_XML_ATTRIBUTES_MAX attributes in one tag. So decoding takes time linear in the size
 * and at most 4 x the size plus 16 MiB of memory, whatever the payload holds. The encoders
 * refuse (PM_ELIMIT) a message that would be more than PM_NODES_MAX nodes in their encoding. */

/* Attributes in one XML tag, namespace declarations included. The protocol carries nothing in
 * attributes, but producers add xmlns:xsi, xsi:type and the like; libxml2's duplicate check
 * costs time quadratic in this number. */
#define PM_XML_ATTRIBUTES_MAX 16

/* Skips an optional UTF-8 BOM and ASCII white space: '{' is JSON, '<' is XML, else
 * PM_EENCODING. */
int pm_detect_encoding(const void *buf, size_t len, pm_encoding *out);

/* Detects the encoding and decodes. */
int pm_msg_decode(const void *buf, size_t len, pm_msg **out, char *why);
int pm_json_decode(const void *buf, size_t len, pm_msg **out, char *why);
int pm_xml_decode(const void *buf, size_t len, pm_msg **out, char *why);

/* Encodes m; *out is a new buffer (free with pm_free) of *len bytes, not NUL-terminated.
 * PM_EINVAL if a member name is not an XML name (both encodings) or a value cannot be
 * represented (NaN, infinite reals); PM_ELIMIT if the result would be more than PM_NODES_MAX
 * nodes, which no decoder would accept. */
int pm_msg_encode(const pm_msg *m, pm_encoding enc, uint8_t **out, size_t *len);
int pm_json_encode(const pm_msg *m, uint8_t **out, size_t *len);
int pm_xml_encode(const pm_msg *m, uint8_t **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
