#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"

/* Simulated traffic rates while connected, bytes per second. */
#define SIM_SEND_RATE 12000u
#define SIM_RECV_RATE 48000u

typedef struct sim {
  backend base;
  uv_loop_t *loop;
  uv_timer_t timer;
  unsigned connect_ms;
  const char *unreachable;
  int failing; /* the current up() will fail */
  backend_op pending;
  uint64_t connected_at; /* loop ms, 0 while not connected */
  uint64_t sent, received; /* totals of earlier sessions */
  void (*close_cb)(void *arg);
  void *close_arg;
} sim;

static void sim_account(sim *s) {
  if (s->connected_at != 0) {
    uint64_t secs_ms = uv_now(s->loop) - s->connected_at;
    s->sent += secs_ms * SIM_SEND_RATE / 1000;
    s->received += secs_ms * SIM_RECV_RATE / 1000;
    s->connected_at = 0;
  }
}

static void on_timer(uv_timer_t *t) {
  sim *s = t->data;
  backend_op op = s->pending;
  if (op == BACKEND_UP && s->failing) {
    s->base.done(&s->base, op, -1, "simulated location is unreachable");
    return;
  }
  if (op == BACKEND_UP)
    s->connected_at = uv_now(s->loop) ? uv_now(s->loop) : 1;
  s->base.done(&s->base, op, 0, NULL);
}

static int sim_up(backend *b, const char *location, bool kill_switch) {
  sim *s = (sim *)b;
  (void)kill_switch;
  s->failing = s->unreachable != NULL && strcmp(location, s->unreachable) == 0;
  s->pending = BACKEND_UP;
  log_msg(LVL_DEBUG, "backend sim up started delay_ms=%u%s", s->connect_ms,
          s->failing ? " (will fail: sim-unreachable)" : "");
  return uv_timer_start(&s->timer, on_timer, s->connect_ms, 0);
}

static int sim_down(backend *b) {
  sim *s = (sim *)b;
  sim_account(s);
  s->pending = BACKEND_DOWN;
  log_msg(LVL_DEBUG, "backend sim down started delay_ms=%u", s->connect_ms / 10);
  return uv_timer_start(&s->timer, on_timer, s->connect_ms / 10, 0);
}

static void sim_traffic(backend *b, uint64_t *sent, uint64_t *received) {
  sim *s = (sim *)b;
  uint64_t ms = s->connected_at ? uv_now(s->loop) - s->connected_at : 0;
  *sent = s->sent + ms * SIM_SEND_RATE / 1000;
  *received = s->received + ms * SIM_RECV_RATE / 1000;
}

static void on_closed(uv_handle_t *h) {
  sim *s = h->data;
  if (s->close_cb != NULL)
    s->close_cb(s->close_arg);
  free(s);
}

static void sim_close(backend *b, void (*cb)(void *arg), void *arg) {
  sim *s = (sim *)b;
  s->close_cb = cb;
  s->close_arg = arg;
  uv_close((uv_handle_t *)&s->timer, on_closed);
}

int backend_sim_new(uv_loop_t *loop, unsigned connect_ms, const char *unreachable,
                    backend **out) {
  sim *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -1;
  s->base.name = "simulated";
  s->base.up = sim_up;
  s->base.down = sim_down;
  s->base.traffic = sim_traffic;
  s->base.close = sim_close;
  s->loop = loop;
  s->connect_ms = connect_ms;
  s->unreachable = unreachable;
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  *out = &s->base;
  return 0;
}
