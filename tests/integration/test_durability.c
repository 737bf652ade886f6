/* With --data-dir, durable events survive kill -9 of the service: after a restart they are
 * delivered in order, with the same ids, under the same epoch. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "testutil.h"

#define SLACK_MS 5000

static pm_test_service svc;
static char data_dir[160];
static const char *args[] = {"--test-commands", "--ack-timeout-ms", "300", "--data-dir",
                             data_dir, NULL};

static int setup(void **state) {
  (void)state;
  memset(&svc, 0, sizeof(svc));
  pm_test_service_start(&svc, NULL); /* only for its directory; restarted below */
  assert_int_equal(0, pm_test_service_stop(&svc));
  snprintf(data_dir, sizeof(data_dir), "%s/data", svc.dir);
  pm_test_service_restart(&svc, args);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pm_test_service_cleanup(&svc);
  return 0;
}

/* The small file system of the disk-full test, mounted by the test itself (it needs root). */
static char small_fs[160];
static int small_fs_mounted;

static const char *small_fs_args[] = {"--test-commands", "--data-dir", small_fs, NULL};

/* Restarts the service with its data dir on a fresh 4 MiB tmpfs (skips unless root). */
static void restart_on_small_fs(void) {
  if (geteuid() != 0)
    pm_test_skip("mounting a small tmpfs needs root");
  assert_int_equal(0, pm_test_service_stop(&svc));
  snprintf(small_fs, sizeof(small_fs), "%s/small", svc.dir);
  assert_int_equal(0, mkdir(small_fs, 0700));
  if (mount("tmpfs", small_fs, "tmpfs", 0, "size=4m,mode=0700") < 0)
    pm_test_skip("cannot mount a tmpfs: %s", strerror(errno));
  small_fs_mounted = 1;
  pm_test_service_restart(&svc, small_fs_args);
}

static int teardown_small_fs(void **state) {
  (void)state;
  if (svc.pid > 0)
    pm_test_service_stop(&svc);
  if (small_fs_mounted && umount2(small_fs, MNT_DETACH) == 0)
    small_fs_mounted = 0;
  pm_test_service_cleanup(&svc);
  return 0;
}

static void kill9(void) {
  kill(svc.pid, SIGKILL);
  assert_int_equal(svc.pid, waitpid(svc.pid, NULL, 0));
  svc.pid = 0;
}

static json_t *call_data(const char *command, json_t *params) {
  json_t *data = NULL;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, command, params, &data));
  return data;
}

static int64_t epoch_now(void) {
  json_t *d = call_data("GetStats", NULL);
  int64_t e = json_integer_value(json_object_get(json_object_get(d, "Events"), "Epoch"));
  json_decref(d);
  return e;
}

/* Attaches and takes the next n events' ids and N fields, confirming each (all but the last
 * unless confirm_all). Returns the open connection. */
static int attach_and_take(int n, int64_t *ids, int64_t *ns, int confirm_all) {
  int fd = pm_test_event_attach(svc.event_pipe, NULL, SLACK_MS, NULL);
  for (int i = 0; i < n; i++) {
    pm_msg *m = pm_test_next_event(fd, SLACK_MS);
    pm_test_assert_kind(m, "Event");
    ids[i] = pm_test_int_field(m, "Id");
    assert_pm(0, pm_tree_get_int(json_object_get(pm_msg_fields(m), "Data"), "N", &ns[i]));
    pm_msg_free(m);
    if (confirm_all || i < n - 1)
      pm_test_confirm(fd, ids[i]);
  }
  return fd;
}

static void emit(int n) {
  for (int i = 0; i < n; i++) {
    json_t *d = call_data("EmitEvent", json_pack("{s:s, s:{s:i}}", "Type", "Saved", "Data", "N", i));
    json_decref(d);
  }
}

static void test_durability_survives_kill9(void **state) {
  int64_t epoch, ids[10], ns[10], again_ids[10], again_ns[10];
  int fd;
  (void)state;
  epoch = epoch_now();
  emit(10);
  /* A client takes three, confirms two: the third is in flight when the service dies. */
  fd = attach_and_take(3, ids, ns, 0);
  kill9();
  close(fd);
  pm_test_service_restart(&svc, args);
  assert_int_equal(epoch, epoch_now());
  fd = attach_and_take(8, again_ids, again_ns, 1);
  close(fd);
  /* Everything not confirmed, in order, same ids: the in-flight one first. */
  assert_int_equal(ids[2], again_ids[0]);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(ids[0] + 2 + i, again_ids[i]);
    assert_int_equal(2 + i, again_ns[i]);
  }
}

static void test_durability_ids_never_reused(void **state) {
  int64_t first, after;
  json_t *d;
  (void)state;
  d = call_data("EmitEvent", json_pack("{s:s, s:i}", "Type", "X", "Count", 5));
  first = json_integer_value(json_object_get(d, "LastId"));
  json_decref(d);
  /* TrafficChanged with no client is not stored, but it used an id too. */
  d = call_data("EmitEvent", json_pack("{s:s, s:i}", "Type", "TrafficChanged", "Count", 3));
  first = json_integer_value(json_object_get(d, "LastId"));
  json_decref(d);
  kill9();
  pm_test_service_restart(&svc, args);
  d = call_data("EmitEvent", json_pack("{s:s}", "Type", "X"));
  after = json_integer_value(json_object_get(d, "FirstId"));
  json_decref(d);
  assert_true(after > first);
}

static void test_durability_overflow_marker_survives(void **state) {
  static const char *small[] = {"--test-commands", "--queue-max-events", "3", "--data-dir",
                                data_dir, NULL};
  pm_msg *m;
  int fd;
  json_t *d;
  (void)state;
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, small);
  d = call_data("EmitEvent", json_pack("{s:s, s:i, s:{s:i}}", "Type", "Y", "Count", 5, "Data", "N",
                                       1));
  json_decref(d);
  kill9();
  pm_test_service_restart(&svc, small);
  fd = pm_test_connect(svc.event_pipe);
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1}}"));
  m = pm_test_recv_msg(fd, SLACK_MS);
  pm_msg_free(m);
  m = pm_test_recv_msg(fd, SLACK_MS);
  assert_non_null(m);
  assert_non_null(strstr(json_string_value(json_object_get(pm_msg_fields(m), "Type")),
                         "EventsLost"));
  assert_int_equal(2, json_integer_value(json_object_get(
                          json_object_get(pm_msg_fields(m), "Data"), "Count")));
  pm_msg_free(m);
  close(fd);
}

static void test_durability_sigterm_keeps_queue(void **state) {
  int64_t ids[3], ns[3], again_ids[3], again_ns[3];
  int fd;
  (void)state;
  emit(3);
  fd = attach_and_take(1, ids, ns, 0);
  assert_int_equal(0, pm_test_service_stop(&svc)); /* event 1 in flight */
  close(fd);
  pm_test_service_restart(&svc, args);
  fd = attach_and_take(3, again_ids, again_ns, 1);
  close(fd);
  assert_int_equal(ids[0], again_ids[0]);
  assert_int_equal(0, again_ns[0]);
  assert_int_equal(2, again_ns[2]);
}

/* Writes zeros to path until the file system is full; returns the bytes written. */
static long fill_disk(const char *path) {
  static char chunk[4096];
  long total = 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  for (;;) {
    ssize_t n = write(fd, chunk, sizeof(chunk));
    if (n <= 0) {
      assert_true(n < 0 && errno == ENOSPC);
      break;
    }
    total += n;
  }
  close(fd);
  return total;
}

/* One EmitEvent of a Saved event carrying N; returns its id, or 0 when the answer was Error
 * (which must say why). */
static int64_t emit_saved(int n) {
  json_t *d = NULL;
  const char *result =
      pm_test_call(svc.command_pipe, "EmitEvent",
                   json_pack("{s:s, s:{s:i}}", "Type", "Saved", "Data", "N", n), &d);
  int64_t id = 0;
  if (strcmp(result, "Ok") == 0)
    id = json_integer_value(json_object_get(d, "FirstId"));
  else
    assert_string_equal("Error", result);
  json_decref(d);
  return id;
}

/* With the data dir's disk full, every EmitEvent used to answer Ok while the store kept
 * nothing, and the id reservation was lost too, so a restart handed out ids clients had
 * already seen, under the same epoch. Now a publish the store cannot keep answers Error, and
 * an id is only handed out once the block holding it is on disk. */
static void hardening_04_disk_full(void **state) {
  char filler[200];
  int64_t epoch, max_ok = 0, ok_ids[64], ok_ns[64], got_ids[64], got_ns[64];
  int n_ok = 0, n_err = 0, fd;
  json_t *d;
  (void)state;
  restart_on_small_fs();
  epoch = epoch_now();
  /* Transient events with no client are never stored, but they take ids: 1025 of them use up
   * the first reserved block, so the next publish must reserve another. */
  d = call_data("EmitEvent", json_pack("{s:s, s:i}", "Type", "TrafficChanged", "Count", 1025));
  max_ok = json_integer_value(json_object_get(d, "LastId"));
  json_decref(d);
  assert_int_equal(1025, max_ok);
  snprintf(filler, sizeof(filler), "%s/filler", small_fs);
  assert_true(fill_disk(filler) > 0);

  /* The reservation alone cannot be written: refused. */
  assert_string_equal("Error", pm_test_call(svc.command_pipe, "EmitEvent",
                                            json_pack("{s:s}", "Type", "TrafficChanged"), NULL));
  for (int i = 0; i < 20; i++) {
    int64_t id = emit_saved(i);
    if (id == 0) {
      n_err++;
      continue;
    }
    ok_ids[n_ok] = id;
    ok_ns[n_ok++] = i;
    if (id > max_ok)
      max_ok = id;
  }
  assert_true(n_err > 0);
  pm_test_await_log(&svc, "error: cannot publish EmitEvent's event");
  /* The service's own StateChanged goes through the same store. */
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  pm_test_await_log(&svc, "error: cannot publish StateChanged");
  assert_true(pm_test_stat(svc.command_pipe, "Events", "StoreErrors") > 0);

  /* Room again: publishing works, and after a kill every event answered Ok is there. */
  assert_int_equal(0, unlink(filler));
  for (int i = 100; i < 103; i++) {
    int64_t id = emit_saved(i);
    assert_true(id > max_ok);
    ok_ids[n_ok] = id;
    ok_ns[n_ok++] = i;
    max_ok = id;
  }
  kill9();
  pm_test_service_restart(&svc, small_fs_args);
  fd = pm_test_event_attach(svc.event_pipe, NULL, SLACK_MS, NULL);
  for (int got = 0; got < n_ok;) {
    pm_msg *m = pm_test_next_event(fd, SLACK_MS);
    const char *type = NULL;
    pm_test_assert_kind(m, "Event");
    got_ids[got] = pm_test_int_field(m, "Id");
    assert_pm(0, pm_msg_get_string(m, "Type", &type));
    if (strcmp(type, "Saved") == 0) {
      assert_pm(0, pm_tree_get_int(json_object_get(pm_msg_fields(m), "Data"), "N", &got_ns[got]));
      got++;
    }
    pm_test_confirm(fd, pm_test_int_field(m, "Id"));
    pm_msg_free(m);
  }
  close(fd);
  for (int i = 0; i < n_ok; i++) {
    assert_int_equal(ok_ids[i], got_ids[i]);
    assert_int_equal(ok_ns[i], got_ns[i]);
  }
  /* No id is handed out twice in an epoch. */
  if (epoch_now() == epoch)
    assert_true(emit_saved(200) > max_ok);
}

/* One EmitEvent of a Saved event carrying N and a 2 KiB Pad; its id, or 0 for Error. */
static int64_t emit_padded(int n) {
  char pad[2049];
  json_t *d = NULL;
  const char *result;
  int64_t id = 0;
  memset(pad, 'p', sizeof(pad) - 1);
  pad[sizeof(pad) - 1] = '\0';
  result = pm_test_call(svc.command_pipe, "EmitEvent",
                        json_pack("{s:s, s:{s:i, s:s}}", "Type", "Saved", "Data", "N", n, "Pad",
                                  pad),
                        &d);
  if (strcmp(result, "Ok") == 0)
    id = json_integer_value(json_object_get(d, "FirstId"));
  else
    assert_string_equal("Error", result);
  json_decref(d);
  return id;
}

/* The disk fills while a client is attached and events are published and confirmed: the
 * publishes the store can no longer keep answer Error, every one answered Ok reaches the
 * client, commands are still answered, and publishing works again once space is freed, without
 * a restart. After kill -9 only events answered Ok come back (those whose confirmation could
 * not be written), and no id is handed out twice. */
static void test_durability_disk_fills_while_delivering(void **state) {
  enum { ROUNDS = 80, LEFT = 64 * 1024 };
  int64_t ok_ids[ROUNDS + 3], max_ok = 0;
  int n_ok = 0, n_err = 0, fd;
  char filler[200];
  long size;
  (void)state;
  restart_on_small_fs();
  fd = pm_test_event_attach(svc.event_pipe, NULL, SLACK_MS, NULL);
  /* Full, then 64 KiB given back: the store fills it within a few publishes of 2 KiB. */
  snprintf(filler, sizeof(filler), "%s/filler", small_fs);
  size = fill_disk(filler);
  assert_true(size > LEFT);
  assert_int_equal(0, truncate(filler, size - LEFT));
  for (int i = 0; i < ROUNDS; i++) {
    int64_t id = emit_padded(i);
    if (id == 0) {
      n_err++;
    } else {
      pm_msg *m = pm_test_next_event(fd, SLACK_MS);
      pm_test_assert_kind(m, "Event");
      assert_int_equal(id, pm_test_int_field(m, "Id"));
      pm_msg_free(m);
      pm_test_confirm(fd, id);
      assert_true(id > max_ok);
      ok_ids[n_ok++] = max_ok = id;
    }
    if (i % 10 == 0)
      assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, NULL));
  }
  assert_true(n_ok > 0);
  assert_true(n_err > 0);
  pm_test_await_log(&svc, "error: cannot publish EmitEvent's event");
  assert_true(pm_test_stat(svc.command_pipe, "Events", "StoreErrors") > 0);
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Attached"));

  assert_int_equal(0, unlink(filler));
  for (int i = 0; i < 3; i++) {
    int64_t id = emit_padded(1000 + i);
    pm_msg *m = pm_test_next_event(fd, SLACK_MS);
    assert_true(id > max_ok);
    pm_test_assert_kind(m, "Event");
    assert_int_equal(id, pm_test_int_field(m, "Id"));
    pm_msg_free(m);
    pm_test_confirm(fd, id);
    ok_ids[n_ok++] = max_ok = id;
  }
  close(fd);
  kill9();
  pm_test_service_restart(&svc, small_fs_args);
  fd = pm_test_event_attach(svc.event_pipe, NULL, SLACK_MS, NULL);
  for (;;) {
    pm_msg *m = pm_test_next_event(fd, 500);
    int64_t id;
    int known = 0;
    if (m == NULL)
      break;
    pm_test_assert_kind(m, "Event");
    id = pm_test_int_field(m, "Id");
    for (int i = 0; i < n_ok; i++)
      known |= ok_ids[i] == id;
    if (!known) {
      print_error("event %lld came back but was never answered Ok\n", (long long)id);
      fail();
    }
    pm_test_confirm(fd, id);
    pm_msg_free(m);
  }
  close(fd);
  assert_true(emit_saved(2000) > max_ok);
}

/* pipemsgd with a data dir, run until it stops by itself (10 s at most: a service that does
 * not refuse to start is then ended, status 124); as nobody when as_nobody is set. Returns its
 * exit status, its stderr to *err. */
static int run_with_data_dir(const char *dir, int as_nobody, const char **err) {
  char cmd[200], evt[200];
  const char *plain[] = {"/usr/bin/timeout", "10", PM_BIN_DIR "/pipemsgd", "-c", cmd, "-e", evt,
                         "--data-dir", dir, NULL};
  const char *nobody[] = {"/usr/bin/timeout", "10", "/usr/bin/setpriv", "--reuid=65534",
                          "--regid=65534", "--clear-groups", PM_BIN_DIR "/pipemsgd", "-c", cmd,
                          "-e", evt, "--data-dir", dir, NULL};
  snprintf(cmd, sizeof(cmd), "%s/cmd2", svc.dir);
  snprintf(evt, sizeof(evt), "%s/evt2", svc.dir);
  return pm_test_run(as_nobody ? nobody : plain, NULL, err);
}

/* A data directory others may write to would let them put their own event store in the
 * service's place (and forge the events it delivers), so pipemsgd refuses to start on one, as
 * it does on a symlink or a directory owned by another user. */
static void test_durability_unsafe_data_dir_refused(void **state) {
  char dir[200], link[200];
  const char *err;
  (void)state;
  snprintf(dir, sizeof(dir), "%s/open", svc.dir);
  assert_int_equal(0, mkdir(dir, 0700));
  assert_int_equal(0, chmod(dir, 0777));
  assert_int_equal(1, run_with_data_dir(dir, 0, &err));
  assert_non_null(strstr(err, "writable by group or others (mode 0777)"));
  assert_int_equal(0, chmod(dir, 01777));
  assert_int_equal(1, run_with_data_dir(dir, 0, &err));
  assert_non_null(strstr(err, "writable by group or others"));
  assert_int_equal(0, chmod(dir, 0770));
  assert_int_equal(1, run_with_data_dir(dir, 0, &err));
  assert_non_null(strstr(err, "writable by group or others"));
  assert_int_equal(0, chmod(dir, 0750));
  snprintf(link, sizeof(link), "%s/link", svc.dir);
  assert_int_equal(0, symlink(dir, link));
  assert_int_equal(1, run_with_data_dir(link, 0, &err));
  assert_non_null(strstr(err, "not a directory owned by root or the service's user"));
  assert_int_equal(0, access(dir, F_OK));
  {
    char db[240];
    snprintf(db, sizeof(db), "%s/events.db", dir);
    assert_int_equal(-1, access(db, F_OK));
  }
  if (geteuid() != 0)
    pm_test_skip("a directory of another user needs root (chown)");
  assert_int_equal(0, chown(dir, 65534, 65534));
  assert_int_equal(1, run_with_data_dir(dir, 0, &err));
  assert_non_null(strstr(err, "not a directory owned by root or the service's user"));
}

/* Every directory on the data dir's path counts too, as for OpenSSH's authorized_keys: one
 * that others may write to without the sticky bit could be renamed and another put in its
 * place, so pipemsgd refuses it, naming it, before it creates anything there. A sticky one (as
 * /tmp, where this test runs) is accepted. A symlink on the way is refused (the store is never
 * opened through one), and so is a directory of another user. */
static void test_durability_unsafe_parent_refused(void **state) {
  char open_dir[200], dir[240], via[200], via_dir[240], want[400], db[260];
  const char *err;
  const char *sticky_args[] = {"--test-commands", "--data-dir", dir, NULL};
  (void)state;
  snprintf(open_dir, sizeof(open_dir), "%s/open", svc.dir);
  snprintf(dir, sizeof(dir), "%s/data", open_dir);
  assert_int_equal(0, mkdir(open_dir, 0700));
  /* Writable by others, then by the group only: refused, naming the step, nothing created. */
  for (int i = 0; i < 2; i++) {
    unsigned mode = i == 0 ? 0777 : 0770;
    assert_int_equal(0, chmod(open_dir, mode));
    assert_int_equal(1, run_with_data_dir(dir, 0, &err));
    snprintf(want, sizeof(want),
             "'%s' is writable by group or others without the sticky bit (mode %04o)", open_dir,
             mode);
    assert_non_null(strstr(err, want));
    assert_int_equal(-1, access(dir, F_OK));
  }

  /* Sticky: accepted, and the store made in it. */
  assert_int_equal(0, chmod(open_dir, 01777));
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, sticky_args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, NULL));
  snprintf(db, sizeof(db), "%s/events.db", dir);
  assert_int_equal(0, access(db, F_OK));
  assert_int_equal(0, pm_test_service_stop(&svc));

  /* The same directory through a symlink: refused, naming the symlink. */
  snprintf(via, sizeof(via), "%s/via", svc.dir);
  snprintf(via_dir, sizeof(via_dir), "%s/data", via);
  assert_int_equal(0, symlink("open", via));
  assert_int_equal(1, run_with_data_dir(via_dir, 0, &err));
  snprintf(want, sizeof(want), "'%s' is a symlink", via);
  assert_non_null(strstr(err, want));

  if (geteuid() != 0)
    pm_test_skip("a directory of another user needs root (chown)");
  assert_int_equal(0, chown(open_dir, 65534, 65534));
  assert_int_equal(1, run_with_data_dir(dir, 0, &err));
  snprintf(want, sizeof(want), "'%s' is owned by uid 65534, not root or the service's user",
           open_dir);
  assert_non_null(strstr(err, want));
}

/* A store file the service may only read: SQLite would open it read-only without a word and
 * every publish fail; the service refuses to start instead. Root may write any file, so the
 * service runs as nobody here. */
static void test_durability_read_only_store_refused(void **state) {
  char dir[200], db[240];
  const char *err;
  (void)state;
  if (geteuid() != 0)
    pm_test_skip("needs root (runs pipemsgd as user nobody with setpriv)");
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_int_equal(0, chmod(svc.dir, 0755));
  snprintf(dir, sizeof(dir), "%s/nobody", svc.dir);
  assert_int_equal(0, mkdir(dir, 0700));
  assert_int_equal(0, chown(dir, 65534, 65534));
  snprintf(db, sizeof(db), "%s/events.db", dir);
  {
    int fd = open(db, O_WRONLY | O_CREAT | O_EXCL, 0444);
    assert_true(fd >= 0);
    close(fd);
  }
  assert_int_equal(0, chown(db, 65534, 65534));
  assert_int_equal(1, run_with_data_dir(dir, 1, &err));
  assert_non_null(strstr(err, "cannot open event store"));
  assert_non_null(strstr(err, "permission denied"));
}

/* Opens the service's store with SQLite itself, as an older version, an editor or a damaged
 * disk might have left it, and runs sql. */
static void store_exec(const char *sql) {
  char path[200];
  sqlite3 *db = NULL;
  char *err = NULL;
  snprintf(path, sizeof(path), "%s/events.db", data_dir);
  assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    print_error("sqlite: %s\n", err);
    sqlite3_free(err);
    fail();
  }
  assert_int_equal(SQLITE_OK, sqlite3_close(db));
}

/* A row with a NULL type crashed the service at every start; one with an invalid UTF-8 type
 * closed every session. Rows that do not validate are skipped, logged, counted and removed. */
static void hardening_06_malformed_rows_skipped(void **state) {
  int64_t ids[4], ns[4];
  int fd;
  (void)state;
  emit(3);
  assert_int_equal(0, pm_test_service_stop(&svc));
  /* The schema has NOT NULL on type; a store from elsewhere need not. */
  store_exec("ALTER TABLE events RENAME TO old;"
             "CREATE TABLE events(id INTEGER PRIMARY KEY, type TEXT, time TEXT, data TEXT,"
             " marker INTEGER);"
             "INSERT INTO events SELECT * FROM old; DROP TABLE old;"
             "INSERT INTO events VALUES(100, NULL, '2026-11-30T12:00:00.000Z', NULL, 0);"
             "INSERT INTO events VALUES(101, CAST(X'53c328' AS TEXT), '2026-11-30T12:00:00.000Z',"
             " NULL, 0);"
             "INSERT INTO events VALUES(102, 'Saved', '2026-11-30T12:00:00.000Z', '{\"N\":', 0);"
             "INSERT INTO events VALUES(103, 'Saved', '2026-11-30T12:00:00.000Z',"
             " CAST(X'7b224e223a22ff227d' AS TEXT), 0);"
             "INSERT INTO events VALUES(104, 'Saved', '2026-11-30T12:00:00.000Z', '[1]', 0);"
             "INSERT INTO events VALUES(-5, 'Saved', '2026-11-30T12:00:00.000Z', NULL, 0);"
             "INSERT INTO events VALUES(105, 'Saved', NULL, NULL, 0);"
             "INSERT INTO events VALUES(106, 'Saved', '2026-11-30T12:00:00.000Z', NULL, 7);"
             "INSERT INTO events VALUES(107, 'EventsLost', '2026-11-30T12:00:00.000Z',"
             " '{\"Count\":1,\"FirstId\":1,\"LastId\":1}', 0);"
             "INSERT INTO events VALUES(108, 'Saved', '2026-11-30T12:00:00.000Z',"
             " '{\"N\":8}', 0);"
             /* Past the largest id a store may hold (2^53): next ids would overflow. */
             "INSERT INTO events VALUES(9223372036854775807, 'Saved',"
             " '2026-11-30T12:00:00.000Z', NULL, 0);"
             /* Above the reserved block: its id must stay taken once the row is gone. */
             "INSERT INTO events VALUES(5000, NULL, '2026-11-30T12:00:00.000Z', NULL, 0);");
  pm_test_service_restart(&svc, args);
  pm_test_await_log(&svc, "warning: event store: skipped 11 invalid rows");
  assert_int_equal(11, pm_test_stat(svc.command_pipe, "Events", "StoreRowsSkipped"));
  fd = attach_and_take(4, ids, ns, 1);
  close(fd);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(i + 1, ids[i]);
    assert_int_equal(i, ns[i]);
  }
  assert_int_equal(108, ids[3]);
  assert_int_equal(8, ns[3]);
  /* The rows are gone from the store, and their ids are not handed out again: not even after
   * a restart that no longer sees them. */
  assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_restart(&svc, args);
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "StoreRowsSkipped"));
  {
    json_t *d = call_data("EmitEvent", json_pack("{s:s}", "Type", "Saved"));
    assert_true(json_integer_value(json_object_get(d, "FirstId")) > 5000);
    assert_true(json_integer_value(json_object_get(d, "FirstId")) < 5000 + 2048);
    json_decref(d);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_durability_survives_kill9, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durability_ids_never_reused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durability_overflow_marker_survives, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durability_sigterm_keeps_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(hardening_04_disk_full, setup, teardown_small_fs),
      cmocka_unit_test_setup_teardown(test_durability_disk_fills_while_delivering, setup,
                                      teardown_small_fs),
      cmocka_unit_test_setup_teardown(hardening_06_malformed_rows_skipped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durability_unsafe_data_dir_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durability_unsafe_parent_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durability_read_only_store_refused, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
