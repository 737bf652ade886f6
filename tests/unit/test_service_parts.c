/* pipemsgd's small parts on their own (the sources are linked in, as for test_backend_hook):
 * UTF-8 checking, log escaping and the syslog target, the settings file, and the two pieces
 * of the systemd protocol. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "log.h"
#include "settings.h"
#include "systemd.h"
#include "utf8.h"

/* ---- UTF-8 ---------------------------------------------------------------------------- */

static void test_utf8_len_as_strict_as_jansson(void **state) {
  static const struct {
    const char *bytes;
    size_t n;   /* bytes available */
    size_t len; /* expected */
  } cases[] = {
      {"a", 1, 1},
      {"\xc3\xa9", 2, 2},             /* é */
      {"\xe2\x82\xac", 3, 3},         /* € */
      {"\xf0\x9f\x98\x80", 4, 4},     /* U+1F600 */
      {"\xf4\x8f\xbf\xbf", 4, 4},     /* U+10FFFF, the last code point */
      {"\xf0\x9f\x98\x80", 3, 0},     /* cut short */
      {"\xe2\x28\xa1", 3, 0},         /* not a continuation byte */
      {"\xc0\x80", 2, 0},             /* overlong NUL */
      {"\xe0\x80\x80", 3, 0},         /* overlong, 3 bytes */
      {"\xf0\x80\x80\x80", 4, 0},     /* overlong, 4 bytes */
      {"\xf4\x90\x80\x80", 4, 0},     /* past U+10FFFF */
      {"\xed\xa0\x80", 3, 0},         /* a surrogate */
      {"\xf5\x80\x80\x80", 4, 0},     /* no such lead byte */
      {"\x80", 1, 0},                 /* a continuation byte alone */
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t got = utf8_len((const unsigned char *)cases[i].bytes, cases[i].n);
    if (got != cases[i].len) {
      print_error("case %zu: %zu, expected %zu\n", i, got, cases[i].len);
      fail();
    }
  }
}

/* The code point comes with the length, for the escaping that tells characters apart. */
static void test_utf8_decode_code_points(void **state) {
  uint32_t cp = 0;
  (void)state;
  assert_int_equal(1, utf8_decode((const unsigned char *)"\x7f", 1, &cp));
  assert_int_equal(0x7f, cp);
  assert_int_equal(2, utf8_decode((const unsigned char *)"\xc2\x9b", 2, &cp));
  assert_int_equal(0x9b, cp);
  assert_int_equal(4, utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp));
  assert_int_equal(0x1f600, cp);
  assert_int_equal(0, utf8_decode((const unsigned char *)"\xc0\xaf", 2, &cp));
}

/* What pipemsg prints from a service (cli_put_text) goes through utf8_escape in pieces of a
 * small buffer: the pieces, each cut at a whole character or escape, add up to the text escaped
 * at once; a terminal's escape sequences come out visible, plain UTF-8 as it is. */
static void test_utf8_escape_in_pieces(void **state) {
  static const char in[] = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mRED\x1b[0m \xc2\x9b" "31m\x7f\t\n"
                           "\xff\xe2\x82 caf\xc3\xa9 \xe2\x80\xae\\";
  static const char want[] = "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mRED\\x1b[0m \\xc2\\x9b31m"
                             "\\x7f\\x09\\x0a\\xff\\xe2\\x82 caf\xc3\xa9 \\xe2\\x80\\xae\\\\";
  char whole[256], piece[6], joined[256] = "";
  size_t used, n = sizeof(in) - 1, pieces = 0;
  (void)state;
  assert_int_equal(strlen(want), utf8_escape(in, n, whole, sizeof(whole), &used));
  assert_int_equal(n, used);
  assert_string_equal(want, whole);
  for (const char *p = in; n > 0; pieces++) {
    size_t len = utf8_escape(p, n, piece, sizeof(piece), &used);
    assert_true(len > 0 && len < sizeof(piece) && used > 0);
    strcat(joined, piece);
    p += used;
    n -= used;
  }
  assert_string_equal(want, joined);
  assert_true(pieces > 1);
  /* The length is the caller's: a NUL inside it is a control byte like the others. */
  assert_int_equal(6, utf8_escape("a\0b", 3, whole, sizeof(whole), &used));
  assert_string_equal("a\\x00b", whole);
}

/* ---- log -------------------------------------------------------------------------------- */

/* The escaped text is cut where the next character or escape would not fit, never inside
 * one. */
static void test_log_escape_cuts_whole_characters(void **state) {
  const char *in = "a\xc3\xa9\x01\\";
  char out[16];
  (void)state;
  assert_int_equal(9, log_escape(in, out, sizeof(out)));
  assert_string_equal("a\xc3\xa9\\x01\\\\", out);
  assert_int_equal(1, log_escape(in, out, 3)); /* é needs 2 bytes and the NUL */
  assert_string_equal("a", out);
  assert_int_equal(3, log_escape(in, out, 4));
  assert_string_equal("a\xc3\xa9", out);
  assert_int_equal(3, log_escape(in, out, 7)); /* \x01 needs 4 bytes and the NUL */
  assert_string_equal("a\xc3\xa9", out);
  assert_int_equal(7, log_escape(in, out, 8));
  assert_int_equal(0, log_escape(in, out, 1));
  assert_string_equal("", out);
  /* A C1 control (U+0085, NEL) is valid UTF-8 but escaped byte by byte. */
  assert_int_equal(8, log_escape("\xc2\x85", out, sizeof(out)));
  assert_string_equal("\\xc2\\x85", out);
}

/* Each range of invisible characters at its edges: inside, escaped byte by byte; just
 * outside, printed as it is. */
static void test_log_escape_invisible_ranges(void **state) {
  static const unsigned escaped[] = {0x80,   0x9f,   0xad,   0x61c,  0x180e, 0x200b, 0x200f,
                                     0x2028, 0x202e, 0x2060, 0x206f, 0xfeff, 0xfff9, 0xfffb};
  static const unsigned printed[] = {0xa0,   0xac,   0xae,   0x61b,  0x61d,  0x180d, 0x180f,
                                     0x200a, 0x2010, 0x2027, 0x202f, 0x205f, 0x2070, 0xfefe,
                                     0xff00, 0xfff8, 0xfffc};
  char in[8], out[32];
  (void)state;
  for (size_t k = 0; k < 2; k++) {
    const unsigned *list = k == 0 ? escaped : printed;
    size_t n = k == 0 ? sizeof(escaped) / sizeof(escaped[0]) : sizeof(printed) / sizeof(printed[0]);
    for (size_t i = 0; i < n; i++) {
      unsigned cp = list[i];
      size_t len = cp < 0x800 ? 2 : 3;
      if (len == 2) {
        in[0] = (char)(0xc0 | (cp >> 6));
        in[1] = (char)(0x80 | (cp & 0x3f));
      } else {
        in[0] = (char)(0xe0 | (cp >> 12));
        in[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        in[2] = (char)(0x80 | (cp & 0x3f));
      }
      in[len] = '\0';
      if (log_escape(in, out, sizeof(out)) != (k == 0 ? 4 * len : len) ||
          (k == 1 && strcmp(in, out) != 0) || (k == 0 && out[0] != '\\')) {
        print_error("U+%04X: '%s' (expected %s)\n", cp, out, k == 0 ? "escaped" : "as it is");
        fail();
      }
    }
  }
}

/* The syslog target escapes as the stderr one does; here it only has to work without a
 * crash (what reaches the system log is not ours to read). */
static void test_log_syslog_target(void **state) {
  (void)state;
  log_open(LVL_INFO, LOG_TO_SYSLOG);
  log_msg(LVL_INFO, "pipemsg test_service_parts: syslog target \x01 escaped");
  log_msg(LVL_DEBUG, "not logged: above the level");
  log_close();
  log_open(LVL_INFO, LOG_TO_STDERR);
  log_close();
}

/* One line logged at info to stderr (redirected to a file for the call), as written. */
static const char *logged_line(void) {
  static char line[256];
  char path[] = "/tmp/pmlog.XXXXXX";
  int fd = mkstemp(path), saved = dup(2);
  ssize_t n;
  assert_true(fd >= 0 && saved >= 0);
  fflush(stderr);
  assert_int_equal(2, dup2(fd, 2));
  log_open(LVL_INFO, LOG_TO_STDERR);
  log_msg(LVL_INFO, "hello");
  log_close();
  fflush(stderr);
  assert_int_equal(2, dup2(saved, 2));
  close(saved);
  n = pread(fd, line, sizeof(line) - 1, 0);
  assert_true(n > 0);
  line[n] = '\0';
  close(fd);
  unlink(path);
  return line;
}

/* Lines carry a time stamp unless stderr is the journal's stream, as $JOURNAL_STREAM
 * ("DEV:INO") says; a malformed value, or one naming another file, keeps the stamps. */
static void test_log_stamps_unless_journal(void **state) {
  static const char *const bad[] = {"", "journal", "12", "12:x"};
  (void)state;
  unsetenv("JOURNAL_STREAM");
  assert_int_equal(0, strncmp(logged_line() + 19, ".", 1)); /* 2026-01-02T03:04:05.678Z */
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    setenv("JOURNAL_STREAM", bad[i], 1);
    assert_non_null(strstr(logged_line(), "Z pipemsgd: info: hello\n"));
  }
  /* The right device, another inode (/tmp's own): stderr redirected after the journal set
   * it. */
  {
    struct stat st;
    char value[64];
    assert_int_equal(0, stat("/tmp", &st));
    snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    assert_non_null(strstr(logged_line(), "Z pipemsgd: info: hello\n"));
  }
  /* stderr's own device with another inode, and no stderr at all: not the journal. */
  {
    struct stat st;
    char value[64];
    int saved = dup(2);
    assert_int_equal(0, fstat(2, &st));
    snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", value, 1);
    assert_false(log_stderr_is_journal());
    snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    assert_true(log_stderr_is_journal());
    assert_true(saved >= 0);
    close(2);
    assert_false(log_stderr_is_journal());
    assert_int_equal(2, dup2(saved, 2));
    close(saved);
  }
  unsetenv("JOURNAL_STREAM");
}

/* ---- settings ----------------------------------------------------------------------------- */

static char dir[64];

static int setup_dir(void **state) {
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  return 0;
}

static int teardown_dir(void **state) {
  (void)state;
  pm_test_dir_remove(dir);
  return 0;
}

static void write_settings(const char *text) {
  char path[128];
  FILE *f;
  snprintf(path, sizeof(path), "%s/settings.json", dir);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_settings_load_refuses_what_is_not_an_object(void **state) {
  settings s;
  (void)state;
  write_settings("[true]");
  assert_int_equal(-1, settings_load(&s, dir));
  settings_free(&s);
  write_settings("{\"KillSwitch\": true, \"KillSwitch\": false}"); /* duplicate key */
  assert_int_equal(-1, settings_load(&s, dir));
  settings_free(&s);
  /* No file (or no directory) is not an error: the defaults. */
  assert_int_equal(0, settings_load(&s, "/nonexistent/pipemsg-settings"));
  assert_false(s.kill_switch);
  assert_true(s.reconnection);
  settings_free(&s);
}

/* A value of the wrong type, or a domain list that would not be accepted from a client, is
 * ignored on its own: the other settings still load. */
static void test_settings_load_ignores_bad_values(void **state) {
  static const char *const bad_lists[] = {
      "\"example.com\"", /* not a list */
      "[\"example.com\", 7]",
  };
  settings s;
  char text[256];
  (void)state;
  for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
    snprintf(text, sizeof(text),
             "{\"KillSwitch\": true, \"ReconnectionEnabled\": \"no\", \"BypassDomains\": %s}",
             bad_lists[i]);
    write_settings(text);
    assert_int_equal(0, settings_load(&s, dir));
    assert_true(s.kill_switch);
    assert_true(s.reconnection);
    assert_int_equal(0, json_array_size(s.bypass_domains));
    settings_free(&s);
  }
}

static void test_settings_save_failures_leave_nothing(void **state) {
  settings s;
  char path[128];
  (void)state;
  assert_int_equal(0, settings_load(&s, NULL));
  assert_int_equal(0, settings_save(&s, NULL)); /* no data directory: nothing to write */
  s.kill_switch = true;
  assert_int_equal(-1, settings_save(&s, "/nonexistent/pipemsg-settings"));
  /* settings.json a directory: the temporary file is written but cannot replace it, and is
   * removed. */
  snprintf(path, sizeof(path), "%s/settings.json", dir);
  assert_int_equal(0, mkdir(path, 0700));
  assert_int_equal(-1, settings_save(&s, dir));
  {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test \"$(ls -A '%s')\" = settings.json", dir);
    assert_int_equal(0, system(cmd));
  }
  assert_int_equal(0, rmdir(path));
  assert_int_equal(0, settings_save(&s, dir));
  settings_free(&s);
  assert_int_equal(0, settings_load(&s, dir));
  assert_true(s.kill_switch);
  settings_free(&s);
}

static void test_settings_domain_rules(void **state) {
  static const struct {
    const char *domain;
    int ok;
  } cases[] = {
      {"example.com", 1},
      {"*.example.com", 1},
      {"a-b.example", 1},
      {"", 0},
      {"*.", 0},
      {".example.com", 0},
      {"example.com.", 0},
      {"a..example", 0},
      {"a-.example", 0},
      {"-a.example", 0},
      {"a.example-", 0},
      {"a_b.example", 0},
      {"*.*.example", 0},
  };
  char label[80], longest[300], why[PM_REASON_MAX];
  json_t *list, *copy;
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    list = json_pack("[s]", cases[i].domain);
    copy = settings_check_domains(list, why, sizeof(why));
    if ((copy != NULL) != cases[i].ok) {
      print_error("'%s': expected %s\n", cases[i].domain, cases[i].ok ? "valid" : "invalid");
      fail();
    }
    if (copy == NULL)
      assert_non_null(strstr(why, "Domains[0] must be a domain name"));
    json_decref(copy);
    json_decref(list);
  }
  /* Labels of up to 63 characters; names of up to 253. */
  memset(label, 'a', 63);
  label[63] = '\0';
  list = json_pack("[s]", label);
  copy = settings_check_domains(list, why, sizeof(why));
  assert_non_null(copy);
  json_decref(copy);
  json_decref(list);
  label[63] = 'a';
  label[64] = '\0';
  list = json_pack("[s]", label);
  assert_null(settings_check_domains(list, why, sizeof(why)));
  json_decref(list);
  memset(longest, 'a', 253);
  for (int i = 63; i < 253; i += 64)
    longest[i] = '.';
  longest[253] = '\0';
  list = json_pack("[s]", longest);
  copy = settings_check_domains(list, why, sizeof(why));
  assert_non_null(copy);
  json_decref(copy);
  json_decref(list);
  longest[253] = 'a';
  longest[254] = '\0';
  list = json_pack("[s]", longest);
  assert_null(settings_check_domains(list, why, sizeof(why)));
  json_decref(list);
}

/* Each boolean setting on its own: true, false, absent (its default) or of another type (its
 * default too); a valid domain list is kept as it was written. */
static void test_settings_load_each_value(void **state) {
  static const char *const names[] = {"KillSwitch", "ReconnectionEnabled", "TunnelUp"};
  static const char *const values[] = {"true", "false", NULL, "1"};
  settings s;
  char text[256], why[PM_REASON_MAX];
  (void)state;
  for (size_t n = 0; n < 3; n++)
    for (size_t v = 0; v < 4; v++) {
      bool fallback = n == 1, want = values[v] != NULL && values[v][0] == 't' ? true
                                     : values[v] != NULL && values[v][0] == 'f' ? false
                                                                                : fallback;
      bool got[3];
      if (values[v] != NULL)
        snprintf(text, sizeof(text), "{\"%s\": %s, \"BypassDomains\": [\"a.example\"]}",
                 names[n], values[v]);
      else
        snprintf(text, sizeof(text), "{\"Other\": 1}");
      write_settings(text);
      assert_int_equal(0, settings_load(&s, dir));
      got[0] = s.kill_switch;
      got[1] = s.reconnection;
      got[2] = s.tunnel_up;
      for (size_t k = 0; k < 3; k++)
        assert_int_equal(k == n ? want : k == 1, got[k]);
      assert_int_equal(values[v] != NULL ? 1 : 0, json_array_size(s.bypass_domains));
      settings_free(&s);
    }
  /* A caller asking why: a missing list says so. */
  why[0] = '\0';
  assert_null(settings_check_domains(NULL, why, sizeof(why)));
  assert_string_equal("Domains is missing", why);
  assert_null(settings_check_domains(NULL, NULL, 0));
}

/* ---- settings out of memory (jansson's allocations) ----------------------------------------- */

static unsigned long json_allocs_left;
static bool json_limited;

static void *limited_malloc(size_t n) {
  if (json_limited) {
    if (json_allocs_left == 0)
      return NULL;
    json_allocs_left--;
  }
  return malloc(n);
}

/* From the nth jansson allocation on (1-based), every one fails; 0 lifts the limit. */
static void json_fail_after(unsigned long n) {
  json_set_alloc_funcs(n != 0 ? limited_malloc : malloc, free);
  json_limited = n != 0;
  json_allocs_left = n != 0 ? n - 1 : 0;
}

/* Out of memory, loading fails (-1) or gives what the file says, saving fails leaving the
 * file as it was or replaces it whole, and a list check says "out of memory". */
static void test_settings_out_of_memory(void **state) {
  settings s, kept;
  char why[PM_REASON_MAX], path[128];
  json_t *list = json_pack("[s]", "a.example"), *copy = NULL;
  unsigned long n;
  int rc = -1;
  (void)state;
  write_settings("{\"KillSwitch\": true, \"BypassDomains\": [\"a.example\", \"b.example\"]}");
  for (n = 1; n < 1000 && rc != 0; n++) {
    json_fail_after(n);
    rc = settings_load(&s, dir);
    json_fail_after(0);
    if (rc == 0) {
      assert_true(s.kill_switch);
    }
    settings_free(&s);
  }
  assert_int_equal(0, rc);
  assert_true(n > 2);
  /* (A load whose domain list check runs out of memory keeps the empty list, as for a list
   * that is not valid: not told apart here.) Saving: */
  assert_int_equal(0, settings_load(&kept, dir));
  kept.kill_switch = false;
  for (rc = -1, n = 1; n < 1000 && rc != 0; n++) {
    json_fail_after(n);
    rc = settings_save(&kept, dir);
    json_fail_after(0);
    assert_int_equal(0, settings_load(&s, dir));
    assert_int_equal(rc == 0 ? false : true, s.kill_switch);
    assert_int_equal(2, json_array_size(s.bypass_domains));
    settings_free(&s);
  }
  assert_int_equal(0, rc);
  settings_free(&kept);
  snprintf(path, sizeof(path), "%s/settings.json", dir);
  assert_int_equal(0, unlink(path));
  for (n = 1; n < 1000 && copy == NULL; n++) {
    why[0] = '\0';
    json_fail_after(n);
    copy = settings_check_domains(list, why, sizeof(why));
    json_fail_after(0);
    if (copy == NULL)
      assert_non_null(strstr(why, "out of memory"));
  }
  assert_non_null(copy);
  assert_true(json_equal(list, copy));
  json_decref(copy);
  json_decref(list);
  json_fail_after(1);
  assert_int_equal(-1, settings_load(&s, NULL));
  json_fail_after(0);
  settings_free(&s);
}

/* ---- systemd -------------------------------------------------------------------------------- */

enum { FD_NONE, FD_SOCKETS, FD_PIPE };

/* systemd_listen_fds in a child whose fds 3 and 4 are what fds says, with $LISTEN_FDS nfds
 * and $LISTEN_FDNAMES names (NULL: unset). Returns "rc command event", and whether the
 * variables were removed. */
static const char *listen_fds(int fds, const char *nfds, const char *names) {
  static char result[64];
  int out[2], status;
  ssize_t n;
  pid_t pid;
  assert_int_equal(0, pipe(out));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char text[64], pidtext[16];
    int report = fcntl(out[1], F_DUPFD, 10), command_fd, event_fd, rc;
    if (fds == FD_SOCKETS) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || dup2(sv[0], 3) < 0 || dup2(sv[1], 4) < 0)
        exit(100);
    } else if (fds == FD_PIPE) {
      int p[2];
      if (pipe(p) < 0 || dup2(p[0], 3) < 0)
        exit(100);
    }
    snprintf(pidtext, sizeof(pidtext), "%ld", (long)getpid());
    setenv("LISTEN_PID", pidtext, 1);
    setenv("LISTEN_FDS", nfds, 1);
    if (names != NULL)
      setenv("LISTEN_FDNAMES", names, 1);
    rc = systemd_listen_fds(&command_fd, &event_fd);
    snprintf(text, sizeof(text), "%d %d %d%s", rc, command_fd, event_fd,
             getenv("LISTEN_FDS") || getenv("LISTEN_PID") || getenv("LISTEN_FDNAMES")
                 ? " env-left"
                 : "");
    exit(write(report, text, strlen(text)) > 0 ? 0 : 101);
  }
  close(out[1]);
  n = read(out[0], result, sizeof(result) - 1);
  close(out[0]);
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(n > 0);
  result[n] = '\0';
  return result;
}

static void test_systemd_listen_fds(void **state) {
  (void)state;
  /* Not for us: another process's variables. */
  setenv("LISTEN_PID", "1", 1);
  setenv("LISTEN_FDS", "2", 1);
  {
    int c, e;
    assert_int_equal(0, systemd_listen_fds(&c, &e));
    assert_int_equal(-1, c);
    assert_int_equal(-1, e);
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  assert_string_equal("2 3 4", listen_fds(FD_SOCKETS, "2", NULL));
  assert_string_equal("2 4 3", listen_fds(FD_SOCKETS, "2", "event:command"));
  assert_string_equal("2 3 4", listen_fds(FD_SOCKETS, "2", "other:names"));
  assert_string_equal("1 3 -1", listen_fds(FD_SOCKETS, "1", NULL));
  assert_string_equal("2 -1 4", listen_fds(FD_SOCKETS, "2", "x:event"));
  /* Names past the number of fds name nothing. */
  assert_string_equal("2 4 -1", listen_fds(FD_SOCKETS, "2", "extra:command:event"));
  /* Our own LISTEN_PID without LISTEN_FDS is no activation, and is left alone. */
  {
    char self[16];
    int c, e;
    snprintf(self, sizeof(self), "%ld", (long)getpid());
    setenv("LISTEN_PID", self, 1);
    assert_int_equal(0, systemd_listen_fds(&c, &e));
    assert_int_equal(-1, c);
    assert_int_equal(-1, e);
    assert_non_null(getenv("LISTEN_PID"));
    unsetenv("LISTEN_PID");
  }
  /* What makes no sense is refused; the variables go either way. */
  assert_string_equal("-1 -1 -1", listen_fds(FD_SOCKETS, "0", NULL));
  assert_string_equal("-1 -1 -1", listen_fds(FD_SOCKETS, "9", NULL));
  assert_string_equal("-1 -1 -1", listen_fds(FD_PIPE, "1", NULL));
}

static void test_systemd_notify_ready(void **state) {
  struct sockaddr_un sa;
  char name[64], buf[32], longname[200];
  struct pollfd pfd;
  ssize_t n;
  int fd;
  (void)state;
  /* An abstract socket, as systemd passes it with a leading '@'. */
  snprintf(name, sizeof(name), "@pipemsg-test-notify-%ld", (long)getpid());
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
  assert_int_equal(0, bind(fd, (struct sockaddr *)&sa,
                           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))));
  setenv("NOTIFY_SOCKET", name, 1);
  systemd_notify_ready();
  pfd.fd = fd;
  pfd.events = POLLIN;
  assert_int_equal(1, poll(&pfd, 1, 5000));
  n = recv(fd, buf, sizeof(buf) - 1, 0);
  assert_int_equal(7, n);
  buf[n] = '\0';
  assert_string_equal("READY=1", buf);
  /* Neither a relative name nor one too long for a socket address is tried. */
  setenv("NOTIFY_SOCKET", "relative/notify", 1);
  systemd_notify_ready();
  memset(longname, 'x', sizeof(longname) - 1);
  longname[0] = '/';
  longname[sizeof(longname) - 1] = '\0';
  setenv("NOTIFY_SOCKET", longname, 1);
  systemd_notify_ready();
  unsetenv("NOTIFY_SOCKET");
  systemd_notify_ready();
  assert_int_equal(0, poll(&pfd, 1, 0));
  close(fd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utf8_len_as_strict_as_jansson),
      cmocka_unit_test(test_utf8_decode_code_points),
      cmocka_unit_test(test_utf8_escape_in_pieces),
      cmocka_unit_test(test_log_escape_cuts_whole_characters),
      cmocka_unit_test(test_log_escape_invisible_ranges),
      cmocka_unit_test(test_log_syslog_target),
      cmocka_unit_test(test_log_stamps_unless_journal),
      cmocka_unit_test_setup_teardown(test_settings_load_refuses_what_is_not_an_object, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_settings_load_ignores_bad_values, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_settings_save_failures_leave_nothing, setup_dir,
                                      teardown_dir),
      cmocka_unit_test(test_settings_domain_rules),
      cmocka_unit_test_setup_teardown(test_settings_load_each_value, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_settings_out_of_memory, setup_dir, teardown_dir),
      cmocka_unit_test(test_systemd_listen_fds),
      cmocka_unit_test(test_systemd_notify_ready),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
