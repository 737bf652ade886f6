#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pipemsg/pipemsg.h"

#include "backend.h"
#include "config.h"
#include "hook_proc.h"
#include "iface.h"
#include "log.h"
#include "log_limit.h"

/* Longest timeout or interval an option takes: a day. */
#define MS_MAX (24ull * 3600 * 1000)
/* Longest line of a key = value config file, in bytes, without its line break: a longer one is
 * an error (with file:line), never split into several. */
#define CONFIG_LINE_MAX 4096
/* Largest config file, in bytes. */
#define CONFIG_FILE_MAX (1024 * 1024)
/* Most event observers --max-observers allows: each is a connection, and every event is
 * written to each of them. */
#define MAX_OBSERVERS_MAX 1024
/* Most --log-rejections-per-second allows: beyond, the limit would not bound a log. */
#define LOG_REJECTIONS_PER_SECOND_MAX 100000

typedef enum {
  T_STR,   /* char * */
  T_MS,    /* uint32_t, milliseconds */
  T_SIZE,  /* size_t */
  T_FLAG,  /* int, no argument on the command line; true/false in a file */
  T_LIST,  /* config_strings, repeatable */
  T_UIDS,  /* config_ids, repeatable, user names or numbers */
  T_GIDS,  /* config_ids, repeatable, group names or numbers */
  T_SIDS,  /* config_strings of SID strings, repeatable, account names or SIDs (Windows) */
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
  int needs;                  /* NEEDS_SIM or NEEDS_HOOK: only with that --backend; else 0 */
  int reload;                 /* SIGHUP applies a change (else it waits for a restart) */
  int platform;               /* ON_UNIX or ON_WINDOWS: refused elsewhere; 0: everywhere */
} opt;

enum { NEEDS_SIM = 1, NEEDS_HOOK };
enum { ON_UNIX = CONFIG_ON_UNIX, ON_WINDOWS = CONFIG_ON_WINDOWS };

static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};
/* Indexed by log_target; each platform refuses the other's target (config_platform_check). */
static const char *const log_targets[] = {"stderr", "syslog", "eventlog", "file", NULL};
static const char *const backends[] = {"sim", "hook", NULL};

enum {
  ACT_CONFIG = 1,
  ACT_PRINT,
  ACT_HELP,
  ACT_VERSION,
  ACT_MAN,
  ACT_VERBOSE,
  ACT_INSTALL,
  ACT_UNINSTALL,
  ACT_SERVICE
};

#define F(field) offsetof(service_config, field)
static const opt options[] = {
    {"command-pipe", 'c', T_STR, F(command_pipe), 0, 0, "NAME",
     "command pipe name or path (default UnifiedSDKVPNCommandPipe)", NULL, 0, 0, 0},
    {"event-pipe", 'e', T_STR, F(event_pipe), 0, 0, "NAME",
     "event pipe name or path (default UnifiedSDKVPNEventPipe)", NULL, 0, 0, 0},
    {"data-dir", 'd', T_STR, F(data_dir), 0, 0, "DIR", config_data_dir_help, NULL, 0, 0, 0},
    {"names-file", 0, T_STR, F(names_file), 0, 0, "FILE",
     "pick random pipe names and write them to FILE (dynamic pipe names)", NULL, 0, 0, 0},
    {"names-registry", 0, T_STR, F(names_registry), 0, 0, "KEY",
     "pick random pipe names and write them as the values CommandPipe and EventPipe of the "
     "registry key KEY (HKLM\\... or HKCU\\..., created if missing; the values are removed at "
     "stop)",
     NULL, 0, 0, ON_WINDOWS},
    {"request-timeout-ms", 0, T_MS, F(request_timeout_ms), 1, MS_MAX, "MS",
     "time a command client has to send its whole request (default 3000)", NULL, 0, 0, 0},
    {"write-timeout-ms", 0, T_MS, F(write_timeout_ms), 1, MS_MAX, "MS",
     "time a client has to take a command response or an event (default 3000)", NULL, 0, 0, 0},
    {"max-message", 0, T_SIZE, F(max_message), 1, 2147483647ull, "BYTES",
     "largest message accepted or sent (default 16777216)", NULL, 0, 0, 0},
    {"handshake-timeout-ms", 0, T_MS, F(handshake_timeout_ms), 1, MS_MAX, "MS",
     "time an event client has to send its handshake (default 1000)", NULL, 0, 0, 0},
    {"heartbeat-ms", 0, T_MS, F(heartbeat_ms), 1, MS_MAX, "MS",
     "idle time before a secondary handshake (default 1000)", NULL, 0, 0, 0},
    {"ack-timeout-ms", 0, T_MS, F(ack_timeout_ms), 1, MS_MAX, "MS",
     "time for an event confirmation or handshake answer (default 1000)", NULL, 0, 0, 0},
    {"queue-max-events", 0, T_SIZE, F(queue_max_events), 1, 100000000ull, "N",
     "events kept for delivery (default 10000)", NULL, 0, 0, 0},
    {"queue-max-bytes", 0, T_SIZE, F(queue_max_bytes), 1024, SIZE_MAX, "BYTES",
     "bytes of events kept for delivery (default 67108864)", NULL, 0, 0, 0},
    {"max-observers", 0, T_SIZE, F(max_observers), 1, MAX_OBSERVERS_MAX, "N",
     "event observers (Mode Observe) attached at once; one more is told Busy (default 8)",
     NULL, 0, 0, 0},
    {"observer-max-unsent", 0, T_SIZE, F(observer_max_unsent), 1024, SIZE_MAX, "BYTES",
     "bytes of events an observer may leave unread before it is cut off with TooSlow (default "
     "4194304)",
     NULL, 0, 0, 0},
    {"transient", 0, T_LIST, F(transient), 0, 0, "TYPE",
     "also treat events of TYPE as transient, like TrafficChanged (repeatable)", NULL, 0, 0, 0},
    {"allow-uid", 0, T_UIDS, F(allow_uid), 0, 0, "UID",
     "let this user (name or number) use the pipes; root and the service's own user always may "
     "(repeatable)",
     NULL, 0, 1, ON_UNIX},
    {"allow-gid", 0, T_GIDS, F(allow_gid), 0, 0, "GID",
     "let members of this group (name or number) use the pipes (repeatable)", NULL, 0, 1,
     ON_UNIX},
    {"socket-mode", 0, T_MODE, F(socket_mode), 1, 0777, "MODE",
     "permissions of the socket files, octal (default 0660)", NULL, 0, 0, ON_UNIX},
    {"socket-group", 0, T_STR, F(socket_group), 0, 0, "GROUP",
     "group owning the socket files (default: the service's group)", NULL, 0, 0, ON_UNIX},
    {"allow-user", 0, T_SIDS, F(allow_user), 0, 0, "NAME|SID",
     "let this account (name or SID) use the pipes; LocalSystem, Administrators and the "
     "service's own account always may (repeatable)",
     NULL, 0, 0, ON_WINDOWS},
    {"allow-group", 0, T_SIDS, F(allow_group), 0, 0, "NAME|SID",
     "let members of this group (name or SID) use the pipes (repeatable)", NULL, 0, 0,
     ON_WINDOWS},
    {"pipe-sddl", 0, T_STR, F(pipe_sddl), 0, 0, "SDDL",
     "security descriptor of every pipe instance (default " PM_PIPE_SDDL_DEFAULT
     ": full access for LocalSystem and Administrators, read/write for interactive users)",
     NULL, 0, 0, ON_WINDOWS},
    {"backend", 0, T_ENUM, F(backend), 0, 0, "NAME",
     "what brings the tunnel up: sim (simulated, default) or hook (--up-cmd/--down-cmd); an "
     "option of the other backend, unless left at its default, is refused",
     backends, 0, 0, 0},
    {"connect-delay-ms", 0, T_MS, F(connect_delay_ms), 0, MS_MAX, "MS",
     "sim backend: time to connect (default 1500)", NULL, NEEDS_SIM, 0, 0},
    {"sim-unreachable", 0, T_STR, F(sim_unreachable), 0, 0, "LOCATION",
     "sim backend: connecting to LOCATION fails", NULL, NEEDS_SIM, 0, 0},
    {"up-cmd", 0, T_STR, F(up_cmd), 0, 0, "COMMAND",
     "hook backend (required): command that brings the tunnel up (split on spaces, no shell)",
     NULL, NEEDS_HOOK, 0, 0},
    {"down-cmd", 0, T_STR, F(down_cmd), 0, 0, "COMMAND",
     "hook backend: command that takes the tunnel down; also run when the service stops, and at "
     "start if the tunnel was left up",
     NULL, NEEDS_HOOK, 0, 0},
    {"hook-shell", 0, T_FLAG, F(hook_shell), 0, 0, NULL, hook_proc_shell_help, NULL, NEEDS_HOOK,
     0, 0},
    {"hook-timeout-ms", 0, T_MS, F(hook_timeout_ms), 1, MS_MAX, "MS",
     "hook backend: time a command may take (default 30000)", NULL, NEEDS_HOOK, 1, 0},
    {"iface", 0, T_STR, F(iface), 0, 0, "NAME", iface_help, NULL, NEEDS_HOOK, 0, 0},
    {"traffic-interval-ms", 0, T_MS, F(traffic_interval_ms), 1, MS_MAX, "MS",
     "period of TrafficChanged while connected (default 1000)", NULL, 0, 1, 0},
    {"log-level", 0, T_ENUM, F(log_level), 0, 0, "LEVEL",
     "error, warning, info (default) or debug", log_levels, 0, 1, 0},
    {"log-target", 0, T_ENUM, F(log_target), 0, 0, "TARGET", config_log_target_help,
     log_targets, 0, 0, 0},
    {"log-file", 0, T_STR, F(log_file), 0, 0, "FILE",
     "with --log-target file: append the log to FILE (created if missing)", NULL, 0, 0, 0},
    {"log-rejections-per-second", 0, T_SIZE, F(log_rejections_per_second), 1,
     LOG_REJECTIONS_PER_SECOND_MAX, "N",
     "log at most N lines a second of each kind a peer can cause per connection (refusals, Busy "
     "turn-aways, command connections without a request); a summary line counts the others "
     "(default 10)",
     NULL, 0, 1, 0},
    {"test-commands", 0, T_FLAG, F(test_commands), 0, 0, NULL,
     "enable EmitEvent and Echo, for tests and demos", NULL, 0, 0, 0},
    {"config", 0, T_ACTION, ACT_CONFIG, 0, 0, "FILE",
     "read options from FILE (key = value lines, or a JSON object); the command line wins",
     NULL, 0, 0, 0},
    {"install", 0, T_ACTION, ACT_INSTALL, 0, 0, "NAME",
     "register a Windows service NAME that runs pipemsgd with the other options given, then "
     "exit",
     NULL, 0, 0, ON_WINDOWS},
    {"uninstall", 0, T_ACTION, ACT_UNINSTALL, 0, 0, "NAME",
     "remove the Windows service NAME, then exit", NULL, 0, 0, ON_WINDOWS},
    {"service", 0, T_ACTION, ACT_SERVICE, 0, 0, "NAME",
     "run under the service control manager as the service NAME (what --install registers)",
     NULL, 0, 0, ON_WINDOWS},
    {"verbose", 'v', T_ACTION, ACT_VERBOSE, 0, 0, NULL, "same as --log-level debug", NULL, 0, 0, 0},
    {"print-config", 0, T_ACTION, ACT_PRINT, 0, 0, NULL,
     "print the effective configuration and exit", NULL, 0, 0, 0},
    {"help", 0, T_ACTION, ACT_HELP, 0, 0, NULL, "show this help and exit", NULL, 0, 0, 0},
    {"version", 0, T_ACTION, ACT_VERSION, 0, 0, NULL, "show the version and exit", NULL, 0, 0, 0},
    {"man", 0, T_ACTION, ACT_MAN, 0, 0, NULL, "print the manual page (roff) and exit", NULL, 0, 0,
     0},
};
#undef F
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static const char summary[] =
    "Serve VPN connection control on the pipemsg command and event pipes.";

/* An option of the other platform is refused, and left out of --help, the man page and
 * --print-config. */
static int here(const opt *o) { return o->platform == 0 || o->platform == config_platform; }

static void *field(service_config *cfg, const opt *o) { return (char *)cfg + o->offset; }

static const void *cfield(const service_config *cfg, const opt *o) {
  return (const char *)cfg + o->offset;
}

/* While SIGHUP reloads, problems go to the log (stderr may be gone, or syslog is the target). */
static int reloading;

/* Says what is wrong with the options, before the service's log is open (or into it). */
static void report(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static void report(const char *fmt, ...) {
  char text[LOG_LINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (reloading) {
    log_msg(LVL_ERROR, "SIGHUP: %s", text);
  } else {
    /* Escaped like a log line: a config file's bytes are echoed back. */
    char clean[4 * LOG_LINE_MAX];
    log_escape(text, clean, sizeof(clean));
    fprintf(stderr, "pipemsgd: %s\n", clean);
  }
}

static int complain(const char *where, const opt *o, const char *fmt, ...) {
  char text[LOG_LINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  report("%s%s--%s: %s", where ? where : "", where ? ": " : "", o->name, text);
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
  return config_account_id(s, group, out);
}

int config_socket_gid(const service_config *cfg, unsigned *gid) {
  long long v;
  *gid = 0;
  if (cfg->socket_group == NULL)
    return 0;
  if (parse_id(cfg->socket_group, 1, &v) < 0)
    return -1;
  *gid = (unsigned)v;
  return 0;
}

/* Sets one option from its text; where names the config file line, NULL for the command
 * line. */
static int set_option(service_config *cfg, const opt *o, const char *value, const char *where) {
  void *f = field(cfg, o);
  unsigned long long v;
  if (!here(o))
    return complain(where, o, "only on %s", o->platform == ON_UNIX ? "Unix" : "Windows");
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
  case T_SIDS: {
    config_strings *l = f;
    int group = o->offset == offsetof(service_config, allow_group);
    if (l->n == CONFIG_LIST_MAX || config_account_sid(value, group, &l->v[l->n]) < 0)
      return complain(where, o, "'%s' is not a known account or SID, or more than %d were given",
                      value, CONFIG_LIST_MAX);
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
  if (o->type == T_LIST || o->type == T_SIDS) {
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
    report("%s:%d: %s", path, err.line, root ? "not an object" : err.text);
    json_decref(root);
    return -1;
  }
  json_object_foreach(root, key, value) {
    const opt *o = find_option(key);
    json_t *items = json_is_array(value) ? value : NULL;
    size_t n = items ? json_array_size(items) : 1;
    snprintf(where, sizeof(where), "%s", path);
    if (o == NULL || o->type == T_ACTION) {
      report("%s: unknown option '%s'", path, key);
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

/* The key = value lines of text (NUL-terminated, no NUL inside). */
static int load_lines(service_config *cfg, const char *path, char *text) {
  char where[600];
  int lineno = 0;
  for (char *line = text, *next; *line != '\0'; line = next) {
    char *eq, *key, *value;
    const opt *o;
    size_t len = strcspn(line, "\n");
    next = line + len + (line[len] == '\n');
    line[len] = '\0';
    snprintf(where, sizeof(where), "%s:%d", path, ++lineno);
    /* The line break, CRLF included, does not count. */
    if (len - (len > 0 && line[len - 1] == '\r') > CONFIG_LINE_MAX) {
      report("%s: line longer than %d bytes", where, CONFIG_LINE_MAX);
      return -1;
    }
    value = trim(line);
    if (value[0] == '\0' || value[0] == '#')
      continue;
    eq = strchr(value, '=');
    if (eq == NULL) {
      report("%s: expected key = value", where);
      return -1;
    }
    *eq = '\0';
    key = trim(value);
    o = find_option(key);
    if (o == NULL || o->type == T_ACTION) {
      report("%s: unknown option '%s'", where, key);
      return -1;
    }
    if (set_option(cfg, o, trim(eq + 1), where) < 0)
      return -1;
  }
  return 0;
}

static int load_file(service_config *cfg, const char *path) {
  static const char bom[] = "\xef\xbb\xbf";
  FILE *f = fopen(path, "r");
  char *text, *start;
  size_t len;
  int rc;
  if (f == NULL) {
    report("cannot read config file %s: %s", path, strerror(errno));
    return -1;
  }
  text = malloc(CONFIG_FILE_MAX + 1);
  len = text ? fread(text, 1, CONFIG_FILE_MAX + 1, f) : 0;
  rc = text == NULL || ferror(f) ? -1 : 0;
  fclose(f);
  if (rc < 0 || len > CONFIG_FILE_MAX) {
    report("%s: %s", path, rc < 0 ? "cannot read" : "larger than 1 MiB");
    free(text);
    return -1;
  }
  text[len] = '\0';
  if (strlen(text) != len) {
    report("%s: contains a NUL byte", path);
    free(text);
    return -1;
  }
  /* Editors on some systems start a UTF-8 file with a byte order mark. */
  start = strncmp(text, bom, 3) == 0 ? text + 3 : text;
  /* A JSON object, or key = value lines. */
  if (*(start + strspn(start, " \t\r\n")) == '{')
    rc = load_json(cfg, path, start);
  else
    rc = load_lines(cfg, path, start);
  free(text);
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
    if (!here(&options[i]))
      continue;
    option_label(&options[i], label, sizeof(label));
    /* A label too long for its column puts the help on the next line. */
    if (strlen(label) > 30)
      fprintf(out, "  %s\n%33s", label, "");
    else
      fprintf(out, "  %-30s ", label);
    wrap(out, options[i].help, 33, 33);
  }
  fputc('\n', out);
  wrap(out, config_names_text, 0, 0);
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
  roff(out, config_names_text);
  fputs("\n.SH OPTIONS\n", out);
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const opt *o = &options[i];
    if (!here(o))
      continue;
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
        "long option names; repeatable options repeat the line. A line longer than 4096 bytes is "
        "an error, never split; the file may start with a UTF\\-8 byte order mark. "
        "\\fBpipemsgd \\-\\-print\\-config\\fR prints one.\n.SH SEE ALSO\n\\fBpipemsg\\fR(1)\n",
        out);
}

/* The value of o in cfg as config file text, or "" when unset (a NULL string). A list is its
 * items separated by sep. */
static void format_value(const service_config *cfg, const opt *o, const char *sep, char *buf,
                         size_t size) {
  const void *f = cfield(cfg, o);
  size_t n = 0;
  buf[0] = '\0';
  switch (o->type) {
  case T_STR:
    snprintf(buf, size, "%s", *(char *const *)f ? *(char *const *)f : "");
    break;
  case T_MS:
    snprintf(buf, size, "%u", (unsigned)*(const uint32_t *)f);
    break;
  case T_SIZE:
    snprintf(buf, size, "%zu", *(const size_t *)f);
    break;
  case T_MODE:
    snprintf(buf, size, "%04o", *(const unsigned *)f);
    break;
  case T_FLAG:
    snprintf(buf, size, "%s", *(const int *)f ? "true" : "false");
    break;
  case T_ENUM:
    snprintf(buf, size, "%s", o->choices[*(const int *)f]);
    break;
  case T_LIST:
  case T_SIDS: {
    const config_strings *l = f;
    for (int j = 0; j < l->n && n < size; j++)
      n += (size_t)snprintf(buf + n, size - n, "%s%s", j ? sep : "", l->v[j]);
    break;
  }
  case T_UIDS:
  case T_GIDS: {
    const config_ids *l = f;
    for (int j = 0; j < l->n && n < size; j++)
      n += (size_t)snprintf(buf + n, size - n, "%s%lld", j ? sep : "", l->v[j]);
    break;
  }
  case T_ACTION:
    break;
  }
}

static int needs_met(const service_config *cfg, const opt *o) {
  return o->needs == 0 || (o->needs == NEEDS_SIM) == (cfg->backend == BACKEND_SIM);
}

void config_print(const service_config *cfg, FILE *out) {
  char value[CONFIG_LINE_MAX];
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const opt *o = &options[i];
    /* Unset, or for the other backend (which a start would refuse): shown, commented out. */
    const char *hash = needs_met(cfg, o) ? "" : "# ";
    if (o->type == T_ACTION || !here(o))
      continue;
    if (o->type == T_LIST || o->type == T_SIDS || o->type == T_UIDS || o->type == T_GIDS) {
      format_value(cfg, o, "\n", value, sizeof(value));
      if (value[0] == '\0') {
        fprintf(out, "# %s =\n", o->name);
        continue;
      }
      for (char *v = value, *end; v != NULL; v = end ? end + 1 : NULL) {
        end = strchr(v, '\n');
        fprintf(out, "%s%s = %.*s\n", hash, o->name, end ? (int)(end - v) : (int)strlen(v), v);
      }
      continue;
    }
    format_value(cfg, o, "", value, sizeof(value));
    if (o->type == T_STR && *(char *const *)cfield(cfg, o) == NULL)
      fprintf(out, "# %s =\n", o->name);
    else
      fprintf(out, "%s%s = %s\n", hash, o->name, value);
  }
}

static void set_defaults(service_config *cfg);

/* What a start would refuse, checked before a start, --print-config and a reload alike. An
 * option of the other backend is refused unless it keeps its default (which an earlier
 * --print-config wrote out, uncommented). */
static int validate(const service_config *cfg) {
  backend_hook_options hook = {cfg->up_cmd, cfg->down_cmd, cfg->hook_shell != 0,
                               cfg->hook_timeout_ms, cfg->iface};
  service_config defaults;
  char why[256], value[CONFIG_LINE_MAX], def[CONFIG_LINE_MAX];
  unsigned gid;
  int rc = 0;
  set_defaults(&defaults);
  for (size_t i = 0; i < N_OPTIONS && rc == 0; i++) {
    if (needs_met(cfg, &options[i]))
      continue;
    format_value(cfg, &options[i], ",", value, sizeof(value));
    format_value(&defaults, &options[i], ",", def, sizeof(def));
    if (strcmp(value, def) != 0) {
      report("--%s needs --backend %s", options[i].name,
             options[i].needs == NEEDS_SIM ? "sim" : "hook");
      rc = -1;
    }
  }
  config_free(&defaults);
  if (rc < 0)
    return rc;
  if (config_socket_gid(cfg, &gid) < 0) {
    report("--socket-group: unknown group '%s'", cfg->socket_group);
    return -1;
  }
  if (cfg->log_target == LOG_TO_SYSLOG && config_platform != ON_UNIX) {
    report("--log-target syslog: only on Unix");
    return -1;
  }
  if (cfg->log_target == LOG_TO_EVENTLOG && config_platform != ON_WINDOWS) {
    report("--log-target eventlog: only on Windows");
    return -1;
  }
  if ((cfg->log_target == LOG_TO_FILE) != (cfg->log_file != NULL)) {
    report("--log-file and --log-target file go together");
    return -1;
  }
  if (cfg->names_file != NULL && cfg->names_registry != NULL) {
    report("--names-file and --names-registry: one place for the random names");
    return -1;
  }
  if (config_platform_check(cfg, why, sizeof(why)) < 0) {
    report("%s", why);
    return -1;
  }
  if (cfg->backend == BACKEND_HOOK && backend_hook_check(&hook, why, sizeof(why)) < 0) {
    report("--backend hook: %s", why);
    return -1;
  }
  return 0;
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
  cfg->max_observers = PM_EVENT_MAX_OBSERVERS_DEFAULT;
  cfg->observer_max_unsent = PM_EVENT_OBSERVER_MAX_UNSENT_DEFAULT;
  cfg->socket_mode = 0660;
  cfg->connect_delay_ms = 1500;
  cfg->hook_timeout_ms = 30000;
  cfg->traffic_interval_ms = 1000;
  cfg->log_level = LVL_INFO;
  cfg->log_rejections_per_second = LOG_LIMIT_PER_SECOND_DEFAULT;
  config_platform_defaults(cfg);
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
    if (!here(o)) {
      complain(NULL, o, "only on %s", o->platform == ON_UNIX ? "Unix" : "Windows");
      return CONFIG_EXIT_USAGE;
    }
    if (o->offset == ACT_INSTALL || o->offset == ACT_UNINSTALL || o->offset == ACT_SERVICE) {
      free(cfg->action_name);
      cfg->action_name = strdup(optarg);
      /* "--install NAME" or "--install=NAME" (getopt never permutes here: a non-option
       * argument is refused). */
      cfg->action_argn = optarg == argv[optind - 1] ? 2 : 1;
      cfg->action_argi = optind - cfg->action_argn;
    }
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
  if (validate(cfg) < 0)
    return CONFIG_EXIT_USAGE;
  if (action == ACT_PRINT) {
    config_print(cfg, stdout);
    return CONFIG_EXIT_OK;
  }
  if (action == ACT_INSTALL)
    return CONFIG_INSTALL;
  if (action == ACT_UNINSTALL)
    return CONFIG_UNINSTALL;
  return action == ACT_SERVICE ? CONFIG_SERVICE : CONFIG_RUN;
}

void config_free(service_config *cfg) {
  for (size_t i = 0; i < N_OPTIONS; i++) {
    if (options[i].type == T_STR) {
      free(*(char **)field(cfg, &options[i]));
      *(char **)field(cfg, &options[i]) = NULL;
    } else if (options[i].type == T_LIST || options[i].type == T_SIDS) {
      clear_list(cfg, &options[i]);
    }
  }
  free(cfg->action_name);
  cfg->action_name = NULL;
}

const char *config_data_dir(const service_config *cfg) {
  return cfg->data_dir != NULL && cfg->data_dir[0] != '\0' ? cfg->data_dir : NULL;
}

bool config_random_names(const service_config *cfg) {
  return cfg->names_file != NULL || cfg->names_registry != NULL;
}

static size_t field_size(opt_type type) {
  switch (type) {
  case T_MS:
    return sizeof(uint32_t);
  case T_SIZE:
    return sizeof(size_t);
  case T_MODE:
    return sizeof(unsigned);
  case T_FLAG:
  case T_ENUM:
    return sizeof(int);
  case T_UIDS:
  case T_GIDS:
    return sizeof(config_ids);
  default:
    return 0; /* owns memory: never copied by a reload */
  }
}

int config_reload(int argc, char **argv, service_config *cur) {
  service_config next;
  char was[CONFIG_LINE_MAX], now[CONFIG_LINE_MAX];
  config_result loaded;
  int applied = 0, pending = 0;

  reloading = 1;
  loaded = config_load(argc, argv, &next);
  reloading = 0;
  if (loaded != CONFIG_RUN) {
    log_msg(LVL_ERROR, "SIGHUP: configuration not reloaded; the running one is kept");
    config_free(&next);
    return -1;
  }
  /* A more verbose level now, so that the lines saying what changed are not lost (a less
   * verbose one is applied by the caller, after them). */
  if (next.log_level > cur->log_level)
    log_set_level(next.log_level);
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const opt *o = &options[i];
    if (o->type == T_ACTION)
      continue;
    format_value(cur, o, ",", was, sizeof(was));
    format_value(&next, o, ",", now, sizeof(now));
    if (strcmp(was, now) == 0)
      continue;
    if (o->reload && field_size(o->type) > 0) {
      log_msg(LVL_INFO, "SIGHUP: %s changed %s -> %s", o->name, was[0] ? was : "(none)",
              now[0] ? now : "(none)");
      memcpy(field(cur, o), cfield(&next, o), field_size(o->type));
      applied++;
    } else {
      log_msg(LVL_WARNING, "SIGHUP: %s needs a restart, not changed", o->name);
      pending++;
    }
  }
  if (applied == 0 && pending == 0)
    log_msg(LVL_INFO, "SIGHUP: configuration reloaded, nothing changed");
  config_free(&next);
  return applied;
}
