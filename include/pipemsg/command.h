#ifndef PIPEMSG_COMMAND_H
#define PIPEMSG_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pipemsg/message.h"
#include "pipemsg/pipe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Command pipe (PROTOCOL §4): one request per connection, one request served at a time;
 * connections wait their turn in a bounded queue, served round-robin by uid. */

#define PM_REQUEST_TIMEOUT_MS_DEFAULT 3000u
#define PM_WRITE_TIMEOUT_MS_DEFAULT 3000u
#define PM_RESPONSE_TIMEOUT_MS_DEFAULT 180000u
#define PM_CONNECT_TIMEOUT_MS_DEFAULT 3000u
#define PM_BACKLOG_DEFAULT 128
/* Connections accepted and waiting for their turn (the one being served not counted); more
 * are answered TooManyRequests. */
#define PM_COMMAND_MAX_WAITING_DEFAULT 32
/* Connections one uid may hold at once, waiting or being served; more are answered
 * TooManyRequests. */
#define PM_COMMAND_MAX_PER_UID_DEFAULT 8

/* ---- server ---------------------------------------------------------------------------- */

typedef struct pm_command_server pm_command_server;
/* One request being served. Valid from the handler call until pm_command_call_reply(). */
typedef struct pm_command_call pm_command_call;

/* Called on the loop thread with a well-formed Request. The application answers with
 * pm_command_call_reply(), now or later (on the loop thread); no other request is read until
 * it does (other connections wait their turn, §4.1). */
typedef void (*pm_command_server_handler_cb)(pm_command_call *call, void *data);

/* Called when a peer connects, before anything is read from it and before it takes a place in
 * the waiting queue: 0 lets it in; anything else answers TransportNotAuthorized and closes. */
typedef int (*pm_command_server_authorize_cb)(const pm_peer *peer, void *data);

/* What happened to one connection, reported once when it is closed. On Windows also what keeps
 * the pipe's listener from serving as it should (no next instance can be created, the pipe is
 * no longer ours): peer.pid -1, command and result NULL, reason starting "listener: ". */
typedef struct pm_command_log {
  pm_peer peer;
  const char *command; /* NULL if no valid request arrived */
  const char *result;  /* NULL if no response was sent */
  const char *reason;  /* why it ended, e.g. "timeout", "bad request: ...", "ok" */
  uint64_t duration_ms;
} pm_command_log;
typedef void (*pm_command_server_log_cb)(const pm_command_log *entry, void *data);

typedef struct pm_command_server_options {
  size_t max_message;          /* 0: PM_MAX_MESSAGE_DEFAULT */
  uint32_t request_timeout_ms; /* whole request frame, from the connection's turn; also how
                                  long a refused connection lingers; 0: default 3000 */
  uint32_t write_timeout_ms;   /* writing the response; 0: default 3000 */
  int backlog;                 /* 0: PM_BACKLOG_DEFAULT */
  unsigned max_waiting;        /* 0: PM_COMMAND_MAX_WAITING_DEFAULT */
  unsigned max_per_uid;        /* 0: PM_COMMAND_MAX_PER_UID_DEFAULT */
  unsigned socket_mode;        /* Unix: permissions of the socket file; 0:
                                  PM_SOCKET_MODE_DEFAULT */
  unsigned socket_gid;         /* Unix: group of the socket file; 0: left as created */
  int listen_fd;               /* Unix: > 0: serve this bound, listening socket (socket
                                  activation): nothing is bound, and closing leaves the socket
                                  file alone; Windows: must be 0 */
  const char *pipe_sddl;       /* Windows: security descriptor of every pipe instance (SDDL);
                                  NULL: PM_PIPE_SDDL_DEFAULT; ignored on Unix */
  int groups_on_demand;        /* Unix: nonzero: a peer's supplementary groups are not read
                                  when it connects (pm_peer.ngroups is -1 for the callbacks and
                                  the log); pm_peer_in_group in the authorize callback reads
                                  them when asked. One getsockopt fewer per call for a server
                                  whose callback asks only that way; 0: read at once */
  pm_command_server_handler_cb handler; /* required */
  pm_command_server_authorize_cb authorize; /* NULL: everyone */
  pm_command_server_log_cb log;             /* NULL: silent */
  void *data;                               /* passed to the callbacks */
} pm_command_server_options;

/* Binds name (see pm_pipe_path) and starts serving on loop. A socket file left by a dead
 * process is replaced; one a live service answers on is PM_EADDRINUSE. The socket gets its
 * mode and group before it accepts anything. A peer that goes away while it is written to
 * never raises SIGPIPE in the application, even with SIGPIPE's default disposition
 * (docs/api.md, "SIGPIPE"). On failure, handles it opened on loop may still be closing: run the
 * loop (uv_run with UV_RUN_NOWAIT is enough) before uv_loop_close. */
int pm_command_server_start(uv_loop_t *loop, const char *name,
                            const pm_command_server_options *opts, pm_command_server **out);
/* Stops listening, drops any connection, removes the socket file; the server is freed once
 * its handles have closed (cb, if not NULL, then runs). */
void pm_command_server_close(pm_command_server *s, void (*cb)(void *arg), void *arg);
const char *pm_command_server_path(const pm_command_server *s);

const pm_msg *pm_command_call_request(const pm_command_call *call);
const char *pm_command_call_command(const pm_command_call *call);
/* The request's Params object, or NULL if it had none. */
const json_t *pm_command_call_params(const pm_command_call *call);
const pm_peer *pm_command_call_peer(const pm_command_call *call);
/* Sends the Response (in the request's encoding, echoing Command and Id) and closes the
 * connection. message may be NULL; data (may be NULL) is taken over. Returns 0 or a negative
 * code; the call is finished either way. */
int pm_command_call_reply(pm_command_call *call, const char *result, const char *message,
                          json_t *data);

/* ---- client ---------------------------------------------------------------------------- */

typedef struct pm_client_options {
  uint32_t connect_timeout_ms;  /* until a service accepts the connection; 0: default 3000 */
  uint32_t response_timeout_ms; /* from sending until the response; 0: default 180000 */
  size_t max_message;           /* 0: PM_MAX_MESSAGE_DEFAULT */
  long long expect_owner_uid;   /* who may serve the pipe, checked before anything is sent:
                                   0: root or our own uid (SO_PEERCRED); > 0: root or this
                                   uid; -1: anyone (no check). On Windows 0 (or > 0) means
                                   LocalSystem, an administrator, our own user or
                                   expect_owner_sid (the server process's token) */
  const char *expect_owner_sid; /* Windows: a SID string also trusted to serve; NULL: none;
                                   ignored on Unix */
} pm_client_options;

/* A Request with Command, and Id when id > 0, and Params when params is not NULL (taken). */
int pm_request_new(const char *command, int64_t id, json_t *params, pm_msg **out);

/* One call: connect to the pipe name (NULL: pm_pipe_default(PM_PIPE_COMMAND)), send request in
 * enc, receive the response, close. Blocking, with no event loop and no SIGPIPE, so it may be
 * used from any thread. Returns 0 and the Response, or
 * PM_ECONNTIMEOUT (no service accepted in time), PM_ETIMEDOUT (no response in time),
 * PM_ENOTAUTH (the pipe is served by a process of an unexpected user: nothing was sent),
 * PM_EIO / PM_EEOF (transport failure), PM_EPROTO (an answer that is not a Response),
 * PM_EMISMATCH (a Response naming another Command or Id than the request's: another request's
 * answer; one naming neither is taken), or a decode error for a malformed response. */
int pm_command_client_call(const char *name, const pm_client_options *opts,
                           const pm_msg *request,
                    pm_encoding enc, pm_msg **response);

/* The client-side result name (§3.2) for an error of pm_command_client_call: ConnectionTimeout,
 * Timeout or TransportError. */
const char *pm_client_result(int err);

#ifdef __cplusplus
}
#endif
#endif
