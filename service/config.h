#ifndef PIPEMSGD_CONFIG_H
#define PIPEMSGD_CONFIG_H

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
typedef enum { LOG_TO_STDERR, LOG_TO_SYSLOG } log_target;
typedef enum { BACKEND_SIM, BACKEND_HOOK } backend_kind;

/* Everything pipemsgd can be told, on its command line or in its config file. One table in
 * config.c describes each field once: parsing, --help, --print-config and the man page all
 * come from it. Strings are owned. 0 means the library default where one exists. */
typedef struct service_config {
  char *command_pipe;
  char *event_pipe;
  char *data_dir;
  char *names_file;
  uint32_t request_timeout_ms;
  uint32_t write_timeout_ms;
  size_t max_message;
  uint32_t handshake_timeout_ms;
  uint32_t heartbeat_ms;
  uint32_t ack_timeout_ms;
  size_t queue_max_events;
  size_t queue_max_bytes;
  config_strings transient;
  config_ids allow_uid;
  config_ids allow_gid;
  unsigned socket_mode;
  char *socket_group;
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
  int test_commands;
} service_config;

typedef enum {
  CONFIG_RUN,          /* start the service */
  CONFIG_EXIT_OK,      /* an action (--help, --version, --print-config, --man) was done */
  CONFIG_EXIT_USAGE    /* a bad option or config file; the reason was printed */
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
/* Writes cfg in the config file syntax, every option included. */
void config_print(const service_config *cfg, FILE *out);

#endif
