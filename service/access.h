#ifndef PIPEMSGD_ACCESS_H
#define PIPEMSGD_ACCESS_H

#include <stdbool.h>

#include "config.h"
#include "pipemsg/pipe.h"

/* Unix (access_unix.c): who may use the pipes: root, the service's own user (self), a user
 * --allow-uid lists, or a process holding a group --allow-gid lists, as its primary group or a
 * supplementary one (from peer->groups, or, when the server did not read them (ngroups -1),
 * from pm_peer_in_group: so inside an authorize callback). */
bool access_allowed(const service_config *cfg, long long self, const pm_peer *peer);

/* The authorization callback of both servers: 0 for a peer the platform's policy lets in
 * (Unix: access_allowed, self being the effective uid; Windows: access_win.c); else one
 * "refused pid=...: not allowed" log line (with uid and gid, or the SID; within the refusals'
 * limit, log_peer_allowed), and -1. */
int access_authorize(const service_config *cfg, const pm_peer *peer);

#endif
