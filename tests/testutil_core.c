/* The test helpers that need no socket, process or /proc (pm_testutil_core): built for every
 * platform and linked into every test program. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "testutil.h"

void pm_test_assert_code(int expected, int actual, const char *file, int line) {
  if (expected != actual) {
    print_error("%s:%d: expected %s (%d), got %s (%d): %s\n", file, line, pm_err_name(expected),
                expected, pm_err_name(actual), actual, pm_strerror(actual));
    _fail(file, line);
  }
}

uint64_t pm_test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int skipped;

void pm_test_note_skip(const char *format, ...) {
  char reason[512];
  va_list ap;
  va_start(ap, format);
  vsnprintf(reason, sizeof(reason), format, ap);
  va_end(ap);
  print_message("skipped: %s\n", reason);
  skipped++;
}

int pm_test_result(int failed) {
  if (failed != 0)
    return 1;
  return skipped > 0 ? PM_TEST_SKIPPED : 0;
}

long pm_test_margin_ms(long margin_ms) {
  return getenv("PM_TEST_VALGRIND") != NULL ? 10 * margin_ms : margin_ms;
}

void pm_test_assert_ms_within(const char *what, long ms, long lo_ms, long hi_ms, const char *file,
                              int line) {
  if (ms < lo_ms || ms > hi_ms) {
    print_error("%s:%d: %s took %ld ms, expected %ld..%ld ms\n", file, line, what, ms, lo_ms,
                hi_ms);
    _fail(file, line);
  }
}

char *pm_test_repeat(const char *head, const char *unit, size_t n, const char *tail, size_t *len) {
  size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
  char *s = malloc(hl + n * ul + tl + 1), *p = s;
  assert_non_null(s);
  memcpy(p, head, hl);
  p += hl;
  for (size_t i = 0; i < n; i++, p += ul)
    memcpy(p, unit, ul);
  memcpy(p, tail, tl + 1);
  *len = hl + n * ul + tl;
  return s;
}

void pm_test_decode_oom_loop(const char *text) {
  unsigned long n;
  int rc = PM_ENOMEM;
  for (n = 1; n < 100 && rc != 0; n++) {
    pm_msg *m = NULL;
    pm__alloc_fail_after(n);
    rc = pm_msg_decode(text, strlen(text), &m, NULL);
    pm__alloc_fail_after(0);
    if (rc != 0) {
      assert_pm(PM_ENOMEM, rc);
      assert_null(m);
    }
    pm_msg_free(m);
  }
  assert_pm(0, rc);
  assert_true(n > 2);
}
