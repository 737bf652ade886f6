#include <string.h>

#include "command/command_internal.h"
#include "internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/command.h"
#include "pipemsg/error.h"
#include "pipemsg/frame.h"
#include "transport/transport.h"

/* Bytes read from the socket at a time; the frame reader owns the growing payload buffer. A
 * call reads into READ_FIRST bytes on the stack first and takes READ_CHUNK from the heap only
 * once a read fills that (a big response): most responses are small, and malloc consolidates
 * its fast bins for every allocation as big as READ_CHUNK. */
#define READ_CHUNK (64 * 1024)
#define READ_FIRST 4096
#define MS_NS 1000000ull

int pm_request_new(const char *command, int64_t id, json_t *params, pm_msg **out) {
  pm_msg *m = NULL;
  int rc;
  if (command == NULL || command[0] == '\0' || out == NULL) {
    rc = PM_EINVAL;
    goto fail;
  }
  rc = pm_msg_new(PM_KIND_REQUEST, &m);
  if (rc == 0)
    rc = pm_msg_set_string(m, "Command", command);
  if (rc == 0 && id > 0)
    rc = pm_msg_set_int(m, "Id", id);
  if (rc == 0 && params != NULL) {
    rc = pm_msg_set_tree(m, "Params", params);
    params = NULL;
  }
  if (rc < 0)
    goto fail;
  *out = m;
  return 0;
fail:
  json_decref(params);
  pm_msg_free(m);
  return rc;
}

/* The request's bytes not yet sent: the header's, then those of piece i from off on. */
typedef struct request_out {
  const uint8_t *header;
  size_t header_sent;
  pm__piece *pc;
  size_t n, i, off;
} request_out;

/* Up to two pieces at a time, the header counting as one: a big string lent by the encoder is
 * one piece, written straight from the request's tree. */
static long send_some(pm__conn *conn, const request_out *r) {
  if (r->header_sent < PM_FRAME_HEADER_SIZE)
    return pm__conn_send(conn, r->header + r->header_sent, PM_FRAME_HEADER_SIZE - r->header_sent,
                         r->pc[0].p, r->pc[0].len);
  return pm__conn_send(conn, r->pc[r->i].p + r->off, r->pc[r->i].len - r->off,
                       r->i + 1 < r->n ? r->pc[r->i + 1].p : NULL,
                       r->i + 1 < r->n ? r->pc[r->i + 1].len : 0);
}

/* Moves past n bytes sent; 1 once all are. */
static int sent_some(request_out *r, size_t n) {
  size_t h = PM_FRAME_HEADER_SIZE - r->header_sent;
  if (h > n)
    h = n;
  r->header_sent += h;
  n -= h;
  while (n > 0 && r->i < r->n) {
    size_t left = r->pc[r->i].len - r->off;
    if (n < left) {
      r->off += n;
      return 0;
    }
    n -= left;
    r->i++;
    r->off = 0;
  }
  return r->header_sent == PM_FRAME_HEADER_SIZE && r->i == r->n;
}

/* The payload of a whole frame at the start of the n bytes at p, its header judged as
 * pm_reader_feed judges one; NULL when there is none (then the reader is fed them, and judges). */
static const uint8_t *whole_frame(const uint8_t *p, size_t n, size_t max_message,
                                  size_t *len) {
  if (n < PM_FRAME_HEADER_SIZE || pm__frame_length(p, max_message, len) < 0 ||
      *len > n - PM_FRAME_HEADER_SIZE)
    return NULL;
  return p + PM_FRAME_HEADER_SIZE;
}

/* Writes the request and reads one frame, both under the response deadline. Reading goes on
 * while writing: a service may answer before it has read everything (an oversized request gets
 * BadRequest unread), and then a failed write is not the end of the call. The frame is read
 * into small (READ_FIRST bytes) first: a response there whole at the first read is left there
 * (*frame in small: no reader, no copy); else *frame is the reader's, and *owned too
 * (pm__free). */
static int exchange(pm__conn *conn, request_out *out, size_t max_message, uint64_t deadline,
                    uint8_t *small, const uint8_t **frame, size_t *frame_len, uint8_t **owned) {
  int writing = 1, first = 1, rc = 0;
  uint8_t *buf = small, *chunk = NULL, *payload = NULL;
  size_t cap = READ_FIRST;
  pm_reader *reader = NULL;
  while (rc == 0) {
    /* A new connection takes a small request at once: try before waiting (a poll saved). */
    int ready = first ? 2 : pm__conn_wait(conn, writing, deadline);
    first = 0;
    if (ready < 0) {
      rc = ready;
      break;
    }
    if (ready == 0) {
      rc = PM_ETIMEDOUT;
      break;
    }
    if (ready & 2) {
      long n = send_some(conn, out);
      if (n < 0)
        writing = 0;
      else if (sent_some(out, (size_t)n))
        writing = 0;
    }
    if (ready & 1) {
      long n = pm__conn_recv(conn, buf, cap);
      const uint8_t *p = buf;
      if (n == PM_EBUSY)
        continue;
      if (n <= 0) {
        rc = n == 0 ? PM_EEOF : PM_EIO;
        break;
      }
      if (reader == NULL) {
        *frame = whole_frame(buf, (size_t)n, max_message, frame_len);
        if (*frame != NULL)
          return 0;
        rc = pm_reader_new(max_message, &reader);
      }
      if (rc == 0 && (size_t)n == cap && chunk == NULL) {
        chunk = pm__malloc(READ_CHUNK); /* the next reads, once this one is fed */
        if (chunk == NULL)
          rc = PM_ENOMEM;
      }
      while (n > 0 && rc == 0) {
        long used = pm_reader_feed(reader, p, (size_t)n);
        if (used < 0) {
          rc = (int)used;
          break;
        }
        p += used;
        n -= used;
        rc = pm_reader_next(reader, &payload, frame_len);
        if (rc == 1)
          goto done;
      }
      if (chunk != NULL) {
        buf = chunk;
        cap = READ_CHUNK;
      }
    }
  }
done:
  pm__free(chunk);
  pm_reader_free(reader);
  *frame = *owned = payload;
  return rc == 1 ? 0 : rc;
}

/* What a response must echo of its request (§4 item 5). */
typedef struct echo {
  const char *command; /* NULL: the request had none */
  int64_t id;
  int has_id;
} echo;

static echo echo_of(const pm_msg *request) {
  echo e;
  if (pm_msg_get_string(request, "Command", &e.command) < 0)
    e.command = NULL;
  e.has_id = pm_msg_get_int(request, "Id", &e.id) == 0;
  return e;
}

/* 0 for a Response to the request e was taken from. One that names another Command or Id
 * answers another request, whatever it says; one that names neither is an answer given before
 * the request was read (TooManyRequests, BadRequest for its length). */
static int check_response(const pm_msg *response, const echo *e) {
  const json_t *fields = pm_msg_fields(response);
  const char *command;
  int64_t id;
  const json_t *data = json_object_get(fields, "Data");
  if (strcmp(pm_msg_kind(response), PM_KIND_RESPONSE) != 0)
    return PM_EPROTO;
  /* Data is an object (§3); an application handed anything else would misread it. */
  if (data != NULL && !json_is_object(data))
    return PM_EPROTO;
  if (json_object_get(fields, "Command") != NULL &&
      (pm_msg_get_string(response, "Command", &command) < 0 || e->command == NULL ||
       strcmp(command, e->command) != 0))
    return PM_EMISMATCH;
  if (json_object_get(fields, "Id") != NULL &&
      (pm_msg_get_int(response, "Id", &id) < 0 || !e->has_id || id != e->id))
    return PM_EMISMATCH;
  return 0;
}

int pm_command_client_call(const char *name, const pm_client_options *opts,
                           const pm_msg *request, pm_encoding enc, pm_msg **response) {
  pm_client_options o;
  char path[PM_PIPE_PATH_MAX + 1];
  uint8_t header[PM_FRAME_HEADER_SIZE], *payload = NULL, *owned = NULL, small[READ_FIRST];
  const uint8_t *frame = NULL;
  size_t len = 0, frame_len = 0;
  request_out out;
  pm_msg *resp = NULL;
  uint64_t start = uv_hrtime();
  pm__conn *conn = NULL;
  pm__owner owner;
  int rc;
  if (request == NULL || response == NULL)
    return PM_EINVAL;
  if (name == NULL)
    name = pm_pipe_default(PM_PIPE_COMMAND);
  memset(&o, 0, sizeof(o));
  if (opts != NULL)
    o = *opts;
  PM__DEFAULT(o.connect_timeout_ms, PM_CONNECT_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(o.response_timeout_ms, PM_RESPONSE_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(o.max_message, PM_MAX_MESSAGE_DEFAULT);
  rc = pm_pipe_path(name, path, sizeof(path));
  if (rc == 0 && o.max_message > PM_MAX_MESSAGE_CEILING)
    rc = PM_EINVAL; /* as pm_reader_new says, before anything is sent */
  memset(&out, 0, sizeof(out));
  out.header = header;
  if (rc == 0)
    rc = pm__msg_encode_pieces(request, enc, &payload, &out.pc, &out.n, &len);
  if (rc == 0)
    rc = pm_frame_header(len, o.max_message, header);
  if (rc == 0)
    rc = pm__dial(path, start + o.connect_timeout_ms * MS_NS, &conn);
  /* Never hand a request to an impostor squatting on the pipe name. */
  owner.uid = o.expect_owner_uid;
  owner.sid = o.expect_owner_sid;
  if (rc == 0)
    rc = pm__conn_check_owner(conn, &owner);
  if (rc == 0)
    rc = exchange(conn, &out, o.max_message, uv_hrtime() + o.response_timeout_ms * MS_NS, small,
                  &frame, &frame_len, &owned);
  if (rc == 0)
    rc = pm_msg_decode(frame, frame_len, &resp, NULL);
  if (rc == 0) {
    echo e = echo_of(request);
    rc = check_response(resp, &e);
  }
  pm__conn_close(conn);
  pm__free(owned);
  pm__free(payload);
  pm__free(out.pc);
  if (rc < 0) {
    pm_msg_free(resp);
    return rc;
  }
  *response = resp;
  return 0;
}

/* ---- the same call on a loop ----------------------------------------------------------- */

/* Pause between connection attempts while no service accepts (as pm__dial's). */
#define CALL_RETRY_MS 20

typedef enum { CALL_WAITING, CALL_EXCHANGING } call_phase;

struct pm__call {
  uv_loop_t *loop;
  char path[PM_PIPE_PATH_MAX + 1];
  pm_client_options o;
  uv_timer_t timer; /* the pause before the next attempt, or the response deadline */
  uv_pipe_t pipe;
  uv_write_t write;
  int pipe_open;    /* pipe initialised and not yet closed */
  int handles;      /* handles whose close callback has not run */
  call_phase phase;
  uint64_t connect_deadline; /* uv_now() ms */
  uint8_t header[PM_FRAME_HEADER_SIZE];
  uint8_t *payload;
  size_t len;
  pm_reader *reader;
  char *command; /* the request's, for echo */
  echo echo;
  int done;
  int status;
  pm_msg *response;
  pm__call_cb cb;
  void *data;
};

static void call_dial(pm__call *call);

static void call_free(pm__call *call) {
  pm__free(call->command);
  pm__free(call->payload);
  pm_reader_free(call->reader);
  pm_msg_free(call->response);
  pm__free(call);
}

static void call_handle_closed(uv_handle_t *h) {
  pm__call *call = h->data;
  pm_msg *response;
  PM__LOOP_ACTIVITY(call->loop);
  if (--call->handles > 0)
    return;
  response = call->response;
  call->response = NULL;
  call->cb(call->data, call->status, response);
  call_free(call);
}

static void call_finish(pm__call *call, int status, pm_msg *response) {
  if (call->done) {
    pm_msg_free(response);
    return;
  }
  call->done = 1;
  call->status = status;
  call->response = response;
  uv_close((uv_handle_t *)&call->timer, call_handle_closed);
  if (call->pipe_open) {
    call->pipe_open = 0;
    uv_close((uv_handle_t *)&call->pipe, call_handle_closed);
  }
}

void pm__call_cancel(pm__call *call) { call_finish(call, PM_ECANCELED, NULL); }

static void on_call_timer(uv_timer_t *t) {
  pm__call *call = t->data;
  PM__LOOP_ACTIVITY(call->loop);
  if (call->phase == CALL_WAITING)
    call_dial(call);
  else
    call_finish(call, PM_ETIMEDOUT, NULL);
}

/* A failed attempt's pipe has closed: the next one after a pause, if the deadline allows. */
static void on_attempt_closed(uv_handle_t *h) {
  pm__call *call = h->data;
  if (call->done) {
    call_handle_closed(h);
    return;
  }
  PM__LOOP_ACTIVITY(call->loop);
  call->handles--;
  uv_update_time(call->loop);
  if (uv_now(call->loop) + CALL_RETRY_MS >= call->connect_deadline) {
    call_finish(call, PM_ECONNTIMEOUT, NULL);
    return;
  }
  call->phase = CALL_WAITING;
  uv_timer_start(&call->timer, on_call_timer, CALL_RETRY_MS, 0);
}

static void on_call_written(uv_write_t *req, int status) {
  pm__call *call = req->data;
  /* Not final: a service may answer before it has read everything (pm_command_client_call
   * reads on after a failed write too); the end of the stream or the deadline follows. */
  (void)status;
  PM__LOOP_ACTIVITY(call->loop);
}

static void on_call_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  pm__call *call = stream->data;
  const uint8_t *p = (const uint8_t *)buf->base;
  size_t n = nread > 0 ? (size_t)nread : 0;
  PM__LOOP_ACTIVITY(call->loop);
  if (nread < 0)
    call_finish(call, nread == UV_EOF ? PM_EEOF : PM_EIO, NULL);
  while (n > 0 && !call->done) {
    long used = pm_reader_feed(call->reader, p, n);
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    pm_msg *resp = NULL;
    int rc;
    if (used < 0) {
      call_finish(call, (int)used, NULL);
      break;
    }
    p += used;
    n -= (size_t)used;
    rc = pm_reader_next(call->reader, &frame, &frame_len);
    if (rc < 0)
      call_finish(call, rc, NULL);
    if (rc != 1)
      continue;
    rc = pm_msg_decode(frame, frame_len, &resp, NULL);
    pm__free(frame);
    if (rc == 0 && (rc = check_response(resp, &call->echo)) < 0) {
      pm_msg_free(resp);
      resp = NULL;
    }
    call_finish(call, rc, resp);
  }
  pm__free(buf->base);
}

static void call_connected(pm__call *call) {
  pm__owner owner;
  uv_buf_t bufs[2];
  int rc;
  /* Never hand a request to an impostor squatting on the pipe name. */
  owner.uid = call->o.expect_owner_uid;
  owner.sid = call->o.expect_owner_sid;
  rc = pm__pipe_check_owner(&call->pipe, &owner);
  if (rc == 0)
    rc = pm__uv_error(uv_read_start((uv_stream_t *)&call->pipe, pm__read_alloc, on_call_read));
  bufs[0] = uv_buf_init((char *)call->header, sizeof(call->header));
  bufs[1] = uv_buf_init((char *)call->payload, (unsigned int)call->len);
  if (rc == 0)
    rc = pm__uv_error(uv_write(&call->write, (uv_stream_t *)&call->pipe, bufs, 2,
                               on_call_written));
  if (rc < 0) {
    call_finish(call, rc, NULL);
    return;
  }
  call->phase = CALL_EXCHANGING;
  uv_update_time(call->loop);
  uv_timer_start(&call->timer, on_call_timer, call->o.response_timeout_ms, 0);
}

/* One attempt; while nobody accepts, the next after a pause until the connect deadline. */
static void call_dial(pm__call *call) {
  int rc;
  uv_pipe_init(call->loop, &call->pipe, 0);
  call->pipe.data = call;
  call->pipe_open = 1;
  call->handles++;
  rc = pm__pipe_dial_now(&call->pipe, call->path);
  if (rc == PM_EBUSY) {
    call->pipe_open = 0;
    uv_close((uv_handle_t *)&call->pipe, on_attempt_closed);
  } else if (rc < 0) {
    call_finish(call, rc, NULL);
  } else {
    call_connected(call);
  }
}

int pm__call_start(uv_loop_t *loop, const char *path, const pm_client_options *opts,
                   const pm_msg *request, pm_encoding enc, pm__call_cb cb, void *data,
                   pm__call **out) {
  pm__call *call;
  int rc;
  if (loop == NULL || path == NULL || request == NULL || cb == NULL ||
      strlen(path) > PM_PIPE_PATH_MAX)
    return PM_EINVAL;
  call = pm__calloc(1, sizeof(*call));
  if (call == NULL)
    return PM_ENOMEM;
  if (opts != NULL)
    call->o = *opts;
  PM__DEFAULT(call->o.connect_timeout_ms, PM_CONNECT_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(call->o.response_timeout_ms, PM_RESPONSE_TIMEOUT_MS_DEFAULT);
  memcpy(call->path, path, strlen(path) + 1);
  call->echo = echo_of(request);
  if (call->echo.command != NULL) {
    call->echo.command = call->command = pm__strdup(call->echo.command);
    if (call->command == NULL) {
      call_free(call);
      return PM_ENOMEM;
    }
  }
  rc = pm_reader_new(call->o.max_message, &call->reader);
  if (rc == 0)
    rc = pm_msg_encode(request, enc, &call->payload, &call->len);
  if (rc == 0)
    rc = pm_frame_header(call->len, call->o.max_message, call->header);
  if (rc < 0) {
    call_free(call);
    return rc;
  }
  call->loop = loop;
  call->cb = cb;
  call->data = data;
  call->write.data = call->timer.data = call;
  uv_timer_init(loop, &call->timer);
  call->handles = 1;
  uv_update_time(loop);
  call->connect_deadline = uv_now(loop) + call->o.connect_timeout_ms;
  call_dial(call);
  if (out != NULL)
    *out = call;
  return 0;
}

const char *pm_client_result(int err) {
  switch (err) {
  case PM_ECONNTIMEOUT:
    return PM_RESULT_CONNECTION_TIMEOUT;
  case PM_ETIMEDOUT:
    return PM_RESULT_TIMEOUT;
  case PM_ENOTAUTH:
    return PM_RESULT_NOT_AUTHORIZED;
  default:
    return PM_RESULT_TRANSPORT_ERROR;
  }
}
