#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "pipemsg/pipemsg.h"

#include "cli.h"
#include "contract.h"

/* --wait's deadline from sending the command, unless --wait-timeout-ms says otherwise: room for
 * a tunnel that takes its time to come up, short of hanging a script for ever. */
#define CALL_WAIT_TIMEOUT_MS_DEFAULT 60000u

static const char usage_head[] =
    "Usage: pipemsg call [OPTION]... COMMAND [Key=Value | Key:=JSON]... [OPTION]...\n"
    "Send one request on the command pipe and print the response's Data as JSON.\n"
    "Options may come before or after COMMAND; -- ends them.\n"
    "\n"
    "  -c, --command-pipe NAME     pipe name or path (default $PIPEMSG_COMMAND_PIPE, else\n"
    "                              UnifiedSDKVPNCommandPipe)\n";

static const char usage_tail[] =
    "      --json                  print the whole response message as one JSON line\n"
    "      --xml                   send the request as XML (the answer comes in XML and is\n"
    "                              printed with the contract's types, as a JSON answer is)\n"
    "      --id N                  request Id to send (echoed by the service)\n"
    "      --connect-timeout-ms N  wait this long for the service to accept (default 3000)\n"
    "      --timeout-ms N          wait this long for the response (default 180000)\n"
    "      --wait                  StartVpn: return once Connected, fail with LastError if the\n"
    "                              attempt fails; StopVpn: return once Disconnected. Watches\n"
    "                              the event pipe as an observer, attached before sending\n"
    "  -e, --event-pipe NAME       the event pipe --wait watches (default\n"
    "                              $PIPEMSG_EVENT_PIPE, else UnifiedSDKVPNEventPipe)\n"
    "      --wait-timeout-ms N     --wait gives up (status 3) this long after sending\n"
    "                              (default 60000)\n"
    "  -v, --verbose               show the request and the response on stderr\n"
    "      --help                  show this help and exit\n"
    "\n"
    "Key=Value puts a parameter in Params, typed as the contract declares it (pipemsg\n"
    "describe COMMAND): Location=123 is the string \"123\", Enabled=true a boolean, a list\n"
    "takes comma-separated items (Domains=a.example,b.example; Domains= is empty). An\n"
    "undeclared Key is refused before anything is sent. Key:=JSON sends a JSON value as\n"
    "given, unchecked: the escape hatch for a parameter newer than this pipemsg. A COMMAND\n"
    "the contract does not know (the service may be newer) is sent anyway, with a note on\n"
    "stderr, its Key=Value typed by guessing: true/false booleans, decimal integers\n"
    "numbers, anything else a string.\n"
    "\n";

const char cli_exit_help[] =
    "Exit status: 0 Ok; 1 a service error (another Result, or --wait saw the attempt fail);\n"
    "2 usage error (nothing sent); 3 no answer (ConnectionTimeout, Timeout, TransportError,\n"
    "or --wait timed out); 4 BadRequest; 5 TooManyRequests; 6 not authorized\n"
    "(TransportNotAuthorized: the service refused us, or we refused the pipe's owner).\n";

const char *const cmd_call_usage[] = {usage_head, cli_call_pipe_help, usage_tail, cli_exit_help,
                                      NULL};

enum {
  OPT_XML = 256,
  OPT_JSON,
  OPT_ID,
  OPT_CONNECT_TIMEOUT,
  OPT_TIMEOUT,
  OPT_WAIT,
  OPT_WAIT_TIMEOUT,
  OPT_HELP
};

static const struct option long_options[] = {
    {"command-pipe", required_argument, NULL, 'c'},
    {"event-pipe", required_argument, NULL, 'e'},
    {"xml", no_argument, NULL, OPT_XML},
    {"json", no_argument, NULL, OPT_JSON},
    {"id", required_argument, NULL, OPT_ID},
    {"connect-timeout-ms", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"wait-timeout-ms", required_argument, NULL, OPT_WAIT_TIMEOUT},
    {"names-file", required_argument, NULL, CLI_OPT_NAMES_FILE},
    {"names-registry", required_argument, NULL, CLI_OPT_NAMES_REGISTRY},
    {"expect-owner", required_argument, NULL, CLI_OPT_EXPECT_OWNER},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

int cli_exit_status(const char *result) {
  if (strcmp(result, PM_RESULT_OK) == 0)
    return CLI_EXIT_OK;
  if (strcmp(result, PM_RESULT_BAD_REQUEST) == 0)
    return CLI_EXIT_BAD_REQUEST;
  if (strcmp(result, PM_RESULT_TOO_MANY_REQUESTS) == 0)
    return CLI_EXIT_TOO_MANY;
  if (strcmp(result, PM_RESULT_NOT_AUTHORIZED) == 0)
    return CLI_EXIT_NOT_AUTHORIZED;
  if (strcmp(result, PM_RESULT_CONNECTION_TIMEOUT) == 0 ||
      strcmp(result, PM_RESULT_TIMEOUT) == 0 || strcmp(result, PM_RESULT_TRANSPORT_ERROR) == 0)
    return CLI_EXIT_TRANSPORT;
  return CLI_EXIT_RESULT;
}

/* Types a Key=Value argument of a command the contract does not know, the way a shell user
 * most likely means it. */
static json_t *guessed_value(const char *text) {
  char *end;
  long long v;
  if (strcmp(text, "true") == 0)
    return json_true();
  if (strcmp(text, "false") == 0)
    return json_false();
  if (text[0] != '\0' && strlen(text) < 19) {
    v = strtoll(text, &end, 10);
    if (*end == '\0' && (text[0] == '-' || (text[0] >= '0' && text[0] <= '9')))
      return json_integer(v);
  }
  return json_string(text);
}

/* The text of a Key=Value as the contract's checker takes XML text: a list's items split at
 * commas. */
static json_t *text_tree(const pm__ct_field *f, const char *text) {
  json_t *list;
  if (f->type->kind != PM__CT_LIST)
    return json_string(text);
  list = json_array();
  if (list == NULL || *text == '\0') /* Domains= is the empty list */
    return list;
  for (const char *p = text;; p++) {
    size_t n = strcspn(p, ",");
    if (json_array_append_new(list, json_stringn(p, n)) < 0) {
      json_decref(list);
      return NULL;
    }
    p += n;
    if (*p == '\0')
      return list;
  }
}

/* Key=Value of a declared command: the declared parameter, its text converted to the declared
 * type and checked. NULL with a message when Key is not declared or Value does not fit. */
static json_t *declared_value(const pm__ct_command *c, const char *key, const char *text) {
  const pm__ct_field *f = NULL;
  json_t *tree, *typed = NULL, *value = NULL;
  char why[PM_REASON_MAX];
  for (size_t i = 0; i < c->n_params && f == NULL; i++)
    if (strcmp(c->params[i].name, key) == 0)
      f = &c->params[i];
  if (f == NULL) {
    const char *closest = pm__contract_closest_param(c, key);
    fprintf(stderr, "pipemsg call: %s has no parameter '%s'", c->name, key);
    if (closest != NULL)
      fprintf(stderr, "; did you mean '%s'?\n", closest);
    else
      fprintf(stderr, " (pipemsg describe %s lists them)\n", c->name);
    return NULL;
  }
  tree = json_object();
  /* jansson takes only UTF-8; running out of memory is the other, unlikely, cause. */
  if (tree == NULL || json_object_set_new(tree, key, text_tree(f, text)) < 0) {
    json_decref(tree);
    fprintf(stderr, "pipemsg call: %s: the value is not UTF-8 text\n", key);
    return NULL;
  }
  if (pm__contract_check(f, 1, tree, true, true, c->name, &typed, why) < 0)
    fprintf(stderr, "pipemsg call: %s=%s: %s\n", key, text, why);
  else
    value = json_incref(json_object_get(typed, key));
  json_decref(tree);
  json_decref(typed);
  return value;
}

/* Adds each Key=Value / Key:=JSON argument to params (c: the command's declaration, NULL when
 * the contract does not know it); -1 with a message on a bad one. */
static int parse_params(const pm__ct_command *c, int count, char **args, json_t *params) {
  for (int i = 0; i < count; i++) {
    char *eq = strchr(args[i], '=');
    json_t *value;
    json_error_t err;
    int raw;
    if (eq == NULL || eq == args[i]) {
      fprintf(stderr, "pipemsg call: '%s' is not Key=Value or Key:=JSON\n", args[i]);
      return -1;
    }
    raw = eq > args[i] && eq[-1] == ':';
    *(raw ? eq - 1 : eq) = '\0';
    if (!pm_name_valid(args[i])) {
      fprintf(stderr, "pipemsg call: '%s' is not a valid parameter name\n", args[i]);
      return -1;
    }
    if (raw) {
      value = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
      if (value == NULL) {
        fprintf(stderr, "pipemsg call: %s: invalid JSON: %s\n", args[i], err.text);
        return -1;
      }
    } else if (c != NULL && !c->any_params) {
      if ((value = declared_value(c, args[i], eq + 1)) == NULL)
        return -1;
    } else {
      value = guessed_value(eq + 1);
    }
    if (value == NULL || json_object_set_new(params, args[i], value) < 0) {
      fprintf(stderr, "pipemsg call: %s: the value is not UTF-8 text\n", args[i]);
      return -1;
    }
  }
  return 0;
}

static void show(const char *prefix, const pm_msg *m, pm_encoding enc) {
  uint8_t *buf;
  size_t len;
  if (pm_msg_encode(m, enc, &buf, &len) == 0) {
    fprintf(stderr, "%s ", prefix);
    cli_put_encoded(stderr, (const char *)buf, len, enc);
    fputc('\n', stderr);
    pm_free(buf);
  }
}

/* An XML answer's fields in the contract's types, as the same answer in JSON has them: Id an
 * integer, Data typed by the command's declaration (leniently: a field the contract does not
 * declare is kept as it came). A new reference; NULL when out of memory. */
static json_t *typed_response(const pm__ct_command *c, const pm_msg *response) {
  json_t *fields = json_deep_copy(pm_msg_fields(response)), *data, *typed = NULL;
  int64_t n;
  char why[PM_REASON_MAX];
  if (fields == NULL || pm_msg_encoding(response) != PM_ENC_XML)
    return fields;
  if (json_is_string(json_object_get(fields, "Id")) && pm_msg_get_int(response, "Id", &n) == 0)
    json_object_set_new(fields, "Id", json_integer((json_int_t)n));
  data = json_object_get(fields, "Data");
  if (c != NULL && !c->any_data && data != NULL &&
      pm__contract_check(c->data, c->n_data, data, true, false, c->name, &typed, why) == 0)
    json_object_set_new(fields, "Data", typed);
  return fields;
}

/* ---- --wait ---------------------------------------------------------------------------- */

typedef struct waiter {
  uv_mutex_t lock;
  uv_cond_t changed;
  int attached;      /* the observer's handshake is done */
  enum { WAITING, REACHED, FAILED } outcome;
  const char *target;
  /* Kept escaped (cli_text), as they are printed. */
  char error[256];   /* the failure's Error (StateChanged) or Message (ErrorOccured) */
  char refused[128]; /* why the event pipe refused us, if it did */
  int progress;      /* a terminal shows a one-line progress */
  const char *command;
} waiter;

static void on_wait_event(const pm_event *ev, void *data) {
  waiter *w = data;
  const char *state = json_string_value(json_object_get(ev->data, "State"));
  const char *error = json_string_value(json_object_get(ev->data, "Error"));
  uv_mutex_lock(&w->lock);
  if (strcmp(ev->type, "ErrorOccured") == 0 &&
      (error = json_string_value(json_object_get(ev->data, "Message"))) != NULL)
    cli_text(error, w->error, sizeof(w->error));
  if (strcmp(ev->type, "StateChanged") == 0 && state != NULL && w->outcome == WAITING) {
    char shown[64];
    if (error != NULL)
      cli_text(error, w->error, sizeof(w->error));
    if (w->progress) {
      printf("\r%s: %-13s", w->command, cli_text(state, shown, sizeof(shown)));
      fflush(stdout);
    }
    if (strcmp(state, w->target) == 0)
      w->outcome = REACHED;
    else if (strcmp(state, "Disconnected") == 0) /* the attempt to connect ended */
      w->outcome = FAILED;
    uv_cond_signal(&w->changed);
  }
  uv_mutex_unlock(&w->lock);
}

static void on_wait_state(pm_event_client_state st, const char *reason, void *data) {
  waiter *w = data;
  uv_mutex_lock(&w->lock);
  if (st == PM_EVENT_CLIENT_CONNECTED)
    w->attached = 1;
  else if (st == PM_EVENT_CLIENT_DISCONNECTED && !w->attached && reason != NULL)
    cli_text(reason, w->refused, sizeof(w->refused));
  uv_cond_signal(&w->changed);
  uv_mutex_unlock(&w->lock);
}

/* Waits for cond (evaluated under the lock) until deadline_ms (uv_hrtime's clock, in ms);
 * returns whether it held. */
static int wait_until(waiter *w, int (*cond)(const waiter *), uint64_t deadline_ms) {
  int held;
  uv_mutex_lock(&w->lock);
  for (;;) {
    uint64_t now = uv_hrtime() / 1000000u;
    if ((held = cond(w)) || now >= deadline_ms)
      break;
    (void)uv_cond_timedwait(&w->changed, &w->lock, (deadline_ms - now) * 1000000u);
  }
  uv_mutex_unlock(&w->lock);
  return held;
}

static int is_attached(const waiter *w) { return w->attached; }
static int is_over(const waiter *w) { return w->outcome != WAITING; }

/* ---- the call -------------------------------------------------------------------------- */

typedef struct call_args {
  cli_pipe pipe, event_pipe;
  const char *names_file, *names_registry; /* resolved once every option is known */
  pm_client_options opts;
  pm_encoding enc;
  unsigned long long id, wait_timeout_ms;
  int verbose, json, wait;
} call_args;

/* The options, wherever they are; the arguments left at argv[optind..]. */
static int parse_options(int argc, char **argv, call_args *a) {
  unsigned long long n;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:e:v", long_options, NULL)) != -1) {
    switch (c) {
    case 'c':
      a->pipe.pipe = optarg;
      break;
    case 'e':
      a->event_pipe.pipe = optarg;
      break;
    case OPT_XML:
      a->enc = PM_ENC_XML;
      break;
    case OPT_JSON:
      a->json = 1;
      break;
    case OPT_ID:
      if (cli_parse_number("--id", optarg, 1, INT64_MAX, &a->id) < 0)
        return -1;
      break;
    case OPT_CONNECT_TIMEOUT:
      if (cli_parse_number("--connect-timeout-ms", optarg, 1, UINT32_MAX, &n) < 0)
        return -1;
      a->opts.connect_timeout_ms = (uint32_t)n;
      break;
    case OPT_TIMEOUT:
      if (cli_parse_number("--timeout-ms", optarg, 1, UINT32_MAX, &n) < 0)
        return -1;
      a->opts.response_timeout_ms = (uint32_t)n;
      break;
    case OPT_WAIT:
      a->wait = 1;
      break;
    case OPT_WAIT_TIMEOUT:
      if (cli_parse_number("--wait-timeout-ms", optarg, 1, UINT32_MAX, &a->wait_timeout_ms) < 0)
        return -1;
      break;
    case 'v':
      a->verbose = 1;
      break;
    case CLI_OPT_NAMES_FILE:
      a->names_file = optarg;
      break;
    case CLI_OPT_NAMES_REGISTRY:
      a->names_registry = optarg;
      break;
    case CLI_OPT_EXPECT_OWNER:
      /* One owner is trusted for both pipes. */
      if (cli_pipe_option(c, optarg, NULL, NULL, &a->pipe) < 0 ||
          cli_pipe_option(c, optarg, NULL, NULL, &a->event_pipe) < 0)
        return -1;
      break;
    case OPT_HELP:
      cli_print_text(cmd_call_usage, stdout);
      return 1;
    default:
      fputs("Try 'pipemsg call --help'.\n", stderr);
      return -1;
    }
  }
  return 0;
}

/* --names-file and --names-registry name the command pipe, and the event pipe too for
 * --wait (only then need it be there). */
static int resolve_names(call_args *a) {
  int opt = a->names_file != NULL ? CLI_OPT_NAMES_FILE : CLI_OPT_NAMES_REGISTRY;
  const char *arg = a->names_file != NULL ? a->names_file : a->names_registry;
  if (arg == NULL)
    return 0;
  if (cli_pipe_option(opt, arg, "command-pipe", "CommandPipe", &a->pipe) < 0)
    return -1;
  return a->wait ? cli_pipe_option(opt, arg, "event-pipe", "EventPipe", &a->event_pipe) : 0;
}

int cli_pipe_error(const char *sub, const char *pipe, int rc) {
  char path[PM_PIPE_PATH_MAX + 1] = "";
  int prc = pm_pipe_path(pipe, path, sizeof(path));
  const char *result = pm_client_result(rc);
  if (prc < 0)
    fprintf(stderr, "pipemsg %s: %s: %s: %s\n", sub, pipe, result, pm_strerror(rc));
  else
    fprintf(stderr, "pipemsg %s: %s: %s: %s\n", sub, path, result, pm_strerror(rc));
  return cli_exit_status(result);
}

int cmd_call(int argc, char **argv) {
  call_args a = {.pipe = {.pipe = pm_pipe_default(PM_PIPE_COMMAND)},
                 .event_pipe = {.pipe = pm_pipe_default(PM_PIPE_EVENT)},
                 .enc = PM_ENC_JSON,
                 .wait_timeout_ms = CALL_WAIT_TIMEOUT_MS_DEFAULT};
  pm_msg *request = NULL, *response = NULL;
  pm_event_client *observer = NULL;
  waiter w = {.target = NULL};
  int waiter_ready = 0;
  json_t *params = NULL, *fields = NULL, *data;
  const pm__ct_command *declared;
  const char *name, *result, *message = NULL;
  uint64_t sent_ms;
  int rc, status = CLI_EXIT_USAGE;

  if ((rc = parse_options(argc, argv, &a)) != 0)
    return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
  if (resolve_names(&a) < 0)
    return CLI_EXIT_USAGE;
  if (optind >= argc) {
    fputs("pipemsg call: COMMAND is required\nTry 'pipemsg call --help'.\n", stderr);
    return CLI_EXIT_USAGE;
  }
  name = argv[optind];
  declared = pm__contract_command(name, true);
  if (declared == NULL && pm_name_valid(name)) {
    const char *closest = pm__contract_closest_command(name, true);
    fprintf(stderr, "pipemsg call: note: '%s' is not in this pipemsg's contract", name);
    if (closest != NULL)
      fprintf(stderr, " (did you mean '%s'?)", closest);
    fputs("; sending it as given, Key=Value typed by guessing\n", stderr);
  }
  if (a.wait) {
    if (strcmp(name, "StartVpn") == 0) {
      w.target = "Connected";
    } else if (strcmp(name, "StopVpn") == 0) {
      w.target = "Disconnected";
    } else {
      fprintf(stderr, "pipemsg call: --wait is for StartVpn and StopVpn, not '%s'\n", name);
      return CLI_EXIT_USAGE;
    }
  }
  if (argc - optind > 1) {
    params = json_object();
    if (params == NULL || parse_params(declared, argc - optind - 1, argv + optind + 1, params) < 0)
      goto done;
  }
  rc = pm_request_new(name, (int64_t)a.id, params, &request);
  params = NULL;
  if (rc < 0) {
    fprintf(stderr, "pipemsg call: cannot build request: %s\n", pm_strerror(rc));
    goto done;
  }
  if (a.verbose)
    show(">", request, a.enc);
  a.opts.expect_owner_uid = a.pipe.expect_owner_uid;
  a.opts.expect_owner_sid = a.pipe.expect_owner_sid[0] ? a.pipe.expect_owner_sid : NULL;
  if (a.wait) {
    /* Attached before the command is sent, so no transition it causes can be missed. */
    pm_event_client_options eo = {.observe = true,
                                  .encoding = a.enc,
                                  .client_name = "pipemsg call --wait",
                                  .expect_owner_uid = a.event_pipe.expect_owner_uid,
                                  .on_event = on_wait_event,
                                  .on_state = on_wait_state,
                                  .data = &w};
    eo.expect_owner_sid = a.event_pipe.expect_owner_sid[0] ? a.event_pipe.expect_owner_sid
                                                            : NULL;
    if (uv_mutex_init(&w.lock) < 0)
      goto no_waiter;
    if (uv_cond_init(&w.changed) < 0) {
      uv_mutex_destroy(&w.lock);
      goto no_waiter;
    }
    waiter_ready = 1;
    w.progress = cli_stdout_is_tty();
    w.command = name;
    rc = pm_event_client_start(a.event_pipe.pipe, &eo, &observer);
    if (rc < 0) {
      status = cli_pipe_error("call", a.event_pipe.pipe, rc);
      goto done;
    }
    if (!wait_until(&w, is_attached,
                    uv_hrtime() / 1000000u +
                        (a.opts.connect_timeout_ms ? a.opts.connect_timeout_ms
                                                   : PM_CONNECT_TIMEOUT_MS_DEFAULT))) {
      char path[PM_PIPE_PATH_MAX + 1] = "";
      pm_pipe_path(a.event_pipe.pipe, path, sizeof(path));
      fprintf(stderr, "pipemsg call: %s: cannot observe the event pipe%s%s\n",
              path[0] ? path : a.event_pipe.pipe, w.refused[0] ? ": " : "", w.refused);
      status = strstr(w.refused, "NotAuthorized") != NULL ? CLI_EXIT_NOT_AUTHORIZED
                                                         : CLI_EXIT_TRANSPORT;
      goto done;
    }
  }
  rc = pm_command_client_call(a.pipe.pipe, &a.opts, request, a.enc, &response);
  if (rc < 0) {
    status = cli_pipe_error("call", a.pipe.pipe, rc);
    goto done;
  }
  sent_ms = uv_hrtime() / 1000000u;
  if (a.verbose)
    show("<", response, pm_msg_encoding(response));
  if (pm_msg_get_string(response, "Result", &result) < 0)
    result = "(none)";
  pm_msg_get_string(response, "Message", &message);
  status = cli_exit_status(result);
  if ((fields = typed_response(declared, response)) == NULL) {
    fputs("pipemsg call: out of memory\n", stderr);
    status = CLI_EXIT_RESULT;
    goto done;
  }
  if (status == CLI_EXIT_OK && a.wait) {
    int over = wait_until(&w, is_over, sent_ms + a.wait_timeout_ms);
    if (w.progress)
      fputc('\n', stdout);
    if (!over) {
      fprintf(stderr, "pipemsg call: %s: not %s after %llu ms (--wait-timeout-ms)\n", name,
              w.target, a.wait_timeout_ms);
      status = CLI_EXIT_TRANSPORT;
      goto done;
    }
    if (w.outcome == FAILED) {
      fprintf(stderr, "pipemsg call: %s: the attempt failed: LastError: %s\n", name,
              w.error[0] ? w.error : "(none given)");
      status = CLI_EXIT_RESULT;
      goto done;
    }
  }
  if (a.json) {
    json_t *whole = json_pack("{s:O}", pm_msg_kind(response), fields);
    if (whole != NULL)
      cli_put_json(stdout, whole, JSON_COMPACT | JSON_ENCODE_ANY);
    fputc('\n', stdout);
    json_decref(whole);
  } else if ((data = json_object_get(fields, "Data")) != NULL) {
    cli_put_json(stdout, data, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', stdout);
  }
  if (status != CLI_EXIT_OK) {
    fprintf(stderr, "pipemsg call: %s: ", name);
    cli_put_text(stderr, result);
    if (message != NULL) {
      fputs(": ", stderr);
      cli_put_text(stderr, message);
    }
    fputc('\n', stderr);
  }
  goto done;
no_waiter:
  fputs("pipemsg call: cannot set up --wait\n", stderr);
done:
  if (observer != NULL)
    pm_event_client_stop(observer);
  if (waiter_ready) {
    uv_cond_destroy(&w.changed);
    uv_mutex_destroy(&w.lock);
  }
  json_decref(params);
  json_decref(fields);
  pm_msg_free(request);
  pm_msg_free(response);
  return status;
}
