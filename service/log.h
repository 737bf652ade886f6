#ifndef PIPEMSGD_LOG_H
#define PIPEMSGD_LOG_H

#include "config.h"

/* pipemsgd's log: one line per event of interest, key=value fields, to stderr or syslog.
 * Peer-supplied text is quoted and cut short, never logged in full. */
void log_open(log_level level, log_target target);
void log_close(void);
int log_enabled(log_level level);
void log_msg(log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
