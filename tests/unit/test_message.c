#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "testutil.h"
#include "core/message_internal.h"
#include "pipemsg/codec.h"

/* A fields object from JSON text, for the accessor tests. */
static json_t *tree(const char *text) {
  json_error_t err;
  json_t *t = json_loads(text, 0, &err);
  assert_non_null(t);
  return t;
}

static void test_message_new(void **state) {
  pm_msg *m = NULL;
  (void)state;
  assert_pm(0, pm_msg_new("Request", &m));
  assert_string_equal("Request", pm_msg_kind(m));
  assert_true(json_is_object(pm_msg_fields(m)));
  assert_int_equal(0, json_object_size(pm_msg_fields(m)));
  assert_int_equal(0, pm_msg_encoding(m));
  pm_msg_free(m);
  pm_msg_free(NULL);
  m = NULL;
  assert_pm(PM_EINVAL, pm_msg_new("1Request", &m));
  assert_pm(PM_EINVAL, pm_msg_new("", &m));
  assert_pm(PM_EINVAL, pm_msg_new(NULL, &m));
  assert_pm(PM_EINVAL, pm_msg_new("Request", NULL));
  assert_null(m);
  assert_null(pm_msg_kind(NULL));
  assert_null(pm_msg_fields(NULL));
}

static void test_message_name_valid(void **state) {
  static const char *const good[] = {"A", "_", "a1", "Item", "x.y-z_0", "EventConfirmation"};
  static const char *const bad[] = {"", "1a", "-a", ".a", "a b", "a:b", "a/b", "\xc3\xa4", "a\n"};
  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_true(pm_name_valid(good[i]));
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_false(pm_name_valid(bad[i]));
  assert_false(pm_name_valid(NULL));
}

static void test_message_get_string(void **state) {
  json_t *t = tree("{\"S\":\"text\",\"E\":{},\"N\":null,\"I\":42,\"B\":true,\"R\":1.5,"
                   "\"A\":[],\"O\":{\"x\":1},\"Empty\":\"\"}");
  const char *s = "unchanged";
  (void)state;
  assert_pm(0, pm_tree_get_string(t, "S", &s));
  assert_string_equal("text", s);
  assert_pm(0, pm_tree_get_string(t, "E", &s));
  assert_string_equal("", s);
  assert_pm(0, pm_tree_get_string(t, "N", &s));
  assert_string_equal("", s);
  assert_pm(0, pm_tree_get_string(t, "Empty", &s));
  assert_string_equal("", s);
  s = "unchanged";
  assert_pm(PM_ETYPE, pm_tree_get_string(t, "I", &s));
  assert_pm(PM_ETYPE, pm_tree_get_string(t, "B", &s));
  assert_pm(PM_ETYPE, pm_tree_get_string(t, "R", &s));
  assert_pm(PM_ETYPE, pm_tree_get_string(t, "A", &s));
  assert_pm(PM_ETYPE, pm_tree_get_string(t, "O", &s));
  assert_pm(PM_ENOENT, pm_tree_get_string(t, "Missing", &s));
  assert_pm(PM_EINVAL, pm_tree_get_string(t, "S", NULL));
  assert_string_equal("unchanged", s);
  /* A C string cannot lend a value with a NUL inside. */
  json_object_set_new(t, "Nul", json_stringn("a\0b", 3));
  assert_pm(PM_ETYPE, pm_tree_get_string(t, "Nul", &s));
  json_decref(t);
}

static void test_message_get_int(void **state) {
  static const struct {
    const char *text;
    int64_t value;
  } good[] = {{"42", 42},
              {"-7", -7},
              {"+7", 7},
              {"0", 0},
              {"007", 7},
              {"9223372036854775807", INT64_MAX},
              {"-9223372036854775808", INT64_MIN}};
  static const char *const bad[] = {"42x",
                                    "",
                                    " 1",
                                    "1 ",
                                    "-",
                                    "+",
                                    "0x10",
                                    "1.0",
                                    "1e3",
                                    "--1",
                                    "9223372036854775808",
                                    "-9223372036854775809",
                                    "99999999999999999999"};
  json_t *t = tree("{\"I\":42,\"Neg\":-9223372036854775808,\"R\":7.0,\"B\":true,\"E\":{}}");
  int64_t v = 0;
  (void)state;
  assert_pm(0, pm_tree_get_int(t, "I", &v));
  assert_int_equal(42, v);
  assert_pm(0, pm_tree_get_int(t, "Neg", &v));
  assert_true(v == INT64_MIN);
  v = 5;
  assert_pm(PM_ETYPE, pm_tree_get_int(t, "R", &v));
  assert_pm(PM_ETYPE, pm_tree_get_int(t, "B", &v));
  assert_pm(PM_ETYPE, pm_tree_get_int(t, "E", &v));
  assert_pm(PM_ENOENT, pm_tree_get_int(t, "Missing", &v));
  assert_int_equal(5, v);
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    json_object_set_new(t, "S", json_string(good[i].text));
    assert_pm(0, pm_tree_get_int(t, "S", &v));
    assert_true(v == good[i].value);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_object_set_new(t, "S", json_string(bad[i]));
    v = 5;
    assert_pm(PM_ETYPE, pm_tree_get_int(t, "S", &v));
    assert_int_equal(5, v);
  }
  json_decref(t);
}

static void test_message_get_bool(void **state) {
  json_t *t = tree("{\"T\":true,\"F\":false,\"ST\":\"true\",\"SF\":\"false\",\"One\":\"1\","
                   "\"Cap\":\"True\",\"I\":1,\"Sp\":\"true \",\"E\":{}}");
  bool b = false;
  (void)state;
  assert_pm(0, pm_tree_get_bool(t, "T", &b));
  assert_true(b);
  assert_pm(0, pm_tree_get_bool(t, "F", &b));
  assert_false(b);
  assert_pm(0, pm_tree_get_bool(t, "ST", &b));
  assert_true(b);
  assert_pm(0, pm_tree_get_bool(t, "SF", &b));
  assert_false(b);
  assert_pm(PM_ETYPE, pm_tree_get_bool(t, "One", &b));
  assert_pm(PM_ETYPE, pm_tree_get_bool(t, "Cap", &b));
  assert_pm(PM_ETYPE, pm_tree_get_bool(t, "I", &b));
  assert_pm(PM_ETYPE, pm_tree_get_bool(t, "Sp", &b));
  assert_pm(PM_ETYPE, pm_tree_get_bool(t, "E", &b));
  assert_pm(PM_ENOENT, pm_tree_get_bool(t, "Missing", &b));
  assert_false(b);
  json_decref(t);
}

static void test_message_set_and_get(void **state) {
  pm_msg *m;
  const char *s;
  int64_t i;
  bool b;
  (void)state;
  assert_pm(0, pm_msg_new("Event", &m));
  assert_pm(0, pm_msg_set_string(m, "Type", "StateChanged"));
  assert_pm(0, pm_msg_set_int(m, "Id", INT64_MAX));
  assert_pm(0, pm_msg_set_bool(m, "Flag", true));
  assert_pm(0, pm_msg_set_tree(m, "Data", json_pack("{s:s}", "State", "Connected")));
  assert_pm(0, pm_msg_get_string(m, "Type", &s));
  assert_string_equal("StateChanged", s);
  assert_pm(0, pm_msg_get_int(m, "Id", &i));
  assert_true(i == INT64_MAX);
  assert_pm(0, pm_msg_get_bool(m, "Flag", &b));
  assert_true(b);
  assert_pm(0, pm_tree_get_string(json_object_get(pm_msg_fields(m), "Data"), "State", &s));
  assert_string_equal("Connected", s);
  /* Setting again replaces. */
  assert_pm(0, pm_msg_set_int(m, "Id", 3));
  assert_pm(0, pm_msg_get_int(m, "Id", &i));
  assert_int_equal(3, i);
  assert_int_equal(4, json_object_size(pm_msg_fields(m)));

  assert_pm(PM_EINVAL, pm_msg_set_string(m, "bad name", "x"));
  assert_pm(PM_EINVAL, pm_msg_set_string(m, "S", NULL));
  assert_pm(PM_EINVAL, pm_msg_set_string(m, "S", "\xff\xfe"));
  assert_pm(PM_EINVAL, pm_msg_set_int(m, "", 1));
  assert_pm(PM_EINVAL, pm_msg_set_bool(m, NULL, true));
  /* set_tree takes the value also on failure; valgrind sees the leak otherwise. */
  assert_pm(PM_EINVAL, pm_msg_set_tree(m, "9", json_object()));
  assert_pm(PM_EINVAL, pm_msg_set_tree(NULL, "Data", json_object()));
  assert_pm(PM_EINVAL, pm_msg_set_tree(m, "Data", NULL));
  assert_int_equal(4, json_object_size(pm_msg_fields(m)));

  assert_pm(PM_EINVAL, pm_msg_get_string(NULL, "Type", &s));
  assert_pm(PM_EINVAL, pm_msg_get_int(NULL, "Id", &i));
  assert_pm(PM_EINVAL, pm_msg_get_bool(NULL, "Flag", &b));
  pm_msg_free(m);
}

/* Builds, fills and encodes a message in one encoding; any step may fail for lack of memory. */
static int build_and_encode(pm_encoding enc) {
  pm_msg *m = NULL;
  uint8_t *out = NULL;
  size_t len;
  int rc = pm_msg_new("Request", &m);
  if (rc == 0)
    rc = pm_msg_set_string(m, "Command", "StartVpn");
  if (rc == 0)
    rc = pm_msg_set_int(m, "Id", 7);
  if (rc == 0)
    rc = pm_msg_set_bool(m, "Flag", false);
  if (rc == 0)
    rc = pm_msg_set_tree(
        m, "Params",
        json_pack("{s:[s,s],s:s}", "Domains", "a.example", "b.example", "Location", "de"));
  if (rc == 0)
    rc = pm_msg_encode(m, enc, &out, &len);
  pm_free(out);
  pm_msg_free(m);
  return rc;
}

static void test_message_oom(void **state) {
  static const pm_encoding encs[] = {PM_ENC_JSON, PM_ENC_XML};
  (void)state;
  for (size_t e = 0; e < 2; e++) {
    unsigned long n;
    int rc = PM_ENOMEM;
    for (n = 1; n < 1000 && rc != 0; n++) {
      pm__alloc_fail_after(n);
      rc = build_and_encode(encs[e]);
      pm__alloc_fail_after(0);
      if (rc != 0)
        assert_pm(PM_ENOMEM, rc);
    }
    assert_pm(0, rc);
    /* At least the message, its kind and the output buffer failed on the way. */
    assert_true(n > 3);
  }
}

/* Arguments the caller got wrong are refused, and what was handed over is released (ASan and
 * valgrind see a leak otherwise). */
static void test_message_bad_arguments(void **state) {
  pm_msg *m = NULL;
  json_t *t = json_pack("{s:s, s:i, s:b}", "S", "x", "I", 1, "B", 1);
  const char *s;
  int64_t v;
  bool b;
  (void)state;
  assert_pm(PM_EINVAL, pm__msg_wrap("Request", 7, json_array(), PM_ENC_JSON, &m));
  assert_pm(PM_EINVAL, pm__msg_wrap(NULL, 0, json_object(), PM_ENC_JSON, &m));
  assert_pm(PM_EINVAL, pm__msg_wrap("Request", 7, json_object(), PM_ENC_JSON, NULL));
  assert_null(m);
  assert_pm(PM_EINVAL, pm_tree_get_string(t, NULL, &s));
  assert_pm(PM_EINVAL, pm_tree_get_int(t, NULL, &v));
  assert_pm(PM_EINVAL, pm_tree_get_int(t, "I", NULL));
  assert_pm(PM_EINVAL, pm_tree_get_bool(t, NULL, &b));
  assert_pm(PM_EINVAL, pm_tree_get_bool(t, "B", NULL));
  json_decref(t);
}

/* A request for no bytes is never mistaken for running out of memory: it gets a block. */
static void test_message_zero_sized_allocations(void **state) {
  void *p;
  (void)state;
  p = pm__malloc(0);
  assert_non_null(p);
  pm__free(p);
  p = pm__calloc(0, 8);
  assert_non_null(p);
  pm__free(p);
  p = pm__calloc(8, 0);
  assert_non_null(p);
  pm__free(p);
  p = pm__realloc(NULL, 0);
  assert_non_null(p);
  pm__free(p);
}

/* Only the whole byte order mark EF BB BF is skipped; a part of one is not a message. */
static void test_message_partial_byte_order_mark(void **state) {
  pm_encoding enc;
  pm_msg *m = NULL;
  char why[PM_REASON_MAX];
  (void)state;
  assert_pm(0, pm_detect_encoding("\xef\xbb\xbf{\"Ok\":{}}", 12, &enc));
  assert_int_equal(PM_ENC_JSON, enc);
  assert_pm(PM_EENCODING, pm_detect_encoding("\xef\xbb{\"Ok\":{}}", 11, &enc));
  assert_pm(PM_EENCODING, pm_detect_encoding("\xef{\"Ok\":{}}", 10, &enc));
  assert_pm(PM_EINVAL, pm_detect_encoding(NULL, 1, &enc));
  assert_pm(PM_EINVAL, pm_detect_encoding("{}", 2, NULL));
  assert_pm(0, pm_json_decode("\xef\xbb\xbf{\"Ok\":{}}", 12, &m, why));
  assert_string_equal("Ok", pm_msg_kind(m));
  pm_msg_free(m);
  m = NULL;
  assert_true(pm_json_decode("\xef\xbb{\"Ok\":{}}", 11, &m, why) < 0);
  assert_true(pm_json_decode("\xef\xbb\xbe{\"Ok\":{}}", 12, &m, why) < 0);
  assert_true(pm_json_decode("\xef{\"Ok\":{}}", 10, &m, why) < 0);
  assert_pm(PM_EINVAL, pm_json_decode(NULL, 1, &m, why));
  assert_pm(PM_EINVAL, pm_json_decode("{}", 2, NULL, why));
  assert_null(m);
}

/* Encoding under allocation failure: PM_ENOMEM and no buffer, in either encoding, wherever the
 * output buffer has to grow (XML: a kind longer than its first 256 bytes, then the fields;
 * JSON: text whose escapes make it longer than the size it first allocates). */
static void test_message_encode_out_of_memory(void **state) {
  char kind[301], text[2001];
  pm_msg *m = NULL;
  (void)state;
  memset(kind, 'K', sizeof(kind) - 1);
  kind[sizeof(kind) - 1] = '\0';
  for (size_t i = 0; i < sizeof(text) - 1; i++)
    text[i] = i % 2 ? '\\' : 't';
  text[sizeof(text) - 1] = '\0';
  assert_pm(0, pm_msg_new(kind, &m));
  assert_pm(0, pm_msg_set_string(m, "Text", text));
  for (int enc = PM_ENC_JSON; enc <= PM_ENC_XML; enc++) {
    unsigned long n;
    int rc = PM_ENOMEM;
    for (n = 1; n < 100 && rc != 0; n++) {
      uint8_t *buf = NULL;
      size_t len = 0;
      pm__alloc_fail_after(n);
      rc = pm_msg_encode(m, (pm_encoding)enc, &buf, &len);
      pm__alloc_fail_after(0);
      if (rc != 0) {
        assert_pm(PM_ENOMEM, rc);
        assert_null(buf);
      }
      pm_free(buf);
    }
    assert_pm(0, rc);
    assert_true(n > 3); /* the buffer grew at least twice before it held everything */
  }
  pm_msg_free(m);
}

/* RFC 3339 UTC of tv with milliseconds, formatted in full. */
static void stamp_of(const uv_timeval64_t *tv, char out[PM_TIME_MAX]) {
  time_t secs = (time_t)tv->tv_sec;
  struct tm tm;
  gmtime_r(&secs, &tm);
  size_t n = strftime(out, PM_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, PM_TIME_MAX - n, ".%03uZ", (unsigned)(tv->tv_usec / 1000) % 1000u);
}

/* pm_time_now formats the second once and the milliseconds per call: each stamp lies between
 * the clock read before and after it, across a change of second too (so the kept second is
 * not stale). Runs until two seconds were seen, at most about two seconds of busy calls. */
static void test_message_time_now(void **state) {
  char before[PM_TIME_MAX], got[PM_TIME_MAX], after[PM_TIME_MAX];
  int64_t first_sec = -1;
  int seconds = 0;
  uint64_t deadline = uv_hrtime() + 3000000000u;
  (void)state;
  while (seconds < 2 && uv_hrtime() < deadline) {
    uv_timeval64_t t0, t1;
    uv_gettimeofday(&t0);
    pm_time_now(got);
    uv_gettimeofday(&t1);
    stamp_of(&t0, before);
    stamp_of(&t1, after);
    assert_int_equal(24, strlen(got));
    /* The same width throughout, so the strings compare as the times do. */
    if (strcmp(before, got) > 0 || strcmp(got, after) > 0)
      print_error("%s not within %s .. %s\n", got, before, after);
    assert_true(strcmp(before, got) <= 0 && strcmp(got, after) <= 0);
    if (t0.tv_sec != first_sec) {
      first_sec = t0.tv_sec;
      seconds++;
    }
  }
  assert_int_equal(2, seconds);
}

static void *app_malloc(size_t n) { return malloc(n); }

/* Decodes a request whose Blob is size bytes; asserts whether jansson's copy of it lies in
 * memory advised for huge pages, where the system can tell. */
static void decode_blob_advised(const char *text, size_t len, size_t size, int expect) {
  const char *blob;
  pm_msg *msg;
  assert_pm(0, pm_json_decode(text, len, &msg, NULL));
  assert_pm(0, pm_tree_get_string(json_object_get(pm_msg_fields(msg), "Params"), "Blob", &blob));
  assert_int_equal(size, strlen(blob));
  pm_test_expect_huge_advised(blob, size, expect);
  pm_msg_free(msg);
}

/* pm_huge_pages: while it is on, a decoded long string (jansson's copy of it) lies in memory
 * advised for huge pages; off (the default, and again after) it does not, and jansson has its
 * default allocator back; an allocator the application gave jansson stays either way; asking
 * twice is no error. */
static void test_message_huge_pages(void **state) {
  const size_t size = (size_t)6 << 20;
  json_malloc_t m;
  json_free_t f;
  size_t len;
  char *text = pm_test_repeat("{\"Request\":{\"Command\":\"Put\",\"Params\":{\"Blob\":\"", "c",
                              size, "\"}}}", &len);
  (void)state;
  pm_test_heap_as_service();
  decode_blob_advised(text, len, size, 0);
  json_set_alloc_funcs(app_malloc, free);
  assert_pm(PM_EBUSY, pm_huge_pages(1));
  assert_pm(PM_EBUSY, pm_huge_pages(0));
  json_get_alloc_funcs(&m, &f);
  assert_true(m == app_malloc);
  json_set_alloc_funcs(malloc, free);
  assert_pm(0, pm_huge_pages(1));
  assert_pm(0, pm_huge_pages(1));
  json_get_alloc_funcs(&m, &f);
#if defined(__linux__)
  assert_true(m != malloc);
#endif
  assert_true(f == free);
  decode_blob_advised(text, len, size, 1);
  assert_pm(0, pm_huge_pages(0));
  json_get_alloc_funcs(&m, &f);
  assert_true(m == malloc && f == free);
  decode_blob_advised(text, len, size, 0);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_message_new),        cmocka_unit_test(test_message_name_valid),
      cmocka_unit_test(test_message_get_string), cmocka_unit_test(test_message_get_int),
      cmocka_unit_test(test_message_get_bool),   cmocka_unit_test(test_message_set_and_get),
      cmocka_unit_test(test_message_oom),
      cmocka_unit_test(test_message_bad_arguments),
      cmocka_unit_test(test_message_zero_sized_allocations),
      cmocka_unit_test(test_message_partial_byte_order_mark),
      cmocka_unit_test(test_message_encode_out_of_memory),
      cmocka_unit_test(test_message_time_now),
      cmocka_unit_test(test_message_huge_pages),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
