/* The test helpers that need no socket, process or /proc of their own (pm_testutil_core):
 * built for every platform and linked into every test program. A service's log and calls to
 * it through the library client are here too: they are the same everywhere. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

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

#if defined(__linux__)
/* Whether huge-page advice can be seen here: THP may be asked for, and glibc does not ask for
 * it on its own (its hugetlb tunable). */
static int huge_visible(void) {
  const char *tunables = getenv("GLIBC_TUNABLES");
  char mode[128] = "";
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f != NULL) {
    if (fgets(mode, sizeof(mode), f) == NULL)
      mode[0] = '\0';
    fclose(f);
  }
  return mode[0] != '\0' && strstr(mode, "[never]") == NULL &&
         (tunables == NULL || strstr(tunables, "hugetlb") == NULL);
}

/* The next mapping of an smaps file: its range, and whether it is advised for huge pages
 * (VmFlags, each entry's last line, has "hg"). 0 at the end. */
static int smaps_next(FILE *f, unsigned long *lo, unsigned long *hi, int *advised) {
  char line[512];
  while (fgets(line, sizeof(line), f) != NULL) {
    if (sscanf(line, "%lx-%lx ", lo, hi) == 2)
      continue;
    if (strncmp(line, "VmFlags:", 8) == 0) {
      *advised = strstr(line, " hg") != NULL;
      return 1;
    }
  }
  return 0;
}
#endif

int pm_test_huge_advised(const void *p, size_t n) {
#if defined(__linux__)
  const uintptr_t huge = (uintptr_t)2 << 20;
  uintptr_t at = ((uintptr_t)p + huge - 1) & ~(huge - 1);
  unsigned long lo = 0, hi = 0;
  int advised = 0, found = -1;
  FILE *f;
  /* Nothing to tell without a whole huge page inside the block. */
  if (!huge_visible() || at + huge > (uintptr_t)p + n)
    return -1;
  f = fopen("/proc/self/smaps", "r");
  if (f == NULL)
    return -1;
  while (found < 0 && smaps_next(f, &lo, &hi, &advised))
    if (at >= lo && at < hi)
      found = advised;
  fclose(f);
  return found;
#else
  (void)p;
  (void)n;
  return -1;
#endif
}

int pm_test_huge_mappings(long pid, size_t min_bytes) {
#if defined(__linux__)
  char path[64];
  unsigned long lo = 0, hi = 0;
  int advised = 0, count = 0;
  FILE *f;
  if (!huge_visible())
    return -1;
  snprintf(path, sizeof(path), "/proc/%ld/smaps", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  while (smaps_next(f, &lo, &hi, &advised))
    count += advised && hi - lo >= min_bytes;
  fclose(f);
  return count;
#else
  (void)pid;
  (void)min_bytes;
  return -1;
#endif
}

void pm_test_expect_huge_advised(const void *p, size_t n, int expect) {
  int advised = pm_test_huge_advised(p, n);
  if (advised >= 0)
    assert_int_equal(expect, advised);
  else
    print_message("huge pages: this system cannot tell; not checked\n");
}

void pm_test_heap_as_service(void) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
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

/* ---- a service's log and calls to it, the same on every platform ---------------------- */

const char *pm_test_service_log(const pm_test_service *svc) {
  /* The whole log, however long: a test polling GetState writes a line per call, and a line
   * past a fixed buffer would never be found. */
  static char *buf;
  static size_t cap;
  FILE *f = fopen(svc->log_path, "r");
  size_t n = 0, got;
  if (buf == NULL) {
    cap = 65536;
    buf = malloc(cap);
    assert_non_null(buf);
  }
  if (f != NULL) {
    while ((got = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
      n += got;
      if (n == cap - 1) {
        cap *= 2;
        buf = realloc(buf, cap);
        assert_non_null(buf);
      }
    }
    fclose(f);
  }
  buf[n] = '\0';
  return buf;
}

void pm_test_await_log(const pm_test_service *svc, const char *text) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  while (strstr(pm_test_service_log(svc), text) == NULL) {
    if (pm_test_now_ms() >= deadline) {
      print_error("no '%s' in the log:\n%s\n", text, pm_test_service_log(svc));
      fail();
    }
    uv_sleep(10);
  }
}

int pm_test_log_count(const pm_test_service *svc, const char *text) {
  int n = 0;
  for (const char *p = pm_test_service_log(svc); (p = strstr(p, text)) != NULL; p++)
    n++;
  return n;
}

long pm_test_log_suppressed(const pm_test_service *svc, const char *kind) {
  static const char head[] = "warning: suppressed ";
  char tail[64];
  long total = 0;
  const char *p = pm_test_service_log(svc);
  char *end;
  snprintf(tail, sizeof(tail), " %s lines in the last ", kind);
  for (; (p = strstr(p, head)) != NULL; p = end) {
    long n = strtol(p + strlen(head), &end, 10);
    if (strncmp(end, tail, strlen(tail)) == 0)
      total += n;
  }
  return total;
}

int64_t pm_test_stat(const char *pipe, const char *group, const char *name) {
  json_t *data = NULL, *v;
  int64_t n;
  assert_string_equal("Ok", pm_test_call(pipe, "GetStats", NULL, &data));
  v = json_object_get(json_object_get(data, group), name);
  assert_non_null(v);
  n = json_is_boolean(v) ? json_is_true(v) : json_integer_value(v);
  json_decref(data);
  return n;
}

const char *pm_test_call(const char *pipe, const char *command, json_t *params, json_t **data) {
  static char result[64];
  pm_msg *req = NULL, *resp = NULL;
  const char *r = NULL;
  int rc;
  assert_pm(0, pm_request_new(command, 1, params, &req));
  rc = pm_command_client_call(pipe, NULL, req, PM_ENC_JSON, &resp);
  pm_msg_free(req);
  if (rc < 0) {
    snprintf(result, sizeof(result), "%s", pm_client_result(rc));
    return result;
  }
  assert_pm(0, pm_msg_get_string(resp, "Result", &r));
  snprintf(result, sizeof(result), "%s", r);
  if (data != NULL) {
    *data = json_object_get(pm_msg_fields(resp), "Data");
    json_incref(*data);
  }
  pm_msg_free(resp);
  return result;
}
