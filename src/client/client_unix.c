#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "internal.h"
#include "pipemsg/error.h"

/* Room getpwnam_r may need when sysconf cannot tell. */
#define PWBUF_FALLBACK 16384

int pm__client_owner(const char *spec, long long *uid, char *sid, size_t sid_size) {
  struct passwd pw, *found = NULL;
  char *end, *buf;
  long size;
  unsigned long long n;
  int rc;
  if (sid_size > 0)
    sid[0] = '\0';
  if (spec == NULL || spec[0] == '\0') {
    *uid = 0;
    return 0;
  }
  if (strcmp(spec, "*") == 0) {
    *uid = -1;
    return 0;
  }
  errno = 0;
  n = strtoull(spec, &end, 10);
  if (spec[0] >= '0' && spec[0] <= '9' && *end == '\0' && errno == 0 && n <= (unsigned)-1) {
    *uid = (long long)n;
    return 0;
  }
  size = sysconf(_SC_GETPW_R_SIZE_MAX);
  if (size <= 0)
    size = PWBUF_FALLBACK;
  buf = pm__malloc((size_t)size);
  if (buf == NULL)
    return PM_ENOMEM;
  rc = getpwnam_r(spec, &pw, buf, (size_t)size, &found);
  if (rc == 0 && found != NULL)
    *uid = (long long)pw.pw_uid;
  pm__free(buf);
  return rc == 0 && found != NULL ? 0 : PM_EINVAL;
}

/* Unix: the loop's own poller descriptor (epoll, kqueue) is the descriptor to poll. Writes
 * made on the application's thread must not raise SIGPIPE (a service gone mid-request would
 * kill it), so SIGPIPE is blocked while the loop runs there and one raised meanwhile is taken
 * before the mask is restored, as libpq does. */
struct pm__client_driver {
  uv_loop_t *loop;
  sigset_t saved;
  int was_pending; /* SIGPIPE was pending already: it is the application's */
};

int pm__client_driver_new(uv_loop_t *loop, pm__client_driver **out) {
  pm__client_driver *d = pm__calloc(1, sizeof(*d));
  if (d == NULL)
    return PM_ENOMEM;
  d->loop = loop;
  *out = d;
  return 0;
}

void pm__client_driver_free(pm__client_driver *d) { pm__free(d); }

intptr_t pm__client_driver_handle(const pm__client_driver *d) {
  return d != NULL ? uv_backend_fd(d->loop) : -1;
}

void pm__client_driver_enter(pm__client_driver *d) {
  sigset_t only, pending;
  if (d == NULL)
    return;
  sigemptyset(&only);
  sigaddset(&only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &only, &d->saved);
  sigpending(&pending);
  d->was_pending = sigismember(&pending, SIGPIPE);
}

void pm__client_driver_leave(pm__client_driver *d) {
  sigset_t only, pending;
  struct timespec now = {0, 0};
  if (d == NULL)
    return;
  sigemptyset(&only);
  sigaddset(&only, SIGPIPE);
  sigpending(&pending);
  if (!d->was_pending && sigismember(&pending, SIGPIPE))
    while (sigtimedwait(&only, NULL, &now) < 0 && errno == EINTR)
      ;
  pthread_sigmask(SIG_SETMASK, &d->saved, NULL);
}

void pm__client_driver_stop(pm__client_driver *d) { (void)d; }

void pm__client_thread_detach(void) { pthread_detach(pthread_self()); }
