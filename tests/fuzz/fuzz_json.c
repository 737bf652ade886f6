/* JSON message decoding (pm_json_decode, src/core/codec_json.c) on arbitrary bytes.
 *
 * A rejected input fails with PM_EPARSE, PM_EDEPTH or PM_ELIMIT (the node budget) and a reason
 * (fuzz_decode checks the reason and that no message is handed out). An accepted one is a
 * well-formed message within the budget that re-encodes to JSON, decodes to the same tree, and
 * re-encodes to the same bytes; encoding it as XML fails with PM_ELIMIT exactly when it would
 * be more than PM_NODES_MAX nodes in XML, else with PM_EINVAL exactly when a string cannot be
 * XML text.
 *
 * The event server's fast path (pm__json_confirmation_id) takes only inputs the decoder
 * accepts as an EventConfirmation with just that Id, and the event client's confirmation
 * written without the encoder (pm__json_confirmation) is what the encoder writes. The event
 * client's fast path (pm__json_event) takes only inputs the decoder accepts as an Event, and
 * reads the same Id, Type, Time and Data from them. The heartbeat's (pm__json_heartbeat_seq,
 * pm__json_heartbeat) are held to the same as the confirmation's. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "internal.h"
#include "message_internal.h"

/* The fast path against the decoder's verdict m (NULL: refused). */
static void check_confirmation(const uint8_t *data, size_t size, const pm_msg *m,
                               const uint8_t *json, size_t json_len) {
  int64_t fast_id, id;
  int fast = pm__json_confirmation_id(data, size, &fast_id);
  char text[PM__JSON_CONFIRMATION_MAX];
  size_t len;
  if (m == NULL) {
    FUZZ_CHECK(!fast);
    return;
  }
  if (strcmp(pm_msg_kind(m), PM_KIND_EVENT_CONFIRMATION) != 0 ||
      json_object_size(pm_msg_fields(m)) != 1 || pm_msg_get_int(m, "Id", &id) < 0) {
    FUZZ_CHECK(!fast);
    return;
  }
  if (fast)
    FUZZ_CHECK(fast_id == id);
  len = pm__json_confirmation(id, text);
  FUZZ_CHECK(len == json_len && memcmp(text, json, len) == 0);
}

/* The heartbeat's fast paths against the decoder's verdict m (NULL: refused). */
static void check_heartbeat(const uint8_t *data, size_t size, const pm_msg *m,
                            const uint8_t *json, size_t json_len) {
  int64_t fast_seq, seq;
  int fast = pm__json_heartbeat_seq(data, size, &fast_seq);
  char text[PM__JSON_CONFIRMATION_MAX];
  size_t len;
  if (m == NULL || strcmp(pm_msg_kind(m), PM_KIND_HANDSHAKE) != 0 ||
      json_object_size(pm_msg_fields(m)) != 1 || pm_msg_get_int(m, "Seq", &seq) < 0) {
    FUZZ_CHECK(!fast);
    return;
  }
  if (fast)
    FUZZ_CHECK(fast_seq == seq);
  len = pm__json_heartbeat(seq, text);
  FUZZ_CHECK(len == json_len && memcmp(text, json, len) == 0);
}

/* The Event fast path against the decoder's verdict m (NULL: refused). */
static void check_event(const uint8_t *data, size_t size, const pm_msg *m) {
  pm__event_view ev;
  const char *type, *time;
  int64_t id;
  json_t *fields, *d;
  char *a, *b;
  if (!pm__json_event(data, size, &ev))
    return;
  FUZZ_CHECK(m != NULL);
  fields = pm_msg_fields(m);
  d = json_object_get(fields, "Data");
  FUZZ_CHECK(strcmp(pm_msg_kind(m), PM_KIND_EVENT) == 0);
  FUZZ_CHECK(json_object_size(fields) == (d != NULL ? 4u : 3u));
  FUZZ_CHECK(pm_msg_get_int(m, "Id", &id) == 0 && id == ev.id);
  FUZZ_CHECK(pm_msg_get_string(m, "Type", &type) == 0 && strcmp(type, ev.type) == 0);
  FUZZ_CHECK(pm_msg_get_string(m, "Time", &time) == 0 && strcmp(time, ev.time) == 0);
  FUZZ_CHECK((d == NULL) == (ev.data == NULL));
  if (d != NULL) {
    /* The same members in the same order. */
    a = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
    b = json_dumps(ev.data, JSON_COMPACT | JSON_ENCODE_ANY);
    FUZZ_CHECK(a != NULL && b != NULL && strcmp(a, b) == 0 && json_equal(d, ev.data));
    free(a);
    free(b);
  }
  json_decref(ev.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pm_msg *m, *again = NULL;
  uint8_t *json = NULL, *json2 = NULL, *xml = NULL;
  size_t json_len, json2_len, xml_len;
  int rc;

  m = fuzz_decode(pm_json_decode, data, size, &rc);
  if (m == NULL) {
    FUZZ_CHECK(rc == PM_EPARSE || rc == PM_EDEPTH || rc == PM_ELIMIT);
    check_confirmation(data, size, NULL, NULL, 0);
    check_heartbeat(data, size, NULL, NULL, 0);
    check_event(data, size, NULL);
    return 0;
  }
  FUZZ_CHECK(pm_msg_encoding(m) == PM_ENC_JSON);
  FUZZ_CHECK(pm__tree_nodes(pm_msg_fields(m), PM_ENC_JSON) <= PM_NODES_MAX);

  FUZZ_CHECK(fuzz_encode(m, PM_ENC_JSON, &json, &json_len) == 0);
  check_confirmation(data, size, m, json, json_len);
  check_heartbeat(data, size, m, json, json_len);
  check_event(data, size, m);
  again = fuzz_decode(pm_json_decode, json, json_len, &rc);
  FUZZ_CHECK(again != NULL);
  FUZZ_CHECK(strcmp(pm_msg_kind(m), pm_msg_kind(again)) == 0);
  FUZZ_CHECK(json_equal(pm_msg_fields(m), pm_msg_fields(again)));
  FUZZ_CHECK(fuzz_encode(again, PM_ENC_JSON, &json2, &json2_len) == 0);
  FUZZ_CHECK(json_len == json2_len && memcmp(json, json2, json_len) == 0);

  rc = fuzz_encode(m, PM_ENC_XML, &xml, &xml_len);
  if (pm__tree_nodes(pm_msg_fields(m), PM_ENC_XML) > PM_NODES_MAX)
    FUZZ_CHECK(rc == PM_ELIMIT);
  else
    FUZZ_CHECK(rc == (fuzz_xml_representable(pm_msg_fields(m)) ? 0 : PM_EINVAL));

  pm_free(xml);
  pm_free(json2);
  pm_free(json);
  pm_msg_free(again);
  pm_msg_free(m);
  return 0;
}
