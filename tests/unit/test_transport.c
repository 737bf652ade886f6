/* The Unix transport's edges (src/transport/transport_unix.c): libuv codes mapped to PM_E*
 * codes, where bare names resolve and what is too long, socket directories that cannot be
 * made, failed connects and I/O on dead sockets, handles without a socket, and a peer in more
 * supplementary groups than pm_peer keeps; running out of memory, adopted sockets, and a
 * connection the server does not take offered again. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "internal.h"
#include "testutil.h"

#include "transport/transport.h"
#include "transport/transport_unix.h"

static char dir[64];

static int setup(void **state) {
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  setenv("PIPEMSG_RUNTIME_DIR", pm_test_runtime_dir(), 1);
  unsetenv("XDG_RUNTIME_DIR");
  pm_test_dir_remove(dir);
  return 0;
}

/* Callers see PM_E* codes only; each libuv code a caller can act on keeps its meaning. */
static void test_transport_uv_codes(void **state) {
  static const struct {
    int uv, pm;
  } map[] = {
      {0, 0},
      {UV_ENOMEM, PM_ENOMEM},
      {UV_EOF, PM_EEOF},
      {UV_ETIMEDOUT, PM_ETIMEDOUT},
      {UV_EADDRINUSE, PM_EADDRINUSE},
      {UV_EACCES, PM_EACCES},
      {UV_EPERM, PM_EACCES},
      {UV_ENAMETOOLONG, PM_ENAMETOOLONG},
      {UV_ECANCELED, PM_ECANCELED},
      {UV_EINVAL, PM_EINVAL},
      {UV_ECONNRESET, PM_EIO},
      {UV_EPIPE, PM_EIO},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
    assert_pm(map[i].pm, pm__uv_error(map[i].uv));
}

static void test_transport_runtime_dir(void **state) {
  char buf[PM_PIPE_PATH_MAX + 1], longdir[200];
  (void)state;
  assert_pm(PM_EINVAL, pm_pipe_dir(NULL, 10));
  assert_pm(PM_EINVAL, pm_pipe_dir(buf, 0));
  /* Never truncated. */
  assert_pm(PM_ENAMETOOLONG, pm_pipe_dir(buf, 4));
  memset(longdir, 'd', sizeof(longdir) - 1);
  longdir[0] = '/';
  longdir[sizeof(longdir) - 1] = '\0';
  setenv("PIPEMSG_RUNTIME_DIR", longdir, 1);
  assert_pm(PM_ENAMETOOLONG, pm_pipe_path("name", buf, sizeof(buf)));
  assert_pm(0, pm_pipe_path("/abs/name", buf, sizeof(buf)));
  /* Unset or empty: $XDG_RUNTIME_DIR/pipemsg, else /run/pipemsg. */
  setenv("PIPEMSG_RUNTIME_DIR", "", 1);
  setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
  assert_pm(0, pm_pipe_path("name", buf, sizeof(buf)));
  assert_string_equal("/run/user/4242/pipemsg/name", buf);
  unsetenv("PIPEMSG_RUNTIME_DIR");
  setenv("XDG_RUNTIME_DIR", "", 1);
  assert_pm(0, pm_pipe_path("name", buf, sizeof(buf)));
  assert_string_equal("/run/pipemsg/name", buf);
}

static void on_connection(void *data) { (void)data; }

static void count_connection(void *data) { (*(int *)data)++; }

/* pm__listen on path (the loop run until the listener is closed again). */
static int listen_at(const char *path) {
  uv_loop_t loop;
  pm__listener *server;
  char p[PM_PIPE_PATH_MAX + 1];
  pm__listen_spec spec = {p, 8, {0, 0, NULL}, 0, NULL};
  int rc;
  snprintf(p, sizeof(p), "%s", path);
  assert_int_equal(0, uv_loop_init(&loop));
  rc = pm__listen(&loop, &spec, on_connection, NULL, &server);
  if (rc == 0)
    pm__listener_close(server, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
  return rc;
}

/* A socket directory that is not a real directory of root's or ours is refused (PM_EACCES),
 * so nobody else can swap the socket file: a symlink (to a good directory, even), a file, a
 * directory of another user's (root only: chown). */
static void test_transport_socket_dir_untrusted(void **state) {
  char real[128], link[128], path[200];
  FILE *f;
  (void)state;
  snprintf(real, sizeof(real), "%s/real", dir);
  snprintf(link, sizeof(link), "%s/link", dir);
  assert_int_equal(0, mkdir(real, 0755));
  assert_int_equal(0, symlink(real, link));
  snprintf(path, sizeof(path), "%s/sock", link);
  assert_pm(PM_EACCES, listen_at(path));
  snprintf(path, sizeof(path), "%s/sock", real);
  assert_pm(0, listen_at(path));
  snprintf(path, sizeof(path), "%s/file", dir);
  f = fopen(path, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(path, sizeof(path), "%s/file/sock", dir);
  assert_pm(PM_EACCES, listen_at(path));
  if (geteuid() == 0) {
    assert_int_equal(0, chown(real, 65534, 65534));
    snprintf(path, sizeof(path), "%s/sock", real);
    assert_pm(PM_EACCES, listen_at(path));
  }
}

/* The socket's directory is made when missing, one level only. */
static void test_transport_socket_dir_not_made(void **state) {
  uv_loop_t loop;
  pm__listener *server;
  char path[PM_PIPE_PATH_MAX + 1];
  pm__listen_spec spec = {path, 8, {0, 0, NULL}, 0, NULL};
  (void)state;
  assert_int_equal(0, uv_loop_init(&loop));
  snprintf(path, sizeof(path), "%s/missing/sub/sock", dir);
  assert_pm(PM_EACCES, pm__listen(&loop, &spec, on_connection, NULL, &server));
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  snprintf(path, sizeof(path), "%s/made/sock", dir);
  assert_pm(0, pm__listen(&loop, &spec, on_connection, NULL, &server));
  pm__listener_close(server, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

static void test_transport_dial_failures(void **state) {
  char path[300];
  pm__conn *conn = NULL;
  uint64_t deadline = uv_hrtime() + 200 * 1000000ull;
  FILE *f;
  (void)state;
  memset(path, 'p', sizeof(path) - 1);
  path[0] = '/';
  path[sizeof(path) - 1] = '\0';
  assert_pm(PM_ENAMETOOLONG, pm__dial(path, deadline, &conn));
  /* A file where a directory should be: final at once, not retried until the deadline. */
  snprintf(path, sizeof(path), "%s/file", dir);
  f = fopen(path, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(path, sizeof(path), "%s/file/sock", dir);
  assert_pm(PM_EIO, pm__dial(path, uv_hrtime() + 60ull * 1000000000ull, &conn));
  assert_null(conn);
}

/* pm__dial keeps trying while nobody accepts -- a stale socket file (refused), a full
 * backlog -- until its deadline, then PM_ECONNTIMEOUT. */
static void test_transport_dial_retries_until_deadline(void **state) {
  char path[128];
  int stale, full, queued[64], nqueued = 0;
  pm__conn *conn = NULL;
  (void)state;
  snprintf(path, sizeof(path), "%s/stale", dir);
  stale = pm_test_bind(path, 0);
  close(stale); /* the file stays: refused */
  for (int round = 0; round < 2; round++) {
    uint64_t start = pm_test_now_ms(), took;
    assert_pm(PM_ECONNTIMEOUT, pm__dial(path, uv_hrtime() + 300 * 1000000ull, &conn));
    took = pm_test_now_ms() - start;
    /* Gives up at the last retry (every 20 ms) that would end past the deadline: never more
     * than a retry early; late by at most a loaded machine's scheduling (1.2 s). */
    if (took < 280 || took > 1500) {
      print_error("gave up after %llu ms, deadline 300 ms\n", (unsigned long long)took);
      fail();
    }
    if (round == 1)
      break;
    /* A live socket whose backlog is full (no one accepts): still retried. */
    snprintf(path, sizeof(path), "%s/full", dir);
    full = pm_test_bind(path, 1);
    for (nqueued = 0; nqueued < 64; nqueued++) {
      struct sockaddr_un sa;
      int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
      assert_true(c >= 0);
      memset(&sa, 0, sizeof(sa));
      sa.sun_family = AF_UNIX;
      assert_true(strlen(path) < sizeof(sa.sun_path));
      memcpy(sa.sun_path, path, strlen(path) + 1);
      if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        assert_int_equal(EAGAIN, errno);
        close(c);
        break;
      }
      queued[nqueued] = c;
    }
    assert_true(nqueued < 64);
  }
  for (int i = 0; i < nqueued; i++)
    close(queued[i]);
  close(full);
}

/* Non-blocking I/O on a socket whose peer has gone: PM_EIO, never SIGPIPE. */
static void test_transport_fd_io_on_dead_socket(void **state) {
  const pm__owner anyone = {-1, NULL}, usual = {0, NULL};
  pm__conn *conn;
  int sv[2];
  char c;
  (void)state;
  assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  assert_int_equal(0, pm__conn_from_fd(sv[0], &conn));
  assert_int_equal(0, pm__conn_check_owner(conn, &anyone));
  assert_int_equal(0, pm__conn_check_owner(conn, &usual));
  /* Alive but idle: nothing to read yet; and a full socket takes nothing now. */
  assert_pm(PM_EBUSY, (int)pm__conn_recv(conn, &c, 1));
  {
    static char chunk[65536];
    long n;
    while ((n = pm__conn_send(conn, chunk, sizeof(chunk), NULL, 0)) > 0)
      ;
    assert_int_equal(0, n);
  }
  pm__conn_close(conn);
  close(sv[1]);
  assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  assert_int_equal(0, pm__conn_from_fd(sv[0], &conn));
  close(sv[1]);
  assert_int_equal(0, pm__conn_recv(conn, &c, 1)); /* end of stream */
  assert_pm(PM_EIO, (int)pm__conn_send(conn, "a", 1, "b", 1));
  pm__conn_close(conn);
  /* A descriptor closed under the connection: an error, not a hang. */
  assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  assert_int_equal(0, pm__conn_from_fd(sv[0], &conn));
  close(sv[1]);
  close(sv[0]);
  assert_pm(PM_EIO, (int)pm__conn_recv(conn, &c, 1));
  pm__free(conn);
  /* Not a socket: the owner cannot be told, so it is refused. */
  assert_int_equal(0, pipe(sv));
  assert_int_equal(0, pm__conn_from_fd(sv[0], &conn));
  assert_pm(PM_ENOTAUTH, pm__conn_check_owner(conn, &usual));
  pm__conn_close(conn);
  close(sv[1]);
}

/* A handle with no socket behind it has no peer to check, describe or lose. */
static void test_transport_handle_without_socket(void **state) {
  uv_loop_t loop;
  uv_pipe_t p;
  pm_peer peer;
  (void)state;
  assert_int_equal(0, uv_loop_init(&loop));
  assert_int_equal(0, uv_pipe_init(&loop, &p, 0));
  {
    const pm__owner anyone = {-1, NULL}, usual = {0, NULL};
    assert_int_equal(0, pm__pipe_check_owner(&p, &anyone));
    assert_pm(PM_ENOTAUTH, pm__pipe_check_owner(&p, &usual));
    assert_true(pm__pipe_peer_in_group(&p, "0") < 0);
  }
  memset(&peer, 'x', sizeof(peer));
  pm__pipe_peer(&p, &peer, 1);
  assert_string_equal("", peer.sid);
  assert_int_equal(-1, peer.pid);
  assert_int_equal(-1, peer.uid);
  assert_int_equal(-1, peer.ngroups);
  assert_int_equal(0, pm__pipe_peer_gone(&p));
  uv_close((uv_handle_t *)&p, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

/* A peer holding more supplementary groups than pm_peer keeps: the first PM_PEER_GROUPS_MAX,
 * ascending (pipe.h), so a check against the others fails closed. Needs root (setgroups). */
static void test_transport_peer_with_many_groups(void **state) {
  enum { MANY_GROUPS = PM_PEER_GROUPS_MAX + 16 };
  uv_loop_t loop;
  uv_pipe_t conn;
  pm__listener *server;
  char path[PM_PIPE_PATH_MAX + 1], group[32];
  pm__listen_spec spec = {path, 8, {0, 0, NULL}, 0, NULL};
  pm_peer peer;
  int status, go[2], waiting = 0;
  pid_t pid;
  (void)state;
  if (geteuid() != 0)
    pm_test_skip("setting supplementary groups needs root");
  snprintf(path, sizeof(path), "%s/sock", dir);
  assert_int_equal(0, uv_loop_init(&loop));
  assert_pm(0, pm__listen(&loop, &spec, count_connection, &waiting, &server));
  assert_int_equal(0, pipe(go));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Given in descending order: the kernel reports them sorted. */
    gid_t groups[MANY_GROUPS];
    char c;
    int cfd;
    for (int i = 0; i < MANY_GROUPS; i++)
      groups[i] = (gid_t)(70000 + MANY_GROUPS - i);
    cfd = setgroups(MANY_GROUPS, groups) == 0 ? pm_test_connect(path) : -1;
    if (cfd < 0)
      _exit(1);
    /* Connected: wait for the parent to have read the credentials. */
    _exit(read(go[0], &c, 1) == 1 ? 0 : 2);
  }
  close(go[0]);
  /* The child connects once its groups are set. */
  while (!waiting)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(0, uv_pipe_init(&loop, &conn, 0));
  assert_pm(0, pm__accept(server, &conn));
  assert_pm(PM_EBUSY, pm__accept(server, &conn));
  pm__pipe_peer(&conn, &peer, 1);
  snprintf(group, sizeof(group), "%d", 70001);
  assert_int_equal(1, pm__pipe_peer_in_group(&conn, group));
  snprintf(group, sizeof(group), "%d", 70000 + MANY_GROUPS);
  assert_int_equal(0, pm__pipe_peer_in_group(&conn, group)); /* past the kept ones */
  assert_pm(PM_EINVAL, pm__pipe_peer_in_group(&conn, "wheel"));
  assert_int_equal(1, write(go[1], "x", 1));
  close(go[1]);
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(pid, peer.pid);
  assert_int_equal(PM_PEER_GROUPS_MAX, peer.ngroups);
  for (int i = 0; i < PM_PEER_GROUPS_MAX; i++)
    assert_int_equal(70001 + i, peer.groups[i]);
  uv_close((uv_handle_t *)&conn, NULL);
  pm__listener_close(server, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

/* Names the caller got wrong, and a buffer too small for the path: never truncated. */
static void test_transport_pipe_path_arguments(void **state) {
  char buf[PM_PIPE_PATH_MAX + 1];
  (void)state;
  assert_pm(PM_EINVAL, pm_pipe_path(NULL, buf, sizeof(buf)));
  assert_pm(PM_EINVAL, pm_pipe_path("", buf, sizeof(buf)));
  assert_pm(PM_EINVAL, pm_pipe_path("name", NULL, sizeof(buf)));
  assert_pm(PM_EINVAL, pm_pipe_path("name", buf, 0));
  assert_pm(PM_ENAMETOOLONG, pm_pipe_path("/abs/name", buf, 5));
  assert_pm(0, pm_pipe_path("/abs/name", buf, 10));
  assert_string_equal("/abs/name", buf);
}

/* Out of memory: PM_ENOMEM, and nothing left behind: the descriptor given stays the caller's,
 * the socket a dial made is closed (the service sees the end of the stream), a listener that
 * could not be made leaves no socket file. */
static void test_transport_out_of_memory(void **state) {
  char path[PM_PIPE_PATH_MAX + 1];
  pm__listen_spec spec = {path, 8, {0, 0, NULL}, 0, NULL};
  uv_loop_t loop;
  pm__listener *server;
  pm__conn *conn = NULL;
  int sv[2], lfd, fd;
  char c;
  (void)state;
  assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  pm__alloc_fail_after(1);
  assert_pm(PM_ENOMEM, pm__conn_from_fd(sv[0], &conn));
  pm__alloc_fail_after(0);
  assert_null(conn);
  assert_int_equal(1, write(sv[0], "x", 1)); /* still open */
  close(sv[0]);
  close(sv[1]);

  snprintf(path, sizeof(path), "%s/sock", dir);
  lfd = pm_test_bind(path, 4);
  pm__alloc_fail_after(1);
  assert_pm(PM_ENOMEM, pm__dial(path, uv_hrtime() + 5000000000ull, &conn));
  pm__alloc_fail_after(0);
  assert_null(conn);
  fd = accept(lfd, NULL, NULL);
  assert_true(fd >= 0);
  assert_int_equal(0, recv(fd, &c, 1, 0));
  close(fd);
  close(lfd);
  unlink(path);

  assert_int_equal(0, uv_loop_init(&loop));
  pm__alloc_fail_after(1);
  assert_pm(PM_ENOMEM, pm__listen(&loop, &spec, on_connection, NULL, &server));
  pm__alloc_fail_after(0);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
  assert_false(pm_test_pipe_exists(path));
}

/* An inherited listening socket (socket activation) that is not open is refused; one bound to
 * an abstract name is served, and the path reported stays the one asked for (an abstract name
 * has no file to name). */
static void test_transport_adopted_sockets(void **state) {
  char path[PM_PIPE_PATH_MAX + 1];
  pm__listen_spec spec = {path, 8, {0, 0, NULL}, 0, NULL};
  struct sockaddr_un sa;
  uv_loop_t loop;
  pm__listener *server;
  int fd;
  (void)state;
  snprintf(path, sizeof(path), "%s/asked", dir);
  assert_int_equal(0, uv_loop_init(&loop));
  /* A descriptor number nothing here opens (at or past the usual limit of 1024). */
  assert_true(fcntl(4000, F_GETFD) < 0);
  spec.fd = 4000;
  assert_pm(PM_EINVAL, pm__listen(&loop, &spec, on_connection, NULL, &server));
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));

  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "pmtest-%d", (int)getpid());
  assert_int_equal(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
  assert_int_equal(0, listen(fd, 4));
  spec.fd = fd;
  assert_pm(0, pm__listen(&loop, &spec, on_connection, NULL, &server));
  assert_string_equal(path, spec.path);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  pm__listener_close(server, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

static long long uid_4242(long long uid) {
  (void)uid;
  return 4242;
}

/* The peer's identity on a connected handle: its primary group counts as a group it is in; a
 * group that is not a number is refused, not looked up; a peer that reset the connection is
 * gone; an owner other than root or us is accepted only when named. */
static void test_transport_peer_identity(void **state) {
  const pm__owner named = {4242, NULL}, other = {4243, NULL};
  uv_loop_t loop;
  uv_pipe_t p;
  pm__conn *conn;
  char group[32];
  int sv[2];
  (void)state;
  assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  assert_int_equal(0, uv_loop_init(&loop));
  assert_int_equal(0, uv_pipe_init(&loop, &p, 0));
  assert_int_equal(0, uv_pipe_open(&p, sv[0]));
  snprintf(group, sizeof(group), "%u", (unsigned)getegid());
  assert_int_equal(1, pm__pipe_peer_in_group(&p, group));
  assert_pm(PM_EINVAL, pm__pipe_peer_in_group(&p, NULL));
  assert_pm(PM_EINVAL, pm__pipe_peer_in_group(&p, "-1"));
  assert_pm(PM_EINVAL, pm__pipe_peer_in_group(&p, "12x"));

  pm__owner_uid_hook = uid_4242;
  assert_pm(0, pm__pipe_check_owner(&p, &named));
  assert_pm(PM_ENOTAUTH, pm__pipe_check_owner(&p, &other));
  pm__owner_uid_hook = NULL;

  /* The peer hangs up with our byte unread: a reset, not the end of the stream. */
  assert_int_equal(0, pm__pipe_peer_gone(&p));
  assert_int_equal(1, write(sv[0], "x", 1));
  close(sv[1]);
  assert_int_equal(1, pm__pipe_peer_gone(&p));
  uv_close((uv_handle_t *)&p, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));

  assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  assert_int_equal(0, pm__conn_from_fd(sv[0], &conn));
  pm__owner_uid_hook = uid_4242;
  assert_pm(0, pm__conn_check_owner(conn, &named));
  pm__owner_uid_hook = NULL;
  pm__conn_close(conn);
  close(sv[1]);
}

/* The offers of one connection (offered_cb): the callback takes it at the take_at-th. */
typedef struct offers {
  pm__listener *listener;
  uv_pipe_t *conn;
  int take_at;
  int count;
  uint64_t at[2]; /* when the first two came */
} offers;

static void offered(void *data) {
  offers *o = data;
  if (o->count < 2)
    o->at[o->count] = pm_test_now_ms();
  if (++o->count == o->take_at)
    assert_pm(0, pm__accept(o->listener, o->conn));
}

/* A connection the server does not take (it ran out of memory) is offered again 100 ms later,
 * and no more once taken: libuv watches the listening socket no more while it holds one, so
 * without a new offer no client would ever be served. */
static void test_transport_untaken_connection_offered_again(void **state) {
  char path[PM_PIPE_PATH_MAX + 1];
  pm__listen_spec spec = {path, 8, {0, 0, NULL}, 0, NULL};
  uv_loop_t loop;
  uv_pipe_t conn;
  offers o = {NULL, &conn, 2, 0, {0, 0}};
  uint64_t deadline;
  int fd;
  (void)state;
  snprintf(path, sizeof(path), "%s/sock", dir);
  assert_int_equal(0, uv_loop_init(&loop));
  assert_int_equal(0, uv_pipe_init(&loop, &conn, 0));
  assert_pm(0, pm__listen(&loop, &spec, offered, &o, &o.listener));
  fd = pm_test_connect(path);
  assert_true(fd >= 0);
  deadline = pm_test_now_ms() + 5000;
  while (o.count < 2) {
    assert_true(pm_test_now_ms() < deadline);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_sleep(1);
  }
  /* 100 ms: a timer may fire 10 ms early (libuv starts it from the loop's cached clock); a
   * loaded machine wakes the loop late, but not by the 900 ms that would pass for a second. */
  assert_ms_within("offered again", o.at[1] - o.at[0], 90, 100 + pm_test_margin_ms(900));
  /* Taken: no further offer, though the loop runs past several retry periods. */
  deadline = pm_test_now_ms() + 350;
  while (pm_test_now_ms() < deadline) {
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_sleep(5);
  }
  assert_int_equal(2, o.count);
  close(fd);
  uv_close((uv_handle_t *)&conn, NULL);
  pm__listener_close(o.listener, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

/* The socket file has exactly the mode asked for, whether the umask took bits from it (they
 * are added back) or not. */
static void test_transport_socket_mode(void **state) {
  static const unsigned modes[] = {0600, 0666, 0660};
  mode_t old = umask(022);
  (void)state;
  for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
    char path[PM_PIPE_PATH_MAX + 1];
    pm__listen_spec spec = {path, 8, {modes[i], 0, NULL}, 0, NULL};
    uv_loop_t loop;
    pm__listener *server;
    struct stat st;
    snprintf(path, sizeof(path), "%s/sock%zu", dir, i);
    assert_int_equal(0, uv_loop_init(&loop));
    assert_pm(0, pm__listen(&loop, &spec, on_connection, NULL, &server));
    assert_int_equal(0, lstat(path, &st));
    assert_int_equal(modes[i], st.st_mode & 07777);
    pm__listener_close(server, NULL, NULL);
    assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
    assert_int_equal(0, uv_loop_close(&loop));
  }
  umask(old);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_transport_uv_codes),
      cmocka_unit_test_setup_teardown(test_transport_runtime_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transport_socket_dir_untrusted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transport_socket_dir_not_made, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transport_dial_retries_until_deadline, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_transport_dial_failures, setup, teardown),
      cmocka_unit_test(test_transport_fd_io_on_dead_socket),
      cmocka_unit_test(test_transport_handle_without_socket),
      cmocka_unit_test(test_transport_pipe_path_arguments),
      cmocka_unit_test_setup_teardown(test_transport_out_of_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transport_adopted_sockets, setup, teardown),
      cmocka_unit_test(test_transport_peer_identity),
      cmocka_unit_test_setup_teardown(test_transport_socket_mode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transport_untaken_connection_offered_again, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_transport_peer_with_many_groups, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
