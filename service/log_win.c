/* The Windows part of pipemsgd's log: the Event Log (ReportEventW), the log file. */
#include <windows.h>
#include <fcntl.h>
#include <io.h>

#include <stdint.h>
#include <stdio.h>

#include "files_win.h"
#include "log.h"

/* The event ID of every entry: there is no message file, so the viewer shows the text as the
 * entry's one inserted string. */
#define EVENT_ID 1

static const char *source = "pipemsgd";
static HANDLE event_log;

void log_set_source(const char *name) { source = name; }

int log_system_open(void) {
  wchar_t wide[256];
  if (MultiByteToWideChar(CP_UTF8, 0, source, -1, wide, 256) > 0)
    event_log = RegisterEventSourceW(NULL, wide);
  return event_log != NULL ? 0 : -1;
}

void log_system_close(void) {
  if (event_log != NULL)
    DeregisterEventSource(event_log);
  event_log = NULL;
}

void log_system_write(log_level level, const char *line) {
  static const WORD types[] = {EVENTLOG_ERROR_TYPE, EVENTLOG_WARNING_TYPE,
                               EVENTLOG_INFORMATION_TYPE, EVENTLOG_INFORMATION_TYPE};
  wchar_t wide[4 * LOG_LINE_MAX + 64];
  const wchar_t *strings[1] = {wide};
  if (MultiByteToWideChar(CP_UTF8, 0, line, -1, wide, 4 * LOG_LINE_MAX + 64) == 0)
    return;
  ReportEventW(event_log, types[level], 0, EVENT_ID, NULL, 1, 0, strings, NULL);
}

bool log_stderr_is_journal(void) { return false; }

/* The log names peers and what they asked: not for every user of %ProgramData% to read, nor
 * for a hook command to write; a link put in its place would have the service append to any
 * file, and a file someone else made first would stay theirs. */
FILE *log_file_open(const char *path) {
  char why[256];
  HANDLE h = files_open_private(path, FILE_APPEND_DATA, OPEN_ALWAYS, why, sizeof(why));
  FILE *f = NULL;
  int fd;
  if (h == INVALID_HANDLE_VALUE) {
    fprintf(stderr, "pipemsgd: log file %s %s\n", path, why);
    return NULL;
  }
  fd = _open_osfhandle((intptr_t)h, _O_WRONLY | _O_APPEND);
  if (fd < 0)
    CloseHandle(h);
  else if ((f = _fdopen(fd, "a")) == NULL)
    _close(fd);
  return f;
}
