/* SO_PEERCRED and struct ucred are GNU extensions on Linux. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "pipemsg/error.h"
#include "transport/transport.h"
#include "transport/transport_unix.h"

/* The socket file a server bound, so that it removes that file and nothing else (a file put
 * in its place later stays). All zero for an adopted socket, which is not ours to remove. */
typedef struct pipe_file {
  unsigned long long dev, ino;
} pipe_file;

/* A connection the callback did not take is offered again after this long, as on Windows. */
#define OFFER_RETRY_MS 100

/* The listening socket is watched with a level-triggered uv_poll_t, and one connection is
 * accepted per readiness (the next loop round takes the next one): libuv's uv_listen accepts
 * until accept4 fails with EAGAIN, one syscall more per connection, and its uv_accept wraps
 * every connection in a uv_pipe_t, which a command answered at once does not need. */
struct pm__listener {
  uv_poll_t poll;
  int fd;                 /* the listening socket; -1 once closed */
  int accepted;           /* the connection accepted and not yet taken, or -1 */
  int polling;            /* poll started */
  uv_timer_t offer_again; /* runs while a connection waits to be taken */
  int open_handles;
  int waiting; /* a connection was offered and not taken */
  char path[PM_PIPE_PATH_MAX + 1];
  pipe_file bound;
  pm__connection_cb cb;
  void *data;
  void (*close_cb)(void *data);
  void *close_data;
};

struct pm__conn {
  int fd;
};

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

/* Windows names a local pipe \\.\pipe\NAME; here it means the bare NAME. */
#define WIN_PIPE_PREFIX "\\\\.\\pipe\\"

/* Sets *bare to the bare NAME a pipe name stands for, or to NULL for an absolute path;
 * PM_EPIPENAME for anything else. A name resolved against the working directory would differ
 * between a service and its clients, so relative paths are refused rather than guessed at. */
static int bare_name(const char *name, const char **bare) {
  *bare = NULL;
  if (name[0] == '/')
    return 0;
  if (strncmp(name, WIN_PIPE_PREFIX, strlen(WIN_PIPE_PREFIX)) == 0)
    name += strlen(WIN_PIPE_PREFIX);
  else if (strncmp(name, "\\\\", 2) == 0)
    return PM_EPIPENAME; /* a remote pipe, \\server\pipe\NAME */
  if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
      strcmp(name, "..") == 0)
    return PM_EPIPENAME;
  *bare = name;
  return 0;
}

int pm_pipe_path(const char *name, char *buf, size_t size) {
  char dir[PM_PIPE_PATH_MAX + 1];
  const char *bare;
  int n, rc;
  if (name == NULL || name[0] == '\0' || buf == NULL || size == 0)
    return PM_EINVAL;
  rc = bare_name(name, &bare);
  if (rc < 0)
    return rc;
  if (bare == NULL) {
    /* Every client call resolves its name: an absolute path is copied, not formatted. */
    size_t len = strlen(name);
    if (len >= size || len > PM_PIPE_PATH_MAX)
      return PM_ENAMETOOLONG;
    memcpy(buf, name, len + 1);
    return 0;
  }
  rc = pm_pipe_dir(dir, sizeof(dir));
  if (rc < 0)
    return rc;
  n = snprintf(buf, size, "%s/%s", dir, bare);
  if (n < 0 || (size_t)n >= size || (size_t)n > PM_PIPE_PATH_MAX)
    return PM_ENAMETOOLONG;
  return 0;
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
 * (which could point anywhere), not a directory, or owned by someone other than root or us
 * (PM_EACCES); or one where another user may rename or delete entries, that is writable by
 * group or others without the sticky bit (PM_EUNSAFE): they could swap the socket file. */
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
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    pm__debug("socket directory %s has mode %04o: writable by others, not sticky", dir,
              (unsigned)(st.st_mode & 07777));
    return PM_EUNSAFE;
  }
  return 0;
}

void (*pm__pipe_after_bind_hook)(const char *path);

/* Gives the socket file just bound at path its mode and group, and records which file it is.
 *
 * Never through the path: chmod()/chown() follow a symlink, and anyone who can write the
 * directory could swap the new socket for one between bind() and the call. What Linux does
 * (checked on 6.x): bind() creates the file with the socket inode's mode less the umask, so
 * fchmod() on the socket before bind() sets the mode the file is born with, at most the mode
 * asked for; fchown() on the socket does not reach the file, whose group is our fsgid (or the
 * directory's, if setgid). umask() around bind() would be exact but is process-wide, so it
 * would race with files other threads create. So the caller fchmod()s the socket before
 * bind(), and here we open the file itself (O_PATH | O_NOFOLLOW: a symlink is opened as the
 * symlink, not followed), check it is a socket of ours, and only then add the bits the umask
 * took and set the group, on that inode: /proc/self/fd/N names the inode, not the path
 * (fchmodat() with AT_EMPTY_PATH needs Linux 6.6). A swapped-in symlink or file is refused
 * and left untouched (PM_EACCES). prepare_dir() already keeps other users from writing the
 * directory; this closes the window for root and us too. */
static int set_mode_and_group(const char *path, unsigned mode, unsigned gid,
                              pipe_file *bound) {
  char inode_path[64];
  struct stat st;
  int fd, rc = PM_EACCES;
  if (pm__pipe_after_bind_hook != NULL)
    pm__pipe_after_bind_hook(path);
  fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return PM_EACCES;
  if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid())
    goto done;
  bound->dev = (unsigned long long)st.st_dev;
  bound->ino = (unsigned long long)st.st_ino;
  snprintf(inode_path, sizeof(inode_path), "/proc/self/fd/%d", fd);
  if ((st.st_mode & 07777) != mode && chmod(inode_path, mode) < 0)
    goto done;
  if (gid != 0 && st.st_gid != gid && fchownat(fd, "", (uid_t)-1, (gid_t)gid, AT_EMPTY_PATH) < 0)
    goto done;
  rc = 0;
done:
  close(fd);
  return rc;
}

/* Adopts an inherited listening socket (socket activation). */
static int adopt(const pm__listen_spec *spec) {
  struct sockaddr_un sa;
  socklen_t len = sizeof(sa);
  int flags;
  /* Inherited descriptors come without close-on-exec: set it, or every program the service
   * runs (hook commands) would hold the listening sockets. */
  flags = fcntl(spec->fd, F_GETFD);
  if (flags < 0 || fcntl(spec->fd, F_SETFD, flags | FD_CLOEXEC) < 0)
    return PM_EINVAL;
  /* Report where it really listens, not the name it would have bound. */
  memset(&sa, 0, sizeof(sa));
  if (getsockname(spec->fd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_family == AF_UNIX &&
      len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0] != '\0')
    snprintf(spec->path, PM_PIPE_PATH_MAX + 1, "%.*s",
             (int)(len - offsetof(struct sockaddr_un, sun_path)), sa.sun_path);
  return 0;
}

/* Unlinks path if it is still the file bound. Someone able to write the directory could swap
 * it between the check and the unlink, but prepare_dir() leaves only root and us that power. */
static void unlink_bound(const char *path, const pipe_file *bound) {
  struct stat st;
  if (bound->ino == 0 || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) ||
      (unsigned long long)st.st_dev != bound->dev || (unsigned long long)st.st_ino != bound->ino)
    return;
  unlink(path);
}

/* A new socket bound at path, born with at most mode (see set_mode_and_group). Not through
 * uv_pipe_bind(): it binds before we could fchmod(), and unlinks the path on close whatever
 * file is there by then. */
static int bind_socket(const char *path, unsigned mode, int *out) {
  struct sockaddr_un sa;
  int fd, err;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return PM_EIO;
  if (fchmod(fd, mode) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    err = errno;
    close(fd);
    if (err == EADDRINUSE)
      return PM_EADDRINUSE;
    return err == EACCES || err == EPERM || err == EROFS ? PM_EACCES : PM_EIO;
  }
  *out = fd;
  return 0;
}

/* listen() on fd and watch it on loop (l->poll, which sets it non-blocking). */
static int start_listening(uv_loop_t *loop, pm__listener *l, int fd, int backlog,
                           uv_poll_cb cb) {
  int rc;
  if (listen(fd, backlog) < 0)
    return PM_EIO;
  rc = pm__uv_error(uv_poll_init(loop, &l->poll, fd));
  if (rc < 0)
    return rc;
  l->open_handles++;
  l->fd = fd;
  rc = pm__uv_error(uv_poll_start(&l->poll, UV_READABLE, cb));
  l->polling = rc == 0;
  return rc;
}

/* Binds and listens on spec->path, or adopts spec->fd (made close-on-exec, so programs the
 * server runs do not inherit it). A socket file whose owner no longer answers is replaced;
 * one a live process accepts on is PM_EADDRINUSE; a path that is not a socket is
 * PM_EADDRINUSE too (never deleted). The parent directory is created (0755) if missing; it
 * must be a real directory (not a symlink) owned by root or us (PM_EACCES), and not writable
 * by group or others unless sticky (PM_EUNSAFE): otherwise someone else could swap the socket
 * file. The socket gets its mode and group before listen(), so nobody connects earlier, and
 * never through the path (see set_mode_and_group). On failure l->fd is -1 and nothing bound
 * is left; l->poll may still need closing (l->open_handles says). */
static int listen_on(uv_loop_t *loop, pm__listener *l, const pm__listen_spec *spec,
                     uv_poll_cb cb) {
  const char *path = spec->path;
  unsigned mode = spec->access.mode ? spec->access.mode : PM_SOCKET_MODE_DEFAULT;
  pipe_file *bound = &l->bound;
  struct stat st;
  int rc, fd;
  memset(bound, 0, sizeof(*bound));
  if (spec->fd > 0) {
    rc = adopt(spec);
    if (rc == 0)
      rc = start_listening(loop, l, spec->fd, spec->backlog, cb);
    if (rc < 0)
      l->fd = -1; /* an adopted socket stays its owner's to close */
    return rc;
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
  rc = bind_socket(path, mode, &fd);
  if (rc < 0)
    return rc;
  rc = set_mode_and_group(path, mode, spec->access.gid, bound);
  if (rc == 0)
    rc = start_listening(loop, l, fd, spec->backlog, cb);
  if (rc < 0) {
    close(fd);
    l->fd = -1;
    unlink_bound(path, bound);
  }
  return rc;
}

/* While a connection waits to be taken nothing more is accepted (the backlog holds the rest);
 * a callback that could not take it (out of memory) is asked again, or no client would be
 * served after it. */
static void offer(pm__listener *l);
static void on_offer_again(uv_timer_t *t);

static void watch(pm__listener *l, int on) {
  if (on == l->polling || l->fd < 0)
    return;
  l->polling = on;
  if (on)
    uv_poll_start(&l->poll, UV_READABLE, l->poll.poll_cb);
  else
    uv_poll_stop(&l->poll);
}

static void offer(pm__listener *l) {
  l->waiting = 1;
  l->cb(l->data);
  if (l->waiting) {
    watch(l, 0);
    uv_timer_start(&l->offer_again, on_offer_again, OFFER_RETRY_MS, 0);
  }
}

/* Offers again the connection not taken, or after a failed accept4, watches the socket again. */
static void on_offer_again(uv_timer_t *t) {
  pm__listener *l = t->data;
  if (l->accepted >= 0)
    offer(l);
  else
    watch(l, 1);
}

static void on_readable(uv_poll_t *p, int status, int events) {
  pm__listener *l = p->data;
  int fd;
  (void)events;
  if (status < 0 || l->accepted >= 0)
    return;
  do
    fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    /* Out of descriptors (or memory): the connection stays in the backlog; try again later
     * rather than spin on a listener that stays readable. */
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED) {
      watch(l, 0);
      uv_timer_start(&l->offer_again, on_offer_again, OFFER_RETRY_MS, 0);
    }
    return;
  }
  l->accepted = fd;
  offer(l);
}

static void on_listener_closed(uv_handle_t *h) {
  pm__listener *l = h->data;
  if (--l->open_handles > 0)
    return;
  if (l->close_cb != NULL)
    l->close_cb(l->close_data);
  pm__free(l);
}

int pm__listen(uv_loop_t *loop, const pm__listen_spec *spec, pm__connection_cb cb, void *data,
               pm__listener **out) {
  pm__listener *l = pm__calloc(1, sizeof(*l));
  int rc;
  if (l == NULL)
    return PM_ENOMEM;
  l->cb = cb;
  l->data = data;
  l->fd = l->accepted = -1;
  uv_timer_init(loop, &l->offer_again);
  l->offer_again.data = l;
  l->poll.data = l;
  l->open_handles = 1;
  rc = listen_on(loop, l, spec, on_readable);
  snprintf(l->path, sizeof(l->path), "%s", spec->path);
  if (rc < 0) {
    /* The handles exist even on failure; the listener is freed from their close callbacks. */
    if (l->open_handles > 1)
      uv_close((uv_handle_t *)&l->poll, on_listener_closed);
    uv_close((uv_handle_t *)&l->offer_again, on_listener_closed);
    return rc;
  }
  *out = l;
  return 0;
}

/* The connection offered, if any, is the caller's now. */
static int take(pm__listener *l) {
  int fd = l->accepted;
  if (fd < 0)
    return -1;
  l->accepted = -1;
  l->waiting = 0;
  uv_timer_stop(&l->offer_again);
  watch(l, 1);
  return fd;
}

int pm__accept(pm__listener *l, uv_pipe_t *client) {
  int fd = take(l), rc;
  if (fd < 0)
    return PM_EBUSY;
  rc = uv_pipe_open(client, fd);
  if (rc < 0)
    close(fd);
  return pm__uv_error(rc);
}

static void link_unwait(pm__link *link, int remove);

int pm__accept_link(pm__listener *l, pm__link *link) {
  link->wrapped = 0;
  link->waiter = NULL;
  link->fd = take(l);
  return link->fd < 0 ? PM_EBUSY : 0;
}

int pm__link_wrap(uv_loop_t *loop, pm__link *link) {
  int rc;
  if (link->wrapped)
    return 0;
  /* It stays open: the private epoll must not report it (again) once libuv has it. */
  link_unwait(link, 1);
  uv_pipe_init(loop, &link->pipe, 0);
  link->wrapped = 1;
  rc = uv_pipe_open(&link->pipe, link->fd);
  if (rc < 0)
    close(link->fd);
  link->fd = -1;
  return pm__uv_error(rc);
}

int pm__link_close(pm__link *link, uv_close_cb cb) {
  if (link->wrapped) {
    uv_close((uv_handle_t *)&link->pipe, cb);
    return 1;
  }
  link_unwait(link, 0); /* closing the socket drops it from the private epoll */
  if (link->fd >= 0)
    close(link->fd);
  link->fd = -1;
  return 0;
}

/* The socket under a link, wrapped or not; -1 if none. */
static int link_fd(pm__link *link) {
  uv_os_fd_t fd;
  if (!link->wrapped)
    return link->fd;
  return uv_fileno((uv_handle_t *)&link->pipe, &fd) == 0 ? fd : -1;
}

void pm__listener_close(pm__listener *l, void (*cb)(void *data), void *data) {
  l->close_cb = cb;
  l->close_data = data;
  unlink_bound(l->path, &l->bound);
  if (l->accepted >= 0)
    close(l->accepted);
  l->accepted = -1;
  uv_close((uv_handle_t *)&l->poll, on_listener_closed);
  /* After uv_close: libuv must not watch a descriptor that is gone (or reused). */
  if (l->fd >= 0)
    close(l->fd);
  l->fd = -1;
  uv_close((uv_handle_t *)&l->offer_again, on_listener_closed);
}

long long (*pm__owner_uid_hook)(long long uid);

static int fd_check_owner(int fd, const pm__owner *owner) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  long long uid;
  if (owner->uid < 0)
    return 0;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return PM_ENOTAUTH;
  uid = pm__owner_uid_hook != NULL ? pm__owner_uid_hook(cred.uid) : (long long)cred.uid;
  if (uid == 0 || uid == (long long)geteuid() || (owner->uid > 0 && uid == owner->uid))
    return 0;
  return PM_ENOTAUTH;
}

int pm__pipe_check_owner(uv_pipe_t *stream, const pm__owner *owner) {
  uv_os_fd_t fd;
  if (owner->uid < 0)
    return 0;
  if (uv_fileno((uv_handle_t *)stream, &fd) < 0)
    return PM_ENOTAUTH;
  return fd_check_owner(fd, owner);
}

/* The supplementary groups the peer held when it connected. Never the group database: it
 * says what a user may hold, not what the process holds (it may have dropped groups, or hold
 * one given without a database entry). */
static void peer_groups(int fd, pm_peer *peer) {
  peer->ngroups = -1;
#if defined(SO_PEERGROUPS)
  {
    gid_t some[PM_PEER_GROUPS_MAX], *all = some;
    socklen_t len = sizeof(some);
    int rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, some, &len);
    if (rc < 0 && errno == ERANGE) { /* len now says how much room all of them need */
      all = pm__malloc(len);
      rc = all == NULL ? -1 : getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, all, &len);
    }
    if (rc == 0) {
      peer->ngroups = (int)(len / sizeof(gid_t));
      if (peer->ngroups > PM_PEER_GROUPS_MAX)
        peer->ngroups = PM_PEER_GROUPS_MAX;
      for (int i = 0; i < peer->ngroups; i++)
        peer->groups[i] = all[i];
    }
    if (all != some)
      pm__free(all);
  }
#else
  (void)fd;
#endif
}

static int stream_fd(uv_pipe_t *stream) {
  uv_os_fd_t fd;
  return uv_fileno((uv_handle_t *)stream, &fd) == 0 ? fd : -1;
}

static void fd_peer(int fd, pm_peer *peer, int groups) {
  peer->pid = peer->uid = peer->gid = -1;
  peer->ngroups = -1;
  peer->sid[0] = '\0'; /* a Windows identity */
  if (fd >= 0) {
#if defined(SO_PEERCRED)
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      peer->pid = cred.pid;
      peer->uid = cred.uid;
      peer->gid = cred.gid;
      if (groups)
        peer_groups(fd, peer);
    }
#endif
  }
}

static int fd_peer_in_group(int fd, const char *group) {
  pm_peer peer;
  char *end;
  long long gid;
  if (group == NULL || group[0] < '0' || group[0] > '9')
    return PM_EINVAL;
  gid = strtoll(group, &end, 10);
  if (*end != '\0')
    return PM_EINVAL;
  fd_peer(fd, &peer, 1);
  if (peer.uid < 0 || peer.ngroups < 0)
    return PM_ENOTAUTH;
  if (peer.gid == gid)
    return 1;
  for (int i = 0; i < peer.ngroups; i++)
    if (peer.groups[i] == gid)
      return 1;
  return 0;
}

void pm__pipe_peer(uv_pipe_t *stream, pm_peer *peer, int groups) {
  fd_peer(stream_fd(stream), peer, groups);
}

int pm__pipe_peer_in_group(uv_pipe_t *stream, const char *group) {
  return fd_peer_in_group(stream_fd(stream), group);
}

void pm__link_peer(pm__link *link, pm_peer *peer, int groups) {
  fd_peer(link_fd(link), peer, groups);
}

int pm__link_peer_in_group(pm__link *link, const char *group) {
  return fd_peer_in_group(link_fd(link), group);
}

void pm__block_sigpipe(void) {
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
}

/* Pause between connection attempts while no service accepts. */
#define DIAL_RETRY_MS 20

int pm__conn_from_fd(int fd, pm__conn **out) {
  pm__conn *c = pm__malloc(sizeof(*c));
  if (c == NULL)
    return PM_ENOMEM;
  c->fd = fd;
  *out = c;
  return 0;
}

int pm__dial(const char *path, uint64_t deadline_ns, pm__conn **out) {
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
      int rc = pm__conn_from_fd(fd, out);
      if (rc < 0)
        close(fd);
      return rc;
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

int pm__pipe_dial_now(uv_pipe_t *client, const char *path) {
  struct sockaddr_un sa;
  size_t len = strlen(path);
  int fd, err;
  if (len >= sizeof(sa.sun_path))
    return PM_ENAMETOOLONG;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, len + 1);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return PM_EIO;
  /* A Unix socket connects at once, or not now (EAGAIN: the backlog is full). */
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    err = errno;
    close(fd);
    if (err == EACCES || err == EPERM)
      return PM_EACCES;
    return err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == EINTR ? PM_EBUSY
                                                                                 : PM_EIO;
  }
  if (uv_pipe_open(client, fd) < 0) {
    close(fd);
    return PM_EIO;
  }
  return 0;
}

int pm__conn_check_owner(pm__conn *c, const pm__owner *owner) {
  return fd_check_owner(c->fd, owner);
}

int pm__conn_wait(pm__conn *c, int want_write, uint64_t deadline_ns) {
  for (;;) {
    struct pollfd p = {.fd = c->fd, .events = (short)(POLLIN | (want_write ? POLLOUT : 0))};
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

long pm__conn_recv(pm__conn *c, void *buf, size_t len) {
  ssize_t n;
  do
    n = recv(c->fd, buf, len, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? PM_EBUSY : PM_EIO;
  return (long)n;
}

void pm__conn_close(pm__conn *c) {
  if (c == NULL)
    return;
  close(c->fd);
  pm__free(c);
}

static int fd_peer_gone(int fd) {
  char c;
  ssize_t n;
  if (fd < 0)
    return 0;
  n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static long fd_read_now(int fd, void *buf, size_t len) {
  ssize_t n;
  if (fd < 0)
    return PM_EIO;
  do
    n = recv(fd, buf, len, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? PM_EBUSY : PM_EIO;
  return (long)n;
}

int pm__pipe_peer_gone(uv_pipe_t *stream) { return fd_peer_gone(stream_fd(stream)); }

long pm__pipe_read_now(uv_pipe_t *pipe, void *buf, size_t len) {
  return fd_read_now(stream_fd(pipe), buf, len);
}

void pm__parking_init(pm__parking *p) {
  memset(p, 0, sizeof(*p));
  p->fd = -1;
}

static void on_hangup(uv_poll_t *h, int status, int events) {
  pm__parking *p = h->data;
  (void)status;
  (void)events;
  p->cb(p->data);
}

int pm__park(pm__parking *p, uv_pipe_t *pipe, void (*cb)(void *data), void *data) {
  uv_loop_t *loop = pipe->loop;
  int fd = stream_fd(pipe), rc;
  if (fd < 0 || uv_stream_get_write_queue_size((uv_stream_t *)pipe) != 0)
    return PM_EINVAL;
  p->cb = cb;
  p->data = data;
  if (p->fd < 0) {
    /* epoll keys its interest on the descriptor: a duplicate of the socket can be watched for
     * a hang-up while the socket itself is out of the set. */
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
      return PM_EIO;
    rc = pm__uv_error(uv_poll_init(loop, &p->hangup, dup_fd));
    if (rc < 0) {
      close(dup_fd);
      return rc;
    }
    p->fd = dup_fd;
    p->hangup.data = p;
  }
  rc = pm__uv_error(uv_poll_start(&p->hangup, UV_DISCONNECT, on_hangup));
  if (rc < 0)
    return rc;
  /* libuv takes a stopped stream out of the poll set only when it next reports it, which is
   * the wake-up parking is for: it is taken out now (libuv adds it back, or finds it added,
   * when reading starts again). */
  uv_read_stop((uv_stream_t *)pipe);
  epoll_ctl(uv_backend_fd(loop), EPOLL_CTL_DEL, fd, NULL);
  p->parked = 1;
  return 0;
}

void pm__unpark(pm__parking *p) {
  if (!p->parked)
    return;
  p->parked = 0;
  uv_poll_stop(&p->hangup);
}

int pm__parking_close(pm__parking *p, uv_close_cb cb) {
  int fd = p->fd;
  if (fd < 0)
    return 0;
  p->parked = 0;
  p->fd = -1;
  /* The watcher leaves the poll set here (uv_close stops it); the descriptor is ours. */
  p->hangup.data = p->data;
  uv_close((uv_handle_t *)&p->hangup, cb);
  close(fd);
  return 1;
}

int pm__link_peer_gone(pm__link *link) { return fd_peer_gone(link_fd(link)); }

long pm__link_read_now(pm__link *link, void *buf, size_t len) {
  return fd_read_now(link_fd(link), buf, len);
}

long pm__link_read_first(pm__link *link, void *buf, size_t len) {
  return fd_read_now(link_fd(link), buf, len);
}

static long fd_send(int fd, const void *a, size_t alen, const void *b, size_t blen) {
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

long pm__conn_send(pm__conn *c, const void *a, size_t alen, const void *b, size_t blen) {
  return fd_send(c->fd, a, alen, b, blen);
}

long pm__link_write_now(pm__link *link, const void *a, size_t alen, const void *b, size_t blen) {
  return fd_send(link_fd(link), a, alen, b, blen);
}

/* Events taken from the private epoll per epoll_wait; more are taken by the next round. */
#define WAITER_EVENTS 16

struct pm__link_waiter {
  uv_poll_t poll; /* on epfd */
  int epfd;
  unsigned added; /* links added and not yet closed or wrapped */
  pm__link *only; /* while added is 1, that link if it was added alone (else NULL) */
  uint64_t only_token;
  void (*cb)(void *data, uint64_t token);
  void *data;
  void (*closed)(void *data);
  void *closed_data;
};

/* The link leaves its waiter's count; remove: and the private epoll (a link staying open). */
static void link_unwait(pm__link *link, int remove) {
  pm__link_waiter *w = link->waiter;
  if (w == NULL)
    return;
  if (remove)
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, link->fd, NULL);
  link->waiter = NULL;
  w->added--;
  if (w->only == link)
    w->only = NULL;
}

static void on_waiter_readable(uv_poll_t *p, int status, int events) {
  pm__link_waiter *w = p->data;
  struct epoll_event ev[WAITER_EVENTS];
  int n;
  (void)events;
  if (status < 0)
    return;
  if (w->added == 1 && w->only != NULL && w->cb != NULL) {
    /* Only one link can be ready: no epoll_wait to ask which. Its event stays queued in the
     * private epoll until the socket is closed (as it usually is, answered at once) or taken
     * out: one still open after the callback is taken out, or it would be reported again. */
    pm__link *link = w->only;
    w->cb(w->data, w->only_token);
    if (w->only == link)
      link_unwait(link, 1);
    return;
  }
  do
    n = epoll_wait(w->epfd, ev, WAITER_EVENTS, 0);
  while (n < 0 && errno == EINTR);
  /* A callback may close the waiter (the server closing): it is freed only from the loop. */
  for (int i = 0; i < n && w->cb != NULL; i++)
    w->cb(w->data, ev[i].data.u64);
}

int pm__link_waiter_new(uv_loop_t *loop, void (*cb)(void *data, uint64_t token), void *data,
                        pm__link_waiter **out) {
  pm__link_waiter *w = pm__calloc(1, sizeof(*w));
  int rc;
  if (w == NULL)
    return PM_ENOMEM;
  w->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (w->epfd < 0) {
    pm__free(w);
    return PM_EIO;
  }
  rc = pm__uv_error(uv_poll_init(loop, &w->poll, w->epfd));
  if (rc < 0) {
    close(w->epfd);
    pm__free(w);
    return rc;
  }
  w->poll.data = w;
  w->cb = cb;
  w->data = data;
  rc = pm__uv_error(uv_poll_start(&w->poll, UV_READABLE, on_waiter_readable));
  if (rc < 0) {
    pm__link_waiter_close(w, NULL, NULL);
    return rc;
  }
  *out = w;
  return 0;
}

int pm__link_wait(pm__link_waiter *w, pm__link *link, uint64_t token) {
  struct epoll_event ev;
  if (w == NULL || link->wrapped || link->fd < 0)
    return PM_EINVAL;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.u64 = token;
  if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, link->fd, &ev) < 0)
    return PM_EIO;
  link->waiter = w;
  w->only = ++w->added == 1 ? link : NULL;
  w->only_token = token;
  return 0;
}

static void on_waiter_closed(uv_handle_t *h) {
  pm__link_waiter *w = h->data;
  close(w->epfd);
  if (w->closed != NULL)
    w->closed(w->closed_data);
  pm__free(w);
}

void pm__link_waiter_close(pm__link_waiter *w, void (*closed)(void *data), void *data) {
  w->cb = NULL;
  w->closed = closed;
  w->closed_data = data;
  uv_close((uv_handle_t *)&w->poll, on_waiter_closed);
}
