#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json_diff.h"
#include "json_parse.h"
#include "pipemsg/pipemsg.h"
#include "same_tree.h"

/* jansson's verdict as pm_json_decode reported it before it had its own parser. */
static int jansson_code(const json_error_t *err) {
  if (err->text[0] == '\0')
    return PM_ENOMEM;
  switch (json_error_code(err)) {
  case json_error_stack_overflow:
    return PM_EDEPTH;
  case json_error_out_of_memory:
    return PM_ENOMEM;
  default:
    return PM_EPARSE;
  }
}

/* pm__json_encode_pieces joined against pm_json_encode's bytes (ours, len bytes). */
static int pieces_same(const pm_msg *m, const uint8_t *ours, size_t len) {
  uint8_t *buf = NULL;
  pm__piece *pc = NULL;
  size_t n = 0, total = 0, at = 0;
  int same = pm__json_encode_pieces(m, &buf, &pc, &n, &total) == 0 && total == len;
  for (size_t i = 0; same && i < n; i++) {
    same = pc[i].len > 0 && pc[i].len <= len - at && memcmp(ours + at, pc[i].p, pc[i].len) == 0;
    at += pc[i].len;
  }
  same = same && at == len;
  pm_free(buf);
  pm_free(pc);
  return same;
}

/* pm_json_encode against "{\"Kind\":" + jansson's compact dump of the fields + "}", and the
 * pieces the command client writes against pm_json_encode. */
static const char *encode_diff(const uint8_t *p, size_t len) {
  pm_msg *m = NULL;
  uint8_t *ours = NULL;
  size_t ours_len = 0;
  char *fields, *theirs;
  const char *what = NULL;
  size_t theirs_len;
  if (pm_json_decode(p, len, &m, NULL) < 0)
    return NULL;
  fields = json_dumps(pm_msg_fields(m), JSON_COMPACT);
  theirs_len = strlen(pm_msg_kind(m)) + (fields ? strlen(fields) : 0) + 6;
  theirs = malloc(theirs_len);
  if (fields == NULL || theirs == NULL || pm_json_encode(m, &ours, &ours_len) < 0) {
    what = "encode failed";
  } else {
    theirs_len = (size_t)snprintf(theirs, theirs_len, "{\"%s\":%s}", pm_msg_kind(m), fields);
    if (ours_len != theirs_len || memcmp(ours, theirs, ours_len) != 0)
      what = "pm_json_encode differs from jansson's dump";
    else if (!pieces_same(m, ours, ours_len))
      what = "pm__json_encode_pieces differs from pm_json_encode";
  }
  pm_free(ours);
  free(theirs);
  free(fields);
  pm_msg_free(m);
  return what;
}

const char *json_diff(const uint8_t *p, size_t len) {
  json_error_t err;
  json_t *ours = NULL, *theirs;
  const char *what = NULL;
  char why[PM_REASON_MAX] = "";
  int rc, want;
  memset(&err, 0, sizeof(err));
  theirs = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &err);
  want = theirs != NULL ? 0 : jansson_code(&err);
  rc = pm__json_parse(p, len, &ours, why);
  /* The one difference (json_parse.c): jansson drops a raw NUL byte that follows a number or
   * a word, where any raw NUL is an error here. So with one, only a rejection counts. */
  if (memchr(p, '\0', len) != NULL) {
    if (rc == 0)
      what = "accepted a raw NUL byte";
    else if (rc != PM_EPARSE && rc != PM_EDEPTH)
      what = "rejected a raw NUL byte with another code than PM_EPARSE or PM_EDEPTH";
    else if (why[0] == '\0')
      what = "rejected without a reason";
    json_decref(ours);
    json_decref(theirs);
    return what;
  }
  if (rc != want)
    what = rc == 0 ? "accepted what jansson rejects"
           : want == 0 ? "rejected what jansson accepts"
                       : "rejected with another code than jansson";
  else if (rc < 0 && why[0] == '\0')
    what = "rejected without a reason";
  else if (rc == 0 && !same_tree(ours, theirs))
    what = "a tree other than jansson's";
  json_decref(ours);
  json_decref(theirs);
  return what != NULL ? what : encode_diff(p, len);
}
