#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "event/store.h"
#include "internal.h"
#include "pipemsg/error.h"
#include "pipemsg/message.h"

/* Largest epoch we make up: stays exact in a JavaScript number (2^53 - 1). */
#define EPOCH_MASK 0x1fffffffffffffLL
/* How long a writer waits for a lock held by another connection to the same file. */
#define BUSY_TIMEOUT_MS 5000

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    /* WAL with synchronous=NORMAL: every commit survives the process being killed; a power
     * cut may lose the last commits (see docs/operations.md). */
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, type TEXT NOT NULL,"
    " time TEXT NOT NULL, data TEXT, marker INTEGER NOT NULL DEFAULT 0);";

enum { ST_PUT, ST_DELETE, ST_RESERVE, ST_BEGIN, ST_COMMIT, ST_MAX };

static const char *const statements[ST_MAX] = {
    "INSERT OR REPLACE INTO events(id, type, time, data, marker) VALUES(?, ?, ?, ?, ?)",
    /* A marker takes the id of the last event it stands for, so a row is only deleted as
     * what it is. */
    "DELETE FROM events WHERE id = ? AND marker = ?",
    "INSERT OR REPLACE INTO meta(key, value) VALUES('id_ceiling', ?)",
    "BEGIN IMMEDIATE",
    "COMMIT",
};

struct pm_event_store {
  sqlite3 *db;
  sqlite3_stmt *stmt[ST_MAX];
};

void pm_event_store_close(pm_event_store *st) {
  if (st == NULL)
    return;
  for (int i = 0; i < ST_MAX; i++)
    sqlite3_finalize(st->stmt[i]);
  sqlite3_close(st->db);
  pm__free(st);
}

int pm_event_store_open(const char *path, pm_event_store **out) {
  pm_event_store *st;
  if (path == NULL || out == NULL)
    return PM_EINVAL;
  st = pm__calloc(1, sizeof(*st));
  if (st == NULL)
    return PM_ENOMEM;
  if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                         SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                      NULL) != SQLITE_OK ||
      sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
      sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK)
    goto fail;
  for (int i = 0; i < ST_MAX; i++)
    if (sqlite3_prepare_v2(st->db, statements[i], -1, &st->stmt[i], NULL) != SQLITE_OK)
      goto fail;
  *out = st;
  return 0;
fail:
  pm__debug("event store %s: %s", path, st->db ? sqlite3_errmsg(st->db) : "cannot open");
  pm_event_store_close(st);
  return PM_EIO;
}

static int run(sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc == SQLITE_DONE ? 0 : PM_EIO;
}

static int meta_get(pm_event_store *st, const char *key, int64_t *value) {
  sqlite3_stmt *s = NULL;
  int rc = PM_EIO;
  if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = ?", -1, &s, NULL) ==
          SQLITE_OK &&
      sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC) == SQLITE_OK) {
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW) {
      *value = sqlite3_column_int64(s, 0);
      rc = 0;
    } else if (step == SQLITE_DONE) {
      rc = PM_ENOENT;
    }
  }
  sqlite3_finalize(s);
  return rc;
}

static int meta_set(pm_event_store *st, const char *key, int64_t value) {
  sqlite3_stmt *s = NULL;
  int rc = PM_EIO;
  if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", -1, &s,
                         NULL) == SQLITE_OK &&
      sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC) == SQLITE_OK &&
      sqlite3_bind_int64(s, 2, value) == SQLITE_OK && sqlite3_step(s) == SQLITE_DONE)
    rc = 0;
  sqlite3_finalize(s);
  return rc;
}

int pm__store_load(pm_event_store *st, int64_t *epoch, int64_t *next_id, pm__store_row_cb cb,
                   void *ctx) {
  sqlite3_stmt *s = NULL;
  int64_t ceiling = 0, max_id = 0;
  int rc = meta_get(st, "epoch", epoch);
  if (rc == PM_ENOENT) {
    /* First start on this store: the epoch is made once and kept, so ids and resume cursors
     * stay meaningful across restarts. */
    if (uv_random(NULL, NULL, epoch, sizeof(*epoch), 0, NULL) < 0)
      *epoch = (int64_t)uv_hrtime();
    *epoch &= EPOCH_MASK;
    if (*epoch == 0)
      *epoch = 1;
    rc = meta_set(st, "epoch", *epoch);
  }
  if (rc < 0)
    return rc;
  rc = meta_get(st, "id_ceiling", &ceiling);
  if (rc < 0 && rc != PM_ENOENT)
    return rc;
  if (sqlite3_prepare_v2(st->db, "SELECT id, type, time, data, marker FROM events ORDER BY id",
                         -1, &s, NULL) != SQLITE_OK)
    return PM_EIO;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *data = (const char *)sqlite3_column_text(s, 3);
    json_t *tree = data ? json_loads(data, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *time = (const char *)sqlite3_column_text(s, 2);
    pm__event *ev;
    int64_t id = sqlite3_column_int64(s, 0);
    ev = pm__event_new(id, (const char *)sqlite3_column_text(s, 1), tree, 0,
                       time ? time : "");
    if (ev == NULL) {
      sqlite3_finalize(s);
      return PM_ENOMEM;
    }
    max_id = id;
    cb(ctx, ev, sqlite3_column_int(s, 4));
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE)
    return PM_EIO;
  *next_id = (ceiling > max_id ? ceiling : max_id) + 1;
  return 0;
}

int pm__store_reserve(pm_event_store *st, int64_t ceiling) {
  sqlite3_bind_int64(st->stmt[ST_RESERVE], 1, ceiling);
  return run(st->stmt[ST_RESERVE]);
}

int pm__store_put(pm_event_store *st, const pm__event *ev) {
  sqlite3_stmt *s = st->stmt[ST_PUT];
  char *data = ev->data ? json_dumps(ev->data, JSON_COMPACT) : NULL;
  int rc;
  sqlite3_bind_int64(s, 1, ev->id);
  sqlite3_bind_text(s, 2, ev->type, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, ev->time, -1, SQLITE_STATIC);
  if (data != NULL)
    sqlite3_bind_text(s, 4, data, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 5, pm__event_is_marker(ev));
  rc = run(s);
  free(data);
  return rc;
}

int pm__store_delete(pm_event_store *st, const pm__event *ev) {
  sqlite3_bind_int64(st->stmt[ST_DELETE], 1, ev->id);
  sqlite3_bind_int(st->stmt[ST_DELETE], 2, pm__event_is_marker(ev));
  return run(st->stmt[ST_DELETE]);
}

int pm__store_begin(pm_event_store *st) { return run(st->stmt[ST_BEGIN]); }

int pm__store_commit(pm_event_store *st) { return run(st->stmt[ST_COMMIT]); }
