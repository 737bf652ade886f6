#ifndef PIPEMSG_STORE_H
#define PIPEMSG_STORE_H

/* The event server's durable state in SQLite: the epoch, an id ceiling, and every durable event
 * (EventsLost markers included) still queued. The server mirrors each queue change into it,
 * one transaction per change, under its own lock. */

#include <stdint.h>

#include "event/queue.h"
#include "pipemsg/event.h"

/* Called for each stored event, in id order, when the server starts. ev is taken. */
typedef void (*pm__store_row_cb)(void *ctx, pm__event *ev, int marker);

/* Reads the epoch (made and stored on first use), the first id that may be assigned, and the
 * queued events. */
int pm__store_load(pm_event_store *st, int64_t *epoch, int64_t *next_id, pm__store_row_cb cb,
                   void *ctx);
/* Ids below the ceiling may have been handed out: a restart continues above it. */
int pm__store_reserve(pm_event_store *st, int64_t ceiling);
int pm__store_put(pm_event_store *st, const pm__event *ev);
int pm__store_delete(pm_event_store *st, const pm__event *ev);
int pm__store_begin(pm_event_store *st);
int pm__store_commit(pm_event_store *st);

#endif
