/* SO_PEERCRED and struct ucred are GNU extensions on Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "pipemsg/error.h"
#include "transport/transport.h"

int pm_pipe_dir(char *buf, size_t size) {
  const char *dir = getenv("PIPEMSG_RUNTIME_DIR");
  int n;
  if (buf == NULL || size == 0)
    return PM_EINVAL;
  if (dir != NULL && dir[0] != '\0') {
    n = snprintf(buf, size, "%s", dir);
  } else {
    dir = getenv("XDG_RUNTIME_DIR");
    if (dir != NULL && dir[0] != '\0')
      n = snprintf(buf, size, "%s/pipemsg", dir);
    else
      n = snprintf(buf, size, "/run/pipemsg");
  }
  if (n < 0 || (size_t)n >= size)
    return PM_ENAMETOOLONG;
  return 0;
}

int pm_pipe_path(const char *name, char *buf, size_t size) {
  char dir[PM_PIPE_PATH_MAX + 1];
  int n, rc;
  if (name == NULL || name[0] == '\0' || buf == NULL || size == 0)
    return PM_EINVAL;
  if (strchr(name, '/') != NULL || strncmp(name, "\\\\.\\pipe\\", 9) == 0) {
    n = snprintf(buf, size, "%s", name);
  } else {
    rc = pm_pipe_dir(dir, sizeof(dir));
    if (rc < 0)
      return rc;
    n = snprintf(buf, size, "%s/%s", dir, name);
  }
  if (n < 0 || (size_t)n >= size || (size_t)n > PM_PIPE_PATH_MAX)
    return PM_ENAMETOOLONG;
  return 0;
}

int pm__uv_error(int status) {
  switch (status) {
  case 0:
    return 0;
  case UV_ENOMEM:
    return PM_ENOMEM;
  case UV_EOF:
    return PM_EEOF;
  case UV_ETIMEDOUT:
    return PM_ETIMEDOUT;
  case UV_EADDRINUSE:
    return PM_EADDRINUSE;
  case UV_EACCES:
  case UV_EPERM:
    return PM_EACCES;
  case UV_ENAMETOOLONG:
    return PM_ENAMETOOLONG;
  case UV_ECANCELED:
    return PM_ECANCELED;
  case UV_EINVAL:
    return PM_EINVAL;
  default:
    return PM_EIO;
  }
}

/* 1 if a process accepts connections on the socket at path, 0 if not. Non-blocking, so a live
 * service with a full backlog answers "live" at once instead of hanging the check. */
static int socket_is_live(const char *path) {
  struct sockaddr_un sa;
  int fd, live;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return 1; /* cannot tell: never steal */
  live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
         (errno != ECONNREFUSED && errno != ENOENT);
  close(fd);
  return live;
}

/* Creates the socket's directory if missing and refuses one we should not trust: a symlink
 * (which could point anywhere), not a directory, or owned by someone other than root or us. */
static int prepare_dir(const char *path) {
  char dir[PM_PIPE_PATH_MAX + 1];
  char *slash;
  struct stat st;
  snprintf(dir, sizeof(dir), "%s", path);
  slash = strrchr(dir, '/');
  if (slash == NULL)
    return 0;
  if (slash == dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  if (mkdir(dir, 0755) < 0 && errno != EEXIST)
    return PM_EACCES;
  if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
      (st.st_uid != 0 && st.st_uid != geteuid()))
    return PM_EACCES;
  return 0;
}

int pm__pipe_listen(uv_loop_t *loop, uv_pipe_t *server, const pm__listen_spec *spec,
                    uv_connection_cb cb) {
  const char *path = spec->path;
  struct stat st;
  int rc;
  rc = uv_pipe_init(loop, server, 0);
  if (rc < 0)
    return pm__uv_error(rc);
  if (spec->fd > 0) {
    rc = uv_pipe_open(server, spec->fd);
    if (rc == 0)
      rc = uv_listen((uv_stream_t *)server, spec->backlog, cb);
    return pm__uv_error(rc);
  }
  if (strlen(path) > PM_PIPE_PATH_MAX)
    return PM_ENAMETOOLONG;
  rc = prepare_dir(path);
  if (rc < 0)
    return rc;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode) || socket_is_live(path))
      return PM_EADDRINUSE;
    if (unlink(path) < 0 && errno != ENOENT)
      return PM_EACCES;
  }
  rc = uv_pipe_bind(server, path);
  if (rc < 0)
    return pm__uv_error(rc);
  if (chmod(path, spec->mode ? spec->mode : PM_SOCKET_MODE_DEFAULT) < 0 ||
      (spec->gid != 0 && chown(path, (uid_t)-1, (gid_t)spec->gid) < 0)) {
    unlink(path);
    return PM_EACCES;
  }
  rc = uv_listen((uv_stream_t *)server, spec->backlog, cb);
  if (rc < 0) {
    unlink(path);
    return pm__uv_error(rc);
  }
  return 0;
}

int pm__pipe_check_owner(uv_pipe_t *stream, long long expect_uid) {
  uv_os_fd_t fd;
  if (expect_uid < 0)
    return 0;
  if (uv_fileno((uv_handle_t *)stream, &fd) < 0)
    return PM_ENOTAUTH;
  return pm__fd_check_owner(fd, expect_uid);
}

void pm__pipe_unlink(const char *path) { unlink(path); }

void pm__pipe_peer(uv_pipe_t *stream, pm_peer *peer) {
  uv_os_fd_t fd;
  peer->pid = peer->uid = peer->gid = -1;
  if (uv_fileno((uv_handle_t *)stream, &fd) == 0) {
#if defined(SO_PEERCRED)
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      peer->pid = cred.pid;
      peer->uid = cred.uid;
      peer->gid = cred.gid;
    }
#endif
  }
}

void pm__block_sigpipe(void) {
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
}

/* Pause between connection attempts while no service accepts. */
#define DIAL_RETRY_MS 20

int pm__dial(const char *path, uint64_t deadline_ns, int *out) {
  struct sockaddr_un sa;
  size_t len = strlen(path);
  if (len >= sizeof(sa.sun_path))
    return PM_ENAMETOOLONG;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, len + 1);
  for (;;) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err;
    if (fd < 0)
      return PM_EIO;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
      *out = fd;
      return 0;
    }
    err = errno;
    close(fd);
    if (err == EACCES || err == EPERM)
      return PM_EACCES;
    if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN && err != EINTR)
      return PM_EIO;
    if (uv_hrtime() + (uint64_t)DIAL_RETRY_MS * 1000000u >= deadline_ns)
      return PM_ECONNTIMEOUT;
    uv_sleep(DIAL_RETRY_MS);
  }
}

int pm__fd_check_owner(int fd, long long expect_uid) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (expect_uid < 0)
    return 0;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return PM_ENOTAUTH;
  if (cred.uid == 0 || cred.uid == geteuid() || (expect_uid > 0 && cred.uid == expect_uid))
    return 0;
  return PM_ENOTAUTH;
}

int pm__fd_wait(int fd, int want_write, uint64_t deadline_ns) {
  for (;;) {
    struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (want_write ? POLLOUT : 0))};
    uint64_t now = uv_hrtime();
    int n, mask = 0;
    if (now >= deadline_ns)
      return 0;
    n = poll(&p, 1, (int)((deadline_ns - now + 999999u) / 1000000u));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return PM_EIO;
    if (n == 0)
      continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR))
      mask |= 1;
    if (p.revents & POLLOUT)
      mask |= 2;
    return mask;
  }
}

long pm__fd_send(int fd, const void *a, size_t alen, const void *b, size_t blen) {
  struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
  struct msghdr msg;
  ssize_t n;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = alen ? iov : iov + 1;
  msg.msg_iovlen = alen ? 2 : 1;
  do
    n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : PM_EIO;
  return (long)n;
}

long pm__fd_recv(int fd, void *buf, size_t len) {
  ssize_t n;
  do
    n = recv(fd, buf, len, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? PM_EBUSY : PM_EIO;
  return (long)n;
}

void pm__fd_close(int fd) { close(fd); }

int pm__pipe_peer_gone(uv_pipe_t *stream) {
  uv_os_fd_t fd;
  char c;
  ssize_t n;
  if (uv_fileno((uv_handle_t *)stream, &fd) != 0)
    return 0;
  n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}
