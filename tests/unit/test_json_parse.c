/* The JSON parser (src/core/json_parse.c) against jansson, the parser it replaced: the same
 * verdict and the same tree (tests/fuzz/json_diff.h) on the edge cases where their rules meet,
 * on both fuzz corpora, and on random mutations of them, so the check runs in every build
 * (valgrind and ASan included) and not only under libFuzzer. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "json_diff.h"
#include "json_parse.h"

#define CORPUS_DIR PM_SOURCE_DIR "/tests/fuzz/corpus"
#define CORPUS_FILE_MAX (1024 * 1024)
#define CORPUS_MAX 64
#define RANDOM_INPUTS 20000
/* Only inputs up to this size are mutated: the node-budget seeds (40 KiB of 16 384 nodes)
 * would take most of the time and exercise nothing the small ones do not. */
#define SMALL_INPUT 4096

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

typedef struct corpus {
  uint8_t *data[CORPUS_MAX];
  size_t len[CORPUS_MAX];
  int n;
} corpus;

static void load_dir(corpus *c, const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL && c->n < CORPUS_MAX) {
    char path[1024];
    FILE *f;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    f = fopen(path, "rb");
    assert_non_null(f);
    c->data[c->n] = malloc(CORPUS_FILE_MAX);
    assert_non_null(c->data[c->n]);
    c->len[c->n] = fread(c->data[c->n], 1, CORPUS_FILE_MAX, f);
    fclose(f);
    expect_same(c->data[c->n], c->len[c->n], e->d_name);
    c->n++;
  }
  closedir(d);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* A few random edits of a corpus input: bytes changed, tokens put in, ranges cut out. */
static size_t mutate(uint8_t *out, size_t cap, const uint8_t *in, size_t len) {
  static const char *const tokens[] = {
      "{", "}", "[", "]", ":", ",", "\"", "\\", "\\u", "\\ud83d", "\\ude00", "\\u0000", "1",
      "-", ".", "e", "0", "9223372036854775808", "true", "x", "\xff", "\xc3", "\xed\xa0\x80",
      "\xf4\x90\x80\x80", "\xc3\xa4", " ", "\n", "\"a\":1,", "\"Id\":"};
  size_t n = len < cap ? len : cap;
  int edits = 1 + (int)(rnd() % 4);
  memcpy(out, in, n);
  for (int i = 0; i < edits; i++) {
    size_t at = n ? (size_t)(rnd() % (n + 1)) : 0;
    switch (rnd() % 3) {
    case 0:
      if (at < n)
        out[at] = (uint8_t)rnd();
      break;
    case 1: {
      const char *t = tokens[rnd() % (sizeof(tokens) / sizeof(tokens[0]))];
      size_t tl = strlen(t);
      if (n + tl <= cap) {
        memmove(out + at + tl, out + at, n - at);
        memcpy(out + at, t, tl);
        n += tl;
      }
      break;
    }
    default: {
      size_t cut = at < n ? (size_t)(rnd() % (n - at + 1)) % 8 : 0;
      memmove(out + at, out + at + cut, n - at - cut);
      n -= cut;
    }
    }
  }
  return n;
}

static void test_json_parse_corpus_and_random(void **state) {
  static corpus c;
  uint8_t *buf = malloc(CORPUS_FILE_MAX + 64);
  (void)state;
  assert_non_null(buf);
  load_dir(&c, CORPUS_DIR "/fuzz_json");
  load_dir(&c, CORPUS_DIR "/fuzz_json_diff");
  assert_true(c.n > 20);
  for (int i = 0; i < RANDOM_INPUTS; i++) {
    int k = (int)(rnd() % (uint64_t)c.n);
    if (c.len[k] > SMALL_INPUT)
      continue;
    size_t n = mutate(buf, CORPUS_FILE_MAX + 64, c.data[k], c.len[k]);
    char label[64];
    snprintf(label, sizeof(label), "random input %d", i);
    expect_same(buf, n, label);
  }
  for (int i = 0; i < c.n; i++)
    free(c.data[i]);
  free(buf);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_parse_edges),
      cmocka_unit_test(test_json_parse_corpus_and_random),
      cmocka_unit_test(test_json_parse_long_strings),
      cmocka_unit_test(test_json_parse_plain_scan),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
