/* pipemsgd when what it depends on fails: a data directory it cannot use, settings it cannot
 * save, an event store that cannot keep events, hook commands that fail or hang, and a
 * reload that changes the hook's time limit and the traffic period. Each checks what the
 * client is told (the Response, the events) and that the service goes on. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "testutil.h"

#define PIPEMSGD PM_BIN_DIR "/pipemsgd"
/* Generous bound for anything that should happen at once on a loaded machine. */
#define SLACK_MS 5000

static pm_test_service svc;
static char data_dir[160];

static int setup(void **state) {
  (void)state;
  memset(&svc, 0, sizeof(svc));
  pm_test_service_start(&svc, NULL); /* for its directory and pipes; restarted by each test */
  assert_int_equal(0, pm_test_service_stop(&svc));
  snprintf(data_dir, sizeof(data_dir), "%s/data", svc.dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unsetenv("PIPEMSG_DEBUG");
  setenv("PIPEMSG_RUNTIME_DIR", pm_test_runtime_dir(), 1);
  pm_test_service_cleanup(&svc);
  return 0;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* One command; returns its Result, and its Message (or "") in message. */
static const char *call(const char *command, json_t *params, const char **message) {
  static char result[64], text[PM_REASON_MAX + 64];
  pm_msg *req = NULL, *resp = NULL;
  const char *r = NULL, *m = "";
  assert_pm(0, pm_request_new(command, 1, params, &req));
  assert_pm(0, pm_command_client_call(svc.command_pipe, NULL, req, PM_ENC_JSON, &resp));
  pm_msg_free(req);
  assert_pm(0, pm_msg_get_string(resp, "Result", &r));
  if (pm_msg_get_string(resp, "Message", &m) < 0)
    m = "";
  snprintf(result, sizeof(result), "%s", r);
  snprintf(text, sizeof(text), "%s", m);
  pm_msg_free(resp);
  if (message != NULL)
    *message = text;
  return result;
}

static json_t *state_data(void) {
  json_t *data = NULL;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  return data;
}

static void await_state(const char *want) {
  uint64_t deadline = pm_test_now_ms() + SLACK_MS;
  for (;;) {
    json_t *data = state_data();
    int done = strcmp(json_string_value(json_object_get(data, "State")), want) == 0;
    json_decref(data);
    if (done)
      return;
    assert_true(pm_test_now_ms() < deadline);
  }
}

/* An event's Time (RFC 3339 UTC with milliseconds) in milliseconds since the epoch. */
static int64_t time_ms(const pm_msg *m) {
  const char *t = NULL;
  struct tm tm;
  int ms = 0;
  memset(&tm, 0, sizeof(tm));
  assert_pm(0, pm_msg_get_string(m, "Time", &t));
  assert_int_equal(7, sscanf(t, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                             &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms));
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000 + ms;
}

/* The next event of type (confirming it and every event before it); its Data, owned, and its
 * Time in *when (may be NULL). */
static json_t *next_event_at(int fd, const char *type, int64_t *when) {
  for (;;) {
    pm_msg *m = pm_test_next_event(fd, SLACK_MS);
    const char *t = NULL;
    json_t *data;
    pm_test_assert_kind(m, "Event");
    pm_test_confirm(fd, pm_test_int_field(m, "Id"));
    assert_pm(0, pm_msg_get_string(m, "Type", &t));
    if (strcmp(t, type) != 0) {
      pm_msg_free(m);
      continue;
    }
    if (when != NULL)
      *when = time_ms(m);
    data = json_object_get(pm_msg_fields(m), "Data");
    json_incref(data);
    pm_msg_free(m);
    return data;
  }
}

static json_t *next_event_of(int fd, const char *type) { return next_event_at(fd, type, NULL); }

/* pipemsgd on the test's pipes with args; its exit status, and its stderr in err. */
static int run_pipemsgd(const char *const *args, const char **err) {
  const char *argv[16] = {PIPEMSGD, "-c", svc.command_pipe, "-e", svc.event_pipe};
  int n = 5;
  for (; *args != NULL; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  return pm_test_run(argv, NULL, err);
}

/* What pipemsgd cannot use in its data directory stops it at start, with a reason, rather than
 * run without its durable state. */
static void test_service_faults_data_dir_unusable(void **state) {
  char path[200];
  const char *args[] = {"--data-dir", path, NULL};
  const char *err;
  (void)state;
  /* The directory cannot be made: its parent is missing (pipemsgd makes one level only). */
  snprintf(path, sizeof(path), "%s/missing/data", svc.dir);
  assert_int_equal(1, run_pipemsgd(args, &err));
  assert_non_null(strstr(err, "error: cannot create data dir"));
  /* A file where the directory should be. */
  snprintf(path, sizeof(path), "%s", data_dir);
  write_file(data_dir, "not a directory\n");
  assert_int_equal(1, run_pipemsgd(args, &err));
  assert_non_null(strstr(err, "error: cannot use data dir"));
  assert_non_null(strstr(err, "not a directory"));
  assert_int_equal(0, unlink(data_dir));
  args[1] = data_dir;

  /* The event store is not a database. */
  assert_int_equal(0, mkdir(data_dir, 0700));
  snprintf(path, sizeof(path), "%s/events.db", data_dir);
  write_file(path, "these are not the pages of a database\n");
  assert_int_equal(1, run_pipemsgd(args, &err));
  assert_non_null(strstr(err, "error: cannot open event store"));
  assert_int_equal(0, unlink(path));

  /* The settings are not JSON. */
  snprintf(path, sizeof(path), "%s/settings.json", data_dir);
  write_file(path, "{\"KillSwitch\": tru");
  assert_int_equal(1, run_pipemsgd(args, &err));
  assert_non_null(strstr(err, "error: cannot read settings in"));
  assert_int_equal(0, unlink(path));

  /* Settings of the wrong types are ignored one by one: the defaults stay. */
  write_file(path, "{\"KillSwitch\": \"yes\", \"ReconnectionEnabled\": 0, "
                   "\"BypassDomains\": [\"ok.example\", \"not a domain\"], \"TunnelUp\": null}");
  pm_test_service_restart(&svc, args);
  {
    json_t *data = state_data();
    assert_true(json_is_false(json_object_get(data, "KillSwitch")));
    assert_true(json_is_true(json_object_get(data, "ReconnectionEnabled")));
    assert_int_equal(0, json_array_size(json_object_get(data, "BypassDomains")));
    json_decref(data);
  }
  assert_int_equal(0, pm_test_service_stop(&svc));
}

/* One pipemsgd per data directory: a second one, on pipes of its own, would hand out the same
 * event ids and overwrite the first one's events in the store. It stops at start with the
 * reason; the lock goes with the first one's process (a restart takes the directory again). */
static void test_service_faults_data_dir_in_use(void **state) {
  char cmd[200], evt[200];
  const char *args[] = {"--data-dir", data_dir, NULL};
  const char *argv[] = {PIPEMSGD, "-c", cmd, "-e", evt, "--data-dir", data_dir, NULL};
  const char *err;
  (void)state;
  snprintf(cmd, sizeof(cmd), "%s/cmd-second", svc.dir);
  snprintf(evt, sizeof(evt), "%s/evt-second", svc.dir);
  pm_test_service_restart(&svc, args);
  assert_int_equal(1, pm_test_run(argv, NULL, &err));
  assert_non_null(strstr(err, "error: data dir '"));
  assert_non_null(strstr(err, "' is in use by another pipemsgd"));
  /* The first one still serves. */
  json_decref(state_data());
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, args);
  json_decref(state_data());
  assert_int_equal(0, pm_test_service_stop(&svc));
}

/* A setting the data directory cannot keep is answered Error and left as it was, so Ok always
 * means the setting survives a restart. Here settings.json is made a directory, which the
 * atomic rename cannot replace. */
static void test_service_faults_settings_not_saved(void **state) {
  const char *args[] = {"--data-dir", data_dir, NULL};
  char path[200];
  const char *msg;
  json_t *data;
  (void)state;
  pm_test_service_restart(&svc, args);
  snprintf(path, sizeof(path), "%s/settings.json", data_dir);
  assert_int_equal(0, mkdir(path, 0700));

  assert_string_equal("Error", call("EnableKillSwitch", NULL, &msg));
  assert_string_equal("the setting could not be saved in the data directory", msg);
  assert_string_equal("Error",
                      call("SetReconnectionEnabled", json_pack("{s:b}", "Enabled", 0), NULL));
  assert_string_equal("Error", call("ConfigureBypassDomains",
                                    json_pack("{s:[s]}", "Domains", "new.example"), NULL));
  assert_string_equal("Error", call("StartVpn", json_pack("{s:b}", "EnableKillSwitch", 1), &msg));
  assert_string_equal("the setting could not be saved in the data directory", msg);
  data = state_data();
  assert_string_equal("Disconnected", json_string_value(json_object_get(data, "State")));
  assert_true(json_is_false(json_object_get(data, "KillSwitch")));
  assert_true(json_is_true(json_object_get(data, "ReconnectionEnabled")));
  assert_int_equal(0, json_array_size(json_object_get(data, "BypassDomains")));
  json_decref(data);
  pm_test_await_log(&svc, "error: cannot save settings in");

  /* Once the directory can take them again, settings are set and kept. */
  assert_int_equal(0, rmdir(path));
  assert_string_equal("Ok", call("EnableKillSwitch", NULL, NULL));
  assert_string_equal("Ok", call("ConfigureBypassDomains",
                                 json_pack("{s:[s]}", "Domains", "new.example"), NULL));
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, args);
  data = state_data();
  assert_true(json_is_true(json_object_get(data, "KillSwitch")));
  assert_string_equal("new.example",
                      json_string_value(json_array_get(json_object_get(data, "BypassDomains"), 0)));
  json_decref(data);
  assert_int_equal(0, pm_test_service_stop(&svc));
}

/* An event store that refuses every event row (a trigger in the database file aborts each
 * insert): EmitEvent answers Error naming the event that failed; the service's own
 * StateChanged cannot be published either, which is logged, while the VPN command itself
 * goes on; transient events, never stored, still go out. */
static void test_service_faults_store_cannot_keep_events(void **state) {
  const char *args[] = {"--test-commands", "--connect-delay-ms", "100", "--data-dir", data_dir,
                        NULL};
  char path[200];
  const char *msg;
  sqlite3 *db = NULL;
  json_t *data;
  int fd;
  (void)state;
  pm_test_service_restart(&svc, args);
  assert_int_equal(0, pm_test_service_stop(&svc));
  snprintf(path, sizeof(path), "%s/events.db", data_dir);
  assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
  assert_int_equal(SQLITE_OK,
                   sqlite3_exec(db,
                                "CREATE TRIGGER full BEFORE INSERT ON events BEGIN "
                                "SELECT RAISE(ABORT, 'no room'); END;",
                                NULL, NULL, NULL));
  assert_int_equal(SQLITE_OK, sqlite3_close(db));
  /* With $PIPEMSG_DEBUG the library says why on stderr (the log here). */
  setenv("PIPEMSG_DEBUG", "1", 1);
  pm_test_service_restart(&svc, args);
  unsetenv("PIPEMSG_DEBUG");
  fd = pm_test_event_attach(svc.event_pipe, NULL, SLACK_MS, NULL);

  assert_string_equal("Error", call("EmitEvent", json_pack("{s:s, s:i}", "Type", "Saved",
                                                           "Count", 3),
                                    &msg));
  assert_string_equal("event 1 of 3 not published: the event store cannot keep it", msg);
  pm_test_await_log(&svc, "error: cannot publish EmitEvent's event");
  pm_test_await_log(&svc, "\npipemsg: event store: cannot write an event: no room\n");

  assert_string_equal("Ok", call("StartVpn", NULL, NULL));
  await_state("Connected");
  pm_test_await_log(&svc, "error: cannot publish StateChanged: the event store cannot keep it");
  /* Transient: never written, so delivered. */
  data = next_event_of(fd, "TrafficChanged");
  assert_non_null(json_object_get(data, "BytesSent"));
  json_decref(data);
  assert_true(pm_test_stat(svc.command_pipe, "Events", "StoreErrors") >= 2);
  close(fd);
  assert_int_equal(0, pm_test_service_stop(&svc));
}

/* An up command that hangs is killed at the hook's time limit: StartVpn had answered Ok
 * (connecting had begun), and the failure reaches the client as StateChanged Disconnected with
 * the Error, then ErrorOccured with the same Message; GetState keeps it as LastError. */
static void test_service_faults_hook_up_times_out(void **state) {
  const char *args[] = {"--backend", "hook", "--up-cmd", "/bin/sleep 30", "--hook-timeout-ms", "300",
                        NULL};
  const char *want = "up-cmd timed out after 300 ms";
  json_t *data;
  int fd;
  (void)state;
  pm_test_service_restart(&svc, args);
  fd = pm_test_event_attach(svc.event_pipe, NULL, SLACK_MS, NULL);
  assert_string_equal("Ok", call("StartVpn", json_pack("{s:s}", "Location", "de"), NULL));
  data = next_event_of(fd, "StateChanged");
  assert_string_equal("Connecting", json_string_value(json_object_get(data, "State")));
  json_decref(data);
  data = next_event_of(fd, "StateChanged");
  assert_string_equal("Disconnected", json_string_value(json_object_get(data, "State")));
  assert_string_equal(want, json_string_value(json_object_get(data, "Error")));
  json_decref(data);
  data = next_event_of(fd, "ErrorOccured");
  assert_string_equal("Error", json_string_value(json_object_get(data, "Result")));
  assert_string_equal(want, json_string_value(json_object_get(data, "Message")));
  json_decref(data);
  data = state_data();
  assert_string_equal(want, json_string_value(json_object_get(data, "LastError")));
  json_decref(data);
  close(fd);
  assert_int_equal(0, pm_test_service_stop(&svc));
}

/* A down command that fails while the service stops is logged with its reason, and the tunnel
 * is still taken for up: the next start runs the down again. */
static void test_service_faults_down_fails_at_stop(void **state) {
  char marker[200], down[300];
  const char *args[] = {"--backend", "hook", "--hook-shell", "--up-cmd", "true", "--down-cmd",
                        down, "--data-dir", data_dir, NULL};
  (void)state;
  snprintf(marker, sizeof(marker), "%s/down-ran", svc.dir);
  snprintf(down, sizeof(down), "echo ran >> %s; echo route busy >&2; exit 1", marker);
  pm_test_service_restart(&svc, args);
  assert_string_equal("Ok", call("StartVpn", NULL, NULL));
  await_state("Connected");
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_non_null(strstr(pm_test_service_log(&svc),
                         "warning: stopping: tunnel down failed: down-cmd exited with status 1: "
                         "route busy"));
  assert_int_equal(0, access(marker, F_OK));
  assert_int_equal(0, unlink(marker));
  pm_test_service_restart(&svc, args);
  pm_test_await_log(&svc, "a tunnel was left up when the service last ran");
  await_state("Disconnected");
  assert_int_equal(0, access(marker, F_OK));
  /* Still taken for up (the down failed again): a new up keeps it so, and works. */
  assert_string_equal("Ok", call("StartVpn", NULL, NULL));
  await_state("Connected");
  assert_int_equal(0, pm_test_service_stop(&svc));
}

/* SIGTERM while a down command runs (StopVpn) waits for it rather than starting another: the
 * service exits once it has finished, having run it once. The down command waits on a FIFO
 * the test writes to only after the service got SIGTERM. */
static void test_service_faults_stop_while_disconnecting(void **state) {
  char marker[200], fifo[200], down[500];
  const char *args[] = {"--backend", "hook", "--hook-shell", "--up-cmd", "true", "--down-cmd",
                        down, NULL};
  const char *log;
  FILE *f;
  char text[64] = "";
  int status, fd;
  (void)state;
  snprintf(marker, sizeof(marker), "%s/down-ran", svc.dir);
  snprintf(fifo, sizeof(fifo), "%s/go", svc.dir);
  assert_int_equal(0, mkfifo(fifo, 0600));
  snprintf(down, sizeof(down), "read line < %s; echo ran >> %s", fifo, marker);
  pm_test_service_restart(&svc, args);
  assert_string_equal("Ok", call("StartVpn", NULL, NULL));
  await_state("Connected");
  assert_string_equal("Ok", call("StopVpn", NULL, NULL));
  kill(svc.pid, SIGTERM);
  pm_test_await_log(&svc, "info: stopping signal=15");
  /* The down command opens the FIFO once it runs (ENXIO until then). */
  for (uint64_t deadline = pm_test_now_ms() + SLACK_MS;
       (fd = open(fifo, O_WRONLY | O_NONBLOCK)) < 0;) {
    assert_int_equal(ENXIO, errno);
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
  assert_int_equal(3, write(fd, "go\n", 3));
  close(fd);
  assert_int_equal(svc.pid, waitpid(svc.pid, &status, 0));
  svc.pid = 0;
  assert_true(WIFEXITED(status));
  assert_int_equal(0, WEXITSTATUS(status));
  log = pm_test_service_log(&svc);
  assert_non_null(strstr(log, "info: stopping: tunnel down"));
  assert_null(strstr(log, "taking the tunnel down first"));
  f = fopen(marker, "r");
  assert_non_null(f);
  assert_int_equal(4, fread(text, 1, sizeof(text) - 1, f));
  fclose(f);
  assert_string_equal("ran\n", text);
}

/* What a failing hook wrote to stderr ends its Message, cut at whole characters at both ends,
 * so the Message is valid UTF-8 and fits the protocol's text. Here the ring keeping the last
 * 512 bytes of stderr starts inside a character (600 bytes of 'é', then one 'x'), and so does
 * the cut to the Message's room (the 2-digit status makes it odd). */
static void test_service_faults_hook_stderr_tail_whole_characters(void **state) {
  const char *args[] = {"--backend", "hook", "--hook-shell", "--up-cmd",
                        "i=0; while [ $i -lt 300 ]; do printf '\\303\\251' >&2; i=$((i+1)); "
                        "done; printf x >&2; exit 10",
                        NULL};
  const char *head = "up-cmd exited with status 10: ...";
  const char *last, *p;
  json_t *data;
  (void)state;
  pm_test_service_restart(&svc, args);
  assert_string_equal("Ok", call("StartVpn", NULL, NULL));
  await_state("Disconnected");
  data = state_data();
  last = json_string_value(json_object_get(data, "LastError"));
  assert_non_null(last);
  assert_int_equal(0, strncmp(last, head, strlen(head)));
  assert_true(strlen(last) < 400);
  assert_true(strlen(last) > 300);
  for (p = last + strlen(head); p[1] != '\0'; p += 2)
    assert_int_equal(0, strncmp(p, "\303\251", 2));
  assert_string_equal("x", p);
  json_decref(data);
  assert_int_equal(0, pm_test_service_stop(&svc));
}

/* --names-file: a names file that cannot be written, or a runtime directory that cannot be
 * made, stops pipemsgd at start; a runtime directory others can list is used, with a
 * warning that the random names are not hidden. */
static void test_service_faults_names_file(void **state) {
  char names[200], rt[200];
  const char *args[] = {"--names-file", names, NULL};
  const char *err;
  (void)state;
  snprintf(names, sizeof(names), "%s/missing/names", svc.dir);
  assert_int_equal(1, run_pipemsgd(args, &err));
  assert_non_null(strstr(err, "error: cannot write names file"));
  /* Written, but it cannot replace what is there (a directory): nothing is left behind. */
  snprintf(names, sizeof(names), "%s/names.d", svc.dir);
  assert_int_equal(0, mkdir(names, 0700));
  assert_int_equal(1, run_pipemsgd(args, &err));
  assert_non_null(strstr(err, "error: cannot write names file"));
  assert_null(strstr(err, ".tmp"));
  {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls '%s' | grep tmp)\"", svc.dir);
    assert_int_equal(0, system(cmd));
  }
  assert_int_equal(0, rmdir(names));

  snprintf(names, sizeof(names), "%s/names", svc.dir);
  snprintf(rt, sizeof(rt), "%s/missing/rt", svc.dir);
  setenv("PIPEMSG_RUNTIME_DIR", rt, 1);
  assert_int_equal(1, run_pipemsgd(args, &err));
  assert_non_null(strstr(err, "error: cannot create runtime directory"));

  snprintf(rt, sizeof(rt), "%s/rt", svc.dir);
  assert_int_equal(0, mkdir(rt, 0700));
  assert_int_equal(0, chmod(rt, 0755));
  setenv("PIPEMSG_RUNTIME_DIR", rt, 1);
  pm_test_service_restart(&svc, args);
  setenv("PIPEMSG_RUNTIME_DIR", pm_test_runtime_dir(), 1);
  pm_test_await_log(&svc, "lets others list the random pipe names; make it 0711");
  assert_int_equal(0, access(names, R_OK));
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_int_equal(-1, access(names, F_OK));
}

/* Socket activation that passes something other than a socket stops pipemsgd at start. */
static void test_service_faults_listen_fds_not_a_socket(void **state) {
  char log[200];
  const char *argv[] = {PIPEMSGD, "-c", svc.command_pipe, "-e", svc.event_pipe, NULL};
  int status, p[2];
  pid_t pid;
  (void)state;
  snprintf(log, sizeof(log), "%s/activation.log", svc.dir);
  assert_int_equal(0, pipe(p));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char self[16];
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 2) < 0 || dup2(p[0], 3) < 0)
      _exit(126);
    snprintf(self, sizeof(self), "%ld", (long)getpid());
    setenv("LISTEN_PID", self, 1);
    setenv("LISTEN_FDS", "1", 1);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(p[0]);
  close(p[1]);
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status));
  assert_int_equal(1, WEXITSTATUS(status));
  {
    char text[1024] = "";
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(text, "error: LISTEN_FDS passes something other than sockets"));
  }
}

/* SIGHUP applies a new hook time limit to the next command, a new traffic period at once (the
 * tunnel being up), and new allowed users. */
static void test_service_faults_reload_applies_hook_and_traffic(void **state) {
  char conf[200], text[600];
  const char *args[] = {"--config", conf, NULL};
  json_t *data;
  int64_t first = 0, third = 0;
  int fd;
  (void)state;
  snprintf(conf, sizeof(conf), "%s/pipemsgd.conf", svc.dir);
  snprintf(text, sizeof(text),
           "backend = hook\nhook-shell = true\n"
           "up-cmd = test \"$PIPEMSG_LOCATION\" = slow && sleep 30; true\n"
           "hook-timeout-ms = 30000\ntraffic-interval-ms = 60000\n");
  write_file(conf, text);
  pm_test_service_restart(&svc, args);
  fd = pm_test_event_attach(svc.event_pipe, NULL, SLACK_MS, NULL);

  /* Connected with a traffic period of a minute: no TrafficChanged would come in this test.
   * The new period of 100 ms starts at once. */
  assert_string_equal("Ok", call("StartVpn", NULL, NULL));
  await_state("Connected");
  write_file(conf, "backend = hook\nhook-shell = true\n"
                   "up-cmd = test \"$PIPEMSG_LOCATION\" = slow && sleep 30; true\n"
                   "hook-timeout-ms = 300\ntraffic-interval-ms = 100\nallow-uid = 4242\n");
  kill(svc.pid, SIGHUP);
  pm_test_await_log(&svc, "info: SIGHUP: hook-timeout-ms changed 30000 -> 300");
  pm_test_await_log(&svc, "info: SIGHUP: traffic-interval-ms changed 60000 -> 100");
  pm_test_await_log(&svc, "info: SIGHUP: allow-uid changed (none) -> 4242");
  json_decref(next_event_at(fd, "TrafficChanged", &first));
  json_decref(next_event_of(fd, "TrafficChanged"));
  json_decref(next_event_at(fd, "TrafficChanged", &third));
  /* Published two periods of 100 ms apart by their Time, give or take the time between the
   * loop's clock reading and the publish (a repeating timer is due a period after the loop
   * time it last ran at, but Time is read later, by up to tens of ms under valgrind on a
   * loaded machine, where it once read under 195), at most 2 s late (an event a slow client
   * left queued is replaced by the next, adding a period): the old period would be 60 s, one
   * of 50 ms would be 100 ms. */
  assert_true(third - first >= 150);
  assert_true(third - first <= 2200);

  /* The next up command gets the new limit of 300 ms, not 30 s. */
  assert_string_equal("Ok", call("StopVpn", NULL, NULL));
  await_state("Disconnected");
  assert_string_equal("Ok", call("StartVpn", json_pack("{s:s}", "Location", "slow"), NULL));
  data = next_event_of(fd, "ErrorOccured");
  assert_string_equal("up-cmd timed out after 300 ms",
                      json_string_value(json_object_get(data, "Message")));
  json_decref(data);
  close(fd);
  assert_int_equal(0, pm_test_service_stop(&svc));
}

/* Parameters the service would have to put into events, logs or hook environments are
 * refused (BadRequest, naming the parameter) before anything happens: the Location's and the
 * EmitEvent Type's length and characters, a Data that is not an object. */
static void test_service_faults_refused_params(void **state) {
  const char *args[] = {"--test-commands", NULL};
  char long_name[80];
  const char *msg;
  (void)state;
  memset(long_name, 'a', 65);
  long_name[65] = '\0';
  pm_test_service_restart(&svc, args);
  {
    const char *bad[] = {"", long_name, "de fr", "de/fr", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
      assert_string_equal("BadRequest",
                          call("StartVpn", json_pack("{s:s}", "Location", bad[i]), &msg));
      assert_non_null(strstr(msg, "Location must be"));
    }
  }
  long_name[64] = '\0';
  assert_string_equal("Ok", call("StartVpn", json_pack("{s:s}", "Location", long_name), NULL));
  {
    const char *bad[] = {"", "9Lives", "_x", "A-B", "A.B", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
      assert_string_equal("BadRequest",
                          call("EmitEvent", json_pack("{s:s}", "Type", bad[i]), &msg));
      assert_non_null(strstr(msg, "Type must be"));
    }
  }
  long_name[64] = 'a';
  assert_string_equal("BadRequest",
                      call("EmitEvent", json_pack("{s:s}", "Type", long_name), NULL));
  long_name[64] = '\0';
  assert_string_equal("Ok", call("EmitEvent", json_pack("{s:s}", "Type", long_name), NULL));
  assert_string_equal("BadRequest", call("EmitEvent", json_pack("{s:s, s:[i]}", "Type", "Ok1",
                                                                "Data", 1),
                                         &msg));
  /* The contract's reason says what came (issue 10). */
  assert_string_equal("Data must be an object (got a list)", msg);
  assert_int_equal(0, pm_test_service_stop(&svc));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_service_faults_data_dir_unusable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_data_dir_in_use, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_settings_not_saved, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_store_cannot_keep_events, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_hook_up_times_out, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_down_fails_at_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_reload_applies_hook_and_traffic, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_stop_while_disconnecting, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_hook_stderr_tail_whole_characters,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_names_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_listen_fds_not_a_socket, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_service_faults_refused_params, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
