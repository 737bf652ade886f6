#ifndef PIPEMSG_TRANSPORT_H
#define PIPEMSG_TRANSPORT_H

/* The platform contract: everything above this layer sees pipe names, libuv streams and PM_E*
 * codes, never sockets, errno or UV_E*. transport_unix.c implements it today. */


#include <uv.h>

#include "pipemsg/pipe.h"

/* The socket file a server bound, so that it removes that file and nothing else (a file put
 * in its place later stays). All zero for an adopted socket, which is not ours to remove. */
typedef struct pm__pipe_file {
  unsigned long long dev, ino;
} pm__pipe_file;

/* How a server gets its listening socket. */
typedef struct pm__listen_spec {
  char *path;    /* PM_PIPE_PATH_MAX + 1 bytes; for an adopted fd, rewritten to its address */
  int backlog;
  unsigned mode; /* 0: PM_SOCKET_MODE_DEFAULT */
  unsigned gid;  /* 0: unchanged */
  int fd;        /* > 0: adopt this listening socket instead of binding path */
  pm__pipe_file *bound; /* out: the file bound (zeroed when adopting) */
} pm__listen_spec;

/* Binds and listens on spec->path, or adopts spec->fd (made close-on-exec, so programs the
 * server runs do not inherit it). A socket file whose owner no longer answers is replaced;
 * one a live process accepts on is PM_EADDRINUSE; a path that is not a socket is
 * PM_EADDRINUSE too (never deleted). The parent directory is created (0755) if missing; it
 * must be a real directory (not a symlink) owned by root or us (PM_EACCES), and not writable
 * by group or others unless sticky (PM_EUNSAFE): otherwise someone else could swap the socket
 * file. The socket gets its mode and group before listen(), so nobody connects earlier, and
 * never through the path (see set_mode_and_group). The handle is initialised on loop in
 * every case; on failure the caller still closes it. */
int pm__pipe_listen(uv_loop_t *loop, uv_pipe_t *server, const pm__listen_spec *spec,
                    uv_connection_cb cb);

/* Test hook: called between bind() and setting the socket's mode and group, so a test can
 * swap the path under the server. NULL (the default) in normal use. */
extern void (*pm__pipe_after_bind_hook)(const char *path);

/* 0 if the connected stream's peer runs as root, as us, or as expect_uid (> 0); PM_ENOTAUTH
 * otherwise. expect_uid -1 accepts anyone. */
int pm__pipe_check_owner(uv_pipe_t *stream, long long expect_uid);

/* Removes the socket file of a server that is shutting down, if path still names the file
 * bound (same device and inode); anything else found there is left alone, and so is an
 * adopted socket's file (bound is zeroed then). */
void pm__pipe_unlink(const char *path, const pm__pipe_file *bound);

/* Fills peer with the credentials of a connected stream's other end: uid, primary gid and
 * the supplementary groups the peer held when it connected (SO_PEERGROUPS, Linux 4.13+;
 * ngroups -1 where the kernel cannot tell). */
void pm__pipe_peer(uv_pipe_t *stream, pm_peer *peer);
/* 1 if the connected stream's peer has already gone without sending a byte (closed, reset),
 * else 0. Reads nothing. */
int pm__pipe_peer_gone(uv_pipe_t *stream);

/* Writing to a pipe whose reader has gone raises SIGPIPE, which kills a process that did not
 * ask for it. A thread of the library's own calls this first: a SIGPIPE its writes raise stays
 * pending on it, never delivered, and the write fails with EPIPE instead. */
void pm__block_sigpipe(void);

/* Blocking client side, for one-shot calls that need no event loop. Deadlines are in
 * uv_hrtime() nanoseconds. */

/* Connects to path, retrying while nobody accepts (no socket yet, refused, backlog full)
 * until the deadline: PM_ECONNTIMEOUT then. Other failures are final. */
int pm__dial(const char *path, uint64_t deadline_ns, int *fd);
/* The uid-based check of pm__pipe_check_owner on a plain descriptor. */
int pm__fd_check_owner(int fd, long long expect_uid);
/* Test hook: gives the owner checks above another uid than the peer's own (it gets the real
 * one), so a test without root can play a service run by another user. NULL (the default) in
 * normal use. */
extern long long (*pm__owner_uid_hook)(long long uid);
/* Waits until fd is readable (or, with want_write, writable) or the deadline passes: returns a
 * mask of 1 (readable) and 2 (writable), 0 on timeout, <0 on error. */
int pm__fd_wait(int fd, int want_write, uint64_t deadline_ns);
/* One non-blocking write of a then b (never raises SIGPIPE): bytes written, 0 when the socket
 * takes nothing now, PM_EIO when the peer is gone. */
long pm__fd_send(int fd, const void *a, size_t alen, const void *b, size_t blen);
/* One non-blocking read: bytes read, 0 at the end of the stream, PM_EBUSY when nothing is
 * there yet, PM_EIO on error. */
long pm__fd_recv(int fd, void *buf, size_t len);
void pm__fd_close(int fd);

/* Maps a libuv status to a PM_E* code. */
int pm__uv_error(int status);

#endif
