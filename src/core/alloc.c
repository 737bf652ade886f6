#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pipemsg/frame.h"

/* Countdown for pm__alloc_fail_after(); 0 means allocations never fail on purpose. Tests
 * that use it are single-threaded. */
static unsigned long fail_countdown;

static int should_fail(void) {
  if (fail_countdown == 0)
    return 0;
  if (fail_countdown == 1)
    return 1;
  fail_countdown--;
  return 0;
}

void pm__alloc_fail_after(unsigned long n) { fail_countdown = n; }

void *pm__malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }

void *pm__calloc(size_t count, size_t n) {
  return should_fail() ? NULL : calloc(count ? count : 1, n ? n : 1);
}

void *pm__realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }

char *pm__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = pm__malloc(n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}

void pm__copy_text(char *buf, size_t size, const char *s) {
  size_t n = strnlen(s, size - 1);
  memcpy(buf, s, n);
  buf[n] = '\0';
}

void pm__free(void *p) { free(p); }

void pm_free(void *p) { pm__free(p); }
