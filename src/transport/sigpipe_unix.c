/* The SIGPIPE guard of a server on an application's loop (transport.h). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "internal.h"
#include "pipemsg/error.h"
#include "transport/transport.h"

struct pm__sigpipe_guard {
  uv_prepare_t before_poll;
  uv_check_t after_poll;
  int open_handles;
  int closing; /* closed while its window was open: the check callback closes it */
};

/* Guards alive in the process: with none, pm__sigpipe_hold costs nothing. */
static atomic_int live_guards;
/* A guard's window is open on this thread: SIGPIPE blocked by us until the next check. */
static _Thread_local int window_open;

/* Blocks SIGPIPE on this thread: 1 if it was not blocked (so it is ours to unblock). */
static int block(void) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  if (pthread_sigmask(SIG_BLOCK, &pipe_only, &old) != 0)
    return 0;
  return !sigismember(&old, SIGPIPE);
}

/* Takes the SIGPIPE our writes raised while it was blocked (it was not pending before: with
 * the default disposition an unblocked one would have ended the process), then unblocks. */
static void unblock(void) {
  sigset_t pipe_only;
  struct timespec now = {0, 0};
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  while (sigtimedwait(&pipe_only, NULL, &now) == SIGPIPE)
    continue;
  pthread_sigmask(SIG_UNBLOCK, &pipe_only, NULL);
}

static void on_guard_closed(uv_handle_t *h) {
  pm__sigpipe_guard *g = h->data;
  if (--g->open_handles == 0) {
    atomic_fetch_sub(&live_guards, 1);
    pm__free(g);
  }
}

static void close_handles(pm__sigpipe_guard *g) {
  uv_close((uv_handle_t *)&g->before_poll, on_guard_closed);
  uv_close((uv_handle_t *)&g->after_poll, on_guard_closed);
}

static void on_before_poll(uv_prepare_t *h) {
  pm__sigpipe_guard *g = h->data;
  if (!window_open && !g->closing)
    window_open = block();
}

static void on_after_poll(uv_check_t *h) {
  pm__sigpipe_guard *g = h->data;
  if (window_open) {
    unblock();
    window_open = 0;
  }
  if (g->closing)
    close_handles(g);
}

int pm__sigpipe_guard_start(uv_loop_t *loop, pm__sigpipe_guard **out) {
  struct sigaction current;
  pm__sigpipe_guard *g;
  *out = NULL;
  if (sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler != SIG_DFL)
    return 0;
  g = pm__calloc(1, sizeof(*g));
  if (g == NULL)
    return PM_ENOMEM;
  uv_prepare_init(loop, &g->before_poll);
  uv_check_init(loop, &g->after_poll);
  g->before_poll.data = g;
  g->after_poll.data = g;
  g->open_handles = 2;
  /* The guard alone must not keep the loop running. */
  uv_unref((uv_handle_t *)&g->before_poll);
  uv_unref((uv_handle_t *)&g->after_poll);
  uv_prepare_start(&g->before_poll, on_before_poll);
  uv_check_start(&g->after_poll, on_after_poll);
  atomic_fetch_add(&live_guards, 1);
  *out = g;
  return 0;
}

void pm__sigpipe_guard_close(pm__sigpipe_guard *g) {
  if (g == NULL)
    return;
  /* Closed from a callback of the poll: the window stays open for the rest of it (other
   * servers may write there), and the check callback ends it. */
  if (window_open)
    g->closing = 1;
  else
    close_handles(g);
}

int pm__sigpipe_hold(void) {
  if (atomic_load_explicit(&live_guards, memory_order_relaxed) == 0 || window_open)
    return 0;
  return block();
}

void pm__sigpipe_release(int held) {
  if (held)
    unblock();
}
