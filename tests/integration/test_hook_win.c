/* The hook backend on Windows (backend_hook.c over hook_proc_win.c, and iface_win.c) on a
 * private loop, with hook_helper.exe as the command (it sits beside this program). It runs
 * under wine: job objects (the kill of a whole tree included), CreateProcessW's environment
 * block and cmd.exe all work there, so nothing here is skipped for wine. */
#include <winsock2.h>
#include <ws2ipdef.h>
#include <windows.h>
#include <iphlpapi.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "backend.h"
#include "log.h"
#include "testutil.h"

/* Time a test waits for a done() that should come. A command here starts in well under a
 * second, but wine starts a process 20-40 times slower than Windows on a loaded machine. */
#define WAIT_MS 30000
/* The time limit of a command that is to be killed: long enough for the helper to start its
 * grandchild under wine (well under 1 s here, 10 times that on a loaded machine), short next
 * to the helper's own 60 s sleep. */
#define KILL_TIMEOUT_MS 10000
/* How late a timeout or a kill may be seen, never early: the job is terminated at once, and
 * its exit reaches the loop through a thread-pool wait; wine's process exit takes up to
 * a few hundred ms more. Short of the helper's own 60 s sleep, which a missed kill runs into. */
#define SLACK_MS 5000
/* The loop's clock may be coarser than the test's by a few ms. */
#define EARLY_MS 20
/* Bounds the wait for a killed grandchild's handle: it was ended with the job. */
#define GONE_MS 5000

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
  bool torn_down; /* by the test itself: a failure after that must not tear down twice */
  char dir[MAX_PATH];
  char helper[MAX_PATH]; /* hook_helper.exe, without spaces (its short name if need be) */
  long last_pid;         /* of the last "started pid=" the backend logged */
} fixture;

static fixture fx;

/* pipemsgd's log, as the backend uses it: the test reads the pids it logs. */
void log_msg(log_level level, const char *fmt, ...) {
  char line[LOG_LINE_MAX];
  const char *pid;
  va_list ap;
  (void)level;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (strstr(line, " started ") != NULL && (pid = strstr(line, "pid=")) != NULL)
    fx.last_pid = atol(pid + 4);
}

static void find_helper(void) {
  char self[MAX_PATH], *slash;
  DWORD n = GetModuleFileNameA(NULL, self, sizeof(self));
  assert_true(n > 0 && n < sizeof(self));
  slash = strrchr(self, '\\');
  assert_non_null(slash);
  snprintf(slash + 1, sizeof(self) - (size_t)(slash + 1 - self), "hook_helper.exe");
  /* The backend splits commands on spaces: a path with one is given by its 8.3 name. */
  n = GetShortPathNameA(self, fx.helper, sizeof(fx.helper));
  assert_true(n > 0 && n < sizeof(fx.helper));
  assert_null(strchr(fx.helper, ' '));
}

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof(fx));
  assert_int_equal(0, uv_loop_init(&fx.loop));
  assert_int_equal(0, uv_timer_init(&fx.loop, &fx.tick));
  pm_test_dir_new(fx.dir, sizeof(fx.dir));
  assert_true(SetEnvironmentVariableA("PM_HOOK_DIR", fx.dir));
  find_helper();
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
  if (fx.torn_down)
    return 0;
  fx.torn_down = true;
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
  fx.b->done = on_done;
  fx.b->owner = &fx;
}

/* "HELPER ARGS" in buf. */
static const char *helper_cmd(char *buf, size_t size, const char *args) {
  snprintf(buf, size, "%s %s", fx.helper, args);
  return buf;
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

static void path_in_dir(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s\\%s", fx.dir, name);
}

static bool file_exists(const char *name) {
  char path[2 * MAX_PATH];
  path_in_dir(path, sizeof(path), name);
  return GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES;
}

static const char *read_text(const char *name) {
  static char buf[2048];
  char path[2 * MAX_PATH];
  FILE *f;
  size_t n;
  path_in_dir(path, sizeof(path), name);
  f = fopen(path, "rb");
  assert_non_null(f);
  n = fread(buf, 1, sizeof(buf) - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Runs the loop (the command runs on) until the helper has written its grandchild's pid, then
 * opens that process: a handle that stays valid, and is signalled once the process has gone. */
static HANDLE await_grandchild(void) {
  uint64_t deadline = pm_test_now_ms() + WAIT_MS;
  HANDLE g;
  uv_timer_start(&fx.tick, on_tick, 20, 20);
  while (!file_exists("grandchild.pid")) {
    uv_run(&fx.loop, UV_RUN_ONCE);
    assert_true(pm_test_now_ms() < deadline);
  }
  uv_timer_stop(&fx.tick);
  g = OpenProcess(SYNCHRONIZE | PROCESS_TERMINATE, FALSE,
                  (DWORD)strtoul(read_text("grandchild.pid"), NULL, 10));
  assert_non_null(g);
  return g;
}

static HANDLE open_process(long pid) {
  HANDLE h;
  assert_true(pid > 0);
  h = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)pid);
  assert_non_null(h);
  return h;
}

/* ---- exit codes ------------------------------------------------------------------------- */

static void test_hook_win_exit_codes(void **state) {
  char cmd[MAX_PATH + 32];
  (void)state;
  make(helper_cmd(cmd, sizeof(cmd), "exit 0"), NULL, false, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", true));
  assert_int_equal(0, fx.calls); /* never from inside up() */
  await_calls(1);
  assert_int_equal(BACKEND_UP, fx.op);
  assert_int_equal(0, fx.status);
  assert_true(fx.msg_null);
  teardown(state);
  setup(state);

  make(helper_cmd(cmd, sizeof(cmd), "exit 7"), NULL, false, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", true));
  await_calls(1);
  assert_true(fx.status < 0);
  assert_string_equal("up-cmd exited with status 7", fx.msg);
}

static void test_hook_win_stderr_tail(void **state) {
  char up[MAX_PATH + 32], down[MAX_PATH + 32];
  (void)state;
  make(helper_cmd(up, sizeof(up), "exit 0"), helper_cmd(down, sizeof(down), "stderr"), false,
       WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_int_equal(0, fx.b->down(fx.b));
  await_calls(2);
  assert_int_equal(BACKEND_DOWN, fx.op);
  assert_true(fx.status < 0);
  assert_string_equal("down-cmd exited with status 3: boom", fx.msg);
}

static void test_hook_win_spawn_failure(void **state) {
  (void)state;
  make("C:\\nonexistent\\pipemsg-hook.exe --up", NULL, false, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  assert_int_equal(0, fx.calls);
  await_calls(1);
  assert_true(fx.status < 0);
  assert_string_equal(
      "up-cmd could not start C:\\nonexistent\\pipemsg-hook.exe: no such file or directory",
      fx.msg);
}

/* ---- what reaches the command ----------------------------------------------------------- */

/* The request only in the environment block: a stale value of the service's own environment
 * (of another case: names are case-insensitive on Windows) is replaced, not duplicated, and
 * the command line holds the command's words alone. */
static void test_hook_win_env_carries_request(void **state) {
  static const char location[] = "caf\xc3\xa9 & \"x\" %PATH% !PATH!";
  char cmd[MAX_PATH + 32];
  (void)state;
  assert_true(SetEnvironmentVariableA("pipemsg_location", "stale"));
  make(helper_cmd(cmd, sizeof(cmd), "env"), NULL, false, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, location, true));
  await_calls(1);
  assert_int_equal(0, fx.status);
  /* in the block's order: sorted by name */
  assert_string_equal("kill_switch=1\nlocation=caf\xc3\xa9 & \"x\" %PATH% !PATH!\n"
                      "count=1\nargc=2\n",
                      read_text("env.out"));
  assert_true(SetEnvironmentVariableA("pipemsg_location", NULL));
}

/* Without the shell, words split on spaces arrive as they are, whatever the quotes,
 * backslashes and tabs in them (quoted for CommandLineToArgvW, read back with it). */
static void test_hook_win_argv_quoting(void **state) {
  char cmd[MAX_PATH + 128];
  (void)state;
  make(helper_cmd(cmd, sizeof(cmd),
                  "argv  plain a\"b c\\ d\\\\\" e\\\"f \"q r\" tab\there x\\ \"\" %PATH% & |  "),
       NULL, false, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_int_equal(0, fx.status);
  assert_string_equal("plain\na\"b\nc\\\nd\\\\\"\ne\\\"f\n\"q\nr\"\ntab\there\nx\\\n\"\"\n"
                      "%PATH%\n&\n|\n",
                      read_text("argv.out"));
}

/* The command inherits its stdio and nothing else of the service, though the service holds an
 * inheritable handle (the listening pipes of a real service are not, but a handle another
 * thread makes inheritable for a moment must not leak either). */
static void test_hook_win_inherits_only_stdio(void **state) {
  char args[64], cmd[MAX_PATH + 96];
  HANDLE self = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, TRUE, GetCurrentProcessId());
  (void)state;
  assert_non_null(self);
  snprintf(args, sizeof(args), "handle %llx %lu", (unsigned long long)(uintptr_t)self,
           (unsigned long)GetCurrentProcessId());
  make(helper_cmd(cmd, sizeof(cmd), args), NULL, false, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  CloseHandle(self);
  assert_string_equal("", fx.msg);
  assert_int_equal(0, fx.status);
}

/* --hook-shell: cmd.exe runs the text, its exit status is the command's, the request is in
 * its environment, and read with delayed expansion (!VAR!) it stays data, whatever it holds.
 * (Under wine %VAR% stays data too; on Windows it is expanded before cmd parses the line, so
 * docs/windows.md asks for !VAR!.) The forms are those wine's cmd runs as Windows does: a
 * redirection last on the line, no parentheses. */
static void test_hook_win_shell(void **state) {
  static const char location[] = "de & echo pwned>pwned.out | x";
  (void)state;
  make("exit /b 3", NULL, true, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_true(fx.status < 0);
  assert_string_equal("up-cmd exited with status 3", fx.msg);
  teardown(state);
  setup(state);

  make("cd /d \"%PM_HOOK_DIR%\" && echo %PIPEMSG_LOCATION%>plain.out", NULL, true, WAIT_MS,
       NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_int_equal(0, fx.status);
  assert_string_equal("de\r\n", read_text("plain.out"));
  teardown(state);
  setup(state);

  make("cd /d \"%PM_HOOK_DIR%\" && echo !PIPEMSG_LOCATION!>loc.out", NULL, true, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, location, true));
  await_calls(1);
  assert_int_equal(0, fx.status);
  assert_string_equal("de & echo pwned>pwned.out | x\r\n", read_text("loc.out"));
  assert_false(file_exists("pwned.out"));
}

/* ---- ending a command ------------------------------------------------------------------- */

/* The timeout ends the whole tree: the grandchild, which would write late.out long after,
 * is gone with the command (its handle is signalled) and never writes it. */
static void test_hook_win_timeout_kills_tree(void **state) {
  char cmd[MAX_PATH + 32];
  uint64_t start = pm_test_now_ms();
  HANDLE g, child;
  (void)state;
  make(helper_cmd(cmd, sizeof(cmd), "tree"), NULL, false, KILL_TIMEOUT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  child = open_process(fx.last_pid);
  g = await_grandchild();
  assert_int_equal(WAIT_TIMEOUT, WaitForSingleObject(g, 0));
  await_calls(1);
  assert_ms_within("timeout", pm_test_now_ms() - start, KILL_TIMEOUT_MS - EARLY_MS,
                   KILL_TIMEOUT_MS + SLACK_MS);
  assert_true(fx.status < 0);
  assert_string_equal("up-cmd timed out after 10000 ms", fx.msg);
  assert_int_equal(WAIT_OBJECT_0, WaitForSingleObject(child, 0));
  assert_int_equal(WAIT_OBJECT_0, WaitForSingleObject(g, GONE_MS));
  assert_false(file_exists("late.out"));
  CloseHandle(child);
  CloseHandle(g);
}

/* down() during up ends the up's tree at once (Windows has no gentler request for it), then
 * runs down_cmd: long before the timeout. */
static void test_hook_win_down_ends_running_up(void **state) {
  char up[MAX_PATH + 32], down[MAX_PATH + 32];
  uint64_t start;
  HANDLE child;
  (void)state;
  make(helper_cmd(up, sizeof(up), "sleep"), helper_cmd(down, sizeof(down), "exit 0"), false,
       WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  child = open_process(fx.last_pid);
  assert_int_equal(UV_EBUSY, fx.b->up(fx.b, "de", false));
  start = pm_test_now_ms();
  assert_int_equal(0, fx.b->down(fx.b));
  await_calls(1);
  assert_ms_within("down after a cancelled up", pm_test_now_ms() - start, 0, SLACK_MS);
  assert_int_equal(BACKEND_DOWN, fx.op); /* the cancelled up reports nothing */
  assert_int_equal(0, fx.status);
  assert_int_equal(WAIT_OBJECT_0, WaitForSingleObject(child, 0));
  CloseHandle(child);
}

static void test_hook_win_close_with_tree_running(void **state) {
  char cmd[MAX_PATH + 32];
  HANDLE g, child;
  make(helper_cmd(cmd, sizeof(cmd), "tree"), NULL, false, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  child = open_process(fx.last_pid);
  g = await_grandchild();
  teardown(state); /* closes the backend, asserts the loop closes with nothing open */
  assert_int_equal(0, fx.calls);
  assert_int_equal(WAIT_OBJECT_0, WaitForSingleObject(child, GONE_MS));
  assert_int_equal(WAIT_OBJECT_0, WaitForSingleObject(g, GONE_MS));
  CloseHandle(child);
  CloseHandle(g);
  setup(state);
}

/* What a command that succeeded left running (a tunnel daemon it started) outlives it, as a
 * process group does on Unix: closing the job no longer ends it. */
static void test_hook_win_leftover_of_exited_command_lives(void **state) {
  char cmd[MAX_PATH + 32];
  HANDLE g;
  make(helper_cmd(cmd, sizeof(cmd), "daemon"), NULL, false, WAIT_MS, NULL);
  assert_int_equal(0, fx.b->up(fx.b, "de", false));
  await_calls(1);
  assert_int_equal(0, fx.status);
  g = await_grandchild();
  teardown(state);
  assert_int_equal(WAIT_TIMEOUT, WaitForSingleObject(g, 0));
  assert_true(TerminateProcess(g, 0));
  assert_int_equal(WAIT_OBJECT_0, WaitForSingleObject(g, GONE_MS));
  CloseHandle(g);
  setup(state);
}

/* ---- pipemsgd.exe ---------------------------------------------------------------------- */

static const char *state_of(const char *pipe) {
  static char state[32];
  json_t *data = NULL;
  assert_string_equal("Ok", pm_test_call(pipe, "GetState", NULL, &data));
  snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(data, "State")));
  json_decref(data);
  return state;
}

/* Each GetState is a round trip that waits for the service: no sleep between them. */
static void await_state(const char *pipe, const char *want) {
  uint64_t deadline = pm_test_now_ms() + WAIT_MS;
  while (strcmp(state_of(pipe), want) != 0)
    assert_true(pm_test_now_ms() < deadline);
}

/* The service with --backend hook: StartVpn runs up-cmd (which sees the location in its
 * environment) and ends Connected, StopVpn runs down-cmd and ends Disconnected. */
static void test_hook_win_service(void **state) {
  char up[MAX_PATH + 32], down[MAX_PATH + 32];
  const char *args[] = {"--backend", "hook", "--up-cmd", helper_cmd(up, sizeof(up), "env"),
                        "--down-cmd", helper_cmd(down, sizeof(down), "exit 0"), NULL};
  pm_test_service svc;
  (void)state;
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", "de"), NULL));
  await_state(svc.command_pipe, "Connected");
  assert_string_equal("kill_switch=0\nlocation=de\ncount=1\nargc=2\n", read_text("env.out"));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  await_state(svc.command_pipe, "Disconnected");
  pm_test_service_cleanup(&svc);
}

/* ---- --iface ---------------------------------------------------------------------------- */

/* The first loopback adapter's alias (UTF-8) in out, or false if there is none. */
static bool loopback_alias(char *out, size_t size, MIB_IF_ROW2 *row) {
  MIB_IF_TABLE2 *t;
  bool found = false;
  assert_int_equal(NO_ERROR, GetIfTable2(&t));
  for (ULONG i = 0; i < t->NumEntries && !found; i++)
    if (t->Table[i].Type == IF_TYPE_SOFTWARE_LOOPBACK &&
        WideCharToMultiByte(CP_UTF8, 0, t->Table[i].Alias, -1, out, (int)size, NULL, NULL) > 0) {
      *row = t->Table[i];
      found = true;
    }
  FreeMibTable(t);
  return found;
}

/* The loopback adapter's counters as GetIfEntry2 has them (they only grow), through
 * backend_iface_counters and the backend's traffic(). wine shows Linux's lo. */
static void test_hook_win_iface_loopback(void **state) {
  char alias[4 * IF_MAX_STRING_SIZE], cmd[MAX_PATH + 32];
  MIB_IF_ROW2 row;
  uint64_t tx, rx, sent, received;
  (void)state;
  memset(&row, 0, sizeof(row));
  if (!loopback_alias(alias, sizeof(alias), &row))
    pm_test_skip("no loopback adapter in GetIfTable2");
  assert_int_equal(0, backend_iface_counters(alias, &tx, &rx));
  assert_true(tx >= row.OutOctets && rx >= row.InOctets);
  make(helper_cmd(cmd, sizeof(cmd), "exit 0"), NULL, false, WAIT_MS, alias);
  fx.b->traffic(fx.b, &sent, &received);
  assert_true(sent >= tx && received >= rx);
}

static void test_hook_win_iface_unknown_and_invalid(void **state) {
  char too_long[IF_MAX_STRING_SIZE + 2];
  const char *const bad[] = {"", "tab\there", "nl\n", "bad\xff utf-8", too_long};
  uint64_t tx = 1, rx = 1, sent = 1, received = 1;
  char cmd[MAX_PATH + 32];
  (void)state;
  memset(too_long, 'a', sizeof(too_long) - 1);
  too_long[sizeof(too_long) - 1] = '\0';
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    backend_hook_options o = {"x", NULL, false, 0, bad[i]};
    backend *b = NULL;
    tx = rx = 1;
    assert_int_equal(-EINVAL, backend_iface_counters(bad[i], &tx, &rx));
    assert_true(tx == 0 && rx == 0);
    assert_int_equal(-EINVAL, backend_hook_new(&fx.loop, &o, &b));
  }
  assert_int_equal(-EINVAL, backend_iface_counters(NULL, &tx, &rx));
  /* valid but absent (an adapter not created yet): -ENOENT, 0/0; spaces are fine in an
   * alias, and 256 UTF-16 units is the limit, not past it */
  tx = rx = 1;
  assert_int_equal(-ENOENT, backend_iface_counters("pmtest Ethernet 99", &tx, &rx));
  assert_true(tx == 0 && rx == 0);
  too_long[IF_MAX_STRING_SIZE] = '\0';
  assert_int_equal(-ENOENT, backend_iface_counters(too_long, &tx, &rx));
  make(helper_cmd(cmd, sizeof(cmd), "exit 0"), NULL, false, WAIT_MS, "pmtest Ethernet 99");
  fx.b->traffic(fx.b, &sent, &received);
  assert_true(sent == 0 && received == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_hook_win_exit_codes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_stderr_tail, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_spawn_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_env_carries_request, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_argv_quoting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_inherits_only_stdio, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_shell, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_timeout_kills_tree, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_down_ends_running_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_close_with_tree_running, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_leftover_of_exited_command_lives, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_service, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_iface_loopback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hook_win_iface_unknown_and_invalid, setup,
                                      teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
