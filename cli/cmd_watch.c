#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "pipemsg/pipemsg.h"

#include "cli.h"
#include "contract.h"

static const char usage_head[] =
    "Usage: pipemsg watch [OPTION]...\n"
    "Print each event from the event pipe as it arrives; connection changes go to stderr.\n"
    "By default watch observes: it sees every event published while it is attached, confirms\n"
    "none and never takes the client slot, so the application attached as the client gets\n"
    "every event as before. With --consume it attaches as the client instead and confirms each\n"
    "event once printed. It stops on Ctrl-C, after --count events or --timeout, or when its\n"
    "output is closed (pipemsg watch | head -1): an event it could not print is not confirmed\n"
    "and stays queued for the next client.\n"
    "\n"
    "  -e, --event-pipe NAME         pipe name or path (default $PIPEMSG_EVENT_PIPE, else\n"
    "                                UnifiedSDKVPNEventPipe)\n";

static const char usage_tail[] =
    "      --consume                 attach as the client and confirm events (takes them from\n"
    "                                the application; while another client is attached, waits\n"
    "                                and retries)\n"
    "      --json                    one JSON object per event and line:\n"
    "                                {\"Id\":..,\"Type\":..,\"Time\":..,\"Data\":..,\"Epoch\":..}\n"
    "      --xml                     talk XML to the service (output is unchanged)\n"
    "      --count N                 exit after N events\n"
    "      --timeout S               give up after S seconds\n"
    "      --handshake-timeout-ms N  connect and handshake deadline (default 3000)\n"
    "      --help                    show this help and exit\n"
    "\n"
    "Exit status: 0 when stopped, after --count events or when the output closed; 1 the\n"
    "output could not be written; 2 usage error; 3 not an event pipe, or --timeout passed;\n"
    "6 refused by the service (NotAuthorized), or the pipe's owner is not trusted.\n";

const char *const cmd_watch_usage[] = {usage_head, cli_watch_pipe_help, usage_tail, NULL};

enum {
  OPT_JSON = 256,
  OPT_XML,
  OPT_COUNT,
  OPT_TIMEOUT,
  OPT_CONSUME,
  OPT_HANDSHAKE_TIMEOUT,
  OPT_HELP
};

static const struct option long_options[] = {
    {"event-pipe", required_argument, NULL, 'e'},
    {"consume", no_argument, NULL, OPT_CONSUME},
    {"json", no_argument, NULL, OPT_JSON},
    {"xml", no_argument, NULL, OPT_XML},
    {"count", required_argument, NULL, OPT_COUNT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"handshake-timeout-ms", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
    {"names-file", required_argument, NULL, CLI_OPT_NAMES_FILE},
    {"names-registry", required_argument, NULL, CLI_OPT_NAMES_REGISTRY},
    {"expect-owner", required_argument, NULL, CLI_OPT_EXPECT_OWNER},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* A service that closes this many connections in a row before answering the handshake is
 * taken for something other than an event pipe; one may be a service stopping. */
#define CLOSED_EARLY_LIMIT 2

/* --timeout's ceiling in seconds (a year). */
#define TIMEOUT_MAX_S (366ull * 24 * 3600)

/* Touched only on the client's thread until pm_event_client_stop has joined it. */
typedef struct watch {
  int json, consume;
  unsigned long long count; /* 0: no limit */
  unsigned long long seen;
  int status;               /* set once by finish; -1 while watching */
  char message[PM_REASON_MAX + 64];
  char last_line[PM_REASON_MAX + 64]; /* a state line is not printed twice in a row */
  int closed_early;
} watch;

/* The first reason to stop wins; main prints the message and exits with status. */
static void finish(watch *w, int status, const char *message) {
  if (w->status >= 0)
    return;
  w->status = status;
  snprintf(w->message, sizeof(w->message), "%s", message ? message : "");
  cli_stop_post();
}

/* An XML event's Data in the contract's types, as the same event in JSON has them (leniently:
 * a field the contract does not declare is kept as it came). A new reference, or NULL. */
static json_t *typed_data(const pm_event *ev) {
  const pm__ct_event *e = pm__contract_event(ev->type);
  json_t *typed = NULL;
  char why[PM_REASON_MAX];
  if (ev->data == NULL)
    return NULL;
  if (ev->encoding == PM_ENC_XML && e != NULL &&
      pm__contract_check(e->fields, e->n_fields, ev->data, true, false, ev->type, &typed, why) ==
          0)
    return typed;
  return json_incref((json_t *)ev->data);
}

static int on_take(const pm_event *ev, void *data) {
  watch *w = data;
  json_t *typed;
  if (w->status >= 0)
    return -1; /* stopping: nothing more is taken */
  typed = typed_data(ev);
  if (w->json) {
    json_t *line = json_pack("{s:I, s:s, s:s?, s:O?, s:I}", "Id", (json_int_t)ev->id, "Type",
                             ev->type, "Time", ev->time, "Data", typed, "Epoch",
                             (json_int_t)ev->epoch);
    if (line != NULL) {
      cli_put_json(stdout, line, JSON_COMPACT);
      json_decref(line);
    }
  } else {
    cli_put_text(stdout, ev->time ? ev->time : "-");
    printf(" #%lld ", (long long)ev->id);
    cli_put_text(stdout, ev->type);
    if (typed != NULL) {
      fputc(' ', stdout);
      cli_put_json(stdout, typed, JSON_COMPACT);
    }
  }
  json_decref(typed);
  fputc('\n', stdout);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    char why[128];
    /* A closed pipe is the reader saying it has had enough (head -1), not a failure. */
    snprintf(why, sizeof(why), "cannot write the output: %s", strerror(errno));
    finish(w, errno == EPIPE ? CLI_EXIT_OK : CLI_EXIT_RESULT, errno == EPIPE ? NULL : why);
    return -1;
  }
  if (++w->seen == w->count)
    finish(w, CLI_EXIT_OK, NULL);
  return 0;
}

static void on_state(pm_event_client_state st, const char *reason, void *data) {
  watch *w = data;
  char line[sizeof(w->last_line)];
  if (st == PM_EVENT_CLIENT_CONNECTING || st == PM_EVENT_CLIENT_STOPPED)
    return;
  if (st == PM_EVENT_CLIENT_CONNECTED) {
    w->closed_early = 0;
    snprintf(line, sizeof(line), "%s", w->consume ? "connected" : "connected (observing)");
  } else if (reason == NULL) {
    snprintf(line, sizeof(line), "disconnected");
  } else if (strcmp(reason, PM_EVENT_CLIENT_NOT_TAKEN) == 0) {
    return; /* we are stopping */
  } else if (strcmp(reason, PM_DISCONNECT_NOT_AUTHORIZED) == 0) {
    finish(w, CLI_EXIT_NOT_AUTHORIZED, "the service refused us (NotAuthorized)");
    return;
  } else if (strcmp(reason, PM_EVENT_CLIENT_NOT_TRUSTED) == 0) {
    /* Another user's pipe is an impostor's, as for call: said once, not retried. */
    finish(w, CLI_EXIT_NOT_AUTHORIZED,
           "the pipe belongs to an unexpected user (not trusted; see --expect-owner)");
    return;
  } else if (strcmp(reason, PM_EVENT_CLIENT_NOT_EVENT_PIPE) == 0) {
    finish(w, CLI_EXIT_TRANSPORT,
           "not an event pipe (the command pipe?): it answered the handshake with a Response");
    return;
  } else if (strcmp(reason, PM_EVENT_CLIENT_CLOSED_EARLY) == 0 &&
             ++w->closed_early == CLOSED_EARLY_LIMIT) {
    finish(w, CLI_EXIT_TRANSPORT,
           "not an event pipe: it closes each connection before answering the handshake");
    return;
  } else if (strcmp(reason, PM_DISCONNECT_BUSY) == 0) {
    snprintf(line, sizeof(line), "%s",
             w->consume
                 ? "another client is attached; retrying until it leaves"
                 : "the service takes no more observers (of this user, or at all); retrying");
  } else {
    static const char head[] = "disconnected: ";
    memcpy(line, head, sizeof(head) - 1);
    cli_text(reason, line + sizeof(head) - 1, sizeof(line) - (sizeof(head) - 1));
  }
  if (strcmp(line, w->last_line) == 0)
    return;
  memcpy(w->last_line, line, sizeof(line));
  fprintf(stderr, "pipemsg watch: %s\n", line);
}

int cmd_watch(int argc, char **argv) {
  cli_pipe pipe = {.pipe = pm_pipe_default(PM_PIPE_EVENT)};
  pm_event_client_options opts;
  pm_event_client *client;
  char path[PM_PIPE_PATH_MAX + 1];
  watch w;
  unsigned long long n, timeout_s = 0;
  int c, rc, stop;

  memset(&opts, 0, sizeof(opts));
  memset(&w, 0, sizeof(w));
  w.status = -1;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+e:", long_options, NULL)) != -1) {
    switch (c) {
    case 'e':
      pipe.pipe = optarg;
      break;
    case OPT_CONSUME:
      w.consume = 1;
      break;
    case OPT_JSON:
      w.json = 1;
      break;
    case OPT_XML:
      opts.encoding = PM_ENC_XML;
      break;
    case OPT_COUNT:
      if (cli_parse_number("--count", optarg, 1, UINT64_MAX, &w.count) < 0)
        return CLI_EXIT_USAGE;
      break;
    case OPT_TIMEOUT:
      if (cli_parse_number("--timeout", optarg, 1, TIMEOUT_MAX_S, &timeout_s) < 0)
        return CLI_EXIT_USAGE;
      break;
    case OPT_HANDSHAKE_TIMEOUT:
      if (cli_parse_number("--handshake-timeout-ms", optarg, 1, UINT32_MAX, &n) < 0)
        return CLI_EXIT_USAGE;
      opts.handshake_timeout_ms = (uint32_t)n;
      break;
    case CLI_OPT_NAMES_FILE:
    case CLI_OPT_NAMES_REGISTRY:
    case CLI_OPT_EXPECT_OWNER:
      if (cli_pipe_option(c, optarg, "event-pipe", "EventPipe", &pipe) < 0)
        return CLI_EXIT_USAGE;
      break;
    case OPT_HELP:
      cli_print_text(cmd_watch_usage, stdout);
      return CLI_EXIT_OK;
    default:
      fputs("Try 'pipemsg watch --help'.\n", stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "pipemsg watch: unexpected argument '%s'\n", argv[optind]);
    return CLI_EXIT_USAGE;
  }
  rc = pm_pipe_path(pipe.pipe, path, sizeof(path));
  if (rc < 0) {
    fprintf(stderr, "pipemsg watch: %s: %s\n", pipe.pipe, pm_strerror(rc));
    return CLI_EXIT_USAGE;
  }
  if (cli_stop_init() < 0) {
    fputs("pipemsg watch: cannot set up stopping\n", stderr);
    return CLI_EXIT_USAGE;
  }
  opts.expect_owner_uid = pipe.expect_owner_uid;
  opts.expect_owner_sid = pipe.expect_owner_sid[0] ? pipe.expect_owner_sid : NULL;
  opts.client_name = "pipemsg watch";
  opts.observe = !w.consume;
  opts.on_take = on_take;
  opts.on_state = on_state;
  opts.data = &w;
  rc = pm_event_client_start(path, &opts, &client);
  if (rc < 0) {
    fprintf(stderr, "pipemsg watch: %s: %s\n", path, pm_strerror(rc));
    return CLI_EXIT_USAGE;
  }
  stop = cli_stop_wait(timeout_s * 1000);
  pm_event_client_stop(client);
  if (w.status >= 0) {
    if (w.message[0] != '\0')
      fprintf(stderr, "pipemsg watch: %s: %s\n", path, w.message);
    return w.status;
  }
  if (stop == CLI_STOP_TIMEOUT) {
    fprintf(stderr, "pipemsg watch: %s: gave up after --timeout %llu s (%llu events)\n", path,
            timeout_s, w.seen);
    return CLI_EXIT_TRANSPORT;
  }
  return CLI_EXIT_OK;
}
