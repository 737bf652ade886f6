#include <unistd.h>

#include "access.h"
#include "log.h"

static bool id_listed(const config_ids *ids, long long id) {
  for (int i = 0; i < ids->n; i++)
    if (ids->v[i] == id)
      return true;
  return false;
}

/* The groups are those the kernel saw the peer hold when it connected. Never the group
 * database, which says what a user may hold, not what the process holds; where the kernel
 * cannot tell the supplementary groups (before Linux 4.13) only the primary group counts. */
bool access_allowed(const service_config *cfg, long long self, const pm_peer *peer) {
  if (peer->uid < 0)
    return false;
  if (peer->uid == 0 || peer->uid == self || id_listed(&cfg->allow_uid, peer->uid))
    return true;
  if (id_listed(&cfg->allow_gid, peer->gid))
    return true;
  for (int i = 0; i < peer->ngroups; i++)
    if (id_listed(&cfg->allow_gid, peer->groups[i]))
      return true;
  return false;
}

int access_authorize(const service_config *cfg, const pm_peer *peer) {
  if (access_allowed(cfg, (long long)geteuid(), peer))
    return 0;
  log_msg(LVL_WARNING, "refused pid=%lld uid=%lld gid=%lld: not allowed", peer->pid, peer->uid,
          peer->gid);
  return -1;
}
