/* The application API (pipemsg/client.h) against the library's own command and event servers
 * in one process, so that it runs on every platform (under wine too): typed calls and
 * results, asynchronous calls with the library's thread and from the application's loop
 * (pm_client_fd: a descriptor, or a HANDLE on Windows), typed events and confirm later.
 * test_client covers the same API against a live pipemsgd. */
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "pipemsg/client.h"
#include "testutil.h"
#include "transport/transport.h"

/* The servers' heartbeat: a client counts 3 of them of silence as a dead service. */
#define HEARTBEAT_MS 100

typedef struct fixture {
  char dir[64];
  char cmd_path[128];
  char evt_path[128];
  uv_loop_t loop;
  uv_thread_t thread;
  uv_sem_t ready;
  uv_async_t stop;
  uv_async_t release; /* answers the call held by "Hold" */
  pm_command_call *held;
  pm_command_server *commands;
  pm_event_server *events;
  int start_rc;
} fixture;

static fixture fx;

/* What the callbacks saw. */
static uv_mutex_t lock;
static uv_cond_t changed;
static int calls, events;
static pm_result last_result;
static pm_state last_state;
static pm_client_event_type event_types[8];
static int64_t event_ids[8];
static int held, versions;
/* The asynchronous calls' outcomes, in the order their callbacks ran. */
static pm_result results[8];
static void *result_data[8];

static void count(int *counter);

/* GetState answers Connected; StartVpn TooManyRequests; GetVersion Ok without its Data;
 * LongText and LongSymbols Error with a long Message; Hold not until fx.release; anything else
 * BadRequest. */
static void handler(pm_command_call *call, void *data) {
  const char *cmd = pm_command_call_command(call);
  (void)data;
  if (strcmp(cmd, "Hold") == 0) {
    fx.held = call;
    uv_mutex_lock(&lock);
    count(&held);
    uv_mutex_unlock(&lock);
  } else if (strcmp(cmd, "GetState") == 0)
    pm_command_call_reply(call, "Ok", NULL,
                          json_pack("{s:s, s:s, s:b, s:b, s:[s], s:s}", "State", "Connected",
                                    "Location", "de", "KillSwitch", 1, "ReconnectionEnabled", 0,
                                    "BypassDomains", "example.com", "Since",
                                    "2026-12-01T00:00:00Z"));
  else if (strcmp(cmd, "GetVersion") == 0) {
    uv_mutex_lock(&lock);
    count(&versions);
    uv_mutex_unlock(&lock);
    pm_command_call_reply(call, "Ok", NULL, NULL);
  }
  else if (strcmp(cmd, "StartVpn") == 0)
    pm_command_call_reply(call, "TooManyRequests", "already connected", NULL);
  else if (strcmp(cmd, "LongText") == 0 || strcmp(cmd, "LongSymbols") == 0) {
    /* A Message longer than pm_result.message holds: 300 two-byte characters, or "xx" and 200
     * three-byte ones. */
    char text[700] = "", *p = text;
    bool two = strcmp(cmd, "LongText") == 0;
    if (!two)
      p += sprintf(p, "xx");
    for (int i = 0; i < (two ? 300 : 200); i++)
      p += sprintf(p, "%s", two ? "\xc3\xa9" : "\xe2\x82\xac");
    pm_command_call_reply(call, "Error", text, NULL);
  }
  else
    pm_command_call_reply(call, "BadRequest", "unknown command", NULL);
}

static void on_release(uv_async_t *a) {
  (void)a;
  if (fx.held != NULL)
    pm_command_call_reply(fx.held, "Ok", NULL, NULL);
  fx.held = NULL;
}

static void on_stop(uv_async_t *a) {
  on_release(&fx.release);
  uv_close((uv_handle_t *)&fx.release, NULL);
  pm_command_server_close(fx.commands, NULL, NULL);
  pm_event_server_close(fx.events, NULL, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

static void server_thread(void *arg) {
  pm_command_server_options co = {.handler = handler};
  pm_event_server_options eo = {0};
  (void)arg;
  /* A server on a loop of the application's must not die of a client that went away. */
  pm__block_sigpipe();
  /* A confirmation may wait for the test thread, however slow the build (wine, valgrind). */
  eo.ack_timeout_ms = (uint32_t)pm_test_margin_ms(5000);
  eo.heartbeat_ms = HEARTBEAT_MS;
  fx.start_rc = pm_command_server_start(&fx.loop, fx.cmd_path, &co, &fx.commands);
  if (fx.start_rc == 0)
    fx.start_rc = pm_event_server_start(&fx.loop, fx.evt_path, &eo, &fx.events);
  uv_sem_post(&fx.ready);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
}

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof(fx));
  calls = events = held = versions = 0;
  uv_mutex_init(&lock);
  uv_cond_init(&changed);
  pm_test_dir_new(fx.dir, sizeof(fx.dir));
  pm_test_pipe_path(fx.dir, "cmd", fx.cmd_path, sizeof(fx.cmd_path));
  pm_test_pipe_path(fx.dir, "evt", fx.evt_path, sizeof(fx.evt_path));
  assert_int_equal(0, uv_loop_init(&fx.loop));
  uv_async_init(&fx.loop, &fx.stop, on_stop);
  uv_async_init(&fx.loop, &fx.release, on_release);
  uv_sem_init(&fx.ready, 0);
  assert_int_equal(0, uv_thread_create(&fx.thread, server_thread, NULL));
  uv_sem_wait(&fx.ready);
  assert_int_equal(0, fx.start_rc);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  uv_async_send(&fx.stop);
  uv_thread_join(&fx.thread);
  assert_int_equal(0, uv_loop_close(&fx.loop));
  uv_sem_destroy(&fx.ready);
  uv_cond_destroy(&changed);
  uv_mutex_destroy(&lock);
  pm_test_dir_remove(fx.dir);
  return 0;
}

static pm_client *open_client(pm_client_config *cfg) {
  pm_client *c = NULL;
  cfg->command_pipe = fx.cmd_path;
  cfg->event_pipe = fx.evt_path;
  assert_int_equal(0, pm_client_open(cfg, &c));
  return c;
}

/* Counts a callback (with the lock held) and wakes the test thread. */
static void count(int *counter) {
  (*counter)++;
  uv_cond_broadcast(&changed);
}

/* One turn of an application's loop: waits (at most 100 ms) for the client's handle or its
 * next deadline, then lets it work. */
static void step(pm_client *c) {
  int t = pm_client_timeout_ms(c);
  if (t < 0 || t > 100)
    t = 100;
  pm_test_wait_ready(pm_client_fd(c), t);
  assert_true(pm_client_process(c) >= 0);
}

/* Waits for n callbacks: the library's thread runs them (c NULL), or this thread does. */
static void await_count(pm_client *c, const int *counter, int n) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)pm_test_margin_ms(20000);
  uv_mutex_lock(&lock);
  while (*counter < n) {
    uv_mutex_unlock(&lock);
    assert_true(pm_test_now_ms() < deadline);
    if (c != NULL)
      step(c);
    uv_mutex_lock(&lock);
    if (c == NULL && *counter < n)
      uv_cond_timedwait(&changed, &lock, 100 * 1000000ull);
  }
  uv_mutex_unlock(&lock);
}

static void test_client_core_typed_and_results(void **state) {
  pm_client_config cfg = {0};
  pm_client *c = open_client(&cfg);
  pm_client_get_state_answer a;
  pm_client_get_version_answer v;
  pm_result r;
  char *json = NULL;
  (void)state;
  r = pm_client_get_state(c, &a);
  assert_int_equal(PM_RC_OK, r.code);
  assert_int_equal(PM_STATE_CONNECTED, a.state);
  assert_string_equal("de", a.location);
  assert_true(a.kill_switch);
  assert_int_equal(1, a.n_bypass_domains);
  assert_string_equal("example.com", a.bypass_domains[0]);
  pm_client_get_state_answer_free(&a);
  r = pm_client_start_vpn(c, NULL, NULL);
  assert_int_equal(PM_RC_TOO_MANY_REQUESTS, r.code);
  assert_true(r.from_service);
  assert_string_equal("already connected", r.message);
  r = pm_client_call(c, "Whatever", "{\"X\":1}", &json);
  assert_int_equal(PM_RC_BAD_REQUEST, r.code);
  assert_string_equal("unknown command", r.message);
  assert_null(json);
  /* An Ok whose Data does not match the contract: a malformed answer, found client side. */
  r = pm_client_get_version(c, &v);
  assert_int_equal(PM_RC_TRANSPORT_ERROR, r.code);
  assert_false(r.from_service);
  assert_null(v.version);
  pm_client_close(c);
}

/* The conversions alone: a set parameter without a value, an enumeration value this build does
 * not know, a field of the wrong type (the struct is left zeroed, nothing leaks). */
/* A Message cut to fit pm_result.message ends on a whole character (the bindings decode it as
 * strict UTF-8), whatever the character's length. */
static void test_client_core_long_message_cut_whole(void **state) {
  const size_t room = PM_RESULT_MESSAGE_MAX - 1, two = room / 2 * 2, three = 2 + (room - 2) / 3 * 3;
  pm_client_config cfg = {0};
  pm_client *c = open_client(&cfg);
  pm_result r;
  char *json = NULL;
  (void)state;
  /* Both cut inside a character, not between two. */
  assert_true(two < room && three < room);
  r = pm_client_call(c, "LongText", NULL, &json);
  assert_int_equal(PM_RC_ERROR, r.code);
  assert_int_equal(two, strlen(r.message));
  assert_memory_equal("\xc3\xa9", r.message + two - 2, 2);
  r = pm_client_call(c, "LongSymbols", NULL, &json);
  assert_int_equal(PM_RC_ERROR, r.code);
  assert_int_equal(three, strlen(r.message));
  assert_memory_equal("\xe2\x82\xac", r.message + three - 3, 3);
  pm_client_close(c);
}

static void test_client_core_conversions(void **state) {
  pm_client_config cfg = {0};
  pm_client *c = open_client(&cfg);
  pm_client_start_vpn_params p = {.has_location = true};
  const pm__cl_event *sc = &pm__client_events[0];
  pm_state_changed ev;
  char why[PM_REASON_MAX] = "";
  json_t *data;
  pm_result r;
  (void)state;
  r = pm_client_start_vpn(c, &p, NULL);
  assert_int_equal(PM_RC_INVALID_ARGUMENT, r.code);
  assert_false(r.from_service);
  assert_non_null(strstr(r.message, "Location"));
  assert_int_equal(PM_EINVAL, pm_client_start_vpn_async(c, &p, NULL, NULL));
  pm_client_close(c);

  assert_string_equal("StateChanged", sc->type);
  data = json_pack("{s:s, s:s, s:s}", "State", "Hibernating", "Location", "de", "Error", "e");
  assert_int_equal(0, pm__client_decode(sc->data, data, &ev, why));
  assert_int_equal(PM_STATE_UNKNOWN, ev.state);
  assert_string_equal("Unknown", pm_state_name(ev.state));
  /* The last name, and one past it. */
  assert_string_equal("Disconnecting", pm_state_name(PM_STATE_DISCONNECTING));
  assert_string_equal("Unknown", pm_state_name((pm_state)(PM_STATE_DISCONNECTING + 1)));
  assert_true(ev.has_error);
  assert_string_equal("e", ev.error);
  pm__client_typed_free(sc->data, &ev);
  assert_null(ev.location);
  json_decref(data);
  data = json_pack("{s:s, s:i}", "State", "Connected", "Location", 7);
  assert_int_equal(PM_ETYPE, pm__client_decode(sc->data, data, &ev, why));
  assert_non_null(strstr(why, "Location"));
  assert_null(ev.location);
  json_decref(data);
}

static void on_state_answer(pm_client *c, const pm_result *r, const pm_client_get_state_answer *a,
                            void *data) {
  (void)c;
  (void)data;
  uv_mutex_lock(&lock);
  last_result = *r;
  last_state = r->code == PM_RC_OK ? a->state : PM_STATE_UNKNOWN;
  count(&calls);
  uv_mutex_unlock(&lock);
}

static void test_client_core_async_both_drives(void **state) {
  pm_client_config cfg = {0};
  pm_client *c = open_client(&cfg);
  (void)state;
  assert_int_equal(0, pm_client_get_state_async(c, on_state_answer, NULL));
  await_count(NULL, &calls, 1);
  assert_int_equal(PM_STATE_CONNECTED, last_state);
  pm_client_close(c);
  cfg.drive = PM_CLIENT_DRIVE_APP;
  c = open_client(&cfg);
  assert_int_equal(0, pm_client_get_state_async(c, on_state_answer, NULL));
  assert_int_equal(0, pm_client_get_state_async(c, on_state_answer, NULL));
  await_count(c, &calls, 3);
  assert_int_equal(PM_RC_OK, last_result.code);
  pm_client_close(c);
}

static void on_result(pm_client *c, const pm_result *r, const char *data_json, void *data) {
  (void)c;
  (void)data_json;
  uv_mutex_lock(&lock);
  if (calls < 8) {
    results[calls] = *r;
    result_data[calls] = data;
  }
  count(&calls);
  uv_mutex_unlock(&lock);
}

static void assert_canceled(const pm_result *r) {
  assert_int_equal(PM_RC_CANCELED, r->code);
  assert_string_equal("Canceled", r->name);
  assert_int_equal(PM_ECANCELED, r->error);
  assert_false(r->from_service);
}

/* A call not sent yet is dropped: its callback says Canceled, the service never sees it, and
 * the call after it runs. */
static void test_client_core_cancel_waiting(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP};
  pm_client *c = open_client(&cfg);
  int a, b, other;
  (void)state;
  assert_int_equal(0, pm_client_call_async(c, "GetVersion", NULL, on_result, &a));
  assert_int_equal(0, pm_client_call_async(c, "GetState", NULL, on_result, &b));
  assert_int_equal(1, pm_client_call_cancel(c, &a));
  assert_int_equal(0, pm_client_call_cancel(c, &a));
  assert_int_equal(0, pm_client_call_cancel(c, &other));
  assert_int_equal(PM_EINVAL, pm_client_call_cancel(NULL, &a));
  await_count(c, &calls, 2);
  assert_ptr_equal(&a, result_data[0]);
  assert_canceled(&results[0]);
  assert_ptr_equal(&b, result_data[1]);
  assert_int_equal(PM_RC_OK, results[1].code);
  assert_int_equal(0, versions);
  /* Finished: nothing left to cancel. */
  assert_int_equal(0, pm_client_call_cancel(c, &b));
  pm_client_close(c);
}

/* A call waiting behind one in flight is dropped at once, not when its turn comes; the one in
 * flight is no longer waited for: its callback says Canceled long before the response timeout,
 * and the next call goes on once the server is free. */
static void test_client_core_cancel_in_flight(void **state) {
  pm_client_config cfg = {.response_timeout_ms = 120000};
  pm_client *c = open_client(&cfg);
  int a, b, d;
  uint64_t t0;
  (void)state;
  assert_int_equal(0, pm_client_call_async(c, "Hold", NULL, on_result, &a));
  await_count(NULL, &held, 1);
  assert_int_equal(0, pm_client_call_async(c, "GetVersion", NULL, on_result, &b));
  t0 = pm_test_now_ms();
  assert_int_equal(1, pm_client_call_cancel(c, &b));
  await_count(NULL, &calls, 1);
  assert_ptr_equal(&b, result_data[0]);
  assert_canceled(&results[0]);
  assert_int_equal(1, pm_client_call_cancel(c, &a));
  await_count(NULL, &calls, 2);
  assert_true(pm_test_now_ms() - t0 < 60000);
  assert_ptr_equal(&a, result_data[1]);
  assert_canceled(&results[1]);
  /* The server serves one request at a time: let it finish the one it holds. */
  uv_async_send(&fx.release);
  assert_int_equal(0, pm_client_call_async(c, "GetVersion", NULL, on_result, &d));
  await_count(NULL, &calls, 3);
  assert_ptr_equal(&d, result_data[2]);
  assert_int_equal(PM_RC_OK, results[2].code);
  assert_int_equal(1, versions);
  pm_client_close(c);
}

static void on_event(pm_client *c, const pm_client_event *ev, void *data) {
  (void)c;
  (void)data;
  uv_mutex_lock(&lock);
  if (events < 8) {
    event_types[events] = ev->type;
    event_ids[events] = ev->id;
  }
  count(&events);
  uv_mutex_unlock(&lock);
}

static void publish_state(void) {
  assert_int_equal(0, pm_event_server_publish(
                          fx.events, "StateChanged",
                          json_pack("{s:s, s:s}", "State", "Connecting", "Location", "de"), NULL));
}

/* Waits until the server counts n events confirmed, running c's loop (its confirmations go out
 * from there). */
static void await_delivered(pm_client *c, uint64_t n) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)pm_test_margin_ms(20000);
  pm_event_stats st;
  for (;;) {
    pm_event_server_stats(fx.events, &st);
    if (st.delivered >= n)
      break;
    assert_true(pm_test_now_ms() < deadline);
    step(c);
  }
  assert_int_equal(n, st.delivered);
}

static void test_client_core_events(void **state) {
  pm_client_config cfg = {.on_event = on_event, .drive = PM_CLIENT_DRIVE_APP,
                          .confirm_later = true};
  pm_client *c = open_client(&cfg);
  pm_event_stats st;
  (void)state;
  publish_state();
  await_count(c, &events, 1);
  assert_int_equal(PM_CLIENT_EVENT_STATE_CHANGED, event_types[0]);
  /* Held unconfirmed past the client's silence limit (3 heartbeats) with a margin: the
   * service sends nothing while it waits, which must not end the session. */
  {
    uint64_t until = pm_test_now_ms() + 6 * HEARTBEAT_MS;
    uv_mutex_lock(&lock);
    while (pm_test_now_ms() < until)
      uv_cond_timedwait(&changed, &lock, (until - pm_test_now_ms()) * 1000000ull);
    uv_mutex_unlock(&lock);
  }
  pm_event_server_stats(fx.events, &st);
  assert_int_equal(1, st.sessions);
  assert_int_equal(1, st.attached);
  /* Returned from the callback, not confirmed: the next event waits behind it. */
  assert_int_equal(0, pm_event_server_publish(fx.events, "Other", json_pack("{s:i}", "A", 1),
                                              NULL));
  pm_event_server_stats(fx.events, &st);
  assert_int_equal(0, st.delivered);
  assert_int_equal(0, pm_client_confirm(c, event_ids[0]));
  await_delivered(c, 1);
  await_count(c, &events, 2);
  assert_int_equal(PM_CLIENT_EVENT_OTHER, event_types[1]);
  assert_int_equal(0, pm_client_confirm(c, event_ids[1]));
  await_delivered(c, 2);
  pm_event_server_stats(fx.events, &st);
  assert_int_equal(0, st.ack_failures);
  pm_client_close(c);
}

/* The application's loop runs the client's timers: an asynchronous call to a pipe nobody
 * serves ends at the connect deadline, through pm_client_timeout_ms. */
static void test_client_core_app_deadline(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP, .connect_timeout_ms = 300};
  char path[128];
  pm_client *c = NULL;
  uint64_t t0;
  (void)state;
  pm_test_pipe_path(fx.dir, "nobody", path, sizeof(path));
  cfg.command_pipe = path;
  assert_int_equal(0, pm_client_open(&cfg, &c));
  t0 = pm_test_now_ms();
  assert_int_equal(0, pm_client_get_state_async(c, on_state_answer, NULL));
  await_count(c, &calls, 1);
  assert_int_equal(PM_RC_CONNECTION_TIMEOUT, last_result.code);
  /* Not before the deadline; after it by no more than a loaded machine's margin (wine's
   * round trips are 20-40 times slower). */
  assert_ms_within("connect deadline", pm_test_now_ms() - t0, 250,
                   300 + (pm_test_under_wine() ? 10000 : pm_test_margin_ms(2000)));
  pm_client_close(c);
}

static void close_on_event(pm_client *c, const pm_client_event *ev, void *data) {
  on_event(c, ev, data);
  pm_client_close(c);
}

/* pm_client_close from a callback: the client is freed once it has returned, inside the
 * pm_client_process that ran it, and no other callback of it runs. */
static void test_client_core_app_close_in_callback(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP, .on_event = close_on_event};
  pm_client *c = open_client(&cfg);
  uint64_t deadline = pm_test_now_ms() + (uint64_t)pm_test_margin_ms(20000);
  (void)state;
  publish_state();
  publish_state();
  while (events == 0) {
    step(c);
    assert_true(pm_test_now_ms() < deadline);
  }
  assert_int_equal(1, events);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_client_core_typed_and_results, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_core_long_message_cut_whole, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_core_conversions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_core_async_both_drives, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_core_cancel_waiting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_core_cancel_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_core_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_core_app_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_core_app_close_in_callback, setup, teardown),
  };
  /* The servers write to clients that may be gone, as an application's would. */
  pm_test_ignore_sigpipe();
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
