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

enum { ST_PUT, ST_DELETE, ST_RESERVE, ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_MAX };

static const char *const statements[ST_MAX] = {
    "INSERT OR REPLACE INTO events(id, type, time, data, marker) VALUES(?, ?, ?, ?, ?)",
    /* A marker takes the id of the last event it stands for, so a row is only deleted as
     * what it is. */
    "DELETE FROM events WHERE id = ? AND marker = ?",
    "INSERT OR REPLACE INTO meta(key, value) VALUES('id_ceiling', ?)",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
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
  int rc = PM_EIO;
  if (path == NULL || out == NULL)
    return PM_EINVAL;
  st = pm__calloc(1, sizeof(*st));
  if (st == NULL)
    return PM_ENOMEM;
  if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                         SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                      NULL) != SQLITE_OK)
    goto fail;
  /* SQLite opens a file it may not write read-only without saying so: every publish would
   * then fail. Refused here, so the service does not start with a store it cannot keep. */
  if (sqlite3_db_readonly(st->db, "main") != 0) {
    rc = PM_EACCES;
    goto fail;
  }
  if (sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
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
  return rc;
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
    if (step == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_INTEGER) {
      rc = PM_ETYPE;
    } else if (step == SQLITE_ROW) {
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

int pm__store_set_epoch(pm_event_store *st, int64_t epoch) {
  return meta_set(st, "epoch", epoch);
}

/* The largest id a store may hold: ids stay exact as JSON numbers (2^53), and id arithmetic
 * (the next id, the next reserved block) stays far from overflow whatever a damaged file says. */
#define ID_MAX ((int64_t)1 << 53)

/* Characters of a stored Time (RFC 3339 UTC, as pm_time_now writes it). */
static const char time_chars[] = "0123456789-:.TZ";

/* Why a stored row cannot become an event, or NULL when it can; *tree gets its Data. A row is
 * only trusted as far as it validates: the file may have been edited, damaged, or written by
 * an older version. */
static const char *row_invalid(sqlite3_stmt *s, json_t **tree) {
  /* Types first: reading a column as text converts it. */
  int id_type = sqlite3_column_type(s, 0), type_type = sqlite3_column_type(s, 1),
      time_type = sqlite3_column_type(s, 2), data_type = sqlite3_column_type(s, 3),
      marker_type = sqlite3_column_type(s, 4);
  const char *type = (const char *)sqlite3_column_text(s, 1);
  const char *time = (const char *)sqlite3_column_text(s, 2);
  const char *data = (const char *)sqlite3_column_text(s, 3);
  int64_t marker = sqlite3_column_int64(s, 4);
  *tree = NULL;
  if (id_type != SQLITE_INTEGER || sqlite3_column_int64(s, 0) <= 0 ||
      sqlite3_column_int64(s, 0) > ID_MAX)
    return "bad id";
  /* A name is ASCII, so this also refuses invalid UTF-8. */
  if (type_type != SQLITE_TEXT || type == NULL || !pm_name_valid(type))
    return "type is not a name";
  if (time_type != SQLITE_TEXT || time == NULL || strlen(time) >= PM_TIME_MAX ||
      strspn(time, time_chars) != strlen(time))
    return "bad time";
  if (marker_type != SQLITE_INTEGER || (marker != 0 && marker != 1))
    return "bad marker flag";
  if ((marker == 1) != (strcmp(type, PM_EVENT_EVENTS_LOST) == 0))
    return "EventsLost type and marker flag disagree";
  if (data_type == SQLITE_NULL)
    return marker ? "marker without data" : NULL;
  /* jansson refuses invalid UTF-8; what XML cannot carry, a session finds out and drops. */
  if (data_type != SQLITE_TEXT || data == NULL ||
      (*tree = json_loads(data, JSON_REJECT_DUPLICATES, NULL)) == NULL)
    return "data is not JSON";
  if (!json_is_object(*tree)) {
    json_decref(*tree);
    *tree = NULL;
    return "data is not an object";
  }
  return NULL;
}

/* Removes rows that did not validate, so that they are reported once; failing that, they are
 * skipped again at the next start. */
static void delete_rows(pm_event_store *st, const int64_t *ids, size_t n) {
  sqlite3_stmt *s = NULL;
  if (n == 0 || run(st->stmt[ST_BEGIN]) < 0)
    return;
  if (sqlite3_prepare_v2(st->db, "DELETE FROM events WHERE id = ?", -1, &s, NULL) == SQLITE_OK) {
    for (size_t i = 0; i < n; i++) {
      sqlite3_bind_int64(s, 1, ids[i]);
      sqlite3_step(s);
      sqlite3_reset(s);
    }
  }
  sqlite3_finalize(s);
  if (run(st->stmt[ST_COMMIT]) < 0) {
    pm__debug("event store: cannot remove %zu invalid rows", n);
    run(st->stmt[ST_ROLLBACK]);
  }
}

/* Remembers a skipped row's id for delete_rows; on allocation failure the row just stays. */
static void note_skipped(int64_t **ids, size_t *n, size_t *cap, int64_t id) {
  if (*n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 16;
    int64_t *grown = pm__realloc(*ids, ncap * sizeof(**ids));
    if (grown == NULL)
      return;
    *ids = grown;
    *cap = ncap;
  }
  (*ids)[(*n)++] = id;
}

int64_t pm__epoch_new(void) {
  int64_t epoch = 0;
  if (uv_random(NULL, NULL, &epoch, sizeof(epoch), 0, NULL) < 0)
    epoch = (int64_t)uv_hrtime();
  epoch &= EPOCH_MASK;
  return epoch ? epoch : 1;
}

int pm__store_load(pm_event_store *st, int64_t *epoch, int64_t *next_id, size_t *skipped,
                   pm__store_row_cb cb, void *ctx) {
  sqlite3_stmt *s = NULL;
  int64_t ceiling = 0, max_id = 0, *bad = NULL;
  size_t nbad = 0, capbad = 0;
  int rc = meta_get(st, "epoch", epoch);
  *skipped = 0;
  if (rc == 0 && (*epoch <= 0 || *epoch > EPOCH_MASK))
    rc = PM_ETYPE; /* not an epoch we made */
  if (rc == 0) {
    rc = meta_get(st, "id_ceiling", &ceiling);
    /* The ceiling is what keeps ids from being handed out twice in an epoch. Without a
     * trustworthy one, the ids of this epoch cannot be continued safely: start a new one. */
    if (rc == PM_ENOENT || rc == PM_ETYPE || (rc == 0 && (ceiling < 0 || ceiling > ID_MAX))) {
      pm__debug("event store: no valid id ceiling, starting a new epoch");
      rc = PM_ETYPE;
      ceiling = 0;
    }
  }
  if (rc == PM_ENOENT || rc == PM_ETYPE) {
    /* First start on this store (or a store whose ids cannot be trusted): the epoch is made
     * and kept, so ids and resume cursors stay meaningful across restarts. */
    *epoch = pm__epoch_new();
    rc = meta_set(st, "epoch", *epoch);
    if (rc == 0)
      rc = meta_set(st, "id_ceiling", 0);
  }
  if (rc < 0)
    return rc;
  if (sqlite3_prepare_v2(st->db, "SELECT id, type, time, data, marker FROM events ORDER BY id",
                         -1, &s, NULL) != SQLITE_OK)
    return PM_EIO;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    json_t *tree;
    const char *why = row_invalid(s, &tree);
    int64_t id = sqlite3_column_int64(s, 0);
    pm__event *ev;
    /* Even a row that is skipped may stand for an id that was handed out (one out of range
     * stands for nothing). */
    if (id > max_id && id <= ID_MAX)
      max_id = id;
    if (why != NULL) {
      pm__debug("event store: skipping row %lld: %s", (long long)id, why);
      (*skipped)++;
      note_skipped(&bad, &nbad, &capbad, id);
      continue;
    }
    ev = pm__event_new(id, (const char *)sqlite3_column_text(s, 1), tree, 0,
                       (const char *)sqlite3_column_text(s, 2));
    if (ev == NULL) {
      sqlite3_finalize(s);
      pm__free(bad);
      return PM_ENOMEM;
    }
    cb(ctx, ev, sqlite3_column_int(s, 4));
  }
  sqlite3_finalize(s);
  /* The ids of skipped rows must stay taken once the rows are gone: the ceiling keeps them, so
   * they are deleted only when it does (else they are skipped again at the next start). */
  if (rc == SQLITE_DONE && nbad > 0 &&
      (max_id <= ceiling || meta_set(st, "id_ceiling", max_id) == 0))
    delete_rows(st, bad, nbad);
  pm__free(bad);
  if (rc != SQLITE_DONE)
    return PM_EIO;
  *next_id = (ceiling > max_id ? ceiling : max_id) + 1;
  return 0;
}

int pm__store_put(pm_event_store *st, const pm__event *ev) {
  sqlite3_stmt *s = st->stmt[ST_PUT];
  /* An event keeps its Data as the compact JSON stored here; only a marker's is a tree. */
  char *dumped = ev->data ? json_dumps(ev->data, JSON_COMPACT) : NULL;
  const char *data = ev->data ? dumped : ev->text;
  int rc;
  if (ev->data != NULL && dumped == NULL)
    return PM_ENOMEM;
  sqlite3_bind_int64(s, 1, ev->id);
  sqlite3_bind_text(s, 2, ev->type, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, ev->time, -1, SQLITE_STATIC);
  if (data != NULL)
    sqlite3_bind_text(s, 4, data, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 5, pm__event_is_marker(ev));
  rc = run(s);
  free(dumped);
  return rc;
}

/* A store file deleted or replaced while open takes every later write with it, unreachable:
 * a publish would answer "on disk" for an event no restart finds. Refused instead, as a full
 * disk is, until the service restarts on whatever file is there then. Windows' VFS cannot
 * tell (SQLITE_NOTFOUND), and needs not: it opens the file without FILE_SHARE_DELETE, so no
 * one can delete or replace it while it is open. */
static int moved(pm_event_store *st) {
  int gone = 0;
  if (sqlite3_file_control(st->db, "main", SQLITE_FCNTL_HAS_MOVED, &gone) != SQLITE_OK || !gone)
    return 0;
  pm__debug("event store %s was deleted or replaced while in use",
            sqlite3_db_filename(st->db, "main"));
  return PM_EIO;
}

int pm__store_publish(pm_event_store *st, int64_t ceiling, const pm__event *ev) {
  int rc;
  if (moved(st) < 0)
    return PM_EIO;
  /* A reservation must outlive even a power cut: a lost one would let a restart hand out ids
   * that clients already saw. It is written once per block of ids, so its sync is cheap. */
  if (ceiling > 0 &&
      sqlite3_exec(st->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
    return PM_EIO;
  rc = run(st->stmt[ST_BEGIN]);
  if (rc == 0 && ceiling > 0) {
    sqlite3_bind_int64(st->stmt[ST_RESERVE], 1, ceiling);
    rc = run(st->stmt[ST_RESERVE]);
  }
  if (rc == 0 && ev != NULL)
    rc = pm__store_put(st, ev);
  if (rc == 0)
    rc = run(st->stmt[ST_COMMIT]);
  if (rc < 0) {
    pm__debug("event store: cannot %s: %s", ev != NULL ? "write an event" : "reserve ids",
              sqlite3_errmsg(st->db));
    pm__store_rollback(st);
  }
  if (ceiling > 0 &&
      sqlite3_exec(st->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK)
    rc = PM_EIO;
  return rc;
}

int pm__store_delete(pm_event_store *st, const pm__event *ev) {
  sqlite3_bind_int64(st->stmt[ST_DELETE], 1, ev->id);
  sqlite3_bind_int(st->stmt[ST_DELETE], 2, pm__event_is_marker(ev));
  return run(st->stmt[ST_DELETE]);
}

int pm__store_begin(pm_event_store *st) {
  return moved(st) < 0 ? PM_EIO : run(st->stmt[ST_BEGIN]);
}

int pm__store_commit(pm_event_store *st) { return run(st->stmt[ST_COMMIT]); }

/* After a failed statement or commit SQLite may or may not have rolled back already; a
 * ROLLBACK with no transaction open fails harmlessly. */
void pm__store_rollback(pm_event_store *st) { run(st->stmt[ST_ROLLBACK]); }
