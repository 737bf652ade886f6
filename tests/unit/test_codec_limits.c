/* The core's error paths that the codec and frame tests do not reach: every error code has a
 * name and a text, the public calls refuse missing arguments, and the codecs fail cleanly
 * (PM_ENOMEM, nothing leaked, nothing half-built returned) when jansson runs out of memory
 * while they build or dump a tree. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "internal.h"

/* ---- error codes ------------------------------------------------------------------------ */

/* The codes run from -1 to PM_EMISMATCH without a gap, each with its own name and text. */
static void test_error_codes_named(void **state) {
  (void)state;
  for (int a = -1; a >= PM_EMISMATCH; a--) {
    assert_string_not_equal("UNKNOWN", pm_err_name(a));
    assert_string_not_equal("unknown error", pm_strerror(a));
    for (int b = a - 1; b >= PM_EMISMATCH; b--) {
      assert_string_not_equal(pm_err_name(a), pm_err_name(b));
      assert_string_not_equal(pm_strerror(a), pm_strerror(b));
    }
  }
  assert_string_equal("UNKNOWN", pm_err_name(0));
  assert_string_equal("UNKNOWN", pm_err_name(PM_EMISMATCH - 1));
  assert_string_equal("unknown error", pm_strerror(PM_EMISMATCH - 1));
  assert_string_equal("unknown error", pm_strerror(1));
}

/* ---- argument checks ---------------------------------------------------------------------- */

static void test_public_calls_refuse_missing_arguments(void **state) {
  pm_reader *r = NULL;
  pm_msg *m = NULL;
  uint8_t *payload;
  size_t len;
  int64_t i;
  bool b;
  json_t *obj = json_object();
  (void)state;
  assert_pm(0, pm_reader_new(64, &r));
  assert_pm(PM_EINVAL, (int)pm_reader_feed(NULL, "x", 1));
  assert_pm(PM_EINVAL, (int)pm_reader_feed(r, NULL, 1));
  assert_pm(0, (int)pm_reader_feed(r, NULL, 0));
  assert_pm(PM_EINVAL, pm_reader_next(NULL, &payload, &len));
  assert_pm(PM_EINVAL, pm_reader_next(r, NULL, &len));
  assert_pm(PM_EINVAL, pm_reader_next(r, &payload, NULL));
  assert_int_equal(0, pm_reader_pending(NULL));
  pm_reader_free(r);

  assert_pm(PM_EINVAL, pm_tree_get_int(obj, NULL, &i));
  assert_pm(PM_EINVAL, pm_tree_get_int(obj, "Id", NULL));
  assert_pm(PM_EINVAL, pm_tree_get_bool(obj, NULL, &b));
  assert_pm(PM_EINVAL, pm_tree_get_bool(obj, "On", NULL));
  json_decref(obj);
  assert_null(pm_msg_kind(NULL));
  assert_null(pm_msg_fields(NULL));
  assert_int_equal(0, pm_msg_encoding(NULL));

  assert_pm(0, pm_msg_new("Request", &m));
  assert_pm(PM_EINVAL, pm_msg_encode(m, PM_ENC_JSON, &payload, NULL));
  assert_pm(PM_EINVAL, pm_msg_encode(m, PM_ENC_XML, NULL, &len));
  pm_msg_free(m);
}

/* A string lent as a C string must be the whole value: one holding a NUL is the wrong type
 * for every getter, and so is a value of another JSON type. */
static void test_getters_refuse_embedded_nul(void **state) {
  json_t *obj = json_pack("{s:o, s:o, s:i, s:s}", "S", json_stringn("a\0b", 3), "I",
                          json_stringn("7\0" "8", 3), "B", 1, "T", "true");
  const char *str;
  int64_t i;
  bool b = false;
  (void)state;
  assert_pm(PM_ETYPE, pm_tree_get_string(obj, "S", &str));
  assert_pm(PM_ETYPE, pm_tree_get_string(obj, "B", &str));
  assert_pm(PM_ETYPE, pm_tree_get_int(obj, "I", &i));
  assert_pm(PM_ETYPE, pm_tree_get_int(obj, "T", &i));
  assert_pm(PM_ETYPE, pm_tree_get_bool(obj, "B", &b));
  assert_pm(PM_ETYPE, pm_tree_get_bool(obj, "S", &b));
  assert_pm(0, pm_tree_get_bool(obj, "T", &b));
  assert_true(b);
  json_decref(obj);
}

/* ---- jansson out of memory ------------------------------------------------------------------ */

static unsigned long json_allocs_left; /* 0: no limit */
static int json_limited;

static void *limited_malloc(size_t n) {
  if (json_limited) {
    if (json_allocs_left == 0)
      return NULL;
    json_allocs_left--;
  }
  return malloc(n);
}

/* From the nth jansson allocation on (1-based), every one fails; 0 lifts the limit. */
static void json_fail_after(unsigned long n) {
  json_limited = n != 0;
  json_allocs_left = n ? n - 1 : 0;
}

static int setup_json_alloc(void **state) {
  (void)state;
  json_set_alloc_funcs(limited_malloc, free);
  return 0;
}

static int teardown_json_alloc(void **state) {
  (void)state;
  json_fail_after(0);
  json_set_alloc_funcs(malloc, free);
  return 0;
}

static const char json_text[] =
    "{\"Request\":{\"Command\":\"StartVpn\",\"Id\":7,\"Params\":{\"Location\":\"de\","
    "\"Domains\":[\"a.example\",\"b.example\"],\"On\":true,\"Nothing\":null}}}";
static const char xml_text[] =
    "<Request><Command>StartVpn</Command><Id>7</Id><Params><Location>de</Location>"
    "<Domains><Item>a.example</Item><Item>b.example</Item></Domains><On>true</On>"
    "<Nothing/></Params></Request>";

/* What the JSON parser allocates besides jansson's tree: an unescaped string and a copy of an
 * escaped member name (pm__malloc), and a real (converted by jansson). */
static const char json_escaped_text[] =
    "{\"Request\":{\"Command\":\"Start\\u0056pn\",\"Id\":7,\"Params\":{\"R\":0.5,"
    "\"L\\u006fcation\":\"d\\u00e9\",\"N\":[1,2.5e3]}}}";

/* Decoding text with fail_after (jansson's allocator or the library's) failing from each
 * allocation on: PM_ENOMEM with a reason and no message until there is enough, then the same
 * tree as without a limit. */
static void decode_under_oom(const char *text,
                             int (*decode)(const void *, size_t, pm_msg **, char *),
                             void (*fail_after)(unsigned long)) {
  pm_msg *want = NULL;
  unsigned long n;
  int failed = 0;
  assert_pm(0, decode(text, strlen(text), &want, NULL));
  for (n = 1; n < 1000; n++) {
    char why[PM_REASON_MAX] = "";
    pm_msg *m = NULL;
    int rc;
    fail_after(n);
    rc = decode(text, strlen(text), &m, why);
    fail_after(0);
    if (rc == 0) {
      assert_true(json_equal(pm_msg_fields(want), pm_msg_fields(m)));
      pm_msg_free(m);
      break;
    }
    assert_pm(PM_ENOMEM, rc);
    assert_null(m);
    assert_string_not_equal("", why);
    failed++;
  }
  assert_true(failed > 0);
  assert_true(n < 1000);
  pm_msg_free(want);
}

static void decode_under_json_oom(const char *text,
                                  int (*decode)(const void *, size_t, pm_msg **, char *)) {
  decode_under_oom(text, decode, json_fail_after);
}

static void test_json_decode_out_of_memory(void **state) {
  (void)state;
  decode_under_json_oom(json_text, pm_json_decode);
  decode_under_json_oom(json_escaped_text, pm_json_decode);
}

/* The same with the library's own allocations failing (the parser's scratch, the message). */
static void test_json_decode_library_out_of_memory(void **state) {
  (void)state;
  decode_under_oom(json_escaped_text, pm_json_decode, pm__alloc_fail_after);
}

typedef int (*encode_fn)(const pm_msg *m, pm_encoding enc, uint8_t **out, size_t *len);

/* pm_json_encode in encode_fn's shape: it knows one encoding only. */
static int json_encode_only(const pm_msg *m, pm_encoding enc, uint8_t **out, size_t *len) {
  (void)enc;
  return pm_json_encode(m, out, len);
}

/* Encoding m with fail_after (jansson's allocator or the library's) failing from each
 * allocation on: PM_ENOMEM and no output until there is enough, then the same bytes as
 * without a limit. Returns the allocation from which on failing no longer mattered (1: the
 * first try worked). */
static unsigned long encode_under_oom(const pm_msg *m, pm_encoding enc, encode_fn encode,
                                      void (*fail_after)(unsigned long)) {
  uint8_t *want = NULL;
  size_t want_len = 0;
  unsigned long n;
  assert_pm(0, encode(m, enc, &want, &want_len));
  for (n = 1; n < 1000; n++) {
    uint8_t *got = NULL;
    size_t got_len = 0;
    int rc;
    fail_after(n);
    rc = encode(m, enc, &got, &got_len);
    fail_after(0);
    if (rc == 0) {
      assert_int_equal(want_len, got_len);
      assert_memory_equal(want, got, got_len);
      pm_free(got);
      break;
    }
    assert_pm(PM_ENOMEM, rc);
    assert_null(got);
  }
  assert_true(n < 1000);
  pm_free(want);
  return n;
}

/* The JSON encoder's buffer is the library's: PM_ENOMEM and no output until it can grow. */
static void test_json_encode_library_out_of_memory(void **state) {
  pm_msg *m = NULL;
  unsigned long n;
  (void)state;
  assert_pm(0, pm_json_decode(json_escaped_text, strlen(json_escaped_text), &m, NULL));
  n = encode_under_oom(m, PM_ENC_JSON, json_encode_only, pm__alloc_fail_after);
  assert_true(n > 1 && n < 100);
  pm_msg_free(m);
}

/* Text longer than the XML decoder's 256 bytes on the stack, which it then takes from the
 * library's allocator. */
static const char xml_long_text[] =
    "<Request><Command>StartVpn</Command><Params><Note>"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    "</Note><List><Item>a</Item><Item>b</Item></List></Params></Request>";

static void test_xml_decode_out_of_memory(void **state) {
  (void)state;
  decode_under_json_oom(xml_text, pm_xml_decode);
  decode_under_json_oom(xml_long_text, pm_xml_decode);
}

/* The same with the library's own allocations failing (the long text's buffer, the message). */
static void test_xml_decode_library_out_of_memory(void **state) {
  (void)state;
  decode_under_oom(xml_long_text, pm_xml_decode, pm__alloc_fail_after);
}

/* Encoding needs jansson only to dump the tree: it fails with PM_ENOMEM and no output, or
 * gives the same bytes as without a limit. */
static void test_encode_out_of_memory(void **state) {
  pm_msg *m = NULL;
  (void)state;
  assert_pm(0, pm_json_decode(json_text, strlen(json_text), &m, NULL));
  for (int enc = PM_ENC_JSON; enc <= PM_ENC_XML; enc++)
    encode_under_oom(m, (pm_encoding)enc, pm_msg_encode, json_fail_after);
  pm_msg_free(m);
}

/* The setters tell a failed allocation (PM_ENOMEM) from a value jansson refuses
 * (PM_EINVAL), and a value handed over is released either way. */
static void test_setters_out_of_memory(void **state) {
  pm_msg *m = NULL;
  json_t *v;
  (void)state;
  assert_pm(0, pm_msg_new("Request", &m));
  assert_pm(PM_EINVAL, pm_msg_set_string(m, "Bad", "\xff"));
  json_fail_after(1);
  assert_pm(PM_ENOMEM, pm_msg_set_string(m, "Location", "de"));
  assert_pm(PM_ENOMEM, pm_msg_set_int(m, "Id", 1234567));
  json_fail_after(0);
  v = json_string("kept");
  assert_non_null(v);
  json_fail_after(1);
  assert_pm(PM_ENOMEM, pm_msg_set_tree(m, "Location", v));
  json_fail_after(0);
  assert_int_equal(0, json_object_size(pm_msg_fields(m)));
  assert_pm(0, pm_msg_set_string(m, "Location", "de"));
  pm_msg_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_codes_named),
      cmocka_unit_test(test_public_calls_refuse_missing_arguments),
      cmocka_unit_test(test_getters_refuse_embedded_nul),
      cmocka_unit_test_setup_teardown(test_json_decode_out_of_memory, setup_json_alloc,
                                      teardown_json_alloc),
      cmocka_unit_test_setup_teardown(test_xml_decode_out_of_memory, setup_json_alloc,
                                      teardown_json_alloc),
      cmocka_unit_test_setup_teardown(test_encode_out_of_memory, setup_json_alloc,
                                      teardown_json_alloc),
      cmocka_unit_test_setup_teardown(test_setters_out_of_memory, setup_json_alloc,
                                      teardown_json_alloc),
      cmocka_unit_test(test_json_decode_library_out_of_memory),
      cmocka_unit_test(test_xml_decode_library_out_of_memory),
      cmocka_unit_test(test_json_encode_library_out_of_memory),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
