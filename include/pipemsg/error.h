#ifndef PIPEMSG_ERROR_H
#define PIPEMSG_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Every pipemsg call returns 0 (or a count) on success and one of these negative codes on
 * failure. One list generates the enum, pm_err_name() and pm_strerror(), so a code and its
 * text cannot drift apart. */
#define PM_ERRNO_MAP(X)                                                        \
  X(EINVAL, -1, "invalid argument")                                            \
  X(ENOMEM, -2, "out of memory")                                               \
  X(EMSGSIZE, -3, "frame length out of range")                                 \
  X(EPROTO, -4, "protocol violation")                                          \
  X(EPARSE, -5, "malformed payload")                                           \
  X(EDEPTH, -6, "nesting too deep")                                            \
  X(EENCODING, -7, "payload is neither JSON nor XML")                          \
  X(ESCHEMA, -8, "message does not match the schema")                          \
  X(ENOENT, -9, "not found")                                                   \
  X(ETYPE, -10, "value has the wrong type")                                    \
  X(ETIMEDOUT, -11, "timed out")                                               \
  X(ECONNTIMEOUT, -12, "no service reachable in time")                         \
  X(EIO, -13, "i/o error")                                                     \
  X(EEOF, -14, "connection closed by peer")                                    \
  X(EADDRINUSE, -15, "pipe name in use by a live service")                     \
  X(ENAMETOOLONG, -16, "pipe path too long")                                   \
  X(EACCES, -17, "permission denied")                                          \
  X(ECANCELED, -18, "operation canceled")                                      \
  X(EBUSY, -19, "busy")                                                        \
  X(ENOTAUTH, -20, "peer not authorized")                                      \
  X(ELIMIT, -21, "message exceeds a decoding limit")                           \
  X(EUNSAFE, -22, "socket directory writable by others without the sticky bit") \
  X(EPIPENAME, -23, "pipe name must be a bare NAME, \\\\.\\pipe\\NAME or an absolute path") \
  X(EMISMATCH, -24, "response is for another request: its Command or Id is not the request's")

typedef enum {
#define PM__ERR_ENUM(name, code, text) PM_##name = code,
  PM_ERRNO_MAP(PM__ERR_ENUM)
#undef PM__ERR_ENUM
} pm_errno;

/* "EINVAL" for PM_EINVAL; "UNKNOWN" for anything else. Never NULL. */
const char *pm_err_name(int err);
/* A short human-readable text. Never NULL. */
const char *pm_strerror(int err);

/* Room for a reason text that decoders and servers write for the peer (NUL included). */
#define PM_REASON_MAX 200

#ifdef __cplusplus
}
#endif
#endif
