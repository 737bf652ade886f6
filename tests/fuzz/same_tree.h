#ifndef PM_SAME_TREE_H
#define PM_SAME_TREE_H

/* The one notion of "the same tree" of the differential checks (json_diff.c, xml_diff.c):
 * equal values and the same member order, which json_equal alone does not compare but the
 * encoders write out. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static inline int same_tree(const json_t *a, const json_t *b) {
  char *da, *db;
  int same;
  if (!json_equal(a, b))
    return 0;
  da = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
  db = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
  same = da != NULL && db != NULL && strcmp(da, db) == 0;
  free(da);
  free(db);
  return same;
}

#endif
