/* The contract's checks (src/contract/contract.c) on its own tables: types, conversion of XML
 * text, defaults, unknown members and their suggestions, formats, GetCommands' Data. */
#include <string.h>

#include "contract/contract.h"
#include "testutil.h"

static const pm__ct_command *cmd(const char *name) {
  const pm__ct_command *c = pm__contract_command(name, true);
  assert_non_null(c);
  return c;
}

/* Checks params (taken) for command in the given mode; returns the code, why in *reason. */
static int check(const char *command, json_t *params, bool from_xml, json_t **out,
                 char reason[PM_REASON_MAX]) {
  json_t *typed = NULL;
  int rc;
  reason[0] = '\0';
  rc = pm__contract_check_params(cmd(command), params, from_xml, &typed, reason);
  json_decref(params);
  if (out != NULL)
    *out = typed;
  else
    json_decref(typed);
  return rc;
}

static void expect_bad(const char *command, json_t *params, bool from_xml, const char *text) {
  char why[PM_REASON_MAX];
  assert_pm(PM_ESCHEMA, check(command, params, from_xml, NULL, why));
  if (strstr(why, text) == NULL) {
    print_error("reason '%s' lacks '%s'\n", why, text);
    fail();
  }
}

static void test_contract_check_defaults_and_json_types(void **state) {
  char why[PM_REASON_MAX];
  json_t *out = NULL;
  (void)state;
  assert_pm(0, check("StartVpn", NULL, false, &out, why));
  assert_string_equal("auto", json_string_value(json_object_get(out, "Location")));
  assert_null(json_object_get(out, "EnableKillSwitch"));
  json_decref(out);
  assert_pm(0, check("EmitEvent", json_pack("{s:s}", "Type", "X"), false, &out, why));
  assert_int_equal(1, json_integer_value(json_object_get(out, "Count")));
  json_decref(out);
  /* JSON must carry the declared types: text is not an integer there. */
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", "5"), false,
             "Count must be an integer from 1 to 1000000 (got a string)");
  expect_bad("StartVpn", json_pack("{s:i}", "Location", 123), false,
             "Location must be a string of 1 to 64 bytes");
  expect_bad("StartVpn", json_pack("{s:s}", "EnableKillSwitch", "true"), false,
             "EnableKillSwitch must be a boolean");
}

/* XML text becomes the declared type: the handler sees the same tree as from JSON. */
static void test_contract_check_converts_xml_text(void **state) {
  char why[PM_REASON_MAX];
  json_t *out = NULL;
  (void)state;
  assert_pm(0, check("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", "5"), true, &out,
                     why));
  assert_true(json_is_integer(json_object_get(out, "Count")));
  assert_int_equal(5, json_integer_value(json_object_get(out, "Count")));
  json_decref(out);
  assert_pm(0, check("StartVpn", json_pack("{s:s}", "EnableKillSwitch", "false"), true, &out,
                     why));
  assert_true(json_is_false(json_object_get(out, "EnableKillSwitch")));
  json_decref(out);
  /* <Domains/> is an empty list; <Location>123</Location> stays the string "123". */
  assert_pm(0, check("ConfigureBypassDomains", json_pack("{s:{}}", "Domains"), true, &out, why));
  assert_true(json_is_array(json_object_get(out, "Domains")));
  assert_int_equal(0, json_array_size(json_object_get(out, "Domains")));
  json_decref(out);
  assert_pm(0, check("StartVpn", json_pack("{s:s}", "Location", "123"), true, &out, why));
  assert_string_equal("123", json_string_value(json_object_get(out, "Location")));
  json_decref(out);
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", " 5"), true,
             "Count must be an integer");
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", "99999999999999999999"),
             true, "Count must be an integer");
  expect_bad("StartVpn", json_pack("{s:s}", "EnableKillSwitch", "1"), true,
             "EnableKillSwitch must be a boolean (true or false)");
  /* <Location/> is the empty string, which is too short. */
  expect_bad("StartVpn", json_pack("{s:{}}", "Location"), true, "(got 0 bytes)");
}

static void test_contract_check_unknown_and_missing(void **state) {
  (void)state;
  expect_bad("StartVpn", json_pack("{s:s}", "Locaton", "de"), false,
             "unknown parameter 'Locaton' for StartVpn; did you mean 'Location'?");
  expect_bad("StartVpn", json_pack("{s:s}", "location", "de"), false, "did you mean 'Location'?");
  expect_bad("StartVpn", json_pack("{s:s}", "Zzz", "de"), false,
             "unknown parameter 'Zzz' for StartVpn");
  expect_bad("StopVpn", json_pack("{s:i}", "Force", 1), false,
             "unknown parameter 'Force': StopVpn has none");
  expect_bad("SetReconnectionEnabled", NULL, false, "Enabled is required");
}

static void test_contract_check_limits_at_and_past(void **state) {
  char why[PM_REASON_MAX], location[66];
  json_t *domains = json_array();
  (void)state;
  memset(location, 'x', 64);
  location[64] = '\0';
  assert_pm(0, check("StartVpn", json_pack("{s:s}", "Location", location), false, NULL, why));
  location[64] = 'x';
  location[65] = '\0';
  expect_bad("StartVpn", json_pack("{s:s}", "Location", location), false, "(got 65 bytes)");
  expect_bad("StartVpn", json_pack("{s:s}", "Location", "a b"), false, "(' ' at byte 2)");
  expect_bad("StartVpn", json_pack("{s:s}", "Location", "a\001"), false,
             "(byte 0x01 at byte 2)");
  expect_bad("EmitEvent", json_pack("{s:s}", "Type", "1abc"), false, "('1' at byte 1)");
  assert_pm(0, check("EmitEvent", json_pack("{s:s, s:i}", "Type", "X", "Count", 1000000), false,
                     NULL, why));
  expect_bad("EmitEvent", json_pack("{s:s, s:i}", "Type", "X", "Count", 1000001), false,
             "(got 1000001)");
  for (int i = 0; i < 256; i++)
    json_array_append_new(domains, json_string("a.example"));
  assert_pm(0, check("ConfigureBypassDomains", json_pack("{s:O}", "Domains", domains), false,
                     NULL, why));
  json_array_append_new(domains, json_string("a.example"));
  expect_bad("ConfigureBypassDomains", json_pack("{s:O}", "Domains", domains), false,
             "(got 257 items)");
  json_decref(domains);
  expect_bad("ConfigureBypassDomains", json_pack("{s:[s,s]}", "Domains", "ok.example", "-a.com"),
             false, "Domains[1] must be a domain name");
  expect_bad("ConfigureBypassDomains", json_pack("{s:s}", "Domains", "a.com"), false,
             "Domains must be a list");
}

static void test_contract_format_domain(void **state) {
  char longest[260];
  (void)state;
  assert_true(pm__contract_format_domain("example.com", 11));
  assert_true(pm__contract_format_domain("*.corp.example", 14));
  assert_true(pm__contract_format_domain("a-b.c", 5));
  assert_false(pm__contract_format_domain("", 0));
  assert_false(pm__contract_format_domain("*.", 2));
  assert_false(pm__contract_format_domain("a..b", 4));
  assert_false(pm__contract_format_domain("a-.b", 4));
  assert_false(pm__contract_format_domain("-a.b", 4));
  assert_false(pm__contract_format_domain("a.b-", 4));
  assert_false(pm__contract_format_domain("a_b", 3));
  assert_false(pm__contract_format_domain("a.*.b", 5));
  /* Labels of up to 63 bytes; names of up to 253 after the optional *. */
  memset(longest, 'a', 64);
  assert_true(pm__contract_format_domain(longest, 63));
  assert_false(pm__contract_format_domain(longest, 64));
  memcpy(longest, "*.", 2);
  memset(longest + 2, 'a', 253);
  for (int i = 2 + 63; i < 2 + 253; i += 64)
    longest[i] = '.';
  assert_true(pm__contract_format_domain(longest, 255));
  assert_true(pm__contract_format_domain(longest + 2, 253));
  longest[255] = 'a';
  assert_false(pm__contract_format_domain(longest, 256));
}

/* Answers and events: a receiver may keep unknown fields (not strict); times are RFC 3339. */
static void test_contract_check_data(void **state) {
  const pm__ct_command *c = cmd("GetState");
  const pm__ct_event *e = pm__contract_event("TrafficChanged");
  char why[PM_REASON_MAX];
  json_t *out = NULL;
  json_t *data = json_pack("{s:s, s:s, s:b, s:b, s:[], s:s, s:i}", "State", "Connected",
                           "Location", "de", "KillSwitch", 0, "ReconnectionEnabled", 1,
                           "BypassDomains", "Since", "2026-11-25T16:00:00.123Z", "New", 1);
  (void)state;
  assert_pm(0, pm__contract_check(c->data, c->n_data, data, false, false, c->name, &out, why));
  assert_int_equal(1, json_integer_value(json_object_get(out, "New")));
  json_decref(out);
  assert_pm(PM_ESCHEMA,
            pm__contract_check(c->data, c->n_data, data, false, true, c->name, &out, why));
  assert_non_null(strstr(why, "unknown field 'New'"));
  json_object_del(data, "New");
  json_object_set_new(data, "Since", json_string("yesterday"));
  assert_pm(PM_ESCHEMA,
            pm__contract_check(c->data, c->n_data, data, false, true, c->name, &out, why));
  assert_non_null(strstr(why, "Since must be an RFC 3339 time"));
  json_object_set_new(data, "Since", json_string("2026-11-25T16:00:00+01:00"));
  json_object_set_new(data, "State", json_string("Sleeping"));
  assert_pm(PM_ESCHEMA,
            pm__contract_check(c->data, c->n_data, data, false, true, c->name, &out, why));
  assert_non_null(strstr(why, "State must be one of Disconnected"));
  assert_non_null(strstr(why, "(got 'Sleeping')"));
  json_decref(data);
  assert_non_null(e);
  assert_true(e->transient);
  data = json_pack("{s:s, s:s}", "BytesSent", "10", "BytesReceived", "-1");
  assert_pm(PM_ESCHEMA,
            pm__contract_check(e->fields, e->n_fields, data, true, true, e->type, &out, why));
  assert_non_null(strstr(why, "BytesReceived must be an integer from 0"));
  json_decref(data);
  assert_null(pm__contract_event("NoSuchEvent"));
}

static void test_contract_closest_and_test_commands(void **state) {
  (void)state;
  assert_string_equal("StartVpn", pm__contract_closest_command("startvpn", false));
  assert_string_equal("GetState", pm__contract_closest_command("GetStat", false));
  assert_null(pm__contract_closest_command("Frobnicate", false));
  assert_null(pm__contract_closest_command("EmitEvnt", false));
  assert_string_equal("EmitEvent", pm__contract_closest_command("EmitEvnt", true));
  assert_null(pm__contract_command("Echo", false));
  assert_non_null(pm__contract_command("Echo", true));
  assert_string_equal("Location", pm__contract_closest_param(cmd("StartVpn"), "Loc_ation"));
}

static const pm__ct_type *named_type(const char *name) {
  for (size_t i = 0; i < pm__contract_n_types; i++)
    if (strcmp(pm__contract_types[i]->name, name) == 0)
      return pm__contract_types[i];
  fail_msg("no type %s", name);
  return NULL;
}

/* Checks data (taken) against fields in the given mode; the code, why in reason. */
static int check_fields(const pm__ct_field *fields, size_t n, json_t *data, bool from_xml,
                        bool strict, const char *what, char reason[PM_REASON_MAX]) {
  json_t *out = NULL;
  int rc;
  reason[0] = '\0';
  rc = pm__contract_check(fields, n, data, from_xml, strict, what, &out, reason);
  json_decref(data);
  if (rc == 0)
    assert_non_null(out);
  else
    assert_null(out);
  json_decref(out);
  return rc;
}

static void assert_reason(const char *why, const char *text) {
  if (strstr(why, text) == NULL) {
    print_error("reason '%s' lacks '%s'\n", why, text);
    fail();
  }
}

/* GetState's Since against an RFC 3339 time: 0 or PM_ESCHEMA. */
static int since(const char *time) {
  const pm__ct_command *c = cmd("GetState");
  char why[PM_REASON_MAX];
  int rc = check_fields(c->data, c->n_data,
                        json_pack("{s:s, s:s, s:b, s:b, s:[], s:s}", "State", "Connected",
                                  "Location", "de", "KillSwitch", 0, "ReconnectionEnabled", 1,
                                  "BypassDomains", "Since", time),
                        false, true, c->name, why);
  if (rc != 0)
    assert_reason(why, "Since must be an RFC 3339 time (not such a time)");
  return rc;
}

static void test_contract_check_times(void **state) {
  (void)state;
  assert_pm(0, since("2026-11-25T16:00:00Z"));
  assert_pm(0, since("2026-11-25t16:00:00z"));
  assert_pm(0, since("2026-11-25T16:00:00.5Z"));
  assert_pm(0, since("2026-11-25T16:00:00-05:30"));
  assert_pm(0, since("2026-11-25T16:00:00.123456+00:00"));
  /* Each part of the date and time, one at a time. */
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00"));
  assert_pm(PM_ESCHEMA, since("2026-11-25 16:00:00Z"));
  assert_pm(PM_ESCHEMA, since("20x6-11-25T16:00:00Z"));
  assert_pm(PM_ESCHEMA, since("2026/11-25T16:00:00Z"));
  assert_pm(PM_ESCHEMA, since("2026-1x-25T16:00:00Z"));
  assert_pm(PM_ESCHEMA, since("2026-11/25T16:00:00Z"));
  assert_pm(PM_ESCHEMA, since("2026-11-2xT16:00:00Z"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T1x:00:00Z"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16-00:00Z"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:x0:00Z"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00-00Z"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:0xZ"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:0 Z"));
  /* A fraction needs a digit; the zone is Z or a whole +HH:MM, and nothing follows it. */
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00.Z"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00.123"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00ZZ"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00X"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00+0100"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00*01:00"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00+x1:00"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00+01-00"));
  assert_pm(PM_ESCHEMA, since("2026-11-25T16:00:00+01:x0"));
}

/* What a reason says a value was: every JSON kind by name, a string only when printable and
 * short (the reason goes into XML answers and logs). */
static void test_contract_check_reasons_name_the_value(void **state) {
  const pm__ct_command *c = cmd("GetState");
  char why[PM_REASON_MAX];
  (void)state;
  expect_bad("StartVpn", json_pack("{s:{s:i}}", "Location", "A", 1), false, "(got an object)");
  expect_bad("StartVpn", json_pack("{s:{}}", "Location"), false, "(got an object)");
  expect_bad("StartVpn", json_pack("{s:[]}", "Location"), false, "(got a list)");
  expect_bad("StartVpn", json_pack("{s:f}", "Location", 1.5), false, "(got a real number)");
  expect_bad("StartVpn", json_pack("{s:n}", "Location"), false, "(got null)");
  expect_bad("StartVpn", json_pack("{s:b}", "Location", 1), false, "(got a boolean)");
  expect_bad("StartVpn", json_pack("{s:i}", "EnableKillSwitch", 1), false, "(got an integer)");
  /* In XML mode only "true" and "false" are booleans, and only text converts. */
  expect_bad("StartVpn", json_pack("{s:s}", "EnableKillSwitch", "True"), true, "(got a string)");
  expect_bad("StartVpn", json_pack("{s:{}}", "EnableKillSwitch"), true, "(got an object)");
  expect_bad("EmitEvent", json_pack("{s:s, s:{}}", "Type", "X", "Count"), true,
             "Count must be an integer from 1 to 1000000 (got an object)");
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", "5x"), true,
             "(got text that is not one)");
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", "-"), true,
             "(got text that is not one)");
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", ""), true,
             "(got text that is not one)");
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", "x5"), true,
             "(got text that is not one)");
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", "5 "), true,
             "(got text that is not one)");
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", "+0"), true, "(got 0)");
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Count", "-7"), true, "(got -7)");
  /* Enumerations quote a short printable value, and nothing else. */
  assert_pm(PM_ESCHEMA, check_fields(c->data, c->n_data,
                                     json_pack("{s:s}", "State", "Connected'"), false, true,
                                     c->name, why));
  assert_reason(why, "State must be one of Disconnected, Connecting, Connected, Disconnecting "
                     "(got another value)");
  assert_pm(PM_ESCHEMA, check_fields(c->data, c->n_data,
                                     json_pack("{s:s}", "State", "Connected\n"), false, true,
                                     c->name, why));
  assert_reason(why, "(got another value)");
  assert_pm(PM_ESCHEMA,
            check_fields(c->data, c->n_data,
                         json_pack("{s:s}", "State", "ConnectedConnectedConnectedConnect"), false,
                         true, c->name, why));
  assert_reason(why, "(got another value)");
  assert_pm(PM_ESCHEMA,
            check_fields(c->data, c->n_data,
                         json_pack("{s:s}", "State", "ConnectedConnectedConnectedConne"), false,
                         true, c->name, why));
  assert_reason(why, "(got 'ConnectedConnectedConnectedConne')");
  assert_pm(PM_ESCHEMA,
            check_fields(c->data, c->n_data, json_pack("{s:s}", "State", "Conn\xc3\xa9" "cted"),
                         false, true, c->name, why));
  assert_reason(why, "(got another value)");
  assert_pm(PM_ESCHEMA, check_fields(c->data, c->n_data,
                                     json_pack("{s:s}", "State", "Connected\x7f"), false, true,
                                     c->name, why));
  assert_reason(why, "(got another value)");
  /* A value with a NUL byte inside is not the value before it. */
  assert_pm(PM_ESCHEMA, check_fields(c->data, c->n_data,
                                     json_pack("{s:s#}", "State", "Connected\0x", 11), false,
                                     true, c->name, why));
  assert_reason(why, "(got another value)");
  /* Characters outside the charset: quoted when printable, else as a byte. */
  expect_bad("StartVpn", json_pack("{s:s}", "Location", "a'b"), false, "(byte 0x27 at byte 2)");
  expect_bad("StartVpn", json_pack("{s:s#}", "Location", "ab\0c", 4), false,
             "(byte 0x00 at byte 3)");
  expect_bad("StartVpn", json_pack("{s:s}", "Location", "ab\xc3\xa9"), false,
             "(byte 0xc3 at byte 3)");
  expect_bad("StartVpn", json_pack("{s:s}", "Location", "ab~"), false, "('~' at byte 3)");
  expect_bad("StartVpn", json_pack("{s:s}", "Location", ""), false,
             "Location must be a string of 1 to 64 bytes");
  /* first applies to the first byte only; the rest take charset. */
  assert_pm(0, check("EmitEvent", json_pack("{s:s}", "Type", "a9Z"), false, NULL, why));
  expect_bad("EmitEvent", json_pack("{s:s}", "Type", "a-"), false, "('-' at byte 2)");
  /* A domain that is not one is quoted as it came. */
  expect_bad("ConfigureBypassDomains", json_pack("{s:[s]}", "Domains", "a..b"), false,
             "Domains[0] must be a domain name (labels of letters, digits and inner '-' joined "
             "by '.', may start *.) (got 'a..b')");
}

/* Integers at the edges of 64 bits; scalars are a string, an integer or a boolean. */
static void test_contract_check_integers_and_scalars(void **state) {
  const pm__ct_type *info = named_type("ParamInfo");
  char why[PM_REASON_MAX];
  json_t *base = json_pack("{s:s, s:s, s:b, s:s}", "Name", "N", "Type", "integer", "Required", 0,
                           "Doc", "d");
  json_t *v = NULL;
  (void)state;
  assert_non_null(base);
  assert_pm(0, check_fields(info->fields, info->n_fields, json_deep_copy(base), false, true,
                            "ParamInfo", why));
  json_object_set_new(base, "Min", json_string("-9223372036854775808"));
  assert_pm(0, pm__contract_check(info->fields, info->n_fields, base, true, true, "ParamInfo", &v,
                                  why));
  assert_true(json_integer_value(json_object_get(v, "Min")) == INT64_MIN);
  json_decref(v);
  json_object_set_new(base, "Min", json_string("-9223372036854775809"));
  assert_pm(PM_ESCHEMA, check_fields(info->fields, info->n_fields, json_deep_copy(base), true,
                                     true, "ParamInfo", why));
  assert_reason(why, "Min must be an integer (got text that is not one)");
  json_object_set_new(base, "Min", json_string("9223372036854775807"));
  assert_pm(0, check_fields(info->fields, info->n_fields, json_deep_copy(base), true, true,
                            "ParamInfo", why));
  json_object_del(base, "Min");
  json_object_set_new(base, "Default", json_string("x"));
  assert_pm(0, check_fields(info->fields, info->n_fields, json_deep_copy(base), false, true,
                            "ParamInfo", why));
  json_object_set_new(base, "Default", json_integer(-3));
  assert_pm(0, check_fields(info->fields, info->n_fields, json_deep_copy(base), false, true,
                            "ParamInfo", why));
  json_object_set_new(base, "Default", json_false());
  assert_pm(0, pm__contract_check(info->fields, info->n_fields, base, false, true, "ParamInfo",
                                  &v, why));
  assert_true(json_is_false(json_object_get(v, "Default")));
  json_decref(v);
  json_object_set_new(base, "Default", json_real(0.5));
  assert_pm(PM_ESCHEMA, check_fields(info->fields, info->n_fields, json_deep_copy(base), false,
                                     true, "ParamInfo", why));
  assert_reason(why, "Default must be a string, an integer or a boolean (got a real number)");
  json_object_set_new(base, "Default", json_null());
  assert_pm(PM_ESCHEMA, check_fields(info->fields, info->n_fields, json_deep_copy(base), false,
                                     true, "ParamInfo", why));
  assert_reason(why, "(got null)");
  json_object_del(base, "Default");
  /* A list of strings without a bound; <Values/> is empty, one <Values>x</Values> is not a list. */
  json_object_set_new(base, "Values", json_pack("[s,s]", "a", "b"));
  assert_pm(0, check_fields(info->fields, info->n_fields, json_deep_copy(base), false, true,
                            "ParamInfo", why));
  json_object_set_new(base, "Values", json_pack("[s,i]", "a", 2));
  assert_pm(PM_ESCHEMA, check_fields(info->fields, info->n_fields, json_deep_copy(base), false,
                                     true, "ParamInfo", why));
  assert_reason(why, "Values[1] must be a string (got an integer)");
  json_object_set_new(base, "Values", json_object());
  assert_pm(PM_ESCHEMA, check_fields(info->fields, info->n_fields, json_deep_copy(base), false,
                                     true, "ParamInfo", why));
  assert_reason(why, "Values must be a list");
  assert_pm(0, pm__contract_check(info->fields, info->n_fields, base, true, true, "ParamInfo", &v,
                                  why));
  assert_true(json_is_array(json_object_get(v, "Values")));
  json_decref(v);
  json_decref(base);
}

/* Named types nest: their members are named by path, and a tree is any object. */
static void test_contract_check_nested_objects_and_trees(void **state) {
  const pm__ct_command *c = cmd("GetStats");
  char why[PM_REASON_MAX];
  json_t *commands = json_pack("{s:i, s:i, s:i, s:i, s:i}", "Connections", 1, "Ok", 1, "Failed",
                               0, "BadRequest", 0, "NoRequest", 0);
  json_t *events = json_object(), *out = NULL, *tree;
  const pm__ct_type *es = named_type("EventStats");
  (void)state;
  for (size_t i = 0; i < es->n_fields; i++)
    json_object_set_new(events, es->fields[i].name,
                        es->fields[i].type->kind == PM__CT_BOOLEAN ? json_true()
                                                                   : json_integer(1));
  assert_pm(0, check_fields(c->data, c->n_data,
                            json_pack("{s:O, s:O}", "Commands", commands, "Events", events), false,
                            true, c->name, why));
  /* From XML, the counters' text becomes integers inside the nested object. */
  json_object_set_new(commands, "Ok", json_string("7"));
  tree = json_pack("{s:O, s:O}", "Commands", commands, "Events", events);
  assert_pm(0, pm__contract_check(c->data, c->n_data, tree, true, true, c->name, &out, why));
  assert_int_equal(7, json_integer_value(json_object_get(json_object_get(out, "Commands"), "Ok")));
  json_decref(out);
  json_decref(tree);
  assert_pm(PM_ESCHEMA, check_fields(c->data, c->n_data,
                                     json_pack("{s:O, s:O}", "Commands", commands, "Events",
                                               events),
                                     false, true, c->name, why));
  assert_reason(why, "Commands.Ok must be an integer from 0 to 9223372036854775807 (got a "
                     "string)");
  json_object_set_new(commands, "Ok", json_integer(1));
  json_object_set_new(commands, "Okk", json_integer(1));
  assert_pm(PM_ESCHEMA, check_fields(c->data, c->n_data,
                                     json_pack("{s:O, s:O}", "Commands", commands, "Events",
                                               events),
                                     false, true, c->name, why));
  assert_reason(why, "unknown field 'Commands.Okk' for Commands; did you mean 'Ok'?");
  json_object_set_new(commands, "Zzzzzz", json_integer(1));
  json_object_del(commands, "Okk");
  assert_pm(PM_ESCHEMA, check_fields(c->data, c->n_data,
                                     json_pack("{s:O, s:O}", "Commands", commands, "Events",
                                               events),
                                     false, true, c->name, why));
  assert_reason(why, "unknown field 'Commands.Zzzzzz' for Commands");
  json_object_del(commands, "Zzzzzz");
  json_object_del(commands, "NoRequest");
  assert_pm(PM_ESCHEMA, check_fields(c->data, c->n_data,
                                     json_pack("{s:O, s:O}", "Commands", commands, "Events",
                                               events),
                                     false, true, c->name, why));
  assert_reason(why, "Commands.NoRequest is required: an integer from 0");
  assert_pm(PM_ESCHEMA,
            check_fields(c->data, c->n_data, json_pack("{s:[], s:O}", "Commands", "Events", events),
                         false, true, c->name, why));
  assert_reason(why, "Commands must be an object of type CommandStats (got a list)");
  json_decref(commands);
  json_decref(events);
  /* A whole that is not an object. */
  expect_bad("StartVpn", json_pack("[s]", "de"), false,
             "StartVpn: an object was expected (got a list)");
  assert_pm(PM_ESCHEMA, check_fields(c->data, c->n_data, json_string("x"), false, false, c->name,
                                     why));
  assert_reason(why, "GetStats: an object was expected (got a string)");
  /* EmitEvent's Data is a free-form tree: any object as it came, nothing else. */
  assert_pm(0, check("EmitEvent", json_pack("{s:s, s:{s:[i]}}", "Type", "X", "Data", "Any", 1),
                     false, &out, why));
  assert_int_equal(1, json_integer_value(
                          json_array_get(json_object_get(json_object_get(out, "Data"), "Any"), 0)));
  json_decref(out);
  expect_bad("EmitEvent", json_pack("{s:s, s:s}", "Type", "X", "Data", "x"), false,
             "Data must be ");
  expect_bad("EmitEvent", json_pack("{s:s, s:[]}", "Type", "X", "Data"), true, "(got a list)");
}

/* Echo takes any Params as they came (the same tree, or none). */
static void test_contract_check_any_params(void **state) {
  const pm__ct_command *echo = cmd("Echo");
  char why[PM_REASON_MAX];
  json_t *params = json_pack("{s:[i]}", "Whatever", 1), *out = NULL;
  (void)state;
  assert_pm(0, pm__contract_check_params(echo, params, true, &out, why));
  assert_ptr_equal(params, out);
  json_decref(out);
  json_decref(params);
  out = params = json_object();
  assert_pm(0, pm__contract_check_params(echo, NULL, false, &out, why));
  assert_null(out);
  json_decref(params);
}

static void test_contract_closest_limits(void **state) {
  char longest[70], word[65];
  const char *names[] = {"abc", NULL, "Abcdefghi"};
  (void)state;
  memset(longest, 'a', sizeof(longest) - 1);
  longest[sizeof(longest) - 1] = '\0';
  names[1] = longest;
  /* A third of the name's length, or one edit, or only case. */
  assert_string_equal("abc", pm__contract_closest("abd", names, 1));
  assert_null(pm__contract_closest("xyz", names, 1));
  assert_string_equal("Abcdefghi", pm__contract_closest("abcdefxyz", names, 3));
  assert_null(pm__contract_closest("abcdwxyz", names + 2, 1));
  assert_string_equal("Abcdefghi", pm__contract_closest("ABCDEFGHI", names + 2, 1));
  /* The closest wins; an exact match over a near one. */
  assert_string_equal("abc", pm__contract_closest("ABC", names, 3));
  /* Words and names past 64 bytes are never compared; 64 bytes are. */
  assert_null(pm__contract_closest(longest, names, 3));
  memcpy(word, longest, 64);
  word[64] = '\0';
  assert_null(pm__contract_closest(word, names + 1, 1));
  longest[64] = '\0';
  assert_ptr_equal(longest, pm__contract_closest(word, names + 1, 1));
  assert_null(pm__contract_closest(NULL, names, 3));
  assert_null(pm__contract_command(NULL, true));
  assert_null(pm__contract_command("NoSuchCommand", true));
  assert_null(pm__contract_event(NULL));
  assert_non_null(pm__contract_event("StateChanged"));
  /* A domain's optional *. is the two bytes together. */
  assert_false(pm__contract_format_domain("*", 1));
  assert_false(pm__contract_format_domain("*a", 2));
  assert_true(pm__contract_format_domain("A9.Z", 4));
}

static size_t count_named(const json_t *list, const char *key, const char *name) {
  size_t i, n = 0;
  json_t *item;
  json_array_foreach(list, i, item) n +=
      strcmp(json_string_value(json_object_get(item, key)), name) == 0;
  return n;
}

/* GetCommands' Data describes the contract and keeps to its own declaration. */
static void test_contract_describe(void **state) {
  const pm__ct_command *self = cmd("GetCommands");
  char why[PM_REASON_MAX];
  json_t *out = NULL, *all = pm__contract_describe(true), *plain = pm__contract_describe(false);
  json_t *start = NULL, *item;
  size_t i;
  (void)state;
  assert_non_null(all);
  assert_non_null(plain);
  assert_pm(0, pm__contract_check(self->data, self->n_data, all, false, true, self->name, &out,
                                  why));
  json_decref(out);
  assert_int_equal(1, count_named(json_object_get(all, "Commands"), "Name", "EmitEvent"));
  assert_int_equal(0, count_named(json_object_get(plain, "Commands"), "Name", "EmitEvent"));
  assert_int_equal(0, count_named(json_object_get(plain, "Commands"), "Name", "Echo"));
  assert_int_equal(1, count_named(json_object_get(plain, "Commands"), "Name", "GetCommands"));
  assert_int_equal(1, count_named(json_object_get(plain, "Events"), "Type", "TrafficChanged"));
  json_array_foreach(json_object_get(plain, "Commands"), i, item) {
    if (strcmp(json_string_value(json_object_get(item, "Name")), "StartVpn") == 0)
      start = item;
  }
  assert_non_null(start);
  item = json_array_get(json_object_get(start, "Params"), 0);
  assert_string_equal("Location", json_string_value(json_object_get(item, "Name")));
  assert_string_equal("string", json_string_value(json_object_get(item, "Type")));
  assert_true(json_is_false(json_object_get(item, "Required")));
  assert_string_equal("auto", json_string_value(json_object_get(item, "Default")));
  assert_int_equal(64, json_integer_value(json_object_get(item, "MaxLength")));
  assert_string_equal("TooManyRequests",
                      json_string_value(json_array_get(json_object_get(start, "Results"), 0)));
  json_decref(all);
  json_decref(plain);
}

/* GetCommands shows each constraint the contract declares: enumeration values, an integer's
 * declared bounds, a string's lengths, charset and format (a list's from its items). */
static void test_contract_describe_constraints(void **state) {
  json_t *all = pm__contract_describe(true), *item, *f;
  size_t i;
  (void)state;
  assert_non_null(all);
  json_array_foreach(json_object_get(all, "Commands"), i, item) {
    const char *name = json_string_value(json_object_get(item, "Name"));
    if (strcmp(name, "GetState") == 0) {
      f = json_array_get(json_object_get(item, "Data"), 0);
      assert_string_equal("State", json_string_value(json_object_get(f, "Name")));
      assert_int_equal(4, json_array_size(json_object_get(f, "Values")));
      assert_string_equal("Disconnecting",
                          json_string_value(json_array_get(json_object_get(f, "Values"), 3)));
      f = json_array_get(json_object_get(item, "Data"), 6);
      assert_string_equal("LastError", json_string_value(json_object_get(f, "Name")));
      assert_true(json_is_false(json_object_get(f, "Required")));
      assert_int_equal(4, json_object_size(f));
    } else if (strcmp(name, "EmitEvent") == 0) {
      f = json_array_get(json_object_get(item, "Params"), 0);
      assert_int_equal(1, json_integer_value(json_object_get(f, "MinLength")));
      assert_string_equal("A-Za-z0-9", json_string_value(json_object_get(f, "Charset")));
      f = json_array_get(json_object_get(item, "Params"), 2);
      assert_string_equal("Count", json_string_value(json_object_get(f, "Name")));
      assert_true(json_is_integer(json_object_get(f, "Default")));
      assert_int_equal(1, json_integer_value(json_object_get(f, "Default")));
      assert_int_equal(1, json_integer_value(json_object_get(f, "Min")));
      assert_int_equal(1000000, json_integer_value(json_object_get(f, "Max")));
      f = json_array_get(json_object_get(item, "Data"), 0);
      assert_int_equal(1, json_integer_value(json_object_get(f, "Min")));
      assert_null(json_object_get(f, "Max"));
    } else if (strcmp(name, "ConfigureBypassDomains") == 0) {
      f = json_array_get(json_object_get(item, "Params"), 0);
      assert_string_equal("list", json_string_value(json_object_get(f, "Type")));
      assert_string_equal("string", json_string_value(json_object_get(f, "Items")));
      assert_string_equal("domain", json_string_value(json_object_get(f, "Format")));
      assert_int_equal(256, json_integer_value(json_object_get(f, "MaxItems")));
      assert_null(json_object_get(f, "MinLength"));
    } else if (strcmp(name, "GetState") != 0 && strcmp(name, "GetVersion") == 0) {
      assert_int_equal(0, json_array_size(json_object_get(item, "Params")));
    }
  }
  item = json_array_get(json_object_get(all, "Formats"), 0);
  assert_string_equal("domain", json_string_value(json_object_get(item, "Name")));
  assert_non_null(strstr(json_string_value(json_object_get(item, "Pattern")), "[A-Za-z0-9]"));
  assert_int_equal(pm__contract_n_types, json_array_size(json_object_get(all, "Types")));
  assert_int_equal(pm__contract_n_events, json_array_size(json_object_get(all, "Events")));
  json_decref(all);
}

/* ---- out of memory (jansson's allocations) ------------------------------------------------ */

static unsigned long json_allocs_left;
static bool json_limited, json_only_one;

static void *limited_malloc(size_t n) {
  if (json_limited) {
    if (json_allocs_left == 0) {
      json_limited = !json_only_one;
      return NULL;
    }
    json_allocs_left--;
  }
  return malloc(n);
}

/* From the nth jansson allocation on (1-based), every one fails; 0 lifts the limit. */
static void json_fail_after(unsigned long n) {
  json_limited = n != 0;
  json_only_one = false;
  json_allocs_left = n != 0 ? n - 1 : 0;
}

/* Only the nth jansson allocation fails: the code goes on with memory after a failure. */
static void json_fail_only(unsigned long n) {
  json_fail_after(n);
  json_only_one = true;
}

/* Checks tree against fields with the Nth allocation failing, N = 1, 2, ... until it
 * succeeds: each failure is PM_ENOMEM with no tree, and the success gives expected. */
static void check_oom_loop(const pm__ct_field *fields, size_t n, const json_t *tree,
                           bool from_xml, bool strict, const json_t *expected) {
  char why[PM_REASON_MAX];
  unsigned long i;
  int rc = PM_ENOMEM;
  json_t *out = NULL;
  for (i = 1; i < 10000 && rc != 0; i++) {
    out = NULL;
    json_set_alloc_funcs(limited_malloc, free);
    json_fail_after(i);
    rc = pm__contract_check(fields, n, tree, from_xml, strict, "X", &out, why);
    json_fail_after(0);
    json_set_alloc_funcs(malloc, free);
    if (rc != 0) {
      assert_pm(PM_ENOMEM, rc);
      assert_string_equal(pm_strerror(PM_ENOMEM), why);
      assert_null(out);
    }
  }
  assert_pm(0, rc);
  assert_true(i > 2);
  assert_true(json_equal(out, expected));
  json_decref(out);
}

static void test_contract_check_out_of_memory(void **state) {
  const pm__ct_command *c = cmd("ConfigureBypassDomains"), *s = cmd("StartVpn"),
                       *e = cmd("EmitEvent"), *g = cmd("GetStats");
  const pm__ct_type *es = named_type("EventStats");
  json_t *tree = json_pack("{s:[s,s]}", "Domains", "a.example", "*.b.example");
  json_t *events = json_object(), *expected;
  (void)state;
  check_oom_loop(c->params, c->n_params, tree, false, true, tree);
  json_decref(tree);
  /* Defaults and converted XML text are new values. */
  tree = json_pack("{s:s}", "EnableKillSwitch", "true");
  expected = json_pack("{s:b, s:s}", "EnableKillSwitch", 1, "Location", "auto");
  check_oom_loop(s->params, s->n_params, tree, true, true, expected);
  json_decref(tree);
  json_decref(expected);
  tree = json_pack("{s:s, s:s}", "Type", "X", "Count", "3");
  expected = json_pack("{s:s, s:i}", "Type", "X", "Count", 3);
  check_oom_loop(e->params, e->n_params, tree, true, true, expected);
  json_decref(tree);
  json_decref(expected);
  tree = json_pack("{s:{}}", "Domains");
  expected = json_pack("{s:[]}", "Domains");
  check_oom_loop(c->params, c->n_params, tree, true, true, expected);
  json_decref(tree);
  json_decref(expected);
  expected = json_pack("{s:s}", "Location", "auto");
  check_oom_loop(s->params, s->n_params, NULL, false, true, expected);
  json_decref(expected);
  /* A default that is a new integer. */
  tree = json_pack("{s:s}", "Type", "X");
  expected = json_pack("{s:s, s:i}", "Type", "X", "Count", 1);
  check_oom_loop(e->params, e->n_params, tree, false, true, expected);
  json_decref(tree);
  json_decref(expected);
  /* More items than a new list first has room for. */
  tree = json_pack("{s:[s,s,s,s,s,s,s,s,s,s]}", "Domains", "a.example", "b.example", "c.example",
                   "d.example", "e.example", "f.example", "g.example", "h.example", "i.example",
                   "j.example");
  check_oom_loop(c->params, c->n_params, tree, true, true, tree);
  json_decref(tree);
  /* Not strict (answers, events): an unknown member is kept, which takes memory too. */
  tree = json_pack("{s:s, s:i}", "State", "Connecting", "New", 1);
  expected = json_pack("{s:s, s:i}", "State", "Connecting", "New", 1);
  check_oom_loop(cmd("StartVpn")->data, cmd("StartVpn")->n_data, tree, false, false, expected);
  json_decref(tree);
  json_decref(expected);
  /* A nested named type, from XML text. */
  for (size_t i = 0; i < es->n_fields; i++)
    json_object_set_new(events, es->fields[i].name,
                        json_string(es->fields[i].type->kind == PM__CT_BOOLEAN ? "true" : "1"));
  tree = json_pack("{s:{s:s, s:s, s:s, s:s, s:s}, s:O}", "Commands", "Connections", "1", "Ok",
                   "2", "Failed", "3", "BadRequest", "4", "NoRequest", "5", "Events", events);
  expected = json_pack("{s:{s:i, s:i, s:i, s:i, s:i}}", "Commands", "Connections", 1, "Ok", 2,
                       "Failed", 3, "BadRequest", 4, "NoRequest", 5);
  for (size_t i = 0; i < es->n_fields; i++)
    json_object_set_new(events, es->fields[i].name,
                        es->fields[i].type->kind == PM__CT_BOOLEAN ? json_true()
                                                                   : json_integer(1));
  json_object_set(expected, "Events", events);
  check_oom_loop(g->data, g->n_data, tree, true, true, expected);
  json_decref(tree);
  json_decref(expected);
  json_decref(events);
}

/* GetCommands' Data with the Nth allocation failing, or only the Nth: none at all, never a
 * part of it (a client would take a description missing a default or a bound for the whole).
 * Once N is past the last allocation, the whole. */
static void test_contract_describe_out_of_memory(void **state) {
  json_t *whole = pm__contract_describe(true), *d;
  unsigned long i;
  bool injected = true;
  (void)state;
  assert_non_null(whole);
  for (int only = 0; only < 2; only++) {
    for (i = 1, injected = true; i < 100000 && injected; i++) {
      json_set_alloc_funcs(limited_malloc, free);
      if (only)
        json_fail_only(i);
      else
        json_fail_after(i);
      d = pm__contract_describe(true);
      injected = only ? !json_limited : json_allocs_left == 0 && d == NULL;
      json_fail_after(0);
      json_set_alloc_funcs(malloc, free);
      if (d != NULL && !json_equal(whole, d)) {
        print_error("allocation %lu failing%s: a part of the description\n", i,
                    only ? " alone" : "");
        fail();
      }
      if (injected && d != NULL) {
        print_error("allocation %lu failing%s: a description all the same\n", i,
                    only ? " alone" : "");
        fail();
      }
      json_decref(d);
    }
    assert_false(injected);
    assert_true(i > 100);
  }
  json_decref(whole);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_contract_check_defaults_and_json_types),
      cmocka_unit_test(test_contract_check_converts_xml_text),
      cmocka_unit_test(test_contract_check_unknown_and_missing),
      cmocka_unit_test(test_contract_check_limits_at_and_past),
      cmocka_unit_test(test_contract_format_domain),
      cmocka_unit_test(test_contract_check_data),
      cmocka_unit_test(test_contract_closest_and_test_commands),
      cmocka_unit_test(test_contract_describe),
      cmocka_unit_test(test_contract_check_times),
      cmocka_unit_test(test_contract_check_reasons_name_the_value),
      cmocka_unit_test(test_contract_check_integers_and_scalars),
      cmocka_unit_test(test_contract_check_nested_objects_and_trees),
      cmocka_unit_test(test_contract_check_any_params),
      cmocka_unit_test(test_contract_closest_limits),
      cmocka_unit_test(test_contract_describe_constraints),
      cmocka_unit_test(test_contract_check_out_of_memory),
      cmocka_unit_test(test_contract_describe_out_of_memory),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
