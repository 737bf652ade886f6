/* The Unix parts of pipemsgd's files, names and heap (platform.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
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

static int trusted_owner(uid_t uid) { return uid == 0 || uid == geteuid(); }

/* One directory on the way to the data dir (st its lstat): only root or the service's user
 * may own it, and one others may write to must be sticky (as /tmp is), so that nobody else
 * can rename or replace what the path goes through. No symlink: whoever could replace one
 * could point the path elsewhere, and the event store is never opened through one anyway
 * (SQLITE_OPEN_NOFOLLOW refuses a symlink anywhere in its path). */
static int check_data_dir_step(const char *dir, const char *path, const struct stat *st) {
  if (S_ISLNK(st->st_mode)) {
    log_msg(LVL_ERROR, "cannot use data dir '%s': '%s' is a symlink (give the path it leads to)",
            dir, path);
    return -1;
  }
  if (!trusted_owner(st->st_uid)) {
    log_msg(LVL_ERROR, "cannot use data dir '%s': '%s' is owned by uid %u, not root or the "
            "service's user", dir, path, (unsigned)st->st_uid);
    return -1;
  }
  if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st->st_mode & S_ISVTX) == 0) {
    log_msg(LVL_ERROR, "cannot use data dir '%s': '%s' is writable by group or others without "
            "the sticky bit (mode %04o)", dir, path, (unsigned)(st->st_mode & 07777));
    return -1;
  }
  return 0;
}

/* Checks every directory from / down to the data dir's parent by check_data_dir_step, the
 * way OpenSSH checks the path to authorized_keys; the data dir itself is checked by
 * platform_make_data_dir. Once no step can be changed by anyone but root or the service's
 * user, nobody else can swap one between this check and the directory's use. */
static int check_data_dir_parents(const char *dir) {
  char todo[PATH_MAX], done[PATH_MAX] = "", path[PATH_MAX];
  const char *rest = todo;
  struct stat st;
  if (dir[0] == '/') {
    snprintf(todo, sizeof(todo), "%s", dir);
  } else if (getcwd(path, sizeof(path)) == NULL ||
             snprintf(todo, sizeof(todo), "%s/%s", path, dir) >= (int)sizeof(todo)) {
    log_msg(LVL_ERROR, "cannot use data dir '%s': cannot make its path absolute", dir);
    return -1;
  }
  if (lstat("/", &st) < 0 || check_data_dir_step(dir, "/", &st) < 0)
    return -1;
  for (;;) {
    const char *name;
    size_t len;
    while (*rest == '/')
      rest++;
    name = rest;
    len = strcspn(rest, "/");
    rest += len;
    while (*rest == '/')
      rest++;
    if (*rest == '\0') /* name is the data dir itself */
      return 0;
    if (len == 1 && name[0] == '.')
      continue;
    if (len == 2 && name[0] == '.' && name[1] == '.') {
      /* done holds no symlink, so its parent is the one the kernel goes to. */
      char *slash = strrchr(done, '/');
      if (slash != NULL)
        *slash = '\0';
      continue;
    }
    if (snprintf(path, sizeof(path), "%s/%.*s", done, (int)len, name) >= (int)sizeof(path)) {
      log_msg(LVL_ERROR, "cannot use data dir '%s': path too long", dir);
      return -1;
    }
    if (lstat(path, &st) < 0) { /* mkdir makes the last step only */
      log_msg(LVL_ERROR, "cannot create data dir '%s': '%s': %s", dir, path, strerror(errno));
      return -1;
    }
    if (check_data_dir_step(dir, path, &st) < 0)
      return -1;
    memcpy(done, path, sizeof(done));
  }
}

/* Whoever may create, rename or delete files in the data directory may put their own event
 * store (or settings) in the service's place, and so forge events it delivers as its own: a
 * data directory that exists already must be one only root or the service's user can change,
 * and so must every directory on its path (check_data_dir_parents). Unlike the socket
 * directory, the sticky bit does not help: another user could still create events.db (or its
 * journal) before the service does. */
int platform_make_data_dir(const char *dir) {
  struct stat st;
  if (check_data_dir_parents(dir) < 0)
    return -1;
  if (mkdir(dir, DATA_DIR_MODE) < 0 && errno != EEXIST) {
    log_msg(LVL_ERROR, "cannot create data dir '%s': %s", dir, strerror(errno));
    return -1;
  }
  if (lstat(dir, &st) < 0) {
    log_msg(LVL_ERROR, "cannot use data dir '%s': %s", dir, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode) || !trusted_owner(st.st_uid)) {
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

/* The socket's mode and group, and the directory it is in, are checked where it is bound. */
int platform_check_access(const service_config *cfg) {
  (void)cfg;
  return 0;
}

int platform_lock_data_dir(const char *dir) {
  char path[4096];
  int fd;
  snprintf(path, sizeof(path), "%s/pipemsgd.lock", dir);
  /* Close-on-exec: a hook command that outlives us must not keep the directory locked. Read
   * only: flock needs no more, and on a read-only mount the store's own error says why. */
  fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    log_msg(LVL_ERROR, "cannot open lock file %s: %s", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK)
      log_msg(LVL_ERROR, "data dir '%s' is in use by another pipemsgd", dir);
    else
      log_msg(LVL_ERROR, "cannot lock data dir '%s': %s", dir, strerror(errno));
    close(fd);
    return -1;
  }
  /* The descriptor stays open: the lock goes with the process, however it ends. */
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
  /* A large request's frame and jansson's copies of its long strings in huge pages: with the
   * threshold fixed, each such block is a mapping of its own, and the request goes with it. The
   * service gives jansson no allocator of its own, so nothing can refuse it. */
  (void)pm_huge_pages(1);
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
