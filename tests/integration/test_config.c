/* pipemsgd's command line and config file errors: each is refused before anything starts
 * (exit status 2), with a message naming the option and, for a file, the line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define PIPEMSGD PM_BIN_DIR "/pipemsgd"

static char dir[64];
static char conf[128];

static int setup(void **state) {
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(conf, sizeof(conf), "%s/pipemsgd.conf", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pm_test_dir_remove(dir);
  return 0;
}

static void write_bytes(const char *path, const void *bytes, size_t n) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(n, fwrite(bytes, 1, n, f));
  fclose(f);
}

static void write_conf(const char *text) { write_bytes(conf, text, strlen(text)); }

/* pipemsgd with args must exit with status want and say text on stderr (or stdout when
 * want is 0). */
static void expect(int want, const char *text, const char *const *args) {
  const char *argv[16] = {PIPEMSGD};
  const char *out, *err;
  int n = 1, rc;
  for (; *args != NULL; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  rc = pm_test_run(argv, &out, &err);
  if (rc != want || strstr(want == 0 ? out : err, text) == NULL) {
    print_error("pipemsgd %s ...: status %d (expected %d); expected '%s' in:\n%s%s\n", argv[1],
                rc, want, text, out, err);
    fail();
  }
}

static void test_config_command_line_errors(void **state) {
  const char *unknown[] = {"--no-such-option", NULL};
  const char *missing[] = {"--heartbeat-ms", NULL};
  const char *extra[] = {"--print-config", "leftover", NULL};
  const char *negative[] = {"--heartbeat-ms", "-5", "--print-config", NULL};
  const char *range[] = {"--heartbeat-ms", "0", "--print-config", NULL};
  const char *user[] = {"--allow-uid", "pipemsg-no-such-user", "--print-config", NULL};
  const char *by_name[] = {"--allow-uid", "root", "--allow-gid", "root", "--print-config", NULL};
  const char *type[] = {"--transient", "9Lives", "--print-config", NULL};
  (void)state;
  expect(2, "pipemsgd: bad option '--no-such-option'\nTry 'pipemsgd --help'.", unknown);
  expect(2, "pipemsgd: bad option '--heartbeat-ms'", missing);
  expect(2, "pipemsgd: unexpected argument 'leftover'", extra);
  expect(2, "--heartbeat-ms: expected a number from 1 to 86400000, got '-5'", negative);
  expect(2, "--heartbeat-ms: expected a number from 1 to 86400000, got '0'", range);
  expect(2, "--allow-uid: 'pipemsg-no-such-user' is not a known user", user);
  expect(0, "allow-uid = 0\n", by_name);
  expect(0, "allow-gid = 0\n", by_name);
  expect(2, "--transient: '9Lives' is not a type name", type);
}

/* The Windows options are refused on Unix, by name, and so is the Windows log target; the
 * file log target works on both. */
static void test_config_platform_options(void **state) {
  const char *sddl[] = {"--pipe-sddl", "D:P(A;;GA;;;SY)", "--print-config", NULL};
  const char *registry[] = {"--names-registry", "HKLM\\Software\\pipemsg", NULL};
  const char *user[] = {"--allow-user", "S-1-5-18", NULL};
  const char *group[] = {"--allow-group", "Users", NULL};
  const char *install[] = {"--install", "pipemsg", NULL};
  const char *eventlog[] = {"--log-target", "eventlog", "--print-config", NULL};
  const char *file_alone[] = {"--log-file", "/tmp/x", "--print-config", NULL};
  const char *file_target[] = {"--log-target", "file", "--print-config", NULL};
  const char *file_ok[] = {"--log-target", "file", "--log-file", "/tmp/x", "--print-config",
                           NULL};
  const char *help[] = {"--help", NULL};
  const char *printed[] = {"--print-config", NULL};
  (void)state;
  expect(2, "--pipe-sddl: only on Windows", sddl);
  expect(2, "--names-registry: only on Windows", registry);
  expect(2, "--allow-user: only on Windows", user);
  expect(2, "--allow-group: only on Windows", group);
  expect(2, "--install: only on Windows", install);
  expect(2, "--log-target eventlog: only on Windows", eventlog);
  expect(2, "--log-file and --log-target file go together", file_alone);
  expect(2, "--log-file and --log-target file go together", file_target);
  expect(0, "log-target = file\nlog-file = /tmp/x\n", file_ok);
  expect(0, "SIGHUP reads the config file again", help);
  expect(0, "socket-mode = 0660\n", printed);
}

/* A repeatable option takes at most 32 values. */
static void test_config_list_limits(void **state) {
  char text[2048];
  const char *args[] = {"--config", conf, "--print-config", NULL};
  size_t n = 0;
  (void)state;
  for (int i = 0; i < 32; i++)
    n += (size_t)snprintf(text + n, sizeof(text) - n, "transient = T%d\nallow-uid = %d\n", i,
                          1000 + i);
  write_conf(text);
  expect(0, "transient = T31\n", args);
  snprintf(text + n, sizeof(text) - n, "transient = T32\n");
  write_conf(text);
  expect(2, ":65: --transient: 'T32' is not a type name, or more than 32 were given", args);
  snprintf(text + n, sizeof(text) - n, "allow-uid = 2000\n");
  write_conf(text);
  expect(2, ":65: --allow-uid: '2000' is not a known user, or more than 32 were given", args);
}

static void test_config_file_errors(void **state) {
  char missing[160];
  const char *args[] = {"--config", conf, "--print-config", NULL};
  const char *absent[] = {"--config", missing, NULL};
  char *big;
  (void)state;
  snprintf(missing, sizeof(missing), "%s/absent.conf", dir);
  expect(2, "cannot read config file", absent);

  write_conf("# a comment\n\nheartbeat-ms 500\n");
  expect(2, "pipemsgd.conf:3: expected key = value", args);
  write_conf("help = true\n");
  expect(2, "pipemsgd.conf:1: unknown option 'help'", args);
  write_conf("test-commands = maybe\n");
  expect(2, ":1: --test-commands: expected true or false, got 'maybe'", args);
  write_conf("test-commands = yes\nhook-shell = no\n");
  expect(0, "test-commands = true\n", args);

  write_bytes(conf, "heartbeat-ms = 500\n\0log-level = debug\n", 38);
  expect(2, "pipemsgd.conf: contains a NUL byte", args);

  /* One byte over 1 MiB of comments. */
  big = malloc(1024 * 1024 + 1);
  assert_non_null(big);
  memset(big, '#', 1024 * 1024 + 1);
  for (size_t i = 1000; i < 1024 * 1024; i += 1000)
    big[i] = '\n';
  write_bytes(conf, big, 1024 * 1024);
  expect(0, "heartbeat-ms = 1000\n", args);
  write_bytes(conf, big, 1024 * 1024 + 1);
  free(big);
  expect(2, "pipemsgd.conf: larger than 1 MiB", args);
}

/* The observer bounds (§5.11): the library's defaults, their ranges at both ends, and the
 * values refused, from the command line and a config file. 0 is refused rather than taken:
 * the library reads a 0 as its default, and has no way to turn every observer away. */
static void test_config_observer_options(void **state) {
  const char *defaults[] = {"--print-config", NULL};
  const char *lowest[] = {"--max-observers", "1", "--observer-max-unsent", "1024",
                          "--print-config", NULL};
  const char *highest[] = {"--max-observers", "1024", "--observer-max-unsent",
                           "18446744073709551615", "--print-config", NULL};
  const char *no_observers[] = {"--max-observers", "0", "--print-config", NULL};
  const char *too_many[] = {"--max-observers", "1025", "--print-config", NULL};
  const char *negative[] = {"--max-observers", "-1", "--print-config", NULL};
  const char *too_small[] = {"--observer-max-unsent", "1023", "--print-config", NULL};
  const char *suffix[] = {"--observer-max-unsent", "4M", "--print-config", NULL};
  const char *overflow[] = {"--observer-max-unsent", "18446744073709551616", "--print-config",
                            NULL};
  const char *args[] = {"--config", conf, "--print-config", NULL};
  (void)state;
  expect(0, "max-observers = 8\n", defaults);
  expect(0, "observer-max-unsent = 4194304\n", defaults);
  expect(0, "max-observers = 1\n", lowest);
  expect(0, "observer-max-unsent = 1024\n", lowest);
  expect(0, "max-observers = 1024\n", highest);
  if (sizeof(size_t) == 8)
    expect(0, "observer-max-unsent = 18446744073709551615\n", highest);
  expect(2, "--max-observers: expected a number from 1 to 1024, got '0'", no_observers);
  expect(2, "--max-observers: expected a number from 1 to 1024, got '1025'", too_many);
  expect(2, "--max-observers: expected a number from 1 to 1024, got '-1'", negative);
  expect(2, "--observer-max-unsent: expected a number from 1024 to ", too_small);
  expect(2, "got '1023'", too_small);
  expect(2, "--observer-max-unsent: expected a number from 1024 to ", suffix);
  expect(2, "got '4M'", suffix);
  expect(2, "got '18446744073709551616'", overflow);

  write_conf("max-observers = 2\nobserver-max-unsent = 65536\n");
  expect(0, "max-observers = 2\n", args);
  expect(0, "observer-max-unsent = 65536\n", args);
  write_conf("observer-max-unsent = 0\n");
  expect(2, "pipemsgd.conf:1: --observer-max-unsent: expected a number from 1024 to ", args);
  write_conf("{\"max-observers\": 0}");
  expect(2, "--max-observers: expected a number from 1 to 1024, got '0'", args);
}

static void test_config_json_file(void **state) {
  const char *args[] = {"--config", conf, "--print-config", NULL};
  (void)state;
  write_conf("{\"heartbeat-ms\": 500,");
  expect(2, "pipemsgd.conf:1: ", args);
  write_conf("{\"heartbeat-ms\": 1.5}");
  expect(2, "--heartbeat-ms: unsupported JSON value", args);
  write_conf("{\"transient\": [\"Ping\", {\"x\": 1}]}");
  expect(2, "--transient: unsupported JSON value", args);
  write_conf("{\"test-commands\": true, \"hook-shell\": false, \"socket-mode\": 416, "
             "\"log-level\": \"debug\"}");
  expect(0, "test-commands = true\n", args);
  expect(0, "socket-mode = 0640\n", args); /* an integer mode is read as the number it is */
  write_conf("{\"print-config\": true}");
  expect(2, "unknown option 'print-config'", args);
}

/* Numbers, ids and flags at their edges: nothing but digits, within range, every spelling of a
 * flag; a config file that cannot be read; JSON that is not an object or has null. */
static void test_config_values_at_the_edges(void **state) {
  const char *empty[] = {"--heartbeat-ms", "", "--print-config", NULL};
  const char *space[] = {"--heartbeat-ms", " 5", "--print-config", NULL};
  const char *huge[] = {"--heartbeat-ms", "99999999999999999999999", "--print-config", NULL};
  const char *trailing[] = {"--heartbeat-ms", "5x", "--print-config", NULL};
  const char *uid_max[] = {"--allow-uid", "4294967295", "--print-config", NULL};
  const char *uid_below[] = {"--allow-uid", "4294967294", "--print-config", NULL};
  const char *args[] = {"--config", conf, "--print-config", NULL};
  const char *a_dir[] = {"--config", dir, "--print-config", NULL};
  (void)state;
  expect(2, "--heartbeat-ms: expected a number from 1 to 86400000, got ''", empty);
  expect(2, "--heartbeat-ms: expected a number from 1 to 86400000, got ' 5'", space);
  expect(2, "--heartbeat-ms: expected a number from 1 to 86400000, got '99999999999999999999999'",
         huge);
  expect(2, "--heartbeat-ms: expected a number from 1 to 86400000, got '5x'", trailing);
  /* (uid_t)-1 means "no change" to the kernel: never taken as a number. */
  expect(2, "--allow-uid: '4294967295' is not a known user", uid_max);
  expect(0, "allow-uid = 4294967294\n", uid_below);
  expect(2, ": cannot read", a_dir);
  write_conf("test-commands = 1\nhook-shell = 0\n");
  expect(0, "test-commands = true\n", args);
  expect(0, "hook-shell = false\n", args);
  write_conf("test-commands = true\nhook-shell = false\ntest-commands = no\n");
  expect(0, "test-commands = false\n", args);
  write_conf("[1]");
  expect(2, "pipemsgd.conf:", args);
  write_conf(" {\"test-commands\": null}");
  expect(2, "--test-commands: unsupported JSON value", args);
  write_conf("{\"allow-uid\": [0, \"4294967294\"], \"test-commands\": [false, true]}");
  expect(0, "allow-uid = 0\nallow-uid = 4294967294\n", args);
  expect(0, "test-commands = true\n", args);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_config_command_line_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_platform_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_list_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_file_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_observer_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_json_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_values_at_the_edges, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
