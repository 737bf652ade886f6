/* Inputs found by the fuzz targets (tests/fuzz), one test each, plus a replay of the
 * checked-in seed corpora (which hold every reproducer) through the decoders, so they also
 * run in the ordinary build, under valgrind and ASan. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define CORPUS_DIR PM_SOURCE_DIR "/tests/fuzz/corpus"
#define CORPUS_FILE_MAX (1024 * 1024) /* scripts/fuzz.sh's -max_len */

static int decode_xml(const char *text, pm_msg **out) {
  char why[PM_REASON_MAX] = "";
  int rc = pm_xml_decode(text, strlen(text), out, why);
  if (rc < 0)
    assert_true(why[0] != '\0');
  return rc;
}

/* Encodes m in enc and decodes the result in the same encoding; returns the code. */
static int re_decode(const pm_msg *m, pm_encoding enc, pm_msg **out) {
  uint8_t *buf;
  size_t len;
  char why[PM_REASON_MAX] = "";
  int rc = pm_msg_encode(m, enc, &buf, &len);
  if (rc < 0)
    return rc;
  rc = pm_msg_decode(buf, len, out, why);
  if (rc < 0)
    print_error("%.*s: %s\n", (int)len, (const char *)buf, why);
  pm_free(buf);
  return rc;
}

/* fuzz_xml / fuzz_roundtrip, corpus regress_xsi_type.xml: xsi:type on an unknown field made
 * the schema skip the field's content, so a known field inside it went unchecked (<Id>abc</Id>
 * passed), and the decoded tree, which carries no attributes, re-encoded to XML that the
 * decoder itself rejects (PM_ESCHEMA). Attributes are ignored everywhere, by the schema too. */
static void test_fuzz_regressions_xsi_type(void **state) {
  static const char *const rejected[] = {
      "<Request xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
      "<Other xsi:type=\"Tree\"><Id>abc</Id></Other></Request>",
      "<Request xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
      "<Other><Id>abc</Id></Other></Request>",
  };
  pm_msg *m = NULL, *again = NULL;
  (void)state;
  for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
    assert_pm(PM_ESCHEMA, decode_xml(rejected[i], &m));
    assert_null(m);
  }
  /* What the schema accepts with xsi attributes, it accepts again without them. */
  assert_pm(0, decode_xml("<Request xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
                          "<Other xsi:type=\"String\"><A>1</A></Other><Id>7</Id></Request>",
                          &m));
  assert_pm(0, re_decode(m, PM_ENC_XML, &again));
  assert_true(json_equal(pm_msg_fields(m), pm_msg_fields(again)));
  pm_msg_free(again);
  pm_msg_free(m);
}

/* fuzz_json_diff, corpus nul_after_number_and_word: jansson, which decoded JSON until issue
 * 12, drops a raw NUL byte that follows a number or a word and took {"A":0\0} for {"A":0}.
 * The parser that replaced it refuses a raw NUL anywhere. */
static void test_fuzz_regressions_nul_after_number(void **state) {
  static const char text[] = "{\"Request\":{\"A\":0\0,\"B\":true\0}}";
  char why[PM_REASON_MAX] = "";
  pm_msg *m = NULL;
  (void)state;
  assert_pm(PM_EPARSE, pm_msg_decode(text, sizeof(text) - 1, &m, why));
  assert_null(m);
  assert_true(why[0] != '\0');
}

/* fuzz_xml_diff, corpus regress_end_tag_first.xml: the XML fast path (xml_fast.c) read an end
 * tag before any root against the open element below the first (UBSan: index -1); it now
 * leaves such a document to libxml2. Corpus regress_empty_cdata.xml: in libxml2's path, an
 * empty CDATA section before any text added 0 to the validator's text buffer while it was
 * still NULL (UBSan: applying zero offset to null pointer). Both are malformed. */
static void test_fuzz_regressions_xml_fast_path(void **state) {
  pm_msg *m = NULL;
  (void)state;
  assert_pm(PM_EPARSE, decode_xml("</ve<Id>entContConfirmation>", &m));
  assert_null(m);
  assert_pm(PM_EPARSE, decode_xml("<Disconnect><![CDATA[]]>e", &m));
  assert_null(m);
  assert_pm(0, decode_xml("<Disconnect><Reason><![CDATA[]]>e</Reason></Disconnect>", &m));
  assert_string_equal("e", json_string_value(json_object_get(pm_msg_fields(m), "Reason")));
  pm_msg_free(m);
}

/* Every seed of the message targets: the decoders do not crash, and a message that came as
 * XML re-encodes, in either encoding, to a message the decoders accept again, unless in JSON
 * it is more nodes than the budget (PM_ELIMIT: an empty element is one node in XML, an empty
 * object and its member name two in JSON). */
static void replay_dir(const char *target) {
  char path[512];
  DIR *d;
  struct dirent *e;
  int files = 0;
  snprintf(path, sizeof(path), "%s/%s", CORPUS_DIR, target);
  d = opendir(path);
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    static char buf[CORPUS_FILE_MAX];
    pm_msg *m = NULL, *again = NULL;
    size_t len;
    FILE *f;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s/%s", CORPUS_DIR, target, e->d_name);
    f = fopen(path, "rb");
    assert_non_null(f);
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    files++;
    if (pm_msg_decode(buf, len, &m, NULL) < 0)
      continue;
    if (pm_msg_encoding(m) == PM_ENC_XML) {
      for (pm_encoding enc = PM_ENC_JSON; enc <= PM_ENC_XML; enc++) {
        int rc = re_decode(m, enc, &again);
        if (rc == PM_ELIMIT && enc == PM_ENC_JSON)
          continue;
        if (rc != 0)
          print_error("%s: re-encoded as %s\n", path, enc == PM_ENC_JSON ? "JSON" : "XML");
        assert_pm(0, rc);
        pm_msg_free(again);
      }
    }
    pm_msg_free(m);
  }
  closedir(d);
  assert_true(files > 0);
}

static void test_fuzz_regressions_corpus(void **state) {
  (void)state;
  replay_dir("fuzz_json");
  replay_dir("fuzz_xml");
  replay_dir("fuzz_roundtrip");
  replay_dir("fuzz_json_diff");
  replay_dir("fuzz_xml_diff");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fuzz_regressions_xsi_type),
      cmocka_unit_test(test_fuzz_regressions_nul_after_number),
      cmocka_unit_test(test_fuzz_regressions_xml_fast_path),
      cmocka_unit_test(test_fuzz_regressions_corpus),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
