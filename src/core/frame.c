#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "pipemsg/error.h"
#include "pipemsg/frame.h"

/* First payload allocation; then the buffer doubles as bytes arrive, never past the
 * announced length, so a peer that announces much and sends little costs little (grow: from
 * PM__BIG_BLOCK on, in larger steps). */
#define READER_INITIAL_BUF 4096
/* From PM__BIG_BLOCK on, a new block holds this many times the bytes that have arrived. */
#define READER_BIG_STEP 8

struct pm_reader {
  size_t max_message;
  uint8_t header[PM_FRAME_HEADER_SIZE];
  size_t header_have;
  size_t length; /* announced payload length, valid once the header is complete */
  uint8_t *buf;
  size_t cap;
  size_t have;
  int complete; /* a whole frame waits in buf */
  int err;      /* sticky */
};

int pm_reader_new(size_t max_message, pm_reader **out) {
  pm_reader *r;
  if (out == NULL || max_message > PM_MAX_MESSAGE_CEILING)
    return PM_EINVAL;
  r = pm__calloc(1, sizeof(*r));
  if (r == NULL)
    return PM_ENOMEM;
  r->max_message = max_message ? max_message : PM_MAX_MESSAGE_DEFAULT;
  *out = r;
  return 0;
}

void pm_reader_free(pm_reader *r) {
  if (r == NULL)
    return;
  pm__free(r->buf);
  pm__free(r);
}

static int fail(pm_reader *r, int err) {
  pm__free(r->buf);
  r->buf = NULL;
  r->cap = r->have = 0;
  r->complete = 0;
  r->err = err;
  return err;
}

static int grow(pm_reader *r, size_t need) {
  size_t cap = r->cap ? r->cap : READER_INITIAL_BUF;
  uint8_t *nb;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  /* Once doubling would reach PM__BIG_BLOCK, steps of READER_BIG_STEP times what is needed,
   * each a new block that may ask for huge pages before anything touches it (pm_huge_pages):
   * a big payload in small pages is mostly page faults, and doubling on would copy it again at
   * each step. Eight times bounds both the copying (each step copies at most an eighth of the
   * next block, so 8/7 of the last copy in all) and what a peer's bytes make the reader
   * reserve: Windows, and Linux with strict overcommit, count a block's whole size at once,
   * not the pages touched. (Doubling leaves cap below 2 * need, so the step always applies.) */
  if (cap >= PM__BIG_BLOCK && need <= SIZE_MAX / READER_BIG_STEP)
    cap = need * READER_BIG_STEP;
  if (cap > r->length)
    cap = r->length;
  if (cap >= PM__BIG_BLOCK) {
    nb = pm__malloc_big(cap);
    if (nb == NULL)
      return PM_ENOMEM;
    if (r->have > 0)
      memcpy(nb, r->buf, r->have);
    pm__free(r->buf);
  } else if ((nb = pm__realloc(r->buf, cap)) == NULL) {
    return PM_ENOMEM;
  }
  r->buf = nb;
  r->cap = cap;
  return 0;
}

int pm__frame_length(const uint8_t *header, size_t max_message,
                     size_t *len) {
  uint32_t n = ((uint32_t)header[0] << 24) | ((uint32_t)header[1] << 16) |
               ((uint32_t)header[2] << 8) | (uint32_t)header[3];
  if (n == 0 || (n & 0x80000000u) || n > max_message)
    return PM_EMSGSIZE;
  *len = n;
  return 0;
}

long pm_reader_feed(pm_reader *r, const void *data, size_t len) {
  const uint8_t *p = data;
  size_t used = 0;
  if (r == NULL || (data == NULL && len > 0))
    return PM_EINVAL;
  if (r->err)
    return r->err;
  if (r->complete)
    return 0;
  if (len > (size_t)LONG_MAX)
    len = (size_t)LONG_MAX;
  while (r->header_have < PM_FRAME_HEADER_SIZE && used < len)
    r->header[r->header_have++] = p[used++];
  if (r->header_have < PM_FRAME_HEADER_SIZE)
    return (long)used;
  /* Judged from the header alone, before any payload allocation (§2). */
  if (r->length == 0 && pm__frame_length(r->header, r->max_message, &r->length) < 0)
    return fail(r, PM_EMSGSIZE);
  if (used < len) {
    size_t take = len - used;
    if (take > r->length - r->have)
      take = r->length - r->have;
    if (r->have + take > r->cap) {
      int rc = grow(r, r->have + take);
      if (rc < 0)
        return fail(r, rc);
    }
    memcpy(r->buf + r->have, p + used, take);
    r->have += take;
    used += take;
  }
  if (r->have == r->length)
    r->complete = 1;
  return (long)used;
}

int pm_reader_next(pm_reader *r, uint8_t **payload, size_t *len) {
  if (r == NULL || payload == NULL || len == NULL)
    return PM_EINVAL;
  if (r->err)
    return r->err;
  if (!r->complete)
    return 0;
  *payload = r->buf;
  *len = r->length;
  r->buf = NULL;
  r->cap = r->have = r->length = r->header_have = 0;
  r->complete = 0;
  return 1;
}

size_t pm_reader_pending(const pm_reader *r) {
  if (r == NULL)
    return 0;
  return r->header_have + r->have;
}

int pm_frame_header(size_t len, size_t max_message, uint8_t out[PM_FRAME_HEADER_SIZE]) {
  if (max_message == 0)
    max_message = PM_MAX_MESSAGE_DEFAULT;
  if (len == 0 || len > max_message || len > PM_MAX_MESSAGE_CEILING)
    return PM_EMSGSIZE;
  out[0] = (uint8_t)(len >> 24);
  out[1] = (uint8_t)(len >> 16);
  out[2] = (uint8_t)(len >> 8);
  out[3] = (uint8_t)len;
  return 0;
}

size_t pm__reader_capacity(const pm_reader *r) { return r->cap; }

int pm__reader_room(pm_reader *r, size_t want, uint8_t **room, size_t *n) {
  size_t take;
  if (r->err || r->complete || r->length == 0)
    return 0;
  /* Grown as pm_reader_feed would grow it for want bytes, so the growth stays lazy. */
  take = r->length - r->have;
  if (take > want)
    take = want;
  if (r->have + take > r->cap) {
    int rc = grow(r, r->have + take);
    if (rc < 0)
      return fail(r, rc);
  }
  *room = r->buf + r->have;
  *n = r->cap - r->have;
  return 1;
}

void pm__reader_filled(pm_reader *r, size_t n) {
  r->have += n;
  if (r->have == r->length)
    r->complete = 1;
}
