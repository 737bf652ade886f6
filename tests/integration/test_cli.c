/* The pipemsg and pipemsgd programs as a user runs them. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define PIPEMSG PM_BIN_DIR "/pipemsg"
#define PIPEMSGD PM_BIN_DIR "/pipemsgd"

static pm_test_service svc;

static int setup(void **state) {
  static const char *const args[] = {"--connect-delay-ms", "100", "--test-commands",
                                     "--sim-unreachable", "nowhere", NULL};
  (void)state;
  pm_test_service_start(&svc, args);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pm_test_service_cleanup(&svc);
  return 0;
}

static void test_cli_call_prints_data(void **state) {
  const char *out, *err;
  const char *get_state[] = {PIPEMSG, "call", "-c", svc.command_pipe, "GetState", NULL};
  const char *xml[] = {PIPEMSG, "call", "--xml", "-v", "-c", svc.command_pipe, "GetVersion", NULL};
  (void)state;
  assert_int_equal(0, pm_test_run(get_state, &out, &err));
  assert_non_null(strstr(out, "\"State\": \"Disconnected\""));
  assert_int_equal(0, pm_test_run(xml, &out, &err));
  assert_non_null(strstr(out, "\"Version\""));
  assert_non_null(strstr(err, "> <Request>"));
  assert_non_null(strstr(err, "< <Response>"));
}

static void test_cli_call_params_and_results(void **state) {
  const char *out, *err;
  const char *start[] = {PIPEMSG, "call", "-c", svc.command_pipe, "--id", "4", "StartVpn",
                         "Location=de", "EnableKillSwitch=true", NULL};
  const char *unknown[] = {PIPEMSG, "call", "-c", svc.command_pipe, "Frobnicate", NULL};
  const char *raw[] = {PIPEMSG, "call", "-c", svc.command_pipe, "ConfigureBypassDomains",
                       "Domains:=[\"a.example\"]", NULL};
  /* An unknown parameter is refused (issue 10), with the closest known one. */
  const char *misspelt[] = {PIPEMSG, "call", "-c", svc.command_pipe, "GetState", "Filter:=[1,2]",
                            NULL};
  (void)state;
  assert_int_equal(0, pm_test_run(start, &out, &err));
  /* Each result class has its own exit status (issue 10). */
  assert_int_equal(5, pm_test_run(start, &out, &err));
  assert_non_null(strstr(err, "pipemsg call: StartVpn: TooManyRequests"));
  /* A command this pipemsg's contract lacks is still sent (the service may be newer). */
  assert_int_equal(4, pm_test_run(unknown, &out, &err));
  assert_non_null(strstr(err, "note: 'Frobnicate' is not in this pipemsg's contract"));
  assert_non_null(strstr(err, "BadRequest: unknown command 'Frobnicate'"));
  assert_int_equal(0, pm_test_run(raw, &out, &err));
  /* Key:=JSON is sent as given: the service refuses it. */
  assert_int_equal(4, pm_test_run(misspelt, &out, &err));
  assert_non_null(strstr(err, "unknown parameter 'Filter'"));
}

/* The response of pipemsg call --json as a tree (its only line). */
static json_t *json_line(const char *out) {
  json_error_t jerr;
  size_t len = strlen(out);
  assert_true(len > 1 && out[len - 1] == '\n');
  assert_int_equal(len - 1, strcspn(out, "\n")); /* one line */
  return json_loadb(out, len - 1, 0, &jerr);
}

/* Key=Value is typed by the contract (issue 10): Location=123 is the string "123"; a wrong
 * value or an undeclared Key is refused before anything is sent, with a suggestion. */
static void test_cli_call_typed_by_contract(void **state) {
  const char *out, *err;
  const char *start[] = {PIPEMSG, "call", "-c", svc.command_pipe, "StartVpn", "Location=123",
                         NULL};
  const char *get[] = {PIPEMSG, "call", "-c", svc.command_pipe, "--json", "GetState", NULL};
  const char *stop[] = {PIPEMSG, "call", "-c", svc.command_pipe, "-e", svc.event_pipe, "--wait",
                        "StopVpn", NULL};
  const char *bad_bool[] = {PIPEMSG, "call", "-c", svc.command_pipe, "SetReconnectionEnabled",
                            "Enabled=yes", NULL};
  const char *typo[] = {PIPEMSG, "call", "-c", svc.command_pipe, "StartVpn", "Locaton=de", NULL};
  const char *list[] = {PIPEMSG, "call", "-c", svc.command_pipe, "ConfigureBypassDomains",
                        "Domains=a.example,*.b.example", NULL};
  const char *command_typo[] = {PIPEMSG, "call", "-c", svc.command_pipe, "GetTrafic", NULL};
  json_t *resp;
  (void)state;
  assert_int_equal(0, pm_test_run(start, &out, &err));
  assert_int_equal(0, pm_test_run(get, &out, &err));
  resp = json_line(out);
  assert_non_null(resp);
  assert_string_equal("123", json_string_value(json_object_get(
                                 json_object_get(json_object_get(resp, "Response"), "Data"),
                                 "Location")));
  json_decref(resp);
  assert_int_equal(0, pm_test_run(stop, &out, &err));
  assert_int_equal(2, pm_test_run(bad_bool, &out, &err));
  assert_non_null(strstr(err, "pipemsg call: Enabled=yes: Enabled must be a boolean"));
  assert_int_equal(2, pm_test_run(typo, &out, &err));
  assert_non_null(strstr(err, "pipemsg call: StartVpn has no parameter 'Locaton'; did you mean "
                              "'Location'?"));
  /* Neither reached the service (the one StartVpn before them did). */
  assert_null(strstr(pm_test_service_log(&svc), "command=SetReconnectionEnabled"));
  assert_non_null(strstr(pm_test_service_log(&svc), "command=StartVpn"));
  assert_int_equal(0, pm_test_run(list, &out, &err));
  assert_non_null(strstr(out, "\"Count\": 2"));
  assert_int_equal(4, pm_test_run(command_typo, &out, &err));
  assert_non_null(strstr(err, "did you mean 'GetTraffic'?"));
}

/* Options after COMMAND count; -- ends them. */
static void test_cli_call_options_anywhere(void **state) {
  const char *out, *err;
  const char *after[] = {PIPEMSG, "call", "GetState", "-c", svc.command_pipe, "--json", NULL};
  const char *ended[] = {PIPEMSG, "call", "-c", svc.command_pipe, "--", "Echo", "--json", NULL};
  (void)state;
  assert_int_equal(0, pm_test_run(after, &out, &err));
  assert_non_null(strstr(out, "{\"Response\":"));
  /* After --, --json is an argument, and not Key=Value. */
  assert_int_equal(2, pm_test_run(ended, &out, &err));
  assert_non_null(strstr(err, "'--json' is not Key=Value"));
}

/* --json prints the whole response on one line; over XML the answer has the contract's types,
 * the same output as over JSON. */
static void test_cli_call_json_and_xml(void **state) {
  const char *out, *err;
  const char *json[] = {PIPEMSG, "call", "-c", svc.command_pipe, "--id", "9", "--json",
                        "GetTraffic", NULL};
  const char *xml[] = {PIPEMSG, "call", "-c", svc.command_pipe, "--id", "9", "--json", "--xml",
                       "GetTraffic", NULL};
  const char *xml_data[] = {PIPEMSG, "call", "-c", svc.command_pipe, "--xml", "GetState", NULL};
  char *over_json;
  json_t *resp;
  (void)state;
  assert_int_equal(0, pm_test_run(json, &out, &err));
  resp = json_line(out);
  assert_non_null(resp);
  assert_int_equal(9, json_integer_value(json_object_get(json_object_get(resp, "Response"), "Id")));
  assert_true(json_is_integer(json_object_get(
      json_object_get(json_object_get(resp, "Response"), "Data"), "BytesSent")));
  json_decref(resp);
  over_json = strdup(out);
  assert_int_equal(0, pm_test_run(xml, &out, &err));
  assert_string_equal(over_json, out);
  free(over_json);
  assert_int_equal(0, pm_test_run(xml_data, &out, &err));
  assert_non_null(strstr(out, "\"KillSwitch\": false"));
  assert_non_null(strstr(out, "\"BypassDomains\": []"));
}

/* --wait: StartVpn returns once Connected, StopVpn once Disconnected; a failed attempt exits 1
 * with LastError. */
static void test_cli_call_wait(void **state) {
  const char *out, *err;
  const char *start[] = {PIPEMSG, "call", "-c", svc.command_pipe, "-e", svc.event_pipe,
                         "StartVpn", "Location=de", "--wait", NULL};
  const char *stop[] = {PIPEMSG, "call", "-c", svc.command_pipe, "--event-pipe", svc.event_pipe,
                        "--wait", "StopVpn", NULL};
  const char *fail[] = {PIPEMSG, "call", "-c", svc.command_pipe, "-e", svc.event_pipe, "--wait",
                        "StartVpn", "Location=nowhere", NULL};
  const char *get[] = {PIPEMSG, "call", "-c", svc.command_pipe, "GetState", NULL};
  const char *not_vpn[] = {PIPEMSG, "call", "--wait", "GetState", NULL};
  char nowhere[160];
  const char *no_events[] = {PIPEMSG, "call", "-c", svc.command_pipe, "-e", nowhere,
                             "--connect-timeout-ms", "200", "--wait", "StopVpn", NULL};
  (void)state;
  assert_int_equal(0, pm_test_run(start, &out, &err));
  assert_null(strchr(out, '\r')); /* no progress line: stdout is not a terminal */
  assert_int_equal(0, pm_test_run(get, &out, &err));
  assert_non_null(strstr(out, "\"State\": \"Connected\""));
  assert_int_equal(0, pm_test_run(stop, &out, &err));
  assert_int_equal(0, pm_test_run(get, &out, &err));
  assert_non_null(strstr(out, "\"State\": \"Disconnected\""));
  assert_int_equal(1, pm_test_run(fail, &out, &err));
  assert_non_null(strstr(err, "pipemsg call: StartVpn: the attempt failed: LastError: "
                              "simulated location is unreachable"));
  assert_int_equal(2, pm_test_run(not_vpn, &out, &err));
  /* No event pipe to watch: it says where it looked. */
  snprintf(nowhere, sizeof(nowhere), "%s/no-events", svc.dir);
  assert_int_equal(3, pm_test_run(no_events, &out, &err));
  assert_non_null(strstr(err, nowhere));
}

/* commands and describe: from the service when it answers, else the built-in contract. */
static void test_cli_commands_and_describe(void **state) {
  const char *out, *err;
  char nobody[160];
  const char *online[] = {PIPEMSG, "commands", "-c", svc.command_pipe, NULL};
  const char *offline[] = {PIPEMSG, "commands", "-c", nobody, "--connect-timeout-ms", "200",
                           NULL};
  const char *describe[] = {PIPEMSG, "describe", "-c", svc.command_pipe, "StartVpn", NULL};
  const char *describe_off[] = {PIPEMSG, "describe", "--offline", "StopVpn", NULL};
  const char *typo[] = {PIPEMSG, "describe", "--offline", "StartVp", NULL};
  const char *any[] = {PIPEMSG, "describe", "-c", svc.command_pipe, "Echo", NULL};
  (void)state;
  snprintf(nobody, sizeof(nobody), "%s/nobody-here", svc.dir);
  assert_int_equal(0, pm_test_run(online, &out, &err));
  assert_non_null(strstr(err, "pipemsg commands: from the service at "));
  assert_non_null(strstr(out, "StartVpn "));
  assert_non_null(strstr(out, "Starts connecting"));
  assert_non_null(strstr(out, "Echo ")); /* this service has --test-commands */
  assert_int_equal(0, pm_test_run(offline, &out, &err));
  assert_non_null(strstr(err, "from pipemsg's built-in contract"));
  assert_non_null(strstr(err, nobody));
  assert_non_null(strstr(out, "StartVpn "));
  assert_null(strstr(out, "Echo "));
  assert_int_equal(0, pm_test_run(describe, &out, &err));
  assert_non_null(strstr(out, "StartVpn: Starts connecting"));
  assert_non_null(strstr(out, "Location: string, 1 to 64 bytes of A-Za-z0-9._-, default \"auto\""));
  assert_non_null(strstr(out, "EnableKillSwitch: boolean, optional"));
  assert_non_null(strstr(out, "State: enumeration (Connecting)"));
  assert_non_null(strstr(out, "Results: Ok, BadRequest, TooManyRequests, Error"));
  assert_int_equal(0, pm_test_run(describe_off, &out, &err));
  assert_non_null(strstr(err, "built-in contract"));
  assert_non_null(strstr(out, "StopVpn: Starts disconnecting"));
  assert_int_equal(0, pm_test_run(any, &out, &err));
  assert_non_null(strstr(out, "Params: any"));
  assert_int_equal(2, pm_test_run(typo, &out, &err));
  assert_non_null(strstr(err, "pipemsg describe: unknown command 'StartVp'; did you mean "
                              "'StartVpn'?"));
}

static void test_cli_call_no_service(void **state) {
  const char *out, *err;
  char path[160];
  const char *argv[] = {PIPEMSG, "call", "-c", path, "--connect-timeout-ms", "200", "GetState",
                        NULL};
  uint64_t start = pm_test_now_ms();
  (void)state;
  snprintf(path, sizeof(path), "%s/nobody-here", svc.dir);
  assert_int_equal(3, pm_test_run(argv, &out, &err));
  /* The resolved path, in the one prefix style. */
  assert_non_null(strstr(err, "pipemsg call: "));
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, "ConnectionTimeout"));
  /* The client gives up when its next 20 ms retry would pass the deadline; a loaded machine
   * (and starting the program) may take up to a second more, short of the 3000 ms default. */
  assert_in_range(pm_test_now_ms() - start, 200 - 50, 200 + 1000);
}

static void test_cli_usage_errors(void **state) {
  const char *out, *err;
  const char *none[] = {PIPEMSG, NULL};
  const char *help[] = {PIPEMSG, "call", "--help", NULL};
  const char *top_help[] = {PIPEMSG, "--help", NULL};
  const char *no_command[] = {PIPEMSG, "call", NULL};
  const char *bad_param[] = {PIPEMSG, "call", "GetState", "novalue", NULL};
  const char *bad_json[] = {PIPEMSG, "call", "GetState", "A:=[", NULL};
  const char *bad_opt[] = {PIPEMSG, "call", "--timeout-ms", "soon", "GetState", NULL};
  const char *no_user[] = {PIPEMSG, "call", "--expect-owner", "no-such-user-pm", "GetState",
                           NULL};
  const char *unknown[] = {PIPEMSG, "frob", NULL};
  const char *registry[] = {PIPEMSG, "call", "--names-registry", "HKLM\\SOFTWARE\\pipemsg",
                            "GetState", NULL};
  const char *watch_registry[] = {PIPEMSG, "watch", "--names-registry", "HKCU\\x", NULL};
  (void)state;
  assert_int_equal(2, pm_test_run(none, &out, &err));
  assert_int_equal(0, pm_test_run(help, &out, &err));
  assert_non_null(strstr(out, "Usage: pipemsg call"));
  assert_int_equal(0, pm_test_run(top_help, &out, &err));
  assert_non_null(strstr(out, "call"));
  assert_int_equal(2, pm_test_run(no_command, &out, &err));
  assert_int_equal(2, pm_test_run(bad_param, &out, &err));
  assert_non_null(strstr(err, "novalue"));
  assert_int_equal(2, pm_test_run(bad_json, &out, &err));
  assert_int_equal(2, pm_test_run(bad_opt, &out, &err));
  assert_non_null(strstr(err, "pipemsg call: --timeout-ms: expected a number"));
  assert_int_equal(2, pm_test_run(no_user, &out, &err));
  assert_non_null(strstr(err, "pipemsg call: --expect-owner: no user 'no-such-user-pm'"));
  assert_int_equal(2, pm_test_run(unknown, &out, &err));
  /* The registry is Windows': refused here, with the reason. */
  assert_int_equal(2, pm_test_run(registry, &out, &err));
  assert_non_null(strstr(err, "--names-registry HKLM\\SOFTWARE\\pipemsg: only on Windows"));
  assert_int_equal(2, pm_test_run(watch_registry, &out, &err));
  assert_non_null(strstr(err, "only on Windows"));
  assert_int_equal(0, pm_test_run(help, &out, &err));
  assert_null(strstr(out, "--names-registry"));
  assert_non_null(strstr(out, "--expect-owner USER"));
  assert_non_null(strstr(out, "4 BadRequest; 5 TooManyRequests; 6 not authorized"));
}

static void test_cli_daemon_options(void **state) {
  const char *out, *err;
  char long_path[200];
  const char *help[] = {PIPEMSGD, "--help", NULL};
  const char *version[] = {PIPEMSGD, "--version", NULL};
  const char *bad[] = {PIPEMSGD, "--max-message", "0", NULL};
  const char *bad_big[] = {PIPEMSGD, "--max-message", "2147483648", NULL};
  const char *in_use[] = {PIPEMSGD, "-c", svc.command_pipe, NULL};
  const char *too_long[] = {PIPEMSGD, "-c", long_path, NULL};
  (void)state;
  assert_int_equal(0, pm_test_run(help, &out, &err));
  assert_non_null(strstr(out, "--command-pipe"));
  assert_non_null(strstr(out, "--request-timeout-ms"));
  assert_int_equal(0, pm_test_run(version, &out, &err));
  assert_non_null(strstr(out, PM_VERSION));
  assert_int_equal(2, pm_test_run(bad, &out, &err));
  assert_int_equal(2, pm_test_run(bad_big, &out, &err));
  /* A live service's pipe is never stolen. */
  assert_int_equal(1, pm_test_run(in_use, &out, &err));
  assert_non_null(strstr(err, "in use"));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
  snprintf(long_path, sizeof(long_path), "%s/%0120d", svc.dir, 0);
  assert_int_equal(1, pm_test_run(too_long, &out, &err));
  assert_non_null(strstr(err, "too long"));
}

/* The same name rule on both sides: a relative path is refused by the service and by the
 * client alike, and \\.\pipe\NAME means NAME in the runtime directory for both. */
static void hardening_13_pipe_names_agree(void **state) {
  const char *out, *err;
  const char *daemon_rel[] = {PIPEMSGD, "-e", "rel/evt", NULL};
  const char *call_rel[] = {PIPEMSG, "call", "-c", "rel/cmd", "GetVersion", NULL};
  const char *call_win[] = {PIPEMSG, "call", "-c", "\\\\.\\pipe\\cmd", "GetVersion", NULL};
  (void)state;
  assert_int_equal(1, pm_test_run(daemon_rel, &out, &err));
  assert_non_null(strstr(err, "pipe name must be a bare NAME"));
  assert_non_null(strstr(err, "'rel/evt'"));
  assert_int_equal(3, pm_test_run(call_rel, &out, &err));
  assert_non_null(strstr(err, "pipe name must be a bare NAME"));
  setenv("PIPEMSG_RUNTIME_DIR", svc.dir, 1); /* where the service's cmd is */
  assert_int_equal(0, pm_test_run(call_win, &out, &err));
  setenv("PIPEMSG_RUNTIME_DIR", pm_test_runtime_dir(), 1);
  assert_non_null(strstr(out, "Version"));
}

/* The programs a test starts resolve bare names into the test's private runtime directory:
 * nothing reaches /run/pipemsg, so the tests pass as a user who cannot create it. */
static void hardening_20_private_runtime_dir(void **state) {
  const char *out, *err;
  char want[160];
  const char *call[] = {PIPEMSG, "call", "--connect-timeout-ms", "100", "GetVersion", NULL};
  const char *no_event_pipe[] = {PIPEMSGD, "-c", svc.command_pipe, NULL};
  (void)state;
  assert_non_null(getenv("PIPEMSG_RUNTIME_DIR"));
  assert_string_equal(pm_test_runtime_dir(), getenv("PIPEMSG_RUNTIME_DIR"));
  assert_int_equal(0, strncmp(pm_test_runtime_dir(), "/tmp/pmtest-rt.", 15));
  snprintf(want, sizeof(want), "pipemsg call: %s/" PM_COMMAND_PIPE_DEFAULT ": ",
           pm_test_runtime_dir());
  assert_int_equal(3, pm_test_run(call, &out, &err));
  assert_non_null(strstr(err, want));
  /* Without -e the event pipe is bound in the private directory; the command pipe is in use,
   * so it stops there, and removes its event pipe. */
  assert_int_equal(1, pm_test_run(no_event_pipe, &out, &err));
  assert_non_null(strstr(err, "in use"));
  snprintf(want, sizeof(want), "%s/" PM_EVENT_PIPE_DEFAULT, pm_test_runtime_dir());
  assert_int_equal(-1, access(want, F_OK));
}

static void emit(const char *type, int count) {
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:i, s:{s:s}}", "Type", type, "Count",
                                                   count, "Data", "Who", "cli"),
                                         NULL));
}

static void test_cli_watch_prints_json_lines(void **state) {
  const char *out, *err;
  /* Events queued before it came: only a consuming watch is sent them. */
  const char *argv[] = {PIPEMSG, "watch", "--consume", "-e", svc.event_pipe, "--json", "--count",
                        "2", NULL};
  json_t *line;
  json_error_t jerr;
  (void)state;
  emit("Hello", 2);
  assert_int_equal(0, pm_test_run(argv, &out, &err));
  line = json_loadb(out, strcspn(out, "\n"), 0, &jerr);
  assert_non_null(line);
  assert_int_equal(1, json_integer_value(json_object_get(line, "Id")));
  assert_string_equal("Hello", json_string_value(json_object_get(line, "Type")));
  assert_string_equal("cli", json_string_value(json_object_get(json_object_get(line, "Data"), "Who")));
  assert_non_null(json_object_get(line, "Time"));
  json_decref(line);
  assert_non_null(strstr(out, "\"Id\":2"));
  assert_non_null(strstr(err, "connected"));
}

static void test_cli_watch_readable_over_xml(void **state) {
  const char *out, *err;
  const char *argv[] = {PIPEMSG, "watch", "--consume", "-e", svc.event_pipe, "--xml", "--count",
                        "1", NULL};
  (void)state;
  emit("Greeting", 1);
  assert_int_equal(0, pm_test_run(argv, &out, &err));
  assert_non_null(strstr(out, "#1 Greeting {\"Who\":\"cli\"}"));
}

/* Reads fd into buf until it contains text (1), the stream ends (-1) or the deadline passes
 * (0). */
static int await_text(int fd, char *buf, size_t size, const char *text, int timeout_ms) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)timeout_ms;
  size_t have = strlen(buf);
  while (strstr(buf, text) == NULL) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint64_t now = pm_test_now_ms();
    ssize_t n;
    if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
      return 0;
    n = read(fd, buf + have, size - 1 - have);
    if (n <= 0)
      return -1;
    have += (size_t)n;
    buf[have] = '\0';
  }
  return 1;
}

/* watch runs until a signal: SIGINT (Ctrl-C) and SIGTERM each stop it with status 0, and it
 * detaches from the service on the way out. */
static void test_cli_watch_stops_on_signal(void **state) {
  static const int signals[] = {SIGINT, SIGTERM};
  (void)state;
  for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
    char err[4096] = "";
    int fds[2], status;
    pid_t pid;
    assert_int_equal(0, pipe(fds));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      execl(PIPEMSG, PIPEMSG, "watch", "-e", svc.event_pipe, (char *)NULL);
      _exit(127);
    }
    close(fds[1]);
    assert_int_equal(1, await_text(fds[0], err, sizeof(err), "connected", 5000));
    /* An observer: the client slot stays free. */
    assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Attached"));
    kill(pid, signals[i]);
    /* It exits at once: its stderr ends (the pipe's EOF is the event awaited). */
    assert_int_equal(-1, await_text(fds[0], err, sizeof(err), "never printed", 5000));
    assert_int_equal(pid, waitpid(pid, &status, 0));
    close(fds[0]);
    assert_true(WIFEXITED(status));
    assert_int_equal(0, WEXITSTATUS(status));
  }
}

static void test_cli_watch_usage(void **state) {
  const char *out, *err;
  const char *help[] = {PIPEMSG, "watch", "--help", NULL};
  const char *bad[] = {PIPEMSG, "watch", "--count", "0", NULL};
  const char *extra[] = {PIPEMSG, "watch", "stray", NULL};
  (void)state;
  assert_int_equal(0, pm_test_run(help, &out, &err));
  assert_non_null(strstr(out, "Usage: pipemsg watch"));
  assert_int_equal(2, pm_test_run(bad, &out, &err));
  assert_int_equal(2, pm_test_run(extra, &out, &err));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* First: before any test points $PIPEMSG_RUNTIME_DIR elsewhere and back. */
      cmocka_unit_test_setup_teardown(hardening_20_private_runtime_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_prints_data, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_params_and_results, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_typed_by_contract, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_options_anywhere, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_json_and_xml, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_wait, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_commands_and_describe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_no_service, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_usage_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_daemon_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_prints_json_lines, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_readable_over_xml, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_stops_on_signal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_usage, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_13_pipe_names_agree, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
