/* The event server of libpipemsg in one process: server on a loop thread, publishers on
 * threads of their own, the library's event client as the consumer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "internal.h"
#include "testutil.h"

#define PUBLISHERS 4
#define PER_PUBLISHER 250
#define TOTAL (PUBLISHERS * PER_PUBLISHER)

typedef struct fixture {
  char dir[64];
  char path[128];
  uv_loop_t loop;
  uv_thread_t thread;
  uv_sem_t ready;
  uv_async_t stop;
  pm_event_server *server;
  pm_event_server_options opts;
  pm_event_store *store;
  int start_rc;
  int refuse;
  int publish_at_close; /* on_stop publishes right after closing the server */
  uv_async_t publish;   /* publishes "OnLoop" from the loop thread (on_publish) */
  int64_t loop_ids[2];  /* what those publishes returned, and how many there were */
  int publish_rc;       /* what that publish returned */
  int stopped;          /* the loop thread was joined */
  char dropped[PM_REASON_MAX]; /* the reason of the last "dropped" log entry */
  char observer_gone[PM_REASON_MAX]; /* the reason of the last observer's "detached" entry */
  uv_check_t rounds_check; /* counts the loop's rounds: each is one return from its poll */
  unsigned long rounds;
  int publish_on_attach;  /* on_log publishes "FromLog" at the client's "attached" entry */
  int attach_entry_kept;  /* that entry read the same after the publish (1), or not (-1) */
  long long sent_pid;     /* the peer's pid in the last "sent" entry */
  int users;              /* who the peer hook says connections are (USERS_*) */
  unsigned made_up;       /* users it made up so far (USERS_EACH_OWN) */
  long long uid;          /* the user of the next connection (USERS_CHOSEN; under seen_lock) */
  pid_t flooder;          /* a pm_test_flood_start child, stopped by teardown */
} fixture;

static fixture fx;

/* What the application saw. */
static uv_mutex_t seen_lock;
static int64_t seen_ids[TOTAL];
static int seen_last_n[PUBLISHERS];
static int seen_count;
static int order_broken;

static int authorize(const pm_peer *peer, void *data) {
  (void)peer;
  return ((fixture *)data)->refuse ? -1 : 0;
}

/* Publishes on the loop thread, as pipemsgd's backend does; a second one while the first is
 * still in flight. The test waits for the first to arrive before it asks for the second. */
static void on_publish(uv_async_t *a) {
  fixture *f = a->data;
  int64_t id = 0;
  int rc = pm_event_server_publish(f->server, "OnLoop", json_pack("{s:i}", "N", 1), &id);
  uv_mutex_lock(&seen_lock);
  f->loop_ids[f->loop_ids[0] == 0 ? 0 : 1] = rc == 0 ? id : -1;
  uv_mutex_unlock(&seen_lock);
}

static void on_round(uv_check_t *c) {
  fixture *f = c->data;
  uv_mutex_lock(&seen_lock);
  f->rounds++;
  uv_mutex_unlock(&seen_lock);
}

static void on_stop(uv_async_t *a) {
  fixture *f = a->data;
  pm_event_server_close(f->server, NULL, NULL);
  uv_close((uv_handle_t *)&f->publish, NULL);
  uv_close((uv_handle_t *)&f->rounds_check, NULL);
  /* The server is freed only once its handles have closed, later in this loop run. */
  if (f->publish_at_close)
    f->publish_rc = pm_event_server_publish(f->server, "Late", NULL, NULL);
  uv_close((uv_handle_t *)&f->stop, NULL);
}

static void server_thread(void *arg) {
  fixture *f = arg;
  f->start_rc = pm_event_server_start(&f->loop, f->path, &f->opts, &f->server);
  uv_sem_post(&f->ready);
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void on_log(const pm_event_log *e, void *data) {
  fixture *f = data;
  int publish_now;
  if (strcmp(e->what, "attached") == 0 && !e->observer) {
    uv_mutex_lock(&seen_lock);
    publish_now = f->publish_on_attach;
    f->publish_on_attach = 0;
    uv_mutex_unlock(&seen_lock);
    /* On the loop thread, to an idle client: sent at once, and that send is logged too. */
    if (publish_now) {
      int rc = pm_event_server_publish(f->server, "FromLog", NULL, NULL);
      int kept = rc == 0 && strcmp(e->what, "attached") == 0 && e->event_id == 0 &&
                 e->reason == NULL && e->peer.pid == (long long)getpid();
      uv_mutex_lock(&seen_lock);
      f->attach_entry_kept = kept ? 1 : -1;
      uv_mutex_unlock(&seen_lock);
    }
  }
  if (strcmp(e->what, "sent") == 0) {
    uv_mutex_lock(&seen_lock);
    f->sent_pid = e->peer.pid;
    uv_mutex_unlock(&seen_lock);
  }
  if (strcmp(e->what, "dropped") == 0) {
    uv_mutex_lock(&seen_lock);
    snprintf(f->dropped, sizeof(f->dropped), "%s", e->reason);
    uv_mutex_unlock(&seen_lock);
  }
  if (e->observer && strcmp(e->what, "detached") == 0) {
    uv_mutex_lock(&seen_lock);
    snprintf(f->observer_gone, sizeof(f->observer_gone), "%s", e->reason);
    uv_mutex_unlock(&seen_lock);
  }
}

/* The per-user limits need several users; a test without root has one, so the peer hook makes
 * them up. */
enum {
  USERS_REAL,          /* as the kernel says */
  USERS_EACH_OWN,      /* every connection a user of its own */
  USERS_OTHER_PROCESS, /* connections from another process (a flooder) another user's */
  USERS_CHOSEN,        /* the test's choice (as_user), for connections it makes one by one */
};
#define MADE_UP_UID 70000

static void make_up_users(pm_peer *peer, void *data) {
  fixture *f = data;
  if (f->users == USERS_EACH_OWN)
    peer->uid = MADE_UP_UID + f->made_up++;
  else if (f->users == USERS_OTHER_PROCESS && peer->pid != (long long)getpid())
    peer->uid = MADE_UP_UID;
  else if (f->users == USERS_CHOSEN) {
    uv_mutex_lock(&seen_lock);
    peer->uid = f->uid;
    uv_mutex_unlock(&seen_lock);
  }
}

/* The user of the connections made from now on (USERS_CHOSEN). The server must have accepted
 * every connection made before (its handshake answered, or it was told Busy): it asks the hook
 * at accept, not at connect. */
static void as_user(long long uid) {
  uv_mutex_lock(&seen_lock);
  fx.uid = uid;
  uv_mutex_unlock(&seen_lock);
}

static void start_server(void) {
  pm__event_peer_hook(make_up_users, &fx);
  fx.opts.authorize = authorize;
  fx.opts.log = on_log;
  fx.opts.data = &fx;
  if (fx.opts.ack_timeout_ms == 0)
    fx.opts.ack_timeout_ms = 2000;
  assert_int_equal(0, uv_loop_init(&fx.loop));
  uv_async_init(&fx.loop, &fx.stop, on_stop);
  fx.stop.data = &fx;
  uv_async_init(&fx.loop, &fx.publish, on_publish);
  fx.publish.data = &fx;
  uv_check_init(&fx.loop, &fx.rounds_check);
  fx.rounds_check.data = &fx;
  uv_check_start(&fx.rounds_check, on_round);
  uv_unref((uv_handle_t *)&fx.rounds_check);
  uv_sem_init(&fx.ready, 0);
  assert_int_equal(0, uv_thread_create(&fx.thread, server_thread, &fx));
  uv_sem_wait(&fx.ready);
  assert_pm(0, fx.start_rc);
  seen_count = 0;
  order_broken = 0;
  memset(seen_last_n, 0xff, sizeof(seen_last_n));
}

/* Closes the server and ends its loop thread (once). */
static void stop_server(void) {
  if (fx.stopped)
    return;
  fx.stopped = 1;
  uv_async_send(&fx.stop);
  uv_thread_join(&fx.thread);
}

static void setup_dir(void) {
  memset(&fx, 0, sizeof(fx));
  uv_mutex_init(&seen_lock);
  pm_test_dir_new(fx.dir, sizeof(fx.dir));
  pm_test_pipe_path(fx.dir, "evt", fx.path, sizeof(fx.path));
}

static int setup(void **state) {
  (void)state;
  setup_dir();
  start_server();
  return 0;
}

/* An observer may leave this much unread; small, so that a test reaches it quickly. */
#define OBSERVER_BOUND ((size_t)256 * 1024)

static int setup_small_observer_bound(void **state) {
  (void)state;
  setup_dir();
  fx.opts.observer_max_unsent = OBSERVER_BOUND;
  /* The stalled observer answers no heartbeat, and reads what it was sent only once cut off:
   * neither may end it first, however slow the build (valgrind). */
  fx.opts.ack_timeout_ms = (uint32_t)pm_test_margin_ms(5000);
  start_server();
  return 0;
}

/* Heartbeats far apart: an event that waited for one would miss every wait of a test. */
static int setup_slow_heartbeat(void **state) {
  (void)state;
  setup_dir();
  fx.opts.heartbeat_ms = (uint32_t)(4 * pm_test_margin_ms(10000));
  start_server();
  return 0;
}

/* Heartbeats often enough to wait for two within a test. */
#define FAST_HEARTBEAT_MS 200

static int setup_fast_heartbeat(void **state) {
  (void)state;
  setup_dir();
  fx.opts.heartbeat_ms = FAST_HEARTBEAT_MS;
  start_server();
  return 0;
}

/* An event's write has a short deadline of its own; the acknowledgement timeout is too long
 * to end anything within a test, and so is the heartbeat (a ping sent while the big event is
 * being published, slow under valgrind, would hold the event back until its answer). */
#define WRITE_DEADLINE_MS 300

static int setup_write_deadline(void **state) {
  (void)state;
  setup_dir();
  fx.opts.write_timeout_ms = WRITE_DEADLINE_MS;
  fx.opts.ack_timeout_ms = (uint32_t)(4 * pm_test_margin_ms(10000));
  fx.opts.heartbeat_ms = (uint32_t)(4 * pm_test_margin_ms(10000));
  start_server();
  return 0;
}

/* A heartbeat and an acknowledgement timeout of their own, for the tests of parking. */
static void start_server_timed(uint32_t heartbeat_ms, uint32_t ack_ms) {
  setup_dir();
  fx.opts.heartbeat_ms = heartbeat_ms;
  fx.opts.ack_timeout_ms = ack_ms;
  start_server();
}

/* The answer's deadline before the next heartbeat is due. */
#define SHORT_ACK_MS 300
#define LONG_HEARTBEAT_MS 1000

static int setup_short_ack(void **state) {
  (void)state;
  start_server_timed(LONG_HEARTBEAT_MS, SHORT_ACK_MS);
  return 0;
}

/* Every connection a user of its own; a turned-away one lingers until its client closes (or
 * the handshake timeout, long here). */
static int setup_each_own_user(void **state) {
  (void)state;
  setup_dir();
  fx.users = USERS_EACH_OWN;
  fx.opts.handshake_timeout_ms = (uint32_t)(4 * pm_test_margin_ms(10000));
  start_server();
  return 0;
}

/* Users of the test's choice (as_user), max_observers places (0: the default); heartbeats far
 * apart, so that observers the test does not read meanwhile are not ended for an unanswered
 * one. */
static void start_chosen_users(unsigned max_observers) {
  setup_dir();
  fx.users = USERS_CHOSEN;
  fx.uid = MADE_UP_UID;
  fx.opts.max_observers = max_observers;
  fx.opts.heartbeat_ms = (uint32_t)(4 * pm_test_margin_ms(10000));
  start_server();
}

static int setup_chosen_users(void **state) {
  (void)state;
  start_chosen_users(0);
  return 0;
}

static int setup_chosen_users_one_observer(void **state) {
  (void)state;
  start_chosen_users(1);
  return 0;
}

#ifndef _WIN32 /* the flooder is a forked child */
/* A flooder's connections are another user's; heartbeats far apart, so that a client left
 * waiting while the test drives other connections is not ended for an unanswered one. */
static int setup_flooded_by_other_user(void **state) {
  (void)state;
  setup_dir();
  fx.users = USERS_OTHER_PROCESS;
  fx.opts.heartbeat_ms = (uint32_t)(4 * pm_test_margin_ms(10000));
  start_server();
  return 0;
}
#endif

/* Runs SQL on the store file with SQLite itself, as an older version or a damaged disk
 * might have left it. */
static void store_exec(const char *sql) {
  char path[160];
  sqlite3 *db = NULL;
  snprintf(path, sizeof(path), "%s/events.db", fx.dir);
  assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
  assert_int_equal(SQLITE_OK, sqlite3_exec(db, sql, NULL, NULL, NULL));
  assert_int_equal(SQLITE_OK, sqlite3_close(db));
}

/* The fixture's directory with a store made by pm_event_store_open, then changed by sql with
 * SQLite itself, and the server started on it. */
static void start_server_on_store(const char *sql) {
  char path[160];
  setup_dir();
  snprintf(path, sizeof(path), "%s/events.db", fx.dir);
  assert_pm(0, pm_event_store_open(path, &fx.store)); /* makes the schema */
  pm_event_store_close(fx.store);
  store_exec(sql);
  assert_pm(0, pm_event_store_open(path, &fx.store));
  fx.opts.store = fx.store;
  start_server();
}

/* A store holding what a version without the publish check could write: a StateChanged
 * event whose Location XML cannot carry, then an ordinary event. */
static int setup_unencodable_store(void **state) {
  (void)state;
  start_server_on_store("INSERT INTO events(id, type, time, data, marker) VALUES"
                        "(1, 'StateChanged', '2026-11-30T12:00:00.000Z',"
                        " '{\"State\":\"Connecting\",\"Location\":\"de\\u0001\"}', 0),"
                        "(2, 'Saved', '2026-11-30T12:00:01.000Z', '{\"N\":2}', 0);");
  return 0;
}

/* A store that refuses to delete events: a trigger stands for a disk that fails the write. */
static int setup_undeletable_store(void **state) {
  (void)state;
  start_server_on_store(
      "CREATE TRIGGER keep BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'no'); END;");
  return 0;
}

static int teardown(void **state) {
  (void)state;
#ifndef _WIN32
  if (fx.flooder > 0)
    pm_test_flood_stop(fx.flooder);
#endif
  stop_server();
  pm__event_peer_hook(NULL, NULL);
  assert_int_equal(0, uv_loop_close(&fx.loop));
  uv_sem_destroy(&fx.ready);
  uv_mutex_destroy(&seen_lock);
  assert_false(pm_test_pipe_exists(fx.path)); /* closing removed the socket file */
  pm_event_store_close(fx.store);
  pm_test_dir_remove(fx.dir);
  return 0;
}

/* What each publish returned: checked on the main thread once the publishers are joined
 * (cmocka's checks cannot leave another thread). */
static int publish_rc[PUBLISHERS][PER_PUBLISHER];

static void publisher(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int i = 0; i < PER_PUBLISHER; i++)
    publish_rc[t][i] = pm_event_server_publish(
        fx.server, "Tick", json_pack("{s:i, s:i}", "T", t, "N", i), NULL);
}

static void on_event(const pm_event *ev, void *data) {
  int64_t t, n;
  (void)data;
  uv_mutex_lock(&seen_lock);
  if (pm_tree_get_int(ev->data, "T", &t) < 0 || pm_tree_get_int(ev->data, "N", &n) < 0 ||
      t < 0 || t >= PUBLISHERS || n != seen_last_n[t] + 1)
    order_broken = 1;
  else
    seen_last_n[t] = (int)n;
  if (seen_count < TOTAL)
    seen_ids[seen_count++] = ev->id;
  uv_mutex_unlock(&seen_lock);
}

static int seen(void) {
  int n;
  uv_mutex_lock(&seen_lock);
  n = seen_count;
  uv_mutex_unlock(&seen_lock);
  return n;
}

static void test_event_server_concurrent_publishers(void **state) {
  pm_event_client_options opts;
  pm_event_client *client;
  uv_thread_t threads[PUBLISHERS];
  pm_event_stats stats;
  uint64_t deadline;
  (void)state;
  memset(&opts, 0, sizeof(opts));
  opts.on_event = on_event;
  assert_pm(0, pm_event_client_start(fx.path, &opts, &client));
  for (int t = 0; t < PUBLISHERS; t++)
    assert_int_equal(0, uv_thread_create(&threads[t], publisher, (void *)(intptr_t)t));
  for (int t = 0; t < PUBLISHERS; t++)
    uv_thread_join(&threads[t]);
  for (int t = 0; t < PUBLISHERS; t++)
    for (int i = 0; i < PER_PUBLISHER; i++)
      assert_pm(0, publish_rc[t][i]);
  deadline = pm_test_now_ms() + 30000;
  while (seen() < TOTAL) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
  pm_event_client_stop(client);
  /* Every event once, ids 1..TOTAL in order, each publisher's own order kept. */
  assert_false(order_broken);
  for (int i = 0; i < TOTAL; i++)
    assert_int_equal(i + 1, seen_ids[i]);
  pm_event_server_stats(fx.server, &stats);
  assert_int_equal(TOTAL, stats.published);
  assert_true(stats.delivered >= TOTAL - 1); /* the last confirmation may still be in transit */
  assert_int_equal(0, stats.lost_overflow);
}

static void test_event_server_publish_validates(void **state) {
  int64_t id = 0;
  (void)state;
  assert_pm(PM_EINVAL, pm_event_server_publish(fx.server, "not a name", NULL, NULL));
  assert_pm(PM_EINVAL, pm_event_server_publish(fx.server, "EventsLost", NULL, NULL));
  assert_pm(PM_EINVAL, pm_event_server_publish(fx.server, "X", json_integer(1), NULL));
  assert_pm(0, pm_event_server_publish(fx.server, "X", NULL, &id));
  assert_int_equal(1, id);
  assert_true(pm_event_server_epoch(fx.server) > 0);
}

static void test_event_server_refused_peer(void **state) {
  int fd;
  char *frame;
  (void)state;
  fx.refuse = 1;
  fd = pm_test_connect(fx.path);
  assert_true(fd >= 0);
  frame = pm_test_recv_frame(fd, 5000, NULL);
  assert_non_null(frame);
  assert_non_null(strstr(frame, "\"Reason\":\"NotAuthorized\""));
  free(frame);
  assert_true(pm_test_wait_eof(fd, 5000) >= 0);
  close(fd);
}

/* A publisher on another thread that races with the server's close is told so, and nothing is
 * queued: here it publishes on the loop thread between pm_event_server_close and the server
 * being freed. */
static void test_event_server_publish_after_close(void **state) {
  (void)state;
  fx.publish_at_close = 1;
  fx.publish_rc = 1;
  stop_server();
  assert_pm(PM_ECANCELED, fx.publish_rc);
}

/* What pm_event_server_start refuses, each failure freeing what it took (ASan, valgrind): bad
 * options, a pipe path too long, a directory that cannot be made; and a given epoch is
 * the one the server uses. */
static void test_event_server_start_errors(void **state) {
  pm_event_server_options opts;
  pm_event_server *s = NULL;
  char path[160], name[PM_PIPE_PATH_MAX + 16];
  uv_loop_t loop;
  FILE *file;
  (void)state;
  /* The fixture's server runs fx.loop on another thread: these get a loop of their own. */
  assert_int_equal(0, uv_loop_init(&loop));
  memset(&opts, 0, sizeof(opts));
  opts.max_message = (size_t)PM_MAX_MESSAGE_CEILING + 1;
  assert_pm(PM_EINVAL, pm_event_server_start(&loop, fx.path, &opts, &s));
  opts.max_message = 0;
  opts.epoch = -1;
  assert_pm(PM_EINVAL, pm_event_server_start(&loop, fx.path, &opts, &s));
  opts.epoch = 0;
  /* A bare name too long for any platform's path. */
  memset(name, 'a', sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  assert_pm(PM_ENAMETOOLONG, pm_event_server_start(&loop, name, &opts, &s));
  /* Under a file, where no directory can be made. */
  snprintf(path, sizeof(path), "%s/file", fx.dir);
  file = fopen(path, "w");
  assert_non_null(file);
  fclose(file);
  snprintf(path, sizeof(path), "%s/file/evt", fx.dir);
  assert_true(pm_event_server_start(&loop, path, &opts, &s) < 0);
  assert_null(s);
  /* Its handles close (and the server is freed) as the loop runs. */
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  pm_test_pipe_path(fx.dir, "evt2", path, sizeof(path));
  opts.epoch = 12345;
  assert_pm(0, pm_event_server_start(&loop, path, &opts, &s));
  assert_int_equal(12345, pm_event_server_epoch(s));
  assert_string_equal(path, pm_event_server_path(s));
  pm_event_server_close(s, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

/* An event no session could encode would stay at the head of the queue, retried for ever:
 * publish refuses it, and takes no id for it. */
static void hardening_05_publish_refuses_unencodable(void **state) {
  json_t *big;
  char *blob;
  int64_t id = 0;
  (void)state;
  assert_pm(PM_EINVAL, pm_event_server_publish(fx.server, "StateChanged",
                                               json_pack("{s:s}", "Location", "de\x01"), NULL));
  assert_pm(PM_EINVAL, pm_event_server_publish(fx.server, "X",
                                               json_pack("{s:s}", "S", "\xef\xbf\xbe"), NULL));
  assert_pm(PM_EINVAL, pm_event_server_publish(fx.server, "X",
                                               json_pack("{s:i}", "not a name", 1), NULL));
  /* Not UTF-8 (only jansson's *_nocheck calls build such a string): invalid, not out of memory. */
  assert_pm(PM_EINVAL,
            pm_event_server_publish(fx.server, "X",
                                    json_pack("{s:o}", "S", json_stringn_nocheck("a\xff", 2)),
                                    NULL));
  /* Larger than a message may be, in either encoding. */
  blob = malloc(PM_MAX_MESSAGE_DEFAULT + 1);
  assert_non_null(blob);
  memset(blob, 'a', PM_MAX_MESSAGE_DEFAULT);
  blob[PM_MAX_MESSAGE_DEFAULT] = '\0';
  big = json_pack("{s:s}", "S", blob);
  free(blob);
  assert_non_null(big);
  assert_pm(PM_EMSGSIZE, pm_event_server_publish(fx.server, "X", big, NULL));
  /* Without Data too: a name can be long enough on its own. */
  blob = malloc(PM_MAX_MESSAGE_DEFAULT + 1);
  assert_non_null(blob);
  memset(blob, 'A', PM_MAX_MESSAGE_DEFAULT);
  blob[PM_MAX_MESSAGE_DEFAULT] = '\0';
  assert_pm(PM_EMSGSIZE, pm_event_server_publish(fx.server, blob, NULL, NULL));
  free(blob);
  /* Small, but more nodes than a decoder accepts (PM_NODES_MAX). */
  big = json_object();
  for (int i = 0; i <= PM_NODES_MAX / 2; i++) {
    char key[16];
    snprintf(key, sizeof(key), "K%d", i);
    assert_int_equal(0, json_object_set_new(big, key, json_integer(i)));
  }
  assert_pm(PM_EMSGSIZE, pm_event_server_publish(fx.server, "X", big, NULL));
  /* Tab, newline and carriage return are text in both encodings. */
  assert_pm(0, pm_event_server_publish(fx.server, "X", json_pack("{s:s}", "S", "a\tb\r\nc"),
                                       &id));
  assert_int_equal(1, id);
}

/* What publish answers for an event, as it was computed before it counted instead of
 * encoding: the Event message with the largest id encoded in XML, then in JSON, each within
 * max_message (the node budget's PM_ELIMIT is PM_EMSGSIZE to a publisher). */
static int encoders_verdict(const char *type, json_t *data, size_t max_message) {
  static const pm_encoding encs[] = {PM_ENC_XML, PM_ENC_JSON};
  pm_msg *m = NULL;
  int rc = 0;
  assert_pm(0, pm_msg_new(PM_KIND_EVENT, &m));
  assert_pm(0, pm_msg_set_int(m, "Id", INT64_MAX));
  assert_pm(0, pm_msg_set_string(m, "Type", type));
  /* As long as pm_time_now's: the length is all that counts. */
  assert_pm(0, pm_msg_set_string(m, "Time", "2026-12-01T06:24:01.123Z"));
  if (data != NULL)
    assert_pm(0, pm_msg_set_tree(m, "Data", json_incref(data)));
  for (size_t i = 0; rc == 0 && i < sizeof(encs) / sizeof(encs[0]); i++) {
    uint8_t *out = NULL;
    size_t len = 0;
    rc = pm_msg_encode(m, encs[i], &out, &len);
    if (rc == PM_ELIMIT || (rc == 0 && len > max_message))
      rc = PM_EMSGSIZE;
    pm_free(out);
  }
  pm_msg_free(m);
  return rc;
}

/* One encoding's length of the event (as encoders_verdict builds it), or 0 if it has none. */
static size_t encoded_len(const char *type, json_t *data, pm_encoding enc) {
  pm_msg *m = NULL;
  uint8_t *out = NULL;
  size_t len = 0;
  assert_pm(0, pm_msg_new(PM_KIND_EVENT, &m));
  assert_pm(0, pm_msg_set_int(m, "Id", INT64_MAX));
  assert_pm(0, pm_msg_set_string(m, "Type", type));
  assert_pm(0, pm_msg_set_string(m, "Time", "2026-12-01T06:24:01.123Z"));
  if (data != NULL)
    assert_pm(0, pm_msg_set_tree(m, "Data", json_incref(data)));
  if (pm_msg_encode(m, enc, &out, &len) < 0)
    len = 0;
  pm_free(out);
  pm_msg_free(m);
  return len;
}

/* Publishes type and data (a reference kept) and expects the encoders' verdict. */
static void expect_verdict(pm_event_server *s, size_t max_message, const char *type,
                           json_t *data) {
  int want = encoders_verdict(type, data, max_message);
  int got = pm_event_server_publish(s, type, json_incref(data), NULL);
  if (got != want) {
    char *text = data != NULL ? json_dumps(data, JSON_COMPACT) : NULL;
    print_error("type %.40s data %.200s: publish %d, encoders %d\n", type,
                text != NULL ? text : "(none)", got, want);
    free(text);
  }
  assert_pm(want, got);
}

/* {"A":[1,1,...]} (n items) or {"K0":"","K1":"",...} (n members). */
static json_t *many(int array, int n) {
  json_t *d = json_object(), *a = json_array();
  for (int i = 0; i < n; i++) {
    char key[16];
    snprintf(key, sizeof(key), "K%d", i);
    assert_int_equal(0, array ? json_array_append_new(a, json_integer(1))
                              : json_object_set_new(d, key, json_string("")));
  }
  if (array)
    assert_int_equal(0, json_object_set_new(d, "A", a));
  else
    json_decref(a);
  return d;
}

/* publish counts the XML form's size and nodes instead of encoding it: its verdict is the
 * encoders' on every side of each limit (one byte under, at and over max_message in either
 * encoding, one node under and over the budget in either, text XML cannot hold, names and
 * depth the model refuses). */
static void test_event_server_publish_verdict_is_the_encoders(void **state) {
  /* Each is padded with a member P of plain bytes, so either encoding can be brought to the
   * limit byte by byte. */
  static const char *const bases[] = {
      "{}",
      "{\"S\":\"plain\",\"N\":-12,\"R\":0.1,\"B\":false,\"Z\":null,\"E\":{},\"L\":[]}",
      "{\"S\":\"a&b<c>d\\r&&&&<<<<>>>>\"}",          /* longer in XML */
      "{\"S\":\"\\\"\\\"\\\"\\\"\\\\\\\\\\\\\\\\\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\"}", /* in JSON */
      /* Longer in JSON by more than XML's longer envelope (19 bytes): JSON's limit binds. */
      "{\"S\":\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\""
      "\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\"}",
      "{\"S\":\"\\u0001\\u001f\\u007f\"}",
      "{\"S\":\"\\t\\n \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
      "{\"S\":\"\xef\xbf\xbe\"}",
      "{\"S\":\"\xef\xbf\xbd\xef\xbf\xbf\"}",
      "{\"A\":[[[{\"B\":[1,2.5,\"x\"]}]],{}]}",
  };
  static const size_t small = 4096;
  pm_event_server_options opts;
  pm_event_server *s = NULL, *big = NULL;
  char path[160], path2[160], type[small + 16];
  uv_loop_t loop;
  json_t *data;
  (void)state;
  assert_int_equal(0, uv_loop_init(&loop));
  memset(&opts, 0, sizeof(opts));
  opts.max_message = small;
  opts.queue_max_events = 100000;
  opts.queue_max_bytes = (size_t)1 << 30;
  pm_test_pipe_path(fx.dir, "verdict", path, sizeof(path));
  assert_pm(0, pm_event_server_start(&loop, path, &opts, &s));
  opts.max_message = 0;
  pm_test_pipe_path(fx.dir, "verdict2", path2, sizeof(path2));
  assert_pm(0, pm_event_server_start(&loop, path2, &opts, &big));
  for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
    json_t *base = json_loads(bases[i], 0, NULL);
    assert_non_null(base);
    expect_verdict(s, small, "StateChanged", base);
    for (int enc = 0; enc < 2; enc++) {
      size_t len = encoded_len("StateChanged", base, enc ? PM_ENC_JSON : PM_ENC_XML);
      char *pad;
      if (len == 0)
        continue; /* not encodable: no limit to reach */
      pad = malloc(small + 2);
      assert_non_null(pad);
      /* P with an empty string adds 5 bytes in JSON (,"P":"") and 4 in XML (<P/>). */
      for (long delta = -1; delta <= 1; delta++) {
        long n = (long)small - (long)len - (enc ? 6 : 7) + delta;
        if (n < 1)
          continue;
        memset(pad, 'p', (size_t)n);
        pad[n] = '\0';
        data = json_deep_copy(base);
        assert_int_equal(0, json_object_set_new(data, "P", json_string(pad)));
        expect_verdict(s, small, "StateChanged", data);
        json_decref(data);
      }
      free(pad);
    }
    json_decref(base);
  }
  /* A NUL inside a string, a member name and a depth the model refuses. */
  data = json_pack("{s:s%}", "S", "a\0b", (size_t)3);
  expect_verdict(s, small, "X", data);
  json_decref(data);
  data = json_pack("{s:i}", "not a name", 1);
  expect_verdict(s, small, "X", data);
  json_decref(data);
  for (int depth = PM_NESTING_MAX - 1; depth <= PM_NESTING_MAX + 1; depth++) {
    data = json_object();
    for (int d = depth; d > 2; d--) {
      json_t *outer = json_object();
      assert_int_equal(0, json_object_set_new(outer, "A", data));
      data = outer;
    }
    json_object_set_new(data, "Leaf", json_string("x"));
    expect_verdict(big, PM_MAX_MESSAGE_DEFAULT, "X", data);
    json_decref(data);
  }
  /* The node budget: items count two nodes in XML and one in JSON, members "" one in XML and
   * two in JSON, so each side's limit is reached by one of the two shapes. */
  for (int n = 8180; n <= 8192; n++) {
    data = many(1, n);
    expect_verdict(big, PM_MAX_MESSAGE_DEFAULT, "X", data);
    json_decref(data);
    data = many(0, n);
    expect_verdict(big, PM_MAX_MESSAGE_DEFAULT, "X", data);
    json_decref(data);
  }
  /* Without Data, a type long enough to reach the limit on its own. */
  for (size_t n = small - 120; n < small - 60; n++) {
    memset(type, 'T', n);
    type[n] = '\0';
    expect_verdict(s, small, type, NULL);
  }
  pm_event_server_close(s, NULL, NULL);
  pm_event_server_close(big, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

/* The head event a session cannot encode is dropped, logged and counted; the next one is
 * delivered. Before, the XML session closed on it and every new session did the same. */
static void hardening_05_unencodable_head_dropped(void **state) {
  pm_event_stats stats;
  pm_msg *m;
  int fd;
  (void)state;
  fd = pm_test_event_attach(fx.path, "<Handshake><Seq>1</Seq></Handshake>", 5000, NULL);
  m = pm_test_next_event(fd, 5000);
  pm_test_assert_kind(m, "Event");
  assert_int_equal(2, pm_test_int_field(m, "Id"));
  pm_msg_free(m);
  pm_test_confirm(fd, 2);
  close(fd);
  pm_event_server_stats(fx.server, &stats);
  assert_int_equal(1, stats.dropped_unencodable);
  uv_mutex_lock(&seen_lock);
  assert_non_null(strstr(fx.dropped, "event 1 (StateChanged) cannot be encoded in XML"));
  uv_mutex_unlock(&seen_lock);
}

/* A client that writes its handshake (300 ms late) before reading still gets the reason. */
static void hardening_15_not_authorized_reaches_writing_client(void **state) {
  int fd;
  (void)state;
  fx.refuse = 1;
  fd = pm_test_connect(fx.path);
  assert_true(fd >= 0);
  uv_sleep(300);
  assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1}}"));
  pm_test_expect_disconnect(fd, "NotAuthorized", 5000);
  close(fd);
}

/* Refused peers may hold only half of the lingering places (8), so they cannot take them all
 * from allowed clients' Busy answers: the 9th is closed with no Disconnect. Each is a user of
 * its own, who may have 4 of the places. */
static void hardening_15_refused_peers_bounded(void **state) {
  enum { N = 9 };
  int fds[N];
  (void)state;
  fx.refuse = 1;
  /* All connect before any is answered: they linger together (the long handshake timeout). */
  for (int i = 0; i < N; i++) {
    fds[i] = pm_test_connect(fx.path);
    assert_true(fds[i] >= 0);
  }
  for (int i = 0; i < N - 1; i++) {
    pm_msg *m = pm_test_recv_msg(fds[i], 5000);
    pm_test_assert_kind(m, "Disconnect");
    pm_msg_free(m);
  }
  assert_true(pm_test_wait_eof(fds[N - 1], 2000) >= 0);
  for (int i = 0; i < N; i++)
    close(fds[i]);
}

/* ---- observers (§5.11) ------------------------------------------------------------------- */

/* Every wait for something the server sends; generous for wine. */
#define WAIT_MS ((int)pm_test_margin_ms(10000))
#define OBSERVE_HS "{\"Handshake\":{\"Seq\":1,\"Mode\":\"Observe\"}}"

static int observe_raw(void) { return pm_test_event_attach(fx.path, OBSERVE_HS, WAIT_MS, NULL); }

static pm_event_stats stats_now(void) {
  pm_event_stats st;
  pm_event_server_stats(fx.server, &st);
  return st;
}

/* Waits until the server counts n observers attached. */
static void await_observers(uint64_t n) {
  uint64_t deadline = pm_test_now_ms() + WAIT_MS;
  while (stats_now().observers != n) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
}

/* Waits until the server has seen the client go. */
static void await_detached(void) {
  uint64_t deadline = pm_test_now_ms() + WAIT_MS;
  while (stats_now().attached) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
}

/* Sends Handshake{Seq: seq} and waits for its answer, answering heartbeats on the way: the
 * server has then read everything sent before. */
static void ask_alive(int fd, int64_t seq) {
  char buf[64];
  snprintf(buf, sizeof(buf), "{\"Handshake\":{\"Seq\":%lld}}", (long long)seq);
  assert_int_equal(0, pm_test_send_frame(fd, buf));
  for (;;) {
    pm_msg *m = pm_test_recv_msg(fd, WAIT_MS);
    int64_t n;
    pm_test_assert_kind(m, "Handshake");
    n = pm_test_int_field(m, "Seq");
    pm_msg_free(m);
    if (n == seq)
      return;
    snprintf(buf, sizeof(buf), "{\"Handshake\":{\"Seq\":%lld}}", (long long)n);
    assert_int_equal(0, pm_test_send_frame(fd, buf));
  }
}

/* The next event on fd must be id (of type, when type is not NULL). */
static void expect_event(int fd, int64_t id, const char *type) {
  pm_msg *m = pm_test_next_event(fd, WAIT_MS);
  const char *t = NULL;
  pm_test_assert_kind(m, "Event");
  assert_int_equal(id, pm_test_int_field(m, "Id"));
  if (type != NULL) {
    assert_pm(0, pm_msg_get_string(m, "Type", &t));
    assert_string_equal(type, t);
  }
  pm_msg_free(m);
}

static int64_t publish(const char *type) {
  int64_t id = 0;
  assert_pm(0, pm_event_server_publish(fx.server, type, NULL, &id));
  return id;
}

/* An observer attached while no client is: it gets what is published from then on, durable
 * and transient, and nothing from before; its confirmations and its resume cursor take nothing
 * from the queue, so a client attaching later gets every durable event. */
static void test_event_server_observer_before_client(void **state) {
  char hs[160];
  int64_t before, durable, transient, later;
  pm_event_stats st;
  int obs, cl;
  (void)state;
  before = publish("Before");
  /* A resume cursor past every id: an observer's is not used. */
  snprintf(hs, sizeof(hs),
           "{\"Handshake\":{\"Seq\":1,\"Mode\":\"Observe\",\"Epoch\":%lld,\"LastEventId\":99}}",
           (long long)pm_event_server_epoch(fx.server));
  obs = pm_test_event_attach(fx.path, hs, WAIT_MS, NULL);
  durable = publish("After");
  transient = publish(PM_EVENT_TRAFFIC_CHANGED);
  expect_event(obs, durable, "After");
  expect_event(obs, transient, PM_EVENT_TRAFFIC_CHANGED);
  pm_test_confirm(obs, before);
  pm_test_confirm(obs, durable);
  ask_alive(obs, 7);
  st = stats_now();
  assert_int_equal(2, st.queued); /* the transient one was for no client */
  assert_int_equal(0, st.delivered);
  assert_int_equal(0, st.stale_acks); /* ignored, not counted */
  assert_int_equal(0, st.resumed_skipped);
  assert_int_equal(0, st.attached);
  assert_int_equal(0, st.sessions);
  assert_int_equal(1, st.observers);
  assert_int_equal(1, st.observer_sessions);
  /* The client slot was free all along. */
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  expect_event(cl, before, "Before");
  pm_test_confirm(cl, before);
  expect_event(cl, durable, "After");
  pm_test_confirm(cl, durable);
  /* Both get what comes next; the observer is not sent the queue again. */
  later = publish("Later");
  expect_event(obs, later, "Later");
  expect_event(cl, later, "Later");
  pm_test_confirm(cl, later);
  ask_alive(cl, 8);
  st = stats_now();
  assert_int_equal(3, st.delivered);
  assert_int_equal(0, st.queued);
  assert_int_equal(1, st.attached);
  close(cl);
  close(obs);
}

/* An observer that attaches after the client confirms the client's event in flight: nothing
 * is taken; the client still gets it, then the next one, only once it confirms. The observer
 * gets the next one at once. */
static void test_event_server_observer_confirmation_ignored(void **state) {
  int64_t first, second;
  pm_event_stats st;
  int obs, cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  obs = observe_raw();
  first = publish("First");
  expect_event(cl, first, "First");
  expect_event(obs, first, "First");
  pm_test_confirm(obs, first);
  ask_alive(obs, 2);
  st = stats_now();
  assert_int_equal(0, st.delivered);
  assert_int_equal(1, st.queued);
  second = publish("Second");
  expect_event(obs, second, "Second");
  pm_test_confirm(cl, first);
  expect_event(cl, second, "Second");
  pm_test_confirm(cl, second);
  ask_alive(cl, 3);
  st = stats_now();
  assert_int_equal(2, st.delivered);
  assert_int_equal(0, st.stale_acks);
  assert_int_equal(0, st.redelivered);
  close(obs);
  close(cl);
}

/* fd's next message must be Disconnect{Busy} saying message, then the end of the stream. */
static void expect_busy_saying(int fd, const char *message) {
  pm_msg *m = pm_test_recv_msg(fd, WAIT_MS);
  const char *text = NULL;
  pm_test_assert_kind(m, "Disconnect");
  assert_pm(0, pm_msg_get_string(m, "Reason", &text));
  assert_string_equal(PM_DISCONNECT_BUSY, text);
  assert_pm(0, pm_msg_get_string(m, "Message", &text));
  assert_string_equal(message, text);
  pm_msg_free(m);
  assert_true(pm_test_wait_eof(fd, WAIT_MS) >= 0);
}

/* A new connection asking to observe is told Busy, saying message. */
static void observe_refused(const char *message) {
  int fd = pm_test_connect(fx.path);
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, OBSERVE_HS));
  expect_busy_saying(fd, message);
  close(fd);
}

/* Eight observers at once, each a user of its own (one user may hold only half, tested
 * below); the ninth is told Busy at its handshake. The client slot stays free; with it taken
 * too, a newcomer is told Busy at once, as no handshake could let it in. */
static void test_event_server_observer_cap(void **state) {
  int obs[PM_EVENT_MAX_OBSERVERS_DEFAULT], fd, cl;
  (void)state;
  for (unsigned i = 0; i < PM_EVENT_MAX_OBSERVERS_DEFAULT; i++)
    obs[i] = observe_raw();
  observe_refused("too many observers");
  assert_int_equal(1, stats_now().busy_rejections);
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  fd = pm_test_connect(fx.path);
  assert_true(fd >= 0);
  pm_test_expect_disconnect(fd, "Busy", WAIT_MS);
  close(fd);
  assert_int_equal(2, stats_now().busy_rejections);
  /* A place freed is taken again. */
  close(obs[0]);
  await_observers(PM_EVENT_MAX_OBSERVERS_DEFAULT - 1);
  obs[0] = observe_raw();
  assert_int_equal(PM_EVENT_MAX_OBSERVERS_DEFAULT, stats_now().observers);
  for (unsigned i = 0; i < PM_EVENT_MAX_OBSERVERS_DEFAULT; i++)
    close(obs[i]);
  close(cl);
}

/* One user holds at most half the observer places (4 of 8), so it cannot keep another user
 * from observing (§5.11). */
#define OBSERVER_SHARE (PM_EVENT_MAX_OBSERVERS_DEFAULT / 2)
#define USER_A MADE_UP_UID
#define USER_B (MADE_UP_UID + 1)
#define USER_C (MADE_UP_UID + 2)

/* User A attaches its share of observers and its next is told Busy, saying so; user B still
 * attaches an observer and the client; with the client attached A's next is told Busy at
 * once. A place A frees is A's again. A and B together fill every place; a third user is told
 * Busy then, as the cap says. */
static void test_event_server_observer_share_per_user(void **state) {
  int a[OBSERVER_SHARE], b[OBSERVER_SHARE], cl, fd;
  int64_t id;
  (void)state;
  as_user(USER_A);
  for (unsigned i = 0; i < OBSERVER_SHARE; i++)
    a[i] = observe_raw();
  observe_refused("too many observers of this user");
  as_user(USER_B);
  b[0] = observe_raw();
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  id = publish("Shared");
  expect_event(cl, id, "Shared");
  expect_event(b[0], id, "Shared");
  for (unsigned i = 0; i < OBSERVER_SHARE; i++)
    expect_event(a[i], id, "Shared");
  pm_test_confirm(cl, id);
  as_user(USER_A);
  fd = pm_test_connect(fx.path);
  assert_true(fd >= 0);
  expect_busy_saying(fd, "another client is attached, and too many observers of this user");
  close(fd);
  close(a[0]);
  await_observers(OBSERVER_SHARE - 1 + 1); /* A's others and B's one */
  a[0] = observe_raw();
  as_user(USER_B);
  for (unsigned i = 1; i < OBSERVER_SHARE; i++)
    b[i] = observe_raw();
  assert_int_equal(PM_EVENT_MAX_OBSERVERS_DEFAULT, stats_now().observers);
  /* With the client slot free, the third user's handshake is read: the cap answers it. */
  close(cl);
  await_detached();
  as_user(USER_C);
  observe_refused("too many observers");
  assert_int_equal(3, stats_now().busy_rejections);
  assert_int_equal(1, stats_now().delivered);
  for (unsigned i = 0; i < OBSERVER_SHARE; i++) {
    close(a[i]);
    close(b[i]);
  }
}

/* A user holding its share waits for one handshake at most, while the client slot is free
 * (the one place it could still take); its next connection is told Busy at once. Another
 * user's observer attaches meanwhile, and the waiting connection becomes the client. */
static void test_event_server_observer_share_leaves_one_wait(void **state) {
  int a[OBSERVER_SHARE], waiting, fd, obs;
  int64_t id;
  pm_msg *m;
  (void)state;
  as_user(USER_A);
  for (unsigned i = 0; i < OBSERVER_SHARE; i++)
    a[i] = observe_raw();
  /* Accepted in order: waiting first, silent so far. */
  waiting = pm_test_connect(fx.path);
  assert_true(waiting >= 0);
  fd = pm_test_connect(fx.path);
  assert_true(fd >= 0);
  expect_busy_saying(fd, "too many of this user's connections waiting for their handshake");
  close(fd);
  as_user(USER_B);
  obs = observe_raw();
  assert_int_equal(0, pm_test_send_frame(waiting, "{\"Handshake\":{\"Seq\":1}}"));
  m = pm_test_recv_msg(waiting, WAIT_MS);
  pm_test_assert_kind(m, "Handshake");
  pm_msg_free(m);
  id = publish("Waited");
  expect_event(waiting, id, "Waited");
  expect_event(obs, id, "Waited");
  pm_test_confirm(waiting, id);
  ask_alive(waiting, 2);
  assert_int_equal(1, stats_now().delivered);
  assert_int_equal(OBSERVER_SHARE + 1, stats_now().observers);
  close(waiting);
  close(obs);
  for (unsigned i = 0; i < OBSERVER_SHARE; i++)
    close(a[i]);
}

/* With one observer place, a user's share is that place (half, rounded up): the one user
 * observing gets it; then another user is told Busy by the cap, and gets it once it is free. */
static void test_event_server_one_observer_place(void **state) {
  int obs;
  (void)state;
  as_user(USER_A);
  obs = observe_raw();
  observe_refused("too many observers");
  as_user(USER_B);
  observe_refused("too many observers");
  close(obs);
  await_observers(0);
  obs = observe_raw();
  assert_int_equal(1, stats_now().observers);
  close(obs);
}

/* A JSON session is sent each event as the frame the queue keeps for it: byte for byte what
 * the codec writes for the same message, with Data (escapes, non-ASCII, numbers, nesting) and
 * without; the same for an observer, and for the event again after a reconnect. */
static void test_event_server_kept_frame_is_the_encoding(void **state) {
  static const char data_text[] =
      "{\"S\":\"a\\\"b\\\\c\\n\\t/ \u00e9\u20ac\",\"N\":-42,\"R\":0.5,\"B\":true,"
      "\"Z\":null,\"A\":[1,{\"X\":[]}],\"O\":{}}";
  int64_t ids[2];
  int cl, obs;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  obs = observe_raw();
  assert_pm(0, pm_event_server_publish(fx.server, "WithData", json_loads(data_text, 0, NULL),
                                       &ids[0]));
  ids[1] = publish("Bare");
  for (int round = 0; round < 3; round++) {
    int fd = round == 1 ? obs : cl;
    for (int i = 0; i < 2; i++) {
      size_t len = 0, enc_len = 0;
      char *frame;
      uint8_t *enc = NULL;
      pm_msg *m = NULL;
      /* Heartbeats may come first: answered until the event does. */
      for (;;) {
        frame = pm_test_recv_frame(fd, WAIT_MS, &len);
        assert_non_null(frame);
        if (strncmp(frame, "{\"Event\"", 8) == 0)
          break;
        assert_pm(0, pm_msg_decode(frame, len, &m, NULL));
        pm_test_assert_kind(m, "Handshake");
        ask_alive(fd, pm_test_int_field(m, "Seq"));
        pm_msg_free(m);
        free(frame);
      }
      assert_pm(0, pm_msg_decode(frame, len, &m, NULL));
      assert_int_equal(ids[i], pm_test_int_field(m, "Id"));
      assert_pm(0, pm_msg_encode(m, PM_ENC_JSON, &enc, &enc_len));
      assert_int_equal(enc_len, len);
      assert_memory_equal(enc, frame, len);
      pm_free(enc);
      pm_msg_free(m);
      free(frame);
      /* The client confirms the first only in the last round: it is sent again meanwhile. */
      if (round == 2)
        pm_test_confirm(fd, ids[i]);
      if (round == 0)
        break;
    }
    if (round == 0) {
      close(cl);
      cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
    }
  }
  close(obs);
  close(cl);
}

/* Published from another thread to an idle client: the loop is woken and sends it at once,
 * long before the next heartbeat (which would also pump the queue) is due. */
static void test_event_server_idle_client_woken(void **state) {
  int64_t id;
  int cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  ask_alive(cl, 2); /* attached and idle: nothing was queued */
  id = publish("Wake");
  expect_event(cl, id, "Wake");
  pm_test_confirm(cl, id);
  id = publish("Again");
  expect_event(cl, id, "Again");
  pm_test_confirm(cl, id);
  close(cl);
}

/* Published on the loop thread (sent at once when the client is idle, no wake-up): the client
 * gets it; one published while that is in flight follows once it is confirmed. */
static void test_event_server_publish_on_loop_thread(void **state) {
  int64_t ids[2];
  pm_msg *m;
  int cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  for (int i = 0; i < 2; i++) {
    uint64_t deadline = pm_test_now_ms() + WAIT_MS;
    uv_async_send(&fx.publish);
    for (;;) {
      uv_mutex_lock(&seen_lock);
      ids[i] = fx.loop_ids[i];
      uv_mutex_unlock(&seen_lock);
      if (ids[i] != 0)
        break;
      assert_true(pm_test_now_ms() < deadline);
      uv_sleep(2);
    }
    assert_true(ids[i] > 0);
    if (i == 0)
      expect_event(cl, ids[0], "OnLoop");
  }
  /* The second is held back until the first is confirmed. */
  pm_test_confirm(cl, ids[0]);
  m = pm_test_next_event(cl, WAIT_MS);
  pm_test_assert_kind(m, "Event");
  assert_int_equal(ids[1], pm_test_int_field(m, "Id"));
  assert_int_equal(1, pm_test_int_field(m, "Id") - ids[0]);
  pm_msg_free(m);
  pm_test_confirm(cl, ids[1]);
  ask_alive(cl, 2);
  assert_int_equal(2, stats_now().delivered);
  assert_int_equal(0, stats_now().redelivered);
  close(cl);
}

/* A log callback that publishes on the loop thread: its client's "attached" entry sends the
 * event at once, and that send logs "sent" while the first entry is still being handled. The
 * entry the callback holds reads as it was handed over, and the nested one has the peer too
 * (the session keeps one entry with its peer and hands a copy to a nested callback). */
static void test_event_server_log_entry_kept_across_nested_entry(void **state) {
  int cl, kept;
  long long pid;
  (void)state;
  uv_mutex_lock(&seen_lock);
  fx.publish_on_attach = 1;
  uv_mutex_unlock(&seen_lock);
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  expect_event(cl, 1, "FromLog"); /* the server's first */
  pm_test_confirm(cl, 1);
  /* The event may be read before the publish in the callback has returned, or (under wine)
   * before its "sent" entry is logged. */
  for (uint64_t deadline = pm_test_now_ms() + WAIT_MS;;) {
    uv_mutex_lock(&seen_lock);
    kept = fx.attach_entry_kept;
    pid = fx.sent_pid;
    uv_mutex_unlock(&seen_lock);
    if (kept != 0 && pid != 0)
      break;
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(2);
  }
  assert_int_equal(1, kept);
  assert_int_equal((long long)getpid(), pid);
  close(cl);
}

/* An observer that connected first but has not sent its handshake yet holds no client slot:
 * a client that attaches meanwhile is the client, not told Busy; the observer's handshake then
 * makes it an observer. (The slot is settled at the handshake, never at accept.) */
static void test_event_server_slot_settled_at_handshake(void **state) {
  int64_t id;
  pm_event_stats st;
  int obs, cl;
  (void)state;
  /* Accepted before the client (connections are accepted in order), silent so far. */
  obs = pm_test_connect(fx.path);
  assert_true(obs >= 0);
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  assert_int_equal(0, pm_test_send_frame(obs, OBSERVE_HS));
  await_observers(1);
  id = publish("Both");
  expect_event(cl, id, "Both");
  expect_event(obs, id, "Both");
  pm_test_confirm(cl, id);
  ask_alive(cl, 2);
  st = stats_now();
  assert_int_equal(1, st.attached);
  assert_int_equal(1, st.delivered);
  assert_int_equal(0, st.busy_rejections);
  close(obs);
  close(cl);
}

/* A Mode the server does not know is not taken for a client's (it could consume events); an
 * observer that sends nonsense is ended as a client would be. */
static void test_event_server_unknown_mode_refused(void **state) {
  int fd;
  (void)state;
  fd = pm_test_connect(fx.path);
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1,\"Mode\":\"Peek\"}}"));
  pm_test_expect_disconnect(fd, "ProtocolError", WAIT_MS);
  close(fd);
  assert_int_equal(0, stats_now().sessions);
  fd = observe_raw();
  assert_int_equal(0, pm_test_send_frame(fd, "{\"EventConfirmation\":"));
  pm_test_expect_disconnect(fd, "ProtocolError", WAIT_MS);
  close(fd);
  await_observers(0);
}

/* At most 16 connections are turned away at once, whoever they are: with a client attached, 16
 * users of one connection each are told Busy and linger, the 17th is closed with no Disconnect
 * (one user's 4 are tested in test_event_pipe). */
static void test_event_server_turned_away_bounded(void **state) {
  enum { N = 16 };
  int away[N], fd, cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  for (int i = 0; i < N; i++) {
    away[i] = pm_test_connect(fx.path);
    assert_true(away[i] >= 0);
    assert_int_equal(0, pm_test_send_frame(away[i], "{\"Handshake\":{\"Seq\":1}}"));
    pm_test_expect_disconnect(away[i], "Busy", WAIT_MS);
  }
#ifdef _WIN32
  /* libuv ends a lingering close there once the client is idle for 50 ms (docs/windows.md):
   * once the 16 have gone, the 17th is told Busy as they were. */
  for (int i = 0; i < N; i++)
    assert_true(pm_test_wait_eof(away[i], WAIT_MS) >= 0);
#endif
  fd = pm_test_connect(fx.path);
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1}}"));
#ifdef _WIN32
  pm_test_expect_disconnect(fd, "Busy", WAIT_MS);
#else
  assert_true(pm_test_wait_eof(fd, WAIT_MS) >= 0);
#endif
  close(fd);
  for (int i = 0; i < N; i++)
    close(away[i]);
  close(cl);
}

#ifndef _WIN32 /* the flooder is a forked child */
/* Attachments tried while a flood goes on: each must succeed at its first try. */
#define FLOOD_ROUNDS 5
/* Busy answers (given or not: past their share they are closed unanswered) the flooder has had
 * before a test counts on its flood: it holds every place it may by then. */
#define FLOOD_BUSY 100

/* Starts the flooder (hold: see pm_test_flood_start) and waits until it is under way. */
static void start_flood(int hold) {
  uint64_t deadline = pm_test_now_ms() + WAIT_MS;
  fx.flooder = pm_test_flood_start(fx.path, hold, -1, -1);
  while (hold && stats_now().busy_rejections < FLOOD_BUSY) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
}

/* A client attaches, at its first try, and gets an event, FLOOD_ROUNDS times over while the
 * flooder floods; it confirms each, so the queue is empty after. */
static void attach_through_flood(void) {
  for (int round = 0; round < FLOOD_ROUNDS; round++) {
    int64_t id = publish("Round");
    int cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
    expect_event(cl, id, "Round");
    pm_test_confirm(cl, id);
    close(cl);
    await_detached();
  }
  assert_int_equal(FLOOD_ROUNDS, stats_now().sessions);
  assert_int_equal(FLOOD_ROUNDS, stats_now().delivered);
  assert_int_equal(0, stats_now().queued);
}

/* A user that connects in a loop and holds its connections silent (never a handshake) takes
 * its own places only: another user's client, with no client attached, attaches every time at
 * its first try and gets its event; the flooder is turned away all along. */
static void test_event_server_flood_keeps_no_client_out(void **state) {
  uint64_t busy;
  (void)state;
  start_flood(1);
  busy = stats_now().busy_rejections;
  attach_through_flood();
  assert_true(stats_now().busy_rejections > busy);
}

/* With a client attached, the flooder takes its own share of the Busy answers only: another
 * user's connection asking for the client slot is told Busy every time (not closed without a
 * word), and the attached client is untouched. */
static void test_event_server_flood_leaves_busy_answers(void **state) {
  int64_t id;
  int cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  start_flood(1);
  for (int round = 0; round < FLOOD_ROUNDS; round++) {
    int fd = pm_test_connect(fx.path);
    assert_true(fd >= 0);
    assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1}}"));
    pm_test_expect_disconnect(fd, "Busy", WAIT_MS);
    close(fd);
  }
  id = publish("Held");
  expect_event(cl, id, "Held");
  pm_test_confirm(cl, id);
  ask_alive(cl, 2);
  assert_int_equal(1, stats_now().sessions);
  assert_int_equal(1, stats_now().delivered);
  close(cl);
}

/* Connections closed as soon as made, in a loop, keep no client out, not even one of the same
 * user: each frees its place as soon as the server reads its end, so they do not pile up. */
static void test_event_server_same_user_flood_keeps_no_client_out(void **state) {
  (void)state;
  start_flood(0);
  attach_through_flood();
}
#endif

/* The events a client of the library was handed, in order. */
typedef struct seen_events {
  int64_t ids[TOTAL];
  int count;
} seen_events;

static void on_seen(const pm_event *ev, void *data) {
  seen_events *s = data;
  uv_mutex_lock(&seen_lock);
  if (s->count < TOTAL)
    s->ids[s->count++] = ev->id;
  uv_mutex_unlock(&seen_lock);
}

static int seen_in(const seen_events *s) {
  int n;
  uv_mutex_lock(&seen_lock);
  n = s->count;
  uv_mutex_unlock(&seen_lock);
  return n;
}

static void await_seen(const seen_events *s, int n) {
  uint64_t deadline = pm_test_now_ms() + 30000;
  while (seen_in(s) < n) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(2);
  }
}

/* A client of the library (an observer when observe is set) that records what it is handed
 * in *got. */
static pm_event_client *start_seen_client(seen_events *got, bool observe) {
  pm_event_client_options opts;
  pm_event_client *c = NULL;
  memset(&opts, 0, sizeof(opts));
  opts.observe = observe;
  opts.on_event = on_seen;
  opts.data = got;
  assert_pm(0, pm_event_client_start(fx.path, &opts, &c));
  return c;
}

/* The server's log said an observer was detached for reason. */
static void assert_observer_gone(const char *reason) {
  uv_mutex_lock(&seen_lock);
  assert_non_null(strstr(fx.observer_gone, reason));
  uv_mutex_unlock(&seen_lock);
}

/* The client's delivery is the same with observers attached (the library's, observe = true):
 * every event, in order, confirmed; and each observer sees them all too. */
static void test_event_server_observers_leave_client_delivery(void **state) {
  enum { OBSERVERS = 2 };
  static seen_events got[OBSERVERS];
  pm_event_client_options opts;
  pm_event_client *observers[OBSERVERS], *client;
  uv_thread_t threads[PUBLISHERS];
  pm_event_stats st;
  (void)state;
  memset(got, 0, sizeof(got));
  for (int i = 0; i < OBSERVERS; i++)
    observers[i] = start_seen_client(&got[i], true);
  await_observers(OBSERVERS);
  memset(&opts, 0, sizeof(opts));
  opts.on_event = on_event;
  assert_pm(0, pm_event_client_start(fx.path, &opts, &client));
  for (int t = 0; t < PUBLISHERS; t++)
    assert_int_equal(0, uv_thread_create(&threads[t], publisher, (void *)(intptr_t)t));
  for (int t = 0; t < PUBLISHERS; t++)
    uv_thread_join(&threads[t]);
  for (int i = 0; i < OBSERVERS; i++)
    await_seen(&got[i], TOTAL);
  for (uint64_t deadline = pm_test_now_ms() + 30000; seen() < TOTAL;) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
  pm_event_client_stop(client);
  for (int i = 0; i < OBSERVERS; i++)
    pm_event_client_stop(observers[i]);
  assert_false(order_broken);
  for (int i = 0; i < TOTAL; i++) {
    assert_int_equal(i + 1, seen_ids[i]);
    for (int o = 0; o < OBSERVERS; o++)
      assert_int_equal(i + 1, got[o].ids[i]);
  }
  st = stats_now();
  assert_true(st.delivered >= TOTAL - 1); /* the last confirmation may still be in transit */
  assert_int_equal(0, st.stale_acks);
  assert_int_equal(0, st.redelivered);
  assert_int_equal(1, st.sessions);
  assert_int_equal(OBSERVERS, st.observer_sessions);
}

/* Events of this size fill the stalled observer's pipe quickly. */
#define BIG_EVENT (16 * 1024)
/* What the pipe itself may hold for a reader that does not read, beyond the server's write
 * queue: a few hundred KiB for a Unix socket (net.core.wmem_default), 64 KiB for a named
 * pipe; 4 MiB is far above either and far below what an unbounded queue would reach here. */
#define PIPE_ALLOWANCE ((size_t)4 * 1024 * 1024)
#define BIG_EVENTS_MAX (int)((OBSERVER_BOUND + PIPE_ALLOWANCE) / BIG_EVENT + 8)

static int64_t publish_big(int n) {
  static char blob[BIG_EVENT + 1];
  int64_t id = 0;
  memset(blob, 'a', BIG_EVENT);
  assert_pm(0, pm_event_server_publish(fx.server, "Big", json_pack("{s:i, s:s}", "N", n, "S", blob),
                                       &id));
  return id;
}

/* Counted when cut; its log entry comes once the Disconnect is out or abandoned. */
static int observer_cut_off(void) { return stats_now().slow_observers > 0; }

/* An observer that stops reading is cut off (TooSlow) once what it left unread passes the
 * bound, so it costs the server bounded memory; the client meanwhile gets every event in
 * order, and goes on getting them. */
static void test_event_server_slow_observer_cut_off(void **state) {
  static seen_events got;
  pm_event_client *client;
  pm_msg *m;
  const char *reason = NULL;
  int64_t first = 0, id;
  int obs, published = 0, read = 0;
  (void)state;
  memset(&got, 0, sizeof(got));
  client = start_seen_client(&got, false);
  obs = observe_raw();
  /* One at a time, each handed to the client before the next: the server has written each to
   * the observer by then (one wake sends to both), so the cut comes within an event of the
   * bound being passed. */
  while (!observer_cut_off()) {
    assert_true(published < BIG_EVENTS_MAX);
    id = publish_big(published);
    if (first == 0)
      first = id;
    await_seen(&got, ++published);
  }
  /* Not before the bound could be passed: the pipe's own buffer comes on top of it. */
  assert_true((size_t)published * BIG_EVENT >= OBSERVER_BOUND);
  assert_int_equal(1, stats_now().slow_observers);
  /* What it was sent, in order, then the reason (within the acknowledgement timeout). The
   * heartbeats among them go unanswered: the service has stopped reading. */
  for (;;) {
    m = pm_test_recv_msg(obs, WAIT_MS);
    assert_non_null(m);
    if (strcmp(pm_msg_kind(m), "Handshake") == 0) {
      pm_msg_free(m);
      continue;
    }
    if (strcmp(pm_msg_kind(m), "Event") != 0)
      break;
    assert_int_equal(first + read, pm_test_int_field(m, "Id"));
    read++;
    pm_msg_free(m);
  }
  pm_test_assert_kind(m, "Disconnect");
  assert_pm(0, pm_msg_get_string(m, "Reason", &reason));
  assert_string_equal("TooSlow", reason);
  pm_msg_free(m);
  assert_true(pm_test_wait_eof(obs, WAIT_MS) >= 0);
  close(obs);
  assert_true(read <= published);
  await_observers(0);
  assert_observer_gone("TooSlow");
  /* The client goes on. */
  for (int i = 0; i < 20; i++)
    publish_big(published + i);
  await_seen(&got, published + 20);
  pm_event_client_stop(client);
  for (int i = 0; i < published + 20; i++)
    assert_int_equal(first + i, got.ids[i]);
  assert_int_equal(0, stats_now().observers);
}

/* Observers get heartbeats like the client, and one that stops answering is dropped after the
 * acknowledgement timeout (2000 ms here). */
static void test_event_server_observer_heartbeat(void **state) {
  pm_msg *m;
  uint64_t t0;
  int obs;
  (void)state;
  obs = observe_raw();
  t0 = pm_test_now_ms();
  m = pm_test_recv_msg(obs, WAIT_MS);
  pm_test_assert_kind(m, "Handshake");
  /* Early by a timer's slack at most; late by less than the 1000 ms default would be. */
  assert_ms_within("the first heartbeat", pm_test_now_ms() - t0, FAST_HEARTBEAT_MS - 50,
                   FAST_HEARTBEAT_MS + pm_test_margin_ms(600));
  assert_int_equal(1, pm_test_int_field(m, "Seq"));
  pm_msg_free(m);
  assert_int_equal(0, pm_test_send_frame(obs, "{\"Handshake\":{\"Seq\":1}}"));
  m = pm_test_recv_msg(obs, WAIT_MS);
  t0 = pm_test_now_ms();
  pm_test_assert_kind(m, "Handshake");
  assert_int_equal(2, pm_test_int_field(m, "Seq"));
  pm_msg_free(m);
  pm_test_expect_disconnect(obs, "HeartbeatTimeout", WAIT_MS);
  assert_ms_within("HeartbeatTimeout", pm_test_now_ms() - t0, 2000 - 50,
                   2000 + pm_test_margin_ms(1000));
  close(obs);
  assert_int_equal(1, stats_now().heartbeat_failures);
  assert_observer_gone("HeartbeatTimeout");
}

/* A confirmation the store cannot write is counted and holds nothing up: the next event is
 * delivered. The confirmed events stay stored, so after a restart they are queued again: a
 * failing store errs towards delivering twice, never towards losing. */
static void test_event_server_store_failure_keeps_confirmed_events(void **state) {
  char path[160];
  int64_t id;
  uint64_t deadline;
  pm_msg *m;
  int fd;
  (void)state;
  assert_pm(0, pm_event_server_publish(fx.server, "Saved", json_pack("{s:i}", "N", 1), &id));
  assert_pm(0, pm_event_server_publish(fx.server, "Saved", json_pack("{s:i}", "N", 2), NULL));
  fd = pm_test_event_attach(fx.path, NULL, 5000, NULL);
  for (int64_t i = id; i < id + 2; i++) {
    m = pm_test_next_event(fd, 5000);
    pm_test_assert_kind(m, "Event");
    assert_int_equal(i, pm_test_int_field(m, "Id"));
    pm_msg_free(m);
    pm_test_confirm(fd, i);
  }
  deadline = pm_test_now_ms() + 5000;
  while (stats_now().delivered < 2) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
  close(fd);
  assert_int_equal(0, stats_now().queued);
  assert_int_equal(2, stats_now().store_errors);

  stop_server();
  assert_int_equal(0, uv_loop_close(&fx.loop));
  uv_sem_destroy(&fx.ready);
  pm_event_store_close(fx.store);
  snprintf(path, sizeof(path), "%s/events.db", fx.dir);
  assert_pm(0, pm_event_store_open(path, &fx.store));
  fx.opts.store = fx.store;
  fx.stopped = 0;
  start_server();
  assert_int_equal(2, stats_now().queued);
}

/* An event the client does not read ends the session at the write's deadline: the
 * acknowledgement timeout starts only once the event is written (publish sends a write that
 * completes at once straight to it). */
static void test_event_server_event_write_deadline(void **state) {
  /* Far more than a pipe's buffer takes, so the write waits for a reader that never comes. */
  static const size_t big = (size_t)8 * 1024 * 1024;
  char *blob = malloc(big + 1);
  uint64_t start, waited;
  int fd;
  (void)state;
  assert_non_null(blob);
  memset(blob, 'a', big);
  blob[big] = '\0';
  fd = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  assert_true(fd >= 0);
  while (!stats_now().attached)
    uv_sleep(5);
  start = pm_test_now_ms();
  assert_pm(0, pm_event_server_publish(fx.server, "Big", json_pack("{s:s}", "S", blob), NULL));
  free(blob);
  while (stats_now().ack_failures == 0 && pm_test_now_ms() - start < (uint64_t)WAIT_MS)
    uv_sleep(5);
  waited = pm_test_now_ms() - start;
  assert_int_equal(1, stats_now().ack_failures);
  /* Not before the deadline (less the loop's clock, cached up to an iteration before the
   * timer started: 50 ms is plenty), and long before the acknowledgement timeout. */
  assert_true(waited >= WRITE_DEADLINE_MS - 50);
  assert_true(waited < (uint64_t)WAIT_MS);
  close(fd);
}

/* ---- parking: an idle client's heartbeat answers are read at the heartbeat timer ---------- */

static void expect_heartbeat(int fd, int64_t seq) {
  pm_msg *m = pm_test_recv_msg(fd, WAIT_MS);
  pm_test_assert_kind(m, "Handshake");
  assert_int_equal(seq, pm_test_int_field(m, "Seq"));
  pm_msg_free(m);
}

static void answer_heartbeat(int fd, int64_t seq) {
  char buf[64];
  snprintf(buf, sizeof(buf), "{\"Handshake\":{\"Seq\":%lld}}", (long long)seq);
  assert_int_equal(0, pm_test_send_frame(fd, buf));
}

#ifndef _WIN32 /* a named pipe is never parked: libuv's overlapped reads own it */
static unsigned long rounds_now(void) {
  unsigned long n;
  uv_mutex_lock(&seen_lock);
  n = fx.rounds;
  uv_mutex_unlock(&seen_lock);
  return n;
}

#define PARKED_BEATS 8
/* A client answers this long after each heartbeat: a loop that watched for the answer would
 * be asleep again by then, and wake for it. */
#define ANSWER_DELAY_MS 30

/* An idle client costs the loop one round per heartbeat (200 ms here, the acknowledgement
 * timeout 2000 ms): the answer, already in, is read when the next heartbeat is due, instead of
 * waking the loop when it arrives. The session stays up. */
static void test_event_server_idle_one_round_per_heartbeat(void **state) {
  unsigned long r0, r1;
  int cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  expect_heartbeat(cl, 1);
  uv_sleep(ANSWER_DELAY_MS);
  answer_heartbeat(cl, 1);
  r0 = rounds_now();
  for (int64_t seq = 2; seq < 2 + PARKED_BEATS; seq++) {
    expect_heartbeat(cl, seq);
    uv_sleep(ANSWER_DELAY_MS);
    answer_heartbeat(cl, seq);
  }
  r1 = rounds_now();
  /* One per heartbeat, and a little slack for a timer that runs a round early; waking for
   * every answer as well would be twice as many. */
  assert_in_range(r1 - r0, PARKED_BEATS - 1, PARKED_BEATS + 3);
  assert_int_equal(0, stats_now().heartbeat_failures);
  close(cl);
}
#endif

/* A parked client that hangs up is detached at once, not at the next heartbeat (1000 ms). */
static void test_event_server_parked_hangup_at_once(void **state) {
  uint64_t t0, waited;
  int cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  expect_heartbeat(cl, 1);
  answer_heartbeat(cl, 1);
  uv_sleep(50); /* parked now, the answer not read yet */
  assert_true(stats_now().attached);
  t0 = pm_test_now_ms();
  close(cl);
  while (stats_now().attached && pm_test_now_ms() - t0 < (uint64_t)WAIT_MS)
    uv_sleep(2);
  waited = pm_test_now_ms() - t0;
  assert_false(stats_now().attached);
  assert_true(waited < LONG_HEARTBEAT_MS / 2);
}

/* An event published to a parked client is not held until the next heartbeat (1000 ms): one
 * published after the answer came goes out at once, one published before it as soon as it
 * comes. */
static void test_event_server_parked_event_not_held(void **state) {
  uint64_t t0;
  int64_t id;
  int cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  expect_heartbeat(cl, 1);
  answer_heartbeat(cl, 1);
  uv_sleep(50);
  t0 = pm_test_now_ms();
  id = publish("AfterAnswer");
  expect_event(cl, id, "AfterAnswer");
  assert_true(pm_test_now_ms() - t0 < LONG_HEARTBEAT_MS / 2);
  pm_test_confirm(cl, id);
  expect_heartbeat(cl, 2);
  id = publish("BeforeAnswer"); /* waits for the answer (§5.3) */
  uv_sleep(50);
  t0 = pm_test_now_ms();
  answer_heartbeat(cl, 2);
  expect_event(cl, id, "BeforeAnswer");
  assert_true(pm_test_now_ms() - t0 < LONG_HEARTBEAT_MS / 2);
  pm_test_confirm(cl, id);
  assert_int_equal(0, stats_now().heartbeat_failures);
  close(cl);
}

/* An acknowledgement timeout (300 ms) shorter than the heartbeat (1000 ms): heartbeats keep
 * their interval, and an unanswered one ends the session at the timeout, not at the next
 * heartbeat. */
static void test_event_server_parked_short_ack(void **state) {
  uint64_t t1, t2;
  int cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  expect_heartbeat(cl, 1);
  t1 = pm_test_now_ms();
  answer_heartbeat(cl, 1);
  expect_heartbeat(cl, 2);
  t2 = pm_test_now_ms();
  assert_ms_within("the next heartbeat", t2 - t1, LONG_HEARTBEAT_MS - 50,
                   LONG_HEARTBEAT_MS + pm_test_margin_ms(600));
  pm_test_expect_disconnect(cl, "HeartbeatTimeout", WAIT_MS);
  assert_ms_within("HeartbeatTimeout", pm_test_now_ms() - t2, SHORT_ACK_MS - 50,
                   SHORT_ACK_MS + pm_test_margin_ms(500));
  assert_int_equal(1, stats_now().heartbeat_failures);
  close(cl);
}

/* Stale confirmations a parked client sends before its answer: more than a tick reads. */
#define STALE_ACKS 700

/* An answer that came before the deadline behind more bytes than the tick reads (about
 * 20 KiB of stale confirmations here) still counts: the session stays up. */
static void test_event_server_parked_answer_behind_much_kept(void **state) {
  static const char stale[] = "{\"EventConfirmation\":{\"Id\":999}}";
  uint8_t frame[4 + sizeof(stale) - 1];
  char *burst;
  size_t len = sizeof(frame);
  int cl;
  (void)state;
  frame[0] = frame[1] = frame[2] = 0;
  frame[3] = (uint8_t)(sizeof(stale) - 1);
  memcpy(frame + 4, stale, sizeof(stale) - 1);
  burst = malloc(STALE_ACKS * len);
  assert_non_null(burst);
  for (int i = 0; i < STALE_ACKS; i++)
    memcpy(burst + (size_t)i * len, frame, len);
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  expect_heartbeat(cl, 1);
  answer_heartbeat(cl, 1);
  expect_heartbeat(cl, 2);
  assert_int_equal(0, pm_test_send_all(cl, burst, STALE_ACKS * len));
  answer_heartbeat(cl, 2);
  free(burst);
  expect_heartbeat(cl, 3);
  assert_int_equal(0, stats_now().heartbeat_failures);
  assert_int_equal(STALE_ACKS, stats_now().stale_acks);
  close(cl);
}

/* An acknowledgement timeout (2000 ms) longer than the heartbeat (200 ms): an answer that
 * misses the next heartbeat's time but not the timeout keeps the session. */
static void test_event_server_parked_late_answer_kept(void **state) {
  int cl;
  (void)state;
  cl = pm_test_event_attach(fx.path, NULL, WAIT_MS, NULL);
  expect_heartbeat(cl, 1);
  uv_sleep(2 * FAST_HEARTBEAT_MS);
  answer_heartbeat(cl, 1);
  expect_heartbeat(cl, 2);
  answer_heartbeat(cl, 2);
  ask_alive(cl, 7);
  assert_int_equal(0, stats_now().heartbeat_failures);
  close(cl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_event_server_concurrent_publishers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_publish_validates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_refused_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_publish_after_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_start_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_05_publish_refuses_unencodable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_log_entry_kept_across_nested_entry,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_publish_verdict_is_the_encoders, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_server_event_write_deadline, setup_write_deadline,
                                      teardown),
      cmocka_unit_test_setup_teardown(hardening_05_unencodable_head_dropped,
                                      setup_unencodable_store, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_store_failure_keeps_confirmed_events,
                                      setup_undeletable_store, teardown),
      cmocka_unit_test_setup_teardown(hardening_15_not_authorized_reaches_writing_client, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(hardening_15_refused_peers_bounded, setup_each_own_user,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_server_turned_away_bounded, setup_each_own_user,
                                      teardown),
#ifndef _WIN32
      cmocka_unit_test_setup_teardown(test_event_server_flood_keeps_no_client_out,
                                      setup_flooded_by_other_user, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_flood_leaves_busy_answers,
                                      setup_flooded_by_other_user, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_same_user_flood_keeps_no_client_out, setup,
                                      teardown),
#endif
      cmocka_unit_test_setup_teardown(test_event_server_observer_before_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_observer_confirmation_ignored, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_server_observer_cap, setup_each_own_user,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_server_observer_share_per_user,
                                      setup_chosen_users, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_observer_share_leaves_one_wait,
                                      setup_chosen_users, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_one_observer_place,
                                      setup_chosen_users_one_observer, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_idle_client_woken, setup_slow_heartbeat,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_server_publish_on_loop_thread, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_kept_frame_is_the_encoding, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_server_slot_settled_at_handshake, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_server_unknown_mode_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_observers_leave_client_delivery, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_server_slow_observer_cut_off,
                                      setup_small_observer_bound, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_observer_heartbeat, setup_fast_heartbeat,
                                      teardown),
#ifndef _WIN32
      cmocka_unit_test_setup_teardown(test_event_server_idle_one_round_per_heartbeat,
                                      setup_fast_heartbeat, teardown),
#endif
      cmocka_unit_test_setup_teardown(test_event_server_parked_hangup_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_parked_event_not_held, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_parked_short_ack, setup_short_ack,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_event_server_parked_late_answer_kept,
                                      setup_fast_heartbeat, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_parked_answer_behind_much_kept,
                                      setup_short_ack, teardown),
  };
  /* The server writes to clients that may be gone, as an application's would. */
  pm_test_ignore_sigpipe();
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
