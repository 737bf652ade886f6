#include <stdio.h>
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
 * cannot tell the supplementary groups (before Linux 4.13) only the primary group counts.
 * The command server does not read them at accept (groups_on_demand: most callers are allowed
 * by their uid), so without them (ngroups -1) they are asked through pm_peer_in_group, from
 * the kernel, inside the authorize callback; any answer but "a member" is no. */
bool access_allowed(const service_config *cfg, long long self, const pm_peer *peer) {
  char gid[24];
  if (peer->uid < 0)
    return false;
  if (peer->uid == 0 || peer->uid == self || id_listed(&cfg->allow_uid, peer->uid))
    return true;
  if (id_listed(&cfg->allow_gid, peer->gid))
    return true;
  for (int i = 0; i < peer->ngroups; i++)
    if (id_listed(&cfg->allow_gid, peer->groups[i]))
      return true;
  for (int i = 0; peer->ngroups < 0 && i < cfg->allow_gid.n; i++) {
    snprintf(gid, sizeof(gid), "%lld", cfg->allow_gid.v[i]);
    if (pm_peer_in_group(peer, gid) == 1)
      return true;
  }
  return false;
}

/* The service's effective uid, asked once: pipemsgd never changes its credentials (no set*id
 * call anywhere; its hooks run in child processes), so every later geteuid would answer the
 * same, at the price of a syscall per call from anyone but root. Read on the loop thread, the
 * only one that authorizes. */
static long long self_uid(void) {
  static long long self = -1;
  if (self < 0)
    self = (long long)geteuid();
  return self;
}

int access_authorize(const service_config *cfg, const pm_peer *peer) {
  /* access_allowed lets root in before it looks at self: root's calls (most of them) need not
   * even the cached uid. */
  if (peer->uid == 0 || access_allowed(cfg, self_uid(), peer))
    return 0;
  if (log_peer_allowed(LOG_PEER_REFUSAL, LVL_WARNING))
    log_msg(LVL_WARNING, "refused pid=%lld uid=%lld gid=%lld: not allowed", peer->pid,
            peer->uid, peer->gid);
  return -1;
}
