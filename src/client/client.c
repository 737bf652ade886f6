#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "client/client_internal.h"
#include "internal.h"
#include "pipemsg/command.h"
#include "pipemsg/error.h"
#include "pipemsg/event.h"
#include "pipemsg/message.h"
#include "pipemsg/pipe.h"
#include "transport/transport.h"

/* Something for the application: an asynchronous call's completion, an event or a connection
 * change. Made on a library thread; run there (PM_CLIENT_DRIVE_THREAD) or queued for
 * pm_client_process() (PM_CLIENT_DRIVE_APP). */
typedef enum { JOB_CALL, JOB_EVENT, JOB_CONNECTION } job_kind;

typedef struct job {
  struct job *next;
  job_kind kind;
  /* JOB_CALL */
  const pm__cl_command *cmd; /* NULL: pm_client_call_async */
  char *command;
  json_t *params;
  pm__client_fn fn;
  void *data;
  pm_result result;
  void *answer;    /* typed: cmd->data's struct */
  char *data_json; /* generic */
  /* JOB_EVENT */
  pm_client_event event;
  char *type_name, *time, *event_json;
  const pm__cl_event *declared; /* the typed member of event.u in use, or NULL */
  /* JOB_CONNECTION */
  pm_client_connection state;
  char reason[PM_REASON_MAX];
} job;

typedef struct job_list {
  job *head, *tail;
} job_list;

struct pm_client {
  pm_client_config cfg;
  char command_pipe[PM_PIPE_PATH_MAX + 1];
  char event_pipe[PM_PIPE_PATH_MAX + 1];
  char owner_sid[PM_PEER_SID_MAX];
  pm_client_options call_opts;
  uv_mutex_t lock;
  uv_cond_t wake;
  job_list calls; /* waiting for the worker */
  job_list ready; /* PM_CLIENT_DRIVE_APP: waiting for pm_client_process() */
  bool stopping;
  bool worker_started;
  uv_thread_t worker;
  pm__client_notify *notify;
  pm_event_client *events;
  bool was_connected; /* a session ended: the next attempt is a reconnection */
};

static const char *const rc_names[] = {"Ok", "BadRequest", "TooManyRequests",
                                       "ServiceNotInitialized", "Error"};
static const char *const client_rc_names[] = {"ConnectionTimeout", "Timeout", "TransportError",
                                              "TransportNotAuthorized", "InvalidArgument"};

const char *pm_result_code_name(pm_result_code code) {
  if ((unsigned)code < sizeof(rc_names) / sizeof(rc_names[0]))
    return rc_names[code];
  if (code >= PM_RC_CLIENT_SIDE &&
      (unsigned)(code - PM_RC_CLIENT_SIDE) < sizeof(client_rc_names) / sizeof(client_rc_names[0]))
    return client_rc_names[code - PM_RC_CLIENT_SIDE];
  return "Other";
}

static void result_set(pm_result *r, pm_result_code code, bool from_service, const char *name,
                       const char *message) {
  r->code = code;
  r->from_service = from_service;
  snprintf(r->name, sizeof(r->name), "%s", name != NULL ? name : pm_result_code_name(code));
  snprintf(r->message, sizeof(r->message), "%s", message != NULL ? message : "");
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

/* One blocking round trip. On Ok, *data (may be NULL) lends the answer's Data from *response,
 * which the caller frees. */
static pm_result round_trip(pm_client *c, const char *command, json_t *params,
                            pm_msg **response) {
  pm_msg *request = NULL;
  pm_result r;
  int rc;
  *response = NULL;
  rc = pm_request_new(command, 0, params, &request);
  if (rc < 0)
    return client_side(PM_RC_INVALID_ARGUMENT, rc, "not a command name, or out of memory");
  rc = pm_command_client_call(c->command_pipe, &c->call_opts, request, PM_ENC_JSON, response);
  pm_msg_free(request);
  if (rc < 0)
    return from_error(rc, NULL);
  r = from_response(*response);
  return r;
}

static const json_t *response_data(const pm_msg *response) {
  return json_object_get(pm_msg_fields(response), "Data");
}

/* The typed call, also run by the worker: the answer is decoded into answer (zeroed unless
 * Ok). params is taken. */
static pm_result typed_run(pm_client *c, const pm__cl_command *cmd, json_t *params,
                           void *answer) {
  pm_msg *response = NULL;
  char why[PM_REASON_MAX] = "";
  pm_result r = round_trip(c, cmd->name, params, &response);
  if (cmd->data != NULL && answer != NULL) {
    memset(answer, 0, cmd->data->size);
    if (r.code == PM_RC_OK) {
      int rc = pm__client_decode(cmd->data, response_data(response), answer, why);
      if (rc < 0)
        r = client_side(PM_RC_TRANSPORT_ERROR, rc, why[0] ? why : pm_strerror(rc));
    }
  }
  pm_msg_free(response);
  return r;
}

static pm_result generic_run(pm_client *c, const char *command, json_t *params,
                             char **data_json) {
  pm_msg *response = NULL;
  pm_result r = round_trip(c, command, params, &response);
  const json_t *data;
  if (data_json != NULL)
    *data_json = NULL;
  data = r.code == PM_RC_OK ? response_data(response) : NULL;
  if (data != NULL && data_json != NULL) {
    char *text = json_dumps(data, JSON_COMPACT);
    *data_json = text != NULL ? pm__strdup(text) : NULL;
    free(text);
    if (*data_json == NULL)
      r = client_side(PM_RC_TRANSPORT_ERROR, PM_ENOMEM, pm_strerror(PM_ENOMEM));
  }
  pm_msg_free(response);
  return r;
}

static int parse_params(const char *params_json, json_t **out) {
  json_error_t err;
  *out = NULL;
  if (params_json == NULL)
    return 0;
  *out = json_loads(params_json, JSON_REJECT_DUPLICATES, &err);
  if (json_is_object(*out))
    return 0;
  json_decref(*out);
  *out = NULL;
  return PM_EINVAL;
}

pm_result pm__client_typed_call(pm_client *c, const pm__cl_command *cmd, const void *params,
                                void *answer) {
  json_t *p = NULL;
  char why[PM_REASON_MAX] = "";
  int rc;
  if (answer != NULL && cmd->data != NULL)
    memset(answer, 0, cmd->data->size);
  if (c == NULL)
    return client_side(PM_RC_INVALID_ARGUMENT, PM_EINVAL, "no client");
  rc = cmd->params != NULL ? pm__client_encode(cmd->params, params, &p, why) : 0;
  if (rc < 0)
    return client_side(PM_RC_INVALID_ARGUMENT, rc, why);
  return typed_run(c, cmd, p, answer);
}

pm_result pm_client_call(pm_client *c, const char *command, const char *params_json,
                         char **data_json) {
  json_t *params;
  if (data_json != NULL)
    *data_json = NULL;
  if (c == NULL || command == NULL)
    return client_side(PM_RC_INVALID_ARGUMENT, PM_EINVAL, "no client or no command");
  if (parse_params(params_json, &params) < 0)
    return client_side(PM_RC_INVALID_ARGUMENT, PM_EINVAL, "params_json is not a JSON object");
  return generic_run(c, command, params, data_json);
}

void pm_client_free(void *p) { pm__free(p); }

/* ---- jobs ---------------------------------------------------------------------------------- */

static void list_push(job_list *l, job *j) {
  j->next = NULL;
  if (l->tail != NULL)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
}

static job *list_pop(job_list *l) {
  job *j = l->head;
  if (j != NULL) {
    l->head = j->next;
    if (l->head == NULL)
      l->tail = NULL;
  }
  return j;
}

static void job_free(job *j) {
  if (j == NULL)
    return;
  pm__free(j->command);
  json_decref(j->params);
  if (j->answer != NULL)
    pm__client_typed_free(j->cmd->data, j->answer);
  pm__free(j->answer);
  pm__free(j->data_json);
  pm__free(j->type_name);
  pm__free(j->time);
  pm__free(j->event_json);
  if (j->declared != NULL)
    pm__client_typed_free(j->declared->data, &j->event.u);
  pm__free(j);
}

static void run_job(pm_client *c, job *j) {
  switch (j->kind) {
  case JOB_CALL:
    if (j->cmd != NULL)
      j->cmd->deliver(c, &j->result, j->answer, j->fn, j->data);
    else
      ((pm_client_call_cb)j->fn)(c, &j->result, j->data_json, j->data);
    break;
  case JOB_EVENT:
    c->cfg.on_event(c, &j->event, c->cfg.data);
    /* Confirmed once the application's loop has run the callback (confirm on return). */
    if (c->cfg.drive == PM_CLIENT_DRIVE_APP && !c->cfg.confirm_later && !c->cfg.observe)
      pm_event_client_confirm(c->events, j->event.id);
    break;
  case JOB_CONNECTION:
    c->cfg.on_connection(c, j->state, j->reason[0] ? j->reason : NULL, c->cfg.data);
    break;
  }
}

/* Hands a finished job to the application: now on this library thread, or through the queue. */
static void deliver(pm_client *c, job *j) {
  if (c->cfg.drive == PM_CLIENT_DRIVE_THREAD) {
    run_job(c, j);
    job_free(j);
    return;
  }
  uv_mutex_lock(&c->lock);
  list_push(&c->ready, j);
  uv_mutex_unlock(&c->lock);
  pm__client_notify_set(c->notify);
}

static void worker(void *arg) {
  pm_client *c = arg;
  job *j;
  pm__block_sigpipe();
  for (;;) {
    uv_mutex_lock(&c->lock);
    while (!c->stopping && c->calls.head == NULL)
      uv_cond_wait(&c->wake, &c->lock);
    j = c->stopping ? NULL : list_pop(&c->calls);
    uv_mutex_unlock(&c->lock);
    if (j == NULL)
      return;
    if (j->cmd != NULL)
      j->result = typed_run(c, j->cmd, j->params, j->answer);
    else
      j->result = generic_run(c, j->command, j->params, &j->data_json);
    j->params = NULL; /* taken by the call */
    deliver(c, j);
  }
}

static int submit(pm_client *c, job *j) {
  int rc = 0;
  uv_mutex_lock(&c->lock);
  if (!c->worker_started) {
    rc = pm__uv_error(uv_thread_create(&c->worker, worker, c));
    c->worker_started = rc == 0;
  }
  if (rc == 0) {
    list_push(&c->calls, j);
    uv_cond_signal(&c->wake);
  }
  uv_mutex_unlock(&c->lock);
  return rc;
}

int pm__client_typed_async(pm_client *c, const pm__cl_command *cmd, const void *params,
                           pm__client_fn cb, void *data) {
  job *j;
  int rc;
  if (c == NULL || cb == NULL)
    return PM_EINVAL;
  j = pm__calloc(1, sizeof(*j));
  if (j == NULL)
    return PM_ENOMEM;
  j->kind = JOB_CALL;
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
    job_free(j);
  return rc;
}

int pm_client_call_async(pm_client *c, const char *command, const char *params_json,
                         pm_client_call_cb cb, void *data) {
  job *j;
  int rc;
  if (c == NULL || command == NULL || cb == NULL)
    return PM_EINVAL;
  j = pm__calloc(1, sizeof(*j));
  if (j == NULL)
    return PM_ENOMEM;
  j->kind = JOB_CALL;
  j->fn = (pm__client_fn)cb;
  j->data = data;
  j->command = pm__strdup(command);
  rc = j->command != NULL ? parse_params(params_json, &j->params) : PM_ENOMEM;
  if (rc == 0)
    rc = submit(c, j);
  if (rc < 0)
    job_free(j);
  return rc;
}

intptr_t pm_client_fd(pm_client *c) {
  return c != NULL && c->notify != NULL ? pm__client_notify_handle(c->notify) : -1;
}

int pm_client_process(pm_client *c) {
  job_list todo;
  job *j;
  int n = 0;
  if (c == NULL || c->cfg.drive != PM_CLIENT_DRIVE_APP)
    return PM_EINVAL;
  /* Cleared before taking the queue, so a job queued from now on sets it again. */
  pm__client_notify_clear(c->notify);
  uv_mutex_lock(&c->lock);
  todo = c->ready;
  c->ready.head = c->ready.tail = NULL;
  uv_mutex_unlock(&c->lock);
  while ((j = list_pop(&todo)) != NULL) {
    run_job(c, j);
    job_free(j);
    n++;
  }
  return n;
}

/* ---- events -------------------------------------------------------------------------------- */

static const pm__cl_event *declared_event(const char *type) {
  for (size_t i = 0; i < pm__client_n_events; i++)
    if (strcmp(pm__client_events[i].type, type) == 0)
      return &pm__client_events[i];
  return NULL;
}

static int event_job(const pm_event *ev, job **out) {
  job *j = pm__calloc(1, sizeof(*j));
  const pm__cl_event *decl = declared_event(ev->type);
  int rc = 0;
  if (j == NULL)
    return PM_ENOMEM;
  j->kind = JOB_EVENT;
  j->type_name = pm__strdup(ev->type);
  j->time = ev->time != NULL ? pm__strdup(ev->time) : NULL;
  if (j->type_name == NULL || (ev->time != NULL && j->time == NULL))
    rc = PM_ENOMEM;
  if (rc == 0 && ev->data != NULL) {
    char *text = json_dumps(ev->data, JSON_COMPACT);
    j->event_json = text != NULL ? pm__strdup(text) : NULL;
    free(text);
    rc = j->event_json != NULL ? 0 : PM_ENOMEM;
  }
  /* A declared type whose Data does not match its declaration stays untyped (OTHER). */
  if (rc == 0 && decl != NULL && ev->data != NULL &&
      pm__client_decode(decl->data, ev->data, &j->event.u, NULL) == 0) {
    j->declared = decl;
    j->event.type = decl->tag;
  }
  if (rc < 0) {
    job_free(j);
    return rc;
  }
  j->event.type_name = j->type_name;
  j->event.id = ev->id;
  j->event.epoch = ev->epoch;
  j->event.time = j->time;
  j->event.data_json = j->event_json;
  *out = j;
  return 0;
}

static void on_event(const pm_event *ev, void *data) {
  pm_client *c = data;
  job *j = NULL;
  /* Out of memory: the event is not confirmed, so the service sends it again. */
  if (event_job(ev, &j) < 0)
    return;
  deliver(c, j);
}

static void on_state(pm_event_client_state st, const char *reason, void *data) {
  pm_client *c = data;
  job *j;
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
  if (c->cfg.on_connection == NULL || (j = pm__calloc(1, sizeof(*j))) == NULL)
    return;
  j->kind = JOB_CONNECTION;
  j->state = state;
  snprintf(j->reason, sizeof(j->reason), "%s", reason != NULL ? reason : "");
  deliver(c, j);
}

int pm_client_confirm(pm_client *c, int64_t id) {
  if (c == NULL || c->events == NULL || !c->cfg.confirm_later)
    return PM_EINVAL;
  return pm_event_client_confirm(c->events, id);
}

void pm_client_cursor(pm_client *c, int64_t *epoch, int64_t *last_id) {
  *epoch = *last_id = 0;
  if (c != NULL && c->events != NULL)
    pm_event_client_cursor(c->events, epoch, last_id);
}

/* "From now" asks the service for its epoch on the event thread, before each first session.
 * pm_client_close joins that thread, so the probe has a deadline of its own, far shorter than
 * a command's response timeout: a service that does not answer in time means "resume". */
#define EPOCH_PROBE_TIMEOUT_MS 1000

static int64_t current_epoch(void *data) {
  pm_client *c = data;
  pm_client_options o = c->call_opts;
  pm_msg *request = NULL, *response = NULL;
  const json_t *events;
  int64_t epoch = 0;
  o.connect_timeout_ms = o.response_timeout_ms = EPOCH_PROBE_TIMEOUT_MS;
  if (pm_request_new("GetStats", 0, NULL, &request) == 0 &&
      pm_command_client_call(c->command_pipe, &o, request, PM_ENC_JSON, &response) == 0 &&
      from_response(response).code == PM_RC_OK) {
    events = json_object_get(response_data(response), "Events");
    epoch = json_integer_value(json_object_get(events, "Epoch"));
  }
  pm_msg_free(request);
  pm_msg_free(response);
  return epoch;
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
  if (c->cfg.start == PM_CLIENT_START_NOW)
    o.current_epoch = current_epoch;
  /* The application's loop runs the callback later than the event thread sees the event. */
  o.confirm_later = c->cfg.confirm_later || c->cfg.drive == PM_CLIENT_DRIVE_APP;
  o.on_event = on_event;
  o.on_state = on_state;
  o.data = c;
  return pm_event_client_start(c->event_pipe, &o, &c->events);
}

/* ---- open and close ------------------------------------------------------------------------ */

static int resolve_pipe(const char *given, pm_pipe_kind kind, char *buf, size_t size) {
  return pm_pipe_path(given != NULL ? given : pm_pipe_default(kind), buf, size);
}

static void client_free(pm_client *c) {
  job *j;
  pm_event_client_stop(c->events);
  uv_mutex_lock(&c->lock);
  c->stopping = true;
  uv_cond_signal(&c->wake);
  uv_mutex_unlock(&c->lock);
  if (c->worker_started)
    uv_thread_join(&c->worker);
  while ((j = list_pop(&c->calls)) != NULL)
    job_free(j);
  while ((j = list_pop(&c->ready)) != NULL)
    job_free(j);
  pm__client_notify_free(c->notify);
  uv_cond_destroy(&c->wake);
  uv_mutex_destroy(&c->lock);
  pm__free(c);
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
  c = pm__calloc(1, sizeof(*c));
  if (c == NULL)
    return PM_ENOMEM;
  if (config != NULL)
    c->cfg = *config;
  if (uv_mutex_init(&c->lock) < 0) {
    pm__free(c);
    return PM_ENOMEM;
  }
  if (uv_cond_init(&c->wake) < 0) {
    uv_mutex_destroy(&c->lock);
    pm__free(c);
    return PM_ENOMEM;
  }
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
    rc = pm__client_notify_new(&c->notify);
  if (rc == 0 && c->cfg.on_event != NULL)
    rc = start_events(c);
  if (rc < 0) {
    client_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void pm_client_close(pm_client *c) {
  if (c != NULL)
    client_free(c);
}
