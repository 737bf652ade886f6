/* Pipe name resolution (PROTOCOL §1). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void test_pipe_bare_name_uses_runtime_dir(void **state) {
  char buf[PM_PIPE_PATH_MAX + 1];
  (void)state;
  setenv("PIPEMSG_RUNTIME_DIR", "/tmp/rt", 1);
  setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
  assert_pm(0, pm_pipe_path("UnifiedSDKVPNCommandPipe", buf, sizeof(buf)));
  assert_string_equal("/tmp/rt/UnifiedSDKVPNCommandPipe", buf);
  unsetenv("PIPEMSG_RUNTIME_DIR");
  assert_pm(0, pm_pipe_path("x", buf, sizeof(buf)));
  assert_string_equal("/run/user/1000/pipemsg/x", buf);
  unsetenv("XDG_RUNTIME_DIR");
  assert_pm(0, pm_pipe_path("x", buf, sizeof(buf)));
  assert_string_equal("/run/pipemsg/x", buf);
  setenv("XDG_RUNTIME_DIR", "", 1);
  assert_pm(0, pm_pipe_path("x", buf, sizeof(buf)));
  assert_string_equal("/run/pipemsg/x", buf);
}

static void test_pipe_path_used_as_is(void **state) {
  char buf[PM_PIPE_PATH_MAX + 1];
  (void)state;
  setenv("PIPEMSG_RUNTIME_DIR", "/tmp/rt", 1);
  assert_pm(0, pm_pipe_path("/var/run/p.sock", buf, sizeof(buf)));
  assert_string_equal("/var/run/p.sock", buf);
  assert_pm(0, pm_pipe_path("rel/p.sock", buf, sizeof(buf)));
  assert_string_equal("rel/p.sock", buf);
  assert_pm(0, pm_pipe_path("\\\\.\\pipe\\Name", buf, sizeof(buf)));
  assert_string_equal("\\\\.\\pipe\\Name", buf);
  unsetenv("PIPEMSG_RUNTIME_DIR");
}

static void test_pipe_too_long_is_an_error(void **state) {
  char name[200], buf[300];
  (void)state;
  memset(name, 'a', sizeof(name));
  name[0] = '/';
  name[PM_PIPE_PATH_MAX] = '\0'; /* exactly 107 bytes: fits */
  assert_pm(0, pm_pipe_path(name, buf, sizeof(buf)));
  name[PM_PIPE_PATH_MAX] = 'a';
  name[PM_PIPE_PATH_MAX + 1] = '\0'; /* 108: never truncated */
  assert_pm(PM_ENAMETOOLONG, pm_pipe_path(name, buf, sizeof(buf)));
  assert_pm(PM_EINVAL, pm_pipe_path("", buf, sizeof(buf)));
}

static void test_pipe_error_names(void **state) {
  (void)state;
  assert_string_equal("EMSGSIZE", pm_err_name(PM_EMSGSIZE));
  assert_string_equal("UNKNOWN", pm_err_name(12345));
  assert_string_equal("frame length out of range", pm_strerror(PM_EMSGSIZE));
  assert_string_equal("ConnectionTimeout", pm_client_result(PM_ECONNTIMEOUT));
  assert_string_equal("Timeout", pm_client_result(PM_ETIMEDOUT));
  assert_string_equal("TransportError", pm_client_result(PM_EEOF));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pipe_bare_name_uses_runtime_dir),
      cmocka_unit_test(test_pipe_path_used_as_is),
      cmocka_unit_test(test_pipe_too_long_is_an_error),
      cmocka_unit_test(test_pipe_error_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
