#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/error.h"
#include "pipemsg/frame.h"
#include "transport/transport.h"

/* Bytes taken from a socket per read; frame readers own the growing payload buffers. */
#define READ_CHUNK (64 * 1024)

typedef struct send_req {
  uv_write_t req;
  pm__sent_cb cb;
  void *data;
  uint8_t header[PM_FRAME_HEADER_SIZE];
  uint8_t *payload;
} send_req;

static void on_sent(uv_write_t *req, int status) {
  send_req *w = (send_req *)req;
  pm__sent_cb cb = w->cb;
  void *data = w->data;
  pm__free(w->payload);
  pm__free(w);
  if (cb != NULL)
    cb(data, pm__uv_error(status));
}

/* Queues what is left of w's frame after done bytes; frees w on failure. */
static int queue_rest(uv_stream_t *stream, send_req *w, size_t len, size_t done) {
  uv_buf_t bufs[2];
  int rc, held = pm__sigpipe_hold(); /* uv_write writes at once when nothing is queued */
  if (done >= sizeof(w->header)) {
    bufs[0] = uv_buf_init((char *)w->payload + (done - sizeof(w->header)),
                          (unsigned int)(len - (done - sizeof(w->header))));
    rc = pm__uv_error(uv_write(&w->req, stream, bufs, 1, on_sent));
  } else {
    bufs[0] = uv_buf_init((char *)w->header + done, (unsigned int)(sizeof(w->header) - done));
    bufs[1] = uv_buf_init((char *)w->payload, (unsigned int)len);
    rc = pm__uv_error(uv_write(&w->req, stream, bufs, 2, on_sent));
  }
  pm__sigpipe_release(held);
  if (rc < 0) {
    pm__free(w->payload);
    pm__free(w);
  }
  return rc < 0 ? rc : 0;
}

int pm__stream_send(uv_stream_t *stream, pm_msg *m, pm_encoding enc, size_t max_message,
                    pm__sent_cb cb, void *data) {
  send_req *w = pm__calloc(1, sizeof(*w));
  size_t len = 0, done;
  uv_buf_t bufs[2];
  int rc = w == NULL ? PM_ENOMEM : 0, n, held;
  if (rc == 0)
    rc = pm_msg_encode(m, enc, &w->payload, &len);
  if (rc == 0)
    rc = pm_frame_header(len, max_message, w->header);
  pm_msg_free(m);
  if (rc < 0)
    goto fail;
  w->cb = cb;
  w->data = data;
  bufs[0] = uv_buf_init((char *)w->header, sizeof(w->header));
  bufs[1] = uv_buf_init((char *)w->payload, (unsigned int)len);
  /* Most frames fit in the socket buffer: writing them now saves the write request's trip
   * through the loop (and its poll changes). Only what is left goes through uv_write. */
  done = 0;
  if (uv_stream_get_write_queue_size(stream) == 0) {
    held = pm__sigpipe_hold();
    n = uv_try_write(stream, bufs, 2);
    pm__sigpipe_release(held);
    if (n < 0 && n != UV_EAGAIN) {
      rc = pm__uv_error(n);
      goto fail;
    }
    done = n > 0 ? (size_t)n : 0;
  }
  if (done == sizeof(w->header) + len) {
    pm__free(w->payload);
    pm__free(w);
    return 1;
  }
  return queue_rest(stream, w, len, done);
fail:
  if (w != NULL)
    pm__free(w->payload);
  pm__free(w);
  return rc;
}

int pm__stream_send_rest(uv_stream_t *stream, const uint8_t *header, uint8_t *payload,
                         size_t len, size_t done, pm__sent_cb cb, void *data) {
  send_req *w = pm__calloc(1, sizeof(*w));
  if (w == NULL) {
    pm__free(payload);
    return PM_ENOMEM;
  }
  memcpy(w->header, header, sizeof(w->header));
  w->payload = payload;
  w->cb = cb;
  w->data = data;
  return queue_rest(stream, w, len, done);
}

int pm__stream_send_bytes(uv_stream_t *stream, const uint8_t *frame, size_t len, pm__sent_cb cb,
                          void *data) {
  uv_buf_t buf = uv_buf_init((char *)frame, (unsigned int)len);
  size_t done = 0;
  send_req *w;
  int n, rc, held;
  if (uv_stream_get_write_queue_size(stream) == 0) {
    held = pm__sigpipe_hold();
    n = uv_try_write(stream, &buf, 1);
    pm__sigpipe_release(held);
    if (n < 0 && n != UV_EAGAIN)
      return pm__uv_error(n);
    done = n > 0 ? (size_t)n : 0;
  }
  if (done == len)
    return 1;
  /* The caller's buffer is only borrowed: what the socket did not take is copied. */
  w = pm__calloc(1, sizeof(*w));
  if (w == NULL)
    return PM_ENOMEM;
  w->payload = pm__malloc(len - done);
  if (w->payload == NULL) {
    pm__free(w);
    return PM_ENOMEM;
  }
  memcpy(w->payload, frame + done, len - done);
  w->cb = cb;
  w->data = data;
  buf = uv_buf_init((char *)w->payload, (unsigned int)(len - done));
  held = pm__sigpipe_hold();
  rc = pm__uv_error(uv_write(&w->req, stream, &buf, 1, on_sent));
  pm__sigpipe_release(held);
  if (rc < 0) {
    pm__free(w->payload);
    pm__free(w);
  }
  return rc < 0 ? rc : 0;
}

int pm__feed_messages(pm_reader *r, const void *buf, size_t len, pm__message_cb cb,
                      pm__payload_cb raw, void *data, char *why) {
  const uint8_t *p = buf;
  while (len > 0) {
    long used = pm_reader_feed(r, p, len);
    uint8_t *payload;
    size_t plen;
    pm_msg *m = NULL;
    int rc;
    if (used < 0)
      return pm__reason(why, (int)used, "%s", pm_strerror((int)used));
    p += used;
    len -= (size_t)used;
    if (pm_reader_next(r, &payload, &plen) != 1)
      continue;
    if (raw != NULL && (rc = raw(data, payload, plen)) >= 0) {
      pm__free(payload);
      if (rc != 0)
        return 1;
      continue;
    }
    if (why != NULL)
      why[0] = '\0';
    rc = pm_msg_decode(payload, plen, &m, why);
    pm__free(payload);
    if (rc < 0) {
      if (why != NULL && why[0] == '\0')
        pm__reason(why, rc, "%s", pm_strerror(rc));
      return rc;
    }
    rc = cb(data, m);
    pm_msg_free(m);
    if (rc != 0)
      return 1;
  }
  return 0;
}

void pm__read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  buf->base = pm__malloc(READ_CHUNK);
  buf->len = buf->base ? READ_CHUNK : 0;
}

void pm__read_take(char **kept, uv_buf_t *buf) {
  buf->base = *kept != NULL ? *kept : pm__malloc(READ_CHUNK);
  buf->len = buf->base ? READ_CHUNK : 0;
  *kept = NULL;
}

void pm__read_give(char **kept, char *base) {
  if (*kept == NULL)
    *kept = base;
  else
    pm__free(base);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status) {
  /* Nothing to do: the lingering ends on the peer's close, the deadline or the budget. */
  (void)req;
  (void)status;
}

static void linger_end(pm__linger *l) {
  if (!l->active)
    return;
  pm__linger_stop(l);
  l->cb(l->data);
}

static void on_linger_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  pm__linger *l = stream->data;
  pm__free(buf->base);
  if (nread < 0 || (size_t)nread >= l->budget)
    linger_end(l);
  else
    l->budget -= (size_t)nread;
}

static void on_linger_timeout(uv_timer_t *t) { linger_end(t->data); }

void pm__linger_start(pm__linger *l, uv_stream_t *stream, uv_timer_t *timer, uint64_t timeout_ms,
                      size_t budget, pm__linger_cb cb, void *data) {
  l->stream = stream;
  l->timer = timer;
  l->budget = budget;
  l->cb = cb;
  l->data = data;
  l->active = 1;
  stream->data = timer->data = l;
  uv_read_stop(stream);
  uv_timer_start(timer, on_linger_timeout, timeout_ms, 0);
  /* The shutdown goes out after anything still queued, so the answer comes before the end of
   * the stream. */
  if (uv_shutdown(&l->shutdown, stream, on_linger_shutdown) < 0 ||
      uv_read_start(stream, pm__read_alloc, on_linger_read) < 0)
    linger_end(l);
}

void pm__linger_stop(pm__linger *l) {
  if (!l->active)
    return;
  l->active = 0;
  uv_read_stop(l->stream);
  uv_timer_stop(l->timer);
  l->stream->data = l->timer->data = l->data;
}

int pm__lingering(const pm__linger *l) { return l->active; }

/* Every event is stamped: the part to the second is formatted once a second (per thread, as
 * publishers may run on several), not once an event; the milliseconds are written per call. */
void pm_time_now(char buf[PM_TIME_MAX]) {
  static _Thread_local int64_t stamped_sec = -1;
  static _Thread_local char stamped[PM_TIME_MAX];
  static _Thread_local size_t stamped_len;
  uv_timeval64_t tv;
  unsigned ms;
  uv_gettimeofday(&tv);
  if (tv.tv_sec != stamped_sec) {
    time_t secs = (time_t)tv.tv_sec;
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* Room left for ".mmmZ" and the NUL: a year past 9999 would not fit them anyway. */
    stamped_len = strftime(stamped, PM_TIME_MAX - 6, "%Y-%m-%dT%H:%M:%S", &tm);
    stamped_sec = tv.tv_sec;
  }
  memcpy(buf, stamped, stamped_len);
  ms = (unsigned)(tv.tv_usec / 1000) % 1000u;
  buf[stamped_len] = '.';
  buf[stamped_len + 1] = (char)('0' + ms / 100);
  buf[stamped_len + 2] = (char)('0' + ms / 10 % 10);
  buf[stamped_len + 3] = (char)('0' + ms % 10);
  buf[stamped_len + 4] = 'Z';
  buf[stamped_len + 5] = '\0';
}
