/* pipemsg bench on Unix (bench.h): raw sockets for the floors, and the scenario groups that
 * rest on fork and /proc:
 * - the big message's server runs in a forked child, so the client's and the server's peak
 *   memory (VmHWM, reset before the call) are measured apart, each against the payload size.
 * - queued-event memory is measured in a forked child, first, on a heap nothing else has
 *   touched (RSS from /proc, the heap in use from mallinfo2).
 * - idle cost is measured on the real service: build/bin/pipemsgd (found next to this program)
 *   with an event client of ours attached, read from /proc/PID/task/(*)/schedstat and status.
 */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h> /* mallinfo2: heap bytes in use, for memory per queued event */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

const char bench_floor_kind_command[] = "raw socket loop";
const char bench_floor_kind_command_child[] = "raw socket loop, server process";
const char bench_floor_kind_event[] = "socketpair ping-pong";
const char bench_floor_kind_big[] = "raw socket write/read";
const char bench_help_note[] = "";

void bench_path(const bench *bh, const char *file, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s", bh->dir, file);
}

int bench_dir_make(bench *bh) {
  snprintf(bh->dir, sizeof(bh->dir), "/tmp/pmbench.XXXXXX");
  if (mkdtemp(bh->dir) == NULL) {
    fprintf(stderr, "pipemsg bench: mkdtemp: %s\n", strerror(errno));
    return -1;
  }
  return 0;
}

long bench_cpus_online(void) { return sysconf(_SC_NPROCESSORS_ONLN); }

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

long bench_read(bench_raw fd, void *buf, size_t len) {
  ssize_t n;
  do
    n = read((int)fd, buf, len);
  while (n < 0 && errno == EINTR);
  return n < 0 ? PM_EIO : (long)n;
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

/* Header and payload in one writev when the socket takes it. */
int bench_write_frame(bench_raw raw, const void *payload, size_t len) {
  int fd = (int)raw;
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

long bench_read_frame(bench_raw raw, uint8_t *buf, size_t size) {
  int fd = (int)raw;
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

struct bench_listener {
  int fd;
  char path[108];
};

int bench_listen(const char *path, bench_listener **out) {
  bench_listener *l = malloc(sizeof(*l));
  if (l == NULL)
    return PM_ENOMEM;
  snprintf(l->path, sizeof(l->path), "%s", path);
  l->fd = unix_socket(path, PM_BACKLOG_DEFAULT);
  if (l->fd < 0) {
    free(l);
    return PM_EIO;
  }
  *out = l;
  return 0;
}

bench_raw bench_accept(bench_listener *l) {
  for (;;) {
    int fd = accept(l->fd, NULL, NULL);
    if (fd >= 0)
      return fd;
    if (errno != EINTR && errno != ECONNABORTED)
      return BENCH_RAW_NONE;
  }
}

/* A shut-down listening socket fails the accept blocked on it. */
void bench_listen_stop(bench_listener *l) { shutdown(l->fd, SHUT_RDWR); }

void bench_listen_close(bench_listener *l) {
  close(l->fd);
  unlink(l->path);
  free(l);
}

bench_raw bench_connect(const char *path) {
  int fd = unix_socket(path, 0);
  return fd < 0 ? BENCH_RAW_NONE : fd;
}

int bench_pair(bench_raw sv[2]) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
    return PM_EIO;
  sv[0] = fds[0];
  sv[1] = fds[1];
  return 0;
}

void bench_shutdown(bench_raw fd) { shutdown((int)fd, SHUT_RDWR); }

void bench_close(bench_raw fd) { close((int)fd); }

/* ---- the big message's child: forked ------------------------------------------------------ */

struct bench_child {
  pid_t pid;
  char path[108];
};

static int ready_write(void *arg) { return write(*(int *)arg, "r", 1) == 1 ? 0 : PM_EIO; }

/* The child serves until killed (bench_child_stop); it tells it listens with one byte on a
 * pipe. */
int bench_child_start(const char *path, size_t max_message, int raw, bench_child **out) {
  bench_child *c = malloc(sizeof(*c));
  int fds[2];
  char byte;
  pid_t pid;
  if (c == NULL)
    return PM_ENOMEM;
  snprintf(c->path, sizeof(c->path), "%s", path);
  if (pipe(fds) < 0) {
    free(c);
    return PM_EIO;
  }
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    _exit(bench_big_serve(path, max_message, raw, ready_write, &fds[1]) == 0 ? 0 : 1);
  }
  close(fds[1]);
  if (pid < 0 || read(fds[0], &byte, 1) != 1) {
    close(fds[0]);
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
    }
    free(c);
    return PM_EIO;
  }
  close(fds[0]);
  c->pid = pid;
  *out = c;
  return 0;
}

int bench_serve_child_start(void *(*serve)(void *), void *arg, bench_child **out) {
  bench_child *c = malloc(sizeof(*c));
  if (c == NULL)
    return PM_ENOMEM;
  c->path[0] = '\0'; /* the listener's owner removes its path */
  fflush(NULL);
  c->pid = fork();
  if (c->pid == 0) {
    serve(arg);
    _exit(0);
  }
  if (c->pid < 0) {
    free(c);
    return PM_EIO;
  }
  *out = c;
  return 0;
}

void bench_child_stop(bench_child *c) {
  kill(c->pid, SIGKILL);
  waitpid(c->pid, NULL, 0);
  if (c->path[0] != '\0')
    unlink(c->path);
  free(c);
}

int bench_mem(bench_child *c, long long *rss, long long *peak) {
  pid_t pid = c == NULL ? 0 : c->pid;
  *rss = proc_status_kb(pid, "VmRSS");
  *peak = proc_status_kb(pid, "VmHWM");
  return *rss < 0 || *peak < 0 ? PM_EIO : 0;
}

int bench_peak_reset(bench_child *c) { return reset_peak_rss(c == NULL ? 0 : c->pid); }

int bench_child_main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return -1;
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
    if (bench_write_frame(fd, w->confirm, w->confirm_len) < 0 ||
        bench_read_frame(fd, buf, sizeof(buf)) < 0)
      _exit(1);
  }
}

static void *idle_floor_answer(void *arg) {
  pong *p = arg;
  uint8_t buf[BENCH_FLOOR_BUF];
  while (bench_read_frame(p->fd, buf, sizeof(buf)) > 0) {
    if (bench_write_frame(p->fd, p->w->confirm, p->w->confirm_len) < 0)
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

/* pipemsgd on the given pipes, its output discarded, logging at level. */
static int spawn_pipemsgd_at(const char *cmd, const char *evt, const char *level, pid_t *out) {
  char exe[PATH_MAX];
  pid_t pid;
  int rc = pipemsgd_path(exe, sizeof(exe));
  if (rc < 0)
    return rc;
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
    execl(exe, exe, "-c", cmd, "-e", evt, "--log-level", level, (char *)NULL);
    _exit(127);
  }
  *out = pid;
  return 0;
}

static int spawn_pipemsgd(bench *bh, pid_t *out) {
  char cmd[128], evt[128];
  bench_path(bh, "idle-cmd.sock", cmd, sizeof(cmd));
  bench_path(bh, "idle-evt.sock", evt, sizeof(evt));
  return spawn_pipemsgd_at(cmd, evt, "error", out);
}

int bench_service_start(bench *bh, const char *cmd_path, const char *evt_path, long long *pid) {
  pid_t child;
  int rc = spawn_pipemsgd_at(cmd_path, evt_path, "info", &child);
  (void)bh;
  if (rc == 0)
    *pid = child;
  return rc;
}

void bench_service_stop(long long pid) {
  kill((pid_t)pid, SIGTERM);
  waitpid((pid_t)pid, NULL, 0);
}

/* pipemsgd with an attached idle pm_event_client, and beside it the heartbeat floor, over the
 * same window. */
int bench_run_idle(bench *bh) {
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

  rc = bench_wire_new(PM_ENC_JSON, &w);
  if (rc < 0)
    return rc;
  memset(&er, 0, sizeof(er));
  sem_init(&er.attached, 0, 0);
  memset(&co, 0, sizeof(co));
  co.on_event = bench_event_cb;
  co.on_state = bench_event_state_cb;
  co.data = &er;
  er.latency_mode = 0;
  er.expected = -1;
  sem_init(&er.delivered, 0, 0);
  bench_path(bh, "idle-evt.sock", evt, sizeof(evt));
  rc = spawn_pipemsgd(bh, &svc);
  if (rc == 0)
    rc = pm_event_client_start(evt, &co, &client);
  if (rc == 0)
    rc = bench_sem_wait_s(&er.attached, BENCH_WAIT_S);
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
    bench_sleep_ms(300); /* let connection set-up settle */
    t0 = bench_now_ns();
    rc = proc_usage_read(svc, &a0);
    if (rc == 0)
      rc = proc_usage_read(floor_pid, &b0);
    bench_sleep_ms((unsigned)(bh->b.idle_s * 1000));
    if (rc == 0)
      rc = proc_usage_read(svc, &a1);
    if (rc == 0)
      rc = proc_usage_read(floor_pid, &b1);
    t1 = bench_now_ns();
    wall = (double)(t1 - t0);
    if (rc == 0) {
      pm_cpu = 100.0 * (double)(a1.cpu_ns - a0.cpu_ns) / wall;
      base_cpu = 100.0 * (double)(b1.cpu_ns - b0.cpu_ns) / wall;
      bench_add_cost(bh, "idle_cpu", "% CPU", pm_cpu, base_cpu, "poll() heartbeat loop", "< 0.01 %",
                     pm_cpu < 0.01);
      bench_add_cost(
          bh, "idle_wakeups", "wakeups/s", (double)(a1.wakeups - a0.wakeups) * 1e9 / wall,
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
  bench_wire_free(&w);
  return rc;
}

/* ---- memory per queued event: in a forked child ------------------------------------------ */

long long bench_heap_in_use(void) {
  /* Arena bytes in use plus mmapped blocks: what malloc handed out. */
  struct mallinfo2 m = mallinfo2();
  return (long long)(m.uordblks + m.hblkhd);
}

/* The child writes its figures to a pipe; it runs first (see cmd_bench), so its heap is one
 * nothing else has touched. */
int bench_queue_child(const char *path, int n, double per_event[BENCH_QUEUE_FIGURES]) {
  int fds[2], status;
  ssize_t got;
  pid_t pid;
  if (pipe(fds) < 0)
    return PM_EIO;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (bench_queue_measure(path, n, per_event) < 0)
      _exit(1);
    _exit(write(fds[1], per_event, BENCH_QUEUE_FIGURES * sizeof(double)) ==
                  BENCH_QUEUE_FIGURES * sizeof(double)
              ? 0
              : 1);
  }
  close(fds[1]);
  got = pid > 0 ? read(fds[0], per_event, BENCH_QUEUE_FIGURES * sizeof(double)) : -1;
  close(fds[0]);
  if (pid > 0)
    waitpid(pid, &status, 0);
  unlink(path);
  return got == (ssize_t)(BENCH_QUEUE_FIGURES * sizeof(double)) ? 0 : PM_EIO;
}

/* ---- CPU pinning and the private directory ----------------------------------------------- */

int bench_pin_cpu0(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  if (sched_setaffinity(0, sizeof(set), &set) == 0)
    return 0;
  fprintf(stderr, "pipemsg bench: cannot pin to CPU 0: %s\n", strerror(errno));
  return PM_EIO;
}

void bench_dir_remove(const bench *bh) {
  const char *dir = bh->dir;
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

/* ---- the libuv ceilings ------------------------------------------------------------------
 * The floors' bytes over bare libuv loops that make only the syscalls the library cannot do
 * without (docs/benchmarks.md, "The libuv ceiling"): no pipemsg code between the syscalls. */

/* A frame (header and payload) built once, to go out in one write. */
typedef struct ceil_frame {
  uint8_t *bytes;
  size_t len;
} ceil_frame;

static int ceil_frame_make(const uint8_t *payload, size_t len, ceil_frame *f) {
  f->bytes = malloc(len + 4);
  if (f->bytes == NULL)
    return PM_ENOMEM;
  f->bytes[0] = (uint8_t)(len >> 24);
  f->bytes[1] = (uint8_t)(len >> 16);
  f->bytes[2] = (uint8_t)(len >> 8);
  f->bytes[3] = (uint8_t)len;
  memcpy(f->bytes + 4, payload, len);
  f->len = len + 4;
  return 0;
}

/* 1 once buf holds a whole frame (header and payload). */
static int ceil_frame_whole(const uint8_t *buf, size_t have) {
  return have >= 4 &&
         have >= 4 + ((size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3]);
}

/* The peer's credentials, as the library's command server takes them for every connection
 * (its peer record) and its client for the owner check: -1 if the kernel gives none. */
static long long ceil_peer_uid(int fd) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return -1;
  return (long long)cred.uid;
}

static void ceil_close_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* The command server: the listening socket watched level-triggered, one accept4 per
 * readiness, the peer's credentials, the request read at once, the response written, close:
 * what the library's server does (src/transport/transport_unix.c). A request not there at
 * once (the server's wake-up at connect may preempt the client before it writes) is waited for
 * as the library waits: one-shot on a private epoll that a uv_poll_t watches, the cheapest wait
 * a libuv loop has (no uv_pipe_t: opening and closing one costs more syscalls than the wait). */
typedef struct ceil_server {
  bench_loop cl;
  uv_poll_t listen;
  int lfd;
  uv_poll_t waiter; /* on epfd */
  int epfd;
  int waiting; /* the connection waited for, or -1: the client makes one call at a time */
  const ceil_frame *response;
  uint8_t buf[BENCH_FLOOR_BUF];
  size_t have;
  int rc; /* the first failure, read by the main thread after the loop ended */
} ceil_server;

static void ceil_server_fail(ceil_server *s, int rc) {
  if (s->rc == 0)
    s->rc = rc;
}

/* Reads what fd holds after the s->have bytes already read: the response written and fd
 * closed once the request is whole (or on a failure); 0 while more is to come. */
static int ceil_serve(ceil_server *s, int fd) {
  ssize_t n = recv(fd, s->buf + s->have, sizeof(s->buf) - s->have, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return 0;
  if (n <= 0) {
    ceil_server_fail(s, PM_EIO);
  } else {
    s->have += (size_t)n;
    if (!ceil_frame_whole(s->buf, s->have))
      return 0;
    if (send(fd, s->response->bytes, s->response->len, MSG_NOSIGNAL | MSG_DONTWAIT) !=
        (ssize_t)s->response->len)
      ceil_server_fail(s, PM_EIO);
  }
  close(fd);
  return 1;
}

/* Waits (again) for fd to become readable; closes it if it cannot. */
static void ceil_wait(ceil_server *s, int fd, int op) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.fd = fd;
  if (epoll_ctl(s->epfd, op, fd, &ev) < 0) {
    ceil_server_fail(s, PM_EIO);
    close(fd);
    return;
  }
  s->waiting = fd;
}

static void ceil_waiter_readable(uv_poll_t *p, int status, int events) {
  ceil_server *s = p->data;
  struct epoll_event ev;
  int fd = s->waiting;
  (void)events;
  if (status < 0 || fd < 0 || epoll_wait(s->epfd, &ev, 1, 0) != 1)
    return;
  s->waiting = -1;
  if (!ceil_serve(s, fd))
    ceil_wait(s, fd, EPOLL_CTL_MOD);
}

static void ceil_server_readable(uv_poll_t *p, int status, int events) {
  ceil_server *s = p->data;
  int fd;
  (void)events;
  if (status < 0)
    return;
  fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0)
    return;
  if (ceil_peer_uid(fd) < 0 || s->waiting >= 0) {
    ceil_server_fail(s, s->waiting >= 0 ? PM_EBUSY : PM_ENOTAUTH);
    close(fd);
    return;
  }
  s->have = 0;
  if (!ceil_serve(s, fd))
    ceil_wait(s, fd, EPOLL_CTL_ADD);
}

static void ceil_server_stop(bench_loop *cl) {
  ceil_server *s = cl->data;
  if (s->waiting >= 0)
    close(s->waiting);
  s->waiting = -1;
  uv_close((uv_handle_t *)&s->listen, NULL);
  uv_close((uv_handle_t *)&s->waiter, NULL);
}

/* One call as pm_command_client_call makes it: socket, connect, the owner check, the request
 * written before any wait, poll under the response deadline, read, close. */
static int ceil_call(const struct sockaddr_un *sa, const ceil_frame *req, uint8_t *buf,
                     size_t size) {
  uint64_t deadline = bench_now_ns() + (uint64_t)PM_RESPONSE_TIMEOUT_MS_DEFAULT * 1000000u;
  size_t have = 0;
  long long uid;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), rc = 0;
  if (fd < 0)
    return PM_EIO;
  if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
    close(fd);
    return PM_EIO;
  }
  uid = ceil_peer_uid(fd);
  if (uid < 0 || (uid != 0 && uid != (long long)geteuid()))
    rc = PM_ENOTAUTH;
  if (rc == 0 && send(fd, req->bytes, req->len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)req->len)
    rc = PM_EIO;
  while (rc == 0 && !ceil_frame_whole(buf, have)) {
    struct pollfd p = {fd, POLLIN, 0};
    uint64_t now = bench_now_ns();
    ssize_t n;
    if (now >= deadline) {
      rc = PM_ETIMEDOUT;
      break;
    }
    n = poll(&p, 1, (int)((deadline - now + 999999u) / 1000000u));
    if (n < 0 && errno != EINTR)
      rc = PM_EIO;
    if (n <= 0)
      continue;
    n = recv(fd, buf + have, size - have, MSG_DONTWAIT);
    if (n > 0)
      have += (size_t)n;
    else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
      rc = PM_EIO;
  }
  close(fd);
  return rc;
}

int bench_command_libuv(bench *bh, const wire *w, double *rate) {
  static ceil_server s; /* large: the read buffer */
  struct sockaddr_un sa;
  ceil_frame req = {NULL, 0}, resp = {NULL, 0};
  uint8_t buf[BENCH_FLOOR_BUF];
  uint64_t start, deadline;
  long calls = 0;
  int rc, i, running = 0;

  memset(&s, 0, sizeof(s));
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  bench_path(bh, "ceil.sock", sa.sun_path, sizeof(sa.sun_path));
  rc = ceil_frame_make(w->request, w->request_len, &req);
  if (rc == 0)
    rc = ceil_frame_make(w->response, w->response_len, &resp);
  s.response = &resp;
  s.lfd = rc == 0 ? unix_socket(sa.sun_path, PM_BACKLOG_DEFAULT) : -1;
  if (s.lfd < 0) {
    free(req.bytes);
    free(resp.bytes);
    return rc < 0 ? rc : PM_EIO;
  }
  s.waiting = -1;
  s.epfd = epoll_create1(EPOLL_CLOEXEC);
  rc = s.epfd < 0 ? PM_EIO : bench_loop_init(&s.cl, ceil_server_stop, &s);
  if (rc == 0 && (uv_poll_init(&s.cl.loop, &s.listen, s.lfd) < 0 ||
                  uv_poll_init(&s.cl.loop, &s.waiter, s.epfd) < 0)) {
    /* Not started: the handles made so far close with the loop's own. */
    rc = PM_EIO;
    uv_walk(&s.cl.loop, ceil_close_handle, NULL);
    uv_run(&s.cl.loop, UV_RUN_DEFAULT);
    uv_loop_close(&s.cl.loop);
  } else if (rc == 0) {
    s.listen.data = s.waiter.data = &s;
    if (uv_poll_start(&s.listen, UV_READABLE, ceil_server_readable) < 0 ||
        uv_poll_start(&s.waiter, UV_READABLE, ceil_waiter_readable) < 0) {
      rc = PM_EIO;
      bench_loop_abandon(&s.cl);
    } else {
      rc = bench_loop_run(&s.cl);
      running = rc == 0;
    }
  }
  for (i = 0; rc == 0 && i < BENCH_WARMUP; i++)
    rc = ceil_call(&sa, &req, buf, sizeof(buf));
  start = bench_now_ns();
  deadline = start + (uint64_t)(bh->b.command_s * 1e9);
  while (rc == 0 && bench_now_ns() < deadline) {
    rc = ceil_call(&sa, &req, buf, sizeof(buf));
    calls++;
  }
  *rate = (double)calls / ((double)(bench_now_ns() - start) / 1e9);
  if (running)
    bench_loop_finish(&s.cl);
  if (s.epfd >= 0)
    close(s.epfd);
  close(s.lfd);
  unlink(sa.sun_path);
  free(req.bytes);
  free(resp.bytes);
  return rc < 0 ? rc : s.rc;
}

/* One end of the event exchange on its own loop, one frame in flight as the protocol has it:
 * the server writes an Event and reads its EventConfirmation before the next, the client
 * reads each Event and writes the confirmation back, both from their read callbacks. */
typedef struct ceil_end {
  bench_loop cl;
  uv_pipe_t pipe;
  int pipe_open;
  uv_async_t go;          /* server: the main thread asks for count events */
  const ceil_frame *out;  /* server: the Event; client: the EventConfirmation */
  _Atomic int count;      /* server: events of this round */
  int sent;               /* server: events written this round */
  int in_flight;          /* server: an Event waits for its confirmation */
  sem_t *done;            /* server: posted after the round's last confirmation or a failure */
  uint8_t buf[BENCH_FLOOR_BUF];
  size_t have;
  int rc; /* the first failure, read by the main thread after the loop ended */
} ceil_end;

static void ceil_end_fail(ceil_end *e, int rc) {
  if (e->rc == 0)
    e->rc = rc;
  if (e->done != NULL)
    sem_post(e->done);
}

static int ceil_end_write(ceil_end *e) {
  uv_buf_t b = uv_buf_init((char *)e->out->bytes, (unsigned)e->out->len);
  return uv_try_write((uv_stream_t *)&e->pipe, &b, 1) == (int)e->out->len ? 0 : PM_EIO;
}

static void ceil_end_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ceil_end *e = h->data;
  (void)suggested;
  *buf = uv_buf_init((char *)e->buf + e->have, (unsigned)(sizeof(e->buf) - e->have));
}

/* The server's next Event of the round, or the round's end. */
static void ceil_server_next(ceil_end *e) {
  if (e->sent == atomic_load(&e->count)) {
    sem_post(e->done);
    return;
  }
  if (ceil_end_write(e) < 0) {
    ceil_end_fail(e, PM_EIO);
    return;
  }
  e->sent++;
  e->in_flight = 1;
}

static void ceil_end_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  ceil_end *e = stream->data;
  (void)buf;
  if (nread < 0) {
    /* The other end closing after the last round is no failure: the run is over. */
    uv_read_stop(stream);
    if (nread != UV_EOF || e->in_flight || e->have > 0)
      ceil_end_fail(e, PM_EIO);
    return;
  }
  e->have += (size_t)nread;
  if (!ceil_frame_whole(e->buf, e->have))
    return;
  e->have = 0; /* one frame in flight: nothing follows it */
  if (e->done == NULL) {
    if (ceil_end_write(e) < 0)
      ceil_end_fail(e, PM_EIO);
    return;
  }
  e->in_flight = 0;
  ceil_server_next(e);
}

static void ceil_go_cb(uv_async_t *a) {
  ceil_end *e = a->data;
  e->sent = 0;
  ceil_server_next(e);
}

static void ceil_end_stop(bench_loop *cl) {
  ceil_end *e = cl->data;
  if (e->pipe_open)
    uv_close((uv_handle_t *)&e->pipe, NULL);
  if (e->done != NULL)
    uv_close((uv_handle_t *)&e->go, NULL);
}

/* One end on fd: its loop, its pipe reading, its thread; on failure fd is closed and nothing
 * is left running. */
static int ceil_end_start(ceil_end *e, int fd, const ceil_frame *out, sem_t *done) {
  int rc = bench_loop_init(&e->cl, ceil_end_stop, e);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  e->out = out;
  e->done = done;
  e->pipe.data = e->go.data = e;
  uv_pipe_init(&e->cl.loop, &e->pipe, 0);
  e->pipe_open = 1;
  if (uv_pipe_open(&e->pipe, fd) < 0) {
    close(fd);
    rc = PM_EIO;
  }
  if (rc == 0 && done != NULL && uv_async_init(&e->cl.loop, &e->go, ceil_go_cb) < 0) {
    e->done = NULL; /* no go handle to close */
    rc = PM_EIO;
  }
  if (rc == 0 && uv_read_start((uv_stream_t *)&e->pipe, ceil_end_alloc, ceil_end_read) < 0)
    rc = PM_EIO;
  if (rc == 0)
    return bench_loop_run(&e->cl);
  bench_loop_abandon(&e->cl);
  return rc;
}

/* A round of count events: 0 once the server took the last confirmation. */
static int ceil_round(ceil_end *server, int count) {
  int rc;
  atomic_store(&server->count, count);
  uv_async_send(&server->go);
  rc = bench_sem_wait_s(server->done, BENCH_WAIT_S * 6);
  return rc < 0 ? rc : server->rc;
}

int bench_event_libuv(bench *bh, const wire *w, double *rate) {
  static ceil_end server, client; /* large: the read buffers */
  ceil_frame event = {NULL, 0}, confirm = {NULL, 0};
  bench_raw sv[2];
  sem_t done;
  uint64_t start;
  int rc;

  memset(&server, 0, sizeof(server));
  memset(&client, 0, sizeof(client));
  rc = ceil_frame_make(w->event, w->event_len, &event);
  if (rc == 0)
    rc = ceil_frame_make(w->confirm, w->confirm_len, &confirm);
  if (rc == 0 && bench_pair(sv) < 0)
    rc = PM_EIO;
  if (rc < 0) {
    free(event.bytes);
    free(confirm.bytes);
    return rc;
  }
  sem_init(&done, 0, 0);
  rc = ceil_end_start(&client, (int)sv[1], &confirm, NULL);
  if (rc < 0)
    close((int)sv[0]);
  else if ((rc = ceil_end_start(&server, (int)sv[0], &event, &done)) < 0)
    bench_loop_finish(&client.cl);
  if (rc == 0) {
    rc = ceil_round(&server, BENCH_WARMUP);
    start = bench_now_ns();
    if (rc == 0)
      rc = ceil_round(&server, bh->b.events);
    *rate = (double)bh->b.events / ((double)(bench_now_ns() - start) / 1e9);
    bench_loop_finish(&client.cl);
    bench_loop_finish(&server.cl);
    if (rc == 0)
      rc = client.rc < 0 ? client.rc : server.rc;
  }
  sem_destroy(&done);
  free(event.bytes);
  free(confirm.bytes);
  return rc;
}
