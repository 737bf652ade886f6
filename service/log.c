#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"

static log_level max_level = LVL_INFO;
static log_target where = LOG_TO_STDERR;

static const char *const level_names[] = {"error", "warning", "info", "debug"};
static const int syslog_priorities[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

void log_open(log_level level, log_target target) {
  max_level = level;
  where = target;
  if (where == LOG_TO_SYSLOG)
    openlog("pipemsgd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_close(void) {
  if (where == LOG_TO_SYSLOG)
    closelog();
}

int log_enabled(log_level level) { return level <= max_level; }

void log_msg(log_level level, const char *fmt, ...) {
  va_list ap;
  if (!log_enabled(level))
    return;
  va_start(ap, fmt);
  if (where == LOG_TO_SYSLOG) {
    vsyslog(syslog_priorities[level], fmt, ap);
  } else {
    fprintf(stderr, "pipemsgd: %s: ", level_names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
  }
  va_end(ap);
}
