#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "contract.h"
#include "log.h"
#include "platform.h"
#include "service.h"
#include "settings.h"

/* Room for a Location: StartVpn's, which the contract (schema/contract.toml) bounds at 64. */
#define LOCATION_MAX 64

static const char *const state_names[VPN_STATE_MAX] = {
    [VPN_DISCONNECTED] = "Disconnected",
    [VPN_CONNECTING] = "Connecting",
    [VPN_CONNECTED] = "Connected",
    [VPN_DISCONNECTING] = "Disconnecting",
};

/* Command pipe counters for GetStats, kept from the per-connection log. */
typedef struct command_stats {
  uint64_t connections, ok, failed, bad_request, no_request;
} command_stats;

/* GetState's Data and what it was built from. Most calls find nothing changed and answer with
 * the same tree (shared, never modified once built) instead of packing six members again;
 * every call compares, so no change can be missed. It holds a reference to the bypass
 * domains, whose address therefore cannot be reused by a later list while it is kept. */
typedef struct state_view {
  json_t *data;
  vpn_state state;
  bool kill_switch, reconnection;
  const json_t *domains;
  char location[LOCATION_MAX + 1];
  char since[PM_TIME_MAX];
  char last_error[512];
} state_view;

struct service {
  uv_loop_t *loop;
  service_config cfg;
  pm_command_server *commands;
  pm_event_server *events;
  pm_event_store *store; /* with --data-dir */
  backend *vpn;
  uv_timer_t traffic_timer;
  int open_parts; /* command server, event server, backend, timer: freed when all closed */
  int command_fd, event_fd; /* passed by socket activation, else -1 */
  char command_name[64], event_name[64]; /* random names (--names-file, --names-registry) */
  vpn_state state;
  char location[LOCATION_MAX + 1];
  settings settings;
  char since[PM_TIME_MAX]; /* time of the last state change */
  char last_error[512]; /* a backend failure, with a hook command's stderr tail */
  command_stats cstats;
  state_view view;
  bool stopping; /* service_stop ran: the pipes are closed, the backend closes after down */
};

static void publish(service *svc, const char *type, json_t *data) {
  int rc = pm_event_server_publish(svc->events, type, data, NULL);
  if (rc < 0)
    log_msg(LVL_ERROR, "cannot publish %s: %s", type,
            rc == PM_EIO ? "the event store cannot keep it" : pm_strerror(rc));
}

static void publish_state(service *svc, const char *error) {
  json_t *data = json_pack("{s:s, s:s}", "State", state_names[svc->state], "Location",
                           svc->location);
  if (data != NULL && error != NULL)
    json_object_set_new(data, "Error", json_string(error));
  publish(svc, "StateChanged", data);
}

static void on_traffic_tick(uv_timer_t *t) {
  service *svc = t->data;
  uint64_t sent = 0, received = 0;
  svc->vpn->traffic(svc->vpn, &sent, &received);
  publish(svc, PM_EVENT_TRAFFIC_CHANGED,
          json_pack("{s:I, s:I}", "BytesSent", (json_int_t)sent, "BytesReceived",
                    (json_int_t)received));
}

static int save_settings(service *svc);

/* Keeps (with a data directory) whether a tunnel may be up, for the next start. */
static void keep_tunnel(service *svc, bool up) {
  if (svc->settings.tunnel_up == up)
    return;
  svc->settings.tunnel_up = up;
  save_settings(svc);
}

static void set_state(service *svc, vpn_state state, const char *error) {
  log_msg(LVL_INFO, "vpn state=%s previous=%s", state_names[state], state_names[svc->state]);
  if (state == VPN_CONNECTING)
    keep_tunnel(svc, true);
  svc->state = state;
  pm_time_now(svc->since);
  if (state == VPN_CONNECTED)
    uv_timer_start(&svc->traffic_timer, on_traffic_tick, svc->cfg.traffic_interval_ms,
                   svc->cfg.traffic_interval_ms);
  else
    uv_timer_stop(&svc->traffic_timer);
  publish_state(svc, error);
}

static void on_part_closed(void *arg);

static void on_backend_done(backend *b, backend_op op, int status, const char *message) {
  service *svc = b->owner;
  log_msg(LVL_DEBUG, "backend %s done status=%d", op == BACKEND_UP ? "up" : "down", status);
  /* The tunnel is known to be down only once a down succeeded: an up that failed, timed out
   * above all, may have left part of a tunnel up. */
  if (op == BACKEND_DOWN && status == 0)
    keep_tunnel(svc, false);
  if (svc->stopping) {
    /* The pipes are closed: nobody to tell. The down started by service_stop is over. */
    if (op == BACKEND_DOWN) {
      log_msg(status < 0 ? LVL_WARNING : LVL_INFO, "stopping: tunnel down%s%s",
              status < 0 ? " failed: " : "", status < 0 && message ? message : "");
      svc->vpn->close(svc->vpn, on_part_closed, svc);
    }
    return;
  }
  if (status < 0) {
    snprintf(svc->last_error, sizeof(svc->last_error), "%s", message ? message : "failed");
    log_msg(LVL_WARNING, "vpn %s failed: %s", op == BACKEND_UP ? "start" : "stop",
            svc->last_error);
    set_state(svc, VPN_DISCONNECTED, svc->last_error);
    publish(svc, "ErrorOccured",
            json_pack("{s:s, s:s}", "Result", PM_RESULT_ERROR, "Message", svc->last_error));
    return;
  }
  set_state(svc, op == BACKEND_UP ? VPN_CONNECTED : VPN_DISCONNECTED, NULL);
}

/* ---- commands --------------------------------------------------------------------------- */

static int save_settings(service *svc) {
  if (settings_save(&svc->settings, config_data_dir(&svc->cfg)) == 0)
    return 0;
  log_msg(LVL_ERROR, "cannot save settings in %s", svc->cfg.data_dir);
  return -1;
}

/* A setting the data directory cannot keep is not set: Ok would promise it survives a
 * restart. */
#define SETTING_NOT_SAVED "the setting could not be saved in the data directory"

/* Handlers get their Params checked against the contract (schema/contract.toml) and in their
 * declared types, defaults filled in: on_command did it, for both encodings. */

static void cmd_get_commands(service *svc, pm_command_call *call, const json_t *params) {
  json_t *data = pm__contract_describe(svc->cfg.test_commands);
  (void)params;
  if (data == NULL) {
    pm_command_call_reply(call, PM_RESULT_ERROR, pm_strerror(PM_ENOMEM), NULL);
    return;
  }
  pm_command_call_reply(call, PM_RESULT_OK, NULL, data);
}

static void cmd_get_version(service *svc, pm_command_call *call, const json_t *params) {
  (void)svc;
  (void)params;
  pm_command_call_reply(call, PM_RESULT_OK, NULL,
                        json_pack("{s:s, s:i, s:s}", "Version", PM_VERSION, "Protocol",
                                  PM_PROTOCOL_VERSION, "Service", "pipemsgd"));
}

static bool view_current(const service *svc) {
  const state_view *v = &svc->view;
  return v->data != NULL && v->state == svc->state && v->kill_switch == svc->settings.kill_switch &&
         v->reconnection == svc->settings.reconnection &&
         v->domains == svc->settings.bypass_domains && strcmp(v->location, svc->location) == 0 &&
         strcmp(v->since, svc->since) == 0 && strcmp(v->last_error, svc->last_error) == 0;
}

static json_t *state_data(service *svc) {
  state_view *v = &svc->view;
  json_t *data;
  if (view_current(svc))
    return json_incref(v->data);
  data = json_pack("{s:s, s:s, s:b, s:b, s:O, s:s}", "State", state_names[svc->state],
                   "Location", svc->location, "KillSwitch", svc->settings.kill_switch,
                   "ReconnectionEnabled", svc->settings.reconnection, "BypassDomains",
                   svc->settings.bypass_domains, "Since", svc->since);
  if (data == NULL)
    return NULL;
  /* Out of memory the answer goes without LastError, as it always did, but is not kept. */
  if (svc->last_error[0] != '\0' &&
      json_object_set_new(data, "LastError", json_string(svc->last_error)) < 0)
    return data;
  json_decref(v->data);
  v->data = json_incref(data);
  v->state = svc->state;
  v->kill_switch = svc->settings.kill_switch;
  v->reconnection = svc->settings.reconnection;
  v->domains = svc->settings.bypass_domains;
  memcpy(v->location, svc->location, sizeof(v->location));
  memcpy(v->since, svc->since, sizeof(v->since));
  memcpy(v->last_error, svc->last_error, sizeof(v->last_error));
  return data;
}

static void cmd_get_state(service *svc, pm_command_call *call, const json_t *params) {
  (void)params;
  pm_command_call_reply(call, PM_RESULT_OK, NULL, state_data(svc));
}

static void cmd_start_vpn(service *svc, pm_command_call *call, const json_t *params) {
  const char *location = json_string_value(json_object_get(params, "Location"));
  const json_t *ks = json_object_get(params, "EnableKillSwitch");
  bool kill_switch = ks != NULL ? json_is_true(ks) : svc->settings.kill_switch;
  char why[PM_REASON_MAX];

  if (svc->state != VPN_DISCONNECTED) {
    snprintf(why, sizeof(why), "VPN is already %s", state_names[svc->state]);
    pm_command_call_reply(call, PM_RESULT_TOO_MANY_REQUESTS, why, NULL);
    return;
  }
  if (kill_switch != svc->settings.kill_switch) {
    svc->settings.kill_switch = kill_switch;
    if (save_settings(svc) < 0) {
      svc->settings.kill_switch = !kill_switch;
      pm_command_call_reply(call, PM_RESULT_ERROR, SETTING_NOT_SAVED, NULL);
      return;
    }
  }
  snprintf(svc->location, sizeof(svc->location), "%s", location);
  svc->last_error[0] = '\0';
  set_state(svc, VPN_CONNECTING, NULL);
  if (svc->vpn->up(svc->vpn, svc->location, kill_switch) < 0) {
    set_state(svc, VPN_DISCONNECTED, "backend could not start the tunnel");
    pm_command_call_reply(call, PM_RESULT_ERROR, "backend could not start the tunnel", NULL);
    return;
  }
  pm_command_call_reply(call, PM_RESULT_OK, NULL, json_pack("{s:s}", "State", "Connecting"));
}

static void cmd_stop_vpn(service *svc, pm_command_call *call, const json_t *params) {
  char why[PM_REASON_MAX];
  (void)params;
  if (svc->state == VPN_DISCONNECTED || svc->state == VPN_DISCONNECTING) {
    snprintf(why, sizeof(why), "VPN is already %s", state_names[svc->state]);
    pm_command_call_reply(call, PM_RESULT_TOO_MANY_REQUESTS, why, NULL);
    return;
  }
  set_state(svc, VPN_DISCONNECTING, NULL);
  if (svc->vpn->down(svc->vpn) < 0) {
    pm_command_call_reply(call, PM_RESULT_ERROR, "backend could not stop the tunnel", NULL);
    return;
  }
  pm_command_call_reply(call, PM_RESULT_OK, NULL, json_pack("{s:s}", "State", "Disconnecting"));
}

/* Enable/DisableKillSwitch, SetReconnectionEnabled: one boolean setting, kept. */
static void set_flag(service *svc, pm_command_call *call, bool *flag, bool value) {
  bool was = *flag;
  *flag = value;
  if (save_settings(svc) < 0) {
    *flag = was;
    pm_command_call_reply(call, PM_RESULT_ERROR, SETTING_NOT_SAVED, NULL);
    return;
  }
  pm_command_call_reply(call, PM_RESULT_OK, NULL, NULL);
}

static void cmd_enable_kill_switch(service *svc, pm_command_call *call, const json_t *params) {
  (void)params;
  set_flag(svc, call, &svc->settings.kill_switch, true);
}

static void cmd_disable_kill_switch(service *svc, pm_command_call *call, const json_t *params) {
  (void)params;
  set_flag(svc, call, &svc->settings.kill_switch, false);
}

static void cmd_set_reconnection_enabled(service *svc, pm_command_call *call,
                                         const json_t *params) {
  set_flag(svc, call, &svc->settings.reconnection,
           json_is_true(json_object_get(params, "Enabled")));
}

static void cmd_is_reconnection_enabled(service *svc, pm_command_call *call,
                                        const json_t *params) {
  (void)params;
  pm_command_call_reply(call, PM_RESULT_OK, NULL,
                        json_pack("{s:b}", "Enabled", svc->settings.reconnection));
}

static void cmd_configure_bypass_domains(service *svc, pm_command_call *call,
                                         const json_t *params) {
  json_t *was, *domains = json_deep_copy(json_object_get(params, "Domains"));
  if (domains == NULL) {
    pm_command_call_reply(call, PM_RESULT_ERROR, pm_strerror(PM_ENOMEM), NULL);
    return;
  }
  was = svc->settings.bypass_domains;
  svc->settings.bypass_domains = domains;
  if (save_settings(svc) < 0) {
    svc->settings.bypass_domains = was;
    json_decref(domains);
    pm_command_call_reply(call, PM_RESULT_ERROR, SETTING_NOT_SAVED, NULL);
    return;
  }
  json_decref(was);
  pm_command_call_reply(call, PM_RESULT_OK, NULL,
                        json_pack("{s:I}", "Count", (json_int_t)json_array_size(domains)));
}

static void cmd_get_traffic(service *svc, pm_command_call *call, const json_t *params) {
  uint64_t sent = 0, received = 0;
  (void)params;
  svc->vpn->traffic(svc->vpn, &sent, &received);
  pm_command_call_reply(call, PM_RESULT_OK, NULL,
                        json_pack("{s:I, s:I}", "BytesSent", (json_int_t)sent, "BytesReceived",
                                  (json_int_t)received));
}

static void cmd_get_stats(service *svc, pm_command_call *call, const json_t *params) {
  pm_event_stats e;
  const command_stats *c = &svc->cstats;
  (void)params;
  pm_event_server_stats(svc->events, &e);
  pm_command_call_reply(
      call, PM_RESULT_OK, NULL,
      json_pack("{s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I}}",
                "Commands", "Connections", (json_int_t)c->connections, "Ok", (json_int_t)c->ok,
                "Failed", (json_int_t)c->failed, "BadRequest", (json_int_t)c->bad_request,
                "NoRequest", (json_int_t)c->no_request, "Events", "Published",
                (json_int_t)e.published, "Delivered", (json_int_t)e.delivered, "Redelivered",
                (json_int_t)e.redelivered, "DroppedTransient", (json_int_t)e.dropped_transient,
                "LostOverflow", (json_int_t)e.lost_overflow, "ResumeSkipped",
                (json_int_t)e.resumed_skipped, "HeartbeatFailures",
                (json_int_t)e.heartbeat_failures, "HandshakeFailures",
                (json_int_t)e.handshake_failures, "AckFailures", (json_int_t)e.ack_failures,
                "BusyRejections", (json_int_t)e.busy_rejections, "StaleAcks",
                (json_int_t)e.stale_acks, "Sessions", (json_int_t)e.sessions,
                "DroppedUnencodable", (json_int_t)e.dropped_unencodable, "StoreErrors",
                (json_int_t)e.store_errors, "StoreRowsSkipped", (json_int_t)e.store_skipped,
                "ObserverSessions", (json_int_t)e.observer_sessions, "SlowObservers",
                (json_int_t)e.slow_observers, "Observers", (json_int_t)e.observers, "Queued",
                (json_int_t)e.queued, "Attached", e.attached, "Epoch",
                (json_int_t)pm_event_server_epoch(svc->events)));
}

/* --test-commands only: its Params back as Data, as large as a request may be: a response the
 * client must read, for tests of the write deadline. */
static void cmd_echo(service *svc, pm_command_call *call, const json_t *params) {
  (void)svc;
  pm_command_call_reply(call, PM_RESULT_OK, NULL, params != NULL ? json_deep_copy(params) : NULL);
}

/* --test-commands only: publish Count events of a Type, for tests and demos. A Data given for
 * a declared event type is checked against (and converted to) its declaration; without Data
 * the type is published bare, which delivery tests use (a TrafficChanged to coalesce). */
static void cmd_emit_event(service *svc, pm_command_call *call, const json_t *params) {
  const char *type = json_string_value(json_object_get(params, "Type"));
  const json_t *given = json_object_get(params, "Data");
  const pm__ct_event *declared = pm__contract_event(type);
  const pm_msg *request = pm_command_call_request(call);
  int64_t count = json_integer_value(json_object_get(params, "Count")), id = 0, first = 0;
  json_t *data = given != NULL ? json_incref((json_t *)given) : NULL;
  char why[PM_REASON_MAX];
  int rc;
  if (declared != NULL && given != NULL) {
    json_decref(data);
    data = NULL;
    rc = pm__contract_check(declared->fields, declared->n_fields, given,
                            pm_msg_encoding(request) == PM_ENC_XML, true, type, &data, why);
    if (rc < 0) {
      pm_command_call_reply(call, rc == PM_ENOMEM ? PM_RESULT_ERROR : PM_RESULT_BAD_REQUEST,
                            why, NULL);
      return;
    }
  }
  for (int64_t i = 0; i < count; i++) {
    rc = pm_event_server_publish(svc->events, type, data ? json_deep_copy(data) : NULL, &id);
    if (rc == PM_EINVAL || rc == PM_EMSGSIZE) {
      json_decref(data);
      pm_command_call_reply(call, PM_RESULT_BAD_REQUEST,
                            rc == PM_EINVAL ? "Data cannot be carried in both JSON and XML"
                                            : "the event would exceed the largest message or its node limit",
                            NULL);
      return;
    }
    if (rc < 0) {
      snprintf(why, sizeof(why), "event %lld of %lld not published: %s", (long long)i + 1,
               (long long)count, rc == PM_EIO ? "the event store cannot keep it" : pm_strerror(rc));
      log_msg(LVL_ERROR, "cannot publish EmitEvent's event: %s", why);
      json_decref(data);
      pm_command_call_reply(call, PM_RESULT_ERROR, why, NULL);
      return;
    }
    if (i == 0)
      first = id;
  }
  json_decref(data);
  pm_command_call_reply(call, PM_RESULT_OK, NULL,
                        json_pack("{s:I, s:I}", "FirstId", (json_int_t)first, "LastId",
                                  (json_int_t)id));
}

/* The handlers of the contract's commands; which are test-only is the contract's to say. */
typedef struct command {
  const char *name;
  void (*run)(service *svc, pm_command_call *call, const json_t *params);
} command;

static const command commands[] = {
    {"GetCommands", cmd_get_commands},
    {"GetVersion", cmd_get_version},
    {"GetState", cmd_get_state},
    {"StartVpn", cmd_start_vpn},
    {"StopVpn", cmd_stop_vpn},
    {"GetTraffic", cmd_get_traffic},
    {"GetStats", cmd_get_stats},
    {"EnableKillSwitch", cmd_enable_kill_switch},
    {"DisableKillSwitch", cmd_disable_kill_switch},
    {"SetReconnectionEnabled", cmd_set_reconnection_enabled},
    {"IsReconnectionEnabled", cmd_is_reconnection_enabled},
    {"ConfigureBypassDomains", cmd_configure_bypass_domains},
    {"EmitEvent", cmd_emit_event},
    {"Echo", cmd_echo},
};

static const command *handler_of(const char *name) {
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

/* Every command of the contract has its handler, and no handler is outside the contract: a
 * service built otherwise refuses to start rather than answer a declared command wrongly. The
 * same for the room kept for a Location. */
static int commands_match_contract(void) {
  const pm__ct_command *start = pm__contract_command("StartVpn", false);
  size_t location_max = 0;
  for (size_t i = 0; start != NULL && i < start->n_params; i++)
    if (strcmp(start->params[i].name, "Location") == 0)
      location_max = start->params[i].type->max_length;
  if (location_max == 0 || location_max > LOCATION_MAX) {
    log_msg(LVL_ERROR, "the contract's StartVpn Location is not bounded by %d bytes",
            LOCATION_MAX);
    return -1;
  }
  for (size_t i = 0; i < pm__contract_n_commands; i++)
    if (handler_of(pm__contract_commands[i].name) == NULL) {
      log_msg(LVL_ERROR, "the contract's command %s has no handler", pm__contract_commands[i].name);
      return -1;
    }
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (pm__contract_command(commands[i].name, true) == NULL) {
      log_msg(LVL_ERROR, "command %s is not in the contract", commands[i].name);
      return -1;
    }
  return 0;
}

/* A peer's command name as logged: only a name (pm_name_valid) is written, so no command can
 * add words or fields to a line. */
static const char *loggable_name(const char *name) {
  return name == NULL ? "-" : pm_name_valid(name) ? name : "(invalid)";
}

/* text for a quoted log value, cut at 120 bytes: a double quote inside becomes ', so the
 * value cannot end early and be followed by forged fields. */
static const char *loggable_text(const char *text, char buf[static 121]) {
  size_t i = 0;
  for (; text != NULL && text[i] != '\0' && i < 120; i++)
    buf[i] = text[i] == '"' ? '\'' : text[i];
  buf[i] = '\0';
  return buf;
}

/* Who a peer is, for a log line: "uid=N" where the platform tells uids (Unix), else
 * "sid=S-1-..." (Windows), into buf. */
static const char *peer_who(const pm_peer *peer, char buf[static PM_PEER_SID_MAX + 8]) {
  if (peer->sid[0] != '\0')
    snprintf(buf, PM_PEER_SID_MAX + 8, "sid=%s", peer->sid);
  else
    snprintf(buf, PM_PEER_SID_MAX + 8, "uid=%lld", peer->uid);
  return buf;
}

static void on_command(pm_command_call *call, void *data) {
  service *svc = data;
  const char *name = pm_command_call_command(call);
  const pm_peer *peer = pm_command_call_peer(call);
  const pm__ct_command *declared = pm__contract_command(name, svc->cfg.test_commands);
  const char *closest;
  json_t *params = NULL;
  char why[PM_REASON_MAX], who[PM_PEER_SID_MAX + 8];
  int rc;
  /* Its arguments cost more than the test: only when the line is written. */
  if (log_enabled(LVL_DEBUG))
    log_msg(LVL_DEBUG, "command received pid=%lld %s command=%.64s", peer->pid,
            peer_who(peer, who), loggable_name(name));
  if (declared == NULL) {
    if (!pm_name_valid(name))
      snprintf(why, sizeof(why), "Command is not a name ([A-Za-z_][A-Za-z0-9_.-]*)");
    else if ((closest = pm__contract_closest_command(name, svc->cfg.test_commands)) != NULL)
      snprintf(why, sizeof(why), "unknown command '%.64s'; did you mean '%s'?", name, closest);
    else
      snprintf(why, sizeof(why), "unknown command '%.64s' (GetCommands lists them)", name);
    pm_command_call_reply(call, PM_RESULT_BAD_REQUEST, why, NULL);
    return;
  }
  /* Before any handler: Params against the declaration, XML text in the declared types. */
  rc = pm__contract_check_params(declared, pm_command_call_params(call),
                                 pm_msg_encoding(pm_command_call_request(call)) == PM_ENC_XML,
                                 &params, why);
  if (rc < 0) {
    pm_command_call_reply(call, rc == PM_ENOMEM ? PM_RESULT_ERROR : PM_RESULT_BAD_REQUEST, why,
                          NULL);
    return;
  }
  handler_of(declared->name)->run(svc, call, params);
  json_decref(params);
}

static void on_command_log(const pm_command_log *e, void *data) {
  service *svc = data;
  command_stats *c = &svc->cstats;
  char reason[121];
  log_line line;
  log_level level;
  platform_heap_trim_if_large();
  /* Not a connection: the pipe's listener cannot go on as it should (Windows). */
  if (e->peer.pid < 0 && e->command == NULL && e->result == NULL &&
      strncmp(e->reason, "listener: ", 10) == 0) {
    log_msg(LVL_ERROR, "command %s", loggable_text(e->reason, reason));
    return;
  }
  c->connections++;
  if (e->result == NULL)
    c->no_request++;
  else if (strcmp(e->result, PM_RESULT_OK) == 0)
    c->ok++;
  else if (strcmp(e->result, PM_RESULT_BAD_REQUEST) == 0)
    c->bad_request++;
  else
    c->failed++;
  /* authorize() said why already: one refusal, one line. */
  if (e->result != NULL && strcmp(e->result, PM_RESULT_NOT_AUTHORIZED) == 0)
    return;
  level = e->result == NULL || strcmp(e->result, PM_RESULT_OK) != 0 ? LVL_WARNING : LVL_INFO;
  /* Without a request, nothing says the peer was allowed: anyone who can connect can cause
   * such a line (closing at once, say) as fast as it connects. */
  if (e->command == NULL ? !log_peer_allowed(LOG_PEER_NO_REQUEST, level) : !log_enabled(level))
    return;
  /* The line of every call, appended piece by piece: printf's parsing of the format cost more
   * than the rest of the line. "command pid=%lld %s command=%.64s result=%s duration_ms=%llu
   * reason=\"%s\"". */
  log_line_init(&line);
  log_line_add(&line, "command pid=");
  log_line_int(&line, e->peer.pid);
  if (e->peer.sid[0] != '\0') {
    log_line_add(&line, " sid=");
    log_line_add(&line, e->peer.sid);
  } else {
    log_line_add(&line, " uid=");
    log_line_int(&line, e->peer.uid);
  }
  log_line_add(&line, " command=");
  log_line_addn(&line, loggable_name(e->command), 64);
  log_line_add(&line, " result=");
  log_line_add(&line, e->result ? e->result : "-");
  log_line_add(&line, " duration_ms=");
  log_line_uint(&line, (unsigned long long)e->duration_ms);
  log_line_add(&line, " reason=\"");
  log_line_add(&line, loggable_text(e->reason, reason));
  log_line_add(&line, "\"");
  log_line_write(level, &line);
}

/* A session that ended as sessions do: the client left, or the service is stopping. */
static bool event_end_normal(const pm_event_log *e) {
  return e->reason != NULL && (strcmp(e->reason, "client closed") == 0 ||
                               strncmp(e->reason, PM_DISCONNECT_SHUTDOWN,
                                       strlen(PM_DISCONNECT_SHUTDOWN)) == 0);
}

/* An observer's lines say "observer" before what happened; the client's keep their words. */
static void on_event_log(const pm_event_log *e, void *data) {
  bool normal = strcmp(e->what, "attached") == 0 ||
                (strcmp(e->what, "detached") == 0 && event_end_normal(e));
  char reason[121], who[PM_PEER_SID_MAX + 8];
  (void)data;
  /* Not a session: the pipe's listener cannot go on as it should (Windows). */
  if (strcmp(e->what, "listener") == 0) {
    log_msg(LVL_ERROR, "event listener: %s", loggable_text(e->reason, reason));
    return;
  }
  if (strcmp(e->what, "detached") == 0)
    platform_heap_trim();
  /* authorize() said why already: one refusal, one line. */
  if (strcmp(e->what, "refused") == 0)
    return;
  /* An allowed user can be turned away Busy as fast as it connects (GetStats counts them all). */
  if (strcmp(e->what, "busy") == 0 && !log_peer_allowed(LOG_PEER_BUSY, LVL_WARNING))
    return;
  if (e->event_id > 0) {
    log_msg(LVL_DEBUG, "event pid=%lld %s %s%s id=%lld", e->peer.pid, peer_who(&e->peer, who),
            e->observer ? "observer " : "", e->what, (long long)e->event_id);
    return;
  }
  log_msg(normal ? LVL_INFO : LVL_WARNING,
          "event pid=%lld %s %s%s%s%s%s duration_ms=%llu", e->peer.pid, peer_who(&e->peer, who),
          e->observer ? "observer " : "", e->what, e->reason ? " reason=\"" : "",
          e->reason ? loggable_text(e->reason, reason) : "", e->reason ? "\"" : "",
          (unsigned long long)e->duration_ms);
}

/* ---- access control ------------------------------------------------------------------------ */

static int authorize(const pm_peer *peer, void *data) {
  service *svc = data;
  return access_authorize(&svc->cfg, peer);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void on_part_closed(void *arg) {
  service *svc = arg;
  if (--svc->open_parts > 0)
    return;
  pm_event_store_close(svc->store);
  json_decref(svc->view.data);
  settings_free(&svc->settings);
  free(svc);
}

static void on_timer_closed(uv_handle_t *h) { on_part_closed(h->data); }

static int start_pipes(service *svc) {
  pm_command_server_options copts;
  pm_event_server_options eopts;
  const service_config *cfg = &svc->cfg;
  unsigned gid;
  int rc;

  if (config_socket_gid(cfg, &gid) < 0)
    return PM_EINVAL;
  if (config_data_dir(cfg) != NULL) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/events.db", cfg->data_dir);
    rc = pm_event_store_open(path, &svc->store);
    if (rc < 0) {
      log_msg(LVL_ERROR, "cannot open event store %s: %s", path, pm_strerror(rc));
      return rc;
    }
  }

  memset(&eopts, 0, sizeof(eopts));
  eopts.max_message = cfg->max_message;
  eopts.handshake_timeout_ms = cfg->handshake_timeout_ms;
  eopts.heartbeat_ms = cfg->heartbeat_ms;
  eopts.ack_timeout_ms = cfg->ack_timeout_ms;
  eopts.write_timeout_ms = cfg->write_timeout_ms;
  eopts.queue_max_events = cfg->queue_max_events;
  eopts.queue_max_bytes = cfg->queue_max_bytes;
  eopts.max_observers = (unsigned)cfg->max_observers;
  eopts.observer_max_unsent = cfg->observer_max_unsent;
  eopts.transient = (const char *const *)cfg->transient.v;
  eopts.service_name = "pipemsgd " PM_VERSION;
  eopts.socket_mode = cfg->socket_mode;
  eopts.socket_gid = gid;
  eopts.pipe_sddl = cfg->pipe_sddl;
  eopts.listen_fd = svc->event_fd > 0 ? svc->event_fd : 0;
  eopts.authorize = authorize;
  eopts.store = svc->store;
  eopts.log = on_event_log;
  eopts.data = svc;
  rc = pm_event_server_start(svc->loop, cfg->event_pipe, &eopts, &svc->events);
  if (rc < 0) {
    log_msg(LVL_ERROR, "cannot serve event pipe '%s': %s", cfg->event_pipe, pm_strerror(rc));
    return rc;
  }
  svc->open_parts++;
  if (svc->store != NULL) {
    pm_event_stats st;
    pm_event_server_stats(svc->events, &st);
    if (st.store_skipped > 0)
      log_msg(LVL_WARNING,
              "event store: skipped %llu invalid rows (removed; see docs/operations.md)",
              (unsigned long long)st.store_skipped);
  }

  memset(&copts, 0, sizeof(copts));
  copts.max_message = cfg->max_message;
  copts.request_timeout_ms = cfg->request_timeout_ms;
  copts.write_timeout_ms = cfg->write_timeout_ms;
  copts.handler = on_command;
  copts.socket_mode = cfg->socket_mode;
  copts.socket_gid = gid;
  copts.pipe_sddl = cfg->pipe_sddl;
  copts.listen_fd = svc->command_fd > 0 ? svc->command_fd : 0;
  copts.authorize = authorize;
  copts.groups_on_demand = 1; /* access_allowed asks pm_peer_in_group */
  copts.log = on_command_log;
  copts.data = svc;
  rc = pm_command_server_start(svc->loop, cfg->command_pipe, &copts, &svc->commands);
  if (rc < 0) {
    log_msg(LVL_ERROR, "cannot serve command pipe '%s': %s", cfg->command_pipe,
            pm_strerror(rc));
    return rc;
  }
  svc->open_parts++;
  return 0;
}

/* --names-file, --names-registry: random pipe names, so that only who can read where they are
 * published finds the pipes. */
static int pick_names(service *svc) {
  unsigned char r[8];
  char hex[17];
  if (uv_random(NULL, NULL, r, sizeof(r), 0, NULL) < 0)
    return -1;
  for (int i = 0; i < 8; i++)
    snprintf(hex + 2 * i, 3, "%02x", r[i]);
  snprintf(svc->command_name, sizeof(svc->command_name), "pipemsg-%s-command", hex);
  snprintf(svc->event_name, sizeof(svc->event_name), "pipemsg-%s-event", hex);
  svc->cfg.command_pipe = svc->command_name;
  svc->cfg.event_pipe = svc->event_name;
  return 0;
}

int service_start(uv_loop_t *loop, const service_config *cfg, service **out) {
  service *svc = calloc(1, sizeof(*svc));
  int rc;
  if (svc == NULL)
    return PM_ENOMEM;
  platform_heap_setup();
  if (commands_match_contract() < 0) {
    free(svc);
    return PM_EINVAL;
  }
  svc->loop = loop;
  svc->cfg = *cfg;
  /* GetState's Location before any start: StartVpn's default (schema/contract.toml). */
  snprintf(svc->location, sizeof(svc->location), "%s", "auto");
  pm_time_now(svc->since);
  if (settings_load(&svc->settings, config_data_dir(cfg)) < 0) {
    log_msg(LVL_ERROR, "cannot read settings in %s", cfg->data_dir);
    settings_free(&svc->settings);
    free(svc);
    return PM_EIO;
  }
  if (platform_inherited_listeners(&svc->command_fd, &svc->event_fd) < 0) {
    log_msg(LVL_ERROR, "LISTEN_FDS passes something other than sockets");
    settings_free(&svc->settings);
    free(svc);
    return PM_EINVAL;
  }
  if (svc->command_fd < 0 && svc->event_fd < 0 && config_random_names(cfg) &&
      (pick_names(svc) < 0 || platform_names_prepare(cfg) < 0)) {
    settings_free(&svc->settings);
    free(svc);
    return PM_EIO;
  }
  if (cfg->backend == BACKEND_HOOK) {
    backend_hook_options hook = {cfg->up_cmd, cfg->down_cmd, cfg->hook_shell != 0,
                                 cfg->hook_timeout_ms, cfg->iface};
    rc = backend_hook_new(loop, &hook, &svc->vpn);
  } else {
    rc = backend_sim_new(loop, cfg->connect_delay_ms, cfg->sim_unreachable, &svc->vpn);
  }
  if (rc < 0) {
    log_msg(LVL_ERROR, "cannot set up the %s backend%s", cfg->backend == BACKEND_HOOK ? "hook" : "sim",
            cfg->backend == BACKEND_HOOK ? ": up-cmd is required, iface must be a valid name" : "");
    settings_free(&svc->settings);
    free(svc);
    return PM_EINVAL;
  }
  svc->vpn->done = on_backend_done;
  svc->vpn->owner = svc;
  uv_timer_init(loop, &svc->traffic_timer);
  svc->traffic_timer.data = svc;
  svc->open_parts = 2;
  rc = start_pipes(svc);
  if (rc == 0 && config_random_names(&svc->cfg) && svc->command_fd < 0 &&
      platform_names_publish(&svc->cfg, pm_command_server_path(svc->commands),
                             pm_event_server_path(svc->events)) < 0)
    rc = PM_EIO;
  if (rc < 0) {
    service_stop(svc);
    return rc;
  }
  /* Logged once the names are published too: whoever waits for this line finds them. */
  log_msg(LVL_INFO, "listening command_pipe=%s%s event_pipe=%s%s epoch=%lld",
          pm_command_server_path(svc->commands), svc->command_fd > 0 ? " (socket activation)" : "",
          pm_event_server_path(svc->events), svc->event_fd > 0 ? " (socket activation)" : "",
          (long long)pm_event_server_epoch(svc->events));
  if (svc->settings.tunnel_up) {
    log_msg(LVL_WARNING, "a tunnel was left up when the service last ran: taking it down");
    set_state(svc, VPN_DISCONNECTING, NULL);
    if (svc->vpn->down(svc->vpn) < 0) {
      log_msg(LVL_ERROR, "the %s backend could not start taking the tunnel down",
              svc->vpn->name);
      set_state(svc, VPN_DISCONNECTED, "backend could not stop the tunnel");
    }
  }
  *out = svc;
  return 0;
}

void service_reconfigure(service *svc, const service_config *cfg) {
  log_set_level(cfg->log_level);
  svc->cfg.log_level = cfg->log_level;
  log_peer_limit((unsigned)cfg->log_rejections_per_second);
  svc->cfg.log_rejections_per_second = cfg->log_rejections_per_second;
  svc->cfg.allow_uid = cfg->allow_uid;
  svc->cfg.allow_gid = cfg->allow_gid;
  svc->cfg.hook_timeout_ms = cfg->hook_timeout_ms;
  if (svc->cfg.backend == BACKEND_HOOK)
    backend_hook_set_timeout(svc->vpn, cfg->hook_timeout_ms);
  if (svc->cfg.traffic_interval_ms != cfg->traffic_interval_ms) {
    svc->cfg.traffic_interval_ms = cfg->traffic_interval_ms;
    if (svc->state == VPN_CONNECTED)
      uv_timer_start(&svc->traffic_timer, on_traffic_tick, cfg->traffic_interval_ms,
                     cfg->traffic_interval_ms);
  }
}

void service_stop(service *svc) {
  svc->stopping = true;
  if (config_random_names(&svc->cfg) && svc->command_fd < 0 && svc->commands != NULL)
    platform_names_withdraw(&svc->cfg);
  if (svc->commands != NULL)
    pm_command_server_close(svc->commands, on_part_closed, svc);
  if (svc->events != NULL)
    pm_event_server_close(svc->events, on_part_closed, svc);
  uv_close((uv_handle_t *)&svc->traffic_timer, on_timer_closed);
  /* A tunnel left up would outlive the service that says it is Disconnected: take it down
   * first (a down already running is waited for); the hook timeout bounds the wait. */
  if (svc->state == VPN_DISCONNECTING)
    return;
  if (svc->state != VPN_DISCONNECTED || svc->settings.tunnel_up) {
    log_msg(LVL_INFO, "stopping: taking the tunnel down first");
    if (svc->vpn->down(svc->vpn) == 0)
      return;
    log_msg(LVL_ERROR, "stopping: the %s backend could not start taking the tunnel down",
            svc->vpn->name);
  }
  svc->vpn->close(svc->vpn, on_part_closed, svc);
}
