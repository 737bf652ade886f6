/* The event server of libpipemsg in one process: server on a loop thread, publishers on
 * threads of their own, the library's event client as the consumer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

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
  int publish_rc;       /* what that publish returned */
  int stopped;          /* the loop thread was joined */
  char dropped[PM_REASON_MAX]; /* the reason of the last "dropped" log entry */
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

static void on_stop(uv_async_t *a) {
  fixture *f = a->data;
  pm_event_server_close(f->server, NULL, NULL);
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
  if (strcmp(e->what, "dropped") == 0) {
    uv_mutex_lock(&seen_lock);
    snprintf(f->dropped, sizeof(f->dropped), "%s", e->reason);
    uv_mutex_unlock(&seen_lock);
  }
}

static void start_server(void) {
  fx.opts.authorize = authorize;
  fx.opts.log = on_log;
  fx.opts.data = &fx;
  fx.opts.ack_timeout_ms = 2000;
  assert_int_equal(0, uv_loop_init(&fx.loop));
  uv_async_init(&fx.loop, &fx.stop, on_stop);
  fx.stop.data = &fx;
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

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof(fx));
  uv_mutex_init(&seen_lock);
  pm_test_dir_new(fx.dir, sizeof(fx.dir));
  pm_test_pipe_path(fx.dir, "evt", fx.path, sizeof(fx.path));
  start_server();
  return 0;
}

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

/* A store holding what a version without the publish check could write: a StateChanged
 * event whose Location XML cannot carry, then an ordinary event. */
static int setup_unencodable_store(void **state) {
  char path[160];
  (void)state;
  memset(&fx, 0, sizeof(fx));
  uv_mutex_init(&seen_lock);
  pm_test_dir_new(fx.dir, sizeof(fx.dir));
  pm_test_pipe_path(fx.dir, "evt", fx.path, sizeof(fx.path));
  snprintf(path, sizeof(path), "%s/events.db", fx.dir);
  assert_pm(0, pm_event_store_open(path, &fx.store)); /* makes the schema */
  pm_event_store_close(fx.store);
  store_exec("INSERT INTO events(id, type, time, data, marker) VALUES"
             "(1, 'StateChanged', '2026-11-30T12:00:00.000Z',"
             " '{\"State\":\"Connecting\",\"Location\":\"de\\u0001\"}', 0),"
             "(2, 'Saved', '2026-11-30T12:00:01.000Z', '{\"N\":2}', 0);");
  assert_pm(0, pm_event_store_open(path, &fx.store));
  fx.opts.store = fx.store;
  start_server();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  stop_server();
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
 * from allowed clients' Busy answers: the 9th is closed with no Disconnect. */
static void hardening_15_refused_peers_bounded(void **state) {
  enum { N = 9 };
  int fds[N];
  (void)state;
  fx.refuse = 1;
  /* All connect before any is answered: they linger together (1000 ms handshake timeout). */
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_event_server_concurrent_publishers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_publish_validates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_refused_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_publish_after_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_server_start_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_05_publish_refuses_unencodable, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_05_unencodable_head_dropped,
                                      setup_unencodable_store, teardown),
      cmocka_unit_test_setup_teardown(hardening_15_not_authorized_reaches_writing_client, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(hardening_15_refused_peers_bounded, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
