#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json_diff.h"
#include "json_parse.h"
#include "message_internal.h"
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

/* pm__json_parse_at (the event client's parse of an Event's Data) against the parse (rc,
 * ours) and the model's check after it: at a field's depth, and at one where whatever is
 * nested in a member of the root is too deep. */
static const char *model_diff(const uint8_t *p, size_t len, int rc, const json_t *ours) {
  static const int depths[] = {2, PM_NESTING_MAX - 1};
  for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
    json_t *at = NULL;
    int want = rc == 0 && pm__tree_check_at(ours, depths[i], NULL) == 0;
    int got = pm__json_parse_at(p, len, depths[i], &at) == 0;
    int same = !got || same_tree(at, ours);
    json_decref(at);
    if (got != want)
      return got ? "pm__json_parse_at took what the model refuses"
                 : "pm__json_parse_at refused what the parse and the model take";
    if (!same)
      return "pm__json_parse_at built another tree";
  }
  return NULL;
}


/* The message the general parse makes of p, as pm_json_decode takes it without its fast path:
 * a one-member object whose member is named by a name and holds fields that pass
 * pm__tree_check. NULL otherwise. */
static json_t *general_message(const uint8_t *p, size_t len, const char **kind) {
  json_t *root = NULL, *fields = NULL;
  if (pm__json_parse(p, len, &root, NULL) == 0 && json_is_object(root) &&
      json_object_size(root) == 1) {
    *kind = json_object_iter_key(json_object_iter(root));
    fields = json_object_iter_value(json_object_iter(root));
    if (!pm_name_valid(*kind) || pm__tree_check(fields, NULL) < 0)
      fields = NULL;
  }
  if (fields != NULL)
    return root;
  json_decref(root);
  return NULL;
}

/* pm__json_parse_message takes only what the general parse takes as a message, the same kind
 * and the same fields. */
static const char *message_diff(const uint8_t *p, size_t len) {
  const char *kind = NULL, *general_kind = NULL;
  size_t kind_len = 0;
  json_t *fields = NULL, *root;
  const char *what = NULL;
  if (pm__json_parse_message(p, len, &kind, &kind_len, &fields) != 1)
    return NULL;
  root = general_message(p, len, &general_kind);
  if (root == NULL)
    what = "the message fast path took what the general parse refuses";
  else if (strlen(general_kind) != kind_len || memcmp(general_kind, kind, kind_len) != 0)
    what = "the message fast path read another kind";
  else if (!same_tree(fields, json_object_iter_value(json_object_iter(root))))
    what = "the message fast path built other fields";
  json_decref(root);
  json_decref(fields);
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
  if (what == NULL)
    what = model_diff(p, len, rc, ours);
  json_decref(ours);
  json_decref(theirs);
  if (what == NULL)
    what = message_diff(p, len);
  return what != NULL ? what : encode_diff(p, len);
}
