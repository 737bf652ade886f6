#ifndef PIPEMSGD_LOG_LIMIT_H
#define PIPEMSGD_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Lines of one kind allowed per second when nothing sets a limit (log-rejections-per-second). */
#define LOG_LIMIT_PER_SECOND_DEFAULT 10
/* The window the allowance counts in. */
#define LOG_LIMIT_WINDOW_MS 1000
/* A summary of the lines held back is due this long after the first of them: at most one
 * summary per kind per period, so the summary cannot be flooded either. */
#define LOG_LIMIT_SUMMARY_MS 10000

/* A limit on one kind of line a peer can cause at will, one per connection (a refusal, a Busy
 * turn-away): at most per_second lines per window of LOG_LIMIT_WINDOW_MS, the window starting
 * at its first line; the others are counted, and their count is reported by a summary. No I/O
 * and no clock of its own: every call takes the time, in milliseconds of a monotonic clock. */
typedef struct log_limit {
  uint32_t per_second;
  uint32_t in_window;        /* lines let through in the current window */
  uint64_t window_start_ms;
  uint64_t suppressed;       /* held back since the last summary */
  uint64_t first_suppressed_ms;
} log_limit;

void log_limit_init(log_limit *l, uint32_t per_second);
/* Changes the allowance (at least 1); what was counted stays. */
void log_limit_set(log_limit *l, uint32_t per_second);
/* One line at now_ms: true if it may be written, else it is counted as held back. */
bool log_limit_take(log_limit *l, uint64_t now_ms);
/* When the summary of the lines held back is due; 0 when none are. */
uint64_t log_limit_due(const log_limit *l);
/* The summary to write at now_ms (any held back when final, as at shutdown, else only once it is
 * due): the number of lines held back, with *span_ms the time since the first of them, and the
 * count starts again; 0 when there is nothing to write. */
uint64_t log_limit_summary(log_limit *l, uint64_t now_ms, bool final, uint64_t *span_ms);

#endif
