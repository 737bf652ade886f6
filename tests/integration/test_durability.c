/* With --data-dir, durable events survive kill -9 of the service: after a restart they are
 * delivered in order, with the same ids, under the same epoch. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define SLACK_MS 5000

static pm_test_service svc;
static char data_dir[160];
static const char *args[] = {"--test-commands", "--ack-timeout-ms", "300", "--data-dir",
                             data_dir, NULL};

static int setup(void **state) {
  (void)state;
  memset(&svc, 0, sizeof(svc));
  pm_test_service_start(&svc, NULL); /* only for its directory; restarted below */
  assert_int_equal(0, pm_test_service_stop(&svc));
  snprintf(data_dir, sizeof(data_dir), "%s/data", svc.dir);
  pm_test_service_restart(&svc, args);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pm_test_service_cleanup(&svc);
  return 0;
}

static void kill9(void) {
  kill(svc.pid, SIGKILL);
  assert_int_equal(svc.pid, waitpid(svc.pid, NULL, 0));
  svc.pid = 0;
}

static json_t *call_data(const char *command, json_t *params) {
  json_t *data = NULL;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, command, params, &data));
  return data;
}

static int64_t epoch_now(void) {
  json_t *d = call_data("GetStats", NULL);
  int64_t e = json_integer_value(json_object_get(json_object_get(d, "Events"), "Epoch"));
  json_decref(d);
  return e;
}

/* Attaches and takes the next n events' ids and N fields, confirming each (all but the last
 * unless confirm_all). Returns the open connection. */
static int attach_and_take(int n, int64_t *ids, int64_t *ns, int confirm_all) {
  int fd = pm_test_event_attach(svc.event_pipe, NULL, SLACK_MS, NULL);
  for (int i = 0; i < n; i++) {
    pm_msg *m = pm_test_next_event(fd, SLACK_MS);
    pm_test_assert_kind(m, "Event");
    ids[i] = pm_test_int_field(m, "Id");
    assert_pm(0, pm_tree_get_int(json_object_get(pm_msg_fields(m), "Data"), "N", &ns[i]));
    pm_msg_free(m);
    if (confirm_all || i < n - 1)
      pm_test_confirm(fd, ids[i]);
  }
  return fd;
}

static void emit(int n) {
  for (int i = 0; i < n; i++) {
    json_t *d = call_data("EmitEvent", json_pack("{s:s, s:{s:i}}", "Type", "Saved", "Data", "N", i));
    json_decref(d);
  }
}

static void test_durability_survives_kill9(void **state) {
  int64_t epoch, ids[10], ns[10], again_ids[10], again_ns[10];
  int fd;
  (void)state;
  epoch = epoch_now();
  emit(10);
  /* A client takes three, confirms two: the third is in flight when the service dies. */
  fd = attach_and_take(3, ids, ns, 0);
  kill9();
  close(fd);
  pm_test_service_restart(&svc, args);
  assert_int_equal(epoch, epoch_now());
  fd = attach_and_take(8, again_ids, again_ns, 1);
  close(fd);
  /* Everything not confirmed, in order, same ids: the in-flight one first. */
  assert_int_equal(ids[2], again_ids[0]);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(ids[0] + 2 + i, again_ids[i]);
    assert_int_equal(2 + i, again_ns[i]);
  }
}

static void test_durability_ids_never_reused(void **state) {
  int64_t first, after;
  json_t *d;
  (void)state;
  d = call_data("EmitEvent", json_pack("{s:s, s:i}", "Type", "X", "Count", 5));
  first = json_integer_value(json_object_get(d, "LastId"));
  json_decref(d);
  /* TrafficChanged with no client is not stored, but it used an id too. */
  d = call_data("EmitEvent", json_pack("{s:s, s:i}", "Type", "TrafficChanged", "Count", 3));
  first = json_integer_value(json_object_get(d, "LastId"));
  json_decref(d);
  kill9();
  pm_test_service_restart(&svc, args);
  d = call_data("EmitEvent", json_pack("{s:s}", "Type", "X"));
  after = json_integer_value(json_object_get(d, "FirstId"));
  json_decref(d);
  assert_true(after > first);
}

static void test_durability_overflow_marker_survives(void **state) {
  static const char *small[] = {"--test-commands", "--queue-max-events", "3", "--data-dir",
                                data_dir, NULL};
  pm_msg *m;
  int fd;
  json_t *d;
  (void)state;
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, small);
  d = call_data("EmitEvent", json_pack("{s:s, s:i, s:{s:i}}", "Type", "Y", "Count", 5, "Data", "N",
                                       1));
  json_decref(d);
  kill9();
  pm_test_service_restart(&svc, small);
  fd = pm_test_connect(svc.event_pipe);
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1}}"));
  m = pm_test_recv_msg(fd, SLACK_MS);
  pm_msg_free(m);
  m = pm_test_recv_msg(fd, SLACK_MS);
  assert_non_null(m);
  assert_non_null(strstr(json_string_value(json_object_get(pm_msg_fields(m), "Type")),
                         "EventsLost"));
  assert_int_equal(2, json_integer_value(json_object_get(
                          json_object_get(pm_msg_fields(m), "Data"), "Count")));
  pm_msg_free(m);
  close(fd);
}

static void test_durability_sigterm_keeps_queue(void **state) {
  int64_t ids[3], ns[3], again_ids[3], again_ns[3];
  int fd;
  (void)state;
  emit(3);
  fd = attach_and_take(1, ids, ns, 0);
  assert_int_equal(0, pm_test_service_stop(&svc)); /* event 1 in flight */
  close(fd);
  pm_test_service_restart(&svc, args);
  fd = attach_and_take(3, again_ids, again_ns, 1);
  close(fd);
  assert_int_equal(ids[0], again_ids[0]);
  assert_int_equal(0, again_ns[0]);
  assert_int_equal(2, again_ns[2]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_durability_survives_kill9, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durability_ids_never_reused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durability_overflow_marker_survives, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durability_sigterm_keeps_queue, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
