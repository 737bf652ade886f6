#ifndef PIPEMSG_EVENT_H
#define PIPEMSG_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pipemsg/message.h"
#include "pipemsg/pipe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Event pipe (PROTOCOL §5): one attached client, handshakes, acknowledged delivery. */

#define PM_HANDSHAKE_TIMEOUT_MS_DEFAULT 1000u
#define PM_HEARTBEAT_MS_DEFAULT 1000u
#define PM_ACK_TIMEOUT_MS_DEFAULT 1000u
#define PM_EVENT_WRITE_TIMEOUT_MS_DEFAULT 3000u
#define PM_CLIENT_HANDSHAKE_TIMEOUT_MS_DEFAULT 3000u
#define PM_EVENT_QUEUE_MAX_EVENTS_DEFAULT 10000u
#define PM_EVENT_QUEUE_MAX_BYTES_DEFAULT ((size_t)64 * 1024 * 1024)
#define PM_RECONNECT_MIN_MS_DEFAULT 100u
#define PM_RECONNECT_MAX_MS_DEFAULT 5000u
/* Bytes the event client may have waiting to be written (its confirmations, its answers to
 * heartbeats) before it takes the service for one that does not read and disconnects. A
 * service that keeps to the protocol leaves a few answers at most (it waits for each
 * confirmation before the next event). An answer's write request costs some ten times its
 * bytes, so this keeps a connection's queue to about 3 MiB. */
#define PM_EVENT_CLIENT_MAX_UNSENT_DEFAULT ((size_t)256 * 1024)
/* Observers attached at once (§5.11); the next one is told Busy. */
#define PM_EVENT_MAX_OBSERVERS_DEFAULT 8u
/* Bytes an observer may leave unread before it is cut off (TooSlow, §5.11). */
#define PM_EVENT_OBSERVER_MAX_UNSENT_DEFAULT ((size_t)4 * 1024 * 1024)

/* The handshake's Mode of an observer (§5.11). */
#define PM_MODE_OBSERVE "Observe"

/* The transient type every server knows (§5.3.4). */
#define PM_EVENT_TRAFFIC_CHANGED "TrafficChanged"
/* The durable type that reports a gap after queue overflow (§5.3.5). */
#define PM_EVENT_EVENTS_LOST "EventsLost"

/* Disconnect reasons the server sends. */
#define PM_DISCONNECT_BUSY "Busy"
#define PM_DISCONNECT_HANDSHAKE_TIMEOUT "HandshakeTimeout"
#define PM_DISCONNECT_HEARTBEAT_TIMEOUT "HeartbeatTimeout"
#define PM_DISCONNECT_ACK_TIMEOUT "AckTimeout"
#define PM_DISCONNECT_PROTOCOL_ERROR "ProtocolError"
#define PM_DISCONNECT_NOT_AUTHORIZED "NotAuthorized"
#define PM_DISCONNECT_SHUTDOWN "ServiceStopping"
#define PM_DISCONNECT_TOO_SLOW "TooSlow"

/* ---- server ---------------------------------------------------------------------------- */

typedef struct pm_event_server pm_event_server;

/* Durable state for an event server: the epoch, the id counter and every queued durable event,
 * in an SQLite database. Open it before starting the server; close it after the server is
 * freed. One server per store. pm_event_store_open returns PM_EACCES for a file this process may
 * only read, PM_EIO when it cannot be opened (a symlink is never followed) or is not a store. */
typedef struct pm_event_store pm_event_store;
int pm_event_store_open(const char *path, pm_event_store **out);
void pm_event_store_close(pm_event_store *st);

typedef struct pm_event_stats {
  uint64_t published;          /* events accepted by pm_event_server_publish */
  uint64_t delivered;          /* confirmed by a client */
  uint64_t redelivered;        /* sent again after an earlier attempt failed */
  uint64_t dropped_transient;  /* transient events dropped: no client, ack timeout, replaced */
  uint64_t lost_overflow;      /* durable events dropped because the queue was full */
  uint64_t resumed_skipped;    /* queued events discarded because a client had them (resume) */
  uint64_t heartbeat_failures; /* secondary handshakes not answered in time */
  uint64_t handshake_failures; /* connections without a valid handshake in time */
  uint64_t ack_failures;       /* durable events whose confirmation did not come */
  uint64_t busy_rejections;    /* connections refused because a client was attached */
  uint64_t stale_acks;         /* confirmations for an id not in flight */
  uint64_t sessions;           /* client handshakes completed (observers: observer_sessions) */
  uint64_t dropped_unencodable; /* queued events dropped because a session could not encode
                                   them (read back from a store; see pm_event_server_publish) */
  uint64_t store_errors;       /* store transactions that failed (publishes refused included) */
  uint64_t store_skipped;      /* rows of the store skipped at start because they did not
                                  validate (removed from the store) */
  uint64_t observer_sessions;  /* observer handshakes completed (not in sessions) */
  uint64_t slow_observers;     /* observers cut off for leaving too much unread (TooSlow) */
  uint64_t observers;          /* observers attached now */
  uint64_t queued;             /* events waiting now */
  int attached;                /* a client is attached now */
} pm_event_stats;

/* Something worth a log line: a session starting or ending, a refusal, a dropped event, and
 * (for debug logs) each event written and confirmed. */
typedef struct pm_event_log {
  pm_peer peer;
  int observer;       /* the session is an observer, or asked to be one ("busy") (§5.11) */
  const char *what;   /* "attached", "detached", "busy", "refused", "dropped", "sent",
                         "confirmed", "new epoch" (the client's cursor was past every id
                         handed out: protocol.md §5, item 8), "listener" (Windows: no
                         session, peer.pid -1; the pipe's listener cannot serve as it should,
                         reason says why) */
  const char *reason; /* the Disconnect reason or cause; NULL for "attached", "sent" and
                         "confirmed" */
  int64_t event_id;   /* the event's id for "sent" and "confirmed"; else 0 */
  uint64_t duration_ms;
} pm_event_log;
typedef void (*pm_event_server_log_cb)(const pm_event_log *entry, void *data);
/* 0 lets the peer in; anything else sends Disconnect{NotAuthorized} and closes. */
typedef int (*pm_event_server_authorize_cb)(const pm_peer *peer, void *data);

typedef struct pm_event_server_options {
  size_t max_message;            /* 0: PM_MAX_MESSAGE_DEFAULT */
  uint32_t handshake_timeout_ms; /* client handshake after connecting; 0: 1000 */
  uint32_t heartbeat_ms;         /* idle time before a secondary handshake; 0: 1000 */
  uint32_t ack_timeout_ms;       /* for confirmations (from the end of the event's write) and
                                    handshake answers; 0: 1000 */
  uint32_t write_timeout_ms;     /* writing one event to the client; 0: 3000 */
  size_t queue_max_events;       /* 0: 10000 */
  size_t queue_max_bytes;        /* 0: 64 MiB */
  unsigned max_observers;        /* observers at once, of one user at most half (rounded
                                    up); 0: 8 */
  size_t observer_max_unsent;    /* bytes an observer may leave unread; 0: 4 MiB */
  const char *const *transient;  /* NULL-terminated extra transient types, or NULL */
  const char *service_name;      /* sent in the handshake; NULL: "pipemsg" */
  int64_t epoch;                 /* 0: a random one */
  unsigned socket_mode;          /* Unix: permissions of the socket file; 0:
                                    PM_SOCKET_MODE_DEFAULT */
  unsigned socket_gid;           /* Unix: group of the socket file; 0: left as created */
  int listen_fd;                 /* Unix: > 0: serve this listening socket (socket
                                    activation); Windows: must be 0 */
  const char *pipe_sddl;         /* Windows: as in pm_command_server_options */
  pm_event_store *store;         /* NULL: the queue lives in memory; else it survives restarts
                                    and crashes, and so does the epoch (not owned) */
  pm_event_server_authorize_cb authorize; /* NULL: everyone */
  pm_event_server_log_cb log;             /* NULL: silent */
  void *data;
} pm_event_server_options;

/* Binds name (see pm_pipe_path) and serves on loop. As with pm_command_server_start, a peer that
 * goes away while it is written to never raises SIGPIPE in the application (docs/api.md,
 * "SIGPIPE"). On failure, as there, run the loop before uv_loop_close. */
int pm_event_server_start(uv_loop_t *loop, const char *name, const pm_event_server_options *opts,
                          pm_event_server **out);
/* Closes the pipe (a client gets Disconnect{ServiceStopping}), removes the socket file; an
 * event in flight stays queued. The server is freed once its handles have closed. */
void pm_event_server_close(pm_event_server *s, void (*cb)(void *arg), void *arg);

/* Publishes an event: thread-safe, never waits for the client. data (may be NULL) is taken,
 * also on failure. *id (may be NULL) receives the event's id. Returns 0, or:
 *  - PM_EINVAL: type is not a name (pm_name_valid) or is EventsLost, data is not an object, or
 *    the event cannot be carried in both encodings (a string with a control character other
 *    than tab, newline and carriage return, U+FFFE or U+FFFF; a member name that is not a
 *    name; NaN or an infinite real);
 *  - PM_EMSGSIZE: encoded in JSON or XML, the event would exceed max_message or the node
 *    budget of a message (PM_NODES_MAX), so no peer could decode it;
 *  - PM_EIO: with a store, the event (or the id reservation it needed) could not be written,
 *    e.g. the disk is full. The event is not published: not queued, not delivered, and its id
 *    is never handed out. With a store, 0 means the event is on disk (a durable one; transient
 *    events are never stored);
 *  - PM_ENOMEM;
 *  - PM_ECANCELED: pm_event_server_close has been called. Publishers on other threads must
 *    stop before the server is freed (its close callback). */
int pm_event_server_publish(pm_event_server *s, const char *type, json_t *data, int64_t *id);
/* Thread-safe snapshot of the counters. */
void pm_event_server_stats(pm_event_server *s, pm_event_stats *out);
/* The current epoch (PROTOCOL §3). Thread-safe: a client resuming with a cursor past every id
 * handed out makes it change (protocol.md §5, item 8). */
int64_t pm_event_server_epoch(const pm_event_server *s);
const char *pm_event_server_path(const pm_event_server *s);

/* ---- client ("Core") --------------------------------------------------------------------- */

typedef struct pm_event_client pm_event_client;

typedef struct pm_event {
  int64_t id;
  int64_t epoch;
  const char *type;   /* never empty */
  const char *time;   /* an RFC 3339 time, or NULL */
  const json_t *data; /* an object, or NULL */
  pm_encoding encoding;
} pm_event;

typedef enum {
  PM_EVENT_CLIENT_CONNECTING,
  PM_EVENT_CLIENT_CONNECTED,
  PM_EVENT_CLIENT_DISCONNECTED,
  PM_EVENT_CLIENT_STOPPED,
  PM_EVENT_CLIENT_STATE_MAX
} pm_event_client_state;

const char *pm_event_client_state_name(pm_event_client_state state);

/* Called on the client's own thread. The event is confirmed when the callback returns (an
 * observer confirms nothing). */
typedef void (*pm_event_client_event_cb)(const pm_event *ev, void *data);
/* The same, for an application that may fail to keep an event (its output closed, its disk
 * full): 0 takes it (confirmed as above); PM_ENOMEM (not now) leaves it unconfirmed and
 * uncounted in the cursor, and the client makes a new connection after the backoff, on which
 * the service sends it again; anything else leaves it unconfirmed, so the service keeps it
 * queued for the next client, and the client closes the connection and makes no new one until
 * stopped (on_state: disconnected, PM_EVENT_CLIENT_NOT_TAKEN). */
typedef int (*pm_event_client_take_cb)(const pm_event *ev, void *data);

/* Reasons on_state gives for causes the client found itself; the others are the service's
 * Disconnect reasons or a description. A command pipe answers a handshake with a Response
 * (BadRequest): NOT_EVENT_PIPE; CLOSED_EARLY may mean the same, or a service stopping. */
#define PM_EVENT_CLIENT_NOT_EVENT_PIPE                                                          \
  "not an event pipe: it answered the handshake with a Response"
#define PM_EVENT_CLIENT_CLOSED_EARLY                                                            \
  "service closed the connection before answering the handshake"
#define PM_EVENT_CLIENT_NOT_TAKEN "the application did not take an event"
/* The pipe's owner is not the one expect_owner_uid / expect_owner_sid trusts: nothing was sent.
 * The client keeps trying (the right service may come back), an application may stop. */
#define PM_EVENT_CLIENT_NOT_TRUSTED                                                             \
  "service not trusted: the pipe belongs to an unexpected user"
/* The start of the reason when the service leaves more than max_unsent bytes unread; the
 * count and the bound follow. */
#define PM_EVENT_CLIENT_NOT_READING "the service does not read what the client sends"
/* reason: why a connection ended (a Disconnect reason from the service, or a local cause). */
typedef void (*pm_event_client_state_cb)(pm_event_client_state state, const char *reason,
                                         void *data);

typedef struct pm_event_client_options {
  uint32_t handshake_timeout_ms; /* connect + handshake; 0: 3000 */
  uint32_t heartbeat_ms;         /* until the service says otherwise; 0: 1000 */
  uint32_t reconnect_min_ms;     /* first backoff; 0: 100 */
  uint32_t reconnect_max_ms;     /* backoff ceiling; 0: 5000 */
  size_t max_message;            /* 0: PM_MAX_MESSAGE_DEFAULT */
  size_t max_unsent;             /* bytes left unwritten before the connection is dropped
                                    (PM_EVENT_CLIENT_NOT_READING); 0: 256 KiB */
  pm_encoding encoding;          /* 0: JSON */
  const char *client_name;       /* sent in the handshake; may be NULL; copied, as is
                                    expect_owner_sid */
  long long expect_owner_uid;    /* as in pm_client_options: 0 root or our uid, > 0 root or
                                    this uid, -1 anyone; an unexpected owner is dropped
                                    before anything is sent ("service not trusted") */
  const char *expect_owner_sid;  /* Windows: as in pm_client_options */
  int64_t resume_epoch;          /* a cursor kept from an earlier client (pm_event_client_cursor):
                                    events up to resume_last_id of that epoch are not wanted */
  int64_t resume_last_id;
  bool observe;                  /* attach as an observer (§5.11): sent every event published
                                    from now on, confirming none, taking none from the queue;
                                    the client slot stays free; no resume cursor is sent */
  bool confirm_later;            /* events are confirmed by pm_event_client_confirm(), not when
                                    on_event returns. Until then an event stays queued: held past
                                    the service's acknowledgement timeout, it ends the session,
                                    the resume cursor leaves it out, and the copy sent again is
                                    neither delivered twice nor confirmed by the client */
  /* Start from now: until a session has been established, each attempt first asks
   * current_epoch (blocking, on the client's thread) for the service's epoch and sends it with
   * the highest possible LastEventId, so the service discards what it has queued (§5.4).
   * 0 from current_epoch: attach without a cursor. Ignored with a resume cursor. */
  int64_t (*current_epoch)(void *data);
  pm_event_client_event_cb on_event; /* on_event or on_take: exactly one */
  pm_event_client_take_cb on_take;
  pm_event_client_state_cb on_state; /* may be NULL */
  void *data;
} pm_event_client_options;

/* Starts a thread that connects to the event pipe name (NULL: pm_pipe_default(PM_PIPE_EVENT))
 * and keeps reconnecting until stopped. */
int pm_event_client_start(const char *name, const pm_event_client_options *opts,
                          pm_event_client **out);
/* Stops the thread (from any thread but the client's own) and frees the client. */
void pm_event_client_stop(pm_event_client *c);
/* The resume cursor: the service's epoch and the highest event id handed to the application in
 * it, less one while the application holds that event unconfirmed (confirm_later), so it comes
 * back if never confirmed (0 and 0 before the first session). Thread-safe. Keep it across
 * clients (or restarts of the application) in resume_epoch / resume_last_id so nothing
 * delivered and kept comes back. */
void pm_event_client_cursor(pm_event_client *c, int64_t *epoch, int64_t *last_id);
/* Confirms event id (with confirm_later), from any thread: sent on the client's thread if the
 * session is still up; else the next session's resume cursor covers it (or the copy the service
 * sends again is confirmed). The id is taken as of the epoch current when the client's thread
 * applies it: an event of an earlier epoch confirmed late would confirm the new epoch's event
 * with the same id. Prefer pm_event_client_confirm_epoch. 0 or PM_ENOMEM. */
int pm_event_client_confirm(pm_event_client *c, int64_t id);
/* As pm_event_client_confirm, for the event of that epoch (pm_event.epoch) only: if the client
 * has since met a new epoch (the service restarted without its store), nothing is confirmed,
 * as that event's fate was decided by the restart and its id now names another event.
 * 0, PM_EINVAL (epoch < 0) or PM_ENOMEM. */
int pm_event_client_confirm_epoch(pm_event_client *c, int64_t epoch, int64_t id);

#ifdef __cplusplus
}
#endif
#endif
