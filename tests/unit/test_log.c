/* pipemsgd's log escaper (service/log.c): what a peer's text can and cannot put in a line. */
#include <string.h>

#include "log.h"
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hardening_10_log_escape),
      cmocka_unit_test(test_log_escape_cut),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
