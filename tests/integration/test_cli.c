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
  /* Neither reached the service (the one StartVpn before them did; info lines are batched, so
   * its line may come up to 100 ms later). */
  pm_test_await_log(&svc, "command=StartVpn");
  assert_null(strstr(pm_test_service_log(&svc), "command=SetReconnectionEnabled"));
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
  if (strstr(err, "pipemsg call: StartVpn: the attempt failed: LastError: "
                  "simulated location is unreachable") == NULL) {
    print_error("unexpected stderr of a failing StartVpn --wait:\n%s\nservice log:\n%s\n", err,
                pm_test_service_log(&svc));
    fail();
  }
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

/* Data the contract declares comes out in its types over XML as over JSON: EventsLost's
 * counts are integers, not the text XML carries them as. */
static void test_cli_watch_xml_data_typed(void **state) {
  static const char *const args[] = {"--test-commands", "--queue-max-events", "2", NULL};
  const char *out, *err;
  const char *text[] = {PIPEMSG, "watch", "--consume", "-e", svc.event_pipe, "--xml", "--count",
                        "1", NULL};
  const char *json[] = {PIPEMSG, "watch", "--consume", "-e", svc.event_pipe, "--xml", "--json",
                        "--count", "1", NULL};
  (void)state;
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, args);
  emit("Greeting", 5); /* ids 1 to 3 dropped: EventsLost 3, then 4 and 5 */
  assert_int_equal(0, pm_test_run(json, &out, &err));
  assert_non_null(strstr(out, "\"Type\":\"EventsLost\",\"Time\":"));
  assert_non_null(strstr(out, "\"Data\":{\"Count\":3,\"FirstId\":1,\"LastId\":3}"));
  assert_int_equal(0, pm_test_run(text, &out, &err));
  assert_non_null(strstr(out, "#4 Greeting {\"Who\":\"cli\"}"));
  emit("Greeting", 3);
  assert_int_equal(0, pm_test_run(text, &out, &err));
  assert_non_null(strstr(out, " EventsLost {\"Count\":2,\"FirstId\":5,\"LastId\":6}"));
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

/* ---- watch: observing, consuming, stopping (issue 10) ------------------------------------- */

/* pipemsg with args (after "pipemsg"), its stdout on *out_fd (or to out_path when out_fd is
 * NULL) and its stderr on *err_fd. */
static pid_t spawn_cli(const char *const *args, int *out_fd, const char *out_path, int *err_fd) {
  int o[2] = {-1, -1}, e[2];
  const char *argv[16] = {PIPEMSG};
  size_t n = 1;
  pid_t pid;
  for (; args[n - 1] != NULL && n < 15; n++)
    argv[n] = args[n - 1];
  argv[n] = NULL;
  assert_int_equal(0, pipe(e));
  if (out_fd != NULL)
    assert_int_equal(0, pipe(o));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Our read ends stay out of the child: its output must close when we close ours. */
    if (out_fd != NULL) {
      dup2(o[1], 1);
      close(o[0]);
      close(o[1]);
    } else {
      freopen(out_path, "w", stdout);
    }
    dup2(e[1], 2);
    close(e[0]);
    close(e[1]);
    execv(PIPEMSG, (char *const *)argv);
    _exit(127);
  }
  close(e[1]);
  *err_fd = e[0];
  if (out_fd != NULL) {
    close(o[1]);
    *out_fd = o[0];
  }
  return pid;
}

/* Waits for the child's exit by its stderr's end; returns its exit status. */
static int await_exit(pid_t pid, int err_fd, char *err, size_t size) {
  int status;
  assert_int_equal(-1, await_text(err_fd, err, size, "never printed", 10000));
  close(err_fd);
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

typedef struct seen_events {
  uv_mutex_t lock;
  int count, connected;
  int64_t ids[16];
} seen_events;

static void seen_event(const pm_event *ev, void *data) {
  seen_events *s = data;
  uv_mutex_lock(&s->lock);
  if (s->count < 16)
    s->ids[s->count++] = ev->id;
  uv_mutex_unlock(&s->lock);
}

static void seen_state(pm_event_client_state st, const char *reason, void *data) {
  seen_events *s = data;
  (void)reason;
  uv_mutex_lock(&s->lock);
  if (st == PM_EVENT_CLIENT_CONNECTED)
    s->connected++;
  uv_mutex_unlock(&s->lock);
}

static int seen_get(seen_events *s, int *field) {
  int v;
  uv_mutex_lock(&s->lock);
  v = *field;
  uv_mutex_unlock(&s->lock);
  return v;
}

static void await_seen(seen_events *s, int *field, int want) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  while (seen_get(s, field) < want) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
}

/* The application's consuming client, from the library. */
static pm_event_client *app_client(seen_events *s) {
  pm_event_client_options o;
  pm_event_client *c = NULL;
  memset(s, 0, sizeof(*s));
  uv_mutex_init(&s->lock);
  memset(&o, 0, sizeof(o));
  o.on_event = seen_event;
  o.on_state = seen_state;
  o.data = s;
  assert_pm(0, pm_event_client_start(svc.event_pipe, &o, &c));
  await_seen(s, &s->connected, 1);
  return c;
}

static void app_client_stop(pm_event_client *c, seen_events *s) {
  pm_event_client_stop(c);
  uv_mutex_destroy(&s->lock);
}

/* The default watch observes: the application's client gets and confirms every event, in
 * order, while watch prints them too. */
static void test_cli_watch_observes_by_default(void **state) {
  const char *const args[] = {"watch", "-e", svc.event_pipe, NULL};
  char out[4096] = "", err[4096] = "";
  int out_fd, err_fd;
  seen_events app;
  pm_event_client *c;
  pid_t pid;
  (void)state;
  pid = spawn_cli(args, &out_fd, NULL, &err_fd);
  assert_int_equal(1, await_text(err_fd, err, sizeof(err), "connected (observing)", 10000));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Attached"));
  c = app_client(&app);
  emit("Seen", 3);
  assert_int_equal(1, await_text(out_fd, out, sizeof(out), "#3 Seen", 10000));
  await_seen(&app, &app.count, 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(i + 1, app.ids[i]);
  app_client_stop(c, &app);
  assert_int_equal(3, pm_test_stat(svc.command_pipe, "Events", "Delivered"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Queued"));
  kill(pid, SIGTERM);
  close(out_fd);
  assert_int_equal(0, await_exit(pid, err_fd, err, sizeof(err)));
}

/* --consume is the client: it takes the queued events and confirms them. */
static void test_cli_watch_consume_confirms(void **state) {
  const char *out, *err;
  const char *argv[] = {PIPEMSG, "watch", "--consume", "-e", svc.event_pipe, "--count", "2",
                        NULL};
  (void)state;
  emit("Taken", 2);
  assert_int_equal(0, pm_test_run(argv, &out, &err));
  assert_non_null(strstr(out, "#2 Taken"));
  assert_int_equal(2, pm_test_stat(svc.command_pipe, "Events", "Delivered"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Queued"));
}

/* watch | head -1: once its reader has gone, watch exits at once, with no further event to
 * write; in consume mode what it did not print stays queued for the next client. */
static void test_cli_watch_output_closed(void **state) {
  const char *const observe[] = {"watch", "-e", svc.event_pipe, NULL};
  const char *const consume[] = {"watch", "--consume", "-e", svc.event_pipe, NULL};
  const char *const *modes[] = {consume, observe};
  static const char *const wants[] = {"#1 First", "#3 First"};
  (void)state;
  for (int m = 0; m < 2; m++) {
    char out[4096] = "", err[4096] = "";
    int out_fd, err_fd;
    uint64_t start;
    pid_t pid = spawn_cli(modes[m], &out_fd, NULL, &err_fd);
    assert_int_equal(1, await_text(err_fd, err, sizeof(err), "connected", 10000));
    emit("First", 1);
    assert_int_equal(1, await_text(out_fd, out, sizeof(out), wants[m], 10000));
    close(out_fd);
    start = pm_test_now_ms();
    emit("Later", 1);
    assert_int_equal(0, await_exit(pid, err_fd, err, sizeof(err)));
    /* Nothing to write was needed to notice; a second on a loaded machine, where waiting for
     * another event would never end. */
    assert_ms_within("watch exit after its output closed", pm_test_now_ms() - start, 0,
                     pm_test_margin_ms(1000));
  }
  /* The consuming watch confirmed the First it printed and nothing more: Later (2), and all
   * the observer saw or missed (3, 4), wait for the next client. */
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Delivered"));
  assert_int_equal(3, pm_test_stat(svc.command_pipe, "Events", "Queued"));
}

/* An event watch --consume could not write is not confirmed: it stays queued and the next
 * client gets it. */
static void test_cli_watch_unwritten_event_stays_queued(void **state) {
  const char *const args[] = {"watch", "--consume", "-e", svc.event_pipe, NULL};
  const char *out, *e;
  const char *next[] = {PIPEMSG, "watch", "--consume", "-e", svc.event_pipe, "--count", "1",
                        NULL};
  char err[4096] = "";
  int err_fd;
  pid_t pid;
  (void)state;
  if (access("/dev/full", W_OK) != 0)
    pm_test_skip("no /dev/full to make writing fail");
  pid = spawn_cli(args, NULL, "/dev/full", &err_fd);
  assert_int_equal(1, await_text(err_fd, err, sizeof(err), "connected", 10000));
  emit("Kept", 1);
  assert_int_equal(1, await_exit(pid, err_fd, err, sizeof(err)));
  assert_non_null(strstr(err, "cannot write the output: No space left on device"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Delivered"));
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Queued"));
  assert_int_equal(0, pm_test_run(next, &out, &e));
  assert_non_null(strstr(out, "#1 Kept"));
}

/* The command pipe answers a handshake with a Response: watch says so and gives up. */
static void test_cli_watch_not_an_event_pipe(void **state) {
  const char *out, *err;
  const char *argv[] = {PIPEMSG, "watch", "-e", svc.command_pipe, "--timeout", "30", NULL};
  uint64_t start = pm_test_now_ms();
  (void)state;
  assert_int_equal(3, pm_test_run(argv, &out, &err));
  assert_non_null(strstr(err, "not an event pipe"));
  assert_non_null(strstr(err, svc.command_pipe));
  assert_true(pm_test_now_ms() - start < 10000); /* not the --timeout */
}

/* --timeout S: non-zero after S seconds without --count's events. */
static void test_cli_watch_timeout(void **state) {
  const char *out, *err;
  const char *argv[] = {PIPEMSG, "watch", "-e", svc.event_pipe, "--timeout", "1", NULL};
  uint64_t start = pm_test_now_ms();
  (void)state;
  assert_int_equal(3, pm_test_run(argv, &out, &err));
  assert_non_null(strstr(err, "gave up after --timeout 1 s"));
  /* 1 s, plus starting and stopping the program on a loaded machine (2 s would be out). */
  assert_ms_within("watch --timeout 1", pm_test_now_ms() - start, 1000 - 50,
                   1000 + pm_test_margin_ms(900));
}

/* --consume while the application is attached: said once, retried with backoff, and in as
 * soon as the slot frees. */
static void test_cli_watch_consume_waits_for_the_slot(void **state) {
  const char *const args[] = {"watch", "--consume", "-e", svc.event_pipe, NULL};
  const char *busy = "another client is attached";
  char out[4096] = "", err[4096] = "";
  int out_fd, err_fd;
  seen_events app;
  pm_event_client *c = app_client(&app);
  uint64_t deadline = pm_test_now_ms() + 10000;
  pid_t pid;
  (void)state;
  pid = spawn_cli(args, &out_fd, NULL, &err_fd);
  assert_int_equal(1, await_text(err_fd, err, sizeof(err), busy, 10000));
  /* Backoff 100, 200, 400 ms: three more refusals within a second or so. */
  while (pm_test_stat(svc.command_pipe, "Events", "BusyRejections") < 4) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(20);
  }
  app_client_stop(c, &app);
  assert_int_equal(1, await_text(err_fd, err, sizeof(err), "connected", 10000));
  assert_null(strstr(strstr(err, busy) + 1, busy));
  emit("Mine", 1);
  assert_int_equal(1, await_text(out_fd, out, sizeof(out), "#1 Mine", 10000));
  kill(pid, SIGTERM);
  close(out_fd);
  assert_int_equal(0, await_exit(pid, err_fd, err, sizeof(err)));
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Delivered"));
}

/* $PIPEMSG_COMMAND_PIPE and $PIPEMSG_EVENT_PIPE name the pipes when no option does. */
static void test_cli_pipes_from_environment(void **state) {
  const char *out, *err;
  const char *call[] = {PIPEMSG, "call", "GetVersion", NULL};
  const char *watch[] = {PIPEMSG, "watch", "--consume", "--count", "1", NULL};
  (void)state;
  setenv("PIPEMSG_COMMAND_PIPE", svc.command_pipe, 1);
  setenv("PIPEMSG_EVENT_PIPE", svc.event_pipe, 1);
  assert_int_equal(0, pm_test_run(call, &out, &err));
  assert_non_null(strstr(out, "Version"));
  emit("ByEnv", 1);
  assert_int_equal(0, pm_test_run(watch, &out, &err));
  unsetenv("PIPEMSG_COMMAND_PIPE");
  unsetenv("PIPEMSG_EVENT_PIPE");
  assert_non_null(strstr(out, "#1 ByEnv"));
}

/* pipemsg(1)'s COMMANDS and EVENTS list the contract's (as GetCommands gives it, test-only
 * commands included), and ENVIRONMENT the five variables. */
static void test_cli_man_page_from_contract(void **state) {
  const char *out, *err;
  const char *man[] = {PIPEMSG, "--man", NULL};
  static const char *const vars[] = {"PIPEMSG_RUNTIME_DIR", "XDG_RUNTIME_DIR", "PIPEMSG_DEBUG",
                                     "PIPEMSG_COMMAND_PIPE", "PIPEMSG_EVENT_PIPE"};
  json_t *data = NULL, *item;
  const char *sections;
  size_t i;
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetCommands", NULL, &data));
  assert_int_equal(0, pm_test_run(man, &out, &err));
  sections = strstr(out, ".SH COMMANDS");
  assert_non_null(sections);
  assert_non_null(strstr(sections, ".SH EVENTS"));
  assert_non_null(strstr(sections, ".SH ENVIRONMENT"));
  assert_true(json_array_size(json_object_get(data, "Commands")) > 10);
  json_array_foreach(json_object_get(data, "Commands"), i, item) {
    char want[128];
    snprintf(want, sizeof(want), "\\fB%s\\fR", json_string_value(json_object_get(item, "Name")));
    if (strstr(sections, want) == NULL)
      fail_msg("pipemsg --man lacks command %s", want);
  }
  json_array_foreach(json_object_get(data, "Events"), i, item) {
    char want[128];
    snprintf(want, sizeof(want), "\\fB%s\\fR", json_string_value(json_object_get(item, "Type")));
    if (strstr(strstr(sections, ".SH EVENTS"), want) == NULL)
      fail_msg("pipemsg --man lacks event type %s", want);
  }
  for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
    assert_non_null(strstr(strstr(sections, ".SH ENVIRONMENT"), vars[i]));
  json_decref(data);
}

/* Runs the completion function of `pipemsg completion bash` on words (the cursor on the last)
 * and returns the candidates, space-separated, in a static buffer. */
static const char *complete_bash(const char *script, const char *words, int cword) {
  static char code[1024];
  const char *argv[] = {"/bin/bash", "-c", code, NULL};
  const char *out, *err;
  snprintf(code, sizeof(code),
           "source %s && COMP_WORDS=(%s) && COMP_CWORD=%d && _pipemsg; echo \"${COMPREPLY[*]}\"",
           script, words, cword);
  assert_int_equal(0, pm_test_run(argv, &out, &err));
  return out;
}

/* The script completes subcommands, options, command names and each command's Key=
 * parameters, all from what the program knows (help texts, the contract). */
static void test_cli_completion(void **state) {
  const char *out, *err;
  const char *bash[] = {PIPEMSG, "completion", "bash", NULL};
  const char *zsh[] = {PIPEMSG, "completion", "zsh", NULL};
  const char *bad[] = {PIPEMSG, "completion", "fish", NULL};
  char script[160], home[128];
  FILE *f;
  (void)state;
  assert_int_equal(0, pm_test_run(bash, &out, &err));
  snprintf(script, sizeof(script), "%s/pipemsg.bash", svc.dir);
  f = fopen(script, "w");
  assert_non_null(f);
  fputs(out, f);
  fclose(f);
  assert_string_equal("call commands completion\n", complete_bash(script, "pipemsg c", 1));
  assert_string_equal("GetState GetStats\n", complete_bash(script, "pipemsg describe GetSt", 2));
  assert_string_equal("StartVpn StopVpn\n", complete_bash(script, "pipemsg call St", 2));
  assert_string_equal("Location= EnableKillSwitch=\n",
                      complete_bash(script, "pipemsg call -c x --xml StartVpn ''", 6));
  assert_string_equal("Enabled=\n",
                      complete_bash(script, "pipemsg call SetReconnectionEnabled E", 3));
  assert_string_equal("--connect-timeout-ms\n", complete_bash(script, "pipemsg call --con", 2));
  assert_string_equal("--consume --count\n", complete_bash(script, "pipemsg watch --co", 2));
  assert_string_equal("bash zsh\n", complete_bash(script, "pipemsg completion ''", 2));
  assert_int_equal(0, pm_test_run(zsh, &out, &err));
  assert_non_null(strstr(out, "bashcompinit"));
  assert_int_equal(2, pm_test_run(bad, &out, &err));
  if (access("/usr/bin/zsh", X_OK) != 0)
    pm_test_skip("zsh is not installed (scripts/bootstrap.sh installs it): the zsh script was "
                 "not loaded");
  {
    /* compinit writes its dump in $HOME: the test's directory. zsh's own compgen leaves
     * matching the word to the completion system, so all the commands come back here. */
    char code[512];
    const char *load[] = {"/usr/bin/env", home, "/usr/bin/zsh", "-f", "-c", code, NULL};
    snprintf(home, sizeof(home), "HOME=%s", svc.dir);
    snprintf(code, sizeof(code),
             "source <(%s completion zsh) && echo \"${_comps[pipemsg]}\" && emulate sh -c "
             "'COMP_WORDS=(pipemsg call St); COMP_CWORD=2; _pipemsg; echo \"${COMPREPLY[*]}\"'",
             PIPEMSG);
    assert_int_equal(0, pm_test_run(load, &out, &err));
    assert_non_null(strstr(out, "_bash_complete -F _pipemsg\n"));
    assert_non_null(strstr(out, " StartVpn StopVpn "));
  }
}

/* ---- a hostile service's strings (terminal injection) -------------------------------------- */

/* Everything a terminal acts on, as a service sends it in a JSON string: OSC (retitles the
 * window), BEL, CSI (clears the screen, colours), the C1 CSI U+009B, DEL, and a newline that
 * would start a forged line. */
#define HOSTILE "\\u001b]0;PWNED\\u0007\\u001b[2J\\u001b[31mRED\\u001b[0m\\u009b31m\\u007f\\nFORGED"
/* The same, printed as text (\xNN per byte), and inside printed JSON (its own escapes). */
#define HOSTILE_TEXT "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mRED\\x1b[0m\\xc2\\x9b31m\\x7f\\x0aFORGED"
#define HOSTILE_JSON                                                                          \
  "\\u001B]0;PWNED\\u0007\\u001B[2J\\u001B[31mRED\\u001B[0m\\u009B31m\\u007F\\nFORGED"
/* The same as raw bytes, as a user types a name the service listed. */
#define HOSTILE_RAW "\x1b]0;PWNED\x07\x1b[2J\x1b[31mRED\x1b[0m\xc2\x9b" "31m\x7f\nFORGED"
/* Text that is not escaped. */
#define PLAIN "caf\xc3\xa9 \xe2\x82\xac"

/* Fails if output holds what a terminal would act on: a control byte but the newlines ending
 * its lines, DEL, a C1 control (raw or as UTF-8), or bytes that are not UTF-8. */
static void assert_terminal_safe(const char *what, const char *output) {
  const unsigned char *s = (const unsigned char *)output;
  json_t *valid = json_string(output); /* NULL unless UTF-8 */
  for (size_t i = 0; s[i] != '\0'; i++) {
    if ((s[i] < 0x20 && s[i] != '\n') || s[i] == 0x7f ||
        (i > 0 && s[i - 1] == 0xc2 && s[i] >= 0x80 && s[i] <= 0x9f))
      fail_msg("%s: raw byte 0x%02x at %zu in: %s", what, s[i], i, output);
  }
  if (valid == NULL)
    fail_msg("%s: not UTF-8: %s", what, output);
  json_decref(valid);
}

typedef struct fake_run {
  int status;
  char out[16384], err[16384];
} fake_run;

/* Answers a connection of pipemsg: reads its first message (a request or a handshake) and sends
 * frames[0], frames[1]... (NULL-terminated), each a format for the first message's Id or Seq. */
static void fake_answer_cli(int fd, const char *const *frames) {
  pm_msg *first = pm_test_recv_msg(fd, 10000);
  int64_t n = 0;
  assert_non_null(first);
  if (pm_msg_get_int(first, "Id", &n) < 0)
    pm_msg_get_int(first, "Seq", &n);
  pm_msg_free(first);
  for (; *frames != NULL; frames++) {
    char frame[4096];
    snprintf(frame, sizeof(frame), *frames, (long long)n);
    assert_int_equal(0, pm_test_send_frame(fd, frame));
  }
}

/* A fake service's pipe: its i-th connection gets answers[i] (then the stream ends); the rest
 * are refused. */
typedef struct fake_pipe {
  const char *path;
  const char *const *const *answers;
  size_t n_answers;
  int lfd;
  size_t served;
} fake_pipe;

/* Reads what is there on *fd into buf (have bytes so far); closes it at its end. */
static void drain(int *fd, char *buf, size_t size, size_t *have) {
  ssize_t got = read(*fd, buf + *have, size - 1 - *have);
  if (got <= 0) {
    close(*fd);
    *fd = -1;
    return;
  }
  *have += (size_t)got;
  buf[*have] = '\0';
}

/* Runs pipemsg with args against the fake pipes; returns once it has exited. */
static void run_against_fakes(fake_pipe *pipes, size_t n_pipes, const char *const *args,
                              fake_run *r) {
  int out_fd, err_fd, status;
  size_t have_out = 0, have_err = 0;
  uint64_t deadline = pm_test_now_ms() + 20000;
  pid_t pid;
  assert_true(n_pipes <= 2);
  for (size_t i = 0; i < n_pipes; i++) {
    pipes[i].lfd = pm_test_bind(pipes[i].path, 4);
    pipes[i].served = 0;
  }
  pid = spawn_cli(args, &out_fd, NULL, &err_fd);
  r->out[0] = r->err[0] = '\0';
  while (out_fd >= 0 || err_fd >= 0) {
    struct pollfd pfd[4] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
    for (size_t i = 0; i < n_pipes; i++)
      pfd[2 + i] = (struct pollfd){.fd = pipes[i].lfd, .events = POLLIN};
    assert_true(pm_test_now_ms() < deadline);
    if (poll(pfd, 2 + n_pipes, 1000) <= 0)
      continue;
    for (size_t i = 0; i < n_pipes; i++) {
      fake_pipe *f = &pipes[i];
      int fd;
      if ((pfd[2 + i].revents & POLLIN) == 0)
        continue;
      fd = accept(f->lfd, NULL, NULL);
      assert_true(fd >= 0);
      if (f->served < f->n_answers)
        fake_answer_cli(fd, f->answers[f->served++]);
      close(fd);
    }
    if (pfd[0].revents & (POLLIN | POLLHUP))
      drain(&out_fd, r->out, sizeof(r->out), &have_out);
    if (pfd[1].revents & (POLLIN | POLLHUP))
      drain(&err_fd, r->err, sizeof(r->err), &have_err);
  }
  for (size_t i = 0; i < n_pipes; i++) {
    close(pipes[i].lfd);
    unlink(pipes[i].path);
  }
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status));
  r->status = WEXITSTATUS(status);
  assert_terminal_safe("stdout", r->out);
  assert_terminal_safe("stderr", r->err);
}

static void run_against_fake(const char *path, const char *const *args,
                             const char *const *const *answers, size_t n_answers, fake_run *r) {
  fake_pipe pipe = {.path = path, .answers = answers, .n_answers = n_answers};
  run_against_fakes(&pipe, 1, args, r);
}

/* call: the Result and the Message of an error, the answer's Data and -v's lines (JSON and
 * XML) show every control character escaped, and plain UTF-8 as it is. */
static void test_cli_call_escapes_the_service(void **state) {
  char path[160];
  const char *const json_args[] = {"call", "-v", "-c", path, "GetState", NULL};
  const char *const xml_args[] = {"call", "--xml", "-v", "-c", path, "GetState", NULL};
  static const char *const json_answer[] = {
      "{\"Response\":{\"Command\":\"GetState\",\"Result\":\"Bad" HOSTILE "\","
      "\"Message\":\"m" HOSTILE " " PLAIN "\",\"Data\":{\"State\":\"S" HOSTILE "\"}}}",
      NULL};
  /* XML takes no C0 control but tab and newline. */
  static const char *const xml_answer[] = {
      "<Response><Command>GetState</Command><Result>Bad\xc2\x9b\x7f\t</Result>"
      "<Message>m\nFORGED " PLAIN "</Message></Response>",
      NULL};
  const char *const *answers[] = {json_answer};
  fake_run r;
  (void)state;
  snprintf(path, sizeof(path), "%s/fake-command", svc.dir);
  run_against_fake(path, json_args, answers, 1, &r);
  assert_int_equal(1, r.status);
  assert_non_null(strstr(r.err, "pipemsg call: GetState: Bad" HOSTILE_TEXT ": m" HOSTILE_TEXT
                                " " PLAIN "\n"));
  assert_non_null(strstr(r.out, "\"State\": \"S" HOSTILE_JSON "\""));
  assert_non_null(strstr(r.err, "< {\"Response\":"));
  assert_non_null(strstr(r.err, "\"Message\":\"m" HOSTILE_JSON " " PLAIN "\""));
  answers[0] = xml_answer;
  run_against_fake(path, xml_args, answers, 1, &r);
  assert_int_equal(1, r.status);
  assert_non_null(strstr(r.err, "pipemsg call: GetState: Bad\\xc2\\x9b\\x7f\\x09: m\\x0aFORGED "
                                PLAIN "\n"));
  assert_non_null(strstr(r.err, "<Result>Bad&#155;&#127;&#9;</Result>"));
  assert_non_null(strstr(r.err, "<Message>m&#10;FORGED " PLAIN "</Message>"));
}

/* Bytes that are not UTF-8 never reach the terminal: the library refuses such a message. */
static void test_cli_call_refuses_what_is_not_utf8(void **state) {
  char path[160];
  const char *const args[] = {"call", "-c", path, "GetState", NULL};
  static const char *const answer[] = {
      "{\"Response\":{\"Command\":\"GetState\",\"Result\":\"Error\","
      "\"Message\":\"\xff\xfe\xc0\xaf\x1b[2J\"}}",
      NULL};
  const char *const *answers[] = {answer};
  fake_run r;
  (void)state;
  snprintf(path, sizeof(path), "%s/fake-command", svc.dir);
  run_against_fake(path, args, answers, 1, &r);
  assert_int_equal(3, r.status);
  assert_non_null(strstr(r.err, "TransportError"));
}

/* watch: an event's Type and Data, and a Disconnect's Reason (a Time that is no time is refused
 * by the library, test_event_client). */
static void test_cli_watch_escapes_the_service(void **state) {
  char path[160];
  const char *const args[] = {"watch", "-e", path, "--count", "1", NULL};
  const char *const json_args[] = {"watch", "-e", path, "--count", "1", "--json", NULL};
#define HANDSHAKE "{\"Handshake\":{\"Seq\":%lld,\"Version\":1,\"Epoch\":5,\"HeartbeatMs\":60000}}"
  static const char *const refused[] = {
      HANDSHAKE, "{\"Disconnect\":{\"Reason\":\"Gone" HOSTILE "\",\"Message\":\"m" HOSTILE "\"}}",
      NULL};
  static const char *const event[] = {
      HANDSHAKE,
      "{\"Event\":{\"Id\":1,\"Type\":\"T" HOSTILE "\",\"Time\":\"2026-11-30T12:00:00.000Z\","
      "\"Data\":{\"K\":\"" HOSTILE " " PLAIN "\"}}}",
      NULL};
#undef HANDSHAKE
  const char *const *answers[] = {refused, event};
  fake_run r;
  (void)state;
  snprintf(path, sizeof(path), "%s/fake-event", svc.dir);
  /* The library's debug lines carry the reason too. */
  setenv("PIPEMSG_DEBUG", "1", 1);
  run_against_fake(path, args, answers, 2, &r);
  unsetenv("PIPEMSG_DEBUG");
  assert_int_equal(0, r.status);
  assert_non_null(strstr(r.err, "pipemsg watch: disconnected: Gone" HOSTILE_TEXT "\n"));
  assert_non_null(strstr(r.err, "pipemsg: event client: disconnected: Gone" HOSTILE_TEXT));
  assert_non_null(strstr(r.out, "2026-11-30T12:00:00.000Z #1 T" HOSTILE_TEXT
                                " {\"K\":\"" HOSTILE_JSON " " PLAIN "\"}\n"));
  run_against_fake(path, json_args, &answers[1], 1, &r);
  assert_int_equal(0, r.status);
  assert_non_null(strstr(r.out, "\"Type\":\"T" HOSTILE_JSON "\""));
}

/* call --wait: the attempt's LastError, and why the event pipe refused us. */
static void test_cli_call_wait_escapes_the_service(void **state) {
  char command[160], event[160];
  const char *const args[] = {"call", "-c", command, "-e", event, "--wait", "StartVpn", NULL};
  const char *const refused_args[] = {"call", "-c", command, "-e", event, "--wait",
                                      "--connect-timeout-ms", "500", "StartVpn", NULL};
  static const char *const ok[] = {
      "{\"Response\":{\"Command\":\"StartVpn\",\"Result\":\"Ok\"}}", NULL};
  /* The attempt has failed before the command's answer comes: it is over at once. */
  static const char *const failed[] = {
      "{\"Handshake\":{\"Seq\":%lld,\"Version\":1,\"Epoch\":5,\"HeartbeatMs\":60000}}",
      "{\"Event\":{\"Id\":1,\"Type\":\"StateChanged\",\"Data\":{\"State\":\"Disconnected\","
      "\"Error\":\"E" HOSTILE "\"}}}",
      NULL};
  /* Refused before the handshake is answered, at every try. */
  static const char *const refusal[] = {
      "{\"Disconnect\":{\"Reason\":\"NotAuthorized" HOSTILE "\"}}", NULL};
  const char *const *oks[] = {ok};
  const char *const *events[] = {failed};
  const char *const *refusals[] = {refusal, refusal, refusal, refusal,
                                   refusal, refusal, refusal, refusal};
  fake_pipe pipes[] = {{.path = command, .answers = oks, .n_answers = 1},
                       {.path = event, .answers = events, .n_answers = 1}};
  fake_run r;
  (void)state;
  snprintf(command, sizeof(command), "%s/fake-command", svc.dir);
  snprintf(event, sizeof(event), "%s/fake-event", svc.dir);
  run_against_fakes(pipes, 2, args, &r);
  assert_int_equal(1, r.status);
  assert_non_null(strstr(r.err, "the attempt failed: LastError: E" HOSTILE_TEXT "\n"));
  pipes[0].n_answers = 0;
  pipes[1].answers = refusals;
  pipes[1].n_answers = sizeof(refusals) / sizeof(refusals[0]);
  run_against_fakes(pipes, 2, refused_args, &r);
  assert_int_equal(6, r.status);
  assert_non_null(strstr(r.err, "cannot observe the event pipe: NotAuthorized\\x1b]0;PWNED"));
}

/* commands and describe: the names, docs, types, values, defaults and results of a contract
 * the service gave. */
static void test_cli_describe_escapes_the_service(void **state) {
  char path[160];
  const char *const commands[] = {"commands", "-c", path, NULL};
  const char *const commands_json[] = {"commands", "--json", "-c", path, NULL};
  const char *const describe[] = {"describe", "-c", path, "Evil" HOSTILE_RAW, NULL};
  static const char *const contract[] = {
      "{\"Response\":{\"Command\":\"GetCommands\",\"Result\":\"Ok\",\"Data\":{\"Commands\":["
      "{\"Name\":\"Evil" HOSTILE "\",\"Doc\":\"doc" HOSTILE " " PLAIN "\",\"Params\":["
      "{\"Name\":\"P" HOSTILE "\",\"Type\":\"enumeration" HOSTILE "\",\"Values\":[\"v" HOSTILE
      "\"],\"Default\":\"d" HOSTILE "\",\"Format\":\"f" HOSTILE "\",\"Doc\":\"pd" HOSTILE "\"}],"
      "\"Data\":[],\"Results\":[\"R" HOSTILE "\"]},"
      "{\"Name\":\"Plain\",\"Doc\":\"" PLAIN "\",\"Params\":[],\"Data\":[],\"Results\":[]}],"
      "\"Events\":[],\"Types\":[],\"Formats\":[]}}}",
      NULL};
  const char *const *answers[] = {contract};
  char plain_line[128];
  fake_run r;
  (void)state;
  snprintf(path, sizeof(path), "%s/fake-command", svc.dir);
  run_against_fake(path, commands, answers, 1, &r);
  assert_int_equal(0, r.status);
  assert_non_null(strstr(r.out, "Evil" HOSTILE_TEXT "  doc" HOSTILE_TEXT " " PLAIN "\n"));
  /* The column is as wide as the longest name as printed. */
  snprintf(plain_line, sizeof(plain_line), "\nPlain%*s  " PLAIN "\n",
           (int)(strlen("Evil" HOSTILE_TEXT) - strlen("Plain")), "");
  assert_non_null(strstr(r.out, plain_line));
  run_against_fake(path, commands_json, answers, 1, &r);
  assert_int_equal(0, r.status);
  assert_non_null(strstr(r.out, "\"Doc\": \"doc" HOSTILE_JSON " " PLAIN "\""));
  run_against_fake(path, describe, answers, 1, &r);
  assert_int_equal(0, r.status);
  assert_non_null(strstr(r.out, "Evil" HOSTILE_TEXT ": doc" HOSTILE_TEXT " " PLAIN "\n"));
  assert_non_null(strstr(r.out, "  P" HOSTILE_TEXT ": enumeration" HOSTILE_TEXT " (v"
                                HOSTILE_TEXT "), format f" HOSTILE_TEXT ", default \"d"
                                HOSTILE_JSON "\"\n      pd" HOSTILE_TEXT "\n"));
  assert_non_null(strstr(r.out, "Results: Ok, BadRequest, R" HOSTILE_TEXT "\n"));
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
      cmocka_unit_test_setup_teardown(test_cli_watch_xml_data_typed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_readable_over_xml, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_stops_on_signal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_usage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_observes_by_default, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_consume_confirms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_output_closed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_unwritten_event_stays_queued, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_not_an_event_pipe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_consume_waits_for_the_slot, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cli_pipes_from_environment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_man_page_from_contract, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_completion, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_13_pipe_names_agree, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_escapes_the_service, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_refuses_what_is_not_utf8, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_watch_escapes_the_service, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_call_wait_escapes_the_service, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cli_describe_escapes_the_service, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
