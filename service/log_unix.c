/* The Unix part of pipemsgd's log: syslog, and whether stderr is systemd's journal. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static const int syslog_priorities[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

int log_system_open(void) {
  openlog("pipemsgd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  return 0;
}

void log_system_close(void) { closelog(); }

void log_system_write(log_level level, const char *line) {
  syslog(syslog_priorities[level], "%s", line);
}

/* systemd's convention (systemd.exec(5), $JOURNAL_STREAM): "DEV:INO" of the journal's stream
 * when stderr is connected to it. The journal stamps each line itself, so ours would be
 * doubled; stderr redirected elsewhere by a child keeps the variable but not the inode. */
bool log_stderr_is_journal(void) {
  const char *env = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  if (env == NULL || sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
    return false;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

FILE *log_file_open(const char *path) {
  /* The log names peers and what they asked: not for every user to read, nor for a hook
   * command (or what it leaves running) to write; and a symlink put in its place would have
   * root append to any file. */
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
  FILE *f;
  if (fd < 0)
    return NULL;
  f = fdopen(fd, "a");
  if (f == NULL)
    close(fd);
  return f;
}
