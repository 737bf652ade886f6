/* The event server's delivery queue (PROTOCOL §5.3-§5.4): a singly linked FIFO with limits on
 * count and bytes, transient coalescing and an explicit EventsLost marker on overflow. No I/O,
 * not thread-safe.
 *
 * Invariants, kept by every function below:
 *  - ids strictly increase from head to tail;
 *  - count and bytes sum every event except EventsLost markers;
 *  - only the head can be in flight, and nothing but pm__queue_pop removes an in-flight head;
 *  - after pm__queue_push the queue is within its limits (as long as the limits are only set
 *    by pm__queue_init).
 *
 * A marker is recognised by bytes == 0: it costs nothing against max_bytes and is not counted,
 * and every other event costs at least EVENT_OVERHEAD_BYTES. That keeps the marker unforgeable:
 * an event a caller publishes under the type "EventsLost" is an ordinary durable event here (the
 * server should refuse that reserved type at publication). */

#include <string.h>

#include "event/queue.h"
#include "internal.h"
#include "pipemsg/error.h"

/* What an event costs besides its type and data: the struct, the Id and Time fields and the
 * message envelope it travels in. A guess, deliberately generous; bytes is an estimate. */
#define EVENT_OVERHEAD_BYTES 64u

static int is_marker(const pm__event *ev) { return ev->bytes == 0; }

int pm__event_is_marker(const pm__event *ev) { return is_marker(ev); }

static void notify(const pm__queue *q, const pm__event *ev, int present) {
  if (q->listener != NULL)
    q->listener(q->listener_ctx, ev, present);
}

static int in_flight(const pm__queue *q, const pm__event *ev) {
  return q->head_in_flight && ev == q->head;
}

/* Whether count events of `bytes` bytes respect the limits (0: unlimited). */
static int within(const pm__queue *q, size_t count, size_t bytes) {
  if (q->max_events != 0 && count > q->max_events)
    return 0;
  if (q->max_bytes != 0 && bytes > q->max_bytes)
    return 0;
  return 1;
}

/* The compact JSON of a tree, as the JSON codec writes it inside a message. */
#define DATA_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)
/* Data up to this size is dumped on the stack, then copied into the event's allocation. */
#define DATA_STACK_BYTES 512

/* A dump target: the stack buffer first, the heap past it. */
typedef struct dump_buf {
  char *p;
  size_t len, cap;
  int heap;
} dump_buf;

static int dump_put(const char *data, size_t size, void *arg) {
  dump_buf *d = arg;
  if (size > d->cap - d->len) {
    size_t cap = d->cap * 2;
    char *grown;
    while (cap - d->len < size)
      cap *= 2;
    grown = d->heap ? pm__realloc(d->p, cap) : pm__malloc(cap);
    if (grown == NULL)
      return -1;
    if (!d->heap)
      memcpy(grown, d->p, d->len);
    d->p = grown;
    d->cap = cap;
    d->heap = 1;
  }
  memcpy(d->p + d->len, data, size);
  d->len += size;
  return 0;
}

/* Fills the event's fields besides its Data, the type copied just past the struct. */
static void event_fill(pm__event *ev, int64_t id, const char *type, size_t type_len,
                       int transient, const char *time) {
  char *tail = (char *)(ev + 1);
  memset(ev, 0, sizeof(*ev));
  memcpy(tail, type, type_len + 1);
  ev->type = tail;
  ev->id = id;
  ev->transient = transient ? 1 : 0;
  if (time != NULL) {
    size_t time_len = strnlen(time, sizeof(ev->time) - 1);
    memcpy(ev->time, time, time_len);
    ev->time[time_len] = '\0';
  }
}

pm__event *pm__event_new(int64_t id, const char *type, json_t *data, int transient,
                         const char *time) {
  char stack[DATA_STACK_BYTES];
  dump_buf text = {stack, 0, sizeof(stack), 0};
  size_t type_len = strlen(type);
  int keep_tree = data != NULL && strcmp(type, PM__EVENTS_LOST_TYPE) == 0;
  pm__event *ev = NULL;
  char *tail;
  if (data != NULL && json_dump_callback(data, dump_put, &text, DATA_FLAGS) < 0)
    goto done;
  ev = pm__malloc(sizeof(*ev) + type_len + 1 + (data != NULL && !keep_tree ? text.len + 1 : 0));
  if (ev == NULL)
    goto done;
  event_fill(ev, id, type, type_len, transient, time);
  if (keep_tree) {
    ev->data = data;
    data = NULL;
  } else if (data != NULL) {
    tail = (char *)(ev + 1) + type_len + 1;
    memcpy(tail, text.p, text.len);
    tail[text.len] = '\0';
    ev->text = tail;
    ev->text_len = text.len;
  }
  /* strlen(type) + the data's compact JSON + EVENT_OVERHEAD_BYTES */
  ev->bytes = type_len + EVENT_OVERHEAD_BYTES + text.len;
done:
  if (text.heap)
    pm__free(text.p);
  json_decref(data);
  return ev;
}

int pm__event_new_checked(int64_t id, const char *type, json_t *data, int transient,
                          const char *time, size_t *json_nodes, pm__event **out) {
  size_t type_len = strlen(type), room = sizeof(pm__event) + type_len + 1, len = 0;
  uint8_t *buf = NULL, *trimmed;
  pm__event *ev;
  int rc;
  if (json_nodes != NULL)
    *json_nodes = 0;
  if (data == NULL || strcmp(type, PM__EVENTS_LOST_TYPE) == 0) {
    *out = pm__event_new(id, type, data, transient, time);
    return *out != NULL ? 0 : PM_ENOMEM;
  }
  /* The struct, the type and the text in the encoder's own buffer: one allocation, no copy. */
  rc = pm__json_value_text(data, 2, room, &buf, &len, json_nodes);
  json_decref(data);
  if (rc < 0)
    return rc;
  /* The encoder's first guess counts every number as 24 digits: what is left over goes back
   * (a shrink in place), as a queue may hold many events. */
  trimmed = pm__realloc(buf, room + len + 1);
  if (trimmed != NULL)
    buf = trimmed;
  ev = (pm__event *)(void *)buf;
  event_fill(ev, id, type, type_len, transient, time);
  ev->text = (const char *)buf + room;
  ev->text_len = len;
  ev->bytes = type_len + EVENT_OVERHEAD_BYTES + len;
  *out = ev;
  return 0;
}

pm__event *pm__event_dup(const pm__event *ev) {
  size_t type_len = strlen(ev->type);
  size_t size = sizeof(*ev) + type_len + 1 + (ev->text != NULL ? ev->text_len + 1 : 0);
  pm__event *copy = pm__malloc(size);
  char *tail;
  if (copy == NULL)
    return NULL;
  memcpy(copy, ev, size);
  tail = (char *)(copy + 1);
  copy->type = tail;
  if (ev->text != NULL)
    copy->text = tail + type_len + 1;
  copy->next = NULL;
  if (ev->data != NULL)
    copy->data = json_deep_copy(ev->data);
  if (ev->data != NULL && copy->data == NULL) {
    pm__free(copy);
    return NULL;
  }
  return copy;
}

int pm__event_data(const pm__event *ev, json_t **out) {
  if (ev->data != NULL)
    *out = json_incref(ev->data);
  else if (ev->text != NULL)
    *out = json_loadb(ev->text, ev->text_len, JSON_DECODE_ANY, NULL);
  else
    *out = NULL;
  return (ev->data != NULL || ev->text != NULL) && *out == NULL ? PM_ENOMEM : 0;
}

void pm__event_free(pm__event *ev) {
  if (ev == NULL)
    return;
  json_decref(ev->data);
  pm__free(ev);
}

/* A fresh marker with zero fields, or NULL when out of memory. */
static pm__event *marker_new(void) {
  pm__event *m;
  json_t *data = json_pack("{s:I,s:I,s:I}", "Count", (json_int_t)0, "FirstId", (json_int_t)0,
                           "LastId", (json_int_t)0);
  if (data == NULL)
    return NULL;
  m = pm__event_new(0, PM__EVENTS_LOST_TYPE, data, 0, NULL);
  if (m != NULL)
    m->bytes = 0; /* the marker's sign, see the top of the file */
  return m;
}

static json_t *marker_field(const pm__event *m, const char *key) {
  json_t *v = json_object_get(m->data, key);
  return json_is_integer(v) ? v : NULL;
}

/* A marker can absorb more drops when it is not in flight and has its three fields. */
static int marker_mergeable(const pm__queue *q, const pm__event *m) {
  return !in_flight(q, m) && marker_field(m, "Count") != NULL &&
         marker_field(m, "FirstId") != NULL && marker_field(m, "LastId") != NULL;
}

/* Records the dropped event e in marker m. json_integer_set does not allocate, so merging
 * cannot fail. */
static void marker_add(const pm__queue *q, pm__event *m, const pm__event *e) {
  json_t *count = marker_field(m, "Count");
  if (json_integer_value(count) == 0)
    json_integer_set(marker_field(m, "FirstId"), e->id);
  else
    notify(q, m, 0);
  json_integer_set(count, json_integer_value(count) + 1);
  json_integer_set(marker_field(m, "LastId"), e->id);
  m->id = e->id;
  memcpy(m->time, e->time, sizeof(m->time));
  notify(q, m, 1);
}

void pm__queue_init(pm__queue *q, size_t max_events, size_t max_bytes) {
  memset(q, 0, sizeof(*q));
  q->max_events = max_events;
  q->max_bytes = max_bytes;
}

void pm__queue_clear(pm__queue *q) {
  pm__event *ev = q->head;
  while (ev != NULL) {
    pm__event *next = ev->next;
    pm__event_free(ev);
    ev = next;
  }
  q->head = q->tail = NULL;
  q->count = q->bytes = 0;
  q->head_in_flight = 0;
}

static void append(pm__queue *q, pm__event *ev) {
  ev->next = NULL;
  if (q->head == NULL)
    q->head_in_flight = 0; /* an empty queue has nothing in flight */
  if (q->tail != NULL)
    q->tail->next = ev;
  else
    q->head = ev;
  q->tail = ev;
  if (!is_marker(ev)) {
    q->count++;
    q->bytes += ev->bytes;
  }
  notify(q, ev, 1);
}

/* Unlinks *link (prev is the node whose next field link is, NULL for the head) and frees it. */
static void remove_at(pm__queue *q, pm__event **link, pm__event *prev) {
  pm__event *ev = *link;
  *link = ev->next;
  if (q->tail == ev)
    q->tail = prev;
  if (!is_marker(ev)) {
    q->count--;
    q->bytes -= ev->bytes;
  }
  notify(q, ev, 0);
  pm__event_free(ev);
}

/* Drops the durable event e = *link into a marker standing where e stood, which keeps ids
 * increasing because the marker takes e's id (its LastId). *mlink, when not NULL, points at a
 * mergeable marker with nothing but transient events between it and e; that marker moves to
 * e's place (past those transients, whose ids are smaller than e's). Otherwise a new marker is
 * made. Returns the link now pointing at the marker, or NULL when a new marker was needed and
 * could not be allocated (nothing changed then). */
static pm__event **drop_into_marker(pm__queue *q, pm__event **link, pm__event **mlink) {
  pm__event *e = *link, *m;
  if (mlink != NULL) {
    m = *mlink;
    if (m->next != e) { /* transients stand between: lift m out and put it in e's place */
      *mlink = m->next;
      m->next = e;
      *link = m;
    }
    /* now m->next == e */
    marker_add(q, m, e);
    remove_at(q, &m->next, m);
    return (*mlink == m) ? mlink : link;
  }
  m = marker_new();
  if (m == NULL)
    return NULL;
  marker_add(q, m, e);
  m->next = e;
  *link = m;
  remove_at(q, &m->next, m);
  return link;
}

/* The durable push after ev was appended and took the queue over a limit. */
static void overflow(pm__queue *q, pm__event *ev, size_t *lost) {
  size_t fixed_count = 0, fixed_bytes = 0;
  pm__event **link, **mlink = NULL, *prev = NULL, *p;
  int lose_new;

  /* What cannot be dropped: the in-flight head, transient events, and ev itself. If that
   * alone is over a limit, dropping others would not help: ev alone is lost. */
  for (p = q->head; p != NULL; p = p->next) {
    if (!is_marker(p) && (p->transient || in_flight(q, p) || p == ev)) {
      fixed_count++;
      fixed_bytes += p->bytes;
    }
  }
  lose_new = !within(q, fixed_count, fixed_bytes);

  /* One pass from the head: drop the oldest droppable durable events until the queue fits
   * (or, when losing ev, walk to the tail and drop ev). mlink tracks the marker the next drop
   * can merge into: the last marker seen with only transients since. */
  link = &q->head;
  while ((p = *link) != NULL) {
    pm__event **at;
    if (in_flight(q, p)) {
      mlink = NULL;
    } else if (is_marker(p)) {
      mlink = marker_mergeable(q, p) ? link : NULL;
    } else if (p->transient) {
      /* neither dropped nor in the way of a merge */
    } else if (lose_new ? p == ev : !within(q, q->count, q->bytes)) {
      at = drop_into_marker(q, link, mlink);
      (*lost)++;
      if (at == NULL) {
        if (p == ev) { /* out of memory for the marker: ev is lost without one */
          remove_at(q, link, prev);
          return;
        }
        (*lost)--; /* out of memory: stop dropping, lose ev instead */
        lose_new = 1;
        mlink = NULL;
        prev = p;
        link = &p->next;
        continue;
      }
      if (p == ev)
        return;
      mlink = at;
      prev = *at;
      link = &(*at)->next;
      continue;
    } else if (!lose_new) {
      return; /* fits now (p may be ev) */
    } else {
      mlink = NULL; /* a surviving durable event: an earlier marker cannot move past it */
    }
    prev = p;
    link = &p->next;
  }
}

/* A transient push: replaces the waiting event of the same type. The new event has a newer id,
 * so it cannot take the old one's place without breaking id order: the old one is removed and
 * the new one appended at the tail. A transient event never makes durable ones drop: if it does
 * not fit, it is dropped itself and the queue is left as it was. */
static void push_transient(pm__queue *q, pm__event *ev, int *coalesced) {
  pm__event **link = &q->head, **old_link = NULL, *prev = NULL, *old_prev = NULL;
  size_t count = q->count, bytes = q->bytes;
  for (; *link != NULL; prev = *link, link = &(*link)->next) {
    pm__event *p = *link;
    if (p->transient && !is_marker(p) && !in_flight(q, p) && strcmp(p->type, ev->type) == 0) {
      old_link = link;
      old_prev = prev;
      count--;
      bytes -= p->bytes;
      break;
    }
  }
  if (!within(q, count + 1, bytes + ev->bytes) || bytes + ev->bytes < bytes) {
    pm__event_free(ev);
    return;
  }
  if (old_link != NULL) {
    remove_at(q, old_link, old_prev);
    *coalesced = 1;
  }
  append(q, ev);
}

void pm__queue_push(pm__queue *q, pm__event *ev, size_t *lost, int *coalesced) {
  size_t lost_here = 0;
  int coalesced_here = 0;
  if (ev != NULL) {
    ev->next = NULL;
    if (ev->bytes == 0) /* never let a caller's event pass for a marker */
      ev->bytes = 1;
    if (ev->transient) {
      push_transient(q, ev, &coalesced_here);
    } else {
      append(q, ev);
      if (!within(q, q->count, q->bytes))
        overflow(q, ev, &lost_here);
    }
  }
  if (lost != NULL)
    *lost = lost_here;
  if (coalesced != NULL)
    *coalesced = coalesced_here;
}

void pm__queue_restore(pm__queue *q, pm__event *ev, int marker) {
  pm__queue_listener listener = q->listener;
  if (marker)
    ev->bytes = 0;
  else if (ev->bytes == 0)
    ev->bytes = 1;
  q->listener = NULL;
  append(q, ev);
  q->listener = listener;
}

pm__event *pm__queue_head(const pm__queue *q) { return q->head; }

void pm__queue_pop(pm__queue *q) {
  if (q->head != NULL)
    remove_at(q, &q->head, NULL);
  q->head_in_flight = 0;
}

/* A marker whose range runs across the cursor: the client has had (or was told of) every id up
 * to last_id, so the marker starts after it. Waiting transient events queued before it (from
 * start on) were not dropped: their ids are not in it. The drops it still stands for are at
 * most the ids left in its range (ids are distinct): exact when the dropped ids were
 * consecutive but for those, and never fewer than were lost. */
static void marker_trim(const pm__queue *q, const pm__event *start, pm__event *m,
                        int64_t last_id) {
  json_t *first = marker_field(m, "FirstId"), *count = marker_field(m, "Count");
  int64_t from = last_id + 1, kept = 0;
  if (json_integer_value(first) > last_id)
    return;
  for (const pm__event *p = start; p != m; p = p->next)
    if (p->id == from)
      from++;
    else
      kept++;
  notify(q, m, 0);
  json_integer_set(first, from);
  if (json_integer_value(count) > m->id - from + 1 - kept)
    json_integer_set(count, m->id - from + 1 - kept);
  notify(q, m, 1);
}

/* Markers count as events here: one whose LastId the client has confirmed has nothing left to
 * report. Ids increase, so the discarded events are a run at the front (after an in-flight
 * head). */
size_t pm__queue_discard_upto(pm__queue *q, int64_t last_id) {
  pm__event **link = &q->head, *prev = NULL;
  size_t n = 0;
  if (q->head != NULL && q->head_in_flight) {
    prev = q->head;
    link = &q->head->next;
  }
  while (*link != NULL && (*link)->id <= last_id) {
    remove_at(q, link, prev);
    n++;
  }
  /* A marker moves behind waiting transient events when it merges (drop_into_marker). */
  for (pm__event *p = *link; p != NULL; p = p->next)
    if (is_marker(p)) {
      if (marker_mergeable(q, p))
        marker_trim(q, *link, p, last_id);
      break;
    } else if (!p->transient) {
      break;
    }
  return n;
}

size_t pm__queue_drop_transient(pm__queue *q) {
  pm__event **link = &q->head, *prev = NULL;
  size_t n = 0;
  while (*link != NULL) {
    pm__event *p = *link;
    if (p->transient && !is_marker(p) && !in_flight(q, p)) {
      remove_at(q, link, prev);
      n++;
    } else {
      prev = p;
      link = &p->next;
    }
  }
  return n;
}
