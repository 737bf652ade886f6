#include "internal.h"

/* Large pages on Windows need a privilege and memory from VirtualAlloc, not the CRT heap the
 * reader's buffers come from: nothing is advised. */
int pm__hint_huge(void *p, size_t len) {
  (void)p;
  (void)len;
  return 0;
}
