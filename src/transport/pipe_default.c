/* pm_pipe_default: the one place a client's default pipe names come from (pipe.h). */
#include <stdlib.h>

#include "pipemsg/pipe.h"

const char *pm_pipe_default(pm_pipe_kind kind) {
  const char *env;
  if (kind != PM_PIPE_COMMAND && kind != PM_PIPE_EVENT)
    return NULL;
  env = getenv(kind == PM_PIPE_COMMAND ? "PIPEMSG_COMMAND_PIPE" : "PIPEMSG_EVENT_PIPE");
  if (env != NULL && env[0] != '\0')
    return env;
  return kind == PM_PIPE_COMMAND ? PM_COMMAND_PIPE_DEFAULT : PM_EVENT_PIPE_DEFAULT;
}
