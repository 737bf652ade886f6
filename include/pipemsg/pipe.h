#ifndef PIPEMSG_PIPE_H
#define PIPEMSG_PIPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Pipe names (PROTOCOL §1). */
#define PM_COMMAND_PIPE_DEFAULT "UnifiedSDKVPNCommandPipe"
#define PM_EVENT_PIPE_DEFAULT "UnifiedSDKVPNEventPipe"

typedef enum { PM_PIPE_COMMAND, PM_PIPE_EVENT } pm_pipe_kind;

/* The pipe name a client uses when it is given none (a NULL name to pm_command_client_call or
 * pm_event_client_start): $PIPEMSG_COMMAND_PIPE (PM_PIPE_COMMAND) or $PIPEMSG_EVENT_PIPE
 * (PM_PIPE_EVENT) when set and not empty, else PM_COMMAND_PIPE_DEFAULT or
 * PM_EVENT_PIPE_DEFAULT. A name as pm_pipe_path takes it, not yet resolved; it points into the
 * environment, so it is valid until the environment changes. A service takes its pipes from
 * its own configuration, never from these variables. NULL for another kind. */
const char *pm_pipe_default(pm_pipe_kind kind);
/* Longest pipe path: a Unix socket path (sun_path less its NUL on Linux); on Windows the
 * same bound holds for \\.\pipe\NAME (Windows itself allows 256 characters). */
#define PM_PIPE_PATH_MAX 107

/* Resolves a pipe name to the path a socket (or Windows pipe) is bound to, the same way for
 * clients and servers, whatever the working directory. On Unix:
 *   - an absolute path ("/run/x.sock") is used as is;
 *   - a bare NAME (no '/') goes in $PIPEMSG_RUNTIME_DIR, else $XDG_RUNTIME_DIR/pipemsg, else
 *     /run/pipemsg;
 *   - a Windows local pipe name \\.\pipe\NAME means the bare NAME (the same name on both
 *     platforms);
 *   - anything else is PM_EPIPENAME: a relative path with '/', another name starting with
 *     "\\" (a remote pipe), "." or "..", or \\.\pipe\ with an empty NAME or one with '/'.
 * On Windows a bare NAME and \\.\pipe\NAME both mean \\.\pipe\NAME; anything else (a
 * path, a remote pipe, NAME empty, "." or ".." or with '/') is PM_EPIPENAME.
 * PM_ENAMETOOLONG if the path exceeds PM_PIPE_PATH_MAX, never truncated; PM_EINVAL for an
 * empty name. */
int pm_pipe_path(const char *name, char *buf, size_t size);

/* The directory a bare name resolves into (see pm_pipe_path); on Windows \\.\pipe. */
int pm_pipe_dir(char *buf, size_t size);

/* Permissions of socket files a server creates, unless told otherwise (Unix). */
#define PM_SOCKET_MODE_DEFAULT 0660

/* The security descriptor of every pipe instance a server creates, unless told otherwise
 * (Windows, SDDL): a protected DACL (no inherited entries) granting full access to
 * LocalSystem (SY) and Administrators (BA), and to interactive users (IU) read and write
 * without FILE_CREATE_PIPE_INSTANCE: 0x12019b is FILE_GENERIC_READ | FILE_GENERIC_WRITE less
 * 0x4, the bit a pipe shares between "append data" and "create an instance". With GW a user
 * could add server ends of the service's pipes and take its clients' connections. */
#define PM_PIPE_SDDL_DEFAULT "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;IU)"

/* Room for a SID string with its NUL: "S-1-" and up to 15 sub-authorities of 10 digits. */
#define PM_PEER_SID_MAX 192

/* Most supplementary groups of a peer kept in pm_peer; a peer in more groups keeps its
 * first PM_PEER_GROUPS_MAX (ascending), so a check against the others fails closed. */
#define PM_PEER_GROUPS_MAX 64

/* Credentials of a connected peer, taken by the kernel when it connected; -1 where the
 * platform cannot tell. Unix fills uid, gid and groups (sid stays empty); Windows fills sid
 * (the user's, as "S-1-5-..."; empty when it cannot tell) and leaves uid, gid, ngroups -1. */
typedef struct pm_peer {
  long long pid;
  long long uid;
  long long gid; /* primary (effective) group */
  int ngroups;   /* supplementary groups in groups[]; -1 when the platform cannot tell */
  long long groups[PM_PEER_GROUPS_MAX];
  char sid[PM_PEER_SID_MAX];
} pm_peer;

/* Inside a server's authorize callback, on the peer it was given (not a copy): 1 if the peer
 * is a member of group, 0 if not, <0 if it cannot be told (fail closed); PM_EINVAL outside
 * the callback, for another pm_peer, or for a malformed group. Unix:
 * group is a decimal gid, the peer's primary or a supplementary group as the kernel saw them;
 * Windows: a SID string, checked with CheckTokenMembership on the client's token (the groups
 * it holds, nested ones included), which pm_peer cannot carry. */
int pm_peer_in_group(const pm_peer *peer, const char *group);

#ifdef __cplusplus
}
#endif
#endif
