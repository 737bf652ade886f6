#ifndef PIPEMSG_COMMAND_INTERNAL_H
#define PIPEMSG_COMMAND_INTERNAL_H

/* The command call of pm_command_client_call, made on a loop instead of blocking: the same
 * steps (connect retried while nobody accepts, the owner check, the request, one Response)
 * and the same deadlines and results, for a client whose loop is the application's
 * (pm_client with PM_CLIENT_DRIVE_APP). */

#include <uv.h>

#include "pipemsg/command.h"

typedef struct pm__call pm__call;
/* status is 0 with response (taken by the callback), or what pm_command_client_call would
 * have returned, or PM_ECANCELED after pm__call_cancel. */
typedef void (*pm__call_cb)(void *data, int status, pm_msg *response);

/* Starts the call on loop (on the loop's thread). path is a resolved pipe path (pm_pipe_path).
 * Returns 0 and calls cb once, later, from the loop; or an error (PM_EINVAL, PM_ENOMEM, an
 * encoding error) and never calls it. *out, which may be NULL, lends the call until cb. */
int pm__call_start(uv_loop_t *loop, const char *path, const pm_client_options *opts,
                   const pm_msg *request, pm_encoding enc, pm__call_cb cb, void *data,
                   pm__call **out);
/* Ends a call that has not completed: cb gets PM_ECANCELED once its handles have closed. */
void pm__call_cancel(pm__call *call);

#endif
