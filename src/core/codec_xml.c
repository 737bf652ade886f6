#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/hash.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>

#include "internal.h"
#include "message_internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/error.h"
#include "xml_fast.h"

/* XML codec (PROTOCOL §2, §3) on libxml2.
 *
 * Hardening: before libxml2 sees a byte, count_nodes() bounds the nodes of the document and
 * the attributes of each tag, so parsing costs linear time and bounded memory. No DOCTYPE is
 * ever processed: a SAX hook stops the parser as soon as the DOCTYPE name is read, before any
 * internal subset or entity declaration, so entity expansion (billion laughs) and external
 * entities (XXE) never happen; nothing is loaded from the network or the file system; the
 * document is read as UTF-8 whatever its declaration says; depth is counted as elements start,
 * so a deep document stops at element PM_NESTING_MAX + 1 (root = 1). libxml2 reports errors
 * only to the handlers set here, never to stderr.
 *
 * Decoding builds no DOM: the tree is made straight from libxml2's SAX2 events, and the same
 * events, without attributes, drive the schema validator as they come (xmlSchemaSAXPlug). The
 * verdicts are those of the passes the decoder once made over a DOM, one after the other
 * (decode_state says how), including the two checks libxml2's tree builder made on the way:
 * xml:id values (check_ids) and the length of one text node (run_type).
 *
 * A fast path comes first (xml_fast.c, pm_xml_decode): the documents pipemsg itself writes are
 * parsed and checked against the schema in one pass without libxml2, into the same tree. It
 * takes only what this path would take, and leaves every other document, valid or not, to
 * this path, whose verdict and reason stand (fuzz_xml_diff and test_xml_fast hold the two
 * paths to that).
 *
 * Mapping to the tree (and back):
 * - An element with element children is an object, or an array if all its children are
 *   <Item>. So a JSON object whose only member is "Item" comes back from XML as a one-element
 *   array: "Item" is reserved as a member name. The root element is always an object.
 * - An element with text and no element children is a string (CDATA is text); white space
 *   between child elements is ignored, other text beside child elements is "mixed content"
 *   and rejected. Attributes, comments and processing instructions are ignored.
 * - An element with neither is {}. {}, [], "" and null all encode to <Name/>, so they come
 *   back as {}, which pm_tree_get_string() reads as "".
 * - Scalars encode as text: true/false, decimal integers, reals as %.17g. They come back as
 *   strings, which the typed accessors read.
 * - Duplicate child names in an object, names outside [A-Za-z_][A-Za-z0-9_.-]* and
 *   namespaced elements are rejected. */

#define PARSE_OPTIONS                                                                              \
  (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC)

static const char *const kinds[] = {
    PM_KIND_REQUEST, PM_KIND_RESPONSE,           PM_KIND_HANDSHAKE,
    PM_KIND_EVENT,   PM_KIND_EVENT_CONFIRMATION, PM_KIND_DISCONNECT};

/* Parser and validation contexts kept for the next decode: building and freeing them costs
 * about as much as parsing a small message. One is taken per decode, so this bounds how many
 * threads decoding at the same moment (the service's loop, a client thread or two) find one
 * ready; a decode that finds none builds its own, kept afterwards if there is room. */
#define CACHED_CONTEXTS 4
/* A parser context's dictionary keeps every element and attribute name it has seen, for
 * good: past this many entries the context is freed after use instead of kept, so peers
 * cannot grow it without bound. The schema's own names are about 60. */
#define DICT_ENTRIES_MAX 512

/* uv_once, not pthread_once: the same call wherever libuv runs, Windows included. */
static uv_once_t init_once = UV_ONCE_INIT;
/* Compiled once and then only read, which libxml2 allows from many threads at a time. */
static xmlSchemaPtr schema;

/* A kept context keeps its input copy (see parse) up to this size; a larger one, left by a
 * large message, is freed after use. */
#define INPUT_KEPT_MAX 16384

/* What one decode needs from libxml2; either may be NULL when it could not be built. input
 * (input_cap bytes, NULL until needed) holds the document the parser reads. */
typedef struct {
  xmlParserCtxtPtr parser;
  xmlSchemaValidCtxtPtr valid;
  char *input;
  size_t input_cap;
} contexts;

static uv_mutex_t cache_lock;
static int cache_ready; /* cache_lock initialised */
static contexts cache[CACHED_CONTEXTS];
static int cached;

/* One open element of the document being decoded. */
typedef struct {
  const xmlChar *name; /* in the parser's dictionary, which keeps it for the whole parse */
  json_t *children;    /* object or array of the element children so far, NULL before the first */
  int text;            /* text or CDATA seen (an empty CDATA section counts) */
  int solid;           /* some of it not white space */
} frame;

/* Per-decode state, reached from the parser callbacks through ctxt->_private or from the
 * schema validator's error callback.
 *
 * The verdict is the one of passes made one after the other over the whole document: first
 * libxml2's parse (err), then the root's kind and the mapping to the tree (tree_err), then the
 * schema (schema_err). Here they run side by side as the events come, so the first error of
 * each is kept until the parse ends, and the earliest pass with one decides. The tree and the
 * validator stop at their first error; the parse goes on, as a later parse error still wins.
 * Within the tree, an element's mixed content shows only when its text comes, and a second
 * <Item> is a duplicate only once a sibling that is not <Item> comes; either may be after an
 * error inside a child, which the DOM pass met later. The code is the same (PM_EPARSE), the
 * reason may name the other error. */
typedef struct {
  int err; /* first error of the parse, 0 if none */
  char *why;
  int depth;
  int kind; /* index in kinds[] of the root */
  int tree_err;
  char tree_why[PM_REASON_MAX];
  int schema_err;
  char schema_why[PM_REASON_MAX];
  /* The validator's SAX2 handlers, fed by ours; NULL when it does not run. */
  xmlSAXHandlerPtr vsax;
  void *vdata;
  /* Text (or CDATA) for the validator, given to it in one piece at the next element event: it
   * appends each piece it gets to the element's value with xmlStrncat, a copy of all so far,
   * and the parser gives one piece per character reference (&lt;...), so a piece at a time
   * would cost time quadratic in the text. */
  char *vtext;
  size_t vtext_len, vtext_cap;
  int vtext_type;
  /* Text of the innermost element while it has no element children. */
  char *text;
  size_t text_len, text_cap;
  char text_inline[256];
  /* libxml2's tree builder joins a run of text (or of CDATA) events into one node, and fails
   * a node past XML_MAX_TEXT_LENGTH bytes: the run is followed here to refuse the same
   * documents, as the decoding limit it is (libxml2 calls it out of memory). */
  int run_type;
  size_t run_len;
  xmlHashTablePtr ids; /* xml:id values seen, which libxml2's tree builder checks */
  json_t *fields;      /* the root's tree once it has ended */
  int open;            /* frames[0 .. open - 1] are the open elements of the tree */
  frame frames[PM_NESTING_MAX];
} decode_state;

static void ignore_error(void *data, xmlErrorPtr e) {
  (void)data;
  (void)e;
}

static void init(void) {
  xmlSchemaParserCtxtPtr pctxt;
  xmlInitParser();
  cache_ready = uv_mutex_init(&cache_lock) == 0;
  pctxt = xmlSchemaNewMemParserCtxt(pm__rpschema_xsd, (int)pm__rpschema_xsd_len);
  if (pctxt == NULL)
    return;
  xmlSchemaSetParserStructuredErrors(pctxt, ignore_error, NULL);
  schema = xmlSchemaParse(pctxt);
  xmlSchemaFreeParserCtxt(pctxt);
}

static void format_reason(char *why, int err, const char *prefix, const char *msg, int line) {
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
    n--;
  if (line > 0)
    pm__reason(why, err, "%s line %d: %.*s", prefix, line, (int)n, msg);
  else
    pm__reason(why, err, "%s: %.*s", prefix, (int)n, msg);
}

/* Records the first error only: later ones are usually consequences of it. */
static void record(decode_state *st, int err, const char *prefix, const char *msg, int line) {
  if (st->err != 0)
    return;
  st->err = err;
  format_reason(st->why, err, prefix, msg, line);
}

static void stop(xmlParserCtxtPtr ctxt, int err, const char *msg) {
  record(ctxt->_private, err, "XML", msg, xmlSAX2GetLineNumber(ctxt));
  xmlStopParser(ctxt);
}

/* Warnings (an XML 1.1 version number, a relative namespace URI) do not fail a document. */
static void on_parse_error(void *ctx, xmlErrorPtr e) {
  xmlParserCtxtPtr ctxt = ctx;
  if (e->level == XML_ERR_WARNING)
    return;
  record(ctxt->_private, e->code == XML_ERR_NO_MEMORY ? PM_ENOMEM : PM_EPARSE, "XML",
         e->message != NULL ? e->message : "malformed", e->line);
}

static void on_schema_error(void *data, xmlErrorPtr e) {
  decode_state *st = data;
  if (st->schema_err != 0)
    return;
  st->schema_err = e->code == XML_ERR_NO_MEMORY ? PM_ENOMEM : PM_ESCHEMA;
  format_reason(st->schema_why, st->schema_err, "schema",
                e->message != NULL ? e->message : "invalid", 0);
}

static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id,
                       const xmlChar *system_id) {
  (void)name;
  (void)external_id;
  (void)system_id;
  stop(ctx, PM_EPARSE, "DOCTYPE is not allowed");
}

static int is_blank(const xmlChar *s, int len) {
  for (int i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
      return 0;
  return 1;
}

/* The index of name in kinds[], or -1. */
static int kind_of(const xmlChar *name) {
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    if (xmlStrEqual(name, BAD_CAST kinds[i]))
      return (int)i;
  return -1;
}

static int validating(const decode_state *st) {
  return st->vsax != NULL && st->tree_err == 0 && st->schema_err == 0;
}

/* libxml2's tree builder checks xml:id attributes (an NCName, once per document) and reports an
 * error otherwise, the parse going on; the attributes themselves are dropped. */
static void check_ids(xmlParserCtxtPtr ctxt, decode_state *st, int nb_attributes,
                      const xmlChar **attributes) {
  for (int i = 0; i < nb_attributes; i++) {
    const xmlChar **a = attributes + 5 * i; /* localname, prefix, URI, value, end of value */
    char msg[PM_REASON_MAX];
    xmlChar *value;
    if (a[1] == NULL || !xmlStrEqual(a[1], BAD_CAST "xml") || !xmlStrEqual(a[0], BAD_CAST "id"))
      continue;
    value = xmlStrndup(a[3], (int)(a[4] - a[3]));
    if (value == NULL) {
      record(st, PM_ENOMEM, "XML", pm_strerror(PM_ENOMEM), xmlSAX2GetLineNumber(ctxt));
      return;
    }
    msg[0] = '\0';
    if (xmlValidateNCName(value, 1) != 0)
      snprintf(msg, sizeof(msg), "xml:id : attribute value %s is not an NCName", value);
    if (value[0] != '\0' && st->ids == NULL)
      st->ids = xmlHashCreate(0);
    if (value[0] != '\0' && st->ids == NULL) {
      xmlFree(value);
      record(st, PM_ENOMEM, "XML", pm_strerror(PM_ENOMEM), xmlSAX2GetLineNumber(ctxt));
      return;
    }
    /* libxml2 reports a failure to add, out of memory too, as a duplicate */
    if (value[0] != '\0' && xmlHashAddEntry(st->ids, value, st) < 0 && msg[0] == '\0')
      snprintf(msg, sizeof(msg), "ID %s already defined", value);
    xmlFree(value);
    if (msg[0] != '\0') {
      record(st, PM_EPARSE, "XML", msg, xmlSAX2GetLineNumber(ctxt));
      return;
    }
  }
}

/* The parent (if any) takes a new child named name: an object, or an array while all its
 * children are <Item>. Fails on mixed content or a duplicate name. */
static int open_child(decode_state *st, frame *parent, const xmlChar *name) {
  int item = parent > st->frames && xmlStrEqual(name, BAD_CAST "Item");
  if (parent->solid)
    return pm__reason(st->tree_why, PM_EPARSE, "XML: mixed content in <%.60s>",
                      (const char *)parent->name);
  st->text_len = 0; /* white space before the first child */
  if (parent->children == NULL) {
    parent->children = item ? json_array() : json_object();
    return parent->children != NULL ? 0 : PM_ENOMEM;
  }
  if (json_is_array(parent->children)) {
    json_t *object;
    if (item)
      return 0;
    if (json_array_size(parent->children) > 1)
      return pm__reason(st->tree_why, PM_EPARSE, "XML: duplicate element <Item> in <%.60s>",
                        (const char *)parent->name);
    object = json_object();
    if (object == NULL ||
        json_object_set(object, "Item", json_array_get(parent->children, 0)) < 0) {
      json_decref(object);
      return PM_ENOMEM;
    }
    json_decref(parent->children);
    parent->children = object;
    return 0;
  }
  if (json_object_get(parent->children, (const char *)name) != NULL)
    return pm__reason(st->tree_why, PM_EPARSE, "XML: duplicate element <%.60s> in <%.60s>",
                      (const char *)name, (const char *)parent->name);
  return 0;
}

static int open_element(decode_state *st, const xmlChar *name, const xmlChar *prefix,
                        const xmlChar *uri) {
  frame *f = &st->frames[st->depth - 1];
  int rc;
  f->children = NULL;
  st->open = st->depth;
  if (st->depth == 1) {
    /* Known fields are global elements of the schema too, so it would take <Id> as a root. */
    st->kind = uri == NULL ? kind_of(name) : -1;
    if (st->kind < 0)
      return pm__reason(st->tree_why, PM_ESCHEMA, "schema: <%.60s> is not a message kind",
                        (const char *)name);
  } else {
    rc = open_child(st, f - 1, name);
    if (rc < 0)
      return rc;
  }
  if (uri != NULL || prefix != NULL || !pm_name_valid((const char *)name))
    return pm__reason(st->tree_why, PM_EPARSE, "XML: element name <%.60s> is not allowed",
                      (const char *)name);
  f->name = name;
  f->text = 0;
  f->solid = 0;
  return 0;
}

/* The innermost element ends: its value goes to its parent (or becomes the fields). */
static int close_element(decode_state *st) {
  frame *f = &st->frames[st->depth - 1], *parent = f - 1;
  json_t *v = f->children;
  f->children = NULL;
  st->open = st->depth - 1;
  if (v == NULL) {
    if (st->depth == 1 && f->solid)
      return pm__reason(st->tree_why, PM_EPARSE, "XML: mixed content in <%.60s>",
                        (const char *)f->name);
    /* {} for the root or an element with nothing in it; "" (not {}) for an empty CDATA */
    v = st->depth == 1 || !f->text ? json_object() : json_stringn(st->text, st->text_len);
    if (v == NULL)
      return PM_ENOMEM;
  }
  st->text_len = 0;
  if (st->depth == 1) {
    st->fields = v;
    return 0;
  }
  if (json_is_array(parent->children))
    return json_array_append_new(parent->children, v) == 0 ? 0 : PM_ENOMEM;
  return json_object_set_new(parent->children, (const char *)f->name, v) == 0 ? 0 : PM_ENOMEM;
}

static int add_text(decode_state *st, const xmlChar *ch, int len) {
  frame *f = &st->frames[st->depth - 1];
  int blank = is_blank(ch, len);
  f->text = 1;
  if (blank && (f->children != NULL || st->depth == 1))
    return 0; /* between child elements, or in the root */
  if (!blank && (f->children != NULL || st->depth == 1))
    return pm__reason(st->tree_why, PM_EPARSE, "XML: mixed content in <%.60s>",
                      (const char *)f->name);
  f->solid |= !blank;
  if ((size_t)len > st->text_cap - st->text_len) {
    size_t cap = st->text_cap * 2;
    char *t;
    while (cap - st->text_len < (size_t)len)
      cap *= 2;
    t = pm__realloc(st->text == st->text_inline ? NULL : st->text, cap);
    if (t == NULL)
      return PM_ENOMEM;
    if (st->text == st->text_inline)
      memcpy(t, st->text_inline, st->text_len);
    st->text = t;
    st->text_cap = cap;
  }
  memcpy(st->text + st->text_len, ch, (size_t)len);
  st->text_len += (size_t)len;
  return 0;
}

static void tree_failed(decode_state *st, int rc) {
  if (rc == PM_ENOMEM) /* the only failure of the mapping that comes without a reason */
    pm__reason(st->tree_why, rc, "%s", pm_strerror(rc));
  st->tree_err = rc;
}

/* Gives the validator the text kept for it. */
static void flush_text(decode_state *st) {
  size_t len = st->vtext_len;
  st->vtext_len = 0;
  if (len == 0 || st->err != 0 || !validating(st))
    return;
  (st->vtext_type == XML_CDATA_SECTION_NODE ? st->vsax->cdataBlock : st->vsax->characters)(
      st->vdata, (const xmlChar *)st->vtext, (int)len);
}

static void keep_text(decode_state *st, int type, const xmlChar *ch, int len) {
  if (st->vtext_len > 0 && st->vtext_type != type)
    flush_text(st);
  st->vtext_type = type;
  if ((size_t)len > st->vtext_cap - st->vtext_len) {
    size_t cap = st->vtext_cap != 0 ? st->vtext_cap * 2 : 256;
    char *t;
    while (cap - st->vtext_len < (size_t)len)
      cap *= 2;
    t = pm__realloc(st->vtext, cap);
    if (t == NULL) {
      st->schema_err = pm__reason(st->schema_why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
      return;
    }
    st->vtext = t;
    st->vtext_cap = cap;
  }
  /* an empty CDATA section before any text: no buffer yet, and nothing to copy */
  if (len > 0)
    memcpy(st->vtext + st->vtext_len, ch, (size_t)len);
  st->vtext_len += (size_t)len;
}

static void on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                     int nb_namespaces, const xmlChar **namespaces, int nb_attributes,
                     int nb_defaulted, const xmlChar **attributes) {
  xmlParserCtxtPtr ctxt = ctx;
  decode_state *st = ctxt->_private;
  (void)nb_namespaces;
  (void)namespaces;
  (void)nb_defaulted;
  if (++st->depth > PM_NESTING_MAX) {
    char msg[64];
    snprintf(msg, sizeof(msg), "nesting deeper than %d", PM_NESTING_MAX);
    stop(ctxt, PM_EDEPTH, msg);
    return;
  }
  if (st->err == 0 && nb_attributes > 0)
    check_ids(ctxt, st, nb_attributes, attributes);
  /* Once the parse has failed, nothing else counts: the events are ignored. Some errors
   * (namespaces, xml:id) let libxml2 go on with the events. */
  if (st->err != 0)
    return;
  st->run_type = 0;
  if (st->tree_err == 0) {
    int rc = open_element(st, localname, prefix, uri);
    if (rc < 0)
      tree_failed(st, rc);
  }
  /* Attributes carry nothing in the message model, and xsi:type on an unknown field could
   * switch the schema's checks off for what it contains: the validator never sees them. Nor
   * the namespace declarations, which a tree's validation did not use: no type in the schema
   * resolves a prefix. */
  flush_text(st);
  if (validating(st))
    st->vsax->startElementNs(st->vdata, localname, prefix, uri, 0, NULL, 0, 0, NULL);
}

static void on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri) {
  xmlParserCtxtPtr ctxt = ctx;
  decode_state *st = ctxt->_private;
  if (st->err == 0 && st->tree_err == 0) {
    int rc = close_element(st);
    if (rc < 0)
      tree_failed(st, rc);
  }
  flush_text(st);
  if (st->err == 0 && validating(st))
    st->vsax->endElementNs(st->vdata, localname, prefix, uri);
  st->depth--;
  st->run_type = 0;
}

static void on_text_or_cdata(xmlParserCtxtPtr ctxt, const xmlChar *ch, int len, int type) {
  decode_state *st = ctxt->_private;
  if (st->depth == 0 || st->err != 0)
    return; /* white space around the root, or after a failure */
  if (st->run_type == type) {
    /* As libxml2's tree builder does: fail, and stop the events without freeing the input
     * from under the parser (xmlStopParser would). */
    if (st->run_len + (size_t)len > XML_MAX_TEXT_LENGTH) {
      record(st, PM_ELIMIT, "XML", "huge text node: more than 10000000 bytes in one text",
             xmlSAX2GetLineNumber(ctxt));
      ctxt->instate = XML_PARSER_EOF;
      ctxt->disableSAX = 1;
      return;
    }
    st->run_len += (size_t)len;
  } else {
    st->run_type = type;
    st->run_len = (size_t)len;
  }
  if (st->tree_err == 0) {
    int rc = add_text(st, ch, len);
    if (rc < 0)
      tree_failed(st, rc);
  }
  if (validating(st))
    keep_text(st, type, ch, len);
}

static void on_text(void *ctx, const xmlChar *ch, int len) {
  on_text_or_cdata(ctx, ch, len, XML_TEXT_NODE);
}

static void on_cdata(void *ctx, const xmlChar *ch, int len) {
  on_text_or_cdata(ctx, ch, len, XML_CDATA_SECTION_NODE);
}

/* A comment or processing instruction ends a run of text (see run_type), and is dropped. */
static void on_comment(void *ctx, const xmlChar *value) {
  xmlParserCtxtPtr ctxt = ctx;
  decode_state *st = ctxt->_private;
  (void)value;
  st->run_type = 0;
}

static void on_pi(void *ctx, const xmlChar *target, const xmlChar *data) {
  (void)target;
  on_comment(ctx, data);
}

/* Bounds what libxml2 will see, in one pass, before it sees it (PM_NODES_MAX,
 * PM_XML_ATTRIBUTES_MAX): libxml2 checks a tag's attributes for duplicates in time quadratic
 * in their number, and a node costs up to about 640 bytes in its tree plus ours.
 *
 * The scan must count at least what libxml2 parses, also after an error, when libxml2 goes on
 * parsing (without building anything) from wherever it stopped. So it does not trust comments,
 * CDATA sections or processing instructions to end where they seem to: every '<' that is not
 * "</", "<!" or "<?" is taken for a start tag, because libxml2 may read one there. A tag never
 * reaches past the next '<' (no name holds one, and an attribute value stops at it with an
 * error), and libxml2 stores an attribute only with a value, after an '='. Within a tag, a
 * quote outside a value opens one, and the same quote closes it, as in libxml2 for as far as
 * it parses the tag; so counting every '=' outside quotes up to the '>' or the next '<' counts
 * at least libxml2's attributes. Otherwise each tag, comment, PI or CDATA section is a node,
 * and so are the bytes up to the next '<' (text). libxml2 reads the bytes as UTF-8 (Latin-1
 * after an encoding error), where a byte below 0x80 is always that ASCII character, so it sees
 * the same '<', '=', quotes and '>' as this scan. */
static int count_nodes(const uint8_t *p, size_t len, char *why) {
  const uint8_t *end = p + len, *text = p;
  size_t nodes = 0;
  while (p < end) {
    const uint8_t *lt = memchr(p, '<', (size_t)(end - p));
    int attributes = 0;
    uint8_t quote = 0;
    if (lt == NULL)
      lt = end;
    nodes += lt > text;
    if (lt == end)
      break;
    p = lt + 1;
    if (p < end && (*p == '!' || *p == '?')) {
      nodes++;
      text = p;
    } else if (p < end && *p == '/') {
      while (p < end && *p != '>' && *p != '<')
        p++;
      text = p < end && *p == '>' ? p + 1 : p;
      p = text;
    } else {
      nodes++;
      for (; p < end && *p != '<'; p++) {
        if (quote != 0) {
          quote = *p == quote ? 0 : quote;
        } else if (*p == '"' || *p == '\'') {
          quote = *p;
        } else if (*p == '=') {
          if (++attributes > PM_XML_ATTRIBUTES_MAX)
            return pm__reason(why, PM_ELIMIT, "XML: more than %d attributes in one tag",
                              PM_XML_ATTRIBUTES_MAX);
          nodes++;
        } else if (*p == '>') {
          p++;
          break;
        }
      }
      text = p;
    }
    if (nodes > PM_NODES_MAX)
      return pm__reason(why, PM_ELIMIT, "XML: more than %d nodes", PM_NODES_MAX);
  }
  if (nodes > PM_NODES_MAX)
    return pm__reason(why, PM_ELIMIT, "XML: more than %d nodes", PM_NODES_MAX);
  return 0;
}

/* A kept pair of contexts, or new ones (NULL members when they cannot be built). */
static contexts take_contexts(void) {
  contexts c = {NULL, NULL, NULL, 0};
  if (cache_ready) {
    uv_mutex_lock(&cache_lock);
    if (cached > 0)
      c = cache[--cached];
    uv_mutex_unlock(&cache_lock);
  }
  if (c.parser == NULL)
    c.parser = xmlNewParserCtxt();
  if (c.valid == NULL && schema != NULL)
    c.valid = xmlSchemaNewValidCtxt(schema);
  return c;
}

/* Keeps c for the next decode when it is clean (reusable is 0 after any failure, whose
 * leftovers a reset might not clear) and there is room; frees it otherwise. */
static void give_back(contexts c, int reusable) {
  if (c.parser != NULL)
    c.parser->_private = NULL;
  if (c.input_cap > INPUT_KEPT_MAX) {
    pm__free(c.input);
    c.input = NULL;
    c.input_cap = 0;
  }
  if (reusable && cache_ready && c.parser != NULL && c.valid != NULL &&
      xmlDictSize(c.parser->dict) <= DICT_ENTRIES_MAX) {
    uv_mutex_lock(&cache_lock);
    if (cached < CACHED_CONTEXTS) {
      cache[cached++] = c;
      c.parser = NULL;
      c.valid = NULL;
      c.input = NULL;
    }
    uv_mutex_unlock(&cache_lock);
  }
  xmlFreeParserCtxt(c.parser);
  xmlSchemaFreeValidCtxt(c.valid);
  pm__free(c.input);
}

/* The document is read as UTF-8. Naming that encoding makes libxml2 run every byte through its
 * UTF-8 to UTF-8 converter, a third of the parse of a small message; left unnamed, libxml2
 * reads UTF-8 as it is, unless the first bytes look like another encoding (a UTF-16 or UCS-4
 * byte order mark or '<' in those). Only then is UTF-8 named, to keep reading them as UTF-8. */
static const char *forced_encoding(const uint8_t *buf, size_t len) {
  xmlCharEncoding enc;
  if (len < 4)
    return NULL; /* libxml2 looks for another encoding only in 4 bytes or more */
  enc = xmlDetectCharEncoding(buf, 4);
  return enc == XML_CHAR_ENCODING_NONE || enc == XML_CHAR_ENCODING_UTF8 ? NULL : "UTF-8";
}

/* Parses buf as xmlCtxtReadMemory does, into the handlers below, on a context that is new or
 * was reset after its last parse.
 *
 * xmlCtxtReadMemory gives libxml2 a copy of the input in a new 8 KB buffer (whose allocation
 * also sends glibc to malloc_consolidate) with a read callback that says "no more" each time
 * the parser comes within 250 bytes of the end (every time, in a small message), through
 * several calls. Here the parser reads a copy kept with the context (NUL-terminated, as
 * libxml2 expects of its buffers: the caller's need not be) as an immutable buffer without a
 * read callback, so libxml2 knows at once that the input is all there. With nothing more to
 * read, the parser's GROW and SHRINK (called at every few bytes) can change nothing: they are
 * switched off as for libxml2's push parser, which also has its input in hand (progressive;
 * in the pull parser that flag gates only those two). The difference shows only where the
 * input is converted on the way in (an encoding named: the rest would not be converted) or
 * longer than XML_MAX_LOOKUP_LIMIT (libxml2 fails a lookup that far back only with a read
 * callback of some kind): those go through xmlCtxtReadMemory. */
static void parse(contexts *c, const uint8_t *buf, size_t len) {
  xmlParserCtxtPtr ctxt = c->parser;
  const char *encoding = forced_encoding(buf, len);
  xmlParserInputBufferPtr input;
  xmlParserInputPtr stream;
  if (encoding != NULL || len == 0 || len > XML_MAX_LOOKUP_LIMIT) {
    /* No tree is built (no start of document), so this returns NULL. */
    xmlCtxtReadMemory(ctxt, (const char *)buf, (int)len, NULL, encoding, PARSE_OPTIONS);
    return;
  }
  if (len >= c->input_cap) {
    char *copy = pm__malloc(len + 1);
    if (copy == NULL) {
      record(ctxt->_private, PM_ENOMEM, "XML", pm_strerror(PM_ENOMEM), 0);
      return;
    }
    pm__free(c->input);
    c->input = copy;
    c->input_cap = len + 1;
  }
  memcpy(c->input, buf, len);
  c->input[len] = '\0';
  input = xmlParserInputBufferCreateStatic(c->input, (int)len, XML_CHAR_ENCODING_NONE);
  if (input == NULL) {
    record(ctxt->_private, PM_ENOMEM, "XML", pm_strerror(PM_ENOMEM), 0);
    return;
  }
  stream = xmlNewIOInputStream(ctxt, input, XML_CHAR_ENCODING_NONE);
  if (stream == NULL) {
    xmlFreeParserInputBuffer(input);
    record(ctxt->_private, PM_ENOMEM, "XML", pm_strerror(PM_ENOMEM), 0);
    return;
  }
  inputPush(ctxt, stream);
  xmlCtxtUseOptions(ctxt, PARSE_OPTIONS);
  ctxt->progressive = 1;
  xmlParseDocument(ctxt);
  ctxt->progressive = 0;
}

/* The parser's SAX2 handlers: libxml2's defaults (entities, the DOCTYPE's parts) with the
 * document's own events taken here, and no tree built (no start of document). */
static void set_handlers(xmlSAXHandlerPtr sax) {
  sax->startDocument = NULL;
  sax->endDocument = NULL;
  sax->serror = on_parse_error;
  sax->internalSubset = on_doctype;
  sax->startElementNs = on_start;
  sax->endElementNs = on_end;
  sax->characters = on_text;
  /* the same as characters, or libxml2 would look for white space it may ignore */
  sax->ignorableWhitespace = on_text;
  sax->cdataBlock = on_cdata;
  sax->comment = on_comment;
  sax->processingInstruction = on_pi;
}

/* Frees what an unfinished decode built. */
static void release(decode_state *st) {
  for (int i = 0; i < st->open; i++)
    json_decref(st->frames[i].children);
  json_decref(st->fields);
  if (st->text != st->text_inline)
    pm__free(st->text);
  pm__free(st->vtext);
  xmlHashFree(st->ids, NULL);
}

/* libxml2's parse and the schema's validation, of a document within the node budget. */
static int slow_decode(const void *buf, size_t len, pm_msg **out, char *why) {
  decode_state st;
  contexts ctx = {NULL, NULL, NULL, 0};
  xmlSchemaSAXPlugPtr plug = NULL;
  xmlParserCtxtPtr ctxt;
  int well_formed, rc;
  uv_once(&init_once, init);
  memset(&st, 0, offsetof(decode_state, frames));
  st.why = why;
  st.kind = -1;
  st.text = st.text_inline;
  st.text_cap = sizeof(st.text_inline);
  ctx = take_contexts();
  ctxt = ctx.parser;
  if (ctxt == NULL) {
    rc = pm__reason(why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
    goto done;
  }
  if (schema == NULL) {
    st.schema_err = pm__reason(st.schema_why, PM_ESCHEMA, "the built-in schema failed to compile");
  } else {
    /* Before the plug: plugging runs the validator's start, which may report already (a cached
     * validator must not report to the previous decode's state). */
    if (ctx.valid != NULL)
      xmlSchemaSetValidStructuredErrors(ctx.valid, on_schema_error, &st);
    if (ctx.valid == NULL || (plug = xmlSchemaSAXPlug(ctx.valid, &st.vsax, &st.vdata)) == NULL) {
      st.vsax = NULL;
      st.schema_err = pm__reason(st.schema_why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
    }
  }
  ctxt->_private = &st;
  set_handlers(ctxt->sax);
  parse(&ctx, buf, len);
  well_formed = ctxt->wellFormed;
  /* Frees the input stream, and leaves the context ready for the next parse. */
  xmlCtxtReset(ctxt);
  if (plug != NULL) {
    xmlSchemaSAXUnplug(plug);
    if (st.schema_err == 0 && xmlSchemaIsValid(ctx.valid) != 1)
      st.schema_err = pm__reason(st.schema_why, PM_ESCHEMA, "schema: validation failed");
  }
  if (st.err != 0)
    rc = st.err;
  else if (!well_formed || (st.tree_err == 0 && st.fields == NULL))
    rc = pm__reason(why, PM_EPARSE, "XML: malformed");
  else if (st.tree_err != 0)
    rc = pm__reason(why, st.tree_err, "%s", st.tree_why);
  else if (st.schema_err != 0)
    rc = pm__reason(why, st.schema_err, "%s", st.schema_why);
  else {
    rc = pm__msg_wrap(kinds[st.kind], strlen(kinds[st.kind]), st.fields, PM_ENC_XML, out);
    st.fields = NULL;
    if (rc < 0)
      pm__reason(why, rc, "%s", pm_strerror(rc));
  }
done:
  release(&st);
  give_back(ctx, rc == 0);
  return rc;
}

static int check_args(const void *buf, size_t len, pm_msg **out, char *why) {
  if ((buf == NULL && len > 0) || out == NULL)
    return pm__reason(why, PM_EINVAL, "%s", pm_strerror(PM_EINVAL));
  if (len > INT_MAX)
    return pm__reason(why, PM_EMSGSIZE, "%s", pm_strerror(PM_EMSGSIZE));
  return 0;
}

int pm__xml_slow_decode(const void *buf, size_t len, pm_msg **out, char *why) {
  int rc = check_args(buf, len, out, why);
  if (rc == 0)
    rc = count_nodes(buf, len, why);
  return rc < 0 ? rc : slow_decode(buf, len, out, why);
}

/* The fast path (xml_fast.c) takes the documents pipemsg writes, at about a quarter of
 * libxml2's cost, node budget included; whatever it does not take, libxml2 decides. */
int pm_xml_decode(const void *buf, size_t len, pm_msg **out, char *why) {
  const char *kind = NULL;
  json_t *fields;
  int rc = check_args(buf, len, out, why);
  if (rc < 0)
    return rc;
  fields = pm__xml_fast_decode(buf, len, &kind);
  if (fields != NULL) {
    rc = pm__msg_wrap(kind, strlen(kind), fields, PM_ENC_XML, out);
    return rc < 0 ? pm__reason(why, rc, "%s", pm_strerror(rc)) : 0;
  }
  rc = count_nodes(buf, len, why);
  return rc < 0 ? rc : slow_decode(buf, len, out, why);
}

/* Output buffer whose errors are sticky, so the encoder checks once at the end. A counting
 * one only adds up the lengths: the size and the verdict come from the same code. */
typedef struct {
  uint8_t *buf;
  size_t len, cap;
  int err;
  int counting;
  size_t nodes; /* elements and texts put, as pm__tree_nodes counts them for XML */
} out_buf;

/* put's growing of the buffer, out of line so that put itself is inlined into its many
 * callers (publish runs them in counting mode per event, where the call was most of the work). */
static int grow(out_buf *b, size_t n) {
  size_t cap = b->cap ? b->cap : 256;
  uint8_t *nb;
  while (cap - b->len < n)
    cap *= 2;
  nb = pm__realloc(b->buf, cap);
  if (nb == NULL) {
    b->err = PM_ENOMEM;
    return -1;
  }
  b->buf = nb;
  b->cap = cap;
  return 0;
}

static inline void put(out_buf *b, const char *s, size_t n) {
  if (b->err != 0)
    return;
  if (b->counting) {
    b->len += n;
    return;
  }
  if (n > b->cap - b->len && grow(b, n) < 0)
    return;
  memcpy(b->buf + b->len, s, n);
  b->len += n;
}

static void put_str(out_buf *b, const char *s) { put(b, s, strlen(s)); }

/* Escapes text for element content. \r becomes a character reference because a parser
 * turns a literal one into \n; other control characters and U+FFFE/U+FFFF have no XML 1.0
 * form at all. */
static void put_text(out_buf *b, const char *s, size_t n) {
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    if (c == '&')
      esc = "&amp;";
    else if (c == '<')
      esc = "&lt;";
    else if (c == '>')
      esc = "&gt;";
    else if (c == '\r')
      esc = "&#13;";
    else if ((c < 0x20 && c != '\t' && c != '\n') ||
             (c == 0xef && i + 2 < n && (unsigned char)s[i + 1] == 0xbf &&
              ((unsigned char)s[i + 2] & 0xfe) == 0xbe)) {
      if (b->err == 0)
        b->err = PM_EINVAL;
      return;
    }
    if (esc == NULL)
      continue;
    put(b, s + run, i - run);
    put_str(b, esc);
    run = i + 1;
  }
  put(b, s + run, n - run);
}

/* %.17g round-trips every double; the decimal point is forced to '.' whatever the locale. */
static void format_real(double d, char *s, size_t size) {
  snprintf(s, size, "%.17g", d);
  for (; *s != '\0'; s++)
    if (strchr("0123456789+-eE", *s) == NULL)
      *s = '.';
}

static void put_element(out_buf *b, const char *name, const json_t *v) {
  char num[40];
  const char *key;
  size_t i;
  json_t *child;
  /* The name's length once, the literals' as constants: publishing an event runs this in
   * counting mode, where these lengths are all the work. */
  size_t name_len = strlen(name);
  int empty = json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0) ||
              (json_is_array(v) && json_array_size(v) == 0) ||
              (json_is_string(v) && json_string_length(v) == 0);
  b->nodes += 1 + (!empty && !json_is_object(v) && !json_is_array(v));
  put(b, "<", 1);
  put(b, name, name_len);
  if (empty) {
    put(b, "/>", 2);
    return;
  }
  put(b, ">", 1);
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    json_object_foreach((json_t *)v, key, child) put_element(b, key, child);
    break;
  case JSON_ARRAY:
    json_array_foreach(v, i, child) put_element(b, "Item", child);
    break;
  case JSON_STRING:
    put_text(b, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    put_str(b, num);
    break;
  case JSON_REAL:
    format_real(json_real_value(v), num, sizeof(num));
    put_str(b, num);
    break;
  default:
    put_str(b, json_is_true(v) ? "true" : "false");
  }
  put(b, "</", 2);
  put(b, name, name_len);
  put(b, ">", 1);
}

int pm__xml_element_size(const char *name, const json_t *v, size_t *len, size_t *nodes) {
  out_buf b = {0};
  b.counting = 1;
  put_element(&b, name, v);
  *len = b.len;
  *nodes = b.nodes;
  return b.err;
}

int pm_xml_encode(const pm_msg *m, uint8_t **out, size_t *len) {
  out_buf b = {0};
  if (m == NULL || out == NULL || len == NULL || pm__tree_check(pm_msg_fields(m), NULL) < 0) {
    b.err = PM_EINVAL;
    goto fail;
  }
  if (pm__tree_nodes(pm_msg_fields(m), PM_ENC_XML) > PM_NODES_MAX) {
    b.err = PM_ELIMIT;
    goto fail;
  }
  put_element(&b, pm_msg_kind(m), pm_msg_fields(m));
  if (b.err != 0)
    goto fail;
  *out = b.buf;
  *len = b.len;
  return 0;
fail:
  pm__free(b.buf);
  return b.err;
}
