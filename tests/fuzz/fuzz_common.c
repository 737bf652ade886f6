#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message_internal.h"

/* Bytes after the PM_REASON_MAX a decoder may use, filled with a canary. */
#define WHY_CANARY_SIZE 32
#define WHY_CANARY 0x5a

void fuzz_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
  fflush(stderr);
  __builtin_trap();
}

static void read_fields(const pm_msg *m) {
  const char *key, *s;
  json_t *v;
  int64_t i;
  bool b;
  int rc;
  json_object_foreach(pm_msg_fields(m), key, v) {
    rc = pm_msg_get_string(m, key, &s);
    FUZZ_CHECK(rc == 0 || rc == PM_ETYPE);
    if (rc == 0)
      FUZZ_CHECK(s != NULL);
    rc = pm_msg_get_int(m, key, &i);
    FUZZ_CHECK(rc == 0 || rc == PM_ETYPE);
    rc = pm_msg_get_bool(m, key, &b);
    FUZZ_CHECK(rc == 0 || rc == PM_ETYPE);
    /* Empty values read as "", as <Name/> does. */
    if (json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0))
      FUZZ_CHECK(pm_msg_get_string(m, key, &s) == 0 && s[0] == '\0');
  }
  FUZZ_CHECK(pm_msg_get_string(m, "no such field!", &s) == PM_ENOENT);
}

pm_msg *fuzz_decode(fuzz_decoder decode, const void *buf, size_t len, int *rc) {
  static pm_msg *const untouched = (pm_msg *)&untouched;
  char why[PM_REASON_MAX + WHY_CANARY_SIZE];
  pm_msg *m = untouched;
  memset(why, WHY_CANARY, sizeof(why));
  *rc = decode(buf, len, &m, why);
  for (size_t i = PM_REASON_MAX; i < sizeof(why); i++)
    FUZZ_CHECK((unsigned char)why[i] == WHY_CANARY);
  if (*rc < 0) {
    FUZZ_CHECK(m == untouched);
    FUZZ_CHECK(memchr(why, '\0', PM_REASON_MAX) != NULL);
    FUZZ_CHECK(why[0] != '\0' && (unsigned char)why[0] != WHY_CANARY);
    return NULL;
  }
  FUZZ_CHECK(*rc == 0);
  FUZZ_CHECK(m != NULL && m != untouched);
  FUZZ_CHECK(pm_name_valid(pm_msg_kind(m)));
  FUZZ_CHECK(json_is_object(pm_msg_fields(m)));
  FUZZ_CHECK(pm__tree_check(pm_msg_fields(m), NULL) == 0);
  read_fields(m);
  return m;
}

int fuzz_encode(const pm_msg *m, pm_encoding enc, uint8_t **out, size_t *len) {
  pm_encoding detected;
  int rc;
  *out = NULL;
  *len = 0;
  rc = pm_msg_encode(m, enc, out, len);
  if (rc < 0) {
    FUZZ_CHECK(*out == NULL);
    return rc;
  }
  FUZZ_CHECK(rc == 0 && *out != NULL && *len > 0);
  FUZZ_CHECK(pm_detect_encoding(*out, *len, &detected) == 0 && detected == enc);
  return 0;
}

int fuzz_xml_representable(const json_t *v) {
  const char *key, *s;
  size_t i, n;
  json_t *child;
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    json_object_foreach((json_t *)v, key, child) if (!fuzz_xml_representable(child)) return 0;
    return 1;
  case JSON_ARRAY:
    json_array_foreach(v, i, child) if (!fuzz_xml_representable(child)) return 0;
    return 1;
  case JSON_STRING:
    s = json_string_value(v);
    n = json_string_length(v);
    for (i = 0; i < n; i++) {
      unsigned char c = (unsigned char)s[i];
      if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
        return 0;
      /* U+FFFE and U+FFFF are EF BF BE and EF BF BF in UTF-8. */
      if (c == 0xef && i + 2 < n && (unsigned char)s[i + 1] == 0xbf &&
          ((unsigned char)s[i + 2] == 0xbe || (unsigned char)s[i + 2] == 0xbf))
        return 0;
    }
    return 1;
  default:
    return 1;
  }
}

/* As the XML encoder prints a real: %.17g with the decimal point forced to '.'. */
static json_t *real_text(double d) {
  char s[40];
  snprintf(s, sizeof(s), "%.17g", d);
  for (char *p = s; *p != '\0'; p++)
    if (strchr("0123456789+-eE", *p) == NULL)
      *p = '.';
  return json_string(s);
}

static int is_empty(const json_t *v) {
  return json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0) ||
         (json_is_array(v) && json_array_size(v) == 0) ||
         (json_is_string(v) && json_string_length(v) == 0);
}

static json_t *normalise(const json_t *v, int is_root) {
  char num[32];
  const char *key;
  size_t i;
  json_t *child, *out, *n;
  if (is_empty(v))
    return json_object();
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    if (!is_root && json_object_size(v) == 1 && json_object_get(v, "Item") != NULL) {
      out = json_array();
      n = normalise(json_object_get(v, "Item"), 0);
      if (out == NULL || n == NULL || json_array_append_new(out, n) < 0)
        goto fail;
      return out;
    }
    out = json_object();
    if (out == NULL)
      return NULL;
    json_object_foreach((json_t *)v, key, child) {
      n = normalise(child, 0);
      if (n == NULL || json_object_set_new(out, key, n) < 0)
        goto fail;
    }
    return out;
  case JSON_ARRAY:
    out = json_array();
    if (out == NULL)
      return NULL;
    json_array_foreach(v, i, child) {
      n = normalise(child, 0);
      if (n == NULL || json_array_append_new(out, n) < 0)
        goto fail;
    }
    return out;
  case JSON_STRING:
    return json_stringn(json_string_value(v), json_string_length(v));
  case JSON_INTEGER:
    snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return json_string(num);
  case JSON_REAL:
    return real_text(json_real_value(v));
  case JSON_TRUE:
    return json_string("true");
  case JSON_FALSE:
    return json_string("false");
  default:
    return NULL;
  }
fail:
  json_decref(out);
  return NULL;
}

json_t *fuzz_normalise(const json_t *fields) { return normalise(fields, 1); }

void fuzz_check_same_tree(const json_t *a, const json_t *b, const char *what) {
  json_t *na = fuzz_normalise(a), *nb = fuzz_normalise(b);
  FUZZ_CHECK(na != NULL && nb != NULL);
  if (!json_equal(na, nb)) {
    char *sa = json_dumps(na, JSON_COMPACT | JSON_ENCODE_ANY);
    char *sb = json_dumps(nb, JSON_COMPACT | JSON_ENCODE_ANY);
    fprintf(stderr, "%s: trees differ\n  before: %s\n  after:  %s\n", what, sa, sb);
    free(sa);
    free(sb);
    fuzz_fail(__FILE__, __LINE__, what);
  }
  json_decref(na);
  json_decref(nb);
}
