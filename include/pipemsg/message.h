#ifndef PIPEMSG_MESSAGE_H
#define PIPEMSG_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The message model (PROTOCOL §3). A message is a kind plus a tree of fields. The tree is a
 * jansson object whatever encoding the message arrived in: JSON values keep their types, XML
 * scalars arrive as strings, and the typed accessors below accept both, so application code
 * never cares which encoding was used. */

typedef enum { PM_ENC_JSON = 1, PM_ENC_XML = 2 } pm_encoding;

#define PM_NESTING_MAX 64
/* Nodes in one message (PROTOCOL §3), the budget that bounds what decoding costs. JSON: every
 * value and every member name. XML: every element, attribute (namespace declarations
 * included), comment, processing instruction, CDATA section and run of text (white space
 * included); the count is conservative, a '<' inside a comment or CDATA section counts as an
 * element. A node costs up to about 640 bytes decoded (an XML element with a name of its own,
 * in libxml2's tree and in ours), so 16 384 of them stay well below 16 MiB; a message of the
 * protocol needs a few dozen (a full ConfigureBypassDomains about 520). */
#define PM_NODES_MAX 16384

/* Message kinds of §3.1. */
#define PM_KIND_REQUEST "Request"
#define PM_KIND_RESPONSE "Response"
#define PM_KIND_HANDSHAKE "Handshake"
#define PM_KIND_EVENT "Event"
#define PM_KIND_EVENT_CONFIRMATION "EventConfirmation"
#define PM_KIND_DISCONNECT "Disconnect"

/* Result names of §3.2. */
#define PM_RESULT_OK "Ok"
#define PM_RESULT_BAD_REQUEST "BadRequest"
#define PM_RESULT_TOO_MANY_REQUESTS "TooManyRequests"
#define PM_RESULT_NOT_AUTHORIZED "TransportNotAuthorized"
#define PM_RESULT_NOT_INITIALIZED "ServiceNotInitialized"
#define PM_RESULT_ERROR "Error"
#define PM_RESULT_CONNECTION_TIMEOUT "ConnectionTimeout"
#define PM_RESULT_TIMEOUT "Timeout"
#define PM_RESULT_TRANSPORT_ERROR "TransportError"

typedef struct pm_msg pm_msg;

/* A message of the given kind (an XML name) with no fields. */
int pm_msg_new(const char *kind, pm_msg **out);
void pm_msg_free(pm_msg *m);

const char *pm_msg_kind(const pm_msg *m);
/* The fields object, lent: valid while m lives; callers may modify it. */
json_t *pm_msg_fields(const pm_msg *m);
/* The encoding the message was decoded from; 0 for a message built in memory. */
pm_encoding pm_msg_encoding(const pm_msg *m);

/* Process-wide, for a program that takes large messages (pipemsgd turns it on at start): with
 * on = 1, blocks of 4 MiB and more that pipemsg allocates for a frame, and that jansson
 * allocates (a decoded long string), ask for transparent huge pages before anything is written
 * to them, so that receiving a 100 MiB request does not cost 51 200 page faults; 0 turns it off
 * (the default). Linux only; elsewhere, and where the kernel declines, nothing changes.
 * The request stays with the addresses, not the block: turn it on only where such blocks get
 * mappings of their own, as with glibc when M_MMAP_THRESHOLD is fixed at 4 MiB or less
 * (pipemsgd fixes it at 1 MiB). Otherwise glibc raises its threshold after a big block is
 * freed and serves the next from its heap, which would keep the request for later, small
 * allocations. Call it before other threads use pipemsg or jansson. 0, or PM_EBUSY: the
 * application gave jansson an allocator of its own (json_set_alloc_funcs), which stays; then
 * on = 1 changes nothing and on = 0 still turns the frames' request off. */
int pm_huge_pages(int on);

/* Typed reads of a member of an object (a message's fields, Params, Data...). Each accepts the
 * JSON-typed value and its textual form, as XML delivers it. PM_ENOENT if the member is
 * missing, PM_ETYPE if it cannot be read as that type. *out is written only on success.
 * Strings are lent from the tree. An empty element (`<Name/>`, i.e. {}) reads as "". */
int pm_tree_get_string(const json_t *obj, const char *key, const char **out);
int pm_tree_get_int(const json_t *obj, const char *key, int64_t *out);
int pm_tree_get_bool(const json_t *obj, const char *key, bool *out);

/* The same on a message's fields. */
int pm_msg_get_string(const pm_msg *m, const char *key, const char **out);
int pm_msg_get_int(const pm_msg *m, const char *key, int64_t *out);
int pm_msg_get_bool(const pm_msg *m, const char *key, bool *out);

/* Writes of a field. pm_msg_set_tree takes ownership of value (also on failure). */
int pm_msg_set_string(pm_msg *m, const char *key, const char *value);
int pm_msg_set_int(pm_msg *m, const char *key, int64_t value);
int pm_msg_set_bool(pm_msg *m, const char *key, bool value);
int pm_msg_set_tree(pm_msg *m, const char *key, json_t *value);

/* Room for an RFC 3339 UTC time with milliseconds, NUL included. */
#define PM_TIME_MAX 32
/* The current time as 2026-11-25T16:00:00.123Z. */
void pm_time_now(char buf[PM_TIME_MAX]);

/* True if name is in the portable XML name subset [A-Za-z_][A-Za-z0-9_.-]*. */
bool pm_name_valid(const char *name);

#ifdef __cplusplus
}
#endif
#endif
