#ifndef PIPEMSG_TRANSPORT_UNIX_H
#define PIPEMSG_TRANSPORT_UNIX_H

/* What transport_unix.c offers beyond the platform contract (transport.h): for its tests only,
 * never included above src/transport by the library. */

#include "transport/transport.h"

/* Test hook: called between bind() and setting the socket's mode and group, so a test can swap
 * the path under the server. NULL (the default) in normal use. */
extern void (*pm__pipe_after_bind_hook)(const char *path);

/* Test hook: gives the owner checks (pm__pipe_check_owner, pm__conn_check_owner) another uid
 * than the peer's own (it gets the real one), so a test without root can play a service run by
 * another user. NULL (the default) in normal use. */
extern long long (*pm__owner_uid_hook)(long long uid);

/* Wraps a connected socket in a blocking connection (taken: pm__conn_close closes it). */
int pm__conn_from_fd(int fd, pm__conn **out);

#endif
