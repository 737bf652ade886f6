#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "pipemsg/pipemsg.h"

#include "cli.h"

static const char usage_head[] =
    "Usage: pipemsg watch [OPTION]...\n"
    "Attach to the event pipe and print each event as it arrives; connection changes go to\n"
    "stderr. Events are confirmed after they are printed. Ctrl-C stops.\n"
    "\n"
    "  -e, --event-pipe NAME         pipe name or path (default UnifiedSDKVPNEventPipe)\n";

static const char usage_tail[] =
    "      --json                    one JSON object per event and line:\n"
    "                                {\"Id\":..,\"Type\":..,\"Time\":..,\"Data\":..,\"Epoch\":..}\n"
    "      --xml                     talk XML to the service (output is unchanged)\n"
    "      --count N                 exit after N events\n"
    "      --handshake-timeout-ms N  connect and handshake deadline (default 3000)\n"
    "      --help                    show this help and exit\n"
    "\n"
    "Exit status: 0 when stopped or after --count events; 2 usage error.\n";

const char *const cmd_watch_usage[] = {usage_head, cli_watch_pipe_help, usage_tail, NULL};

enum {
  OPT_JSON = 256,
  OPT_XML,
  OPT_COUNT,
  OPT_HANDSHAKE_TIMEOUT,
  OPT_HELP
};

static const struct option long_options[] = {
    {"event-pipe", required_argument, NULL, 'e'},
    {"json", no_argument, NULL, OPT_JSON},
    {"xml", no_argument, NULL, OPT_XML},
    {"count", required_argument, NULL, OPT_COUNT},
    {"handshake-timeout-ms", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
    {"names-file", required_argument, NULL, CLI_OPT_NAMES_FILE},
    {"names-registry", required_argument, NULL, CLI_OPT_NAMES_REGISTRY},
    {"expect-owner", required_argument, NULL, CLI_OPT_EXPECT_OWNER},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct watch {
  int json;
  unsigned long long count; /* 0: no limit */
  unsigned long long seen;
} watch;

static void on_event(const pm_event *ev, void *data) {
  watch *w = data;
  if (w->json) {
    json_t *line = json_pack("{s:I, s:s, s:s?, s:O?, s:I}", "Id", (json_int_t)ev->id, "Type",
                             ev->type, "Time", ev->time, "Data", (json_t *)ev->data, "Epoch",
                             (json_int_t)ev->epoch);
    if (line != NULL) {
      json_dumpf(line, stdout, JSON_COMPACT);
      json_decref(line);
    }
  } else {
    printf("%s #%lld %s", ev->time ? ev->time : "-", (long long)ev->id, ev->type);
    if (ev->data != NULL) {
      fputc(' ', stdout);
      json_dumpf(ev->data, stdout, JSON_COMPACT);
    }
  }
  fputc('\n', stdout);
  fflush(stdout);
  if (w->count != 0 && ++w->seen == w->count)
    cli_stop_post();
}

static void on_state(pm_event_client_state st, const char *reason, void *data) {
  (void)data;
  if (st == PM_EVENT_CLIENT_CONNECTING || st == PM_EVENT_CLIENT_STOPPED)
    return;
  fprintf(stderr, "pipemsg watch: %s%s%s\n", pm_event_client_state_name(st),
          reason ? ": " : "", reason ? reason : "");
}

int cmd_watch(int argc, char **argv) {
  cli_pipe pipe = {.pipe = PM_EVENT_PIPE_DEFAULT};
  pm_event_client_options opts;
  pm_event_client *client;
  watch w;
  unsigned long long n;
  int c, rc;

  memset(&opts, 0, sizeof(opts));
  memset(&w, 0, sizeof(w));
  optind = 1;
  while ((c = getopt_long(argc, argv, "+e:", long_options, NULL)) != -1) {
    switch (c) {
    case 'e':
      pipe.pipe = optarg;
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
  if (cli_stop_init() < 0) {
    fputs("pipemsg watch: cannot set up stopping\n", stderr);
    return CLI_EXIT_USAGE;
  }
  opts.expect_owner_uid = pipe.expect_owner_uid;
  opts.expect_owner_sid = pipe.expect_owner_sid[0] ? pipe.expect_owner_sid : NULL;
  opts.client_name = "pipemsg watch";
  opts.on_event = on_event;
  opts.on_state = on_state;
  opts.data = &w;
  rc = pm_event_client_start(pipe.pipe, &opts, &client);
  if (rc < 0) {
    fprintf(stderr, "pipemsg watch: %s: %s\n", pipe.pipe, pm_strerror(rc));
    return CLI_EXIT_USAGE;
  }
  cli_stop_wait();
  pm_event_client_stop(client);
  return CLI_EXIT_OK;
}
