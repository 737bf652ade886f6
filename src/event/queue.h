#ifndef PIPEMSG_QUEUE_H
#define PIPEMSG_QUEUE_H

/* The event server's delivery queue (PROTOCOL §5.3-§5.4). I/O-free and not thread-safe: the
 * event server holds its lock around every call. */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define PM__EVENTS_LOST_TYPE "EventsLost"

/* One allocation: the struct, then the type and the Data's compact JSON text, which is what
 * an Event frame carries (a JSON session gets its frame by copying it). An EventsLost marker
 * keeps its Data as a tree instead, as its fields change while it absorbs drops. */
typedef struct pm__event {
  int64_t id;
  struct pm__event *next;
  const char *type; /* in the same allocation */
  const char *text; /* the Data as compact JSON, NUL-terminated; NULL without Data or in a
                       marker */
  json_t *data;     /* an EventsLost event's Data (markers only); owned */
  size_t text_len;
  size_t bytes;     /* what the event costs against max_bytes */
  uint8_t transient;
  uint8_t unchecked; /* read back from a store: not known to be encodable (publish checks the
                        rest) */
  char time[32]; /* RFC 3339 UTC with milliseconds, set at publication */
} pm__event;

/* Told about every event that enters (present 1) or leaves (present 0) the queue, EventsLost
 * markers included (a merge is a leave and an enter, as the marker's id changes), so that a
 * store can mirror the queue. pm__queue_clear and pm__queue_restore do not call it. */
typedef void (*pm__queue_listener)(void *ctx, const pm__event *ev, int present);

typedef struct pm__queue {
  pm__event *head, *tail;
  size_t count;      /* events in the queue, the EventsLost marker excluded */
  size_t bytes;      /* their bytes */
  size_t max_events; /* limits on count and bytes */
  size_t max_bytes;
  int head_in_flight; /* the head was sent and awaits its confirmation */
  pm__queue_listener listener; /* may be NULL */
  void *listener_ctx;
} pm__queue;

/* A new event (type copied, data taken even on failure: an EventsLost event keeps the tree,
 * any other keeps its compact JSON text); bytes estimated from type and data. */
pm__event *pm__event_new(int64_t id, const char *type, json_t *data, int transient,
                         const char *time);
/* The same, checking data as pm__tree_check_at does at a field's depth (in the walk that
 * measures its text): its text is written by the JSON codec's encoder, faster than jansson's
 * dump and the same bytes. *json_nodes (may be NULL): data's nodes, as pm__json_value_text
 * gives them (0 without a text). 0, or the check's error (PM_EINVAL, PM_EDEPTH) or the
 * encoder's (PM_EINVAL for a string that is not UTF-8, PM_ENOMEM); data is taken in every
 * case. */
int pm__event_new_checked(int64_t id, const char *type, json_t *data, int transient,
                          const char *time, size_t *json_nodes, pm__event **out);
/* A copy of ev (not of its place in a queue), or NULL when out of memory. */
pm__event *pm__event_dup(const pm__event *ev);
/* ev's Data as a new tree (*out NULL when it has none): 0 or PM_ENOMEM. */
int pm__event_data(const pm__event *ev, json_t **out);
void pm__event_free(pm__event *ev);

void pm__queue_init(pm__queue *q, size_t max_events, size_t max_bytes);
/* Frees every event. */
void pm__queue_clear(pm__queue *q);

/* Appends ev (taken). A transient event replaces a waiting (not in-flight) one of the same type
 * in place (*coalesced = 1). A durable event that takes the queue over a limit drops the oldest
 * durable events that are not in flight until it fits; they are folded into one EventsLost
 * marker (Data {Count, FirstId, LastId}, Id = LastId, durable, never dropped itself) standing
 * where they stood, so the gap is explicit and ids stay increasing. *lost gets how many durable
 * events this push dropped. If nothing can be dropped the new event itself is lost (counted). */
void pm__queue_push(pm__queue *q, pm__event *ev, size_t *lost, int *coalesced);

/* Appends an event read back from a store (taken) as it was: a marker stays a marker. */
void pm__queue_restore(pm__queue *q, pm__event *ev, int marker);
/* True for the EventsLost markers the queue makes. */
int pm__event_is_marker(const pm__event *ev);

/* The next event to deliver, or NULL. */
pm__event *pm__queue_head(const pm__queue *q);
/* Removes and frees the head (after its confirmation or a transient's failed delivery). */
void pm__queue_pop(pm__queue *q);
/* Resume: removes queued events with id <= last_id that are not in flight; returns how many. */
size_t pm__queue_discard_upto(pm__queue *q, int64_t last_id);
/* Removes every transient event that is not in flight; returns how many. */
size_t pm__queue_drop_transient(pm__queue *q);

#endif
