/* pipemsgd's log (service/log.c): what a peer's text can and cannot put in a line, batching, and
 * the limit on lines a peer can cause at will (service/log_limit.c, on an injected clock). */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "log.h"
#include "log_limit.h"
#include "testutil.h"

static const char *escaped(const char *in) {
  static char out[256];
  log_escape(in, out, sizeof(out));
  return out;
}

static void hardening_10_log_escape(void **state) {
  (void)state;
  /* C0 (a line break), DEL and the backslash. */
  assert_string_equal("a\\x0ab\\x7fc\\\\d", escaped("a\nb\x7f" "c\\d"));
  /* C1 (CSI) and invalid UTF-8 (a lone continuation byte, an overlong slash). */
  assert_string_equal("\\xc2\\x9b \\x80 \\xc0\\xaf", escaped("\xc2\x9b \x80 \xc0\xaf"));
  /* Invisible format characters: right-to-left override, isolate, zero-width space, line
   * separator, BOM. */
  assert_string_equal("\\xe2\\x80\\xaegnp", escaped("\xe2\x80\xaegnp"));
  assert_string_equal("\\xe2\\x81\\xa6x", escaped("\xe2\x81\xa6x"));
  assert_string_equal("\\xe2\\x80\\x8b\\xe2\\x80\\xa8\\xef\\xbb\\xbf",
                      escaped("\xe2\x80\x8b\xe2\x80\xa8\xef\xbb\xbf"));
  /* Printable text stays: ASCII, é, €, a CJK character and an emoji. */
  assert_string_equal("ok \xc3\xa9 \xe2\x82\xac \xe4\xb8\xad \xf0\x9f\x98\x80",
                      escaped("ok \xc3\xa9 \xe2\x82\xac \xe4\xb8\xad \xf0\x9f\x98\x80"));
}

/* A full buffer cuts at a whole escape, never in the middle of one. */
static void test_log_escape_cut(void **state) {
  char out[6];
  (void)state;
  assert_int_equal(4, log_escape("\n\n", out, sizeof(out)));
  assert_string_equal("\\x0a", out);
}

static const char *file_text(const char *path) {
  static char text[65536];
  size_t n = 0;
  FILE *f = fopen(path, "rb");
  if (f != NULL) {
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
  }
  text[n] = '\0';
  return text;
}

static void on_check(uv_timer_t *t) { uv_close((uv_handle_t *)t, NULL); }

/* Batched lines keep their order and reach the file within 100 ms, at once with a warning, when
 * the batch is full, and at log_close; before that they are held back (one write per batch). */
static void test_log_batch(void **state) {
  char dir[256], path[300];
  uv_loop_t loop;
  uv_timer_t check;
  const char *text;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/batch.log", dir);
  assert_int_equal(0, uv_loop_init(&loop));
  assert_int_equal(0, log_open_file(LVL_INFO, path));
  log_msg(LVL_INFO, "before batching");
  assert_non_null(strstr(file_text(path), "info: before batching\n"));
  assert_int_equal(0, log_batch_start(&loop));
  log_msg(LVL_INFO, "one");
  log_msg(LVL_DEBUG, "not at this level");
  log_msg(LVL_INFO, "two");
  assert_null(strstr(file_text(path), "one"));
  /* The flush timer was started first with the same delay: it runs before this one. */
  assert_int_equal(0, uv_timer_init(&loop, &check));
  assert_int_equal(0, uv_timer_start(&check, on_check, 100, 0));
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  text = file_text(path);
  assert_non_null(strstr(text, "info: one\n"));
  assert_true(strstr(text, "info: one\n") < strstr(text, "info: two\n"));
  assert_null(strstr(text, "not at this level"));

  log_msg(LVL_INFO, "three");
  assert_null(strstr(file_text(path), "three"));
  log_msg(LVL_WARNING, "four");
  text = file_text(path);
  assert_non_null(strstr(text, "info: three\n"));
  assert_true(strstr(text, "info: three\n") < strstr(text, "warning: four\n"));

  /* 4096 bytes at most wait: the 41st line of 100 bytes sends the 40 before it. */
  for (int i = 0; i < 41; i++)
    log_msg(LVL_INFO, "line %02d %050d", i, 0);
  text = file_text(path);
  assert_non_null(strstr(text, "line 00 "));
  assert_true(strstr(text, "line 00 ") < strstr(text, "line 39 "));
  assert_null(strstr(text, "line 40 "));

  log_msg(LVL_INFO, "last");
  log_close();
  text = file_text(path);
  assert_non_null(strstr(text, "line 40 "));
  assert_true(strstr(text, "line 40 ") < strstr(text, "info: last\n"));
  /* log_close closed the timer: the loop closes cleanly after one more run. */
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
  remove(path);
  pm_test_dir_remove(dir);
}

/* A line built by log_line reads as printf would have written it: integers at both ends of
 * their range, %.*s's cut, and the whole line's cut at LOG_LINE_MAX - 1 bytes; and it is written
 * like log_msg's, escaped, at its level only. */
static void test_log_line(void **state) {
  static const long long ints[] = {0, 7, -1, 1234567890123LL, LLONG_MAX, LLONG_MIN};
  char want[LOG_LINE_MAX + 64], dir[256], path[300], big[2 * LOG_LINE_MAX];
  log_line l;
  (void)state;
  for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
    log_line_init(&l);
    log_line_int(&l, ints[i]);
    snprintf(want, sizeof(want), "%lld", ints[i]);
    assert_string_equal(want, l.text);
  }
  log_line_init(&l);
  log_line_uint(&l, ULLONG_MAX);
  log_line_add(&l, " x=");
  log_line_addn(&l, "abcdef", 3);
  log_line_addn(&l, "gh", 64);
  snprintf(want, sizeof(want), "%llu x=%.3s%.64s", ULLONG_MAX, "abcdef", "gh");
  assert_string_equal(want, l.text);
  assert_int_equal(strlen(want), l.len);

  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  log_line_init(&l);
  log_line_add(&l, "head ");
  log_line_add(&l, big);
  log_line_add(&l, "tail");
  assert_int_equal(LOG_LINE_MAX - 1, l.len);
  assert_int_equal(LOG_LINE_MAX - 1, strlen(l.text));

  pm_test_dir_new(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/line.log", dir);
  assert_int_equal(0, log_open_file(LVL_INFO, path));
  log_line_init(&l);
  log_line_add(&l, "command reason=\"a\nb\"");
  log_line_write(LVL_INFO, &l);
  log_line_write(LVL_DEBUG, &l);
  log_close();
  assert_non_null(strstr(file_text(path), "Z pipemsgd: info: command reason=\"a\\x0ab\"\n"));
  assert_null(strstr(file_text(path), "debug:"));
  remove(path);
  pm_test_dir_remove(dir);
}

/* n lines at now_ms: how many may be written. */
static int taken(log_limit *l, int n, uint64_t now_ms) {
  int written = 0;
  for (int i = 0; i < n; i++)
    written += log_limit_take(l, now_ms);
  return written;
}

/* 1000 lines in one window: the allowance is written, the rest counted; their summary is due
 * LOG_LIMIT_SUMMARY_MS after the first held back, not before, says how many and over how long,
 * and is written once. */
static void test_log_limit_window(void **state) {
  log_limit l;
  uint64_t span = 0;
  (void)state;
  log_limit_init(&l, 5);
  assert_int_equal(0, log_limit_due(&l));
  assert_int_equal(5, taken(&l, 1000, 100000));
  assert_int_equal(100000 + LOG_LIMIT_SUMMARY_MS, log_limit_due(&l));
  assert_int_equal(0, log_limit_summary(&l, 100000, false, &span));
  assert_int_equal(0, log_limit_summary(&l, 100000 + LOG_LIMIT_SUMMARY_MS - 1, false, &span));
  assert_int_equal(995, log_limit_summary(&l, 100000 + LOG_LIMIT_SUMMARY_MS, false, &span));
  assert_int_equal(LOG_LIMIT_SUMMARY_MS, span);
  assert_int_equal(0, log_limit_due(&l));
  assert_int_equal(0, log_limit_summary(&l, 200000, true, &span));
}

/* A window lasts LOG_LIMIT_WINDOW_MS from its first line: one ms short of it nothing more is
 * written, at it the allowance is whole again; what was held back in both windows adds up. */
static void test_log_limit_rollover(void **state) {
  log_limit l;
  uint64_t span = 0;
  (void)state;
  log_limit_init(&l, 3);
  assert_int_equal(3, taken(&l, 10, 5000));
  assert_int_equal(0, taken(&l, 10, 5000 + LOG_LIMIT_WINDOW_MS - 1));
  assert_int_equal(3, taken(&l, 10, 5000 + LOG_LIMIT_WINDOW_MS));
  /* The next window starts at its first line, not on a grid. */
  assert_int_equal(3, taken(&l, 3, 5000 + 2 * LOG_LIMIT_WINDOW_MS + 400));
  assert_int_equal(0, taken(&l, 1, 5000 + 3 * LOG_LIMIT_WINDOW_MS + 399));
  assert_int_equal(7 + 10 + 7 + 1, log_limit_summary(&l, 20000, false, &span));
  assert_int_equal(20000 - 5000, span);
  /* A lower allowance applies at once; 0 would silence the kind and is taken as 1. */
  log_limit_set(&l, 0);
  assert_int_equal(1, taken(&l, 4, 30000));
}

/* At shutdown (final) the count is written whatever the time: none is lost. */
static void test_log_limit_final(void **state) {
  log_limit l;
  uint64_t span = 0;
  (void)state;
  log_limit_init(&l, 1);
  assert_int_equal(1, taken(&l, 20, 0));
  assert_int_equal(0, log_limit_summary(&l, 300, false, &span));
  assert_int_equal(19, log_limit_summary(&l, 300, true, &span));
  assert_int_equal(300, span);
  assert_int_equal(0, log_limit_summary(&l, 300, true, &span));
}

/* What log.c makes of it: per kind, only at a level that is logged, and the summary line
 * written by log_close when the service stops before it was due. */
static void test_log_peer_lines(void **state) {
  char dir[256], path[300];
  const char *text;
  int written = 0;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/peer.log", dir);
  assert_int_equal(0, log_open_file(LVL_WARNING, path));
  log_peer_limit(4);
  for (int i = 0; i < 2000; i++)
    written += log_peer_allowed(LOG_PEER_BUSY, LVL_WARNING);
  assert_int_equal(4, written);
  /* Another kind has its own allowance; a level not logged is neither written nor counted. */
  assert_true(log_peer_allowed(LOG_PEER_REFUSAL, LVL_WARNING));
  assert_false(log_peer_allowed(LOG_PEER_NO_REQUEST, LVL_INFO));
  assert_null(strstr(file_text(path), "suppressed"));
  log_close();
  text = file_text(path);
  assert_non_null(strstr(text, "warning: suppressed 1996 busy lines in the last 1 s\n"));
  assert_null(strstr(text, "refusal lines"));
  assert_null(strstr(text, "no-request lines"));
  log_peer_limit(LOG_LIMIT_PER_SECOND_DEFAULT);
  remove(path);
  pm_test_dir_remove(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hardening_10_log_escape),
      cmocka_unit_test(test_log_escape_cut),
      cmocka_unit_test(test_log_batch),
      cmocka_unit_test(test_log_line),
      cmocka_unit_test(test_log_limit_window),
      cmocka_unit_test(test_log_limit_rollover),
      cmocka_unit_test(test_log_limit_final),
      cmocka_unit_test(test_log_peer_lines),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
