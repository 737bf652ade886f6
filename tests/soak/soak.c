/* Soak run: a real pipemsgd (--test-commands --data-dir) under steady load with random client
 * kills, for a bounded time.
 *
 *   soak [SECONDS] [PIPEMSGD]     (default 120 s, PM_BIN_DIR/pipemsgd)
 *
 * - a watcher (pm_event_client) takes every event and records it;
 * - a publisher thread emits durable `Soak` events (Data {Seq: n}) and transient
 *   `TrafficChanged` events with EmitEvent;
 * - a caller thread issues GetState, GetStats and GetVersion in a loop;
 * - the main thread, every 1-3 s, does one of: cut the watcher's connection under it (the library
 *   reconnects and resumes), replace the watcher with a new pm_event_client, let a raw client
 *   attach, take an event without confirming it and be SIGKILLed, or have a raw command client
 *   send half a request and be SIGKILLed.
 * At the end, publishing stops; once the watcher has everything, every durable Seq must have
 * reached the application exactly once and in order, the service's counters (GetStats) must
 * agree with what the program did, and the service must exit 0 on SIGTERM.
 *
 * A pm_event_client remembers its resume cursor only for its own lifetime, so a replaced
 * watcher may be sent again the one event whose confirmation died with its predecessor's
 * connection (at-least-once, PROTOCOL §5.4). The application drops such an event by id, as a
 * real application restarting its client would; they are counted and reported. Within one
 * client a repeated event is a failure. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pipemsg/pipemsg.h"

#ifndef PM_BIN_DIR
#define PM_BIN_DIR "build/bin"
#endif

#define MAX_SEQ 2000000
#define T_MS "300"

static char dir[64], cmd_pipe[128], evt_pipe[128], data_dir[128], log_path[128];
static pid_t service_pid;
static volatile int stop_load;
static int failures;

/* What the watcher saw, under lock. */
static uv_mutex_t lock;
static unsigned char *seen;    /* per Seq: times delivered to the application */
static int64_t app_last_id;    /* highest id the application accepted */
static int64_t app_last_seq;   /* Seq of the last durable event the application accepted */
static long durable_taken;     /* distinct durable events accepted */
static long transient_taken;   /* TrafficChanged events accepted */
static long cross_instance_dups; /* events a replaced watcher was sent again (dropped by id) */
static long same_instance_dups;  /* an event one client delivered twice: a failure */
static long out_of_order;        /* Seq not increasing: a failure */
static long connects, disconnects;
static int64_t epoch;

/* What the load threads did (written by their own thread, read after join). */
static long durable_published, transient_published, emit_failed;
static long calls_ok, calls_failed;
static long kills[4];
static long raw_command_kills;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void failure(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "soak: FAIL: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  failures++;
}

/* ---- the service ------------------------------------------------------------------------- */

static const char *service_log_tail(void) {
  static char buf[4096];
  FILE *f = fopen(log_path, "r");
  size_t n = 0;
  buf[0] = '\0';
  if (f != NULL) {
    long size;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
  }
  return buf;
}

static void start_service(const char *bin) {
  const char *argv[] = {bin, "-c", cmd_pipe, "-e", evt_pipe, "--data-dir", data_dir,
                        "--test-commands", "--request-timeout-ms", "1000", "--write-timeout-ms",
                        "1000", "--handshake-timeout-ms", T_MS, "--heartbeat-ms", T_MS,
                        "--ack-timeout-ms", T_MS, NULL};
  service_pid = fork();
  if (service_pid < 0) {
    perror("fork");
    exit(1);
  }
  if (service_pid == 0) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      close(fd);
    }
    execv(bin, (char *const *)argv);
    _exit(127);
  }
}

static const pm_client_options call_opts = {.connect_timeout_ms = 5000,
                                            .response_timeout_ms = 10000};

/* One command; returns the Result (static per thread: copied into out) and Data. */
static int call(const char *command, json_t *params, json_t **data) {
  pm_msg *req = NULL, *resp = NULL;
  const char *result = NULL;
  int rc;
  if (data != NULL)
    *data = NULL;
  if (pm_request_new(command, 1, params, &req) < 0)
    return -1;
  rc = pm_command_client_call(cmd_pipe, &call_opts, req, PM_ENC_JSON, &resp);
  pm_msg_free(req);
  if (rc < 0)
    return rc;
  rc = pm_msg_get_string(resp, "Result", &result) == 0 && strcmp(result, "Ok") == 0 ? 0 : -1;
  if (rc == 0 && data != NULL) {
    *data = json_object_get(pm_msg_fields(resp), "Data");
    json_incref(*data);
  }
  pm_msg_free(resp);
  return rc;
}

static void wait_ready(void) {
  uint64_t deadline = now_ms() + 30000;
  while (call("GetVersion", NULL, NULL) != 0) {
    int status;
    if (waitpid(service_pid, &status, WNOHANG) == service_pid) {
      fprintf(stderr, "soak: pipemsgd exited at start-up:\n%s\n", service_log_tail());
      exit(1);
    }
    if (now_ms() >= deadline) {
      fprintf(stderr, "soak: pipemsgd did not answer GetVersion:\n%s\n", service_log_tail());
      kill(service_pid, SIGKILL);
      exit(1);
    }
    uv_sleep(50);
  }
}

static int64_t stat_field(const json_t *stats, const char *group, const char *name) {
  const json_t *v = json_object_get(json_object_get(stats, group), name);
  if (v == NULL) {
    failure("GetStats has no %s.%s", group, name);
    return -1;
  }
  return json_is_boolean(v) ? json_is_true(v) : json_integer_value(v);
}

/* ---- the watcher --------------------------------------------------------------------------- */

/* One pm_event_client instance; gen tells instances apart. */
typedef struct watcher {
  pm_event_client *client;
  int64_t last_id; /* highest id this instance handed over */
} watcher;

static watcher watchers[2];
static int current;

static void on_event(const pm_event *ev, void *data) {
  watcher *w = data;
  int64_t seq = -1;
  uv_mutex_lock(&lock);
  if (epoch == 0)
    epoch = ev->epoch;
  if (ev->id <= w->last_id)
    same_instance_dups++;
  w->last_id = ev->id;
  if (ev->id <= app_last_id) {
    cross_instance_dups++; /* seen before through an earlier instance */
  } else {
    app_last_id = ev->id;
    if (strcmp(ev->type, "Soak") == 0) {
      if (pm_tree_get_int(ev->data, "Seq", &seq) < 0 || seq < 1 || seq >= MAX_SEQ) {
        out_of_order++;
      } else {
        if (seen[seq]++ == 0)
          durable_taken++;
        if (seq <= app_last_seq)
          out_of_order++;
        app_last_seq = seq;
      }
    } else if (strcmp(ev->type, PM_EVENT_TRAFFIC_CHANGED) == 0) {
      transient_taken++;
    } else {
      out_of_order++; /* EventsLost or anything unexpected */
    }
  }
  uv_mutex_unlock(&lock);
}

static void on_state(pm_event_client_state st, const char *reason, void *data) {
  (void)reason;
  (void)data;
  uv_mutex_lock(&lock);
  if (st == PM_EVENT_CLIENT_CONNECTED)
    connects++;
  else if (st == PM_EVENT_CLIENT_DISCONNECTED)
    disconnects++;
  uv_mutex_unlock(&lock);
}

static void watcher_start(void) {
  watcher *w = &watchers[current];
  pm_event_client_options o;
  int rc;
  memset(&o, 0, sizeof(o));
  o.handshake_timeout_ms = 2000;
  o.reconnect_min_ms = 20;
  o.reconnect_max_ms = 500;
  o.client_name = "soak";
  o.on_event = on_event;
  o.on_state = on_state;
  o.data = w;
  w->last_id = 0;
  rc = pm_event_client_start(evt_pipe, &o, &w->client);
  if (rc < 0) {
    fprintf(stderr, "soak: pm_event_client_start: %s\n", pm_strerror(rc));
    exit(1);
  }
}

static void watcher_stop(void) {
  pm_event_client_stop(watchers[current].client);
  watchers[current].client = NULL;
  current ^= 1;
}

/* Cuts the watcher's connection under it: shutdown() on our own socket connected to the event
 * pipe (the library sees the connection die and must reconnect and resume). */
static int cut_watcher_connection(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int cut = 0;
  if (d == NULL)
    return 0;
  while ((e = readdir(d)) != NULL) {
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    int fd = atoi(e->d_name);
    if (e->d_name[0] == '.' || fd == dirfd(d))
      continue;
    memset(&sa, 0, sizeof(sa));
    if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_family == AF_UNIX &&
        strcmp(sa.sun_path, evt_pipe) == 0 && shutdown(fd, SHUT_RDWR) == 0)
      cut++;
  }
  closedir(d);
  return cut;
}

/* ---- raw clients that die --------------------------------------------------------------------- */

static int raw_connect(const char *path) {
  struct sockaddr_un sa;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1); /* paths are short (checked in main) */
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* In a child: attach to the event pipe, read for up to 400 ms without confirming anything,
 * then tell the parent (which SIGKILLs us). */
static void raw_event_child(int notify) {
  static const char hs[] = "{\"Handshake\":{\"Seq\":1}}";
  uint8_t h[4] = {0, 0, 0, (uint8_t)(sizeof(hs) - 1)};
  char buf[4096];
  uint64_t end = now_ms() + 400;
  int fd = raw_connect(evt_pipe);
  if (fd >= 0 && send_all(fd, h, 4) == 0 && send_all(fd, hs, sizeof(hs) - 1) == 0) {
    while (now_ms() < end) {
      struct pollfd pfd = {.fd = fd, .events = POLLIN};
      if (poll(&pfd, 1, (int)(end - now_ms())) > 0 && recv(fd, buf, sizeof(buf), 0) <= 0)
        break;
    }
  }
  (void)!write(notify, "x", 1);
}

/* In a child: half a request on the command pipe. */
static void raw_command_child(int notify) {
  static const uint8_t half[] = {0, 0, 0, 60, '{', '"', 'R', 'e', 'q', 'u', 'e', 's', 't'};
  int fd = raw_connect(cmd_pipe);
  if (fd >= 0)
    send_all(fd, half, sizeof(half));
  (void)!write(notify, fd >= 0 ? "c" : "-", 1);
}

/* Forks a child running fn, waits for its word, SIGKILLs it. Returns the word (0 if none). */
static char kill_child(void (*fn)(int)) {
  int p[2];
  char c = 0;
  pid_t pid;
  struct pollfd pfd;
  if (pipe(p) < 0)
    return 0;
  pid = fork();
  if (pid == 0) {
    close(p[0]);
    fn(p[1]);
    for (;;)
      pause();
  }
  close(p[1]);
  pfd.fd = p[0];
  pfd.events = POLLIN;
  if (pid > 0 && poll(&pfd, 1, 5000) == 1 && read(p[0], &c, 1) != 1)
    c = 0;
  close(p[0]);
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  return c;
}

/* ---- load threads ------------------------------------------------------------------------------ */

static void publisher(void *arg) {
  unsigned rnd = 12345;
  (void)arg;
  while (!stop_load && durable_published + 1 < MAX_SEQ) {
    json_t *d = NULL;
    int rc;
    rnd = rnd * 1103515245u + 12345u;
    if ((rnd >> 16) % 4 == 0) {
      rc = call("EmitEvent",
                json_pack("{s:s, s:{s:I, s:i}}", "Type", PM_EVENT_TRAFFIC_CHANGED, "Data",
                          "BytesSent", (json_int_t)transient_published, "BytesReceived", 0),
                &d);
      if (rc == 0)
        transient_published++;
    } else {
      rc = call("EmitEvent",
                json_pack("{s:s, s:{s:I}}", "Type", "Soak", "Data", "Seq",
                          (json_int_t)(durable_published + 1)),
                &d);
      if (rc == 0)
        durable_published++;
    }
    json_decref(d);
    if (rc != 0) {
      /* We cannot know whether it was published; the counters would not add up. */
      emit_failed++;
      failure("EmitEvent failed: %d (%s)", rc, rc < 0 ? pm_client_result(rc) : "not Ok");
    }
    uv_sleep(2 + (rnd >> 20) % 8);
  }
}

static void caller(void *arg) {
  static const char *const commands[] = {"GetState", "GetStats", "GetVersion"};
  unsigned i = 0;
  (void)arg;
  while (!stop_load) {
    json_t *d = NULL;
    if (call(commands[i++ % 3], NULL, &d) == 0 && d != NULL)
      calls_ok++;
    else
      calls_failed++;
    json_decref(d);
    uv_sleep(5);
  }
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  long seconds = argc > 1 ? atol(argv[1]) : 120;
  const char *bin = argc > 2 ? argv[2] : PM_BIN_DIR "/pipemsgd";
  uv_thread_t pub, cal;
  uint64_t start, end, deadline;
  unsigned rnd = (unsigned)getpid();
  json_t *stats = NULL;
  int status, rc;
  long readiness_ok;

  if (seconds < 5) {
    fprintf(stderr, "usage: soak [SECONDS >= 5] [PIPEMSGD]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  snprintf(dir, sizeof(dir), "/tmp/pmsoak.XXXXXX");
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(cmd_pipe, sizeof(cmd_pipe), "%s/cmd", dir);
  snprintf(evt_pipe, sizeof(evt_pipe), "%s/evt", dir);
  snprintf(data_dir, sizeof(data_dir), "%s/data", dir);
  snprintf(log_path, sizeof(log_path), "%s/log", dir);
  seen = calloc(MAX_SEQ, 1);
  if (seen == NULL)
    return 1;
  uv_mutex_init(&lock);

  printf("soak: %ld s against %s in %s\n", seconds, bin, dir);
  fflush(stdout);
  start_service(bin);
  wait_ready();
  readiness_ok = 1;

  watcher_start();
  uv_thread_create(&pub, publisher, NULL);
  uv_thread_create(&cal, caller, NULL);

  start = now_ms();
  end = start + (uint64_t)seconds * 1000u - 3000u; /* leave time to settle */
  while (now_ms() < end) {
    int what;
    uv_sleep(1000 + (rnd >> 16) % 2000);
    rnd = rnd * 1103515245u + 12345u;
    what = (int)((rnd >> 16) % 4);
    switch (what) {
    case 0: /* the watcher's connection dies under it */
      if (cut_watcher_connection() > 0)
        kills[0]++;
      break;
    case 1: /* the watcher is replaced by a new client */
      watcher_stop();
      watcher_start();
      kills[1]++;
      break;
    case 2: /* a raw client takes the event pipe, takes an event, dies unconfirmed */
      watcher_stop();
      if (kill_child(raw_event_child) == 'x')
        kills[2]++;
      watcher_start();
      break;
    default: /* a raw command client dies mid-request */
      if (kill_child(raw_command_child) == 'c') {
        kills[3]++;
        raw_command_kills++;
      }
      break;
    }
  }

  /* Stop the load, then let the watcher take everything. */
  stop_load = 1;
  uv_thread_join(&pub);
  uv_thread_join(&cal);
  deadline = now_ms() + 30000;
  for (;;) {
    int64_t queued = -1;
    long taken;
    uv_mutex_lock(&lock);
    taken = durable_taken;
    uv_mutex_unlock(&lock);
    if (call("GetStats", NULL, &stats) == 0) {
      calls_ok++;
      queued = stat_field(stats, "Events", "Queued");
    } else {
      calls_failed++;
    }
    if (taken == durable_published && queued == 0)
      break;
    json_decref(stats);
    stats = NULL;
    if (now_ms() >= deadline) {
      failure("the watcher did not get everything: %ld of %ld durable, %lld queued", taken,
              durable_published, (long long)queued);
      break;
    }
    uv_sleep(50);
  }
  watcher_stop();

  /* Final counters (the last GetStats counted everything but itself). */
  json_decref(stats);
  if (call("GetStats", NULL, &stats) != 0) {
    failure("final GetStats failed");
  } else {
    int64_t published = stat_field(stats, "Events", "Published");
    int64_t delivered = stat_field(stats, "Events", "Delivered");
    int64_t dropped = stat_field(stats, "Events", "DroppedTransient");
    int64_t lost = stat_field(stats, "Events", "LostOverflow");
    int64_t skipped = stat_field(stats, "Events", "ResumeSkipped");
    int64_t queued = stat_field(stats, "Events", "Queued");
    int64_t ok = stat_field(stats, "Commands", "Ok");
    int64_t conns = stat_field(stats, "Commands", "Connections");
    int64_t no_request = stat_field(stats, "Commands", "NoRequest");
    int64_t cfailed = stat_field(stats, "Commands", "Failed");
    int64_t bad = stat_field(stats, "Commands", "BadRequest");
    int64_t sessions = stat_field(stats, "Events", "Sessions");
    int64_t our_ok = calls_ok + durable_published + transient_published + readiness_ok;

    printf("soak: service: Published %lld Delivered %lld Redelivered %lld DroppedTransient %lld "
           "LostOverflow %lld ResumeSkipped %lld Queued %lld Sessions %lld AckFailures %lld "
           "HeartbeatFailures %lld HandshakeFailures %lld BusyRejections %lld\n",
           (long long)published, (long long)delivered,
           (long long)stat_field(stats, "Events", "Redelivered"), (long long)dropped,
           (long long)lost, (long long)skipped, (long long)queued, (long long)sessions,
           (long long)stat_field(stats, "Events", "AckFailures"),
           (long long)stat_field(stats, "Events", "HeartbeatFailures"),
           (long long)stat_field(stats, "Events", "HandshakeFailures"),
           (long long)stat_field(stats, "Events", "BusyRejections"));
    printf("soak: service: Commands Connections %lld Ok %lld Failed %lld BadRequest %lld "
           "NoRequest %lld\n",
           (long long)conns, (long long)ok, (long long)cfailed, (long long)bad,
           (long long)no_request);
    if (published != durable_published + transient_published)
      failure("Published %lld, the program published %ld", (long long)published,
              durable_published + transient_published);
    if (lost != 0)
      failure("LostOverflow %lld", (long long)lost);
    if (queued != 0)
      failure("Queued %lld at the end", (long long)queued);
    /* Every event left the queue one way: confirmed, dropped (transient), lost, or skipped. */
    if (published != delivered + dropped + lost + skipped + queued)
      failure("Published %lld != Delivered + DroppedTransient + LostOverflow + ResumeSkipped + "
              "Queued (%lld)",
              (long long)published, (long long)(delivered + dropped + lost + skipped + queued));
    /* Each durable event was confirmed or skipped by a resume exactly once; transient ones were
     * confirmed at most as often as the application took them. */
    if (delivered + skipped < durable_published ||
        delivered + skipped > durable_published + transient_taken)
      failure("Delivered + ResumeSkipped = %lld, expected %ld..%ld",
              (long long)(delivered + skipped), durable_published,
              durable_published + transient_taken);
    if (ok != our_ok)
      failure("Commands.Ok %lld, the program had %lld", (long long)ok, (long long)our_ok);
    if (no_request != raw_command_kills)
      failure("Commands.NoRequest %lld, the program killed %ld mid-request",
              (long long)no_request, raw_command_kills);
    if (cfailed != 0 || bad != 0)
      failure("Commands.Failed %lld, BadRequest %lld", (long long)cfailed, (long long)bad);
    if (conns != ok + cfailed + bad + no_request)
      failure("Commands.Connections %lld != Ok + Failed + BadRequest + NoRequest",
              (long long)conns);
    if (sessions < connects)
      failure("Sessions %lld < the watcher's %ld connections", (long long)sessions, connects);
  }
  json_decref(stats);

  /* The application's view. */
  for (long s = 1; s <= durable_published; s++) {
    if (seen[s] != 1) {
      failure("Seq %ld delivered %d times", s, seen[s]);
      break;
    }
  }
  if (durable_taken != durable_published)
    failure("the application took %ld durable events, %ld were published", durable_taken,
            durable_published);
  if (same_instance_dups != 0)
    failure("%ld events delivered twice by the same client", same_instance_dups);
  if (out_of_order != 0)
    failure("%ld events out of order or unexpected", out_of_order);
  if (calls_failed != 0)
    failure("%ld command calls failed", calls_failed);

  /* A clean stop. */
  kill(service_pid, SIGTERM);
  rc = waitpid(service_pid, &status, 0);
  if (rc != service_pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    failure("pipemsgd did not exit 0 on SIGTERM (status %d)", status);

  printf("soak: %.1f s; durable %ld published, %ld taken; transient %ld published, %ld taken; "
         "%ld commands ok, %ld failed; watcher connections %ld, disconnects %ld; kills: %ld cut, "
         "%ld replaced, %ld raw event, %ld raw command; %ld re-sent to a replaced watcher "
         "(dropped by id)\n",
         (double)(now_ms() - start) / 1000.0, durable_published, durable_taken,
         transient_published, transient_taken, calls_ok, calls_failed, connects, disconnects,
         kills[0], kills[1], kills[2], kills[3], cross_instance_dups);
  if (failures != 0) {
    fprintf(stderr, "soak: %d failure(s); service log (tail) in %s:\n%s\n", failures, log_path,
            service_log_tail());
    printf("soak: FAILED\n");
    return 1;
  }
  {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "soak: could not remove %s\n", dir);
  }
  printf("soak: PASSED\n");
  return 0;
}
