/* The event pipe of a real pipemsgd process, driven over raw sockets: each rule of
 * PROTOCOL §5 has a test that fails if the rule breaks. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* The shortened handshake, heartbeat and ack timeouts: 300 ms. Under valgrind, where pipemsgd
 * and the test take some 50 times longer per message, 1500 ms, so a loaded machine does not
 * make a test miss a heartbeat it answers at once (set in main). */
static long t_ms = 300;
static char t_arg[16] = "300";
/* A timed rule is seen no earlier than EARLY_MS before its time (scaled under valgrind): libuv
 * starts a timer from the loop's cached clock, which lags the wall clock by the time the loop
 * iteration has taken. */
#define EARLY_MS 50
/* ... and no later than LATE_MS after it (scaled under valgrind): a loaded machine delays a
 * wake-up by tens of ms, so 600 ms is ample, and it keeps the defaults out of every window
 * on t_ms: a 1000 ms default in place of the configured 300 ms is seen after 1000 ms, past the
 * 900 ms the window ends at. */
#define LATE_MS 600
/* How long to wait for what needs no particular time (a reply, an event already queued). */
#define SLACK_MS ((int)pm_test_margin_ms(2500))

static pm_test_service svc;

static void start(const char *const *more) {
  const char *args[32] = {"--test-commands", "--handshake-timeout-ms", t_arg, "--heartbeat-ms",
                          t_arg, "--ack-timeout-ms", t_arg, NULL};
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

/* Fails unless the time since start_ms is rule_ms, within the window of LATE_MS. */
static void assert_took(const char *what, uint64_t start_ms, long rule_ms) {
  assert_ms_within(what, pm_test_now_ms() - start_ms, rule_ms - pm_test_margin_ms(EARLY_MS),
                   rule_ms + pm_test_margin_ms(LATE_MS));
}

/* The next message must be Disconnect{Reason: reason, Message containing message}, then the
 * end of the stream. */
static void expect_disconnect_saying(int fd, const char *reason, const char *message) {
  /* A heartbeat may come first where the service is slow (valgrind): it is answered, harmless. */
  pm_msg *m = pm_test_next_event(fd, SLACK_MS);
  const char *r = NULL, *text = NULL;
  pm_test_assert_kind(m, "Disconnect");
  assert_pm(0, pm_msg_get_string(m, "Reason", &r));
  assert_string_equal(reason, r);
  assert_pm(0, pm_msg_get_string(m, "Message", &text));
  if (strstr(text, message) == NULL) {
    print_error("Disconnect Message \"%s\" does not say \"%s\"\n", text, message);
    fail();
  }
  pm_msg_free(m);
  assert_true(pm_test_wait_eof(fd, SLACK_MS) >= 0);
}

/* The Data is what a TrafficChanged declares (the contract checks a declared type's Data);
 * the other types used here are not declared and take any. */
static int64_t emit(const char *type, int count) {
  json_t *data = NULL;
  int64_t first;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:i, s:{s:i, s:i}}", "Type", type,
                                                   "Count", count, "Data", "BytesSent", count,
                                                   "BytesReceived", 0),
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
  pm_test_expect_disconnect(fd, "HandshakeTimeout", SLACK_MS);
  /* The configured handshake timeout, not the default (1000 ms). */
  assert_took("HandshakeTimeout", start, t_ms);
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
  assert_int_equal(t_ms, pm_test_int_field(reply, "HeartbeatMs"));
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
    pm_msg *m = pm_test_recv_msg(fd, SLACK_MS);
    char buf[64];
    /* Each after an idle interval of HeartbeatMs since the last answer (or the handshake). */
    assert_took("a heartbeat", start, t_ms);
    start = pm_test_now_ms();
    pm_test_assert_kind(m, "Handshake");
    assert_true(pm_test_int_field(m, "Seq") > last);
    last = pm_test_int_field(m, "Seq");
    snprintf(buf, sizeof(buf), "{\"Handshake\":{\"Seq\":%lld}}", (long long)last);
    pm_msg_free(m);
    send_json(fd, buf);
  }
  /* Five idle intervals went by, each closed by a heartbeat, and the session is still up. */
  assert_int_equal(0, stat_of_events("HeartbeatFailures"));
  assert_int_equal(1, stat_of_events("Attached"));
  close(fd);
}

static void test_event_pipe_heartbeat_ignored_closed(void **state) {
  int fd = attach_as(NULL, NULL);
  uint64_t start = pm_test_now_ms();
  pm_msg *m;
  (void)state;
  m = pm_test_recv_msg(fd, SLACK_MS);
  assert_took("the heartbeat", start, t_ms);
  start = pm_test_now_ms();
  pm_test_assert_kind(m, "Handshake");
  pm_msg_free(m);
  pm_test_expect_disconnect(fd, "HeartbeatTimeout", SLACK_MS);
  /* The heartbeat's answer is waited for the acknowledgement timeout. */
  assert_took("HeartbeatTimeout", start, t_ms);
  close(fd);
  assert_int_equal(1, stat_of_events("HeartbeatFailures"));
}

static void test_event_pipe_client_handshake_answered(void **state) {
  int fd = attach_as(NULL, NULL);
  pm_msg *m;
  (void)state;
  /* A kind the service does not act on is ignored (newer clients may send more kinds). */
  send_json(fd, "{\"Event\":{\"Id\":1,\"Type\":\"FromClient\"}}");
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
  uint64_t start = pm_test_now_ms();
  (void)state;
  pm_test_assert_kind(m, "Event");
  assert_int_equal(a, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  /* Not confirmed: the service gives up on this client, keeps the event. */
  pm_test_expect_disconnect(fd, "AckTimeout", SLACK_MS);
  assert_took("AckTimeout", start, t_ms);
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
  uint64_t start;
  pm_msg *m;
  const char *type;
  (void)state;
  t = emit("TrafficChanged", 1);
  m = pm_test_next_event(fd, SLACK_MS);
  start = pm_test_now_ms();
  assert_int_equal(t, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  /* Not confirmed: after the ack timeout the connection is still there, and after an idle
   * heartbeat interval a heartbeat comes. */
  m = pm_test_recv_msg(fd, SLACK_MS);
  assert_took("ack timeout and heartbeat", start, 2 * t_ms);
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

/* A transient event still queued when its client detaches is dropped, not kept for the next
 * client (§5.3.4); the durable event that was in flight stays, and goes first. */
static void test_event_pipe_transient_dropped_at_detach(void **state) {
  int fd = attach_as(NULL, NULL);
  uint64_t deadline;
  int64_t d, b;
  pm_msg *m;
  (void)state;
  d = emit("Durable", 1);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(d, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  /* Queued behind the unconfirmed durable event; then the client leaves. */
  emit("TrafficChanged", 1);
  close(fd);
  deadline = pm_test_now_ms() + SLACK_MS;
  while (stat_of_events("Attached") != 0)
    assert_true(pm_test_now_ms() < deadline);
  b = emit("Beta", 1);
  fd = attach_as(NULL, NULL);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(d, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, d);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(b, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
  assert_int_equal(1, stat_of_events("DroppedTransient"));
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
  /* It might have been an observer (§5.11): its handshake, without a Mode, says it is not. */
  send_json(b, "{\"Handshake\":{\"Seq\":1}}");
  pm_test_expect_disconnect(b, "Busy", SLACK_MS);
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

/* pipemsgd takes observers with its defaults (§5.11): one attached beside the client gets the
 * event the client gets, and the client's delivery is as without it. */
static void test_event_pipe_observer_beside_client(void **state) {
  int cl = attach_as(NULL, NULL), obs;
  int64_t id;
  pm_msg *m;
  (void)state;
  obs = attach_as("{\"Handshake\":{\"Seq\":1,\"Mode\":\"Observe\"}}", NULL);
  id = emit("Alpha", 1);
  m = pm_test_next_event(obs, SLACK_MS);
  pm_test_assert_kind(m, "Event");
  assert_int_equal(id, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  m = pm_test_next_event(cl, SLACK_MS);
  pm_test_assert_kind(m, "Event");
  assert_int_equal(id, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(cl, id);
  close(obs);
  close(cl);
  assert_int_equal(1, stat_of_events("Sessions"));
}

/* What an observer made with the library's event client has seen of its connection. */
typedef struct observed {
  uv_mutex_t lock;
  uv_cond_t changed;
  pm_event_client_state state;
} observed;

static void on_observer_state(pm_event_client_state state, const char *reason, void *data) {
  observed *o = data;
  (void)reason;
  uv_mutex_lock(&o->lock);
  o->state = state;
  uv_cond_signal(&o->changed);
  uv_mutex_unlock(&o->lock);
}

static void on_observer_event(const pm_event *ev, void *data) {
  (void)ev;
  (void)data;
}

/* GetStats counts an observer (the library's client with observe set) apart from the client,
 * and the log says "observer" on its lines while the client's keep their words. */
static void test_event_pipe_observer_in_stats_and_log(void **state) {
  pm_event_client_options opts;
  pm_event_client *c;
  observed o = {.state = PM_EVENT_CLIENT_CONNECTING};
  uint64_t deadline = pm_test_now_ms() + (uint64_t)SLACK_MS;
  int cl;
  (void)state;
  assert_int_equal(0, uv_mutex_init(&o.lock));
  assert_int_equal(0, uv_cond_init(&o.changed));
  memset(&opts, 0, sizeof(opts));
  opts.observe = true;
  opts.client_name = "observer-test";
  opts.on_event = on_observer_event;
  opts.on_state = on_observer_state;
  opts.data = &o;
  assert_pm(0, pm_event_client_start(svc.event_pipe, &opts, &c));
  uv_mutex_lock(&o.lock);
  while (o.state != PM_EVENT_CLIENT_CONNECTED && pm_test_now_ms() < deadline)
    (void)uv_cond_timedwait(&o.changed, &o.lock, 100 * 1000000ull);
  uv_mutex_unlock(&o.lock);
  assert_int_equal(PM_EVENT_CLIENT_CONNECTED, o.state);
  pm_test_await_log(&svc, " observer attached duration_ms=");
  assert_int_equal(1, stat_of_events("Observers"));
  assert_int_equal(1, stat_of_events("ObserverSessions"));
  assert_int_equal(0, stat_of_events("Sessions"));
  assert_int_equal(0, stat_of_events("SlowObservers"));
  /* The client beside it is logged as before. */
  cl = attach_as(NULL, NULL);
  pm_test_await_log(&svc, " attached duration_ms=");
  assert_int_equal(1, stat_of_events("Sessions"));
  close(cl);
  pm_test_await_log(&svc, " detached reason=\"client closed\"");
  pm_event_client_stop(c);
  pm_test_await_log(&svc, " observer detached reason=\"client closed\"");
  assert_int_equal(0, stat_of_events("Observers"));
  assert_int_equal(1, stat_of_events("ObserverSessions"));
  assert_null(strstr(pm_test_service_log(&svc), "observer observer"));
  uv_cond_destroy(&o.changed);
  uv_mutex_destroy(&o.lock);
}

/* --max-observers 1: the second observer is told Busy at its handshake, the first keeps its
 * session. */
static void test_event_pipe_max_observers(void **state) {
  /* No heartbeat falls due while the first observer is not reading (the second's refusal). */
  const char *one[] = {"--max-observers", "1", "--heartbeat-ms", "60000", NULL};
  const char *observe = "{\"Handshake\":{\"Seq\":1,\"Mode\":\"Observe\"}}";
  int a, b;
  int64_t id;
  pm_msg *m;
  (void)state;
  pm_test_service_cleanup(&svc);
  start(one);
  a = attach_as(observe, NULL);
  b = pm_test_connect(svc.event_pipe);
  assert_true(b >= 0);
  send_json(b, observe);
  expect_disconnect_saying(b, "Busy", "");
  close(b);
  pm_test_await_log(&svc, " observer busy reason=\"Busy\"");
  /* The first observer is untouched: it gets the next event (heartbeats answered on the way). */
  id = emit("Alpha", 1);
  m = pm_test_next_event(a, SLACK_MS);
  pm_test_assert_kind(m, "Event");
  assert_int_equal(id, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  assert_int_equal(1, stat_of_events("Observers"));
  assert_int_equal(1, stat_of_events("BusyRejections"));
  close(a);
}

static void test_event_pipe_xml_session(void **state) {
  int64_t id = emit("Alpha", 1);
  int fd = pm_test_connect(svc.event_pipe);
  char *raw, buf[128];
  uint64_t start;
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
  start = pm_test_now_ms();
  raw = pm_test_recv_frame(fd, SLACK_MS, NULL); /* the next thing is a heartbeat */
  assert_took("the heartbeat after the confirmation", start, t_ms);
  assert_non_null(raw);
  assert_non_null(strstr(raw, "<Handshake>"));
  free(raw);
  close(fd);
  assert_int_equal(1, stat_of_events("Delivered"));
}

/* Attaches without a cursor; the service's epoch in *epoch. */
static int attach_fresh(int64_t *epoch) {
  pm_msg *reply;
  int fd = attach_as(NULL, &reply);
  *epoch = pm_test_int_field(reply, "Epoch");
  pm_msg_free(reply);
  return fd;
}

/* Attaches with the resume cursor (epoch, last_id). */
static int attach_resuming(int64_t epoch, int64_t last_id, pm_msg **reply) {
  char hs[128];
  snprintf(hs, sizeof(hs), "{\"Handshake\":{\"Seq\":1,\"Epoch\":%lld,\"LastEventId\":%lld}}",
           (long long)epoch, (long long)last_id);
  return attach_as(hs, reply);
}

static void test_event_pipe_resume_skips_confirmed(void **state) {
  int64_t first = emit("Numbered", 3), epoch;
  pm_msg *m;
  int fd;
  (void)state;
  fd = attach_fresh(&epoch);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, first);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first + 1, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  /* The client got first+1 but its confirmation was lost with the connection. */
  close(fd);
  fd = attach_resuming(epoch, first + 1, NULL);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first + 2, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
  assert_int_equal(1, stat_of_events("ResumeSkipped"));
}

/* A cursor of this epoch past every id handed out (a data directory put back from a copy):
 * resuming from it would hide the events that reuse those ids, so the service answers with a
 * new epoch, says so in its log, and sends what is queued. */
static void test_event_pipe_resume_cursor_ahead_new_epoch(void **state) {
  int64_t first = emit("Numbered", 2), epoch, renewed;
  pm_msg *reply, *m;
  int fd;
  (void)state;
  close(attach_fresh(&epoch)); /* nothing confirmed */
  fd = attach_resuming(epoch, first + 1000, &reply);
  renewed = pm_test_int_field(reply, "Epoch");
  pm_msg_free(reply);
  assert_true(renewed > 0 && renewed != epoch);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
  assert_int_equal(0, stat_of_events("ResumeSkipped"));
  assert_non_null(strstr(pm_test_service_log(&svc), " new epoch reason=\"resume cursor "));
  /* At the last id handed out, the cursor is an ordinary one. */
  fd = attach_resuming(renewed, first + 1, &reply);
  assert_int_equal(renewed, pm_test_int_field(reply, "Epoch"));
  pm_msg_free(reply);
  close(fd);
  assert_int_equal(2, stat_of_events("ResumeSkipped"));
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

/* How long the socket may refuse more data before the flood below counts it as the service
 * no longer reading: the service takes frames as fast as it can decode them, so even a loaded
 * machine lets the socket drain well within this. */
#define STALL_MS 500
/* More handshakes than the service can answer without queueing: its socket buffer holds a few
 * hundred small answers (about 200 KiB at some 800 bytes of kernel overhead each). */
#define FLOOD_MAX 20000

/* Sends secondary handshakes as fast as the socket takes them and reads nothing, until the
 * socket stops taking them for STALL_MS (the service stopped reading), the service closed the
 * connection (then *closed_ms says when that was seen; else it is 0) or FLOOD_MAX were sent.
 * Returns how many were sent; *last_ms is when the last one went out. */
static int flood_handshakes(int fd, uint64_t *last_ms, uint64_t *closed_ms) {
  static const char frame[] = "\0\0\0\027{\"Handshake\":{\"Seq\":7}}";
  int sent = 0;
  *last_ms = pm_test_now_ms();
  *closed_ms = 0;
  while (sent < FLOOD_MAX) {
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    ssize_t n;
    if (poll(&pfd, 1, (int)pm_test_margin_ms(STALL_MS)) <= 0 || (pfd.revents & POLLOUT) == 0)
      break;
    /* A writable Unix socket has a quarter of its buffer free: a 27-byte frame goes whole. */
    n = send(fd, frame, sizeof(frame) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN)
      continue;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      *closed_ms = pm_test_now_ms();
      break;
    }
    assert_int_equal(sizeof(frame) - 1, n);
    sent++;
    *last_ms = pm_test_now_ms();
  }
  return sent;
}

/* The service's socket buffer fills with answers the client does not read; then answers wait
 * in the service's write queue, and at 16 of them the client is disconnected, ProtocolError.
 * Without the bound the service would queue answers as long as the client sends. */
static void test_event_pipe_handshakes_without_reading_bounded(void **state) {
  /* A Disconnect the client does not read in time is abandoned (test below): this client reads
   * it only after its flood stalled, so it gets far more time than STALL_MS, even scaled. */
  static const char *const more[] = {"--ack-timeout-ms", "60000", NULL};
  long rss_before, rss_after;
  uint64_t last_ms, closed_ms;
  int fd, sent;
  pm_msg *m, *last = NULL;
  const char *text = NULL;
  (void)state;
  pm_test_service_cleanup(&svc);
  start(more);
  rss_before = pm_test_rss_kb(svc.pid);
  fd = attach_as(NULL, NULL);
  sent = flood_handshakes(fd, &last_ms, &closed_ms);
  assert_int_equal(0, closed_ms);
  assert_true(sent > 16);
  assert_true(sent < FLOOD_MAX);
  /* Everything the service wrote, answers first: the last thing is the Disconnect. */
  while ((m = pm_test_recv_msg(fd, SLACK_MS)) != NULL) {
    pm_msg_free(last);
    last = m;
  }
  pm_test_assert_kind(last, "Disconnect");
  assert_pm(0, pm_msg_get_string(last, "Reason", &text));
  assert_string_equal("ProtocolError", text);
  assert_pm(0, pm_msg_get_string(last, "Message", &text));
  assert_string_equal("handshakes sent without reading the answers", text);
  pm_msg_free(last);
  close(fd);
  rss_after = pm_test_rss_kb(svc.pid);
  assert_true(rss_after - rss_before < 8 * 1024);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
}

/* A Disconnect the client never reads cannot be written: it is abandoned, and the connection
 * closed, after the acknowledgement timeout (§5.9). The ack timeout is set apart from the
 * other timeouts here, so a window on it tells which one ended the connection. */
static void test_event_pipe_unread_disconnect_abandoned(void **state) {
  static const char *const more[] = {"--ack-timeout-ms", "1000", NULL};
  struct pollfd pfd;
  uint64_t last_ms, closed_ms;
  int fd;
  (void)state;
  pm_test_service_cleanup(&svc);
  start(more);
  fd = attach_as(NULL, NULL);
  assert_true(flood_handshakes(fd, &last_ms, &closed_ms) < FLOOD_MAX);
  /* The service gave up on us (ProtocolError) just before our last frame went out, and its
   * Disconnect is stuck behind the answers we leave unread. The close shows as a hang-up,
   * without reading (under valgrind it may come before the flood sees a stall). */
  if (closed_ms == 0) {
    pfd.fd = fd;
    pfd.events = POLLRDHUP;
    assert_int_equal(1, poll(&pfd, 1, SLACK_MS + 1000));
    assert_true(pfd.revents & (POLLRDHUP | POLLHUP));
    closed_ms = pm_test_now_ms();
  }
  /* From our last frame, which may have gone out a little after the service gave up (it
   * takes what fits in the socket buffer): so 200 ms early is allowed. */
  assert_ms_within("closing after an unread Disconnect", closed_ms - last_ms,
                   1000 - pm_test_margin_ms(200), 1000 + pm_test_margin_ms(LATE_MS));
  close(fd);
  assert_int_equal(0, stat_of_events("Attached"));
}

/* Anything but a Handshake first, or a Handshake without an integer Seq >= 1, ends the session
 * with Disconnect{ProtocolError} (§5.2), and the Message says which rule. */
static void test_event_pipe_protocol_error_before_handshake(void **state) {
  static const char *const bad_seq[] = {
      "{\"Handshake\":{\"Seq\":0}}",     "{\"Handshake\":{\"Seq\":-3}}",
      "{\"Handshake\":{\"Seq\":\"x\"}}", "{\"Handshake\":{\"Seq\":1.5}}",
      "{\"Handshake\":{\"Version\":1}}", "<Handshake><Seq>0</Seq></Handshake>",
  };
  int fd;
  (void)state;
  fd = pm_test_connect(svc.event_pipe);
  assert_true(fd >= 0);
  send_json(fd, "{\"EventConfirmation\":{\"Id\":1}}");
  expect_disconnect_saying(fd, "ProtocolError", "expected a Handshake");
  close(fd);
  for (size_t i = 0; i < sizeof(bad_seq) / sizeof(bad_seq[0]); i++) {
    fd = pm_test_connect(svc.event_pipe);
    assert_true(fd >= 0);
    send_json(fd, bad_seq[i]);
    expect_disconnect_saying(fd, "ProtocolError", "Seq");
    close(fd);
  }
  /* None of them was attached. */
  assert_int_equal(0, stat_of_events("Sessions"));
}

/* After the handshake: a secondary Handshake with a bad Seq, a frame that does not decode, a
 * message that is not one, a frame longer than the largest message: each ends the session
 * with Disconnect{ProtocolError} in the session's encoding, never with a bare close. */
/* The service recognizes the confirmation's canonical bytes without decoding them; any other
 * spelling goes through the decoder: accepted when valid, a protocol error when not. */
static void test_event_pipe_confirmation_spellings(void **state) {
  int64_t first = emit("Spelled", 3);
  pm_msg *m;
  char buf[96];
  int fd;
  (void)state;
  fd = attach_as(NULL, NULL);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  snprintf(buf, sizeof(buf), "{ \"EventConfirmation\": {\"Id\": %lld} }", (long long)first);
  send_json(fd, buf);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first + 1, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, first + 1);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first + 2, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  snprintf(buf, sizeof(buf), "{\"EventConfirmation\":{\"Id\":0%lld}}", (long long)first + 2);
  send_json(fd, buf);
  expect_disconnect_saying(fd, "ProtocolError", "");
  close(fd);
  assert_int_equal(2, stat_of_events("Delivered"));
}

static void test_event_pipe_protocol_error_after_handshake(void **state) {
  static const uint8_t too_long[] = {0xff, 0xff, 0xff, 0xff, '{'};
  pm_msg *m;
  const char *reason;
  int fd;
  (void)state;
  fd = attach_as(NULL, NULL);
  send_json(fd, "{\"Handshake\":{\"Seq\":0}}");
  expect_disconnect_saying(fd, "ProtocolError", "Seq");
  close(fd);

  fd = attach_as(NULL, NULL);
  send_json(fd, "{\"EventConfirmation\":");
  expect_disconnect_saying(fd, "ProtocolError", "JSON");
  close(fd);

  fd = attach_as(NULL, NULL);
  send_json(fd, "[\"EventConfirmation\"]");
  expect_disconnect_saying(fd, "ProtocolError", "JSON");
  close(fd);

  fd = attach_as(NULL, NULL);
  assert_int_equal(0, pm_test_send_all(fd, too_long, sizeof(too_long)));
  expect_disconnect_saying(fd, "ProtocolError", "");
  close(fd);

  /* An XML session is told in XML. */
  fd = attach_as("<Handshake><Seq>1</Seq></Handshake>", NULL);
  send_json(fd, "<EventConfirmation><Id>1</Id>");
  m = pm_test_next_event(fd, SLACK_MS); /* as in expect_disconnect_saying */
  pm_test_assert_kind(m, "Disconnect");
  assert_int_equal(PM_ENC_XML, pm_msg_encoding(m));
  assert_pm(0, pm_msg_get_string(m, "Reason", &reason));
  assert_string_equal("ProtocolError", reason);
  pm_msg_free(m);
  assert_true(pm_test_wait_eof(fd, SLACK_MS) >= 0);
  close(fd);
  assert_int_equal(5, stat_of_events("Sessions"));
  assert_int_equal(0, stat_of_events("Attached"));
}

/* At most 4 of one user's connections are turned away at once, lingering included; its 5th is
 * closed without a word (§5.1; the 16 of all users together are tested in test_event_server,
 * which can make up users). A turned-away connection lingers until its client closes (or the
 * handshake timeout, long here), so the 4 stay counted while this test holds them open. */
#define TURNED_AWAY_MAX 4

static void test_event_pipe_turned_away_limit(void **state) {
  static const char *const more[] = {"--handshake-timeout-ms", "30000", NULL};
  int held, away[TURNED_AWAY_MAX], fd;
  uint64_t deadline;
  pm_msg *m;
  (void)state;
  pm_test_service_cleanup(&svc);
  start(more);
  held = attach_as(NULL, NULL);
  for (int i = 0; i < TURNED_AWAY_MAX; i++) {
    away[i] = pm_test_connect(svc.event_pipe);
    assert_true(away[i] >= 0);
    /* Told Busy at its handshake (it could have been an observer, §5.11). */
    send_json(away[i], "{\"Handshake\":{\"Seq\":1}}");
    /* The Disconnect, then the end of the service's side: it lingers, reading what we send. */
    pm_test_expect_disconnect(away[i], "Busy", SLACK_MS);
  }
  fd = pm_test_connect(svc.event_pipe);
  assert_true(fd >= 0);
  send_json(fd, "{\"Handshake\":{\"Seq\":1}}");
  /* No Disconnect: pm_test_wait_eof fails if anything but the end of the stream comes. */
  assert_true(pm_test_wait_eof(fd, SLACK_MS) >= 0);
  close(fd);
  /* A place freed is taken again: once the service has seen one of them close, the next
   * connection is told Busy. When it has seen that is not observable but through this. */
  close(away[0]);
  deadline = pm_test_now_ms() + (uint64_t)SLACK_MS;
  for (;;) {
    fd = pm_test_connect(svc.event_pipe);
    assert_true(fd >= 0);
    send_json(fd, "{\"Handshake\":{\"Seq\":1}}");
    m = pm_test_recv_msg(fd, SLACK_MS);
    close(fd);
    if (m != NULL) {
      const char *reason = NULL;
      pm_test_assert_kind(m, "Disconnect");
      assert_pm(0, pm_msg_get_string(m, "Reason", &reason));
      assert_string_equal("Busy", reason);
      pm_msg_free(m);
      break;
    }
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
  for (int i = 1; i < TURNED_AWAY_MAX; i++)
    close(away[i]);
  /* The held client was untouched throughout. */
  send_json(held, "{\"Handshake\":{\"Seq\":5}}");
  m = pm_test_recv_msg(held, SLACK_MS);
  pm_test_assert_kind(m, "Handshake");
  pm_msg_free(m);
  close(held);
}

/* A confirmation of another id takes nothing off the queue: the event stays in flight, nothing
 * else is sent, the acknowledgement timeout ends the session, and the next client gets the same
 * event first (§5.4). */
static void test_event_pipe_wrong_confirmation_not_taken(void **state) {
  int64_t first = emit("Numbered", 2);
  int fd = attach_as(NULL, NULL);
  pm_msg *m = pm_test_next_event(fd, SLACK_MS);
  uint64_t start = pm_test_now_ms();
  (void)state;
  assert_int_equal(first, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, first + 1);
  /* Not the next event: the Disconnect, when the right confirmation did not come. */
  pm_test_expect_disconnect(fd, "AckTimeout", SLACK_MS);
  assert_took("AckTimeout after a wrong confirmation", start, t_ms);
  close(fd);
  fd = attach_as(NULL, NULL);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, first);
  m = pm_test_next_event(fd, SLACK_MS);
  assert_int_equal(first + 1, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  close(fd);
  assert_int_equal(1, stat_of_events("StaleAcks"));
  assert_int_equal(1, stat_of_events("Redelivered"));
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
  pm_test_expect_disconnect(fd, "HandshakeTimeout", SLACK_MS);
  assert_took("the default HandshakeTimeout", start, PM_HANDSHAKE_TIMEOUT_MS_DEFAULT);
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
      T(transient_dropped_at_detach),
      T(configured_transient),
      T(queued_events_in_order),
      T(second_client_busy),
      T(observer_beside_client),
      T(observer_in_stats_and_log),
      T(max_observers),
      T(xml_session),
      T(resume_skips_confirmed),
      T(resume_cursor_ahead_new_epoch),
      T(resume_other_epoch_ignored),
      T(overflow_reports_events_lost),
      T(stale_confirmation_ignored),
      T(vpn_events),
      T(emit_count_limit),
      T(emit_needs_test_commands),
      cmocka_unit_test_setup_teardown(hardening_05_emit_event_charset, setup, teardown),
      T(handshakes_without_reading_bounded),
      T(unread_disconnect_abandoned),
      T(protocol_error_before_handshake),
      T(protocol_error_after_handshake),
      T(confirmation_spellings),
      T(turned_away_limit),
      T(wrong_confirmation_not_taken),
      T(real_default_handshake_timeout),
#undef T
      cmocka_unit_test_setup_teardown(hardening_15_busy_reaches_writing_client, setup, teardown),
  };
  if (getenv("PM_TEST_VALGRIND") != NULL) {
    t_ms = 1500;
    snprintf(t_arg, sizeof(t_arg), "%ld", t_ms);
  }
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
