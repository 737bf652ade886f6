#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "client/client_internal.h"
#include "command/command_internal.h"
#include "core/json_parse.h"
#include "core/message_internal.h"
#include "event/event_client_internal.h"
#include "internal.h"
#include "pipemsg/command.h"
#include "pipemsg/error.h"
#include "pipemsg/event.h"
#include "pipemsg/message.h"
#include "pipemsg/pipe.h"
#include "transport/transport.h"

/* Everything asynchronous (calls, the event session, timers) runs on the client's own loop:
 * a thread of the library runs it (PM_CLIENT_DRIVE_THREAD), or the application does, one
 * bounded pass per pm_client_process() (PM_CLIENT_DRIVE_APP). Callbacks run on whichever
 * thread runs the loop. */

/* pm_client_process runs loop passes while they run callbacks (PM__LOOP_ACTIVITY), at most
 * this many; then pm_client_timeout_ms answers 0 so that the application comes back soon. */
#define PROCESS_PASSES_MAX 16

/* An asynchronous call, submitted from any thread; run on the loop one at a time, in order. */
typedef struct call {
  struct call *next;
  const pm__cl_command *cmd; /* NULL: pm_client_call_async */
  char *command;
  json_t *params;
  pm__client_fn fn;
  void *data;
  void *answer; /* typed: cmd->data's struct, taken when the call is made */
  char *refused; /* why its Params were refused when it was made: answered without sending */
  bool canceled; /* by pm_client_call_cancel; under the client's lock */
} call;

typedef struct call_list {
  call *head, *tail;
} call_list;

struct pm_client {
  pm_client_config cfg;
  char command_pipe[PM_PIPE_PATH_MAX + 1];
  char event_pipe[PM_PIPE_PATH_MAX + 1];
  char owner_sid[PM_PEER_SID_MAX];
  pm_client_options call_opts;
  uv_loop_t loop;
  unsigned activity;    /* the loop's PM__LOOP_ACTIVITY counter */
  uv_async_t wake;      /* calls were submitted, or (drive thread) the loop thread must end */
  uv_mutex_t lock;      /* submitted, ending, thread_started; the loop changes waiting and
                           running under it too, for pm_client_call_cancel to look */
  call_list submitted;  /* by any thread, not yet seen by the loop */
  bool ending;
  bool thread_started;
  uv_thread_t thread;
  call_list waiting;    /* the loop's: after running */
  call *running;
  pm__call *in_flight;  /* running's command call */
  pm__call *probe;      /* the from-now epoch probe */
  pm_event_client *events;
  bool closing;         /* no callback of the application runs any more */
  bool close_deferred;  /* pm_client_close was called from a callback */
  bool more;            /* drive app: the last process stopped before the loop settled */
  int ran;              /* application callbacks run */
  pm__client_driver *driver; /* drive app */
  bool was_connected;   /* a session ended: the next attempt is a reconnection */
  pm_client *running_outer; /* while its loop runs: running_client before it on this thread */
};

/* The client whose loop this thread is running now, to tell a pm_client_close from one of its
 * callbacks. A callback may run another client's loop (pm_client_process), so each running
 * client links to the one it interrupted: every client on that chain has a callback on the
 * stack. */
static _Thread_local pm_client *running_client;

/* Whether c's loop is on this thread's stack (c's callback, or one nested in it). */
static bool running_here(const pm_client *c) {
  for (const pm_client *r = running_client; r != NULL; r = r->running_outer)
    if (r == c)
      return true;
  return false;
}

static const char *const rc_names[] = {"Ok", "BadRequest", "TooManyRequests",
                                       "ServiceNotInitialized", "Error"};
static const char *const client_rc_names[] = {"ConnectionTimeout", "Timeout", "TransportError",
                                              "TransportNotAuthorized", "InvalidArgument",
                                              "Canceled"};

const char *pm_result_code_name(pm_result_code code) {
  if ((unsigned)code < sizeof(rc_names) / sizeof(rc_names[0]))
    return rc_names[code];
  if (code >= PM_RC_CLIENT_SIDE &&
      (unsigned)(code - PM_RC_CLIENT_SIDE) < sizeof(client_rc_names) / sizeof(client_rc_names[0]))
    return client_rc_names[code - PM_RC_CLIENT_SIDE];
  return "Other";
}

/* Text cut to fit ends on a whole UTF-8 character: a cut one would reach the application as
 * invalid UTF-8 (the bindings show a replacement character). The last sequence starts at most
 * three bytes back. */
static void utf8_cut(char *s) {
  size_t n = strlen(s), start = n;
  while (start > 0 && n - start < 3 && ((unsigned char)s[start - 1] & 0xC0) == 0x80)
    start--;
  if (start > 0 && (unsigned char)s[start - 1] >= 0xC0 &&
      pm__utf8_seq((const uint8_t *)s + start - 1, (const uint8_t *)s + n) == 0)
    s[start - 1] = '\0';
}

static void result_set(pm_result *r, pm_result_code code, bool from_service, const char *name,
                       const char *message) {
  r->code = code;
  r->from_service = from_service;
  snprintf(r->name, sizeof(r->name), "%s", name != NULL ? name : pm_result_code_name(code));
  snprintf(r->message, sizeof(r->message), "%s", message != NULL ? message : "");
  utf8_cut(r->name);
  utf8_cut(r->message);
}

static pm_result client_side(pm_result_code code, int err, const char *message) {
  pm_result r;
  memset(&r, 0, sizeof(r));
  result_set(&r, code, false, NULL, message);
  r.error = err;
  return r;
}

static pm_result from_error(int err, const char *why) {
  switch (err) {
  case PM_ECONNTIMEOUT:
    return client_side(PM_RC_CONNECTION_TIMEOUT, err, pm_strerror(err));
  case PM_ETIMEDOUT:
    return client_side(PM_RC_TIMEOUT, err, pm_strerror(err));
  case PM_ENOTAUTH:
    return client_side(PM_RC_TRANSPORT_NOT_AUTHORIZED, err,
                       "the pipe is served by an unexpected user: nothing was sent");
  default:
    return client_side(PM_RC_TRANSPORT_ERROR, err, why != NULL && why[0] ? why : pm_strerror(err));
  }
}

static pm_result from_response(const pm_msg *response) {
  const char *name = NULL, *message = NULL;
  pm_result r;
  pm_result_code code = PM_RC_OTHER;
  memset(&r, 0, sizeof(r));
  if (pm_msg_get_string(response, "Result", &name) < 0)
    return client_side(PM_RC_TRANSPORT_ERROR, PM_EPROTO, "the answer has no Result");
  pm_msg_get_string(response, "Message", &message);
  for (size_t i = 0; i < sizeof(rc_names) / sizeof(rc_names[0]); i++)
    if (strcmp(name, rc_names[i]) == 0)
      code = (pm_result_code)i;
  if (strcmp(name, PM_RESULT_NOT_AUTHORIZED) == 0)
    code = PM_RC_TRANSPORT_NOT_AUTHORIZED;
  result_set(&r, code, true, name, message);
  return r;
}

static const json_t *response_data(const pm_msg *response) {
  return json_object_get(pm_msg_fields(response), "Data");
}

/* The result of a round trip (status, and the response when 0). */
static pm_result round_trip_result(int status, const pm_msg *response) {
  return status < 0 ? from_error(status, NULL) : from_response(response);
}

/* A typed answer: decoded into answer (zeroed unless Ok) when the command has Data. */
static pm_result typed_answer(const pm__cl_command *cmd, pm_result r, const pm_msg *response,
                              void *answer) {
  char why[PM_REASON_MAX] = "";
  if (cmd->data != NULL && answer != NULL) {
    memset(answer, 0, cmd->data->size);
    if (r.code == PM_RC_OK) {
      int rc = pm__client_decode(cmd->data, response_data(response), answer, why);
      if (rc < 0)
        r = client_side(PM_RC_TRANSPORT_ERROR, rc, why[0] ? why : pm_strerror(rc));
    }
  }
  return r;
}

/* A generic answer: *data_json gets the Data as text (or NULL). */
static pm_result generic_answer(pm_result r, const pm_msg *response, char **data_json) {
  const json_t *data = r.code == PM_RC_OK ? response_data(response) : NULL;
  *data_json = NULL;
  if (data != NULL) {
    char *text = json_dumps(data, JSON_COMPACT);
    *data_json = text != NULL ? pm__strdup(text) : NULL;
    free(text);
    if (*data_json == NULL)
      r = client_side(PM_RC_TRANSPORT_ERROR, PM_ENOMEM, pm_strerror(PM_ENOMEM));
  }
  return r;
}

static pm_result request_failed(int rc) {
  return client_side(PM_RC_INVALID_ARGUMENT, rc, "not a command name, or out of memory");
}

/* One blocking round trip; params is taken. On Ok *response (the caller frees it) holds the
 * answer. */
static pm_result round_trip(pm_client *c, const char *command, json_t *params,
                            pm_msg **response) {
  pm_msg *request = NULL;
  int rc;
  *response = NULL;
  rc = pm_request_new(command, 0, params, &request);
  if (rc < 0)
    return request_failed(rc);
  rc = pm_command_client_call(c->command_pipe, &c->call_opts, request, PM_ENC_JSON, response);
  pm_msg_free(request);
  return round_trip_result(rc, *response);
}

/* The parser's own words go to why (when not NULL): "not a JSON object" alone would hide which
 * of NaN, a NUL, a lone surrogate or an integer beyond 64 bits the caller's JSON library let
 * through. */
static int parse_params(const char *params_json, json_t **out, char *why) {
  json_error_t err;
  *out = NULL;
  if (params_json == NULL)
    return 0;
  *out = json_loads(params_json, JSON_REJECT_DUPLICATES, &err);
  if (json_is_object(*out))
    return 0;
  if (*out == NULL)
    pm__reason(why, PM_EINVAL, "params_json is not valid JSON: %s at byte %d", err.text,
               err.position);
  else
    pm__reason(why, PM_EINVAL, "params_json is not a JSON object");
  json_decref(*out);
  *out = NULL;
  return PM_EINVAL;
}

pm_result pm__client_typed_call(pm_client *c, const pm__cl_command *cmd, const void *params,
                                void *answer) {
  json_t *p = NULL;
  pm_msg *response = NULL;
  char why[PM_REASON_MAX] = "";
  pm_result r;
  int rc;
  if (answer != NULL && cmd->data != NULL)
    memset(answer, 0, cmd->data->size);
  if (c == NULL)
    return client_side(PM_RC_INVALID_ARGUMENT, PM_EINVAL, "no client");
  rc = cmd->params != NULL ? pm__client_encode(cmd->params, params, &p, why) : 0;
  if (rc < 0)
    return client_side(PM_RC_INVALID_ARGUMENT, rc, why);
  r = round_trip(c, cmd->name, p, &response);
  r = typed_answer(cmd, r, response, answer);
  pm_msg_free(response);
  return r;
}

/* r, or InvalidArgument with the reason when params cannot be a message's Params. */
static pm_result explain_params(pm_result r, json_t *params) {
  char why[PM_REASON_MAX] = "";
  json_t *fields = json_pack("{s:O}", "Params", params);
  if (fields != NULL && pm__tree_check(fields, why) < 0)
    r = client_side(PM_RC_INVALID_ARGUMENT, PM_EINVAL, why);
  json_decref(fields);
  return r;
}

pm_result pm_client_call(pm_client *c, const char *command, const char *params_json,
                         char **data_json) {
  char why[PM_REASON_MAX] = "";
  json_t *params;
  pm_msg *response = NULL;
  char *text = NULL;
  pm_result r;
  if (data_json != NULL)
    *data_json = NULL;
  if (c == NULL || command == NULL)
    return client_side(PM_RC_INVALID_ARGUMENT, PM_EINVAL, "no client or no command");
  if (parse_params(params_json, &params, why) < 0)
    return client_side(PM_RC_INVALID_ARGUMENT, PM_EINVAL, why);
  /* Kept to say why, should the request not encode: valid JSON may still be no message
   * (nesting deeper than PM_NESTING_MAX, a member name that is not a name). Checked only then,
   * so a call that encodes pays nothing for it. */
  json_incref(params);
  r = round_trip(c, command, params, &response);
  if (r.error == PM_EINVAL && params != NULL)
    r = explain_params(r, params);
  json_decref(params);
  r = generic_answer(r, response, &text);
  pm_msg_free(response);
  if (data_json != NULL)
    *data_json = text;
  else
    pm__free(text);
  return r;
}

void pm_client_free(void *p) { pm__free(p); }

/* ---- asynchronous calls ------------------------------------------------------------------ */

static void list_push(call_list *l, call *j) {
  j->next = NULL;
  if (l->tail != NULL)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
}

static call *list_pop(call_list *l) {
  call *j = l->head;
  if (j != NULL) {
    l->head = j->next;
    if (l->head == NULL)
      l->tail = NULL;
  }
  return j;
}

static void list_append(call_list *to, call_list *from) {
  if (from->head == NULL)
    return;
  if (to->tail != NULL)
    to->tail->next = from->head;
  else
    to->head = from->head;
  to->tail = from->tail;
  from->head = from->tail = NULL;
}

static void call_free(call *j) {
  if (j == NULL)
    return;
  if (j->answer != NULL)
    pm__client_typed_free(j->cmd->data, j->answer);
  pm__free(j->answer);
  pm__free(j->command);
  pm__free(j->refused);
  json_decref(j->params);
  pm__free(j);
}

static void list_free(call_list *l) {
  call *j;
  while ((j = list_pop(l)) != NULL)
    call_free(j);
}

/* Runs the application's callback for a finished call; response may be NULL. */
static void complete(pm_client *c, call *j, pm_result r, const pm_msg *response) {
  char *text = NULL;
  if (j->cmd != NULL)
    r = typed_answer(j->cmd, r, response, j->answer);
  else
    r = generic_answer(r, response, &text);
  if (!c->closing) {
    c->ran++;
    if (j->cmd != NULL)
      j->cmd->deliver(c, &r, j->answer, j->fn, j->data);
    else
      ((pm_client_call_cb)j->fn)(c, &r, text, j->data);
  }
  pm__free(text);
  call_free(j);
}

static pm_result canceled(void) {
  return client_side(PM_RC_CANCELED, PM_ECANCELED,
                     "canceled (pm_client_call_cancel); a request already sent may still run "
                     "at the service");
}

static void set_running(pm_client *c, call *j) {
  uv_mutex_lock(&c->lock);
  c->running = j;
  uv_mutex_unlock(&c->lock);
}

/* Takes the next waiting call, as the running one unless it was canceled, in one step under
 * the lock: pm_client_call_cancel finds a call in one place or the other. */
static call *take_waiting(pm_client *c, bool *was_canceled) {
  call *j;
  uv_mutex_lock(&c->lock);
  j = list_pop(&c->waiting);
  *was_canceled = j->canceled;
  if (!j->canceled)
    c->running = j;
  uv_mutex_unlock(&c->lock);
  return j;
}

/* Moves the canceled calls of l to out; under the lock. */
static void take_canceled(call_list *l, call_list *out) {
  call_list kept = {NULL, NULL};
  call *j;
  while ((j = list_pop(l)) != NULL)
    list_push(j->canceled ? out : &kept, j);
  *l = kept;
}

static void next_call(pm_client *c);

static void on_call_done(void *data, int status, pm_msg *response) {
  pm_client *c = data;
  call *j = c->running;
  bool was_canceled;
  uv_mutex_lock(&c->lock);
  c->running = NULL;
  was_canceled = j->canceled;
  uv_mutex_unlock(&c->lock);
  c->in_flight = NULL;
  if (status != PM_ECANCELED)
    complete(c, j, round_trip_result(status, response), response);
  else if (was_canceled)
    complete(c, j, canceled(), NULL);
  else
    call_free(j); /* the client is closing */
  pm_msg_free(response);
  next_call(c);
}

/* Starts the next waiting call unless one is running. */
static void next_call(pm_client *c) {
  while (c->running == NULL && !c->closing && c->waiting.head != NULL) {
    bool was_canceled;
    call *j = take_waiting(c, &was_canceled);
    const char *name = j->cmd != NULL ? j->cmd->name : j->command;
    json_t *params = j->params;
    pm_msg *request = NULL;
    pm_result r;
    int rc;
    if (was_canceled) {
      complete(c, j, canceled(), NULL);
      continue;
    }
    if (j->refused != NULL) {
      set_running(c, NULL);
      complete(c, j, client_side(PM_RC_INVALID_ARGUMENT, PM_EINVAL, j->refused), NULL);
      continue;
    }
    /* Kept to say why, as pm_client_call does, should the request not encode (when it is
     * made, or when it is written). */
    json_incref(params);
    rc = pm_request_new(name, 0, j->params, &request);
    j->params = NULL; /* taken */
    if (rc < 0) {
      r = request_failed(rc);
    } else {
      rc = pm__call_start(&c->loop, c->command_pipe, &c->call_opts, request, PM_ENC_JSON,
                          on_call_done, c, &c->in_flight);
      pm_msg_free(request);
      if (rc < 0)
        r = from_error(rc, NULL);
    }
    if (rc < 0) {
      set_running(c, NULL);
      if (rc == PM_EINVAL && params != NULL)
        r = explain_params(r, params);
      complete(c, j, r, NULL);
    }
    json_decref(params);
  }
}

static void loop_thread(void *arg) {
  pm_client *c = arg;
  pm__block_sigpipe();
  c->running_outer = NULL;
  running_client = c;
  uv_run(&c->loop, UV_RUN_DEFAULT);
  running_client = NULL;
  if (c->close_deferred) {
    /* pm_client_close from a callback: nobody will join this thread. */
    pm__client_thread_detach();
    pm_client_close(c);
  }
}

static int start_thread(pm_client *c) {
  int rc = 0;
  if (!c->thread_started) {
    rc = pm__uv_error(uv_thread_create(&c->thread, loop_thread, c));
    c->thread_started = rc == 0;
  }
  return rc;
}

static void on_wake(uv_async_t *a) {
  pm_client *c = a->data;
  call_list dropped = {NULL, NULL};
  bool ending, stop_running;
  call *j;
  PM__LOOP_ACTIVITY(&c->loop);
  uv_mutex_lock(&c->lock);
  list_append(&c->waiting, &c->submitted);
  take_canceled(&c->waiting, &dropped);
  stop_running = c->running != NULL && c->running->canceled;
  ending = c->ending;
  uv_mutex_unlock(&c->lock);
  if (ending) {
    list_free(&dropped);
    uv_stop(&c->loop);
    return;
  }
  while ((j = list_pop(&dropped)) != NULL)
    complete(c, j, canceled(), NULL);
  /* Its callback comes from on_call_done, once the connection has closed. */
  if (stop_running)
    pm__call_cancel(c->in_flight);
  next_call(c);
}

/* Marks the calls of l made with data canceled; under the lock. */
static int mark_canceled(call_list *l, void *data) {
  int n = 0;
  for (call *j = l->head; j != NULL; j = j->next)
    if (j->data == data && !j->canceled) {
      j->canceled = true;
      n++;
    }
  return n;
}

int pm_client_call_cancel(pm_client *c, void *data) {
  int n;
  if (c == NULL)
    return PM_EINVAL;
  uv_mutex_lock(&c->lock);
  n = mark_canceled(&c->submitted, data) + mark_canceled(&c->waiting, data);
  if (c->running != NULL && c->running->data == data && !c->running->canceled) {
    c->running->canceled = true;
    n++;
  }
  uv_mutex_unlock(&c->lock);
  /* The loop does the rest: only it may touch a call in flight. */
  if (n > 0)
    uv_async_send(&c->wake);
  return n;
}

static int submit(pm_client *c, call *j) {
  int rc = 0;
  uv_mutex_lock(&c->lock);
  if (c->cfg.drive == PM_CLIENT_DRIVE_THREAD)
    rc = start_thread(c);
  if (rc == 0)
    list_push(&c->submitted, j);
  uv_mutex_unlock(&c->lock);
  if (rc == 0)
    uv_async_send(&c->wake);
  return rc;
}

int pm__client_typed_async(pm_client *c, const pm__cl_command *cmd, const void *params,
                           pm__client_fn cb, void *data) {
  call *j;
  int rc;
  if (c == NULL || cb == NULL)
    return PM_EINVAL;
  j = pm__calloc(1, sizeof(*j));
  if (j == NULL)
    return PM_ENOMEM;
  j->cmd = cmd;
  j->fn = cb;
  j->data = data;
  rc = cmd->params != NULL ? pm__client_encode(cmd->params, params, &j->params, NULL) : 0;
  if (rc == 0 && cmd->data != NULL) {
    j->answer = pm__calloc(1, cmd->data->size);
    rc = j->answer != NULL ? 0 : PM_ENOMEM;
  }
  if (rc == 0)
    rc = submit(c, j);
  if (rc < 0)
    call_free(j);
  return rc;
}

int pm_client_call_async(pm_client *c, const char *command, const char *params_json,
                         pm_client_call_cb cb, void *data) {
  char why[PM_REASON_MAX] = "";
  call *j;
  int rc;
  if (c == NULL || command == NULL || cb == NULL)
    return PM_EINVAL;
  j = pm__calloc(1, sizeof(*j));
  if (j == NULL)
    return PM_ENOMEM;
  j->fn = (pm__client_fn)cb;
  j->data = data;
  j->command = pm__strdup(command);
  rc = j->command != NULL ? 0 : PM_ENOMEM;
  if (rc == 0 && parse_params(params_json, &j->params, why) < 0) {
    /* Answered through cb like any refusal, so that the reason reaches the caller. */
    j->refused = pm__strdup(why);
    rc = j->refused != NULL ? 0 : PM_ENOMEM;
  }
  if (rc == 0)
    rc = submit(c, j);
  if (rc < 0)
    call_free(j);
  return rc;
}

/* ---- being driven by the application ----------------------------------------------------- */

intptr_t pm_client_fd(pm_client *c) {
  return c != NULL && c->driver != NULL ? pm__client_driver_handle(c->driver) : -1;
}

int pm_client_timeout_ms(pm_client *c) {
  uint64_t now_ms, since;
  int t;
  if (c == NULL || c->driver == NULL)
    return -1;
  if (c->more)
    return 0;
  t = uv_backend_timeout(&c->loop);
  /* Counted by libuv from the loop's clock as of its last pass, perhaps long ago. */
  now_ms = uv_hrtime() / 1000000u;
  since = now_ms > uv_now(&c->loop) ? now_ms - uv_now(&c->loop) : 0;
  if (t > 0)
    t = since >= (uint64_t)t ? 0 : t - (int)since;
  return t;
}

static void teardown(pm_client *c);

int pm_client_process(pm_client *c) {
  pm_client *outer = running_client;
  int ran;
  if (c == NULL || c->driver == NULL || running_here(c))
    return PM_EINVAL;
  ran = c->ran;
  c->running_outer = outer;
  running_client = c;
  pm__client_driver_enter(c->driver);
  c->more = true;
  for (int i = 0; i < PROCESS_PASSES_MAX && !c->close_deferred; i++) {
    unsigned before = c->activity;
    uv_run(&c->loop, UV_RUN_NOWAIT);
    if (c->activity == before) {
      c->more = false;
      break;
    }
  }
  pm__client_driver_leave(c->driver);
  running_client = outer;
  ran = c->ran - ran;
  if (c->close_deferred)
    teardown(c);
  return ran;
}

/* ---- events ------------------------------------------------------------------------------ */

static const pm__cl_event *declared_event(const char *type) {
  for (size_t i = 0; i < pm__client_n_events; i++)
    if (strcmp(pm__client_events[i].type, type) == 0)
      return &pm__client_events[i];
  return NULL;
}

/* Hands an event to the application. PM_ENOMEM leaves it to the service (it comes again on
 * the next connection); PM_ECANCELED: the client is closing. */
static int on_take(const pm_event *ev, void *data) {
  pm_client *c = data;
  const pm__cl_event *decl = declared_event(ev->type);
  pm_client_event e;
  char *text = NULL;
  int rc = 0;
  if (c->closing)
    return PM_ECANCELED;
  memset(&e, 0, sizeof(e));
  if (ev->data != NULL && (text = json_dumps(ev->data, JSON_COMPACT)) == NULL)
    return PM_ENOMEM;
  /* A declared type whose Data does not match its declaration stays untyped (OTHER). */
  if (decl != NULL && ev->data != NULL) {
    rc = pm__client_decode(decl->data, ev->data, &e.u, NULL);
    if (rc == 0)
      e.type = decl->tag;
    else
      decl = NULL;
  }
  if (rc != PM_ENOMEM) {
    e.type_name = ev->type;
    e.id = ev->id;
    e.epoch = ev->epoch;
    e.time = ev->time;
    e.data_json = text;
    c->ran++;
    c->cfg.on_event(c, &e, c->cfg.data);
    rc = 0;
  }
  if (decl != NULL)
    pm__client_typed_free(decl->data, &e.u);
  free(text);
  return rc;
}

static void on_state(pm_event_client_state st, const char *reason, void *data) {
  pm_client *c = data;
  pm_client_connection state;
  if (st == PM_EVENT_CLIENT_CONNECTED) {
    state = PM_CLIENT_CONNECTED;
    c->was_connected = false;
  } else if (st == PM_EVENT_CLIENT_DISCONNECTED) {
    state = PM_CLIENT_DISCONNECTED;
    c->was_connected = true;
  } else if (st == PM_EVENT_CLIENT_CONNECTING && c->was_connected) {
    state = PM_CLIENT_RECONNECTING;
  } else {
    return;
  }
  if (c->cfg.on_connection == NULL || c->closing)
    return;
  c->ran++;
  c->cfg.on_connection(c, state, reason, c->cfg.data);
}

int pm_client_confirm(pm_client *c, int64_t id) {
  if (c == NULL || c->events == NULL || !c->cfg.confirm_later)
    return PM_EINVAL;
  return pm_event_client_confirm(c->events, id);
}

int pm_client_confirm_epoch(pm_client *c, int64_t epoch, int64_t id) {
  if (c == NULL || c->events == NULL || !c->cfg.confirm_later)
    return PM_EINVAL;
  return pm_event_client_confirm_epoch(c->events, epoch, id);
}

void pm_client_cursor(pm_client *c, int64_t *epoch, int64_t *last_id) {
  *epoch = *last_id = 0;
  if (c != NULL && c->events != NULL)
    pm_event_client_cursor(c->events, epoch, last_id);
}

/* "From now" asks the service for its epoch before each first session, with a deadline of its
 * own, far shorter than a command's response timeout: a service that does not answer in time
 * means "resume". */
#define EPOCH_PROBE_TIMEOUT_MS 1000

static void on_probed(void *data, int status, pm_msg *response) {
  pm_client *c = data;
  const json_t *events;
  int64_t epoch = 0;
  c->probe = NULL;
  if (status == 0 && from_response(response).code == PM_RC_OK) {
    events = json_object_get(response_data(response), "Events");
    epoch = json_integer_value(json_object_get(events, "Epoch"));
  }
  pm_msg_free(response);
  if (status != PM_ECANCELED)
    pm__event_client_probed(c->events, epoch);
}

static void probe_epoch(pm_event_client *ec, void *data) {
  pm_client *c = data;
  pm_client_options o = c->call_opts;
  pm_msg *request = NULL;
  o.connect_timeout_ms = o.response_timeout_ms = EPOCH_PROBE_TIMEOUT_MS;
  if (pm_request_new("GetStats", 0, NULL, &request) < 0 ||
      pm__call_start(&c->loop, c->command_pipe, &o, request, PM_ENC_JSON, on_probed, c,
                     &c->probe) < 0)
    pm__event_client_probed(ec, 0);
  pm_msg_free(request);
}

static int start_events(pm_client *c) {
  pm_event_client_options o;
  memset(&o, 0, sizeof(o));
  o.handshake_timeout_ms = c->cfg.handshake_timeout_ms;
  o.reconnect_min_ms = c->cfg.reconnect_min_ms;
  o.reconnect_max_ms = c->cfg.reconnect_max_ms;
  o.client_name = c->cfg.client_name;
  o.expect_owner_uid = c->call_opts.expect_owner_uid;
  o.expect_owner_sid = c->call_opts.expect_owner_sid;
  o.resume_epoch = c->cfg.resume_epoch;
  o.resume_last_id = c->cfg.resume_last_id;
  o.observe = c->cfg.observe;
  o.confirm_later = c->cfg.confirm_later;
  o.on_take = on_take;
  o.on_state = on_state;
  o.data = c;
  return pm__event_client_start_on(&c->loop, c->event_pipe, &o,
                                   c->cfg.start == PM_CLIENT_START_NOW ? probe_epoch : NULL,
                                   &c->events);
}

/* ---- open and close ---------------------------------------------------------------------- */

static int resolve_pipe(const char *given, pm_pipe_kind kind, char *buf, size_t size) {
  return pm_pipe_path(given != NULL ? given : pm_pipe_default(kind), buf, size);
}

/* Frees the client, on a thread where nothing else runs its loop. */
static void teardown(pm_client *c) {
  c->closing = true;
  pm__client_driver_stop(c->driver);
  pm__client_driver_enter(c->driver);
  if (c->in_flight != NULL)
    pm__call_cancel(c->in_flight);
  if (c->probe != NULL)
    pm__call_cancel(c->probe);
  pm__event_client_close(c->events);
  uv_close((uv_handle_t *)&c->wake, NULL);
  /* Only closings are left: their callbacks run, nothing waits for I/O. */
  uv_run(&c->loop, UV_RUN_DEFAULT);
  pm__client_driver_leave(c->driver);
  pm__event_client_free(c->events);
  uv_loop_close(&c->loop);
  pm__client_driver_free(c->driver);
  list_free(&c->submitted);
  list_free(&c->waiting);
  call_free(c->running);
  uv_mutex_destroy(&c->lock);
  pm__free(c);
}

static int client_new(const pm_client_config *config, pm_client **out) {
  pm_client *c = pm__calloc(1, sizeof(*c));
  if (c == NULL)
    return PM_ENOMEM;
  if (config != NULL)
    c->cfg = *config;
  if (uv_mutex_init(&c->lock) < 0) {
    pm__free(c);
    return PM_ENOMEM;
  }
  if (uv_loop_init(&c->loop) < 0) {
    uv_mutex_destroy(&c->lock);
    pm__free(c);
    return PM_ENOMEM;
  }
  c->loop.data = &c->activity;
  uv_async_init(&c->loop, &c->wake, on_wake);
  c->wake.data = c;
  *out = c;
  return 0;
}

int pm_client_open(const pm_client_config *config, pm_client **out) {
  pm_client *c;
  int rc;
  if (out == NULL ||
      (config != NULL && ((config->drive != PM_CLIENT_DRIVE_THREAD &&
                           config->drive != PM_CLIENT_DRIVE_APP) ||
                          (config->start != PM_CLIENT_START_RESUME &&
                           config->start != PM_CLIENT_START_NOW))))
    return PM_EINVAL;
  rc = client_new(config, &c);
  if (rc < 0)
    return rc;
  rc = resolve_pipe(c->cfg.command_pipe, PM_PIPE_COMMAND, c->command_pipe,
                    sizeof(c->command_pipe));
  if (rc == 0)
    rc = resolve_pipe(c->cfg.event_pipe, PM_PIPE_EVENT, c->event_pipe,
                      sizeof(c->event_pipe));
  if (rc == 0)
    rc = pm__client_owner(c->cfg.expect_owner, &c->call_opts.expect_owner_uid, c->owner_sid,
                          sizeof(c->owner_sid));
  c->call_opts.expect_owner_sid = c->owner_sid[0] ? c->owner_sid : NULL;
  c->call_opts.connect_timeout_ms = c->cfg.connect_timeout_ms;
  c->call_opts.response_timeout_ms = c->cfg.response_timeout_ms;
  if (rc == 0 && c->cfg.drive == PM_CLIENT_DRIVE_APP)
    rc = pm__client_driver_new(&c->loop, &c->driver);
  /* The first pass registers the loop's handles with the kernel: come at once. */
  c->more = true;
  if (rc == 0 && c->cfg.on_event != NULL)
    rc = start_events(c);
  if (rc == 0 && c->cfg.on_event != NULL && c->cfg.drive == PM_CLIENT_DRIVE_THREAD)
    rc = start_thread(c);
  if (rc < 0) {
    teardown(c);
    return rc;
  }
  *out = c;
  return 0;
}

void pm_client_close(pm_client *c) {
  if (c == NULL)
    return;
  if (running_here(c)) {
    /* From one of its callbacks: done once the callback has returned, by pm_client_process
     * or the loop thread. */
    c->closing = c->close_deferred = true;
    uv_stop(&c->loop);
    return;
  }
  if (c->thread_started && !c->close_deferred) {
    uv_mutex_lock(&c->lock);
    c->ending = true;
    uv_mutex_unlock(&c->lock);
    uv_async_send(&c->wake);
    uv_thread_join(&c->thread);
  }
  teardown(c);
}
