#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "internal.h"
#include "pipemsg/error.h"

#define AT(obj, off, type) ((type *)((char *)(obj) + (off)))
#define AT_CONST(obj, off, type) ((const type *)((const char *)(obj) + (off)))

const char *pm__client_enum_name(const char *const *values, size_t n, int value) {
  return value >= 1 && (size_t)value <= n ? values[value - 1] : "Unknown";
}

static json_t *encode_list(const pm__cl_field *f, const void *obj) {
  const char *const *items = *AT_CONST(obj, f->offset, char *const *);
  size_t n = *AT_CONST(obj, f->count_offset, size_t);
  json_t *a = json_array();
  for (size_t i = 0; a != NULL && i < n; i++) {
    if (items[i] == NULL || json_array_append_new(a, json_string(items[i])) < 0) {
      json_decref(a);
      a = NULL;
    }
  }
  return a;
}

/* Params hold strings, booleans, integers and lists of strings (contract.py refuses more). */
static json_t *encode_field(const pm__cl_field *f, const void *obj) {
  switch (f->kind) {
  case PM__CL_STRING: {
    const char *s = *AT_CONST(obj, f->offset, char *);
    return s != NULL ? json_string(s) : NULL;
  }
  case PM__CL_BOOL:
    return json_boolean(*AT_CONST(obj, f->offset, bool));
  case PM__CL_INT:
    return json_integer((json_int_t)*AT_CONST(obj, f->offset, int64_t));
  case PM__CL_LIST:
    return f->item == PM__CL_STRING ? encode_list(f, obj) : NULL;
  default:
    return NULL;
  }
}

int pm__client_encode(const pm__cl_type *t, const void *obj, json_t **out, char *why) {
  json_t *o;
  *out = NULL;
  if (obj == NULL)
    return 0;
  o = json_object();
  if (o == NULL)
    return PM_ENOMEM;
  for (size_t i = 0; i < t->n_fields; i++) {
    const pm__cl_field *f = &t->fields[i];
    json_t *v;
    if (f->optional && !*AT_CONST(obj, f->has_offset, bool))
      continue;
    v = encode_field(f, obj);
    if (v == NULL || json_object_set_new(o, f->name, v) < 0) {
      json_decref(o);
      return pm__reason(why, PM_EINVAL, "parameter %s: no value (a NULL string or list item)",
                        f->name);
    }
  }
  if (json_object_size(o) == 0)
    json_decref(o);
  else
    *out = o;
  return 0;
}

static int decode_value(pm__cl_kind kind, const pm__cl_field *f, const json_t *v, void *at,
                        char *why);

static int decode_list(const pm__cl_field *f, const json_t *v, void *obj, char *why) {
  size_t n = json_array_size(v);
  char *items;
  if (!json_is_array(v))
    return pm__reason(why, PM_ETYPE, "%s: not a list", f->name);
  items = n ? pm__calloc(n, f->item_size) : NULL;
  if (n && items == NULL)
    return PM_ENOMEM;
  *AT(obj, f->offset, void *) = items;
  *AT(obj, f->count_offset, size_t) = n;
  for (size_t i = 0; i < n; i++) {
    int rc = decode_value(f->item, f, json_array_get(v, i), items + i * f->item_size, why);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int decode_value(pm__cl_kind kind, const pm__cl_field *f, const json_t *v, void *at,
                        char *why) {
  switch (kind) {
  case PM__CL_STRING:
    if (!json_is_string(v))
      return pm__reason(why, PM_ETYPE, "%s: not a string", f->name);
    *(char **)at = pm__strdup(json_string_value(v));
    return *(char **)at != NULL ? 0 : PM_ENOMEM;
  case PM__CL_BOOL:
    if (!json_is_boolean(v))
      return pm__reason(why, PM_ETYPE, "%s: not a boolean", f->name);
    *(bool *)at = json_is_true(v);
    return 0;
  case PM__CL_INT:
    if (!json_is_integer(v))
      return pm__reason(why, PM_ETYPE, "%s: not an integer", f->name);
    *(int64_t *)at = (int64_t)json_integer_value(v);
    return 0;
  case PM__CL_ENUM:
    if (!json_is_string(v))
      return pm__reason(why, PM_ETYPE, "%s: not a string", f->name);
    /* A value this build does not know stays 0 (unknown), so a newer service still works. */
    for (size_t i = 0; i < f->n_values; i++)
      if (strcmp(f->values[i], json_string_value(v)) == 0)
        *(int *)at = (int)i + 1;
    return 0;
  case PM__CL_JSON: {
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
      return PM_ENOMEM;
    *(char **)at = pm__strdup(text);
    free(text);
    return *(char **)at != NULL ? 0 : PM_ENOMEM;
  }
  case PM__CL_OBJECT: {
    int rc = pm__client_decode(f->type, v, at, why);
    return rc;
  }
  case PM__CL_LIST:
    return PM_EINVAL;
  }
  return PM_EINVAL;
}

static int decode_fields(const pm__cl_type *t, const json_t *json, void *obj, char *why) {
  if (!json_is_object(json))
    return pm__reason(why, PM_ETYPE, "Data is not an object");
  for (size_t i = 0; i < t->n_fields; i++) {
    const pm__cl_field *f = &t->fields[i];
    const json_t *v = json_object_get(json, f->name);
    int rc;
    if (v == NULL) {
      if (f->optional)
        continue;
      return pm__reason(why, PM_ESCHEMA, "%s: missing", f->name);
    }
    if (f->optional)
      *AT(obj, f->has_offset, bool) = true;
    rc = f->kind == PM__CL_LIST ? decode_list(f, v, obj, why)
                                : decode_value(f->kind, f, v, AT(obj, f->offset, char), why);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int pm__client_decode(const pm__cl_type *t, const json_t *json, void *obj, char *why) {
  int rc;
  memset(obj, 0, t->size);
  rc = decode_fields(t, json, obj, why);
  if (rc < 0)
    pm__client_typed_free(t, obj);
  return rc;
}

static void free_value(pm__cl_kind kind, const pm__cl_field *f, void *at) {
  if (kind == PM__CL_STRING || kind == PM__CL_JSON)
    pm__free(*(char **)at);
  else if (kind == PM__CL_OBJECT)
    pm__client_typed_free(f->type, at);
}

void pm__client_typed_free(const pm__cl_type *t, void *obj) {
  if (obj == NULL)
    return;
  for (size_t i = 0; i < t->n_fields; i++) {
    const pm__cl_field *f = &t->fields[i];
    if (f->kind == PM__CL_LIST) {
      char *items = *AT(obj, f->offset, char *);
      size_t n = *AT(obj, f->count_offset, size_t);
      for (size_t j = 0; items != NULL && j < n; j++)
        free_value(f->item, f, items + j * f->item_size);
      pm__free(items);
    } else {
      free_value(f->kind, f, AT(obj, f->offset, char));
    }
  }
  memset(obj, 0, t->size);
}
