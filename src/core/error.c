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
  char line[1024];
  va_list ap;
  if (enabled < 0)
    enabled = getenv("PIPEMSG_DEBUG") != NULL;
  if (!enabled)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  /* A line may carry a peer's text (a Disconnect's reason): anything but printable ASCII goes
   * out as \xNN, so that a hostile peer cannot drive the terminal of whoever debugs. */
  fputs("pipemsg: ", stderr);
  for (const unsigned char *c = (const unsigned char *)line; *c != '\0'; c++) {
    if (*c >= 0x20 && *c < 0x7f)
      fputc(*c, stderr);
    else
      fprintf(stderr, "\\x%02x", *c);
  }
  fputc('\n', stderr);
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
