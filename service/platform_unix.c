/* The Unix parts of pipemsgd's files, names and heap (platform.h). */
#include <errno.h>
#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipemsg/pipemsg.h"

#include "log.h"
#include "platform.h"
#include "systemd.h"

/* --names-file: the runtime directory made for random names (others may pass, not list), and
 * the names file (readable by the socket group). */
#define HIDDEN_DIR_MODE 0711
#define NAMES_FILE_MODE 0640
/* The data directory: the service's group may read it. */
#define DATA_DIR_MODE 0750

/* Whoever may create, rename or delete files in the data directory may put their own event
 * store (or settings) in the service's place, and so forge events it delivers as its own: a
 * data directory that exists already must be one only root or the service's user can change.
 * Unlike the socket directory, the sticky bit does not help: another user could still create
 * events.db (or its journal) before the service does. */
int platform_make_data_dir(const char *dir) {
  struct stat st;
  if (mkdir(dir, DATA_DIR_MODE) < 0 && errno != EEXIST) {
    log_msg(LVL_ERROR, "cannot create data dir '%s': %s", dir, strerror(errno));
    return -1;
  }
  if (lstat(dir, &st) < 0) {
    log_msg(LVL_ERROR, "cannot use data dir '%s': %s", dir, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid())) {
    log_msg(LVL_ERROR,
            "cannot use data dir '%s': not a directory owned by root or the service's user "
            "(a symlink is not followed)",
            dir);
    return -1;
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    log_msg(LVL_ERROR, "cannot use data dir '%s': writable by group or others (mode %04o)", dir,
            (unsigned)(st.st_mode & 07777));
    return -1;
  }
  return 0;
}

/* With random names, the runtime directory is created 0711: others may still reach a socket
 * by its name, but not list the names. That keeps them out of listings, no more: every user
 * can read bound socket paths in /proc/net/unix, so access never rests on the names. One that
 * exists already is left as it is, with a warning if others can list it. */
int platform_names_prepare(const service_config *cfg) {
  char dir[PM_PIPE_PATH_MAX + 1];
  struct stat st;
  int fd, rc = 0;
  (void)cfg;
  if (pm_pipe_dir(dir, sizeof(dir)) < 0)
    return -1;
  if (mkdir(dir, HIDDEN_DIR_MODE) == 0) {
    /* Exactly 0711 whatever the umask; through the directory we just made, not its path. */
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, HIDDEN_DIR_MODE) < 0)
      rc = -1;
    if (fd >= 0)
      close(fd);
  } else if (errno != EEXIST) {
    rc = -1;
  } else if (lstat(dir, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    log_msg(LVL_WARNING,
            "runtime directory %s (mode %04o) lets others list the random pipe names; "
            "make it 0711 to keep them out of listings",
            dir, (unsigned)(st.st_mode & 07777));
  }
  if (rc < 0)
    log_msg(LVL_ERROR, "cannot create runtime directory %s: %s", dir, strerror(errno));
  return rc;
}

/* Writes the pipes' paths to FILE atomically (a reader sees the old file or the new one),
 * mode 0640 and the socket group: who may use the pipes may read it, nobody else. */
int platform_names_publish(const service_config *cfg, const char *command_path,
                           const char *event_path) {
  const char *path = cfg->names_file;
  char tmp[4096];
  unsigned gid;
  FILE *f = NULL;
  int fd, ok;
  if (config_socket_gid(cfg, &gid) < 0)
    return -1;
  snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
  /* A fresh file (O_EXCL, never through a symlink someone left there), its mode set on the
   * descriptor so the umask cannot widen or narrow it. */
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, NAMES_FILE_MODE);
  if (fd >= 0 && (fchmod(fd, NAMES_FILE_MODE) < 0 ||
                  (gid != 0 && fchown(fd, (uid_t)-1, (gid_t)gid) < 0) ||
                  (f = fdopen(fd, "w")) == NULL)) {
    close(fd);
    unlink(tmp);
    fd = -1;
  }
  if (fd < 0) {
    log_msg(LVL_ERROR, "cannot write names file %s: %s", tmp, strerror(errno));
    return -1;
  }
  fprintf(f, "command-pipe = %s\nevent-pipe = %s\n", command_path, event_path);
  ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) < 0) {
    unlink(tmp);
    log_msg(LVL_ERROR, "cannot write names file %s", path);
    return -1;
  }
  return 0;
}

void platform_names_withdraw(const service_config *cfg) { unlink(cfg->names_file); }

int platform_inherited_listeners(int *command_fd, int *event_fd) {
  return systemd_listen_fds(command_fd, event_fd);
}

#if defined(__GLIBC__)
/* Free heap past which a finished command gives memory back. */
#define TRIM_FREE_BYTES (4u << 20)
/* Allocations from this size on are mapped on their own. */
#define MMAP_THRESHOLD_BYTES (1 << 20)
#endif

/* Fixed, so glibc does not raise it after the first large frame: blocks this large (frames,
 * long strings) go back to the system as soon as they are freed. */
void platform_heap_setup(void) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
#endif
}

/* A large request leaves its frame and what decoding it took as free heap, which glibc keeps.
 * Give it back as the connection ends, so the service is back near its baseline at once. */
void platform_heap_trim_if_large(void) {
#if defined(__GLIBC__)
#if __GLIBC__ > 2 || __GLIBC_MINOR__ >= 33
  if (mallinfo2().fordblks > TRIM_FREE_BYTES)
#endif
    malloc_trim(0);
#endif
}

/* A session may have held large events in flight; give what it freed back to the system, so a
 * long-running service returns to its baseline (sessions end rarely). */
void platform_heap_trim(void) {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}
