/* The Unix part of pipemsgd's options: user and group names, help texts. */
#include <grp.h>
#include <pwd.h>

#include "config.h"

const int config_platform = CONFIG_ON_UNIX;

const char config_data_dir_help[] =
    "keep the event queue and settings in DIR (created if missing); without it they live in "
    "memory";

const char config_log_target_help[] =
    "stderr (default), syslog, or file (--log-file)";

const char config_names_text[] =
    "A NAME without '/' (or \\\\.\\pipe\\NAME) is placed in $PIPEMSG_RUNTIME_DIR, else "
    "$XDG_RUNTIME_DIR/pipemsg, else /run/pipemsg; any other NAME must be an absolute path. "
    "SIGINT and SIGTERM stop the service and remove its socket files, after taking a connected "
    "tunnel down. SIGHUP reads the config file again and applies the options that can change "
    "at run time (log-level, log-rejections-per-second, allow-uid, allow-gid, hook-timeout-ms, "
    "traffic-interval-ms); the others need a restart.";

void config_platform_defaults(service_config *cfg) { (void)cfg; }

int config_account_id(const char *name, int group, long long *id) {
  if (group) {
    struct group *g = getgrnam(name);
    if (g == NULL)
      return -1;
    *id = g->gr_gid;
  } else {
    struct passwd *p = getpwnam(name);
    if (p == NULL)
      return -1;
    *id = p->pw_uid;
  }
  return 0;
}

/* Never reached: the SID options are refused on Unix before their value is read. */
int config_account_sid(const char *name, int group, char **sid) {
  (void)name;
  (void)group;
  *sid = NULL;
  return -1;
}

int config_platform_check(const service_config *cfg, char *why, size_t why_size) {
  (void)cfg;
  (void)why;
  (void)why_size;
  return 0;
}
