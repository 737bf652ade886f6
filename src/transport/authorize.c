/* pm_peer_in_group: the group check an authorize callback may make, on the connection the
 * server is deciding about. pm_peer cannot carry a Windows token, so the server says which
 * peer it is asking about, on its own thread, for the time of the callback; a copy of the
 * peer, another thread or a later call gets PM_EINVAL, never a connection that may be gone.
 * And pm__same_user, the identity the servers' per-user limits count by. */
#include <string.h>

#include "pipemsg/error.h"
#include "pipemsg/pipe.h"

#include "transport.h"

static _Thread_local const pm_peer *authorizing_peer;
static _Thread_local uv_pipe_t *authorizing_stream;
static _Thread_local pm__link *authorizing_link;

void pm__authorizing(const pm_peer *peer, uv_pipe_t *stream) {
  authorizing_peer = peer;
  authorizing_stream = stream;
  authorizing_link = NULL;
}

void pm__authorizing_link(const pm_peer *peer, pm__link *link) {
  authorizing_peer = peer;
  authorizing_stream = NULL;
  authorizing_link = link;
}

int pm_peer_in_group(const pm_peer *peer, const char *group) {
  if (peer == NULL || peer != authorizing_peer)
    return PM_EINVAL;
  if (authorizing_link != NULL)
    return pm__link_peer_in_group(authorizing_link, group);
  if (authorizing_stream == NULL)
    return PM_EINVAL;
  return pm__pipe_peer_in_group(authorizing_stream, group);
}

int pm__same_user(const pm_peer *a, const pm_peer *b) {
  return a->uid == b->uid && strcmp(a->sid, b->sid) == 0;
}
