/* pipemsgd as a Unix process: SIGINT and SIGTERM stop it, SIGHUP reloads its configuration,
 * READY=1 tells systemd it serves. */
#include <signal.h>
#include <stdio.h>

#include "daemon.h"
#include "systemd.h"

static uv_signal_t sigint, sigterm, sighup;

static void on_signal(uv_signal_t *h, int signum) {
  char why[32];
  (void)h;
  snprintf(why, sizeof(why), "signal=%d", signum);
  pipemsgd_stop(why);
}

/* SIGHUP's default action would end the service and leave its socket files behind. */
static void on_sighup(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  pipemsgd_reload();
}

int daemon_main(int argc, char **argv, service_config *cfg, config_result what) {
  (void)what; /* only CONFIG_RUN reaches here on Unix */
  return pipemsgd_run(argc, argv, cfg);
}

void daemon_prepare(void) {
  signal(SIGPIPE, SIG_IGN);
  /* Until the loop watches for it, a SIGHUP must not kill a half-started service. */
  signal(SIGHUP, SIG_IGN);
}

int daemon_watch(uv_loop_t *loop) {
  uv_signal_init(loop, &sigint);
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sighup);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sighup, on_sighup, SIGHUP);
  systemd_notify_ready();
  return 0;
}

void daemon_unwatch(void) {
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&sighup, NULL);
  /* Closing the watcher restored the default action, which would kill the service while it
   * takes the tunnel down. */
  signal(SIGHUP, SIG_IGN);
}
