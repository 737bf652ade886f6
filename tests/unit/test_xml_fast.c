/* The XML decoder's fast path (src/core/xml_fast.c): what it accepts, with the tree libxml2's
 * path builds; what it leaves to libxml2, whose verdict and reason pm_xml_decode then gives
 * (tests/fuzz/xml_diff.h); and the same check on both XML fuzz corpora and random mutations of
 * them, so it runs in every build (valgrind and ASan included) and not only under libFuzzer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "testutil.h"

#include "corpus_check.h"

#include "xml_diff.h"
#include "xml_fast.h"

#define RANDOM_INPUTS 4000

static void expect_same(const void *p, size_t len, const char *label) {
  const char *what = xml_diff(p, len);
  if (what != NULL)
    print_error("%s (%zu bytes): %s\n", label, len, what);
  assert_null(what);
}

/* text is taken by the fast path, as kind with the fields of json. */
static void expect_fast(const char *text, const char *kind, const char *json) {
  const char *got_kind = NULL;
  json_t *got = pm__xml_fast_decode((const uint8_t *)text, strlen(text), &got_kind);
  json_t *want = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
  char *dump = NULL;
  assert_non_null(want);
  if (got == NULL)
    print_error("not taken by the fast path: %.200s\n", text);
  assert_non_null(got);
  assert_string_equal(kind, got_kind);
  dump = json_dumps(got, JSON_COMPACT);
  if (!json_equal(want, got))
    print_error("%.200s: got %s, want %s\n", text, dump, json);
  assert_true(json_equal(want, got));
  /* member order too */
  assert_string_equal(json, dump);
  free(dump);
  json_decref(got);
  json_decref(want);
  expect_same(text, strlen(text), text);
}

/* text is left to libxml2, and pm_xml_decode gives code and libxml2's reason. */
static void expect_slow(int code, const char *text) {
  const char *kind = NULL;
  char why[PM_REASON_MAX] = "";
  pm_msg *m = NULL;
  json_t *got = pm__xml_fast_decode((const uint8_t *)text, strlen(text), &kind);
  int rc;
  if (got != NULL)
    print_error("taken by the fast path: %.200s\n", text);
  assert_null(got);
  rc = pm_xml_decode(text, strlen(text), &m, why);
  if (rc != code)
    print_error("%.200s: %d (%s)\n", text, rc, why);
  assert_pm(code, rc);
  assert_true(rc == 0 || why[0] != '\0');
  pm_msg_free(m);
  expect_same(text, strlen(text), text);
}

/* expect_slow(PM_ESCHEMA, text) with the schema's reason, which names the element. */
static void expect_schema(const char *text, const char *element) {
  char why[PM_REASON_MAX] = "";
  pm_msg *m = NULL;
  expect_slow(PM_ESCHEMA, text);
  assert_pm(PM_ESCHEMA, pm_xml_decode(text, strlen(text), &m, why));
  if (strstr(why, element) == NULL || strncmp(why, "schema", 6) != 0)
    print_error("%.200s: %s\n", text, why);
  assert_non_null(strstr(why, element));
  assert_int_equal(0, strncmp(why, "schema", 6));
}

#define REQ(body) "<Request>" body "</Request>"

static void test_xml_fast_subset(void **state) {
  (void)state;
  /* what the bench's command group sends and answers */
  expect_fast(REQ("<Command>GetState</Command><Id>42</Id><Params><Filter>all</Filter>"
                  "<Verbose>false</Verbose></Params>"),
              "Request",
              "{\"Command\":\"GetState\",\"Id\":\"42\",\"Params\":{\"Filter\":\"all\","
              "\"Verbose\":\"false\"}}");
  expect_fast("<Response><Id>42</Id><Result>Ok</Result><Data><State>Connected</State>"
              "<Location>de</Location><KillSwitch>true</KillSwitch></Data></Response>",
              "Response",
              "{\"Id\":\"42\",\"Result\":\"Ok\",\"Data\":{\"State\":\"Connected\","
              "\"Location\":\"de\",\"KillSwitch\":\"true\"}}");
  expect_fast("<Request/>", "Request", "{}");
  expect_fast("<Handshake></Handshake>", "Handshake", "{}");
  expect_fast("<EventConfirmation><Id>3</Id></EventConfirmation>", "EventConfirmation",
              "{\"Id\":\"3\"}");
  expect_fast("<Disconnect><Reason>Shutdown</Reason><Message/></Disconnect>", "Disconnect",
              "{\"Reason\":\"Shutdown\",\"Message\":{}}");
  expect_fast("<Event><Id>1</Id><Seq>12</Seq><Type>A</Type></Event>", "Event",
              "{\"Id\":\"1\",\"Seq\":\"12\",\"Type\":\"A\"}");
  /* the declaration, white space around the root, between elements and inside tags */
  expect_fast("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Request>\n  <Id>1</Id >\n"
              "  <A\t/>\n</Request >\n\n",
              "Request", "{\"Id\":\"1\",\"A\":{}}");
  expect_fast("<?xml version=\"1.0\"?><Request/>", "Request", "{}");
  expect_fast(" \t\n<Request/>\r\n", "Request", "{}");
  /* text: white space kept in a leaf, entities, character references, UTF-8 */
  expect_fast(REQ("<A>  </A><B> x\ty\n</B>"), "Request", "{\"A\":\"  \",\"B\":\" x\\ty\\n\"}");
  expect_fast(REQ("<A>&lt;&gt;&amp;&quot;&apos;</A>"), "Request", "{\"A\":\"<>&\\\"'\"}");
  expect_fast(REQ("<A>a&#13;b&#x9;&#233;&#x20AC;&#x1F600;&#0065;</A>"), "Request",
              "{\"A\":\"a\\rb\\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "A\"}");
  expect_fast(REQ("<A>\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc2\x80\x7f</A>"), "Request",
              "{\"A\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc2\x80\x7f\"}");
  expect_fast(REQ("<A>]]&gt; ]> ] ></A>"), "Request", "{\"A\":\"]]> ]> ] >\"}");
  /* white space written as a reference is white space */
  expect_fast(REQ("<A>&#32;<B/>&#10;</A>"), "Request", "{\"A\":{\"B\":{}}}");
  /* arrays of <Item>, and an <Item> that turns out to be a member */
  expect_fast(REQ("<A><Item>a</Item><Item/><Item><B>1</B></Item></A>"), "Request",
              "{\"A\":[\"a\",{},{\"B\":\"1\"}]}");
  expect_fast(REQ("<A><Item>a</Item><B>b</B></A><Item>r</Item>"), "Request",
              "{\"A\":{\"Item\":\"a\",\"B\":\"b\"},\"Item\":\"r\"}");
  expect_fast(REQ("<A><B>b</B><Item>a</Item></A>"), "Request",
              "{\"A\":{\"B\":\"b\",\"Item\":\"a\"}}");
  /* the schema's types in their plain forms */
  expect_fast(REQ("<Id>9223372036854775807</Id><Pid>0</Pid><Epoch>-9223372036854775808</Epoch>"
                  "<Version>-1</Version>"),
              "Request",
              "{\"Id\":\"9223372036854775807\",\"Pid\":\"0\",\"Epoch\":\"-9223372036854775808\","
              "\"Version\":\"-1\"}");
  expect_fast(REQ("<Seq>999999999999999999</Seq><Command/><Result>  </Result>"), "Request",
              "{\"Seq\":\"999999999999999999\",\"Command\":{},\"Result\":\"  \"}");
  expect_fast(REQ("<Id>&#49;&#x32;</Id>"), "Request", "{\"Id\":\"12\"}");
  /* dateTime as pm_time_now() writes it, and a little more */
  expect_fast("<Event><Time>2026-11-25T16:00:00.123Z</Time></Event>", "Event",
              "{\"Time\":\"2026-11-25T16:00:00.123Z\"}");
  expect_fast(REQ("<Time>2024-02-29T23:59:59Z</Time><Data><Time>x</Time></Data>"), "Request",
              "{\"Time\":\"2024-02-29T23:59:59Z\",\"Data\":{\"Time\":\"x\"}}");
  expect_fast(REQ("<Time>2000-02-29T00:00:00</Time>"), "Request",
              "{\"Time\":\"2000-02-29T00:00:00\"}");
  expect_fast(REQ("<Time>0001-12-31T00:00:00.123456789Z</Time>"), "Request",
              "{\"Time\":\"0001-12-31T00:00:00.123456789Z\"}");
  /* Params and Data skip their content; unknown fields are let through */
  expect_fast(REQ("<Params><Id>abc</Id><Time>x</Time><Request/></Params>"
                  "<Data><Seq>0</Seq></Data>"),
              "Request",
              "{\"Params\":{\"Id\":\"abc\",\"Time\":\"x\",\"Request\":{}},"
              "\"Data\":{\"Seq\":\"0\"}}");
  expect_fast(REQ("<Other><Id>5</Id><Inner><Seq>2</Seq><Command>c</Command></Inner></Other>"),
              "Request", "{\"Other\":{\"Id\":\"5\",\"Inner\":{\"Seq\":\"2\",\"Command\":\"c\"}}}");
  expect_fast(REQ("<a.b-c_1>x</a.b-c_1><_>y</_>"), "Request", "{\"a.b-c_1\":\"x\",\"_\":\"y\"}");
}

/* <Request><A>...<A>leaf</A>...</A></Request>, depth elements in all. */
static char *nested(int depth, const char *leaf) {
  size_t size = (size_t)depth * 8 + strlen(leaf) + 32, n = 0;
  char *s = malloc(size);
  assert_non_null(s);
  n += (size_t)snprintf(s + n, size - n, "<Request>");
  for (int i = 1; i < depth; i++)
    n += (size_t)snprintf(s + n, size - n, "<A>");
  n += (size_t)snprintf(s + n, size - n, "%s", leaf);
  for (int i = 1; i < depth; i++)
    n += (size_t)snprintf(s + n, size - n, "</A>");
  snprintf(s + n, size - n, "</Request>");
  return s;
}

static void test_xml_fast_depth(void **state) {
  const char *kind;
  json_t *tree;
  char *s;
  (void)state;
  s = nested(PM_NESTING_MAX, "x");
  tree = pm__xml_fast_decode((const uint8_t *)s, strlen(s), &kind);
  assert_non_null(tree);
  json_decref(tree);
  expect_same(s, strlen(s), "PM_NESTING_MAX deep");
  free(s);
  s = nested(PM_NESTING_MAX + 1, "x");
  expect_slow(PM_EDEPTH, s);
  free(s);
  s = nested(PM_NESTING_MAX + 1, "");
  expect_slow(PM_EDEPTH, s);
  free(s);
}

/* head "<Request><A>" then <Item>s up to nodes nodes in all (as count_nodes counts them: a
 * declaration 2, a tag 1, a run of text between tags 1), then "</A></Request>" tail. */
static char *budget(const char *head, size_t head_nodes, const char *tail, size_t tail_nodes,
                    size_t nodes) {
  size_t size = strlen(head) + strlen(tail) + nodes * 16 + 64, n = 0;
  size_t count = head_nodes + 2 + tail_nodes;
  char *s = malloc(size);
  assert_non_null(s);
  n += (size_t)snprintf(s, size, "%s<Request><A>", head);
  for (; count + 3 <= nodes; count += 3)
    n += (size_t)snprintf(s + n, size - n, "<Item>x</Item> ");
  for (; count < nodes; count++)
    n += (size_t)snprintf(s + n, size - n, "<Item/>");
  snprintf(s + n, size - n, "</A></Request>%s", tail);
  return s;
}

/* The fast path counts the nodes as count_nodes does, and leaves one too many to it. */
static void test_xml_fast_node_budget(void **state) {
  static const struct {
    const char *head, *tail;
    size_t head_nodes, tail_nodes;
  } forms[] = {{"", "", 0, 0},
               {"<?xml version=\"1.0\"?>", "", 2, 0},
               {"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "\n", 2, 1},
               {" ", " ", 1, 1}};
  (void)state;
  for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
    for (size_t extra = 0; extra < 3; extra++) {
      char *s = budget(forms[i].head, forms[i].head_nodes, forms[i].tail, forms[i].tail_nodes,
                       PM_NODES_MAX - 1 + extra);
      const char *kind;
      json_t *tree = pm__xml_fast_decode((const uint8_t *)s, strlen(s), &kind);
      if (extra < 2) {
        assert_non_null(tree);
        expect_same(s, strlen(s), "at the node budget");
      } else {
        assert_null(tree);
        expect_slow(PM_ELIMIT, s);
      }
      json_decref(tree);
      free(s);
    }
  }
}

/* What the fast path leaves to libxml2 though it is valid. */
static void test_xml_fast_valid_elsewhere(void **state) {
  (void)state;
  expect_slow(0, REQ("<!-- c --><Id>1</Id>"));
  expect_slow(0, REQ("<?pi x?><Id>1</Id>"));
  expect_slow(0, REQ("<A><![CDATA[x]]></A>"));
  expect_slow(0, "<Request a=\"1\"/>");
  expect_slow(0, "<Request xmlns:p=\"urn:x\"/>");
  expect_slow(0, "\xef\xbb\xbf<Request/>");
  expect_slow(0, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Request/>");
  expect_slow(0, "<?xml version='1.0'?><Request/>");
  expect_slow(0, "<?xml version=\"1.0\" standalone=\"yes\"?><Request/>");
  expect_slow(0, REQ("<A>a\rb</A>"));
  expect_slow(0, REQ("<xmlA>x</xmlA>"));
  expect_slow(0, REQ("<Time>2026-11-25T16:00:00+01:00</Time>"));
  expect_slow(0, REQ("<Time>2026-11-25T16:00:00.1234567890Z</Time>"));
  expect_slow(0, REQ("<Time>-2026-11-25T16:00:00Z</Time>"));
  expect_slow(0, REQ("<Time>12026-11-25T16:00:00Z</Time>"));
  expect_slow(0, REQ("<Time>2026-11-25T24:00:00Z</Time>"));
  expect_slow(0, REQ("<Id>+5</Id>"));
  expect_slow(0, REQ("<Id>05</Id>"));
  expect_slow(0, REQ("<Id>-0</Id>"));
  expect_slow(0, REQ("<Seq>0001</Seq>"));
  expect_slow(0, REQ("<Seq>1000000000000000000</Seq>"));
  expect_slow(0, REQ("<A>&#x0000041;</A>"));
  expect_slow(0, REQ("<A>&#00000065;</A>"));
}

/* What the fast path leaves to libxml2 because it fails, with libxml2's verdict and reason. */
static void test_xml_fast_invalid(void **state) {
  (void)state;
  /* not well-formed */
  expect_slow(PM_EPARSE, "");
  expect_slow(PM_EPARSE, "<Request>");
  expect_slow(PM_EPARSE, REQ("<A>x</B>"));
  expect_slow(PM_EPARSE, REQ("<A>x</Ab>"));
  expect_slow(PM_EPARSE, REQ("<Ab>x</A>"));
  expect_slow(PM_EPARSE, "<Request/><Request/>");
  expect_slow(PM_EPARSE, "<Request/>x");
  expect_slow(PM_EPARSE, "x<Request/>");
  expect_slow(PM_EPARSE, "</ve<Id>entContConfirmation>"); /* fuzz_xml_diff's first finding */
  /* its second, in libxml2's path: an empty CDATA section first (UBSan: NULL + 0) */
  expect_slow(PM_EPARSE, "<Disconnect><![CDATA[]]>e");
  expect_slow(PM_EPARSE, " <?xml version=\"1.0\"?><Request/>");
  expect_slow(PM_EPARSE, "<?xml version=\"1.0\"?>");
  expect_slow(PM_EPARSE, "<!DOCTYPE Request><Request/>");
  expect_slow(PM_EPARSE, REQ("<A>a]]>b</A>"));
  expect_slow(PM_EPARSE, REQ("<A>&a;</A>"));
  expect_slow(PM_EPARSE, REQ("<A>&lt</A>"));
  expect_slow(PM_EPARSE, REQ("<A>&#0;</A>"));
  expect_slow(PM_EPARSE, REQ("<A>&#xD800;</A>"));
  expect_slow(PM_EPARSE, REQ("<A>&#xFFFE;</A>"));
  expect_slow(PM_EPARSE, REQ("<A>&#x110000;</A>"));
  expect_slow(PM_EPARSE, REQ("<A>&#X41;</A>"));
  expect_slow(PM_EPARSE, REQ("<A>&#;</A>"));
  expect_slow(PM_EPARSE, REQ("<A>\x01</A>"));
  expect_slow(PM_EPARSE, REQ("<A>\xff</A>"));
  expect_slow(PM_EPARSE, REQ("<A>\xc0\xaf</A>"));
  expect_slow(PM_EPARSE, REQ("<A>\xed\xa0\x80</A>"));
  expect_slow(PM_EPARSE, REQ("<A>\xef\xbf\xbf</A>"));
  expect_slow(PM_EPARSE, REQ("<A>\xe2\x82</A>"));
  expect_slow(PM_EPARSE, REQ("<1A/>"));
  expect_slow(PM_EPARSE, REQ("<A x/>"));
  expect_slow(PM_EPARSE, REQ("<A/ >"));
  expect_slow(PM_EPARSE, REQ("< A/>"));
  /* the tree's rules */
  expect_slow(PM_EPARSE, REQ("<A>x<B/></A>"));
  expect_slow(PM_EPARSE, REQ("<A><B/>x</A>"));
  expect_slow(PM_EPARSE, REQ("x"));
  expect_slow(PM_EPARSE, REQ("&#65;"));
  expect_slow(PM_EPARSE, REQ("<A/><A/>"));
  expect_slow(PM_EPARSE, REQ("<A><B/><C/><B/></A>"));
  expect_slow(PM_EPARSE, REQ("<A><Item/><B/><Item/></A>"));
  expect_slow(PM_EPARSE, REQ("<A><Item/><Item/><B/></A>"));
  expect_slow(PM_EPARSE, REQ("<Item/><Item/>"));
  expect_slow(PM_EPARSE, REQ("<p:A xmlns:p=\"urn:x\"/>"));
  expect_slow(PM_EPARSE, REQ("<A\xc3\xa9>x</A\xc3\xa9>"));
  expect_slow(PM_ESCHEMA, "<Id>1</Id>");
  expect_slow(PM_ESCHEMA, "<Other/>");
  /* the schema: a document the fast path would take but for one field's value */
  expect_schema(REQ("<Command>GetState</Command><Id>abc</Id>"), "Id");
  expect_schema(REQ("<Id></Id>"), "Id");
  expect_schema(REQ("<Id/>"), "Id");
  expect_schema(REQ("<Id> 5</Id>"), "Id");
  expect_schema(REQ("<Id>5 </Id>"), "Id");
  expect_schema(REQ("<Id>9223372036854775808</Id>"), "Id");
  expect_schema(REQ("<Id>-9223372036854775809</Id>"), "Id");
  expect_schema(REQ("<Id>12345678901234567890</Id>"), "Id");
  expect_schema(REQ("<Id>-</Id>"), "Id");
  expect_schema(REQ("<Id>1.0</Id>"), "Id");
  expect_schema(REQ("<Pid>x</Pid>"), "Pid");
  expect_schema(REQ("<Version>x</Version>"), "Version");
  expect_schema(REQ("<Epoch>x</Epoch>"), "Epoch");
  expect_schema(REQ("<LastEventId>x</LastEventId>"), "LastEventId");
  expect_schema(REQ("<HeartbeatMs>x</HeartbeatMs>"), "HeartbeatMs");
  expect_schema(REQ("<MaxMessage>x</MaxMessage>"), "MaxMessage");
  expect_schema(REQ("<Seq>0</Seq>"), "Seq");
  expect_schema(REQ("<Seq>-1</Seq>"), "Seq");
  expect_schema(REQ("<Seq/>"), "Seq");
  expect_schema(REQ("<Command><X/></Command>"), "Command");
  expect_schema(REQ("<Result><X>1</X></Result>"), "Result");
  expect_schema(REQ("<Id><Item>1</Item></Id>"), "Id");
  expect_schema(REQ("<Other><Id>abc</Id></Other>"), "Id");
  expect_schema(REQ("<Other><Inner><Seq>0</Seq></Inner></Other>"), "Seq");
  expect_schema(REQ("<Item><Id>x</Id></Item>"), "Id");
  expect_schema(REQ("<Request>text</Request>"), "Request");
  expect_schema(REQ("<Time>now</Time>"), "Time");
  expect_schema(REQ("<Time/>"), "Time");
  expect_schema(REQ("<A><Time>x</Time></A>"), "Time");
  expect_schema(REQ("<Time>2023-02-29T00:00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>1900-02-29T00:00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-04-31T00:00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-13-01T00:00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-00-01T00:00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-01-00T00:00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-01-01T25:00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-01-01T23:60:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-01-01T23:59:60Z</Time>"), "Time");
  expect_schema(REQ("<Time>0000-01-01T00:00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-01-01T00:00:00.Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-01-01T00:00:00ZZ</Time>"), "Time");
  expect_schema(REQ("<Time>2026-01-01 00:00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time>2026-01-01T00:00Z</Time>"), "Time");
  expect_schema(REQ("<Time> 2026-01-01T00:00:00Z</Time>"), "Time");
}

/* The fast path knows the schema's global elements and their types (xml_fast.c's globals[]):
 * every global element of RPSchema.xsd, read from the file, is tried in values of every type
 * the schema uses, as a field and inside an unknown one, and every message kind with unknown
 * fields. A schema whose fields or types change where the fast path's table does not then has
 * the fast path take a document the schema refuses, and xml_diff says so. */
static void try_global(const char *name) {
  static const char *const values[] = {
      "abc", "1", "0", "-1", "", " 1", "true", "9223372036854775808", "2026-01-01T00:00:00Z",
      "<X/>", "<Id>x</Id>", "<Item>a</Item>", "<Item>a</Item><Item>b</Item>"};
  char doc[512];
  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    snprintf(doc, sizeof(doc), REQ("<%s>%s</%s>"), name, values[i], name);
    expect_same(doc, strlen(doc), doc);
    snprintf(doc, sizeof(doc), REQ("<Other><%s>%s</%s></Other>"), name, values[i], name);
    expect_same(doc, strlen(doc), doc);
  }
  snprintf(doc, sizeof(doc), "<%s><Unknown>x</Unknown><U><V>1</V></U><W/></%s>", name, name);
  expect_same(doc, strlen(doc), doc);
}

static void test_xml_fast_schema_globals(void **state) {
  xmlDocPtr xsd = xmlReadFile(PM_SOURCE_DIR "/schema/RPSchema.xsd", NULL, XML_PARSE_NONET);
  int globals = 0;
  (void)state;
  assert_non_null(xsd);
  for (xmlNodePtr n = xmlDocGetRootElement(xsd)->children; n != NULL; n = n->next) {
    xmlChar *name;
    if (n->type != XML_ELEMENT_NODE || !xmlStrEqual(n->name, BAD_CAST "element"))
      continue;
    name = xmlGetProp(n, BAD_CAST "name");
    assert_non_null(name);
    try_global((const char *)name);
    xmlFree(name);
    globals++;
  }
  xmlFreeDoc(xsd);
  assert_true(globals >= 25);
}

/* What the random edits put in. */
static const char *const tokens[] = {
    "<", ">", "</", "/>", "<Item>", "</Item>", "<Item/>", "<Id>", "</Id>", "<Seq>", "<A>",
    "</A>", "<Params>", "&amp;", "&lt;", "&#13;", "&#x1F600;", "&#0;", "&a;", "]]>", " ",
    "\n", "\r", "\t", "-", "0", "9", "9223372036854775808", "\xff", "\xc3\xa9", "\xef\xbf\xbe",
    "<!--x-->", "<![CDATA[x]]>", " a=\"1\"", "xmlns:p=\"u\"", "<Request>", "<Time>"};

static void test_xml_fast_corpus_and_random(void **state) {
  static const char *const dirs[] = {"fuzz_xml_diff", "fuzz_roundtrip", NULL};
  (void)state;
  pm_test_corpus_check(dirs, tokens, sizeof(tokens) / sizeof(tokens[0]), RANDOM_INPUTS,
                       expect_same);
}

/* A long text comes out whole, through the text buffer's growth. */
static void test_xml_fast_long_text(void **state) {
  size_t len;
  char *s;
  (void)state;
  s = pm_test_repeat("<Request><Blob>", "abc&amp;\xc3\xa9&#13;", 100000, "</Blob></Request>", &len);
  expect_same(s, len, "long text");
  {
    const char *kind;
    json_t *tree = pm__xml_fast_decode((const uint8_t *)s, len, &kind);
    assert_non_null(tree);
    assert_int_equal(100000 * 7, json_string_length(json_object_get(tree, "Blob")));
    json_decref(tree);
  }
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_xml_fast_subset),
      cmocka_unit_test(test_xml_fast_depth),
      cmocka_unit_test(test_xml_fast_node_budget),
      cmocka_unit_test(test_xml_fast_valid_elsewhere),
      cmocka_unit_test(test_xml_fast_invalid),
      cmocka_unit_test(test_xml_fast_schema_globals),
      cmocka_unit_test(test_xml_fast_corpus_and_random),
      cmocka_unit_test(test_xml_fast_long_text),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
