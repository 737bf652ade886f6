#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "systemd.h"

/* The first fd systemd passes. */
#define LISTEN_FDS_START 3
/* Most fds we look at. */
#define LISTEN_FDS_MAX 8

int systemd_listen_fds(int *command_fd, int *event_fd) {
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
  const char *names = getenv("LISTEN_FDNAMES");
  char buf[256], *save = NULL, *name;
  int n, i;
  *command_fd = *event_fd = -1;
  if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
    return 0;
  n = atoi(fds);
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (n < 1 || n > LISTEN_FDS_MAX)
    return -1;
  /* Passed descriptors arrive without close-on-exec; set it on all of them (used or not), or
   * every program pipemsgd runs (hook commands) would inherit the listening sockets. */
  for (i = 0; i < n; i++) {
    struct stat st;
    int flags = fcntl(LISTEN_FDS_START + i, F_GETFD);
    if (fstat(LISTEN_FDS_START + i, &st) < 0 || !S_ISSOCK(st.st_mode) || flags < 0 ||
        fcntl(LISTEN_FDS_START + i, F_SETFD, flags | FD_CLOEXEC) < 0)
      return -1;
  }
  if (names != NULL) {
    snprintf(buf, sizeof(buf), "%s", names);
    for (i = 0, name = strtok_r(buf, ":", &save); name != NULL && i < n;
         i++, name = strtok_r(NULL, ":", &save)) {
      if (strcmp(name, "command") == 0)
        *command_fd = LISTEN_FDS_START + i;
      else if (strcmp(name, "event") == 0)
        *event_fd = LISTEN_FDS_START + i;
    }
  }
  if (*command_fd < 0 && *event_fd < 0) {
    *command_fd = LISTEN_FDS_START;
    if (n > 1)
      *event_fd = LISTEN_FDS_START + 1;
  }
  return n;
}

void systemd_notify_ready(void) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa;
  size_t len;
  int fd;
  if (path == NULL || (path[0] != '/' && path[0] != '@'))
    return;
  len = strlen(path);
  if (len >= sizeof(sa.sun_path))
    return;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@')
    sa.sun_path[0] = '\0';
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  (void)sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
  close(fd);
}
