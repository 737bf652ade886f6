/* Pipe name resolution (PROTOCOL §1) and how a server binds its socket file. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"
#include "transport/transport_unix.h"

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
  setenv("PIPEMSG_RUNTIME_DIR", pm_test_runtime_dir(), 1);
}

/* A client's default pipes: the variables when set and not empty, else the SDK's names. */
static void test_pipe_default_from_environment(void **state) {
  (void)state;
  unsetenv("PIPEMSG_COMMAND_PIPE");
  unsetenv("PIPEMSG_EVENT_PIPE");
  assert_string_equal(PM_COMMAND_PIPE_DEFAULT, pm_pipe_default(PM_PIPE_COMMAND));
  assert_string_equal(PM_EVENT_PIPE_DEFAULT, pm_pipe_default(PM_PIPE_EVENT));
  setenv("PIPEMSG_COMMAND_PIPE", "/tmp/x/cmd", 1);
  setenv("PIPEMSG_EVENT_PIPE", "Evt", 1);
  assert_string_equal("/tmp/x/cmd", pm_pipe_default(PM_PIPE_COMMAND));
  assert_string_equal("Evt", pm_pipe_default(PM_PIPE_EVENT));
  setenv("PIPEMSG_EVENT_PIPE", "", 1);
  assert_string_equal(PM_EVENT_PIPE_DEFAULT, pm_pipe_default(PM_PIPE_EVENT));
  assert_null(pm_pipe_default((pm_pipe_kind)7));
  unsetenv("PIPEMSG_COMMAND_PIPE");
  unsetenv("PIPEMSG_EVENT_PIPE");
}

static void test_pipe_path_used_as_is(void **state) {
  char buf[PM_PIPE_PATH_MAX + 1];
  (void)state;
  setenv("PIPEMSG_RUNTIME_DIR", "/tmp/rt", 1);
  assert_pm(0, pm_pipe_path("/var/run/p.sock", buf, sizeof(buf)));
  assert_string_equal("/var/run/p.sock", buf);
  setenv("PIPEMSG_RUNTIME_DIR", pm_test_runtime_dir(), 1);
}

/* A name that would resolve against the working directory is refused, or, for a Windows local
 * pipe name, mapped to the runtime directory: a service and a client started in different
 * directories must agree on the path. */
static void hardening_13_relative_and_windows_names(void **state) {
  static const char *const refused[] = {
      "rel/p.sock", "./p.sock", "../p.sock", ".", "..", "\\\\server\\pipe\\X",
      "\\\\.\\pipe\\", "\\\\.\\pipe\\a/b", "\\\\.\\pipe\\..", "\\\\?\\pipe\\X"};
  char buf[PM_PIPE_PATH_MAX + 1];
  (void)state;
  setenv("PIPEMSG_RUNTIME_DIR", "/tmp/rt", 1);
  assert_pm(0, pm_pipe_path("\\\\.\\pipe\\Name", buf, sizeof(buf)));
  assert_string_equal("/tmp/rt/Name", buf);
  assert_pm(0, pm_pipe_path("\\\\.\\pipe\\" PM_COMMAND_PIPE_DEFAULT, buf, sizeof(buf)));
  assert_string_equal("/tmp/rt/" PM_COMMAND_PIPE_DEFAULT, buf);
  assert_pm(0, pm_pipe_path("a\\b", buf, sizeof(buf))); /* a bare name with a backslash */
  assert_string_equal("/tmp/rt/a\\b", buf);
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    if (pm_pipe_path(refused[i], buf, sizeof(buf)) != PM_EPIPENAME) {
      print_error("'%s' was not refused (%s)\n", refused[i], buf);
      fail();
    }
  }
  setenv("PIPEMSG_RUNTIME_DIR", pm_test_runtime_dir(), 1);
}

static void handler(pm_command_call *call, void *data) {
  (void)data;
  pm_command_call_reply(call, PM_RESULT_OK, NULL, NULL);
}

/* Starts a command server on path and stops it again; returns what the start returned. The
 * socket file, while it listened, goes to *seen when seen is not NULL. */
static int listen_once(const char *path, unsigned mode, unsigned gid, struct stat *seen) {
  pm_command_server_options opts;
  pm_command_server *server = NULL;
  uv_loop_t loop;
  int rc;
  memset(&opts, 0, sizeof(opts));
  opts.handler = handler;
  opts.socket_mode = mode;
  opts.socket_gid = gid;
  assert_int_equal(0, uv_loop_init(&loop));
  rc = pm_command_server_start(&loop, path, &opts, &server);
  if (rc == 0 && seen != NULL)
    assert_int_equal(0, lstat(path, seen));
  if (rc == 0)
    pm_command_server_close(server, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(0, uv_loop_close(&loop));
  return rc;
}

/* Someone else able to write the socket's directory could swap the socket file before its
 * mode is set: such a directory is refused, unless sticky (then only the owner of a file may
 * rename or delete it). */
static void hardening_07_unsafe_socket_dir_refused(void **state) {
  char dir[64], path[128];
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/cmd", dir);
  assert_int_equal(0, chmod(dir, 0777));
  assert_pm(PM_EUNSAFE, listen_once(path, 0, 0, NULL));
  assert_int_equal(0, chmod(dir, 0770));
  assert_pm(PM_EUNSAFE, listen_once(path, 0, 0, NULL));
  assert_int_equal(-1, access(path, F_OK)); /* nothing was bound */
  assert_int_equal(0, chmod(dir, 01777));
  assert_pm(0, listen_once(path, 0, 0, NULL));
  assert_int_equal(0, chmod(dir, 0755));
  assert_pm(0, listen_once(path, 0, 0, NULL));
  pm_test_dir_remove(dir);
}

/* A listening socket passed in (socket activation) is made close-on-exec by the library
 * itself: inherited without the flag, it would reach every program the service runs. */
static void hardening_11_adopted_fd_close_on_exec(void **state) {
  pm_command_server_options opts;
  pm_command_server *server = NULL;
  struct sockaddr_un sa;
  char dir[64];
  uv_loop_t loop;
  int fd;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/cmd", dir);
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(fd > 0);
  assert_int_equal(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
  assert_int_equal(0, listen(fd, 4));
  assert_int_equal(0, fcntl(fd, F_GETFD) & FD_CLOEXEC);
  memset(&opts, 0, sizeof(opts));
  opts.handler = handler;
  opts.listen_fd = fd;
  assert_int_equal(0, uv_loop_init(&loop));
  assert_pm(0, pm_command_server_start(&loop, "unused", &opts, &server));
  assert_int_equal(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
  pm_command_server_close(server, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(0, uv_loop_close(&loop));
  pm_test_dir_remove(dir);
}

static char swap_target[160];

/* Runs between bind() and the mode change: replaces the new socket with a symlink to a file
 * the server must not touch. */
static void swap_for_symlink(const char *path) {
  assert_int_equal(0, unlink(path));
  assert_int_equal(0, symlink(swap_target, path));
}

/* The mode and group are never set through the path: a symlink swapped in after bind() is
 * refused, and the file it points to keeps its mode and group. */
static void hardening_07_bind_race_symlink(void **state) {
  char dir[64], path[128];
  /* As root, a group the test does not own, as the attack gave; otherwise our own. */
  unsigned gid = geteuid() == 0 ? 65534 : (unsigned)getegid();
  struct stat st, before;
  int fd;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/cmd", dir);
  snprintf(swap_target, sizeof(swap_target), "%s/secret", dir);
  fd = open(swap_target, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  assert_int_equal(0, fchmod(fd, 0600));
  close(fd);
  assert_int_equal(0, stat(swap_target, &before));
  pm__pipe_after_bind_hook = swap_for_symlink;
  assert_pm(PM_EACCES, listen_once(path, 0666, gid, NULL));
  pm__pipe_after_bind_hook = NULL;
  assert_int_equal(0, stat(swap_target, &st));
  assert_int_equal(0600, st.st_mode & 07777);
  assert_int_equal(before.st_gid, st.st_gid);
  /* The symlink is not the server's to remove either. */
  assert_int_equal(0, lstat(path, &st));
  assert_true(S_ISLNK(st.st_mode));
  /* Without the swap, the socket has exactly the mode and group asked for, whatever the
   * umask (which would take the group's write bit from 0660). */
  assert_int_equal(0, unlink(path));
  {
    mode_t old = umask(022);
    assert_pm(0, listen_once(path, 0660, gid, &st));
    umask(old);
  }
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(0660, st.st_mode & 07777);
  assert_int_equal(gid, st.st_gid);
  assert_int_equal(-1, access(path, F_OK)); /* and removed when the server closed */
  pm_test_dir_remove(dir);
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
      cmocka_unit_test(test_pipe_default_from_environment),
      cmocka_unit_test(hardening_13_relative_and_windows_names),
      cmocka_unit_test(hardening_07_unsafe_socket_dir_refused),
      cmocka_unit_test(hardening_07_bind_race_symlink),
      cmocka_unit_test(hardening_11_adopted_fd_close_on_exec),
      cmocka_unit_test(test_pipe_too_long_is_an_error),
      cmocka_unit_test(test_pipe_error_names),
  };
  /* The servers write to clients that may be gone, as an application's would. */
  pm_test_ignore_sigpipe();
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
