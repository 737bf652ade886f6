#ifndef PIPEMSG_TRANSPORT_H
#define PIPEMSG_TRANSPORT_H

/* The platform contract: everything above this layer sees pipe names, libuv streams and PM_E*
 * codes, never sockets, errno or UV_E*. transport_unix.c implements it today. */

#include <signal.h>

#include <uv.h>

#include "pipemsg/pipe.h"

/* How a server gets its listening socket. */
typedef struct pm__listen_spec {
  const char *path;
  int backlog;
  unsigned mode; /* 0: PM_SOCKET_MODE_DEFAULT */
  unsigned gid;  /* 0: unchanged */
  int fd;        /* > 0: adopt this listening socket instead of binding path */
} pm__listen_spec;

/* Binds and listens on spec->path (or adopts spec->fd). A socket file whose owner no longer
 * answers is replaced; one a live process accepts on is PM_EADDRINUSE; a path that is not a
 * socket is PM_EADDRINUSE too (never deleted). The parent directory is created (0755) if
 * missing and must be a real directory (not a symlink) owned by root or us (PM_EACCES). The
 * socket gets its mode and group before listen(), so nobody connects earlier. The handle is
 * initialised on loop in every case; on failure the caller still closes it. */
int pm__pipe_listen(uv_loop_t *loop, uv_pipe_t *server, const pm__listen_spec *spec,
                    uv_connection_cb cb);

/* 0 if the connected stream's peer runs as root, as us, or as expect_uid (> 0); PM_ENOTAUTH
 * otherwise. expect_uid -1 accepts anyone. */
int pm__pipe_check_owner(uv_pipe_t *stream, long long expect_uid);

/* Removes the socket file of a server that is shutting down. */
void pm__pipe_unlink(const char *path);

/* Fills peer with the credentials of a connected stream's other end. */
void pm__pipe_peer(uv_pipe_t *stream, pm_peer *peer);

/* Writing to a pipe whose reader has gone raises SIGPIPE, which kills a process that did not
 * ask for it. The library's own I/O runs with SIGPIPE blocked on its thread, so a write fails
 * with EPIPE instead; a SIGPIPE raised meanwhile is consumed before the mask is restored. */
typedef struct pm__sigpipe_guard {
  sigset_t old;
  int was_pending;
} pm__sigpipe_guard;
void pm__sigpipe_block(pm__sigpipe_guard *g);
void pm__sigpipe_restore(pm__sigpipe_guard *g);

/* Maps a libuv status to a PM_E* code. */
int pm__uv_error(int status);

#endif
