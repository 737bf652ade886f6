#include <stdio.h>
#include <string.h>

#include "contract/contract.h"
#include "event/event_client_internal.h"
#include "internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/error.h"
#include "pipemsg/event.h"
#include "pipemsg/frame.h"
#include "transport/transport.h"

/* The client treats this many heartbeat intervals of silence as a dead connection (§5.2). */
#define SILENCE_HEARTBEATS 3

static const char *const state_names[PM_EVENT_CLIENT_STATE_MAX] = {
    "connecting", "connected", "disconnected", "stopped"};

typedef enum {
  LINK_PROBING,     /* waiting for the probe's epoch before connecting */
  LINK_CONNECTING,  /* connect and handshake under the handshake deadline */
  LINK_CONNECTED,   /* established; the silence timer runs */
  LINK_BACKOFF,     /* waiting before the next attempt */
  LINK_STOPPING
} link_state;

/* A confirmation given by the application, for on_confirm. The epoch it names, or
 * PM__ANY_EPOCH from pm_event_client_confirm (the epoch current when it is applied). */
#define PM__ANY_EPOCH (-1)
typedef struct {
  int64_t epoch;
  int64_t id;
} pending_confirm;

struct pm_event_client {
  pm_event_client_options opts; /* its client_name and expect_owner_sid are copies, below */
  char *client_name, *owner_sid;
  char path[PM_PIPE_PATH_MAX + 1];
  uv_loop_t *loop;          /* own_loop, or the owner's (pm__event_client_start_on) */
  uv_loop_t own_loop;
  int threaded;             /* pm_event_client_start: own_loop, run by thread */
  uv_thread_t thread;
  uv_async_t stop;          /* threaded only */
  pm__event_probe_cb probe;
  uv_async_t confirm;       /* confirm_later: ids in pending were given */
  uv_mutex_t pending_lock;
  pending_confirm *pending;
  size_t n_pending, cap_pending;
  uv_timer_t timer;
  uv_pipe_t pipe;
  int pipe_open;
  link_state state;
  pm_reader *reader;
  char *read_buf; /* between reads */
  int64_t seq;
  uv_mutex_t cursor_lock; /* epoch, last_id, held: read by pm_event_client_cursor */
  int64_t epoch;   /* of the service we last talked to; 0 before the first session */
  int64_t last_id; /* highest event id handed to the application in that epoch */
  int64_t skip_epoch; /* current_epoch's answer for this attempt; 0: none */
  /* confirm_later: the event this connection's service waits for, 0: none. The service sends
   * nothing while it waits (its acknowledgement timeout governs), so silence is not counted. */
  int64_t unconfirmed;
  /* confirm_later: the event handed over that the application has not confirmed, 0: none;
   * across connections, as it stays queued. Nonzero, it is last_id. */
  int64_t held;
  uint32_t heartbeat_ms;
  uint32_t backoff_ms;
  char reason[PM_REASON_MAX]; /* why the current connection is ending */
  int idle; /* the application did not take an event: no new connection until stopped */
};

const char *pm_event_client_state_name(pm_event_client_state state) {
  return (unsigned)state < PM_EVENT_CLIENT_STATE_MAX ? state_names[state] : "unknown";
}

/* The cursor's id: the last event handed over, but for one the application holds unconfirmed
 * (confirm_later), which a session or client resuming from it is sent again. */
static int64_t resume_id(const pm_event_client *c) {
  return c->held != 0 ? c->held - 1 : c->last_id;
}

static void report(pm_event_client *c, pm_event_client_state st, const char *reason) {
  if (c->opts.on_state != NULL)
    c->opts.on_state(st, reason, c->opts.data);
}

static void connect_now(pm_event_client *c);

static void on_backoff_done(uv_timer_t *t) {
  pm_event_client *c = t->data;
  PM__LOOP_ACTIVITY(c->loop);
  connect_now(c);
}

static void on_pipe_closed(uv_handle_t *h) {
  pm_event_client *c = h->data;
  PM__LOOP_ACTIVITY(c->loop);
  if (c->state != LINK_BACKOFF || c->idle)
    return;
  uv_timer_start(&c->timer, on_backoff_done, c->backoff_ms, 0);
  c->backoff_ms = c->backoff_ms * 2 > c->opts.reconnect_max_ms ? c->opts.reconnect_max_ms
                                                                : c->backoff_ms * 2;
}

/* Drops the connection and, unless stopping, tries again after the backoff. */
static void drop(pm_event_client *c, const char *reason) {
  if (c->state == LINK_BACKOFF || c->state == LINK_STOPPING)
    return;
  if (c->reason[0] == '\0')
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
  pm__debug("event client: disconnected: %s", c->reason);
  c->state = LINK_BACKOFF;
  uv_timer_stop(&c->timer);
  report(c, PM_EVENT_CLIENT_DISCONNECTED, c->reason);
  if (c->pipe_open) {
    c->pipe_open = 0;
    uv_close((uv_handle_t *)&c->pipe, on_pipe_closed);
  } else if (!c->idle) {
    uv_timer_start(&c->timer, on_backoff_done, c->backoff_ms, 0);
  }
}

static void on_deadline(uv_timer_t *t) {
  pm_event_client *c = t->data;
  PM__LOOP_ACTIVITY(c->loop);
  drop(c, c->state == LINK_CONNECTING ? "handshake timed out" : "service silent");
}

static void arm_silence(pm_event_client *c) {
  uv_timer_start(&c->timer, on_deadline, (uint64_t)c->heartbeat_ms * SILENCE_HEARTBEATS, 0);
}

static void on_sent(void *data, int status) {
  pm_event_client *c = data;
  PM__LOOP_ACTIVITY(c->loop);
  /* Not final by itself: a Disconnect saying why may still be waiting to be read, and the end
   * of the stream (or the silence timer) follows anyway. */
  if (status < 0 && c->reason[0] == '\0')
    snprintf(c->reason, sizeof(c->reason), "write failed: %s", pm_strerror(status));
}

/* After each write: what the service leaves unread waits in the write queue, and a service that
 * sends without reading would grow it without end (every event and heartbeat owes it an
 * answer). Past the bound the connection goes, the queue with it, so it holds at most the bound
 * and one message. */
static void after_send(pm_event_client *c, int rc) {
  size_t unsent;
  char why[PM_REASON_MAX];
  if (rc < 0) {
    on_sent(c, rc);
    return;
  }
  unsent = uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe);
  if (unsent <= c->opts.max_unsent)
    return;
  snprintf(why, sizeof(why), "%s: %zu bytes unsent, past max_unsent (%zu)",
           PM_EVENT_CLIENT_NOT_READING, unsent, c->opts.max_unsent);
  drop(c, why);
}

static void send_msg(pm_event_client *c, pm_msg *m) {
  after_send(c, pm__stream_send((uv_stream_t *)&c->pipe, m, c->opts.encoding,
                                c->opts.max_message, on_sent, c));
}

/* A message with one integer field, sent at once. */
static void send_simple(pm_event_client *c, const char *kind, const char *field, int64_t v) {
  pm_msg *m = NULL;
  if (pm_msg_new(kind, &m) < 0 || pm_msg_set_int(m, field, v) < 0) {
    pm_msg_free(m);
    drop(c, "out of memory");
    return;
  }
  send_msg(c, m);
}

/* The confirmation of each event: in JSON its bytes are formatted directly, the frame the
 * encoder would write for it (it is most of the client's own work per event otherwise). */
static void send_confirmation(pm_event_client *c, int64_t id) {
  uint8_t frame[PM_FRAME_HEADER_SIZE + PM__JSON_CONFIRMATION_MAX];
  size_t len;
  int rc;
  if (c->opts.encoding != PM_ENC_JSON) {
    send_simple(c, PM_KIND_EVENT_CONFIRMATION, "Id", id);
    return;
  }
  len = pm__json_confirmation(id, (char *)frame + PM_FRAME_HEADER_SIZE);
  rc = pm_frame_header(len, c->opts.max_message, frame);
  if (rc == 0)
    rc = pm__stream_send_bytes((uv_stream_t *)&c->pipe, frame, PM_FRAME_HEADER_SIZE + len,
                               on_sent, c);
  after_send(c, rc);
}

static void on_handshake_reply(pm_event_client *c, const pm_msg *m) {
  int64_t seq, epoch = 0, hb;
  if (pm_msg_get_int(m, "Seq", &seq) < 0 || seq != c->seq) {
    drop(c, "unexpected handshake from service");
    return;
  }
  /* A service without epochs sends none (0); one that sends a bad one would have it sent back
   * as our resume cursor. */
  if (json_object_get(pm_msg_fields(m), "Epoch") != NULL &&
      (pm_msg_get_int(m, "Epoch", &epoch) < 0 || epoch < 0)) {
    drop(c, "malformed handshake from service: Epoch must be an integer, 0 or more");
    return;
  }
  if (pm_msg_get_int(m, "HeartbeatMs", &hb) == 0 && hb > 0 && hb <= UINT32_MAX)
    c->heartbeat_ms = (uint32_t)hb;
  if (epoch != c->epoch) {
    /* A new epoch means the service's ids restarted: what we saw before says nothing now. */
    uv_mutex_lock(&c->cursor_lock);
    c->epoch = epoch;
    c->last_id = 0;
    c->held = 0;
    uv_mutex_unlock(&c->cursor_lock);
  }
  c->state = LINK_CONNECTED;
  c->unconfirmed = 0;
  c->backoff_ms = c->opts.reconnect_min_ms;
  c->reason[0] = '\0';
  arm_silence(c);
  report(c, PM_EVENT_CLIENT_CONNECTED, NULL);
}

/* An event (time and data NULL when absent, data borrowed) from either decoding. */
static void deliver(pm_event_client *c, int64_t id, const char *type, const char *time,
                    json_t *data, pm_encoding encoding) {
  pm_event ev;
  bool fresh = id > c->last_id;
  int taken = 0;
  /* Ids start at 1 (§3): 0 or less would be confirmed for nothing, and could not be a cursor. */
  if (id < 1) {
    drop(c, "malformed event from service: Id must be 1 or more");
    return;
  }
  if (data != NULL && !json_is_object(data)) {
    drop(c, "malformed event from service: Data must be an object");
    return;
  }
  if (type[0] == '\0') {
    drop(c, "malformed event from service: Type must not be empty");
    return;
  }
  /* Whatever the encoding: the application is not handed a time it cannot parse. */
  if (time != NULL && !pm__ct_time_valid(time, strlen(time))) {
    drop(c, "malformed event from service: Time must be an RFC 3339 time");
    return;
  }
  if (fresh) {
    ev.id = id;
    ev.epoch = c->epoch;
    ev.type = type;
    ev.time = time;
    ev.data = data;
    ev.encoding = encoding;
    if (c->opts.on_take != NULL)
      taken = c->opts.on_take(&ev, c->opts.data);
    else
      c->opts.on_event(&ev, c->opts.data);
    if (taken == PM_ENOMEM) {
      /* Neither confirmed nor counted: the next connection's cursor asks for it again. */
      drop(c, "out of memory taking an event: it is left to the service");
      return;
    }
    if (taken != 0) {
      /* Unconfirmed, the event stays in the service's queue for the next client. */
      c->idle = 1;
      drop(c, PM_EVENT_CLIENT_NOT_TAKEN);
      return;
    }
    uv_mutex_lock(&c->cursor_lock);
    c->last_id = id;
    if (c->opts.confirm_later && !c->opts.observe)
      c->unconfirmed = c->held = id;
    uv_mutex_unlock(&c->cursor_lock);
  } else if (id == c->held) {
    /* Sent again while the application still has it: confirmed when (and if) it confirms, or
     * else it stays queued for the next client. */
    c->unconfirmed = id;
    return;
  }
  /* A duplicate (its confirmation was lost) is confirmed again but not delivered twice. */
  if (!c->opts.observe && (!fresh || !c->opts.confirm_later))
    send_confirmation(c, id);
}

static void on_event(pm_event_client *c, const pm_msg *m) {
  const char *type;
  json_t *time = json_object_get(pm_msg_fields(m), "Time");
  int64_t id;
  if (pm_msg_get_int(m, "Id", &id) < 0 || pm_msg_get_string(m, "Type", &type) < 0) {
    drop(c, "malformed event from service");
    return;
  }
  if (time != NULL && !json_is_string(time)) {
    drop(c, "malformed event from service: Time must be an RFC 3339 time");
    return;
  }
  deliver(c, id, type, json_string_value(time), json_object_get(pm_msg_fields(m), "Data"),
          pm_msg_encoding(m));
}

static void handle(pm_event_client *c, const pm_msg *m) {
  const char *kind = pm_msg_kind(m);
  const char *reason;
  int64_t seq;
  if (strcmp(kind, PM_KIND_DISCONNECT) == 0) {
    if (pm_msg_get_string(m, "Reason", &reason) < 0)
      reason = "unspecified";
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    drop(c, reason);
    return;
  }
  if (c->state == LINK_CONNECTING) {
    if (strcmp(kind, PM_KIND_HANDSHAKE) == 0)
      on_handshake_reply(c, m);
    else if (strcmp(kind, PM_KIND_RESPONSE) == 0)
      drop(c, PM_EVENT_CLIENT_NOT_EVENT_PIPE); /* a command pipe answers it BadRequest */
    else
      drop(c, "service did not answer the handshake");
    return;
  }
  if (strcmp(kind, PM_KIND_HANDSHAKE) == 0 && pm_msg_get_int(m, "Seq", &seq) == 0)
    send_simple(c, PM_KIND_HANDSHAKE, "Seq", seq);
  else if (strcmp(kind, PM_KIND_EVENT) == 0)
    on_event(c, m);
}

/* After a message was handled: 0 to go on reading, 1 when the link was dropped. */
static int handled(pm_event_client *c) {
  if (c->state != LINK_CONNECTED)
    return c->state != LINK_CONNECTING;
  /* Silence is counted from now: time spent in the application's callback is ours. */
  uv_update_time(c->loop);
  if (c->unconfirmed != 0)
    uv_timer_stop(&c->timer);
  else
    arm_silence(c);
  return 0;
}

static int on_message(void *data, const pm_msg *m) {
  pm_event_client *c = data;
  handle(c, m);
  return handled(c);
}

/* An Event on an established JSON link, in the exact form the service writes, is read
 * without building a message (pm__json_event: pm_json_decode would accept it and give the
 * same event); any other payload is decoded and goes through handle(). */
static int on_payload(void *data, const uint8_t *payload, size_t len) {
  pm_event_client *c = data;
  pm__event_view ev;
  if (c->state != LINK_CONNECTED || !pm__json_event(payload, len, &ev))
    return -1;
  deliver(c, ev.id, ev.type, ev.time, ev.data, PM_ENC_JSON);
  json_decref(ev.data);
  return handled(c);
}

static void read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  pm_event_client *c = h->data;
  (void)suggested;
  pm__read_take(&c->read_buf, buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  pm_event_client *c = stream->data;
  char why[PM_REASON_MAX];
  PM__LOOP_ACTIVITY(c->loop);
  if (nread < 0)
    drop(c, nread != UV_EOF                ? "read failed"
            : c->state == LINK_CONNECTING ? PM_EVENT_CLIENT_CLOSED_EARLY
                                          : "service closed the connection");
  else if ((c->state == LINK_CONNECTING || c->state == LINK_CONNECTED) &&
           pm__feed_messages(c->reader, buf->base, (size_t)nread, on_message, on_payload, c, why) < 0)
    drop(c, why);
  pm__read_give(&c->read_buf, buf->base);
}

/* Connected: the owner check, then our handshake. */
static void connected(pm_event_client *c) {
  pm__owner owner;
  pm_msg *m = NULL;
  int rc;
  owner.uid = c->opts.expect_owner_uid;
  owner.sid = c->opts.expect_owner_sid;
  if (pm__pipe_check_owner(&c->pipe, &owner) < 0) {
    drop(c, PM_EVENT_CLIENT_NOT_TRUSTED);
    return;
  }
  pm_reader_free(c->reader);
  c->reader = NULL;
  rc = pm_reader_new(c->opts.max_message, &c->reader);
  if (rc == 0)
    rc = pm_msg_new(PM_KIND_HANDSHAKE, &m);
  if (rc == 0)
    rc = pm_msg_set_int(m, "Seq", ++c->seq);
  if (rc == 0)
    rc = pm_msg_set_int(m, "Version", 1);
  if (rc == 0)
    rc = pm_msg_set_int(m, "Pid", (int64_t)uv_os_getpid());
  if (rc == 0 && c->opts.client_name != NULL)
    rc = pm_msg_set_string(m, "Client", c->opts.client_name);
  if (rc == 0 && c->opts.observe)
    rc = pm_msg_set_string(m, "Mode", PM_MODE_OBSERVE);
  if (rc == 0 && c->skip_epoch != 0) {
    rc = pm_msg_set_int(m, "Epoch", c->skip_epoch);
    if (rc == 0)
      rc = pm_msg_set_int(m, "LastEventId", INT64_MAX);
  } else if (rc == 0 && c->epoch != 0 && !c->opts.observe) {
    /* The resume cursor: the service drops what we already have (§5.4), but for an event the
     * application has not confirmed (held is last_id then). */
    rc = pm_msg_set_int(m, "Epoch", c->epoch);
    if (rc == 0)
      rc = pm_msg_set_int(m, "LastEventId", resume_id(c));
  }
  if (rc < 0) {
    pm_msg_free(m);
    drop(c, "out of memory");
    return;
  }
  send_msg(c, m);
  if (c->state == LINK_CONNECTING &&
      uv_read_start((uv_stream_t *)&c->pipe, read_alloc, on_read) < 0)
    drop(c, "read failed");
}

/* Connects, with the handshake's deadline; skip_epoch is set. */
static void dial(pm_event_client *c) {
  c->state = LINK_CONNECTING;
  uv_update_time(c->loop);
  uv_pipe_init(c->loop, &c->pipe, 0);
  c->pipe.data = c;
  c->pipe_open = 1;
  /* The whole exchange, connect to the service's handshake, has one deadline (§5.1.4). */
  uv_timer_start(&c->timer, on_deadline, c->opts.handshake_timeout_ms, 0);
  /* Not uv_pipe_connect: on Windows it would let the server act as us, and wait for a busy
   * pipe on a thread of its own. */
  if (pm__pipe_dial_now(&c->pipe, c->path) < 0)
    drop(c, "no service on the event pipe");
  else
    connected(c);
}

static void connect_now(pm_event_client *c) {
  bool from_now = c->epoch == 0 && !c->opts.observe;
  c->state = LINK_CONNECTING;
  c->reason[0] = '\0';
  report(c, PM_EVENT_CLIENT_CONNECTING, NULL);
  if (c->state != LINK_CONNECTING)
    return; /* closed by on_state */
  /* The epoch is asked before the deadline starts: its round trip is not the handshake's. */
  if (from_now && c->probe != NULL) {
    c->state = LINK_PROBING;
    c->probe(c, c->opts.data);
    return;
  }
  c->skip_epoch = from_now && c->opts.current_epoch != NULL ? c->opts.current_epoch(c->opts.data)
                                                            : 0;
  dial(c);
}

void pm__event_client_probed(pm_event_client *c, int64_t epoch) {
  if (c->state != LINK_PROBING)
    return;
  c->skip_epoch = epoch;
  dial(c);
}

static void on_confirm(uv_async_t *a) {
  pm_event_client *c = a->data;
  pending_confirm *ids;
  size_t n;
  PM__LOOP_ACTIVITY(c->loop);
  uv_mutex_lock(&c->pending_lock);
  ids = c->pending;
  n = c->n_pending;
  c->pending = NULL;
  c->n_pending = c->cap_pending = 0;
  uv_mutex_unlock(&c->pending_lock);
  for (size_t i = 0; i < n; i++) {
    int64_t id = ids[i].id;
    /* An event of an earlier epoch: its fate was decided by the restart, and its id now names
     * another event, which the application has not confirmed (it stays held and queued). */
    if (ids[i].epoch != PM__ANY_EPOCH && ids[i].epoch != c->epoch)
      continue;
    /* Between connections too: the next cursor then covers it, or, sent again, it is
     * confirmed as a duplicate. */
    if (id == c->held) {
      uv_mutex_lock(&c->cursor_lock);
      c->held = 0;
      uv_mutex_unlock(&c->cursor_lock);
    }
    if (c->state != LINK_CONNECTED)
      continue;
    send_confirmation(c, id);
    if (id == c->unconfirmed && c->state == LINK_CONNECTED) {
      c->unconfirmed = 0;
      arm_silence(c);
    }
  }
  pm__free(ids);
}

/* Queued for on_confirm on the client's thread, which alone knows the current epoch. */
static int queue_confirm(pm_event_client *c, int64_t epoch, int64_t id) {
  int rc = 0;
  uv_mutex_lock(&c->pending_lock);
  if (c->n_pending == c->cap_pending) {
    size_t cap = c->cap_pending ? c->cap_pending * 2 : 16;
    pending_confirm *grown = pm__realloc(c->pending, cap * sizeof(*grown));
    if (grown == NULL) {
      rc = PM_ENOMEM;
    } else {
      c->pending = grown;
      c->cap_pending = cap;
    }
  }
  if (rc == 0) {
    c->pending[c->n_pending].epoch = epoch;
    c->pending[c->n_pending++].id = id;
  }
  uv_mutex_unlock(&c->pending_lock);
  if (rc == 0)
    uv_async_send(&c->confirm);
  return rc;
}

int pm_event_client_confirm(pm_event_client *c, int64_t id) {
  return queue_confirm(c, PM__ANY_EPOCH, id);
}

int pm_event_client_confirm_epoch(pm_event_client *c, int64_t epoch, int64_t id) {
  /* Epochs are 0 (a service without them) or more: a negative one would mean "any". */
  if (epoch < 0)
    return PM_EINVAL;
  return queue_confirm(c, epoch, id);
}

static void shut(pm_event_client *c) {
  /* Confirmations given before the stop are sent first (a write is tried at once): an
   * application that confirms and then closes must not see the event again. */
  on_confirm(&c->confirm);
  c->state = LINK_STOPPING;
  if (c->threaded)
    uv_close((uv_handle_t *)&c->stop, NULL);
  uv_close((uv_handle_t *)&c->confirm, NULL);
  uv_close((uv_handle_t *)&c->timer, NULL);
  if (c->pipe_open) {
    c->pipe_open = 0;
    uv_close((uv_handle_t *)&c->pipe, NULL);
  }
}

static void on_stop(uv_async_t *a) { shut(a->data); }

static void run(void *arg) {
  pm_event_client *c = arg;
  pm__block_sigpipe();
  uv_run(c->loop, UV_RUN_DEFAULT);
  report(c, PM_EVENT_CLIENT_STOPPED, NULL);
}

void pm__event_client_free(pm_event_client *c) {
  if (c == NULL)
    return;
  if (c->threaded)
    uv_loop_close(c->loop);
  uv_mutex_destroy(&c->cursor_lock);
  uv_mutex_destroy(&c->pending_lock);
  pm__free(c->pending);
  pm__free(c->read_buf);
  pm_reader_free(c->reader);
  pm__free(c->client_name);
  pm__free(c->owner_sid);
  pm__free(c);
}

static int start(uv_loop_t *loop, const char *name, const pm_event_client_options *opts,
                 pm__event_probe_cb probe, pm_event_client **out) {
  pm_event_client *c;
  int rc;
  if (opts == NULL || (opts->on_event == NULL) == (opts->on_take == NULL) || out == NULL ||
      opts->max_message > PM_MAX_MESSAGE_CEILING)
    return PM_EINVAL;
  c = pm__calloc(1, sizeof(*c));
  if (c == NULL)
    return PM_ENOMEM;
  c->opts = *opts;
  c->probe = probe;
  if (name == NULL)
    name = pm_pipe_default(PM_PIPE_EVENT);
  PM__DEFAULT(c->opts.handshake_timeout_ms, PM_CLIENT_HANDSHAKE_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(c->opts.heartbeat_ms, PM_HEARTBEAT_MS_DEFAULT);
  PM__DEFAULT(c->opts.reconnect_min_ms, PM_RECONNECT_MIN_MS_DEFAULT);
  if (c->opts.reconnect_max_ms < c->opts.reconnect_min_ms)
    c->opts.reconnect_max_ms = c->opts.reconnect_min_ms > PM_RECONNECT_MAX_MS_DEFAULT
                                   ? c->opts.reconnect_min_ms
                                   : PM_RECONNECT_MAX_MS_DEFAULT;
  PM__DEFAULT(c->opts.max_unsent, PM_EVENT_CLIENT_MAX_UNSENT_DEFAULT);
  PM__DEFAULT(c->opts.encoding, PM_ENC_JSON);
  c->heartbeat_ms = c->opts.heartbeat_ms;
  c->backoff_ms = c->opts.reconnect_min_ms;
  if (c->opts.resume_epoch > 0 && c->opts.resume_last_id >= 0) {
    c->epoch = c->opts.resume_epoch;
    c->last_id = c->opts.resume_last_id;
  }
  c->threaded = loop == NULL;
  c->loop = loop != NULL ? loop : &c->own_loop;
  rc = pm_pipe_path(name, c->path, sizeof(c->path));
  /* Every attempt sends the name and checks the owner: the caller's strings may be gone. */
  if (rc == 0 && opts->client_name != NULL &&
      (c->opts.client_name = c->client_name = pm__strdup(opts->client_name)) == NULL)
    rc = PM_ENOMEM;
  if (rc == 0 && opts->expect_owner_sid != NULL &&
      (c->opts.expect_owner_sid = c->owner_sid = pm__strdup(opts->expect_owner_sid)) == NULL)
    rc = PM_ENOMEM;
  if (rc == 0 && c->threaded)
    rc = pm__uv_error(uv_loop_init(c->loop));
  if (rc < 0) {
    pm__free(c->client_name);
    pm__free(c->owner_sid);
    pm__free(c);
    return rc;
  }
  uv_mutex_init(&c->cursor_lock);
  uv_mutex_init(&c->pending_lock);
  if (c->threaded)
    uv_async_init(c->loop, &c->stop, on_stop);
  uv_async_init(c->loop, &c->confirm, on_confirm);
  uv_timer_init(c->loop, &c->timer);
  c->stop.data = c->timer.data = c->confirm.data = c;
  /* The first attempt is the loop's: nothing runs before the caller has its client. */
  c->state = LINK_BACKOFF;
  uv_timer_start(&c->timer, on_backoff_done, 0, 0);
  if (c->threaded && (rc = pm__uv_error(uv_thread_create(&c->thread, run, c))) < 0) {
    shut(c);
    uv_run(c->loop, UV_RUN_DEFAULT);
    pm__event_client_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int pm_event_client_start(const char *name, const pm_event_client_options *opts,
                          pm_event_client **out) {
  return start(NULL, name, opts, NULL, out);
}

int pm__event_client_start_on(uv_loop_t *loop, const char *name,
                              const pm_event_client_options *opts, pm__event_probe_cb probe,
                              pm_event_client **out) {
  return loop != NULL ? start(loop, name, opts, probe, out) : PM_EINVAL;
}

void pm__event_client_close(pm_event_client *c) {
  if (c != NULL && c->state != LINK_STOPPING)
    shut(c);
}

void pm_event_client_cursor(pm_event_client *c, int64_t *epoch, int64_t *last_id) {
  uv_mutex_lock(&c->cursor_lock);
  *epoch = c->epoch;
  *last_id = resume_id(c);
  uv_mutex_unlock(&c->cursor_lock);
}

void pm_event_client_stop(pm_event_client *c) {
  if (c == NULL)
    return;
  uv_async_send(&c->stop);
  uv_thread_join(&c->thread);
  pm__event_client_free(c);
}
