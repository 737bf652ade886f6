/* The event delivery queue (src/event/queue.c): order, coalescing, overflow markers, resume. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#include "event/queue.h"
#include "internal.h"

#define TIME "2026-01-02T03:04:05.678Z"
/* What an event of a one-letter type and no data costs (strlen("A") + the queue's overhead). */
#define SMALL_BYTES ((size_t)65)

/* Walks the list and checks every invariant: ids strictly increasing, tail, count and bytes
 * (markers excluded), markers well formed, an in-flight flag only with a head. */
static void check_queue(const pm__queue *q) {
  const pm__event *p, *last = NULL;
  size_t count = 0, bytes = 0;
  for (p = q->head; p != NULL; p = p->next) {
    if (last != NULL)
      assert_true(last->id < p->id);
    if (p->bytes == 0) {
      json_t *c = json_object_get(p->data, "Count");
      json_t *f = json_object_get(p->data, "FirstId");
      json_t *l = json_object_get(p->data, "LastId");
      assert_string_equal(PM__EVENTS_LOST_TYPE, p->type);
      assert_false(p->transient);
      assert_true(json_is_integer(c) && json_is_integer(f) && json_is_integer(l));
      assert_true(json_integer_value(c) >= 1);
      assert_true(json_integer_value(f) <= json_integer_value(l));
      assert_int_equal(json_integer_value(l), p->id);
    } else {
      count++;
      bytes += p->bytes;
    }
    last = p;
  }
  assert_ptr_equal(last, q->tail);
  assert_int_equal(count, q->count);
  assert_int_equal(bytes, q->bytes);
  if (q->head_in_flight)
    assert_non_null(q->head);
  if (q->max_events != 0)
    assert_true(q->count <= q->max_events);
  if (q->max_bytes != 0)
    assert_true(q->bytes <= q->max_bytes);
}

static pm__event *event(int64_t id, const char *type, int transient) {
  pm__event *ev = pm__event_new(id, type, NULL, transient, TIME);
  assert_non_null(ev);
  return ev;
}

/* An event whose data is a string of n characters (bytes = SMALL_BYTES + n + 2). */
static pm__event *big_event(int64_t id, size_t n) {
  char *s = test_malloc(n + 1);
  pm__event *ev;
  memset(s, 'x', n);
  s[n] = '\0';
  ev = pm__event_new(id, "A", json_string(s), 0, TIME);
  test_free(s);
  assert_non_null(ev);
  assert_int_equal(SMALL_BYTES + n + 2, ev->bytes);
  return ev;
}

/* Pushes ev, checks the invariants and returns how many durable events were lost. */
static size_t push(pm__queue *q, pm__event *ev, int *coalesced) {
  size_t lost = 99;
  int c = 99;
  pm__queue_push(q, ev, &lost, &c);
  assert_true(c == 0 || c == 1);
  if (coalesced != NULL)
    *coalesced = c;
  check_queue(q);
  return lost;
}

static void push_durable(pm__queue *q, int64_t id, size_t expect_lost) {
  assert_int_equal(expect_lost, push(q, event(id, "A", 0), NULL));
}

/* The queue's ids as text, markers as "M<id>:<Count>:<FirstId>", transients as "T<id>". */
static const char *layout(const pm__queue *q) {
  static char buf[512];
  size_t used = 0;
  buf[0] = '\0';
  for (const pm__event *p = q->head; p != NULL; p = p->next) {
    int n;
    if (p->bytes == 0)
      n = snprintf(buf + used, sizeof(buf) - used, "%sM%lld:%lld:%lld", used ? " " : "",
                   (long long)p->id,
                   (long long)json_integer_value(json_object_get(p->data, "Count")),
                   (long long)json_integer_value(json_object_get(p->data, "FirstId")));
    else
      n = snprintf(buf + used, sizeof(buf) - used, "%s%s%lld", used ? " " : "",
                   p->transient ? "T" : "", (long long)p->id);
    assert_true(n > 0 && (size_t)n < sizeof(buf) - used);
    used += (size_t)n;
  }
  return buf;
}

static void test_queue_event_new_estimates_bytes(void **state) {
  pm__event *ev;
  (void)state;
  ev = pm__event_new(7, "Type", json_pack("{s:i}", "a", 1), 1, TIME);
  assert_non_null(ev);
  assert_int_equal(7, ev->id);
  assert_string_equal("Type", ev->type);
  assert_string_equal(TIME, ev->time);
  assert_true(ev->transient);
  assert_null(ev->next);
  assert_int_equal(strlen("Type") + strlen("{\"a\":1}") + 64, ev->bytes);
  pm__event_free(ev);
  ev = pm__event_new(8, "A", NULL, 0, NULL);
  assert_non_null(ev);
  assert_int_equal(SMALL_BYTES, ev->bytes);
  assert_string_equal("", ev->time);
  pm__event_free(ev);
  pm__event_free(NULL);
}

/* An event keeps its Data as the compact JSON a frame carries, in its own allocation; a copy
 * and the tree read back from it are equal to what was published. A marker keeps a tree. */
static void test_queue_event_keeps_data_text(void **state) {
  pm__event *ev, *copy, *m;
  json_t *in, *out = NULL;
  (void)state;
  in = json_pack("{s:i, s:s, s:[b,n]}", "a", 1, "s", "x\"y", "l", 1);
  ev = pm__event_new(3, "Type", json_incref(in), 0, TIME);
  assert_non_null(ev);
  assert_null(ev->data);
  assert_string_equal("{\"a\":1,\"s\":\"x\\\"y\",\"l\":[true,null]}", ev->text);
  assert_int_equal(strlen(ev->text), ev->text_len);
  copy = pm__event_dup(ev);
  assert_non_null(copy);
  assert_ptr_not_equal(ev->text, copy->text);
  assert_string_equal(ev->text, copy->text);
  assert_string_equal("Type", copy->type);
  assert_string_equal(TIME, copy->time);
  assert_int_equal(ev->bytes, copy->bytes);
  assert_int_equal(3, copy->id);
  assert_pm(0, pm__event_data(copy, &out));
  assert_true(json_equal(in, out));
  json_decref(out);
  pm__event_free(ev);
  pm__event_free(copy);
  ev = pm__event_new(4, "Bare", NULL, 0, TIME);
  assert_non_null(ev);
  assert_null(ev->text);
  assert_pm(0, pm__event_data(ev, &out));
  assert_null(out);
  pm__event_free(ev);
  m = pm__event_new(5, PM__EVENTS_LOST_TYPE, json_incref(in), 0, TIME);
  assert_non_null(m);
  assert_null(m->text);
  assert_ptr_equal(in, m->data);
  copy = pm__event_dup(m);
  assert_non_null(copy);
  assert_true(json_equal(in, copy->data));
  assert_ptr_not_equal(in, copy->data);
  pm__event_free(copy);
  pm__event_free(m);
  json_decref(in);
}

static void test_queue_fifo_order(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 0, 0);
  assert_null(pm__queue_head(&q));
  for (int64_t id = 1; id <= 5; id++)
    push_durable(&q, id, 0);
  assert_string_equal("1 2 3 4 5", layout(&q));
  for (int64_t id = 1; id <= 5; id++) {
    assert_non_null(pm__queue_head(&q));
    assert_int_equal(id, pm__queue_head(&q)->id);
    pm__queue_pop(&q);
    check_queue(&q);
  }
  assert_null(pm__queue_head(&q));
  assert_null(q.tail);
  pm__queue_pop(&q); /* popping an empty queue does nothing */
  check_queue(&q);
  pm__queue_clear(&q);
}

static void test_queue_pop_frees_head_and_clears_in_flight(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 0, 0);
  push_durable(&q, 1, 0);
  push_durable(&q, 2, 0);
  q.head_in_flight = 1;
  pm__queue_pop(&q);
  check_queue(&q);
  assert_false(q.head_in_flight);
  assert_int_equal(2, pm__queue_head(&q)->id);
  assert_int_equal(1, q.count);
  pm__queue_pop(&q);
  check_queue(&q);
  assert_int_equal(0, q.count);
  assert_int_equal(0, q.bytes);
  pm__queue_clear(&q);
}

static void test_queue_clear_frees_everything(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 2, 1000);
  for (int64_t id = 1; id <= 5; id++)
    push(&q, event(id, "A", 0), NULL);
  push(&q, event(6, "T", 1), NULL);
  q.head_in_flight = 1;
  pm__queue_clear(&q);
  check_queue(&q);
  assert_null(q.head);
  assert_false(q.head_in_flight);
  assert_int_equal(2, q.max_events);
  assert_int_equal(1000, q.max_bytes);
  pm__queue_clear(&q);
}

static void test_queue_push_null_and_null_outputs(void **state) {
  pm__queue q;
  size_t lost = 99;
  int coalesced = 99;
  (void)state;
  pm__queue_init(&q, 1, 0);
  pm__queue_push(&q, NULL, &lost, &coalesced);
  assert_int_equal(0, lost);
  assert_int_equal(0, coalesced);
  pm__queue_push(&q, event(1, "A", 0), NULL, NULL);
  pm__queue_push(&q, event(2, "A", 0), NULL, NULL); /* overflow with no outputs */
  pm__queue_push(&q, event(3, "T", 1), NULL, NULL);
  check_queue(&q);
  assert_string_equal("M1:1:1 2", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_transient_coalesces_same_type(void **state) {
  pm__queue q;
  int c;
  (void)state;
  pm__queue_init(&q, 0, 0);
  assert_int_equal(0, push(&q, event(1, "Traffic", 1), &c));
  assert_false(c);
  push_durable(&q, 2, 0);
  assert_int_equal(0, push(&q, event(3, "Traffic", 1), &c));
  assert_true(c); /* the old one removed, the new one at the tail: ids stay increasing */
  assert_string_equal("2 T3", layout(&q));
  assert_int_equal(0, push(&q, event(4, "Other", 1), &c));
  assert_false(c); /* another type is not replaced */
  assert_string_equal("2 T3 T4", layout(&q));
  assert_int_equal(0, push(&q, event(5, "Traffic", 1), &c));
  assert_true(c);
  assert_string_equal("2 T4 T5", layout(&q));
  assert_string_equal("Traffic", q.tail->type);
  assert_int_equal(0, push(&q, event(6, "Traffic", 0), &c));
  assert_false(c); /* a durable event of that type replaces nothing */
  assert_string_equal("2 T4 T5 6", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_transient_in_flight_head_not_replaced(void **state) {
  pm__queue q;
  int c;
  (void)state;
  pm__queue_init(&q, 0, 0);
  push(&q, event(1, "Traffic", 1), &c);
  q.head_in_flight = 1;
  push(&q, event(2, "Traffic", 1), &c);
  assert_false(c);
  assert_string_equal("T1 T2", layout(&q));
  push(&q, event(3, "Traffic", 1), &c);
  assert_true(c); /* the waiting one is replaced, the in-flight one stays */
  assert_string_equal("T1 T3", layout(&q));
  assert_int_equal(1, pm__queue_head(&q)->id);
  pm__queue_pop(&q);
  check_queue(&q);
  assert_string_equal("T3", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_transient_never_drops_durable(void **state) {
  pm__queue q;
  int c;
  (void)state;
  pm__queue_init(&q, 2, 0);
  push_durable(&q, 1, 0);
  push_durable(&q, 2, 0);
  assert_int_equal(0, push(&q, event(3, "Traffic", 1), &c));
  assert_false(c);
  assert_string_equal("1 2", layout(&q)); /* the transient itself was dropped */
  pm__queue_pop(&q);
  push(&q, event(4, "Traffic", 1), &c);
  assert_string_equal("2 T4", layout(&q));
  /* a full queue still takes a replacement of the same size */
  assert_int_equal(0, push(&q, event(5, "Traffic", 1), &c));
  assert_true(c);
  assert_string_equal("2 T5", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_transient_bigger_replacement_that_does_not_fit(void **state) {
  pm__queue q;
  pm__event *t;
  int c;
  (void)state;
  pm__queue_init(&q, 0, 3 * SMALL_BYTES);
  push_durable(&q, 1, 0);
  push_durable(&q, 2, 0);
  push(&q, event(3, "T", 1), &c);
  t = pm__event_new(4, "T", json_string("too long to fit"), 1, TIME);
  assert_non_null(t);
  assert_int_equal(0, push(&q, t, &c));
  assert_false(c); /* dropped, and the queue is left as it was */
  assert_string_equal("1 2 T3", layout(&q));
  pm__queue_clear(&q);
}

static void assert_marker(const pm__event *m, int64_t count, int64_t first, int64_t last) {
  assert_non_null(m);
  assert_string_equal(PM__EVENTS_LOST_TYPE, m->type);
  assert_false(m->transient);
  assert_int_equal(count, json_integer_value(json_object_get(m->data, "Count")));
  assert_int_equal(first, json_integer_value(json_object_get(m->data, "FirstId")));
  assert_int_equal(last, json_integer_value(json_object_get(m->data, "LastId")));
  assert_int_equal(last, m->id);
}

static void test_queue_overflow_by_count_marks_loss(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 3, 0);
  push_durable(&q, 1, 0);
  push_durable(&q, 2, 0);
  push_durable(&q, 3, 0);
  push_durable(&q, 4, 1);
  assert_string_equal("M1:1:1 2 3 4", layout(&q));
  assert_marker(pm__queue_head(&q), 1, 1, 1);
  assert_int_equal(3, q.count); /* the marker is not counted */
  assert_int_equal(3 * SMALL_BYTES, q.bytes);
  pm__queue_clear(&q);
}

static void test_queue_overflow_by_bytes_marks_loss(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 0, 3 * SMALL_BYTES);
  push_durable(&q, 10, 0);
  push_durable(&q, 11, 0);
  push_durable(&q, 12, 0);
  push_durable(&q, 13, 1);
  assert_marker(pm__queue_head(&q), 1, 10, 10);
  assert_string_equal("M10:1:10 11 12 13", layout(&q));
  /* an event twice the size makes two go */
  assert_int_equal(2, push(&q, big_event(14, SMALL_BYTES - 2), NULL));
  assert_marker(pm__queue_head(&q), 3, 10, 12);
  assert_string_equal("M12:3:10 13 14", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_repeated_overflow_merges(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 2, 0);
  push_durable(&q, 1, 0);
  push_durable(&q, 2, 0);
  for (int64_t id = 3; id <= 10; id++)
    push_durable(&q, id, 1);
  assert_string_equal("M8:8:1 9 10", layout(&q));
  assert_marker(pm__queue_head(&q), 8, 1, 8);
  assert_int_equal(2, q.count);
  /* delivered, the marker goes like any event */
  pm__queue_pop(&q);
  check_queue(&q);
  push_durable(&q, 11, 1);
  assert_string_equal("M9:1:9 10 11", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_marker_takes_time_of_newest_dropped(void **state) {
  pm__queue q;
  pm__event *ev;
  (void)state;
  pm__queue_init(&q, 1, 0);
  ev = pm__event_new(1, "A", NULL, 0, "2026-01-01T00:00:00.001Z");
  assert_non_null(ev);
  push(&q, ev, NULL);
  ev = pm__event_new(2, "A", NULL, 0, "2026-01-01T00:00:00.002Z");
  assert_non_null(ev);
  push(&q, ev, NULL);
  assert_string_equal("2026-01-01T00:00:00.001Z", pm__queue_head(&q)->time);
  push_durable(&q, 3, 1);
  assert_string_equal("2026-01-01T00:00:00.002Z", pm__queue_head(&q)->time);
  pm__queue_clear(&q);
}

static void test_queue_marker_in_flight_gets_new_marker(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 2, 0);
  push_durable(&q, 1, 0);
  push_durable(&q, 2, 0);
  push_durable(&q, 3, 1);
  assert_string_equal("M1:1:1 2 3", layout(&q));
  q.head_in_flight = 1; /* the marker itself is being delivered */
  push_durable(&q, 4, 1);
  assert_string_equal("M1:1:1 M2:1:2 3 4", layout(&q));
  push_durable(&q, 5, 1);
  assert_string_equal("M1:1:1 M3:2:2 4 5", layout(&q));
  assert_int_equal(1, pm__queue_head(&q)->id); /* the in-flight marker is untouched */
  assert_marker(pm__queue_head(&q), 1, 1, 1);
  assert_marker(pm__queue_head(&q)->next, 2, 2, 3);
  pm__queue_pop(&q);
  check_queue(&q);
  push_durable(&q, 6, 1); /* no longer behind an in-flight marker: merges */
  assert_string_equal("M4:3:2 5 6", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_overflow_keeps_in_flight_head(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 2, 0);
  push_durable(&q, 1, 0);
  push_durable(&q, 2, 0);
  q.head_in_flight = 1;
  push_durable(&q, 3, 1);
  assert_string_equal("1 M2:1:2 3", layout(&q));
  push_durable(&q, 4, 1);
  assert_string_equal("1 M3:2:2 4", layout(&q));
  assert_int_equal(1, pm__queue_head(&q)->id);
  assert_true(q.head_in_flight);
  /* with a limit of one, only the in-flight head fits: each newcomer is lost itself */
  q.max_events = 1;
  pm__queue_pop(&q); /* 1 confirmed; the marker is not counted */
  check_queue(&q);
  q.head_in_flight = 0;
  push_durable(&q, 5, 1); /* drops 4 */
  assert_string_equal("M4:3:2 5", layout(&q));
  pm__queue_pop(&q);
  q.head_in_flight = 1; /* 5 is in flight */
  push_durable(&q, 6, 1);
  assert_string_equal("5 M6:1:6", layout(&q));
  push_durable(&q, 7, 1);
  assert_string_equal("5 M7:2:6", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_event_too_big_is_lost(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 0, 3 * SMALL_BYTES);
  push_durable(&q, 1, 0);
  push_durable(&q, 2, 0);
  /* bigger than max_bytes alone: lost itself, nothing else dropped */
  assert_int_equal(1, push(&q, big_event(3, 3 * SMALL_BYTES), NULL));
  assert_string_equal("1 2 M3:1:3", layout(&q));
  assert_int_equal(2, q.count);
  /* a second one merges into the marker at the tail */
  assert_int_equal(1, push(&q, big_event(4, 5 * SMALL_BYTES), NULL));
  assert_string_equal("1 2 M4:2:3", layout(&q));
  push_durable(&q, 5, 0);
  assert_string_equal("1 2 M4:2:3 5", layout(&q));
  /* now durable events stand between: a new marker, not a merge moving past them */
  assert_int_equal(1, push(&q, big_event(6, 3 * SMALL_BYTES), NULL));
  assert_string_equal("1 2 M4:2:3 5 M6:1:6", layout(&q));
  /* a normal overflow now drops 1 into a new front marker */
  push_durable(&q, 7, 1);
  assert_string_equal("M1:1:1 2 M4:2:3 5 M6:1:6 7", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_event_exactly_max_bytes_fits(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 0, 3 * SMALL_BYTES);
  push_durable(&q, 1, 0);
  /* exactly max_bytes alone: everything else goes, it stays */
  assert_int_equal(1, push(&q, big_event(2, 2 * SMALL_BYTES - 2), NULL));
  assert_string_equal("M1:1:1 2", layout(&q));
  assert_int_equal(3 * SMALL_BYTES, q.bytes);
  /* one byte more does not fit even alone */
  assert_int_equal(1, push(&q, big_event(3, 2 * SMALL_BYTES - 1), NULL));
  assert_string_equal("M1:1:1 2 M3:1:3", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_limit_exact_and_one_past(void **state) {
  pm__queue q;
  (void)state;
  /* count: max_events accepted, one more overflows */
  pm__queue_init(&q, 4, 0);
  for (int64_t id = 1; id <= 4; id++)
    push_durable(&q, id, 0);
  assert_int_equal(4, q.count);
  push_durable(&q, 5, 1);
  assert_int_equal(4, q.count);
  pm__queue_clear(&q);
  /* bytes: exactly max_bytes accepted */
  pm__queue_init(&q, 0, 4 * SMALL_BYTES);
  for (int64_t id = 1; id <= 4; id++)
    push_durable(&q, id, 0);
  assert_int_equal(4 * SMALL_BYTES, q.bytes);
  push_durable(&q, 5, 1);
  pm__queue_clear(&q);
  /* one byte short: the fourth overflows */
  pm__queue_init(&q, 0, 4 * SMALL_BYTES - 1);
  for (int64_t id = 1; id <= 3; id++)
    push_durable(&q, id, 0);
  push_durable(&q, 4, 1);
  assert_string_equal("M1:1:1 2 3 4", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_zero_limits_are_unlimited(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 0, 0);
  for (int64_t id = 1; id <= 1000; id++) {
    size_t lost = 99;
    pm__queue_push(&q, big_event(id, 100), &lost, NULL);
    assert_int_equal(0, lost);
  }
  check_queue(&q);
  assert_int_equal(1000, q.count);
  pm__queue_clear(&q);
}

static void test_queue_overflow_steps_over_transients(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 3, 0);
  push_durable(&q, 1, 0);
  push(&q, event(2, "T", 1), NULL);
  push_durable(&q, 3, 0);
  push_durable(&q, 4, 1); /* transients are not dropped for a durable event */
  assert_string_equal("M1:1:1 T2 3 4", layout(&q));
  /* the marker moves to where 3 stood, past T2, whose id is smaller */
  push_durable(&q, 5, 1);
  assert_string_equal("T2 M3:2:1 4 5", layout(&q));
  push(&q, event(6, "U", 1), NULL); /* full: the transient is dropped, nothing else */
  assert_string_equal("T2 M3:2:1 4 5", layout(&q));
  pm__queue_pop(&q);
  pm__queue_pop(&q);
  push(&q, event(7, "U", 1), NULL);
  push(&q, event(8, "V", 1), NULL);
  assert_string_equal("4 5 T7", layout(&q));
  push_durable(&q, 9, 1);
  assert_string_equal("M4:1:4 5 T7 9", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_only_transients_new_durable_lost(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 2, 0);
  push(&q, event(1, "T", 1), NULL);
  push(&q, event(2, "U", 1), NULL);
  push_durable(&q, 3, 1);
  assert_string_equal("T1 T2 M3:1:3", layout(&q));
  push_durable(&q, 4, 1);
  assert_string_equal("T1 T2 M4:2:3", layout(&q));
  assert_int_equal(2, pm__queue_drop_transient(&q));
  check_queue(&q);
  assert_string_equal("M4:2:3", layout(&q));
  push_durable(&q, 5, 0);
  push_durable(&q, 6, 0);
  push_durable(&q, 7, 1);
  assert_string_equal("M5:3:3 6 7", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_discard_upto(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 0, 0);
  for (int64_t id = 1; id <= 5; id++)
    push_durable(&q, id, 0);
  assert_int_equal(0, pm__queue_discard_upto(&q, 0));
  check_queue(&q);
  assert_int_equal(3, pm__queue_discard_upto(&q, 3));
  check_queue(&q);
  assert_string_equal("4 5", layout(&q));
  assert_int_equal(2, pm__queue_discard_upto(&q, 100));
  check_queue(&q);
  assert_null(pm__queue_head(&q));
  assert_int_equal(0, pm__queue_discard_upto(&q, 100));
  pm__queue_clear(&q);
}

static void test_queue_discard_upto_skips_in_flight_head(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 0, 0);
  for (int64_t id = 1; id <= 5; id++)
    push_durable(&q, id, 0);
  q.head_in_flight = 1;
  assert_int_equal(2, pm__queue_discard_upto(&q, 3));
  check_queue(&q);
  assert_string_equal("1 4 5", layout(&q));
  assert_true(q.head_in_flight);
  assert_int_equal(2, pm__queue_discard_upto(&q, 9));
  check_queue(&q);
  assert_string_equal("1", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_discard_upto_markers(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 2, 0);
  for (int64_t id = 1; id <= 5; id++)
    push_durable(&q, id, id <= 2 ? 0 : 1);
  assert_string_equal("M3:3:1 4 5", layout(&q));
  /* The client had 2: the marker still reports id 3, and only that (a resumed client was told
   * it lost events it had). */
  assert_int_equal(0, pm__queue_discard_upto(&q, 2));
  check_queue(&q);
  assert_string_equal("M3:1:3 4 5", layout(&q));
  assert_int_equal(2, pm__queue_discard_upto(&q, 4));
  check_queue(&q);
  assert_string_equal("5", layout(&q));
  pm__queue_clear(&q);

  /* Ids with a hole: 1 and 3 dropped, the client had 2. */
  pm__queue_init(&q, 1, 0);
  push_durable(&q, 1, 0);
  push_durable(&q, 3, 1);
  push_durable(&q, 6, 1);
  assert_string_equal("M3:2:1 6", layout(&q));
  assert_int_equal(0, pm__queue_discard_upto(&q, 2));
  check_queue(&q);
  assert_string_equal("M3:1:3 6", layout(&q));
  /* A cursor below the marker's range changes nothing. */
  assert_int_equal(0, pm__queue_discard_upto(&q, 1));
  assert_string_equal("M3:1:3 6", layout(&q));
  pm__queue_clear(&q);

  /* A marker behind a waiting transient event is cut all the same. */
  pm__queue_init(&q, 2, 0);
  push_durable(&q, 1, 0);
  push(&q, event(2, "Y", 1), NULL);
  push_durable(&q, 3, 1);
  push_durable(&q, 4, 1);
  assert_string_equal("T2 M3:2:1 4", layout(&q));
  assert_int_equal(0, pm__queue_discard_upto(&q, 1));
  check_queue(&q);
  assert_string_equal("T2 M3:1:3 4", layout(&q));
  pm__queue_clear(&q);
}

static void test_queue_drop_transient(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 0, 0);
  push(&q, event(1, "X", 1), NULL);
  push_durable(&q, 2, 0);
  push(&q, event(3, "Y", 1), NULL);
  push_durable(&q, 4, 0);
  push(&q, event(5, "Z", 1), NULL);
  q.head_in_flight = 1; /* the in-flight transient stays */
  assert_int_equal(2, pm__queue_drop_transient(&q));
  check_queue(&q);
  assert_string_equal("T1 2 4", layout(&q));
  assert_int_equal(0, pm__queue_drop_transient(&q));
  pm__queue_pop(&q);
  check_queue(&q);
  assert_int_equal(0, pm__queue_drop_transient(&q));
  assert_string_equal("2 4", layout(&q));
  pm__queue_clear(&q);
}

/* "EventsLost" published by a caller is an ordinary durable event: counted and droppable. */
static void test_queue_reserved_type_is_not_a_marker(void **state) {
  pm__queue q;
  (void)state;
  pm__queue_init(&q, 1, 0);
  push(&q, event(1, PM__EVENTS_LOST_TYPE, 0), NULL);
  assert_int_equal(1, q.count);
  push_durable(&q, 2, 1);
  assert_string_equal("M1:1:1 2", layout(&q));
  pm__queue_clear(&q);
}

/* An event made from checked Data has its text written by the JSON encoder, in the same one
 * allocation: the same bytes as jansson's compact dump (pm__event_new), the same fields and
 * cost; out of memory at any allocation gives NULL and frees the Data. */
static void test_queue_event_new_checked(void **state) {
  static const char *const datas[] = {
      "{}",
      "{\"a\":1,\"s\":\"x\\\"y\\\\z\\n\\u0001\xc3\xa9\",\"l\":[true,null,false,[]],\"o\":{}}",
      "{\"r\":0.1,\"e\":1e300,\"n\":-9223372036854775808,\"big\":12345678901234567890.0}",
  };
  (void)state;
  for (size_t i = 0; i < sizeof(datas) / sizeof(datas[0]); i++) {
    json_t *in = json_loads(datas[i], 0, NULL);
    pm__event *ev, *ref, *copy;
    int clean = 0, rc;
    assert_non_null(in);
    ref = pm__event_new(7, "Type", json_incref(in), 1, TIME);
    assert_pm(0, pm__event_new_checked(7, "Type", json_incref(in), 1, TIME, NULL, &ev));
    assert_non_null(ref);
    assert_non_null(ev);
    assert_null(ev->data);
    assert_string_equal(ref->text, ev->text);
    assert_int_equal(ref->text_len, ev->text_len);
    assert_int_equal(ref->bytes, ev->bytes);
    assert_string_equal("Type", ev->type);
    assert_string_equal(TIME, ev->time);
    assert_int_equal(7, ev->id);
    assert_int_equal(1, ev->transient);
    copy = pm__event_dup(ev);
    assert_non_null(copy);
    assert_string_equal(ev->text, copy->text);
    pm__event_free(copy);
    pm__event_free(ev);
    pm__event_free(ref);
    for (unsigned long n = 1; !clean && n < 10; n++) {
      pm__alloc_fail_after(n);
      ev = NULL;
      rc = pm__event_new_checked(8, "T", json_incref(in), 0, TIME, NULL, &ev);
      clean = rc == 0;
      pm__alloc_fail_after(0);
      if (!clean)
        assert_pm(PM_ENOMEM, rc);
      pm__event_free(ev);
    }
    assert_true(clean);
    json_decref(in);
  }
}

/* Fails the nth allocation for n = 1, 2, ... over pm__event_new and an overflowing push that
 * needs a new marker; stops once a round runs without a failure. */
static void test_queue_out_of_memory(void **state) {
  int clean = 0;
  (void)state;
  for (unsigned long n = 1; !clean && n < 50; n++) {
    pm__queue q;
    pm__event *ev, *big;
    size_t lost = 99;
    pm__queue_init(&q, 2, 3 * SMALL_BYTES);
    push_durable(&q, 1, 0);
    push_durable(&q, 2, 0);

    pm__alloc_fail_after(n);
    ev = pm__event_new(3, "A", json_pack("{s:s}", "k", "v"), 0, TIME);
    if (ev == NULL) { /* data was taken and freed: valgrind would show a leak otherwise */
      pm__alloc_fail_after(0);
      pm__queue_clear(&q);
      continue;
    }
    pm__queue_push(&q, ev, &lost, NULL);
    assert_int_equal(1, lost);
    big = pm__event_new(4, "A", json_string("far too long for the three small events"), 0, TIME);
    if (big != NULL) {
      pm__queue_push(&q, big, &lost, NULL);
      assert_int_equal(1, lost);
    }
    /* No allocation failed in this round if the countdown still lets one through. */
    {
      void *probe = pm__malloc(1);
      clean = probe != NULL;
      pm__free(probe);
    }
    pm__alloc_fail_after(0);
    check_queue(&q);
    assert_int_equal(2, q.count);
    /* 3 lost without a marker (no memory for one), or 1 in a marker, or 1 and 2 in it */
    if (strcmp(layout(&q), "1 2") != 0 && strcmp(layout(&q), "M1:1:1 2 3") != 0)
      assert_string_equal("M2:2:1 3 4", layout(&q));
    /* the queue keeps working once memory is back */
    push_durable(&q, 5, 1);
    pm__queue_clear(&q);
  }
  pm__alloc_fail_after(0);
  assert_true(clean);
}

/* A marker read back from a store without its three integer fields (a damaged or edited file)
 * is never merged into: the next drop gets a marker of its own, and the damaged one stays as
 * it was. An intact one read back is merged into as usual. */
static void test_queue_restored_damaged_marker_not_merged(void **state) {
  static const char *const damaged[] = {"{\"FirstId\":1,\"LastId\":1}",
                                        "{\"Count\":1,\"FirstId\":\"one\",\"LastId\":1}",
                                        "{\"Count\":1,\"FirstId\":1}"};
  (void)state;
  for (size_t i = 0; i <= sizeof(damaged) / sizeof(damaged[0]); i++) {
    int intact = i == sizeof(damaged) / sizeof(damaged[0]);
    const char *text = intact ? "{\"Count\":1,\"FirstId\":1,\"LastId\":1}" : damaged[i];
    pm__queue q;
    pm__event *m, *p;
    size_t lost = 0;
    pm__queue_init(&q, 2, 0);
    m = pm__event_new(1, PM__EVENTS_LOST_TYPE, json_loads(text, 0, NULL), 0, TIME);
    assert_non_null(m);
    pm__queue_restore(&q, m, 1);
    pm__queue_restore(&q, event(2, "A", 0), 0);
    pm__queue_push(&q, event(3, "A", 0), &lost, NULL);
    pm__queue_push(&q, event(4, "A", 0), &lost, NULL); /* over 2: event 2 is dropped */
    assert_int_equal(1, lost);
    p = pm__queue_head(&q);
    assert_ptr_equal(m, p);
    if (intact) {
      assert_int_equal(2, json_integer_value(json_object_get(m->data, "Count")));
      assert_int_equal(2, json_integer_value(json_object_get(m->data, "LastId")));
      p = p->next;
    } else {
      json_t *was = json_loads(text, 0, NULL);
      assert_true(json_equal(was, m->data));
      json_decref(was);
      p = p->next;
      assert_string_equal(PM__EVENTS_LOST_TYPE, p->type);
      assert_int_equal(1, json_integer_value(json_object_get(p->data, "Count")));
      assert_int_equal(2, json_integer_value(json_object_get(p->data, "FirstId")));
      p = p->next;
    }
    assert_int_equal(3, p->id);
    assert_int_equal(4, p->next->id);
    pm__queue_clear(&q);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queue_event_new_estimates_bytes),
      cmocka_unit_test(test_queue_event_keeps_data_text),
      cmocka_unit_test(test_queue_fifo_order),
      cmocka_unit_test(test_queue_pop_frees_head_and_clears_in_flight),
      cmocka_unit_test(test_queue_clear_frees_everything),
      cmocka_unit_test(test_queue_push_null_and_null_outputs),
      cmocka_unit_test(test_queue_transient_coalesces_same_type),
      cmocka_unit_test(test_queue_transient_in_flight_head_not_replaced),
      cmocka_unit_test(test_queue_transient_never_drops_durable),
      cmocka_unit_test(test_queue_transient_bigger_replacement_that_does_not_fit),
      cmocka_unit_test(test_queue_overflow_by_count_marks_loss),
      cmocka_unit_test(test_queue_overflow_by_bytes_marks_loss),
      cmocka_unit_test(test_queue_repeated_overflow_merges),
      cmocka_unit_test(test_queue_marker_takes_time_of_newest_dropped),
      cmocka_unit_test(test_queue_marker_in_flight_gets_new_marker),
      cmocka_unit_test(test_queue_overflow_keeps_in_flight_head),
      cmocka_unit_test(test_queue_event_too_big_is_lost),
      cmocka_unit_test(test_queue_event_exactly_max_bytes_fits),
      cmocka_unit_test(test_queue_limit_exact_and_one_past),
      cmocka_unit_test(test_queue_zero_limits_are_unlimited),
      cmocka_unit_test(test_queue_overflow_steps_over_transients),
      cmocka_unit_test(test_queue_only_transients_new_durable_lost),
      cmocka_unit_test(test_queue_discard_upto),
      cmocka_unit_test(test_queue_discard_upto_skips_in_flight_head),
      cmocka_unit_test(test_queue_discard_upto_markers),
      cmocka_unit_test(test_queue_drop_transient),
      cmocka_unit_test(test_queue_reserved_type_is_not_a_marker),
      cmocka_unit_test(test_queue_out_of_memory),
      cmocka_unit_test(test_queue_event_new_checked),
      cmocka_unit_test(test_queue_restored_damaged_marker_not_merged),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
