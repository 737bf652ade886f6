/* XML message decoding (pm_xml_decode, src/core/codec_xml.c) on arbitrary bytes.
 *
 * A rejected input fails with PM_EPARSE, PM_EDEPTH, PM_ESCHEMA or PM_ELIMIT (the node budget
 * or the attributes of one tag) and a reason. An accepted one is a well-formed message whose
 * tree holds only what XML can deliver (objects, non-empty arrays, strings); it encodes to
 * XML, decodes to the same tree (up to "" and {}, which both are <Name/>), and from then on
 * encodes to the same bytes; it also encodes to JSON unless it would be more than
 * PM_NODES_MAX nodes there (PM_ELIMIT). */
#include <string.h>

#include "fuzz_common.h"
#include "message_internal.h"

/* XML delivers objects, arrays of at least one <Item> and strings; nothing else. */
static void check_xml_tree(const json_t *v) {
  const char *key;
  size_t i;
  json_t *child;
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    json_object_foreach((json_t *)v, key, child) check_xml_tree(child);
    break;
  case JSON_ARRAY:
    FUZZ_CHECK(json_array_size(v) > 0);
    json_array_foreach(v, i, child) check_xml_tree(child);
    break;
  default:
    FUZZ_CHECK(json_is_string(v));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pm_msg *m, *again = NULL, *third = NULL;
  uint8_t *xml = NULL, *xml2 = NULL, *xml3 = NULL, *json = NULL;
  size_t xml_len, xml2_len, xml3_len, json_len;
  int rc;

  m = fuzz_decode(pm_xml_decode, data, size, &rc);
  if (m == NULL) {
    FUZZ_CHECK(rc == PM_EPARSE || rc == PM_EDEPTH || rc == PM_ESCHEMA || rc == PM_ELIMIT);
    return 0;
  }
  FUZZ_CHECK(pm_msg_encoding(m) == PM_ENC_XML);
  check_xml_tree(pm_msg_fields(m));
  FUZZ_CHECK(fuzz_xml_representable(pm_msg_fields(m)));

  FUZZ_CHECK(fuzz_encode(m, PM_ENC_XML, &xml, &xml_len) == 0);
  again = fuzz_decode(pm_xml_decode, xml, xml_len, &rc);
  FUZZ_CHECK(again != NULL);
  FUZZ_CHECK(strcmp(pm_msg_kind(m), pm_msg_kind(again)) == 0);
  fuzz_check_same_tree(pm_msg_fields(m), pm_msg_fields(again), "XML -> XML");
  FUZZ_CHECK(fuzz_encode(again, PM_ENC_XML, &xml2, &xml2_len) == 0);
  FUZZ_CHECK(xml_len == xml2_len && memcmp(xml, xml2, xml_len) == 0);
  /* Once through the encoder, the tree is a fixed point. */
  third = fuzz_decode(pm_xml_decode, xml2, xml2_len, &rc);
  FUZZ_CHECK(third != NULL && json_equal(pm_msg_fields(again), pm_msg_fields(third)));
  FUZZ_CHECK(fuzz_encode(third, PM_ENC_XML, &xml3, &xml3_len) == 0);
  FUZZ_CHECK(xml3_len == xml2_len && memcmp(xml3, xml2, xml2_len) == 0);

  /* The encoder's count of the tree never exceeds the decoder's count of the input. */
  FUZZ_CHECK(pm__tree_nodes(pm_msg_fields(m), PM_ENC_XML) <= PM_NODES_MAX);
  rc = fuzz_encode(m, PM_ENC_JSON, &json, &json_len);
  FUZZ_CHECK(rc == (pm__tree_nodes(pm_msg_fields(m), PM_ENC_JSON) > PM_NODES_MAX ? PM_ELIMIT : 0));

  pm_free(json);
  pm_free(xml3);
  pm_free(xml2);
  pm_free(xml);
  pm_msg_free(third);
  pm_msg_free(again);
  pm_msg_free(m);
  return 0;
}
