/* Access control with a real second user (nobody): who may use the pipes, socket permissions,
 * and a client that refuses an impostor. Every test needs root (setpriv, setuid, a socket owned
 * by nobody); as another user each skips in its body with pm_test_skip, which prints why, and
 * the program exits PM_TEST_SKIPPED, so CTest reports test_access as Skipped, not Passed. The
 * peer check itself is tested without root in test_access_policy. */
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define NOBODY 65534
#define PIPEMSG PM_BIN_DIR "/pipemsg"

static pm_test_service svc;
static pid_t flooder; /* a pm_test_flood_start child, stopped by teardown */

static int setup(void **state) {
  (void)state;
  memset(&svc, 0, sizeof(svc));
  return 0;
}

/* Every test here acts as another user through setpriv, which only root may do. */
static void require_root(void) {
  if (geteuid() != 0) {
    pm_test_skip("needs root (runs clients as user nobody with setpriv)");
  }
}

static int teardown(void **state) {
  (void)state;
  if (flooder > 0)
    pm_test_flood_stop(flooder);
  flooder = 0;
  if (svc.dir[0] != '\0')
    pm_test_service_cleanup(&svc);
  return 0;
}

/* Starts the service with args and opens its directory to other users. */
static void start(const char *const *args) {
  pm_test_service_start(&svc, args);
  assert_int_equal(0, chmod(svc.dir, 0755));
}

/* pipemsg call GetVersion as nobody; returns the exit status. */
static int call_as_nobody(const char **err) {
  const char *argv[] = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        PIPEMSG, "call", "-c", svc.command_pipe, "--connect-timeout-ms", "500",
                        "GetVersion", NULL};
  return pm_test_run(argv, NULL, err);
}

static void test_access_other_user_refused(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", NULL};
  const char *err;
  (void)state;
  require_root();
  start(args);
  assert_int_equal(6, call_as_nobody(&err));
  assert_non_null(strstr(err, "TransportNotAuthorized"));
  pm_test_await_log(&svc, "refused pid=");
  pm_test_await_log(&svc, "uid=65534");
}

static void test_access_allowed_uid(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", "--allow-uid", "65534", NULL};
  const char *err;
  (void)state;
  require_root();
  start(args);
  assert_int_equal(0, call_as_nobody(&err));
}

static void test_access_allowed_gid(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", "--allow-gid", "nogroup", NULL};
  const char *err;
  (void)state;
  require_root();
  start(args);
  assert_int_equal(0, call_as_nobody(&err));
}

static void test_access_event_pipe_refused(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", NULL};
  /* SIGTERM after 2 s, to pipemsg alone (--foreground: not to the process group as well), and
   * SIGKILL 5 s later: once, under ASan and a heavy load, a watcher that got SIGTERM twice hung
   * in LeakSanitizer's exit-time check, and with it this test until CTest's limit. */
  const char *argv[] = {"/usr/bin/timeout", "--foreground", "-k", "5", "2", "/usr/bin/setpriv",
                        "--reuid=65534", "--regid=65534", "--clear-groups", PIPEMSG, "watch",
                        "-e", svc.event_pipe, NULL};
  const char *err;
  (void)state;
  require_root();
  start(args);
  /* watch gives up on a refusal, non-zero, well before the timeout's 2 s (124). */
  assert_int_equal(6, pm_test_run(argv, NULL, &err));
  assert_non_null(strstr(err, "the service refused us (NotAuthorized)"));
  pm_test_await_log(&svc, "refused pid=");
}

static void test_access_socket_mode_and_group(void **state) {
  static const char *const args[] = {"--socket-group", "65534", NULL};
  struct stat st;
  const char *err;
  (void)state;
  require_root();
  start(args);
  assert_int_equal(0, stat(svc.command_pipe, &st));
  assert_int_equal(0660, st.st_mode & 0777);
  assert_int_equal(NOBODY, st.st_gid);
  assert_int_equal(0, stat(svc.event_pipe, &st));
  assert_int_equal(0660, st.st_mode & 0777);
  /* nobody is in group nogroup only through --regid, not as a supplementary member: with
   * --clear-groups it is the primary group, so the 0660 socket lets it connect, and the service
   * still refuses it (not allowed). */
  assert_int_equal(6, call_as_nobody(&err));
  assert_non_null(strstr(err, "TransportNotAuthorized"));
}

static void test_access_default_mode_keeps_others_out(void **state) {
  const char *err;
  (void)state;
  require_root();
  start(NULL);
  /* 0660 root:root: nobody cannot even connect. */
  assert_int_equal(3, call_as_nobody(&err));
  assert_non_null(strstr(err, "TransportError"));
}

/* pipemsg call GetVersion through setpriv with the given credentials; returns the exit
 * status. */
static int call_as(const char *regid, const char *groups) {
  const char *argv[] = {"/usr/bin/setpriv", "--reuid=65534", regid, groups,
                        PIPEMSG, "call", "-c", svc.command_pipe, "--connect-timeout-ms", "500",
                        "GetVersion", NULL};
  return pm_test_run(argv, NULL, NULL);
}

/* --allow-gid looks at the groups the peer holds, as the kernel saw it connect: a group held
 * only as a supplementary one lets it in; a group the group database gives its user, but which
 * the process dropped, does not. */
static void hardening_09_allow_gid_uses_peer_groups(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", "--allow-gid", "4242",
                                     "--allow-gid", "65534", NULL};
  (void)state;
  require_root();
  start(args);
  /* 4242 is in no database: only the process holds it. */
  assert_int_equal(0, call_as("--regid=65533", "--groups=4242"));
  assert_int_equal(0, call_as("--regid=65533", "--groups=100,4242,4243"));
  /* nobody's primary group in the database is nogroup (65534), allowed; this process holds
   * neither it nor 4242. */
  assert_int_equal(6, call_as("--regid=65533", "--clear-groups"));
  assert_int_equal(6, call_as("--regid=65533", "--groups=4243"));
  /* Held as the primary group, it counts too. */
  assert_int_equal(0, call_as("--regid=4242", "--clear-groups"));
}

/* A process of another user squatting on a pipe name, answering like the service would. */
static pid_t squat(const char *path) {
  int ready[2];
  char c;
  pid_t pid;
  assert_int_equal(0, pipe(ready));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int lfd;
    /* Gone with the test, should an assertion skip the kill (a new uid clears the signal). */
    if (setgid(NOBODY) < 0 || setuid(NOBODY) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
      _exit(1);
    lfd = pm_test_bind(path, 4);
    if (write(ready[1], "x", 1) != 1)
      _exit(1);
    for (;;) {
      int fd = accept(lfd, NULL, NULL);
      char *req;
      if (fd < 0)
        _exit(0);
      req = pm_test_recv_frame(fd, 2000, NULL);
      free(req);
      pm_test_send_frame(fd, "{\"Response\":{\"Result\":\"Ok\",\"Data\":{\"Fake\":true}}}");
      close(fd);
    }
  }
  close(ready[1]);
  assert_int_equal(1, read(ready[0], &c, 1));
  close(ready[0]);
  return pid;
}

static void test_access_client_refuses_impostor(void **state) {
  char dir[64], path[128];
  const char *out, *err;
  const char *plain[] = {PIPEMSG, "call", "-c", path, "GetVersion", NULL};
  const char *watching[] = {PIPEMSG, "watch", "-e", path, "--timeout", "20", NULL};
  const char *trusting[] = {PIPEMSG, "call", "-c", path, "--expect-owner", "65534", "GetVersion",
                            NULL};
  const char *trusting_name[] = {PIPEMSG, "call", "-c", path, "--expect-owner", "nobody",
                                 "GetVersion", NULL};
  pid_t pid;
  (void)state;
  require_root();
  pm_test_dir_new(dir, sizeof(dir));
  assert_int_equal(0, chmod(dir, 0777));
  snprintf(path, sizeof(path), "%s/squatted", dir);
  pid = squat(path);
  /* Refused by us, not by the service: still the not-authorized status. */
  assert_int_equal(6, pm_test_run(plain, &out, &err));
  assert_non_null(strstr(err, "TransportNotAuthorized"));
  assert_null(strstr(out, "Fake"));
  /* watch says so at once with the same status, rather than retrying until --timeout. */
  assert_int_equal(6, pm_test_run(watching, &out, &err));
  assert_non_null(strstr(err, "not trusted"));
  assert_int_equal(0, pm_test_run(trusting, &out, &err));
  assert_non_null(strstr(out, "Fake"));
  /* A user name does as well as its uid. */
  assert_int_equal(0, pm_test_run(trusting_name, &out, &err));
  assert_non_null(strstr(out, "Fake"));
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  pm_test_dir_remove(dir);
}

static void test_access_symlinked_directory_refused(void **state) {
  char dir[64], link[128], path[160];
  const char *err;
  const char *argv[] = {PM_BIN_DIR "/pipemsgd", "-c", path, "-e", path, NULL};
  (void)state;
  require_root();
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(link, sizeof(link), "%s/link", dir);
  assert_int_equal(0, symlink("/tmp", link));
  snprintf(path, sizeof(path), "%s/cmd", link);
  assert_int_equal(1, pm_test_run(argv, NULL, &err));
  assert_non_null(strstr(err, "permission denied"));
  pm_test_dir_remove(dir);
}

/* nobody, allowed to call, keeps as many connections idle as one uid may, and one more that
 * must be refused: root's call still comes next after the one idle turn. */
static void hardening_03_idle_user_cannot_starve_root(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", "--allow-uid", "65534",
                                     "--request-timeout-ms", "500", NULL};
  int hold[2], report[2], status;
  uint64_t first, begin;
  pid_t pid;
  char c = 0;
  (void)state;
  require_root();
  start(args);
  assert_int_equal(0, pipe(hold));
  assert_int_equal(0, pipe(report));
  /* The idle turn begins when the child's first connection is accepted, after this. */
  first = pm_test_now_ms();
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fds[PM_COMMAND_MAX_PER_UID_DEFAULT + 1];
    char *answer;
    close(hold[1]);
    close(report[0]);
    if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
      _exit(1);
    for (int i = 0; i <= PM_COMMAND_MAX_PER_UID_DEFAULT; i++)
      if ((fds[i] = pm_test_connect(svc.command_pipe)) < 0)
        _exit(1);
    answer = pm_test_recv_frame(fds[PM_COMMAND_MAX_PER_UID_DEFAULT], 5000, NULL);
    c = answer != NULL && strstr(answer, "TooManyRequests") != NULL ? 'y' : 'n';
    free(answer);
    if (write(report[1], &c, 1) != 1 || read(hold[0], &c, 1) < 0)
      _exit(1);
    _exit(0);
  }
  close(hold[0]);
  close(report[1]);
  assert_int_equal(1, read(report[0], &c, 1));
  assert_int_equal('y', c);
  begin = pm_test_now_ms();
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetVersion", NULL, NULL));
  /* Root waited for the idle turn to run out: its whole 500 ms (10 ms for the loop's coarser
   * clock), since before the first connection. And for one idle turn at most, plus 400 ms of
   * slack for a loaded machine: a second idle turn would take it past 1000 ms. */
  assert_true(pm_test_now_ms() - first >= 490);
  assert_true(pm_test_now_ms() - begin <= 500 + 400);
  close(hold[1]);
  close(report[0]);
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_int_equal(0, status);
}

/* A connection to path made by a child running as nobody (credentials are taken at connect):
 * the descriptor is handed back over SCM_RIGHTS, so the test drives it as nobody's. -1 when
 * connect failed. */
static int connect_as_nobody(const char *path) {
  int sv[2], fd = -1, status;
  char c = 0;
  char control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {&c, 1};
  struct msghdr msg = {0};
  struct cmsghdr *cm;
  pid_t pid;
  assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int conn;
    close(sv[0]);
    if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
      _exit(1);
    conn = pm_test_connect(path);
    memset(control, 0, sizeof(control));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (conn >= 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cm = CMSG_FIRSTHDR(&msg);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(cm), &conn, sizeof(int));
    }
    _exit(sendmsg(sv[1], &msg, 0) == 1 ? 0 : 1);
  }
  close(sv[1]);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  assert_int_equal(1, recvmsg(sv[0], &msg, 0));
  cm = CMSG_FIRSTHDR(&msg);
  if (cm != NULL && cm->cmsg_type == SCM_RIGHTS)
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
  close(sv[0]);
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_int_equal(0, status);
  return fd;
}

#define OBSERVE "{\"Handshake\":{\"Seq\":1,\"Mode\":\"Observe\"}}"

/* Publishes count events of type Demo through EmitEvent, each with a Pad of pad_bytes; returns
 * the first id. */
static int64_t emit_padded(int count, size_t pad_bytes) {
  char *pad = malloc(pad_bytes + 1);
  json_t *data = NULL;
  int64_t first;
  assert_non_null(pad);
  memset(pad, 'p', pad_bytes);
  pad[pad_bytes] = '\0';
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:i, s:{s:s}}", "Type", "Demo", "Count",
                                                   count, "Data", "Pad", pad),
                                         &data));
  free(pad);
  first = json_integer_value(json_object_get(data, "FirstId"));
  json_decref(data);
  return first;
}

/* The next event on fd must have this id; confirmed when confirm is set. */
static void expect_event(int fd, int64_t id, int confirm) {
  pm_msg *m = pm_test_next_event(fd, 5000);
  const char *reason = NULL;
  if (m != NULL && pm_msg_get_string(m, "Reason", &reason) == 0)
    print_error("Disconnect: %s\n", reason);
  pm_test_assert_kind(m, "Event");
  assert_int_equal(id, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  if (confirm)
    pm_test_confirm(fd, id);
}

/* Without --allow-uid nobody can neither observe nor be the client: refused before its
 * handshake is read, whatever Mode it asks for. */
static void test_access_event_roles_refused(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", "--test-commands", NULL};
  const char *handshakes[] = {OBSERVE, "{\"Handshake\":{\"Seq\":1}}"};
  (void)state;
  require_root();
  start(args);
  emit_padded(1, 1);
  for (size_t i = 0; i < 2; i++) {
    int fd = connect_as_nobody(svc.event_pipe);
    assert_true(fd >= 0);
    assert_int_equal(0, pm_test_send_frame(fd, handshakes[i]));
    pm_test_expect_disconnect(fd, "NotAuthorized", 5000);
    close(fd);
  }
  /* The queued event was given to no one. */
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Queued"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "ObserverSessions"));
}

/* An allowed second user observing gets what §5.11 says and nothing more: events published
 * after it attached, none of the client's backlog; its confirmations and resume cursor change
 * nothing; it never holds the client slot, and as a would-be client it is Busy while root's
 * client is attached. */
static void test_access_allowed_observer_cannot_consume(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", "--allow-uid", "65534",
                                     "--test-commands", NULL};
  int64_t before, first;
  pm_msg *reply = NULL, *m;
  char handshake[160];
  int obs, client, intruder;
  (void)state;
  require_root();
  start(args);
  before = emit_padded(1, 1);
  obs = connect_as_nobody(svc.event_pipe);
  assert_true(obs >= 0);
  assert_int_equal(0, pm_test_send_frame(obs, OBSERVE));
  reply = pm_test_recv_msg(obs, 5000);
  pm_test_assert_kind(reply, "Handshake");
  pm_msg_free(reply);
  first = emit_padded(3, 1);
  for (int64_t id = first; id < first + 3; id++)
    expect_event(obs, id, 1);
  /* A resume cursor asking to discard everything, from a second observer session: ignored. */
  intruder = connect_as_nobody(svc.event_pipe);
  assert_true(intruder >= 0);
  snprintf(handshake, sizeof(handshake),
           "{\"Handshake\":{\"Seq\":1,\"Mode\":\"Observe\",\"Epoch\":%lld,"
           "\"LastEventId\":9223372036854775807}}",
           (long long)pm_test_stat(svc.command_pipe, "Events", "Epoch"));
  assert_int_equal(0, pm_test_send_frame(intruder, handshake));
  m = pm_test_recv_msg(intruder, 5000);
  pm_test_assert_kind(m, "Handshake");
  pm_msg_free(m);
  close(intruder);
  assert_int_equal(4, pm_test_stat(svc.command_pipe, "Events", "Queued"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Attached"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "StaleAcks"));
  /* Root's client attaches beside the observer and gets every event, the backlog included. */
  client = pm_test_event_attach(svc.event_pipe, NULL, 5000, NULL);
  expect_event(client, before, 1);
  for (int64_t id = first; id < first + 3; id++)
    expect_event(client, id, 1);
  /* nobody asking for the client slot now is Busy; root's client keeps it. */
  intruder = connect_as_nobody(svc.event_pipe);
  assert_true(intruder >= 0);
  assert_int_equal(0, pm_test_send_frame(intruder, "{\"Handshake\":{\"Seq\":1}}"));
  pm_test_expect_disconnect(intruder, "Busy", 5000);
  close(intruder);
  first = emit_padded(1, 1);
  expect_event(client, first, 1);
  expect_event(obs, first, 0);
  close(client);
  close(obs);
}

/* An allowed observer that never reads: cut off with TooSlow at observer-max-unsent, the
 * service's memory stays bounded, and root's client gets every event in order meanwhile. */
static void test_access_slow_observer_bounded(void **state) {
  /* Heartbeats every 60 s: only the unread bytes may end the observer here, as they would for
   * one that answers heartbeats from a backlog it reads too slowly. Confirmations get 3 s
   * (valgrind, a loaded machine); the TooSlow Disconnect the observer never reads is abandoned
   * after as long, well within the log wait. */
  static const char *const args[] = {"--socket-mode", "0666", "--allow-uid", "65534",
                                     "--test-commands", "--heartbeat-ms", "60000",
                                     "--ack-timeout-ms", "3000", NULL};
  enum { BATCHES = 20, PER_BATCH = 20, PAD = 64 * 1024 };
  long before_kb, grown_kb;
  pm_msg *m;
  int obs, client;
  (void)state;
  require_root();
  start(args);
  client = pm_test_event_attach(svc.event_pipe, NULL, 5000, NULL);
  obs = connect_as_nobody(svc.event_pipe);
  assert_true(obs >= 0);
  assert_int_equal(0, pm_test_send_frame(obs, OBSERVE));
  m = pm_test_recv_msg(obs, 5000);
  pm_test_assert_kind(m, "Handshake");
  pm_msg_free(m);
  /* Warm up the allocator and the client's path with one batch before measuring. */
  for (int64_t id = emit_padded(PER_BATCH, PAD), n = 0; n < PER_BATCH; n++)
    expect_event(client, id + n, 1);
  pm_test_reset_peak_rss(svc.pid);
  before_kb = pm_test_peak_rss_kb(svc.pid);
  for (int b = 0; b < BATCHES; b++) {
    int64_t first = emit_padded(PER_BATCH, PAD);
    for (int64_t n = 0; n < PER_BATCH; n++)
      expect_event(client, first + n, 1);
  }
  grown_kb = pm_test_peak_rss_kb(svc.pid) - before_kb;
  pm_test_await_log(&svc, "uid=65534 observer detached reason=\"TooSlow");
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "SlowObservers"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Observers"));
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Attached"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Queued"));
  /* 25 MiB went past the observer. It may hold 4 MiB plus one event unread; a batch (1.25 MiB)
   * waits in the queue and is encoded once per session; 6 MiB more for the allocator's
   * slack. Keeping what the observer did not read would pass 20 MiB. */
  if (pm_test_rss_meaningful())
    assert_in_range(grown_kb, 0, 12 * 1024);
  close(obs);
  close(client);
}

#define REFUSAL_FLOOD 2000
#define REFUSALS_PER_SECOND 5

/* nobody connecting to the command pipe in a loop, each connection reading its answer (so the
 * service saw and refused every one, none left before it looked): REFUSAL_FLOOD refusals, all
 * counted, logged REFUSALS_PER_SECOND times a window of a second at most, and the summaries
 * (the last at stop) hold the rest. */
static void test_access_refusal_flood_log_limited(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", "--log-rejections-per-second", "5",
                                     NULL};
  uint64_t started, deadline;
  int status, lines, refused;
  pid_t pid;
  (void)state;
  require_root();
  start(args);
  started = pm_test_now_ms();
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
      _exit(1);
    for (int i = 0; i < REFUSAL_FLOOD; i++) {
      int fd = pm_test_connect(svc.command_pipe);
      char *answer = fd >= 0 ? pm_test_recv_frame(fd, 5000, NULL) : NULL;
      if (fd >= 0)
        close(fd);
      if (answer == NULL || strstr(answer, "TransportNotAuthorized") == NULL)
        _exit(2);
      free(answer);
    }
    _exit(0);
  }
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_int_equal(0, status);
  /* A refused call is counted when its connection ends, after the child read its answer. */
  deadline = pm_test_now_ms() + (uint64_t)pm_test_margin_ms(30000);
  while (pm_test_stat(svc.command_pipe, "Commands", "Failed") < REFUSAL_FLOOD) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
  lines = REFUSALS_PER_SECOND * (int)((pm_test_now_ms() - started) / 1000 + 1);
  assert_int_equal(0, pm_test_service_stop(&svc));
  refused = pm_test_log_count(&svc, "refused pid=");
  assert_true(refused >= REFUSALS_PER_SECOND);
  assert_true(refused <= lines);
  assert_int_equal(REFUSAL_FLOOD, refused + pm_test_log_suppressed(&svc, "refusal"));
  /* One refusal, one line: the answer was read, so no line of a call without an answer. */
  assert_int_equal(0, pm_test_log_count(&svc, "uid=65534 command=-"));
}

/* Waits until a GetStats counter of the event pipe reads value. */
static void await_event_stat(const char *name, int64_t value) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  while (pm_test_stat(svc.command_pipe, "Events", name) != value) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
}

/* nobody, allowed, floods the event pipe: it connects in a loop and holds every other
 * connection silent, never a handshake. Root's client still attaches at its first try and
 * gets its event, every time; while it is attached, root's next would-be client is told Busy,
 * not closed without a word. (test_event_server tests this without root, on made-up users.) */
static void test_access_event_flood_keeps_no_client_out(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", "--allow-uid", "65534",
                                     "--test-commands", NULL};
  enum { ROUNDS = 5, UNDER_WAY = 100 };
  uint64_t deadline;
  int client = -1;
  (void)state;
  require_root();
  start(args);
  flooder = pm_test_flood_start(svc.event_pipe, 1, NOBODY, NOBODY);
  /* Under way: nobody holds every place it may and is turned away. */
  deadline = pm_test_now_ms() + 10000;
  while (pm_test_stat(svc.command_pipe, "Events", "BusyRejections") < UNDER_WAY) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(10);
  }
  for (int round = 0; round < ROUNDS; round++) {
    int64_t id;
    if (client >= 0) {
      close(client);
      await_event_stat("Attached", 0);
    }
    id = emit_padded(1, 1);
    client = pm_test_event_attach(svc.event_pipe, NULL, 5000, NULL);
    expect_event(client, id, 1);
  }
  for (int round = 0; round < ROUNDS; round++) {
    int fd = pm_test_connect(svc.event_pipe);
    assert_true(fd >= 0);
    assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1}}"));
    pm_test_expect_disconnect(fd, "Busy", 5000);
    close(fd);
  }
  assert_int_equal(ROUNDS, pm_test_stat(svc.command_pipe, "Events", "Sessions"));
  assert_int_equal(ROUNDS, pm_test_stat(svc.command_pipe, "Events", "Delivered"));
  close(client);
}

/* Asks to observe as nobody, up to n times, until told Busy (saying that nobody holds its
 * share); the connections that attached are left in fd. Returns how many attached. */
static int observe_as_nobody(int *fd, int n) {
  for (int i = 0; i < n; i++) {
    pm_msg *m;
    const char *text = NULL;
    fd[i] = connect_as_nobody(svc.event_pipe);
    assert_true(fd[i] >= 0);
    assert_int_equal(0, pm_test_send_frame(fd[i], OBSERVE));
    m = pm_test_recv_msg(fd[i], 5000);
    assert_non_null(m);
    if (strcmp(pm_msg_kind(m), "Handshake") == 0) {
      pm_msg_free(m);
      continue;
    }
    pm_test_assert_kind(m, "Disconnect");
    assert_pm(0, pm_msg_get_string(m, "Message", &text));
    assert_string_equal("too many observers of this user", text);
    pm_msg_free(m);
    close(fd[i]);
    return i;
  }
  return n;
}

/* nobody, allowed, asks for every observer place (8) and holds what it gets, answering no
 * heartbeat due in the test: it gets half of them, its next is told Busy saying why, and
 * root still observes beside it; all of them get the next event. Then what the finding saw
 * fail: root's call that waits on the event pipe for StartVpn's outcome. */
static void test_access_observer_share_keeps_root_observing(void **state) {
  static const char *const args[] = {"--socket-mode", "0666", "--allow-uid", "65534",
                                     "--heartbeat-ms", "60000", "--test-commands", NULL};
  enum { PLACES = 8, SHARE = PLACES / 2 };
  int held[PLACES], root, attached;
  int64_t id;
  const char *out, *err;
  const char *start_vpn[] = {PIPEMSG, "call", "-c", svc.command_pipe, "-e", svc.event_pipe,
                             "--wait", "StartVpn", "Location=de", NULL};
  (void)state;
  require_root();
  start(args);
  attached = observe_as_nobody(held, PLACES);
  assert_int_equal(SHARE, attached);
  root = pm_test_event_attach(svc.event_pipe, OBSERVE, 5000, NULL);
  assert_int_equal(SHARE + 1, pm_test_stat(svc.command_pipe, "Events", "Observers"));
  id = emit_padded(1, 1);
  expect_event(root, id, 0);
  for (int i = 0; i < attached; i++)
    expect_event(held[i], id, 0);
  if (pm_test_run(start_vpn, &out, &err) != 0) {
    print_error("pipemsg call --wait StartVpn failed:\n%s\n", err);
    fail();
  }
  for (int i = 0; i < attached; i++)
    close(held[i]);
  close(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_access_other_user_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_allowed_uid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_allowed_gid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_event_pipe_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_09_allow_gid_uses_peer_groups, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_socket_mode_and_group, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_default_mode_keeps_others_out, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_client_refuses_impostor, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_symlinked_directory_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_03_idle_user_cannot_starve_root, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_access_event_roles_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_allowed_observer_cannot_consume, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_access_slow_observer_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_refusal_flood_log_limited, setup, teardown),
      cmocka_unit_test_setup_teardown(test_access_event_flood_keeps_no_client_out, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_access_observer_share_keeps_root_observing, setup,
                                      teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
