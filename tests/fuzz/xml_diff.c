#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pipemsg/pipemsg.h"
#include "same_tree.h"
#include "xml_diff.h"
#include "xml_fast.h"

const char *xml_diff(const uint8_t *p, size_t len) {
  char slow_why[PM_REASON_MAX] = "", why[PM_REASON_MAX] = "";
  pm_msg *slow = NULL, *m = NULL;
  const char *kind = NULL, *what = NULL;
  json_t *fast = pm__xml_fast_decode(p, len, &kind);
  int slow_rc = pm__xml_slow_decode(p, len, &slow, slow_why);
  int rc = pm_xml_decode(p, len, &m, why);
  if (fast != NULL && slow_rc < 0)
    what = "the fast path accepted what libxml2 rejects";
  else if (fast != NULL && strcmp(kind, pm_msg_kind(slow)) != 0)
    what = "the fast path read another kind";
  else if (fast != NULL && !same_tree(fast, pm_msg_fields(slow)))
    what = "the fast path built another tree";
  else if (rc != slow_rc)
    what = "pm_xml_decode gave another code than libxml2's path";
  else if (rc < 0 && strcmp(why, slow_why) != 0)
    what = "pm_xml_decode gave another reason than libxml2's path";
  else if (rc == 0 && (strcmp(pm_msg_kind(m), pm_msg_kind(slow)) != 0 ||
                       !same_tree(pm_msg_fields(m), pm_msg_fields(slow))))
    what = "pm_xml_decode gave another message than libxml2's path";
  json_decref(fast);
  pm_msg_free(slow);
  pm_msg_free(m);
  return what;
}
