#ifndef PIPEMSGD_BACKEND_H
#define PIPEMSGD_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

/* What brings the tunnel up and down. The service owns the VPN state machine; a backend only
 * does the work and reports back once per operation through done(). Every call happens on the
 * service's loop thread. */
typedef struct backend backend;

typedef enum { BACKEND_UP, BACKEND_DOWN } backend_op;

/* status 0: the operation completed; <0: it failed, message says why. */
typedef void (*backend_done_cb)(backend *b, backend_op op, int status, const char *message);

struct backend {
  const char *name;
  /* Start bringing the tunnel up; done(BACKEND_UP) follows unless down() comes first. */
  int (*up)(backend *b, const char *location, bool kill_switch);
  /* Start tearing it down (also cancels an up() in progress); done(BACKEND_DOWN) follows. */
  int (*down)(backend *b);
  void (*traffic)(backend *b, uint64_t *sent, uint64_t *received);
  /* Releases the backend; cb runs once its handles are closed. */
  void (*close)(backend *b, void (*cb)(void *arg), void *arg);
  backend_done_cb done;
  void *owner;
};

/* The built-in simulated backend: connecting takes connect_ms, disconnecting a tenth of it;
 * traffic grows while connected. Connecting to the location named unreachable (may be NULL)
 * fails after connect_ms. */
int backend_sim_new(uv_loop_t *loop, unsigned connect_ms, const char *unreachable,
                    backend **out);

#endif
