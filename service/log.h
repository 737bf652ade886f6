#ifndef PIPEMSGD_LOG_H
#define PIPEMSGD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

/* libuv's loop (uv_loop_t), declared here so that this header does not bring in uv.h: on Windows
 * that must come before windows.h, which log_win.c includes first. */
struct uv_loop_s;

/* Longest message before escaping, in bytes; the rest of a longer one is cut. */
#define LOG_LINE_MAX 1024

/* pipemsgd's log: one line per event of interest, key=value fields, to stderr or syslog.
 * Peer-supplied text is quoted and cut short, never logged in full. Every message is escaped
 * here, whatever its source: control bytes (C0, DEL, C1), invisible format characters
 * (bidirectional overrides, zero-width characters, line separators), invalid UTF-8 and the
 * backslash become \xNN per byte (\\ for the backslash), so no value can forge, break or
 * visually reorder a line. On stderr a line
 * starts with an RFC 3339 UTC time, unless stderr is the journal ($JOURNAL_STREAM). */
void log_open(log_level level, log_target target);
/* --log-target file: lines (stamped) appended to path instead of stderr; -1 if it cannot be
 * opened (the log stays on stderr). */
int log_open_file(log_level level, const char *path);
/* Flushes pending lines (log_batch_stop) and closes the file or the system log. */
void log_close(void);
/* From here on, info and debug lines to stderr or a file are written in batches: at most 100 ms
 * after the first unwritten one, at once with any warning or error (in order), when 4096 bytes
 * are waiting, and on log_batch_stop, log_close or exit. A no-op for the system log. 0 or a
 * libuv error. */
int log_batch_start(struct uv_loop_s *loop);
/* Writes what is pending and closes the timer (the loop must run once more to close it); lines
 * are then written one by one again. */
void log_batch_stop(void);
/* Writes the lines batching holds back. */
void log_flush(void);
void log_set_level(log_level level);
int log_enabled(log_level level);
void log_msg(log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A message built by appending, for the lines written at every call: no printf. Cut at
 * LOG_LINE_MAX - 1 bytes like log_msg's, escaped and written like them by log_line_write. */
typedef struct log_line {
  char text[LOG_LINE_MAX];
  size_t len;
} log_line;
void log_line_init(log_line *l);
void log_line_add(log_line *l, const char *s);
/* At most max bytes of s, as printf's %.*s. */
void log_line_addn(log_line *l, const char *s, size_t max);
/* In decimal, as printf's %lld and %llu. */
void log_line_int(log_line *l, long long v);
void log_line_uint(log_line *l, unsigned long long v);
void log_line_write(log_level level, const log_line *l);
/* Writes in escaped (as above) into out (size > 0), cut at a whole character; returns its
 * length. */
size_t log_escape(const char *in, char *out, size_t size);

/* ---- lines a peer can cause at will (log_limit.h) ---------------------------------------- */

/* Lines any local user, or any allowed one, can make the service write once per connection,
 * as fast as it connects: refusals (access control's "refused pid=..."), the event pipe's Busy
 * turn-aways, and the command pipe's lines of connections that end without a request read
 * (command=-). A valid request's line is the audit trail and stays whole. */
typedef enum {
  LOG_PEER_REFUSAL,
  LOG_PEER_BUSY,
  LOG_PEER_NO_REQUEST,
  LOG_PEER_KINDS
} log_peer_kind;
/* Lines of each kind written per second at most (LOG_LIMIT_PER_SECOND_DEFAULT until set). */
void log_peer_limit(unsigned per_second);
/* Whether to write a line of kind at level: false when the level is off, or when the kind's
 * allowance is spent; such a line is counted, and the count written as the warning "suppressed
 * N <kind> lines in the last S s" (kind "refusal", "busy" or "no-request"), at most once every
 * LOG_LIMIT_SUMMARY_MS per kind: when it is due, and by log_peer_stop and log_close. */
bool log_peer_allowed(log_peer_kind kind, log_level level);
/* Writes the summaries when they are due, from loop's timer, not only at the next line of their
 * kind. 0 or a libuv error. */
int log_peer_start(struct uv_loop_s *loop);
/* Writes every summary still owed and closes the timer (the loop must run once more). */
void log_peer_stop(void);

/* ---- each platform's part (log_unix.c, log_win.c) ------------------------------------------ */

/* The system's log: syslog on Unix, the Event Log on Windows (under the source named by
 * log_set_source, "pipemsgd" by default). */
/* 0, or -1 when the system log cannot be opened (the log then stays on stderr). */
int log_system_open(void);
void log_system_close(void);
void log_system_write(log_level level, const char *line);
/* Windows only: the Event Log source, the service's name; kept, not copied. */
void log_set_source(const char *name);
/* True when stderr is a log that stamps each line itself (systemd's journal). */
bool log_stderr_is_journal(void);
/* log-file opened to append, created if missing; NULL on failure (errno set). On Unix it is
 * never a symlink, is created 0640 and is not inherited by hook commands; on Windows hooks
 * inherit only the handles they are given. */
FILE *log_file_open(const char *path);

#endif
