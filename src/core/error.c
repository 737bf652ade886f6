#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "pipemsg/error.h"

const char *pm_err_name(int err) {
  switch (err) {
#define PM__ERR_NAME(name, code, text)                                                         \
  case PM_##name:                                                                              \
    return #name;
    PM_ERRNO_MAP(PM__ERR_NAME)
#undef PM__ERR_NAME
  }
  return "UNKNOWN";
}

const char *pm_strerror(int err) {
  switch (err) {
#define PM__ERR_TEXT(name, code, text)                                                         \
  case PM_##name:                                                                              \
    return text;
    PM_ERRNO_MAP(PM__ERR_TEXT)
#undef PM__ERR_TEXT
  }
  return "unknown error";
}

int pm__reason(char *why, int err, const char *fmt, ...) {
  if (why != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, PM_REASON_MAX, fmt, ap);
    va_end(ap);
  }
  return err;
}

void pm__debug(const char *fmt, ...) {
  static int enabled = -1;
  va_list ap;
  if (enabled < 0)
    enabled = getenv("PIPEMSG_DEBUG") != NULL;
  if (!enabled)
    return;
  va_start(ap, fmt);
  fputs("pipemsg: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int pm__uv_error(int status) {
  switch (status) {
  case 0:
    return 0;
  case UV_ENOMEM:
    return PM_ENOMEM;
  case UV_EOF:
    return PM_EEOF;
  case UV_ETIMEDOUT:
    return PM_ETIMEDOUT;
  case UV_EADDRINUSE:
    return PM_EADDRINUSE;
  case UV_EACCES:
  case UV_EPERM:
    return PM_EACCES;
  case UV_ENAMETOOLONG:
    return PM_ENAMETOOLONG;
  case UV_ECANCELED:
    return PM_ECANCELED;
  case UV_EINVAL:
    return PM_EINVAL;
  default:
    return PM_EIO;
  }
}
