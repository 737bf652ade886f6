/* pipemsgd's VPN commands over the real command pipe. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static pm_test_service svc;

static int setup(void **state) {
  static const char *const args[] = {"--connect-delay-ms", "200", NULL};
  (void)state;
  pm_test_service_start(&svc, args);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (svc.pid > 0)
    assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
  return 0;
}

static const char *state_of(void) {
  static char buf[32];
  json_t *data = NULL;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(data, "State")));
  json_decref(data);
  return buf;
}

/* Polls GetState (each call is a real round trip) until the state is reached. */
static void await_state(const char *want) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  while (strcmp(state_of(), want) != 0)
    assert_true(pm_test_now_ms() < deadline);
}

static void test_service_get_version(void **state) {
  json_t *data = NULL;
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, &data));
  assert_string_equal(PM_VERSION, json_string_value(json_object_get(data, "Version")));
  assert_int_equal(1, json_integer_value(json_object_get(data, "Protocol")));
  json_decref(data);
}

static void test_service_start_stop_cycle(void **state) {
  json_t *data = NULL;
  (void)state;
  assert_string_equal("Disconnected", state_of());
  /* Before any start the Location is the contract's default. */
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  assert_string_equal("auto", json_string_value(json_object_get(data, "Location")));
  json_decref(data);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s, s:b}", "Location", "de",
                                                   "EnableKillSwitch", 1),
                                         NULL));
  assert_string_equal("TooManyRequests",
                      pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  await_state("Connected");
  assert_string_equal("TooManyRequests",
                      pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  assert_string_equal("de", json_string_value(json_object_get(data, "Location")));
  assert_true(json_is_true(json_object_get(data, "KillSwitch")));
  assert_non_null(json_string_value(json_object_get(data, "Since")));
  json_decref(data);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  await_state("Disconnected");
  assert_string_equal("TooManyRequests", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
}

static void test_service_stop_while_connecting(void **state) {
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  assert_string_equal("Connecting", state_of());
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  await_state("Disconnected");
}

static void test_service_traffic_grows_while_connected(void **state) {
  json_t *a = NULL, *b = NULL;
  uint64_t deadline = pm_test_now_ms() + 10000;
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetTraffic", NULL, &a));
  assert_int_equal(0, json_integer_value(json_object_get(a, "BytesReceived")));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  await_state("Connected");
  do {
    json_decref(b);
    assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetTraffic", NULL, &b));
    assert_true(pm_test_now_ms() < deadline);
  } while (json_integer_value(json_object_get(b, "BytesReceived")) == 0);
  assert_true(json_integer_value(json_object_get(b, "BytesSent")) > 0);
  json_decref(a);
  json_decref(b);
}

static void test_service_validates_params(void **state) {
  (void)state;
  assert_string_equal("BadRequest",
                      pm_test_call(svc.command_pipe, "StartVpn",
                                   json_pack("{s:i}", "Location", 5), NULL));
  assert_string_equal("BadRequest",
                      pm_test_call(svc.command_pipe, "StartVpn",
                                   json_pack("{s:s}", "EnableKillSwitch", "maybe"), NULL));
  assert_string_equal("Disconnected", state_of());
  /* XML delivers booleans as text; "true" is accepted. */
  {
    int fd = pm_test_connect(svc.command_pipe);
    char *resp;
    assert_true(fd >= 0);
    assert_int_equal(0, pm_test_send_frame(fd, "<Request><Command>StartVpn</Command><Params>"
                                               "<Location>se</Location><EnableKillSwitch>true"
                                               "</EnableKillSwitch></Params></Request>"));
    resp = pm_test_recv_frame(fd, 5000, NULL);
    close(fd);
    assert_non_null(resp);
    assert_non_null(strstr(resp, "<Result>Ok</Result>"));
    free(resp);
  }
}

/* One request (JSON or XML) written as is; returns the raw response (static buffer). */
static const char *raw_call(const char *request) {
  static char buf[1024];
  int fd = pm_test_connect(svc.command_pipe);
  char *resp;
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, request));
  resp = pm_test_recv_frame(fd, 5000, NULL);
  close(fd);
  assert_non_null(resp);
  snprintf(buf, sizeof(buf), "%s", resp);
  free(resp);
  return buf;
}

/* A Location is a name: XML cannot carry U+0001, so an event with it wedged every XML session;
 * spaces, slashes and the like have no business in a name either. */
/* Issue 10: Params are checked against the contract before any handler runs, in both
 * encodings; unknown commands and parameters get the closest known name. Before it, a
 * misspelt parameter was ignored: StartVpn Locaton=de answered Ok and connected to "auto". */
static void test_service_params_checked_against_the_contract(void **state) {
  const char *resp;
  (void)state;
  resp = raw_call("{\"Request\":{\"Command\":\"StartVpn\",\"Id\":3,"
                  "\"Params\":{\"Locaton\":\"de\"}}}");
  assert_non_null(strstr(resp, "\"BadRequest\""));
  assert_non_null(strstr(resp, "unknown parameter 'Locaton' for StartVpn; did you mean "
                               "'Location'?"));
  assert_non_null(strstr(resp, "\"Id\":3"));
  assert_string_equal("Disconnected", state_of());
  resp = raw_call("<Request><Command>StartVpn</Command><Params><Locaton>de</Locaton></Params>"
                  "</Request>");
  assert_non_null(strstr(resp, "<Result>BadRequest</Result>"));
  assert_non_null(strstr(resp, "did you mean 'Location'?"));
  /* XML text in the declared type: a kill switch that is not true or false is refused. */
  resp = raw_call("<Request><Command>StartVpn</Command><Params><EnableKillSwitch>yes"
                  "</EnableKillSwitch></Params></Request>");
  assert_non_null(strstr(resp, "<Result>BadRequest</Result>"));
  assert_non_null(strstr(resp, "EnableKillSwitch must be a boolean (true or false)"));
  resp = raw_call("{\"Request\":{\"Command\":\"GetStat\"}}");
  assert_non_null(strstr(resp, "unknown command 'GetStat'; did you mean 'GetState'?"));
  /* Test commands are neither served nor suggested without --test-commands. */
  resp = raw_call("{\"Request\":{\"Command\":\"EmitEvnt\"}}");
  assert_non_null(strstr(resp, "\"BadRequest\""));
  assert_null(strstr(resp, "EmitEvent"));
  assert_string_equal("Disconnected", state_of());
}

/* GetCommands lists what this service accepts: no test commands without --test-commands. */
static void test_service_get_commands(void **state) {
  json_t *data = NULL, *item;
  size_t i;
  bool start_vpn = false;
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetCommands", NULL, &data));
  json_array_foreach(json_object_get(data, "Commands"), i, item) {
    const char *name = json_string_value(json_object_get(item, "Name"));
    assert_string_not_equal("EmitEvent", name);
    assert_string_not_equal("Echo", name);
    start_vpn |= strcmp(name, "StartVpn") == 0;
  }
  assert_true(start_vpn);
  assert_true(json_array_size(json_object_get(data, "Events")) >= 4);
  json_decref(data);
}

static void hardening_05_location_charset(void **state) {
  static const char *const bad[] = {"de\\u0001", "de x", "de/..", "de;true", "d\\u00e9",
                                    "de\\n"};
  char req[256];
  const char *resp;
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(req, sizeof(req),
             "{\"Request\":{\"Command\":\"StartVpn\",\"Params\":{\"Location\":\"%s\"}}}",
             bad[i]);
    resp = raw_call(req);
    assert_non_null(strstr(resp, "\"BadRequest\""));
    assert_non_null(strstr(resp, "Location must be"));
  }
  assert_string_equal("Disconnected", state_of());
  /* Domains keep to DNS name characters. */
  resp = raw_call("{\"Request\":{\"Command\":\"ConfigureBypassDomains\",\"Params\":"
                  "{\"Domains\":[\"a\\u0001.example\"]}}}");
  assert_non_null(strstr(resp, "\"BadRequest\""));
  assert_non_null(strstr(resp, "Domains[0]"));
  /* Every character the set allows. */
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", "de-1_west.a"), NULL));
  {
    json_t *data = NULL;
    assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
    assert_string_equal("de-1_west.a", json_string_value(json_object_get(data, "Location")));
    json_decref(data);
  }
}

static json_t *state_data(void) {
  json_t *data = NULL;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  return data;
}

static void test_service_settings_commands(void **state) {
  json_t *data = NULL;
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EnableKillSwitch", NULL, NULL));
  data = state_data();
  assert_true(json_is_true(json_object_get(data, "KillSwitch")));
  json_decref(data);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "DisableKillSwitch", NULL, NULL));
  data = state_data();
  assert_true(json_is_false(json_object_get(data, "KillSwitch")));
  json_decref(data);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "SetReconnectionEnabled",
                                         json_pack("{s:b}", "Enabled", 0), NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "IsReconnectionEnabled", NULL, &data));
  assert_true(json_is_false(json_object_get(data, "Enabled")));
  json_decref(data);
  assert_string_equal("BadRequest",
                      pm_test_call(svc.command_pipe, "SetReconnectionEnabled", NULL, NULL));
}

/* Waits until the service has logged more than `before` ends of a tunnel, without asking it
 * GetState (which a test of GetState's answer must not do in between). */
static void await_down(int before) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  while (pm_test_log_count(&svc, "vpn state=Disconnected ") <= before) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
}

/* A tunnel to "nl" started and stopped with no GetState in between (the stop awaited in the
 * log); then GetState's Data, which must say Disconnected. */
static json_t *up_and_down_unseen(void) {
  int downs = pm_test_log_count(&svc, "vpn state=Disconnected ");
  json_t *data;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", "nl"), NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  await_down(downs);
  data = state_data();
  assert_string_equal("Disconnected", json_string_value(json_object_get(data, "State")));
  return data;
}

/* GetState's answer follows every change, also one it does not see happen: a tunnel started
 * and stopped between two calls is back to Disconnected, but with the new Location and Since,
 * and a reconnection setting changed is in the next answer. */
static void test_service_get_state_follows_every_change(void **state) {
  json_t *data = state_data();
  char since[64];
  (void)state;
  assert_true(json_is_true(json_object_get(data, "ReconnectionEnabled")));
  snprintf(since, sizeof(since), "%s", json_string_value(json_object_get(data, "Since")));
  json_decref(data);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "SetReconnectionEnabled",
                                         json_pack("{s:b}", "Enabled", 0), NULL));
  data = state_data();
  assert_true(json_is_false(json_object_get(data, "ReconnectionEnabled")));
  json_decref(data);
  data = up_and_down_unseen();
  assert_string_equal("nl", json_string_value(json_object_get(data, "Location")));
  assert_string_not_equal(since, json_string_value(json_object_get(data, "Since")));
  snprintf(since, sizeof(since), "%s", json_string_value(json_object_get(data, "Since")));
  json_decref(data);
  /* The same again: only Since tells the answers apart. */
  data = up_and_down_unseen();
  assert_string_not_equal(since, json_string_value(json_object_get(data, "Since")));
  json_decref(data);
}

static void test_service_bypass_domains(void **state) {
  json_t *data;
  int fd;
  char *resp;
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "ConfigureBypassDomains",
                                         json_pack("{s:[s,s]}", "Domains", "example.com",
                                                   "*.corp.example"),
                                         NULL));
  data = state_data();
  assert_int_equal(2, json_array_size(json_object_get(data, "BypassDomains")));
  assert_string_equal("*.corp.example",
                      json_string_value(json_array_get(json_object_get(data, "BypassDomains"), 1)));
  json_decref(data);
  assert_string_equal("BadRequest", pm_test_call(svc.command_pipe, "ConfigureBypassDomains",
                                                 json_pack("{s:[s]}", "Domains", "bad domain"),
                                                 NULL));
  assert_string_equal("BadRequest", pm_test_call(svc.command_pipe, "ConfigureBypassDomains",
                                                 json_pack("{s:s}", "Domains", "a.com"), NULL));
  assert_string_equal("BadRequest", pm_test_call(svc.command_pipe, "ConfigureBypassDomains",
                                                 json_pack("{s:[s]}", "Domains", "-a.com"), NULL));
  /* XML: one <Item> is still a list; <Domains/> empties it. */
  fd = pm_test_connect(svc.command_pipe);
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, "<Request><Command>ConfigureBypassDomains</Command>"
                                             "<Params><Domains><Item>only.example</Item>"
                                             "</Domains></Params></Request>"));
  resp = pm_test_recv_frame(fd, 5000, NULL);
  close(fd);
  assert_non_null(resp);
  assert_non_null(strstr(resp, "<Result>Ok</Result>"));
  free(resp);
  data = state_data();
  assert_int_equal(1, json_array_size(json_object_get(data, "BypassDomains")));
  json_decref(data);
  fd = pm_test_connect(svc.command_pipe);
  assert_int_equal(0, pm_test_send_frame(fd, "<Request><Command>ConfigureBypassDomains</Command>"
                                             "<Params><Domains/></Params></Request>"));
  resp = pm_test_recv_frame(fd, 5000, NULL);
  close(fd);
  assert_non_null(strstr(resp, "<Result>Ok</Result>"));
  free(resp);
  data = state_data();
  assert_int_equal(0, json_array_size(json_object_get(data, "BypassDomains")));
  json_decref(data);
}

static void test_service_limits_at_and_past_the_maximum(void **state) {
  char location[66];
  json_t *domains = json_array();
  (void)state;
  memset(location, 'x', 65);
  location[64] = '\0'; /* 64 bytes: the most a Location may have */
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", location), NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  await_state("Disconnected");
  location[64] = 'x';
  location[65] = '\0';
  assert_string_equal("BadRequest", pm_test_call(svc.command_pipe, "StartVpn",
                                                 json_pack("{s:s}", "Location", location), NULL));
  for (int i = 0; i < 256; i++) {
    char d[32];
    snprintf(d, sizeof(d), "host%d.example", i);
    json_array_append_new(domains, json_string(d));
  }
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "ConfigureBypassDomains",
                                         json_pack("{s:O}", "Domains", domains), NULL));
  json_array_append_new(domains, json_string("one-too-many.example"));
  assert_string_equal("BadRequest", pm_test_call(svc.command_pipe, "ConfigureBypassDomains",
                                                 json_pack("{s:O}", "Domains", domains), NULL));
  json_decref(domains);
}

static void test_service_settings_persist_in_data_dir(void **state) {
  char dir[160];
  const char *args[] = {"--connect-delay-ms", "200", "--data-dir", dir, NULL};
  json_t *data;
  (void)state;
  snprintf(dir, sizeof(dir), "%s/data", svc.dir);
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EnableKillSwitch", NULL, NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "ConfigureBypassDomains",
                                         json_pack("{s:[s]}", "Domains", "kept.example"), NULL));
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, args);
  data = state_data();
  assert_true(json_is_true(json_object_get(data, "KillSwitch")));
  assert_string_equal("kept.example",
                      json_string_value(json_array_get(json_object_get(data, "BypassDomains"), 0)));
  json_decref(data);
}

static void restart_with(const char *const *args) {
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, args);
}

static void test_service_hook_backend(void **state) {
  static const char *const args[] = {"--backend", "hook", "--hook-shell", "--up-cmd",
                                     "test \"$PIPEMSG_LOCATION\" = de || { echo no route to "
                                     "$PIPEMSG_LOCATION >&2; exit 3; }",
                                     "--down-cmd", "true", "--iface", "lo", NULL};
  json_t *data;
  (void)state;
  restart_with(args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", "de"), NULL));
  await_state("Connected");
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetTraffic", NULL, &data));
  assert_true(json_integer_value(json_object_get(data, "BytesReceived")) > 0);
  json_decref(data);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  await_state("Disconnected");
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", "mars"), NULL));
  await_state("Disconnected");
  data = NULL;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  assert_non_null(strstr(json_string_value(json_object_get(data, "LastError")),
                         "exited with status 3: no route to mars"));
  json_decref(data);
}

static void test_service_hook_backend_needs_up_cmd(void **state) {
  const char *argv[] = {PM_BIN_DIR "/pipemsgd", "-c", svc.command_pipe, "-e", svc.event_pipe,
                        "--backend", "hook", NULL};
  const char *err;
  (void)state;
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_int_equal(2, pm_test_run(argv, NULL, &err));
  assert_non_null(strstr(err, "up-cmd is required"));
}

/* StartVpn's EnableKillSwitch sets the kept setting either way before connecting, false too. */
static void test_service_start_turns_the_kill_switch_off(void **state) {
  json_t *data = NULL;
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EnableKillSwitch", NULL, NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:b}", "EnableKillSwitch", 0), NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  assert_true(json_is_false(json_object_get(data, "KillSwitch")));
  /* Started: Connected already when the call came late (valgrind, a loaded machine). */
  assert_true(strcmp("Connecting", json_string_value(json_object_get(data, "State"))) == 0 ||
              strcmp("Connected", json_string_value(json_object_get(data, "State"))) == 0);
  json_decref(data);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  await_state("Disconnected");
}

/* --test-commands: Echo without Params answers no Data; an EmitEvent whose event could not be
 * written in one of the encodings within --max-message is a BadRequest, and publishes none. */
static void test_service_test_commands_edges(void **state) {
  static const char *const args[] = {"--test-commands", "--max-message", "4096", NULL};
  char text[2001], request[2100];
  json_t *data = NULL;
  const char *result;
  (void)state;
  restart_with(args);
  result = raw_call("{\"Request\":{\"Command\":\"Echo\"}}");
  assert_non_null(strstr(result, "\"Result\":\"Ok\""));
  assert_null(strstr(result, "\"Data\""));
  /* 2000 '<' are 2000 bytes in JSON and 8000 in XML (&lt;): past 4096 there. */
  memset(text, '<', sizeof(text) - 1);
  text[sizeof(text) - 1] = '\0';
  snprintf(request, sizeof(request), "{\"Request\":{\"Command\":\"EmitEvent\",\"Params\":"
           "{\"Type\":\"Big\",\"Data\":{\"T\":\"%s\"}}}}", text);
  result = raw_call(request);
  assert_non_null(strstr(result, "\"Result\":\"BadRequest\""));
  assert_non_null(strstr(result, "the event would exceed the largest message or its node limit"));
  data = NULL;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetStats", NULL, &data));
  assert_int_equal(0, json_integer_value(
                          json_object_get(json_object_get(data, "Events"), "Published")));
  json_decref(data);
}

/* The flags pipemsgd (pid) holds path open with, from /proc (-1 when it does not). */
static long open_flags(pid_t pid, const char *path) {
  char dir[64], link[320], target[256], info[320], text[512];
  struct dirent *e;
  long flags = -1;
  DIR *d;
  snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
  d = opendir(dir);
  assert_non_null(d);
  while (flags < 0 && (e = readdir(d)) != NULL) {
    ssize_t n;
    FILE *f;
    snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
    n = readlink(link, target, sizeof(target) - 1);
    if (n < 0)
      continue;
    target[n] = '\0';
    if (strcmp(target, path) != 0)
      continue;
    snprintf(info, sizeof(info), "/proc/%ld/fdinfo/%s", (long)pid, e->d_name);
    f = fopen(info, "r");
    assert_non_null(f);
    while (fgets(text, sizeof(text), f) != NULL)
      if (sscanf(text, "flags: %lo", &flags) == 1)
        break;
    fclose(f);
  }
  closedir(d);
  return flags;
}

/* --log-target file: the log goes to --log-file (appended, stamped), not to stderr; a file
 * that cannot be opened stops pipemsgd before it starts. The file is not inherited by hook
 * commands (close-on-exec), not readable by others, and never reached through a symlink. */
static void test_service_log_file(void **state) {
  char path[192], bad[192], line[192], link[192], target[192];
  const char *args[] = {"--log-target", "file", "--log-file", path, "--log-level", "debug", NULL};
  const char *argv[] = {PM_BIN_DIR "/pipemsgd", "-c", svc.command_pipe, "-e", svc.event_pipe,
                        "--log-target", "file", "--log-file", bad, NULL};
  /* Pipes it cannot make: were the symlink followed, it would still exit, not serve. */
  const char *linked[] = {PM_BIN_DIR "/pipemsgd", "-c", bad, "-e", bad, "--log-target", "file",
                          "--log-file", link, NULL};
  pm_test_service in_file = svc;
  const char *err;
  struct stat st;
  long flags;
  (void)state;
  snprintf(path, sizeof(path), "%s/pipemsgd.log", svc.dir);
  snprintf(bad, sizeof(bad), "%s/no-such-dir/pipemsgd.log", svc.dir);
  restart_with(args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
  flags = open_flags(svc.pid, path);
  assert_true(flags >= 0);
  assert_true((flags & O_CLOEXEC) != 0);
  assert_true((flags & O_APPEND) != 0);
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_int_equal(0, stat(path, &st));
  assert_int_equal(0, st.st_mode & 0027);
  snprintf(in_file.log_path, sizeof(in_file.log_path), "%s/pipemsgd.log", svc.dir);
  assert_non_null(strstr(pm_test_service_log(&in_file), "command received"));
  /* The call's line, field by field as it always read. */
  snprintf(line, sizeof(line), "pipemsgd: info: command pid=%lld uid=%lld command=GetVersion "
           "result=Ok duration_ms=", (long long)getpid(), (long long)getuid());
  assert_non_null(strstr(pm_test_service_log(&in_file), line));
  assert_non_null(strstr(strstr(pm_test_service_log(&in_file), line), " reason=\"ok\"\n"));
  assert_null(strstr(pm_test_service_log(&svc), "command=GetVersion"));
  assert_int_equal(1, pm_test_run(argv, NULL, &err));
  assert_non_null(strstr(err, "pipemsgd: cannot open log file"));
  /* A symlink in the log's place: refused, and the file it names is left alone. */
  snprintf(target, sizeof(target), "%s/elsewhere", svc.dir);
  snprintf(link, sizeof(link), "%s/linked.log", svc.dir);
  fclose(fopen(target, "w"));
  assert_int_equal(0, symlink(target, link));
  assert_int_equal(1, pm_test_run(linked, NULL, &err));
  assert_non_null(strstr(err, "pipemsgd: cannot open log file"));
  assert_int_equal(0, stat(target, &st));
  assert_int_equal(0, st.st_size);
}

/* A flood of connections, and the lines per second pipemsgd is told to log of each kind. */
#define FLOOD 2000
#define FLOOD_PER_SECOND 5

/* Waits until GetStats' group.a plus group.b (NULL: none) reaches FLOOD: every connection
 * ended and was counted. */
static void await_flood_counted(const char *group, const char *a, const char *b) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)pm_test_margin_ms(30000);
  int64_t n;
  while ((n = pm_test_stat(svc.command_pipe, group, a) +
              (b != NULL ? pm_test_stat(svc.command_pipe, group, b) : 0)) < FLOOD) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
  assert_int_equal(FLOOD, n);
}

/* After a flood that took elapsed_ms: at most FLOOD_PER_SECOND lines with text per window of a
 * second, and once the service has stopped (which writes the summary still owed) the lines
 * and the summaries' counts add up to the flood, one each. */
static void assert_flood_logged(const char *text, const char *kind, uint64_t elapsed_ms) {
  int lines;
  assert_int_equal(0, pm_test_service_stop(&svc));
  lines = pm_test_log_count(&svc, text);
  assert_true(lines >= FLOOD_PER_SECOND);
  assert_true(lines <= FLOOD_PER_SECOND * (int)(elapsed_ms / 1000 + 1));
  assert_int_equal(FLOOD, lines + pm_test_log_suppressed(&svc, kind));
}

/* Waits up to ms for a summary of kind in the log of the running service. */
static void await_summary(const char *kind, long ms) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)ms;
  while (pm_test_log_suppressed(&svc, kind) == 0) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(50);
  }
}

static const char *const flood_args[] = {"--log-rejections-per-second", "5", NULL};

/* An allowed user connecting in a loop while the client slot is taken is told Busy each time,
 * and each time counted (BusyRejections), but logged a few times a second only. */
static void test_service_busy_flood_log_limited(void **state) {
  uint64_t start;
  int held;
  (void)state;
  restart_with(flood_args);
  held = pm_test_event_attach(svc.event_pipe, NULL, (int)pm_test_margin_ms(2500), NULL);
  start = pm_test_now_ms();
  for (int i = 0; i < FLOOD; i++) {
    int fd = pm_test_connect(svc.event_pipe);
    assert_true(fd >= 0);
    /* Told Busy at its handshake, whatever the service makes of a connection before it. */
    assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1}}"));
    close(fd);
  }
  await_flood_counted("Events", "BusyRejections", NULL);
  /* The summary is due while the service runs (10 s after the first line held back), not only
   * at its stop. */
  await_summary("busy", pm_test_margin_ms(20000));
  close(held);
  assert_flood_logged(" busy reason=\"Busy\"", "busy", pm_test_now_ms() - start);
}

/* Connecting and closing at once on the command pipe, which anyone who can connect may do
 * before any check of who it is: one line per connection ("command=-"), within the limit. */
static void test_service_no_request_flood_log_limited(void **state) {
  uint64_t start;
  (void)state;
  restart_with(flood_args);
  start = pm_test_now_ms();
  for (int i = 0; i < FLOOD; i++) {
    int fd = pm_test_connect(svc.command_pipe);
    assert_true(fd >= 0);
    close(fd);
  }
  /* Closed before a request, or turned away (TooManyRequests) while many were in line. */
  await_flood_counted("Commands", "NoRequest", "Failed");
  assert_flood_logged(" command=- ", "no-request", pm_test_now_ms() - start);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_service_get_version, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_start_stop_cycle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_stop_while_connecting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_traffic_grows_while_connected, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_service_validates_params, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_params_checked_against_the_contract, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_service_get_commands, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_05_location_charset, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_settings_commands, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_get_state_follows_every_change, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_service_bypass_domains, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_limits_at_and_past_the_maximum, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_service_settings_persist_in_data_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_hook_backend, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_hook_backend_needs_up_cmd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_start_turns_the_kill_switch_off, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_service_test_commands_edges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_log_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_busy_flood_log_limited, setup, teardown),
      cmocka_unit_test_setup_teardown(test_service_no_request_flood_log_limited, setup,
                                      teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
