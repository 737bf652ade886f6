#ifndef PIPEMSG_PIPE_H
#define PIPEMSG_PIPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Pipe names (PROTOCOL §1). */
#define PM_COMMAND_PIPE_DEFAULT "UnifiedSDKVPNCommandPipe"
#define PM_EVENT_PIPE_DEFAULT "UnifiedSDKVPNEventPipe"
/* Longest Unix socket path (sun_path less its NUL on Linux). */
#define PM_PIPE_PATH_MAX 107

/* Resolves a pipe name to the path a socket (or Windows pipe) is bound to: a name containing
 * '/' (or starting with \\.\pipe\) is used as is; otherwise it goes in $PIPEMSG_RUNTIME_DIR,
 * else $XDG_RUNTIME_DIR/pipemsg, else /run/pipemsg. PM_ENAMETOOLONG if the path exceeds
 * PM_PIPE_PATH_MAX, never truncated; PM_EINVAL for an empty name. */
int pm_pipe_path(const char *name, char *buf, size_t size);

/* The directory a bare name resolves into (see pm_pipe_path). */
int pm_pipe_dir(char *buf, size_t size);

/* Permissions of socket files a server creates, unless told otherwise. */
#define PM_SOCKET_MODE_DEFAULT 0660

/* Credentials of a connected peer; -1 where the platform cannot tell. */
typedef struct pm_peer {
  long long pid;
  long long uid;
  long long gid;
} pm_peer;

#ifdef __cplusplus
}
#endif
#endif
