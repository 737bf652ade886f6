/* pipemsg bench: each figure beside a baseline measured in the same run (docs/benchmarks.md).
 *
 * Where things run, and why:
 * - command, event and ZeroMQ scenarios run in this process: the server on a libuv loop in a
 *   thread, the client on the main thread (the event client on its own thread, as the library
 *   does it). Their baselines run the same way (a server thread, a client on the main thread),
 *   so both sides pay the same thread hand-offs and share one CPU under --pin.
 * - the big message runs its server in a child process (bench.h: forked on Unix, started
 *   again as "pipemsg bench --child" on Windows), so the client's and the server's peak
 *   memory are measured apart.
 * - queued-event memory is measured in a child process too, first (on Unix a forked child
 *   must not inherit a heap that earlier scenarios left resident).
 * - idle cost rests on the platform: on Unix in bench_unix.c, which says where it runs; a
 *   platform without what it needs says why it skips it.
 * This file is every platform's: the scenarios, the floors over bench.h's raw streams, the
 * options and the output.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "bench.h"
#include "cli.h"
#include "internal.h"

static const char usage_text[] =
    "Usage: pipemsg bench [OPTION]...\n"
    "Measure pipemsg against baselines run in the same process on the same machine, and print\n"
    "one row per figure: scenario, pipemsg, baseline, ratio, target, result.\n"
    "\n"
    "      --quick      small counts and a smaller big message (CI smoke test, < 15 s)\n"
    "      --json       one JSON object instead of the table\n"
    "      --only NAME  run only this scenario group (repeatable): command, event, zmq, big,\n"
    "                   idle, queue, service; scale (1, 10 and 100 MiB messages, 10^4\n"
    "                   connect cycles) and scale-queue (10^3, 10^5 and 10^6 queued events),\n"
    "                   time and memory, run only when named; command and event also\n"
    "                   measure a libuv ceiling (rows command_libuv, event_libuv: the\n"
    "                   floor's bytes over bare libuv loops with the library's checks)\n"
    "      --pin        run every thread and child on CPU 0 (like taskset -c 0)\n"
    "      --help       show this help and exit\n"
    "\n"
    "Exit status: 0 when every scenario ran (a missed target is a result, not an error);\n"
    "1 if a scenario could not run; 2 usage error.\n";

enum { OPT_QUICK = 256, OPT_JSON, OPT_ONLY, OPT_PIN, OPT_HELP };

static const struct option long_options[] = {
    {"quick", no_argument, NULL, OPT_QUICK}, {"json", no_argument, NULL, OPT_JSON},
    {"only", required_argument, NULL, OPT_ONLY}, {"pin", no_argument, NULL, OPT_PIN},
    {"help", no_argument, NULL, OPT_HELP},   {NULL, 0, NULL, 0},
};

static const char *const groups[] = {"command", "event",   "zmq",         "big",   "idle",
                                     "queue",   "service", "scale-queue", "scale", NULL};
/* Groups a run without --only leaves out: they take long or much memory. */
static const char *const named_only[] = {"scale-queue", "scale", NULL};

static const budget full_budget = {
    2.0, 30000, (size_t)100 * 1024 * 1024, 10.0, 100000, {1000, 100000, 1000000}};
static const budget quick_budget = {
    0.3, 3000, (size_t)8 * 1024 * 1024, 3.0, 10000, {1000, 10000, 100000}};

/* ---- small helpers ----------------------------------------------------------------------- */

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

void bench_add_speed(bench *bh, const char *name, const char *unit, direction dir, double pm,
                     double base, const char *base_kind, double min_ratio, const char *target) {
  result *r = &bh->results[bh->n_results++];
  snprintf(r->name, sizeof(r->name), "%s", name);
  r->unit = unit;
  r->pipemsg = pm;
  r->baseline = base;
  r->baseline_kind = base_kind;
  r->ratio = dir == HIGHER_BETTER ? pm / base : base / pm;
  r->target = target;
  r->pass = target == NULL ? -1 : r->ratio >= min_ratio;
}

void bench_add_cost(bench *bh, const char *name, const char *unit, double pm, double base,
                    const char *base_kind, const char *target, int pass) {
  result *r = &bh->results[bh->n_results++];
  snprintf(r->name, sizeof(r->name), "%s", name);
  r->unit = unit;
  r->pipemsg = pm;
  r->baseline = base;
  r->baseline_kind = base_kind;
  r->ratio = pm / base;
  r->target = target;
  r->pass = target == NULL ? -1 : pass;
}

void bench_skip(bench *bh, const char *group, const char *reason) {
  if (bh->n_skips < BENCH_SKIPS_MAX)
    bh->skips[bh->n_skips++] = (skipped){group, reason};
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Median and 99th percentile of n samples in ns, returned in µs; sorts the samples. */
static void percentiles(uint64_t *ns, int n, double *p50_us, double *p99_us) {
  qsort(ns, (size_t)n, sizeof(ns[0]), cmp_u64);
  *p50_us = (double)ns[n / 2] / 1000.0;
  *p99_us = (double)ns[(int)((long long)n * 99 / 100)] / 1000.0;
}

/* ---- wire images of the messages, encoded once by the library ----------------------------- */

json_t *bench_event_data(void) {
  return json_pack("{s:s, s:s, s:b}", "State", "Connected", "Location", "de", "KillSwitch", 1);
}

static int request_new(pm_msg **out) {
  return pm_request_new("GetState", 42, json_pack("{s:s, s:b}", "Filter", "all", "Verbose", 0),
                        out);
}

static int encode_to(pm_msg *m, int rc, pm_encoding enc, uint8_t **out, size_t *len) {
  if (rc == 0)
    rc = pm_msg_encode(m, enc, out, len);
  pm_msg_free(m);
  return rc;
}

int bench_wire_new(pm_encoding enc, wire *w) {
  char now[PM_TIME_MAX];
  pm_msg *m = NULL;
  int rc;
  memset(w, 0, sizeof(*w));
  rc = encode_to(m, request_new(&m), enc, &w->request, &w->request_len);
  m = NULL;
  if (rc == 0) {
    rc = pm_msg_new(PM_KIND_RESPONSE, &m);
    if (rc == 0)
      rc = pm_msg_set_string(m, "Command", "GetState");
    if (rc == 0)
      rc = pm_msg_set_int(m, "Id", 42);
    if (rc == 0)
      rc = pm_msg_set_string(m, "Result", PM_RESULT_OK);
    if (rc == 0)
      rc = pm_msg_set_tree(m, "Data", bench_event_data());
    rc = encode_to(m, rc, enc, &w->response, &w->response_len);
    m = NULL;
  }
  if (rc == 0) {
    pm_time_now(now);
    rc = pm_msg_new(PM_KIND_EVENT, &m);
    if (rc == 0)
      rc = pm_msg_set_int(m, "Id", 123456);
    if (rc == 0)
      rc = pm_msg_set_string(m, "Type", "StateChanged");
    if (rc == 0)
      rc = pm_msg_set_string(m, "Time", now);
    if (rc == 0)
      rc = pm_msg_set_tree(m, "Data", bench_event_data());
    rc = encode_to(m, rc, enc, &w->event, &w->event_len);
    m = NULL;
  }
  if (rc == 0) {
    rc = pm_msg_new(PM_KIND_EVENT_CONFIRMATION, &m);
    if (rc == 0)
      rc = pm_msg_set_int(m, "Id", 123456);
    rc = encode_to(m, rc, enc, &w->confirm, &w->confirm_len);
  }
  return rc;
}

void bench_wire_free(wire *w) {
  pm_free(w->request);
  pm_free(w->response);
  pm_free(w->event);
  pm_free(w->confirm);
}

/* ---- a libuv loop on a thread of its own ------------------------------------------------ */

static void bench_loop_stop_cb(uv_async_t *a) {
  bench_loop *bl = a->data;
  bl->on_stop(bl);
  uv_close((uv_handle_t *)a, NULL);
}

static void *bench_loop_main(void *arg) {
  bench_loop *bl = arg;
  uv_run(&bl->loop, UV_RUN_DEFAULT);
  return NULL;
}

int bench_loop_init(bench_loop *bl, void (*on_stop)(bench_loop *), void *data) {
  memset(bl, 0, sizeof(*bl));
  bl->on_stop = on_stop;
  bl->data = data;
  if (uv_loop_init(&bl->loop) < 0)
    return PM_ENOMEM;
  if (uv_async_init(&bl->loop, &bl->stop, bench_loop_stop_cb) < 0) {
    uv_loop_close(&bl->loop);
    return PM_ENOMEM;
  }
  bl->stop.data = bl;
  return 0;
}

void bench_loop_abandon(bench_loop *bl) {
  bench_loop_stop_cb(&bl->stop);
  uv_run(&bl->loop, UV_RUN_DEFAULT);
  uv_loop_close(&bl->loop);
}

int bench_loop_run(bench_loop *bl) {
  if (pthread_create(&bl->thread, NULL, bench_loop_main, bl) == 0)
    return 0;
  bench_loop_abandon(bl);
  return PM_ENOMEM;
}

void bench_loop_finish(bench_loop *bl) {
  uv_async_send(&bl->stop);
  pthread_join(bl->thread, NULL);
  uv_loop_close(&bl->loop);
}

/* The loop serving pipemsg: its stop closes the servers started on it. */
typedef struct server_thread {
  bench_loop bl;
  pm_command_server *cmd;
  pm_event_server *evt;
} server_thread;

static void server_stop(bench_loop *bl) {
  server_thread *st = bl->data;
  if (st->cmd != NULL)
    pm_command_server_close(st->cmd, NULL, NULL);
  if (st->evt != NULL)
    pm_event_server_close(st->evt, NULL, NULL);
}

static int server_thread_init(server_thread *st) {
  memset(st, 0, sizeof(*st));
  return bench_loop_init(&st->bl, server_stop, st);
}

/* ---- command calls ----------------------------------------------------------------------- */

static void command_handler(pm_command_call *call, void *data) {
  (void)data;
  pm_command_call_reply(call, PM_RESULT_OK, NULL, bench_event_data());
}

/* Calls/s of pm_command_client_call with req to the server at path, after a warm-up. */
static int call_loop(bench *bh, const char *path, const pm_msg *req, pm_encoding enc,
                     double *rate) {
  pm_client_options co;
  pm_msg *resp;
  uint64_t start, deadline;
  long calls = 0;
  int rc = 0, i;

  memset(&co, 0, sizeof(co));
  for (i = 0; rc == 0 && i < BENCH_WARMUP; i++) {
    rc = pm_command_client_call(path, &co, req, enc, &resp);
    if (rc == 0)
      pm_msg_free(resp);
  }
  start = bench_now_ns();
  deadline = start + (uint64_t)(bh->b.command_s * 1e9);
  while (rc == 0 && bench_now_ns() < deadline) {
    rc = pm_command_client_call(path, &co, req, enc, &resp);
    if (rc == 0) {
      pm_msg_free(resp);
      calls++;
    }
  }
  *rate = (double)calls / ((double)(bench_now_ns() - start) / 1e9);
  return rc;
}

/* pipemsg: calls/s of pm_command_client_call against a command server on a loop thread. */
static int command_pipemsg(bench *bh, pm_encoding enc, double *rate) {
  server_thread st;
  pm_command_server_options so;
  pm_msg *req = NULL;
  char path[128];
  int rc;

  bench_path(bh, "cmd.sock", path, sizeof(path));
  memset(&so, 0, sizeof(so));
  so.handler = command_handler;
  so.groups_on_demand = 1; /* as pipemsgd serves: its handlers never look at peer groups */
  rc = server_thread_init(&st);
  if (rc < 0)
    return rc;
  rc = pm_command_server_start(&st.bl.loop, path, &so, &st.cmd);
  if (rc == 0)
    rc = bench_loop_run(&st.bl);
  else
    bench_loop_abandon(&st.bl);
  if (rc < 0)
    return rc;
  rc = request_new(&req);
  if (rc == 0)
    rc = call_loop(bh, path, req, enc, rate);
  pm_msg_free(req);
  bench_loop_finish(&st.bl);
  return rc;
}

typedef struct floor_server {
  bench_listener *listener;
  const wire *w;
} floor_server;

/* The floor's server: accept, read one frame, write the prepared response, close. Ends when
 * the listener is stopped. */
static void *command_floor_main(void *arg) {
  floor_server *fs = arg;
  uint8_t buf[BENCH_FLOOR_BUF];
  bench_raw fd;
  while ((fd = bench_accept(fs->listener)) != BENCH_RAW_NONE) {
    if (bench_read_frame(fd, buf, sizeof(buf)) >= 0)
      bench_write_frame(fd, fs->w->response, fs->w->response_len);
    bench_close(fd);
  }
  return NULL;
}

static int command_floor_call(const char *path, const wire *w, uint8_t *buf, size_t size) {
  bench_raw fd = bench_connect(path);
  int rc;
  if (fd == BENCH_RAW_NONE)
    return PM_EIO;
  rc = bench_write_frame(fd, w->request, w->request_len);
  if (rc == 0 && bench_read_frame(fd, buf, size) < 0)
    rc = PM_EIO;
  bench_close(fd);
  return rc;
}

/* Floor: the same calls from a plain C loop (connect, write, read, close) on the platform's
 * raw stream (a Unix socket, a named pipe) with the bytes encoded once beforehand; the server
 * on a thread of this process, or (in_child) in a child process of its own. */
static int command_floor(bench *bh, const wire *w, int in_child, double *rate) {
  floor_server fs = {NULL, w};
  bench_child *child = NULL;
  pthread_t thread;
  uint8_t buf[BENCH_FLOOR_BUF];
  char path[128];
  uint64_t start, deadline;
  long calls = 0;
  int rc = 0, i;

  bench_path(bh, "floor.sock", path, sizeof(path));
  rc = bench_listen(path, &fs.listener);
  if (rc < 0)
    return rc;
  if (in_child)
    rc = bench_serve_child_start(command_floor_main, &fs, &child);
  else if (pthread_create(&thread, NULL, command_floor_main, &fs) != 0)
    rc = PM_ENOMEM;
  if (rc < 0) {
    bench_listen_close(fs.listener);
    return rc;
  }
  for (i = 0; rc == 0 && i < BENCH_WARMUP; i++)
    rc = command_floor_call(path, w, buf, sizeof(buf));
  start = bench_now_ns();
  deadline = start + (uint64_t)(bh->b.command_s * 1e9);
  while (rc == 0 && bench_now_ns() < deadline) {
    rc = command_floor_call(path, w, buf, sizeof(buf));
    calls++;
  }
  *rate = (double)calls / ((double)(bench_now_ns() - start) / 1e9);
  if (in_child) {
    bench_child_stop(child);
  } else {
    bench_listen_stop(fs.listener);
    pthread_join(thread, NULL);
  }
  bench_listen_close(fs.listener);
  return rc;
}

static int run_command(bench *bh) {
  static const struct {
    pm_encoding enc;
    const char *name;
    double target;
    const char *target_text;
  } encs[] = {{PM_ENC_JSON, "command_json", 0.8, ">= 0.8"},
              {PM_ENC_XML, "command_xml", 0.6, ">= 0.6"}};
  size_t i;
  for (i = 0; i < sizeof(encs) / sizeof(encs[0]); i++) {
    wire w;
    double pm = 0, base = 0, ceil_calls = 0;
    int ceiling = 1; /* 0 measured, 1 not (this encoding, or skipped), <0 failed */
    int rc = bench_wire_new(encs[i].enc, &w);
    if (rc == 0)
      rc = command_pipemsg(bh, encs[i].enc, &pm);
    if (rc == 0)
      rc = command_floor(bh, &w, 0, &base);
    /* The libuv ceiling against the same floor, for JSON (the floor's bytes are what count). */
    if (rc == 0 && encs[i].enc == PM_ENC_JSON)
      ceiling = bench_command_libuv(bh, &w, &ceil_calls);
    bench_wire_free(&w);
    if (rc == 0 && ceiling < 0)
      rc = ceiling;
    if (rc < 0)
      return rc;
    bench_add_speed(bh, encs[i].name, "calls/s", HIGHER_BETTER, pm, base, bench_floor_kind_command,
                    encs[i].target, encs[i].target_text);
    if (ceiling == 0)
      bench_add_speed(bh, "command_libuv", "calls/s", HIGHER_BETTER, ceil_calls, base,
                      bench_floor_kind_command, 0, NULL);
  }
  return 0;
}

/* ---- the real service -------------------------------------------------------------------- */

/* pipemsg: calls/s of pm_command_client_call (GetState, JSON) to pipemsgd, so the service's
 * whole per-call path counts: authorization, the contract's check of Params, the handler and
 * the info-level log line. Floor: the command group's raw loop with the same request and the
 * service's own answer, encoded once, its server in a child process as pipemsgd is: on one CPU
 * every call switches between client and server about four times, and a switch between
 * processes costs more than one between threads (docs/benchmarks.md). The ratio against the
 * command group's floor (server on a thread) is shown beside it. */
static int run_service(bench *bh) {
  pm_client_options co;
  pm_msg *req = NULL, *resp = NULL;
  const char *answer = NULL;
  char cmd[128], evt[128];
  double pm = 0, base = 0, base_thread = 0;
  long long pid;
  wire w;
  int rc;

  bench_path(bh, "svc-cmd.sock", cmd, sizeof(cmd));
  bench_path(bh, "svc-evt.sock", evt, sizeof(evt));
  rc = bench_service_start(bh, cmd, evt, &pid);
  if (rc != 0)
    return rc > 0 ? 0 : rc;
  memset(&co, 0, sizeof(co));
  memset(&w, 0, sizeof(w));
  rc = pm_request_new("GetState", 42, NULL, &req);
  /* The first call also waits for the service to listen. */
  if (rc == 0)
    rc = pm_command_client_call(cmd, &co, req, PM_ENC_JSON, &resp);
  if (rc == 0 && (pm_msg_get_string(resp, "Result", &answer) < 0 ||
                  strcmp(answer, PM_RESULT_OK) != 0))
    rc = PM_EPROTO;
  if (rc == 0)
    rc = pm_msg_encode(req, PM_ENC_JSON, &w.request, &w.request_len);
  if (rc == 0)
    rc = pm_msg_encode(resp, PM_ENC_JSON, &w.response, &w.response_len);
  pm_msg_free(resp);
  if (rc == 0)
    rc = call_loop(bh, cmd, req, PM_ENC_JSON, &pm);
  bench_service_stop(pid);
  if (rc == 0)
    rc = command_floor(bh, &w, 1, &base);
  if (rc == 0)
    rc = command_floor(bh, &w, 0, &base_thread);
  pm_msg_free(req);
  bench_wire_free(&w);
  if (rc < 0)
    return rc;
  bench_add_speed(bh, "command_service_json", "calls/s", HIGHER_BETTER, pm, base,
                  bench_floor_kind_command_child, 0.8, ">= 0.8");
  bench_add_speed(bh, "command_service_json_thread_floor", "calls/s", HIGHER_BETTER, pm,
                  base_thread, bench_floor_kind_command, 0, NULL);
  return 0;
}

/* ---- events ------------------------------------------------------------------------------ */

void bench_event_cb(const pm_event *ev, void *data) {
  event_run *er = data;
  (void)ev;
  if (er->latency_mode) {
    er->samples[er->n_samples++] = bench_now_ns() - atomic_load(&er->publish_ns);
    sem_post(&er->delivered);
  } else if (++er->seen == er->expected) {
    sem_post(&er->delivered);
  }
}

void bench_event_state_cb(pm_event_client_state state, const char *reason, void *data) {
  event_run *er = data;
  (void)reason;
  if (state == PM_EVENT_CLIENT_CONNECTED)
    sem_post(&er->attached);
}

int bench_sem_wait_s(sem_t *s, int seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += seconds;
  while (sem_timedwait(s, &ts) < 0) {
    if (errno != EINTR)
      return PM_ETIMEDOUT;
  }
  return 0;
}

/* The server's log: the latency loops wait for each confirmation before the next publish, as
 * the floors wait for their answer, so that an event never waits for the one before it. */
static void bench_event_log(const pm_event_log *e, void *data) {
  event_run *er = data;
  if (strcmp(e->what, "confirmed") == 0 && e->event_id >= atomic_load(&er->confirm_from))
    sem_post(&er->confirmed);
}

int bench_publish_one(pm_event_server *s) {
  return pm_event_server_publish(s, "StateChanged", bench_event_data(), NULL);
}

/* Waits until the server has taken n confirmations in all (outside any measurement). */
static int await_delivered(pm_event_server *s, uint64_t n) {
  uint64_t deadline = bench_now_ns() + (uint64_t)BENCH_WAIT_S * 1000000000u;
  pm_event_stats stats;
  for (;;) {
    pm_event_server_stats(s, &stats);
    if (stats.delivered >= n)
      return 0;
    if (bench_now_ns() > deadline)
      return PM_ETIMEDOUT;
    bench_sleep_ms(1);
  }
}

/* Publishing from the loop's own thread, as pipemsgd's backend does: the main thread asks
 * through an async handle, the loop thread notes the time and publishes. */
typedef struct loop_publisher {
  uv_async_t async;
  event_run *er;
  pm_event_server *evt;
  int rc;       /* the last publish's result (read by the main thread after the callback) */
  int stopping; /* close the handle instead of publishing */
} loop_publisher;

static void loop_publish_cb(uv_async_t *a) {
  loop_publisher *lp = a->data;
  if (lp->stopping) {
    uv_close((uv_handle_t *)a, NULL);
    return;
  }
  atomic_store(&lp->er->publish_ns, bench_now_ns());
  lp->rc = bench_publish_one(lp->evt);
  if (lp->rc < 0)
    sem_post(&lp->er->delivered);
}

/* pipemsg: confirmed events/s with all events published at once (one in flight, as the
 * protocol has it), then publish-to-callback latency one event at a time, published from the
 * main thread (samples) and from the server's loop thread (loop_samples). */
static int event_pipemsg(bench *bh, double *rate, uint64_t *samples, uint64_t *loop_samples) {
  loop_publisher lp;
  server_thread st;
  pm_event_server_options so;
  pm_event_client_options co;
  pm_event_client *client = NULL;
  event_run er;
  char path[128];
  uint64_t start;
  int rc, i, n = bh->b.events;

  memset(&er, 0, sizeof(er));
  sem_init(&er.attached, 0, 0);
  sem_init(&er.delivered, 0, 0);
  er.samples = samples;
  bench_path(bh, "evt.sock", path, sizeof(path));
  sem_init(&er.confirmed, 0, 0);
  atomic_store(&er.confirm_from, INT64_MAX);
  memset(&so, 0, sizeof(so));
  so.queue_max_events = (size_t)n + BENCH_WARMUP;
  so.log = bench_event_log;
  so.data = &er;
  memset(&co, 0, sizeof(co));
  co.on_event = bench_event_cb;
  co.on_state = bench_event_state_cb;
  co.data = &er;
  rc = server_thread_init(&st);
  if (rc < 0)
    return rc;
  memset(&lp, 0, sizeof(lp));
  lp.er = &er;
  lp.async.data = &lp;
  rc = pm_event_server_start(&st.bl.loop, path, &so, &st.evt);
  lp.evt = st.evt;
  if (rc == 0)
    rc = uv_async_init(&st.bl.loop, &lp.async, loop_publish_cb) < 0 ? PM_ENOMEM : 0;
  if (rc == 0)
    rc = bench_loop_run(&st.bl);
  else
    bench_loop_abandon(&st.bl);
  if (rc < 0)
    return rc;
  rc = pm_event_client_start(path, &co, &client);
  if (rc == 0)
    rc = bench_sem_wait_s(&er.attached, BENCH_WAIT_S);
  /* Rate: warm-up events plus n timed ones; the clock starts at the first timed publish. */
  er.expected = BENCH_WARMUP;
  for (i = 0; rc == 0 && i < BENCH_WARMUP; i++)
    rc = bench_publish_one(st.evt);
  if (rc == 0)
    rc = bench_sem_wait_s(&er.delivered, BENCH_WAIT_S);
  er.seen = 0;
  er.expected = n;
  start = bench_now_ns();
  for (i = 0; rc == 0 && i < n; i++)
    rc = bench_publish_one(st.evt);
  if (rc == 0)
    rc = bench_sem_wait_s(&er.delivered, BENCH_WAIT_S * 6);
  *rate = (double)n / ((double)(bench_now_ns() - start) / 1e9);
  /* Latency: publish, wait for the callback and for the confirmation, again. The rate run's
   * last confirmation may still be on its way: the first wait is for it. Ids start at 1. */
  er.latency_mode = 1;
  atomic_store(&er.confirm_from, (int64_t)BENCH_WARMUP + n + 1);
  if (rc == 0)
    rc = await_delivered(st.evt, (uint64_t)BENCH_WARMUP + (uint64_t)n);
  for (i = 0; rc == 0 && i < n; i++) {
    atomic_store(&er.publish_ns, bench_now_ns());
    rc = bench_publish_one(st.evt);
    if (rc == 0)
      rc = bench_sem_wait_s(&er.delivered, BENCH_WAIT_S);
    if (rc == 0)
      rc = bench_sem_wait_s(&er.confirmed, BENCH_WAIT_S);
  }
  /* The same from the loop thread: the clock starts there, at the publish. */
  er.samples = loop_samples;
  er.n_samples = 0;
  for (i = 0; rc == 0 && i < n; i++) {
    uv_async_send(&lp.async);
    rc = bench_sem_wait_s(&er.delivered, BENCH_WAIT_S);
    if (rc == 0)
      rc = lp.rc;
    if (rc == 0)
      rc = bench_sem_wait_s(&er.confirmed, BENCH_WAIT_S);
  }
  if (client != NULL)
    pm_event_client_stop(client);
  lp.stopping = 1;
  uv_async_send(&lp.async);
  bench_loop_finish(&st.bl);
  sem_destroy(&er.attached);
  sem_destroy(&er.delivered);
  sem_destroy(&er.confirmed);
  return rc;
}

static void *floor_pong_main(void *arg) {
  pong *p = arg;
  uint8_t buf[BENCH_FLOOR_BUF];
  long len;
  while ((len = bench_read_frame(p->fd, buf, sizeof(buf))) > 0) {
    p->samples[p->n_samples++] = bench_now_ns() - atomic_load(&p->send_ns);
    if (bench_write_frame(p->fd, p->w->confirm, p->w->confirm_len) < 0) {
      p->rc = PM_EIO;
      break;
    }
  }
  return NULL;
}

/* Floor: framed event and confirmation between two threads over a connected pair of the
 * platform's raw streams (a socketpair, a named pipe), no library. */
static int event_floor(bench *bh, const wire *w, double *rate, uint64_t *samples) {
  bench_raw sv[2];
  int i, rc = 0, n = bh->b.events;
  uint8_t buf[BENCH_FLOOR_BUF];
  pthread_t thread;
  pong p;
  uint64_t start = 0;

  if (bench_pair(sv) < 0)
    return PM_EIO;
  memset(&p, 0, sizeof(p));
  p.fd = sv[1];
  p.w = w;
  p.samples = samples;
  if (pthread_create(&thread, NULL, floor_pong_main, &p) != 0) {
    bench_close(sv[0]);
    bench_close(sv[1]);
    return PM_ENOMEM;
  }
  for (i = 0; rc == 0 && i < BENCH_WARMUP + n; i++) {
    if (i == BENCH_WARMUP) {
      p.n_samples = 0; /* the pong thread is waiting for us: no race */
      start = bench_now_ns();
    }
    atomic_store(&p.send_ns, bench_now_ns());
    rc = bench_write_frame(sv[0], w->event, w->event_len);
    if (rc == 0 && bench_read_frame(sv[0], buf, sizeof(buf)) < 0)
      rc = PM_EIO;
  }
  *rate = (double)n / ((double)(bench_now_ns() - start) / 1e9);
  bench_shutdown(sv[0]);
  pthread_join(thread, NULL);
  bench_close(sv[0]);
  bench_close(sv[1]);
  return rc < 0 ? rc : p.rc;
}

/* The event rows. event_* and zmq_event_* are published from the main thread (through the
 * server's wake-up of its loop); event_loop_* and zmq_event_loop_* from the loop thread, as
 * pipemsgd's backend publishes (sent at once when the client is idle). */
static int run_events(bench *bh, int with_floor, int with_zmq) {
  wire w;
  double pm_rate = 0, rate = 0, ceil_rate = 0, pm50 = 0, pm99 = 0, lp50 = 0, lp99 = 0, b50, b99;
  int ceiling = 1; /* the libuv ceiling: 0 measured, 1 not (skipped), <0 failed */
  size_t n = (size_t)bh->b.events;
  uint64_t *pm_lat = calloc(n, sizeof(uint64_t)), *lat = calloc(n, sizeof(uint64_t));
  uint64_t *loop_lat = calloc(n, sizeof(uint64_t));
  int rc = pm_lat != NULL && lat != NULL && loop_lat != NULL ? bench_wire_new(PM_ENC_JSON, &w)
                                                              : PM_ENOMEM;

  if (rc == 0) {
    rc = event_pipemsg(bh, &pm_rate, pm_lat, loop_lat);
    if (rc == 0) {
      percentiles(pm_lat, bh->b.events, &pm50, &pm99);
      percentiles(loop_lat, bh->b.events, &lp50, &lp99);
    }
    if (rc == 0 && with_floor)
      rc = event_floor(bh, &w, &rate, lat);
    if (rc == 0 && with_floor)
      ceiling = bench_event_libuv(bh, &w, &ceil_rate);
    if (rc == 0 && ceiling < 0)
      rc = ceiling;
    if (rc == 0 && with_floor) {
      percentiles(lat, bh->b.events, &b50, &b99);
      bench_add_speed(bh, "event_rate", "events/s", HIGHER_BETTER, pm_rate, rate,
                      bench_floor_kind_event, 0.8, ">= 0.8");
      if (ceiling == 0)
        bench_add_speed(bh, "event_libuv", "events/s", HIGHER_BETTER, ceil_rate, rate,
                        bench_floor_kind_event, 0, NULL);
      bench_add_speed(bh, "event_p50", "us", LOWER_BETTER, pm50, b50, bench_floor_kind_event, 0.6,
                      ">= 0.6");
      bench_add_speed(bh, "event_p99", "us", LOWER_BETTER, pm99, b99, bench_floor_kind_event, 0.6,
                      ">= 0.6");
      bench_add_speed(bh, "event_loop_p50", "us", LOWER_BETTER, lp50, b50, bench_floor_kind_event,
                      0.6, ">= 0.6");
      bench_add_speed(bh, "event_loop_p99", "us", LOWER_BETTER, lp99, b99, bench_floor_kind_event,
                      0.6, ">= 0.6");
    }
    if (rc == 0 && with_zmq)
      rc = bench_event_zmq(bh, &w, &rate, lat);
    if (rc == 0 && with_zmq) {
      percentiles(lat, bh->b.events, &b50, &b99);
      bench_add_speed(bh, "zmq_event_rate", "events/s", HIGHER_BETTER, pm_rate, rate,
                      "ZeroMQ REQ/REP ipc://", 1.0, ">= 1");
      /* The latency target: a median no slower than ZeroMQ's. */
      bench_add_speed(bh, "zmq_event_p50", "us", LOWER_BETTER, pm50, b50, "ZeroMQ REQ/REP ipc://",
                      1.0, ">= 1");
      bench_add_speed(bh, "zmq_event_p99", "us", LOWER_BETTER, pm99, b99, "ZeroMQ REQ/REP ipc://",
                      1.0, ">= 1");
      bench_add_speed(bh, "zmq_event_loop_p50", "us", LOWER_BETTER, lp50, b50,
                      "ZeroMQ REQ/REP ipc://", 1.0, ">= 1");
      bench_add_speed(bh, "zmq_event_loop_p99", "us", LOWER_BETTER, lp99, b99,
                      "ZeroMQ REQ/REP ipc://", 1.0, ">= 1");
    }
    bench_wire_free(&w);
  }
  free(pm_lat);
  free(lat);
  free(loop_lat);
  return rc;
}

/* ---- one big message ---------------------------------------------------------------------
 * The server runs in a child process (bench_child_start), so the client's and the server's
 * peak memory are measured apart, each against the payload size. */

/* Answers with the Blob's length, which the tree keeps: a second pass over 100 MiB after
 * pm_tree_get_string's would be the handler's cost, not pipemsg's. */
static void big_handler(pm_command_call *call, void *data) {
  const char *blob = NULL;
  const json_t *params = pm_command_call_params(call);
  json_int_t bytes = 0;
  (void)data;
  if (params != NULL && pm_tree_get_string(params, "Blob", &blob) == 0)
    bytes = (json_int_t)json_string_length(json_object_get(params, "Blob"));
  pm_command_call_reply(call, PM_RESULT_OK, NULL, json_pack("{s:I}", "Bytes", bytes));
}

static int read_full(bench_raw fd, void *buf, size_t len) {
  uint8_t *p = buf;
  while (len > 0) {
    long n = bench_read(fd, p, len);
    if (n <= 0)
      return PM_EIO;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The heap of a service that takes large messages, as pipemsgd sets it up
 * (service/platform_unix.c): blocks of 1 MiB and more mapped on their own, big ones in huge
 * pages. Both servers, so that the floor's buffer is allocated as pipemsg's frame is. */
static void big_heap_setup(void) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  (void)pm_huge_pages(1);
}

int bench_big_serve(const char *path, size_t max_message, int raw, int (*ready)(void *),
                    void *arg) {
  big_heap_setup();
  if (raw) {
    bench_listener *l;
    bench_raw fd;
    uint8_t hdr[4];
    if (bench_listen(path, &l) < 0 || ready(arg) < 0)
      return PM_EIO;
    while ((fd = bench_accept(l)) != BENCH_RAW_NONE) {
      size_t len;
      uint8_t *buf;
      if (read_full(fd, hdr, 4) < 0)
        return PM_EIO;
      len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
      /* In huge pages where the system has them, as pipemsg's frame buffer: the floor is the
       * copy at memory speed, not 25 600 page faults. */
      buf = pm__malloc_big(len);
      if (buf == NULL || read_full(fd, buf, len) < 0 || bench_write_frame(fd, "{}", 2) < 0)
        return PM_EIO;
      pm__free(buf);
      bench_close(fd);
    }
  } else {
    uv_loop_t loop;
    pm_command_server *s;
    pm_command_server_options so;
    memset(&so, 0, sizeof(so));
    so.max_message = max_message;
    so.request_timeout_ms = 60000;
    so.write_timeout_ms = 60000;
    so.handler = big_handler;
    if (uv_loop_init(&loop) < 0 || pm_command_server_start(&loop, path, &so, &s) < 0 ||
        ready(arg) < 0)
      return PM_EIO;
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  return 0;
}

typedef struct big_figures {
  double seconds;
  double client_peak; /* bytes above RSS before the request was built (tree included) */
  double server_peak; /* bytes above the server's RSS before the call */
} big_figures;

/* A Put request whose Params.Blob is size bytes of 'a'. */
static int big_request(size_t size, int64_t id, pm_msg **req) {
  char *raw = malloc(size);
  int rc;
  if (raw == NULL)
    return PM_ENOMEM;
  memset(raw, 'a', size);
  rc = pm_request_new("Put", id, json_pack("{s:s%}", "Blob", raw, size), req);
  free(raw);
  return rc;
}

/* The first call's message: big enough to take the paths of a big one (PM__BIG_BLOCK). */
#define BIG_WARM_BYTES ((size_t)5 << 20)

/* pipemsg: one request whose Params.Blob is size bytes, through pm_command_client_call to the
 * pipemsg command server of child (bench_child_start with max_message size + 4096) at path. */
static int big_call(const char *path, bench_child *child, size_t size, big_figures *f) {
  pm_client_options co;
  pm_msg *req = NULL, *warm = NULL, *resp = NULL;
  long long rss0, srv0, peak;
  uint64_t start;
  int rc;

  memset(&co, 0, sizeof(co));
  co.max_message = size + 4096;
  co.response_timeout_ms = 60000;
  /* A smaller call first, so that the server's code for a call, a big one's included, is
   * resident, as in a service that has served one before: the peaks are then the request's
   * memory, not pages of code. Its blocks are unmapped when freed (big_heap_setup). */
  rc = big_request(size < BIG_WARM_BYTES ? size : BIG_WARM_BYTES, 2, &warm);
  if (rc == 0 && (rc = pm_command_client_call(path, &co, warm, PM_ENC_JSON, &resp)) == 0) {
    pm_msg_free(resp);
    resp = NULL;
  }
  pm_msg_free(warm);
  if (rc == 0)
    rc = bench_mem(NULL, &rss0, &peak);
  if (rc == 0)
    rc = big_request(size, 1, &req);
  if (rc == 0)
    rc = bench_mem(child, &srv0, &peak);
  if (rc == 0 && (bench_peak_reset(NULL) < 0 || bench_peak_reset(child) < 0))
    rc = PM_EIO;
  /* Then two big calls: the first gives the peaks, the second the time. On a virtual machine,
   * memory the system has not handed out for a while costs several times as much to touch the
   * first time; after one call both sides (and big_floor's, which does the same) time the
   * call with memory of the same kind. */
  if (rc == 0 && (rc = pm_command_client_call(path, &co, req, PM_ENC_JSON, &resp)) == 0) {
    long long rss;
    pm_msg_free(resp);
    resp = NULL;
    rc = bench_mem(NULL, &rss, &peak);
    f->client_peak = (double)(peak - rss0);
    if (rc == 0)
      rc = bench_mem(child, &rss, &peak);
    f->server_peak = (double)(peak - srv0);
  }
  start = bench_now_ns();
  if (rc == 0)
    rc = pm_command_client_call(path, &co, req, PM_ENC_JSON, &resp);
  f->seconds = (double)(bench_now_ns() - start) / 1e9;
  pm_msg_free(resp);
  pm_msg_free(req);
  return rc;
}

static int big_pipemsg(bench *bh, size_t size, big_figures *f) {
  char path[128];
  bench_child *child;
  int rc;
  bench_path(bh, "big.sock", path, sizeof(path));
  rc = bench_child_start(path, size + 4096, 0, &child);
  if (rc < 0)
    return rc;
  rc = big_call(path, child, size, f);
  bench_child_stop(child);
  return rc;
}

/* Floor: the same frame written from one buffer to a raw server that reads it into one. */
static int big_floor(bench *bh, size_t size, double *seconds) {
  static const char head[] = "{\"Request\":{\"Command\":\"Put\",\"Id\":1,\"Params\":{\"Blob\":\"";
  static const char tail[] = "\"}}}";
  size_t len = strlen(head) + size + strlen(tail);
  char path[128];
  uint8_t resp[64];
  uint8_t *frame;
  uint64_t start;
  bench_child *child;
  bench_raw fd;
  int rc;

  frame = malloc(len);
  if (frame == NULL)
    return PM_ENOMEM;
  memcpy(frame, head, strlen(head));
  memset(frame + strlen(head), 'a', size);
  memcpy(frame + strlen(head) + size, tail, strlen(tail));
  bench_path(bh, "bigfloor.sock", path, sizeof(path));
  rc = bench_child_start(path, 0, 1, &child);
  if (rc < 0) {
    free(frame);
    return rc;
  }
  /* The first call warms up (see big_call), the second is timed. */
  for (int i = 0; rc == 0 && i < 2; i++) {
    start = bench_now_ns();
    fd = bench_connect(path);
    rc = fd == BENCH_RAW_NONE ? PM_EIO : bench_write_frame(fd, frame, len);
    if (rc == 0 && bench_read_frame(fd, resp, sizeof(resp)) < 0)
      rc = PM_EIO;
    *seconds = (double)(bench_now_ns() - start) / 1e9;
    if (fd != BENCH_RAW_NONE)
      bench_close(fd);
  }
  free(frame);
  bench_child_stop(child);
  return rc;
}

/* The targets are for 100 MiB; a smaller run (--quick) gets the time in proportion. */
#define BIG_TARGET_BYTES ((size_t)100 * 1024 * 1024)
#define BIG_TARGET_S 0.5
#define BIG_TARGET_PEAK 2.0 /* times the payload, in the server and in the client */

/* Whether a peak meets BIG_TARGET_PEAK as the ratio is printed (three decimals). VmHWM is not
 * exact to less: the kernel's RSS counters take up to 32 pages a CPU in late (128 KiB each),
 * and the server's peak, the frame and jansson's copy of the string, is 2.000x of the payload
 * by construction (docs/benchmarks.md, "Eighth pass"). */
static int big_peak_ok(double peak, double payload) {
  return peak <= (BIG_TARGET_PEAK + 0.0005) * payload;
}

static int run_big(bench *bh) {
  big_figures f = {0, 0, 0};
  double floor_s = 0, payload = (double)bh->b.big_bytes;
  double max_s = BIG_TARGET_S * payload / (double)BIG_TARGET_BYTES;
  int rc = big_pipemsg(bh, bh->b.big_bytes, &f);
  if (rc == 0)
    rc = big_floor(bh, bh->b.big_bytes, &floor_s);
  if (rc < 0)
    return rc;
  bench_add_speed(bh, "big_time", "s", LOWER_BETTER, f.seconds, floor_s, bench_floor_kind_big, 0,
                  bh->b.big_bytes == BIG_TARGET_BYTES ? "<= 0.5 s" : "<= 0.5 s*");
  bh->results[bh->n_results - 1].pass = f.seconds <= max_s;
  bench_add_cost(bh, "big_server_peak", "MiB", f.server_peak / MIB, payload / MIB, "payload size",
                 "<= 2.000", big_peak_ok(f.server_peak, payload));
  bench_add_cost(bh, "big_client_peak", "MiB", f.client_peak / MIB, payload / MIB, "payload size",
                 "<= 2.000", big_peak_ok(f.client_peak, payload));
  return 0;
}

/* ---- scaling: the cost against the work ---------------------------------------------------
 * The big message at three sizes, ten times apart, and a run of connect/request/response/close
 * cycles to a server in a child process: time (against the raw floor of the same work) and the
 * server's memory, so docs/benchmarks.md can show how each grows. Only when named (named_only):
 * it repeats the big message and adds some seconds. */

#define SCALE_SIZES 3                      /* each ten times the one before */
#define SCALE_FIRST ((size_t)1 << 20)      /* 1, 10, 100 MiB */
#define SCALE_FIRST_QUICK ((size_t)64 << 10) /* --quick: 64, 640, 6400 KiB */
#define SCALE_CYCLES 10000                 /* connect cycles; --quick: a tenth */

/* "1MiB", "640KiB": the work in a row's name. */
static void scale_size_name(size_t size, char *buf, size_t n) {
  if (size % (1024 * 1024) == 0)
    snprintf(buf, n, "%zuMiB", size / (1024 * 1024));
  else
    snprintf(buf, n, "%zuKiB", size / 1024);
}

/* The servers start before the first message: a forked child inherits its parent's malloc
 * state, and glibc raises its mmap threshold when a large block is freed (up to 32 MiB), so a
 * server forked after the 10 MiB run would grow its frame buffer on the heap, not the one
 * measured here (docs/benchmarks.md has the figures). */
static int scale_messages(bench *bh) {
  bench_child *child[SCALE_SIZES] = {NULL};
  char path[SCALE_SIZES][128];
  size_t size[SCALE_SIZES];
  int rc = 0, i;
  for (i = 0; i < SCALE_SIZES; i++) {
    char file[32];
    if (i > 0)
      size[i] = size[i - 1] * 10;
    else
      size[i] = bh->b.big_bytes >= BIG_TARGET_BYTES ? SCALE_FIRST : SCALE_FIRST_QUICK;
    snprintf(file, sizeof(file), "scale%d.sock", i);
    bench_path(bh, file, path[i], sizeof(path[i]));
    if (rc == 0)
      rc = bench_child_start(path[i], size[i] + 4096, 0, &child[i]);
  }
  for (i = 0; rc == 0 && i < SCALE_SIZES; i++) {
    big_figures f = {0, 0, 0};
    double floor_s = 0;
    char work[24], name[40];
    rc = big_call(path[i], child[i], size[i], &f);
    if (rc == 0)
      rc = big_floor(bh, size[i], &floor_s);
    if (rc < 0)
      break;
    scale_size_name(size[i], work, sizeof(work));
    snprintf(name, sizeof(name), "scale_msg_%s", work);
    bench_add_speed(bh, name, "s", LOWER_BETTER, f.seconds, floor_s, bench_floor_kind_big, 0,
                    NULL);
    snprintf(name, sizeof(name), "scale_msg_%s_mem", work);
    bench_add_cost(bh, name, "MiB", f.server_peak / MIB, (double)size[i] / MIB, "payload size",
                   NULL, -1);
  }
  for (i = 0; i < SCALE_SIZES; i++)
    if (child[i] != NULL)
      bench_child_stop(child[i]);
  return rc;
}

/* n cycles of one small request to the child's server: pipemsg (pm_command_client_call) or
 * raw (connect, write the frame encoded beforehand, read the answer, close). Time in *seconds,
 * the server's peak above its resident size before, in *grown. */
static int scale_cycles(bench *bh, int raw, int n, const uint8_t *frame, size_t len,
                        double *seconds, long long *grown) {
  char path[128];
  bench_child *child;
  pm_client_options co;
  pm_msg *req = NULL, *resp;
  long long rss0, rss, peak;
  uint8_t buf[256];
  uint64_t start;
  int rc, i;

  bench_path(bh, raw ? "scalefloor.sock" : "scale.sock", path, sizeof(path));
  rc = bench_child_start(path, 0, raw, &child);
  if (rc < 0)
    return rc;
  memset(&co, 0, sizeof(co));
  rc = pm_request_new("Put", 1, json_pack("{s:s}", "Blob", "x"), &req);
  if (rc == 0)
    rc = bench_mem(child, &rss0, &peak);
  if (rc == 0 && bench_peak_reset(child) < 0)
    rc = PM_EIO;
  start = bench_now_ns();
  for (i = 0; rc == 0 && i < n; i++) {
    if (raw) {
      bench_raw fd = bench_connect(path);
      rc = fd == BENCH_RAW_NONE ? PM_EIO : bench_write_frame(fd, frame, len);
      if (rc == 0 && bench_read_frame(fd, buf, sizeof(buf)) < 0)
        rc = PM_EIO;
      if (fd != BENCH_RAW_NONE)
        bench_close(fd);
    } else {
      rc = pm_command_client_call(path, &co, req, PM_ENC_JSON, &resp);
      if (rc == 0)
        pm_msg_free(resp);
    }
  }
  *seconds = (double)(bench_now_ns() - start) / 1e9;
  if (rc == 0)
    rc = bench_mem(child, &rss, &peak);
  *grown = peak - rss0;
  pm_msg_free(req);
  bench_child_stop(child);
  return rc;
}

static int scale_connects(bench *bh) {
  int n = bh->b.big_bytes < BIG_TARGET_BYTES ? SCALE_CYCLES / 10 : SCALE_CYCLES;
  pm_msg *req = NULL;
  uint8_t *frame = NULL;
  size_t len = 0;
  double pm_s = 0, raw_s = 0;
  long long pm_grown = 0, raw_grown = 0;
  char name[40];
  int rc = pm_request_new("Put", 1, json_pack("{s:s}", "Blob", "x"), &req);
  rc = encode_to(req, rc, PM_ENC_JSON, &frame, &len);
  if (rc == 0)
    rc = scale_cycles(bh, 0, n, NULL, 0, &pm_s, &pm_grown);
  if (rc == 0)
    rc = scale_cycles(bh, 1, n, frame, len, &raw_s, &raw_grown);
  pm_free(frame);
  if (rc < 0)
    return rc;
  snprintf(name, sizeof(name), "scale_connect_%d", n);
  bench_add_speed(bh, name, "s", LOWER_BETTER, pm_s, raw_s, bench_floor_kind_command, 0, NULL);
  /* Per cycle, against the request's frame: what a connection leaves behind in the server. */
  snprintf(name, sizeof(name), "scale_connect_%d_mem", n);
  bench_add_cost(bh, name, "bytes/cycle", (double)pm_grown / n, (double)len,
                 "request frame size", NULL, -1);
  return 0;
}

static int run_scale(bench *bh) {
  int rc = scale_messages(bh);
  return rc == 0 ? scale_connects(bh) : rc;
}

/* ---- memory per queued event ------------------------------------------------------------- */

int bench_queue_measure(const char *path, int n, double per_event[BENCH_QUEUE_FIGURES]) {
  uv_loop_t loop;
  pm_event_server_options so;
  pm_event_server *s;
  pm_event_stats stats;
  long long rss0, rss1, heap0, heap1, peak;
  uint64_t start, took;
  int i, rc;
  memset(&so, 0, sizeof(so));
  so.queue_max_events = (size_t)n;
  so.queue_max_bytes = (size_t)1 << 30;
  if (uv_loop_init(&loop) < 0 || pm_event_server_start(&loop, path, &so, &s) < 0)
    return PM_EIO;
  rc = bench_mem(NULL, &rss0, &peak);
  heap0 = bench_heap_in_use();
  start = bench_now_ns();
  for (i = 0; rc == 0 && i < n; i++)
    rc = bench_publish_one(s);
  took = bench_now_ns() - start;
  heap1 = bench_heap_in_use();
  if (rc == 0)
    rc = bench_mem(NULL, &rss1, &peak);
  if (rc == 0 && (heap0 < 0 || heap1 < 0))
    rc = PM_EIO;
  if (rc < 0)
    return rc;
  pm_event_server_stats(s, &stats);
  if (stats.queued != (uint64_t)n)
    return PM_EIO;
  per_event[0] = (double)(rss1 - rss0) / n;
  per_event[1] = (double)(heap1 - heap0) / n;
  per_event[2] = (double)took / n;
  return 0;
}

static int run_queue(bench *bh) {
  char path[128];
  double per_event[BENCH_QUEUE_FIGURES] = {0, 0, 0};
  wire w;
  int rc = bench_wire_new(PM_ENC_JSON, &w);
  if (rc < 0)
    return rc;
  bench_path(bh, "queue.sock", path, sizeof(path));
  rc = bench_queue_child(path, bh->b.queued_events, per_event);
  if (rc == 0) {
    bench_add_cost(bh, "queue_rss_per_event", "bytes", per_event[0], (double)(w.event_len + 4),
                   "event frame size", NULL, 0);
    bench_add_cost(bh, "queue_heap_per_event", "bytes", per_event[1], (double)(w.event_len + 4),
                   "event frame size", "<= 2", per_event[1] <= 2.0 * (double)(w.event_len + 4));
  }
  bench_wire_free(&w);
  return rc;
}

/* The scaling rows: 10^3, 10^5 and 10^6 events (--quick: 10^3 to 10^5) queued in a child each,
 * as in run_queue. Time is the publishing, against the first count's time per event scaled up
 * (ratio 1: linear); heap against that many frames (ratio: a multiple of the frame size). */
static int run_scale_queue(bench *bh) {
  static const char *const labels[] = {"1e3", "1e5", "1e6"};
  static const char *const quick_labels[] = {"1e3", "1e4", "1e5"};
  const int quick = bh->b.command_s < full_budget.command_s;
  char path[128];
  double fig[BENCH_QUEUE_FIGURES], first_ns = 0;
  wire w;
  int rc = bench_wire_new(PM_ENC_JSON, &w);
  if (rc < 0)
    return rc;
  bench_path(bh, "scale.sock", path, sizeof(path));
  for (int i = 0; rc == 0 && i < 3; i++) {
    int n = bh->b.scale_events[i];
    double frames = (double)n * (double)(w.event_len + 4);
    const char *label = quick ? quick_labels[i] : labels[i];
    char name[40];
    rc = bench_queue_child(path, n, fig);
    if (rc < 0)
      break;
    if (i == 0)
      first_ns = fig[2];
    snprintf(name, sizeof(name), "scale_queue_%s_time", label);
    bench_add_cost(bh, name, "s", fig[2] * n / 1e9, first_ns * n / 1e9,
                   "first count's time, scaled", NULL, 0);
    snprintf(name, sizeof(name), "scale_queue_%s_heap", label);
    bench_add_cost(bh, name, "MiB", fig[1] * n / MIB, frames / MIB, "that many frames", "<= 2",
                   fig[1] * n <= 2.0 * frames);
  }
  bench_wire_free(&w);
  return rc;
}

/* ---- output ------------------------------------------------------------------------------ */

static const char *pass_text(int pass) {
  return pass < 0 ? "info" : pass ? "pass" : "MISS";
}

static void print_table(const bench *bh) {
  int i, width = 22;
  for (i = 0; i < bh->n_results; i++)
    if ((int)strlen(bh->results[i].name) > width)
      width = (int)strlen(bh->results[i].name);
  printf("pipemsg bench (%s, %s, %ld CPUs online)\n",
         bh->b.command_s < full_budget.command_s ? "quick" : "full",
         bh->pinned ? "pinned to CPU 0" : "unpinned", bench_cpus_online());
  printf("%-*s %-10s %12s %12s %8s %-8s %-6s %s\n", width, "scenario", "unit", "pipemsg",
         "baseline", "ratio", "target", "result", "baseline is");
  for (i = 0; i < bh->n_results; i++) {
    const result *r = &bh->results[i];
    printf("%-*s %-10s %12.6g %12.6g %8.3f %-8s %-6s %s\n", width, r->name, r->unit, r->pipemsg,
           r->baseline, r->ratio, r->target ? r->target : "-", pass_text(r->pass),
           r->baseline_kind);
  }
  puts("ratio: rates pipemsg/baseline, times baseline/pipemsg (above 1: pipemsg better);\n"
       "memory and idle rows: pipemsg/baseline (multiples of the baseline).");
  for (i = 0; i < bh->n_skips; i++)
    printf("skipped %s: %s\n", bh->skips[i].group, bh->skips[i].reason);
}

static void print_json(const bench *bh) {
  json_t *rows = json_array(), *top;
  int i;
  for (i = 0; i < bh->n_results; i++) {
    const result *r = &bh->results[i];
    json_array_append_new(
        rows, json_pack("{s:s, s:s, s:f, s:f, s:s, s:f, s:s?, s:s}", "name", r->name, "unit",
                        r->unit, "pipemsg", r->pipemsg, "baseline", r->baseline, "baseline_kind",
                        r->baseline_kind, "ratio", r->ratio, "target", r->target, "result",
                        pass_text(r->pass)));
  }
  top = json_pack("{s:s, s:b, s:I, s:o}", "mode",
                  bh->b.command_s < full_budget.command_s ? "quick" : "full", "pinned", bh->pinned,
                  "cpus", (json_int_t)bench_cpus_online(), "scenarios", rows);
  /* Only where a group was skipped: the object stays as it was where everything runs. */
  if (top != NULL && bh->n_skips > 0) {
    json_t *skips = json_array();
    for (i = 0; i < bh->n_skips; i++)
      json_array_append_new(skips, json_pack("{s:s, s:s}", "group", bh->skips[i].group, "reason",
                                             bh->skips[i].reason));
    json_object_set_new(top, "skipped", skips);
  }
  json_dumpf(top, stdout, JSON_INDENT(2));
  fputc('\n', stdout);
  json_decref(top);
}

static int selected(const char *const *only, int n_only, const char *group) {
  int i;
  for (i = 0; i < n_only; i++) {
    if (strcmp(only[i], group) == 0)
      return 1;
  }
  for (i = 0; named_only[i] != NULL; i++) {
    if (strcmp(named_only[i], group) == 0)
      return 0;
  }
  return n_only == 0;
}

int cmd_bench(int argc, char **argv) {
  static bench bh; /* large: results and budgets */
  const char *only[sizeof(groups) / sizeof(groups[0])];
  int n_only = 0, pin = 0, with_zmq, c, rc = 0, i;

  if (argc > 1 && strcmp(argv[1], "--child") == 0 && (rc = bench_child_main(argc, argv)) >= 0)
    return rc;
  rc = 0;
  memset(&bh, 0, sizeof(bh));
  bh.b = full_budget;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
    switch (c) {
    case OPT_QUICK:
      bh.b = quick_budget;
      break;
    case OPT_JSON:
      bh.json = 1;
      break;
    case OPT_ONLY:
      for (i = 0; groups[i] != NULL && strcmp(groups[i], optarg) != 0; i++) {
      }
      if (groups[i] == NULL) {
        fprintf(stderr, "pipemsg bench: unknown scenario '%s'\n", optarg);
        return CLI_EXIT_USAGE;
      }
      if (n_only < (int)(sizeof(only) / sizeof(only[0])))
        only[n_only++] = groups[i];
      break;
    case OPT_PIN:
      pin = 1;
      break;
    case OPT_HELP:
      fputs(usage_text, stdout);
      fputs(bench_help_note, stdout);
      return CLI_EXIT_OK;
    default:
      fputs("Try 'pipemsg bench --help'.\n", stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "pipemsg bench: unexpected argument '%s'\n", argv[optind]);
    return CLI_EXIT_USAGE;
  }
  /* Before any thread or child exists, so all of them inherit the mask. */
  if (pin && bench_pin_cpu0() < 0)
    return 1;
  bh.pinned = pin;
  if (bench_dir_make(&bh) < 0)
    return 1;
  with_zmq = selected(only, n_only, "zmq") && bench_zmq_missing() == NULL;
  if (selected(only, n_only, "zmq") && !with_zmq)
    bench_skip(&bh, "zmq", bench_zmq_missing());
  /* queue first: its forked child (Unix) must not inherit a heap that earlier scenarios left
   * resident, or its RSS would not grow with the events it allocates. */
  if (rc == 0 && selected(only, n_only, "queue"))
    rc = run_queue(&bh);
  if (rc == 0 && selected(only, n_only, "scale-queue"))
    rc = run_scale_queue(&bh);
  if (rc == 0 && selected(only, n_only, "command"))
    rc = run_command(&bh);
  if (rc == 0 && selected(only, n_only, "service"))
    rc = run_service(&bh);
  if (rc == 0 && (selected(only, n_only, "event") || with_zmq))
    rc = run_events(&bh, selected(only, n_only, "event"), with_zmq);
  if (rc == 0 && selected(only, n_only, "big"))
    rc = run_big(&bh);
  if (rc == 0 && selected(only, n_only, "idle"))
    rc = bench_run_idle(&bh);
  if (rc == 0 && selected(only, n_only, "scale"))
    rc = run_scale(&bh);
  bench_dir_remove(&bh);
  if (rc < 0) {
    fprintf(stderr, "pipemsg bench: a scenario failed: %s\n", pm_strerror(rc));
    return 1;
  }
  if (bh.json)
    print_json(&bh);
  else
    print_table(&bh);
  return CLI_EXIT_OK;
}
