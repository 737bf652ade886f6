/* pipemsg bench: each figure beside a baseline measured in the same run (docs/benchmarks.md).
 *
 * Where things run, and why:
 * - command, event and ZeroMQ scenarios run in this process: the server on a libuv loop in a
 *   thread, the client on the main thread (the event client on its own thread, as the library
 *   does it). Their baselines run the same way (a server thread, a client on the main thread),
 *   so both sides pay the same thread hand-offs and share one CPU under --pin.
 * - the big message runs its server in a forked child, so the client's and the server's peak
 *   memory are measured apart, each against the payload size.
 * - queued-event memory is measured in a forked child, first, on a heap nothing else has
 *   touched.
 * - idle cost is measured on the real service: build/bin/pipemsgd (found next to this program)
 *   with an event client of ours attached, read from /proc/PID/task/(*)/schedstat and status.
 */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h> /* mallinfo2: heap bytes in use, for memory per queued event */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "pipemsg/pipemsg.h"

#include "cli.h"

static const char usage_text[] =
    "Usage: pipemsg bench [OPTION]...\n"
    "Measure pipemsg against baselines run in the same process on the same machine, and print\n"
    "one row per figure: scenario, pipemsg, baseline, ratio, target, result.\n"
    "\n"
    "      --quick      small counts and a smaller big message (CI smoke test, < 15 s)\n"
    "      --json       one JSON object instead of the table\n"
    "      --only NAME  run only this scenario group (repeatable): command, event, zmq, big,\n"
    "                   idle, queue\n"
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

static const char *const groups[] = {"command", "event", "zmq", "big", "idle", "queue", NULL};

#define BENCH_RESULTS_MAX 32
#define BENCH_WARMUP 200        /* untimed iterations before each timed loop */
#define BENCH_FLOOR_BUF (64 * 1024)
#define BENCH_WAIT_S 10         /* longest wait for a server, client or child */
#define MIB (1024.0 * 1024.0)

/* Counts and budgets of a full run and of --quick. */
typedef struct budget {
  double command_s;   /* time budget per command loop */
  int events;         /* events per event/ZeroMQ scenario (rate and latency) */
  size_t big_bytes;   /* size of the big message's payload */
  double idle_s;      /* idle measurement window */
  int queued_events;  /* events queued for the memory figure */
} budget;

static const budget full_budget = {2.0, 30000, (size_t)100 * 1024 * 1024, 10.0, 100000};
static const budget quick_budget = {0.3, 3000, (size_t)8 * 1024 * 1024, 3.0, 10000};

typedef enum { HIGHER_BETTER, LOWER_BETTER } direction;

typedef struct result {
  char name[40];
  const char *unit;
  double pipemsg;
  double baseline;
  const char *baseline_kind;
  double ratio;       /* see add_speed and add_cost */
  const char *target; /* NULL: information only */
  int pass;           /* 1 pass, 0 miss, -1 no target */
} result;

typedef struct bench {
  budget b;
  int json;
  int pinned;
  char dir[64]; /* private directory for the sockets */
  result results[BENCH_RESULTS_MAX];
  int n_results;
} bench;

/* ---- small helpers ----------------------------------------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* A pipemsg figure with its baseline. For HIGHER_BETTER units (rates) the ratio is
 * pipemsg / baseline; for LOWER_BETTER units (times, latencies) baseline / pipemsg, so a ratio
 * above 1 always means pipemsg did better. min_ratio 0: information only. */
static void add_speed(bench *bh, const char *name, const char *unit, direction dir, double pm,
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

/* A cost figure: ratio is pipemsg / baseline (how many times the baseline it costs); pass is
 * decided by the caller. */
static void add_cost(bench *bh, const char *name, const char *unit, double pm, double base,
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

static void bench_path(const bench *bh, const char *file, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s", bh->dir, file);
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

/* A line "Key:   123 kB" of /proc/PID/status, in bytes; -1 if absent. pid 0: this process. */
static long long proc_status_kb(pid_t pid, const char *key) {
  char path[64], line[256];
  size_t klen = strlen(key);
  long long v = -1;
  FILE *f;
  if (pid == 0)
    snprintf(path, sizeof(path), "/proc/self/status");
  else
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      v = strtoll(line + klen + 1, NULL, 10) * 1024;
      break;
    }
  }
  fclose(f);
  return v;
}

/* Resets a process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0). pid 0: this one. */
static int reset_peak_rss(pid_t pid) {
  char path[64];
  int fd, rc = 0;
  if (pid == 0)
    snprintf(path, sizeof(path), "/proc/self/clear_refs");
  else
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
  fd = open(path, O_WRONLY);
  if (fd < 0)
    return PM_EIO;
  if (write(fd, "5", 1) != 1)
    rc = PM_EIO;
  close(fd);
  return rc;
}

/* ---- blocking socket I/O for the baselines (no library code) ------------------------------ */

static int read_full(int fd, void *buf, size_t len) {
  uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return PM_EIO;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return PM_EIO;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* One frame, header and payload in one writev when the socket takes it. */
static int write_frame(int fd, const void *payload, size_t len) {
  uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
  struct iovec iov[2] = {{hdr, 4}, {(void *)payload, len}};
  ssize_t n;
  do
    n = writev(fd, iov, 2);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return PM_EIO;
  if ((size_t)n < 4)
    return write_full(fd, hdr + n, 4 - (size_t)n) == 0 ? write_full(fd, payload, len) : PM_EIO;
  return write_full(fd, (const uint8_t *)payload + (n - 4), len - (size_t)(n - 4));
}

/* Reads one frame into buf (header included, usually in a single read); returns the payload
 * length, or a negative code on EOF, error or a frame larger than size - 4. */
static long read_frame(int fd, uint8_t *buf, size_t size) {
  size_t have = 0, want = 4;
  while (have < want) {
    ssize_t n = read(fd, buf + have, size - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return PM_EEOF;
    have += (size_t)n;
    if (want == 4 && have >= 4) {
      want = 4 + ((size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3]);
      if (want > size)
        return PM_EMSGSIZE;
    }
  }
  return (long)(want - 4);
}

static int unix_socket(const char *path, int listen_backlog) {
  struct sockaddr_un sa;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return PM_EIO;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  if (listen_backlog > 0) {
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, listen_backlog) < 0) {
      close(fd);
      return PM_EIO;
    }
  } else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    close(fd);
    return PM_EIO;
  }
  return fd;
}

/* ---- wire images of the messages, encoded once by the library ----------------------------- */

typedef struct wire {
  uint8_t *request;  /* Request GetState */
  size_t request_len;
  uint8_t *response; /* its Response */
  size_t response_len;
  uint8_t *event; /* Event StateChanged */
  size_t event_len;
  uint8_t *confirm; /* EventConfirmation */
  size_t confirm_len;
} wire;

static json_t *event_data(void) {
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

static int wire_new(pm_encoding enc, wire *w) {
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
      rc = pm_msg_set_tree(m, "Data", event_data());
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
      rc = pm_msg_set_tree(m, "Data", event_data());
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

static void wire_free(wire *w) {
  pm_free(w->request);
  pm_free(w->response);
  pm_free(w->event);
  pm_free(w->confirm);
}

/* ---- a libuv loop on a thread of its own, serving pipemsg -------------------------------- */

typedef struct server_thread {
  uv_loop_t loop;
  uv_async_t stop;
  pthread_t thread;
  pm_command_server *cmd;
  pm_event_server *evt;
} server_thread;

static void server_stop_cb(uv_async_t *a) {
  server_thread *st = a->data;
  if (st->cmd != NULL)
    pm_command_server_close(st->cmd, NULL, NULL);
  if (st->evt != NULL)
    pm_event_server_close(st->evt, NULL, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

static void *server_main(void *arg) {
  server_thread *st = arg;
  uv_run(&st->loop, UV_RUN_DEFAULT);
  return NULL;
}

static int server_thread_init(server_thread *st) {
  memset(st, 0, sizeof(*st));
  if (uv_loop_init(&st->loop) < 0)
    return PM_ENOMEM;
  if (uv_async_init(&st->loop, &st->stop, server_stop_cb) < 0) {
    uv_loop_close(&st->loop);
    return PM_ENOMEM;
  }
  st->stop.data = st;
  return 0;
}

/* Runs the loop on a new thread; on failure closes what init opened. */
static int server_thread_run(server_thread *st) {
  if (pthread_create(&st->thread, NULL, server_main, st) == 0)
    return 0;
  server_stop_cb(&st->stop);
  uv_run(&st->loop, UV_RUN_DEFAULT);
  uv_loop_close(&st->loop);
  return PM_ENOMEM;
}

static void server_thread_finish(server_thread *st) {
  uv_async_send(&st->stop);
  pthread_join(st->thread, NULL);
  uv_loop_close(&st->loop);
}

/* ---- command calls ----------------------------------------------------------------------- */

static void command_handler(pm_command_call *call, void *data) {
  (void)data;
  pm_command_call_reply(call, PM_RESULT_OK, NULL, event_data());
}

/* pipemsg: calls/s of pm_command_client_call against a command server on a loop thread. */
static int command_pipemsg(bench *bh, pm_encoding enc, double *rate) {
  server_thread st;
  pm_command_server_options so;
  pm_client_options co;
  pm_msg *req = NULL, *resp;
  char path[128];
  uint64_t start, deadline;
  long calls = 0;
  int rc, i;

  bench_path(bh, "cmd.sock", path, sizeof(path));
  memset(&so, 0, sizeof(so));
  memset(&co, 0, sizeof(co));
  so.handler = command_handler;
  rc = server_thread_init(&st);
  if (rc < 0)
    return rc;
  rc = pm_command_server_start(&st.loop, path, &so, &st.cmd);
  if (rc == 0)
    rc = server_thread_run(&st);
  else
    server_thread_run(&st) == 0 ? server_thread_finish(&st) : (void)0;
  if (rc < 0)
    return rc;
  rc = request_new(&req);
  for (i = 0; rc == 0 && i < BENCH_WARMUP; i++) {
    rc = pm_command_client_call(path, &co, req, enc, &resp);
    if (rc == 0)
      pm_msg_free(resp);
  }
  start = now_ns();
  deadline = start + (uint64_t)(bh->b.command_s * 1e9);
  while (rc == 0 && now_ns() < deadline) {
    rc = pm_command_client_call(path, &co, req, enc, &resp);
    if (rc == 0) {
      pm_msg_free(resp);
      calls++;
    }
  }
  *rate = (double)calls / ((double)(now_ns() - start) / 1e9);
  pm_msg_free(req);
  server_thread_finish(&st);
  return rc;
}

typedef struct floor_server {
  int listen_fd;
  const wire *w;
} floor_server;

/* The floor's server: accept, read one frame, write the prepared response, close. Ends when
 * the listening socket is shut down. */
static void *command_floor_main(void *arg) {
  floor_server *fs = arg;
  uint8_t buf[BENCH_FLOOR_BUF];
  for (;;) {
    int fd = accept(fs->listen_fd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return NULL;
    }
    if (read_frame(fd, buf, sizeof(buf)) >= 0)
      write_frame(fd, fs->w->response, fs->w->response_len);
    close(fd);
  }
}

static int command_floor_call(const char *path, const wire *w, uint8_t *buf, size_t size) {
  int fd = unix_socket(path, 0), rc;
  if (fd < 0)
    return fd;
  rc = write_frame(fd, w->request, w->request_len);
  if (rc == 0 && read_frame(fd, buf, size) < 0)
    rc = PM_EIO;
  close(fd);
  return rc;
}

/* Floor: the same socket calls from a plain C loop (socket, connect, write, read, close) with
 * the bytes encoded once beforehand. */
static int command_floor(bench *bh, const wire *w, double *rate) {
  floor_server fs = {-1, w};
  pthread_t thread;
  uint8_t buf[BENCH_FLOOR_BUF];
  char path[128];
  uint64_t start, deadline;
  long calls = 0;
  int rc = 0, i;

  bench_path(bh, "floor.sock", path, sizeof(path));
  fs.listen_fd = unix_socket(path, PM_BACKLOG_DEFAULT);
  if (fs.listen_fd < 0)
    return fs.listen_fd;
  if (pthread_create(&thread, NULL, command_floor_main, &fs) != 0) {
    close(fs.listen_fd);
    return PM_ENOMEM;
  }
  for (i = 0; rc == 0 && i < BENCH_WARMUP; i++)
    rc = command_floor_call(path, w, buf, sizeof(buf));
  start = now_ns();
  deadline = start + (uint64_t)(bh->b.command_s * 1e9);
  while (rc == 0 && now_ns() < deadline) {
    rc = command_floor_call(path, w, buf, sizeof(buf));
    calls++;
  }
  *rate = (double)calls / ((double)(now_ns() - start) / 1e9);
  shutdown(fs.listen_fd, SHUT_RDWR);
  pthread_join(thread, NULL);
  close(fs.listen_fd);
  unlink(path);
  return rc;
}

static int run_command(bench *bh) {
  static const struct {
    pm_encoding enc;
    const char *name;
  } encs[] = {{PM_ENC_JSON, "command_json"}, {PM_ENC_XML, "command_xml"}};
  size_t i;
  for (i = 0; i < sizeof(encs) / sizeof(encs[0]); i++) {
    wire w;
    double pm = 0, base = 0;
    int rc = wire_new(encs[i].enc, &w);
    if (rc == 0)
      rc = command_pipemsg(bh, encs[i].enc, &pm);
    if (rc == 0)
      rc = command_floor(bh, &w, &base);
    wire_free(&w);
    if (rc < 0)
      return rc;
    add_speed(bh, encs[i].name, "calls/s", HIGHER_BETTER, pm, base, "raw socket loop", 0.6,
              ">= 0.6");
  }
  return 0;
}

/* ---- events ------------------------------------------------------------------------------ */

typedef struct event_run {
  sem_t attached;  /* posted when the client is connected */
  sem_t delivered; /* posted by the callback in latency mode, or after the last event */
  int latency_mode;
  int expected;                 /* callbacks that end the rate run */
  int seen;                     /* callbacks so far (client thread only) */
  _Atomic uint64_t publish_ns;  /* when the event being measured was published */
  uint64_t *samples;
  int n_samples;
} event_run;

static void event_cb(const pm_event *ev, void *data) {
  event_run *er = data;
  (void)ev;
  if (er->latency_mode) {
    er->samples[er->n_samples++] = now_ns() - atomic_load(&er->publish_ns);
    sem_post(&er->delivered);
  } else if (++er->seen == er->expected) {
    sem_post(&er->delivered);
  }
}

static void event_state_cb(pm_event_client_state state, const char *reason, void *data) {
  event_run *er = data;
  (void)reason;
  if (state == PM_EVENT_CLIENT_CONNECTED)
    sem_post(&er->attached);
}

static int sem_wait_s(sem_t *s, int seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += seconds;
  while (sem_timedwait(s, &ts) < 0) {
    if (errno != EINTR)
      return PM_ETIMEDOUT;
  }
  return 0;
}

static int publish_one(pm_event_server *s) {
  return pm_event_server_publish(s, "StateChanged", event_data(), NULL);
}

/* pipemsg: confirmed events/s with all events published at once (one in flight, as the
 * protocol has it), then publish-to-callback latency one event at a time. */
static int event_pipemsg(bench *bh, double *rate, uint64_t *samples) {
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
  memset(&so, 0, sizeof(so));
  so.queue_max_events = (size_t)n + BENCH_WARMUP;
  memset(&co, 0, sizeof(co));
  co.on_event = event_cb;
  co.on_state = event_state_cb;
  co.data = &er;
  rc = server_thread_init(&st);
  if (rc < 0)
    return rc;
  rc = pm_event_server_start(&st.loop, path, &so, &st.evt);
  if (rc == 0)
    rc = server_thread_run(&st);
  else
    server_thread_run(&st) == 0 ? server_thread_finish(&st) : (void)0;
  if (rc < 0)
    return rc;
  rc = pm_event_client_start(path, &co, &client);
  if (rc == 0)
    rc = sem_wait_s(&er.attached, BENCH_WAIT_S);
  /* Rate: warm-up events plus n timed ones; the clock starts at the first timed publish. */
  er.expected = BENCH_WARMUP;
  for (i = 0; rc == 0 && i < BENCH_WARMUP; i++)
    rc = publish_one(st.evt);
  if (rc == 0)
    rc = sem_wait_s(&er.delivered, BENCH_WAIT_S);
  er.seen = 0;
  er.expected = n;
  start = now_ns();
  for (i = 0; rc == 0 && i < n; i++)
    rc = publish_one(st.evt);
  if (rc == 0)
    rc = sem_wait_s(&er.delivered, BENCH_WAIT_S * 6);
  *rate = (double)n / ((double)(now_ns() - start) / 1e9);
  /* Latency: publish, wait for the callback, again. */
  er.latency_mode = 1;
  for (i = 0; rc == 0 && i < n; i++) {
    atomic_store(&er.publish_ns, now_ns());
    rc = publish_one(st.evt);
    if (rc == 0)
      rc = sem_wait_s(&er.delivered, BENCH_WAIT_S);
  }
  if (client != NULL)
    pm_event_client_stop(client);
  server_thread_finish(&st);
  sem_destroy(&er.attached);
  sem_destroy(&er.delivered);
  return rc;
}

/* The peer of a ping-pong baseline: receive, note the one-way latency, answer. */
typedef struct pong {
  int fd;      /* socketpair end (floor) */
  void *zsock; /* REP socket (ZeroMQ) */
  const wire *w;
  _Atomic uint64_t send_ns;
  uint64_t *samples;
  int n_samples; /* samples recorded; the first BENCH_WARMUP are overwritten */
  int rc;
} pong;

static void *floor_pong_main(void *arg) {
  pong *p = arg;
  uint8_t buf[BENCH_FLOOR_BUF];
  long len;
  while ((len = read_frame(p->fd, buf, sizeof(buf))) > 0) {
    p->samples[p->n_samples++] = now_ns() - atomic_load(&p->send_ns);
    if (write_frame(p->fd, p->w->confirm, p->w->confirm_len) < 0) {
      p->rc = PM_EIO;
      break;
    }
  }
  return NULL;
}

/* Floor: framed event and confirmation between two threads over a socketpair, no library. */
static int event_floor(bench *bh, const wire *w, double *rate, uint64_t *samples) {
  int sv[2], i, rc = 0, n = bh->b.events;
  uint8_t buf[BENCH_FLOOR_BUF];
  pthread_t thread;
  pong p;
  uint64_t start = 0;

  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return PM_EIO;
  memset(&p, 0, sizeof(p));
  p.fd = sv[1];
  p.w = w;
  p.samples = samples;
  if (pthread_create(&thread, NULL, floor_pong_main, &p) != 0) {
    close(sv[0]);
    close(sv[1]);
    return PM_ENOMEM;
  }
  for (i = 0; rc == 0 && i < BENCH_WARMUP + n; i++) {
    if (i == BENCH_WARMUP) {
      p.n_samples = 0; /* the pong thread is waiting for us: no race */
      start = now_ns();
    }
    atomic_store(&p.send_ns, now_ns());
    rc = write_frame(sv[0], w->event, w->event_len);
    if (rc == 0 && read_frame(sv[0], buf, sizeof(buf)) < 0)
      rc = PM_EIO;
  }
  *rate = (double)n / ((double)(now_ns() - start) / 1e9);
  shutdown(sv[0], SHUT_RDWR);
  pthread_join(thread, NULL);
  close(sv[0]);
  close(sv[1]);
  return rc < 0 ? rc : p.rc;
}

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
      p->samples[p->n_samples++] = now_ns() - atomic_load(&p->send_ns);
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
static int event_zmq(bench *bh, const wire *w, double *rate, uint64_t *samples) {
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
      start = now_ns();
    }
    atomic_store(&p.send_ns, now_ns());
    if (zmq_send(req, w->event, w->event_len, 0) < 0 || zmq_recv(req, buf, sizeof(buf), 0) < 0)
      rc = PM_EIO;
  }
  *rate = (double)n / ((double)(now_ns() - start) / 1e9);
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

static int run_events(bench *bh, int with_floor, int with_zmq) {
  wire w;
  double pm_rate = 0, rate = 0, pm50, pm99, b50, b99;
  size_t n = (size_t)bh->b.events;
  uint64_t *pm_lat = calloc(n, sizeof(uint64_t)), *lat = calloc(n, sizeof(uint64_t));
  int rc = pm_lat != NULL && lat != NULL ? wire_new(PM_ENC_JSON, &w) : PM_ENOMEM;

  if (rc == 0) {
    rc = event_pipemsg(bh, &pm_rate, pm_lat);
    if (rc == 0)
      percentiles(pm_lat, bh->b.events, &pm50, &pm99);
    if (rc == 0 && with_floor)
      rc = event_floor(bh, &w, &rate, lat);
    if (rc == 0 && with_floor) {
      percentiles(lat, bh->b.events, &b50, &b99);
      add_speed(bh, "event_rate", "events/s", HIGHER_BETTER, pm_rate, rate,
                "socketpair ping-pong", 0.6, ">= 0.6");
      add_speed(bh, "event_p50", "us", LOWER_BETTER, pm50, b50, "socketpair ping-pong", 0.6,
                ">= 0.6");
      add_speed(bh, "event_p99", "us", LOWER_BETTER, pm99, b99, "socketpair ping-pong", 0.6,
                ">= 0.6");
    }
    if (rc == 0 && with_zmq)
      rc = event_zmq(bh, &w, &rate, lat);
    if (rc == 0 && with_zmq) {
      percentiles(lat, bh->b.events, &b50, &b99);
      add_speed(bh, "zmq_event_rate", "events/s", HIGHER_BETTER, pm_rate, rate,
                "ZeroMQ REQ/REP ipc://", 1.0, "> 1");
      add_speed(bh, "zmq_event_p50", "us", LOWER_BETTER, pm50, b50, "ZeroMQ REQ/REP ipc://", 1.0,
                "> 1");
      add_speed(bh, "zmq_event_p99", "us", LOWER_BETTER, pm99, b99, "ZeroMQ REQ/REP ipc://", 1.0,
                "> 1");
    }
    wire_free(&w);
  }
  free(pm_lat);
  free(lat);
  return rc;
}

/* ---- one big message --------------------------------------------------------------------- */

static void big_handler(pm_command_call *call, void *data) {
  const char *blob = NULL;
  const json_t *params = pm_command_call_params(call);
  (void)data;
  if (params != NULL)
    pm_tree_get_string(params, "Blob", &blob);
  pm_command_call_reply(call, PM_RESULT_OK, NULL,
                        json_pack("{s:I}", "Bytes", (json_int_t)(blob ? strlen(blob) : 0)));
}

/* Child: a command server (pipemsg, or the raw floor) on path; writes one byte to ready_fd once
 * it listens, then serves until killed. */
static void big_child(const char *path, size_t max_message, int raw, int ready_fd) {
  if (raw) {
    int lfd = unix_socket(path, 1), fd;
    uint8_t hdr[4];
    if (lfd < 0 || write(ready_fd, "r", 1) != 1)
      _exit(1);
    while ((fd = accept(lfd, NULL, NULL)) >= 0) {
      size_t len;
      uint8_t *buf;
      if (read_full(fd, hdr, 4) < 0)
        _exit(1);
      len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
      buf = malloc(len);
      if (buf == NULL || read_full(fd, buf, len) < 0 || write_frame(fd, "{}", 2) < 0)
        _exit(1);
      free(buf);
      close(fd);
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
        write(ready_fd, "r", 1) != 1)
      _exit(1);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  _exit(0);
}

static int big_spawn(const char *path, size_t max_message, int raw, pid_t *out) {
  int fds[2];
  char c;
  pid_t pid;
  if (pipe(fds) < 0)
    return PM_EIO;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    big_child(path, max_message, raw, fds[1]);
  }
  close(fds[1]);
  if (pid < 0 || read(fds[0], &c, 1) != 1) {
    close(fds[0]);
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
    }
    return PM_EIO;
  }
  close(fds[0]);
  *out = pid;
  return 0;
}

static void big_reap(pid_t pid, const char *path) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  unlink(path);
}

typedef struct big_figures {
  double seconds;
  double client_peak; /* bytes above RSS before the request was built (tree included) */
  double server_peak; /* bytes above the server's RSS before the call */
} big_figures;

/* pipemsg: one request whose Params.Blob is size bytes, through pm_command_client_call to a
 * pipemsg command server in a child process. */
static int big_pipemsg(bench *bh, big_figures *f) {
  size_t size = bh->b.big_bytes, max = size + 4096;
  char path[128];
  pid_t pid;
  pm_client_options co;
  pm_msg *req = NULL, *resp = NULL;
  long long rss0, srv0;
  uint64_t start;
  char *raw;
  int rc;

  bench_path(bh, "big.sock", path, sizeof(path));
  rc = big_spawn(path, max, 0, &pid);
  if (rc < 0)
    return rc;
  memset(&co, 0, sizeof(co));
  co.max_message = max;
  co.response_timeout_ms = 60000;
  rss0 = proc_status_kb(0, "VmRSS");
  raw = malloc(size);
  if (raw == NULL) {
    big_reap(pid, path);
    return PM_ENOMEM;
  }
  memset(raw, 'a', size);
  rc = pm_request_new("Put", 1, json_pack("{s:s%}", "Blob", raw, size), &req);
  free(raw);
  srv0 = proc_status_kb(pid, "VmRSS");
  if (rc == 0 && (reset_peak_rss(0) < 0 || reset_peak_rss(pid) < 0))
    rc = PM_EIO;
  start = now_ns();
  if (rc == 0)
    rc = pm_command_client_call(path, &co, req, PM_ENC_JSON, &resp);
  f->seconds = (double)(now_ns() - start) / 1e9;
  f->client_peak = (double)(proc_status_kb(0, "VmHWM") - rss0);
  f->server_peak = (double)(proc_status_kb(pid, "VmHWM") - srv0);
  pm_msg_free(resp);
  pm_msg_free(req);
  big_reap(pid, path);
  return rc;
}

/* Floor: the same frame written from one buffer to a raw server that reads it into one. */
static int big_floor(bench *bh, double *seconds) {
  static const char head[] = "{\"Request\":{\"Command\":\"Put\",\"Id\":1,\"Params\":{\"Blob\":\"";
  static const char tail[] = "\"}}}";
  size_t size = bh->b.big_bytes, len = strlen(head) + size + strlen(tail);
  char path[128];
  uint8_t resp[64];
  uint8_t *frame;
  uint64_t start;
  pid_t pid;
  int rc, fd;

  frame = malloc(len);
  if (frame == NULL)
    return PM_ENOMEM;
  memcpy(frame, head, strlen(head));
  memset(frame + strlen(head), 'a', size);
  memcpy(frame + strlen(head) + size, tail, strlen(tail));
  bench_path(bh, "bigfloor.sock", path, sizeof(path));
  rc = big_spawn(path, 0, 1, &pid);
  if (rc < 0) {
    free(frame);
    return rc;
  }
  start = now_ns();
  fd = unix_socket(path, 0);
  rc = fd < 0 ? fd : write_frame(fd, frame, len);
  if (rc == 0 && read_frame(fd, resp, sizeof(resp)) < 0)
    rc = PM_EIO;
  *seconds = (double)(now_ns() - start) / 1e9;
  if (fd >= 0)
    close(fd);
  free(frame);
  big_reap(pid, path);
  return rc;
}

static int run_big(bench *bh) {
  big_figures f;
  double floor_s = 0, payload = (double)bh->b.big_bytes;
  int rc = big_pipemsg(bh, &f);
  if (rc == 0)
    rc = big_floor(bh, &floor_s);
  if (rc < 0)
    return rc;
  add_speed(bh, "big_time", "s", LOWER_BETTER, f.seconds, floor_s, "raw socket write/read",
            0, NULL);
  add_cost(bh, "big_server_peak", "MiB", f.server_peak / MIB, payload / MIB, "payload size",
           "<= 3", f.server_peak <= 3 * payload);
  add_cost(bh, "big_client_peak", "MiB", f.client_peak / MIB, payload / MIB, "payload size",
           "<= 3", f.client_peak <= 3 * payload);
  return 0;
}

/* ---- idle cost --------------------------------------------------------------------------- */

typedef struct proc_usage {
  uint64_t cpu_ns;  /* run time of all threads (schedstat) */
  uint64_t wakeups; /* voluntary context switches of all threads */
} proc_usage;

static int proc_usage_read(pid_t pid, proc_usage *u) {
  char path[96], line[256];
  struct dirent *de;
  DIR *d;
  memset(u, 0, sizeof(*u));
  snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
  d = opendir(path);
  if (d == NULL)
    return PM_EIO;
  while ((de = readdir(d)) != NULL) {
    FILE *f;
    unsigned long long ns;
    if (de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, de->d_name);
    f = fopen(path, "r");
    if (f != NULL) {
      if (fscanf(f, "%llu", &ns) == 1)
        u->cpu_ns += ns;
      fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%d/task/%.16s/status", (int)pid, de->d_name);
    f = fopen(path, "r");
    if (f == NULL)
      continue;
    while (fgets(line, sizeof(line), f) != NULL) {
      if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
        u->wakeups += strtoull(line + 24, NULL, 10);
    }
    fclose(f);
  }
  closedir(d);
  return 0;
}

/* The floor's heartbeat child: the same heartbeat period with poll() on a socket, a framed
 * heartbeat out and its answer in; ends at EOF. */
static void idle_floor_child(int fd, const wire *w) {
  uint8_t buf[BENCH_FLOOR_BUF];
  struct pollfd pfd = {fd, POLLIN, 0};
  for (;;) {
    int n = poll(&pfd, 1, (int)PM_HEARTBEAT_MS_DEFAULT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n != 0) /* EOF: the parent is done */
      _exit(0);
    if (write_frame(fd, w->confirm, w->confirm_len) < 0 || read_frame(fd, buf, sizeof(buf)) < 0)
      _exit(1);
  }
}

static void *idle_floor_answer(void *arg) {
  pong *p = arg;
  uint8_t buf[BENCH_FLOOR_BUF];
  while (read_frame(p->fd, buf, sizeof(buf)) > 0) {
    if (write_frame(p->fd, p->w->confirm, p->w->confirm_len) < 0)
      break;
  }
  return NULL;
}

/* The path of pipemsgd: next to this program. */
static int pipemsgd_path(char *buf, size_t size) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  char *slash;
  if (n <= 0)
    return PM_EIO;
  self[n] = '\0';
  slash = strrchr(self, '/');
  if (slash == NULL)
    return PM_EIO;
  *slash = '\0';
  if ((size_t)snprintf(buf, size, "%s/pipemsgd", self) >= size || access(buf, X_OK) < 0)
    return PM_ENOENT;
  return 0;
}

static int spawn_pipemsgd(bench *bh, pid_t *out) {
  char exe[PATH_MAX], cmd[128], evt[128];
  pid_t pid;
  int rc = pipemsgd_path(exe, sizeof(exe));
  if (rc < 0)
    return rc;
  bench_path(bh, "idle-cmd.sock", cmd, sizeof(cmd));
  bench_path(bh, "idle-evt.sock", evt, sizeof(evt));
  fflush(NULL);
  pid = fork();
  if (pid < 0)
    return PM_EIO;
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    unsetenv("NOTIFY_SOCKET");
    execl(exe, exe, "-c", cmd, "-e", evt, "--log-level", "error", (char *)NULL);
    _exit(127);
  }
  *out = pid;
  return 0;
}

/* pipemsgd with an attached idle pm_event_client, and beside it the heartbeat floor, over the
 * same window. */
static int run_idle(bench *bh) {
  pm_event_client_options co;
  pm_event_client *client = NULL;
  event_run er;
  proc_usage a0, a1, b0, b1;
  char evt[128];
  pid_t svc = -1, floor_pid = -1;
  pthread_t answer;
  int sv[2] = {-1, -1}, answering = 0, rc;
  pong p;
  uint64_t t0, t1;
  wire w;
  double wall, pm_cpu, base_cpu;

  rc = wire_new(PM_ENC_JSON, &w);
  if (rc < 0)
    return rc;
  memset(&er, 0, sizeof(er));
  sem_init(&er.attached, 0, 0);
  memset(&co, 0, sizeof(co));
  co.on_event = event_cb;
  co.on_state = event_state_cb;
  co.data = &er;
  er.latency_mode = 0;
  er.expected = -1;
  sem_init(&er.delivered, 0, 0);
  bench_path(bh, "idle-evt.sock", evt, sizeof(evt));
  rc = spawn_pipemsgd(bh, &svc);
  if (rc == 0)
    rc = pm_event_client_start(evt, &co, &client);
  if (rc == 0)
    rc = sem_wait_s(&er.attached, BENCH_WAIT_S);
  if (rc == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    rc = PM_EIO;
  if (rc == 0) {
    fflush(NULL);
    floor_pid = fork();
    if (floor_pid == 0) {
      close(sv[1]);
      idle_floor_child(sv[0], &w);
    }
    if (floor_pid < 0)
      rc = PM_EIO;
  }
  memset(&p, 0, sizeof(p));
  p.fd = sv[1];
  p.w = &w;
  if (rc == 0)
    rc = pthread_create(&answer, NULL, idle_floor_answer, &p) == 0 ? 0 : PM_ENOMEM;
  answering = rc == 0;
  if (rc == 0) {
    sleep_ms(300); /* let connection set-up settle */
    t0 = now_ns();
    rc = proc_usage_read(svc, &a0);
    if (rc == 0)
      rc = proc_usage_read(floor_pid, &b0);
    sleep_ms((unsigned)(bh->b.idle_s * 1000));
    if (rc == 0)
      rc = proc_usage_read(svc, &a1);
    if (rc == 0)
      rc = proc_usage_read(floor_pid, &b1);
    t1 = now_ns();
    wall = (double)(t1 - t0);
    if (rc == 0) {
      pm_cpu = 100.0 * (double)(a1.cpu_ns - a0.cpu_ns) / wall;
      base_cpu = 100.0 * (double)(b1.cpu_ns - b0.cpu_ns) / wall;
      add_cost(bh, "idle_cpu", "% CPU", pm_cpu, base_cpu, "poll() heartbeat loop", "< 0.1 %",
               pm_cpu < 0.1);
      add_cost(bh, "idle_wakeups", "wakeups/s", (double)(a1.wakeups - a0.wakeups) * 1e9 / wall,
               (double)(b1.wakeups - b0.wakeups) * 1e9 / wall, "poll() heartbeat loop", NULL, 0);
    }
  }
  if (client != NULL)
    pm_event_client_stop(client);
  if (sv[0] >= 0) {
    shutdown(sv[1], SHUT_RDWR);
    if (answering)
      pthread_join(answer, NULL);
    close(sv[0]);
    close(sv[1]);
  }
  if (floor_pid > 0)
    waitpid(floor_pid, NULL, 0);
  if (svc > 0) {
    kill(svc, SIGTERM);
    waitpid(svc, NULL, 0);
  }
  sem_destroy(&er.attached);
  sem_destroy(&er.delivered);
  wire_free(&w);
  return rc;
}

/* ---- memory per queued event ------------------------------------------------------------- */

/* Child: an event server with nobody attached; publishes n events and writes the growth per
 * event of RSS and of the heap in use (two doubles) to fd. The loop never runs: publishing only
 * queues. */
static void queue_child(const char *path, int n, int fd) {
  uv_loop_t loop;
  pm_event_server_options so;
  pm_event_server *s;
  pm_event_stats stats;
  struct mallinfo2 m0, m1;
  long long rss0, rss1;
  double per_event[2];
  int i;
  memset(&so, 0, sizeof(so));
  so.queue_max_events = (size_t)n;
  so.queue_max_bytes = (size_t)1 << 30;
  if (uv_loop_init(&loop) < 0 || pm_event_server_start(&loop, path, &so, &s) < 0)
    _exit(1);
  rss0 = proc_status_kb(0, "VmRSS");
  m0 = mallinfo2();
  for (i = 0; i < n; i++) {
    if (publish_one(s) < 0)
      _exit(1);
  }
  m1 = mallinfo2();
  rss1 = proc_status_kb(0, "VmRSS");
  pm_event_server_stats(s, &stats);
  if (stats.queued != (uint64_t)n)
    _exit(1);
  per_event[0] = (double)(rss1 - rss0) / n;
  per_event[1] = (double)((m1.uordblks + m1.hblkhd) - (m0.uordblks + m0.hblkhd)) / n;
  _exit(write(fd, per_event, sizeof(per_event)) == sizeof(per_event) ? 0 : 1);
}

static int run_queue(bench *bh) {
  char path[128];
  int fds[2], status;
  double per_event[2] = {0, 0};
  ssize_t got;
  wire w;
  pid_t pid;
  int rc = wire_new(PM_ENC_JSON, &w);
  if (rc < 0)
    return rc;
  bench_path(bh, "queue.sock", path, sizeof(path));
  if (pipe(fds) < 0) {
    wire_free(&w);
    return PM_EIO;
  }
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    queue_child(path, bh->b.queued_events, fds[1]);
  }
  close(fds[1]);
  got = pid > 0 ? read(fds[0], per_event, sizeof(per_event)) : -1;
  close(fds[0]);
  if (pid > 0)
    waitpid(pid, &status, 0);
  unlink(path);
  if (got != (ssize_t)sizeof(per_event)) {
    rc = PM_EIO;
  } else {
    add_cost(bh, "queue_rss_per_event", "bytes", per_event[0], (double)(w.event_len + 4),
             "event frame size", NULL, 0);
    add_cost(bh, "queue_heap_per_event", "bytes", per_event[1], (double)(w.event_len + 4),
             "event frame size", NULL, 0);
  }
  wire_free(&w);
  return rc;
}

/* ---- output ------------------------------------------------------------------------------ */

static const char *pass_text(int pass) {
  return pass < 0 ? "info" : pass ? "pass" : "MISS";
}

static void print_table(const bench *bh) {
  int i;
  printf("pipemsg bench (%s, %s, %ld CPUs online)\n",
         bh->b.command_s < full_budget.command_s ? "quick" : "full",
         bh->pinned ? "pinned to CPU 0" : "unpinned", sysconf(_SC_NPROCESSORS_ONLN));
  printf("%-22s %-10s %12s %12s %8s %-8s %-6s %s\n", "scenario", "unit", "pipemsg", "baseline",
         "ratio", "target", "result", "baseline is");
  for (i = 0; i < bh->n_results; i++) {
    const result *r = &bh->results[i];
    printf("%-22s %-10s %12.6g %12.6g %8.3f %-8s %-6s %s\n", r->name, r->unit, r->pipemsg,
           r->baseline, r->ratio, r->target ? r->target : "-", pass_text(r->pass),
           r->baseline_kind);
  }
  puts("ratio: rates pipemsg/baseline, times baseline/pipemsg (above 1: pipemsg better);\n"
       "memory and idle rows: pipemsg/baseline (multiples of the baseline).");
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
                  bh->b.command_s < full_budget.command_s ? "quick" : "full", "pinned",
                  bh->pinned, "cpus", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN), "scenarios",
                  rows);
  json_dumpf(top, stdout, JSON_INDENT(2));
  fputc('\n', stdout);
  json_decref(top);
}

/* ---- the command ------------------------------------------------------------------------- */

static int pin_cpu0(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : PM_EIO;
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  char path[PATH_MAX];
  if (d == NULL)
    return;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

static int selected(const char *const *only, int n_only, const char *group) {
  int i;
  for (i = 0; i < n_only; i++) {
    if (strcmp(only[i], group) == 0)
      return 1;
  }
  return n_only == 0;
}

int cmd_bench(int argc, char **argv) {
  static bench bh; /* large: results and budgets */
  const char *only[sizeof(groups) / sizeof(groups[0])];
  int n_only = 0, pin = 0, c, rc = 0, i;

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
  if (pin && pin_cpu0() < 0) {
    fprintf(stderr, "pipemsg bench: cannot pin to CPU 0: %s\n", strerror(errno));
    return 1;
  }
  bh.pinned = pin;
  snprintf(bh.dir, sizeof(bh.dir), "/tmp/pmbench.XXXXXX");
  if (mkdtemp(bh.dir) == NULL) {
    fprintf(stderr, "pipemsg bench: mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  /* queue first: its forked child must not inherit a heap that earlier scenarios left
   * resident, or its RSS would not grow with the events it allocates. */
  if (rc == 0 && selected(only, n_only, "queue"))
    rc = run_queue(&bh);
  if (rc == 0 && selected(only, n_only, "command"))
    rc = run_command(&bh);
  if (rc == 0 && (selected(only, n_only, "event") || selected(only, n_only, "zmq")))
    rc = run_events(&bh, selected(only, n_only, "event"), selected(only, n_only, "zmq"));
  if (rc == 0 && selected(only, n_only, "big"))
    rc = run_big(&bh);
  if (rc == 0 && selected(only, n_only, "idle"))
    rc = run_idle(&bh);
  remove_dir(bh.dir);
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
