#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

/* How long a service may take to come up on a slow, shared machine (or under valgrind). */
#define READY_TIMEOUT_MS 30000
#define EXIT_CHECK_MS 100 /* how often a service start looks for an early exit */
/* How long a service may take to stop on SIGTERM: it ends every connection at once (a
 * Disconnect, or a close), so this is a slow machine's worst case, not a rule. */
#define STOP_TIMEOUT_MS 10000

/* Every test program resolves bare pipe names into a private runtime directory of its own:
 * pipemsgd started without -c or -e, or a client given a default name, never reaches
 * /run/pipemsg (which only root may create) or the user's $XDG_RUNTIME_DIR. So the tests run
 * as any user and write only in their own temporary directories. Children inherit it. */
static char runtime_dir[64];
static pid_t runtime_dir_owner;

static void remove_runtime_dir(void) {
  char cmd[128];
  if (getpid() != runtime_dir_owner) /* a forked child exiting */
    return;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", runtime_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", runtime_dir);
}

__attribute__((constructor)) static void make_runtime_dir(void) {
  snprintf(runtime_dir, sizeof(runtime_dir), "/tmp/pmtest-rt.XXXXXX");
  if (mkdtemp(runtime_dir) == NULL) {
    perror("mkdtemp");
    abort();
  }
  runtime_dir_owner = getpid();
  setenv("PIPEMSG_RUNTIME_DIR", runtime_dir, 1);
  atexit(remove_runtime_dir);
}

const char *pm_test_runtime_dir(void) { return runtime_dir; }

void pm_test_dir_new(char *dir, size_t size) {
  snprintf(dir, size, "/tmp/pmtest.XXXXXX");
  assert_non_null(mkdtemp(dir));
}

void pm_test_dir_remove(const char *dir) {
  char cmd[256];
  if (dir[0] == '\0')
    return;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  assert_int_equal(0, system(cmd));
}

void pm_test_pipe_path(const char *dir, const char *name, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s", dir, name);
}

int pm_test_pipe_exists(const char *path) { return access(path, F_OK) == 0; }

int pm_test_wait_ready(intptr_t handle, int timeout_ms) {
  struct pollfd p = {.fd = (int)handle, .events = POLLIN};
  int rc;
  while ((rc = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
    ;
  assert_true(rc >= 0);
  return rc > 0;
}

int pm_test_under_wine(void) { return 0; }

void pm_test_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

int pm_test_watch_opens(const char *path) {
  int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  assert_true(watch >= 0);
  assert_true(inotify_add_watch(watch, path, IN_OPEN | IN_ACCESS) >= 0);
  return watch;
}

int pm_test_watch_opened(int watch) {
  char events[4096];
  /* inotify queues the event as the open happens: it is there by the time the call returns. */
  if (read(watch, events, sizeof(events)) >= 0)
    return 1;
  assert_int_equal(EAGAIN, errno);
  return 0;
}

void pm_test_watch_end(int watch) { close(watch); }

static int bind_notify_socket(const char *path) {
  struct sockaddr_un sa;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  assert_true(strlen(path) < sizeof(sa.sun_path));
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  assert_int_equal(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
  return fd;
}

void pm_test_service_start(pm_test_service *svc, const char *const *extra_args) {
  memset(svc, 0, sizeof(*svc));
  pm_test_dir_new(svc->dir, sizeof(svc->dir));
  snprintf(svc->command_pipe, sizeof(svc->command_pipe), "%s/cmd", svc->dir);
  snprintf(svc->event_pipe, sizeof(svc->event_pipe), "%s/evt", svc->dir);
  snprintf(svc->log_path, sizeof(svc->log_path), "%s/log", svc->dir);
  pm_test_service_restart(svc, extra_args);
}

void pm_test_service_restart(pm_test_service *svc, const char *const *extra_args) {
  const char *argv[64];
  char notify[160];
  char buf[64];
  struct pollfd pfd;
  int n = 0, nfd, logfd;
  uint64_t deadline;

  assert_true(svc->pid <= 0);
  snprintf(notify, sizeof(notify), "%s/notify", svc->dir);
  nfd = bind_notify_socket(notify);

  /* `make memcheck` runs every service under valgrind; 99 reports what it found. */
  if (getenv("PM_TEST_VALGRIND") != NULL) {
    argv[n++] = "/usr/bin/valgrind";
    argv[n++] = "--quiet";
    argv[n++] = "--leak-check=full";
    argv[n++] = "--errors-for-leak-kinds=definite,indirect";
    argv[n++] = "--error-exitcode=99";
  }
  argv[n++] = PM_BIN_DIR "/pipemsgd";
  argv[n++] = "-c";
  argv[n++] = svc->command_pipe;
  argv[n++] = "-e";
  argv[n++] = svc->event_pipe;
  for (int i = 0; extra_args != NULL && extra_args[i] != NULL && n < 62; i++)
    argv[n++] = extra_args[i];
  argv[n] = NULL;

  svc->pid = fork();
  assert_true(svc->pid >= 0);
  if (svc->pid == 0) {
    /* A test that dies must not leave its service holding the pipes (or a pipeline open). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    logfd = open(svc->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (logfd >= 0) {
      dup2(logfd, 2);
      close(logfd);
    }
    setenv("NOTIFY_SOCKET", notify, 1);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  deadline = pm_test_now_ms() + READY_TIMEOUT_MS;
  for (;;) {
    uint64_t now = pm_test_now_ms();
    ssize_t got;
    if (now >= deadline) {
      print_error("pipemsgd did not report READY=1; log:\n%s\n", pm_test_service_log(svc));
      fail();
    }
    pfd.fd = nfd;
    pfd.events = POLLIN;
    /* A service that exits at start fails the test at once, with its log, not at the
     * deadline: the wait looks for the exit (without reaping it) between slices. */
    if (poll(&pfd, 1, deadline - now < EXIT_CHECK_MS ? (int)(deadline - now) : EXIT_CHECK_MS) <=
        0) {
      siginfo_t info;
      memset(&info, 0, sizeof(info));
      if (waitid(P_PID, (id_t)svc->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == svc->pid) {
        print_error("pipemsgd exited (status %d) before READY=1; log:\n%s\n", info.si_status,
                    pm_test_service_log(svc));
        fail();
      }
      continue;
    }
    got = recv(nfd, buf, sizeof(buf) - 1, 0);
    if (got > 0) {
      buf[got] = '\0';
      if (strstr(buf, "READY=1") != NULL)
        break;
    }
  }
  close(nfd);
  unlink(notify);
}

int pm_test_service_stop(pm_test_service *svc) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)pm_test_margin_ms(STOP_TIMEOUT_MS);
  pid_t got;
  int status;
  if (svc->pid <= 0)
    return -1;
  kill(svc->pid, SIGTERM);
  /* A service that does not stop fails the test now, not at ctest's timeout. */
  while ((got = waitpid(svc->pid, &status, WNOHANG)) == 0 && pm_test_now_ms() < deadline)
    uv_sleep(10);
  if (got == 0) {
    kill(svc->pid, SIGKILL);
    waitpid(svc->pid, &status, 0);
    svc->pid = 0;
    print_error("pipemsgd did not stop within %d ms of SIGTERM; log:\n%s\n", STOP_TIMEOUT_MS,
                pm_test_service_log(svc));
    fail();
  }
  assert_int_equal(svc->pid, got);
  svc->pid = 0;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 99) {
    print_error("valgrind found errors in pipemsgd:\n%s\n", pm_test_service_log(svc));
    fail();
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void pm_test_service_cleanup(pm_test_service *svc) {
  if (svc->pid > 0)
    pm_test_service_stop(svc);
  pm_test_dir_remove(svc->dir);
  svc->dir[0] = '\0';
}

/* A "Name: N kB" line of /proc/PID/status. */
static long proc_status_kb(pid_t pid, const char *name) {
  char path[64], line[256], format[32];
  long kb = -1;
  FILE *f;
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  snprintf(format, sizeof(format), "%s: %%ld kB", name);
  f = fopen(path, "r");
  assert_non_null(f);
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, format, &kb) == 1)
      break;
  fclose(f);
  return kb;
}

long pm_test_rss_kb(pid_t pid) { return proc_status_kb(pid, "VmRSS"); }

long pm_test_peak_rss_kb(pid_t pid) { return proc_status_kb(pid, "VmHWM"); }

void pm_test_reset_peak_rss(pid_t pid) {
  char path[64];
  FILE *f;
  snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
  f = fopen(path, "w");
  assert_non_null(f);
  assert_true(fputs("5", f) >= 0);
  assert_int_equal(0, fclose(f));
}

int pm_test_rss_meaningful(void) {
#if defined(__SANITIZE_ADDRESS__)
  print_message("RSS not checked: AddressSanitizer keeps freed memory in quarantine\n");
  return 0;
#else
  if (getenv("PM_TEST_VALGRIND") != NULL) {
    print_message("RSS not checked: valgrind allocates its own way\n");
    return 0;
  }
  return 1;
#endif
}

long pm_test_decode_peak_kb(const void *buf, size_t len, int *rc) {
  long result[2];
  int fds[2], status;
  pid_t pid;
  assert_int_equal(0, pipe(fds));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    pm_msg *m = NULL;
    long base;
    /* Free memory the parent left resident would be reused without showing in RSS. */
    malloc_trim(0);
    pm_test_reset_peak_rss(getpid());
    base = pm_test_rss_kb(getpid());
    result[0] = pm_msg_decode(buf, len, &m, NULL);
    result[1] = pm_test_peak_rss_kb(getpid()) - base;
    pm_msg_free(m);
    _exit(write(fds[1], result, sizeof(result)) == (ssize_t)sizeof(result) ? 0 : 1);
  }
  close(fds[1]);
  assert_int_equal(sizeof(result), read(fds[0], result, sizeof(result)));
  close(fds[0]);
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  *rc = (int)result[0];
  return result[1];
}

int pm_test_bind(const char *path, int backlog) {
  struct sockaddr_un sa;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  assert_true(strlen(path) < sizeof(sa.sun_path));
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  assert_int_equal(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
  if (backlog > 0)
    assert_int_equal(0, listen(fd, backlog));
  return fd;
}

int pm_test_connect(const char *path) {
  struct sockaddr_un sa;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (strlen(path) >= sizeof(sa.sun_path)) {
    close(fd);
    return -1;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int pm_test_send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads exactly len bytes before the deadline; 0 on success. */
int pm_test_recv_exact(int fd, void *buf, size_t len, uint64_t deadline) {
  char *p = buf;
  while (len > 0) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint64_t now = pm_test_now_ms();
    ssize_t n;
    if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
      return -1;
    n = recv(fd, p, len, 0);
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

long pm_test_wait_eof(int fd, int timeout_ms) {
  uint64_t start = pm_test_now_ms(), deadline = start + (uint64_t)timeout_ms;
  for (;;) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint64_t now = pm_test_now_ms();
    char c;
    ssize_t n;
    if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
      return -1;
    n = recv(fd, &c, 1, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return (long)(pm_test_now_ms() - start);
    if (n > 0)
      return -1;
  }
}

/* Reads all of fd into a static-size buffer. */
static void slurp(int fd, char *buf, size_t size) {
  size_t n = 0;
  ssize_t got;
  while ((got = read(fd, buf + n, size - 1 - n)) > 0 && n < size - 1)
    n += (size_t)got;
  buf[n] = '\0';
}

int pm_test_run(const char *const *argv, const char **out, const char **err) {
  static char out_buf[65536], err_buf[65536];
  char out_path[] = "/tmp/pmrun.out.XXXXXX", err_path[] = "/tmp/pmrun.err.XXXXXX";
  int ofd = mkstemp(out_path), efd = mkstemp(err_path), status;
  pid_t pid;
  assert_true(ofd >= 0 && efd >= 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(ofd, 1);
    dup2(efd, 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  assert_int_equal(pid, waitpid(pid, &status, 0));
  lseek(ofd, 0, SEEK_SET);
  lseek(efd, 0, SEEK_SET);
  slurp(ofd, out_buf, sizeof(out_buf));
  slurp(efd, err_buf, sizeof(err_buf));
  close(ofd);
  close(efd);
  unlink(out_path);
  unlink(err_path);
  if (out != NULL)
    *out = out_buf;
  if (err != NULL)
    *err = err_buf;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The child's loop: only async-signal-safe calls, as the parent may run other threads. It
 * writes a byte to report once it has made PM_TEST_FLOOD_REPORT connections. */
static void flood(const struct sockaddr_un *sa, int hold, int report, pid_t parent) {
  static const struct timespec pause = {0, 1000000};
  int held[PM_TEST_FLOOD_HELD];
  unsigned long n = 0;
  for (int i = 0; i < PM_TEST_FLOOD_HELD; i++)
    held[i] = -1;
  while (getppid() == parent) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), slot;
    if (fd < 0)
      _exit(1);
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
      close(fd);
      nanosleep(&pause, NULL); /* the listener is gone */
      continue;
    }
    if (++n == PM_TEST_FLOOD_REPORT && write(report, "y", 1) != 1)
      _exit(1);
    if (!hold || n % 2 == 0) {
      close(fd);
      continue;
    }
    slot = (int)(n / 2 % PM_TEST_FLOOD_HELD);
    if (held[slot] >= 0)
      close(held[slot]);
    held[slot] = fd;
  }
  _exit(0);
}

pid_t pm_test_flood_start(const char *path, int hold, long long uid, long long gid) {
  struct sockaddr_un sa;
  pid_t parent = getpid(), pid;
  int report[2], ok;
  char c;
  assert_true(strlen(path) < sizeof(sa.sun_path));
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  assert_int_equal(0, pipe(report));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(report[0]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
      _exit(1);
    if (uid >= 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)gid) < 0 || setuid((uid_t)uid) < 0))
      _exit(1);
    flood(&sa, hold, report[1], parent);
  }
  close(report[1]);
  /* No byte: the child ended (it could not become uid) or cannot connect. */
  ok = pm_test_wait_ready(report[0], READY_TIMEOUT_MS) && read(report[0], &c, 1) == 1;
  close(report[0]);
  if (!ok) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  assert_true(ok);
  return pid;
}

void pm_test_flood_stop(pid_t pid) {
  int status;
  assert_int_equal(0, kill(pid, SIGKILL));
  assert_int_equal(pid, waitpid(pid, &status, 0));
  /* Killed, not ended on its own (a failed setuid, no socket left). */
  assert_true(WIFSIGNALED(status));
}
