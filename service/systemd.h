#ifndef PIPEMSGD_SYSTEMD_H
#define PIPEMSGD_SYSTEMD_H

/* The two pieces of the systemd protocol pipemsgd speaks, without linking libsystemd. */

/* Sockets passed by socket activation ($LISTEN_PID, $LISTEN_FDS, $LISTEN_FDNAMES): the fd
 * named "command" and the one named "event", else the first and the second. Each is -1 when
 * not passed. Returns the number of fds passed (0 without activation), <0 if they make no
 * sense. The variables are removed and the fds made close-on-exec, so children inherit
 * neither. */
int systemd_listen_fds(int *command_fd, int *event_fd);

/* Sends READY=1 to $NOTIFY_SOCKET when it is set (Type=notify; the tests use it too). */
void systemd_notify_ready(void);

#endif
