#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pipemsg/pipemsg.h"

#include "config.h"

/* Longest timeout or interval an option takes: a day. */
#define MS_MAX (24ull * 3600 * 1000)
/* Longest line of a key = value config file. */
#define CONFIG_LINE_MAX 4096

typedef enum {
  T_STR,   /* char * */
  T_MS,    /* uint32_t, milliseconds */
  T_SIZE,  /* size_t */
  T_FLAG,  /* int, no argument on the command line; true/false in a file */
  T_LIST,  /* config_strings, repeatable */
  T_UIDS,  /* config_ids, repeatable, user names or numbers */
  T_GIDS,  /* config_ids, repeatable, group names or numbers */
  T_MODE,  /* unsigned, octal */
  T_ENUM,  /* int, index into choices */
  T_ACTION /* command line only */
} opt_type;

typedef struct opt {
  const char *name;
  int short_name;
  opt_type type;
  size_t offset;
  unsigned long long min, max;
  const char *arg;
  const char *help;
  const char *const *choices; /* T_ENUM; T_ACTION: NULL */
} opt;

static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};
static const char *const log_targets[] = {"stderr", "syslog", NULL};
static const char *const backends[] = {"sim", "hook", NULL};

enum { ACT_CONFIG = 1, ACT_PRINT, ACT_HELP, ACT_VERSION, ACT_MAN, ACT_VERBOSE };

#define F(field) offsetof(service_config, field)
static const opt options[] = {
    {"command-pipe", 'c', T_STR, F(command_pipe), 0, 0, "NAME",
     "command pipe name or path (default UnifiedSDKVPNCommandPipe)", NULL},
    {"event-pipe", 'e', T_STR, F(event_pipe), 0, 0, "NAME",
     "event pipe name or path (default UnifiedSDKVPNEventPipe)", NULL},
    {"data-dir", 'd', T_STR, F(data_dir), 0, 0, "DIR",
     "keep the event queue and settings in DIR (created if missing); without it they live in "
     "memory",
     NULL},
    {"names-file", 0, T_STR, F(names_file), 0, 0, "FILE",
     "pick random pipe names and write them to FILE (dynamic pipe names)", NULL},
    {"request-timeout-ms", 0, T_MS, F(request_timeout_ms), 1, MS_MAX, "MS",
     "time a command client has to send its whole request (default 3000)", NULL},
    {"write-timeout-ms", 0, T_MS, F(write_timeout_ms), 1, MS_MAX, "MS",
     "time a client has to take a command response or an event (default 3000)", NULL},
    {"max-message", 0, T_SIZE, F(max_message), 1, 2147483647ull, "BYTES",
     "largest message accepted or sent (default 16777216)", NULL},
    {"handshake-timeout-ms", 0, T_MS, F(handshake_timeout_ms), 1, MS_MAX, "MS",
     "time an event client has to send its handshake (default 1000)", NULL},
    {"heartbeat-ms", 0, T_MS, F(heartbeat_ms), 1, MS_MAX, "MS",
     "idle time before a secondary handshake (default 1000)", NULL},
    {"ack-timeout-ms", 0, T_MS, F(ack_timeout_ms), 1, MS_MAX, "MS",
     "time for an event confirmation or handshake answer (default 1000)", NULL},
    {"queue-max-events", 0, T_SIZE, F(queue_max_events), 1, 100000000ull, "N",
     "events kept for delivery (default 10000)", NULL},
    {"queue-max-bytes", 0, T_SIZE, F(queue_max_bytes), 1024, SIZE_MAX, "BYTES",
     "bytes of events kept for delivery (default 67108864)", NULL},
    {"transient", 0, T_LIST, F(transient), 0, 0, "TYPE",
     "also treat events of TYPE as transient, like TrafficChanged (repeatable)", NULL},
    {"allow-uid", 0, T_UIDS, F(allow_uid), 0, 0, "UID",
     "let this user (name or number) use the pipes; root and the service's own user always may "
     "(repeatable)",
     NULL},
    {"allow-gid", 0, T_GIDS, F(allow_gid), 0, 0, "GID",
     "let members of this group (name or number) use the pipes (repeatable)", NULL},
    {"socket-mode", 0, T_MODE, F(socket_mode), 1, 0777, "MODE",
     "permissions of the socket files, octal (default 0660)", NULL},
    {"socket-group", 0, T_STR, F(socket_group), 0, 0, "GROUP",
     "group owning the socket files (default: the service's group)", NULL},
    {"backend", 0, T_ENUM, F(backend), 0, 0, "NAME",
     "what brings the tunnel up: sim (simulated, default) or hook (--up-cmd/--down-cmd)",
     backends},
    {"connect-delay-ms", 0, T_MS, F(connect_delay_ms), 0, MS_MAX, "MS",
     "sim backend: time to connect (default 1500)", NULL},
    {"sim-unreachable", 0, T_STR, F(sim_unreachable), 0, 0, "LOCATION",
     "sim backend: connecting to LOCATION fails", NULL},
    {"up-cmd", 0, T_STR, F(up_cmd), 0, 0, "COMMAND",
     "hook backend: command that brings the tunnel up (split on spaces, no shell)", NULL},
    {"down-cmd", 0, T_STR, F(down_cmd), 0, 0, "COMMAND",
     "hook backend: command that takes the tunnel down", NULL},
    {"hook-shell", 0, T_FLAG, F(hook_shell), 0, 0, NULL,
     "hook backend: run the commands with /bin/sh -c", NULL},
    {"hook-timeout-ms", 0, T_MS, F(hook_timeout_ms), 1, MS_MAX, "MS",
     "hook backend: time a command may take (default 30000)", NULL},
    {"iface", 0, T_STR, F(iface), 0, 0, "NAME",
     "read traffic counters of this network interface from the kernel", NULL},
    {"traffic-interval-ms", 0, T_MS, F(traffic_interval_ms), 1, MS_MAX, "MS",
     "period of TrafficChanged while connected (default 1000)", NULL},
    {"log-level", 0, T_ENUM, F(log_level), 0, 0, "LEVEL",
     "error, warning, info (default) or debug", log_levels},
    {"log-target", 0, T_ENUM, F(log_target), 0, 0, "TARGET", "stderr (default) or syslog",
     log_targets},
    {"test-commands", 0, T_FLAG, F(test_commands), 0, 0, NULL,
     "enable EmitEvent, for tests and demos", NULL},
    {"config", 0, T_ACTION, ACT_CONFIG, 0, 0, "FILE",
     "read options from FILE (key = value lines, or a JSON object); the command line wins",
     NULL},
    {"verbose", 'v', T_ACTION, ACT_VERBOSE, 0, 0, NULL, "same as --log-level debug", NULL},
    {"print-config", 0, T_ACTION, ACT_PRINT, 0, 0, NULL,
     "print the effective configuration and exit", NULL},
    {"help", 0, T_ACTION, ACT_HELP, 0, 0, NULL, "show this help and exit", NULL},
    {"version", 0, T_ACTION, ACT_VERSION, 0, 0, NULL, "show the version and exit", NULL},
    {"man", 0, T_ACTION, ACT_MAN, 0, 0, NULL, "print the manual page (roff) and exit", NULL},
};
#undef F
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static const char summary[] =
    "Serve VPN connection control on the pipemsg command and event pipes.";
static const char names_text[] =
    "A NAME without '/' is placed in $PIPEMSG_RUNTIME_DIR, else $XDG_RUNTIME_DIR/pipemsg, else "
    "/run/pipemsg. SIGINT and SIGTERM stop the service and remove its socket files.";

static void *field(service_config *cfg, const opt *o) { return (char *)cfg + o->offset; }

static const void *cfield(const service_config *cfg, const opt *o) {
  return (const char *)cfg + o->offset;
}

static int complain(const char *where, const opt *o, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "pipemsgd: %s%s--%s: ", where ? where : "", where ? ": " : "", o->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return -1;
}

static int parse_number(const char *s, int base, unsigned long long *out) {
  char *end;
  errno = 0;
  if (s[0] == '\0' || s[0] == '-' || isspace((unsigned char)s[0]))
    return -1;
  *out = strtoull(s, &end, base);
  return errno != 0 || *end != '\0' ? -1 : 0;
}

static int parse_id(const char *s, int group, long long *out) {
  unsigned long long v;
  if (parse_number(s, 10, &v) == 0 && v < 0xffffffffull) {
    *out = (long long)v;
    return 0;
  }
  if (group) {
    struct group *g = getgrnam(s);
    if (g == NULL)
      return -1;
    *out = g->gr_gid;
  } else {
    struct passwd *p = getpwnam(s);
    if (p == NULL)
      return -1;
    *out = p->pw_uid;
  }
  return 0;
}

/* Sets one option from its text; where names the config file line, NULL for the command
 * line. */
static int set_option(service_config *cfg, const opt *o, const char *value, const char *where) {
  void *f = field(cfg, o);
  unsigned long long v;
  switch (o->type) {
  case T_STR:
    free(*(char **)f);
    *(char **)f = strdup(value);
    return *(char **)f ? 0 : complain(where, o, "out of memory");
  case T_MS:
  case T_SIZE:
  case T_MODE:
    if (parse_number(value, o->type == T_MODE ? 8 : 10, &v) < 0 || v < o->min || v > o->max)
      return complain(where, o, "expected a number from %llu to %llu, got '%s'", o->min, o->max,
                      value);
    if (o->type == T_MS)
      *(uint32_t *)f = (uint32_t)v;
    else if (o->type == T_SIZE)
      *(size_t *)f = (size_t)v;
    else
      *(unsigned *)f = (unsigned)v;
    return 0;
  case T_FLAG:
    if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0)
      *(int *)f = 1;
    else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0)
      *(int *)f = 0;
    else
      return complain(where, o, "expected true or false, got '%s'", value);
    return 0;
  case T_LIST: {
    config_strings *l = f;
    if (l->n == CONFIG_LIST_MAX || !pm_name_valid(value))
      return complain(where, o, "'%s' is not a type name, or more than %d were given", value,
                      CONFIG_LIST_MAX);
    l->v[l->n] = strdup(value);
    return l->v[l->n++] ? 0 : complain(where, o, "out of memory");
  }
  case T_UIDS:
  case T_GIDS: {
    config_ids *l = f;
    if (l->n == CONFIG_LIST_MAX || parse_id(value, o->type == T_GIDS, &l->v[l->n]) < 0)
      return complain(where, o, "'%s' is not a known %s, or more than %d were given", value,
                      o->type == T_GIDS ? "group" : "user", CONFIG_LIST_MAX);
    l->n++;
    return 0;
  }
  case T_ENUM:
    for (int i = 0; o->choices[i] != NULL; i++) {
      if (strcmp(o->choices[i], value) == 0) {
        *(int *)f = i;
        return 0;
      }
    }
    return complain(where, o, "unknown value '%s'", value);
  case T_ACTION:
    return complain(where, o, "only on the command line");
  }
  return -1;
}

static const opt *find_option(const char *name) {
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (strcmp(options[i].name, name) == 0)
      return &options[i];
  return NULL;
}

/* Empties a list option, so that the command line replaces what a config file said. */
static void clear_list(service_config *cfg, const opt *o) {
  if (o->type == T_LIST) {
    config_strings *l = field(cfg, o);
    for (int i = 0; i < l->n; i++)
      free(l->v[i]);
    memset(l, 0, sizeof(*l));
  } else if (o->type == T_UIDS || o->type == T_GIDS) {
    memset(field(cfg, o), 0, sizeof(config_ids));
  }
}

static int load_json(service_config *cfg, const char *path, const char *text) {
  json_error_t err;
  json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err), *value;
  const char *key;
  char where[512], buf[64];
  int rc = 0;
  if (root == NULL || !json_is_object(root)) {
    fprintf(stderr, "pipemsgd: %s:%d: %s\n", path, err.line, root ? "not an object" : err.text);
    json_decref(root);
    return -1;
  }
  json_object_foreach(root, key, value) {
    const opt *o = find_option(key);
    json_t *items = json_is_array(value) ? value : NULL;
    size_t n = items ? json_array_size(items) : 1;
    snprintf(where, sizeof(where), "%s", path);
    if (o == NULL || o->type == T_ACTION) {
      fprintf(stderr, "pipemsgd: %s: unknown option '%s'\n", path, key);
      rc = -1;
      break;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
      json_t *v = items ? json_array_get(items, i) : value;
      const char *text_value = buf;
      if (json_is_string(v))
        text_value = json_string_value(v);
      else if (json_is_integer(v))
        snprintf(buf, sizeof(buf), o->type == T_MODE ? "%llo" : "%lld",
                 (long long)json_integer_value(v));
      else if (json_is_boolean(v))
        snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
      else
        rc = complain(where, o, "unsupported JSON value");
      if (rc == 0)
        rc = set_option(cfg, o, text_value, where);
    }
    if (rc < 0)
      break;
  }
  json_decref(root);
  return rc;
}

static char *trim(char *s) {
  char *end;
  while (isspace((unsigned char)*s))
    s++;
  end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1]))
    *--end = '\0';
  return s;
}

static int load_file(service_config *cfg, const char *path) {
  FILE *f = fopen(path, "r");
  char *text = NULL, line[CONFIG_LINE_MAX], where[600];
  size_t len = 0;
  int rc = 0, lineno = 0;
  if (f == NULL) {
    fprintf(stderr, "pipemsgd: cannot read config file %s: %s\n", path, strerror(errno));
    return -1;
  }
  /* A JSON object, or key = value lines. */
  if (fscanf(f, " %1[{]", line) == 1) {
    fseek(f, 0, SEEK_SET);
    text = calloc(1, 1024 * 1024 + 1);
    len = text ? fread(text, 1, 1024 * 1024, f) : 0;
    fclose(f);
    rc = text == NULL || len == 1024 * 1024 ? -1 : load_json(cfg, path, text);
    if (text == NULL || len == 1024 * 1024)
      fprintf(stderr, "pipemsgd: %s: too large\n", path);
    free(text);
    return rc;
  }
  fseek(f, 0, SEEK_SET);
  while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
    char *eq, *key, *value = trim(line);
    const opt *o;
    lineno++;
    if (value[0] == '\0' || value[0] == '#')
      continue;
    eq = strchr(value, '=');
    snprintf(where, sizeof(where), "%s:%d", path, lineno);
    if (eq == NULL) {
      fprintf(stderr, "pipemsgd: %s: expected key = value\n", where);
      rc = -1;
      break;
    }
    *eq = '\0';
    key = trim(value);
    o = find_option(key);
    if (o == NULL || o->type == T_ACTION) {
      fprintf(stderr, "pipemsgd: %s: unknown option '%s'\n", where, key);
      rc = -1;
      break;
    }
    rc = set_option(cfg, o, trim(eq + 1), where);
  }
  fclose(f);
  return rc;
}

/* ---- output ------------------------------------------------------------------------------- */

static void option_label(const opt *o, char *buf, size_t size) {
  const char *sep = o->arg ? " " : "", *arg = o->arg ? o->arg : "";
  if (o->short_name)
    snprintf(buf, size, "-%c, --%s%s%s", o->short_name, o->name, sep, arg);
  else
    snprintf(buf, size, "    --%s%s%s", o->name, sep, arg);
}

/* Writes text in lines of at most HELP_WIDTH columns, each after indent spaces but the first
 * (which starts at column first). */
#define HELP_WIDTH 96
static void wrap(FILE *out, const char *text, int indent, int first) {
  int col = first;
  while (*text) {
    size_t word = strcspn(text, " ");
    if (col > indent && col + 1 + (int)word > HELP_WIDTH) {
      fprintf(out, "\n%*s", indent, "");
      col = indent;
    } else if (col > indent) {
      fputc(' ', out);
      col++;
    }
    fwrite(text, 1, word, out);
    col += (int)word;
    text += word;
    text += strspn(text, " ");
  }
  fputc('\n', out);
}

static void print_help(FILE *out) {
  char label[64];
  fprintf(out, "Usage: pipemsgd [OPTION]...\n%s\n\n", summary);
  for (size_t i = 0; i < N_OPTIONS; i++) {
    option_label(&options[i], label, sizeof(label));
    fprintf(out, "  %-30s ", label);
    wrap(out, options[i].help, 33, 33);
  }
  fputc('\n', out);
  wrap(out, names_text, 0, 0);
}

/* Text with roff's special characters escaped. */
static void roff(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      fputs("\\e", out);
    else if (*s == '-')
      fputs("\\-", out);
    else
      fputc(*s, out);
  }
}

static void print_man(FILE *out) {
  fprintf(out, ".TH PIPEMSGD 8 \"\" \"pipemsg %s\" \"System Administration\"\n", PM_VERSION);
  fputs(".SH NAME\npipemsgd \\- ", out);
  roff(out, summary);
  fputs("\n.SH SYNOPSIS\n.B pipemsgd\n[\\fIOPTION\\fR]...\n.SH DESCRIPTION\n", out);
  roff(out, names_text);
  fputs("\n.SH OPTIONS\n", out);
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const opt *o = &options[i];
    fputs(".TP\n", out);
    if (o->short_name)
      fprintf(out, "\\fB\\-%c\\fR, ", o->short_name);
    fputs("\\fB\\-\\-", out);
    roff(out, o->name);
    fputs("\\fR", out);
    if (o->arg)
      fprintf(out, " \\fI%s\\fR", o->arg);
    fputc('\n', out);
    roff(out, o->help);
    fputc('\n', out);
  }
  fputs(".SH FILES\nA config file holds one \\fIkey\\fR = \\fIvalue\\fR per line, keys being the "
        "long option names; repeatable options repeat the line. \\fBpipemsgd \\-\\-print\\-config"
        "\\fR prints one.\n.SH SEE ALSO\n\\fBpipemsg\\fR(1)\n",
        out);
}

void config_print(const service_config *cfg, FILE *out) {
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const opt *o = &options[i];
    const void *f = cfield(cfg, o);
    switch (o->type) {
    case T_STR:
      if (*(char *const *)f != NULL)
        fprintf(out, "%s = %s\n", o->name, *(char *const *)f);
      else
        fprintf(out, "# %s =\n", o->name);
      break;
    case T_MS:
      fprintf(out, "%s = %u\n", o->name, (unsigned)*(const uint32_t *)f);
      break;
    case T_SIZE:
      fprintf(out, "%s = %zu\n", o->name, *(const size_t *)f);
      break;
    case T_MODE:
      fprintf(out, "%s = %04o\n", o->name, *(const unsigned *)f);
      break;
    case T_FLAG:
      fprintf(out, "%s = %s\n", o->name, *(const int *)f ? "true" : "false");
      break;
    case T_ENUM:
      fprintf(out, "%s = %s\n", o->name, o->choices[*(const int *)f]);
      break;
    case T_LIST: {
      const config_strings *l = f;
      if (l->n == 0)
        fprintf(out, "# %s =\n", o->name);
      for (int j = 0; j < l->n; j++)
        fprintf(out, "%s = %s\n", o->name, l->v[j]);
      break;
    }
    case T_UIDS:
    case T_GIDS: {
      const config_ids *l = f;
      if (l->n == 0)
        fprintf(out, "# %s =\n", o->name);
      for (int j = 0; j < l->n; j++)
        fprintf(out, "%s = %lld\n", o->name, l->v[j]);
      break;
    }
    case T_ACTION:
      break;
    }
  }
}

/* ---- loading ------------------------------------------------------------------------------ */

static void set_defaults(service_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->command_pipe = strdup(PM_COMMAND_PIPE_DEFAULT);
  cfg->event_pipe = strdup(PM_EVENT_PIPE_DEFAULT);
  cfg->request_timeout_ms = PM_REQUEST_TIMEOUT_MS_DEFAULT;
  cfg->write_timeout_ms = PM_WRITE_TIMEOUT_MS_DEFAULT;
  cfg->max_message = PM_MAX_MESSAGE_DEFAULT;
  cfg->handshake_timeout_ms = PM_HANDSHAKE_TIMEOUT_MS_DEFAULT;
  cfg->heartbeat_ms = PM_HEARTBEAT_MS_DEFAULT;
  cfg->ack_timeout_ms = PM_ACK_TIMEOUT_MS_DEFAULT;
  cfg->queue_max_events = PM_EVENT_QUEUE_MAX_EVENTS_DEFAULT;
  cfg->queue_max_bytes = PM_EVENT_QUEUE_MAX_BYTES_DEFAULT;
  cfg->socket_mode = 0660;
  cfg->connect_delay_ms = 1500;
  cfg->hook_timeout_ms = 30000;
  cfg->traffic_interval_ms = 1000;
  cfg->log_level = LVL_INFO;
}

config_result config_load(int argc, char **argv, service_config *cfg) {
  struct option longs[N_OPTIONS + 1];
  char shorts[2 * N_OPTIONS + 1];
  unsigned char cleared[N_OPTIONS];
  const char *config_file = NULL;
  int action = 0, verbose = 0, c, index, ns = 0;

  set_defaults(cfg);
  memset(longs, 0, sizeof(longs));
  memset(cleared, 0, sizeof(cleared));
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const opt *o = &options[i];
    longs[i].name = o->name;
    longs[i].has_arg = o->arg ? required_argument : no_argument;
    longs[i].val = 1000 + (int)i;
    if (o->short_name) {
      shorts[ns++] = (char)o->short_name;
      if (o->arg)
        shorts[ns++] = ':';
    }
  }
  shorts[ns] = '\0';

  /* First pass: actions and --config; the file is read before the command line is applied. */
  opterr = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, shorts, longs, &index)) != -1) {
    const opt *o = NULL;
    if (c >= 1000)
      o = &options[c - 1000];
    else
      for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].short_name == c)
          o = &options[i];
    if (o == NULL) {
      fprintf(stderr, "pipemsgd: bad option '%s'\nTry 'pipemsgd --help'.\n", argv[optind - 1]);
      return CONFIG_EXIT_USAGE;
    }
    if (o->type != T_ACTION)
      continue;
    if (o->offset == ACT_CONFIG)
      config_file = optarg;
    else if (o->offset == ACT_VERBOSE)
      verbose = 1;
    else if (action == 0)
      action = (int)o->offset;
  }
  if (optind < argc) {
    fprintf(stderr, "pipemsgd: unexpected argument '%s'\nTry 'pipemsgd --help'.\n",
            argv[optind]);
    return CONFIG_EXIT_USAGE;
  }
  if (action == ACT_HELP) {
    print_help(stdout);
    return CONFIG_EXIT_OK;
  }
  if (action == ACT_VERSION) {
    printf("pipemsgd %s (protocol %d)\n", PM_VERSION, PM_PROTOCOL_VERSION);
    return CONFIG_EXIT_OK;
  }
  if (action == ACT_MAN) {
    print_man(stdout);
    return CONFIG_EXIT_OK;
  }
  if (config_file != NULL && load_file(cfg, config_file) < 0)
    return CONFIG_EXIT_USAGE;

  optind = 1;
  while ((c = getopt_long(argc, argv, shorts, longs, &index)) != -1) {
    size_t i = 0;
    if (c >= 1000)
      i = (size_t)(c - 1000);
    else
      while (options[i].short_name != c)
        i++;
    if (options[i].type == T_ACTION)
      continue;
    if (!cleared[i]) {
      clear_list(cfg, &options[i]);
      cleared[i] = 1;
    }
    if (set_option(cfg, &options[i], optarg ? optarg : "true", NULL) < 0)
      return CONFIG_EXIT_USAGE;
  }
  if (verbose)
    cfg->log_level = LVL_DEBUG;
  if (action == ACT_PRINT) {
    config_print(cfg, stdout);
    return CONFIG_EXIT_OK;
  }
  return CONFIG_RUN;
}

void config_free(service_config *cfg) {
  for (size_t i = 0; i < N_OPTIONS; i++) {
    if (options[i].type == T_STR) {
      free(*(char **)field(cfg, &options[i]));
      *(char **)field(cfg, &options[i]) = NULL;
    } else if (options[i].type == T_LIST) {
      clear_list(cfg, &options[i]);
    }
  }
}
