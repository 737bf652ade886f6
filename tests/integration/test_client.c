/* The application API (pipemsg/client.h) against a live pipemsgd: every typed function, the
 * results, asynchronous calls in both drive modes, typed events, confirmation, observers and
 * reconnection. */
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "pipemsg/client.h"
#include "testutil.h"
#include "transport/transport_unix.h"

static pm_test_service svc;

/* What the callbacks saw, shared with the test thread. */
#define MAX_SEEN 64
typedef struct seen {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int calls;
  pm_result last;
  pm_state state;
  char json[256];
  int n_events;
  pm_client_event_type types[MAX_SEEN];
  char names[MAX_SEEN][32];
  int64_t ids[MAX_SEEN];
  int64_t epochs[MAX_SEEN];
  int64_t ints[MAX_SEEN]; /* a typed field per event: BytesSent, the state, Count */
  int n_conn;
  pm_client_connection conn[MAX_SEEN];
  char reasons[MAX_SEEN][64];
} seen;

static seen rec = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void rec_reset(void) {
  pthread_mutex_lock(&rec.lock);
  rec.calls = rec.n_events = rec.n_conn = 0;
  pthread_mutex_unlock(&rec.lock);
}

/* Waits (on the condition, no sleeping) until *counter reaches n. */
static void rec_wait(const int *counter, int n) {
  uint64_t deadline = pm_test_now_ms() + 15000;
  pthread_mutex_lock(&rec.lock);
  while (*counter < n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&rec.cond, &rec.lock, &ts);
    if (*counter < n && pm_test_now_ms() > deadline) {
      pthread_mutex_unlock(&rec.lock);
      fail_msg("waited 15 s for %d callbacks, saw %d", n, *counter);
    }
  }
  pthread_mutex_unlock(&rec.lock);
}

static void on_event(pm_client *c, const pm_client_event *ev, void *data) {
  (void)c;
  (void)data;
  pthread_mutex_lock(&rec.lock);
  if (rec.n_events < MAX_SEEN) {
    int i = rec.n_events++;
    rec.types[i] = ev->type;
    snprintf(rec.names[i], sizeof(rec.names[i]), "%s", ev->type_name);
    rec.ids[i] = ev->id;
    rec.epochs[i] = ev->epoch;
    rec.ints[i] = ev->type == PM_CLIENT_EVENT_TRAFFIC_CHANGED ? ev->u.traffic_changed.bytes_sent
                  : ev->type == PM_CLIENT_EVENT_STATE_CHANGED ? ev->u.state_changed.state
                  : ev->type == PM_CLIENT_EVENT_EVENTS_LOST   ? ev->u.events_lost.count
                                                              : -1;
  }
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
}

static void on_connection(pm_client *c, pm_client_connection st, const char *reason, void *data) {
  (void)c;
  (void)data;
  pthread_mutex_lock(&rec.lock);
  if (rec.n_conn < MAX_SEEN) {
    rec.conn[rec.n_conn] = st;
    snprintf(rec.reasons[rec.n_conn], sizeof(rec.reasons[0]), "%s", reason ? reason : "");
    rec.n_conn++;
  }
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
}

static int setup(void **state) {
  static const char *const args[] = {"--connect-delay-ms", "200", "--test-commands",
                                     "--sim-unreachable", "nowhere", NULL};
  (void)state;
  pm_test_service_start(&svc, args);
  rec_reset();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (svc.pid > 0)
    assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
  return 0;
}

static pm_client *open_client(pm_client_config *cfg) {
  pm_client *c = NULL;
  cfg->command_pipe = svc.command_pipe;
  cfg->event_pipe = svc.event_pipe;
  assert_int_equal(0, pm_client_open(cfg, &c));
  return c;
}

#define assert_ok(r)                                                                           \
  do {                                                                                         \
    pm_result r_ = (r);                                                                        \
    if (r_.code != PM_RC_OK)                                                                   \
      fail_msg("%s: %s", r_.name, r_.message);                                                 \
  } while (0)

static void emit(pm_client *c, const char *params) {
  char *data = NULL;
  assert_ok(pm_client_call(c, "EmitEvent", params, &data));
  assert_non_null(strstr(data, "FirstId"));
  pm_client_free(data);
}

static pm_state state_now(pm_client *c) {
  pm_client_get_state_answer a;
  pm_state s;
  assert_ok(pm_client_get_state(c, &a));
  s = a.state;
  pm_client_get_state_answer_free(&a);
  return s;
}

static void await_state(pm_client *c, pm_state want) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  while (state_now(c) != want)
    assert_true(pm_test_now_ms() < deadline);
}

static int64_t delivered(pm_client *c) {
  pm_client_get_stats_answer a;
  int64_t n;
  assert_ok(pm_client_get_stats(c, &a));
  n = a.events.delivered;
  pm_client_get_stats_answer_free(&a);
  return n;
}

/* Waits until the cursor reaches id: it moves once the callback has returned. */
static void await_cursor(pm_client *c, int64_t id, int64_t *epoch, int64_t *last) {
  uint64_t deadline = pm_test_now_ms() + 10000;
  do {
    pm_client_cursor(c, epoch, last);
    assert_true(pm_test_now_ms() < deadline);
  } while (*last != id);
}

/* ---- every typed function ------------------------------------------------------------------ */

static void test_client_typed_functions(void **state) {
  pm_client_config cfg = {0};
  pm_client *c = open_client(&cfg);
  pm_client_get_version_answer v;
  pm_client_get_state_answer s;
  pm_client_start_vpn_params sp = {.location = "de", .has_location = true,
                                   .enable_kill_switch = true, .has_enable_kill_switch = true};
  pm_client_start_vpn_answer sa;
  pm_client_stop_vpn_answer st;
  pm_client_get_traffic_answer t;
  pm_client_get_stats_answer stats;
  pm_client_set_reconnection_enabled_params rp = {.enabled = false};
  pm_client_is_reconnection_enabled_answer ra;
  const char *const domains[] = {"example.com", "*.example.org"};
  pm_client_configure_bypass_domains_params bp = {.domains = domains, .n_domains = 2};
  pm_client_configure_bypass_domains_answer ba;
  pm_client_get_commands_answer gc;
  bool found = false;
  (void)state;

  assert_ok(pm_client_get_version(c, &v));
  assert_string_equal(PM_VERSION, v.version);
  assert_int_equal(1, v.protocol);
  assert_string_equal("pipemsgd", v.service);
  pm_client_get_version_answer_free(&v);
  assert_null(v.version);

  assert_ok(pm_client_get_state(c, &s));
  assert_int_equal(PM_STATE_DISCONNECTED, s.state);
  assert_string_equal("Disconnected", pm_state_name(s.state));
  assert_non_null(s.since);
  assert_false(s.has_last_error);
  pm_client_get_state_answer_free(&s);

  assert_ok(pm_client_set_reconnection_enabled(c, &rp));
  assert_ok(pm_client_is_reconnection_enabled(c, &ra));
  assert_false(ra.enabled);
  rp.enabled = true;
  assert_ok(pm_client_set_reconnection_enabled(c, &rp));
  assert_ok(pm_client_is_reconnection_enabled(c, &ra));
  assert_true(ra.enabled);
  pm_client_is_reconnection_enabled_answer_free(&ra);

  assert_ok(pm_client_configure_bypass_domains(c, &bp, &ba));
  assert_int_equal(2, ba.count);
  pm_client_configure_bypass_domains_answer_free(&ba);

  assert_ok(pm_client_disable_kill_switch(c));
  assert_ok(pm_client_start_vpn(c, &sp, &sa));
  assert_int_equal(PM_STATE_CONNECTING, sa.state);
  pm_client_start_vpn_answer_free(&sa);
  await_state(c, PM_STATE_CONNECTED);
  assert_ok(pm_client_get_state(c, &s));
  assert_string_equal("de", s.location);
  assert_true(s.kill_switch);
  assert_true(s.reconnection_enabled);
  assert_int_equal(2, s.n_bypass_domains);
  assert_string_equal("example.com", s.bypass_domains[0]);
  assert_string_equal("*.example.org", s.bypass_domains[1]);
  pm_client_get_state_answer_free(&s);
  assert_ok(pm_client_disable_kill_switch(c));
  assert_ok(pm_client_enable_kill_switch(c));

  assert_ok(pm_client_get_traffic(c, &t));
  assert_true(t.bytes_sent >= 0 && t.bytes_received >= 0);
  pm_client_get_traffic_answer_free(&t);

  assert_ok(pm_client_stop_vpn(c, &st));
  assert_int_equal(PM_STATE_DISCONNECTING, st.state);
  pm_client_stop_vpn_answer_free(&st);
  await_state(c, PM_STATE_DISCONNECTED);

  assert_ok(pm_client_get_stats(c, &stats));
  assert_true(stats.commands.ok >= 10);
  assert_true(stats.events.epoch >= 1);
  pm_client_get_stats_answer_free(&stats);

  assert_ok(pm_client_get_commands(c, &gc));
  for (size_t i = 0; i < gc.n_commands; i++)
    if (strcmp(gc.commands[i].name, "StartVpn") == 0) {
      found = true;
      assert_string_equal("Location", gc.commands[i].params[0].name);
      assert_true(gc.commands[i].params[0].has_default);
      assert_string_equal("\"auto\"", gc.commands[i].params[0].default_);
    }
  assert_true(found);
  assert_true(gc.n_events >= 4);
  pm_client_get_commands_answer_free(&gc);
  pm_client_close(c);
}

/* ---- results ------------------------------------------------------------------------------- */

static void test_client_results(void **state) {
  pm_client_config cfg = {0};
  pm_client *c = open_client(&cfg);
  const char *const bad[] = {"not a domain!"};
  pm_client_configure_bypass_domains_params bp = {.domains = bad, .n_domains = 1};
  pm_client_configure_bypass_domains_answer ba;
  pm_client_start_vpn_params sp = {.location = "de", .has_location = true};
  pm_result r;
  char *data = NULL;
  (void)state;

  r = pm_client_configure_bypass_domains(c, &bp, &ba);
  assert_int_equal(PM_RC_BAD_REQUEST, r.code);
  assert_true(r.from_service);
  assert_string_equal("BadRequest", r.name);
  assert_non_null(strstr(r.message, "Domains"));
  assert_int_equal(0, ba.count);

  assert_ok(pm_client_start_vpn(c, &sp, NULL));
  r = pm_client_start_vpn(c, NULL, NULL);
  assert_int_equal(PM_RC_TOO_MANY_REQUESTS, r.code);
  assert_string_equal("TooManyRequests", pm_result_code_name(r.code));
  await_state(c, PM_STATE_CONNECTED);

  /* The generic call: JSON in, JSON out; a command the contract does not know is the
   * service's BadRequest. */
  assert_ok(pm_client_call(c, "Echo", "{\"A\":[1,true]}", &data));
  assert_string_equal("{\"A\":[1,true]}", data);
  pm_client_free(data);
  r = pm_client_call(c, "NoSuchCommand", NULL, &data);
  assert_int_equal(PM_RC_BAD_REQUEST, r.code);
  assert_null(data);
  r = pm_client_call(c, "GetState", "[1]", NULL);
  assert_int_equal(PM_RC_INVALID_ARGUMENT, r.code);
  assert_false(r.from_service);
  pm_client_close(c);
}

/* Nested arrays, depth deep: valid JSON, but no message (PM_NESTING_MAX). */
static char *nested_json(int depth) {
  char *s = malloc((size_t)depth * 2 + 16);
  int n = 0;
  assert_non_null(s);
  n += sprintf(s + n, "{\"V\":");
  for (int i = 0; i < depth; i++)
    s[n++] = '[';
  for (int i = 0; i < depth; i++)
    s[n++] = ']';
  strcpy(s + n, "}");
  return s;
}

static void on_generic(pm_client *c, const pm_result *r, const char *json, void *data);

/* The asynchronous call refuses Params as the synchronous one does, with the same reason,
 * through its callback; nothing is sent, and the next call works. */
static void test_client_async_refused_params(void **state) {
  pm_client_config cfg = {0};
  pm_client *c = open_client(&cfg);
  char *deep = nested_json(PM_NESTING_MAX + 10);
  const char *const bad[] = {"{\"V\":NaN}", "{\"V\":1e999999999999999999999}", "[1]",
                             "{\"V\":\"\\u0000\"}", deep};
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    pm_result sync = pm_client_call(c, "Echo", bad[i], NULL);
    assert_int_equal(PM_RC_INVALID_ARGUMENT, sync.code);
    assert_int_equal(0, pm_client_call_async(c, "Echo", bad[i], on_generic, NULL));
    rec_wait(&rec.calls, (int)i + 1);
    assert_int_equal(PM_RC_INVALID_ARGUMENT, rec.last.code);
    assert_false(rec.last.from_service);
    assert_int_equal(PM_EINVAL, rec.last.error);
    assert_string_equal(sync.message, rec.last.message);
    assert_string_equal("", rec.json);
  }
  assert_non_null(strstr(rec.last.message, "nesting deeper than"));
  assert_int_equal(0, pm_client_call_async(c, "Echo", "{\"A\":1}", on_generic, NULL));
  rec_wait(&rec.calls, 6);
  assert_int_equal(PM_RC_OK, rec.last.code);
  assert_string_equal("{\"A\":1}", rec.json);
  assert_int_equal(PM_EINVAL, pm_client_call_async(c, "Echo", NULL, NULL, NULL));
  assert_int_equal(PM_EINVAL, pm_client_call_async(c, NULL, NULL, on_generic, NULL));
  free(deep);
  pm_client_close(c);
}

static void test_client_connection_timeout(void **state) {
  pm_client_config cfg = {.connect_timeout_ms = 300};
  char path[128];
  pm_client *c = NULL;
  pm_result r;
  uint64_t t0;
  (void)state;
  pm_test_pipe_path(svc.dir, "nobody-here", path, sizeof(path));
  cfg.command_pipe = path;
  assert_int_equal(0, pm_client_open(&cfg, &c));
  t0 = pm_test_now_ms();
  r = pm_client_get_state(c, NULL);
  assert_int_equal(PM_RC_CONNECTION_TIMEOUT, r.code);
  assert_false(r.from_service);
  assert_string_equal("ConnectionTimeout", r.name);
  /* The connect deadline, not a second more (scheduling margin on a busy machine). */
  pm_test_assert_ms_within("connection timeout", (long)(pm_test_now_ms() - t0), 250,
                           300 + pm_test_margin_ms(2000), __FILE__, __LINE__);
  pm_client_close(c);
}

/* The uid the owner check sees, as if another user (not root, not us) ran the service. */
static long long as_other_user(long long uid) {
  (void)uid;
  return (long long)getuid() + 4242;
}

static void test_client_unexpected_owner(void **state) {
  pm_client_config cfg = {0};
  pm_client *c;
  char other[32];
  pm_result r;
  (void)state;
  pm__owner_uid_hook = as_other_user;
  c = open_client(&cfg);
  r = pm_client_get_state(c, NULL);
  assert_int_equal(PM_RC_TRANSPORT_NOT_AUTHORIZED, r.code);
  assert_false(r.from_service);
  assert_string_equal("TransportNotAuthorized", r.name);
  pm_client_close(c);
  /* That user named as expected (by uid), or anyone: trusted. */
  snprintf(other, sizeof(other), "%lld", (long long)getuid() + 4242);
  cfg.expect_owner = other;
  c = open_client(&cfg);
  assert_ok(pm_client_get_state(c, NULL));
  pm_client_close(c);
  cfg.expect_owner = "*";
  c = open_client(&cfg);
  assert_ok(pm_client_get_state(c, NULL));
  pm_client_close(c);
  pm__owner_uid_hook = NULL;
  cfg.expect_owner = "no-such-user-x";
  assert_int_equal(PM_EINVAL, pm_client_open(&cfg, &c));
}

static void test_client_env_defaults(void **state) {
  pm_client_config cfg = {0};
  pm_client *c = NULL;
  (void)state;
  setenv("PIPEMSG_COMMAND_PIPE", svc.command_pipe, 1);
  setenv("PIPEMSG_EVENT_PIPE", svc.event_pipe, 1);
  assert_int_equal(0, pm_client_open(&cfg, &c));
  assert_int_equal(PM_STATE_DISCONNECTED, state_now(c));
  pm_client_close(c);
  c = NULL;
  assert_int_equal(0, pm_client_open(NULL, &c));
  assert_int_equal(PM_STATE_DISCONNECTED, state_now(c));
  pm_client_close(c);
  unsetenv("PIPEMSG_COMMAND_PIPE");
  unsetenv("PIPEMSG_EVENT_PIPE");
}

/* ---- asynchronous calls -------------------------------------------------------------------- */

static void on_state_answer(pm_client *c, const pm_result *r, const pm_client_get_state_answer *a,
                            void *data) {
  (void)c;
  pthread_mutex_lock(&rec.lock);
  rec.last = *r;
  rec.state = r->code == PM_RC_OK ? a->state : PM_STATE_UNKNOWN;
  *(pthread_t *)data = pthread_self();
  rec.calls++;
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
}

static void on_generic(pm_client *c, const pm_result *r, const char *json, void *data) {
  (void)c;
  (void)data;
  pthread_mutex_lock(&rec.lock);
  rec.last = *r;
  snprintf(rec.json, sizeof(rec.json), "%s", json ? json : "");
  rec.calls++;
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
}

static void on_start(pm_client *c, const pm_result *r, const pm_client_start_vpn_answer *a,
                     void *data) {
  (void)c;
  (void)data;
  pthread_mutex_lock(&rec.lock);
  rec.last = *r;
  rec.state = r->code == PM_RC_OK ? a->state : PM_STATE_UNKNOWN;
  rec.calls++;
  pthread_cond_broadcast(&rec.cond);
  pthread_mutex_unlock(&rec.lock);
}

static void test_client_async_thread(void **state) {
  pm_client_config cfg = {0};
  pm_client *c = open_client(&cfg);
  pthread_t ran_on = pthread_self();
  pm_client_start_vpn_params sp = {.location = "fr", .has_location = true};
  (void)state;
  assert_int_equal(-1, (int)pm_client_fd(c));
  assert_int_equal(PM_EINVAL, pm_client_process(c));
  assert_int_equal(0, pm_client_get_state_async(c, on_state_answer, &ran_on));
  rec_wait(&rec.calls, 1);
  assert_int_equal(PM_RC_OK, rec.last.code);
  assert_int_equal(PM_STATE_DISCONNECTED, rec.state);
  assert_false(pthread_equal(ran_on, pthread_self()));
  assert_int_equal(0, pm_client_start_vpn_async(c, &sp, on_start, NULL));
  assert_int_equal(0, pm_client_call_async(c, "GetVersion", NULL, on_generic, NULL));
  rec_wait(&rec.calls, 3);
  assert_non_null(strstr(rec.json, "\"Protocol\":1"));
  assert_int_equal(PM_STATE_CONNECTING, rec.state);
  pm_client_close(c);
}

/* The longest pm_client_process() call seen by step(). */
static uint64_t longest_process_ms;

/* One turn of an application's poll() loop: waits for the client's descriptor, at most until
 * its next deadline (and never more than 1 s), then lets it work. */
static void step(pm_client *c) {
  struct pollfd p = {.fd = (int)pm_client_fd(c), .events = POLLIN};
  int t = pm_client_timeout_ms(c);
  uint64_t t0;
  assert_true(poll(&p, 1, t < 0 || t > 1000 ? 1000 : t) >= 0);
  t0 = pm_test_now_ms();
  assert_true(pm_client_process(c) >= 0);
  if (pm_test_now_ms() - t0 > longest_process_ms)
    longest_process_ms = pm_test_now_ms() - t0;
}

/* Threads of this process now (Linux: /proc/self/task). */
static int threads_now(void) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  int n = 0;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* Runs the application's loop until the n-th connection change, which must be want. */
static void drive_conn(pm_client *c, int n, pm_client_connection want) {
  uint64_t deadline = pm_test_now_ms() + 15000;
  while (rec.n_conn < n) {
    step(c);
    assert_true(pm_test_now_ms() < deadline);
  }
  assert_int_equal(want, rec.conn[n - 1]);
}

/* Runs the application's loop until n callbacks ran. */
static void drive(pm_client *c, const int *counter, int n) {
  uint64_t deadline = pm_test_now_ms() + 15000;
  while (*counter < n) {
    step(c);
    assert_true(pm_test_now_ms() < deadline);
  }
}

static void test_client_async_app_loop(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP, .on_event = on_event};
  pm_client *c = open_client(&cfg);
  pthread_t ran_on;
  pm_client_start_vpn_params sp = {.location = "de", .has_location = true};
  (void)state;
  assert_true(pm_client_fd(c) >= 0);
  assert_int_equal(0, pm_client_process(c));
  assert_int_equal(0, pm_client_get_state_async(c, on_state_answer, &ran_on));
  drive(c, &rec.calls, 1);
  assert_true(pthread_equal(ran_on, pthread_self()));
  assert_int_equal(PM_STATE_DISCONNECTED, rec.state);
  /* Start and wait for Connected through events, without a blocking call. */
  assert_int_equal(0, pm_client_start_vpn_async(c, &sp, on_start, NULL));
  for (;;) {
    int n = rec.n_events;
    drive(c, &rec.n_events, n + 1);
    assert_int_equal(PM_CLIENT_EVENT_STATE_CHANGED, rec.types[n]);
    if (rec.ints[n] == PM_STATE_CONNECTED)
      break;
  }
  drive(c, &rec.calls, 2);
  assert_int_equal(PM_STATE_CONNECTING, rec.state);
  /* Confirmed once processed (confirm on return, run by the application's loop). */
  {
    uint64_t deadline = pm_test_now_ms() + 10000;
    while (delivered(c) < 2) {
      step(c);
      assert_true(pm_test_now_ms() < deadline);
    }
  }
  pm_client_close(c);
}

/* ---- events -------------------------------------------------------------------------------- */

static void test_client_events_typed(void **state) {
  pm_client_config cfg = {.on_event = on_event, .on_connection = on_connection};
  pm_client *c = open_client(&cfg);
  (void)state;
  rec_wait(&rec.n_conn, 1);
  assert_int_equal(PM_CLIENT_CONNECTED, rec.conn[0]);
  emit(c, "{\"Type\":\"TrafficChanged\",\"Data\":{\"BytesSent\":7,\"BytesReceived\":9}}");
  emit(c, "{\"Type\":\"CustomThing\",\"Data\":{\"X\":1}}");
  emit(c, "{\"Type\":\"StateChanged\",\"Data\":{\"State\":\"Connected\",\"Location\":\"de\"}}");
  emit(c, "{\"Type\":\"ErrorOccured\",\"Data\":{\"Result\":\"Error\",\"Message\":\"m\"}}");
  rec_wait(&rec.n_events, 4);
  assert_int_equal(PM_CLIENT_EVENT_TRAFFIC_CHANGED, rec.types[0]);
  assert_int_equal(7, rec.ints[0]);
  assert_int_equal(PM_CLIENT_EVENT_OTHER, rec.types[1]);
  assert_string_equal("CustomThing", rec.names[1]);
  assert_int_equal(PM_CLIENT_EVENT_STATE_CHANGED, rec.types[2]);
  assert_int_equal(PM_STATE_CONNECTED, rec.ints[2]);
  assert_int_equal(PM_CLIENT_EVENT_ERROR_OCCURED, rec.types[3]);
  pm_client_close(c);
}

static int setup_small_queue(void **state) {
  static const char *const args[] = {"--test-commands", "--queue-max-events", "3", NULL};
  (void)state;
  pm_test_service_start(&svc, args);
  rec_reset();
  return 0;
}

static void test_client_events_lost(void **state) {
  pm_client_config plain = {0};
  pm_client_config cfg = {.on_event = on_event};
  pm_client *cmd = open_client(&plain), *c;
  (void)state;
  /* Five durable events for a queue of three, no client attached: the oldest are replaced by
   * one EventsLost standing for them. */
  emit(cmd, "{\"Type\":\"Custom\",\"Count\":5}");
  c = open_client(&cfg);
  rec_wait(&rec.n_events, 3);
  assert_int_equal(PM_CLIENT_EVENT_EVENTS_LOST, rec.types[0]);
  assert_string_equal("EventsLost", rec.names[0]);
  assert_true(rec.ints[0] >= 1);
  assert_int_equal(PM_CLIENT_EVENT_OTHER, rec.types[2]);
  pm_client_close(c);
  pm_client_close(cmd);
}

static void test_client_confirm_later(void **state) {
  pm_client_config cfg = {.on_event = on_event, .confirm_later = true};
  pm_client *c = open_client(&cfg);
  int64_t before, epoch, last;
  uint64_t deadline;
  (void)state;
  before = delivered(c);
  emit(c, "{\"Type\":\"Custom\",\"Count\":1}");
  rec_wait(&rec.n_events, 1);
  /* Not confirmed by returning from the callback. */
  assert_int_equal(before, delivered(c));
  assert_int_equal(0, pm_client_confirm(c, rec.ids[0]));
  deadline = pm_test_now_ms() + 10000;
  while (delivered(c) != before + 1)
    assert_true(pm_test_now_ms() < deadline);
  await_cursor(c, rec.ids[0], &epoch, &last);
  assert_true(epoch >= 1);
  pm_client_close(c);
  /* Confirm-later off: pm_client_confirm refuses. */
  cfg.confirm_later = false;
  c = open_client(&cfg);
  assert_int_equal(PM_EINVAL, pm_client_confirm(c, 1));
  pm_client_close(c);
}

/* pm_client_confirm_epoch confirms the event of that epoch only: one naming another epoch
 * (an event from before a restart without the store, confirmed late) leaves the current epoch's
 * event with the same id unconfirmed, held and queued. */
static void test_client_confirm_epoch(void **state) {
  pm_client_config cfg = {.on_event = on_event, .confirm_later = true};
  pm_client *c = open_client(&cfg);
  int64_t before, epoch, last;
  uint64_t deadline;
  (void)state;
  before = delivered(c);
  emit(c, "{\"Type\":\"Custom\",\"Count\":1}");
  rec_wait(&rec.n_events, 1);
  assert_true(rec.epochs[0] >= 1);
  assert_int_equal(PM_EINVAL, pm_client_confirm_epoch(c, -1, rec.ids[0]));
  assert_int_equal(0, pm_client_confirm_epoch(c, rec.epochs[0] + 1, rec.ids[0]));
  usleep(300 * 1000);
  assert_int_equal(before, delivered(c));
  pm_client_cursor(c, &epoch, &last);
  assert_int_equal(rec.epochs[0], epoch);
  assert_int_equal(rec.ids[0] - 1, last);
  /* Its own epoch does confirm it. */
  assert_int_equal(0, pm_client_confirm_epoch(c, rec.epochs[0], rec.ids[0]));
  deadline = pm_test_now_ms() + 10000;
  while (delivered(c) != before + 1)
    assert_true(pm_test_now_ms() < deadline);
  await_cursor(c, rec.ids[0], &epoch, &last);
  pm_client_close(c);
  /* Confirm-later off: refused, as pm_client_confirm. */
  cfg.confirm_later = false;
  c = open_client(&cfg);
  assert_int_equal(PM_EINVAL, pm_client_confirm_epoch(c, 1, 1));
  pm_client_close(c);
}

/* A confirmation given just before pm_client_close reaches the service: the event is not sent
 * again to the next client (the Python binding confirms, then leaves the loop and closes). */
static void test_client_confirm_then_close(void **state) {
  pm_client_config cfg = {.on_event = on_event, .confirm_later = true};
  pm_client *c = open_client(&cfg);
  pm_client_get_stats_answer a;
  int64_t before;
  uint64_t deadline;
  (void)state;
  before = delivered(c);
  emit(c, "{\"Type\":\"Custom\",\"Count\":1}");
  rec_wait(&rec.n_events, 1);
  assert_int_equal(0, pm_client_confirm(c, rec.ids[0]));
  pm_client_close(c);
  c = open_client(&(pm_client_config){0});
  deadline = pm_test_now_ms() + 10000;
  while (delivered(c) != before + 1)
    assert_true(pm_test_now_ms() < deadline);
  assert_ok(pm_client_get_stats(c, &a));
  assert_int_equal(0, a.events.queued);
  pm_client_get_stats_answer_free(&a);
  pm_client_close(c);
}

static void test_client_resume(void **state) {
  pm_client_config cfg = {.on_event = on_event, .confirm_later = true};
  pm_client *c = open_client(&cfg), *cmd;
  pm_client_config plain = {0};
  int64_t epoch, last;
  (void)state;
  cmd = open_client(&plain);
  emit(cmd, "{\"Type\":\"Custom\",\"Count\":2}");
  rec_wait(&rec.n_events, 1);
  assert_int_equal(0, pm_client_confirm(c, rec.ids[0]));
  rec_wait(&rec.n_events, 2);
  /* The second delivered, never confirmed: the service keeps it queued, and the cursor stops
   * before it. */
  await_cursor(c, rec.ids[1] - 1, &epoch, &last);
  pm_client_close(c);
  emit(cmd, "{\"Type\":\"Custom\",\"Count\":1}");
  /* Resumed from the cursor: the unconfirmed event again, then what is new; not the first. */
  cfg.confirm_later = false;
  cfg.resume_epoch = epoch;
  cfg.resume_last_id = last;
  c = open_client(&cfg);
  rec_wait(&rec.n_events, 4);
  assert_int_equal(rec.ids[1], rec.ids[2]);
  assert_int_equal(rec.ids[1] + 1, rec.ids[3]);
  pm_client_close(c);
  pm_client_close(cmd);
}

static void test_client_from_now(void **state) {
  pm_client_config plain = {0};
  pm_client_config cfg = {.on_event = on_event, .on_connection = on_connection,
                          .start = PM_CLIENT_START_NOW};
  pm_client *cmd = open_client(&plain), *c;
  pm_client_get_stats_answer st;
  (void)state;
  /* Two events queued with no client attached: a client from now never sees them. */
  emit(cmd, "{\"Type\":\"Old\",\"Count\":2}");
  c = open_client(&cfg);
  rec_wait(&rec.n_conn, 1);
  emit(cmd, "{\"Type\":\"New\",\"Count\":1}");
  rec_wait(&rec.n_events, 1);
  assert_string_equal("New", rec.names[0]);
  assert_ok(pm_client_get_stats(cmd, &st));
  assert_int_equal(2, st.events.resume_skipped);
  pm_client_get_stats_answer_free(&st);
  pm_client_close(c);
  /* The default resumes: the queued events come. */
  emit(cmd, "{\"Type\":\"Queued\",\"Count\":1}");
  cfg.start = PM_CLIENT_START_RESUME;
  c = open_client(&cfg);
  rec_wait(&rec.n_events, 2);
  assert_string_equal("Queued", rec.names[1]);
  pm_client_close(c);
  pm_client_close(cmd);
}

static void test_client_observer(void **state) {
  pm_client_config cfg = {.on_event = on_event, .on_connection = on_connection, .observe = true};
  pm_client *obs = open_client(&cfg), *cmd;
  pm_client_config plain = {0};
  pm_client_get_stats_answer st;
  int64_t before;
  (void)state;
  rec_wait(&rec.n_conn, 1);
  cmd = open_client(&plain);
  before = delivered(cmd);
  emit(cmd, "{\"Type\":\"Custom\",\"Count\":2}");
  rec_wait(&rec.n_events, 2);
  /* Seen, but neither confirmed nor taken: the slot is free and the events stay queued. */
  assert_ok(pm_client_get_stats(cmd, &st));
  assert_false(st.events.attached);
  assert_int_equal(before, st.events.delivered);
  assert_true(st.events.queued >= 2);
  pm_client_get_stats_answer_free(&st);
  pm_client_close(obs);
  pm_client_close(cmd);
}

static void test_client_reconnects(void **state) {
  pm_client_config cfg = {.on_event = on_event, .on_connection = on_connection,
                          .reconnect_min_ms = 50, .reconnect_max_ms = 200};
  pm_client *c = open_client(&cfg);
  (void)state;
  rec_wait(&rec.n_conn, 1);
  assert_int_equal(PM_CLIENT_CONNECTED, rec.conn[0]);
  assert_int_equal(0, pm_test_service_stop(&svc));
  rec_wait(&rec.n_conn, 2);
  assert_int_equal(PM_CLIENT_DISCONNECTED, rec.conn[1]);
  assert_true(rec.reasons[1][0] != '\0');
  rec_wait(&rec.n_conn, 3);
  assert_int_equal(PM_CLIENT_RECONNECTING, rec.conn[2]);
  pm_test_service_restart(&svc, (const char *const[]){"--test-commands", NULL});
  /* Connected again by the library itself; events flow on the new session. */
  for (;;) {
    rec_wait(&rec.n_conn, rec.n_conn + 1);
    if (rec.conn[rec.n_conn - 1] == PM_CLIENT_CONNECTED)
      break;
  }
  emit(c, "{\"Type\":\"Custom\",\"Count\":1}");
  rec_wait(&rec.n_events, 1);
  pm_client_close(c);
}


/* ---- the application's loop, alone --------------------------------------------------------- */

/* No thread of the library in PM_CLIENT_DRIVE_APP: calls, events, confirm later, a service
 * restart and the reconnection with backoff all come from a poll() loop that waits for
 * pm_client_fd() and pm_client_timeout_ms(), and no pm_client_process() blocks. */
static void test_client_app_loop_alone(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP, .on_event = on_event,
                          .on_connection = on_connection, .confirm_later = true,
                          .reconnect_min_ms = 50, .reconnect_max_ms = 200};
  int threads = threads_now();
  pm_client *c = open_client(&cfg);
  pthread_t ran_on;
  int64_t before, epoch, last;
  uint64_t deadline;
  (void)state;
  longest_process_ms = 0;
  assert_int_equal(threads, threads_now());
  /* Nothing before the first process, which must come at once. */
  assert_int_equal(0, rec.n_conn);
  assert_int_equal(0, pm_client_timeout_ms(c));
  drive_conn(c, 1, PM_CLIENT_CONNECTED);
  assert_int_equal(0, pm_client_get_state_async(c, on_state_answer, &ran_on));
  drive(c, &rec.calls, 1);
  assert_int_equal(PM_STATE_DISCONNECTED, rec.state);
  before = delivered(c);
  emit(c, "{\"Type\":\"Custom\",\"Count\":1}");
  drive(c, &rec.n_events, 1);
  /* Held unconfirmed: not behind the cursor yet. */
  pm_client_cursor(c, &epoch, &last);
  assert_int_equal(rec.ids[0] - 1, last);
  assert_int_equal(before, delivered(c));
  assert_int_equal(0, pm_client_confirm(c, rec.ids[0]));
  deadline = pm_test_now_ms() + 10000;
  while (delivered(c) != before + 1) {
    step(c);
    assert_true(pm_test_now_ms() < deadline);
  }
  pm_client_cursor(c, &epoch, &last);
  assert_int_equal(rec.ids[0], last);
  assert_int_equal(threads, threads_now());
  /* The service goes away and comes back: the loop's own timers reconnect. */
  assert_int_equal(0, pm_test_service_stop(&svc));
  drive_conn(c, 2, PM_CLIENT_DISCONNECTED);
  drive_conn(c, 3, PM_CLIENT_RECONNECTING);
  pm_test_service_restart(&svc, (const char *const[]){"--test-commands", NULL});
  do
    drive(c, &rec.n_conn, rec.n_conn + 1);
  while (rec.conn[rec.n_conn - 1] != PM_CLIENT_CONNECTED);
  emit(c, "{\"Type\":\"Custom\",\"Count\":1}");
  drive(c, &rec.n_events, 2);
  assert_int_equal(threads, threads_now());
  pm_client_close(c);
  /* A pass does what is ready and returns: far below any of the client's deadlines (the
   * margin is for a loaded machine). */
  assert_ms_within("the longest pm_client_process", longest_process_ms, 0,
                   pm_test_margin_ms(250));
}

/* The handshake deadline is a timer of the application's loop: a pipe that accepts and never
 * answers is dropped in time, and tried again. */
static void test_client_app_handshake_timeout(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP, .on_event = on_event,
                          .on_connection = on_connection, .handshake_timeout_ms = 300,
                          .reconnect_min_ms = 50};
  char path[128];
  pm_client *c;
  uint64_t t0;
  int fd;
  (void)state;
  pm_test_pipe_path(svc.dir, "silent", path, sizeof(path));
  fd = pm_test_bind(path, 8);
  assert_true(fd >= 0);
  cfg.command_pipe = svc.command_pipe;
  cfg.event_pipe = path;
  c = NULL;
  assert_int_equal(0, pm_client_open(&cfg, &c));
  t0 = pm_test_now_ms();
  drive_conn(c, 1, PM_CLIENT_DISCONNECTED);
  assert_string_equal("handshake timed out", rec.reasons[0]);
  /* The deadline, not before, and not much after (a loaded machine's margin). */
  assert_ms_within("handshake timeout", pm_test_now_ms() - t0, 250, 300 + pm_test_margin_ms(1000));
  drive_conn(c, 2, PM_CLIENT_RECONNECTING);
  pm_client_close(c);
  close(fd);
}

/* Start from now asks the service's epoch on the command pipe first: never by blocking the
 * application's loop, even when the command pipe accepts and does not answer. */
static void test_client_app_from_now_probe(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP, .on_event = on_event,
                          .on_connection = on_connection, .start = PM_CLIENT_START_NOW};
  char path[128];
  pm_client *c;
  uint64_t t0;
  int fd;
  (void)state;
  pm_test_pipe_path(svc.dir, "mute", path, sizeof(path));
  fd = pm_test_bind(path, 8);
  assert_true(fd >= 0);
  cfg.command_pipe = path;
  cfg.event_pipe = svc.event_pipe;
  c = NULL;
  assert_int_equal(0, pm_client_open(&cfg, &c));
  longest_process_ms = 0;
  t0 = pm_test_now_ms();
  drive_conn(c, 1, PM_CLIENT_CONNECTED);
  /* The probe's own deadline (1 s) went by, then the session came without a cursor. */
  assert_true(pm_test_now_ms() - t0 >= 900);
  assert_ms_within("the longest pm_client_process", longest_process_ms, 0,
                   pm_test_margin_ms(250));
  pm_client_close(c);
  close(fd);
}

/* ---- closing from a callback --------------------------------------------------------------- */

static void close_on_event(pm_client *c, const pm_client_event *ev, void *data) {
  on_event(c, ev, data);
  pm_client_close(c);
  /* Closed: nothing of it runs any more, and it is freed only once this returns. */
  assert_int_equal(PM_EINVAL, pm_client_process(c));
}

static void test_client_close_in_callback_app(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP, .on_event = close_on_event};
  pm_client *c = open_client(&cfg), *cmd;
  pm_client_config plain = {0};
  uint64_t deadline = pm_test_now_ms() + 15000;
  (void)state;
  cmd = open_client(&plain);
  emit(cmd, "{\"Type\":\"Custom\",\"Count\":3}");
  /* The client is freed inside the process that ran the callback (ASan, valgrind). */
  while (rec.n_events == 0) {
    step(c);
    assert_true(pm_test_now_ms() < deadline);
  }
  assert_int_equal(1, rec.n_events);
  pm_client_close(cmd);
}

static void test_client_close_in_callback_thread(void **state) {
  pm_client_config cfg = {.on_event = close_on_event};
  int threads = threads_now();
  pm_client *c = open_client(&cfg), *cmd;
  pm_client_config plain = {0};
  uint64_t deadline = pm_test_now_ms() + 15000;
  (void)state;
  cmd = open_client(&plain);
  emit(cmd, "{\"Type\":\"Custom\",\"Count\":3}");
  rec_wait(&rec.n_events, 1);
  /* The library's thread frees the client and ends: no deadlock on itself. */
  while (threads_now() != threads)
    assert_true(pm_test_now_ms() < deadline);
  assert_int_equal(1, rec.n_events);
  pm_client_close(cmd);
  (void)c;
}

/* An application driving two clients may run one's loop from the other's callback. A callback
 * of the inner one that closes (or processes) the outer one is still inside the outer one's
 * callback: the close is deferred until that returns, and the nested process is refused. */
typedef struct nested {
  pm_client *outer, *inner;
  int inner_ran, outer_ran;
  int process_rc;
} nested;

static void inner_done(pm_client *c, const pm_result *r, const char *data_json, void *data) {
  nested *n = data;
  (void)c;
  (void)r;
  (void)data_json;
  n->process_rc = pm_client_process(n->outer);
  pm_client_close(n->outer);
  n->inner_ran = 1;
}

static void outer_done(pm_client *c, const pm_result *r, const char *data_json, void *data) {
  nested *n = data;
  uint64_t deadline = pm_test_now_ms() + 15000;
  (void)c;
  (void)r;
  (void)data_json;
  n->outer_ran = 1;
  assert_int_equal(0, pm_client_call_async(n->inner, "GetState", NULL, inner_done, n));
  while (!n->inner_ran) {
    step(n->inner);
    assert_true(pm_test_now_ms() < deadline);
  }
}

static void test_client_close_outer_from_nested(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP};
  nested n = {0};
  (void)state;
  n.outer = open_client(&cfg);
  n.inner = open_client(&cfg);
  assert_int_equal(0, pm_client_call_async(n.outer, "GetState", NULL, outer_done, &n));
  /* The outer client is freed by the process that ran outer_done (ASan, valgrind). */
  drive(n.outer, &n.outer_ran, 1);
  assert_int_equal(1, n.inner_ran);
  assert_int_equal(PM_EINVAL, n.process_rc);
  pm_client_close(n.inner);
}

/* ---- an event the client cannot take ------------------------------------------------------- */

/* The allocations of one pass fail from the n-th on, for every n: whatever failed, the event
 * is delivered once (left unconfirmed to the service, sent again on the next connection),
 * never confirmed without being delivered. */
static void test_client_app_event_oom(void **state) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP, .on_event = on_event,
                          .on_connection = on_connection, .reconnect_min_ms = 10, .reconnect_max_ms = 10};
  pm_client *c = open_client(&cfg), *cmd;
  pm_client_config plain = {0};
  (void)state;
  cmd = open_client(&plain);
  /* Attached first, so that each event comes as soon as it is published. */
  drive_conn(c, 1, PM_CLIENT_CONNECTED);
  for (int n = 1; n <= 40; n++) {
    struct pollfd p = {.fd = (int)pm_client_fd(c), .events = POLLIN};
    int had = rec.n_events;
    emit(cmd, "{\"Type\":\"StateChanged\",\"Data\":{\"State\":\"Connected\","
              "\"Location\":\"de\"}}");
    /* Most likely the event that is ready now. */
    assert_true(poll(&p, 1, 1000) >= 0);
    pm__alloc_fail_after((unsigned long)n);
    pm_client_process(c);
    pm__alloc_fail_after(0);
    drive(c, &rec.n_events, had + 1);
    assert_int_equal(PM_CLIENT_EVENT_STATE_CHANGED, rec.types[had % MAX_SEEN]);
    /* Once, and in order. */
    assert_int_equal(had + 1, rec.n_events);
    if (had > 0)
      assert_true(rec.ids[had] > rec.ids[had - 1]);
    if (rec.n_events >= MAX_SEEN)
      rec_reset();
  }
  pm_client_close(c);
  pm_client_close(cmd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_client_typed_functions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_results, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_connection_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_unexpected_owner, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_env_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_async_thread, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_async_refused_params, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_async_app_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_events_typed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_events_lost, setup_small_queue, teardown),
      cmocka_unit_test_setup_teardown(test_client_confirm_later, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_confirm_epoch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_confirm_then_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_resume, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_from_now, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_observer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_reconnects, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_app_loop_alone, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_app_handshake_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_app_from_now_probe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_close_in_callback_app, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_close_in_callback_thread, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_app_event_oom, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_close_outer_from_nested, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
