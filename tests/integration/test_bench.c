/* pipemsg bench --quick --json runs every scenario and reports a positive figure and baseline. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#define PIPEMSG PM_BIN_DIR "/pipemsg"

static const char *const scenarios[] = {
    "queue_rss_per_event",  "queue_heap_per_event", "command_json",    "command_xml",
    "command_service_json", "event_rate",           "event_p50",       "event_p99",
    "zmq_event_rate",       "zmq_event_p50",        "zmq_event_p99",   "big_time",
    "big_server_peak",      "big_client_peak",      "idle_cpu",        "idle_wakeups",
    "event_loop_p50",       "event_loop_p99",       "zmq_event_loop_p50", "zmq_event_loop_p99",
    "command_libuv",        "event_libuv",          "command_service_json_thread_floor", NULL};

static const json_t *find_row(const json_t *rows, const char *name) {
  size_t i;
  const json_t *row;
  json_array_foreach(rows, i, row) {
    const char *n = json_string_value(json_object_get(row, "name"));
    if (n != NULL && strcmp(n, name) == 0)
      return row;
  }
  return NULL;
}

/* A libuv ceiling row is information beside its pipemsg row: the same floor figure (measured
 * once, in the same run) and no target. */
static void assert_ceiling_beside(const json_t *rows, const char *ceiling, const char *pipemsg) {
  const json_t *c = find_row(rows, ceiling), *p = find_row(rows, pipemsg);
  assert_non_null(c);
  assert_non_null(p);
  assert_true(json_real_value(json_object_get(c, "baseline")) ==
              json_real_value(json_object_get(p, "baseline")));
  assert_string_equal("info", json_string_value(json_object_get(c, "result")));
  assert_true(json_is_null(json_object_get(c, "target")));
}

/* The service row's floor has its server in a process of its own, as pipemsgd is; the ratio
 * against the command group's floor (server on a thread) is information beside it, for the
 * same pipemsg figure. */
static void assert_service_floors(const json_t *rows) {
  const json_t *p = find_row(rows, "command_service_json");
  const json_t *t = find_row(rows, "command_service_json_thread_floor");
  assert_non_null(p);
  assert_non_null(t);
  assert_true(json_real_value(json_object_get(p, "pipemsg")) ==
              json_real_value(json_object_get(t, "pipemsg")));
  assert_string_equal(">= 0.8", json_string_value(json_object_get(p, "target")));
  assert_non_null(strstr(json_string_value(json_object_get(p, "baseline_kind")), "server process"));
  assert_string_equal("info", json_string_value(json_object_get(t, "result")));
  assert_true(json_is_null(json_object_get(t, "target")));
  assert_null(strstr(json_string_value(json_object_get(t, "baseline_kind")), "server process"));
}

/* Runs argv (a pipemsg bench with --json), which must exit 0 and print one JSON object. */
static json_t *run_json(const char *const *argv) {
  const char *out, *err;
  json_error_t jerr;
  json_t *top;
  assert_int_equal(0, pm_test_run(argv, &out, &err));
  top = json_loads(out, 0, &jerr);
  if (top == NULL)
    fail_msg("not JSON (%s): %s / %s", jerr.text, out, err);
  return top;
}

static void test_bench_quick_json_has_every_scenario(void **state) {
  const char *argv[] = {PIPEMSG, "bench", "--quick", "--json", NULL};
  json_t *top, *rows;
  int i;
  (void)state;
  top = run_json(argv);
  assert_string_equal("quick", json_string_value(json_object_get(top, "mode")));
  rows = json_object_get(top, "scenarios");
  assert_true(json_is_array(rows));
  for (i = 0; scenarios[i] != NULL; i++) {
    const json_t *row = find_row(rows, scenarios[i]);
    if (row == NULL)
      fail_msg("scenario %s missing", scenarios[i]);
#if defined(__SANITIZE_ADDRESS__)
    /* Memory rows mean nothing under AddressSanitizer: mallinfo2 cannot see its allocator (the
     * heap row reads 0), and its quarantine holds freed blocks and hands them back to the
     * system when it likes, so a peak above the RSS taken before can read 0 or less. */
    if (strcmp(scenarios[i], "queue_heap_per_event") == 0 ||
        strcmp(scenarios[i], "queue_rss_per_event") == 0 ||
        strcmp(scenarios[i], "big_client_peak") == 0 ||
        strcmp(scenarios[i], "big_server_peak") == 0)
      continue;
#endif
    if (!(json_real_value(json_object_get(row, "pipemsg")) > 0) ||
        !(json_real_value(json_object_get(row, "baseline")) > 0) ||
        !(json_real_value(json_object_get(row, "ratio")) > 0))
      fail_msg("scenario %s has a figure that is not positive", scenarios[i]);
  }
  assert_int_equal(i, (int)json_array_size(rows));
  assert_ceiling_beside(rows, "command_libuv", "command_json");
  assert_ceiling_beside(rows, "event_libuv", "event_rate");
  assert_service_floors(rows);
  /* Everything ran: no "skipped" member (it lists what a platform cannot measure). */
  assert_null(json_object_get(top, "skipped"));
  json_decref(top);
}

/* scale-queue runs only when named: three counts, a time and a heap row each, the heap at
 * most twice the frames it holds (the queue keeps an event near its frame size). */
static void test_bench_scale_queue_only_when_named(void **state) {
  static const char *const rows_expected[] = {
      "scale_queue_1e3_time", "scale_queue_1e3_heap", "scale_queue_1e4_time",
      "scale_queue_1e4_heap", "scale_queue_1e5_time", "scale_queue_1e5_heap", NULL};
  const char *argv[] = {PIPEMSG, "bench", "--quick", "--json", "--only", "scale-queue", NULL};
  json_t *top, *rows;
  int i;
  (void)state;
  top = run_json(argv);
  rows = json_object_get(top, "scenarios");
  for (i = 0; rows_expected[i] != NULL; i++) {
    const json_t *row = find_row(rows, rows_expected[i]);
    if (row == NULL)
      fail_msg("scenario %s missing", rows_expected[i]);
#if defined(__SANITIZE_ADDRESS__)
    if (strstr(rows_expected[i], "heap") != NULL)
      continue; /* mallinfo2 cannot see AddressSanitizer's allocator */
#endif
    if (!(json_real_value(json_object_get(row, "pipemsg")) > 0))
      fail_msg("scenario %s has a figure that is not positive", rows_expected[i]);
#if !defined(__SANITIZE_ADDRESS__)
    if (strstr(rows_expected[i], "heap") != NULL)
      assert_string_equal("pass", json_string_value(json_object_get(row, "result")));
#endif
  }
  assert_int_equal(i, (int)json_array_size(rows));
  json_decref(top);
}

/* The scaling group runs only when named: three message sizes and the connect cycles, a time
 * and a memory row each. */
static void test_bench_quick_scale(void **state) {
  static const char *const rows[] = {"scale_msg_64KiB",      "scale_msg_64KiB_mem",
                                     "scale_msg_640KiB",     "scale_msg_640KiB_mem",
                                     "scale_msg_6400KiB",    "scale_msg_6400KiB_mem",
                                     "scale_connect_1000",   "scale_connect_1000_mem",
                                     NULL};
  const char *argv[] = {PIPEMSG, "bench", "--quick", "--only", "scale", "--json", NULL};
  json_t *top, *got;
  int i;
  (void)state;
  top = run_json(argv);
  got = json_object_get(top, "scenarios");
  for (i = 0; rows[i] != NULL; i++) {
    const json_t *row = find_row(got, rows[i]);
    if (row == NULL)
      fail_msg("scenario %s missing", rows[i]);
    /* A connection may leave nothing behind in the server: its memory row can be 0. */
    if (!(json_real_value(json_object_get(row, "pipemsg")) >= 0) ||
        !(json_real_value(json_object_get(row, "baseline")) > 0))
      fail_msg("scenario %s has a figure that is negative or a baseline that is not positive",
               rows[i]);
  }
  assert_int_equal(i, (int)json_array_size(got));
  json_decref(top);
}

static void test_bench_usage_errors(void **state) {
  const char *unknown[] = {PIPEMSG, "bench", "--only", "nothing", NULL};
  const char *help[] = {PIPEMSG, "bench", "--help", NULL};
  const char *out, *err;
  (void)state;
  assert_int_equal(2, pm_test_run(unknown, &out, &err));
  assert_non_null(strstr(err, "unknown scenario 'nothing'"));
  assert_int_equal(0, pm_test_run(help, &out, &err));
  assert_non_null(strstr(out, "Usage: pipemsg bench"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bench_quick_json_has_every_scenario),
      cmocka_unit_test(test_bench_scale_queue_only_when_named),
      cmocka_unit_test(test_bench_quick_scale),
      cmocka_unit_test(test_bench_usage_errors),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
