#ifndef PIPEMSG_TRANSPORT_H
#define PIPEMSG_TRANSPORT_H

/* The platform contract: everything above this layer sees pipe names, libuv streams, opaque
 * listeners and connections, and PM_E* codes; never sockets, handles, errno, GetLastError()
 * or UV_E*. transport_unix.c implements it with Unix domain sockets, transport_win.c with
 * named pipes (docs/architecture.md, "The transport contract"). */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pipemsg/pipe.h"

/* Who may connect to a listener. Each platform reads its own part and ignores the other's. */
typedef struct pm__access {
  unsigned mode;    /* Unix: the socket file's permissions; 0: PM_SOCKET_MODE_DEFAULT */
  unsigned gid;     /* Unix: the socket file's group; 0: left as created */
  const char *sddl; /* Windows: every pipe instance's security descriptor; NULL:
                       PM_PIPE_SDDL_DEFAULT */
} pm__access;

/* How a server gets its listener. */
typedef struct pm__listen_spec {
  char *path;    /* PM_PIPE_PATH_MAX + 1 bytes (pm_pipe_path); Unix: for an adopted socket,
                    rewritten to its address */
  int backlog;   /* Unix: listen()'s backlog; Windows: unused (one instance pending) */
  pm__access access;
  int fd;        /* Unix: > 0: adopt this listening socket (socket activation) instead of
                    binding path; Windows: must be 0 (PM_EINVAL) */
  /* Windows: called on the loop's thread (with the connection callback's data) when the
   * listener cannot go on as it should: it cannot create the next pipe instance (each
   * client meanwhile is turned away; reported again while it lasts), or the pipe is no
   * longer ours (then it serves no more). why is a line for the log. NULL: not reported.
   * Unix: unused. */
  void (*failed)(void *data, const char *why);
} pm__listen_spec;

typedef struct pm__listener pm__listener;
/* A client waits: the callback (on the loop's thread) takes it with pm__accept, or leaves it
 * waiting (and the listener takes no other) until a later pm__accept. One left waiting is
 * offered again (the callback is called again) every 100 ms until it is taken. */
typedef void (*pm__connection_cb)(void *data);

/* Starts listening on spec->path (see each platform's file for the guarantees: who may
 * connect before the first accept, a name in use by a live service is PM_EADDRINUSE, ...).
 * On failure nothing is left to close; the loop still has to run once for the transport to
 * free what it had started. */
int pm__listen(uv_loop_t *loop, const pm__listen_spec *spec, pm__connection_cb cb, void *data,
               pm__listener **out);
/* Takes the waiting client into client (uv_pipe_init()ed on the listener's loop, ipc 0).
 * PM_EBUSY if none waits; other failures leave client initialised but not open. */
int pm__accept(pm__listener *l, uv_pipe_t *client);
/* Stops listening and removes what pm__listen created (Unix: the socket file, if it is still
 * the one bound); cb (may be NULL) runs on the loop once everything is released. */
void pm__listener_close(pm__listener *l, void (*cb)(void *data), void *data);

/* Who may serve a pipe a client connects to (anti-squatting): uid < 0 accepts anyone;
 * otherwise the server must run as the platform's administrator (Unix: root; Windows:
 * LocalSystem or a member of Administrators), as us, or as the one named: Unix uid > 0,
 * Windows sid (a SID string, NULL: nobody else). */
typedef struct pm__owner {
  long long uid;
  const char *sid;
} pm__owner;

/* 0 if the connected stream's server end belongs to an expected owner; PM_ENOTAUTH otherwise,
 * or when the platform cannot tell (never passes on doubt). */
int pm__pipe_check_owner(uv_pipe_t *stream, const pm__owner *owner);

/* Fills peer with the identity of a connected stream's other end. Unix: pid, uid, primary gid
 * and, with groups, the supplementary groups held when it connected (SO_PEERGROUPS, Linux
 * 4.13+; ngroups -1 where the kernel cannot tell, or without groups); sid empty. Windows: pid
 * (GetNamedPipeClientProcessId) and the user's SID string (impersonation); uid, gid -1,
 * ngroups -1. */
void pm__pipe_peer(uv_pipe_t *stream, pm_peer *peer, int groups);
/* 1 if the peer of a connected stream is a member of group (Unix: a decimal gid, primary or
 * supplementary; Windows: a SID string, CheckTokenMembership on the client's token), 0 if not,
 * <0 if it cannot be told (fail closed). */
int pm__pipe_peer_in_group(uv_pipe_t *stream, const char *group);
/* The servers call this around their authorize callback: pm_peer_in_group then answers for
 * peer (this very pm_peer, on this thread) from stream; (NULL, NULL) after. */
void pm__authorizing(const pm_peer *peer, uv_pipe_t *stream);
/* 1 if the connected stream's peer has already gone without sending a byte (closed, reset),
 * else 0. Reads nothing. */
int pm__pipe_peer_gone(uv_pipe_t *stream);
/* 1 if two peers are the same user, else 0: the uid on Unix; on Windows, where uid is -1 for
 * everyone, the user's SID (empty on Unix). What the servers' per-user limits count by. */
int pm__same_user(const pm_peer *a, const pm_peer *b);

/* Parking a connection whose next read can wait for a timer its owner runs anyway (an event
 * session's heartbeat answer, read when the heartbeat is due): reading stops and the socket
 * leaves the loop's poll set, so bytes arriving do not wake the loop. A peer that hangs up
 * still does, at once: cb(data) runs, through a duplicate of the socket that the loop watches
 * for a hang-up alone (EPOLLRDHUP, no EPOLLIN). The owner reads what arrived with
 * pm__pipe_read_now, and pm__unpark before it reads through libuv again. Only a pipe with no
 * write queued is parked, and only from a timer callback: libuv (1.44 to 1.52) keeps no
 * interest of its own in a socket whose reads are stopped and whose writes are done, so it
 * re-adds the socket with EPOLL_CTL_ADD later; parked with write interest left (inside a write
 * callback, before libuv drops it), libuv's next EPOLL_CTL_MOD would fail with ENOENT, and
 * libuv aborts on that. A pipe already parked may queue a write: the socket is then added back
 * for writing, at the cost of one wake-up once it drains. Windows: PM_EINVAL, never parked,
 * since libuv's overlapped reads own the pipe. */
typedef struct pm__parking {
  uv_poll_t hangup;
  int fd; /* the duplicate, -1 until first parked */
  int parked;
  void (*cb)(void *data);
  void *data;
} pm__parking;
void pm__parking_init(pm__parking *p);
/* 0 once parked (reading stopped; the caller started it), or an error: then nothing changed. */
int pm__park(pm__parking *p, uv_pipe_t *pipe, void (*cb)(void *data), void *data);
/* Stops watching for the hang-up; the caller starts reading again (or closes). */
void pm__unpark(pm__parking *p);
/* Closes what parking took: 1 if cb will run, for a handle whose data is pm__park's data; 0
 * if there is none. */
int pm__parking_close(pm__parking *p, uv_close_cb cb);
/* Reads what a pipe holds without waiting (never while libuv reads it): bytes read, 0 at the end
 * of the stream, PM_EBUSY when nothing is there, PM_EIO on error. Windows: PM_EBUSY. */
long pm__pipe_read_now(uv_pipe_t *pipe, void *buf, size_t len);

/* A connection a server accepted, served where it stands while nothing has to wait. Unix: the
 * bare socket, outside libuv, so a call answered at once costs no uv_pipe_open (fcntl, ioctl)
 * and no uv_close (epoll_ctl); pm__link_wrap hands it to libuv when it must wait (a partial
 * request, a late reply, a partial write, a lingering close). Windows: wrapped from the start,
 * since libuv's overlapped I/O owns the pipe. */
struct pm__link_waiter;
typedef struct pm__link {
  uv_pipe_t pipe; /* initialised, and open, once wrapped */
  int fd;         /* Unix: the socket while not wrapped; -1 otherwise */
  int wrapped;
  struct pm__link_waiter *waiter; /* Unix: the waiter it was added to, until closed or wrapped */
} pm__link;

/* Takes the waiting client into link: PM_EBUSY if none waits. On any result link may be
 * passed to pm__link_close (which then closes nothing, or what was taken). */
int pm__accept_link(pm__listener *l, pm__link *link);
/* Puts the connection in link->pipe (on loop) if it is not there yet: 0, or an error (then it
 * is closed; pm__link_close still releases link). */
int pm__link_wrap(uv_loop_t *loop, pm__link *link);
/* Closes the connection: 1 if cb will run once the wrapped pipe is closed, 0 if nothing was
 * wrapped (the socket, if any, is closed at once and cb is not called). */
int pm__link_close(pm__link *link, uv_close_cb cb);
/* pm__pipe_peer and pm__pipe_peer_gone on a link (wrapped or not). */
void pm__link_peer(pm__link *link, pm_peer *peer, int groups);
int pm__link_peer_gone(pm__link *link);
/* Reads what a link already holds, without waiting, before uv_read_start (never while libuv
 * reads it): bytes read, 0 at the end of the stream, PM_EBUSY when nothing is there yet, PM_EIO
 * on error. Windows: always PM_EBUSY, since libuv's overlapped reads own the pipe, so the
 * caller reads through the loop. */
long pm__link_read_now(pm__link *link, void *buf, size_t len);
/* The first read of a connection not yet authorized: as pm__link_read_now, and 0 (or PM_EIO)
 * also says the peer has gone without sending. Windows reads nothing (libuv's overlapped reads
 * own the pipe): 0 if the peer has gone (a peek), else PM_EBUSY. */
long pm__link_read_first(pm__link *link, void *buf, size_t len);
/* One non-blocking write of a then b on a link not yet wrapped: bytes taken (0 when the
 * connection takes nothing now), PM_EIO when the peer is gone. Never raises SIGPIPE. Windows:
 * always 0 (a link is wrapped there, and libuv writes it). */
long pm__link_write_now(pm__link *link, const void *a, size_t alen, const void *b, size_t blen);
/* Waits for links not yet wrapped to become readable, without wrapping them: one private epoll
 * instance per server, watched by one uv_poll_t, to which a waiting socket is added once
 * (EPOLLONESHOT, so it reports once; closing the socket drops it). A wait costs one epoll_ctl,
 * and one epoll_wait when more than one link waits (with one, the private epoll being readable
 * says which), where a uv_pipe_t costs fcntl, ioctl, two epoll_ctl and the loop round of its
 * close. Windows: none (PM_EINVAL; a link is wrapped there). */
typedef struct pm__link_waiter pm__link_waiter;
/* cb(data, token) once per pm__link_wait whose socket became readable (data, hang-up or
 * error); a token whose link is gone may still be reported, and must be ignored. */
int pm__link_waiter_new(uv_loop_t *loop, void (*cb)(void *data, uint64_t token), void *data,
                        pm__link_waiter **out);
/* Starts waiting on an unwrapped link: 0, or an error (then the caller wraps it instead). */
int pm__link_wait(pm__link_waiter *w, pm__link *link, uint64_t token);
/* closed(data) runs once the waiter is gone; no cb after this call. */
void pm__link_waiter_close(pm__link_waiter *w, void (*closed)(void *data), void *data);
/* pm__authorizing for a link: pm_peer_in_group answers from it during the callback. */
void pm__authorizing_link(const pm_peer *peer, pm__link *link);
int pm__link_peer_in_group(pm__link *link, const char *group);

/* Unix: writing to a pipe whose reader has gone raises SIGPIPE, which kills a process that did
 * not ask for it. A thread of the library's own calls this first: a SIGPIPE its writes raise
 * stays pending on it, never delivered, and the write fails with EPIPE instead. Windows has no
 * SIGPIPE (a write fails with ERROR_NO_DATA): a no-op. */
void pm__block_sigpipe(void);

/* The library's servers run on the application's loop, where libuv writes with plain
 * writev(): in a process that left SIGPIPE's disposition at its default, a peer gone while a
 * response or event is written would kill it. A server takes a guard on its loop: when
 * SIGPIPE is at its default, SIGPIPE is blocked on the loop's thread while the loop polls
 * (where libuv writes), and one raised meanwhile is taken, so the write fails with EPIPE
 * instead. A SIGPIPE already blocked or pending belongs to the application and is left alone.
 * *out is NULL when no guard is needed (SIGPIPE ignored or handled; always on Windows). Start
 * and close on the loop's thread; close once no write of the server can follow (it frees
 * itself once its handles have closed). */
typedef struct pm__sigpipe_guard pm__sigpipe_guard;
int pm__sigpipe_guard_start(uv_loop_t *loop, pm__sigpipe_guard **out);
void pm__sigpipe_guard_close(pm__sigpipe_guard *g);
/* Around a write made outside the loop's poll (a timer, a call from the application): the
 * same protection while a guard is alive. Returns what pm__sigpipe_release needs. */
int pm__sigpipe_hold(void);
void pm__sigpipe_release(int held);

/* One connection attempt for a client on a loop, without waiting, into client
 * (uv_pipe_init()ed, ipc 0): 0 when it is connected and open; PM_EBUSY when nobody accepts now
 * (no pipe yet, refused, every instance busy: try again later), PM_EACCES when refused access,
 * else PM_EIO; client is left initialised but not open then. Windows: as pm__dial,
 * identification-level impersonation only (libuv's uv_pipe_connect would let the server act
 * as us). */
int pm__pipe_dial_now(uv_pipe_t *client, const char *path);

/* Blocking client side, for one-shot calls that need no event loop. Deadlines are in
 * uv_hrtime() nanoseconds. */
typedef struct pm__conn pm__conn;

/* Connects to path, retrying while nobody accepts (no pipe yet, refused, every instance busy)
 * until the deadline: PM_ECONNTIMEOUT then. PM_EACCES when refused access; other failures are
 * final. */
int pm__dial(const char *path, uint64_t deadline_ns, pm__conn **out);
/* The owner check of pm__pipe_check_owner on a blocking connection. */
int pm__conn_check_owner(pm__conn *c, const pm__owner *owner);
/* Waits until c is readable (or, with want_write, writable) or the deadline passes: returns a
 * mask of 1 (readable) and 2 (writable), 0 on timeout, <0 on error. */
int pm__conn_wait(pm__conn *c, int want_write, uint64_t deadline_ns);
/* One non-blocking write of a then b: bytes taken, 0 when the connection takes nothing now,
 * PM_EIO when the peer is gone. Never raises SIGPIPE. */
long pm__conn_send(pm__conn *c, const void *a, size_t alen, const void *b, size_t blen);
/* One non-blocking read: bytes read, 0 at the end of the stream, PM_EBUSY when nothing is
 * there yet, PM_EIO on error. */
long pm__conn_recv(pm__conn *c, void *buf, size_t len);
/* Closes c, cancelling any I/O still in flight; NULL is ignored. */
void pm__conn_close(pm__conn *c);

#endif
