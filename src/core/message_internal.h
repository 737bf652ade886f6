#ifndef PIPEMSG_MESSAGE_INTERNAL_H
#define PIPEMSG_MESSAGE_INTERNAL_H

/* Shared by message.c and the codecs; not installed. */

#include "pipemsg/message.h"

/* 1 when the len bytes at name are a name (pm_name_valid); a NUL among them is not. */
int pm__name_valid_n(const char *name, size_t len);

/* A message of kind (kind_len bytes, need not be NUL-terminated) with the given fields and
 * encoding. Takes ownership of fields, also on failure. kind must be a valid name. */
int pm__msg_wrap(const char *kind, size_t kind_len, json_t *fields, pm_encoding enc, pm_msg **out);

/* Checks a fields object against the message model shared by both encodings: every member
 * name is a valid name without NUL bytes, no string holds a NUL byte, and the nesting depth
 * is at most PM_NESTING_MAX. Depth is the XML element depth the tree encodes to: the kind
 * (root element) is 1, its fields 2, and each object member or array element one more than
 * the value that holds it. In JSON terms: count the containers around each member or array
 * element, the outer {"Kind": ...} wrapper included, so {"K":{"A":1}} has depth 2 like
 * <K><A>1</A></K>. An empty {} or [] adds nothing, as it encodes to an empty element.
 * Returns 0, PM_EINVAL or PM_EDEPTH, with a reason in why when it is not NULL. */
int pm__tree_check(const json_t *fields, char *why);
/* The same check of one value v standing at depth (a field of a message is at depth 2). */
int pm__tree_check_at(const json_t *v, int depth, char *why);

/* The nodes a message with these (checked) fields encodes to in enc, counted as the decoders
 * count them against PM_NODES_MAX: in JSON the {"Kind": ...} wrapper, its member name, and
 * every value and member name below; in XML every element (the root included) and every
 * non-empty text. The encoders refuse (PM_ELIMIT) what no decoder would accept. Counting stops
 * a little past PM_NODES_MAX. */
size_t pm__tree_nodes(const json_t *fields, pm_encoding enc);

/* The bytes pm_xml_encode writes for the value v (checked as above) as the element name,
 * counted without writing them, and in the same walk the nodes it writes (as pm__tree_nodes
 * counts them for XML, but to the end): *len and *nodes, and 0, or PM_EINVAL when a string of
 * v cannot be XML text. */
int pm__xml_element_size(const char *name, const json_t *v, size_t *len, size_t *nodes);

#endif
