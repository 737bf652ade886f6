#ifndef PIPEMSGD_ACCESS_H
#define PIPEMSGD_ACCESS_H

#include <stdbool.h>

#include "config.h"
#include "pipemsg/pipe.h"

/* Who may use the pipes: root, the service's own user (self), a user --allow-uid lists, or a
 * process holding a group --allow-gid lists, as its primary group or a supplementary one. */
bool access_allowed(const service_config *cfg, long long self, const pm_peer *peer);

/* The authorization callback of both servers: 0 for a peer access_allowed lets in (self being
 * the effective uid); else one "refused pid=... uid=... gid=...: not allowed" log line, and -1. */
int access_authorize(const service_config *cfg, const pm_peer *peer);

#endif
