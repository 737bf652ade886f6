/* Who may use the pipes on Windows: LocalSystem, Administrators, the service's own account,
 * an account --allow-user lists, or a member of a group --allow-group lists. The pipes'
 * descriptor (--pipe-sddl) decides who may open them at all; this list narrows it. */
#include <winsock2.h> /* before windows.h, as uv.h wants */
#include <windows.h>
#include <sddl.h>

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "files_win.h"
#include "log.h"

#define SID_LOCAL_SYSTEM "S-1-5-18"
#define SID_ADMINISTRATORS "S-1-5-32-544"

static bool sid_listed(const config_strings *sids, const char *sid) {
  for (int i = 0; i < sids->n; i++)
    if (_stricmp(sids->v[i], sid) == 0)
      return true;
  return false;
}

/* Group membership comes from the client's token (pm_peer_in_group), never from the account
 * database: what the process holds, not what the user could. */
static bool peer_allowed(const service_config *cfg, const pm_peer *peer) {
  const char *self = files_self_sid();
  if (peer->sid[0] == '\0')
    return false;
  if (strcmp(peer->sid, SID_LOCAL_SYSTEM) == 0 ||
      (self[0] != '\0' && strcmp(peer->sid, self) == 0) || sid_listed(&cfg->allow_user, peer->sid))
    return true;
  if (pm_peer_in_group(peer, SID_ADMINISTRATORS) == 1)
    return true;
  for (int i = 0; i < cfg->allow_group.n; i++)
    if (pm_peer_in_group(peer, cfg->allow_group.v[i]) == 1)
      return true;
  return false;
}

int access_authorize(const service_config *cfg, const pm_peer *peer) {
  if (peer_allowed(cfg, peer))
    return 0;
  if (log_peer_allowed(LOG_PEER_REFUSAL, LVL_WARNING))
    log_msg(LVL_WARNING, "refused pid=%lld sid=%s: not allowed", peer->pid,
            peer->sid[0] ? peer->sid : "-");
  return -1;
}
