#ifndef PIPEMSGD_SERVICE_H
#define PIPEMSGD_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pipemsg/pipemsg.h"

#include "backend.h"
#include "config.h"

typedef enum {
  VPN_DISCONNECTED,
  VPN_CONNECTING,
  VPN_CONNECTED,
  VPN_DISCONNECTING,
  VPN_STATE_MAX
} vpn_state;

typedef struct service service;

/* Starts serving both pipes; on failure the reason has been logged and the caller runs the
 * loop dry. */
int service_start(uv_loop_t *loop, const service_config *cfg, service **out);
/* Stops accepting, takes a tunnel that may be up down (at most the backend's time limit),
 * closes everything; the loop then runs dry and the service is freed. */
void service_stop(service *svc);
/* SIGHUP: applies cfg's run-time options (log-level, allow-uid, allow-gid, hook-timeout-ms,
 * traffic-interval-ms; see config_reload). */
void service_reconfigure(service *svc, const service_config *cfg);

#endif
