#include <stdio.h>
#include <string.h>

#include "event/queue.h"
#include "event/store.h"
#include "core/message_internal.h"
#include "internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/error.h"
#include "pipemsg/event.h"
#include "pipemsg/frame.h"
#include "transport/transport.h"

/* Connections being turned away (Busy, NotAuthorized) at once; more are closed unanswered. */
#define MAX_REJECTING 16
/* Of those, at most this many may be peers the authorize hook refused, so strangers cannot
 * take every lingering Busy answer away from allowed clients. */
#define MAX_REJECTING_STRANGERS (MAX_REJECTING / 2)
/* And at most this many one user's (pm__same_user): a user that connects faster than it is
 * answered loses its own answers, not other users' Busy. */
#define MAX_REJECTING_PER_USER (MAX_REJECTING / 4)
/* Answers to a client's own handshakes still waiting in the write queue: a client that sends
 * them without reading would otherwise make the service queue answers without end. */
#define MAX_PENDING_REPLIES 16
/* Connections waiting to be turned away; the pipe has one client, so a short backlog. */
#define EVENT_BACKLOG 16
/* Ids reserved in the store at a time, so a publish rarely writes the counter. */
#define ID_BLOCK 1024
/* More than an Event without Data takes in either encoding, its Type aside (the XML form,
 * the longest, is about 100 bytes). */
#define EVENT_ENVELOPE_MAX 256
/* A parked session's reads at a heartbeat tick: bytes per read, and reads before it goes back
 * to reading through the loop (a client that sends more than an answer is not idle). */
#define PARKED_READ 1024
#define PARKED_READS_MAX 16

/* What a connection is to the server. */
typedef enum {
  ROLE_NONE,      /* accepted, nothing settled yet: counted nowhere */
  ROLE_CLIENT,    /* holds the client slot (taken by its handshake while it was free) */
  ROLE_UNDECIDED, /* connected, no handshake yet: the handshake says what it becomes */
  ROLE_OBSERVER,  /* sent every event published after it attached; takes nothing (§5.11) */
  ROLE_AWAY       /* being turned away (Busy, NotAuthorized) */
} session_role;

/* One connection's state; every change goes through set_state(). */
typedef enum {
  SESSION_HANDSHAKE, /* connected, waiting for the client's handshake */
  SESSION_IDLE,      /* established, nothing outstanding: heartbeat timer runs */
  SESSION_PING,      /* secondary handshake sent, waiting for its answer */
  SESSION_IN_FLIGHT, /* an event sent, waiting for its confirmation */
  SESSION_CLOSING,   /* a Disconnect is being written, or handles are closing */
  SESSION_STATE_MAX
} session_state;

static const char *const session_state_names[SESSION_STATE_MAX] = {
    "handshake", "idle", "ping", "in-flight", "closing"};

typedef struct session {
  pm_event_server *server;
  struct session *next;
  session_state state;
  uv_pipe_t pipe;
  uv_timer_t timer;
  int open_handles;
  session_role role;
  int64_t observe_from; /* an observer gets the events with ids above this */
  int closed; /* uv_close was called */
  pm_reader *reader;
  pm_encoding encoding;
  /* The entry log_event hands to the log callback, its peer set once at the connection (a
   * pm_peer is 736 bytes: a copy per entry was two per event); logging: a callback for it is
   * running. */
  pm_event_log log;
  int logging;
  uint64_t started_ns;
  int64_t ping_seq;
  uint64_t ping_sent_ms; /* loop time the outstanding heartbeat was sent */
  pm__parking parking;   /* the client's reads wait for the heartbeat timer (read_parked) */
  int64_t in_flight_id;
  int in_flight_transient;
  int writing_event; /* the in-flight event's write has not completed yet */
  int pending_replies; /* answers to client handshakes not yet written */
  int linger;          /* turned away: a lingering close follows the Disconnect */
  int stranger;        /* turned away because the authorize hook refused it */
  int asked_observe;   /* its handshake's Mode was Observe: logged as an observer even when
                          turned away (Busy) */
  pm__linger lingering;
  char reason[PM_REASON_MAX];
} session;

struct pm_event_server {
  uv_loop_t *loop;
  pm__listener *listener;
  pm__sigpipe_guard *sigpipe; /* until the last session is freed */
  uv_async_t wake;
  pm_event_server_options opts;
  char path[PM_PIPE_PATH_MAX + 1];
  char **transient; /* NULL-terminated copy of opts.transient plus TrafficChanged */
  int64_t epoch;
  session *sessions;
  session *active;
  unsigned observers; /* sessions in ROLE_OBSERVER */
  int rejecting;
  int rejecting_strangers; /* of those, refused by the authorize hook */
  int open_handles;
  int closing;
  void (*close_cb)(void *arg);
  void *close_arg;
  /* Shared with publishers on other threads: */
  uv_mutex_t lock;
  pm__queue queue;
  int64_t next_id;
  int64_t id_ceiling;      /* ids up to here are reserved in the store */
  int64_t last_attempt_id; /* last event id sent, to count redeliveries */
  pm_event_store *store;   /* NULL: the queue lives in memory only */
  int in_txn;              /* a store transaction was begun for the current change */
  int txn_failed;          /* a write in it failed: it is rolled back */
  const pm__event *stored; /* being published: already written by pm__store_publish */
  int attached;
  unsigned observing;       /* observers, as publishers see them */
  pm__event *feed, *feed_tail; /* published events the loop has not sent to observers yet */
  size_t feed_count, feed_bytes;
  int feed_overflow; /* the feed passed the queue's limits: the observers could not keep up */
  pm_event_stats stats;
  /* The loop's thread, once known (set under the lock by the first connection): a publisher
   * running on it sends at once instead of waking the loop. */
  uv_thread_t loop_thread;
  int loop_thread_known;
  int dispatching; /* a direct send from publish is under way (loop thread only) */
  uint8_t *frame;  /* scratch for JSON Event frames (loop thread only) */
  size_t frame_cap;
  char *read_buf; /* the sessions' read buffer between reads (loop thread only) */
};

static void pump(session *ss);
static void turn_away(session *ss, const char *what, const char *reason, const char *message);
static void on_heartbeat(uv_timer_t *t);
static void dispatch(pm_event_server *s);
static void read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void feed(session *ss, const char *buf, size_t len);

/* Every change of the queue happens between these: under the lock and, with a store, in one
 * transaction (begun by the first write), so the store holds a state the queue really had.
 * When that transaction fails (a full disk), the change stays in memory and the store keeps
 * the state before it: an event confirmed or dropped then is still stored and comes back after
 * a restart, so failures here err towards delivering again, never towards losing. A publish
 * writes its event before it changes the queue (pm_event_server_publish). */
static void mutate_begin(pm_event_server *s) {
  uv_mutex_lock(&s->lock);
  s->in_txn = 0;
  s->txn_failed = 0;
}

static void mutate_end(pm_event_server *s) {
  if (s->in_txn && (s->txn_failed || pm__store_commit(s->store) < 0)) {
    pm__store_rollback(s->store);
    s->stats.store_errors++;
    pm__debug("event store: a change of the queue could not be written");
  }
  s->in_txn = 0;
  uv_mutex_unlock(&s->lock);
}

/* The queue's listener: mirrors durable events into the store. */
static void on_queue_change(void *ctx, const pm__event *ev, int present) {
  pm_event_server *s = ctx;
  int rc;
  /* After a failed statement SQLite may have rolled the transaction back already: what
   * follows would commit piece by piece (a marker lost, the events it stands for deleted). */
  if (ev->transient || (present && ev == s->stored) || s->txn_failed)
    return;
  if (!s->in_txn) {
    if (pm__store_begin(s->store) < 0) {
      s->stats.store_errors++;
      s->txn_failed = 1;
      pm__debug("event store: cannot begin a transaction");
      return;
    }
    s->in_txn = 1;
  }
  rc = present ? pm__store_put(s->store, ev) : pm__store_delete(s->store, ev);
  if (rc < 0)
    s->txn_failed = 1;
}

static void on_stored_event(void *ctx, pm__event *ev, int marker) {
  ev->unchecked = 1;
  pm__queue_restore(&((pm_event_server *)ctx)->queue, ev, marker);
}

/* Whether m can be written as one frame in enc: 0, PM_EINVAL (not representable),
 * PM_EMSGSIZE (over max_message, or over the decoders' node budget, which no peer would
 * accept) or PM_ENOMEM. */
static int encodable(const pm_msg *m, pm_encoding enc, size_t max_message) {
  uint8_t *buf = NULL, header[PM_FRAME_HEADER_SIZE];
  size_t len = 0;
  int rc = pm_msg_encode(m, enc, &buf, &len);
  if (rc == 0)
    rc = pm_frame_header(len, max_message, header);
  pm_free(buf);
  return rc == PM_ELIMIT ? PM_EMSGSIZE : rc;
}

/* The Event message for id, type, time and data (NULL or shared, not copied). */
static int event_msg(int64_t id, const char *type, const char *time, json_t *data,
                     pm_msg **out) {
  pm_msg *m = NULL;
  int rc = pm_msg_new(PM_KIND_EVENT, &m);
  if (rc == 0)
    rc = pm_msg_set_int(m, "Id", id);
  if (rc == 0)
    rc = pm_msg_set_string(m, "Type", type);
  if (rc == 0)
    rc = pm_msg_set_string(m, "Time", time);
  if (rc == 0 && data != NULL)
    rc = pm_msg_set_tree(m, "Data", json_incref(data));
  if (rc < 0) {
    pm_msg_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

/* The Event message of a queued event, its Data parsed back from the text it is kept as. */
static int queued_msg(const pm__event *ev, pm_msg **out) {
  json_t *data = NULL;
  int rc = pm__event_data(ev, &data);
  if (rc == 0)
    rc = event_msg(ev->id, ev->type, ev->time, data, out);
  json_decref(data);
  return rc;
}

/* Appends len bytes to buf at *n. */
static void put(char *buf, size_t *n, const char *p, size_t len) {
  memcpy(buf + *n, p, len);
  *n += len;
}

/* The JSON Event body before the Data, as pm_json_encode writes it:
 * {"Event":{"Id":ID,"Type":"TYPE","Time":"TIME" and, with Data, ,"Data":
 * A type is a name and a time is made of [0-9:.TZ-], so neither needs escaping. */
#define JSON_HEAD_KIND "{\"" PM_KIND_EVENT "\":{\"Id\":"
#define JSON_HEAD_TYPE ",\"Type\":\""
#define JSON_HEAD_TIME "\",\"Time\":\""
#define JSON_HEAD_DATA "\",\"Data\":"
/* Digits of the largest id, which stands in for one not assigned yet. */
#define ID_DIGITS_MAX 19

/* Writes the head for id to buf (no NUL added); returns its length. It runs per event sent, so
 * it copies instead of formatting. */
static size_t json_head(char *buf, int64_t id, const pm__event *ev, int with_data) {
  char digits[24];
  size_t n = 0, nd = 0;
  uint64_t v = (uint64_t)id; /* ids are positive */
  do {
    digits[sizeof(digits) - ++nd] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  put(buf, &n, JSON_HEAD_KIND, sizeof(JSON_HEAD_KIND) - 1);
  put(buf, &n, digits + sizeof(digits) - nd, nd);
  put(buf, &n, JSON_HEAD_TYPE, sizeof(JSON_HEAD_TYPE) - 1);
  put(buf, &n, ev->type, strlen(ev->type));
  put(buf, &n, JSON_HEAD_TIME, sizeof(JSON_HEAD_TIME) - 1);
  put(buf, &n, ev->time, strlen(ev->time));
  if (with_data)
    put(buf, &n, JSON_HEAD_DATA, sizeof(JSON_HEAD_DATA) - 1);
  else
    put(buf, &n, "\"", 1);
  return n;
}

/* The head's length with the largest id (at least any id's), counted without writing it. */
static size_t json_head_max(const pm__event *ev, int with_data) {
  return sizeof(JSON_HEAD_KIND) - 1 + ID_DIGITS_MAX + sizeof(JSON_HEAD_TYPE) - 1 +
         strlen(ev->type) + sizeof(JSON_HEAD_TIME) - 1 + strlen(ev->time) +
         (with_data ? sizeof(JSON_HEAD_DATA) - 1 : 1);
}

/* The length of the JSON Event payload with this head and Data text (the two closing braces). */
#define JSON_EVENT_LEN(head, text_len) ((size_t)(head) + (text_len) + 2)

static void set_state(session *ss, session_state st) {
  pm__debug("event session %p: %s -> %s", (void *)ss, session_state_names[ss->state],
            session_state_names[st]);
  ss->state = st;
}

static void log_event(session *ss, const char *what, const char *reason, int64_t event_id) {
  pm_event_server *s = ss->server;
  pm_event_log nested, *e = &ss->log;
  if (s->opts.log == NULL)
    return;
  /* An entry caused by a log callback (one that publishes, say) gets a copy: the entry that
   * callback holds does not change under it. */
  if (ss->logging) {
    nested = ss->log;
    e = &nested;
  }
  e->observer = ss->role == ROLE_OBSERVER || ss->asked_observe;
  e->what = what;
  e->reason = reason;
  e->event_id = event_id;
  e->duration_ms = (uv_hrtime() - ss->started_ns) / 1000000u;
  ss->logging++;
  s->opts.log(e, s->opts.data);
  ss->logging--;
}

static void log_entry(session *ss, const char *what, const char *reason) {
  log_event(ss, what, reason, 0);
}

/* ---- teardown ----------------------------------------------------------------------------- */

static void maybe_free_server(pm_event_server *s) {
  char **t;
  if (!s->closing || s->open_handles > 0 || s->sessions != NULL)
    return;
  pm__queue_clear(&s->queue);
  while (s->feed != NULL) {
    pm__event *next = s->feed->next;
    pm__event_free(s->feed);
    s->feed = next;
  }
  uv_mutex_destroy(&s->lock);
  pm__free(s->frame);
  pm__free(s->read_buf);
  for (t = s->transient; t != NULL && *t != NULL; t++)
    pm__free(*t);
  pm__free(s->transient);
  pm__sigpipe_guard_close(s->sigpipe);
  if (s->close_cb != NULL)
    s->close_cb(s->close_arg);
  pm__free(s);
}

static void on_session_handle_closed(uv_handle_t *h) {
  session *ss = h->data;
  pm_event_server *s = ss->server;
  session **pp;
  if (--ss->open_handles > 0)
    return;
  for (pp = &s->sessions; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == ss) {
      *pp = ss->next;
      break;
    }
  }
  pm_reader_free(ss->reader);
  pm__free(ss);
  maybe_free_server(s);
}

/* Ends the session now. The attached client's in-flight event stays at the head of the queue;
 * transient events are never kept for a later client (§5.3.4). */
static void close_session(session *ss, const char *reason) {
  pm_event_server *s = ss->server;
  if (ss->closed)
    return;
  ss->closed = 1;
  pm__linger_stop(&ss->lingering);
  if (reason != NULL && ss->reason[0] == '\0')
    snprintf(ss->reason, sizeof(ss->reason), "%s", reason);
  set_state(ss, SESSION_CLOSING);
  if (ss->role == ROLE_CLIENT) {
    size_t dropped;
    mutate_begin(s);
    s->queue.head_in_flight = 0;
    dropped = pm__queue_drop_transient(&s->queue);
    s->stats.dropped_transient += dropped;
    s->attached = 0;
    mutate_end(s);
    s->active = NULL;
    log_entry(ss, "detached", ss->reason);
  } else if (ss->role == ROLE_OBSERVER) {
    uv_mutex_lock(&s->lock);
    s->observing = --s->observers;
    uv_mutex_unlock(&s->lock);
    log_entry(ss, "detached", ss->reason);
  } else if (ss->role == ROLE_AWAY) {
    s->rejecting--;
    if (ss->stranger)
      s->rejecting_strangers--;
  }
  /* The hang-up watcher goes first: it watches a duplicate of the pipe's socket. */
  ss->open_handles += pm__parking_close(&ss->parking, on_session_handle_closed);
  uv_close((uv_handle_t *)&ss->pipe, on_session_handle_closed);
  uv_close((uv_handle_t *)&ss->timer, on_session_handle_closed);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void on_sent(void *data, int status) {
  session *ss = data;
  if (status < 0)
    close_session(ss, "write failed");
}

static void on_lingered(void *data) { close_session(data, NULL); }

/* The Disconnect is out. A connection turned away before its handshake lingers, so a client
 * that writes its handshake before reading still gets the reason (§5.1). */
static void on_sent_then_close(void *data, int status) {
  session *ss = data;
  if (status == 0 && ss->linger && !ss->closed && !ss->server->closing)
    pm__linger_start(&ss->lingering, (uv_stream_t *)&ss->pipe, &ss->timer,
                     ss->server->opts.handshake_timeout_ms, PM__LINGER_MAX_BYTES, on_lingered, ss);
  else
    close_session(ss, NULL);
}

/* Writes m (freed here) in the session's encoding; close_after ends the session once written. */
static int send_msg(session *ss, pm_msg *m, int close_after) {
  int rc = pm__stream_send((uv_stream_t *)&ss->pipe, m, ss->encoding,
                           ss->server->opts.max_message,
                           close_after ? on_sent_then_close : on_sent, ss);
  if (rc < 0)
    close_session(ss, "could not send");
  else if (rc == 1 && close_after)
    on_sent_then_close(ss, 0);
  return rc < 0 ? rc : 0;
}

static void on_reply_sent(void *data, int status) {
  session *ss = data;
  ss->pending_replies--;
  on_sent(ss, status);
}

static void on_disconnect_deadline(uv_timer_t *t) { close_session(t->data, NULL); }

/* Best-effort Disconnect{Reason, Message}, then close (§6). */
static void disconnect(session *ss, const char *reason, const char *message) {
  pm_msg *m = NULL;
  if (ss->closed || ss->state == SESSION_CLOSING)
    return;
  snprintf(ss->reason, sizeof(ss->reason), "%s%s%.150s", reason, message ? ": " : "",
           message ? message : "");
  set_state(ss, SESSION_CLOSING);
  pm__unpark(&ss->parking);
  uv_read_stop((uv_stream_t *)&ss->pipe);
  if (pm_msg_new(PM_KIND_DISCONNECT, &m) < 0 || pm_msg_set_string(m, "Reason", reason) < 0 ||
      (message != NULL && pm_msg_set_string(m, "Message", message) < 0)) {
    pm_msg_free(m);
    close_session(ss, NULL);
    return;
  }
  /* A peer that does not read must not keep the connection open. */
  uv_timer_start(&ss->timer, on_disconnect_deadline, ss->server->opts.ack_timeout_ms, 0);
  send_msg(ss, m, 1);
}

/* ---- delivery ----------------------------------------------------------------------------- */

static void on_ack_timeout(uv_timer_t *t) {
  session *ss = t->data;
  pm_event_server *s = ss->server;
  if (ss->in_flight_transient) {
    /* A transient event is not worth the connection (§5.3.4). */
    mutate_begin(s);
    pm__queue_pop(&s->queue);
    s->stats.dropped_transient++;
    mutate_end(s);
    set_state(ss, SESSION_IDLE);
    pump(ss);
    return;
  }
  uv_mutex_lock(&s->lock);
  s->stats.ack_failures++;
  uv_mutex_unlock(&s->lock);
  disconnect(ss, PM_DISCONNECT_ACK_TIMEOUT, NULL);
}

static void on_event_write_timeout(uv_timer_t *t) {
  session *ss = t->data;
  pm_event_server *s = ss->server;
  uv_mutex_lock(&s->lock);
  s->stats.ack_failures++;
  uv_mutex_unlock(&s->lock);
  disconnect(ss, PM_DISCONNECT_ACK_TIMEOUT, "the event could not be written in time");
}

static void on_event_sent(void *data, int status) {
  session *ss = data;
  if (!ss->writing_event)
    return;
  ss->writing_event = 0;
  if (status < 0) {
    close_session(ss, "write failed");
  } else if (ss->state == SESSION_IN_FLIGHT) {
    log_event(ss, "sent", NULL, ss->in_flight_id);
    uv_timer_start(&ss->timer, on_ack_timeout, ss->server->opts.ack_timeout_ms, 0);
  }
}

static void on_ping_timeout(uv_timer_t *t) {
  session *ss = t->data;
  pm_event_server *s = ss->server;
  uv_mutex_lock(&s->lock);
  s->stats.heartbeat_failures++;
  uv_mutex_unlock(&s->lock);
  disconnect(ss, PM_DISCONNECT_HEARTBEAT_TIMEOUT, NULL);
}

/* ---- parking: an idle client's answers wait for the heartbeat timer ------------------------
 * The answer to a heartbeat is wanted by the end of the acknowledgement timeout, and the next
 * heartbeat is due HeartbeatMs after it was sent: by default the same moment. So an idle client
 * is parked (transport.h) once its heartbeat is written, and its answer is read when the timer
 * for the earlier of the two runs: one wake-up per heartbeat instead of two (the answer's,
 * then the timer's), the deadline checked when it always was. A hang-up still wakes the loop
 * at once; an event to send, or an answer not in by the tick, reads through the loop again. */

/* Reads through the loop again. */
static void unpark(session *ss) {
  if (!ss->parking.parked)
    return;
  pm__unpark(&ss->parking);
  if (uv_read_start((uv_stream_t *)&ss->pipe, read_alloc, on_read) < 0)
    close_session(ss, "read failed");
}

/* Hands what a parked session's socket holds to its reader, as on_read would. A session that
 * has more to read than a few reads take is not idle: it reads through the loop again, and 1
 * says that bytes were left for the loop. */
static int read_parked(session *ss) {
  char buf[PARKED_READ];
  for (int i = 0; i < PARKED_READS_MAX; i++) {
    long n;
    if (!ss->parking.parked || ss->closed || ss->state == SESSION_CLOSING)
      return 0;
    n = pm__pipe_read_now(&ss->pipe, buf, sizeof(buf));
    if (n == PM_EBUSY)
      return 0;
    if (n <= 0) {
      close_session(ss, n == 0 ? "client closed" : "read failed");
      return 0;
    }
    feed(ss, buf, (size_t)n);
    if ((size_t)n < sizeof(buf))
      return 0;
  }
  unpark(ss);
  return 1;
}

/* The parked client hung up (or its socket failed): what it sent before is handled first. */
static void on_parked_hangup(void *data) {
  session *ss = data;
  read_parked(ss);
  unpark(ss);
}

/* A parked session's tick: at the acknowledgement timeout or when the next heartbeat is due,
 * whichever comes first (on_heartbeat armed it). */
static void on_ping_due(uv_timer_t *t) {
  session *ss = t->data;
  pm_event_server *s = ss->server;
  uint64_t waited;
  int left = read_parked(ss);
  if (ss->closed || ss->state == SESSION_CLOSING)
    return;
  waited = uv_now(s->loop) - ss->ping_sent_ms;
  if (ss->state == SESSION_PING) {
    /* An answer that came before the deadline counts, also behind more than a tick reads:
     * the loop reads that first (this round), then the timeout runs unless it was there. */
    if (waited >= s->opts.ack_timeout_ms && left) {
      uv_timer_start(&ss->timer, on_ping_timeout, 1, 0);
      return;
    }
    if (waited >= s->opts.ack_timeout_ms) {
      on_ping_timeout(t);
      return;
    }
    /* Not answered yet but not late (a timeout longer than the heartbeat): as before parking,
     * the answer wakes the loop. */
    unpark(ss);
    if (!ss->closed)
      uv_timer_start(&ss->timer, on_ping_timeout, s->opts.ack_timeout_ms - waited, 0);
    return;
  }
  /* Answered, and nothing else to send (pump armed a full heartbeat period): the next one is
   * due HeartbeatMs after the last, which by default is now. */
  if (ss->state != SESSION_IDLE)
    return;
  if (waited >= s->opts.heartbeat_ms)
    on_heartbeat(t);
  else
    uv_timer_start(&ss->timer, on_heartbeat, s->opts.heartbeat_ms - waited, 0);
}

/* Writes Handshake{Seq}: in a JSON session as the encoder would, without a tree (it is all an
 * idle session sends). 0, or <0 when the session was closed. */
static int send_heartbeat(session *ss, int64_t seq) {
  uint8_t frame[PM_FRAME_HEADER_SIZE + PM__JSON_CONFIRMATION_MAX];
  size_t len;
  pm_msg *m = NULL;
  int rc;
  if (ss->encoding != PM_ENC_JSON) {
    if (pm_msg_new(PM_KIND_HANDSHAKE, &m) < 0 || pm_msg_set_int(m, "Seq", seq) < 0) {
      pm_msg_free(m);
      close_session(ss, "out of memory");
      return PM_ENOMEM;
    }
    return send_msg(ss, m, 0);
  }
  len = pm__json_heartbeat(seq, (char *)frame + PM_FRAME_HEADER_SIZE);
  rc = pm_frame_header(len, ss->server->opts.max_message, frame);
  if (rc == 0)
    rc = pm__stream_send_bytes((uv_stream_t *)&ss->pipe, frame, PM_FRAME_HEADER_SIZE + len,
                               on_sent, ss);
  if (rc < 0)
    close_session(ss, "could not send");
  return rc < 0 ? rc : 0;
}

static void on_heartbeat(uv_timer_t *t) {
  session *ss = t->data;
  pm_event_server *s = ss->server;
  if (ss->state != SESSION_IDLE)
    return;
  set_state(ss, SESSION_PING);
  ss->ping_sent_ms = uv_now(s->loop);
  uv_timer_start(&ss->timer, on_ping_timeout, s->opts.ack_timeout_ms, 0);
  if (send_heartbeat(ss, ++ss->ping_seq) < 0 || ss->closed)
    return;
  /* An observer is parked too: events to it are writes, which parking leaves alone. */
  if (ss->parking.parked || pm__park(&ss->parking, &ss->pipe, on_parked_hangup, ss) == 0)
    uv_timer_start(&ss->timer, on_ping_due,
                   s->opts.ack_timeout_ms < s->opts.heartbeat_ms ? s->opts.ack_timeout_ms
                                                                 : s->opts.heartbeat_ms,
                   0);
}

/* Drops the head event (in flight, so nothing else removed it) that cannot be encoded for the
 * session: retrying it would wedge every session behind it. Called between mutate_begin and
 * mutate_end; ends the change. */
static void drop_unencodable(session *ss, int err) {
  pm_event_server *s = ss->server;
  const pm__event *head = pm__queue_head(&s->queue);
  char why[PM_REASON_MAX];
  snprintf(why, sizeof(why), "event %lld (%.64s) cannot be encoded in %s: %s",
           (long long)head->id, head->type, ss->encoding == PM_ENC_XML ? "XML" : "JSON",
           pm_strerror(err));
  pm__queue_pop(&s->queue);
  s->stats.dropped_unencodable++;
  pm__debug("event server: %s", why);
  mutate_end(s);
  log_entry(ss, "dropped", why);
}

/* Writes the JSON frame of ev from its stored Data text into the server's scratch buffer
 * (*frame, *len). Only events publish checked come here (send_event), so the frame is within
 * max_message and its Data within the rules. */
static int json_frame(pm_event_server *s, const pm__event *ev, uint8_t **frame, size_t *len) {
  size_t head, n = PM_FRAME_HEADER_SIZE + JSON_EVENT_LEN(json_head_max(ev, ev->text != NULL),
                                                          ev->text_len);
  if (n > s->frame_cap) {
    uint8_t *grown = pm__realloc(s->frame, n);
    if (grown == NULL)
      return PM_ENOMEM;
    s->frame = grown;
    s->frame_cap = n;
  }
  head = json_head((char *)s->frame + PM_FRAME_HEADER_SIZE, ev->id, ev, ev->text != NULL);
  n = PM_FRAME_HEADER_SIZE + JSON_EVENT_LEN(head, ev->text_len);
  if (pm_frame_header(n - PM_FRAME_HEADER_SIZE, s->opts.max_message, s->frame) < 0)
    return PM_EMSGSIZE;
  if (ev->text != NULL)
    memcpy(s->frame + PM_FRAME_HEADER_SIZE + head, ev->text, ev->text_len);
  memcpy(s->frame + n - 2, "}}", 2);
  *frame = s->frame;
  *len = n;
  return 0;
}

/* Writes ev to the session, or m (taken, may be NULL) when it was built already. A JSON
 * session gets the frame copied from the stored text; an XML one, a marker (a tree) and an
 * event read back from a store (checked against a message) go through the encoder. Returns
 * what pm__stream_send does. */
static int send_event(session *ss, const pm__event *ev, pm_msg *m, pm__sent_cb cb) {
  pm_event_server *s = ss->server;
  uint8_t *frame;
  size_t len;
  int rc;
  if (m == NULL && ss->encoding == PM_ENC_JSON && ev->data == NULL) {
    rc = json_frame(s, ev, &frame, &len);
    return rc < 0 ? rc : pm__stream_send_bytes((uv_stream_t *)&ss->pipe, frame, len, cb, ss);
  }
  if (m == NULL && (rc = queued_msg(ev, &m)) < 0)
    return rc;
  return pm__stream_send((uv_stream_t *)&ss->pipe, m, ss->encoding, s->opts.max_message, cb, ss);
}

/* Sends the head of the queue if the session can take it; otherwise arms the heartbeat. */
static void pump(session *ss) {
  pm_event_server *s = ss->server;
  pm__event *head;
  pm_msg *m = NULL;
  int rc;
  for (;;) {
    if (ss->state != SESSION_IDLE)
      return;
    mutate_begin(s);
    head = pm__queue_head(&s->queue);
    if (head == NULL) {
      mutate_end(s);
      uv_timer_start(&ss->timer, on_heartbeat, s->opts.heartbeat_ms, 0);
      return;
    }
    s->queue.head_in_flight = 1;
    rc = 0;
    /* Published events were checked for both encodings; one read back from a store was not.
     * Only an event that can never be sent is dropped: running out of memory is retried. */
    if (head->unchecked) {
      rc = queued_msg(head, &m);
      if (rc == 0)
        rc = encodable(m, ss->encoding, s->opts.max_message);
      if (rc == PM_EINVAL || rc == PM_EMSGSIZE) {
        pm_msg_free(m);
        m = NULL;
        drop_unencodable(ss, rc);
        continue;
      }
    }
    if (rc == 0) {
      if (head->id <= s->last_attempt_id)
        s->stats.redelivered++;
      s->last_attempt_id = head->id;
      ss->in_flight_id = head->id;
      ss->in_flight_transient = head->transient;
    }
    mutate_end(s);
    break;
  }
  if (rc < 0) {
    pm_msg_free(m);
    close_session(ss, "out of memory");
    return;
  }
  /* Nothing but this thread's pm__queue_pop removes or changes an in-flight head, so it is
   * read outside the lock from here. */
  set_state(ss, SESSION_IN_FLIGHT);
  /* Its confirmation is read through the loop. */
  unpark(ss);
  if (ss->closed)
    return;
  /* Writing a large event to a slow reader may take a while: the acknowledgement timeout
   * starts once it is written, and a write that is queued has a deadline of its own (one
   * written at once, the usual case, goes straight to the acknowledgement timeout). */
  ss->writing_event = 1;
  rc = send_event(ss, head, m, on_event_sent);
  if (rc < 0)
    close_session(ss, "could not send");
  else if (rc == 1)
    on_event_sent(ss, 0);
  else
    uv_timer_start(&ss->timer, on_event_write_timeout, s->opts.write_timeout_ms, 0);
}

/* ---- observers ---------------------------------------------------------------------------- */

static void too_slow(session *ss, const char *message) {
  pm_event_server *s = ss->server;
  uv_mutex_lock(&s->lock);
  s->stats.slow_observers++;
  uv_mutex_unlock(&s->lock);
  disconnect(ss, PM_DISCONNECT_TOO_SLOW, message);
}

/* Writes ev to an observer, with no confirmation to wait for. What the observer has not read
 * yet waits in the pipe's write queue: past the bound it is cut off, so it costs at most the
 * bound and one event (and the Disconnect queued behind them). */
static void observe(session *ss, const pm__event *ev) {
  pm_event_server *s = ss->server;
  int rc = send_event(ss, ev, NULL, on_sent);
  if (rc < 0)
    close_session(ss, "could not send");
  else if (uv_stream_get_write_queue_size((uv_stream_t *)&ss->pipe) > s->opts.observer_max_unsent)
    too_slow(ss, "unsent events passed the observer's bound");
}

/* Sends what was published since the last call to each observer attached before it. */
static void feed_observers(pm_event_server *s) {
  pm__event *ev, *next;
  int overflow;
  uv_mutex_lock(&s->lock);
  ev = s->feed;
  overflow = s->feed_overflow;
  s->feed = s->feed_tail = NULL;
  s->feed_count = s->feed_bytes = 0;
  s->feed_overflow = 0;
  uv_mutex_unlock(&s->lock);
  for (; ev != NULL; ev = next) {
    next = ev->next;
    for (session *ss = s->sessions; ss != NULL; ss = ss->next)
      if (ss->role == ROLE_OBSERVER && !ss->closed && ss->state != SESSION_CLOSING &&
          ev->id > ss->observe_from)
        observe(ss, ev);
    pm__event_free(ev);
  }
  if (overflow)
    for (session *ss = s->sessions; ss != NULL; ss = ss->next)
      if (ss->role == ROLE_OBSERVER)
        too_slow(ss, "events were published faster than they could be sent");
}

/* ---- reading ------------------------------------------------------------------------------ */

static int reply_handshake(session *ss, int64_t seq, int full) {
  pm_event_server *s = ss->server;
  pm_msg *m = NULL;
  int rc = pm_msg_new(PM_KIND_HANDSHAKE, &m);
  if (rc == 0)
    rc = pm_msg_set_int(m, "Seq", seq);
  if (rc == 0 && full) {
    rc = pm_msg_set_int(m, "Version", 1);
    if (rc == 0)
      rc = pm_msg_set_string(m, "Service", s->opts.service_name);
    if (rc == 0)
      rc = pm_msg_set_int(m, "Epoch", s->epoch);
    if (rc == 0)
      rc = pm_msg_set_int(m, "HeartbeatMs", s->opts.heartbeat_ms);
    if (rc == 0)
      rc = pm_msg_set_int(m, "MaxMessage", (int64_t)s->opts.max_message);
  }
  if (rc < 0) {
    /* The caller stopped the handshake timer: a session left open here would never end, and
     * hold the one client's place. */
    pm_msg_free(m);
    close_session(ss, "out of memory");
    return rc;
  }
  if (full)
    return send_msg(ss, m, 0);
  rc = pm__stream_send((uv_stream_t *)&ss->pipe, m, ss->encoding, s->opts.max_message,
                       on_reply_sent, ss);
  if (rc < 0) {
    close_session(ss, "could not send");
    return rc;
  }
  if (rc == 0)
    ss->pending_replies++;
  return 0;
}

/* An observer takes nothing from the queue, the resume cursor included. */
static void on_observing(session *ss) {
  pm_event_server *s = ss->server;
  uv_mutex_lock(&s->lock);
  s->observing = ++s->observers;
  ss->observe_from = s->next_id;
  s->stats.observer_sessions++;
  uv_mutex_unlock(&s->lock);
  set_state(ss, SESSION_IDLE);
  log_entry(ss, "attached", NULL);
  uv_timer_start(&ss->timer, on_heartbeat, s->opts.heartbeat_ms, 0);
}

/* Open connections of ss's user in role, ss aside. */
static unsigned user_in_role(const session *ss, session_role role) {
  unsigned n = 0;
  for (const session *o = ss->server->sessions; o != NULL; o = o->next)
    if (o != ss && !o->closed && o->role == role && pm__same_user(&o->log.peer, &ss->log.peer))
      n++;
  return n;
}

/* Observer places one user may hold: half, rounded up (the one place when there is one), so
 * a user holding all it may leaves the rest to other users' observers (§5.11). Not written as
 * (max_observers + 1) / 2, which could wrap. */
static unsigned user_observer_share(const pm_event_server *s) {
  return s->opts.max_observers / 2 + s->opts.max_observers % 2;
}

/* Observer places ss's user could still take: the free ones, up to what is left of its share.
 * Neither difference wraps: the cap and the share are checked before an observer attaches. */
static unsigned user_observer_places_left(const session *ss) {
  const pm_event_server *s = ss->server;
  unsigned free_places = s->opts.max_observers - s->observers;
  unsigned share_left = user_observer_share(s) - user_in_role(ss, ROLE_OBSERVER);
  return share_left < free_places ? share_left : free_places;
}

static void busy(session *ss, const char *message) {
  pm_event_server *s = ss->server;
  uv_mutex_lock(&s->lock);
  s->stats.busy_rejections++;
  uv_mutex_unlock(&s->lock);
  turn_away(ss, "busy", PM_DISCONNECT_BUSY, message);
}

/* Settles what a connection becomes from its handshake's Mode: 0 when it goes on as the client
 * or an observer (ss->role), -1 when it was turned away. */
static int settle_role(session *ss, const pm_msg *hs) {
  pm_event_server *s = ss->server;
  const char *mode = NULL;
  int rc = pm_msg_get_string(hs, "Mode", &mode);
  int observe_mode = rc == 0 && strcmp(mode, PM_MODE_OBSERVE) == 0;
  if (rc != PM_ENOENT && !observe_mode) {
    disconnect(ss, PM_DISCONNECT_PROTOCOL_ERROR, "unknown Mode");
    return -1;
  }
  ss->role = ROLE_AWAY;
  if (!observe_mode && s->active == NULL) {
    ss->role = ROLE_CLIENT;
    s->active = ss;
    return 0;
  }
  if (!observe_mode) {
    busy(ss, "another client is attached");
    return -1;
  }
  ss->asked_observe = 1;
  if (s->observers >= s->opts.max_observers) {
    busy(ss, "too many observers");
    return -1;
  }
  if (user_in_role(ss, ROLE_OBSERVER) >= user_observer_share(s)) {
    busy(ss, "too many observers of this user");
    return -1;
  }
  ss->role = ROLE_OBSERVER;
  return 0;
}

/* A client's cursor in this epoch past every id handed out cannot be ours: the store was
 * restored from a copy or replaced, and ids the client has had are being handed out again.
 * Resuming from it would hide the events that reuse them (a client skips ids it has had), so
 * the epoch changes before the answer carries it: the client starts over, and can tell. */
static void renew_epoch_if_cursor_ahead(session *ss, const pm_msg *hs) {
  pm_event_server *s = ss->server;
  int64_t epoch, last, renewed;
  bool kept;
  char reason[200];
  if (pm_msg_get_int(hs, "Epoch", &epoch) < 0 || epoch != s->epoch ||
      pm_msg_get_int(hs, "LastEventId", &last) < 0 || last == INT64_MAX)
    return;
  uv_mutex_lock(&s->lock);
  /* next_id is the last id handed out. */
  renewed = last > s->next_id ? pm__epoch_new() : 0;
  if (renewed == 0) {
    uv_mutex_unlock(&s->lock);
    return;
  }
  /* One the store cannot keep still holds while the service runs: after a restart the client's
   * cursor is of another epoch, so it is sent events twice, never none. */
  kept = s->store == NULL || pm__store_set_epoch(s->store, renewed) == 0;
  if (!kept)
    s->stats.store_errors++;
  snprintf(reason, sizeof(reason),
           "resume cursor %lld is past every id handed out in epoch %lld: new epoch %lld%s",
           (long long)last, (long long)s->epoch, (long long)renewed,
           kept ? "" : " (the store cannot keep it)");
  s->epoch = renewed;
  uv_mutex_unlock(&s->lock);
  log_entry(ss, "new epoch", reason);
}

static void on_established(session *ss, const pm_msg *hs) {
  pm_event_server *s = ss->server;
  int64_t epoch, last;
  size_t skipped = 0;
  mutate_begin(s);
  if (pm_msg_get_int(hs, "Epoch", &epoch) == 0 && epoch == s->epoch &&
      pm_msg_get_int(hs, "LastEventId", &last) == 0)
    skipped = pm__queue_discard_upto(&s->queue, last);
  s->stats.resumed_skipped += skipped;
  s->stats.sessions++;
  s->attached = 1;
  mutate_end(s);
  set_state(ss, SESSION_IDLE);
  log_entry(ss, "attached", NULL);
}

/* An EventConfirmation (has_id: with an integer Id, n) after the handshake. */
static void confirmation(session *ss, int has_id, int64_t n) {
  pm_event_server *s = ss->server;
  int ok;
  if (ss->role == ROLE_OBSERVER) {
    /* Observers confirm nothing; one that does anyway (an older watch) harms no one. */
    pm__debug("event session %p: an observer's confirmation ignored", (void *)ss);
    return;
  }
  ok = has_id && ss->state == SESSION_IN_FLIGHT && n == ss->in_flight_id;
  mutate_begin(s);
  if (ok) {
    pm__queue_pop(&s->queue);
    s->stats.delivered++;
  } else {
    s->stats.stale_acks++;
  }
  mutate_end(s);
  if (ok) {
    uv_timer_stop(&ss->timer);
    ss->writing_event = 0;
    log_event(ss, "confirmed", NULL, n);
    set_state(ss, SESSION_IDLE);
    pump(ss);
  }
}

/* A Handshake{Seq: n >= 1} after the first: a heartbeat's answer, or the client's own liveness
 * check. Returns <0 if the session was closed. */
static int later_handshake(session *ss, int64_t n) {
  pm_event_server *s = ss->server;
  if (ss->state == SESSION_PING && n == ss->ping_seq) {
    uv_timer_stop(&ss->timer);
    set_state(ss, SESSION_IDLE);
    if (ss->role == ROLE_OBSERVER)
      uv_timer_start(&ss->timer, on_heartbeat, s->opts.heartbeat_ms, 0);
    else
      pump(ss);
    return 0;
  }
  /* A client's own liveness check (§5.2): answer it; it counts as sending. A client that
   * keeps asking without reading the answers is not alive in any useful sense. */
  if (ss->pending_replies >= MAX_PENDING_REPLIES) {
    disconnect(ss, PM_DISCONNECT_PROTOCOL_ERROR, "handshakes sent without reading the answers");
    return -1;
  }
  if (reply_handshake(ss, n, 0) < 0)
    return -1;
  /* An observer's heartbeats keep their pace: only their answers show that it reads. */
  if (ss->state == SESSION_IDLE && ss->role == ROLE_CLIENT)
    uv_timer_start(&ss->timer, on_heartbeat, s->opts.heartbeat_ms, 0);
  return 0;
}

/* Handles one decoded message; returns <0 if the session was closed. */
static int handle(session *ss, const pm_msg *m) {
  const char *kind = pm_msg_kind(m);
  int64_t n = 0;
  if (strcmp(kind, PM_KIND_HANDSHAKE) == 0) {
    if (pm_msg_get_int(m, "Seq", &n) < 0 || n < 1) {
      disconnect(ss, PM_DISCONNECT_PROTOCOL_ERROR, "Handshake needs an integer Seq >= 1");
      return -1;
    }
    if (ss->state == SESSION_HANDSHAKE) {
      ss->encoding = pm_msg_encoding(m);
      uv_timer_stop(&ss->timer);
      if (settle_role(ss, m) < 0)
        return -1;
      if (ss->role == ROLE_OBSERVER) {
        /* Attached before it has the answer: what is published once it has it reaches it. */
        on_observing(ss);
        return reply_handshake(ss, n, 1) < 0 ? -1 : 0;
      }
      renew_epoch_if_cursor_ahead(ss, m);
      if (reply_handshake(ss, n, 1) < 0)
        return -1;
      on_established(ss, m);
      pump(ss);
      return 0;
    }
    return later_handshake(ss, n);
  }
  if (ss->state == SESSION_HANDSHAKE) {
    disconnect(ss, PM_DISCONNECT_PROTOCOL_ERROR, "expected a Handshake");
    return -1;
  }
  if (strcmp(kind, PM_KIND_EVENT_CONFIRMATION) == 0) {
    int has_id = pm_msg_get_int(m, "Id", &n) == 0;
    confirmation(ss, has_id, n);
    return 0;
  }
  /* Other kinds are not for the service to act on; ignoring them keeps newer clients working. */
  return 0;
}

static int on_message(void *data, const pm_msg *m) {
  session *ss = data;
  return handle(ss, m) < 0 || ss->closed || ss->state == SESSION_CLOSING;
}

/* A confirmation or a later Handshake{Seq >= 1} after the handshake, in the exact bytes the
 * encoder writes, is handled without decoding it (the decoder would accept those bytes and
 * find this id or Seq); any other payload is decoded and goes through handle(). */
static int on_payload(void *data, const uint8_t *payload, size_t len) {
  session *ss = data;
  int64_t n;
  if (ss->state == SESSION_HANDSHAKE)
    return -1;
  if (pm__json_confirmation_id(payload, len, &n))
    confirmation(ss, 1, n);
  else if (pm__json_heartbeat_seq(payload, len, &n) && n >= 1)
    later_handshake(ss, n);
  else
    return -1;
  return ss->closed || ss->state == SESSION_CLOSING;
}

/* Hands what was read from the connection to its reader (on_read, read_parked). */
static void feed(session *ss, const char *buf, size_t len) {
  char why[PM_REASON_MAX];
  if (pm__feed_messages(ss->reader, buf, len, on_message, on_payload, ss, why) < 0)
    disconnect(ss, PM_DISCONNECT_PROTOCOL_ERROR, why);
}

static void read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  session *ss = h->data;
  (void)suggested;
  pm__read_take(&ss->server->read_buf, buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  session *ss = stream->data;
  pm_event_server *s = ss->server;
  if (nread < 0)
    close_session(ss, nread == UV_EOF ? "client closed" : "read failed");
  else if (!ss->closed && ss->state != SESSION_CLOSING)
    feed(ss, buf->base, (size_t)nread);
  pm__read_give(&s->read_buf, buf->base);
}

static void on_handshake_timeout(uv_timer_t *t) {
  session *ss = t->data;
  pm_event_server *s = ss->server;
  uv_mutex_lock(&s->lock);
  s->stats.handshake_failures++;
  uv_mutex_unlock(&s->lock);
  disconnect(ss, PM_DISCONNECT_HANDSHAKE_TIMEOUT, NULL);
}

/* Whether uv_thread_self gave this thread an identity. libuv before 1.45 gives none (a null
 * handle) on Windows to a thread it did not start, so two such threads would compare equal:
 * without one, publishers always wake the loop. */
static int thread_identified(const uv_thread_t *t) {
  static const uv_thread_t none;
  return memcmp(t, &none, sizeof(none)) != 0;
}

/* ---- accepting ---------------------------------------------------------------------------- */

static pm__peer_hook peer_hook;
static void *peer_hook_data;

void pm__event_peer_hook(pm__peer_hook hook, void *data) {
  peer_hook = hook;
  peer_hook_data = data;
}

/* Sends Disconnect{reason} to a connection that will not become the session, then closes it
 * lingering (counted here until closed); past MAX_REJECTING such at once, or its user's share
 * of them, it is just closed. */
static void turn_away(session *ss, const char *what, const char *reason, const char *message) {
  pm_event_server *s = ss->server;
  ss->role = ROLE_AWAY;
  s->rejecting++;
  if (ss->stranger)
    s->rejecting_strangers++;
  log_entry(ss, what, reason);
  if (s->rejecting > MAX_REJECTING || s->rejecting_strangers > MAX_REJECTING_STRANGERS ||
      user_in_role(ss, ROLE_AWAY) >= MAX_REJECTING_PER_USER) {
    close_session(ss, reason);
    return;
  }
  ss->linger = 1;
  disconnect(ss, reason, message);
}

/* The listener cannot go on as it should (Windows): one entry with no peer, "listener". */
static void on_listener_failed(void *data, const char *why) {
  pm_event_server *s = data;
  pm_event_log e;
  if (s->opts.log == NULL)
    return;
  memset(&e, 0, sizeof(e));
  e.peer.pid = e.peer.uid = e.peer.gid = -1;
  e.peer.ngroups = -1;
  e.what = "listener";
  e.reason = why;
  s->opts.log(&e, s->opts.data);
}

static void on_connection(void *data) {
  pm_event_server *s = data;
  session *ss;
  int refused;
  if (s->closing)
    return;
  if (!s->loop_thread_known) {
    uv_thread_t self = uv_thread_self();
    uv_mutex_lock(&s->lock);
    s->loop_thread = self;
    s->loop_thread_known = thread_identified(&self);
    uv_mutex_unlock(&s->lock);
  }
  ss = pm__calloc(1, sizeof(*ss));
  if (ss == NULL)
    return;
  ss->server = s;
  ss->encoding = PM_ENC_JSON;
  pm__parking_init(&ss->parking);
  ss->started_ns = uv_hrtime();
  uv_pipe_init(s->loop, &ss->pipe, 0);
  uv_timer_init(s->loop, &ss->timer);
  ss->pipe.data = ss->timer.data = ss;
  ss->open_handles = 2;
  ss->next = s->sessions;
  s->sessions = ss;
  if (pm__accept(s->listener, &ss->pipe) < 0) {
    close_session(ss, "accept failed");
    return;
  }
  pm__pipe_peer(&ss->pipe, &ss->log.peer, 1);
  if (peer_hook != NULL)
    peer_hook(&ss->log.peer, peer_hook_data);
  /* Who is asking comes first: a stranger learns nothing, not even that a client is attached. */
  pm__authorizing(&ss->log.peer, &ss->pipe);
  refused = s->opts.authorize != NULL && s->opts.authorize(&ss->log.peer, s->opts.data) != 0;
  pm__authorizing(NULL, NULL);
  if (refused) {
    ss->stranger = 1;
    turn_away(ss, "refused", PM_DISCONNECT_NOT_AUTHORIZED, "peer not authorized");
    return;
  }
  /* Client or observer, its handshake tells: an observer that has not said so yet must not
   * hold the client's place. Only as many of a user's wait as could still become one or the
   * other (its share of observers counted); each user waits in places of its own, so one that
   * connects and stays silent (until its handshake timeout) keeps no other user's client out
   * (§5.1, §5.11). */
  if (user_in_role(ss, ROLE_UNDECIDED) <
      user_observer_places_left(ss) + (s->active == NULL ? 1u : 0u)) {
    ss->role = ROLE_UNDECIDED;
  } else if (s->active == NULL) {
    busy(ss, "too many of this user's connections waiting for their handshake");
    return;
  } else {
    busy(ss, user_in_role(ss, ROLE_OBSERVER) >= user_observer_share(s)
                 ? "another client is attached, and too many observers of this user"
                 : "another client is attached");
    return;
  }
  set_state(ss, SESSION_HANDSHAKE);
  if (pm_reader_new(s->opts.max_message, &ss->reader) < 0) {
    close_session(ss, "out of memory");
    return;
  }
  uv_timer_start(&ss->timer, on_handshake_timeout, s->opts.handshake_timeout_ms, 0);
  if (uv_read_start((uv_stream_t *)&ss->pipe, read_alloc, on_read) < 0)
    close_session(ss, "read failed");
}

static void on_wake(uv_async_t *a) {
  dispatch(a->data);
}

static void on_listener_closed(void *data) {
  pm_event_server *s = data;
  s->open_handles--;
  maybe_free_server(s);
}

static void on_server_handle_closed(uv_handle_t *h) { on_listener_closed(h->data); }

static int copy_transient(pm_event_server *s, const char *const *extra) {
  size_t n = 0, i;
  while (extra != NULL && extra[n] != NULL)
    n++;
  s->transient = pm__calloc(n + 2, sizeof(char *));
  if (s->transient == NULL)
    return PM_ENOMEM;
  s->transient[0] = pm__strdup(PM_EVENT_TRAFFIC_CHANGED);
  if (s->transient[0] == NULL)
    return PM_ENOMEM;
  for (i = 0; i < n; i++) {
    s->transient[i + 1] = pm__strdup(extra[i]);
    if (s->transient[i + 1] == NULL)
      return PM_ENOMEM;
  }
  return 0;
}

static int is_transient(const pm_event_server *s, const char *type) {
  for (char **t = s->transient; *t != NULL; t++)
    if (strcmp(*t, type) == 0)
      return 1;
  return 0;
}

int pm_event_server_start(uv_loop_t *loop, const char *name, const pm_event_server_options *opts,
                          pm_event_server **out) {
  pm__listen_spec spec;
  pm_event_server *s;
  int rc;
  if (loop == NULL || name == NULL || opts == NULL || out == NULL ||
      opts->max_message > PM_MAX_MESSAGE_CEILING || opts->epoch < 0)
    return PM_EINVAL;
  s = pm__calloc(1, sizeof(*s));
  if (s == NULL)
    return PM_ENOMEM;
  s->loop = loop;
  s->opts = *opts;
  PM__DEFAULT(s->opts.max_message, PM_MAX_MESSAGE_DEFAULT);
  PM__DEFAULT(s->opts.handshake_timeout_ms, PM_HANDSHAKE_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(s->opts.heartbeat_ms, PM_HEARTBEAT_MS_DEFAULT);
  PM__DEFAULT(s->opts.ack_timeout_ms, PM_ACK_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(s->opts.write_timeout_ms, PM_EVENT_WRITE_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(s->opts.queue_max_events, PM_EVENT_QUEUE_MAX_EVENTS_DEFAULT);
  PM__DEFAULT(s->opts.queue_max_bytes, PM_EVENT_QUEUE_MAX_BYTES_DEFAULT);
  PM__DEFAULT(s->opts.max_observers, PM_EVENT_MAX_OBSERVERS_DEFAULT);
  PM__DEFAULT(s->opts.observer_max_unsent, PM_EVENT_OBSERVER_MAX_UNSENT_DEFAULT);
  if (s->opts.service_name == NULL)
    s->opts.service_name = "pipemsg";
  pm__queue_init(&s->queue, s->opts.queue_max_events, s->opts.queue_max_bytes);
  uv_mutex_init(&s->lock);
  s->closing = 1; /* until started: a failure below frees through maybe_free_server */
  s->store = opts->store;
  rc = copy_transient(s, opts->transient);
  if (rc == 0 && s->store != NULL) {
    /* Events that were queued when the service last stopped (or died) come back first, with
     * their ids, under the stored epoch. */
    size_t skipped = 0;
    rc = pm__store_load(s->store, &s->epoch, &s->next_id, &skipped, on_stored_event, s);
    s->stats.store_skipped = skipped;
    s->id_ceiling = --s->next_id;
    s->queue.listener = on_queue_change;
    s->queue.listener_ctx = s;
  }
  if (opts->epoch != 0)
    s->epoch = opts->epoch;
  else if (s->store == NULL)
    s->epoch = pm__epoch_new();
  if (rc == 0)
    rc = pm_pipe_path(name, s->path, sizeof(s->path));
  if (rc == 0)
    rc = pm__sigpipe_guard_start(loop, &s->sigpipe);
  if (rc < 0) {
    maybe_free_server(s);
    return rc;
  }
  s->wake.data = s;
  s->open_handles = 1;
  uv_async_init(loop, &s->wake, on_wake);
  spec.path = s->path;
  spec.backlog = EVENT_BACKLOG;
  spec.access.mode = opts->socket_mode;
  spec.access.gid = opts->socket_gid;
  spec.access.sddl = opts->pipe_sddl;
  spec.fd = opts->listen_fd;
  spec.failed = on_listener_failed;
  rc = pm__listen(loop, &spec, on_connection, s, &s->listener);
  if (rc < 0) {
    uv_close((uv_handle_t *)&s->wake, on_server_handle_closed);
    return rc;
  }
  s->open_handles++;
  s->closing = 0;
  *out = s;
  return 0;
}

void pm_event_server_close(pm_event_server *s, void (*cb)(void *arg), void *arg) {
  if (s == NULL || s->closing)
    return;
  uv_mutex_lock(&s->lock); /* publishers on other threads see it from now on */
  s->closing = 1;
  uv_mutex_unlock(&s->lock);
  s->close_cb = cb;
  s->close_arg = arg;
  pm__listener_close(s->listener, on_listener_closed, s);
  uv_close((uv_handle_t *)&s->wake, on_server_handle_closed);
  for (session *ss = s->sessions; ss != NULL; ss = ss->next) {
    if (pm__lingering(&ss->lingering))
      close_session(ss, NULL);
    else
      disconnect(ss, PM_DISCONNECT_SHUTDOWN, NULL);
  }
}

/* The XML Event around the Data element, as pm_xml_encode writes it for event_msg's fields
 * (Id, Type, Time, Data in that order), less the id's digits, the type and the time, none of
 * which needs escaping (see json_head). */
#define XML_ENVELOPE "<" PM_KIND_EVENT "><Id></Id><Type></Type><Time></Time></" PM_KIND_EVENT ">"
/* The nodes of an Event besides its Data, counted as pm__tree_nodes counts them of
 * event_msg's fields. XML: the root element, and Id, Type and Time, each an element with
 * text. JSON: the {"Event": ...} wrapper and its member name, the fields object, and Id, Type
 * and Time, each a member name and a value; with Data, its member name (the value's own nodes
 * come from the encoder that wrote its text, pm__json_value_text, in the same walk). */
#define XML_EVENT_NODES 7
#define JSON_EVENT_NODES 9
#define JSON_DATA_NODES(data_nodes) (JSON_EVENT_NODES + 1 + (data_nodes))

/* Whether the event can be delivered to any session: in both encodings, within max_message,
 * with the verdict pm_msg_encode would give event_msg's message (the XML encoding, the
 * stricter, first), without building that message or either encoding. The id is not known
 * yet; the largest one stands in for it. The JSON form is ev's own text in an envelope; the
 * XML form's length is counted by the XML encoder's own writer. data passed pm__tree_check
 * at a field's depth (in pm__event_new_checked); data_nodes is its JSON node count from there. */
static int check_encodable(const pm_event_server *s, const pm__event *ev, json_t *data,
                           size_t data_nodes) {
  uint8_t header[PM_FRAME_HEADER_SIZE];
  size_t head = json_head_max(ev, data != NULL);
  size_t xml_len = 0, xml_nodes = 0, json_nodes = JSON_EVENT_NODES;
  int rc = 0;
  /* The XML size and nodes in one walk; the verdict in pm_xml_encode's order: nodes first. */
  if (data != NULL) {
    rc = pm__xml_element_size("Data", data, &xml_len, &xml_nodes);
    json_nodes = JSON_DATA_NODES(data_nodes);
  }
  if (XML_EVENT_NODES + xml_nodes > PM_NODES_MAX)
    return PM_EMSGSIZE;
  if (rc < 0)
    return rc;
  xml_len += sizeof(XML_ENVELOPE) - 1 + ID_DIGITS_MAX + strlen(ev->type) + strlen(ev->time);
  if (pm_frame_header(xml_len, s->opts.max_message, header) < 0 || json_nodes > PM_NODES_MAX ||
      pm_frame_header(JSON_EVENT_LEN(head, ev->text_len), s->opts.max_message, header) < 0)
    return PM_EMSGSIZE;
  return 0;
}

/* Hands a copy of a published event to the loop for the observers. Under the lock. The feed
 * has the queue's limits: past them the loop is not keeping up, and the observers are cut off
 * rather than the feed growing. */
static void feed_push(pm_event_server *s, const pm__event *published) {
  pm__event *ev;
  if (s->feed_overflow)
    return;
  ev = pm__event_dup(published);
  if (ev == NULL || s->feed_count >= s->opts.queue_max_events ||
      s->feed_bytes + ev->bytes > s->opts.queue_max_bytes) {
    pm__event_free(ev);
    s->feed_overflow = 1;
    return;
  }
  if (s->feed_tail != NULL)
    s->feed_tail->next = ev;
  else
    s->feed = ev;
  s->feed_tail = ev;
  s->feed_count++;
  s->feed_bytes += ev->bytes;
}

/* What the loop does when woken: the client gets the head of the queue if it is idle, the
 * observers what was published since. */
static void dispatch(pm_event_server *s) {
  s->dispatching = 1;
  if (s->active != NULL && s->active->parking.parked) {
    /* Events wait for a heartbeat's answer, which may be in already; if it is not, it wakes
     * the loop when it comes, so the event does not wait for the next tick. */
    session *ss = s->active;
    read_parked(ss);
    if (ss->state == SESSION_PING)
      unpark(ss);
  }
  if (s->active != NULL)
    pump(s->active);
  feed_observers(s);
  s->dispatching = 0;
}

int pm_event_server_publish(pm_event_server *s, const char *type, json_t *data, int64_t *id) {
  char now[PM_TIME_MAX];
  pm__event *ev;
  size_t data_nodes, lost = 0;
  int coalesced = 0, transient, keep, fan, direct, wake, rc;
  int64_t assigned, ceiling;
  uv_thread_t self, loop_thread;
  /* EventsLost is the server's own report of a gap; nobody else may claim one. */
  if (s == NULL || type == NULL || !pm_name_valid(type) ||
      strcmp(type, PM_EVENT_EVENTS_LOST) == 0 || (data != NULL && !json_is_object(data))) {
    json_decref(data);
    return PM_EINVAL;
  }
  pm_time_now(now);
  transient = is_transient(s, type);
  /* The event as the queue keeps it: its Data's JSON text, made once (the id comes later).
   * Data is a field of the Event: depth 2, under the root element. A tree the model refuses
   * (a member name that is not a name, a NUL, too deep; checked in the walk that measures the
   * text) has no encoding in either form. */
  rc = pm__event_new_checked(0, type, json_incref(data), transient, now, &data_nodes, &ev);
  if (rc < 0) {
    json_decref(data);
    return rc == PM_EDEPTH ? PM_EINVAL : rc;
  }
  /* An event no session can encode would stay at the head of the queue for ever. Without Data
   * it is a name and a time: only its size needs checking, and that rarely (this keeps a
   * stream of TrafficChanged-like events cheap). */
  if (data != NULL || s->opts.max_message < EVENT_ENVELOPE_MAX ||
      strlen(type) > s->opts.max_message - EVENT_ENVELOPE_MAX)
    rc = check_encodable(s, ev, data, data_nodes);
  else
    rc = 0;
  json_decref(data);
  if (rc < 0) {
    pm__event_free(ev);
    return rc;
  }
  mutate_begin(s);
  if (s->closing) {
    mutate_end(s);
    pm__event_free(ev);
    return PM_ECANCELED;
  }
  fan = s->observing > 0;
  direct = s->loop_thread_known;
  loop_thread = s->loop_thread;
  assigned = s->next_id + 1;
  ev->id = assigned;
  ceiling = s->id_ceiling;
  /* A restart continues above the reserved block, so an id is only handed out once the block
   * holding it is on disk. */
  if (s->store != NULL && assigned > ceiling)
    ceiling = assigned + ID_BLOCK;
  /* Nobody to tell: a transient event is never stored (§5.3.4). */
  keep = !transient || s->attached;
  /* With a store, "published" means "on disk": the event (and the ids it needs) is written
   * before the queue sees it, and nothing is published when that fails. */
  if (s->store != NULL && (ceiling != s->id_ceiling || (keep && !transient))) {
    rc = pm__store_publish(s->store, ceiling != s->id_ceiling ? ceiling : 0,
                           keep && !transient ? ev : NULL);
    if (rc < 0) {
      s->stats.store_errors++;
      mutate_end(s);
      pm__event_free(ev);
      return rc;
    }
  }
  s->next_id = assigned;
  s->id_ceiling = ceiling;
  s->stats.published++;
  if (fan)
    feed_push(s, ev);
  if (!keep) {
    s->stats.dropped_transient++;
    pm__event_free(ev);
  } else {
    s->stored = ev;
    pm__queue_push(&s->queue, ev, &lost, &coalesced);
    s->stored = NULL;
    s->stats.lost_overflow += lost;
    s->stats.dropped_transient += (uint64_t)coalesced;
  }
  /* The loop has something to do only for observers or an attached client with nothing in
   * flight: one with an event in flight is sent the next when it confirms (or when its
   * transient event times out), and a client that attaches is sent the queue then. Waking the
   * loop for nothing costs a context switch per event on a busy publisher. */
  wake = fan || (keep && s->attached && !s->queue.head_in_flight);
  mutate_end(s);
  if (wake) {
    /* On the loop's own thread (pipemsgd's backend, a command handler) the event goes out now
     * when the session is idle: waking the loop would cost a trip through it. Not from inside
     * such a send (a log callback that publishes): the loop gets it next. */
    self = uv_thread_self();
    if (direct && thread_identified(&self) && uv_thread_equal(&self, &loop_thread) &&
        !s->dispatching) {
      dispatch(s);
    } else {
      uv_async_send(&s->wake);
    }
  }
  if (id != NULL)
    *id = assigned;
  return 0;
}

void pm_event_server_stats(pm_event_server *s, pm_event_stats *out) {
  uv_mutex_lock(&s->lock);
  *out = s->stats;
  out->queued = s->queue.count;
  out->attached = s->attached;
  out->observers = s->observing;
  uv_mutex_unlock(&s->lock);
}

int64_t pm_event_server_epoch(const pm_event_server *s) {
  int64_t epoch;
  /* A handshake may change it (a cursor past every id) while a publisher's thread asks. */
  uv_mutex_lock((uv_mutex_t *)&s->lock);
  epoch = s->epoch;
  uv_mutex_unlock((uv_mutex_t *)&s->lock);
  return epoch;
}

const char *pm_event_server_path(const pm_event_server *s) { return s->path; }
