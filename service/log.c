#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "log.h"
#include "log_limit.h"
#include "pipemsg/message.h"
#include "utf8.h"

static log_level max_level = LVL_INFO;
static log_target where = LOG_TO_STDERR;
static bool stamp = true;
static FILE *sink; /* stderr, or the --log-file */

/* Batching (log_batch_start): info and debug lines wait in pending, in order, and are written
 * together, one write instead of one per command. They are written at the latest
 * LOG_BATCH_DELAY_MS after the first of them, as soon as a warning or an error is logged (after
 * them, in order), when the next line would not fit, and by log_batch_stop, log_close and at
 * exit. LOG_BATCH_MAX is PIPE_BUF on Linux: a batch written to a pipe is not interleaved with
 * another writer's lines. */
#define LOG_BATCH_MAX 4096
#define LOG_BATCH_DELAY_MS 100
static char pending[LOG_BATCH_MAX];
static size_t pending_len;
static uv_timer_t batch_timer;
static bool batching;
static bool at_exit_registered;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

static const char *const peer_kind_names[LOG_PEER_KINDS] = {"refusal", "busy", "no-request"};
/* log_limit_init's state, so that no line comes before the limits are ready. */
#define PEER_LIMIT_START {.per_second = LOG_LIMIT_PER_SECOND_DEFAULT}
static log_limit peer_limits[LOG_PEER_KINDS] = {
    [LOG_PEER_REFUSAL] = PEER_LIMIT_START,
    [LOG_PEER_BUSY] = PEER_LIMIT_START,
    [LOG_PEER_NO_REQUEST] = PEER_LIMIT_START,
};
static uv_timer_t peer_timer;
static bool peer_timing;

static void peer_flush(bool final);

void log_open(log_level level, log_target target) {
  max_level = level;
  where = target;
  sink = stderr;
  stamp = !log_stderr_is_journal();
  if ((where == LOG_TO_SYSLOG || where == LOG_TO_EVENTLOG) && log_system_open() < 0) {
    where = LOG_TO_STDERR;
    log_msg(LVL_WARNING, "cannot open the system log: logging to stderr");
  }
}

int log_open_file(log_level level, const char *path) {
  FILE *f = log_file_open(path);
  if (f == NULL)
    return -1;
  max_level = level;
  where = LOG_TO_FILE;
  sink = f;
  stamp = true;
  return 0;
}

static FILE *out(void) { return sink != NULL ? sink : stderr; }

static void write_out(const char *text, size_t n) {
  /* A file, and stderr redirected to one on Windows, is buffered: each line must be there once
   * written out (tests and tail -f wait for it). */
  fwrite(text, 1, n, out());
  fflush(out());
}

void log_flush(void) {
  if (pending_len == 0)
    return;
  write_out(pending, pending_len);
  pending_len = 0;
  if (batching)
    uv_timer_stop(&batch_timer);
}

static void on_batch_timer(uv_timer_t *t) {
  (void)t;
  log_flush();
}

int log_batch_start(uv_loop_t *loop) {
  int rc;
  if (batching || where == LOG_TO_SYSLOG || where == LOG_TO_EVENTLOG)
    return 0;
  rc = uv_timer_init(loop, &batch_timer);
  if (rc < 0)
    return rc;
  /* The timer alone must not keep the service's loop running once everything else stopped. */
  uv_unref((uv_handle_t *)&batch_timer);
  if (!at_exit_registered && atexit(log_flush) == 0)
    at_exit_registered = true;
  batching = true;
  return 0;
}

void log_batch_stop(void) {
  if (!batching)
    return;
  log_flush();
  batching = false;
  uv_close((uv_handle_t *)&batch_timer, NULL);
}

void log_close(void) {
  log_batch_stop();
  peer_flush(true);
  if (where == LOG_TO_SYSLOG || where == LOG_TO_EVENTLOG)
    log_system_close();
  if (where == LOG_TO_FILE)
    fclose(sink);
  where = LOG_TO_STDERR;
  sink = stderr;
}

void log_set_level(log_level level) { max_level = level; }

int log_enabled(log_level level) { return level <= max_level; }

size_t log_escape(const char *in, char *out, size_t size) {
  size_t used;
  return utf8_escape(in, strlen(in), out, size, &used);
}

/* Writes the stamp "YYYY-MM-DDTHH:MM:SS.mmmZ " (25 bytes) into out: an event's time stamp
 * (pm_time_now, which formats the part to the second once a second) and a space. */
static size_t put_stamp(char *out) {
  size_t n;
  pm_time_now(out);
  n = strlen(out);
  out[n] = ' ';
  return n + 1;
}

void log_line_init(log_line *l) {
  l->len = 0;
  l->text[0] = '\0';
}

void log_line_addn(log_line *l, const char *s, size_t max) {
  size_t room = sizeof(l->text) - 1 - l->len, n = 0;
  while (n < max && n < room && s[n] != '\0')
    n++;
  memcpy(l->text + l->len, s, n);
  l->len += n;
  l->text[l->len] = '\0';
}

void log_line_add(log_line *l, const char *s) { log_line_addn(l, s, SIZE_MAX); }

void log_line_uint(log_line *l, unsigned long long v) {
  char digits[24];
  size_t i = sizeof(digits) - 1;
  digits[i] = '\0';
  do {
    digits[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  log_line_add(l, digits + i);
}

void log_line_int(log_line *l, long long v) {
  if (v < 0) {
    log_line_add(l, "-");
    /* -(v + 1) + 1: LLONG_MIN has no positive long long. */
    log_line_uint(l, (unsigned long long)-(v + 1) + 1);
    return;
  }
  log_line_uint(l, (unsigned long long)v);
}

/* raw (at most LOG_LINE_MAX - 1 bytes) escaped, stamped and written or batched. */
static void write_message(log_level level, const char *raw) {
  /* Room for every byte escaped (4 each) after the stamp and level. */
  char line[4 * LOG_LINE_MAX + 64];
  size_t n = 0;
  if (where == LOG_TO_SYSLOG || where == LOG_TO_EVENTLOG) {
    log_escape(raw, line, sizeof(line));
    log_system_write(level, line);
    return;
  }
  if (stamp)
    n = put_stamp(line);
  memcpy(line + n, "pipemsgd: ", 10);
  n += 10;
  memcpy(line + n, level_names[level], strlen(level_names[level]));
  n += strlen(level_names[level]);
  memcpy(line + n, ": ", 2);
  n += 2;
  n += log_escape(raw, line + n, sizeof(line) - n - 1);
  line[n++] = '\n';
  if (!batching) {
    /* One write per line, so concurrent writers to the same file do not interleave within it. */
    write_out(line, n);
    return;
  }
  if (pending_len + n > sizeof(pending))
    log_flush();
  if (n > sizeof(pending)) {
    write_out(line, n);
    return;
  }
  if (pending_len == 0)
    uv_timer_start(&batch_timer, on_batch_timer, LOG_BATCH_DELAY_MS, 0);
  memcpy(pending + pending_len, line, n);
  pending_len += n;
  if (level <= LVL_WARNING)
    log_flush();
}

void log_line_write(log_level level, const log_line *l) {
  if (log_enabled(level))
    write_message(level, l->text);
}

void log_msg(log_level level, const char *fmt, ...) {
  char raw[LOG_LINE_MAX];
  va_list ap;
  if (!log_enabled(level))
    return;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof(raw), fmt, ap);
  va_end(ap);
  write_message(level, raw);
}

/* ---- lines a peer can cause at will ------------------------------------------------------- */

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

void log_peer_limit(unsigned per_second) {
  for (int k = 0; k < LOG_PEER_KINDS; k++)
    log_limit_set(&peer_limits[k], per_second);
}

static void peer_summary(log_peer_kind kind, uint64_t now, bool final) {
  uint64_t span = 0, n = log_limit_summary(&peer_limits[kind], now, final, &span);
  /* Rounded, and never "0 s": a summary at shutdown may follow its first line closely. */
  uint64_t seconds = span < 1000 ? 1 : (span + 500) / 1000;
  if (n > 0)
    log_msg(LVL_WARNING, "suppressed %llu %s lines in the last %llu s", (unsigned long long)n,
            peer_kind_names[kind], (unsigned long long)seconds);
}

static void on_peer_timer(uv_timer_t *t);

/* A summary is written when due, not only with the next line of its kind, which a flood that
 * stopped never sends: the timer runs to the earliest one due. */
static void peer_arm(uint64_t now) {
  uint64_t next = 0;
  if (!peer_timing)
    return;
  for (int k = 0; k < LOG_PEER_KINDS; k++) {
    uint64_t due = log_limit_due(&peer_limits[k]);
    if (due != 0 && (next == 0 || due < next))
      next = due;
  }
  if (next == 0)
    uv_timer_stop(&peer_timer);
  else
    uv_timer_start(&peer_timer, on_peer_timer, next > now ? next - now : 0, 0);
}

static void peer_flush(bool final) {
  uint64_t now = now_ms();
  for (int k = 0; k < LOG_PEER_KINDS; k++)
    peer_summary((log_peer_kind)k, now, final);
}

static void on_peer_timer(uv_timer_t *t) {
  (void)t;
  peer_flush(false);
  peer_arm(now_ms());
}

bool log_peer_allowed(log_peer_kind kind, log_level level) {
  uint64_t now;
  if (!log_enabled(level))
    return false;
  now = now_ms();
  peer_summary(kind, now, false);
  if (log_limit_take(&peer_limits[kind], now))
    return true;
  /* The first line held back since the last summary sets when the next one is due. */
  if (peer_limits[kind].suppressed == 1)
    peer_arm(now);
  return false;
}

int log_peer_start(uv_loop_t *loop) {
  int rc;
  if (peer_timing)
    return 0;
  rc = uv_timer_init(loop, &peer_timer);
  if (rc < 0)
    return rc;
  /* Like the batch timer: a summary owed does not keep a stopped service's loop running. */
  uv_unref((uv_handle_t *)&peer_timer);
  peer_timing = true;
  return 0;
}

void log_peer_stop(void) {
  peer_flush(true);
  if (!peer_timing)
    return;
  peer_timing = false;
  uv_close((uv_handle_t *)&peer_timer, NULL);
}
