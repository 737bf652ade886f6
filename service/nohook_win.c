/* The hook backend is not ported to Windows yet (docs/windows.md, "What is not built yet"):
 * until it is, --backend hook is refused there as a configuration error, before anything
 * starts. Replaced by the hook backend's Windows files when they land. */
#include <errno.h>
#include <stdio.h>

#include "backend.h"

#define NOT_YET "the hook backend is not available on Windows yet; use --backend sim"

int backend_hook_check(const backend_hook_options *opts, char *why, size_t size) {
  (void)opts;
  if (size > 0)
    snprintf(why, size, "%s", NOT_YET);
  return -EINVAL;
}

int backend_hook_new(uv_loop_t *loop, const backend_hook_options *opts, backend **out) {
  (void)loop;
  (void)opts;
  *out = NULL;
  return -EINVAL;
}

/* Never reached: no hook backend is ever made on Windows. */
void backend_hook_set_timeout(backend *b, unsigned timeout_ms) {
  (void)b;
  (void)timeout_ms;
}
