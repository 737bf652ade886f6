#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "message_internal.h"
#include "pipemsg/error.h"
#include "pipemsg/message.h"

struct pm_msg {
  char *kind;
  json_t *fields;
  pm_encoding encoding;
};

static int name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* len bytes of name; a NUL inside them fails the character test, so a jansson key with an
 * embedded NUL is not mistaken for its prefix. */
int pm__name_valid_n(const char *name, size_t len) {
  if (len == 0 || !name_start(name[0]))
    return 0;
  for (size_t i = 1; i < len; i++)
    if (!name_char(name[i]))
      return 0;
  return 1;
}

bool pm_name_valid(const char *name) {
  return name != NULL && pm__name_valid_n(name, strlen(name));
}

int pm__msg_wrap(const char *kind, size_t kind_len, json_t *fields, pm_encoding enc, pm_msg **out) {
  pm_msg *m = NULL;
  int rc = PM_EINVAL;
  if (kind == NULL || !pm__name_valid_n(kind, kind_len) || !json_is_object(fields) || out == NULL)
    goto fail;
  rc = PM_ENOMEM;
  m = pm__calloc(1, sizeof(*m));
  if (m == NULL)
    goto fail;
  m->kind = pm__malloc(kind_len + 1);
  if (m->kind == NULL)
    goto fail;
  memcpy(m->kind, kind, kind_len);
  m->kind[kind_len] = '\0';
  m->fields = fields;
  m->encoding = enc;
  *out = m;
  return 0;
fail:
  json_decref(fields);
  pm_msg_free(m);
  return rc;
}

int pm_msg_new(const char *kind, pm_msg **out) {
  json_t *fields;
  if (kind == NULL)
    return PM_EINVAL;
  fields = json_object();
  if (fields == NULL)
    return PM_ENOMEM;
  return pm__msg_wrap(kind, strlen(kind), fields, 0, out);
}

void pm_msg_free(pm_msg *m) {
  if (m == NULL)
    return;
  pm__free(m->kind);
  json_decref(m->fields);
  pm__free(m);
}

const char *pm_msg_kind(const pm_msg *m) { return m != NULL ? m->kind : NULL; }

json_t *pm_msg_fields(const pm_msg *m) { return m != NULL ? m->fields : NULL; }

pm_encoding pm_msg_encoding(const pm_msg *m) { return m != NULL ? m->encoding : 0; }

static int tree_check(const json_t *v, int depth, char *why) {
  const char *key;
  size_t key_len, i;
  json_t *child;
  int rc;
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    json_object_keylen_foreach((json_t *)v, key, key_len, child) {
      if (!pm__name_valid_n(key, key_len))
        return pm__reason(why, PM_EINVAL, "invalid member name \"%.60s\"", key);
      if (depth + 1 > PM_NESTING_MAX)
        return pm__reason(why, PM_EDEPTH, "nesting deeper than %d", PM_NESTING_MAX);
      rc = tree_check(child, depth + 1, why);
      if (rc < 0)
        return rc;
    }
    return 0;
  case JSON_ARRAY:
    json_array_foreach(v, i, child) {
      if (depth + 1 > PM_NESTING_MAX)
        return pm__reason(why, PM_EDEPTH, "nesting deeper than %d", PM_NESTING_MAX);
      rc = tree_check(child, depth + 1, why);
      if (rc < 0)
        return rc;
    }
    return 0;
  case JSON_STRING:
    if (strlen(json_string_value(v)) != json_string_length(v))
      return pm__reason(why, PM_EINVAL, "string holds a NUL character");
    return 0;
  default:
    return 0;
  }
}

int pm__tree_check(const json_t *fields, char *why) {
  if (!json_is_object(fields))
    return pm__reason(why, PM_EINVAL, "message fields are not an object");
  /* The fields object is the root element, depth 1; its members are at depth 2. */
  return tree_check(fields, 1, why);
}

int pm__tree_check_at(const json_t *v, int depth, char *why) { return tree_check(v, depth, why); }

/* Empty values encode to <Name/>, which has no text. */
static int is_xml_empty(const json_t *v) {
  return json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0) ||
         (json_is_array(v) && json_array_size(v) == 0) ||
         (json_is_string(v) && json_string_length(v) == 0);
}

/* Adds the nodes of v (one value, its member name not included) to *n; stops early once past
 * PM_NODES_MAX, so a huge tree is not walked to its end. */
static void tree_nodes(const json_t *v, pm_encoding enc, size_t *n) {
  const char *key;
  size_t i;
  json_t *child;
  /* A value, or in XML its element, plus in XML the text of a scalar that has one. */
  *n += 1 + (enc == PM_ENC_XML && !json_is_object(v) && !json_is_array(v) && !is_xml_empty(v));
  if (json_is_object(v)) {
    json_object_foreach((json_t *)v, key, child) {
      if (*n > PM_NODES_MAX)
        return;
      *n += enc == PM_ENC_JSON; /* the member name */
      tree_nodes(child, enc, n);
    }
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, child) {
      if (*n > PM_NODES_MAX)
        return;
      tree_nodes(child, enc, n);
    }
  }
}

size_t pm__tree_nodes(const json_t *fields, pm_encoding enc) {
  size_t n = enc == PM_ENC_JSON ? 2 : 0;
  tree_nodes(fields, enc, &n);
  return n;
}

/* An empty object is what XML <Name/> decodes to; null encodes to <Name/>, so it reads the
 * same way. */
static int is_empty_value(const json_t *v) {
  return json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0);
}

int pm_tree_get_string(const json_t *obj, const char *key, const char **out) {
  const json_t *v;
  if (key == NULL || out == NULL)
    return PM_EINVAL;
  v = json_object_get(obj, key);
  if (v == NULL)
    return PM_ENOENT;
  if (is_empty_value(v)) {
    *out = "";
    return 0;
  }
  /* A lent C string must be the whole value. */
  if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
    return PM_ETYPE;
  *out = json_string_value(v);
  return 0;
}

/* Decimal digits with an optional sign, nothing else: xs:long's lexical form without the
 * white space, which the caller may not expect to be stripped. */
static int parse_int(const char *s, int64_t *out) {
  char *end;
  long long n;
  const char *d = (s[0] == '-' || s[0] == '+') ? s + 1 : s;
  if (*d < '0' || *d > '9')
    return PM_ETYPE;
  errno = 0;
  n = strtoll(s, &end, 10);
  if (errno == ERANGE || *end != '\0')
    return PM_ETYPE;
  *out = n;
  return 0;
}

int pm_tree_get_int(const json_t *obj, const char *key, int64_t *out) {
  const json_t *v;
  if (key == NULL || out == NULL)
    return PM_EINVAL;
  v = json_object_get(obj, key);
  if (v == NULL)
    return PM_ENOENT;
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return 0;
  }
  if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
    return parse_int(json_string_value(v), out);
  return PM_ETYPE;
}

int pm_tree_get_bool(const json_t *obj, const char *key, bool *out) {
  const json_t *v;
  const char *s;
  if (key == NULL || out == NULL)
    return PM_EINVAL;
  v = json_object_get(obj, key);
  if (v == NULL)
    return PM_ENOENT;
  if (json_is_boolean(v)) {
    *out = json_is_true(v);
    return 0;
  }
  if (!json_is_string(v))
    return PM_ETYPE;
  s = json_string_value(v);
  if (json_string_length(v) == 4 && strcmp(s, "true") == 0) {
    *out = true;
    return 0;
  }
  if (json_string_length(v) == 5 && strcmp(s, "false") == 0) {
    *out = false;
    return 0;
  }
  return PM_ETYPE;
}

int pm_msg_get_string(const pm_msg *m, const char *key, const char **out) {
  return m != NULL ? pm_tree_get_string(m->fields, key, out) : PM_EINVAL;
}

int pm_msg_get_int(const pm_msg *m, const char *key, int64_t *out) {
  return m != NULL ? pm_tree_get_int(m->fields, key, out) : PM_EINVAL;
}

int pm_msg_get_bool(const pm_msg *m, const char *key, bool *out) {
  return m != NULL ? pm_tree_get_bool(m->fields, key, out) : PM_EINVAL;
}

int pm_msg_set_tree(pm_msg *m, const char *key, json_t *value) {
  if (m == NULL || value == NULL || !pm_name_valid(key)) {
    json_decref(value);
    return PM_EINVAL;
  }
  /* json_object_set_new releases value when it fails, which with a valid key is only out of
   * memory. */
  return json_object_set_new(m->fields, key, value) == 0 ? 0 : PM_ENOMEM;
}

int pm_msg_set_string(pm_msg *m, const char *key, const char *value) {
  json_t *v, *probe;
  int rc;
  if (value == NULL)
    return PM_EINVAL;
  v = json_string(value);
  if (v != NULL)
    return pm_msg_set_tree(m, key, v);
  /* jansson refuses invalid UTF-8 and failed allocations alike; an empty string needs no
   * UTF-8 check, so whether it can be made tells the two apart. */
  probe = json_string("");
  rc = probe != NULL ? PM_EINVAL : PM_ENOMEM;
  json_decref(probe);
  return rc;
}

int pm_msg_set_int(pm_msg *m, const char *key, int64_t value) {
  json_t *v = json_integer((json_int_t)value);
  return v != NULL ? pm_msg_set_tree(m, key, v) : PM_ENOMEM;
}

int pm_msg_set_bool(pm_msg *m, const char *key, bool value) {
  return pm_msg_set_tree(m, key, json_boolean(value));
}
