#ifndef PIPEMSGD_SERVICE_H
#define PIPEMSGD_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "pipemsg/pipemsg.h"

#include "backend.h"

/* Most --transient options pipemsgd takes. */
#define SERVICE_TRANSIENT_MAX 16

/* Everything pipemsgd can be told on its command line. 0 means the library default. */
typedef struct service_config {
  const char *command_pipe;
  const char *event_pipe;
  const char *data_dir;
  uint32_t request_timeout_ms;
  uint32_t write_timeout_ms;
  size_t max_message;
  uint32_t handshake_timeout_ms;
  uint32_t heartbeat_ms;
  uint32_t ack_timeout_ms;
  size_t queue_max_events;
  size_t queue_max_bytes;
  const char *transient[SERVICE_TRANSIENT_MAX + 1]; /* NULL-terminated */
  unsigned connect_delay_ms;
  unsigned traffic_interval_ms;
  const char *sim_unreachable; /* a Location the simulated backend cannot reach */
  int test_commands;
  int verbose;
} service_config;

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
/* Stops accepting, closes everything; the loop then runs dry and the service is freed. */
void service_stop(service *svc);

/* Logging for pipemsgd: one line to stderr, prefixed with the program name. */
void service_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
