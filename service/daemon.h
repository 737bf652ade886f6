#ifndef PIPEMSGD_DAEMON_H
#define PIPEMSGD_DAEMON_H

/* pipemsgd as a process: what every platform does (pipemsgd.c) and what each does its own way
 * (daemon_unix.c: signals, sd_notify; daemon_win.c: the console's Ctrl-C and Ctrl-Break, the
 * service control manager, --install and --uninstall). */

#include <uv.h>

#include "config.h"

/* Runs the service on the default loop until it is told to stop: the log, the data
 * directory, the service, the platform's stop and reload triggers. The exit status. */
int pipemsgd_run(int argc, char **argv, service_config *cfg);
/* On the loop's thread, from a platform trigger: stop (why goes to the log, e.g.
 * "signal=15"), and reload the configuration (Unix: SIGHUP). */
void pipemsgd_stop(const char *why);
void pipemsgd_reload(void);

/* ---- each platform's part ------------------------------------------------------------------ */

/* What config_load decided (CONFIG_RUN, or on Windows CONFIG_INSTALL, CONFIG_UNINSTALL or
 * CONFIG_SERVICE), done; the exit status. */
int daemon_main(int argc, char **argv, service_config *cfg, config_result what);
/* Before anything starts: what must not kill a half-started service. */
void daemon_prepare(void);
/* Once the service serves: watch for stop (and reload) requests on loop, then tell the
 * service manager it is ready. 0 or -1. */
int daemon_watch(uv_loop_t *loop);
/* Stops watching, so that the loop can run dry once the service is closed. */
void daemon_unwatch(void);

#endif
