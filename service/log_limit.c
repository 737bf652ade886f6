#include "log_limit.h"

void log_limit_init(log_limit *l, uint32_t per_second) {
  l->in_window = 0;
  l->window_start_ms = 0;
  l->suppressed = 0;
  l->first_suppressed_ms = 0;
  log_limit_set(l, per_second);
}

void log_limit_set(log_limit *l, uint32_t per_second) {
  l->per_second = per_second > 0 ? per_second : 1;
}

bool log_limit_take(log_limit *l, uint64_t now_ms) {
  /* A window starts at the first line after the last one ended (unsigned: a clock that went
   * back starts one too). */
  if (l->in_window == 0 || now_ms - l->window_start_ms >= LOG_LIMIT_WINDOW_MS) {
    l->window_start_ms = now_ms;
    l->in_window = 0;
  }
  if (l->in_window < l->per_second) {
    l->in_window++;
    return true;
  }
  if (l->suppressed++ == 0)
    l->first_suppressed_ms = now_ms;
  return false;
}

uint64_t log_limit_due(const log_limit *l) {
  /* Never 0 for a count waiting, even on a clock that started at 0. */
  return l->suppressed > 0 ? l->first_suppressed_ms + LOG_LIMIT_SUMMARY_MS : 0;
}

uint64_t log_limit_summary(log_limit *l, uint64_t now_ms, bool final, uint64_t *span_ms) {
  uint64_t n = l->suppressed;
  if (n == 0 || (!final && now_ms < log_limit_due(l)))
    return 0;
  *span_ms = now_ms > l->first_suppressed_ms ? now_ms - l->first_suppressed_ms : 0;
  l->suppressed = 0;
  return n;
}
