/* The Windows side of the few helpers of testutil.h that the portable unit tests use and that
 * rest on Linux facilities there (/proc, fork); the rest of testutil.c is not built for Windows
 * yet (docs/windows.md). */
#include "testutil.h"

int pm_test_rss_meaningful(void) {
  print_message("RSS not checked: measured through /proc and fork, which Windows lacks\n");
  return 0;
}

/* Never reached: every caller asks pm_test_rss_meaningful first. */
long pm_test_decode_peak_kb(const void *buf, size_t len, int *rc) {
  (void)buf;
  (void)len;
  *rc = PM_EINVAL;
  fail_msg("pm_test_decode_peak_kb has no Windows version");
  return -1;
}
