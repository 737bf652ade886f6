#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/command.h"
#include "pipemsg/error.h"
#include "pipemsg/frame.h"
#include "transport/transport.h"

/* Connections answered before their request was read (TransportNotAuthorized, TooManyRequests,
 * an oversized frame) and lingering so the peer reads the answer (§4.9); past this many at once,
 * such a connection is closed as soon as its answer is written. */
#define MAX_REFUSING 16
/* Of those, at most this many may be peers the authorize hook refused: strangers cannot take
 * every lingering close away from allowed users' TooManyRequests and BadRequest answers. */
#define MAX_REFUSING_STRANGERS (MAX_REFUSING / 2)
/* Bytes read at the start of a turn, on the loop thread's stack, before the loop is asked to
 * wait for more (read_now): a command request is usually much smaller. */
#define READ_NOW_BYTES 4096
/* The least a read into the request's own buffer asks the reader to make room for (as much as
 * a read through a read buffer would bring). */
#define READ_CHUNK (64 * 1024)

/* One connection, from accept to close. One at a time has its turn (§4.1). */
typedef enum {
  CALL_NEW,       /* accepted, not yet placed */
  CALL_WAITING,   /* waiting for its turn; nothing is read, the kernel holds what it sends */
  CALL_READING,   /* its turn: waiting for the whole request frame, under the request deadline */
  CALL_HANDLING,  /* the application has the request */
  CALL_WRITING,   /* the response is being written, under the write deadline */
  CALL_LINGERING, /* an early answer is written: discarding what the peer still sends */
  CALL_CLOSING    /* handles are closing */
} call_state;

struct pm_command_call {
  pm_command_server *server;
  pm_command_call *next; /* in server->calls */
  call_state state;
  pm__link link; /* wrapped in libuv only when the call has to wait */
  uv_timer_t timer;
  int open_handles;
  int handled;    /* the handler was called and has not replied yet */
  int refusing;   /* counted in server->refusing (and refusing_strangers if stranger) */
  int stranger;   /* the authorize hook refused it */
  int linger;     /* a lingering close follows the answer */
  int oversized;  /* answered BadRequest for a frame longer than max_message */
  int bare_wait;  /* its request is awaited through the server's waiter, not yet wrapped */
  uint64_t arrival;  /* accept order */
  uint64_t uid_turn; /* the last turn its uid had (0: none); the same in all its uid's calls */
  pm__linger lingering;
  pm_reader *reader;
  int in_room;    /* the read under way goes straight into the reader's buffer */
  pm_msg *request;
  pm_encoding encoding;
  const char *command; /* lent from request */
  pm_peer peer;
  uint64_t started_ns;
  char result[64];
  char reason[PM_REASON_MAX];
};

struct pm_command_server {
  uv_loop_t *loop;
  pm__listener *listener;
  pm__sigpipe_guard *sigpipe; /* until the last connection is freed */
  pm_command_server_options opts;
  char path[PM_PIPE_PATH_MAX + 1];
  pm_command_call *calls; /* every connection not yet freed */
  pm_command_call *call;  /* the one whose turn it is, or NULL */
  unsigned waiting;       /* calls in CALL_WAITING */
  unsigned refusing;      /* calls with refusing set */
  unsigned refusing_strangers; /* of those, strangers */
  uint64_t arrivals;
  uint64_t turns;
  int pending; /* the transport holds a connection we had no memory for; taken when a call
                  ends or the transport offers it again */
  int closing;
  int listener_open;
  pm__link_waiter *waiter; /* made at the first call whose request was not there at once */
  int waiter_open;
  int reading_now; /* a read_now is on the stack */
  pm_command_call *spare; /* the last call freed, kept for the next: a call is over 1 KiB, and
                             malloc consolidates its fast bins for every allocation that size */
  void (*close_cb)(void *arg);
  void *close_arg;
};

static pm__peer_hook peer_hook;
static void *peer_hook_data;

void pm__command_peer_hook(pm__peer_hook hook, void *data) {
  peer_hook = hook;
  peer_hook_data = data;
}

static void accept_pending(pm_command_server *s);
static void next_turn(pm_command_server *s);

static void maybe_free_server(pm_command_server *s) {
  if (!s->closing || s->listener_open || s->waiter_open || s->calls != NULL)
    return;
  pm__sigpipe_guard_close(s->sigpipe);
  if (s->close_cb != NULL)
    s->close_cb(s->close_arg);
  pm__free(s->spare);
  pm__free(s);
}

static void log_call(pm_command_call *c) {
  pm_command_server *s = c->server;
  pm_command_log entry;
  if (s->opts.log == NULL)
    return;
  entry.peer = c->peer;
  entry.command = c->command;
  entry.result = c->result[0] ? c->result : NULL;
  entry.reason = c->reason;
  entry.duration_ms = (uv_hrtime() - c->started_ns) / 1000000u;
  s->opts.log(&entry, s->opts.data);
}

/* The turn passes on once its call has answered (or is gone). */
static void end_turn(pm_command_call *c) {
  pm_command_server *s = c->server;
  if (s->call != c)
    return;
  s->call = NULL;
  next_turn(s);
}

/* Runs when the connection is fully gone: both handles closed and the application done. */
static void maybe_free_call(pm_command_call *c) {
  pm_command_server *s = c->server;
  pm_command_call **pp;
  if (c->open_handles > 0 || c->handled)
    return;
  log_call(c);
  pm_reader_free(c->reader);
  pm_msg_free(c->request);
  for (pp = &s->calls; *pp != c; pp = &(*pp)->next)
    ;
  *pp = c->next;
  if (c->refusing) {
    s->refusing--;
    if (c->stranger)
      s->refusing_strangers--;
  }
  if (s->call == c)
    s->call = NULL;
  if (s->spare == NULL && !s->closing)
    s->spare = c;
  else
    pm__free(c);
  if (s->closing) {
    maybe_free_server(s);
    return;
  }
  next_turn(s);
  accept_pending(s);
}

static void on_call_handle_closed(uv_handle_t *h) {
  pm_command_call *c = h->data;
  c->open_handles--;
  maybe_free_call(c);
}

static void close_call(pm_command_call *c, const char *reason) {
  if (c->state == CALL_CLOSING)
    return;
  if (c->state == CALL_WAITING)
    c->server->waiting--;
  pm__linger_stop(&c->lingering);
  if (reason != NULL && c->reason[0] == '\0')
    pm__copy_text(c->reason, sizeof(c->reason), reason);
  c->state = CALL_CLOSING;
  c->open_handles = 1 + pm__link_close(&c->link, on_call_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_call_handle_closed);
}

/* Hands the connection to libuv, for a call that has to wait: 0, or closed. */
static int wrap(pm_command_call *c) {
  int rc = pm__link_wrap(c->server->loop, &c->link);
  c->link.pipe.data = c;
  if (rc < 0)
    close_call(c, "could not wait on the connection");
  return rc;
}

static void stop_reading(pm_command_call *c) {
  if (c->link.wrapped)
    uv_read_stop((uv_stream_t *)&c->link.pipe);
}

static void on_lingered(void *data) { close_call(data, NULL); }

/* The early answer is out: the turn (if this call had it) passes on while the peer is given
 * the time to read the answer (§4.9). */
static void linger(pm_command_call *c) {
  pm_command_server *s = c->server;
  /* A client sending an oversized frame writes all of it before it reads: let it finish a
   * frame up to twice the limit (the request deadline still bounds the time). */
  size_t budget = PM__LINGER_MAX_BYTES;
  if (c->oversized && s->opts.max_message > budget / 2)
    budget = 2 * s->opts.max_message;
  uv_timer_stop(&c->timer);
  if (wrap(c) < 0)
    return;
  c->state = CALL_LINGERING;
  end_turn(c);
  pm__linger_start(&c->lingering, (uv_stream_t *)&c->link.pipe, &c->timer,
                   s->opts.request_timeout_ms, budget, on_lingered, c);
}

/* Counts c among the connections being refused; 0 when too many already are. */
static int take_refusing(pm_command_call *c) {
  pm_command_server *s = c->server;
  if (s->refusing >= MAX_REFUSING ||
      (c->stranger && s->refusing_strangers >= MAX_REFUSING_STRANGERS))
    return 0;
  s->refusing++;
  if (c->stranger)
    s->refusing_strangers++;
  c->refusing = 1;
  return 1;
}

static void on_write_timeout(uv_timer_t *t) { close_call(t->data, "response write timed out"); }

static void on_written(void *data, int status) {
  pm_command_call *c = data;
  if (c->state != CALL_WRITING)
    return;
  if (status == 0 && c->linger)
    linger(c);
  else
    close_call(c, status == 0 ? "ok" : "response write failed");
}

/* pm__stream_send on a connection not yet wrapped: 1 when written whole at once, 0 when the
 * rest is queued (the connection is wrapped then), <0 as pm__stream_send. */
static int send_now(pm_command_call *c, pm_msg *resp) {
  uint8_t header[PM_FRAME_HEADER_SIZE], *payload = NULL;
  size_t len = 0;
  long n;
  int rc = pm_msg_encode(resp, c->encoding, &payload, &len);
  if (rc == 0)
    rc = pm_frame_header(len, c->server->opts.max_message, header);
  pm_msg_free(resp);
  if (rc < 0) {
    pm__free(payload);
    return rc;
  }
  n = pm__link_write_now(&c->link, header, sizeof(header), payload, len);
  if (n == (long)(sizeof(header) + len) || n < 0) {
    pm__free(payload);
    return n < 0 ? (int)n : 1;
  }
  rc = pm__link_wrap(c->server->loop, &c->link);
  c->link.pipe.data = c;
  if (rc < 0) {
    pm__free(payload);
    return rc;
  }
  return pm__stream_send_rest((uv_stream_t *)&c->link.pipe, header, payload, len, (size_t)n,
                              on_written, c);
}

/* Encodes and writes one Response in the request's encoding, then closes. */
static int send_response(pm_command_call *c, const char *result, const char *message,
                         json_t *data) {
  pm_command_server *s = c->server;
  pm_msg *resp = NULL;
  call_state before;
  int64_t id;
  int rc;

  rc = pm_msg_new(PM_KIND_RESPONSE, &resp);
  if (rc < 0)
    goto fail;
  if (c->command != NULL)
    rc = pm_msg_set_string(resp, "Command", c->command);
  if (rc == 0 && c->request != NULL && pm_msg_get_int(c->request, "Id", &id) == 0)
    rc = pm_msg_set_int(resp, "Id", id);
  if (rc == 0)
    rc = pm_msg_set_string(resp, "Result", result);
  if (rc == 0 && message != NULL)
    rc = pm_msg_set_string(resp, "Message", message);
  if (rc == 0 && data != NULL) {
    rc = pm_msg_set_tree(resp, "Data", data);
    data = NULL;
  }
  if (rc < 0)
    goto fail;
  /* The state first: on_written checks it. */
  before = c->state;
  pm__copy_text(c->result, sizeof(c->result), result);
  c->state = CALL_WRITING;
  if (c->link.wrapped)
    rc = pm__stream_send((uv_stream_t *)&c->link.pipe, resp, c->encoding, s->opts.max_message,
                         on_written, c);
  else
    rc = send_now(c, resp);
  resp = NULL;
  if (rc < 0) {
    c->result[0] = '\0';
    c->state = before;
    goto fail;
  }
  /* Most responses are written whole at once: only a remainder left to the loop needs the
   * write deadline (on_written runs from the loop, never before this returns). */
  if (rc == 1)
    on_written(c, 0);
  else
    uv_timer_start(&c->timer, on_write_timeout, s->opts.write_timeout_ms, 0);
  return 0;

fail:
  json_decref(data);
  pm_msg_free(resp);
  return rc;
}

/* A response that must go out whatever happened; if even it cannot be built, just close. */
static void reply_or_close(pm_command_call *c, const char *result, const char *message) {
  if (c->reason[0] == '\0' && message != NULL)
    pm__copy_text(c->reason, sizeof(c->reason), message);
  if (send_response(c, result, message, NULL) < 0)
    close_call(c, "could not build response");
}

static void bad_request(pm_command_call *c, const char *why) {
  snprintf(c->reason, sizeof(c->reason), "bad request: %.180s", why);
  reply_or_close(c, PM_RESULT_BAD_REQUEST, why);
}

/* Checks the Request envelope (required and typed fields) and hands it to the application. */
static void dispatch(pm_command_call *c, uint8_t *payload, size_t len) {
  pm_command_server *s = c->server;
  char why[PM_REASON_MAX] = "";
  pm_encoding enc;
  const char *command;
  const json_t *params;
  int64_t id;
  int rc;

  if (pm_detect_encoding(payload, len, &enc) == 0)
    c->encoding = enc;
  rc = pm_msg_decode(payload, len, &c->request, why);
  pm__free(payload);
  if (rc < 0) {
    bad_request(c, why[0] ? why : pm_strerror(rc));
    return;
  }
  if (strcmp(pm_msg_kind(c->request), PM_KIND_REQUEST) != 0) {
    snprintf(why, sizeof(why), "expected a Request, got %.80s", pm_msg_kind(c->request));
    bad_request(c, why);
    return;
  }
  rc = pm_msg_get_string(c->request, "Command", &command);
  if (rc < 0 || command[0] == '\0') {
    bad_request(c, rc == PM_ENOENT ? "Command is required" : "Command must be a non-empty string");
    return;
  }
  c->command = command;
  rc = pm_msg_get_int(c->request, "Id", &id);
  if (rc == PM_ETYPE) {
    bad_request(c, "Id must be an integer");
    return;
  }
  params = json_object_get(pm_msg_fields(c->request), "Params");
  if (params != NULL && !json_is_object(params)) {
    bad_request(c, "Params must be an object");
    return;
  }
  c->state = CALL_HANDLING;
  c->handled = 1;
  s->opts.handler(c, s->opts.data);
}

/* The reader has taken used bytes of the request (or failed): 1 once the call has moved on
 * (dispatched, answered or closing), 0 while the frame is still incomplete. */
static int took_bytes(pm_command_call *c, long used) {
  uint8_t *payload;
  size_t len;
  char why[PM_REASON_MAX];

  if (used == PM_EMSGSIZE) {
    stop_reading(c);
    uv_timer_stop(&c->timer);
    /* The client may still be writing the payload, and will read the answer only then. */
    c->oversized = 1;
    c->linger = take_refusing(c);
    snprintf(why, sizeof(why), "frame length out of range (1..%zu)", c->server->opts.max_message);
    bad_request(c, why);
    return 1;
  }
  if (used < 0) {
    close_call(c, pm_strerror((int)used));
    return 1;
  }
  if (pm_reader_next(c->reader, &payload, &len) == 1) {
    stop_reading(c);
    uv_timer_stop(&c->timer);
    dispatch(c, payload, len);
    return 1;
  }
  return 0;
}

/* Takes bytes of the request, and frees owned (the buffer they came in, or NULL) once the
 * reader has them: as took_bytes. */
static int take_bytes(pm_command_call *c, const void *buf, size_t n, void *owned) {
  long used = pm_reader_feed(c->reader, buf, n);
  pm__free(owned);
  return took_bytes(c, used);
}

/* Once the header is in, the payload is read straight into the reader's buffer: a big request
 * is then copied once from the socket, not through a read buffer (and the pages it fills are
 * the ones it keeps). */
static void read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  pm_command_call *c = h->data;
  uint8_t *room;
  size_t n;
  int rc = c->state == CALL_READING ? pm__reader_room(c->reader, READ_CHUNK, &room, &n) : 0;
  c->in_room = rc == 1;
  if (rc == 1) {
    *buf = uv_buf_init((char *)room, n > UINT_MAX ? UINT_MAX : (unsigned int)n);
    return;
  }
  if (rc < 0) {
    /* No buffer: libuv reports UV_ENOBUFS to on_read, which closes the call. */
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  pm__read_alloc(h, suggested, buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  pm_command_call *c = stream->data;
  void *owned = c->in_room ? NULL : buf->base;

  c->in_room = 0;
  if (c->state != CALL_READING || nread == 0) {
    pm__free(owned);
    return;
  }
  if (nread < 0) {
    pm__free(owned);
    close_call(c, nread == UV_EOF ? "client closed before a whole request" : "read failed");
    return;
  }
  if (owned == NULL) {
    pm__reader_filled(c->reader, (size_t)nread);
    took_bytes(c, nread);
    return;
  }
  take_bytes(c, buf->base, (size_t)nread, owned);
}

/* Most clients have sent their whole request by the time their turn comes (at once, for the
 * first in line): reading it here, before asking the loop, saves a loop round per call (a
 * poll registration and a wait). 1 once the call has moved on, 0 to read through the loop. */
static int read_now(pm_command_call *c) {
  uint8_t buf[READ_NOW_BYTES];
  long n = pm__link_read_now(&c->link, buf, sizeof(buf));
  if (n == PM_EBUSY)
    return 0;
  if (n <= 0) {
    close_call(c, n == 0 ? "client closed before a whole request" : "read failed");
    return 1;
  }
  return take_bytes(c, buf, (size_t)n, NULL);
}

static void on_request_timeout(uv_timer_t *t) {
  pm_command_call *c = t->data;
  /* §4.2: no response for a client that did not deliver a request in time. */
  close_call(c, "no complete request before the deadline");
}

/* The rest of the request comes through libuv, under the request deadline already running. */
static void read_through_loop(pm_command_call *c) {
  if (wrap(c) < 0)
    return;
  if (uv_read_start((uv_stream_t *)&c->link.pipe, read_alloc, on_read) < 0)
    close_call(c, "read failed");
}

/* A waited-for request has arrived (or the peer has gone): read it as read_now does; what is
 * still missing after that read comes through the loop. */
static void on_link_ready(void *data, uint64_t token) {
  pm_command_server *s = data;
  pm_command_call *c;
  int done;
  for (c = s->calls; c != NULL; c = c->next)
    if (c->arrival == token)
      break;
  if (c == NULL || !c->bare_wait || c->state != CALL_READING)
    return;
  c->bare_wait = 0;
  s->reading_now = 1; /* as in start_turn: a turn this one ends reads through the loop */
  done = read_now(c);
  s->reading_now = 0;
  if (!done)
    read_through_loop(c);
}

static void on_waiter_closed(void *data) {
  pm_command_server *s = data;
  s->waiter_open = 0;
  maybe_free_server(s);
}

/* A call whose request is not there yet waits for it on its bare socket (Unix): wrapping it
 * costs more syscalls than the wait itself. 0 when waiting, else the caller wraps it. */
static int wait_bare(pm_command_call *c) {
  pm_command_server *s = c->server;
  int rc;
  if (c->link.wrapped)
    return PM_EINVAL;
  if (s->waiter == NULL) {
    rc = pm__link_waiter_new(s->loop, on_link_ready, s, &s->waiter);
    if (rc < 0) {
      s->waiter = NULL;
      return rc;
    }
    s->waiter_open = 1;
  }
  rc = pm__link_wait(s->waiter, &c->link, c->arrival);
  c->bare_wait = rc == 0;
  return rc;
}

/* start_turn's early when nothing was read before the turn. */
#define NOT_READ 0

/* The call's turn: its request deadline starts now, whatever it sent while it waited. early
 * is what accept_pending read from a call served at once: nearly bytes, PM_EBUSY when it found
 * nothing yet (no second try then), or NOT_READ. */
static void start_turn(pm_command_call *c, const void *early, long nearly) {
  pm_command_server *s = c->server;
  pm_command_call *o;
  int rc;
  s->call = c;
  c->state = CALL_READING;
  s->turns++;
  for (o = s->calls; o != NULL; o = o->next)
    if (pm__same_user(&o->peer, &c->peer))
      o->uid_turn = s->turns;
  rc = pm_reader_new(s->opts.max_message, &c->reader);
  if (rc < 0) {
    close_call(c, pm_strerror(rc));
    return;
  }
  if (nearly > 0) {
    if (take_bytes(c, early, (size_t)nearly, NULL))
      return;
  } else if (nearly == NOT_READ && !s->reading_now) {
    /* Not while another turn's read_now is on the stack: a turn that ends at once (an
     * oversized frame's answer, then lingering) starts the next one, and reading there too
     * would nest a read buffer per waiting connection. That one reads through the loop. */
    int done;
    s->reading_now = 1;
    done = read_now(c);
    s->reading_now = 0;
    if (done)
      return;
  }
  uv_timer_start(&c->timer, on_request_timeout, s->opts.request_timeout_ms, 0);
  if (wait_bare(c) == 0)
    return;
  read_through_loop(c);
}

/* Round-robin by uid: the waiting call whose uid had its last turn longest ago (or never) goes
 * next, and a uid's own calls go in arrival order. So one uid, however many connections it
 * keeps idle, delays another uid by at most the one turn being served. */
static void next_turn(pm_command_server *s) {
  pm_command_call *c, *best = NULL;
  if (s->call != NULL || s->closing)
    return;
  for (c = s->calls; c != NULL; c = c->next) {
    if (c->state != CALL_WAITING)
      continue;
    if (best == NULL || c->uid_turn < best->uid_turn ||
        (c->uid_turn == best->uid_turn && c->arrival < best->arrival))
      best = c;
  }
  if (best == NULL)
    return;
  s->waiting--;
  start_turn(best, NULL, NOT_READ);
}

/* Answers at once, then a lingering close; past MAX_REFUSING, a plain close after the answer
 * (a client that reads before it writes still gets it). */
static void refuse(pm_command_call *c, const char *result, const char *message) {
  c->linger = take_refusing(c);
  pm__copy_text(c->reason, sizeof(c->reason), message);
  reply_or_close(c, result, message);
}

/* How many calls of c's uid (c aside) wait or have the turn; c->uid_turn takes its uid's
 * last turn. */
static unsigned uid_held(pm_command_call *c) {
  pm_command_server *s = c->server;
  pm_command_call *o;
  unsigned n = 0;
  for (o = s->calls; o != NULL; o = o->next) {
    if (o == c || !pm__same_user(&o->peer, &c->peer))
      continue;
    c->uid_turn = o->uid_turn;
    if (o->state == CALL_WAITING || o == s->call)
      n++;
  }
  return n;
}

/* Takes the connection the transport holds (the listen backlog on Unix): it is refused, queued
 * or served. */
static void accept_pending(pm_command_server *s) {
  uint8_t early[READ_NOW_BYTES];
  pm_command_call *c;
  long nearly = NOT_READ;
  int rc, first;
  if (!s->pending || s->closing)
    return;
  c = s->spare;
  s->spare = NULL;
  if (c != NULL)
    memset(c, 0, sizeof(*c));
  else
    c = pm__calloc(1, sizeof(*c));
  if (c == NULL)
    return; /* the transport offers the connection again (and takes no other until then) */
  s->pending = 0;
  c->server = s;
  c->state = CALL_NEW;
  c->encoding = PM_ENC_JSON;
  if (s->opts.log != NULL)
    c->started_ns = uv_hrtime(); /* only the log line says how long a call took */
  c->arrival = ++s->arrivals;
  c->peer.pid = c->peer.uid = c->peer.gid = -1;
  c->next = s->calls;
  s->calls = c;
  uv_timer_init(s->loop, &c->timer);
  c->timer.data = c;
  c->open_handles = 2; /* counted again by close_call */
  rc = pm__accept_link(s->listener, &c->link);
  c->link.pipe.data = c;
  if (rc < 0) {
    close_call(c, "accept failed");
    return;
  }
  pm__link_peer(&c->link, &c->peer, !s->opts.groups_on_demand);
  if (peer_hook != NULL)
    peer_hook(&c->peer, peer_hook_data);
  /* A client that connected and left at once (a burst of them sits in the backlog) takes no
   * place and no refusal. One served at once (nobody ahead of it) is read now: that read says
   * whether it has gone, and saves a second one for the request; nothing read is acted on
   * before it is authorized, and a refused peer's bytes are dropped. One that has to wait in
   * line is only peeked at: what it sent stays in the kernel until its turn. */
  first = s->call == NULL && s->waiting == 0 && !s->reading_now;
  if (first) {
    nearly = pm__link_read_first(&c->link, early, sizeof(early));
    rc = nearly == 0 || (nearly < 0 && nearly != PM_EBUSY);
  } else {
    rc = pm__link_peer_gone(&c->link);
  }
  if (rc) {
    close_call(c, "client closed before a whole request");
    return;
  }
  /* Who is asking comes first: a refused peer takes no place in the queue. */
  pm__authorizing_link(&c->peer, &c->link);
  rc = s->opts.authorize != NULL ? s->opts.authorize(&c->peer, s->opts.data) : 0;
  pm__authorizing(NULL, NULL);
  if (rc != 0) {
    c->stranger = 1;
    refuse(c, PM_RESULT_NOT_AUTHORIZED, "peer not authorized");
    return;
  }
  if (uid_held(c) >= s->opts.max_per_uid) {
    refuse(c, PM_RESULT_TOO_MANY_REQUESTS, "too many connections from this user");
    return;
  }
  if (s->call != NULL && s->waiting >= s->opts.max_waiting) {
    refuse(c, PM_RESULT_TOO_MANY_REQUESTS, "too many connections waiting");
    return;
  }
  if (first) {
    s->reading_now = 1;
    start_turn(c, early, nearly);
    s->reading_now = 0;
    return;
  }
  c->state = CALL_WAITING;
  s->waiting++;
  next_turn(s);
}

/* The listener cannot go on as it should (Windows): one entry with no peer, no command and no
 * result, its reason starting "listener: ". */
static void on_listener_failed(void *data, const char *why) {
  pm_command_server *s = data;
  pm_command_log entry;
  char reason[PM_REASON_MAX];
  if (s->opts.log == NULL)
    return;
  memset(&entry, 0, sizeof(entry));
  entry.peer.pid = entry.peer.uid = entry.peer.gid = -1;
  entry.peer.ngroups = -1;
  snprintf(reason, sizeof(reason), "listener: %s", why);
  entry.reason = reason;
  s->opts.log(&entry, s->opts.data);
}

static void on_connection(void *data) {
  pm_command_server *s = data;
  if (s->closing)
    return;
  s->pending = 1;
  accept_pending(s);
}

static void on_listener_closed(void *data) {
  pm_command_server *s = data;
  s->listener_open = 0;
  maybe_free_server(s);
}

int pm_command_server_start(uv_loop_t *loop, const char *name,
                            const pm_command_server_options *opts, pm_command_server **out) {
  pm__listen_spec spec;
  pm_command_server *s;
  int rc;
  if (loop == NULL || name == NULL || opts == NULL || opts->handler == NULL || out == NULL ||
      opts->max_message > PM_MAX_MESSAGE_CEILING)
    return PM_EINVAL;
  s = pm__calloc(1, sizeof(*s));
  if (s == NULL)
    return PM_ENOMEM;
  s->loop = loop;
  s->opts = *opts;
  PM__DEFAULT(s->opts.max_message, PM_MAX_MESSAGE_DEFAULT);
  PM__DEFAULT(s->opts.request_timeout_ms, PM_REQUEST_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(s->opts.write_timeout_ms, PM_WRITE_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(s->opts.max_waiting, PM_COMMAND_MAX_WAITING_DEFAULT);
  PM__DEFAULT(s->opts.max_per_uid, PM_COMMAND_MAX_PER_UID_DEFAULT);
  if (s->opts.backlog <= 0)
    s->opts.backlog = PM_BACKLOG_DEFAULT;
  rc = pm_pipe_path(name, s->path, sizeof(s->path));
  if (rc < 0) {
    pm__free(s);
    return rc;
  }
  spec.path = s->path;
  spec.backlog = s->opts.backlog;
  spec.access.mode = s->opts.socket_mode;
  spec.access.gid = s->opts.socket_gid;
  spec.access.sddl = s->opts.pipe_sddl;
  spec.fd = s->opts.listen_fd;
  spec.failed = on_listener_failed;
  rc = pm__sigpipe_guard_start(loop, &s->sigpipe);
  if (rc == 0)
    rc = pm__listen(loop, &spec, on_connection, s, &s->listener);
  if (rc < 0) {
    pm__sigpipe_guard_close(s->sigpipe);
    pm__free(s);
    return rc;
  }
  s->listener_open = 1;
  *out = s;
  return 0;
}

void pm_command_server_close(pm_command_server *s, void (*cb)(void *arg), void *arg) {
  if (s == NULL || s->closing)
    return;
  s->closing = 1;
  s->close_cb = cb;
  s->close_arg = arg;
  pm__listener_close(s->listener, on_listener_closed, s);
  if (s->waiter != NULL)
    pm__link_waiter_close(s->waiter, on_waiter_closed, s);
  s->waiter = NULL;
  /* close_call frees nothing at once, so the list stays walkable. */
  for (pm_command_call *c = s->calls; c != NULL; c = c->next)
    close_call(c, "service stopping");
}

const char *pm_command_server_path(const pm_command_server *s) { return s->path; }

const pm_msg *pm_command_call_request(const pm_command_call *call) { return call->request; }

const char *pm_command_call_command(const pm_command_call *call) { return call->command; }

const json_t *pm_command_call_params(const pm_command_call *call) {
  return json_object_get(pm_msg_fields(call->request), "Params");
}

const pm_peer *pm_command_call_peer(const pm_command_call *call) { return &call->peer; }

int pm_command_call_reply(pm_command_call *call, const char *result, const char *message,
                          json_t *data) {
  int rc;
  if (call == NULL || !call->handled || result == NULL || result[0] == '\0') {
    json_decref(data);
    return PM_EINVAL;
  }
  call->handled = 0;
  if (message != NULL && strcmp(result, PM_RESULT_OK) != 0 && call->reason[0] == '\0')
    pm__copy_text(call->reason, sizeof(call->reason), message);
  if (call->state != CALL_HANDLING) {
    /* The connection went away (the server is closing) while the application held it. */
    json_decref(data);
    maybe_free_call(call);
    return PM_ECANCELED;
  }
  rc = send_response(call, result, message, data);
  if (rc < 0) {
    snprintf(call->reason, sizeof(call->reason), "could not send response: %s", pm_strerror(rc));
    if (call->state == CALL_HANDLING)
      reply_or_close(call, PM_RESULT_ERROR, "response could not be encoded");
  }
  return rc;
}
