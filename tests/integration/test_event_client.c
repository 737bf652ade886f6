/* The event client library ("Core") against a real pipemsgd, and against a silent fake. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define MAX_SEEN 64

static pm_test_service svc;

/* What the application saw, filled on the client's thread. */
typedef struct seen {
  uv_mutex_t lock;
  int64_t ids[MAX_SEEN];
  int count;
  int connected;     /* times CONNECTED was reported */
  int disconnected;  /* times DISCONNECTED was reported */
  char last_reason[128];
  unsigned slow_first_ms; /* sleep in the first callback */
} seen;

static seen got;

static void on_event(const pm_event *ev, void *data) {
  seen *s = data;
  if (s->slow_first_ms > 0 && s->count == 0)
    uv_sleep(s->slow_first_ms);
  uv_mutex_lock(&s->lock);
  if (s->count < MAX_SEEN)
    s->ids[s->count++] = ev->id;
  uv_mutex_unlock(&s->lock);
}

static void on_state(pm_event_client_state st, const char *reason, void *data) {
  seen *s = data;
  uv_mutex_lock(&s->lock);
  if (st == PM_EVENT_CLIENT_CONNECTED)
    s->connected++;
  if (st == PM_EVENT_CLIENT_DISCONNECTED) {
    s->disconnected++;
    snprintf(s->last_reason, sizeof(s->last_reason), "%s", reason ? reason : "");
  }
  uv_mutex_unlock(&s->lock);
}

static int count_of(int *field) {
  int v;
  uv_mutex_lock(&got.lock);
  v = *field;
  uv_mutex_unlock(&got.lock);
  return v;
}

/* Waits (each step is an observable change, polled) until *field reaches n. */
static void await_count(int *field, int n) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  while (count_of(field) < n) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
}

static pm_event_client *start_client(const char *pipe) {
  pm_event_client_options opts;
  pm_event_client *c = NULL;
  memset(&opts, 0, sizeof(opts));
  opts.on_event = on_event;
  opts.on_state = on_state;
  opts.data = &got;
  opts.reconnect_min_ms = 20;
  opts.reconnect_max_ms = 200;
  opts.client_name = "test";
  assert_pm(0, pm_event_client_start(pipe, &opts, &c));
  return c;
}

static const char *const service_args[] = {"--test-commands", "--heartbeat-ms", "200",
                                           "--ack-timeout-ms", "300", NULL};

static int setup(void **state) {
  (void)state;
  memset(&got, 0, sizeof(got));
  uv_mutex_init(&got.lock);
  pm_test_service_start(&svc, service_args);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pm_test_service_cleanup(&svc);
  uv_mutex_destroy(&got.lock);
  return 0;
}

static void emit(int count) {
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:i}", "Type", "Tick", "Count", count),
                                         NULL));
}

static void assert_increasing_once(void) {
  uv_mutex_lock(&got.lock);
  for (int i = 1; i < got.count; i++)
    assert_true(got.ids[i] > got.ids[i - 1]);
  uv_mutex_unlock(&got.lock);
}

static void test_event_client_receives_in_order(void **state) {
  pm_event_client *c;
  (void)state;
  emit(3);
  c = start_client(svc.event_pipe);
  await_count(&got.count, 3);
  emit(2);
  await_count(&got.count, 5);
  pm_event_client_stop(c);
  assert_int_equal(5, got.count);
  assert_increasing_once();
}

static void test_event_client_reconnects_after_restart(void **state) {
  pm_event_client *c;
  (void)state;
  c = start_client(svc.event_pipe);
  emit(2);
  await_count(&got.count, 2);
  /* Same pipes, new process: a new epoch. */
  assert_int_equal(0, pm_test_service_stop(&svc));
  await_count(&got.disconnected, 1);
  pm_test_service_restart(&svc, service_args);
  emit(2);
  await_count(&got.count, 4);
  pm_event_client_stop(c);
  assert_int_equal(4, got.count);
  assert_true(got.connected >= 2);
}

static void test_event_client_slow_application_sees_event_once(void **state) {
  pm_event_client *c;
  (void)state;
  /* The first callback outlasts the ack timeout: the service drops the connection and keeps
   * the event; the client resumes past it, so the application sees it once. */
  got.slow_first_ms = 800;
  emit(3);
  c = start_client(svc.event_pipe);
  await_count(&got.count, 3);
  await_count(&got.disconnected, 1);
  pm_event_client_stop(c);
  assert_int_equal(3, got.count);
  assert_increasing_once();
  assert_string_equal("AckTimeout", got.last_reason);
}

/* A fake service that completes the handshake and then says nothing. */
static void silent_service(void *arg) {
  int lfd = *(int *)arg;
  for (int i = 0; i < 2; i++) {
    int fd = accept(lfd, NULL, NULL);
    char *hs, reply[128];
    pm_msg *m = NULL;
    int64_t seq = 0;
    size_t len = 0;
    if (fd < 0)
      return;
    hs = pm_test_recv_frame(fd, 5000, &len);
    if (hs != NULL && pm_msg_decode(hs, len, &m, NULL) == 0)
      pm_msg_get_int(m, "Seq", &seq);
    pm_msg_free(m);
    free(hs);
    snprintf(reply, sizeof(reply), "{\"Handshake\":{\"Seq\":%lld,\"Epoch\":5,\"HeartbeatMs\":100}}",
             (long long)seq);
    pm_test_send_frame(fd, reply);
    /* Hold the connection until the client gives up on it. */
    pm_test_wait_eof(fd, 5000);
    close(fd);
  }
}

static void test_event_client_silence_means_dead(void **state) {
  char path[128];
  uv_thread_t t;
  pm_event_client *c;
  uint64_t start;
  int lfd;
  (void)state;
  snprintf(path, sizeof(path), "%s/silent", svc.dir);
  lfd = pm_test_bind(path, 4);
  assert_int_equal(0, uv_thread_create(&t, silent_service, &lfd));
  start = pm_test_now_ms();
  c = start_client(path);
  await_count(&got.connected, 2);
  /* 3 x HeartbeatMs (100) of silence ended the first connection. */
  assert_true(pm_test_now_ms() - start >= 250);
  assert_string_equal("service silent", got.last_reason);
  pm_event_client_stop(c);
  uv_thread_join(&t);
  close(lfd);
}

/* A fake service that accepts and never answers the handshake, twice. */
static void mute_service(void *arg) {
  int lfd = *(int *)arg;
  for (int i = 0; i < 2; i++) {
    int fd = accept(lfd, NULL, NULL);
    char buf[256];
    if (fd < 0)
      return;
    /* Take whatever the client says, answer nothing, until it hangs up. */
    while (recv(fd, buf, sizeof(buf), 0) > 0)
      ;
    close(fd);
  }
}

static void test_event_client_handshake_deadline(void **state) {
  pm_event_client_options opts;
  pm_event_client *c;
  char path[128];
  uv_thread_t t;
  uint64_t start;
  int lfd;
  (void)state;
  snprintf(path, sizeof(path), "%s/mute", svc.dir);
  lfd = pm_test_bind(path, 4);
  assert_int_equal(0, uv_thread_create(&t, mute_service, &lfd));
  memset(&opts, 0, sizeof(opts));
  opts.on_event = on_event;
  opts.on_state = on_state;
  opts.data = &got;
  opts.handshake_timeout_ms = 200;
  opts.reconnect_min_ms = 20;
  start = pm_test_now_ms();
  assert_pm(0, pm_event_client_start(path, &opts, &c));
  /* The connection is given up at the deadline and a fresh one is made (§5.1.4). */
  await_count(&got.disconnected, 2);
  pm_event_client_stop(c);
  assert_true(pm_test_now_ms() - start >= 2 * 200 - 50);
  assert_string_equal("handshake timed out", got.last_reason);
  assert_int_equal(0, got.connected);
  uv_thread_join(&t);
  close(lfd);
}

static void test_event_client_resume_cursor_across_clients(void **state) {
  pm_event_client_options opts;
  pm_event_client *c;
  json_t *data = NULL;
  int64_t epoch, cursor_epoch, cursor_id;
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetStats", NULL, &data));
  epoch = json_integer_value(json_object_get(json_object_get(data, "Events"), "Epoch"));
  json_decref(data);
  emit(3); /* ids 1..3; an earlier client had taken 1 and 2 */
  memset(&opts, 0, sizeof(opts));
  opts.on_event = on_event;
  opts.on_state = on_state;
  opts.data = &got;
  opts.resume_epoch = epoch;
  opts.resume_last_id = 2;
  assert_pm(0, pm_event_client_start(svc.event_pipe, &opts, &c));
  await_count(&got.count, 1);
  pm_event_client_cursor(c, &cursor_epoch, &cursor_id);
  pm_event_client_stop(c);
  assert_int_equal(1, got.count);
  assert_int_equal(3, got.ids[0]);
  assert_int_equal(epoch, cursor_epoch);
  assert_int_equal(3, cursor_id);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetStats", NULL, &data));
  assert_int_equal(2, json_integer_value(
                          json_object_get(json_object_get(data, "Events"), "ResumeSkipped")));
  json_decref(data);
}

static void test_event_client_bad_options(void **state) {
  pm_event_client_options opts;
  pm_event_client *c = NULL;
  (void)state;
  memset(&opts, 0, sizeof(opts));
  assert_pm(PM_EINVAL, pm_event_client_start(svc.event_pipe, &opts, &c));
  assert_null(c);
  assert_string_equal("connected", pm_event_client_state_name(PM_EVENT_CLIENT_CONNECTED));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_event_client_receives_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_client_reconnects_after_restart, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_client_slow_application_sees_event_once, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_client_silence_means_dead, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_client_handshake_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_client_resume_cursor_across_clients, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_client_bad_options, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
