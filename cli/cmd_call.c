#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipemsg/pipemsg.h"

#include "cli.h"

static const char usage_head[] =
    "Usage: pipemsg call [OPTION]... COMMAND [Key=Value | Key:=JSON]...\n"
    "Send one request on the command pipe and print the response's Data as JSON.\n"
    "\n"
    "  -c, --command-pipe NAME     pipe name or path (default UnifiedSDKVPNCommandPipe)\n";

static const char usage_tail[] =
    "      --xml                   send the request as XML (the answer comes in XML)\n"
    "      --id N                  request Id to send (echoed by the service)\n"
    "      --connect-timeout-ms N  wait this long for the service to accept (default 3000)\n"
    "      --timeout-ms N          wait this long for the response (default 180000)\n"
    "  -v, --verbose               show the request and the response on stderr\n"
    "      --help                  show this help and exit\n"
    "\n"
    "Key=Value puts a parameter in Params: true/false become booleans, decimal integers\n"
    "become numbers, anything else a string. Key:=JSON takes a JSON value as is.\n"
    "\n"
    "Exit status: 0 Ok; 1 the service answered another Result (printed on stderr);\n"
    "2 usage error; 3 no answer (ConnectionTimeout, Timeout or TransportError).\n";

const char *const cmd_call_usage[] = {usage_head, cli_call_pipe_help, usage_tail, NULL};

enum {
  OPT_XML = 256,
  OPT_ID,
  OPT_CONNECT_TIMEOUT,
  OPT_TIMEOUT,
  OPT_HELP
};

static const struct option long_options[] = {
    {"command-pipe", required_argument, NULL, 'c'},
    {"xml", no_argument, NULL, OPT_XML},
    {"id", required_argument, NULL, OPT_ID},
    {"connect-timeout-ms", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"names-file", required_argument, NULL, CLI_OPT_NAMES_FILE},
    {"names-registry", required_argument, NULL, CLI_OPT_NAMES_REGISTRY},
    {"expect-owner", required_argument, NULL, CLI_OPT_EXPECT_OWNER},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Types a Key=Value argument the way a shell user means it. */
static json_t *typed_value(const char *text) {
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

/* Adds each Key=Value / Key:=JSON argument to params; -1 with a message on a bad one. */
static int parse_params(int count, char **args, json_t *params) {
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
    } else {
      value = typed_value(eq + 1);
    }
    if (value == NULL || json_object_set_new(params, args[i], value) < 0) {
      fprintf(stderr, "pipemsg call: out of memory\n");
      return -1;
    }
  }
  return 0;
}

static void show(const char *prefix, const pm_msg *m, pm_encoding enc) {
  uint8_t *buf;
  size_t len;
  if (pm_msg_encode(m, enc, &buf, &len) == 0) {
    fprintf(stderr, "%s %.*s\n", prefix, (int)len, (const char *)buf);
    pm_free(buf);
  }
}

int cmd_call(int argc, char **argv) {
  cli_pipe pipe = {.pipe = PM_COMMAND_PIPE_DEFAULT};
  pm_client_options opts = {0};
  pm_encoding enc = PM_ENC_JSON;
  unsigned long long id = 0, n;
  pm_msg *request = NULL, *response = NULL;
  json_t *params = NULL;
  const char *result, *message = NULL;
  json_t *data;
  int verbose = 0, c, rc, status = CLI_EXIT_USAGE;

  optind = 1;
  while ((c = getopt_long(argc, argv, "+c:v", long_options, NULL)) != -1) {
    switch (c) {
    case 'c':
      pipe.pipe = optarg;
      break;
    case OPT_XML:
      enc = PM_ENC_XML;
      break;
    case OPT_ID:
      if (cli_parse_number("--id", optarg, 1, INT64_MAX, &id) < 0)
        return CLI_EXIT_USAGE;
      break;
    case OPT_CONNECT_TIMEOUT:
      if (cli_parse_number("--connect-timeout-ms", optarg, 1, UINT32_MAX, &n) < 0)
        return CLI_EXIT_USAGE;
      opts.connect_timeout_ms = (uint32_t)n;
      break;
    case OPT_TIMEOUT:
      if (cli_parse_number("--timeout-ms", optarg, 1, UINT32_MAX, &n) < 0)
        return CLI_EXIT_USAGE;
      opts.response_timeout_ms = (uint32_t)n;
      break;
    case 'v':
      verbose = 1;
      break;
    case CLI_OPT_NAMES_FILE:
    case CLI_OPT_NAMES_REGISTRY:
    case CLI_OPT_EXPECT_OWNER:
      if (cli_pipe_option(c, optarg, "command-pipe", "CommandPipe", &pipe) < 0)
        return CLI_EXIT_USAGE;
      break;
    case OPT_HELP:
      cli_print_text(cmd_call_usage, stdout);
      return CLI_EXIT_OK;
    default:
      fputs("Try 'pipemsg call --help'.\n", stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    fputs("pipemsg call: COMMAND is required\nTry 'pipemsg call --help'.\n", stderr);
    return CLI_EXIT_USAGE;
  }
  if (argc - optind > 1) {
    params = json_object();
    if (params == NULL || parse_params(argc - optind - 1, argv + optind + 1, params) < 0)
      goto done;
  }
  rc = pm_request_new(argv[optind], (int64_t)id, params, &request);
  params = NULL;
  if (rc < 0) {
    fprintf(stderr, "pipemsg call: cannot build request: %s\n", pm_strerror(rc));
    goto done;
  }
  if (verbose)
    show(">", request, enc);
  opts.expect_owner_uid = pipe.expect_owner_uid;
  opts.expect_owner_sid = pipe.expect_owner_sid[0] ? pipe.expect_owner_sid : NULL;
  rc = pm_command_client_call(pipe.pipe, &opts, request, enc, &response);
  if (rc < 0) {
    char path[PM_PIPE_PATH_MAX + 1] = "";
    pm_pipe_path(pipe.pipe, path, sizeof(path));
    fprintf(stderr, "pipemsg: %s: %s: %s (%s)\n", argv[optind], pm_client_result(rc),
            pm_strerror(rc), path[0] ? path : pipe.pipe);
    status = CLI_EXIT_TRANSPORT;
    goto done;
  }
  if (verbose)
    show("<", response, pm_msg_encoding(response));
  if (pm_msg_get_string(response, "Result", &result) < 0)
    result = "(none)";
  pm_msg_get_string(response, "Message", &message);
  data = json_object_get(pm_msg_fields(response), "Data");
  if (data != NULL) {
    json_dumpf(data, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', stdout);
  }
  if (strcmp(result, PM_RESULT_OK) == 0) {
    status = CLI_EXIT_OK;
  } else {
    fprintf(stderr, "pipemsg: %s: %s%s%s\n", argv[optind], result, message ? ": " : "",
            message ? message : "");
    status = CLI_EXIT_RESULT;
  }
done:
  json_decref(params);
  pm_msg_free(request);
  pm_msg_free(response);
  return status;
}
