#ifndef PIPEMSGD_PLATFORM_H
#define PIPEMSGD_PLATFORM_H

/* The small platform parts of pipemsgd that service.c and settings.c use (platform_unix.c,
 * platform_win.c): durable files, the data directory, where random names are published,
 * the heap, listeners inherited from a service manager. */

#include <stdio.h>

#include "config.h"

/* Durable files (durable_unix.c, durable_win.c, apart so that settings.c links alone). */
/* Flushes f and makes what it holds durable (fsync; FlushFileBuffers on Windows). 0 or -1. */
int platform_file_sync(FILE *f);
/* Replaces path with tmp in one step (a reader sees the old file or the new one). 0 or -1. */
int platform_file_replace(const char *tmp, const char *path);
/* Creates the data directory if missing, readable only by the service (Unix 0750; Windows a
 * protected DACL: LocalSystem, Administrators and the owner). 0, or -1 with the reason logged. */
int platform_make_data_dir(const char *dir);

/* One pipemsgd per data directory: a second would hand out the same event ids and overwrite
 * the first one's events in the store. Locks DIR/pipemsgd.lock (Unix flock; Windows the file
 * opened unshared) for as long as the process lives. 0, or -1 with the reason logged ("in use
 * by another pipemsgd" when the lock is held). */
int platform_lock_data_dir(const char *dir);

/* What the platform refuses at start, once the log is open, that would let another account
 * act as the service (Windows: a --pipe-sddl letting it create instances of the pipes). 0, or
 * -1 with the reason logged. */
int platform_check_access(const service_config *cfg);

/* Random names: what must hold before they are bound (Unix: the runtime directory that keeps
 * them out of listings). 0 or -1 (logged). */
int platform_names_prepare(const service_config *cfg);
/* Publishes the bound pipes' paths where cfg says (--names-file; Windows also
 * --names-registry). 0 or -1 (logged). */
int platform_names_publish(const service_config *cfg, const char *command_path,
                           const char *event_path);
/* Removes what platform_names_publish wrote, at a clean stop. */
void platform_names_withdraw(const service_config *cfg);

/* Listening sockets a service manager passed (Unix: systemd socket activation); each -1 when
 * none. Returns how many were passed, <0 if they make no sense. */
int platform_inherited_listeners(int *command_fd, int *event_fd);

/* The heap: set up once at start; what is free handed back to the system when a command
 * connection ends (if there is much) and when an event session ends (always). */
void platform_heap_setup(void);
void platform_heap_trim_if_large(void);
void platform_heap_trim(void);

#endif
