/* The hook backend on a private loop, with harmless commands and the loopback interface. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "backend.h"
#include "testutil.h"

/* Time a test waits for a done() that should come; commands here finish in milliseconds. */
#define WAIT_MS 10000
/* How late a timeout or a kill may be seen, never early: a loaded, shared machine runs a
 * process up to a few hundred ms late, and valgrind (make memcheck) slows this loop. Each
 * window stays short of the wrong value it is there to catch (the 5 s timeout of a command
 * that was to be killed at once, a command's own 10 s or 30 s). */
static long slack_ms = 1000;
#define SLACK_MS_VALGRIND 2000
/* The loop's clock may be coarser than the test's by a few ms. */
#define EARLY_MS 10

typedef struct fixture {
  uv_loop_t loop;
  uv_timer_t tick; /* wakes the loop while waiting, so a missing done() fails, not hangs */
  backend *b;
  int calls;
  backend_op op;
  int status;
  char msg[512];
  bool msg_null;
  bool closed;
  char dir[64];
} fixture;

static fixture fx;

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof(fx));
  assert_int_equal(0, uv_loop_init(&fx.loop));
  assert_int_equal(0, uv_timer_init(&fx.loop, &fx.tick));
  pm_test_dir_new(fx.dir, sizeof(fx.dir));
  return 0;
}

static void on_closed(void *arg) {
  *(bool *)arg = true;
}

static void on_tick(uv_timer_t *t) {
  (void)t;
}

/* Closes the backend (if any) and asserts the loop ends with nothing open. */
static int teardown(void **state) {
  (void)state;
  if (fx.b != NULL) {
    fx.b->close(fx.b, on_closed, &fx.closed);
    fx.b = NULL;
    uv_timer_start(&fx.tick, on_tick, 50, 50);
    for (uint64_t deadline = pm_test_now_ms() + WAIT_MS; !fx.closed;) {
      uv_run(&fx.loop, UV_RUN_ONCE);
      assert_true(pm_test_now_ms() < deadline);
    }
  }
  uv_close((uv_handle_t *)&fx.tick, NULL);
  assert_int_equal(0, uv_run(&fx.loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&fx.loop));
  pm_test_dir_remove(fx.dir);
  return 0;
}

static void on_done(backend *b, backend_op op, int status, const char *message) {
  assert_ptr_equal(&fx, b->owner);
  fx.calls++;
  fx.op = op;
  fx.status = status;
  fx.msg_null = message == NULL;
  snprintf(fx.msg, sizeof(fx.msg), "%s", message != NULL ? message : "");
}

static void make(const char *up_cmd, const char *down_cmd, bool shell, unsigned timeout_ms,
                 const char *iface) {
  backend_hook_options o = {up_cmd, down_cmd, shell, timeout_ms, iface};
  assert_int_equal(0, backend_hook_new(&fx.loop, &o, &fx.b));
  assert_string_equal("hook", fx.b->name);
  fx.b->done = on_done;
  fx.b->owner = &fx;
}

/* Runs the loop until done() has been called n times in all. */
static void await_calls(int n) {
  uint64_t deadline = pm_test_now_ms() + WAIT_MS;
  uv_timer_start(&fx.tick, on_tick, 50, 50);
  while (fx.calls < n) {
    uv_run(&fx.loop, UV_RUN_ONCE);
    assert_true(pm_test_now_ms() < deadline);
  }
  uv_timer_stop(&fx.tick);
  assert_int_equal(n, fx.calls);
}

/* Runs the loop for ms, for checking that nothing more happens. */
static void run_for(unsigned ms) {
  uint64_t until = pm_test_now_ms() + ms;
  uv_timer_start(&fx.tick, on_tick, 20, 20);
  while (pm_test_now_ms() < until)
    uv_run(&fx.loop, UV_RUN_ONCE);
  uv_timer_stop(&fx.tick);
}

static void path_in_dir(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s", fx.dir, name);
}

static const char *read_text(const char *path) {
  static char buf[1024];
  FILE *f = fopen(path, "r");
  size_t n;
  assert_non_null(f);
  n = fread(buf, 1, sizeof(buf) - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_true(fputs(text, f) >= 0);
  assert_int_equal(0, fclose(f));
}

/* The one child of this process, found in /proc (uv_spawn returns after the exec). */
static pid_t only_child(void) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  pid_t found = 0;
  int n = 0;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    char path[300], line[512];
    const char *close_paren;
    int ppid = 0;
    FILE *f;
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
    f = fopen(path, "r");
    if (f == NULL)
      continue;
    if (fgets(line, sizeof(line), f) != NULL && (close_paren = strrchr(line, ')')) != NULL &&
        sscanf(close_paren + 1, " %*c %d", &ppid) == 1 && ppid == (int)getpid()) {
      found = (pid_t)atoi(e->d_name);
      n++;
    }
    fclose(f);
  }
  closedir(d);
  assert_int_equal(1, n);
  return found;
}

/* A process that is neither there nor a zombie (a killed grandchild is left to init, which may
 * reap it late or, in a container, never). The commands that start one sleep for much longer
 * than this waits. */
static void assert_gone(pid_t pid) {
  uint64_t deadline = pm_test_now_ms() + 3000;
  for (;;) {
    char path[64], line[512];
    const char *close_paren;
    char st = '?';
    FILE *f;
    if (kill(pid, 0) != 0 && errno == ESRCH)
      return;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f != NULL) {
      if (fgets(line, sizeof(line), f) != NULL && (close_paren = strrchr(line, ')')) != NULL)
        sscanf(close_paren + 1, " %c", &st);
      fclose(f);
    }
    if (st == 'Z')
      return;
    assert_true(pm_test_now_ms() < deadline);
    usleep(10000);
  }
}

/* ---- up and down ------------------------------------------------------------------------ */

static void test_backend_hook_up_succeeds(void **state) {
  (void)state;
  make("/bin/true", NULL, false, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", true));
  assert_int_equal(0, fx.calls); /* never from inside up() */
  await_calls(1);
  assert_int_equal(BACKEND_UP, fx.op);
  assert_int_equal(0, fx.status);
  assert_true(fx.msg_null);

  /* No down_cmd: down succeeds, but still later, never from inside down(). */
  assert_int_equal(0, fx.b->down(fx.b));
  assert_int_equal(1, fx.calls);
  await_calls(2);
  assert_int_equal(BACKEND_DOWN, fx.op);
  assert_int_equal(0, fx.status);
  run_for(100);
  assert_int_equal(2, fx.calls);
}

static void test_backend_hook_up_fails_with_stderr_tail(void **state) {
  (void)state;
  make("echo boom >&2; exit 3", NULL, true, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_int_equal(BACKEND_UP, fx.op);
  assert_true(fx.status < 0);
  assert_string_equal("up-cmd exited with status 3: boom", fx.msg);
}

static void test_backend_hook_down_cmd_runs_and_fails(void **state) {
  char out[128], cmd[256];
  (void)state;
  path_in_dir(out, sizeof(out), "down.out");
  /* down gets the location of the last up */
  snprintf(cmd, sizeof(cmd), "printf %%s \"$PIPEMSG_LOCATION\" > %s; echo 'no route' >&2; exit 1",
           out);
  make("/bin/true", cmd, true, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "nl", false));
  await_calls(1);
  assert_int_equal(0, fx.status);
  assert_int_equal(0, fx.b->down(fx.b));
  await_calls(2);
  assert_int_equal(BACKEND_DOWN, fx.op);
  assert_true(fx.status < 0);
  assert_string_equal("down-cmd exited with status 1: no route", fx.msg);
  assert_string_equal("nl", read_text(out));
}

/* A long, multi-line, partly binary stderr: the message keeps the end, folds lines, stays
 * bounded and is valid UTF-8 that XML carries too (it goes into JSON and XML events). */
static void test_backend_hook_stderr_tail_is_bounded(void **state) {
  (void)state;
  make("i=0; while [ $i -lt 300 ]; do echo \"line $i\" >&2; i=$((i+1)); done; "
       "printf 'bad\\001byte\\377 caf\\303\\251 \\357\\277\\276\\357\\277\\277 "
       "\\n\\n\\n  last line  \\n' >&2; exit 42",
       NULL, true, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_true(fx.status < 0);
  assert_true(strlen(fx.msg) < 400);
  assert_non_null(strstr(fx.msg, "up-cmd exited with status 42: ..."));
  /* U+FFFE and U+FFFF too: XML cannot carry them. */
  assert_non_null(strstr(fx.msg, "line 299 | bad?byte? caf\xc3\xa9 ?? | last line"));
  assert_null(strstr(fx.msg, "line 0 "));
  assert_string_equal("last line", fx.msg + strlen(fx.msg) - strlen("last line"));
}

/* Line ends of any kind fold to one " | ", tabs become spaces, and spaces at the ends of a
 * line go. */
static void test_backend_hook_stderr_tail_tidied(void **state) {
  (void)state;
  make("printf '\\t first\\tcol \\t\\r\\n\\r\\nsecond\\r\\n' >&2; exit 1", NULL, true, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_string_equal("up-cmd exited with status 1: first col | second", fx.msg);
}

static void test_backend_hook_stderr_of_spaces_adds_nothing(void **state) {
  (void)state;
  make("printf '  \\n \\t\\n' >&2; exit 2", NULL, true, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_string_equal("up-cmd exited with status 2", fx.msg);
}

/* The ring of the last 512 bytes cut inside a UTF-8 sequence: the torn byte is skipped, not
 * shown as '?'. 100 é (200 bytes), 401 line ends and "end!" are 605 bytes: the ring starts
 * at byte 93, the second byte of an é, and the 401 line ends fold to one " | ", so the whole
 * tail fits in the message. */
static void test_backend_hook_stderr_tail_torn_character(void **state) {
  char want[200] = "up-cmd exited with status 1: ";
  (void)state;
  make("i=0; while [ $i -lt 100 ]; do printf '\\303\\251' >&2; i=$((i+1)); done; "
       "i=0; while [ $i -lt 401 ]; do echo >&2; i=$((i+1)); done; printf 'end!' >&2; exit 1",
       NULL, true, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  for (int i = 0; i < 53; i++)
    strcat(want, "\xc3\xa9");
  strcat(want, " | end!");
  assert_string_equal(want, fx.msg);
}

static void test_backend_hook_killed_by_signal(void **state) {
  (void)state;
  make("kill -9 $$", NULL, true, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_true(fx.status < 0);
  assert_string_equal("up-cmd was killed by signal 9", fx.msg);
}

static void test_backend_hook_timeout_kills_child(void **state) {
  uint64_t start = pm_test_now_ms();
  pid_t pid;
  (void)state;
  make("/bin/sleep 10", NULL, false, 200, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  pid = only_child();
  assert_int_equal(0, kill(pid, 0));
  await_calls(1);
  assert_in_range(pm_test_now_ms() - start, 200 - EARLY_MS, 200 + slack_ms);
  assert_true(fx.status < 0);
  assert_string_equal("up-cmd timed out after 200 ms", fx.msg);
  /* reaped, not a zombie */
  assert_int_equal(-1, kill(pid, 0));
  assert_int_equal(ESRCH, errno);
}

/* The command's own children go with it: it runs in its own process group. */
static void test_backend_hook_timeout_kills_process_group(void **state) {
  char pidfile[128], cmd[256];
  (void)state;
  path_in_dir(pidfile, sizeof(pidfile), "pid");
  snprintf(cmd, sizeof(cmd), "/bin/sleep 30 & echo $! > %s; echo waiting >&2; wait", pidfile);
  make(cmd, NULL, true, 300, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_string_equal("up-cmd timed out after 300 ms: waiting", fx.msg);
  assert_gone((pid_t)atoi(read_text(pidfile)));
}

static void test_backend_hook_spawn_failure(void **state) {
  (void)state;
  make("/nonexistent/pipemsg-hook --up", NULL, false, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  assert_int_equal(0, fx.calls);
  await_calls(1);
  assert_int_equal(BACKEND_UP, fx.op);
  assert_true(fx.status < 0);
  assert_string_equal(
      "up-cmd could not start /nonexistent/pipemsg-hook: no such file or directory", fx.msg);
  run_for(100);
  assert_int_equal(1, fx.calls);
}

/* ---- what reaches the command ----------------------------------------------------------- */

static void test_backend_hook_env_reaches_command(void **state) {
  (void)state;
  /* A stale value in the service's own environment is replaced, not duplicated. */
  assert_int_equal(0, setenv("PIPEMSG_LOCATION", "stale", 1));
  make("test \"$PIPEMSG_LOCATION\" = de && test \"$PIPEMSG_KILL_SWITCH\" = 1 && "
       "test \"$(env | grep -c ^PIPEMSG_LOCATION=)\" = 1 && test -n \"$PATH\"",
       NULL, true, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", true));
  await_calls(1);
  assert_int_equal(0, fx.status);

  assert_int_equal(0, fx.b->down(fx.b));
  await_calls(2);
  assert_int_equal(0, fx.b->up(fx.b, "fr", true));
  await_calls(3);
  assert_true(fx.status < 0);
  assert_int_equal(0, fx.b->down(fx.b));
  await_calls(4);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(5);
  assert_true(fx.status < 0);
  assert_string_equal("up-cmd exited with status 1", fx.msg);
  assert_int_equal(0, unsetenv("PIPEMSG_LOCATION"));
}

/* A peer's location is data even with the shell: it never becomes command text. */
static void test_backend_hook_location_is_not_interpolated(void **state) {
  char out[128], pwned[128], cmd[256], location[320];
  (void)state;
  path_in_dir(out, sizeof(out), "loc.out");
  path_in_dir(pwned, sizeof(pwned), "pwned");
  snprintf(cmd, sizeof(cmd), "printf %%s \"$PIPEMSG_LOCATION\" > %s", out);
  snprintf(location, sizeof(location), "$(touch %s); touch %s", pwned, pwned);
  make(cmd, NULL, true, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, location, false));
  await_calls(1);
  assert_int_equal(0, fx.status);
  assert_string_equal(location, read_text(out));
  assert_int_equal(-1, access(pwned, F_OK));
}

/* Without the shell flag, words are split on spaces and passed as they are. */
static void test_backend_hook_no_shell_means_literal_argv(void **state) {
  char script[128], out[160], cmd[512];
  (void)state;
  path_in_dir(script, sizeof(script), "argv.sh");
  snprintf(out, sizeof(out), "%s.out", script);
  write_text(script, "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$0.out\"\n");
  snprintf(cmd, sizeof(cmd), "  /bin/sh %s $HOME a;b   `id` * \"q r\" $(touch x)  ", script);
  make(cmd, NULL, false, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_int_equal(0, fx.status);
  assert_string_equal("$HOME\na;b\n`id`\n*\n\"q\nr\"\n$(touch\nx)\n", read_text(out));
}

/* ---- down during up --------------------------------------------------------------------- */

static void test_backend_hook_down_kills_running_up(void **state) {
  uint64_t start;
  pid_t pid;
  (void)state;
  make("/bin/sleep 10", "/bin/true", false, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  pid = only_child();
  assert_int_equal(UV_EBUSY, fx.b->up(fx.b, "de", false));
  start = pm_test_now_ms();
  assert_int_equal(0, fx.b->down(fx.b));
  assert_int_equal(UV_EBUSY, fx.b->down(fx.b));
  await_calls(1);
  assert_in_range(pm_test_now_ms() - start, 0, slack_ms); /* SIGTERM, not the 5 s timeout */
  assert_int_equal(BACKEND_DOWN, fx.op); /* the cancelled up reports nothing */
  assert_int_equal(0, fx.status);
  assert_int_equal(-1, kill(pid, 0));
  assert_int_equal(ESRCH, errno);
  run_for(100);
  assert_int_equal(1, fx.calls);
}

/* An up that ignores SIGTERM gets SIGKILL after the timeout, all of it, then down_cmd runs. */
static void test_backend_hook_down_kills_stubborn_up(void **state) {
  char out[128], pidfile[128], up[256], down[256];
  uint64_t start;
  (void)state;
  path_in_dir(out, sizeof(out), "down.ran");
  path_in_dir(pidfile, sizeof(pidfile), "pid");
  snprintf(up, sizeof(up), "trap '' TERM; /bin/sleep 30 & echo $! > %s; wait", pidfile);
  snprintf(down, sizeof(down), "/usr/bin/touch %s", out);
  make(up, down, true, 300, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  start = pm_test_now_ms();
  run_for(100); /* let the shell set its trap */
  assert_int_equal(0, fx.b->down(fx.b));
  await_calls(1);
  /* 100 ms, then the 300 ms timeout before SIGKILL */
  assert_in_range(pm_test_now_ms() - start, 400 - EARLY_MS, 400 + slack_ms);
  assert_int_equal(BACKEND_DOWN, fx.op);
  assert_int_equal(0, fx.status);
  assert_int_equal(0, access(out, F_OK));
  assert_gone((pid_t)atoi(read_text(pidfile)));
}

/* down() right after an up whose spawn failed: that failure is superseded, as a running up
 * would be. */
static void test_backend_hook_down_supersedes_pending_failure(void **state) {
  (void)state;
  make("/nonexistent/pipemsg-hook", NULL, false, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  assert_int_equal(0, fx.b->down(fx.b));
  await_calls(1);
  assert_int_equal(BACKEND_DOWN, fx.op);
  assert_int_equal(0, fx.status);
  run_for(100);
  assert_int_equal(1, fx.calls);
}

static void test_backend_hook_close_with_child_running(void **state) {
  pid_t pid;
  (void)state;
  make("/bin/sleep 10", "/bin/true", false, 5000, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  pid = only_child();
  teardown(state); /* closes the backend, asserts the loop closes with nothing open */
  assert_int_equal(0, fx.calls);
  assert_int_equal(-1, kill(pid, 0));
  assert_int_equal(ESRCH, errno);
  setup(state);
}

/* ---- configuration ---------------------------------------------------------------------- */

static void test_backend_hook_new_rejects_bad_config(void **state) {
  static const backend_hook_options bad[] = {
      {NULL, NULL, false, 0, NULL},
      {"", NULL, false, 0, NULL},
      {"   ", NULL, true, 0, NULL},
      {"/bin/true", "", false, 0, NULL},
      {"/bin/true", " ", false, 0, NULL},
      {"/bin/true", NULL, false, 0, "../../etc"},
      {"/bin/true", NULL, false, 0, ".."},
      {"/bin/true", NULL, false, 0, ""},
  };
  backend *b = (backend *)&fx; /* must stay untouched */
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(-EINVAL, backend_hook_new(&fx.loop, &bad[i], &b));
    assert_ptr_equal(&fx, b);
  }
}

/* ---- traffic ---------------------------------------------------------------------------- */

static void send_loopback(size_t bytes) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  char buf[1024];
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
  assert_int_equal(0, getsockname(fd, (struct sockaddr *)&sa, &len));
  memset(buf, 'x', sizeof(buf));
  for (size_t sent = 0; sent < bytes; sent += sizeof(buf)) {
    assert_int_equal((ssize_t)sizeof(buf),
                     sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)&sa, sizeof(sa)));
    assert_int_equal((ssize_t)sizeof(buf), recv(fd, buf, sizeof(buf), 0));
  }
  close(fd);
}

static void test_backend_hook_iface_lo_counters_grow(void **state) {
  uint64_t tx0, rx0, tx1, rx1, sent, received;
  (void)state;
  assert_int_equal(0, backend_iface_counters("lo", &tx0, &rx0));
  send_loopback(8192);
  assert_int_equal(0, backend_iface_counters("lo", &tx1, &rx1));
  assert_true(tx1 >= tx0 + 8192);
  assert_true(rx1 >= rx0 + 8192);

  make("/bin/true", NULL, false, 5000, "lo");
  fx.b->traffic(fx.b, &sent, &received);
  assert_true(sent >= tx1);
  assert_true(received >= rx1);
}

static void test_backend_hook_invalid_iface_reads_nothing(void **state) {
  static const char *const bad[] = {"", ".", "..", "a/b", "../lo", "lo/../lo",
                                    "sixteen-chars-xx", "lo;true", "lo ", "l\xc3\xb6"};
  uint64_t tx = 1, rx = 1, sent = 1, received = 1;
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    tx = rx = 1;
    assert_int_equal(-EINVAL, backend_iface_counters(bad[i], &tx, &rx));
    assert_true(tx == 0 && rx == 0);
  }
  assert_int_equal(-EINVAL, backend_iface_counters(NULL, &tx, &rx));
  /* valid but absent (a tunnel not created yet): unreadable, 0/0 */
  tx = rx = 1;
  assert_int_equal(-ENOENT, backend_iface_counters("pmtest-none0", &tx, &rx));
  assert_true(tx == 0 && rx == 0);
  /* 15 characters is the limit, not past it */
  assert_int_equal(-ENOENT, backend_iface_counters("fifteen-chars-x", &tx, &rx));

  make("/bin/true", NULL, false, 5000, "pmtest-none0");
  fx.b->traffic(fx.b, &sent, &received);
  assert_true(sent == 0 && received == 0);
  teardown(state);
  setup(state);
  make("/bin/true", NULL, false, 5000, NULL);
  sent = received = 1;
  fx.b->traffic(fx.b, &sent, &received);
  assert_true(sent == 0 && received == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_backend_hook_up_succeeds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_up_fails_with_stderr_tail, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_down_cmd_runs_and_fails, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_stderr_tail_is_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_stderr_tail_tidied, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_stderr_of_spaces_adds_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_stderr_tail_torn_character, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_killed_by_signal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_timeout_kills_child, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_timeout_kills_process_group, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_spawn_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_env_reaches_command, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_location_is_not_interpolated, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_no_shell_means_literal_argv, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_down_kills_running_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_down_kills_stubborn_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_down_supersedes_pending_failure, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_close_with_child_running, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_new_rejects_bad_config, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_iface_lo_counters_grow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_hook_invalid_iface_reads_nothing, setup,
                                      teardown),
  };
  /* A killed command's pipe must not take the test down with it. */
  signal(SIGPIPE, SIG_IGN);
  if (getenv("PM_TEST_VALGRIND") != NULL)
    slack_ms = SLACK_MS_VALGRIND;
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
