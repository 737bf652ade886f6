#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>

#include "internal.h"
#include "message_internal.h"
#include "pipemsg/codec.h"
#include "pipemsg/error.h"

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
/* A parser context's dictionary keeps every element name (and short text) it has seen, for
 * good: past this many entries the context is freed after use instead of kept, so peers
 * cannot grow it without bound. The schema's own names are about 60. */
#define DICT_ENTRIES_MAX 512

/* uv_once, not pthread_once: the same call wherever libuv runs, Windows included. */
static uv_once_t init_once = UV_ONCE_INIT;
/* Compiled once and then only read, which libxml2 allows from many threads at a time. */
static xmlSchemaPtr schema;

/* What one decode needs from libxml2; either may be NULL when it could not be built. */
typedef struct {
  xmlParserCtxtPtr parser;
  xmlSchemaValidCtxtPtr valid;
} contexts;

static uv_mutex_t cache_lock;
static int cache_ready; /* cache_lock initialised */
static contexts cache[CACHED_CONTEXTS];
static int cached;

/* Per-decode state, reached from the parser callbacks through ctxt->_private or from the
 * schema validator's error callback. */
typedef struct {
  int err; /* first error, 0 if none */
  char *why;
  int depth;
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

/* Records the first error only: later ones are usually consequences of it. */
static void record(decode_state *st, int err, const char *prefix, const char *msg, int line) {
  size_t n;
  if (st->err != 0)
    return;
  st->err = err;
  n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
    n--;
  if (line > 0)
    pm__reason(st->why, err, "%s line %d: %.*s", prefix, line, (int)n, msg);
  else
    pm__reason(st->why, err, "%s: %.*s", prefix, (int)n, msg);
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
  record(data, e->code == XML_ERR_NO_MEMORY ? PM_ENOMEM : PM_ESCHEMA, "schema",
         e->message != NULL ? e->message : "invalid", 0);
}

static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id,
                       const xmlChar *system_id) {
  (void)name;
  (void)external_id;
  (void)system_id;
  stop(ctx, PM_EPARSE, "DOCTYPE is not allowed");
}

static void on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                     int nb_namespaces, const xmlChar **namespaces, int nb_attributes,
                     int nb_defaulted, const xmlChar **attributes) {
  xmlParserCtxtPtr ctxt = ctx;
  decode_state *st = ctxt->_private;
  if (++st->depth > PM_NESTING_MAX) {
    char msg[64];
    snprintf(msg, sizeof(msg), "nesting deeper than %d", PM_NESTING_MAX);
    stop(ctxt, PM_EDEPTH, msg);
    return;
  }
  xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
                        nb_defaulted, attributes);
}

static void on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri) {
  xmlParserCtxtPtr ctxt = ctx;
  decode_state *st = ctxt->_private;
  st->depth--;
  xmlSAX2EndElementNs(ctx, localname, prefix, uri);
}

static int is_blank(const xmlChar *s) {
  for (; s != NULL && *s != '\0'; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
      return 0;
  return 1;
}

static int map_element(const xmlNode *node, int is_root, json_t **out, char *why);

static int map_children(const xmlNode *node, int as_array, json_t **out, char *why) {
  json_t *tree = as_array ? json_array() : json_object();
  json_t *child = NULL;
  int rc = PM_ENOMEM;
  if (tree == NULL)
    goto fail;
  for (const xmlNode *c = node->children; c != NULL; c = c->next) {
    const char *name = (const char *)c->name;
    if (c->type != XML_ELEMENT_NODE)
      continue;
    if (!as_array && json_object_get(tree, name) != NULL) {
      rc = pm__reason(why, PM_EPARSE, "XML: duplicate element <%.60s> in <%.60s>", name,
                      (const char *)node->name);
      goto fail;
    }
    rc = map_element(c, 0, &child, why);
    if (rc < 0)
      goto fail;
    rc = PM_ENOMEM;
    if ((as_array ? json_array_append_new(tree, child) : json_object_set_new(tree, name, child)) <
        0)
      goto fail;
  }
  *out = tree;
  return 0;
fail:
  json_decref(tree);
  return rc;
}

static int map_element(const xmlNode *node, int is_root, json_t **out, char *why) {
  size_t elements = 0, items = 0;
  int text = 0, solid_text = 0;
  const xmlNode *only_text = NULL;
  xmlChar *content;
  if (node->ns != NULL || !pm_name_valid((const char *)node->name))
    return pm__reason(why, PM_EPARSE, "XML: element name <%.60s> is not allowed",
                      (const char *)node->name);
  for (const xmlNode *c = node->children; c != NULL; c = c->next) {
    switch (c->type) {
    case XML_ELEMENT_NODE:
      elements++;
      items += xmlStrEqual(c->name, BAD_CAST "Item");
      break;
    case XML_TEXT_NODE:
    case XML_CDATA_SECTION_NODE:
      only_text = text++ == 0 ? c : NULL;
      solid_text |= !is_blank(c->content);
      break;
    case XML_COMMENT_NODE:
    case XML_PI_NODE:
      break;
    default:
      return pm__reason(why, PM_EPARSE, "XML: unexpected node in <%.60s>",
                        (const char *)node->name);
    }
  }
  if (solid_text && (elements > 0 || is_root))
    return pm__reason(why, PM_EPARSE, "XML: mixed content in <%.60s>", (const char *)node->name);
  if (elements > 0 || is_root)
    return map_children(node, !is_root && items == elements && elements > 0, out, why);
  if (!text) {
    *out = json_object();
    return *out != NULL ? 0 : PM_ENOMEM;
  }
  /* One text node is taken as it is, without a copy that would cost as much as the text. */
  if (only_text != NULL) {
    *out = json_string(only_text->content != NULL ? (const char *)only_text->content : "");
    return *out != NULL ? 0 : PM_ENOMEM;
  }
  /* Text may be split into several nodes (CDATA, comments in between); this joins them. */
  content = xmlNodeGetContent(node);
  if (content == NULL)
    return PM_ENOMEM;
  *out = json_string((const char *)content);
  xmlFree(content);
  return *out != NULL ? 0 : PM_ENOMEM;
}

/* Attributes carry nothing in the message model, and xsi:type on an unknown field could switch
 * the schema's checks off for what it contains: they go before validation. */
static void drop_attributes(xmlNode *node) {
  for (; node != NULL; node = node->next) {
    if (node->type != XML_ELEMENT_NODE)
      continue;
    xmlFreePropList(node->properties);
    node->properties = NULL;
    drop_attributes(node->children);
  }
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

static int is_kind(const xmlChar *name) {
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    if (xmlStrEqual(name, BAD_CAST kinds[i]))
      return 1;
  return 0;
}

static int validate(xmlSchemaValidCtxtPtr vctxt, xmlDocPtr doc, decode_state *st) {
  int r;
  if (schema == NULL)
    return pm__reason(st->why, PM_ESCHEMA, "the built-in schema failed to compile");
  if (vctxt == NULL)
    return pm__reason(st->why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
  xmlSchemaSetValidStructuredErrors(vctxt, on_schema_error, st);
  r = xmlSchemaValidateDoc(vctxt, doc);
  if (st->err != 0)
    return st->err;
  if (r != 0)
    return pm__reason(st->why, PM_ESCHEMA, "schema: validation failed (%d)", r);
  return 0;
}

/* A kept pair of contexts, or new ones (NULL members when they cannot be built). */
static contexts take_contexts(void) {
  contexts c = {NULL, NULL};
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
  if (reusable && cache_ready && c.parser != NULL && c.valid != NULL &&
      xmlDictSize(c.parser->dict) <= DICT_ENTRIES_MAX) {
    uv_mutex_lock(&cache_lock);
    if (cached < CACHED_CONTEXTS) {
      cache[cached++] = c;
      c.parser = NULL;
      c.valid = NULL;
    }
    uv_mutex_unlock(&cache_lock);
  }
  xmlFreeParserCtxt(c.parser);
  xmlSchemaFreeValidCtxt(c.valid);
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

int pm_xml_decode(const void *buf, size_t len, pm_msg **out, char *why) {
  decode_state st = {.why = why};
  contexts ctx = {NULL, NULL};
  xmlParserCtxtPtr ctxt;
  xmlDocPtr doc = NULL;
  xmlNodePtr root;
  json_t *fields = NULL;
  int rc;
  if ((buf == NULL && len > 0) || out == NULL)
    return pm__reason(why, PM_EINVAL, "%s", pm_strerror(PM_EINVAL));
  if (len > INT_MAX)
    return pm__reason(why, PM_EMSGSIZE, "%s", pm_strerror(PM_EMSGSIZE));
  rc = count_nodes(buf, len, why);
  if (rc < 0)
    return rc;
  uv_once(&init_once, init);
  ctx = take_contexts();
  ctxt = ctx.parser;
  if (ctxt == NULL) {
    rc = pm__reason(why, PM_ENOMEM, "%s", pm_strerror(PM_ENOMEM));
    goto done;
  }
  ctxt->_private = &st;
  ctxt->sax->serror = on_parse_error;
  ctxt->sax->internalSubset = on_doctype;
  ctxt->sax->startElementNs = on_start;
  ctxt->sax->endElementNs = on_end;
  doc = xmlCtxtReadMemory(ctxt, buf, (int)len, NULL, forced_encoding(buf, len), PARSE_OPTIONS);
  /* The context holds a copy of the input, which the tree does not need. */
  xmlCtxtReset(ctxt);
  if (st.err != 0) {
    rc = st.err;
    goto done;
  }
  if (doc == NULL) {
    rc = pm__reason(why, PM_EPARSE, "XML: malformed");
    goto done;
  }
  /* Second line of defence: the hook above should already have stopped any DOCTYPE. */
  if (doc->intSubset != NULL || doc->extSubset != NULL) {
    rc = pm__reason(why, PM_EPARSE, "XML: DOCTYPE is not allowed");
    goto done;
  }
  root = xmlDocGetRootElement(doc);
  /* Known fields are global elements of the schema too, so it would take <Id> as a root. */
  if (root->ns != NULL || !is_kind(root->name)) {
    rc = pm__reason(why, PM_ESCHEMA, "schema: <%.60s> is not a message kind",
                    (const char *)root->name);
    goto done;
  }
  rc = map_element(root, 1, &fields, why);
  if (rc == PM_ENOMEM) /* the only failure of the mapping that comes without a reason */
    pm__reason(why, rc, "%s", pm_strerror(rc));
  if (rc == 0) {
    drop_attributes(root);
    rc = validate(ctx.valid, doc, &st);
  }
  if (rc == 0) {
    rc = pm__msg_wrap((const char *)root->name, strlen((const char *)root->name), fields,
                      PM_ENC_XML, out);
    fields = NULL;
    if (rc < 0)
      pm__reason(why, rc, "%s", pm_strerror(rc));
  }
done:
  json_decref(fields);
  xmlFreeDoc(doc);
  give_back(ctx, rc == 0);
  return rc;
}

/* Output buffer whose errors are sticky, so the encoder checks once at the end. */
typedef struct {
  uint8_t *buf;
  size_t len, cap;
  int err;
} out_buf;

static void put(out_buf *b, const char *s, size_t n) {
  if (b->err != 0)
    return;
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 256;
    uint8_t *nb;
    while (cap - b->len < n)
      cap *= 2;
    nb = pm__realloc(b->buf, cap);
    if (nb == NULL) {
      b->err = PM_ENOMEM;
      return;
    }
    b->buf = nb;
    b->cap = cap;
  }
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
  int empty = json_is_null(v) || (json_is_object(v) && json_object_size(v) == 0) ||
              (json_is_array(v) && json_array_size(v) == 0) ||
              (json_is_string(v) && json_string_length(v) == 0);
  put_str(b, "<");
  put_str(b, name);
  if (empty) {
    put_str(b, "/>");
    return;
  }
  put_str(b, ">");
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
  put_str(b, "</");
  put_str(b, name);
  put_str(b, ">");
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
