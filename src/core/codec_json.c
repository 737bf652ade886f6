#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "json_parse.h"
#include "message_internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/error.h"

/* JSON codec (PROTOCOL §2, §3): messages to and from jansson trees.
 *
 * A message is {"Kind": {fields}}. The parser (json_parse.c, jansson's rules) rejects invalid
 * UTF-8, NaN and Infinity (not JSON tokens), integers outside int64, \u0000, duplicate keys
 * and trailing data; this file adds the node budget (count_nodes, before the parser runs), the
 * message shape, the name rule and the depth rule of pm__tree_check().
 *
 * null is accepted: it is a value like any other in Params/Data trees, encodes to XML as an
 * empty element and reads as "" through pm_tree_get_string(), like <Name/>.
 *
 * The encoder writes what jansson's compact dump writes (tests/fuzz/json_diff.c compares
 * them), itself, so a long string is copied in runs instead of looked at a character at a
 * time. Non-finite reals need no check on encoding: jansson refuses to create them. */

/* i is just past an opening quote: the index of the closing one (len or more without one),
 * where a backslash escapes the byte after it. Long strings are most of a big message, so this
 * runs through memchr; the closing quote is looked for again only once an escape has passed
 * it, which keeps a string of many escapes linear. */
static size_t string_end(const uint8_t *p, size_t i, size_t len) {
  size_t quote = 0;
  while (i < len) {
    const uint8_t *b;
    if (quote < i) {
      const uint8_t *q = memchr(p + i, '"', len - i);
      quote = q != NULL ? (size_t)(q - p) : len;
    }
    b = memchr(p + i, '\\', quote - i);
    if (b == NULL)
      return quote;
    i = (size_t)(b - p) + 2;
  }
  return i;
}

/* The parser builds the whole jansson tree before anything can look at it, and an empty
 * object costs jansson about 240 bytes against 3 bytes of input. So the nodes (values and
 * member names) are counted first, in one pass that only tells strings, containers and scalars
 * apart: '{', '[', a string and a run of scalar characters are one node each. On valid JSON
 * that is the exact count; the parser stops at its first error, so on anything else the count
 * covers at least what it would build. */
static int count_nodes(const uint8_t *p, size_t len, char *why) {
  size_t nodes = 0;
  int in_scalar = 0;
  for (size_t i = 0; i < len; i++) {
    switch (p[i]) {
    case '"':
      i = string_end(p, i + 1, len);
      /* fall through */
    case '{':
    case '[':
      nodes++;
      in_scalar = 0;
      break;
    case '}':
    case ']':
    case ',':
    case ':':
    case ' ':
    case '\t':
    case '\n':
    case '\r':
      in_scalar = 0;
      break;
    default:
      nodes += !in_scalar;
      in_scalar = 1;
    }
    if (nodes > PM_NODES_MAX)
      return pm__reason(why, PM_ELIMIT, "JSON: more than %d values and member names",
                        PM_NODES_MAX);
  }
  return 0;
}

int pm_json_decode(const void *buf, size_t len, pm_msg **out, char *why) {
  const uint8_t *p = buf;
  json_t *root = NULL, *fields;
  const char *kind;
  size_t kind_len;
  int rc;
  if ((buf == NULL && len > 0) || out == NULL)
    return pm__reason(why, PM_EINVAL, "%s", pm_strerror(PM_EINVAL));
  /* A byte order mark is allowed by §2; JSON itself has none. */
  if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
    p += 3;
    len -= 3;
  }
  /* Each node takes a byte of its own at least: a payload no longer than the budget (most of
   * them) cannot pass it, and needs no count. */
  rc = len > PM_NODES_MAX ? count_nodes(p, len, why) : 0;
  if (rc < 0)
    return rc;
  if (pm__json_parse_message(p, len, &kind, &kind_len, &fields) == 1) {
    rc = pm__msg_wrap(kind, kind_len, fields, PM_ENC_JSON, out);
    return rc < 0 ? pm__reason(why, rc, "%s", pm_strerror(rc)) : 0;
  }
  rc = pm__json_parse(p, len, &root, why);
  if (rc < 0)
    goto done;
  if (!json_is_object(root) || json_object_size(root) != 1) {
    rc = pm__reason(why, PM_EPARSE, "a message is a JSON object with exactly one member");
    goto done;
  }
  kind = json_object_iter_key(json_object_iter(root));
  fields = json_object_iter_value(json_object_iter(root));
  if (!pm_name_valid(kind)) {
    rc = pm__reason(why, PM_EPARSE, "invalid message kind \"%.60s\"", kind);
    goto done;
  }
  if (!json_is_object(fields)) {
    rc = pm__reason(why, PM_EPARSE, "the fields of %.60s are not an object", kind);
    goto done;
  }
  rc = pm__tree_check(fields, why);
  if (rc == PM_EINVAL)
    rc = PM_EPARSE;
  if (rc < 0)
    goto done;
  rc = pm__msg_wrap(kind, strlen(kind), json_incref(fields), PM_ENC_JSON, out);
  if (rc < 0)
    pm__reason(why, rc, "%s", pm_strerror(rc));
done:
  json_decref(root);
  return rc;
}

/* A run of a string's bytes left where it is in the tree, to go out at `at` in the sink's
 * bytes. */
typedef struct lent {
  size_t at;
  const uint8_t *p;
  size_t len;
} lent;

/* A growing output buffer; with lend set, plain runs of PM__JSON_LEND_MIN bytes or more are
 * listed in lent instead of copied. */
typedef struct sink {
  uint8_t *buf;
  size_t len, cap;
  int lend;
  lent *lent;
  size_t n_lent, cap_lent;
} sink;

/* Room for size more bytes. */
static int sink_room(sink *s, size_t size) {
  size_t cap = s->cap ? s->cap : 256;
  uint8_t *nb;
  if (size <= s->cap - s->len)
    return 0;
  while (cap - s->len < size)
    cap *= 2;
  nb = pm__realloc(s->buf, cap);
  if (nb == NULL)
    return -1;
  s->buf = nb;
  s->cap = cap;
  return 0;
}

static int sink_put(const char *data, size_t size, void *arg) {
  sink *s = arg;
  if (sink_room(s, size) < 0)
    return -1;
  memcpy(s->buf + s->len, data, size);
  s->len += size;
  return 0;
}

/* One punctuation byte: the most frequent write, so no length or call to copy it. */
static int put_byte(sink *s, char c) {
  if (s->len == s->cap && sink_room(s, 1) < 0)
    return PM_ENOMEM;
  s->buf[s->len++] = (uint8_t)c;
  return 0;
}

/* A member name and its colon. The tree is checked, so the name is a name (pm_name_valid: a
 * few ASCII characters, none escaped): put_string would write the same bytes, scanning them. */
static int put_name(sink *s, const char *key, size_t len) {
  if (sink_room(s, len + 3) < 0)
    return PM_ENOMEM;
  s->buf[s->len++] = '"';
  memcpy(s->buf + s->len, key, len);
  s->len += len;
  s->buf[s->len++] = '"';
  s->buf[s->len++] = ':';
  return 0;
}

static int sink_lend(sink *s, const uint8_t *p, size_t len) {
  if (s->n_lent == s->cap_lent) {
    size_t cap = s->cap_lent ? s->cap_lent * 2 : 4;
    lent *nl = pm__realloc(s->lent, cap * sizeof(*nl));
    if (nl == NULL)
      return -1;
    s->lent = nl;
    s->cap_lent = cap;
  }
  s->lent[s->n_lent].at = s->len;
  s->lent[s->n_lent].p = p;
  s->lent[s->n_lent].len = len;
  s->n_lent++;
  return 0;
}

static int put(sink *s, const char *text) {
  return sink_put(text, strlen(text), s) < 0 ? PM_ENOMEM : 0;
}

/* A string as jansson's dump writes it: '"', '\\' and the control characters escaped (the
 * short forms where JSON has them, else \u00XX), everything else as it is. Runs of bytes
 * that need nothing (most of a long string) go out in one copy. PM_EINVAL if it is not
 * UTF-8, which a tree built with the *_nocheck calls can hold. */
static int put_string(sink *s, const char *str, size_t len) {
  const uint8_t *p = (const uint8_t *)str, *end = p + len;
  if (put_byte(s, '"') < 0)
    return PM_ENOMEM;
  while (p < end) {
    const uint8_t *q = pm__json_plain_end(p, end);
    char esc[8];
    size_t n;
    while (q < end && *q >= 0x80 && (n = pm__utf8_seq(q, end)) > 0)
      q = pm__json_plain_end(q + n, end);
    if ((s->lend && (size_t)(q - p) >= PM__JSON_LEND_MIN
             ? sink_lend(s, p, (size_t)(q - p))
             : sink_put((const char *)p, (size_t)(q - p), s)) < 0)
      return PM_ENOMEM;
    p = q;
    if (p == end)
      break;
    if (*p >= 0x80)
      return PM_EINVAL;
    switch (*p) {
    case '"':
      strcpy(esc, "\\\"");
      break;
    case '\\':
      strcpy(esc, "\\\\");
      break;
    case '\b':
      strcpy(esc, "\\b");
      break;
    case '\f':
      strcpy(esc, "\\f");
      break;
    case '\n':
      strcpy(esc, "\\n");
      break;
    case '\r':
      strcpy(esc, "\\r");
      break;
    case '\t':
      strcpy(esc, "\\t");
      break;
    default:
      snprintf(esc, sizeof(esc), "\\u%04X", (unsigned)*p);
    }
    if (put(s, esc) < 0)
      return PM_ENOMEM;
    p++;
  }
  return put_byte(s, '"');
}

/* v in decimal, as "%" JSON_INTEGER_FORMAT writes it, without the formatter: buf holds at
 * least 21 bytes. Returns the length. */
static size_t int_text(json_int_t v, char *buf) {
  char tmp[24];
  size_t n = 0, len = 0;
  /* Negated as unsigned, so the most negative value needs no special case. */
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0)
    buf[len++] = '-';
  while (n > 0)
    buf[len++] = tmp[--n];
  return len;
}

/* A value of a checked tree (so at most PM_NESTING_MAX deep), compact, members in their
 * order, like json_dump_callback with JSON_COMPACT. Reals go through jansson itself, so their
 * digits stay its own. */
static int put_value(sink *s, const json_t *v) {
  char num[32];
  const char *key;
  size_t key_len, i;
  json_t *child;
  int rc = 0, first = 1;
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    if (put_byte(s, '{') < 0)
      return PM_ENOMEM;
    json_object_keylen_foreach((json_t *)v, key, key_len, child) {
      if ((!first && put_byte(s, ',') < 0) || put_name(s, key, key_len) < 0 ||
          (rc = put_value(s, child)) < 0)
        return rc < 0 ? rc : PM_ENOMEM;
      first = 0;
    }
    return put_byte(s, '}');
  case JSON_ARRAY:
    if (put_byte(s, '[') < 0)
      return PM_ENOMEM;
    json_array_foreach(v, i, child) {
      if ((i > 0 && put_byte(s, ',') < 0) || (rc = put_value(s, child)) < 0)
        return rc < 0 ? rc : PM_ENOMEM;
    }
    return put_byte(s, ']');
  case JSON_STRING:
    return put_string(s, json_string_value(v), json_string_length(v));
  case JSON_INTEGER:
    return sink_put(num, int_text(json_integer_value(v), num), s) < 0 ? PM_ENOMEM : 0;
  case JSON_REAL:
    return json_dump_callback(v, sink_put, s, JSON_COMPACT | JSON_ENCODE_ANY) < 0 ? PM_ENOMEM
                                                                                   : 0;
  case JSON_TRUE:
    return put(s, "true");
  case JSON_FALSE:
    return put(s, "false");
  default:
    return put(s, "null");
  }
}

/* In one walk: adds v's nodes (as pm__tree_nodes counts them for JSON: the value, and a
 * member's name) to *nodes, stopping early once past PM_NODES_MAX; and its encoded size
 * without escapes (numbers counted long) to *size, the buffer's first size, so a big message is
 * one allocation (one mapping, grown in place if escapes need more) and not a chain of copies
 * that leaves the small ones behind on the heap. With depth > 0, v (standing at that depth) is
 * also checked as pm__tree_check_at checks it, in the same walk, which then goes to the end
 * (past PM_NODES_MAX too, as the check does): 0, PM_EINVAL or PM_EDEPTH. */
/* Before measure's next member or element: with depth > 0 (checking), PM_EDEPTH where it would
 * stand too deep; without, 1 once the count is past PM_NODES_MAX (stop); else 0. */
static int measure_child(int depth, size_t nodes) {
  if (depth > 0)
    return depth + 1 > PM_NESTING_MAX ? PM_EDEPTH : 0;
  return nodes > PM_NODES_MAX;
}

static int measure(const json_t *v, size_t lend_min, int depth, size_t *nodes, size_t *size) {
  const char *key;
  size_t key_len, i;
  json_t *child;
  int rc;
  *nodes += 1;
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    *size += 2;
    json_object_keylen_foreach((json_t *)v, key, key_len, child) {
      if (depth > 0 && !pm__name_valid_n(key, key_len))
        return PM_EINVAL;
      if ((rc = measure_child(depth, *nodes)) != 0)
        return rc < 0 ? rc : 0;
      *nodes += 1;
      *size += key_len + 4;
      rc = measure(child, lend_min, depth > 0 ? depth + 1 : 0, nodes, size);
      if (rc < 0)
        return rc;
    }
    return 0;
  case JSON_ARRAY:
    *size += 2;
    json_array_foreach(v, i, child) {
      if ((rc = measure_child(depth, *nodes)) != 0)
        return rc < 0 ? rc : 0;
      *size += 1;
      rc = measure(child, lend_min, depth > 0 ? depth + 1 : 0, nodes, size);
      if (rc < 0)
        return rc;
    }
    return 0;
  case JSON_STRING:
    if (depth > 0 && strlen(json_string_value(v)) != json_string_length(v))
      return PM_EINVAL;
    /* A string long enough to be lent is guessed at its quotes: most of it will be. */
    *size += (lend_min == 0 || json_string_length(v) < lend_min ? json_string_length(v) : 0) + 2;
    return 0;
  case JSON_INTEGER:
  case JSON_REAL:
    *size += 24;
    return 0;
  default:
    *size += 5;
    return 0;
  }
}

/* m into s (s->lend set or not, the rest zero); on failure s->buf and s->lent are freed. */
static int encode(const pm_msg *m, sink *s) {
  const char *kind;
  size_t nodes = 2, guess = 0; /* pm__tree_nodes counts the message's own object and kind */
  int rc = PM_EINVAL;
  if (m == NULL || pm__tree_check(pm_msg_fields(m), NULL) < 0)
    goto fail;
  rc = PM_ELIMIT;
  measure(pm_msg_fields(m), s->lend ? PM__JSON_LEND_MIN : 0, 0, &nodes, &guess);
  if (nodes > PM_NODES_MAX)
    goto fail;
  /* One pass into one buffer: {"Kind": fields}. The kind is a checked name, so it needs no
   * escaping. */
  kind = pm_msg_kind(m);
  rc = PM_ENOMEM;
  s->cap = strlen(kind) + 5 + guess;
  s->buf = pm__malloc(s->cap);
  if (s->buf == NULL || put(s, "{\"") < 0 || put(s, kind) < 0 || put(s, "\":") < 0)
    goto fail;
  rc = put_value(s, pm_msg_fields(m));
  if (rc == 0)
    rc = put(s, "}");
  if (rc == 0)
    return 0;
fail:
  pm__free(s->buf);
  pm__free(s->lent);
  return rc;
}

int pm_json_encode(const pm_msg *m, uint8_t **out, size_t *len) {
  sink s = {0};
  int rc = out == NULL || len == NULL ? PM_EINVAL : encode(m, &s);
  if (rc < 0)
    return rc;
  *out = s.buf;
  *len = s.len;
  return 0;
}

int pm__json_encode_pieces(const pm_msg *m, uint8_t **buf, pm__piece **pieces, size_t *n,
                           size_t *len) {
  sink s = {0};
  pm__piece *pc;
  size_t at = 0, k = 0, total;
  int rc;
  if (buf == NULL || pieces == NULL || n == NULL || len == NULL)
    return PM_EINVAL;
  s.lend = 1;
  rc = encode(m, &s);
  if (rc < 0)
    return rc;
  /* A run lent and the copied bytes before it, for each run, and the copied bytes after. */
  pc = pm__malloc((2 * s.n_lent + 1) * sizeof(*pc));
  if (pc == NULL) {
    pm__free(s.buf);
    pm__free(s.lent);
    return PM_ENOMEM;
  }
  total = s.len;
  for (size_t i = 0; i < s.n_lent; i++) {
    if (s.lent[i].at > at) {
      pc[k].p = s.buf + at;
      pc[k++].len = s.lent[i].at - at;
    }
    pc[k].p = s.lent[i].p;
    pc[k++].len = s.lent[i].len;
    at = s.lent[i].at;
    total += s.lent[i].len;
  }
  if (s.len > at) {
    pc[k].p = s.buf + at;
    pc[k++].len = s.len - at;
  }
  pm__free(s.lent);
  *buf = s.buf;
  *pieces = pc;
  *n = k;
  *len = total;
  return 0;
}

/* The confirmation is a third of the messages on the event pipe, and the only one both sides
 * handle per event; a heartbeat and its answer are all an idle session sends. Their compact
 * forms, {"KIND":{"FIELD":n}}, are short and fixed, so they are written and recognized without
 * a tree. Anything else, the same message spelled differently included, goes through
 * pm_json_encode/pm_json_decode. */
#define CONFIRMATION_HEAD "{\"" PM_KIND_EVENT_CONFIRMATION "\":{\"Id\":"
#define HEARTBEAT_HEAD "{\"" PM_KIND_HANDSHAKE "\":{\"Seq\":"
#define INT_MESSAGE_TAIL "}}"

static size_t int_message(const char *head, size_t head_len, int64_t v,
                          char out[PM__JSON_CONFIRMATION_MAX]) {
  size_t n;
  memcpy(out, head, head_len);
  /* int_text is what the encoder writes for an integer (snprintf cost the client more than
   * the rest of its confirmation). */
  n = head_len + int_text((json_int_t)v, out + head_len);
  memcpy(out + n, INT_MESSAGE_TAIL, sizeof(INT_MESSAGE_TAIL));
  return n + sizeof(INT_MESSAGE_TAIL) - 1;
}

static int int_message_value(const char *h, size_t head, const uint8_t *p, size_t len,
                             int64_t *out) {
  size_t tail = sizeof(INT_MESSAGE_TAIL) - 1, i, digits;
  uint64_t v = 0;
  if (len <= head + tail || memcmp(p, h, head) != 0 ||
      memcmp(p + len - tail, INT_MESSAGE_TAIL, tail) != 0)
    return 0;
  digits = len - head - tail;
  /* Canonical digits only: no sign, no leading zero, at most 19 of them and within int64 (a
   * 19-digit number may not be: checked below). Anything else is the decoder's to judge. */
  if (digits > 19 || (digits > 1 && p[head] == '0'))
    return 0;
  for (i = head; i < head + digits; i++) {
    if (p[i] < '0' || p[i] > '9')
      return 0;
    v = v * 10 + (uint64_t)(p[i] - '0');
  }
  if (v > (uint64_t)INT64_MAX)
    return 0;
  *out = (int64_t)v;
  return 1;
}

size_t pm__json_confirmation(int64_t id, char out[PM__JSON_CONFIRMATION_MAX]) {
  return int_message(CONFIRMATION_HEAD, sizeof(CONFIRMATION_HEAD) - 1, id, out);
}

int pm__json_confirmation_id(const uint8_t *p, size_t len, int64_t *id) {
  return int_message_value(CONFIRMATION_HEAD, sizeof(CONFIRMATION_HEAD) - 1, p, len, id);
}

size_t pm__json_heartbeat(int64_t seq, char out[PM__JSON_CONFIRMATION_MAX]) {
  return int_message(HEARTBEAT_HEAD, sizeof(HEARTBEAT_HEAD) - 1, seq, out);
}

int pm__json_heartbeat_seq(const uint8_t *p, size_t len, int64_t *seq) {
  return int_message_value(HEARTBEAT_HEAD, sizeof(HEARTBEAT_HEAD) - 1, p, len, seq);
}

/* An Event is the message the event client handles most, and its frame as the event server
 * writes it (event_server.c's json_head, then the Data's compact text) is the same every time
 * but for the values: only the Data is parsed, by the strict parser, and the rest read in
 * place. Anything else, the same event spelled differently included, goes through
 * pm_json_decode. */
#define EVENT_HEAD "{\"" PM_KIND_EVENT "\":{\"Id\":"
#define EVENT_TYPE ",\"Type\":\""
#define EVENT_TIME "\",\"Time\":\""
#define EVENT_DATA "\",\"Data\":"
#define EVENT_NO_DATA "\"}}"
#define EVENT_TAIL "}}"

/* Whether p (len bytes) starts with the literal s. */
#define HAS(p, len, s) ((len) >= sizeof(s) - 1 && memcmp((p), (s), sizeof(s) - 1) == 0)

/* A string value from p up to the closing quote, when it is plain bytes only (no escape, no
 * control character, ASCII: what a JSON string holds as it is) and shorter than size: copied
 * into out with a NUL; its length, or -1. */
static long plain_string(const uint8_t *p, const uint8_t *end, char *out, size_t size) {
  const uint8_t *q = pm__json_plain_end(p, end);
  size_t n = (size_t)(q - p);
  if (q == end || *q != '"' || n >= size)
    return -1;
  memcpy(out, p, n);
  out[n] = '\0';
  return (long)n;
}

int pm__json_event(const uint8_t *p, size_t len, pm__event_view *ev) {
  const uint8_t *end = p + len, *q = p;
  uint64_t v = 0;
  size_t digits = 0;
  long n;
  json_t *data = NULL;
  /* The decoder counts the nodes of the whole payload before it parses anything. The count
   * adds at most one node per byte, so a payload of at most PM_NODES_MAX bytes (every event
   * the bench sends, and most) is within the budget without the walk. */
  if (!HAS(q, len, EVENT_HEAD) || (len > PM_NODES_MAX && count_nodes(p, len, NULL) < 0))
    return 0;
  q += sizeof(EVENT_HEAD) - 1;
  /* Canonical digits only, within int64, as pm__json_confirmation_id takes them. */
  while (q < end && *q >= '0' && *q <= '9' && digits <= 19) {
    v = v * 10 + (uint64_t)(*q++ - '0');
    digits++;
  }
  if (digits == 0 || digits > 19 || (digits > 1 && q[-(long)digits] == '0') ||
      v > (uint64_t)INT64_MAX || !HAS(q, (size_t)(end - q), EVENT_TYPE))
    return 0;
  q += sizeof(EVENT_TYPE) - 1;
  n = plain_string(q, end, ev->type, sizeof(ev->type));
  if (n < 0)
    return 0;
  q += n;
  if (!HAS(q, (size_t)(end - q), EVENT_TIME))
    return 0;
  q += sizeof(EVENT_TIME) - 1;
  n = plain_string(q, end, ev->time, sizeof(ev->time));
  if (n < 0)
    return 0;
  q += n;
  if ((size_t)(end - q) == sizeof(EVENT_NO_DATA) - 1 && HAS(q, (size_t)(end - q), EVENT_NO_DATA)) {
    ev->id = (int64_t)v;
    ev->data = NULL;
    return 1;
  }
  if (!HAS(q, (size_t)(end - q), EVENT_DATA))
    return 0;
  q += sizeof(EVENT_DATA) - 1;
  /* The Data is an object right up to the closing braces: {...}}} with nothing between. */
  if ((size_t)(end - q) < 2 + sizeof(EVENT_TAIL) - 1 || *q != '{' ||
      memcmp(end - (sizeof(EVENT_TAIL) - 1), EVENT_TAIL, sizeof(EVENT_TAIL) - 1) != 0 ||
      end[-(long)sizeof(EVENT_TAIL)] != '}')
    return 0;
  /* The decoder's rules for the Data: the parser's and the model's at the depth of a field,
   * applied as it is parsed (PM_EINVAL there is PM_EPARSE from the decoder: either way it is
   * declined here). It starts with '{', so it is an object if it parses. */
  if (pm__json_parse_at(q, (size_t)(end - q) - (sizeof(EVENT_TAIL) - 1), 2, &data) < 0)
    return 0;
  ev->id = (int64_t)v;
  ev->data = data;
  return 1;
}

int pm__json_value_text(const json_t *v, int depth, size_t room, uint8_t **out, size_t *len,
                        size_t *nodes) {
  sink s = {0};
  size_t count = 0, guess = 0;
  int rc = measure(v, 0, depth, &count, &guess);
  if (rc < 0)
    return rc;
  s.len = room;
  /* The guess plus the NUL: one allocation for most values. */
  s.cap = room + guess + 1;
  s.buf = pm__malloc(s.cap);
  if (s.buf == NULL)
    return PM_ENOMEM;
  rc = put_value(&s, v);
  if (rc == 0 && sink_put("", 1, &s) < 0)
    rc = PM_ENOMEM;
  if (rc < 0) {
    pm__free(s.buf);
    return rc;
  }
  *out = s.buf;
  *len = s.len - room - 1;
  if (nodes != NULL)
    *nodes = count;
  return 0;
}
