#ifndef PIPEMSG_CLIENT_H
#define PIPEMSG_CLIENT_H

/* The application API ("Core", docs/api.md): one object for both pipes, one typed function per
 * command of the contract (pipemsg/client_commands.h, generated), each with an asynchronous
 * form, and typed events. This header includes neither <uv.h> nor <jansson.h>. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_client pm_client;

/* ---- results ----------------------------------------------------------------------------- */

/* What a call came to. The service's results first (what its Response said), then the ones
 * decided here without an answer (PROTOCOL §3.2). */
typedef enum pm_result_code {
  PM_RC_OK = 0,
  PM_RC_BAD_REQUEST,             /* the service refused the request as malformed */
  PM_RC_TOO_MANY_REQUESTS,       /* the service is busy: try again later */
  PM_RC_SERVICE_NOT_INITIALIZED, /* the service is starting */
  PM_RC_ERROR,                   /* the command failed; message says why */
  PM_RC_OTHER,                   /* another Result from the service: see pm_result.name */
  PM_RC_CLIENT_SIDE = 100,       /* the codes below are decided by the client */
  PM_RC_CONNECTION_TIMEOUT = PM_RC_CLIENT_SIDE, /* no service accepted the connection in time */
  PM_RC_TIMEOUT,                 /* connected, but no answer in time */
  PM_RC_TRANSPORT_ERROR,         /* the connection failed, or the answer was malformed */
  PM_RC_TRANSPORT_NOT_AUTHORIZED, /* the pipe's owner is not the expected one (nothing was sent),
                                     or the service refused us (TransportNotAuthorized) */
  PM_RC_INVALID_ARGUMENT,        /* the call itself was wrong (nothing was sent) */
  PM_RC_CANCELED                 /* pm_client_call_cancel: an asynchronous call given up */
} pm_result_code;

/* Room for the Result's name and the message, NUL included; a longer message is cut. */
#define PM_RESULT_NAME_MAX 64
#define PM_RESULT_MESSAGE_MAX 512

typedef struct pm_result {
  pm_result_code code;
  bool from_service;                   /* the service answered: name and message are its own */
  int error;                           /* client side: the PM_E* cause (pipemsg/error.h); else 0 */
  char name[PM_RESULT_NAME_MAX];       /* the Result as on the wire: "Ok", "BadRequest", ...,
                                          or the client-side name ("ConnectionTimeout", ...) */
  char message[PM_RESULT_MESSAGE_MAX]; /* the service's Message, or why the client gave up;
                                          "" when none */
} pm_result;

#define pm_result_ok(r) ((r).code == PM_RC_OK)
/* True for the codes decided by the client (no Result came from the service). */
#define pm_result_client_side(r) (!(r).from_service)

/* "Ok", "BadRequest", ... "ConnectionTimeout", ...: the protocol's name of a code. */
const char *pm_result_code_name(pm_result_code code);

/* ---- options ----------------------------------------------------------------------------- */

/* Who runs the client: its I/O (asynchronous calls, the event pipe), its timers and the
 * callbacks. */
typedef enum pm_client_drive {
  /* A thread of the library (the default), started by pm_client_open with on_event set, else
   * by the first asynchronous call. Every callback runs on it, one at a time: a callback that
   * waits for another asynchronous call of the same client waits forever (a blocking
   * pm_client_call from a callback is fine: it runs on the calling thread). */
  PM_CLIENT_DRIVE_THREAD = 0,
  /* The application's loop, the way libpq and hiredis allow: it polls pm_client_fd() for
   * reading, with pm_client_timeout_ms() as the timeout, and calls pm_client_process(), which
   * does the I/O that is ready, runs the timers that are due and the callbacks, on the calling
   * thread. On Unix the library then runs no thread at all; on Windows one thread of the
   * library waits for the loop's completion port on the application's behalf (docs/api.md). */
  PM_CLIENT_DRIVE_APP
} pm_client_drive;

typedef enum pm_client_connection {
  PM_CLIENT_CONNECTED,    /* the event pipe's handshake completed */
  PM_CLIENT_DISCONNECTED, /* the session ended; reason says why */
  PM_CLIENT_RECONNECTING  /* a new attempt starts (after a backoff) */
} pm_client_connection;

/* Where the first event session starts. */
typedef enum pm_client_start {
  /* Everything the service has kept for its client (the default), or, with a cursor
   * (resume_epoch, resume_last_id), what follows it. */
  PM_CLIENT_START_RESUME = 0,
  /* Only events published once the first session is established (the first
   * PM_CLIENT_CONNECTED): what the service has queued then is discarded (its epoch is asked
   * with GetStats on the command pipe first). Later sessions resume as usual. */
  PM_CLIENT_START_NOW
} pm_client_start;

struct pm_client_event;
typedef void (*pm_client_event_cb)(pm_client *client, const struct pm_client_event *event,
                                   void *data);
typedef void (*pm_client_connection_cb)(pm_client *client, pm_client_connection state,
                                        const char *reason, void *data);

/* Every field may be left zero: a zero-initialised pm_client_config is valid and means the
 * defaults below (`pm_client_config cfg = {0};` then pm_client_open(&cfg, &client)). */
typedef struct pm_client_config {
  const char *command_pipe; /* NULL: $PIPEMSG_COMMAND_PIPE when set, else
                               PM_COMMAND_PIPE_DEFAULT; a name as pm_pipe_path takes it */
  const char *event_pipe;   /* NULL: $PIPEMSG_EVENT_PIPE when set, else PM_EVENT_PIPE_DEFAULT */
  uint32_t connect_timeout_ms;   /* until the service accepts a command; 0: 3000 */
  uint32_t response_timeout_ms;  /* from sending a command until its answer; 0: 180000 */
  uint32_t handshake_timeout_ms; /* event pipe: connect + handshake, after which the
                                    connection is dropped and a new one made; 0: 3000 */
  uint32_t reconnect_min_ms;     /* event pipe: first backoff; 0: 100 */
  uint32_t reconnect_max_ms;     /* event pipe: backoff ceiling; 0: 5000 */
  /* Who may serve the pipes, checked before anything is sent. NULL or "": the default, the
   * superuser (root; on Windows LocalSystem or an administrator) or our own user; "*": anyone.
   * Otherwise also trusted: on Unix a user name or a uid ("1000"), on Windows an account name
   * ("DOMAIN\\user") or a SID string ("S-1-5-..."). */
  const char *expect_owner;
  pm_client_drive drive;
  /* Events: the event pipe is used only when on_event is set. */
  pm_client_event_cb on_event;
  pm_client_connection_cb on_connection; /* may be NULL */
  bool confirm_later;  /* false: an event is confirmed when on_event returns; true: by
                          pm_client_confirm(), from any thread. An event left unconfirmed past
                          the service's acknowledgement timeout ends the session; the service
                          sends it again on the next, not delivered twice, and keeps it queued
                          until the application confirms it (a client closed before that
                          leaves it to the next client) */
  bool observe;        /* attach as an observer (PROTOCOL §5.11): every event published from
                          now on, none confirmed, none taken from the service's queue */
  pm_client_start start;
  int64_t resume_epoch;   /* a cursor from pm_client_cursor() of an earlier client: events up */
  int64_t resume_last_id; /* to resume_last_id of that epoch are not delivered again */
  const char *client_name; /* sent in the event handshake; may be NULL; copied */
  void *data;              /* passed to every callback */
} pm_client_config;

/* Makes a client. Nothing is connected for commands until a call (one connection per call,
 * PROTOCOL §4); with on_event set, the event pipe is attached (from the first pass of the loop)
 * and kept attached (with backoff) until pm_client_close(). No callback runs before
 * pm_client_open returns. config may be NULL (the defaults). Returns 0, or PM_EPIPENAME or
 * PM_ENAMETOOLONG (a pipe name), PM_EINVAL (another bad setting: expect_owner, drive, start),
 * PM_ENOMEM, or an error starting a thread. */
int pm_client_open(const pm_client_config *config, pm_client **out);
/* Runs no callback any more (pending asynchronous calls are dropped without their callback),
 * stops the library's thread, and frees the client. NULL is fine. From one of this client's
 * callbacks it only marks the client closed: no other callback of it runs, and the client is
 * freed once the callback has returned (by the library's thread, or before
 * pm_client_process() returns). With PM_CLIENT_DRIVE_APP call it on the thread that calls
 * pm_client_process(). */
void pm_client_close(pm_client *client);

/* ---- calls ------------------------------------------------------------------------------- */

/* Any command, for those the contract does not declare: params_json is a JSON object (or NULL:
 * no Params). On Ok *data_json (may be NULL) receives the answer's Data as JSON text, or NULL
 * when it had none; free it with pm_client_free(). Params that are not valid JSON (NaN, an
 * integer beyond 64 bits, an escaped NUL or lone surrogate) or cannot be a message's (nesting
 * deeper than PM_NESTING_MAX, a member name that is not a name) give InvalidArgument with the
 * reason, and nothing is sent. */
pm_result pm_client_call(pm_client *client, const char *command, const char *params_json,
                         char **data_json);
/* data_json is NULL unless the result is Ok, and lent for the callback only. */
typedef void (*pm_client_call_cb)(pm_client *client, const pm_result *result,
                                  const char *data_json, void *data);
/* Returns 0 and later calls cb once, or an error (PM_EINVAL: no client, command or cb;
 * PM_ENOMEM) and never calls it. Params pm_client_call refuses give cb InvalidArgument with
 * the same reason, and nothing is sent. */
int pm_client_call_async(pm_client *client, const char *command, const char *params_json,
                         pm_client_call_cb cb, void *data);
/* Cancels the asynchronous calls made with this data (pm_client_call_async or a typed
 * pm_client_*_async) that have not finished: one not yet sent is not sent; one in flight is
 * no longer waited for (its connection is closed), though a request already sent may still run
 * at the service. The calls after them go on without waiting. Each one's cb still runs exactly
 * once, later, on the client's loop: with PM_RC_CANCELED ("Canceled", error PM_ECANCELED), or
 * with its result when that came first. Thread-safe, and allowed from a callback. Returns how
 * many calls it canceled (0: none was pending with this data), or PM_EINVAL (no client). */
int pm_client_call_cancel(pm_client *client, void *data);
/* Frees text the client handed over (pm_client_call's data_json). */
void pm_client_free(void *p);

/* ---- being driven by the application's loop ---------------------------------------------- */

/* The descriptor to poll for reading (a file descriptor on Unix; on Windows a HANDLE to wait
 * for, cast to intptr_t). -1 unless drive is PM_CLIENT_DRIVE_APP. It stays the same for the
 * client's life. */
intptr_t pm_client_fd(pm_client *client);
/* How long the application may wait on pm_client_fd() before it must call
 * pm_client_process() anyway, in milliseconds: 0 at once (work is left over), -1 no deadline
 * (nothing is timed). Ask again before each wait: it changes with every call. A deadline
 * missed delays the client's timers (a handshake or call timeout, a reconnection); a loop
 * that stalls for seconds also misses the service's heartbeats, which ends the event session
 * (the client makes a new one). -1 unless drive is PM_CLIENT_DRIVE_APP. */
int pm_client_timeout_ms(pm_client *client);
/* Does the I/O that is ready, runs the timers that are due and the callbacks, on the calling
 * thread. Never waits for I/O. Returns how many callbacks of the application ran, or
 * PM_EINVAL unless drive is PM_CLIENT_DRIVE_APP (or from one of the client's callbacks).
 * The synchronous calls (pm_client_call and the typed functions) still block the calling
 * thread until their answer, like libpq's PQexec: from a loop, use the asynchronous forms. */
int pm_client_process(pm_client *client);

/* ---- events ------------------------------------------------------------------------------ */

/* Confirms an event delivered with confirm_later. Thread-safe. PM_EINVAL when confirm_later is
 * off or there is no event pipe. The id is taken in the epoch current when it is applied, so an
 * old epoch's event confirmed late confirms the new epoch's event with the same id: prefer
 * pm_client_confirm_epoch. */
int pm_client_confirm(pm_client *client, int64_t id);
/* Confirms the event of that epoch (pm_client_event.epoch) and id; nothing if the client has
 * since met a new epoch (the restart decided that event's fate). Thread-safe. PM_EINVAL as
 * pm_client_confirm, or when epoch < 0. */
int pm_client_confirm_epoch(pm_client *client, int64_t epoch, int64_t id);
/* The resume cursor: the service's epoch and the highest event id whose on_event has returned,
 * less one while that event waits for pm_client_confirm (confirm_later), so a client resuming
 * from it is sent that event again (0 and 0 before the first session). Keep it for
 * resume_epoch / resume_last_id. Thread-safe. */
void pm_client_cursor(pm_client *client, int64_t *epoch, int64_t *last_id);

#ifdef __cplusplus
}
#endif

#include "pipemsg/client_commands.h"

#endif
