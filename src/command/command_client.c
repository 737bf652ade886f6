#include <string.h>

#include "internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/command.h"
#include "pipemsg/error.h"
#include "pipemsg/frame.h"
#include "transport/transport.h"

/* Pause between connection attempts while no service accepts (not there yet, or restarting). */
#define CONNECT_RETRY_MS 20

typedef struct client {
  uv_loop_t loop;
  uv_pipe_t pipe;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_write_t write_req;
  char path[PM_PIPE_PATH_MAX + 1];
  pm_client_options opts;
  uint64_t connect_deadline;
  int pipe_open;
  int connected;
  int finished;
  int rc;
  pm_reader *reader;
  uint8_t header[PM_FRAME_HEADER_SIZE];
  uint8_t *payload;
  size_t payload_len;
  pm_msg *response;
} client;

static void finish(client *c, int rc) {
  if (c->finished)
    return;
  c->finished = 1;
  c->rc = rc;
  uv_timer_stop(&c->timer);
  if (c->pipe_open) {
    c->pipe_open = 0;
    uv_close((uv_handle_t *)&c->pipe, NULL);
  }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  client *c = stream->data;
  uint8_t *frame;
  size_t len;
  long used;
  if (nread == 0 || c->finished) {
    pm__free(buf->base);
    return;
  }
  if (nread < 0) {
    pm__free(buf->base);
    finish(c, nread == UV_EOF ? PM_EEOF : PM_EIO);
    return;
  }
  used = pm_reader_feed(c->reader, buf->base, (size_t)nread);
  pm__free(buf->base);
  if (used < 0) {
    finish(c, (int)used);
    return;
  }
  if (pm_reader_next(c->reader, &frame, &len) == 1) {
    int rc = pm_msg_decode(frame, len, &c->response, NULL);
    pm__free(frame);
    if (rc == 0 && strcmp(pm_msg_kind(c->response), PM_KIND_RESPONSE) != 0)
      rc = PM_EPROTO;
    finish(c, rc);
  }
}

static void on_written(uv_write_t *req, int status) {
  (void)req;
  (void)status;
  /* A failed write is not final: the service may already have answered (an oversized request
   * gets BadRequest without being read), so the read side decides. */
}

static void on_response_timeout(uv_timer_t *t) { finish(t->data, PM_ETIMEDOUT); }

static void start_connect(client *c);

static void on_retry_timer(uv_timer_t *t) { start_connect(t->data); }

static void on_closed_for_retry(uv_handle_t *h) {
  client *c = h->data;
  uv_timer_start(&c->timer, on_retry_timer, CONNECT_RETRY_MS, 0);
}

static void on_connect(uv_connect_t *req, int status) {
  client *c = req->data;
  uv_buf_t bufs[2];
  int rc;
  if (c->finished)
    return;
  if (status < 0) {
    int retryable = status == UV_ENOENT || status == UV_ECONNREFUSED || status == UV_EAGAIN;
    if (retryable && uv_now(&c->loop) + CONNECT_RETRY_MS < c->connect_deadline) {
      c->pipe_open = 0;
      uv_close((uv_handle_t *)&c->pipe, on_closed_for_retry);
      return;
    }
    finish(c, retryable ? PM_ECONNTIMEOUT : pm__uv_error(status));
    return;
  }
  c->connected = 1;
  /* Never hand a request to an impostor squatting on the pipe name. */
  rc = pm__pipe_check_owner(&c->pipe, c->opts.expect_owner_uid);
  if (rc < 0) {
    finish(c, rc);
    return;
  }
  uv_timer_start(&c->timer, on_response_timeout, c->opts.response_timeout_ms, 0);
  bufs[0] = uv_buf_init((char *)c->header, sizeof(c->header));
  bufs[1] = uv_buf_init((char *)c->payload, (unsigned int)c->payload_len);
  rc = uv_write(&c->write_req, (uv_stream_t *)&c->pipe, bufs, 2, on_written);
  if (rc == 0)
    rc = uv_read_start((uv_stream_t *)&c->pipe, pm__read_alloc, on_read);
  if (rc < 0)
    finish(c, pm__uv_error(rc));
}

static void start_connect(client *c) {
  uv_pipe_init(&c->loop, &c->pipe, 0);
  c->pipe.data = c;
  c->pipe_open = 1;
  c->connect_req.data = c;
  uv_pipe_connect(&c->connect_req, &c->pipe, c->path, on_connect);
}

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

int pm_command_client_call(const char *name, const pm_client_options *opts,
                           const pm_msg *request, pm_encoding enc, pm_msg **response) {
  client c;
  pm__sigpipe_guard guard;
  int rc;
  if (name == NULL || request == NULL || response == NULL)
    return PM_EINVAL;
  memset(&c, 0, sizeof(c));
  c.rc = PM_EIO; /* if the loop ever ran dry without a verdict */
  if (opts != NULL)
    c.opts = *opts;
  PM__DEFAULT(c.opts.connect_timeout_ms, PM_CONNECT_TIMEOUT_MS_DEFAULT);
  PM__DEFAULT(c.opts.response_timeout_ms, PM_RESPONSE_TIMEOUT_MS_DEFAULT);
  rc = pm_pipe_path(name, c.path, sizeof(c.path));
  if (rc == 0)
    rc = pm_reader_new(c.opts.max_message, &c.reader);
  if (rc == 0)
    rc = pm_msg_encode(request, enc, &c.payload, &c.payload_len);
  if (rc == 0)
    rc = pm_frame_header(c.payload_len, c.opts.max_message, c.header);
  if (rc < 0)
    goto done;
  rc = pm__uv_error(uv_loop_init(&c.loop));
  if (rc < 0)
    goto done;
  uv_timer_init(&c.loop, &c.timer);
  c.timer.data = &c;
  c.connect_deadline = uv_now(&c.loop) + c.opts.connect_timeout_ms;
  pm__sigpipe_block(&guard);
  start_connect(&c);
  while (!c.finished && uv_run(&c.loop, UV_RUN_ONCE) != 0)
    ;
  uv_close((uv_handle_t *)&c.timer, NULL);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  pm__sigpipe_restore(&guard);
  uv_loop_close(&c.loop);
  rc = c.rc;
  if (rc == 0)
    *response = c.response;
  else
    pm_msg_free(c.response);
done:
  pm_reader_free(c.reader);
  pm__free(c.payload);
  return rc;
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
