#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pipemsg/message.h"
#include "testutil.h"

static size_t put_frame(uint8_t *dst, const char *payload) {
  size_t n = strlen(payload);
  assert_pm(0, pm_frame_header(n, 0, dst));
  memcpy(dst + 4, payload, n);
  return n + 4;
}

/* Feeds len bytes in chunks of the given sizes (cycled) and collects the payloads. */
static int feed_all(pm_reader *r, const uint8_t *data, size_t len, size_t chunk, char out[][64],
                    int max_out) {
  int count = 0;
  size_t off = 0;
  while (off < len) {
    size_t n = len - off < chunk ? len - off : chunk;
    size_t done = 0;
    while (done < n) {
      long used = pm_reader_feed(r, data + off + done, n - done);
      uint8_t *p;
      size_t plen;
      assert_true(used >= 0);
      done += (size_t)used;
      if (pm_reader_next(r, &p, &plen) == 1) {
        assert_true(count < max_out);
        assert_true(plen < 64);
        memcpy(out[count], p, plen);
        out[count][plen] = '\0';
        count++;
        pm_free(p);
      } else {
        assert_true(used > 0);
      }
    }
    off += n;
  }
  return count;
}

static void test_frame_every_chunk_size(void **state) {
  static const char *msgs[] = {"{\"A\":{}}", "x", "<Handshake><Seq>1</Seq></Handshake>"};
  uint8_t stream[256];
  size_t len = 0;
  (void)state;
  for (int i = 0; i < 3; i++)
    len += put_frame(stream + len, msgs[i]);
  for (size_t chunk = 1; chunk <= len; chunk++) {
    pm_reader *r;
    char out[4][64];
    assert_pm(0, pm_reader_new(0, &r));
    assert_int_equal(3, feed_all(r, stream, len, chunk, out, 4));
    for (int i = 0; i < 3; i++)
      assert_string_equal(msgs[i], out[i]);
    assert_int_equal(0, pm_reader_pending(r));
    pm_reader_free(r);
  }
}

static void test_frame_every_split_point(void **state) {
  uint8_t stream[256];
  size_t len = 0;
  (void)state;
  len += put_frame(stream, "{\"Request\":{\"Command\":\"GetState\"}}");
  len += put_frame(stream + len, "second");
  for (size_t split = 0; split <= len; split++) {
    pm_reader *r;
    char out[4][64];
    int count;
    assert_pm(0, pm_reader_new(0, &r));
    count = feed_all(r, stream, split, split ? split : 1, out, 4);
    count += feed_all(r, stream + split, len - split, len, out + count, 4 - count);
    assert_int_equal(2, count);
    assert_string_equal("second", out[1]);
    pm_reader_free(r);
  }
}

static int feed_header(size_t max, uint32_t n) {
  pm_reader *r;
  uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
  long rc;
  assert_pm(0, pm_reader_new(max, &r));
  rc = pm_reader_feed(r, h, 4);
  if (rc >= 0) {
    assert_int_equal(4, rc);
    /* Nothing beyond the header is allocated before payload bytes arrive. */
    assert_int_equal(0, pm__reader_capacity(r));
  }
  pm_reader_free(r);
  return (int)(rc < 0 ? rc : 0);
}

static void test_frame_length_boundaries(void **state) {
  (void)state;
  assert_pm(PM_EMSGSIZE, feed_header(0, 0));
  assert_pm(0, feed_header(0, 1));
  assert_pm(0, feed_header(0, (uint32_t)PM_MAX_MESSAGE_DEFAULT));
  assert_pm(PM_EMSGSIZE, feed_header(0, (uint32_t)PM_MAX_MESSAGE_DEFAULT + 1));
  assert_pm(PM_EMSGSIZE, feed_header(0, 0x80000000u));
  assert_pm(PM_EMSGSIZE, feed_header(0, 0xffffffffu));
  assert_pm(0, feed_header(PM_MAX_MESSAGE_CEILING, 0x7fffffffu));
  assert_pm(PM_EMSGSIZE, feed_header(PM_MAX_MESSAGE_CEILING, 0x80000000u));
  assert_pm(0, feed_header(10, 10));
  assert_pm(PM_EMSGSIZE, feed_header(10, 11));
}

static void test_frame_max_message_option(void **state) {
  pm_reader *r = NULL;
  (void)state;
  assert_pm(PM_EINVAL, pm_reader_new(PM_MAX_MESSAGE_CEILING + 1, &r));
  assert_null(r);
  assert_pm(PM_EINVAL, pm_reader_new(0, NULL));
}

static void test_frame_error_is_sticky(void **state) {
  pm_reader *r;
  uint8_t bad[4] = {0, 0, 0, 0};
  uint8_t good[8];
  uint8_t *p;
  size_t n;
  (void)state;
  put_frame(good, "abcd");
  assert_pm(0, pm_reader_new(0, &r));
  assert_pm(PM_EMSGSIZE, (int)pm_reader_feed(r, bad, 4));
  assert_pm(PM_EMSGSIZE, (int)pm_reader_feed(r, good, 8));
  assert_pm(PM_EMSGSIZE, pm_reader_next(r, &p, &n));
  pm_reader_free(r);
}

static void test_frame_buffer_grows_with_arrival(void **state) {
  pm_reader *r;
  uint8_t h[4];
  uint8_t chunk[1000];
  (void)state;
  memset(chunk, 'a', sizeof(chunk));
  assert_pm(0, pm_frame_header(PM_MAX_MESSAGE_DEFAULT, 0, h));
  assert_pm(0, pm_reader_new(0, &r));
  assert_int_equal(4, pm_reader_feed(r, h, 4));
  assert_int_equal(10, pm_reader_feed(r, chunk, 10));
  assert_true(pm__reader_capacity(r) <= 4096);
  for (int i = 0; i < 100; i++)
    assert_int_equal(1000, pm_reader_feed(r, chunk, 1000));
  /* 100 010 bytes arrived: the buffer is within a factor of two of that, not 16 MiB. */
  assert_true(pm__reader_capacity(r) >= 100010);
  assert_true(pm__reader_capacity(r) <= 2 * 100010 + 4096);
  assert_int_equal(4 + 100010, pm_reader_pending(r));
  pm_reader_free(r);
}

/* Reading straight into the reader's buffer: no room before a whole header or once the frame
 * is complete; the room grows as feeding grows the buffer (lazily, never past the frame), and
 * what is read into it comes out as the payload. */
static void test_frame_room(void **state) {
  pm_reader *r;
  uint8_t h[4], *room, *p;
  size_t n, len, got = 0;
  const size_t size = 100000;
  (void)state;
  assert_pm(0, pm_frame_header(size, 0, h));
  assert_pm(0, pm_reader_new(0, &r));
  assert_int_equal(0, pm__reader_room(r, 4096, &room, &n));
  assert_int_equal(3, pm_reader_feed(r, h, 3));
  assert_int_equal(0, pm__reader_room(r, 4096, &room, &n));
  assert_int_equal(1, pm_reader_feed(r, h + 3, 1));
  assert_int_equal(0, pm__reader_capacity(r));
  while (got < size) {
    size_t take;
    assert_int_equal(1, pm__reader_room(r, 1000, &room, &n));
    assert_true(n >= (size - got < 1000 ? size - got : 1000));
    assert_true(got + n <= pm__reader_capacity(r));
    /* Lazy: the buffer is within a factor of two of what arrived, plus the ask. */
    assert_true(pm__reader_capacity(r) <= 2 * (got + 1000) + 4096);
    assert_true(pm__reader_capacity(r) <= size);
    take = n < 777 ? n : 777;
    for (size_t i = 0; i < take; i++)
      room[i] = (uint8_t)((got + i) % 251);
    pm__reader_filled(r, take);
    got += take;
    assert_int_equal(4 + got, pm_reader_pending(r));
  }
  assert_int_equal(0, pm__reader_room(r, 1000, &room, &n));
  assert_int_equal(1, pm_reader_next(r, &p, &len));
  assert_int_equal(size, len);
  for (size_t i = 0; i < size; i++)
    assert_int_equal(i % 251, p[i]);
  pm_free(p);
  /* A failed growth fails the reader, as feeding does. */
  assert_pm(0, pm_frame_header(size, 0, h));
  assert_int_equal(4, pm_reader_feed(r, h, 4));
  pm__alloc_fail_after(1);
  assert_pm(PM_ENOMEM, pm__reader_room(r, 1000, &room, &n));
  pm__alloc_fail_after(0);
  assert_pm(PM_ENOMEM, pm_reader_feed(r, h, 1));
  pm_reader_free(r);
}

/* A 48 MiB frame, fed and read into in turns across its buffer's growths (doubling, then the
 * rest at once in a block of its own), comes out whole. */
static void test_frame_big_buffer(void **state) {
  const size_t size = ((size_t)48 << 20) + 123;
  const size_t chunk = 64 * 1024;
  uint8_t h[4], *data = malloc(size), *room, *p;
  size_t n, len, got = 0;
  pm_reader *r;
  int rounds = 0;
  (void)state;
  assert_non_null(data);
  for (size_t i = 0; i < size; i++)
    data[i] = (uint8_t)(i * 7 + i / 4099);
  assert_pm(0, pm_frame_header(size, size, h));
  assert_pm(0, pm_reader_new(size, &r));
  /* Alternately fed and read into, so both paths cross the growth. */
  assert_int_equal(4, pm_reader_feed(r, h, 4));
  while (got < size) {
    size_t take = size - got < chunk ? size - got : chunk;
    if (rounds++ % 2 == 0) {
      assert_int_equal(take, pm_reader_feed(r, data + got, take));
    } else {
      assert_int_equal(1, pm__reader_room(r, chunk, &room, &n));
      assert_true(n >= take);
      memcpy(room, data + got, take);
      pm__reader_filled(r, take);
    }
    got += take;
  }
  assert_true(pm__reader_capacity(r) == size);
  assert_int_equal(1, pm_reader_next(r, &p, &len));
  assert_int_equal(size, len);
  assert_true(memcmp(data, p, size) == 0);
  pm_free(p);
  pm_reader_free(r);
  free(data);
}

/* Feeds a frame with a payload of size bytes of 'b' (after its header) in 64 KiB feeds;
 * checks the capacity after each as docs/protocol.md §2 says it grows, and whether the payload
 * lies in memory advised for huge pages (expect), where the system can tell. */
static void feed_big(pm_reader *r, size_t size, int expect) {
  const size_t chunk = 64 * 1024;
  uint8_t h[4], *data = malloc(chunk), *p;
  size_t got = 0, cap, len;
  assert_non_null(data);
  memset(data, 'b', chunk);
  assert_pm(0, pm_frame_header(size, size, h));
  assert_int_equal(4, pm_reader_feed(r, h, 4));
  while (got < size) {
    size_t take = size - got < chunk ? size - got : chunk;
    assert_int_equal(take, pm_reader_feed(r, data, take));
    got += take;
    cap = pm__reader_capacity(r);
    assert_true(cap >= got && cap <= size);
    /* Doubling from 4 KiB, then never more than eight times what arrived. */
    if (got <= PM__BIG_BLOCK / 2)
      assert_true(cap <= 2 * got + 4096);
    else
      assert_true(cap <= 8 * got);
  }
  free(data);
  assert_int_equal(1, pm_reader_next(r, &p, &len));
  assert_int_equal(size, len);
  assert_int_equal('b', p[0]);
  assert_int_equal('b', p[size - 1]);
  pm_test_expect_huge_advised(p, len, expect);
  pm_free(p);
}

static void *app_malloc(size_t n) { return malloc(n); }

/* A 10 MiB frame: doubling until PM__BIG_BLOCK, then the rest of its length in one block
 * (eight times what had arrived is more), advised for huge pages only while pm_huge_pages is
 * on, and not at all below PM__BIG_BLOCK. */
static void test_frame_big_block_huge_pages(void **state) {
  const size_t size = ((size_t)10 << 20) + 5;
  pm_reader *r;
  (void)state;
  pm_test_heap_as_service();
  assert_pm(0, pm_reader_new(size, &r));
  feed_big(r, size, 0);
  assert_pm(0, pm_huge_pages(1));
  feed_big(r, size, 1);
  /* Just below the big block: realloc'd as ever, never advised. */
  feed_big(r, PM__BIG_BLOCK - 1, 0);
  /* Off takes effect for the frames even when jansson's allocator is the application's. */
  json_set_alloc_funcs(app_malloc, free);
  assert_pm(PM_EBUSY, pm_huge_pages(0));
  feed_big(r, size, 0);
  json_set_alloc_funcs(malloc, free);
  pm_reader_free(r);
}

/* A reader for frames of up to size bytes, fed the header of one that long. */
static pm_reader *big_reader(size_t size) {
  uint8_t h[4];
  pm_reader *r;
  assert_pm(0, pm_reader_new(size, &r));
  assert_pm(0, pm_frame_header(size, size, h));
  assert_int_equal(4, pm_reader_feed(r, h, 4));
  return r;
}

/* A peer that announces 256 MiB makes the reader reserve at most eight times what it sent:
 * Windows, and Linux with strict overcommit, count a reservation whole. */
static void test_frame_big_block_bounded_by_bytes_sent(void **state) {
  const size_t size = (size_t)256 << 20, chunk = 64 * 1024, sent = (size_t)20 << 20;
  uint8_t *data = calloc(1, chunk);
  size_t got = 0, cap = 0, steps[2] = {0, 0};
  int big_steps = 0;
  pm_reader *r = big_reader(size);
  (void)state;
  assert_non_null(data);
  while (got < sent) {
    assert_int_equal(chunk, pm_reader_feed(r, data, chunk));
    got += chunk;
    assert_true(pm__reader_capacity(r) >= got);
    assert_true(pm__reader_capacity(r) <= (got <= PM__BIG_BLOCK / 2 ? 2 * got + 4096 : 8 * got));
    if (pm__reader_capacity(r) != cap && pm__reader_capacity(r) >= PM__BIG_BLOCK) {
      assert_true(big_steps < 2);
      steps[big_steps++] = pm__reader_capacity(r);
    }
    cap = pm__reader_capacity(r);
  }
  assert_true(cap < size);
  /* Eight times what was needed: 2 MiB and 64 KiB, then 16.5 MiB and 64 KiB. */
  assert_int_equal(2, big_steps);
  assert_int_equal(8 * ((2 << 20) + chunk), steps[0]);
  assert_int_equal(8 * (steps[0] + chunk), steps[1]);
  pm_reader_free(r);
  free(data);
}

/* One feed of more than half the big block into a reader that has nothing yet: the first
 * block is a big one, with nothing to copy into it; then the rest. */
static void test_frame_big_block_first_feed(void **state) {
  const size_t size = (size_t)5 << 20, first = (size_t)3 << 20;
  uint8_t *data = malloc(size), *p;
  size_t len;
  pm_reader *r = big_reader(size);
  (void)state;
  assert_non_null(data);
  for (size_t i = 0; i < size; i++)
    data[i] = (uint8_t)(i % 251);
  assert_int_equal(first, pm_reader_feed(r, data, first));
  assert_int_equal(size, pm__reader_capacity(r));
  assert_int_equal(size - first, pm_reader_feed(r, data + first, size - first));
  assert_int_equal(1, pm_reader_next(r, &p, &len));
  assert_int_equal(size, len);
  assert_memory_equal(data, p, size);
  pm_free(p);
  pm_reader_free(r);
  free(data);
}

/* The big block cannot be had: the reader fails as for any growth, holding nothing more. */
static void test_frame_big_block_alloc_fails(void **state) {
  const size_t size = (size_t)8 << 20, chunk = 64 * 1024;
  uint8_t *data = calloc(1, chunk);
  size_t got = 0;
  pm_reader *r = big_reader(size);
  (void)state;
  assert_non_null(data);
  while (got < PM__BIG_BLOCK / 2) {
    assert_int_equal(chunk, pm_reader_feed(r, data, chunk));
    got += chunk;
  }
  assert_true(pm__reader_capacity(r) < PM__BIG_BLOCK);
  pm__alloc_fail_after(1);
  assert_pm(PM_ENOMEM, pm_reader_feed(r, data, chunk));
  pm__alloc_fail_after(0);
  assert_int_equal(0, pm__reader_capacity(r));
  assert_pm(PM_ENOMEM, pm_reader_feed(r, data, chunk));
  pm_reader_free(r);
  free(data);
}

static void test_frame_stops_at_frame_boundary(void **state) {
  pm_reader *r;
  uint8_t stream[32];
  uint8_t *p;
  size_t n, len = put_frame(stream, "ab");
  (void)state;
  len += put_frame(stream + len, "cd");
  assert_pm(0, pm_reader_new(0, &r));
  assert_int_equal(6, pm_reader_feed(r, stream, len));
  assert_int_equal(0, pm_reader_feed(r, stream + 6, len - 6)); /* frame waiting */
  assert_int_equal(1, pm_reader_next(r, &p, &n));
  assert_int_equal(2, n);
  assert_memory_equal("ab", p, 2);
  pm_free(p);
  assert_int_equal(0, pm_reader_next(r, &p, &n));
  pm_reader_free(r);
}

static void test_frame_header_encoder(void **state) {
  uint8_t h[4];
  (void)state;
  assert_pm(0, pm_frame_header(0x01020304, PM_MAX_MESSAGE_CEILING, h));
  assert_memory_equal("\x01\x02\x03\x04", h, 4);
  assert_pm(PM_EMSGSIZE, pm_frame_header(0, 0, h));
  assert_pm(PM_EMSGSIZE, pm_frame_header(PM_MAX_MESSAGE_DEFAULT + 1, 0, h));
  /* The ceiling holds whatever the caller's limit says. */
  assert_pm(PM_EMSGSIZE, pm_frame_header((size_t)PM_MAX_MESSAGE_CEILING + 1,
                                         (size_t)PM_MAX_MESSAGE_CEILING + 2, h));
  assert_pm(0, pm_frame_header(PM_MAX_MESSAGE_DEFAULT, 0, h));
}

/* The Nth allocation fails, N = 1, 2, ... until none does: the reader's own and its payload
 * buffer's each fail once, as PM_ENOMEM with nothing leaked; then the frame comes out whole. */
static void test_frame_out_of_memory(void **state) {
  static const char text[] = "payload that needs a buffer";
  uint8_t stream[64];
  size_t len = put_frame(stream, text);
  int failed_new = 0, failed_feed = 0, whole = 0;
  (void)state;
  for (unsigned long n = 1; n < 10 && !whole; n++) {
    pm_reader *r = NULL;
    uint8_t *payload = NULL;
    size_t plen = 0;
    int rc;
    long used;
    pm__alloc_fail_after(n);
    rc = pm_reader_new(0, &r);
    if (rc < 0) {
      pm__alloc_fail_after(0);
      assert_pm(PM_ENOMEM, rc);
      assert_null(r);
      failed_new++;
      continue;
    }
    used = pm_reader_feed(r, stream, len);
    pm__alloc_fail_after(0);
    if (used < 0) {
      assert_pm(PM_ENOMEM, (int)used);
      failed_feed++;
    } else {
      assert_int_equal(len, used);
      assert_int_equal(1, pm_reader_next(r, &payload, &plen));
      assert_int_equal(strlen(text), plen);
      assert_memory_equal(text, payload, plen);
      pm_free(payload);
      whole = 1;
    }
    pm_reader_free(r);
  }
  assert_int_equal(1, failed_new);
  assert_int_equal(1, failed_feed);
  assert_true(whole);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frame_every_chunk_size),
      cmocka_unit_test(test_frame_room),
      cmocka_unit_test(test_frame_big_buffer),
      cmocka_unit_test(test_frame_every_split_point),
      cmocka_unit_test(test_frame_length_boundaries),
      cmocka_unit_test(test_frame_max_message_option),
      cmocka_unit_test(test_frame_error_is_sticky),
      cmocka_unit_test(test_frame_buffer_grows_with_arrival),
      cmocka_unit_test(test_frame_big_block_huge_pages),
      cmocka_unit_test(test_frame_big_block_bounded_by_bytes_sent),
      cmocka_unit_test(test_frame_big_block_first_feed),
      cmocka_unit_test(test_frame_big_block_alloc_fails),
      cmocka_unit_test(test_frame_stops_at_frame_boundary),
      cmocka_unit_test(test_frame_header_encoder),
      cmocka_unit_test(test_frame_out_of_memory),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
