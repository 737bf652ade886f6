/* pipemsgd as a system service: config file, --print-config, names file, socket activation,
 * man page, and the data directory. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
  unsetenv("PIPEMSG_RUNTIME_DIR");
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
    skip();
  /* The units as shipped, pointed at this build's binary. */
  for (int i = 0; i < 3; i++) {
    snprintf(units[i], sizeof(units[i]), "%s/%s", dir, names[i]);
    snprintf(cmd, sizeof(cmd), "sed 's|/usr/local/bin/pipemsgd|%s|' %s/dist/systemd/%s > %s",
             PIPEMSGD, PM_SOURCE_DIR, names[i], units[i]);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_lifecycle_config_file_and_command_line, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_printed_config_is_a_config, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_names_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_socket_activation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_man_pages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lifecycle_systemd_units_verify, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
