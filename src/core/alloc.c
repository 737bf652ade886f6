#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "internal.h"
#include "pipemsg/error.h"
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

/* The size of the huge pages the advice asks for (x86-64's and arm64's PMD with 4 KiB pages;
 * elsewhere the advice covers less, which costs nothing). */
#define HUGE_PAGE ((uintptr_t)2 << 20)

#if defined(__linux__) && defined(MADV_HUGEPAGE)
/* pm_huge_pages: set before other threads use the library (its contract), read after. */
static int huge_pages;
#endif

/* Returns p, after asking (with pm_huge_pages on, for a block of PM__BIG_BLOCK bytes or more)
 * that the whole huge pages inside it be backed by transparent huge pages (Linux, with THP in
 * "madvise" or "always" mode): a 100 MiB block touched in 4 KiB pages takes 25 600 page
 * faults, which on a virtual machine cost far more than writing the bytes (docs/benchmarks.md,
 * "Eighth pass (session 10): big messages"). Advice only: where the kernel declines, the block
 * works as before. The advice stays with the addresses, which is why it is the program's
 * choice: see pm_huge_pages. */
static void *advise_if_big(void *p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t end = ((uintptr_t)p + n) & ~(HUGE_PAGE - 1);
  if (huge_pages && p != NULL && n >= PM__BIG_BLOCK && end > start)
    (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
  (void)n;
#endif
  return p;
}

void *pm__malloc_big(size_t n) { return advise_if_big(pm__malloc(n), n); }

#if defined(__linux__) && defined(MADV_HUGEPAGE)
/* jansson's allocator while pm_huge_pages is on: big blocks advised before jansson writes them
 * (its copy of a long string). malloc, not pm__malloc: these are the application's
 * allocations as much as ours, and tests' failure injection is not for them. */
static void *json_malloc_big(size_t n) { return advise_if_big(malloc(n), n); }
#endif

int pm_huge_pages(int on) {
  json_malloc_t m;
  json_free_t f;
  int ours = 0;
  json_get_alloc_funcs(&m, &f);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  ours = m == json_malloc_big && f == free;
#endif
  /* jansson's defaults or ours; anything else is the application's own allocator, kept. Off
   * still takes effect for the frames, so that it can always be turned off. */
  if (!ours && (m != malloc || f != free)) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (!on)
      huge_pages = 0;
#endif
    return PM_EBUSY;
  }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (on && !ours)
    json_set_alloc_funcs(json_malloc_big, free);
  else if (!on && ours)
    json_set_alloc_funcs(malloc, free);
  huge_pages = on != 0;
#else
  (void)on;
#endif
  return 0;
}

void pm_free(void *p) { pm__free(p); }
