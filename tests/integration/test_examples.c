/* The programs in examples/ (issue 11), built against the shared library, run against a live
 * pipemsgd found through PIPEMSG_COMMAND_PIPE / PIPEMSG_EVENT_PIPE. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static pm_test_service svc;

static int setup(void **state) {
  static const char *const args[] = {"--connect-delay-ms", "100", "--test-commands",
                                     "--sim-unreachable", "nowhere", NULL};
  (void)state;
  pm_test_service_start(&svc, args);
  setenv("PIPEMSG_COMMAND_PIPE", svc.command_pipe, 1);
  setenv("PIPEMSG_EVENT_PIPE", svc.event_pipe, 1);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unsetenv("PIPEMSG_COMMAND_PIPE");
  unsetenv("PIPEMSG_EVENT_PIPE");
  if (svc.pid > 0)
    assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
  return 0;
}

static int run(const char *name, const char *arg, const char **out, const char **err) {
  char path[256];
  const char *argv[] = {path, arg, NULL};
  snprintf(path, sizeof(path), "%s/example_%s", PM_BIN_DIR, name);
  return pm_test_run(argv, out, err);
}

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_examples_get_state(void **state) {
  const char *out, *err;
  (void)state;
  assert_int_equal(0, run("get_state", NULL, &out, &err));
  assert_true(starts_with(out, "Disconnected\n"));
}

static void test_examples_start_and_wait(void **state) {
  const char *out, *err;
  (void)state;
  assert_int_equal(0, run("start_and_wait", "de", &out, &err));
  assert_int_equal(0, run("get_state", NULL, &out, &err));
  assert_true(starts_with(out, "Connected\n"));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StopVpn", NULL, NULL));
  /* A location that fails: non-zero, with the error. */
  while (run("get_state", NULL, &out, &err) == 0 && !starts_with(out, "Disconnected\n"))
    ;
  assert_int_equal(1, run("start_and_wait", "nowhere", &out, &err));
  assert_non_null(strstr(err, "unreachable"));
}

static void test_examples_watch_events(void **state) {
  const char *out, *err;
  int lines = 0;
  (void)state;
  /* Durable events queued while no client is attached: the watcher gets them first. */
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:{s:s, s:s}}", "Type",
                                                   "StateChanged", "Data", "State", "Connected",
                                                   "Location", "se"),
                                         NULL));
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:i}", "Type", "Custom", "Count", 2),
                                         NULL));
  assert_int_equal(0, run("watch_events", "3", &out, &err));
  for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
    lines++;
  assert_int_equal(3, lines);
  assert_non_null(strstr(out, " StateChanged Connected se\n"));
  assert_non_null(strstr(out, " Custom {}\n"));
}

static void test_examples_poll_loop(void **state) {
  const char *out, *err;
  (void)state;
  assert_int_equal(0, run("poll_loop", NULL, &out, &err));
  assert_non_null(strstr(out, "Connected\n"));
  assert_int_equal(0, run("get_state", NULL, &out, &err));
  assert_true(starts_with(out, "Connected\n"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_examples_get_state, setup, teardown),
      cmocka_unit_test_setup_teardown(test_examples_start_and_wait, setup, teardown),
      cmocka_unit_test_setup_teardown(test_examples_watch_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_examples_poll_loop, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
