/* pipemsgd's peer check (service/access.c) with made-up credentials: who may use the pipes,
 * tested without root. test_access checks the same against real users when run as root. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access.h"
#include "testutil.h"

/* The service's own uid in the access_allowed tests: neither root nor anyone listed. */
#define SELF 4000
#define STRANGER 4001
#define LISTED_UID 5000
#define LISTED_GID 6000
#define OTHER_GID 6001
#define NOBODY 65534

static service_config cfg;

static int setup(void **state) {
  (void)state;
  memset(&cfg, 0, sizeof(cfg));
  return 0;
}

static pm_peer peer(long long uid, long long gid) {
  pm_peer p;
  memset(&p, 0, sizeof(p));
  p.pid = 1234;
  p.uid = uid;
  p.gid = gid;
  return p;
}

static void allow_uid(long long uid) { cfg.allow_uid.v[cfg.allow_uid.n++] = uid; }
static void allow_gid(long long gid) { cfg.allow_gid.v[cfg.allow_gid.n++] = gid; }

static void test_access_policy_root_and_self(void **state) {
  pm_peer root = peer(0, 0), self = peer(SELF, OTHER_GID);
  (void)state;
  assert_true(access_allowed(&cfg, SELF, &root));
  assert_true(access_allowed(&cfg, SELF, &self));
  /* Self is the service's uid, not whoever happens to ask. */
  assert_false(access_allowed(&cfg, SELF + 1, &self));
}

static void test_access_policy_others_refused(void **state) {
  pm_peer stranger = peer(STRANGER, OTHER_GID), unknown = peer(-1, -1);
  (void)state;
  assert_false(access_allowed(&cfg, SELF, &stranger));
  /* Credentials the platform could not tell: refused, even with everything listed. */
  allow_uid(-1);
  allow_gid(-1);
  assert_false(access_allowed(&cfg, SELF, &unknown));
}

static void test_access_policy_listed_uid(void **state) {
  pm_peer listed = peer(LISTED_UID, OTHER_GID), stranger = peer(STRANGER, OTHER_GID);
  (void)state;
  allow_uid(LISTED_UID - 1);
  allow_uid(LISTED_UID);
  assert_true(access_allowed(&cfg, SELF, &listed));
  assert_false(access_allowed(&cfg, SELF, &stranger));
  /* A listed uid is not a listed gid. */
  stranger.gid = LISTED_UID;
  assert_false(access_allowed(&cfg, SELF, &stranger));
}

static void test_access_policy_listed_gid_primary(void **state) {
  pm_peer member = peer(STRANGER, LISTED_GID);
  (void)state;
  allow_gid(LISTED_GID);
  assert_true(access_allowed(&cfg, SELF, &member));
  member.gid = OTHER_GID;
  assert_false(access_allowed(&cfg, SELF, &member));
  /* A listed gid is not a listed uid. */
  member.uid = LISTED_GID;
  assert_false(access_allowed(&cfg, SELF, &member));
}

static void test_access_policy_listed_gid_supplementary(void **state) {
  pm_peer member = peer(STRANGER, OTHER_GID);
  (void)state;
  allow_gid(LISTED_GID);
  member.groups[0] = 100;
  member.groups[1] = OTHER_GID + 1;
  member.groups[2] = LISTED_GID;
  member.ngroups = 3;
  assert_true(access_allowed(&cfg, SELF, &member));
  /* Only the groups the kernel reported count: not what lies past ngroups, and nothing when it
   * could not tell (-1). */
  member.ngroups = 2;
  assert_false(access_allowed(&cfg, SELF, &member));
  member.ngroups = -1;
  assert_false(access_allowed(&cfg, SELF, &member));
}

/* The servers' callback: the effective uid is self; a refusal says who, in one log line. */
static void test_access_policy_authorize_logs_refusal(void **state) {
  char path[] = "/tmp/pmaccess.XXXXXX", buf[1024], expected[128];
  long long me = (long long)geteuid(), other = me == STRANGER ? STRANGER + 1 : STRANGER;
  pm_peer mine = peer(me, OTHER_GID), stranger = peer(other, OTHER_GID);
  int fd = mkstemp(path), saved = dup(2);
  ssize_t n;
  (void)state;
  assert_true(fd >= 0 && saved >= 0);
  assert_int_equal(2, dup2(fd, 2));
  assert_int_equal(0, access_authorize(&cfg, &mine));
  assert_int_equal(-1, access_authorize(&cfg, &stranger));
  assert_int_equal(2, dup2(saved, 2));
  close(saved);
  n = pread(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  unlink(path);
  assert_true(n > 0);
  buf[n] = '\0';
  snprintf(expected, sizeof(expected), "refused pid=1234 uid=%lld gid=%d: not allowed\n", other,
           OTHER_GID);
  assert_non_null(strstr(buf, expected));
  /* The allowed peer left no line: exactly one. */
  assert_ptr_equal(strchr(buf, '\n'), strrchr(buf, '\n'));
}

/* access_authorize in a process that has asked for its own uid nowhere yet (run as
 * "test_access_policy --self", by test_access_policy_authorize_self): the service's user is let
 * in on every call, someone else not. 0 when it holds. */
static int authorize_self_check(void) {
  long long me = (long long)geteuid(), other = me == NOBODY ? NOBODY - 1 : NOBODY;
  pm_peer mine = peer(me, OTHER_GID), stranger = peer(other, OTHER_GID), root = peer(0, 0);
  int null = open("/dev/null", O_WRONLY);
  if (null < 0 || dup2(null, 2) != 2) /* the refusal's line */
    return 2;
  if (me == 0)
    return 3; /* nothing would reach self: root is let in before */
  if (access_authorize(&cfg, &mine) != 0 || access_authorize(&cfg, &stranger) != -1 ||
      access_authorize(&cfg, &mine) != 0 || access_authorize(&cfg, &root) != 0 ||
      access_authorize(&cfg, &stranger) != -1)
    return 1;
  return 0;
}

/* The effective uid behind self is asked once and kept (pipemsgd never changes it): the kept
 * value must be the process's. As root the check runs as nobody, the self path being what root
 * never takes; either way in a new process, which has asked for nothing yet. */
static void test_access_policy_authorize_self(void **state) {
  char exe[4096];
  char *const argv[] = {exe, "--self", NULL};
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1); /* valgrind's answer: us */
  int status = -1;
  pid_t pid;
  (void)state;
  assert_true(n > 0);
  exe[n] = '\0';
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(NOBODY) < 0 || setuid(NOBODY) < 0))
      _exit(4);
    execv(argv[0], argv);
    _exit(5);
  }
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) == 5)
    pm_test_skip("cannot run %s as nobody (a directory on its path is closed to others)", exe);
  assert_int_equal(0, WEXITSTATUS(status));
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--self") == 0)
    return authorize_self_check();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_access_policy_root_and_self, setup),
      cmocka_unit_test_setup(test_access_policy_others_refused, setup),
      cmocka_unit_test_setup(test_access_policy_listed_uid, setup),
      cmocka_unit_test_setup(test_access_policy_listed_gid_primary, setup),
      cmocka_unit_test_setup(test_access_policy_listed_gid_supplementary, setup),
      cmocka_unit_test_setup(test_access_policy_authorize_logs_refusal, setup),
      cmocka_unit_test_setup(test_access_policy_authorize_self, setup),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
