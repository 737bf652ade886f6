/* Conformance: every command and every event type of the contract (schema/contract.toml)
 * through a running pipemsgd, in JSON and in XML. Each answer and event is checked against its
 * declaration in C (src/contract). With PM_CONTRACT_RECORD=DIR every payload sent and received
 * is also written to DIR, one file each, for tests/contract/conformance.py to check again with
 * independent validators against the generated schemas. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "contract/contract.h"
#include "testutil.h"

/* The location the simulated backend fails on, for ErrorOccured. */
#define UNREACHABLE "mars"
/* A queue this short overflows at once: EventsLost. */
#define QUEUE_MAX_EVENTS "3"

static pm_test_service svc;
static const char *record_dir;
static int recorded;
/* Which commands and event types were seen answering or published, by contract index. */
static bool command_seen[64], event_seen[64];

static int setup(void **state) {
  static const char *const args[] = {"--test-commands", "--connect-delay-ms", "100",
                                     "--traffic-interval-ms", "50", "--sim-unreachable",
                                     UNREACHABLE, "--queue-max-events", QUEUE_MAX_EVENTS, NULL};
  (void)state;
  record_dir = getenv("PM_CONTRACT_RECORD");
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

static void record(const char *payload, size_t len, pm_encoding enc) {
  char path[512];
  FILE *f;
  if (record_dir == NULL)
    return;
  snprintf(path, sizeof(path), "%s/%04d.%s", record_dir, recorded++,
           enc == PM_ENC_XML ? "xml" : "json");
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(len, fwrite(payload, 1, len, f));
  assert_int_equal(0, fclose(f));
}

static void send_msg(int fd, const pm_msg *m, pm_encoding enc) {
  uint8_t *buf = NULL;
  size_t len = 0;
  char *text;
  assert_pm(0, pm_msg_encode(m, enc, &buf, &len));
  text = malloc(len + 1);
  assert_non_null(text);
  memcpy(text, buf, len);
  text[len] = '\0';
  free(buf);
  record(text, len, enc);
  assert_int_equal(0, pm_test_send_frame(fd, text));
  free(text);
}

static pm_msg *recv_msg(int fd, pm_encoding enc, int timeout_ms) {
  size_t len = 0;
  char *buf = pm_test_recv_frame(fd, timeout_ms, &len);
  pm_msg *m = NULL;
  if (buf == NULL)
    return NULL;
  record(buf, len, enc);
  assert_pm(0, pm_msg_decode(buf, len, &m, NULL));
  free(buf);
  return m;
}

static void fail_with(const char *what, const char *why) {
  print_error("%s: %s\n", what, why);
  fail();
}

/* Checks an answer against its command's declaration; returns its Result. */
static const char *check_answer(const pm_msg *resp, const pm__ct_command *c, pm_encoding enc) {
  static char result[64];
  const json_t *data = json_object_get(pm_msg_fields(resp), "Data");
  const char *r = NULL;
  char why[PM_REASON_MAX];
  bool declared;
  assert_pm(0, pm_msg_get_string(resp, "Result", &r));
  snprintf(result, sizeof(result), "%s", r);
  declared = strcmp(r, "Ok") == 0 || strcmp(r, "BadRequest") == 0;
  for (size_t i = 0; i < c->n_results; i++)
    declared |= strcmp(c->results[i], r) == 0;
  if (!declared)
    fail_with(c->name, "answered a result it does not declare");
  if (strcmp(r, "Ok") != 0)
    return result;
  command_seen[c - pm__contract_commands] = true;
  if (c->any_data)
    return result;
  if (c->n_data == 0) {
    if (data != NULL)
      fail_with(c->name, "answered Data it does not declare");
    return result;
  }
  {
    json_t *typed = NULL;
    if (pm__contract_check(c->data, c->n_data, data, enc == PM_ENC_XML, true, c->name, &typed,
                           why) < 0)
      fail_with(c->name, why);
    json_decref(typed);
  }
  return result;
}

/* One request in enc on a connection of its own; its answer checked. Takes params. */
static const char *call(pm_encoding enc, const char *command, json_t *params, json_t **data) {
  const pm__ct_command *c = pm__contract_command(command, true);
  pm_msg *req = NULL, *resp;
  const char *result;
  int fd = pm_test_connect(svc.command_pipe);
  assert_non_null(c);
  assert_true(fd >= 0);
  assert_pm(0, pm_request_new(command, 7, params, &req));
  send_msg(fd, req, enc);
  pm_msg_free(req);
  resp = recv_msg(fd, enc, 5000);
  close(fd);
  assert_non_null(resp);
  result = check_answer(resp, c, enc);
  if (data != NULL) {
    json_t *got = json_object_get(pm_msg_fields(resp), "Data");
    *data = NULL;
    /* In the declared types, whatever the encoding. */
    if (got != NULL && !c->any_data) {
      char why[PM_REASON_MAX];
      assert_pm(0, pm__contract_check(c->data, c->n_data, got, enc == PM_ENC_XML, true,
                                      c->name, data, why));
    } else if (got != NULL) {
      *data = json_incref(got);
    }
  }
  pm_msg_free(resp);
  return result;
}

/* An event session in enc: attaches (again, while the last session is still being closed),
 * returns the descriptor. */
static int attach(pm_encoding enc) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  for (;;) {
    int fd = pm_test_connect(svc.event_pipe);
    pm_msg *hs = NULL, *m;
    assert_true(fd >= 0);
    assert_pm(0, pm_msg_new("Handshake", &hs));
    assert_pm(0, pm_msg_set_int(hs, "Seq", 1));
    send_msg(fd, hs, enc);
    pm_msg_free(hs);
    m = recv_msg(fd, enc, 5000);
    assert_non_null(m);
    if (strcmp(pm_msg_kind(m), "Handshake") == 0) {
      pm_msg_free(m);
      return fd;
    }
    pm_test_assert_kind(m, "Disconnect"); /* Busy: the last session is not closed yet */
    pm_msg_free(m);
    close(fd);
    assert_true(pm_test_now_ms() < deadline);
  }
}

/* Reads events (answering heartbeats, confirming each), checking each declared one, until
 * one of type want (with State state, when given) has come. */
static void events_until(int fd, pm_encoding enc, const char *want, const char *state) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  for (;;) {
    pm_msg *m = recv_msg(fd, enc, (int)(deadline - pm_test_now_ms()));
    const char *type = NULL;
    const json_t *data;
    const pm__ct_event *e;
    bool done;
    assert_non_null(m);
    if (strcmp(pm_msg_kind(m), "Handshake") == 0) {
      pm_msg *answer = NULL;
      assert_pm(0, pm_msg_new("Handshake", &answer));
      assert_pm(0, pm_msg_set_int(answer, "Seq", pm_test_int_field(m, "Seq")));
      send_msg(fd, answer, enc);
      pm_msg_free(answer);
      pm_msg_free(m);
      continue;
    }
    pm_test_assert_kind(m, "Event");
    assert_pm(0, pm_msg_get_string(m, "Type", &type));
    data = json_object_get(pm_msg_fields(m), "Data");
    e = pm__contract_event(type);
    if (e != NULL) {
      char why[PM_REASON_MAX];
      json_t *typed = NULL;
      if (pm__contract_check(e->fields, e->n_fields, data, enc == PM_ENC_XML, true, type, &typed,
                             why) < 0)
        fail_with(type, why);
      event_seen[e - pm__contract_events] = true;
      done = strcmp(type, want) == 0 &&
             (state == NULL || strcmp(json_string_value(json_object_get(typed, "State")),
                                      state) == 0);
      json_decref(typed);
    } else {
      done = strcmp(type, want) == 0;
    }
    {
      pm_msg *ack = NULL;
      assert_pm(0, pm_msg_new("EventConfirmation", &ack));
      assert_pm(0, pm_msg_set_int(ack, "Id", pm_test_int_field(m, "Id")));
      send_msg(fd, ack, enc);
      pm_msg_free(ack);
    }
    pm_msg_free(m);
    if (done)
      return;
    assert_true(pm_test_now_ms() < deadline);
  }
}

/* Every command and every event type in one encoding. */
static void drive(pm_encoding enc) {
  json_t *data = NULL;
  int fd;
  assert_string_equal("Ok", call(enc, "GetCommands", NULL, NULL));
  assert_string_equal("Ok", call(enc, "GetVersion", NULL, NULL));
  assert_string_equal("Ok", call(enc, "EnableKillSwitch", NULL, NULL));
  assert_string_equal("Ok", call(enc, "DisableKillSwitch", NULL, NULL));
  assert_string_equal("Ok", call(enc, "SetReconnectionEnabled", json_pack("{s:b}", "Enabled", 1),
                                 NULL));
  assert_string_equal("Ok", call(enc, "IsReconnectionEnabled", NULL, NULL));
  assert_string_equal("Ok", call(enc, "ConfigureBypassDomains",
                                 json_pack("{s:[s,s]}", "Domains", "a.example", "*.b.example"),
                                 NULL));
  assert_string_equal("Ok", call(enc, "Echo", json_pack("{s:{s:i}}", "Any", "X", 1), NULL));
  assert_string_equal("Ok", call(enc, "GetStats", NULL, NULL));

  fd = attach(enc);
  assert_string_equal("Ok", call(enc, "StartVpn", json_pack("{s:s}", "Location", "de"), NULL));
  assert_string_equal("TooManyRequests", call(enc, "StartVpn", NULL, NULL));
  events_until(fd, enc, "StateChanged", "Connected");
  events_until(fd, enc, "TrafficChanged", NULL);
  assert_string_equal("Ok", call(enc, "GetTraffic", NULL, NULL));
  /* With the state it reports. */
  assert_string_equal("Ok", call(enc, "GetState", NULL, &data));
  assert_string_equal("Connected", json_string_value(json_object_get(data, "State")));
  assert_int_equal(2, json_array_size(json_object_get(data, "BypassDomains")));
  json_decref(data);
  assert_string_equal("Ok", call(enc, "StopVpn", NULL, NULL));
  assert_string_equal("TooManyRequests", call(enc, "StopVpn", NULL, NULL));
  events_until(fd, enc, "StateChanged", "Disconnected");
  assert_string_equal("Ok", call(enc, "StartVpn", json_pack("{s:s}", "Location", UNREACHABLE),
                                 NULL));
  events_until(fd, enc, "ErrorOccured", NULL);
  assert_string_equal("Ok", call(enc, "GetState", NULL, &data));
  assert_non_null(json_string_value(json_object_get(data, "LastError")));
  json_decref(data);
  close(fd);

  /* More events than the queue holds, no client: the next client gets EventsLost. Declared
   * Data in one, free-form in the other. */
  assert_string_equal("Ok", call(enc, "EmitEvent",
                                 json_pack("{s:s, s:i, s:{s:s, s:s}}", "Type", "ErrorOccured",
                                           "Count", 4, "Data", "Result", "Error", "Message",
                                           "emitted"),
                                 NULL));
  assert_string_equal("Ok", call(enc, "EmitEvent",
                                 json_pack("{s:s, s:i, s:{s:i}}", "Type", "Demo", "Count", 4,
                                           "Data", "N", 1),
                                 NULL));
  /* A declared event type's Data keeps to its declaration, even from EmitEvent. */
  assert_string_equal("BadRequest",
                      call(enc, "EmitEvent",
                           json_pack("{s:s, s:{s:s, s:s}}", "Type", "StateChanged", "Data", "State",
                                     "Sleeping", "Location", "de"),
                           NULL));
  fd = attach(enc);
  events_until(fd, enc, "EventsLost", NULL);
  events_until(fd, enc, "Demo", NULL);
  close(fd);
}

static void test_contract_every_command_and_event_json(void **state) {
  (void)state;
  drive(PM_ENC_JSON);
}

static void test_contract_every_command_and_event_xml(void **state) {
  (void)state;
  drive(PM_ENC_XML);
}

/* Both runs together drove every command to an Ok answer and produced every event type. */
static void test_contract_everything_was_driven(void **state) {
  (void)state;
  for (size_t i = 0; i < pm__contract_n_commands; i++)
    if (!command_seen[i])
      fail_with(pm__contract_commands[i].name, "was not driven to an Ok answer");
  for (size_t i = 0; i < pm__contract_n_events; i++)
    if (!event_seen[i])
      fail_with(pm__contract_events[i].type, "was never published");
}

/* GetCommands lists the commands this service accepts, the test ones included here. */
static void test_contract_get_commands_is_the_contract(void **state) {
  json_t *data = NULL, *item;
  size_t i, n = 0;
  (void)state;
  assert_string_equal("Ok", call(PM_ENC_JSON, "GetCommands", NULL, &data));
  json_array_foreach(json_object_get(data, "Commands"), i, item) {
    const char *name = json_string_value(json_object_get(item, "Name"));
    assert_non_null(pm__contract_command(name, true));
    n++;
  }
  assert_int_equal(pm__contract_n_commands, n);
  assert_int_equal(pm__contract_n_events, json_array_size(json_object_get(data, "Events")));
  json_decref(data);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_contract_every_command_and_event_json),
      cmocka_unit_test(test_contract_every_command_and_event_xml),
      cmocka_unit_test(test_contract_everything_was_driven),
      cmocka_unit_test(test_contract_get_commands_is_the_contract),
  };
  return pm_test_result(cmocka_run_group_tests(tests, setup, teardown));
}
