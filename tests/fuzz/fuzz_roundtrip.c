/* JSON <-> XML conversion (pm_msg_decode, pm_msg_encode): decode in either encoding, encode in
 * the other, decode that, encode back in the first, decode again. The three trees must be the
 * same up to scalar typing (fuzz_normalise: XML carries every scalar as text and {}, [], ""
 * and null as <Name/>), and the kind must survive.
 *
 * Allowed failures, each a documented limit of the mapping (PROTOCOL §3):
 * - encoding fails with PM_ELIMIT exactly when the tree would be more than PM_NODES_MAX nodes
 *   in the other encoding (an XML element per value and a text per scalar, a JSON value and a
 *   member name per member); on the way back the count can only shrink;
 * - encoding to XML fails with PM_EINVAL exactly when a string holds a control character other
 *   than tab, LF and CR, or U+FFFE / U+FFFF;
 * - a message that came as JSON may fail XML's schema (PM_ESCHEMA): a kind that is not one of
 *   the six, or a known field of the wrong type ({"Id": "abc"}), is valid JSON but not valid
 *   RPSchema XML.
 * Nothing else may fail: JSON takes every tree XML delivers, and a tree that was valid XML is
 * still valid XML after a trip through JSON. */
#include <string.h>

#include "fuzz_common.h"
#include "message_internal.h"

static pm_encoding other(pm_encoding enc) { return enc == PM_ENC_JSON ? PM_ENC_XML : PM_ENC_JSON; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pm_msg *first, *second = NULL, *third = NULL;
  uint8_t *b2 = NULL, *b3 = NULL;
  size_t b2_len, b3_len;
  pm_encoding enc, enc2;
  int rc;

  first = fuzz_decode(pm_msg_decode, data, size, &rc);
  if (first == NULL) {
    FUZZ_CHECK(rc == PM_EENCODING || rc == PM_EPARSE || rc == PM_EDEPTH || rc == PM_ESCHEMA ||
               rc == PM_ELIMIT);
    return 0;
  }
  enc = pm_msg_encoding(first);
  FUZZ_CHECK(pm_detect_encoding(data, size, &enc2) == 0 && enc2 == enc);
  enc2 = other(enc);

  /* There. */
  rc = fuzz_encode(first, enc2, &b2, &b2_len);
  if (pm__tree_nodes(pm_msg_fields(first), enc2) > PM_NODES_MAX) {
    FUZZ_CHECK(rc == PM_ELIMIT);
    goto done;
  }
  if (enc2 == PM_ENC_XML && !fuzz_xml_representable(pm_msg_fields(first))) {
    FUZZ_CHECK(rc == PM_EINVAL);
    goto done;
  }
  FUZZ_CHECK(rc == 0);
  second = fuzz_decode(pm_msg_decode, b2, b2_len, &rc);
  if (second == NULL) {
    FUZZ_CHECK(enc == PM_ENC_JSON && rc == PM_ESCHEMA);
    goto done;
  }
  FUZZ_CHECK(pm_msg_encoding(second) == enc2);
  FUZZ_CHECK(strcmp(pm_msg_kind(first), pm_msg_kind(second)) == 0);
  fuzz_check_same_tree(pm_msg_fields(first), pm_msg_fields(second), "there");
  /* XML -> JSON loses nothing: JSON carries XML's strings, objects and arrays as they are. */
  if (enc == PM_ENC_XML)
    FUZZ_CHECK(json_equal(pm_msg_fields(first), pm_msg_fields(second)));

  /* And back again. */
  FUZZ_CHECK(fuzz_encode(second, enc, &b3, &b3_len) == 0);
  third = fuzz_decode(pm_msg_decode, b3, b3_len, &rc);
  FUZZ_CHECK(third != NULL);
  FUZZ_CHECK(pm_msg_encoding(third) == enc);
  FUZZ_CHECK(strcmp(pm_msg_kind(first), pm_msg_kind(third)) == 0);
  fuzz_check_same_tree(pm_msg_fields(first), pm_msg_fields(third), "there and back");
  /* XML text is a fixed point of the JSON trip. */
  if (enc == PM_ENC_JSON)
    FUZZ_CHECK(json_equal(pm_msg_fields(second), pm_msg_fields(third)));

done:
  pm_free(b3);
  pm_free(b2);
  pm_msg_free(third);
  pm_msg_free(second);
  pm_msg_free(first);
  return 0;
}
