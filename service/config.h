#ifndef PIPEMSGD_CONFIG_H
#define PIPEMSGD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Most values one repeatable option takes. */
#define CONFIG_LIST_MAX 32

typedef struct config_strings {
  char *v[CONFIG_LIST_MAX + 1]; /* NULL-terminated */
  int n;
} config_strings;

typedef struct config_ids {
  long long v[CONFIG_LIST_MAX];
  int n;
} config_ids;

typedef enum { LVL_ERROR, LVL_WARNING, LVL_INFO, LVL_DEBUG } log_level;
/* syslog is Unix's, eventlog Windows' (the other platform refuses it). */
typedef enum { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_EVENTLOG, LOG_TO_FILE } log_target;
typedef enum { BACKEND_SIM, BACKEND_HOOK } backend_kind;

/* Everything pipemsgd can be told, on its command line or in its config file. One table in
 * config.c describes each field once: parsing, --help, --print-config and the man page all
 * come from it. Strings are owned. 0 means the library default where one exists. */
typedef struct service_config {
  char *command_pipe;
  char *event_pipe;
  char *data_dir;
  char *names_file;
  char *names_registry; /* Windows */
  uint32_t request_timeout_ms;
  uint32_t write_timeout_ms;
  size_t max_message;
  uint32_t handshake_timeout_ms;
  uint32_t heartbeat_ms;
  uint32_t ack_timeout_ms;
  size_t queue_max_events;
  size_t queue_max_bytes;
  size_t max_observers;
  size_t observer_max_unsent;
  config_strings transient;
  config_ids allow_uid;
  config_ids allow_gid;
  unsigned socket_mode;
  char *socket_group;
  config_strings allow_user;  /* Windows: SID strings */
  config_strings allow_group; /* Windows: SID strings */
  char *pipe_sddl;            /* Windows */
  int backend;
  uint32_t connect_delay_ms;
  char *sim_unreachable;
  char *up_cmd;
  char *down_cmd;
  int hook_shell;
  uint32_t hook_timeout_ms;
  char *iface;
  uint32_t traffic_interval_ms;
  int log_level;
  int log_target;
  char *log_file;
  size_t log_rejections_per_second;
  int test_commands;
  char *action_name; /* Windows: the service NAME of --install, --uninstall or --service */
  int action_argi, action_argn; /* where that option is in argv: index, 1 or 2 arguments */
} service_config;

typedef enum {
  CONFIG_RUN,          /* start the service */
  CONFIG_EXIT_OK,      /* an action (--help, --version, --print-config, --man) was done */
  CONFIG_EXIT_USAGE,   /* a bad option or config file; the reason was printed */
  CONFIG_INSTALL,      /* Windows: --install NAME (action_name), the options valid */
  CONFIG_UNINSTALL,    /* Windows: --uninstall NAME */
  CONFIG_SERVICE       /* Windows: --service NAME: start under the service control manager */
} config_result;

/* Defaults, then the file named by --config (if any), then the command line. */
config_result config_load(int argc, char **argv, service_config *cfg);
void config_free(service_config *cfg);
/* The gid --socket-group names (a group name or a number), 0 when unset; -1 if no such group. */
int config_socket_gid(const service_config *cfg, unsigned *gid);
/* SIGHUP: loads the configuration again from the same arguments (and so the same --config
 * file) and, if it is valid, copies into cur the options that can change at run time, logging
 * each change and each change that needs a restart. A file that does not load leaves cur as it
 * was (the reason is logged). Returns how many options changed, or -1. */
int config_reload(int argc, char **argv, service_config *cur);
/* Writes cfg in the config file syntax, every option of this platform included. */
void config_print(const service_config *cfg, FILE *out);
/* The data directory, NULL when events and settings live in memory (no --data-dir, or an
 * empty one). */
const char *config_data_dir(const service_config *cfg);
/* --names-file or --names-registry: the service picks random pipe names. */
bool config_random_names(const service_config *cfg);

/* ---- each platform's part (config_unix.c, config_win.c) ----------------------------------- */

enum { CONFIG_ON_UNIX = 1, CONFIG_ON_WINDOWS = 2 };
/* The platform built for: options marked for the other one are refused. */
extern const int config_platform;
/* Help texts that differ per platform. */
extern const char config_data_dir_help[];
extern const char config_log_target_help[];
/* The DESCRIPTION of --help and the man page: names, stopping, reloading. */
extern const char config_names_text[];
/* Platform defaults, after the common ones (Windows: the data dir). */
void config_platform_defaults(service_config *cfg);
/* Unix: the uid (group 0) or gid (group 1) of a user or group name; -1 if unknown. Windows
 * has no uids: -1. */
int config_account_id(const char *name, int group, long long *id);
/* Windows: the SID string (malloc) of an account name or SID string, a group (group 1) or
 * any account (group 0); -1 if unknown. Unix has no SIDs: -1. */
int config_account_sid(const char *name, int group, char **sid);
/* What this platform refuses in an otherwise valid cfg: -1 with why filled, else 0. */
int config_platform_check(const service_config *cfg, char *why, size_t why_size);

#endif
