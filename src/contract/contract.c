#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "internal.h"
#include "pipemsg/error.h"

/* Longest name a "did you mean" compares; longer words get no suggestion. */
#define CLOSEST_NAME_MAX 64
/* Deepest path a reason names (Commands[3].Params[1].Name is 4 parts). */
#define PATH_MAX_BYTES 96

/* ---- formats ---------------------------------------------------------------------------- */

/* RFC 1035 limits. */
#define DOMAIN_MAX 253
#define LABEL_MAX 63

bool pm__contract_format_domain(const char *d, size_t len) {
  size_t label = 0;
  if (len >= 2 && d[0] == '*' && d[1] == '.') {
    d += 2;
    len -= 2;
  }
  if (len == 0 || len > DOMAIN_MAX || d[0] == '.' || d[len - 1] == '.' || d[len - 1] == '-')
    return false;
  for (size_t i = 0; i < len; i++) {
    char ch = d[i];
    if (ch == '.') {
      if (label == 0 || d[i - 1] == '-')
        return false;
      label = 0;
    } else if (isalnum((unsigned char)ch) || (ch == '-' && label > 0)) {
      if (++label > LABEL_MAX)
        return false;
    } else {
      return false;
    }
  }
  return true;
}

/* ---- lookups ---------------------------------------------------------------------------- */

const pm__ct_command *pm__contract_command(const char *name, bool test_commands) {
  for (size_t i = 0; name != NULL && i < pm__contract_n_commands; i++) {
    const pm__ct_command *c = &pm__contract_commands[i];
    if (strcmp(c->name, name) == 0)
      return !c->test_only || test_commands ? c : NULL;
  }
  return NULL;
}

const pm__ct_event *pm__contract_event(const char *type) {
  for (size_t i = 0; type != NULL && i < pm__contract_n_events; i++)
    if (strcmp(pm__contract_events[i].type, type) == 0)
      return &pm__contract_events[i];
  return NULL;
}

/* Case-insensitive Levenshtein distance of two words of at most CLOSEST_NAME_MAX bytes. */
static size_t distance(const char *a, size_t la, const char *b, size_t lb) {
  size_t row[CLOSEST_NAME_MAX + 1];
  for (size_t j = 0; j <= lb; j++)
    row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      size_t best = diag + cost;
      if (up + 1 < best)
        best = up + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

const char *pm__contract_closest(const char *word, const char *const *names, size_t n) {
  size_t lw = word != NULL ? strlen(word) : CLOSEST_NAME_MAX + 1, best = SIZE_MAX;
  const char *found = NULL;
  if (lw > CLOSEST_NAME_MAX)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    size_t ln = strlen(names[i]), d;
    if (ln > CLOSEST_NAME_MAX)
      continue;
    d = distance(word, lw, names[i], ln);
    /* A likely misspelling: a third of the name at most, a case difference always. */
    if (d < best && (d == 0 || d <= ln / 3 || d <= 1)) {
      best = d;
      found = names[i];
    }
  }
  return found;
}

const char *pm__contract_closest_param(const pm__ct_command *c, const char *word) {
  const char *names[32];
  size_t n = 0;
  for (size_t i = 0; i < c->n_params && n < sizeof(names) / sizeof(names[0]); i++)
    names[n++] = c->params[i].name;
  return pm__contract_closest(word, names, n);
}

const char *pm__contract_closest_command(const char *word, bool test_commands) {
  const char *names[64];
  size_t n = 0;
  for (size_t i = 0; i < pm__contract_n_commands && n < sizeof(names) / sizeof(names[0]); i++)
    if (!pm__contract_commands[i].test_only || test_commands)
      names[n++] = pm__contract_commands[i].name;
  return pm__contract_closest(word, names, n);
}

/* ---- checks ----------------------------------------------------------------------------- */

typedef struct {
  bool from_xml, strict;
  char *why;
  const char *noun; /* what a member is called in reasons: "parameter" or "field" */
} check_ctx;

static int object_check(const check_ctx *x, const pm__ct_field *fields, size_t n,
                        const json_t *tree, const char *path, const char *what, json_t **out);

static int bad(const check_ctx *x, const char *path, const pm__ct_type *t, const char *got) {
  return pm__reason(x->why, PM_ESCHEMA, "%s must be %s (%s)", path, t->expect, got);
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "got an object";
  case JSON_ARRAY:
    return "got a list";
  case JSON_STRING:
    return "got a string";
  case JSON_INTEGER:
    return "got an integer";
  case JSON_REAL:
    return "got a real number";
  case JSON_NULL:
    return "got null";
  default:
    return "got a boolean";
  }
}

/* XML has no empty string, list or object apart: <Name/> decodes to {}. */
static bool xml_empty(const check_ctx *x, const json_t *v) {
  return x->from_xml && json_is_object(v) && json_object_size(v) == 0;
}

/* [+-]?[0-9]+ within 64 bits, nothing else (as pm_tree_get_int reads text). */
static bool parse_int(const char *s, int64_t *out) {
  char *end;
  long long v;
  const char *p = s + (*s == '+' || *s == '-');
  if (*p < '0' || *p > '9')
    return false;
  for (; *p != '\0'; p++)
    if (*p < '0' || *p > '9')
      return false;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  *out = (int64_t)v;
  return true;
}

static bool digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS, optional fraction, Z or an offset. */
bool pm__ct_time_valid(const char *s, size_t len) {
  size_t i = 19;
  if (len < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
      !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) ||
      s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
    return false;
  if (s[i] == '.') {
    size_t from = ++i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++;
    if (i == from)
      return false;
  }
  if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z'))
    return true;
  return i + 6 == len && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) &&
         s[i + 3] == ':' && digits(s + i + 4, 2);
}

/* "got 'value'" for a short value of printable ASCII, else "got another value": the reason
 * goes into XML answers and logs, which cannot carry every byte. */
static const char *got_value(const char *s, size_t len, char got[static 48]) {
  bool plain = len <= 32;
  for (size_t i = 0; plain && i < len; i++)
    plain = s[i] >= ' ' && s[i] < 0x7f && s[i] != '\'';
  if (plain)
    snprintf(got, 48, "got '%.*s'", (int)len, s);
  else
    snprintf(got, 48, "got another value");
  return got;
}

static int string_check(const check_ctx *x, const pm__ct_type *t, const char *s, size_t len,
                        const char *path) {
  char got[48];
  if (t->kind == PM__CT_TIME)
    return pm__ct_time_valid(s, len) ? 0 : bad(x, path, t, "not such a time");
  if (t->kind == PM__CT_ENUMERATION) {
    for (size_t i = 0; i < t->n_values; i++)
      if (strcmp(t->values[i], s) == 0 && strlen(s) == len)
        return 0;
    return bad(x, path, t, got_value(s, len, got));
  }
  if (len < t->min_length || (t->max_length > 0 && len > t->max_length)) {
    snprintf(got, sizeof(got), "got %zu bytes", len);
    return bad(x, path, t, got);
  }
  for (size_t i = 0; t->charset != NULL && i < len; i++) {
    const char *set = i == 0 && t->first != NULL ? t->first : t->charset;
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\0' || strchr(set, ch) == NULL) {
      /* Only printable ASCII is quoted back: the reason goes into XML answers and logs. */
      if (ch >= ' ' && ch < 0x7f && ch != '\'')
        snprintf(got, sizeof(got), "'%c' at byte %zu", ch, i + 1);
      else
        snprintf(got, sizeof(got), "byte 0x%02x at byte %zu", ch, i + 1);
      return bad(x, path, t, got);
    }
  }
  if (t->format != NULL && !t->format->valid(s, len))
    return bad(x, path, t, got_value(s, len, got));
  return 0;
}

/* Checks v (not NULL) against t; *out gets the value in its declared type (a new reference). */
static int value_check(const check_ctx *x, const pm__ct_type *t, const json_t *v,
                       const char *path, json_t **out) {
  int64_t n;
  char got[48];
  switch (t->kind) {
  case PM__CT_STRING:
  case PM__CT_TIME:
  case PM__CT_ENUMERATION: {
    int rc;
    if (xml_empty(x, v))
      v = NULL;
    else if (!json_is_string(v))
      return bad(x, path, t, json_kind(v));
    rc = v != NULL ? string_check(x, t, json_string_value(v), json_string_length(v), path)
                   : string_check(x, t, "", 0, path);
    if (rc < 0)
      return rc;
    *out = v != NULL ? json_incref((json_t *)v) : json_string("");
    break;
  }
  case PM__CT_BOOLEAN:
    if (json_is_boolean(v)) {
      *out = json_incref((json_t *)v);
    } else if (x->from_xml && json_is_string(v) &&
               (strcmp(json_string_value(v), "true") == 0 ||
                strcmp(json_string_value(v), "false") == 0)) {
      *out = json_boolean(json_string_value(v)[0] == 't');
    } else {
      return bad(x, path, t, json_kind(v));
    }
    break;
  case PM__CT_INTEGER:
    if (json_is_integer(v))
      n = json_integer_value(v);
    else if (!(x->from_xml && json_is_string(v) && parse_int(json_string_value(v), &n)))
      return bad(x, path, t,
                 x->from_xml && json_is_string(v) ? "got text that is not one" : json_kind(v));
    if (n < t->min || n > t->max) {
      snprintf(got, sizeof(got), "got %lld", (long long)n);
      return bad(x, path, t, got);
    }
    *out = json_integer((json_int_t)n);
    break;
  case PM__CT_SCALAR:
    if (!json_is_string(v) && !json_is_integer(v) && !json_is_boolean(v))
      return bad(x, path, t, json_kind(v));
    *out = json_incref((json_t *)v);
    break;
  case PM__CT_LIST: {
    size_t i;
    json_t *item;
    if (xml_empty(x, v)) {
      *out = json_array();
      break;
    }
    if (!json_is_array(v))
      return bad(x, path, t, json_kind(v));
    if (t->max_items > 0 && json_array_size(v) > t->max_items) {
      snprintf(got, sizeof(got), "got %zu items", json_array_size(v));
      return bad(x, path, t, got);
    }
    *out = json_array();
    if (*out == NULL)
      return pm__reason(x->why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
    json_array_foreach(v, i, item) {
      char sub[PATH_MAX_BYTES];
      json_t *typed = NULL;
      int rc;
      snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
      rc = value_check(x, t->items, item, sub, &typed);
      if (rc == 0 && json_array_append_new(*out, typed) < 0)
        rc = pm__reason(x->why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
      if (rc < 0) {
        json_decref(*out);
        *out = NULL;
        return rc;
      }
    }
    break;
  }
  case PM__CT_TREE:
    if (!json_is_object(v))
      return bad(x, path, t, json_kind(v));
    *out = json_incref((json_t *)v);
    break;
  default: /* PM__CT_OBJECT */
    if (!json_is_object(v))
      return bad(x, path, t, json_kind(v));
    return object_check(x, t->fields, t->n_fields, v, path, path, out);
  }
  return *out != NULL ? 0 : pm__reason(x->why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
}

static const pm__ct_field *field_named(const pm__ct_field *fields, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(fields[i].name, name) == 0)
      return &fields[i];
  return NULL;
}

static int unknown_member(const check_ctx *x, const pm__ct_field *fields, size_t n,
                          const char *key, const char *path, const char *what) {
  const char *names[64];
  const char *closest;
  size_t k = 0;
  for (size_t i = 0; i < n && k < sizeof(names) / sizeof(names[0]); i++)
    names[k++] = fields[i].name;
  closest = pm__contract_closest(key, names, k);
  const char *noun = path[0] != '\0' ? "field" : x->noun, *dot = path[0] != '\0' ? "." : "";
  if (closest != NULL)
    return pm__reason(x->why, PM_ESCHEMA, "unknown %s '%.64s%s%.64s' for %.64s; did you mean '%s'?",
                      noun, path, dot, key, what, closest);
  if (n == 0)
    return pm__reason(x->why, PM_ESCHEMA, "unknown %s '%.64s%s%.64s': %.64s has none", noun, path,
                      dot, key, what);
  return pm__reason(x->why, PM_ESCHEMA, "unknown %s '%.64s%s%.64s' for %.64s", noun, path, dot,
                    key, what);
}

/* path: the object's own path ("" at the top), what: the command or type it belongs to. */
static int object_check(const check_ctx *x, const pm__ct_field *fields, size_t n,
                        const json_t *tree, const char *path, const char *what, json_t **out) {
  const char *key;
  json_t *value, *typed = NULL;
  json_t *result = json_object();
  int rc = 0;
  if (result == NULL)
    return pm__reason(x->why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
  json_object_foreach((json_t *)tree, key, value) {
    const pm__ct_field *f = field_named(fields, n, key);
    char sub[PATH_MAX_BYTES];
    if (f == NULL) {
      if (x->strict) {
        rc = unknown_member(x, fields, n, key, path, what);
        goto fail;
      }
      if (json_object_set(result, key, value) < 0)
        goto oom;
      continue;
    }
    snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] != '\0' ? "." : "", key);
    rc = value_check(x, f->type, value, sub, &typed);
    if (rc < 0)
      goto fail;
    if (json_object_set_new(result, key, typed) < 0)
      goto oom;
  }
  for (size_t i = 0; i < n; i++) {
    const pm__ct_field *f = &fields[i];
    char sub[PATH_MAX_BYTES];
    json_t *text;
    if (json_object_get(result, f->name) != NULL)
      continue;
    snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] != '\0' ? "." : "", f->name);
    if (f->required) {
      rc = pm__reason(x->why, PM_ESCHEMA, "%s is required: %s", sub, f->type->expect);
      goto fail;
    }
    if (f->default_text == NULL)
      continue;
    /* The default is written as XML text: converted like an XML value. */
    text = json_string(f->default_text);
    if (text == NULL)
      goto oom;
    {
      check_ctx as_xml = {true, true, x->why, x->noun};
      rc = value_check(&as_xml, f->type, text, sub, &typed);
    }
    json_decref(text);
    if (rc < 0)
      goto fail;
    if (json_object_set_new(result, f->name, typed) < 0)
      goto oom;
  }
  *out = result;
  return 0;
oom:
  rc = pm__reason(x->why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
fail:
  json_decref(result);
  return rc;
}

static int check_tree(const check_ctx *x, const pm__ct_field *fields, size_t n,
                      const json_t *tree, const char *what, json_t **out) {
  json_t *empty = NULL;
  int rc;
  if (tree == NULL)
    tree = empty = json_object();
  if (tree == NULL)
    return pm__reason(x->why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
  if (!json_is_object(tree))
    rc = pm__reason(x->why, PM_ESCHEMA, "%.64s: an object was expected (%s)", what,
                    json_kind(tree));
  else
    rc = object_check(x, fields, n, tree, "", what, out);
  json_decref(empty);
  return rc;
}

int pm__contract_check(const pm__ct_field *fields, size_t n, const json_t *tree, bool from_xml,
                       bool strict, const char *what, json_t **out, char *why) {
  check_ctx x = {from_xml, strict, why, "field"};
  return check_tree(&x, fields, n, tree, what, out);
}

int pm__contract_check_params(const pm__ct_command *c, const json_t *params, bool from_xml,
                              json_t **out, char *why) {
  if (c->any_params) {
    *out = params != NULL ? json_incref((json_t *)params) : NULL;
    return 0;
  }
  {
    check_ctx x = {from_xml, true, why, "parameter"};
    return check_tree(&x, c->params, c->n_params, params, c->name, out);
  }
}

/* ---- GetCommands ------------------------------------------------------------------------ */

/* Sets key to v (taken); false when v is NULL or the set fails (out of memory). */
static bool put(json_t *o, const char *key, json_t *v) {
  return json_object_set_new(o, key, v) == 0;
}

/* NULL when out of memory: never a description missing a default or a constraint. */
static json_t *describe_field(const pm__ct_field *f) {
  const pm__ct_type *t = f->type;
  const pm__ct_type *s = t->kind == PM__CT_LIST ? t->items : t; /* whose constraints to show */
  json_t *o = json_pack("{s:s, s:s, s:b, s:s}", "Name", f->name, "Type", t->name, "Required",
                        f->required, "Doc", f->doc);
  bool ok = o != NULL;
  if (ok && f->default_text != NULL) {
    /* The default was checked against its type by scripts/contract.py: only memory fails. */
    json_t *text = json_string(f->default_text), *typed = NULL;
    check_ctx as_xml = {true, true, NULL, "field"};
    ok = text != NULL && value_check(&as_xml, t, text, f->name, &typed) == 0 &&
         put(o, "Default", typed);
    json_decref(text);
  }
  if (ok && t->kind == PM__CT_ENUMERATION) {
    json_t *values = json_array();
    for (size_t i = 0; values != NULL && i < t->n_values; i++)
      if (json_array_append_new(values, json_string(t->values[i])) < 0) {
        json_decref(values);
        values = NULL;
      }
    ok = put(o, "Values", values);
  }
  if (ok && t->kind == PM__CT_INTEGER && f->has_min)
    ok = put(o, "Min", json_integer((json_int_t)t->min));
  if (ok && t->kind == PM__CT_INTEGER && f->has_max)
    ok = put(o, "Max", json_integer((json_int_t)t->max));
  if (ok && s->kind == PM__CT_STRING && s->min_length > 0)
    ok = put(o, "MinLength", json_integer((json_int_t)s->min_length));
  if (ok && s->kind == PM__CT_STRING && s->max_length > 0)
    ok = put(o, "MaxLength", json_integer((json_int_t)s->max_length));
  if (ok && s->kind == PM__CT_STRING && s->charset_spec != NULL)
    ok = put(o, "Charset", json_string(s->charset_spec));
  if (ok && s->kind == PM__CT_STRING && s->format != NULL)
    ok = put(o, "Format", json_string(s->format->name));
  if (ok && t->kind == PM__CT_LIST) {
    ok = put(o, "Items", json_string(t->items->name));
    if (ok && t->max_items > 0)
      ok = put(o, "MaxItems", json_integer((json_int_t)t->max_items));
  }
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static json_t *describe_fields(const pm__ct_field *fields, size_t n) {
  json_t *list = json_array();
  for (size_t i = 0; list != NULL && i < n; i++) {
    json_t *f = describe_field(&fields[i]);
    if (f == NULL || json_array_append_new(list, f) < 0) {
      json_decref(list);
      return NULL;
    }
  }
  return list;
}

static json_t *strings(const char *const *v, size_t n) {
  json_t *list = json_array();
  for (size_t i = 0; list != NULL && i < n; i++)
    if (json_array_append_new(list, json_string(v[i])) < 0) {
      json_decref(list);
      return NULL;
    }
  return list;
}

/* Appends item (taken) to list if it has all n members; false when it does not: out of memory
 * (json_pack's o* leaves out a member whose value is NULL rather than fail). */
static bool append_whole(json_t *list, json_t *item, size_t n) {
  if (item == NULL || json_object_size(item) != n) {
    json_decref(item);
    return false;
  }
  return json_array_append_new(list, item) == 0;
}

json_t *pm__contract_describe(bool test_commands) {
  json_t *commands = json_array(), *events = json_array(), *types = json_array(),
         *formats = json_array(), *item;
  bool ok = commands != NULL && events != NULL && types != NULL && formats != NULL;
  for (size_t i = 0; ok && i < pm__contract_n_commands; i++) {
    const pm__ct_command *c = &pm__contract_commands[i];
    if (c->test_only && !test_commands)
      continue;
    item = json_pack("{s:s, s:s, s:o*, s:o*, s:o*}", "Name", c->name, "Doc", c->doc, "Params",
                     describe_fields(c->params, c->n_params), "Data",
                     describe_fields(c->data, c->n_data), "Results",
                     strings(c->results, c->n_results));
    ok = append_whole(commands, item, 5);
  }
  for (size_t i = 0; ok && i < pm__contract_n_events; i++) {
    const pm__ct_event *e = &pm__contract_events[i];
    item = json_pack("{s:s, s:b, s:s, s:o*}", "Type", e->type, "Transient", e->transient, "Doc",
                     e->doc, "Fields", describe_fields(e->fields, e->n_fields));
    ok = append_whole(events, item, 4);
  }
  for (size_t i = 0; ok && i < pm__contract_n_types; i++) {
    const pm__ct_type *t = pm__contract_types[i];
    item = json_pack("{s:s, s:s, s:o*}", "Name", t->name, "Doc", t->doc, "Fields",
                     describe_fields(t->fields, t->n_fields));
    ok = append_whole(types, item, 3);
  }
  for (size_t i = 0; ok && i < pm__contract_n_formats; i++) {
    const pm__ct_format *f = pm__contract_formats[i];
    item = json_pack("{s:s, s:s, s:s}", "Name", f->name, "Doc", f->doc, "Pattern", f->pattern);
    ok = append_whole(formats, item, 3);
  }
  if (!ok) {
    json_decref(commands);
    json_decref(events);
    json_decref(types);
    json_decref(formats);
    return NULL;
  }
  return json_pack("{s:o, s:o, s:o, s:o}", "Commands", commands, "Events", events, "Types", types,
                   "Formats", formats);
}
