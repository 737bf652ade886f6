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
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
