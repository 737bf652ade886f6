/* The event pipe of a real pipemsgd process, driven over raw sockets: each rule of
 * PROTOCOL §5 has a test that fails if the rule breaks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define T_MS 300      /* shortened handshake, heartbeat and ack timeouts */
#define SLACK_MS 2500 /* a slow machine may be this late, never early */

static pm_test_service svc;

static void start(const char *const *more) {
  const char *args[32] = {"--test-commands", "--handshake-timeout-ms", "300", "--heartbeat-ms",
                          "300", "--ack-timeout-ms", "300", NULL};
  int n = 7;
  for (int i = 0; more != NULL && more[i] != NULL; i++)
    args[n++] = more[i];
  args[n] = NULL;
  pm_test_service_start(&svc, args);
}

static int setup(void **state) {
  (void)state;
  start(NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pm_test_service_cleanup(&svc);
  return 0;
}

static void send_json(int fd, const char *payload) {
  assert_int_equal(0, pm_test_send_frame(fd, payload));
}

static int attach_as(const char *handshake, pm_msg **reply) {
  return pm_test_event_attach(svc.event_pipe, handshake, SLACK_MS, reply);
}

static int64_t stat_of_events(const char *name) {
  return pm_test_stat(svc.command_pipe, "Events", name);
}

static int64_t emit(const char *type, int count) {
  json_t *data = NULL;
  int64_t first;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:i, s:{s:i}}", "Type", type, "Count",
                                                   count, "Data", "N", count),
                                         &data));
  first = json_integer_value(json_object_get(data, "FirstId"));
  json_decref(data);
  return first;
}

static void test_event_pipe_no_handshake_closed(void **state) {
  int fd = pm_test_connect(svc.event_pipe);
  uint64_t start = pm_test_now_ms();
  (void)state;
  assert_true(fd >= 0);
  pm_test_expect_disconnect(fd, "HandshakeTimeout", T_MS + SLACK_MS);
  assert_true(pm_test_now_ms() - start >= T_MS - 50);
  close(fd);
  assert_int_equal(1, stat_of_events("HandshakeFailures"));
}

static void test_event_pipe_handshake_echoed_with_session_fields(void **state) {
  pm_msg *reply;
  int fd;
  (void)state;
  fd = attach_as("{\"Handshake\":{\"Seq\":7,\"Version\":1,\"Client\":\"test\"}}", &reply);
  assert_int_equal(7, pm_test_int_field(reply, "Seq"));
  assert_int_equal(1, pm_test_int_field(reply, "Version"));
  assert_int_equal(T_MS, pm_test_int_field(reply, "HeartbeatMs"));
  assert_int_equal(PM_MAX_MESSAGE_DEFAULT, pm_test_int_field(reply, "MaxMessage"));
  assert_true(pm_test_int_field(reply, "Epoch") > 0);
  pm_msg_free(reply);
  close(fd);
}

static void test_event_pipe_heartbeat_answered_keeps_session(void **state) {
  int fd = attach_as(NULL, NULL);
  int64_t last = 0;
  uint64_t start = pm_test_now_ms();
  (void)state;
  for (int i = 0; i < 5; i++) {
    pm_msg *m = pm_test_recv_msg(fd, T_MS + SLACK_MS);
    char buf[64];
    pm_test_assert_kind(m, "Handshake");
    assert_true(pm_test_int_field(m, "Seq") > last);
    last = pm_test_int_field(m, "Seq");
    snprintf(buf, sizeof(buf), "{\"Handshake\":{\"Seq\":%lld}}", (long long)last);
    pm_msg_free(m);
    send_json(fd, buf);
  }
  /* Five idle intervals went by, each closed by a heartbeat, and the session is still up. */
  assert_true(pm_test_now_ms() - start >= 5 * (T_MS - 50));
  assert_int_equal(0, stat_of_events("HeartbeatFailures"));
  assert_int_equal(1, stat_of_events("Attached"));
  close(fd);
}

static void test_event_pipe_heartbeat_ignored_closed(void **state) {
  int fd = attach_as(NULL, NULL);
  pm_msg *m;
  (void)state;
  m = pm_test_recv_msg(fd, T_MS + SLACK_MS);
  pm_test_assert_kind(m, "Handshake");
  pm_msg_free(m);
  pm_test_expect_disconnect(fd, "HeartbeatTimeout", T_MS + SLACK_MS);
  close(fd);
  assert_int_equal(1, stat_of_events("HeartbeatFailures"));
}

static void test_event_pipe_client_handshake_answered(void **state) {
  int fd = attach_as(NULL, NULL);
  pm_msg *m;
  (void)state;
  send_json(fd, "{\"Handshake\":{\"Seq\":99}}");
  m = pm_test_recv_msg(fd, SLACK_MS);
  pm_test_assert_kind(m, "Handshake");
  assert_int_equal(99, pm_test_int_field(m, "Seq"));
  pm_msg_free(m);
  close(fd);
}

static void test_event_pipe_unconfirmed_durable_redelivered_first(void **state) {
  int64_t a = emit("Alpha", 1), b;
  int fd = attach_as(NULL, NULL);
  pm_msg *m = pm_test_next_event(fd, SLACK_MS);
  (void)state;
  pm_test_assert_kind(m, "Event");
  assert_int_equal(a, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  /* Not confirmed: the service gives up on this client, keeps the event. */
  pm_test_expect_disconnect(fd, "AckTimeout", T_MS + SLACK_MS);
  close(fd);
  b = emit("Beta", 1);
  fd = attach_as(NULL, NULL);
  m = pm_test_next_event(fd, SLACK_MS);
  pm_test_assert_kind(m, "Event");
  assert_int_equal(a, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, a);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(b, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, b);
  close(fd);
  assert_int_equal(1, stat_of_events("Redelivered"));
  assert_int_equal(1, stat_of_events("AckFailures"));
}

static void test_event_pipe_unconfirmed_transient_dropped_connection_kept(void **state) {
  int fd = attach_as(NULL, NULL);
  int64_t t, d;
  pm_msg *m;
  const char *type;
  (void)state;
  t = emit("TrafficChanged", 1);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(t, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  /* Not confirmed: after the ack timeout the connection is still there (a heartbeat comes). */
  m = pm_test_recv_msg(fd, 2 * T_MS + SLACK_MS);
  pm_test_assert_kind(m, "Handshake");
  send_json(fd, "{\"Handshake\":{\"Seq\":1}}");
  pm_msg_free(m);
  d = emit("Durable", 1);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_pm(0, pm_msg_get_string(m, "Type", &type));
  assert_string_equal("Durable", type);
  assert_int_equal(d, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
}

static void test_event_pipe_transient_not_stored_while_detached(void **state) {
  int64_t d;
  int fd;
  pm_msg *m;
  (void)state;
  emit("TrafficChanged", 3);
  d = emit("Durable", 1);
  fd = attach_as(NULL, NULL);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(d, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
  assert_int_equal(3, stat_of_events("DroppedTransient"));
}

static void test_event_pipe_configured_transient(void **state) {
  static const char *const more[] = {"--transient", "Ping", NULL};
  int64_t d;
  int fd;
  pm_msg *m;
  (void)state;
  pm_test_service_cleanup(&svc);
  start(more);
  emit("Ping", 2);
  d = emit("Durable", 1);
  fd = attach_as(NULL, NULL);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(d, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
}

static void test_event_pipe_queued_events_in_order(void **state) {
  int64_t first = emit("Numbered", 5);
  int fd = attach_as(NULL, NULL);
  (void)state;
  for (int i = 0; i < 5; i++) {
    pm_msg *m = pm_test_next_event(fd, SLACK_MS);
    pm_test_assert_kind(m, "Event");
    assert_int_equal(first + i, pm_test_int_field(m, "Id"));
    assert_non_null(json_object_get(pm_msg_fields(m), "Time"));
    pm_test_confirm(fd, first + i);
    pm_msg_free(m);
  }
  close(fd);
  assert_int_equal(5, stat_of_events("Delivered"));
}

static void test_event_pipe_second_client_busy(void **state) {
  int a = attach_as(NULL, NULL), b;
  pm_msg *m;
  (void)state;
  b = pm_test_connect(svc.event_pipe);
  assert_true(b >= 0);
  pm_test_expect_disconnect(b, "Busy", T_MS + SLACK_MS);
  close(b);
  /* The attached client is untouched. */
  send_json(a, "{\"Handshake\":{\"Seq\":5}}");
  m = pm_test_recv_msg(a, SLACK_MS);
  pm_test_assert_kind(m, "Handshake");
  assert_int_equal(5, pm_test_int_field(m, "Seq"));
  pm_msg_free(m);
  close(a);
  assert_int_equal(1, stat_of_events("BusyRejections"));
}

static void test_event_pipe_xml_session(void **state) {
  int64_t id = emit("Alpha", 1);
  int fd = pm_test_connect(svc.event_pipe);
  char *raw, buf[128];
  (void)state;
  assert_true(fd >= 0);
  send_json(fd, "<Handshake><Seq>3</Seq></Handshake>");
  raw = pm_test_recv_frame(fd, SLACK_MS, NULL);
  assert_non_null(raw);
  assert_non_null(strstr(raw, "<Handshake>"));
  assert_non_null(strstr(raw, "<Seq>3</Seq>"));
  free(raw);
  raw = pm_test_recv_frame(fd, SLACK_MS, NULL);
  assert_non_null(raw);
  assert_non_null(strstr(raw, "<Event>"));
  assert_non_null(strstr(raw, "<Type>Alpha</Type>"));
  free(raw);
  snprintf(buf, sizeof(buf), "<EventConfirmation><Id>%lld</Id></EventConfirmation>",
           (long long)id);
  send_json(fd, buf);
  raw = pm_test_recv_frame(fd, T_MS + SLACK_MS, NULL); /* the next thing is a heartbeat */
  assert_non_null(raw);
  assert_non_null(strstr(raw, "<Handshake>"));
  free(raw);
  close(fd);
  assert_int_equal(1, stat_of_events("Delivered"));
}

static void test_event_pipe_resume_skips_confirmed(void **state) {
  int64_t first = emit("Numbered", 3), epoch;
  pm_msg *reply, *m;
  char hs[128];
  int fd;
  (void)state;
  fd = attach_as(NULL, &reply);
  epoch = pm_test_int_field(reply, "Epoch");
  pm_msg_free(reply);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, first);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first + 1, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  /* The client got first+1 but its confirmation was lost with the connection. */
  close(fd);
  snprintf(hs, sizeof(hs), "{\"Handshake\":{\"Seq\":1,\"Epoch\":%lld,\"LastEventId\":%lld}}",
           (long long)epoch, (long long)(first + 1));
  fd = attach_as(hs, NULL);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first + 2, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
  assert_int_equal(1, stat_of_events("ResumeSkipped"));
}

static void test_event_pipe_resume_other_epoch_ignored(void **state) {
  int64_t first = emit("Numbered", 2);
  pm_msg *m;
  int fd = attach_as("{\"Handshake\":{\"Seq\":1,\"Epoch\":1,\"LastEventId\":1000}}", NULL);
  (void)state;
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
}

static void test_event_pipe_overflow_reports_events_lost(void **state) {
  static const char *const more[] = {"--queue-max-events", "5", NULL};
  int64_t first;
  pm_msg *m;
  const json_t *data;
  const char *type;
  int fd;
  (void)state;
  pm_test_service_cleanup(&svc);
  start(more);
  first = emit("Numbered", 8);
  fd = attach_as(NULL, NULL);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_pm(0, pm_msg_get_string(m, "Type", &type));
  assert_string_equal("EventsLost", type);
  data = json_object_get(pm_msg_fields(m), "Data");
  assert_int_equal(3, json_integer_value(json_object_get(data, "Count")));
  assert_int_equal(first, json_integer_value(json_object_get(data, "FirstId")));
  assert_int_equal(first + 2, json_integer_value(json_object_get(data, "LastId")));
  pm_test_confirm(fd, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  for (int i = 3; i < 8; i++) {
    m = pm_test_next_event(fd, SLACK_MS);
    assert_int_equal(first + i, pm_test_int_field(m, "Id"));
    pm_test_confirm(fd, first + i);
    pm_msg_free(m);
  }
  close(fd);
  assert_int_equal(3, stat_of_events("LostOverflow"));
}

static void test_event_pipe_stale_confirmation_ignored(void **state) {
  int64_t first = emit("Numbered", 2);
  int fd = attach_as(NULL, NULL);
  pm_msg *m = pm_test_next_event(fd, SLACK_MS);
  (void)state;
  assert_int_equal(first, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, first + 100);
  pm_test_confirm(fd, first);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first + 1, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
  assert_int_equal(1, stat_of_events("StaleAcks"));
}

static void test_event_pipe_vpn_events(void **state) {
  static const char *const more[] = {"--connect-delay-ms", "100", "--traffic-interval-ms", "100",
                                     "--sim-unreachable", "nowhere", NULL};
  const char *want[] = {"Connecting", "Connected"};
  const char *type, *st;
  pm_msg *m;
  int fd;
  (void)state;
  pm_test_service_cleanup(&svc);
  start(more);
  fd = attach_as(NULL, NULL);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", "de"), NULL));
  for (int i = 0; i < 2; i++) {
    m = pm_test_next_event(fd, SLACK_MS);
    assert_pm(0, pm_msg_get_string(m, "Type", &type));
    assert_string_equal("StateChanged", type);
    assert_pm(0, pm_tree_get_string(json_object_get(pm_msg_fields(m), "Data"), "State", &st));
    assert_string_equal(want[i], st);
    pm_test_confirm(fd, pm_test_int_field(m, "Id"));
    pm_msg_free(m);
  }
  m = pm_test_next_event(fd, SLACK_MS);
  assert_pm(0, pm_msg_get_string(m, "Type", &type));
  assert_string_equal("TrafficChanged", type);
  pm_test_confirm(fd, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  for (;;) {
    m = pm_test_next_event(fd, SLACK_MS);
    assert_non_null(m);
    pm_test_confirm(fd, pm_test_int_field(m, "Id"));
    if (pm_tree_get_string(json_object_get(pm_msg_fields(m), "Data"), "State", &st) == 0 &&
        strcmp(st, "Disconnected") == 0) {
      pm_msg_free(m);
      break;
    }
    pm_msg_free(m);
  }
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", "nowhere"), NULL));
  /* Connecting, Disconnected with Error, ErrorOccured. */
  for (int seen_error = 0; !seen_error;) {
    m = pm_test_next_event(fd, SLACK_MS);
    assert_non_null(m);
    assert_pm(0, pm_msg_get_string(m, "Type", &type));
    if (strcmp(type, "ErrorOccured") == 0) {
      assert_pm(0, pm_tree_get_string(json_object_get(pm_msg_fields(m), "Data"), "Result", &st));
      assert_string_equal("Error", st);
      seen_error = 1;
    }
    pm_test_confirm(fd, pm_test_int_field(m, "Id"));
    pm_msg_free(m);
  }
  close(fd);
}

static void test_event_pipe_emit_count_limit(void **state) {
  json_t *data = NULL;
  (void)state;
  assert_string_equal("BadRequest", pm_test_call(svc.command_pipe, "EmitEvent",
                                                 json_pack("{s:s, s:i}", "Type", "X", "Count", 0),
                                                 NULL));
  assert_string_equal("BadRequest",
                      pm_test_call(svc.command_pipe, "EmitEvent",
                                   json_pack("{s:s, s:i}", "Type", "X", "Count", 1000001), NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:i}", "Type", "TrafficChanged",
                                                   "Count", 1000000),
                                         &data));
  assert_int_equal(1000000, json_integer_value(json_object_get(data, "LastId")) -
                                json_integer_value(json_object_get(data, "FirstId")) + 1);
  json_decref(data);
}

/* EmitEvent's Type is letters and digits; Data must be something both encodings carry. */
static void hardening_05_emit_event_charset(void **state) {
  (void)state;
  assert_string_equal("BadRequest", pm_test_call(svc.command_pipe, "EmitEvent",
                                                 json_pack("{s:s}", "Type", "A_b"), NULL));
  assert_string_equal("BadRequest", pm_test_call(svc.command_pipe, "EmitEvent",
                                                 json_pack("{s:s}", "Type", "1A"), NULL));
  assert_string_equal("BadRequest",
                      pm_test_call(svc.command_pipe, "EmitEvent",
                                   json_pack("{s:s, s:{s:s}}", "Type", "A1", "Data", "S", "x\x01"),
                                   NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:{s:s}}", "Type", "A1", "Data", "S",
                                                   "x\ty"),
                                         NULL));
}

static void test_event_pipe_emit_needs_test_commands(void **state) {
  static const char *const args[] = {NULL};
  (void)state;
  pm_test_service_cleanup(&svc);
  pm_test_service_start(&svc, args);
  assert_string_equal("BadRequest",
                      pm_test_call(svc.command_pipe, "EmitEvent",
                                   json_pack("{s:s}", "Type", "X"), NULL));
}

static void test_event_pipe_handshakes_without_reading_bounded(void **state) {
  static const char frame[] = "\0\0\0\027{\"Handshake\":{\"Seq\":7}}";
  long rss_before = pm_test_rss_kb(svc.pid), rss_after;
  int fd = attach_as(NULL, NULL), sent = 0;
  pm_msg *m, *last = NULL;
  (void)state;
  /* Ask and ask without reading a single answer, as fast as the socket takes it. */
  while (sent < 200000 && send(fd, frame, sizeof(frame) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) ==
                              (ssize_t)(sizeof(frame) - 1))
    sent++;
  assert_true(sent > 16);
  /* The service gave up on this client after a bounded number of queued answers. */
  while ((m = pm_test_recv_msg(fd, SLACK_MS)) != NULL) {
    pm_msg_free(last);
    last = m;
  }
  pm_test_assert_kind(last, "Disconnect");
  pm_msg_free(last);
  close(fd);
  rss_after = pm_test_rss_kb(svc.pid);
  assert_true(rss_after - rss_before < 8 * 1024);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
}

static void test_event_pipe_real_default_handshake_timeout(void **state) {
  int fd;
  uint64_t start;
  (void)state;
  pm_test_service_cleanup(&svc);
  pm_test_service_start(&svc, NULL);
  fd = pm_test_connect(svc.event_pipe);
  start = pm_test_now_ms();
  assert_true(fd >= 0);
  pm_test_expect_disconnect(fd, "HandshakeTimeout", T_MS + SLACK_MS);
  assert_true(pm_test_now_ms() - start >= 950);
  close(fd);
}

/* The natural client writes its handshake before it reads, here 300 ms after connecting: the
 * Busy refusal must still reach it (the service lingers for the handshake timeout). */
static void hardening_15_busy_reaches_writing_client(void **state) {
  const char *longer[] = {"--handshake-timeout-ms", "1000", NULL};
  int a, b;
  (void)state;
  pm_test_service_cleanup(&svc);
  start(longer);
  a = attach_as(NULL, NULL);
  b = pm_test_connect(svc.event_pipe);
  assert_true(b >= 0);
  uv_sleep(300);
  assert_int_equal(0, pm_test_send_frame(b, "{\"Handshake\":{\"Seq\":1}}"));
  pm_test_expect_disconnect(b, "Busy", SLACK_MS);
  close(b);
  close(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(test_event_pipe_##name, setup, teardown)
      T(no_handshake_closed),
      T(handshake_echoed_with_session_fields),
      T(heartbeat_answered_keeps_session),
      T(heartbeat_ignored_closed),
      T(client_handshake_answered),
      T(unconfirmed_durable_redelivered_first),
      T(unconfirmed_transient_dropped_connection_kept),
      T(transient_not_stored_while_detached),
      T(configured_transient),
      T(queued_events_in_order),
      T(second_client_busy),
      T(xml_session),
      T(resume_skips_confirmed),
      T(resume_other_epoch_ignored),
      T(overflow_reports_events_lost),
      T(stale_confirmation_ignored),
      T(vpn_events),
      T(emit_count_limit),
      T(emit_needs_test_commands),
      cmocka_unit_test_setup_teardown(hardening_05_emit_event_charset, setup, teardown),
      T(handshakes_without_reading_bounded),
      T(real_default_handshake_timeout),
#undef T
      cmocka_unit_test_setup_teardown(hardening_15_busy_reaches_writing_client, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
