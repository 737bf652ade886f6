/* The frame decoder (src/core/frame.c) fed an arbitrary byte stream in arbitrary splits, and
 * checked against a reference model that parses the whole stream at once.
 *
 * Input: 2 bytes max_message (big-endian; 0 means the default), 1 control byte, then
 * 1 + (control & 15) split lengths, each scaled by 1 << ((control >> 4) & 3) and used in turn
 * (0 feeds nothing), then the stream. Control bit 6 feeds once more while a frame waits,
 * which must take nothing. Control bit 7 puts each split's bytes of a payload straight into the
 * reader's buffer (pm__reader_room, as the command server reads a request) where it offers
 * room, and feeds them otherwise.
 *
 * Invariants: the payloads are the model's, in order, each 1..max_message bytes; the stream
 * fails (PM_EMSGSIZE) exactly on the feed that completes a bad header, and the failure is
 * sticky; a feed takes 0..len bytes and takes fewer only at the end of a frame;
 * pm_reader_pending() is the bytes of the frame being assembled (so never above
 * 4 + max_message); the payload buffer never exceeds the announced length and grows at most
 * to twice what has arrived (beyond the first 4 KiB). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "internal.h"

#define HEADER PM_FRAME_HEADER_SIZE
#define INITIAL_BUF 4096 /* READER_INITIAL_BUF in frame.c, as PROTOCOL §2 states it */
#define NO_ERROR SIZE_MAX

typedef struct {
  size_t start, len; /* offset of the header in the stream, payload length */
} frame;

static uint32_t be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* The reference: the complete frames of s, and where the first bad header ends (or
 * NO_ERROR). */
static size_t model(const uint8_t *s, size_t n, size_t max, frame *frames, size_t *err_at) {
  size_t pos = 0, count = 0;
  *err_at = NO_ERROR;
  while (n - pos >= HEADER) {
    uint32_t len = be32(s + pos);
    if (len == 0 || (len & 0x80000000u) || len > max) {
      *err_at = pos + HEADER;
      break;
    }
    if (n - pos - HEADER < len)
      break;
    frames[count].start = pos;
    frames[count].len = len;
    count++;
    pos += HEADER + (size_t)len;
  }
  return count;
}

/* Pending bytes and buffer size against the frame that starts at frame_start. */
static void check_state(const pm_reader *r, const uint8_t *s, size_t frame_start, size_t off) {
  size_t pending = pm_reader_pending(r), cap = pm__reader_capacity(r);
  FUZZ_CHECK(pending == off - frame_start);
  if (pending <= HEADER) {
    FUZZ_CHECK(cap == 0);
  } else {
    size_t have = pending - HEADER, announced = be32(s + frame_start);
    FUZZ_CHECK(have <= announced);
    FUZZ_CHECK(cap >= have && cap <= announced);
    FUZZ_CHECK(cap <= INITIAL_BUF || cap < 2 * have);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *splits, *s;
  size_t max, max_eff, nsplits, n, nframes, err_at, frames_before_err;
  size_t off = 0, frame_start = 0, delivered = 0, si = 0, zero_run = 0;
  unsigned shift, control;
  frame *frames;
  pm_reader *r = NULL;
  int failed = 0;

  if (size < 3)
    return 0;
  max = ((size_t)data[0] << 8) | data[1];
  control = data[2];
  nsplits = 1 + (control & 15);
  shift = (control >> 4) & 3;
  if (size < 3 + nsplits)
    return 0;
  splits = data + 3;
  s = splits + nsplits;
  n = size - 3 - nsplits;
  max_eff = max != 0 ? max : PM_MAX_MESSAGE_DEFAULT;

  frames = malloc((n / HEADER + 1) * sizeof(*frames));
  FUZZ_CHECK(frames != NULL);
  nframes = model(s, n, max_eff, frames, &err_at);
  frames_before_err = nframes;

  FUZZ_CHECK(pm_reader_new(PM_MAX_MESSAGE_CEILING + 1, &r) == PM_EINVAL && r == NULL);
  FUZZ_CHECK(pm_reader_new(max, &r) == 0 && r != NULL);
  FUZZ_CHECK(pm_reader_pending(r) == 0);

  while (off < n && !failed) {
    size_t chunk = (size_t)splits[si++ % nsplits] << shift, end;
    /* Only zero splits would never finish: after a round of them, feed the rest. */
    zero_run = chunk == 0 ? zero_run + 1 : 0;
    if (zero_run > nsplits)
      chunk = n - off;
    if (chunk > n - off)
      chunk = n - off;
    end = off + chunk;
    do {
      uint8_t *payload = NULL;
      size_t len = 0;
      uint8_t *room;
      size_t room_n;
      long took;
      int got;
      if ((control & 0x80) && chunk != 0 && pm__reader_room(r, end - off, &room, &room_n) == 1) {
        FUZZ_CHECK(room_n > 0);
        took = (long)(room_n < end - off ? room_n : end - off);
        memcpy(room, s + off, (size_t)took);
        pm__reader_filled(r, (size_t)took);
      } else {
        took = pm_reader_feed(r, chunk != 0 ? s + off : NULL, end - off);
      }
      if (took < 0) {
        /* Only a bad header fails, on the feed that completes it, after every good frame. */
        FUZZ_CHECK(took == PM_EMSGSIZE);
        FUZZ_CHECK(err_at != NO_ERROR && off < err_at && err_at <= end);
        FUZZ_CHECK(delivered == frames_before_err);
        FUZZ_CHECK(pm_reader_feed(r, s + off, end - off) == took);
        FUZZ_CHECK(pm_reader_next(r, &payload, &len) == took && payload == NULL);
        failed = 1;
        break;
      }
      FUZZ_CHECK((size_t)took <= end - off);
      off += (size_t)took;
      FUZZ_CHECK(err_at == NO_ERROR || off < err_at);
      check_state(r, s, frame_start, off);
      if (delivered < nframes && off == frames[delivered].start + HEADER + frames[delivered].len) {
        const frame *f = &frames[delivered];
        uint8_t header[HEADER];
        if (control & 0x40)
          FUZZ_CHECK(pm_reader_feed(r, s + off, end - off) == 0);
        got = pm_reader_next(r, &payload, &len);
        FUZZ_CHECK(got == 1 && payload != NULL);
        FUZZ_CHECK(len == f->len && len >= 1 && len <= max_eff);
        FUZZ_CHECK(memcmp(payload, s + f->start + HEADER, len) == 0);
        FUZZ_CHECK(pm_frame_header(len, max, header) == 0);
        FUZZ_CHECK(memcmp(header, s + f->start, HEADER) == 0);
        pm_free(payload);
        delivered++;
        frame_start = off;
        check_state(r, s, frame_start, off);
      } else {
        /* A feed stops short only at the end of a frame. */
        FUZZ_CHECK(off == end);
        got = pm_reader_next(r, &payload, &len);
        FUZZ_CHECK(got == 0 && payload == NULL);
      }
    } while (off < end);
  }
  if (!failed) {
    FUZZ_CHECK(err_at == NO_ERROR);
    FUZZ_CHECK(delivered == nframes);
    FUZZ_CHECK(pm_reader_pending(r) == n - frame_start);
  }
  pm_reader_free(r);
  free(frames);
  return 0;
}
