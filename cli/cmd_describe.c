/* pipemsg commands and pipemsg describe: the contract, from the running service (GetCommands)
 * when it answers, else from the one built into pipemsg. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "pipemsg/pipemsg.h"

#include "cli.h"
#include "contract.h"

/* How long commands and describe wait for a service before showing the built-in contract:
 * long enough for a busy service, short enough not to stall an interactive user. */
#define DISCOVERY_CONNECT_TIMEOUT_MS_DEFAULT 1000u
/* The service's commands describe considers for a "did you mean" (its contract has 15). */
#define DESCRIBE_SUGGEST_MAX 128

static const char usage_head[] =
    "Usage: pipemsg commands [OPTION]...\n"
    "       pipemsg describe [OPTION]... COMMAND\n"
    "commands lists the commands with one-line docs; describe shows one: its parameters\n"
    "(type, required or default, doc), its answer's Data fields and its results. Both ask\n"
    "the running service (GetCommands) and, when it does not answer, show the contract built\n"
    "into pipemsg; stderr says which.\n"
    "\n"
    "  -c, --command-pipe NAME     pipe name or path (default $PIPEMSG_COMMAND_PIPE, else\n"
    "                              UnifiedSDKVPNCommandPipe)\n";

static const char usage_tail[] =
    "      --offline               show the built-in contract without asking the service\n"
    "      --json                  print the contract's JSON (GetCommands' Data, or the\n"
    "                              command's entry in it)\n"
    "      --connect-timeout-ms N  wait this long for the service (default 1000)\n"
    "      --help                  show this help and exit\n"
    "\n"
    "Exit status: 0 shown; 2 usage error or an unknown COMMAND.\n";

const char *const cmd_commands_usage[] = {usage_head, cli_call_pipe_help, usage_tail, NULL};

enum { OPT_OFFLINE = 256, OPT_JSON, OPT_CONNECT_TIMEOUT, OPT_HELP };

static const struct option long_options[] = {
    {"command-pipe", required_argument, NULL, 'c'},
    {"offline", no_argument, NULL, OPT_OFFLINE},
    {"json", no_argument, NULL, OPT_JSON},
    {"connect-timeout-ms", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"names-file", required_argument, NULL, CLI_OPT_NAMES_FILE},
    {"names-registry", required_argument, NULL, CLI_OPT_NAMES_REGISTRY},
    {"expect-owner", required_argument, NULL, CLI_OPT_EXPECT_OWNER},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct discovery {
  const char *sub; /* "commands" or "describe" */
  cli_pipe pipe;
  pm_client_options opts;
  int offline, json;
} discovery;

/* The contract: GetCommands' Data from the service, or the built-in one (with the test-only
 * commands when test_commands); says on stderr which. A new reference, NULL when out of
 * memory. */
static json_t *contract_of(const discovery *d, bool test_commands) {
  char path[PM_PIPE_PATH_MAX + 1] = "", why[PM_REASON_MAX] = "--offline";
  pm_msg *request = NULL, *response = NULL;
  const char *result;
  char shown[64];
  json_t *data = NULL;
  int rc;
  if (pm_pipe_path(d->pipe.pipe, path, sizeof(path)) < 0)
    snprintf(path, sizeof(path), "%s", d->pipe.pipe);
  if (!d->offline) {
    rc = pm_request_new("GetCommands", 0, NULL, &request);
    if (rc == 0)
      rc = pm_command_client_call(d->pipe.pipe, &d->opts, request, PM_ENC_JSON, &response);
    if (rc < 0) {
      snprintf(why, sizeof(why), "%s: %s", pm_client_result(rc), pm_strerror(rc));
    } else if (pm_msg_get_string(response, "Result", &result) == 0 &&
               strcmp(result, PM_RESULT_OK) == 0 &&
               json_is_array(json_object_get(
                   (data = json_object_get(pm_msg_fields(response), "Data")), "Commands"))) {
      fprintf(stderr, "pipemsg %s: from the service at %s\n", d->sub, path);
      json_incref(data);
      pm_msg_free(request);
      pm_msg_free(response);
      return data;
    } else {
      /* A service older than GetCommands answers BadRequest. */
      snprintf(why, sizeof(why), "GetCommands answered %s",
               rc == 0 ? cli_text(result, shown, sizeof(shown)) : "nothing");
    }
    pm_msg_free(request);
    pm_msg_free(response);
  }
  fprintf(stderr, "pipemsg %s: from pipemsg's built-in contract (the service at %s: %s)\n",
          d->sub, path, why);
  return pm__contract_describe(test_commands);
}

/* Parses the options; the arguments left at argv[optind..]. 1: --help shown; -1: bad. */
static int parse_options(int argc, char **argv, discovery *d) {
  unsigned long long n;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:", long_options, NULL)) != -1) {
    switch (c) {
    case 'c':
      d->pipe.pipe = optarg;
      break;
    case OPT_OFFLINE:
      d->offline = 1;
      break;
    case OPT_JSON:
      d->json = 1;
      break;
    case OPT_CONNECT_TIMEOUT:
      if (cli_parse_number("--connect-timeout-ms", optarg, 1, UINT32_MAX, &n) < 0)
        return -1;
      d->opts.connect_timeout_ms = (uint32_t)n;
      break;
    case CLI_OPT_NAMES_FILE:
    case CLI_OPT_NAMES_REGISTRY:
    case CLI_OPT_EXPECT_OWNER:
      if (cli_pipe_option(c, optarg, "command-pipe", "CommandPipe", &d->pipe) < 0)
        return -1;
      break;
    case OPT_HELP:
      cli_print_text(cmd_commands_usage, stdout);
      return 1;
    default:
      fprintf(stderr, "Try 'pipemsg %s --help'.\n", d->sub);
      return -1;
    }
  }
  d->opts.expect_owner_uid = d->pipe.expect_owner_uid;
  d->opts.expect_owner_sid = d->pipe.expect_owner_sid[0] ? d->pipe.expect_owner_sid : NULL;
  return 0;
}

static void discovery_init(discovery *d, const char *sub) {
  memset(d, 0, sizeof(*d));
  d->sub = sub;
  d->pipe.pipe = pm_pipe_default(PM_PIPE_COMMAND);
  d->opts.connect_timeout_ms = DISCOVERY_CONNECT_TIMEOUT_MS_DEFAULT;
}

static const char *text(const json_t *v) {
  const char *s = json_string_value(v);
  return s != NULL ? s : "";
}

static const char *str(const json_t *o, const char *key) { return text(json_object_get(o, key)); }

/* The contract may be the service's: its strings are printed escaped. */
static void put(const char *s) { cli_put_text(stdout, s); }

int cmd_commands(int argc, char **argv) {
  discovery d;
  json_t *contract, *c, *commands;
  size_t i, width = 0;
  int rc;
  discovery_init(&d, "commands");
  if ((rc = parse_options(argc, argv, &d)) != 0)
    return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
  if (optind < argc) {
    fprintf(stderr, "pipemsg commands: unexpected argument '%s'\n", argv[optind]);
    return CLI_EXIT_USAGE;
  }
  if ((contract = contract_of(&d, false)) == NULL) {
    fputs("pipemsg commands: out of memory\n", stderr);
    return CLI_EXIT_RESULT;
  }
  commands = json_object_get(contract, "Commands");
  if (d.json) {
    cli_put_json(stdout, commands, JSON_INDENT(2));
    fputc('\n', stdout);
  } else {
    json_array_foreach(commands, i, c) {
      if (cli_put_text(NULL, str(c, "Name")) > width)
        width = cli_put_text(NULL, str(c, "Name"));
    }
    json_array_foreach(commands, i, c) {
      size_t shown = cli_put_text(stdout, str(c, "Name"));
      printf("%*s  ", (int)(width - shown), "");
      put(str(c, "Doc"));
      fputc('\n', stdout);
    }
  }
  json_decref(contract);
  return CLI_EXIT_OK;
}

/* "string, default \"auto\", 1 to 64 bytes of A-Za-z0-9._-" and the like. */
static void print_type(const json_t *p, int param) {
  const json_t *v;
  size_t i;
  const json_t *item;
  put(str(p, "Type"));
  if (json_is_string(json_object_get(p, "Items"))) {
    fputs(" of ", stdout);
    put(str(p, "Items"));
  }
  if ((v = json_object_get(p, "Values")) != NULL) {
    fputs(" (", stdout);
    json_array_foreach(v, i, item) {
      fputs(i ? " | " : "", stdout);
      put(text(item));
    }
    fputc(')', stdout);
  }
  if (json_object_get(p, "Min") != NULL || json_object_get(p, "Max") != NULL) {
    fputs(", ", stdout);
    if (json_object_get(p, "Min") != NULL)
      printf("%lld", (long long)json_integer_value(json_object_get(p, "Min")));
    fputs(" to ", stdout);
    if (json_object_get(p, "Max") != NULL)
      printf("%lld", (long long)json_integer_value(json_object_get(p, "Max")));
  }
  if (json_object_get(p, "MaxLength") != NULL)
    printf(", %lld to %lld bytes", (long long)json_integer_value(json_object_get(p, "MinLength")),
           (long long)json_integer_value(json_object_get(p, "MaxLength")));
  if (json_object_get(p, "Charset") != NULL) {
    fputs(" of ", stdout);
    put(str(p, "Charset"));
  }
  if (json_object_get(p, "Format") != NULL) {
    fputs(", format ", stdout);
    put(str(p, "Format"));
  }
  if (json_object_get(p, "MaxItems") != NULL)
    printf(", at most %lld", (long long)json_integer_value(json_object_get(p, "MaxItems")));
  if (json_is_true(json_object_get(p, "Required"))) {
    fputs(param ? ", required" : "", stdout);
  } else if ((v = json_object_get(p, "Default")) != NULL) {
    fputs(", default ", stdout);
    cli_put_json(stdout, v, JSON_ENCODE_ANY);
  } else {
    fputs(", optional", stdout);
  }
}

static void print_fields(const char *title, const json_t *fields, int param) {
  size_t i;
  const json_t *f;
  printf("%s:%s\n", title, json_array_size(fields) == 0 ? " none" : "");
  json_array_foreach(fields, i, f) {
    fputs("  ", stdout);
    put(str(f, "Name"));
    fputs(": ", stdout);
    print_type(f, param);
    fputs("\n      ", stdout);
    put(str(f, "Doc"));
    fputc('\n', stdout);
  }
}

int cmd_describe(int argc, char **argv) {
  discovery d;
  json_t *contract, *c, *found = NULL, *results;
  const char *names[DESCRIBE_SUGGEST_MAX];
  size_t i, n = 0;
  int rc, status = CLI_EXIT_USAGE;
  discovery_init(&d, "describe");
  if ((rc = parse_options(argc, argv, &d)) != 0)
    return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
  if (argc - optind != 1) {
    fputs("pipemsg describe: one COMMAND is required\nTry 'pipemsg describe --help'.\n", stderr);
    return CLI_EXIT_USAGE;
  }
  if ((contract = contract_of(&d, true)) == NULL) {
    fputs("pipemsg describe: out of memory\n", stderr);
    return CLI_EXIT_RESULT;
  }
  json_array_foreach(json_object_get(contract, "Commands"), i, c) {
    if (strcmp(str(c, "Name"), argv[optind]) == 0)
      found = c;
    if (n < sizeof(names) / sizeof(names[0]))
      names[n++] = str(c, "Name");
  }
  if (found == NULL) {
    const char *closest = pm__contract_closest(argv[optind], names, n);
    fprintf(stderr, "pipemsg describe: unknown command '%s'", argv[optind]);
    if (closest != NULL) {
      fputs("; did you mean '", stderr);
      cli_put_text(stderr, closest);
      fputs("'?\n", stderr);
    } else {
      fputs(" (pipemsg commands lists them)\n", stderr);
    }
  } else if (d.json) {
    cli_put_json(stdout, found, JSON_INDENT(2));
    fputc('\n', stdout);
    status = CLI_EXIT_OK;
  } else {
    /* GetCommands lists no parameters for a command taking any (Echo); the built-in contract
     * tells them apart. */
    const pm__ct_command *local = pm__contract_command(argv[optind], true);
    put(str(found, "Name"));
    fputs(": ", stdout);
    put(str(found, "Doc"));
    fputc('\n', stdout);
    if (local != NULL && local->any_params)
      puts("Params: any (Key=Value typed by guessing)");
    else
      print_fields("Params", json_object_get(found, "Params"), 1);
    if (local != NULL && local->any_data)
      puts("Answer Data: any");
    else
      print_fields("Answer Data", json_object_get(found, "Data"), 0);
    fputs("Results: Ok, BadRequest", stdout);
    results = json_object_get(found, "Results");
    json_array_foreach(results, i, c) {
      fputs(", ", stdout);
      put(text(c));
    }
    fputc('\n', stdout);
    status = CLI_EXIT_OK;
  }
  json_decref(contract);
  return status;
}
