#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "service.h"
#include "systemd.h"

typedef struct daemon_state {
  service *svc;
  service_config *cfg;
  int argc;
  char **argv;
  uv_signal_t sigint, sigterm, sighup;
} daemon_state;

static void on_signal(uv_signal_t *h, int signum) {
  daemon_state *d = h->data;
  log_msg(LVL_INFO, "stopping signal=%d", signum);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sighup, NULL);
  /* Closing the watcher restored the default action, which would kill the service while it
   * takes the tunnel down. */
  signal(SIGHUP, SIG_IGN);
  service_stop(d->svc);
}

/* SIGHUP's default action would end the service and leave its socket files behind. */
static void on_sighup(uv_signal_t *h, int signum) {
  daemon_state *d = h->data;
  (void)signum;
  log_msg(LVL_INFO, "SIGHUP: reloading the configuration");
  if (config_reload(d->argc, d->argv, d->cfg) > 0)
    service_reconfigure(d->svc, d->cfg);
}

int main(int argc, char **argv) {
  service_config cfg;
  daemon_state d;
  uv_loop_t *loop = uv_default_loop();
  int rc = 0;

  switch (config_load(argc, argv, &cfg)) {
  case CONFIG_EXIT_OK:
    config_free(&cfg);
    return 0;
  case CONFIG_EXIT_USAGE:
    config_free(&cfg);
    return 2;
  case CONFIG_RUN:
    break;
  }
  signal(SIGPIPE, SIG_IGN);
  /* Until the loop watches for it, a SIGHUP must not kill a half-started service. */
  signal(SIGHUP, SIG_IGN);
  log_open(cfg.log_level, cfg.log_target);
  if (cfg.data_dir != NULL && mkdir(cfg.data_dir, 0750) < 0 && errno != EEXIST) {
    log_msg(LVL_ERROR, "cannot create data dir '%s': %s", cfg.data_dir, strerror(errno));
    rc = 1;
  }
  if (rc == 0 && service_start(loop, &cfg, &d.svc) < 0)
    rc = 1;
  if (rc == 0) {
    d.cfg = &cfg;
    d.argc = argc;
    d.argv = argv;
    uv_signal_init(loop, &d.sigint);
    uv_signal_init(loop, &d.sigterm);
    uv_signal_init(loop, &d.sighup);
    d.sigint.data = d.sigterm.data = d.sighup.data = &d;
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sighup, on_sighup, SIGHUP);
    systemd_notify_ready();
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  if (rc == 0)
    log_msg(LVL_INFO, "stopped");
  log_close();
  config_free(&cfg);
  return rc;
}
