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

/* The hook backend: up() runs up_cmd, down() runs down_cmd (each at most timeout_ms, then its
 * whole tree is killed: SIGKILL to its process group, or TerminateJobObject on Windows), and
 * the result of the command is the result of the operation. Without shell the command is
 * split on ASCII spaces into argv (runs of spaces count as one; no quotes, no escapes, no
 * variables; on Windows each word is quoted so the program reads it back as it is); with
 * shell it runs as /bin/sh -c CMD (Windows: cmd.exe /d /v:on /s /c "CMD"). The request
 * reaches the command only through its environment: PIPEMSG_LOCATION and PIPEMSG_KILL_SWITCH
 * (1 or 0). down() gets the location of the last up(). A failure's message names the
 * command, how it ended and the tail of its stderr. A down() while the up command runs
 * cancels it (SIGTERM to its process group, SIGKILL after timeout_ms; on Windows its job is
 * terminated at once) and runs down_cmd once it has gone; that up() gets no done(), only the
 * down() does. How a command is run is hook_proc.h's. */
typedef struct backend_hook_options {
  const char *up_cmd;   /* required */
  const char *down_cmd; /* NULL: down() succeeds at once */
  bool shell;
  unsigned timeout_ms;  /* per command; 0: 30000 */
  const char *iface;    /* NULL: traffic() reports 0/0; else that interface's counters */
} backend_hook_options;

/* Copies what it needs from opts. -EINVAL for a missing or empty up_cmd, an empty down_cmd or
 * an invalid iface name (the interface itself need not exist yet); -ENOMEM. Logs each command
 * started and how it ended at debug level. */
int backend_hook_new(uv_loop_t *loop, const backend_hook_options *opts, backend **out);
/* The checks of backend_hook_new, for validating a configuration: 0, or -EINVAL and why
 * (size > 0) names the option at fault. */
int backend_hook_check(const backend_hook_options *opts, char *why, size_t size);
/* A new per-command time limit (0: 30000), from the next timer started on. */
void backend_hook_set_timeout(backend *b, unsigned timeout_ms);

/* The byte counters of a network interface (tx: sent, rx: received): on Linux from
 * /sys/class/net/IFACE/statistics, on Windows those GetIfEntry2 gives for the adapter whose
 * alias is IFACE (iface.h). 0, or -EINVAL for a name that cannot name one (Linux: not
 * [A-Za-z0-9_.:-]{1,15}, or . or ..), -ENOENT for an interface that does not exist (yet), or
 * another negative errno if they cannot be read; *tx and *rx are 0 on failure. */
int backend_iface_counters(const char *iface, uint64_t *tx, uint64_t *rx);

#endif
