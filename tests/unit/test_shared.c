/* A program linked to the shared library (libpipemsg.so, libpipemsg.dll) and using only the
 * public API: what the library exports is enough for an application, and the codecs work from
 * the shared library (the XML one with its embedded schema). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pipemsg/pipemsg.h"

static const char request[] = "{\"Request\":{\"Id\":7,\"Command\":\"StartVpn\","
                              "\"Params\":{\"Location\":\"de\",\"EnableKillSwitch\":true}}}";

static void test_shared_frame_header(void **state) {
  uint8_t h[PM_FRAME_HEADER_SIZE];
  (void)state;
  assert_int_equal(0, pm_frame_header(300, 0, h));
  assert_memory_equal("\x00\x00\x01\x2c", h, sizeof(h));
  assert_string_equal("EMSGSIZE", pm_err_name(pm_frame_header(0, 0, h)));
}

/* JSON in, XML out and back in: both codecs, each value as the other encoding gives it. */
static void test_shared_codecs(void **state) {
  pm_msg *m = NULL, *again = NULL;
  uint8_t *xml = NULL;
  size_t len = 0;
  int64_t id = 0;
  const char *command = NULL;
  (void)state;
  assert_int_equal(0, pm_msg_decode(request, strlen(request), &m, NULL));
  assert_string_equal("Request", pm_msg_kind(m));
  assert_int_equal(0, pm_msg_encode(m, PM_ENC_XML, &xml, &len));
  assert_int_equal(0, pm_msg_decode(xml, len, &again, NULL));
  assert_int_equal(PM_ENC_XML, pm_msg_encoding(again));
  assert_int_equal(0, pm_msg_get_int(again, "Id", &id));
  assert_int_equal(7, id);
  assert_int_equal(0, pm_msg_get_string(again, "Command", &command));
  assert_string_equal("StartVpn", command);
  pm_free(xml);
  pm_msg_free(again);
  pm_msg_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared_frame_header),
      cmocka_unit_test(test_shared_codecs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
