#ifndef PIPEMSG_STORE_H
#define PIPEMSG_STORE_H

/* The event server's durable state in SQLite: the epoch, an id ceiling, and every durable event
 * (EventsLost markers included) still queued. The server mirrors each queue change into it,
 * one transaction per change, under its own lock. */

#include <stdint.h>

#include "event/queue.h"
#include "pipemsg/event.h"

/* A new epoch: a random positive integer below 2^53 (exact in JSON numbers everywhere). */
int64_t pm__epoch_new(void);

/* Called for each stored event, in id order, when the server starts. ev is taken. */
typedef void (*pm__store_row_cb)(void *ctx, pm__event *ev, int marker);

/* Reads the epoch, the first id that may be assigned, and the queued events. The epoch is made
 * and stored on first use, and made anew when the stored id ceiling is missing or invalid (ids
 * of the old epoch could otherwise be handed out twice). Rows that do not validate (type not a
 * name, Data not a JSON object, bad time, id or marker flag) are skipped, counted in *skipped
 * and removed; their ids still count, so they are never handed out again. */
int pm__store_load(pm_event_store *st, int64_t *epoch, int64_t *next_id, size_t *skipped,
                   pm__store_row_cb cb, void *ctx);
/* One transaction of its own, outside any begun with pm__store_begin: raises the id ceiling
 * (ids up to it may have been handed out; a restart continues above it) when ceiling > 0, and
 * writes ev when not NULL. The ceiling is synced to disk even with synchronous=NORMAL.
 * PM_EIO (nothing written) when it cannot be kept. */
int pm__store_publish(pm_event_store *st, int64_t ceiling, const pm__event *ev);
/* Keeps epoch as the store's epoch (a transaction of its own). 0 or PM_EIO. */
int pm__store_set_epoch(pm_event_store *st, int64_t epoch);
int pm__store_put(pm_event_store *st, const pm__event *ev);
int pm__store_delete(pm_event_store *st, const pm__event *ev);
int pm__store_begin(pm_event_store *st);
int pm__store_commit(pm_event_store *st);
void pm__store_rollback(pm_event_store *st);

#endif
