#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct pm__client_notify {
  int fds[2]; /* [0] is polled by the application, [1] written by library threads */
};

int pm__client_notify_new(pm__client_notify **out) {
  pm__client_notify *n = pm__calloc(1, sizeof(*n));
  if (n == NULL)
    return PM_ENOMEM;
  if (pipe(n->fds) < 0) {
    pm__free(n);
    return PM_EIO;
  }
  for (int i = 0; i < 2; i++) {
    fcntl(n->fds[i], F_SETFL, fcntl(n->fds[i], F_GETFL) | O_NONBLOCK);
    fcntl(n->fds[i], F_SETFD, FD_CLOEXEC);
  }
  *out = n;
  return 0;
}

void pm__client_notify_free(pm__client_notify *n) {
  if (n == NULL)
    return;
  close(n->fds[0]);
  close(n->fds[1]);
  pm__free(n);
}

intptr_t pm__client_notify_handle(const pm__client_notify *n) { return n->fds[0]; }

void pm__client_notify_set(pm__client_notify *n) {
  char b = 1;
  /* A full pipe is as good as a byte written: the reader is woken either way. */
  while (write(n->fds[1], &b, 1) < 0 && errno == EINTR)
    ;
}

void pm__client_notify_clear(pm__client_notify *n) {
  char buf[64];
  ssize_t got;
  do
    got = read(n->fds[0], buf, sizeof(buf));
  while (got > 0 || (got < 0 && errno == EINTR));
}
