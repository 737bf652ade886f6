/* pipemsgd as a system service: config file, --print-config, names file, socket activation,
 * man page, the data directory, signals and the log. */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define PIPEMSG PM_BIN_DIR "/pipemsg"
#define PIPEMSGD PM_BIN_DIR "/pipemsgd"

static char dir[64];

static int setup(void **state) {
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pm_test_dir_remove(dir);
  return 0;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_lifecycle_config_file_and_command_line(void **state) {
  char conf[128], json[128];
  const char *out, *err;
  const char *print[] = {PIPEMSGD, "--config", conf, "--heartbeat-ms", "700", "--print-config",
                         NULL};
  const char *print_json[] = {PIPEMSGD, "--config", json, "--print-config", NULL};
  const char *bad[] = {PIPEMSGD, "--config", json, NULL};
  (void)state;
  snprintf(conf, sizeof(conf), "%s/pipemsgd.conf", dir);
  snprintf(json, sizeof(json), "%s/pipemsgd.json", dir);
  write_file(conf, "# comment\ncommand-pipe = /tmp/x/cmd\nheartbeat-ms = 500\n"
                   "transient = Ping\ntransient = Pong\nsocket-mode = 0640\n"
                   "test-commands = true\n");
  assert_int_equal(0, pm_test_run(print, &out, &err));
  assert_non_null(strstr(out, "command-pipe = /tmp/x/cmd\n"));
  assert_non_null(strstr(out, "heartbeat-ms = 700\n")); /* the command line wins */
  assert_non_null(strstr(out, "transient = Ping\ntransient = Pong\n"));
  assert_non_null(strstr(out, "socket-mode = 0640\n"));
  assert_non_null(strstr(out, "test-commands = true\n"));
  assert_non_null(strstr(out, "ack-timeout-ms = 1000\n")); /* defaults are shown too */
  write_file(json, "{\"event-pipe\": \"/tmp/y/evt\", \"allow-uid\": [0, 65534], "
                   "\"queue-max-events\": 50}");
  assert_int_equal(0, pm_test_run(print_json, &out, &err));
  assert_non_null(strstr(out, "event-pipe = /tmp/y/evt\n"));
  assert_non_null(strstr(out, "allow-uid = 0\nallow-uid = 65534\n"));
  assert_non_null(strstr(out, "queue-max-events = 50\n"));
  write_file(json, "{\"no-such-option\": 1}");
  assert_int_equal(2, pm_test_run(bad, &out, &err));
  assert_non_null(strstr(err, "unknown option 'no-such-option'"));
  write_file(json, "heartbeat-ms = soon\n");
  assert_int_equal(2, pm_test_run(bad, &out, &err));
  assert_non_null(strstr(err, ":1: --heartbeat-ms: expected a number"));
}

static void test_lifecycle_printed_config_is_a_config(void **state) {
  char conf[128];
  const char *out, *err;
  const char *print[] = {PIPEMSGD, "--queue-max-events", "77", "--print-config", NULL};
  const char *again[] = {PIPEMSGD, "--config", conf, "--print-config", NULL};
  char first[8192];
  (void)state;
  snprintf(conf, sizeof(conf), "%s/printed.conf", dir);
  assert_int_equal(0, pm_test_run(print, &out, &err));
  snprintf(first, sizeof(first), "%s", out);
  write_file(conf, first);
  assert_int_equal(0, pm_test_run(again, &out, &err));
  assert_string_equal(first, out);
}

static void test_lifecycle_names_file(void **state) {
  const char *args[3];
  char names[128];
  const char *out, *err;
  pm_test_service svc;
  (void)state;
  snprintf(names, sizeof(names), "%s/names", dir);
  args[0] = "--names-file";
  args[1] = names;
  args[2] = NULL;
  setenv("PIPEMSG_RUNTIME_DIR", dir, 1);
  pm_test_service_start(&svc, args);
  {
    const char *call[] = {PIPEMSG, "call", "--names-file", names, "GetVersion", NULL};
    FILE *f = fopen(names, "r");
    char text[512] = "";
    assert_non_null(f);
    assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
    fclose(f);
    /* Random names in the runtime directory, not the -c/-e given. */
    assert_non_null(strstr(text, "command-pipe = "));
    assert_non_null(strstr(text, dir));
    assert_null(strstr(text, svc.command_pipe));
    assert_int_equal(0, pm_test_run(call, &out, &err));
    assert_non_null(strstr(out, "Version"));
  }
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_int_equal(-1, access(names, F_OK)); /* removed on a clean stop */
  setenv("PIPEMSG_RUNTIME_DIR", pm_test_runtime_dir(), 1);
  pm_test_service_cleanup(&svc);
}

static void test_lifecycle_socket_activation(void **state) {
  char cmd[128], evt[128];
  pid_t pid;
  uint64_t deadline;
  int status;
  (void)state;
  snprintf(cmd, sizeof(cmd), "%s/cmd", dir);
  snprintf(evt, sizeof(evt), "%s/evt", dir);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char l1[160], l2[160];
    snprintf(l1, sizeof(l1), "--listen=%s", cmd);
    snprintf(l2, sizeof(l2), "--listen=%s", evt);
    execl("/usr/bin/systemd-socket-activate", "systemd-socket-activate", l1, l2,
          "--fdname=command:event", PIPEMSGD, "-c", "/nonexistent/never-bound", "-e",
          "/nonexistent/never-bound-either", (char *)NULL);
    _exit(127);
  }
  /* systemd-socket-activate binds both, then starts pipemsgd at the first connection. */
  deadline = pm_test_now_ms() + 10000;
  while (access(evt, F_OK) < 0) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
  assert_string_equal("Ok", pm_test_call(cmd, "GetVersion", NULL, NULL));
  {
    int fd = pm_test_connect(evt);
    char *reply;
    assert_true(fd >= 0);
    assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":4}}"));
    reply = pm_test_recv_frame(fd, 5000, NULL);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "\"Seq\":4"));
    free(reply);
    close(fd);
  }
  kill(pid, SIGTERM);
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status));
  assert_int_equal(0, WEXITSTATUS(status));
}

/* Stopping removes the socket file the service bound, and nothing put in its place. */
static void hardening_08_stop_leaves_foreign_file(void **state) {
  pm_test_service svc;
  FILE *f;
  struct stat st;
  (void)state;
  pm_test_service_start(&svc, NULL);
  assert_int_equal(0, unlink(svc.command_pipe));
  f = fopen(svc.command_pipe, "w");
  assert_non_null(f);
  fputs("not the service's\n", f);
  fclose(f);
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_int_equal(0, lstat(svc.command_pipe, &st));
  assert_true(S_ISREG(st.st_mode));
  /* The event pipe, still the service's own socket, went as usual. */
  assert_int_equal(-1, access(svc.event_pipe, F_OK));
  pm_test_service_cleanup(&svc);
}

/* Waits until path exists and holds text. */
static const char *await_file(const char *path, const char *text) {
  static char buf[8192];
  uint64_t deadline = pm_test_now_ms() + 10000;
  for (;;) {
    FILE *f = fopen(path, "r");
    size_t n = 0;
    buf[0] = '\0';
    if (f != NULL) {
      n = fread(buf, 1, sizeof(buf) - 1, f);
      buf[n] = '\0';
      fclose(f);
    }
    if (strstr(buf, text) != NULL)
      return buf;
    if (pm_test_now_ms() >= deadline) {
      print_error("no '%s' in %s:\n%s\n", text, path, buf);
      fail();
    }
    uv_sleep(10);
  }
}

/* Under socket activation the listening sockets are close-on-exec (a hook command inherits
 * none), and the log names the paths systemd bound, not the -c/-e names. */
static void hardening_11_activated_fds_not_inherited(void **state) {
  char cmd[128], evt[128], log[128], fds[128], up[512];
  const char *listed;
  pid_t pid;
  uint64_t deadline;
  int status;
  (void)state;
  snprintf(cmd, sizeof(cmd), "%s/cmd", dir);
  snprintf(evt, sizeof(evt), "%s/evt", dir);
  snprintf(log, sizeof(log), "%s/log", dir);
  snprintf(fds, sizeof(fds), "%s/fds", dir);
  /* The hook's own descriptors, one "N -> target" per line, then a marker once complete. */
  snprintf(up, sizeof(up), "ls -l /proc/self/fd > %s.tmp; mv %s.tmp %s", fds, fds, fds);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char l1[160], l2[160];
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    /* A failing test must not leave the service behind. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (logfd < 0 || dup2(logfd, 2) < 0)
      _exit(127);
    snprintf(l1, sizeof(l1), "--listen=%s", cmd);
    snprintf(l2, sizeof(l2), "--listen=%s", evt);
    execl("/usr/bin/systemd-socket-activate", "systemd-socket-activate", l1, l2,
          "--fdname=command:event", PIPEMSGD, "-c", "/nonexistent/never-bound", "-e",
          "/nonexistent/never-bound-either", "--backend", "hook", "--hook-shell", "--up-cmd",
          up, (char *)NULL);
    _exit(127);
  }
  deadline = pm_test_now_ms() + 10000;
  while (access(evt, F_OK) < 0) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
  assert_string_equal("Ok", pm_test_call(cmd, "StartVpn", NULL, NULL));
  listed = await_file(fds, "->");
  /* fds 0-2 are the hook's stdio (libuv makes them socket pairs); nothing above may be a
   * socket. */
  for (const char *line = listed; line != NULL && *line != '\0';) {
    const char *arrow = strstr(line, " -> "), *end = strchr(line, '\n');
    if (arrow != NULL && (end == NULL || arrow < end)) {
      const char *num = arrow;
      while (num > line && num[-1] != ' ')
        num--;
      if (atoi(num) > 2 && strncmp(arrow + 4, "socket:", 7) == 0) {
        print_error("the hook inherited a socket:\n%s\n", listed);
        fail();
      }
    }
    line = end != NULL ? end + 1 : NULL;
  }
  {
    char want[300];
    snprintf(want, sizeof(want), "command_pipe=%s (socket activation) event_pipe=%s", cmd, evt);
    await_file(log, want);
  }
  kill(pid, SIGTERM);
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status));
}

/* With --names-file the random names are hidden: the runtime directory is created 0711 and
 * the names file is 0640, of the socket group; as root, nobody can neither list the one nor
 * read the other. */
static void hardening_12_names_hidden(void **state) {
  char names[128], rt[128], group[16];
  const char *args[] = {"--names-file", names, "--socket-group", group, NULL};
  const char *out, *err;
  unsigned gid = geteuid() == 0 ? 65534 : (unsigned)getegid();
  pm_test_service svc;
  struct stat st;
  (void)state;
  snprintf(names, sizeof(names), "%s/names", dir);
  snprintf(rt, sizeof(rt), "%s/rt", dir);
  snprintf(group, sizeof(group), "%u", gid);
  assert_int_equal(0, chmod(dir, 0755)); /* others may reach rt and names, as in /run */
  setenv("PIPEMSG_RUNTIME_DIR", rt, 1);
  pm_test_service_start(&svc, args);
  assert_int_equal(0, stat(rt, &st));
  assert_int_equal(0711, st.st_mode & 07777);
  assert_int_equal(0, stat(names, &st));
  assert_int_equal(0640, st.st_mode & 07777);
  assert_int_equal(gid, st.st_gid);
  if (geteuid() == 0) {
    const char *list[] = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65533", "--clear-groups",
                          "/bin/ls", rt, NULL};
    const char *read[] = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65533", "--clear-groups",
                          "/bin/cat", names, NULL};
    assert_int_not_equal(0, pm_test_run(list, &out, &err));
    assert_non_null(strstr(err, "Permission denied"));
    assert_int_not_equal(0, pm_test_run(read, &out, &err));
    assert_non_null(strstr(err, "Permission denied"));
  } else {
    print_message("not root: not checking what another user sees\n");
  }
  assert_int_equal(0, pm_test_service_stop(&svc));
  setenv("PIPEMSG_RUNTIME_DIR", pm_test_runtime_dir(), 1);
  pm_test_service_cleanup(&svc);
}

static void test_lifecycle_man_pages(void **state) {
  const char *out, *err;
  const char *daemon_man[] = {PIPEMSGD, "--man", NULL};
  const char *daemon_help[] = {PIPEMSGD, "--help", NULL};
  const char *cli_man[] = {PIPEMSG, "--man", NULL};
  char help[16384];
  (void)state;
  assert_int_equal(0, pm_test_run(daemon_help, &out, &err));
  snprintf(help, sizeof(help), "%s", out);
  assert_int_equal(0, pm_test_run(daemon_man, &out, &err));
  assert_non_null(strstr(out, ".TH PIPEMSGD 8"));
  /* Every option of --help is in the man page (one source, no drift). */
  for (const char *p = strstr(help, "--"); p != NULL; p = strstr(p + 2, "--")) {
    char name[64], roffed[80];
    size_t n = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
    if (n == 0 || n >= sizeof(name))
      continue;
    memcpy(name, p + 2, n);
    name[n] = '\0';
    snprintf(roffed, sizeof(roffed), "\\-\\-");
    for (size_t i = 0, j = strlen(roffed); i < n && j + 2 < sizeof(roffed); i++) {
      if (name[i] == '-')
        roffed[j++] = '\\';
      roffed[j++] = name[i];
      roffed[j] = '\0';
    }
    if (strstr(out, roffed) == NULL) {
      print_error("--%s is in --help but not in the man page\n", name);
      fail();
    }
  }
  assert_int_equal(0, pm_test_run(cli_man, &out, &err));
  assert_non_null(strstr(out, ".TH PIPEMSG 1"));
  assert_non_null(strstr(out, "pipemsg call"));
  assert_non_null(strstr(out, "pipemsg watch"));
}

static void test_lifecycle_systemd_units_verify(void **state) {
  char units[3][200], cmd[1024];
  const char *names[3] = {"pipemsgd.service", "pipemsgd-command.socket", "pipemsgd-event.socket"};
  const char *out, *err;
  int rc;
  (void)state;
  if (access("/usr/bin/systemd-analyze", X_OK) < 0)
    pm_test_skip("no /usr/bin/systemd-analyze");
  /* The units as shipped, pointed at this build's binary (the service's is a template that
   * cmake --install fills in with the install's bin directory). */
  for (int i = 0; i < 3; i++) {
    snprintf(units[i], sizeof(units[i]), "%s/%s", dir, names[i]);
    snprintf(cmd, sizeof(cmd), "sed 's|@PM_FULL_BINDIR@/pipemsgd|%s|' %s/dist/systemd/%s%s > %s",
             PIPEMSGD, PM_SOURCE_DIR, names[i], i == 0 ? ".in" : "", units[i]);
    assert_int_equal(0, system(cmd));
  }
  {
    const char *argv[] = {"/usr/bin/systemd-analyze", "verify", "--man=no", units[0], units[1],
                          units[2], NULL};
    rc = pm_test_run(argv, &out, &err);
  }
  if (rc != 0 || strstr(err, "pipemsgd") != NULL) {
    print_error("systemd-analyze verify: %d\n%s\n", rc, err);
    fail();
  }
}

/* ---- issue 8 hardening ------------------------------------------------------------------- */

/* One request over a raw connection (the command name is not checked on the way); returns
 * once the response came. */
static void raw_call(const char *pipe, const char *request) {
  int fd = pm_test_connect(pipe);
  char *reply;
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, request));
  reply = pm_test_recv_frame(fd, 5000, NULL);
  assert_non_null(reply);
  free(reply);
  close(fd);
}

/* A line's text after its time stamp (the line itself when it has none). */
static const char *after_stamp(const char *line) {
  if (line[0] >= '0' && line[0] <= '9' && strchr(line, ' ') != NULL)
    return strchr(line, ' ') + 1;
  return line;
}

/* Fails if a line of the log (time stamp aside) starts with text. */
static void assert_no_line_starts(const char *log, const char *text) {
  for (const char *line = log; *line != '\0';) {
    const char *end = strchr(line, '\n');
    if (strncmp(after_stamp(line), text, strlen(text)) == 0) {
      print_error("a log line starts with '%s':\n%s\n", text, log);
      fail();
    }
    if (end == NULL)
      break;
    line = end + 1;
  }
}

static int count(const char *haystack, const char *needle) {
  int n = 0;
  for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle))
    n++;
  return n;
}

static void hardening_10_forged_log_line(void **state) {
  pm_test_service svc;
  const char *log;
  (void)state;
  pm_test_service_start(&svc, NULL);
  /* A whole forged line, and forged fields (result=Ok, uid=0) plus a right-to-left override
   * inside the line: a command that is not a name is logged as (invalid), nothing of it. */
  raw_call(svc.command_pipe, "{\"Request\":{\"Command\":\"X\\npipemsgd: warning: refused "
                             "forged\",\"Id\":1}}");
  raw_call(svc.command_pipe, "{\"Request\":{\"Command\":\"StopVpn result=Ok uid=0 "
                             "\\u202egnp.exe\",\"Id\":2}}");
  pm_test_await_log(&svc, "result=BadRequest");
  pm_test_await_log(&svc, "command=(invalid) result=BadRequest");
  log = pm_test_service_log(&svc);
  assert_no_line_starts(log, "pipemsgd: warning: refused forged");
  assert_null(strstr(log, "forged"));
  assert_null(strstr(log, "result=Ok uid=0"));
  assert_null(strstr(log, "\xe2\x80\xae"));
  /* A reason may quote the peer's bytes (jansson names the token it stopped at): a double
   * quote there would end reason="..." early, and what follows would read as fields. */
  raw_call(svc.command_pipe, "{\"Request\":{\"Command\":\"GetVersion\" \"\\\" result=Ok pid=1\"}}");
  pm_test_await_log(&svc, "' result=Ok pid=1");
  assert_null(strstr(pm_test_service_log(&svc), "\" result=Ok pid=1"));
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

static void hardening_10_location_not_logged(void **state) {
  static const char *const args[] = {"--connect-delay-ms", "10", NULL};
  pm_test_service svc;
  (void)state;
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", "secret-place"), NULL));
  pm_test_await_log(&svc, "vpn state=Connected");
  assert_null(strstr(pm_test_service_log(&svc), "secret-place"));
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

/* --print-config with a config file holding text; returns the exit status. */
static int print_config(const char *text, const char **out, const char **err) {
  char conf[128];
  const char *argv[] = {PIPEMSGD, "--config", conf, "--print-config", NULL};
  snprintf(conf, sizeof(conf), "%s/pipemsgd.conf", dir);
  write_file(conf, text);
  return pm_test_run(argv, out, err);
}

static void hardening_14_long_line_rejected(void **state) {
  static char text[3 * 4096];
  const char *out, *err;
  size_t n;
  (void)state;
  /* The old reader took 4095 bytes at a time: the tail of this comment became a line. */
  memset(text, 0, sizeof(text));
  text[0] = '#';
  memset(text + 1, 'x', 4094);
  strcat(text, "socket-mode = 0666\nheartbeat-ms = 700\n");
  assert_int_equal(2, print_config(text, &out, &err));
  assert_non_null(strstr(err, "pipemsgd.conf:1: line longer than 4096 bytes"));
  assert_null(strstr(out, "socket-mode = 0666"));
  /* At the limit (4096 bytes and a CRLF line break): still one line. */
  memset(text, 0, sizeof(text));
  text[0] = '#';
  memset(text + 1, 'x', 4095);
  strcat(text, "\r\nheartbeat-ms = 700\n");
  assert_int_equal(0, print_config(text, &out, &err));
  assert_non_null(strstr(out, "heartbeat-ms = 700\n"));
  assert_non_null(strstr(out, "socket-mode = 0660\n"));
  /* Past it on the last line, without a line break. */
  n = strlen(text);
  memset(text + n, 'y', 4097);
  assert_int_equal(2, print_config(text, &out, &err));
  assert_non_null(strstr(err, "pipemsgd.conf:3: line longer than 4096 bytes"));
}

static void hardening_14_byte_order_mark(void **state) {
  const char *out, *err;
  (void)state;
  assert_int_equal(0, print_config("\xef\xbb\xbfheartbeat-ms = 700\n", &out, &err));
  assert_non_null(strstr(out, "heartbeat-ms = 700\n"));
  assert_int_equal(0, print_config("\xef\xbb\xbf{\"heartbeat-ms\": 800}", &out, &err));
  assert_non_null(strstr(out, "heartbeat-ms = 800\n"));
  /* Only at the start of the file. */
  assert_int_equal(2, print_config("heartbeat-ms = 700\n\xef\xbb\xbf" "ack-timeout-ms = 5\n", &out,
                                   &err));
  assert_non_null(strstr(err, ":2: unknown option"));
}

static void hardening_16_hook_options_need_hook_backend(void **state) {
  const char *out, *err;
  const char *up[] = {PIPEMSGD, "--up-cmd", "false", "--print-config", NULL};
  const char *down[] = {PIPEMSGD, "--backend", "sim", "--down-cmd", "false", NULL};
  const char *sim[] = {PIPEMSGD, "--backend", "hook", "--up-cmd", "true", "--sim-unreachable",
                       "x", NULL};
  (void)state;
  assert_int_equal(2, pm_test_run(up, &out, &err));
  assert_non_null(strstr(err, "--up-cmd needs --backend hook"));
  assert_int_equal(2, pm_test_run(down, &out, &err));
  assert_non_null(strstr(err, "--down-cmd needs --backend hook"));
  assert_int_equal(2, pm_test_run(sim, &out, &err));
  assert_non_null(strstr(err, "--sim-unreachable needs --backend sim"));
  assert_int_equal(2, print_config("hook-timeout-ms = 100\n", &out, &err));
  assert_non_null(strstr(err, "--hook-timeout-ms needs --backend hook"));
  /* Each of the others too: a flag, a name, and the sim backend's delay under hook. */
  assert_int_equal(2, print_config("hook-shell = true\n", &out, &err));
  assert_non_null(strstr(err, "--hook-shell needs --backend hook"));
  assert_int_equal(2, print_config("iface = eth0\n", &out, &err));
  assert_non_null(strstr(err, "--iface needs --backend hook"));
  assert_int_equal(
      2, print_config("backend = hook\nup-cmd = true\nconnect-delay-ms = 10\n", &out, &err));
  assert_non_null(strstr(err, "--connect-delay-ms needs --backend sim"));
  /* At its default (as an earlier --print-config wrote it out) it is no conflict. */
  assert_int_equal(0, print_config("hook-timeout-ms = 30000\nhook-shell = false\n", &out, &err));
}

static void hardening_16_print_config_validates(void **state) {
  const char *out, *err;
  const char *no_up[] = {PIPEMSGD, "--backend", "hook", "--print-config", NULL};
  const char *bad_iface[] = {PIPEMSGD, "--backend", "hook", "--up-cmd", "true", "--iface",
                             "../x", "--print-config", NULL};
  const char *good[] = {PIPEMSGD, "--backend", "hook", "--up-cmd", "true", "--print-config",
                        NULL};
  const char *bad_group[] = {PIPEMSGD, "--socket-group", "pm-no-such-group", "--print-config",
                             NULL};
  char printed[8192], conf[128];
  const char *again[] = {PIPEMSGD, "--config", conf, "--print-config", NULL};
  (void)state;
  assert_int_equal(2, pm_test_run(no_up, &out, &err));
  assert_non_null(strstr(err, "--up-cmd is required"));
  assert_int_equal(2, pm_test_run(bad_iface, &out, &err));
  assert_non_null(strstr(err, "--iface is not a valid interface name"));
  assert_int_equal(2, pm_test_run(bad_group, &out, &err));
  assert_non_null(strstr(err, "--socket-group: unknown group 'pm-no-such-group'"));
  /* What it prints is a config a start accepts: the sim options are commented out. */
  assert_int_equal(0, pm_test_run(good, &out, &err));
  assert_non_null(strstr(out, "# connect-delay-ms = 1500\n"));
  snprintf(printed, sizeof(printed), "%s", out);
  snprintf(conf, sizeof(conf), "%s/printed.conf", dir);
  write_file(conf, printed);
  assert_int_equal(0, pm_test_run(again, &out, &err));
  assert_string_equal(printed, out);
}

static void hardening_16_debug_logs_each_step(void **state) {
  static const char *const args[] = {"-v", "--backend", "hook", "--up-cmd", "true",
                                     "--down-cmd", "true", NULL};
  pm_test_service svc;
  char who[64], step[64];
  pm_msg *ev;
  int64_t id;
  int fd;
  (void)state;
  snprintf(who, sizeof(who), "uid=%lld command=StartVpn", (long long)getuid());
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  pm_test_await_log(&svc, "debug: command received pid=");
  pm_test_await_log(&svc, who);
  pm_test_await_log(&svc, "debug: backend up-cmd started pid=");
  pm_test_await_log(&svc, "debug: backend up-cmd exited pid=");
  pm_test_await_log(&svc, "status=0 signal=0");
  pm_test_await_log(&svc, "debug: backend up done status=0");
  /* The event session's steps: each event written, then confirmed. */
  fd = pm_test_event_attach(svc.event_pipe, NULL, 5000, NULL);
  ev = pm_test_next_event(fd, 5000);
  pm_test_assert_kind(ev, "Event");
  id = pm_test_int_field(ev, "Id");
  pm_msg_free(ev);
  snprintf(step, sizeof(step), " sent id=%lld", (long long)id);
  pm_test_await_log(&svc, step);
  pm_test_confirm(fd, id);
  snprintf(step, sizeof(step), " confirmed id=%lld", (long long)id);
  pm_test_await_log(&svc, step);
  close(fd);
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

static void hardening_16_debug_logs_sim_backend(void **state) {
  static const char *const args[] = {"-v", "--connect-delay-ms", "10", NULL};
  pm_test_service svc;
  (void)state;
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  pm_test_await_log(&svc, "debug: backend sim up started delay_ms=10");
  pm_test_await_log(&svc, "debug: backend up done status=0");
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  pm_test_await_log(&svc, "debug: backend sim down started delay_ms=1");
  pm_test_await_log(&svc, "debug: backend down done status=0");
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static const char *vpn_state(const char *pipe) {
  static char buf[32];
  json_t *data = NULL;
  assert_string_equal("Ok", pm_test_call(pipe, "GetState", NULL, &data));
  snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(data, "State")));
  json_decref(data);
  return buf;
}

/* Waits for the state change in the log (polling GetState would fill the log and hide it). */
static void await_vpn_state(const pm_test_service *svc, const char *want) {
  char line[64];
  snprintf(line, sizeof(line), "vpn state=%s ", want);
  pm_test_await_log(svc, line);
  assert_string_equal(want, vpn_state(svc->command_pipe));
}

/* The hook backend with a down command that leaves a marker file, keeping its state in a data
 * directory; args gets the arguments. */
static void down_marker_args(const char **args, char *down, size_t down_size, char *data,
                             size_t data_size, char *marker, size_t marker_size) {
  snprintf(marker, marker_size, "%s/marker", dir);
  snprintf(down, down_size, "/usr/bin/touch %s", marker);
  snprintf(data, data_size, "%s/data", dir);
  args[0] = "--backend";
  args[1] = "hook";
  args[2] = "--up-cmd";
  args[3] = "true";
  args[4] = "--down-cmd";
  args[5] = down;
  args[6] = "--data-dir";
  args[7] = data;
  args[8] = NULL;
}

static void hardening_17_sigterm_runs_down_cmd(void **state) {
  const char *args[9];
  char down[200], data[128], marker[128];
  pm_test_service svc;
  (void)state;
  down_marker_args(args, down, sizeof(down), data, sizeof(data), marker, sizeof(marker));
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  await_vpn_state(&svc, "Connected");
  assert_false(file_exists(marker));
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_true(file_exists(marker));
  pm_test_await_log(&svc, "stopping: tunnel down");
  /* Down and known to be: the next start has nothing to take down. */
  unlink(marker);
  pm_test_service_restart(&svc, args);
  assert_string_equal("Disconnected", vpn_state(svc.command_pipe));
  assert_false(file_exists(marker));
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

/* An up that failed may have left part of a tunnel up: the stop still runs the down. */
static void hardening_17_failed_up_still_taken_down(void **state) {
  const char *args[9];
  char down[200], data[128], marker[128];
  pm_test_service svc;
  (void)state;
  down_marker_args(args, down, sizeof(down), data, sizeof(data), marker, sizeof(marker));
  args[3] = "false";
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  pm_test_await_log(&svc, "vpn start failed");
  await_vpn_state(&svc, "Disconnected");
  assert_false(file_exists(marker));
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_true(file_exists(marker));
  pm_test_service_cleanup(&svc);
}

static void hardening_17_start_after_kill_runs_down_cmd(void **state) {
  const char *args[9];
  char down[200], data[128], marker[128];
  pm_test_service svc;
  int status;
  uint64_t deadline;
  (void)state;
  down_marker_args(args, down, sizeof(down), data, sizeof(data), marker, sizeof(marker));
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  await_vpn_state(&svc, "Connected");
  kill(svc.pid, SIGKILL);
  assert_int_equal(svc.pid, waitpid(svc.pid, &status, 0));
  svc.pid = 0;
  assert_false(file_exists(marker));
  pm_test_service_restart(&svc, args);
  deadline = pm_test_now_ms() + 10000;
  while (!file_exists(marker)) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
  await_vpn_state(&svc, "Disconnected");
  pm_test_await_log(&svc, "a tunnel was left up when the service last ran");
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

static int still_running(pid_t pid) {
  int status;
  return waitpid(pid, &status, WNOHANG) == 0;
}

static void hardening_18_sighup_reloads(void **state) {
  char conf[128];
  const char *args[] = {"--config", conf, NULL};
  pm_test_service svc;
  (void)state;
  snprintf(conf, sizeof(conf), "%s/pipemsgd.conf", dir);
  write_file(conf, "log-level = info\nsocket-mode = 0660\n");
  pm_test_service_start(&svc, args);

  kill(svc.pid, SIGHUP);
  pm_test_await_log(&svc, "SIGHUP: configuration reloaded, nothing changed");
  assert_true(still_running(svc.pid));
  assert_true(file_exists(svc.command_pipe));
  assert_true(file_exists(svc.event_pipe));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
  assert_null(strstr(pm_test_service_log(&svc), "debug:"));

  write_file(conf, "log-level = debug\nsocket-mode = 0600\nmax-observers = 2\n"
                   "observer-max-unsent = 65536\n");
  kill(svc.pid, SIGHUP);
  pm_test_await_log(&svc, "info: SIGHUP: log-level changed info -> debug");
  pm_test_await_log(&svc, "warning: SIGHUP: socket-mode needs a restart, not changed");
  /* The event server takes its observer limits at start only. */
  pm_test_await_log(&svc, "warning: SIGHUP: max-observers needs a restart, not changed");
  pm_test_await_log(&svc, "warning: SIGHUP: observer-max-unsent needs a restart, not changed");
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
  pm_test_await_log(&svc, "debug: command received");

  /* A file that does not load: the running configuration stays (debug included). */
  write_file(conf, "log-level = loud\n");
  kill(svc.pid, SIGHUP);
  pm_test_await_log(&svc, "error: SIGHUP: configuration not reloaded");
  assert_non_null(strstr(pm_test_service_log(&svc), ":1: --log-level: unknown value 'loud'"));
  assert_true(still_running(svc.pid));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, NULL));
  pm_test_await_log(&svc, "command=GetState");
  assert_true(strstr(pm_test_service_log(&svc), "debug: command received pid=") <
              strstr(strstr(pm_test_service_log(&svc), "not reloaded"), "command=GetState"));

  /* A list option is reloaded whole, from none and back to none; a new traffic interval
   * while disconnected waits for the next connection. */
  write_file(conf, "log-level = debug\nsocket-mode = 0600\nallow-uid = 0\n"
                   "traffic-interval-ms = 500\n");
  kill(svc.pid, SIGHUP);
  pm_test_await_log(&svc, "info: SIGHUP: allow-uid changed (none) -> 0\n");
  pm_test_await_log(&svc, "info: SIGHUP: traffic-interval-ms changed 1000 -> 500\n");
  write_file(conf, "log-level = debug\nsocket-mode = 0600\ntraffic-interval-ms = 500\n");
  kill(svc.pid, SIGHUP);
  pm_test_await_log(&svc, "info: SIGHUP: allow-uid changed 0 -> (none)\n");
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

/* Every pipemsgd line matches re. */
static void assert_lines_match(const char *log, const char *pattern) {
  regex_t re;
  char line[4096];
  int lines = 0;
  assert_int_equal(0, regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB));
  for (const char *p = log; *p != '\0';) {
    size_t n = strcspn(p, "\n");
    snprintf(line, sizeof(line), "%.*s", (int)n, p);
    if (strstr(line, "pipemsgd: ") != NULL) {
      if (regexec(&re, line, 0, NULL, 0) != 0) {
        print_error("log line does not match %s:\n%s\n", pattern, line);
        fail();
      }
      lines++;
    }
    p += n + (p[n] == '\n');
  }
  regfree(&re);
  assert_true(lines > 0);
}

#define STAMP "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
#define LEVEL "pipemsgd: (error|warning|info|debug): "

static void hardening_19_time_stamps(void **state) {
  pm_test_service svc;
  (void)state;
  pm_test_service_start(&svc, NULL);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
  pm_test_await_log(&svc, "command=GetVersion");
  assert_lines_match(pm_test_service_log(&svc), "^" STAMP LEVEL);
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

static void hardening_19_no_time_stamps_for_the_journal(void **state) {
  pm_test_service svc;
  struct stat st;
  char stream[64];
  (void)state;
  /* As pm_test_service_start does, but the log file exists first, for its inode. */
  memset(&svc, 0, sizeof(svc));
  pm_test_dir_new(svc.dir, sizeof(svc.dir));
  snprintf(svc.command_pipe, sizeof(svc.command_pipe), "%s/cmd", svc.dir);
  snprintf(svc.event_pipe, sizeof(svc.event_pipe), "%s/evt", svc.dir);
  snprintf(svc.log_path, sizeof(svc.log_path), "%s/log", svc.dir);
  write_file(svc.log_path, "");
  assert_int_equal(0, stat(svc.log_path, &st));
  snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino);
  setenv("JOURNAL_STREAM", stream, 1);
  pm_test_service_restart(&svc, NULL);
  unsetenv("JOURNAL_STREAM");
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
  pm_test_await_log(&svc, "command=GetVersion");
  assert_lines_match(pm_test_service_log(&svc), "^" LEVEL);
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

static void hardening_19_client_close_is_info(void **state) {
  pm_test_service svc;
  int fd;
  (void)state;
  pm_test_service_start(&svc, NULL);
  fd = pm_test_event_attach(svc.event_pipe, NULL, 5000, NULL);
  assert_true(fd >= 0);
  pm_test_await_log(&svc, "attached");
  close(fd);
  pm_test_await_log(&svc, "info: event pid=");
  pm_test_await_log(&svc, "detached reason=\"client closed\"");
  assert_null(strstr(pm_test_service_log(&svc), "warning: event pid="));
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

static void hardening_19_one_refusal_one_line(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", NULL};
  pm_test_service svc;
  const char *err;
  const char *as_nobody[] = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                             "--clear-groups", PIPEMSG, "call", "-c", NULL, "GetVersion", NULL};
  (void)state;
  if (geteuid() != 0)
    pm_test_skip("connecting as another user needs root");
  pm_test_service_start(&svc, args);
  assert_int_equal(0, chmod(svc.dir, 0755));
  as_nobody[7] = svc.command_pipe;
  assert_int_equal(6, pm_test_run(as_nobody, NULL, &err));
  pm_test_await_log(&svc, "refused pid=");
  /* One client at a time, each logged when its connection ends: once this call is logged, the
   * refused one has been too. */
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
  pm_test_await_log(&svc, "command=GetVersion result=Ok");
  assert_int_equal(1, count(pm_test_service_log(&svc), "uid=65534"));
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_lifecycle_config_file_and_command_line, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_printed_config_is_a_config, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_names_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_socket_activation, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_08_stop_leaves_foreign_file, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_11_activated_fds_not_inherited, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_12_names_hidden, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_man_pages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_systemd_units_verify, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_10_forged_log_line, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_10_location_not_logged, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_14_long_line_rejected, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_14_byte_order_mark, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_16_hook_options_need_hook_backend, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_16_print_config_validates, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_16_debug_logs_each_step, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_16_debug_logs_sim_backend, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_17_sigterm_runs_down_cmd, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_17_failed_up_still_taken_down, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_17_start_after_kill_runs_down_cmd, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_18_sighup_reloads, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_19_time_stamps, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_19_no_time_stamps_for_the_journal, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_19_client_close_is_info, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_19_one_refusal_one_line, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
