#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* Where transparent huge pages are enabled for advised memory (the kernel's "madvise" mode, or
 * "always"), a buffer that is filled whole costs one fault per 2 MiB instead of one per 4 KiB;
 * on a virtual machine whose faults are slow that is most of the time a 100 MiB frame takes to
 * arrive. Only blocks of PM__HUGE_MIN or more are advised: glibc serves them from their own
 * mapping whatever its dynamic mmap threshold, so the advice never lands on heap memory that
 * small blocks reuse later (where a huge page would hold 2 MiB for a few bytes), and it ends
 * with the block. */
#define HUGE_PAGE ((uintptr_t)2 * 1024 * 1024)
#define THP_ENABLED "/sys/kernel/mm/transparent_hugepage/enabled"

static uv_once_t thp_once = UV_ONCE_INIT;
static int thp_on;

/* The setting reads like "always [madvise] never", the one in force in brackets. */
static void thp_read(void) {
  char line[128] = "";
  FILE *f = fopen(THP_ENABLED, "r");
  if (f == NULL)
    return;
  if (fgets(line, sizeof(line), f) != NULL)
    thp_on = strstr(line, "[never]") == NULL && strchr(line, '[') != NULL;
  fclose(f);
}

int pm__hint_huge(void *p, size_t len) {
#ifdef MADV_HUGEPAGE
  uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t end = ((uintptr_t)p + len) & ~(HUGE_PAGE - 1);
  if (len < PM__HUGE_MIN || end <= start)
    return 0;
  uv_once(&thp_once, thp_read);
  return thp_on && madvise((void *)start, end - start, MADV_HUGEPAGE) == 0;
#else
  (void)p;
  (void)len;
  return 0;
#endif
}
