/* Windows has no SIGPIPE (a write to a gone reader fails with ERROR_NO_DATA): no guard. */
#include "transport/transport.h"

int pm__sigpipe_guard_start(uv_loop_t *loop, pm__sigpipe_guard **out) {
  (void)loop;
  *out = NULL;
  return 0;
}

void pm__sigpipe_guard_close(pm__sigpipe_guard *g) { (void)g; }

int pm__sigpipe_hold(void) { return 0; }

void pm__sigpipe_release(int held) { (void)held; }
