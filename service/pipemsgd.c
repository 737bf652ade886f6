#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "platform.h"
#include "service.h"

/* The one service of the process, and what a reload reads again. */
static struct {
  service *svc;
  service_config *cfg;
  int argc;
  char **argv;
} run;

void pipemsgd_stop(const char *why) {
  log_batch_stop();
  log_msg(LVL_INFO, "stopping %s", why);
  daemon_unwatch();
  service_stop(run.svc);
}

void pipemsgd_reload(void) {
  log_msg(LVL_INFO, "SIGHUP: reloading the configuration");
  if (config_reload(run.argc, run.argv, run.cfg) > 0)
    service_reconfigure(run.svc, run.cfg);
}

int pipemsgd_run(int argc, char **argv, service_config *cfg) {
  uv_loop_t *loop = uv_default_loop();
  int rc = 0;

  run.cfg = cfg;
  run.argc = argc;
  run.argv = argv;
  daemon_prepare();
  if (cfg->log_target == LOG_TO_FILE) {
    if (log_open_file(cfg->log_level, cfg->log_file) < 0) {
      fprintf(stderr, "pipemsgd: cannot open log file %s\n", cfg->log_file);
      return 1;
    }
  } else {
    log_open(cfg->log_level, cfg->log_target);
  }
  log_peer_limit((unsigned)cfg->log_rejections_per_second);
  if (platform_check_access(cfg) < 0)
    rc = 1;
  if (rc == 0 && config_data_dir(cfg) != NULL &&
      (platform_make_data_dir(cfg->data_dir) < 0 || platform_lock_data_dir(cfg->data_dir) < 0))
    rc = 1;
  if (rc == 0 && service_start(loop, cfg, &run.svc) < 0)
    rc = 1;
  if (rc == 0 && daemon_watch(loop) < 0) {
    log_msg(LVL_ERROR, "cannot watch for stop requests");
    service_stop(run.svc);
    rc = 1;
  }
  /* Each call's info line was one write; the log of a busy service is now one per batch. */
  if (rc == 0 && log_batch_start(loop) < 0)
    log_msg(LVL_WARNING, "cannot batch log lines: writing them one by one");
  if (rc == 0 && log_peer_start(loop) < 0)
    log_msg(LVL_WARNING, "cannot time suppressed-line summaries: they wait for the next line");
  uv_run(loop, UV_RUN_DEFAULT);
  /* A stop that did not come through pipemsgd_stop: the timers are closed by one more run. */
  log_batch_stop();
  log_peer_stop();
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  if (rc == 0)
    log_msg(LVL_INFO, "stopped");
  log_close();
  return rc;
}

int main(int argc, char **argv) {
  service_config cfg;
  config_result what = config_load(argc, argv, &cfg);
  int rc;
  if (what == CONFIG_EXIT_OK)
    rc = 0;
  else if (what == CONFIG_EXIT_USAGE)
    rc = 2;
  else
    rc = daemon_main(argc, argv, &cfg, what);
  config_free(&cfg);
  return rc;
}
