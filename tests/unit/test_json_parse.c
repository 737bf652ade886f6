/* The JSON parser (src/core/json_parse.c) against jansson, the parser it replaced: the same
 * verdict and the same tree (tests/fuzz/json_diff.h) on the edge cases where their rules meet,
 * on both fuzz corpora, and on random mutations of them, so the check runs in every build
 * (valgrind and ASan included) and not only under libFuzzer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "corpus_check.h"

#include "json_diff.h"
#include "json_parse.h"

#define RANDOM_INPUTS 20000

static void expect_same(const void *p, size_t len, const char *label) {
  const char *what = json_diff(p, len);
  if (what != NULL)
    print_error("%s (%zu bytes): %s\n", label, len, what);
  assert_null(what);
}

static void expect_code(int code, const char *text) {
  json_t *tree = NULL;
  char why[PM_REASON_MAX] = "";
  int rc = pm__json_parse((const uint8_t *)text, strlen(text), &tree, why);
  if (rc != code)
    print_error("%.80s: %d (%s)\n", text, rc, why);
  assert_pm(code, rc);
  json_decref(tree);
  expect_same(text, strlen(text), text);
}

/* prefix, then n times open, then leaf, then n times close. */
static char *deep(const char *prefix, int n, const char *open, const char *leaf,
                  const char *close) {
  size_t size = strlen(prefix) + (size_t)n * (strlen(open) + strlen(close)) + strlen(leaf) + 1;
  char *s = malloc(size), *t = s;
  assert_non_null(s);
  t += sprintf(t, "%s", prefix);
  for (int i = 0; i < n; i++)
    t += sprintf(t, "%s", open);
  t += sprintf(t, "%s", leaf);
  for (int i = 0; i < n; i++)
    t += sprintf(t, "%s", close);
  return s;
}

static void test_json_parse_edges(void **state) {
  static const char *const same[] = {
      "{}", "[]", "[1,2.5,-0,true,false,null,\"s\",{},[]]", " {\"a\" : [ 1 , 2 ] } ",
      "{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}", "{\"a\\u0000\":1}", "[\"a\\u0000\"]",
      /* Duplicates found by comparing the first names (depth up to 4, 8 names), by lookup
       * past them or once a name had an escape, and the same name in sibling objects. */
      "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"h\":9}",
      "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"a\":0}",
      "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":0}",
      "{\"a\":1,\"\\u0062\":2,\"b\":3}", "{\"\\u0062\":2,\"a\":1,\"a\":3}",
      "{\"ab\":1,\"a\":2,\"abc\":3,\"\":4,\"\":5}", "{\"x\":{\"a\":1},\"y\":{\"a\":1}}",
      "{\"x\":{\"a\":1,\"y\":{\"a\":2,\"z\":[{\"a\":3,\"w\":{\"a\":4,\"a\":5}}]}}}",
      "{\"x\":{\"a\":1,\"y\":{\"a\":2,\"z\":{\"a\":3,\"w\":{\"a\":4,\"a\":5}}}}}",
      "{\"x\":{\"a\":1,\"y\":{\"a\":2,\"z\":{\"a\":3,\"w\":{\"a\":4,\"b\":5}}}},\"x\":0}",
      "[{\"a\":1},{\"a\":2,\"a\":3}]",
      "[\"\\ud83d\\ude00\"]", "[\"\\ud83d\"]", "[\"\\ude00\"]", "[\"\\ud83d\\u0041\"]",
      "[\"\\ud83d\\\\u0041\"]", "[\"\\uD83D\\uDE00\"]", "[\"\\u12\"]", "[\"\\x\"]", "[\"a\tb\"]",
      "[\"a\nb\"]", "[\"\x7f\"]", "[\"\xc0\x80\"]", "[\"\xc2\x80\"]", "[\"\xe0\x80\x80\"]",
      "[\"\xed\xa0\x80\"]", "[\"\xef\xbf\xbf\"]", "[\"\xf0\x90\x80\x80\"]",
      "[\"\xf4\x8f\xbf\xbf\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xf5\x80\x80\x80\"]",
      "[\"\xe2\x82\"]", "[\"\xe2\x82", "[01]", "[-]", "[-a]", "[1.]", "[1.e5]", "[1e]",
      "[1e+]", "[.5]", "[+1]", "[1E+2]", "[1e-999]", "[1e999]", "[-1e999]",
      "[9223372036854775807]", "[9223372036854775808]", "[-9223372036854775808]",
      "[-9223372036854775809]", "[00]", "[-01]", "[1x]", "[1\xff]", "[1\xc3\xa4]", "[true]",
      "[truex]", "[true1]", "[tru]", "[True]", "[nul]", "[NaN]", "[Infinity]", "[\xc3\xa4]",
      "[\xff]", "1", "\"s\"", "true", "", " ", "[", "{", "{\"a\"", "{\"a\":", "{\"a\":1",
      "{\"a\":1,", "{\"a\":1,}", "[1,]", "[,1]", "{1:2}", "{\"a\" 1}", "[1 2]", "{} {}",
      "{}x", "{}\xff", "{} \n\t\r", "[\"\\/\"]", "['a']", "[\"a\"\"b\"]", "[1]]", "[]]",
      /* Messages, so the encoder is compared too: every escape it writes. */
      "{\"Request\":{\"S\":\"\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\\\/\\u007f\\u00e4\"}}",
      "{\"Request\":{\"A\":[1,-2,0.1,1e300,-0.0,true,null,{},[]],"
      "\"B\":{\"C\":\"\xf0\x9f\x98\x80\"}}}",
  };
  char *s;
  (void)state;
  for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
    expect_same(same[i], strlen(same[i]), same[i]);
  /* NUL bytes in the input, not escaped: refused everywhere, also right after a number or a
   * word, where jansson drops one (json_parse.c). */
  expect_same("[\"a\0b\"]", 7, "raw NUL in a string");
  expect_same("[1]\0", 4, "raw NUL after the value");
  expect_same("[0\0]", 4, "a raw NUL after a number");
  expect_same("[true\0]", 7, "a raw NUL after a word");
  {
    json_error_t err;
    json_t *tree = json_loadb("[0\0]", 4, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(tree); /* jansson 2.14 takes it for [0] */
    json_decref(tree);
    tree = NULL;
    assert_pm(PM_EPARSE, pm__json_parse((const uint8_t *)"[0\0]", 4, &tree, NULL));
    assert_null(tree);
  }

  expect_code(0, "{\"A\":[1,-2,3.25,\"x\\n\",{\"b\":null}]}");
  expect_code(PM_EPARSE, "{\"A\":1,\"A\":2}");
  expect_code(PM_EPARSE, "[\"\\ud800\"]");
  expect_code(PM_EPARSE, "[9223372036854775808]");
  expect_code(PM_EPARSE, "[\"\xed\xa0\x80\"]");

  /* Depth: jansson's limit, where its quiet token failures (an unknown word, a malformed
   * number) meet the depth check first and its lexer errors do not. */
  s = deep("", PM_JSON_PARSE_DEPTH_MAX, "[", "", "]");
  expect_code(0, s);
  free(s);
  s = deep("", PM_JSON_PARSE_DEPTH_MAX, "[", "1", "]");
  expect_code(PM_EDEPTH, s);
  free(s);
  s = deep("", PM_JSON_PARSE_DEPTH_MAX - 1, "[", "1", "]");
  expect_code(0, s);
  free(s);
  s = deep("", PM_JSON_PARSE_DEPTH_MAX, "[", "truex", "]");
  expect_code(PM_EDEPTH, s);
  free(s);
  s = deep("", PM_JSON_PARSE_DEPTH_MAX, "[", "1\xff", "]");
  expect_code(PM_EPARSE, s);
  free(s);
  s = deep("", PM_JSON_PARSE_DEPTH_MAX, "[", "\"\\ud800\"", "]");
  expect_code(PM_EPARSE, s);
  free(s);
  s = deep("", PM_JSON_PARSE_DEPTH_MAX, "{\"a\":", "", "");
  expect_code(PM_EDEPTH, s);
  free(s);
  s = deep("", PM_JSON_PARSE_DEPTH_MAX + 1, "[", "", "");
  expect_code(PM_EDEPTH, s);
  free(s);
}

/* pm__json_parse_at at a field's depth (the event client's Data): the model's names and depth
 * while it parses, as pm__tree_check_at would find them after (json_diff checks the two agree
 * on every input of these tests). */
static void expect_at(int ok, const char *text) {
  json_t *tree = NULL;
  int rc = pm__json_parse_at((const uint8_t *)text, strlen(text), 2, &tree);
  if ((rc == 0) != ok)
    print_error("%.80s: %d\n", text, rc);
  assert_int_equal(ok, rc == 0);
  assert_true(ok ? tree != NULL : tree == NULL);
  json_decref(tree);
  expect_same(text, strlen(text), text);
}

static void test_json_parse_at_model(void **state) {
  static const char *const taken[] = {
      "{}", "{\"A\":1}", "{\"A_b.c-9\":{\"_x\":[{\"Y\":null},[]]}}", "{\"\\u0041\":1}",
      "{\"A\":[1,{\"B\":\"x\"}]}"};
  static const char *const refused[] = {
      "{\"not a name\":1}", "{\"A\":{\"b c\":1}}", "{\"A\":[{\"1a\":1}]}", "{\"\":1}",
      "{\"A\":[[{\"B\":1,\"-\":2}]]}", "{\"\\u00e9\":1}", "{\"A\":1,\"A\":2}", "{\"A\":1"};
  char *s;
  (void)state;
  for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
    expect_at(1, taken[i]);
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
    expect_at(0, refused[i]);
  /* The root at depth 2 and n objects in it: the innermost member at 2 + n. */
  s = deep("", PM_NESTING_MAX - 2, "{\"A\":", "1", "}");
  expect_at(1, s);
  free(s);
  s = deep("", PM_NESTING_MAX - 1, "{\"A\":", "1", "}");
  expect_at(0, s);
  free(s);
  s = deep("", PM_NESTING_MAX - 1, "[", "{}", "]");
  expect_at(0, s);
  free(s);
  s = deep("", PM_NESTING_MAX - 2, "[", "{}", "]");
  expect_at(1, s);
  free(s);
}

/* What the random edits put in. */
static const char *const tokens[] = {
    "{", "}", "[", "]", ":", ",", "\"", "\\", "\\u", "\\ud83d", "\\ude00", "\\u0000", "1",
    "-", ".", "e", "0", "9223372036854775808", "true", "x", "\xff", "\xc3", "\xed\xa0\x80",
    "\xf4\x90\x80\x80", "\xc3\xa4", " ", "\n", "\"a\":1,", "\"Id\":"};

static void test_json_parse_corpus_and_random(void **state) {
  static const char *const dirs[] = {"fuzz_json", "fuzz_json_diff", NULL};
  (void)state;
  pm_test_corpus_check(dirs, tokens, sizeof(tokens) / sizeof(tokens[0]), RANDOM_INPUTS,
                       expect_same);
}

/* Most of a big message is one long string: it must come out whole and unchanged, whether it
 * holds escapes or not, and the node count must pass over it. */
static void test_json_parse_long_strings(void **state) {
  size_t size = 3u << 20, len;
  char *s;
  (void)state;
  s = pm_test_repeat("{\"Request\":{\"Blob\":\"", "abcdefg\xc3\xa4", size / 9, "\"}}", &len);
  expect_same(s, len, "3 MiB of plain text");
  free(s);
  s = pm_test_repeat("{\"Request\":{\"Blob\":\"", "ab\\\"\\\\\\n\\u00e4", size / 16, "\"}}",
                     &len);
  expect_same(s, len, "3 MiB with escapes");
  free(s);
}

/* The scan that skips plain string bytes, every byte value at every place of a 96-byte run
 * (so in each of its 32-, 8- and 1-byte steps): it stops exactly at the first byte a string
 * cannot hold as it is (below 0x20, '"', '\\', 0x80 and above), and runs to the end without
 * one. */
static void test_json_parse_plain_scan(void **state) {
  uint8_t run[96];
  (void)state;
  memset(run, 'a', sizeof(run));
  assert_ptr_equal(run + sizeof(run), pm__json_plain_end(run, run + sizeof(run)));
  for (unsigned b = 0; b < 256; b++) {
    int plain = b >= 0x20 && b < 0x80 && b != '"' && b != '\\';
    for (size_t at = 0; at < sizeof(run); at++) {
      const uint8_t *end;
      run[at] = (uint8_t)b;
      end = pm__json_plain_end(run, run + sizeof(run));
      if (end != (plain ? run + sizeof(run) : run + at))
        fail_msg("byte 0x%02x at %zu: stopped at %td", b, at, end - run);
      /* A scan that ends before it does not see it. */
      assert_ptr_equal(run + at, pm__json_plain_end(run, run + at));
      run[at] = 'a';
    }
  }
}

/* deep(...) with the message's two closing braces after it. */
static char *deep_message(const char *prefix, int n, const char *open, const char *leaf,
                          const char *close) {
  char *d = deep(prefix, n, open, leaf, close), *s = malloc(strlen(d) + 3);
  assert_non_null(s);
  sprintf(s, "%s}}", d);
  free(d);
  return s;
}

/* 1 when the message fast path takes text, and then the general parse agrees (json_diff). */
static int message_fast(const char *text) {
  const char *kind = NULL;
  size_t kind_len = 0;
  json_t *fields = NULL;
  int took = pm__json_parse_message((const uint8_t *)text, strlen(text), &kind, &kind_len,
                                    &fields);
  if (took == 1) {
    assert_non_null(fields);
    assert_true(kind >= text && kind + kind_len <= text + strlen(text));
  }
  json_decref(fields);
  expect_same(text, strlen(text), text);
  return took;
}

/* The fast path takes the usual messages, and declines the rest (pm_json_decode then parses
 * them the general way, for their verdict): it must not decline everything. */
static void test_json_parse_message(void **state) {
  static const char *const taken[] = {
      "{\"Request\":{\"Command\":\"GetState\",\"Id\":42,\"Params\":{\"Filter\":\"all\","
      "\"Verbose\":false}}}",
      "{\"Response\":{}}",
      " {\n\"Event\" : {\"Id\":1,\"Data\":{\"L\":[1,\"x\\u00e9\",null,[],{}]}} }\n",
      "{\"Request\":{\"_a.b-9\":\"\\\"\"}}",
  };
  static const char *const declined[] = {
      "{\"Re\\u0071uest\":{}}",     /* a kind written with an escape */
      "{\"1Request\":{}}",          /* not a name */
      "{\"Request\":[]}",           /* fields not an object */
      "{\"Request\":{},\"B\":{}}",  /* two members */
      "{\"Request\":{}} x",         /* trailing data */
      "{\"Request\":{\"1A\":1}}",   /* a member name that is not a name */
      "{\"Request\":{\"A\":{\"a b\":1}}}",
      "{\"Request\":{\"A\":1,\"A\":2}}", /* duplicate */
      "{\"Request\":{\"A\":\"\\u0000\"}}",
      "{\"Request\":{\"A\":1}",     /* cut short */
      "[{\"Request\":{}}]",
      "{}",
      "",
  };
  char *text;
  (void)state;
  for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
    assert_int_equal(1, message_fast(taken[i]));
  for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
    assert_int_equal(0, message_fast(declined[i]));
  /* Member B at depth 2 + n: the deepest the model allows, then one more, in an object and in
   * an array. */
  text = deep_message("{\"K\":{", PM_NESTING_MAX - 2, "\"A\":{", "\"B\":1", "}");
  assert_int_equal(1, message_fast(text));
  free(text);
  text = deep_message("{\"K\":{", PM_NESTING_MAX - 1, "\"A\":{", "\"B\":1", "}");
  assert_int_equal(0, message_fast(text));
  free(text);
  text = deep_message("{\"K\":{\"A\":", PM_NESTING_MAX - 2, "[", "1", "]");
  assert_int_equal(1, message_fast(text));
  free(text);
  text = deep_message("{\"K\":{\"A\":", PM_NESTING_MAX - 1, "[", "1", "]");
  assert_int_equal(0, message_fast(text));
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_parse_edges),
      cmocka_unit_test(test_json_parse_at_model),
      cmocka_unit_test(test_json_parse_corpus_and_random),
      cmocka_unit_test(test_json_parse_long_strings),
      cmocka_unit_test(test_json_parse_plain_scan),
      cmocka_unit_test(test_json_parse_message),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
