/* The durable event store (src/event/store.c) on its own: what it refuses to open, how it loads
 * a store whose bookkeeping was damaged, and what a failing SQLite write leaves behind. Faults
 * come from the database file itself (SQLite triggers that abort a statement or the whole
 * transaction), so the code under test runs unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "testutil.h"

#include "event/queue.h"
#include "event/store.h"
#include "internal.h"

#define TIME "2026-01-02T03:04:05.678Z"
/* The largest epoch the store makes: 2^53 - 1, exact in a JavaScript number. */
#define EPOCH_MAX 0x1fffffffffffffLL

static char dir[64];
static char path[128];

static int setup(void **state) {
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/events.db", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pm__alloc_fail_after(0);
  pm_test_dir_remove(dir);
  return 0;
}

/* Runs sql on the store file through a connection of its own, as an editor, an older program
 * or a damaged disk might. */
static void db_exec(const char *sql) {
  sqlite3 *db = NULL;
  char *err = NULL;
  assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    print_error("sqlite: %s\n", err);
    sqlite3_free(err);
    fail();
  }
  assert_int_equal(SQLITE_OK, sqlite3_close(db));
}

/* The integer a one-value query gives (-1 for NULL or no row). */
static int64_t db_int(const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  int64_t v = -1;
  assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
  assert_int_equal(SQLITE_OK, sqlite3_prepare_v2(db, sql, -1, &s, NULL));
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
    v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  assert_int_equal(SQLITE_OK, sqlite3_close(db));
  return v;
}

/* What pm__store_load handed over. */
typedef struct loaded {
  int64_t ids[16];
  int markers[16];
  size_t n;
} loaded;

static void on_row(void *ctx, pm__event *ev, int marker) {
  loaded *l = ctx;
  assert_true(l->n < 16);
  l->ids[l->n] = ev->id;
  l->markers[l->n++] = marker;
  pm__event_free(ev);
}

typedef struct load_result {
  int rc;
  int64_t epoch, next_id;
  size_t skipped;
  loaded rows;
} load_result;

static load_result load(void) {
  pm_event_store *st = NULL;
  load_result r;
  memset(&r, 0, sizeof(r));
  assert_pm(0, pm_event_store_open(path, &st));
  r.rc = pm__store_load(st, &r.epoch, &r.next_id, &r.skipped, on_row, &r.rows);
  pm_event_store_close(st);
  return r;
}

/* A store holding durable events with ids 1..n under a reservation up to ceiling. */
static void make_store(int n, int64_t ceiling) {
  pm_event_store *st = NULL;
  load_result r;
  assert_pm(0, pm_event_store_open(path, &st));
  assert_pm(0, pm__store_load(st, &r.epoch, &r.next_id, &r.skipped, on_row, &r.rows));
  assert_pm(0, pm__store_publish(st, ceiling, NULL));
  for (int i = 1; i <= n; i++) {
    pm__event *ev = pm__event_new(i, "Saved", json_pack("{s:i}", "N", i), 0, TIME);
    assert_non_null(ev);
    assert_pm(0, pm__store_publish(st, 0, ev));
    pm__event_free(ev);
  }
  pm_event_store_close(st);
}

static void test_store_open_refuses_what_it_cannot_use(void **state) {
  pm_event_store *st = NULL;
  char other[160], link[160];
  FILE *f;
  (void)state;
  assert_pm(PM_EINVAL, pm_event_store_open(NULL, &st));
  assert_pm(PM_EINVAL, pm_event_store_open(path, NULL));

  /* The directory is not there (pipemsgd makes it before opening). */
  snprintf(other, sizeof(other), "%s/missing/events.db", dir);
  assert_pm(PM_EIO, pm_event_store_open(other, &st));
  assert_null(st);

  /* A directory where the file should be. */
  assert_int_equal(0, mkdir(path, 0700));
  assert_pm(PM_EIO, pm_event_store_open(path, &st));
  assert_int_equal(0, rmdir(path));

  /* A file that is not an SQLite database: left as it was. */
  f = fopen(path, "w");
  assert_non_null(f);
  fputs("these are not the pages of a database, whatever the name says\n", f);
  fclose(f);
  assert_pm(PM_EIO, pm_event_store_open(path, &st));
  assert_null(st);
  f = fopen(path, "r");
  assert_non_null(f);
  assert_int_equal('t', fgetc(f));
  fclose(f);
  assert_int_equal(0, unlink(path));

  /* A symlink, even to a good store: a writable data directory must not point the service's
   * writes elsewhere. */
  make_store(1, 1024);
  snprintf(link, sizeof(link), "%s/link.db", dir);
  assert_int_equal(0, symlink(path, link));
  assert_pm(PM_EIO, pm_event_store_open(link, &st));
  assert_null(st);
}

/* A database whose events table has another shape was not written by pipemsg (the schema has
 * not changed since the store exists): it is refused, and its rows are not touched. */
static void test_store_open_refuses_foreign_schema(void **state) {
  pm_event_store *st = NULL;
  (void)state;
  db_exec("CREATE TABLE events(id INTEGER PRIMARY KEY, type TEXT, payload BLOB);"
          "INSERT INTO events VALUES(7, 'Mine', x'00ff');");
  assert_pm(PM_EIO, pm_event_store_open(path, &st));
  assert_null(st);
  assert_int_equal(7, db_int("SELECT id FROM events WHERE type = 'Mine'"));
}

static void test_store_open_out_of_memory(void **state) {
  pm_event_store *st = NULL;
  (void)state;
  pm__alloc_fail_after(1);
  assert_pm(PM_ENOMEM, pm_event_store_open(path, &st));
  pm__alloc_fail_after(0);
  assert_null(st);
}

/* The epoch and the id ceiling are what keep ids from being handed out twice in an epoch.
 * When either was damaged, the ids of the old epoch cannot be continued: a new epoch starts,
 * ids go on above every stored row, and the stored events are still delivered. */
static void test_store_damaged_meta_starts_new_epoch(void **state) {
  static const char *const damage[] = {
      "UPDATE meta SET value = 'soon' WHERE key = 'epoch'",
      "UPDATE meta SET value = 0 WHERE key = 'epoch'",
      "UPDATE meta SET value = 9007199254740992 WHERE key = 'epoch'", /* 2^53 */
      "DELETE FROM meta WHERE key = 'id_ceiling'",
      "UPDATE meta SET value = 'many' WHERE key = 'id_ceiling'",
      "UPDATE meta SET value = -1 WHERE key = 'id_ceiling'",
      "UPDATE meta SET value = 9007199254740993 WHERE key = 'id_ceiling'", /* 2^53 + 1 */
  };
  (void)state;
  for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
    load_result before, after;
    unlink(path);
    make_store(3, 1024);
    before = load();
    assert_pm(0, before.rc);
    assert_int_equal(1025, before.next_id);
    db_exec(damage[i]);
    after = load();
    assert_pm(0, after.rc);
    assert_true(after.epoch != before.epoch);
    assert_true(after.epoch > 0 && after.epoch <= EPOCH_MAX);
    assert_int_equal(4, after.next_id);
    assert_int_equal(3, after.rows.n);
    assert_int_equal(0, after.skipped);
    /* The new epoch is kept: the next start continues it. */
    assert_int_equal(after.epoch, db_int("SELECT value FROM meta WHERE key = 'epoch'"));
    assert_int_equal(0, db_int("SELECT value FROM meta WHERE key = 'id_ceiling'"));
    assert_int_equal(after.epoch, load().epoch);
  }
}

/* A store whose epoch cannot be written (here a trigger aborts it) cannot be loaded: without
 * a kept epoch, resume cursors would mean nothing after a restart. */
/* An epoch set while the service runs (a cursor past every id) is the one a restart loads,
 * with the queue and the ids as they were. */
static void test_store_set_epoch_kept(void **state) {
  pm_event_store *st = NULL;
  load_result before, after;
  (void)state;
  make_store(2, 1024);
  before = load();
  assert_pm(0, pm_event_store_open(path, &st));
  assert_pm(0, pm__store_set_epoch(st, before.epoch + 1));
  pm_event_store_close(st);
  after = load();
  assert_int_equal(before.epoch + 1, after.epoch);
  assert_int_equal(before.next_id, after.next_id);
  assert_int_equal(2, after.rows.n);
}

static void test_store_load_fails_when_epoch_cannot_be_kept(void **state) {
  (void)state;
  make_store(1, 1024);
  db_exec("DELETE FROM meta WHERE key = 'epoch';"
          "CREATE TRIGGER no_meta BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'no'); END;");
  assert_pm(PM_EIO, load().rc);
  assert_int_equal(-1, db_int("SELECT value FROM meta WHERE key = 'epoch'"));
}

/* A publish the store cannot write leaves nothing behind, its id reservation included (the
 * two are one transaction); the store works again once the fault is gone. */
static void test_store_failed_publish_writes_nothing(void **state) {
  pm_event_store *st = NULL;
  pm__event *ev;
  load_result r;
  (void)state;
  make_store(1, 1024);
  db_exec("CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'full'); "
          "END;");
  memset(&r, 0, sizeof(r));
  assert_pm(0, pm_event_store_open(path, &st));
  assert_pm(0, pm__store_load(st, &r.epoch, &r.next_id, &r.skipped, on_row, &r.rows));
  ev = pm__event_new(1025, "Saved", json_pack("{s:i}", "N", 2), 0, TIME);
  assert_non_null(ev);
  assert_pm(PM_EIO, pm__store_publish(st, 2048, ev));
  assert_int_equal(1024, db_int("SELECT value FROM meta WHERE key = 'id_ceiling'"));
  assert_int_equal(1, db_int("SELECT count(*) FROM events"));
  /* The reservation alone (no event) still goes through: the fault was in the event's row. */
  assert_pm(0, pm__store_publish(st, 2048, NULL));
  assert_int_equal(2048, db_int("SELECT value FROM meta WHERE key = 'id_ceiling'"));
  db_exec("DROP TRIGGER no_events");
  /* A reservation that fails takes its event down with it: one transaction. */
  db_exec("CREATE TRIGGER no_meta BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'full'); END;");
  assert_pm(PM_EIO, pm__store_publish(st, 3072, ev));
  assert_int_equal(2048, db_int("SELECT value FROM meta WHERE key = 'id_ceiling'"));
  assert_int_equal(1, db_int("SELECT count(*) FROM events"));
  db_exec("DROP TRIGGER no_meta");
  assert_pm(0, pm__store_publish(st, 0, ev));
  assert_int_equal(2, db_int("SELECT count(*) FROM events"));
  pm__event_free(ev);
  pm_event_store_close(st);
}

/* Invalid rows are skipped and removed; when their removal fails (a trigger rolls the
 * transaction back), or the id ceiling cannot be raised over them first, they stay and are
 * skipped again at the next load, and their ids still count. */
static void test_store_invalid_rows_kept_when_removal_fails(void **state) {
  load_result r;
  (void)state;
  make_store(2, 1024);
  db_exec("INSERT INTO events(id, type, time, data, marker) VALUES(5000, '', 'x', NULL, 0);"
          "CREATE TRIGGER keep BEFORE DELETE ON events BEGIN SELECT RAISE(ROLLBACK, 'no'); "
          "END;");
  for (int i = 0; i < 2; i++) {
    r = load();
    assert_pm(0, r.rc);
    assert_int_equal(1, r.skipped);
    assert_int_equal(2, r.rows.n);
    assert_int_equal(5001, r.next_id);
    assert_int_equal(3, db_int("SELECT count(*) FROM events"));
  }
  db_exec("DROP TRIGGER keep");
  r = load();
  assert_int_equal(1, r.skipped);
  assert_int_equal(2, db_int("SELECT count(*) FROM events"));
  assert_int_equal(0, load().skipped);

  /* A row is removed only once the id ceiling covers its id: when the ceiling cannot be
   * raised, the row stays and still counts. */
  db_exec("INSERT INTO events(id, type, time, data, marker) VALUES(9000, '', 'x', NULL, 0);"
          "CREATE TRIGGER no_meta BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'no'); END;");
  r = load();
  assert_pm(0, r.rc);
  assert_int_equal(1, r.skipped);
  assert_int_equal(9001, r.next_id);
  assert_int_equal(3, db_int("SELECT count(*) FROM events"));
  assert_int_equal(5000, db_int("SELECT value FROM meta WHERE key = 'id_ceiling'"));
  db_exec("DROP TRIGGER no_meta");
  assert_int_equal(1, load().skipped);
  assert_int_equal(9000, db_int("SELECT value FROM meta WHERE key = 'id_ceiling'"));
  assert_int_equal(2, db_int("SELECT count(*) FROM events"));
}

/* Loading under allocation failure: ENOMEM with nothing delivered twice and nothing removed,
 * or success with every row; rows that could not be noted for removal stay for the next
 * load. */
static void test_store_load_out_of_memory(void **state) {
  unsigned long n;
  int failed = 0;
  (void)state;
  make_store(3, 1024);
  db_exec("INSERT INTO events(id, type, time, data, marker) VALUES(0, 'Bad', 'x', NULL, 0);");
  for (n = 1; n < 100; n++) {
    pm_event_store *st = NULL;
    load_result r;
    memset(&r, 0, sizeof(r));
    assert_pm(0, pm_event_store_open(path, &st));
    pm__alloc_fail_after(n);
    r.rc = pm__store_load(st, &r.epoch, &r.next_id, &r.skipped, on_row, &r.rows);
    pm__alloc_fail_after(0);
    pm_event_store_close(st);
    if (r.rc == 0) {
      assert_int_equal(3, r.rows.n);
      assert_int_equal(1, r.skipped);
      break;
    }
    failed++;
    assert_pm(PM_ENOMEM, r.rc);
    assert_true(r.rows.n < 3);
    assert_int_equal(4, db_int("SELECT count(*) FROM events"));
  }
  assert_true(failed > 0);
  assert_true(n < 100);
  /* Only the load that succeeded removed the bad row. */
  assert_int_equal(3, db_int("SELECT count(*) FROM events"));
}

/* Each way a row can be wrong, as an editor or a damaged file might leave it: the row is
 * skipped and removed, the valid rows around it are loaded. */
static void test_store_each_invalid_row_skipped(void **state) {
  static const char *const bad[] = {
      "(10, x'5361766564', '2026-11-30T12:00:00.000Z', NULL, 0)",     /* type a blob */
      "(11, 'Saved', x'32', NULL, 0)",                                  /* time a blob */
      "(12, 'Saved', '2026-11-30T12:00:00.000Z0000000000', NULL, 0)",   /* time too long */
      "(13, 'Saved', '2026-11-30T12:00:00.000Z', NULL, 'yes')",         /* marker not a number */
      "(14, 'Saved', '2026-11-30T12:00:00.000Z', NULL, 2)",             /* marker not 0 or 1 */
      "(15, 'EventsLost', '2026-11-30T12:00:00.000Z', NULL, 1)",        /* marker without data */
      "(16, 'Saved', '2026-11-30T12:00:00.000Z', x'7b7d', 0)",          /* data a blob */
      "(17, 'Saved', '2026-11-30T12:00:00.000Z', '[1]', 0)",            /* data not an object */
      "(18, 'Saved', '2026-11-30T12:00:00.000Z', '{\"A\":1,\"A\":2}', 0)", /* duplicate member */
  };
  char sql[256];
  load_result r;
  (void)state;
  make_store(2, 1024);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(sql, sizeof(sql), "INSERT INTO events(id, type, time, data, marker) VALUES%s;",
             bad[i]);
    db_exec(sql);
  }
  /* More invalid rows than the first list of them holds (16). */
  for (int i = 0; i < 12; i++) {
    snprintf(sql, sizeof(sql),
             "INSERT INTO events(id, type, time, data, marker) VALUES(%d, '', 'x', NULL, 0);",
             100 + i);
    db_exec(sql);
  }
  /* A valid row without Data, after them. */
  db_exec("INSERT INTO events(id, type, time, data, marker) VALUES"
          "(19, 'Saved', '2026-11-30T12:00:00.000Z', NULL, 0);");
  r = load();
  assert_pm(0, r.rc);
  assert_int_equal(sizeof(bad) / sizeof(bad[0]) + 12, r.skipped);
  assert_int_equal(3, r.rows.n);
  assert_int_equal(1, r.rows.ids[0]);
  assert_int_equal(2, r.rows.ids[1]);
  assert_int_equal(19, r.rows.ids[2]);
  assert_int_equal(3, db_int("SELECT count(*) FROM events"));
  assert_int_equal(0, load().skipped);
}

/* A store file deleted, or replaced by another, while open: SQLite would go on writing to the
 * file no name leads to, and a publish would say "on disk" for an event no restart finds. It
 * fails instead (as on a full disk), and so does a change of the queue. */
static void test_store_moved_file_refused(void **state) {
  static const char *const how[] = {"delete", "replace"};
  char other[160];
  (void)state;
  snprintf(other, sizeof(other), "%s/other.db", dir);
  for (size_t i = 0; i < sizeof(how) / sizeof(how[0]); i++) {
    pm_event_store *st = NULL;
    pm__event *ev = pm__event_new(1, "Saved", json_pack("{s:i}", "N", 1), 0, TIME);
    load_result r;
    assert_non_null(ev);
    unlink(path);
    assert_pm(0, pm_event_store_open(path, &st));
    assert_pm(0, pm__store_load(st, &r.epoch, &r.next_id, &r.skipped, on_row, &r.rows));
    assert_pm(0, pm__store_publish(st, 1024, ev));
    if (strcmp(how[i], "delete") == 0) {
      assert_int_equal(0, unlink(path));
    } else {
      pm_event_store *o = NULL;
      unlink(other);
      assert_pm(0, pm_event_store_open(other, &o));
      pm_event_store_close(o);
      assert_int_equal(0, rename(other, path));
    }
    assert_pm(PM_EIO, pm__store_publish(st, 0, ev));
    assert_pm(PM_EIO, pm__store_publish(st, 2048, NULL));
    assert_pm(PM_EIO, pm__store_begin(st));
    pm__event_free(ev);
    pm_event_store_close(st);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_store_open_refuses_what_it_cannot_use, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_store_open_refuses_foreign_schema, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_open_out_of_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_set_epoch_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_damaged_meta_starts_new_epoch, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_store_load_fails_when_epoch_cannot_be_kept, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_store_failed_publish_writes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_invalid_rows_kept_when_removal_fails, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_store_load_out_of_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_each_invalid_row_skipped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_moved_file_refused, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
