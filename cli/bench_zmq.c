/* pipemsg bench's ZeroMQ baseline (bench.h): REQ/REP over ipc:// with the same bytes as the
 * pipemsg event scenario. Optional on Windows (bench_nozmq.c). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "bench.h"

const char *bench_zmq_missing(void) { return NULL; }

static void *zmq_pong_main(void *arg) {
  pong *p = arg;
  uint8_t buf[BENCH_FLOOR_BUF];
  for (;;) {
    int len = zmq_recv(p->zsock, buf, sizeof(buf), 0);
    if (len < 0) {
      p->rc = PM_EIO;
      break;
    }
    if (len > 0)
      p->samples[p->n_samples++] = bench_now_ns() - atomic_load(&p->send_ns);
    if (zmq_send(p->zsock, p->w->confirm, p->w->confirm_len, 0) < 0) {
      p->rc = PM_EIO;
      break;
    }
    if (len == 0) /* the end marker */
      break;
  }
  return NULL;
}

/* ZeroMQ REQ/REP over ipc://, the same bytes: REP on a thread, REQ on the main thread. */
int bench_event_zmq(bench *bh, const wire *w, double *rate, uint64_t *samples) {
  void *ctx = zmq_ctx_new(), *req = NULL, *rep = NULL;
  char path[128], endpoint[160];
  uint8_t buf[BENCH_FLOOR_BUF];
  pthread_t thread;
  pong p;
  uint64_t start = 0;
  int i, rc = 0, started = 0, n = bh->b.events;

  if (ctx == NULL)
    return PM_ENOMEM;
  bench_path(bh, "zmq.sock", path, sizeof(path));
  snprintf(endpoint, sizeof(endpoint), "ipc://%s", path);
  memset(&p, 0, sizeof(p));
  p.w = w;
  p.samples = samples;
  rep = zmq_socket(ctx, ZMQ_REP);
  req = zmq_socket(ctx, ZMQ_REQ);
  if (rep == NULL || req == NULL || zmq_bind(rep, endpoint) < 0 || zmq_connect(req, endpoint) < 0)
    rc = PM_EIO;
  p.zsock = rep;
  if (rc == 0 && pthread_create(&thread, NULL, zmq_pong_main, &p) != 0)
    rc = PM_ENOMEM;
  started = rc == 0;
  for (i = 0; rc == 0 && i < BENCH_WARMUP + n; i++) {
    if (i == BENCH_WARMUP) {
      p.n_samples = 0;
      start = bench_now_ns();
    }
    atomic_store(&p.send_ns, bench_now_ns());
    if (zmq_send(req, w->event, w->event_len, 0) < 0 || zmq_recv(req, buf, sizeof(buf), 0) < 0)
      rc = PM_EIO;
  }
  *rate = (double)n / ((double)(bench_now_ns() - start) / 1e9);
  if (started) {
    /* An empty request ends the REP thread (if REQ is stuck, closing the context does). */
    if (rc == 0 && (zmq_send(req, "", 0, 0) < 0 || zmq_recv(req, buf, sizeof(buf), 0) < 0))
      rc = PM_EIO;
    if (rc < 0)
      zmq_ctx_shutdown(ctx);
    pthread_join(thread, NULL);
  }
  if (req != NULL)
    zmq_close(req);
  if (rep != NULL)
    zmq_close(rep);
  zmq_ctx_term(ctx);
  unlink(path);
  return rc < 0 ? rc : p.rc;
}
