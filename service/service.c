#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "service.h"

/* Longest Location a client may ask for; a name, not a blob. */
#define LOCATION_MAX 64

static const char *const state_names[VPN_STATE_MAX] = {
    [VPN_DISCONNECTED] = "Disconnected",
    [VPN_CONNECTING] = "Connecting",
    [VPN_CONNECTED] = "Connected",
    [VPN_DISCONNECTING] = "Disconnecting",
};

struct service {
  uv_loop_t *loop;
  service_config cfg;
  pm_command_server *commands;
  backend *vpn;
  vpn_state state;
  char location[LOCATION_MAX + 1];
  bool kill_switch;
  char since[32]; /* RFC 3339 time of the last state change */
  char last_error[PM_REASON_MAX];
};

void service_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("pipemsgd: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void format_now(char *buf, size_t size) {
  uv_timeval64_t tv;
  struct tm tm;
  time_t secs;
  uv_gettimeofday(&tv);
  secs = (time_t)tv.tv_sec;
  gmtime_r(&secs, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

static void set_state(service *svc, vpn_state state) {
  if (svc->cfg.verbose)
    service_log("vpn %s -> %s", state_names[svc->state], state_names[state]);
  svc->state = state;
  format_now(svc->since, sizeof(svc->since));
}

static void on_backend_done(backend *b, backend_op op, int status, const char *message) {
  service *svc = b->owner;
  if (status < 0) {
    snprintf(svc->last_error, sizeof(svc->last_error), "%s", message ? message : "failed");
    service_log("vpn %s failed: %s", op == BACKEND_UP ? "start" : "stop", svc->last_error);
    set_state(svc, VPN_DISCONNECTED);
    return;
  }
  set_state(svc, op == BACKEND_UP ? VPN_CONNECTED : VPN_DISCONNECTED);
}

/* ---- commands --------------------------------------------------------------------------- */

static void cmd_get_version(service *svc, pm_command_call *call) {
  (void)svc;
  pm_command_call_reply(call, PM_RESULT_OK, NULL,
                        json_pack("{s:s, s:i, s:s}", "Version", PM_VERSION, "Protocol",
                                  PM_PROTOCOL_VERSION, "Service", "pipemsgd"));
}

static void cmd_get_state(service *svc, pm_command_call *call) {
  json_t *data = json_pack("{s:s, s:s, s:b, s:s}", "State", state_names[svc->state], "Location",
                           svc->location, "KillSwitch", svc->kill_switch, "Since", svc->since);
  if (data != NULL && svc->last_error[0] != '\0')
    json_object_set_new(data, "LastError", json_string(svc->last_error));
  pm_command_call_reply(call, PM_RESULT_OK, NULL, data);
}

static void cmd_start_vpn(service *svc, pm_command_call *call) {
  const json_t *params = pm_command_call_params(call);
  const char *location = "auto";
  bool kill_switch = false;
  char why[PM_REASON_MAX];
  int rc;

  if (svc->state != VPN_DISCONNECTED) {
    snprintf(why, sizeof(why), "VPN is already %s", state_names[svc->state]);
    pm_command_call_reply(call, PM_RESULT_TOO_MANY_REQUESTS, why, NULL);
    return;
  }
  rc = pm_tree_get_string(params, "Location", &location);
  if (rc == PM_ETYPE || (rc == 0 && (location[0] == '\0' || strlen(location) > LOCATION_MAX))) {
    pm_command_call_reply(call, PM_RESULT_BAD_REQUEST,
                          "Location must be a non-empty string of at most 64 bytes", NULL);
    return;
  }
  rc = pm_tree_get_bool(params, "EnableKillSwitch", &kill_switch);
  if (rc == PM_ETYPE) {
    pm_command_call_reply(call, PM_RESULT_BAD_REQUEST, "EnableKillSwitch must be a boolean",
                          NULL);
    return;
  }
  snprintf(svc->location, sizeof(svc->location), "%s", location);
  svc->kill_switch = kill_switch;
  svc->last_error[0] = '\0';
  set_state(svc, VPN_CONNECTING);
  if (svc->vpn->up(svc->vpn, svc->location, kill_switch) < 0) {
    set_state(svc, VPN_DISCONNECTED);
    pm_command_call_reply(call, PM_RESULT_ERROR, "backend could not start the tunnel", NULL);
    return;
  }
  pm_command_call_reply(call, PM_RESULT_OK, NULL, json_pack("{s:s}", "State", "Connecting"));
}

static void cmd_stop_vpn(service *svc, pm_command_call *call) {
  char why[PM_REASON_MAX];
  if (svc->state == VPN_DISCONNECTED || svc->state == VPN_DISCONNECTING) {
    snprintf(why, sizeof(why), "VPN is already %s", state_names[svc->state]);
    pm_command_call_reply(call, PM_RESULT_TOO_MANY_REQUESTS, why, NULL);
    return;
  }
  set_state(svc, VPN_DISCONNECTING);
  if (svc->vpn->down(svc->vpn) < 0) {
    pm_command_call_reply(call, PM_RESULT_ERROR, "backend could not stop the tunnel", NULL);
    return;
  }
  pm_command_call_reply(call, PM_RESULT_OK, NULL, json_pack("{s:s}", "State", "Disconnecting"));
}

static void cmd_get_traffic(service *svc, pm_command_call *call) {
  uint64_t sent = 0, received = 0;
  svc->vpn->traffic(svc->vpn, &sent, &received);
  pm_command_call_reply(call, PM_RESULT_OK, NULL,
                        json_pack("{s:I, s:I}", "BytesSent", (json_int_t)sent, "BytesReceived",
                                  (json_int_t)received));
}

static const struct {
  const char *name;
  void (*run)(service *svc, pm_command_call *call);
} commands[] = {
    {"GetVersion", cmd_get_version}, {"GetState", cmd_get_state},
    {"StartVpn", cmd_start_vpn},     {"StopVpn", cmd_stop_vpn},
    {"GetTraffic", cmd_get_traffic},
};

static void on_command(pm_command_call *call, void *data) {
  service *svc = data;
  const char *name = pm_command_call_command(call);
  char why[PM_REASON_MAX];
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    if (strcmp(commands[i].name, name) == 0) {
      commands[i].run(svc, call);
      return;
    }
  }
  snprintf(why, sizeof(why), "unknown command '%.64s'", name);
  pm_command_call_reply(call, PM_RESULT_BAD_REQUEST, why, NULL);
}

static void on_command_log(const pm_command_log *e, void *data) {
  (void)data;
  service_log("command peer=pid:%lld,uid:%lld command=%s result=%s duration_ms=%llu reason=\"%s\"",
              e->peer.pid, e->peer.uid, e->command ? e->command : "-",
              e->result ? e->result : "-", (unsigned long long)e->duration_ms, e->reason);
}

int service_start(uv_loop_t *loop, const service_config *cfg, service **out) {
  pm_command_server_options opts;
  service *svc = calloc(1, sizeof(*svc));
  int rc;
  if (svc == NULL)
    return PM_ENOMEM;
  svc->loop = loop;
  svc->cfg = *cfg;
  format_now(svc->since, sizeof(svc->since));
  rc = backend_sim_new(loop, cfg->connect_delay_ms, &svc->vpn);
  if (rc < 0) {
    free(svc);
    return PM_ENOMEM;
  }
  svc->vpn->done = on_backend_done;
  svc->vpn->owner = svc;

  memset(&opts, 0, sizeof(opts));
  opts.max_message = cfg->max_message;
  opts.request_timeout_ms = cfg->request_timeout_ms;
  opts.write_timeout_ms = cfg->write_timeout_ms;
  opts.handler = on_command;
  opts.log = on_command_log;
  opts.data = svc;
  rc = pm_command_server_start(loop, cfg->command_pipe, &opts, &svc->commands);
  if (rc < 0) {
    service_log("cannot serve command pipe '%s': %s", cfg->command_pipe, pm_strerror(rc));
    svc->vpn->close(svc->vpn, free, svc);
    return rc;
  }
  service_log("command pipe %s", pm_command_server_path(svc->commands));
  *out = svc;
  return 0;
}

static void on_backend_closed(void *arg) { free(arg); }

void service_stop(service *svc) {
  pm_command_server_close(svc->commands, NULL, NULL);
  svc->vpn->close(svc->vpn, on_backend_closed, svc);
}
