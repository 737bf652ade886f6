#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

static int decode(const char *text, pm_msg **out, char *why) {
  return pm_json_decode(text, strlen(text), out, why);
}

/* Decodes text and expects the code; a success is freed. */
static void expect(int code, const char *text) {
  char why[PM_REASON_MAX] = "";
  pm_msg *m = NULL;
  int rc = pm_json_decode(text, strlen(text), &m, why);
  if (rc != code)
    print_error("input %s: %s\n", text, why);
  assert_pm(code, rc);
  if (code < 0) {
    assert_null(m);
    assert_true(why[0] != '\0');
  }
  pm_msg_free(m);
}

/* {"Request":{"A":{"A":...1}}} whose deepest member is at depth `depth`. */
static char *nested(int depth, const char *leaf) {
  size_t size = (size_t)depth * 8 + 64;
  char *s = malloc(size);
  size_t n = 0;
  assert_non_null(s);
  n += (size_t)snprintf(s + n, size - n, "{\"Request\":");
  for (int i = 1; i < depth; i++)
    n += (size_t)snprintf(s + n, size - n, "{\"A\":");
  n += (size_t)snprintf(s + n, size - n, "%s", leaf);
  for (int i = 1; i < depth; i++)
    n += (size_t)snprintf(s + n, size - n, "}");
  snprintf(s + n, size - n, "}");
  return s;
}

static void test_codec_json_detect_encoding(void **state) {
  pm_encoding enc = 0;
  (void)state;
  assert_pm(0, pm_detect_encoding("{}", 2, &enc));
  assert_int_equal(PM_ENC_JSON, enc);
  assert_pm(0, pm_detect_encoding("<a/>", 4, &enc));
  assert_int_equal(PM_ENC_XML, enc);
  assert_pm(0, pm_detect_encoding(" \t\r\n{", 5, &enc));
  assert_int_equal(PM_ENC_JSON, enc);
  assert_pm(0, pm_detect_encoding("\xef\xbb\xbf<a/>", 7, &enc));
  assert_int_equal(PM_ENC_XML, enc);
  assert_pm(0, pm_detect_encoding("\xef\xbb\xbf \n{", 6, &enc));
  assert_int_equal(PM_ENC_JSON, enc);
  enc = 0;
  assert_pm(PM_EENCODING, pm_detect_encoding("[1]", 3, &enc));
  assert_pm(PM_EENCODING, pm_detect_encoding("hello", 5, &enc));
  assert_pm(PM_EENCODING, pm_detect_encoding("", 0, &enc));
  assert_pm(PM_EENCODING, pm_detect_encoding("   ", 3, &enc));
  assert_pm(PM_EENCODING, pm_detect_encoding("\xef\xbb\xbf", 3, &enc));
  /* A BOM counts once; a second one is not white space. */
  assert_pm(PM_EENCODING, pm_detect_encoding("\xef\xbb\xbf\xef\xbb\xbf{", 7, &enc));
  /* UTF-16 is not allowed (§2 says UTF-8), nor non-ASCII white space. */
  assert_pm(PM_EENCODING, pm_detect_encoding("\xff\xfe<\0", 4, &enc));
  assert_pm(PM_EENCODING, pm_detect_encoding("\xc2\xa0{", 3, &enc));
  assert_pm(PM_EENCODING, pm_detect_encoding("\f{", 2, &enc));
  assert_int_equal(0, enc);
  assert_pm(PM_EINVAL, pm_detect_encoding(NULL, 1, &enc));
  assert_pm(PM_EINVAL, pm_detect_encoding("{", 1, NULL));
}

static void test_codec_json_examples(void **state) {
  static const char *const examples[] = {
      "{\"Request\":{\"Id\":7,\"Command\":\"StartVpn\",\"Params\":{\"Location\":\"de\","
      "\"EnableKillSwitch\":true}}}",
      "{\"Response\":{\"Id\":7,\"Command\":\"StartVpn\",\"Result\":\"Ok\"}}",
      "{\"Event\":{\"Id\":42,\"Type\":\"StateChanged\",\"Time\":\"2026-11-25T16:00:00.123Z\","
      "\"Data\":{\"State\":\"Connected\"}}}",
      "{\"EventConfirmation\":{\"Id\":42}}",
  };
  static const char *const kinds[] = {"Request", "Response", "Event", "EventConfirmation"};
  pm_msg *m;
  const char *s;
  int64_t id;
  bool b;
  (void)state;
  for (size_t i = 0; i < 4; i++) {
    char why[PM_REASON_MAX] = "";
    assert_pm(0, pm_msg_decode(examples[i], strlen(examples[i]), &m, why));
    assert_string_equal(kinds[i], pm_msg_kind(m));
    assert_int_equal(PM_ENC_JSON, pm_msg_encoding(m));
    assert_pm(0, pm_msg_get_int(m, "Id", &id));
    assert_int_equal(i < 2 ? 7 : 42, id);
    if (i == 0) {
      json_t *params = json_object_get(pm_msg_fields(m), "Params");
      assert_pm(0, pm_tree_get_bool(params, "EnableKillSwitch", &b));
      assert_true(b);
      assert_pm(0, pm_tree_get_string(params, "Location", &s));
      assert_string_equal("de", s);
    }
    if (i == 2) {
      assert_pm(0, pm_msg_get_string(m, "Time", &s));
      assert_string_equal("2026-11-25T16:00:00.123Z", s);
    }
    pm_msg_free(m);
  }
}

static void test_codec_json_strict(void **state) {
  static const char *const parse_errors[] = {
      "{\"Request\":{\"Command\":\"\xff\"}}",         /* invalid UTF-8 */
      "{\"Request\":{\"Command\":\"\xc3\x28\"}}",     /* invalid UTF-8 */
      "{\"Request\":{\"Command\":\"\xed\xa0\x80\"}}", /* encoded surrogate */
      "{\"Request\":{\"Command\":\"\\ud800\"}}",      /* lone surrogate escape */
      "{\"Request\":{\"Id\":1,\"Id\":2}}",            /* duplicate keys */
      "{\"Request\":{\"P\":{\"a\":1,\"a\":1}}}",      /* duplicate keys, nested */
      "{\"Request\":{\"X\":NaN}}",                    /* NaN */
      "{\"Request\":{\"X\":Infinity}}",               /* Infinity */
      "{\"Request\":{\"X\":-Infinity}}",              /* -Infinity */
      "{\"Request\":{}} {}",                          /* trailing data */
      "{\"Request\":{}}x",                            /* trailing data */
      "{\"Request\":{},\"Response\":{}}",             /* two top-level members */
      "{}",                                           /* no member */
      "[{\"Request\":{}}]",                           /* not an object */
      "{\"Request\":1}",                              /* fields not an object */
      "{\"Request\":[]}",                             /* fields not an object */
      "{\"Request\":\"x\"}",                          /* fields not an object */
      "{\"Request\":null}",                           /* fields not an object */
      "{\"1Request\":{}}",                            /* bad kind */
      "{\"\":{}}",                                    /* bad kind */
      "{\"Request\":{\"bad name\":1}}",               /* bad member name */
      "{\"Request\":{\"P\":{\"a:b\":1}}}",            /* bad member name, nested */
      "{\"Request\":{\"P\":[{\"\xc3\xa4\":1}]}}",     /* bad member name in an array */
      "{\"Request\":{\"Id\":9223372036854775808}}",   /* integer overflow */
      "{\"Request\":{\"Id\":-9223372036854775809}}",  /* integer overflow */
      "{\"Request\":{\"X\":1e999}}",                  /* real overflow */
      "{\"Request\":{\"Command\":\"a\\u0000b\"}}",    /* NUL */
      "{\"Request\":{\"Command\":\"a\tb\"}}",         /* raw control character */
      "{\"Request\":{\"Id\":01}}",                    /* leading zero */
      "{\"Request\":{\"X\":[1,]}}",                   /* trailing comma */
      "{'Request':{}}",                               /* single quotes */
      "{\"Request\":{}",                              /* truncated */
  };
  (void)state;
  for (size_t i = 0; i < sizeof(parse_errors) / sizeof(parse_errors[0]); i++)
    expect(PM_EPARSE, parse_errors[i]);
  expect(0, "{\"Request\":{\"Id\":9223372036854775807,\"Neg\":-9223372036854775808}}");
  expect(0, " \r\n\t{\"Request\":{}}\n ");
  expect(0, "\xef\xbb\xbf{\"Request\":{}}");
  /* null is accepted anywhere below the fields (see codec_json.c). */
  expect(0, "{\"Request\":{\"X\":null,\"Y\":[null]}}");
}

static void test_codec_json_reason(void **state) {
  char why[PM_REASON_MAX] = "";
  pm_msg *m = NULL;
  (void)state;
  assert_pm(PM_EPARSE, decode("{\"Request\":\n{\"Id\":1,\"Id\":2}}", &m, why));
  assert_non_null(strstr(why, "duplicate"));
  assert_non_null(strstr(why, "line 2"));
  assert_pm(PM_EPARSE, decode("{\"Request\":{\"a b\":1}}", &m, why));
  assert_non_null(strstr(why, "a b"));
  /* why is optional. */
  assert_pm(PM_EPARSE, decode("{", &m, NULL));
  assert_pm(PM_EINVAL, pm_json_decode(NULL, 1, &m, why));
  assert_pm(PM_EINVAL, pm_json_decode("{}", 2, NULL, why));
  assert_null(m);
}

static void test_codec_json_depth(void **state) {
  char *s;
  (void)state;
  s = nested(PM_NESTING_MAX, "1");
  expect(0, s);
  free(s);
  s = nested(PM_NESTING_MAX + 1, "1");
  expect(PM_EDEPTH, s);
  free(s);
  /* Arrays count like objects. */
  s = nested(PM_NESTING_MAX - 1, "[1]");
  expect(0, s);
  free(s);
  s = nested(PM_NESTING_MAX, "[1]");
  expect(PM_EDEPTH, s);
  free(s);
  /* An empty container at the bottom encodes to <A/>, one element, not two. */
  s = nested(PM_NESTING_MAX, "{}");
  expect(0, s);
  free(s);
  s = nested(PM_NESTING_MAX + 1, "{}");
  expect(PM_EDEPTH, s);
  free(s);
  /* Past jansson's own limit the answer is the same. */
  s = nested(5000, "1");
  expect(PM_EDEPTH, s);
  free(s);
}

static void test_codec_json_encode(void **state) {
  pm_msg *m;
  uint8_t *out;
  size_t len;
  (void)state;
  assert_pm(0, pm_msg_new("Request", &m));
  assert_pm(0, pm_msg_set_int(m, "Id", 7));
  assert_pm(0, pm_msg_set_string(m, "Command", "Start \"Vpn\"\n"));
  assert_pm(0,
            pm_msg_set_tree(m, "Params",
                            json_pack("{s:b,s:f,s:[],s:{},s:n}", "B", 1, "R", 0.5, "A", "O", "N")));
  assert_pm(0, pm_msg_encode(m, PM_ENC_JSON, &out, &len));
  assert_int_equal(strlen("{\"Request\":{\"Id\":7,\"Command\":\"Start \\\"Vpn\\\"\\n\","
                          "\"Params\":{\"B\":true,\"R\":0.5,\"A\":[],\"O\":{},\"N\":null}}}"),
                   len);
  assert_memory_equal("{\"Request\":{\"Id\":7,\"Command\":\"Start \\\"Vpn\\\"\\n\","
                      "\"Params\":{\"B\":true,\"R\":0.5,\"A\":[],\"O\":{},\"N\":null}}}",
                      out, len);
  pm_free(out);
  pm_msg_free(m);

  assert_pm(0, pm_msg_new("Disconnect", &m));
  assert_pm(0, pm_json_encode(m, &out, &len));
  assert_memory_equal("{\"Disconnect\":{}}", out, len);
  pm_free(out);
  pm_msg_free(m);
}

static void test_codec_json_encode_invalid(void **state) {
  pm_msg *m;
  uint8_t *out = NULL;
  size_t len;
  json_t *deep = json_integer(1);
  (void)state;
  assert_pm(0, pm_msg_new("Request", &m));
  /* Names are checked at every level, and the caller may have edited the tree directly. */
  json_object_set_new(pm_msg_fields(m), "bad name", json_true());
  assert_pm(PM_EINVAL, pm_json_encode(m, &out, &len));
  json_object_del(pm_msg_fields(m), "bad name");
  assert_pm(0, pm_msg_set_tree(m, "Params", json_pack("[{s:i}]", "1x", 1)));
  assert_pm(PM_EINVAL, pm_json_encode(m, &out, &len));
  assert_pm(0, pm_msg_set_tree(m, "Params", json_pack("{s:s%}", "S", "a\0b", (size_t)3)));
  assert_pm(PM_EINVAL, pm_json_encode(m, &out, &len));
  /* Not UTF-8: only the *_nocheck calls build such a string. */
  assert_pm(0, pm_msg_set_tree(m, "Params",
                               json_pack("{s:o}", "S", json_stringn_nocheck("a\xff", 2))));
  assert_pm(PM_EINVAL, pm_json_encode(m, &out, &len));
  /* Fields at depth 2, so 63 more levels reach 65. */
  for (int i = 0; i < PM_NESTING_MAX - 1; i++)
    deep = json_pack("{s:o}", "A", deep);
  assert_pm(0, pm_msg_set_tree(m, "Deep", deep));
  assert_pm(PM_EINVAL, pm_json_encode(m, &out, &len));
  assert_pm(PM_EINVAL, pm_msg_encode(m, 3, &out, &len));
  assert_null(out);
  json_object_del(pm_msg_fields(m), "Params");
  json_object_set(pm_msg_fields(m), "Deep", json_object_get(deep, "A"));
  assert_pm(0, pm_json_encode(m, &out, &len));
  pm_free(out);
  assert_pm(PM_EINVAL, pm_json_encode(NULL, &out, &len));
  assert_pm(PM_EINVAL, pm_json_encode(m, NULL, &len));
  assert_pm(PM_EINVAL, pm_json_encode(m, &out, NULL));
  pm_msg_free(m);
}

/* 1 when the piece lies in one of the strings of m's Params. */
static int in_params(const pm_msg *m, const pm__piece *pc) {
  const char *key;
  json_t *v;
  json_object_foreach(json_object_get(pm_msg_fields(m), "Params"), key, v) {
    const uint8_t *str = (const uint8_t *)json_string_value(v);
    if (json_is_string(v) && pc->p >= str && pc->p + pc->len <= str + json_string_length(v))
      return 1;
  }
  return 0;
}

/* pm__json_encode_pieces writes pm_json_encode's bytes; a run of PM__JSON_LEND_MIN plain
 * bytes or more is one piece pointing into the tree, a shorter one is copied. Returns the
 * pieces lent. */
static size_t pieces_match(const pm_msg *m) {
  uint8_t *want, *buf, *joined;
  pm__piece *pc;
  size_t want_len, n, len, at = 0, lent = 0;
  assert_pm(0, pm_json_encode(m, &want, &want_len));
  assert_pm(0, pm__json_encode_pieces(m, &buf, &pc, &n, &len));
  assert_int_equal(want_len, len);
  joined = malloc(len);
  assert_non_null(joined);
  for (size_t i = 0; i < n; i++) {
    assert_true(pc[i].len > 0);
    assert_true(at + pc[i].len <= len);
    memcpy(joined + at, pc[i].p, pc[i].len);
    at += pc[i].len;
    if (in_params(m, &pc[i])) {
      assert_true(pc[i].len >= PM__JSON_LEND_MIN);
      lent++;
    }
  }
  assert_int_equal(len, at);
  assert_memory_equal(want, joined, len);
  free(joined);
  pm_free(want);
  pm_free(buf);
  pm_free(pc);
  return lent;
}

static void test_codec_json_encode_pieces(void **state) {
  const size_t big = PM__JSON_LEND_MIN;
  char *s = malloc(3 * big + 16);
  pm_msg *m;
  uint8_t *buf;
  pm__piece *pc;
  size_t n, len;
  (void)state;
  assert_non_null(s);
  memset(s, 'a', 3 * big + 16);
  assert_pm(0, pm_msg_new("Request", &m));
  assert_pm(0, pm_msg_set_string(m, "Command", "Put"));
  assert_int_equal(0, pieces_match(m));
  /* One run just too short, then one just long enough. */
  assert_pm(0, pm_msg_set_tree(m, "Params", json_pack("{s:s%}", "S", s, big - 1)));
  assert_int_equal(0, pieces_match(m));
  assert_pm(0, pm_msg_set_tree(m, "Params", json_pack("{s:s%}", "S", s, big)));
  assert_int_equal(1, pieces_match(m));
  /* Escapes and UTF-8 inside: the runs between escapes are lent, the escapes are copied. */
  s[big] = '"';
  s[2 * big + 1] = '\n';
  memcpy(s + 2 * big + 4, "\xc3\xbc\xe2\x82\xac", 5);
  assert_pm(0, pm_msg_set_tree(m, "Params",
                               json_pack("{s:s%,s:i,s:s%}", "S", s, 3 * big + 16, "I", 1, "T", s,
                                         big)));
  assert_int_equal(4, pieces_match(m));
  /* A long string that is not UTF-8 is refused as pm_json_encode refuses it. */
  s[3 * big] = (char)0xff;
  assert_pm(0, pm_msg_set_tree(m, "Params",
                               json_pack("{s:o}", "S", json_stringn_nocheck(s, 3 * big + 16))));
  assert_pm(PM_EINVAL, pm__json_encode_pieces(m, &buf, &pc, &n, &len));
  assert_pm(PM_EINVAL, pm__json_encode_pieces(NULL, &buf, &pc, &n, &len));
  assert_pm(PM_EINVAL, pm__json_encode_pieces(m, NULL, &pc, &n, &len));
  pm_msg_free(m);
  free(s);
}

static void test_codec_json_round_trip(void **state) {
  static const char *const text =
      "{\"Event\":{\"Id\":42,\"Type\":\"T\",\"Data\":{\"L\":[1,-2,3.25,true,false,null,\"s\","
      "[],{},{\"x\":[[\"\\u00fc\\u20ac\\ud83d\\ude00\"]]}],\"Max\":9223372036854775807}}}";
  pm_msg *m, *m2;
  uint8_t *out;
  size_t len;
  (void)state;
  assert_pm(0, decode(text, &m, NULL));
  assert_pm(0, pm_json_encode(m, &out, &len));
  assert_pm(0, pm_json_decode(out, len, &m2, NULL));
  assert_true(json_equal(pm_msg_fields(m), pm_msg_fields(m2)));
  assert_string_equal(pm_msg_kind(m), pm_msg_kind(m2));
  pm_free(out);
  pm_msg_free(m);
  pm_msg_free(m2);
}

/* The confirmation written without the codec is byte for byte the codec's encoding, and the
 * fast recognizer takes exactly those bytes (for ids >= 0) with the decoder's id. */
static void test_codec_json_confirmation_fast(void **state) {
  static const int64_t ids[] = {0, 1, 9, 10, 42, 1000000007, INT64_MAX - 1, INT64_MAX,
                                -1, INT64_MIN};
  (void)state;
  for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    char fast[PM__JSON_CONFIRMATION_MAX];
    pm_msg *m = NULL;
    uint8_t *out;
    size_t len, fast_len = pm__json_confirmation(ids[i], fast);
    int64_t got = -7, decoded;
    assert_pm(0, pm_msg_new(PM_KIND_EVENT_CONFIRMATION, &m));
    assert_pm(0, pm_msg_set_int(m, "Id", ids[i]));
    assert_pm(0, pm_json_encode(m, &out, &len));
    pm_msg_free(m);
    assert_int_equal(len, fast_len);
    assert_memory_equal(out, fast, len);
    assert_pm(0, pm_json_decode(out, len, &m, NULL));
    assert_pm(0, pm_msg_get_int(m, "Id", &decoded));
    assert_int_equal(decoded, ids[i]);
    pm_msg_free(m);
    assert_int_equal(ids[i] >= 0, pm__json_confirmation_id(out, len, &got));
    if (ids[i] >= 0)
      assert_int_equal(got, ids[i]);
    pm_free(out);
  }
}

/* Anything but the canonical bytes is declined, so it gets the full decoder's verdict: the
 * same message spelled otherwise (valid), and invalid ones. */
static void test_codec_json_confirmation_fast_declines(void **state) {
  static const char *const valid[] = {
      "{\"EventConfirmation\":{\"Id\":-1}}",
      "{ \"EventConfirmation\":{\"Id\":1}}",
      "{\"EventConfirmation\":{\"Id\":1 }}",
      "\xef\xbb\xbf{\"EventConfirmation\":{\"Id\":1}}",
      "{\"EventConfirmation\":{\"Id\":1,\"X\":2}}",
  };
  static const char *const invalid[] = {
      "{\"EventConfirmation\":{\"Id\":01}}",
      "{\"EventConfirmation\":{\"Id\":9223372036854775808}}",
      "{\"EventConfirmation\":{\"Id\":99999999999999999999}}",
      "{\"EventConfirmation\":{\"Id\":}}",
      "{\"EventConfirmation\":{\"Id\":+1}}",
      "{\"EventConfirmation\":{\"Id\":1}}}",
      "{\"EventConfirmation\":{\"Id\":1}}x",
      "{\"EventConfirmation\":{\"Id\":1}}{\"EventConfirmation\":{\"Id\":1}}",
      "{\"EventConfirmation\":{\"Id\":1\"}}",
  };
  int64_t id;
  (void)state;
  for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
    assert_int_equal(0, pm__json_confirmation_id((const uint8_t *)valid[i], strlen(valid[i]),
                                                 &id));
    expect(0, valid[i]);
  }
  for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
    assert_int_equal(0, pm__json_confirmation_id((const uint8_t *)invalid[i],
                                                 strlen(invalid[i]), &id));
    expect(PM_EPARSE, invalid[i]);
  }
}

/* The heartbeat, {"Handshake":{"Seq":n}}, likewise: written as the codec writes it, and
 * recognized only in those bytes, with the decoder's Seq. */
static void test_codec_json_heartbeat_fast(void **state) {
  static const int64_t seqs[] = {1, 9, 10, 12345, INT64_MAX, 0, -1};
  static const char *const declined[] = {
      "{\"Handshake\":{\"Seq\":01}}",
      "{\"Handshake\":{\"Seq\":9223372036854775808}}",
      "{\"Handshake\":{\"Seq\":1 }}",
      "{\"Handshake\":{\"Seq\":1,\"Version\":1}}",
      "{\"EventConfirmation\":{\"Id\":1}}",
      "{\"Handshake\":{\"Id\":1}}",
  };
  int64_t got;
  (void)state;
  for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
    char fast[PM__JSON_CONFIRMATION_MAX];
    pm_msg *m = NULL;
    uint8_t *out;
    size_t len, fast_len = pm__json_heartbeat(seqs[i], fast);
    assert_pm(0, pm_msg_new(PM_KIND_HANDSHAKE, &m));
    assert_pm(0, pm_msg_set_int(m, "Seq", seqs[i]));
    assert_pm(0, pm_json_encode(m, &out, &len));
    pm_msg_free(m);
    assert_int_equal(len, fast_len);
    assert_memory_equal(out, fast, len);
    got = -7;
    assert_int_equal(seqs[i] >= 0, pm__json_heartbeat_seq(out, len, &got));
    if (seqs[i] >= 0)
      assert_int_equal(got, seqs[i]);
    assert_int_equal(0, pm__json_confirmation_id(out, len, &got));
    pm_free(out);
  }
  for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
    assert_int_equal(0, pm__json_heartbeat_seq((const uint8_t *)declined[i],
                                               strlen(declined[i]), &got));
}

/* An Event as the decoder gives it, against what the fast path read. */
static void assert_same_event(const pm_msg *m, const pm__event_view *ev) {
  const char *type, *time;
  int64_t id;
  json_t *data = json_object_get(pm_msg_fields(m), "Data");
  assert_string_equal(PM_KIND_EVENT, pm_msg_kind(m));
  assert_int_equal(json_object_size(pm_msg_fields(m)), data != NULL ? 4 : 3);
  assert_pm(0, pm_msg_get_int(m, "Id", &id));
  assert_int_equal(id, ev->id);
  assert_pm(0, pm_msg_get_string(m, "Type", &type));
  assert_string_equal(type, ev->type);
  assert_pm(0, pm_msg_get_string(m, "Time", &time));
  assert_string_equal(time, ev->time);
  if (data == NULL) {
    assert_null(ev->data);
  } else {
    char *a = json_dumps(data, JSON_COMPACT), *b = json_dumps(ev->data, JSON_COMPACT);
    assert_true(json_equal(data, ev->data));
    assert_string_equal(a, b); /* members in the same order too */
    free(a);
    free(b);
  }
}

/* Data {"A":{"A":...{}}} with the deepest member at message depth `depth` (Data is 2). */
static json_t *deep_data(int depth) {
  json_t *v = json_object();
  for (int d = depth; d > 2; d--) {
    json_t *outer = json_object();
    assert_int_equal(0, json_object_set_new(outer, "A", v));
    v = outer;
  }
  return v;
}

/* What the encoder writes for an Event (what the event server writes: test_event_server
 * pins that) the fast path reads, as the decoder does. */
static void test_codec_json_event_fast(void **state) {
  static const int64_t ids[] = {0, 1, 10, 1000000007, INT64_MAX};
  static const char *const datas[] = {
      NULL,
      "{}",
      "{\"State\":\"Connected\",\"Location\":\"de\",\"KillSwitch\":true}",
      "{\"S\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\xf0\x9f\x98\x80\",\"N\":null,\"R\":1.5e-300}",
      "{\"A\":[1,[2,{}],{\"B\":[]}],\"C\":{\"D\":-9223372036854775808}}",
      "{\"A\":\"}}\"}",
  };
  (void)state;
  for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    for (size_t j = 0; j < sizeof(datas) / sizeof(datas[0]) + 1; j++) {
      json_t *data = j < sizeof(datas) / sizeof(datas[0])
                         ? (datas[j] != NULL ? json_loads(datas[j], 0, NULL) : NULL)
                         : deep_data(PM_NESTING_MAX);
      pm_msg *m = NULL, *decoded = NULL;
      pm__event_view ev;
      uint8_t *out;
      size_t len;
      assert_true(data != NULL || (j < sizeof(datas) / sizeof(datas[0]) && datas[j] == NULL) ||
                  !"bad test data");
      assert_pm(0, pm_msg_new(PM_KIND_EVENT, &m));
      assert_pm(0, pm_msg_set_int(m, "Id", ids[i]));
      assert_pm(0, pm_msg_set_string(m, "Type", "StateChanged"));
      assert_pm(0, pm_msg_set_string(m, "Time", "2026-12-01T06:24:01.123Z"));
      if (data != NULL)
        assert_pm(0, pm_msg_set_tree(m, "Data", data));
      assert_pm(0, pm_json_encode(m, &out, &len));
      pm_msg_free(m);
      assert_pm(0, pm_json_decode(out, len, &decoded, NULL));
      assert_int_equal(1, pm__json_event(out, len, &ev));
      assert_same_event(decoded, &ev);
      json_decref(ev.data);
      pm_msg_free(decoded);
      pm_free(out);
    }
  }
}

/* Anything but the server's exact form is declined, so it gets the full decoder's verdict: the
 * same event spelled otherwise (valid), and invalid ones. */
static void test_codec_json_event_fast_declines(void **state) {
#define EV "{\"Event\":{\"Id\":"
  static const char *const valid[] = {
      EV "-1,\"Type\":\"T\",\"Time\":\"t\"}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\"} }",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":1} }}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\": {\"A\":1}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":[1]}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":\"x\"}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{},\"X\":1}}",
      EV "1,\"Time\":\"t\",\"Type\":\"T\"}}",
      EV "1,\"Type\":\"T\"}}",
      EV "1,\"Type\":\"\\u0054\",\"Time\":\"t\"}}",
      EV "1,\"Type\":\"T\",\"Time\":\"\xc3\xa9\"}}",
      EV "1,\"Type\":\"T\",\"Time\":\"a\\tb\"}}",
      EV "1,\"Type\":\"T1234567890123456789012345678901234567890123456789012345678901234\","
         "\"Time\":\"t\"}}",
      "\xef\xbb\xbf" EV "1,\"Type\":\"T\",\"Time\":\"t\"}}",
      "{\"Event\":{\"Id\":1.0,\"Type\":\"T\",\"Time\":\"t\"}}",
  };
  static const char *const invalid[] = {
      EV "01,\"Type\":\"T\",\"Time\":\"t\"}}",
      EV "9223372036854775808,\"Type\":\"T\",\"Time\":\"t\"}}",
      EV "99999999999999999999,\"Type\":\"T\",\"Time\":\"t\"}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\"}}x",
      EV "1,\"Type\":\"T\",\"Time\":\"t\"}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":1}}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":1,\"A\":2}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"not a name\":1}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":[{\"not a name\":1}]}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":\"\\u0000\"}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":\"\xff\"}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":NaN}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":1}}}{\"Event\":{}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":1}}}}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":\"}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t\x01\"}}",
      EV "1,\"Type\":\"T\",\"Time\":\"t",
  };
  pm__event_view ev;
  char *text;
  size_t len;
  json_t *data;
  pm_msg *m = NULL;
  (void)state;
  for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
    assert_int_equal(0, pm__json_event((const uint8_t *)valid[i], strlen(valid[i]), &ev));
    expect(0, valid[i]);
  }
  for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
    if (pm__json_event((const uint8_t *)invalid[i], strlen(invalid[i]), &ev) != 0)
      print_error("input %s taken\n", invalid[i]);
    assert_int_equal(0, pm__json_event((const uint8_t *)invalid[i], strlen(invalid[i]), &ev));
    expect(PM_EPARSE, invalid[i]);
  }
  /* One member too deep for the model (the parser alone would take it). */
  data = deep_data(PM_NESTING_MAX + 1);
  assert_pm(0, pm_msg_new(PM_KIND_EVENT, &m));
  assert_pm(0, pm_msg_set_int(m, "Id", 1));
  assert_pm(0, pm_msg_set_string(m, "Type", "T"));
  assert_pm(0, pm_msg_set_string(m, "Time", "t"));
  assert_pm(0, pm_msg_set_tree(m, "Data", data));
  text = json_dumps(pm_msg_fields(m), JSON_COMPACT);
  pm_msg_free(m);
  assert_non_null(text);
  {
    char *whole = malloc(strlen(text) + 16);
    assert_non_null(whole);
    sprintf(whole, "{\"Event\":%s}", text);
    assert_int_equal(0, pm__json_event((const uint8_t *)whole, strlen(whole), &ev));
    expect(PM_EDEPTH, whole);
    free(whole);
  }
  free(text);
  /* The node budget: {"Event":{"Id":1,"Type":"T","Time":"t","Data":{"A":[0,...]}}} is 13
   * nodes and the zeros. */
  text = pm_test_repeat(EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":[", "0,",
                        PM_NODES_MAX - 14, "0]}}}", &len);
  assert_int_equal(1, pm__json_event((const uint8_t *)text, len, &ev));
  json_decref(ev.data);
  expect(0, text);
  free(text);
  text = pm_test_repeat(EV "1,\"Type\":\"T\",\"Time\":\"t\",\"Data\":{\"A\":[", "0,",
                        PM_NODES_MAX - 13, "0]}}}", &len);
  assert_int_equal(0, pm__json_event((const uint8_t *)text, len, &ev));
  expect(PM_ELIMIT, text);
  free(text);
#undef EV
}

static void test_codec_json_decode_oom(void **state) {
  (void)state;
  pm_test_decode_oom_loop("{\"Request\":{\"Command\":\"X\",\"Params\":{\"A\":[1,2]}}}");
}

/* {"Request":{"A":[0,0,...]}}: 5 + n nodes. */
static char *zeros(size_t n, size_t *len) {
  char *s = pm_test_repeat("{\"Request\":{\"A\":[", "0,", n, "]}}", len);
  s[*len - 4] = ' '; /* the last comma */
  return s;
}

/* 16 MiB of [{},{},...] cost jansson 1.3 GB. */
static void hardening_02_decode_budget_json(void **state) {
  const size_t size = 16u << 20;
  size_t len;
  long peak_kb;
  pm_msg *m = NULL;
  uint8_t *out;
  char *s, why[PM_REASON_MAX];
  int rc;
  (void)state;
  s = zeros(PM_NODES_MAX - 5, &len);
  assert_pm(0, pm_json_decode(s, len, &m, NULL));
  free(s);
  /* What the encoder writes, the decoder takes back. */
  assert_pm(0, pm_json_encode(m, &out, &len));
  pm_msg_free(m);
  assert_pm(0, pm_json_decode(out, len, &m, NULL));
  pm_free(out);
  /* One node more: the decoder refuses it, and so does the encoder. */
  assert_int_equal(0, json_array_append_new(json_object_get(pm_msg_fields(m), "A"),
                                            json_integer(0)));
  assert_pm(PM_ELIMIT, pm_json_encode(m, &out, &len));
  /* In XML the same tree is 2 nodes per number: too many there as well. */
  assert_pm(PM_ELIMIT, pm_xml_encode(m, &out, &len));
  pm_msg_free(m);
  m = NULL;
  s = zeros(PM_NODES_MAX - 4, &len);
  assert_pm(PM_ELIMIT, pm_json_decode(s, len, &m, why));
  assert_null(m);
  assert_non_null(strstr(why, "more than"));
  free(s);
  /* Member names count; what is inside a string does not, escaped quotes included. */
  expect(PM_ELIMIT, s = pm_test_repeat("{\"Request\":{\"A\":[", "{\"a\":0},", PM_NODES_MAX / 3,
                                       "{}]}}", &len));
  free(s);
  expect(0, s = pm_test_repeat("{\"Request\":{\"A\":\"", "{[0,\\\"\\\\", PM_NODES_MAX, "\"}}",
                               &len));
  free(s);

  /* Decoding costs at most 4 x the size + 16 MiB: the issue's 16 MiB of {},{},... and the most
   * costly message the budget lets through (empty objects). */
  if (!pm_test_rss_meaningful())
    return;
  s = pm_test_repeat("{\"Request\":{\"A\":[", "{},", (size - 64) / 3, "{}]}}", &len);
  peak_kb = pm_test_decode_peak_kb(s, len, &rc);
  assert_pm(PM_ELIMIT, rc);
  print_message("16 MiB of {}: +%ld KiB\n", peak_kb);
  assert_true(peak_kb * 1024 <= (long)(4 * len + (16u << 20)));
  free(s);
  s = pm_test_repeat("{\"Request\":{\"A\":[", "{},", PM_NODES_MAX - 6, "{}]}}", &len);
  peak_kb = pm_test_decode_peak_kb(s, len, &rc);
  assert_pm(0, rc);
  print_message("%d empty objects: +%ld KiB\n", PM_NODES_MAX - 5, peak_kb);
  assert_true(peak_kb * 1024 <= (long)(4 * len + (16u << 20)));
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codec_json_detect_encoding),
      cmocka_unit_test(test_codec_json_examples),
      cmocka_unit_test(test_codec_json_strict),
      cmocka_unit_test(test_codec_json_reason),
      cmocka_unit_test(test_codec_json_depth),
      cmocka_unit_test(test_codec_json_encode),
      cmocka_unit_test(test_codec_json_encode_invalid),
      cmocka_unit_test(test_codec_json_encode_pieces),
      cmocka_unit_test(test_codec_json_round_trip),
      cmocka_unit_test(test_codec_json_confirmation_fast),
      cmocka_unit_test(test_codec_json_confirmation_fast_declines),
      cmocka_unit_test(test_codec_json_heartbeat_fast),
      cmocka_unit_test(test_codec_json_event_fast),
      cmocka_unit_test(test_codec_json_event_fast_declines),
      cmocka_unit_test(test_codec_json_decode_oom),
      cmocka_unit_test(hardening_02_decode_budget_json),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
