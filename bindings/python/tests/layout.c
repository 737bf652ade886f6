/* Prints the layout of the structures and the constants the Python binding declares with ctypes
 * (bindings/python/pipemsg/_lib.py), as the C compiler sees them: test_layout.py compares. */
#include <stddef.h>
#include <stdio.h>

#include "pipemsg/client.h"
#include "pipemsg/error.h"
#include "pipemsg/pipe.h"

#define FIELD(type, field)                                                                     \
  printf("  \"%s.%s\": [%zu, %zu],\n", #type, #field, offsetof(type, field),                   \
         sizeof(((type *)0)->field))

int main(void) {
  printf("{\n");
  printf("  \"sizeof pm_result\": %zu,\n", sizeof(pm_result));
  printf("  \"sizeof pm_client_config\": %zu,\n", sizeof(pm_client_config));
  FIELD(pm_result, code);
  FIELD(pm_result, from_service);
  FIELD(pm_result, error);
  FIELD(pm_result, name);
  FIELD(pm_result, message);
  FIELD(pm_client_config, command_pipe);
  FIELD(pm_client_config, event_pipe);
  FIELD(pm_client_config, connect_timeout_ms);
  FIELD(pm_client_config, response_timeout_ms);
  FIELD(pm_client_config, handshake_timeout_ms);
  FIELD(pm_client_config, reconnect_min_ms);
  FIELD(pm_client_config, reconnect_max_ms);
  FIELD(pm_client_config, expect_owner);
  FIELD(pm_client_config, drive);
  FIELD(pm_client_config, on_event);
  FIELD(pm_client_config, on_connection);
  FIELD(pm_client_config, confirm_later);
  FIELD(pm_client_config, observe);
  FIELD(pm_client_config, start);
  FIELD(pm_client_config, resume_epoch);
  FIELD(pm_client_config, resume_last_id);
  FIELD(pm_client_config, client_name);
  FIELD(pm_client_config, data);
  FIELD(pm_client_event, type);
  FIELD(pm_client_event, type_name);
  FIELD(pm_client_event, id);
  FIELD(pm_client_event, epoch);
  FIELD(pm_client_event, time);
  FIELD(pm_client_event, data_json);
  printf("  \"PM_RC_OK\": %d,\n", (int)PM_RC_OK);
  printf("  \"PM_EINVAL\": %d,\n", PM_EINVAL);
  printf("  \"PM_ENOMEM\": %d,\n", PM_ENOMEM);
  printf("  \"PM_ENAMETOOLONG\": %d,\n", PM_ENAMETOOLONG);
  printf("  \"PM_EPIPENAME\": %d,\n", PM_EPIPENAME);
  printf("  \"PM_PIPE_PATH_MAX\": %d,\n", PM_PIPE_PATH_MAX);
  printf("  \"PM_PIPE_COMMAND\": %d,\n", (int)PM_PIPE_COMMAND);
  printf("  \"PM_PIPE_EVENT\": %d,\n", (int)PM_PIPE_EVENT);
  printf("  \"PM_CLIENT_DRIVE_THREAD\": %d,\n", (int)PM_CLIENT_DRIVE_THREAD);
  printf("  \"PM_CLIENT_CONNECTED\": %d,\n", (int)PM_CLIENT_CONNECTED);
  printf("  \"PM_CLIENT_START_RESUME\": %d,\n", (int)PM_CLIENT_START_RESUME);
  printf("  \"PM_CLIENT_START_NOW\": %d,\n", (int)PM_CLIENT_START_NOW);
  printf("  \"PM_RESULT_NAME_MAX\": %d,\n", PM_RESULT_NAME_MAX);
  printf("  \"PM_RESULT_MESSAGE_MAX\": %d\n", PM_RESULT_MESSAGE_MAX);
  printf("}\n");
  return 0;
}
