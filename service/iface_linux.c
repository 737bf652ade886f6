/* --iface on Linux: the kernel's byte counters of one interface, from sysfs. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "iface.h"

/* IFNAMSIZ - 1: the longest interface name Linux accepts. */
#define IFACE_NAME_MAX 15
/* A decimal uint64_t and its newline. */
#define COUNTER_TEXT_MAX 32

const char iface_help[] =
    "hook backend: read traffic counters of this network interface from the kernel";

bool iface_name_valid(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > IFACE_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return false;
  return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") ==
         len;
}

static int read_counter(const char *iface, const char *name, uint64_t *value) {
  char path[64 + IFACE_NAME_MAX];
  char text[COUNTER_TEXT_MAX];
  char *end;
  unsigned long long v;
  ssize_t n;
  int fd, err;

  snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", iface, name);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  n = read(fd, text, sizeof(text) - 1);
  err = errno;
  close(fd);
  if (n <= 0)
    return n < 0 ? -err : -EIO;
  text[n] = '\0';
  errno = 0;
  v = strtoull(text, &end, 10);
  if (end == text || errno != 0 || (*end != '\n' && *end != '\0'))
    return -EIO;
  *value = v;
  return 0;
}

int backend_iface_counters(const char *iface, uint64_t *tx, uint64_t *rx) {
  uint64_t t = 0, r = 0;
  int rc = -EINVAL;
  *tx = 0;
  *rx = 0;
  if (iface == NULL || !iface_name_valid(iface))
    return rc;
  rc = read_counter(iface, "tx_bytes", &t);
  if (rc == 0)
    rc = read_counter(iface, "rx_bytes", &r);
  if (rc < 0)
    return rc;
  *tx = t;
  *rx = r;
  return 0;
}
