#ifndef PIPEMSG_EVENT_CLIENT_INTERNAL_H
#define PIPEMSG_EVENT_CLIENT_INTERNAL_H

/* The event client attached to a loop someone else runs. pm_event_client_start is this on a
 * loop of its own, run by a thread of its own; pm_client runs it on the client's loop, which
 * the application may run itself (PM_CLIENT_DRIVE_APP). Everything here is called on the
 * loop's thread; the callbacks run there too. */

#include <uv.h>

#include "pipemsg/event.h"

/* Start from now, without blocking the loop: before each attempt until a session has been
 * established, probe is called and the attempt waits for pm__event_client_probed. */
typedef void (*pm__event_probe_cb)(pm_event_client *c, void *data);

/* As pm_event_client_start (opts->current_epoch is ignored when probe is set), on loop. The
 * first attempt starts on the loop's next pass. */
int pm__event_client_start_on(uv_loop_t *loop, const char *name,
                              const pm_event_client_options *opts, pm__event_probe_cb probe,
                              pm_event_client **out);
/* The probe's answer: the service's epoch, or 0 (attach without a cursor). Ignored unless
 * the client waits for it. */
void pm__event_client_probed(pm_event_client *c, int64_t epoch);
/* Ends the session and closes the client's handles; no callback runs any more. The owner
 * runs the loop until they have closed, then calls pm__event_client_free. */
void pm__event_client_close(pm_event_client *c);
void pm__event_client_free(pm_event_client *c);

#endif
