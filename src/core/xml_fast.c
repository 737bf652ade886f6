#include <string.h>

#include "internal.h"
#include "json_parse.h"
#include "pipemsg/message.h"
#include "xml_fast.h"

/* The fast path of the XML decoder (xml_fast.h): a parse and a schema check in one pass, for
 * the subset of XML that pipemsg's encoder writes, and a little more:
 * - an optional declaration, exactly <?xml version="1.0"?> or with encoding="UTF-8";
 * - elements named [A-Za-z_][A-Za-z0-9_.-]*, without attributes or namespace declarations,
 *   white space allowed before a tag's '>';
 * - text of UTF-8 XML characters but CR (which libxml2 turns into LF), with the five predefined
 *   entities and character references;
 * - white space around the root.
 * Comments, processing instructions, CDATA sections, a DOCTYPE, attributes, other entities,
 * a name starting with "xml", and anything that is not well-formed are left to libxml2, as is
 * every case where the tree or the schema would fail: mixed content, a duplicate name, an
 * element deeper than PM_NESTING_MAX (libxml2 reports the depth), a field whose value the schema
 * refuses. It counts the nodes as count_nodes in codec_xml.c does (for its subset: the
 * declaration 2, each start tag 1, each run of bytes between tags 1) and leaves a document over
 * PM_NODES_MAX to it, so pm_xml_decode need not count them again for the documents taken here.
 *
 * The tree is the one codec_xml.c's SAX handlers build (see the mapping there): the same
 * calls in the same order, so the same members in the same order. The schema (RPSchema.xsd)
 * checks only the known fields, global elements met through lax wildcards: in a message kind's
 * content and, recursively, in any element that is not a known field. Params and Data skip
 * their content. So the checks here are those of the declared types: xs:string takes any
 * text, xs:long and xs:positiveInteger are checked in their plain decimal forms, xs:dateTime
 * in the form pm_time_now() writes (anything else, a sign, a leading zero, a time zone offset or
 * white space, goes to libxml2), and a field holding elements or a message kind nested as a
 * field go to libxml2. */

/* Larger documents go to libxml2, whose limit on one text (XML_MAX_TEXT_LENGTH, 10 000 000
 * bytes) the fast path then never needs to reach. */
#define FAST_LEN_MAX ((size_t)8 << 20)
/* Longer names go to libxml2 (which limits them to 50 000 bytes). */
#define FAST_NAME_MAX 128

/* How the schema checks an element's content. */
enum {
  CHECK_UNSURE = -1, /* a type the fast path does not check: libxml2 decides */
  CHECK_LAX,    /* a message kind, or an unknown field in lax content: known fields checked */
  CHECK_SKIP,   /* in Params or Data (type Tree): anything */
  CHECK_STRING, /* text only, any */
  CHECK_LONG,   /* text only, an xs:long */
  CHECK_POSITIVE, /* text only, an xs:positiveInteger */
  CHECK_DATETIME  /* text only, an xs:dateTime */
};

typedef struct {
  const char *name;
  size_t len;
  int check;
} global;

#define G(name, check) {name, sizeof(name) - 1, check}
/* The schema's global elements with their types. */
static const global globals[] = {
    G("Command", CHECK_STRING),
    G("Id", CHECK_LONG),
    G("Params", CHECK_SKIP),
    G("Result", CHECK_STRING),
    G("Message", CHECK_STRING),
    G("Data", CHECK_SKIP),
    G("Seq", CHECK_POSITIVE),
    G("Type", CHECK_STRING),
    G("Time", CHECK_DATETIME),
    G("Reason", CHECK_STRING),
    G("Version", CHECK_LONG),
    G("Client", CHECK_STRING),
    G("Mode", CHECK_STRING),
    G("Pid", CHECK_LONG),
    G("Epoch", CHECK_LONG),
    G("LastEventId", CHECK_LONG),
    G("Service", CHECK_STRING),
    G("HeartbeatMs", CHECK_LONG),
    G("MaxMessage", CHECK_LONG),
    /* a message kind's type (Fields) is not checked here */
    G(PM_KIND_REQUEST, CHECK_UNSURE),
    G(PM_KIND_RESPONSE, CHECK_UNSURE),
    G(PM_KIND_HANDSHAKE, CHECK_UNSURE),
    G(PM_KIND_EVENT, CHECK_UNSURE),
    G(PM_KIND_EVENT_CONFIRMATION, CHECK_UNSURE),
    G(PM_KIND_DISCONNECT, CHECK_UNSURE)};

/* The roots: the six kinds, as codec_xml.c's kinds[]. */
static const char *const kinds[] = {
    PM_KIND_REQUEST, PM_KIND_RESPONSE,           PM_KIND_HANDSHAKE,
    PM_KIND_EVENT,   PM_KIND_EVENT_CONFIRMATION, PM_KIND_DISCONNECT};

/* One open element. */
typedef struct {
  const uint8_t *name; /* in the input */
  size_t name_len;
  json_t *children; /* object or array of the element children so far, NULL before the first */
  int check;
  int text;  /* text seen */
  int solid; /* some of it not white space */
} frame;

typedef struct {
  int depth; /* frames[0 .. depth - 1] are open */
  size_t nodes;
  const char *kind;
  json_t *fields; /* the root's tree once it has ended */
  /* Text of the innermost element while it has no element children. */
  char *text;
  size_t text_len, text_cap;
  char text_inline[256];
  frame frames[PM_NESTING_MAX];
} fast;

static int name_start(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int name_char(uint8_t c) {
  return name_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

static int same(const uint8_t *name, size_t len, const char *s, size_t s_len) {
  return len == s_len && memcmp(name, s, len) == 0;
}

/* XML's white space, which libxml2 ignores around the root and inside tags. */
static const uint8_t *skip_space(const uint8_t *q, const uint8_t *end) {
  while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
    q++;
  return q;
}

/* The check of a child named name of an element checked as parent. */
static int child_check(int parent, const uint8_t *name, size_t len) {
  if (parent == CHECK_SKIP)
    return CHECK_SKIP;
  if (parent != CHECK_LAX)
    return CHECK_UNSURE; /* an element in text-only content: the schema fails it */
  for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++)
    if (same(name, len, globals[i].name, globals[i].len))
      return globals[i].check;
  return CHECK_LAX;
}

/* An xs:long written as pm_json/xml encoders write integers: -?(0|[1-9][0-9]*), in range. */
static int is_long(const char *s, size_t n) {
  size_t sign = n > 0 && s[0] == '-';
  size_t digits = n - sign;
  if (digits == 0 || digits > 19 || (s[sign] == '0' && (digits > 1 || sign)))
    return 0;
  for (size_t i = sign; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  /* digit strings of the same length compare as their values */
  return digits < 19 ||
         memcmp(s + sign, sign ? "9223372036854775808" : "9223372036854775807", 19) <= 0;
}

/* An xs:positiveInteger as [1-9][0-9]*, up to 18 digits (libxml2 takes more). */
static int is_positive(const char *s, size_t n) {
  if (n == 0 || n > 18 || s[0] == '0')
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return 1;
}

static int digits(const char *s, size_t n, int *v) {
  *v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    *v = *v * 10 + (s[i] - '0');
  }
  return 1;
}

/* An xs:dateTime as YYYY-MM-DDTHH:MM:SS, then optionally '.' and 1 to 9 digits, then
 * optionally 'Z': a real date (year 0000 is none), hours 00 to 23. */
static int is_datetime(const char *s, size_t n) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int year, mon, day, hour, min, sec, leap;
  size_t i = 19;
  if (n < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
      !digits(s, 4, &year) || !digits(s + 5, 2, &mon) || !digits(s + 8, 2, &day) ||
      !digits(s + 11, 2, &hour) || !digits(s + 14, 2, &min) || !digits(s + 17, 2, &sec))
    return 0;
  leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (year == 0 || mon < 1 || mon > 12 || day < 1 ||
      day > days[mon - 1] + (mon == 2 && leap) || hour > 23 || min > 59 || sec > 59)
    return 0;
  if (i < n && s[i] == '.') {
    size_t first = ++i;
    while (i < n && i - first < 9 && s[i] >= '0' && s[i] <= '9')
      i++;
    if (i == first)
      return 0;
  }
  if (i < n && s[i] == 'Z')
    i++;
  return i == n;
}

static int value_valid(int check, const char *s, size_t n) {
  switch (check) {
  case CHECK_DATETIME:
    return is_datetime(s, n);
  case CHECK_LONG:
    return is_long(s, n);
  case CHECK_POSITIVE:
    return is_positive(s, n);
  default:
    return 1; /* CHECK_LAX, CHECK_SKIP, CHECK_STRING: any text */
  }
}

static int put_text(fast *st, const void *s, size_t n) {
  if (n > st->text_cap - st->text_len) {
    size_t cap = st->text_cap * 2;
    char *t;
    while (cap - st->text_len < n)
      cap *= 2;
    t = pm__realloc(st->text == st->text_inline ? NULL : st->text, cap);
    if (t == NULL)
      return -1;
    if (st->text == st->text_inline)
      memcpy(t, st->text_inline, st->text_len);
    st->text = t;
    st->text_cap = cap;
  }
  memcpy(st->text + st->text_len, s, n);
  st->text_len += n;
  return 0;
}

/* XML 1.0's Char production, which libxml2 checks for every character and reference. */
static int is_char(uint32_t c) {
  return c == 0x9 || c == 0xa || c == 0xd || (c >= 0x20 && c <= 0xd7ff) ||
         (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
}

/* The reference after the '&' at *qp: a predefined entity or a character reference, whose
 * character it stores as UTF-8 in out (its length returned, *qp moved past the ';'), or 0. */
static size_t reference(const uint8_t **qp, const uint8_t *end, char *out) {
  static const struct {
    const char *name;
    char c;
  } predefined[] = {{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"quot;", '"'}, {"apos;", '\''}};
  const uint8_t *q = *qp + 1;
  uint32_t c = 0;
  int hex, digits = 0;
  if (q < end && *q != '#') {
    for (size_t i = 0; i < sizeof(predefined) / sizeof(predefined[0]); i++) {
      size_t n = strlen(predefined[i].name);
      if ((size_t)(end - q) >= n && memcmp(q, predefined[i].name, n) == 0) {
        *qp = q + n;
        out[0] = predefined[i].c;
        return 1;
      }
    }
    return 0;
  }
  q++;
  hex = q < end && *q == 'x';
  q += hex;
  /* at most 6 hex or 7 decimal digits: enough for any character, and no overflow */
  for (; q < end && *q != ';' && digits < (hex ? 6 : 7); q++, digits++) {
    uint8_t d = *q;
    if (d >= '0' && d <= '9')
      c = c * (hex ? 16 : 10) + (uint32_t)(d - '0');
    else if (hex && (d | 0x20) >= 'a' && (d | 0x20) <= 'f')
      c = c * 16 + (uint32_t)((d | 0x20) - 'a' + 10);
    else
      return 0;
  }
  if (digits == 0 || q == end || *q != ';' || !is_char(c))
    return 0;
  *qp = q + 1;
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xc0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3f));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (char)(0xe0 | (c >> 12));
    out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
    out[2] = (char)(0x80 | (c & 0x3f));
    return 3;
  }
  out[0] = (char)(0xf0 | (c >> 18));
  out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
  out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
  out[3] = (char)(0x80 | (c & 0x3f));
  return 4;
}

/* Reads the text up to the next '<' (or the end) into the innermost element, as add_text in
 * codec_xml.c takes it. */
static int read_text(fast *st, const uint8_t **qp, const uint8_t *end) {
  frame *f = &st->frames[st->depth - 1];
  const uint8_t *q = *qp, *start = q, *run = q;
  size_t mark = st->text_len;
  int blank = 1;
  while (q < end && *q != '<') {
    uint8_t c = *q;
    char ref[4];
    size_t n;
    if (c > ' ' && c < 0x80 && c != '&' && c != '>') {
      blank = 0;
      q++;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      q++;
    } else if (c == '>') {
      if (q - start >= 2 && q[-1] == ']' && q[-2] == ']')
        return -1; /* "]]>" is not allowed in text */
      blank = 0;
      q++;
    } else if (c >= 0x80) {
      n = pm__utf8_seq(q, end);
      if (n == 0 || (n == 3 && c == 0xef && q[1] == 0xbf && (q[2] & 0xfe) == 0xbe))
        return -1; /* invalid UTF-8, U+FFFE, U+FFFF */
      blank = 0;
      q += n;
    } else if (c == '&') {
      if (put_text(st, run, (size_t)(q - run)) < 0)
        return -1;
      n = reference(&q, end, ref);
      if (n == 0 || put_text(st, ref, n) < 0)
        return -1;
      if (n > 1 || (ref[0] != ' ' && ref[0] != '\t' && ref[0] != '\n' && ref[0] != '\r'))
        blank = 0;
      run = q;
    } else {
      return -1; /* CR, or a control character */
    }
  }
  if (put_text(st, run, (size_t)(q - run)) < 0)
    return -1;
  if (q > start) {
    if (++st->nodes > PM_NODES_MAX)
      return -1;
    f->text = 1;
    if (f->children != NULL || st->depth == 1) {
      if (!blank)
        return -1; /* mixed content */
      st->text_len = mark;
    } else {
      f->solid |= !blank;
    }
  }
  *qp = q;
  return 0;
}

/* The parent takes a new child (open_child in codec_xml.c). */
static int open_child(fast *st, frame *parent, const uint8_t *name, size_t len) {
  int item = parent > st->frames && same(name, len, "Item", 4);
  if (parent->solid)
    return -1; /* mixed content */
  st->text_len = 0;
  if (parent->children == NULL) {
    parent->children = item ? json_array() : json_object();
    return parent->children != NULL ? 0 : -1;
  }
  if (json_is_array(parent->children)) {
    json_t *object;
    if (item)
      return 0;
    if (json_array_size(parent->children) > 1)
      return -1; /* a duplicate <Item> */
    object = json_object();
    if (object == NULL ||
        json_object_set_nocheck(object, "Item", json_array_get(parent->children, 0)) < 0) {
      json_decref(object);
      return -1;
    }
    json_decref(parent->children);
    parent->children = object;
    return 0;
  }
  return json_object_getn(parent->children, (const char *)name, len) != NULL ? -1 : 0;
}

static int open_element(fast *st, const uint8_t *name, size_t len) {
  frame *f = &st->frames[st->depth];
  int check = CHECK_LAX;
  if (st->depth == PM_NESTING_MAX)
    return -1; /* libxml2's parse reports the depth */
  if (st->depth == 0) {
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && st->kind == NULL; i++)
      if (same(name, len, kinds[i], strlen(kinds[i])))
        st->kind = kinds[i];
    if (st->kind == NULL)
      return -1;
  } else {
    check = child_check(f[-1].check, name, len);
    if (check == CHECK_UNSURE || open_child(st, f - 1, name, len) < 0)
      return -1;
  }
  f->name = name;
  f->name_len = len;
  f->children = NULL;
  f->check = check;
  f->text = 0;
  f->solid = 0;
  st->depth++;
  return 0;
}

/* The innermost element ends: its value goes to its parent, or becomes the fields. */
static int close_element(fast *st) {
  frame *f = &st->frames[st->depth - 1], *parent = f - 1;
  json_t *v = f->children;
  f->children = NULL;
  st->depth--;
  if (v == NULL) {
    /* white space in the root is not kept, so a root that got here has no text */
    if (!value_valid(f->check, st->text, f->text ? st->text_len : 0))
      return -1;
    /* {} for the root or an element with nothing in it */
    v = st->depth == 0 || !f->text ? json_object() : json_stringn_nocheck(st->text, st->text_len);
    if (v == NULL)
      return -1;
  }
  st->text_len = 0;
  if (st->depth == 0) {
    st->fields = v;
    return 0;
  }
  if (json_is_array(parent->children))
    return json_array_append_new(parent->children, v) == 0 ? 0 : -1;
  /* the name is ASCII, and unique among its siblings (open_child) */
  if (json_object_setn_new_nocheck(parent->children, (const char *)f->name, f->name_len, v) < 0)
    return -1;
  return 0;
}

/* A start tag, from just past its '<'. */
static int start_tag(fast *st, const uint8_t **qp, const uint8_t *end) {
  const uint8_t *q = *qp, *name = q;
  size_t len;
  int empty;
  if (q == end || !name_start(*q))
    return -1; /* a comment, CDATA, PI, DOCTYPE or not well-formed */
  while (++q < end && name_char(*q))
    ;
  len = (size_t)(q - name);
  if (++st->nodes > PM_NODES_MAX || len > FAST_NAME_MAX ||
      (len >= 3 && (name[0] | 0x20) == 'x' && (name[1] | 0x20) == 'm' && (name[2] | 0x20) == 'l'))
    return -1;
  q = skip_space(q, end);
  if (q < end && *q == '>') {
    empty = 0;
    q++;
  } else if (end - q >= 2 && q[0] == '/' && q[1] == '>') {
    empty = 1;
    q += 2;
  } else {
    return -1; /* an attribute, a name libxml2 reads on (':', not ASCII), or malformed */
  }
  if (open_element(st, name, len) < 0 || (empty && close_element(st) < 0))
    return -1;
  *qp = q;
  return 0;
}

/* An end tag, from just past its "</". */
static int end_tag(fast *st, const uint8_t **qp, const uint8_t *end) {
  const frame *f;
  const uint8_t *q = *qp;
  if (st->depth == 0)
    return -1; /* before the root */
  f = &st->frames[st->depth - 1];
  if ((size_t)(end - q) <= f->name_len || memcmp(q, f->name, f->name_len) != 0)
    return -1;
  q = skip_space(q + f->name_len, end);
  if (q == end || *q != '>' || close_element(st) < 0)
    return -1;
  *qp = q + 1;
  return 0;
}

static const uint8_t *skip_declaration(const uint8_t *p, const uint8_t *end) {
  static const char *const declarations[] = {"<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                                             "<?xml version=\"1.0\"?>"};
  if (end - p < 5 || memcmp(p, "<?xml", 5) != 0)
    return p;
  for (size_t i = 0; i < sizeof(declarations) / sizeof(declarations[0]); i++) {
    size_t n = strlen(declarations[i]);
    if ((size_t)(end - p) >= n && memcmp(p, declarations[i], n) == 0)
      return p + n;
  }
  return NULL;
}

json_t *pm__xml_fast_decode(const uint8_t *p, size_t len, const char **kind) {
  fast st;
  const uint8_t *q, *end = p + len;
  json_t *fields = NULL;
  if (p == NULL || len == 0 || len > FAST_LEN_MAX)
    return NULL;
  st.depth = 0;
  st.nodes = 0;
  st.kind = NULL;
  st.fields = NULL;
  st.text = st.text_inline;
  st.text_len = 0;
  st.text_cap = sizeof(st.text_inline);
  q = skip_declaration(p, end);
  if (q == NULL)
    return NULL;
  /* count_nodes takes a declaration for a node and its content to the next '<' for text */
  st.nodes = q > p ? 2 : 0;
  q = skip_space(q, end);
  st.nodes += st.nodes == 0 && q > p;
  if (q == end || *q != '<')
    return NULL;
  for (;;) {
    int rc;
    q++; /* past the '<' */
    if (q < end && *q == '/') {
      q++;
      rc = end_tag(&st, &q, end);
    } else {
      rc = start_tag(&st, &q, end);
    }
    if (rc < 0)
      goto done;
    if (st.depth == 0)
      break;
    if (read_text(&st, &q, end) < 0 || q == end)
      goto done;
  }
  if (skip_space(q, end) == end && (q == end || ++st.nodes <= PM_NODES_MAX)) {
    fields = st.fields;
    st.fields = NULL;
    *kind = st.kind;
  }
done:
  for (int i = 0; i < st.depth; i++)
    json_decref(st.frames[i].children);
  json_decref(st.fields);
  if (st.text != st.text_inline)
    pm__free(st.text);
  return fields;
}
