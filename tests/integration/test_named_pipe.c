/* The named-pipe transport (src/transport/transport_win.c) with the library's command and
 * event servers and clients, in one process: names, calls in JSON and XML, deadlines, events,
 * peer identity, the owner check, one instance pending. What wine does not implement
 * (first-instance refusal, DACLs) is skipped under wine with that reason; it runs on a real
 * Windows (docs/windows.md). */
#include <winsock2.h>
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"
#include "transport/transport.h"

/* Under wine a round trip is 20-40 times slower than on Windows (docs/windows.md): deadlines
 * the tests choose (never the product's defaults) are scaled by this much there. */
#define WINE_SCALE 20

static uint32_t scaled_ms(uint32_t ms) { return pm_test_under_wine() ? ms * WINE_SCALE : ms; }

static void unique_name(char *buf, size_t size, const char *what) {
  static int n;
  snprintf(buf, size, "pipemsg-test-%lu-%s-%d", (unsigned long)GetCurrentProcessId(), what, ++n);
}

/* A loop on its own thread serving a command server and an event server. */
typedef struct fixture {
  uv_loop_t loop;
  uv_async_t stop;
  uv_thread_t thread;
  pm_command_server *cmd;
  pm_event_server *ev;
  char cmd_name[96], ev_name[96];
  uv_mutex_t lock;
  uv_cond_t cond;
  pm_peer peer; /* of the last call */
  int calls;
  int events;   /* received by the event client */
  int connected;
  int hold;     /* the handler answers nothing (response deadline) */
  uv_async_t publish; /* publishes one event on the loop's thread */
  int published;      /* pm_event_server_publish's result, 1 until then */
} fixture;

static void handler(pm_command_call *call, void *data) {
  fixture *f = data;
  uv_mutex_lock(&f->lock);
  f->peer = *pm_command_call_peer(call);
  f->calls++;
  uv_mutex_unlock(&f->lock);
  if (f->hold)
    return; /* dropped when the server closes */
  pm_command_call_reply(call, PM_RESULT_OK, "served", json_pack("{s:s}", "Echo",
                                                                  pm_command_call_command(call)));
}

static void on_stop(uv_async_t *a) {
  fixture *f = a->data;
  if (f->cmd != NULL)
    pm_command_server_close(f->cmd, NULL, NULL);
  if (f->ev != NULL) {
    pm_event_server_close(f->ev, NULL, NULL);
    uv_close((uv_handle_t *)&f->publish, NULL);
  }
  uv_close((uv_handle_t *)&f->stop, NULL);
}

static void run_loop(void *arg) {
  fixture *f = arg;
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void on_publish(uv_async_t *a) {
  fixture *f = a->data;
  int rc = pm_event_server_publish(f->ev, "StatusChanged", json_pack("{s:s}", "State", "Up"),
                                   NULL);
  uv_mutex_lock(&f->lock);
  f->published = rc;
  uv_mutex_unlock(&f->lock);
}

static void fixture_start(fixture *f, int with_events) {
  pm_command_server_options co;
  pm_event_server_options eo;
  memset(f, 0, sizeof(*f));
  uv_mutex_init(&f->lock);
  uv_cond_init(&f->cond);
  assert_int_equal(0, uv_loop_init(&f->loop));
  assert_int_equal(0, uv_async_init(&f->loop, &f->stop, on_stop));
  f->stop.data = f;
  unique_name(f->cmd_name, sizeof(f->cmd_name), "cmd");
  memset(&co, 0, sizeof(co));
  co.handler = handler;
  co.data = f;
  assert_pm(0, pm_command_server_start(&f->loop, f->cmd_name, &co, &f->cmd));
  if (with_events) {
    unique_name(f->ev_name, sizeof(f->ev_name), "ev");
    memset(&eo, 0, sizeof(eo));
    assert_pm(0, pm_event_server_start(&f->loop, f->ev_name, &eo, &f->ev));
    assert_int_equal(0, uv_async_init(&f->loop, &f->publish, on_publish));
    f->publish.data = f;
    f->published = 1;
  }
  assert_int_equal(0, uv_thread_create(&f->thread, run_loop, f));
}

static void fixture_stop(fixture *f) {
  uv_async_send(&f->stop);
  assert_int_equal(0, uv_thread_join(&f->thread));
  assert_int_equal(0, uv_loop_close(&f->loop));
  uv_cond_destroy(&f->cond);
  uv_mutex_destroy(&f->lock);
}

static const char *call(const char *name, const char *command, pm_encoding enc,
                        const pm_client_options *opts, int *rc) {
  static char result[64];
  pm_msg *req = NULL, *resp = NULL;
  const char *r = NULL;
  assert_pm(0, pm_request_new(command, 1, NULL, &req));
  *rc = pm_command_client_call(name, opts, req, enc, &resp);
  result[0] = '\0';
  if (*rc == 0 && pm_msg_get_string(resp, "Result", &r) == 0)
    snprintf(result, sizeof(result), "%s", r);
  pm_msg_free(resp);
  pm_msg_free(req);
  return result;
}

static void test_named_pipe_names(void **state) {
  char buf[PM_PIPE_PATH_MAX + 1], name[200];
  (void)state;
  assert_pm(0, pm_pipe_path("cmd", buf, sizeof(buf)));
  assert_string_equal("\\\\.\\pipe\\cmd", buf);
  assert_pm(0, pm_pipe_path("\\\\.\\pipe\\cmd", buf, sizeof(buf)));
  assert_string_equal("\\\\.\\pipe\\cmd", buf);
  assert_pm(0, pm_pipe_dir(buf, sizeof(buf)));
  assert_string_equal("\\\\.\\pipe", buf);
  assert_pm(PM_EPIPENAME, pm_pipe_path("/run/pipemsg/cmd", buf, sizeof(buf)));
  assert_pm(PM_EPIPENAME, pm_pipe_path("\\\\server\\pipe\\cmd", buf, sizeof(buf)));
  assert_pm(PM_EPIPENAME, pm_pipe_path("\\\\.\\pipe\\", buf, sizeof(buf)));
  assert_pm(PM_EPIPENAME, pm_pipe_path("C:\\temp\\cmd", buf, sizeof(buf)));
  assert_pm(PM_EPIPENAME, pm_pipe_path("a/b", buf, sizeof(buf)));
  assert_pm(PM_EPIPENAME, pm_pipe_path("..", buf, sizeof(buf)));
  /* Windows folds ".", ".." and empty components before it opens a name: \\.\pipe\..\C:\x
   * is the file C:\x. Checked after the prefix as without it. */
  {
    static const char *const refused[] = {
        "\\\\.\\pipe\\..\\C:\\x", "\\\\.\\pipe\\a\\..\\..\\x", "\\\\.\\pipe\\a:b",
        "\\\\.\\pipe\\\\x",     "\\\\.\\pipe\\.",              "\\\\.\\pipe\\a/b",
        "..\\x",                "a\\.\\b",                  "a\\..",
        "a:b",                  "a\\\\b",                   "a\\"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
      if (pm_pipe_path(refused[i], buf, sizeof(buf)) != PM_EPIPENAME) {
        print_error("'%s' was not refused (%s)\n", refused[i], buf);
        fail();
      }
    }
  }
  assert_pm(0, pm_pipe_path("a\\b", buf, sizeof(buf)));
  assert_string_equal("\\\\.\\pipe\\a\\b", buf);
  assert_pm(PM_EINVAL, pm_pipe_path("", buf, sizeof(buf)));
  memset(name, 'n', sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  assert_pm(PM_ENAMETOOLONG, pm_pipe_path(name, buf, sizeof(buf)));
}

/* A call in each encoding over the library's own server and client. */
static void test_named_pipe_command_call(void **state) {
  pm_client_options o;
  fixture f;
  int rc;
  (void)state;
  fixture_start(&f, 0);
  memset(&o, 0, sizeof(o));
  o.connect_timeout_ms = scaled_ms(3000);
  o.response_timeout_ms = scaled_ms(3000);
  o.expect_owner_uid = 0;
  assert_string_equal(PM_RESULT_OK, call(f.cmd_name, "GetStatus", PM_ENC_JSON, &o, &rc));
  assert_pm(0, rc);
  assert_string_equal(PM_RESULT_OK, call(f.cmd_name, "GetStatus", PM_ENC_XML, &o, &rc));
  assert_pm(0, rc);
  /* The full name reaches the same pipe. */
  {
    char full[160];
    snprintf(full, sizeof(full), "\\\\.\\pipe\\%s", f.cmd_name);
    assert_string_equal(PM_RESULT_OK, call(full, "GetStatus", PM_ENC_JSON, &o, &rc));
  }
  uv_mutex_lock(&f.lock);
  assert_int_equal(3, f.calls);
  assert_int_equal(-1, f.peer.uid);
  assert_int_equal(-1, f.peer.ngroups);
  uv_mutex_unlock(&f.lock);
  fixture_stop(&f);
}

/* The peer's pid and user SID (impersonation). Wine 8 reports both within one process, but has
 * one user for every process: a peer of another user needs a real Windows. */
static void test_named_pipe_peer_identity(void **state) {
  pm_client_options o;
  fixture f;
  int rc;
  (void)state;
  fixture_start(&f, 0);
  memset(&o, 0, sizeof(o));
  assert_string_equal(PM_RESULT_OK, call(f.cmd_name, "GetStatus", PM_ENC_JSON, &o, &rc));
  uv_mutex_lock(&f.lock);
  assert_int_equal((long long)GetCurrentProcessId(), f.peer.pid);
  assert_true(strncmp(f.peer.sid, "S-1-", 4) == 0);
  uv_mutex_unlock(&f.lock);
  fixture_stop(&f);
}

/* A server of our own user passes the owner check (GetNamedPipeServerProcessId, its token's
 * user), with or without another expected SID. A server of another user is refused: that needs
 * a second user, so a real Windows (wine has one user). */
static void test_named_pipe_owner_check(void **state) {
  pm_client_options o;
  fixture f;
  int rc;
  (void)state;
  fixture_start(&f, 0);
  memset(&o, 0, sizeof(o));
  o.connect_timeout_ms = scaled_ms(3000);
  o.response_timeout_ms = scaled_ms(3000);
  call(f.cmd_name, "GetStatus", PM_ENC_JSON, &o, &rc);
  assert_pm(0, rc);
  o.expect_owner_sid = "S-1-5-21-1-2-3-4242";
  call(f.cmd_name, "GetStatus", PM_ENC_JSON, &o, &rc);
  assert_pm(0, rc);
  uv_mutex_lock(&f.lock);
  assert_int_equal(2, f.calls);
  uv_mutex_unlock(&f.lock);
  fixture_stop(&f);
}

/* No service: retried until the connect deadline, then ConnectionTimeout. */
static void test_named_pipe_connect_timeout(void **state) {
  pm_client_options o;
  char name[96];
  uint64_t start, took;
  int rc;
  (void)state;
  unique_name(name, sizeof(name), "nobody");
  memset(&o, 0, sizeof(o));
  o.connect_timeout_ms = 300;
  o.expect_owner_uid = -1;
  start = pm_test_now_ms();
  call(name, "GetStatus", PM_ENC_JSON, &o, &rc);
  took = pm_test_now_ms() - start;
  assert_pm(PM_ECONNTIMEOUT, rc);
  /* Never more than a retry (20 ms) early; late by at most a loaded machine's scheduling. */
  if (took < 270 || took > 3000) {
    print_error("gave up after %llu ms, deadline 300 ms\n", (unsigned long long)took);
    fail();
  }
}

/* A service that never answers: the call ends at its response deadline (overlapped I/O
 * cancelled), not later. */
static void test_named_pipe_response_timeout(void **state) {
  pm_client_options o;
  fixture f;
  uint64_t start, took, deadline = scaled_ms(300);
  int rc;
  (void)state;
  fixture_start(&f, 0);
  f.hold = 1;
  memset(&o, 0, sizeof(o));
  o.connect_timeout_ms = scaled_ms(3000);
  o.response_timeout_ms = (uint32_t)deadline;
  o.expect_owner_uid = 0;
  start = pm_test_now_ms();
  call(f.cmd_name, "GetStatus", PM_ENC_JSON, &o, &rc);
  took = pm_test_now_ms() - start;
  assert_pm(PM_ETIMEDOUT, rc);
  if (took < deadline - 20 || took > deadline + 5000) {
    print_error("timed out after %llu ms, deadline %llu ms\n", (unsigned long long)took,
                (unsigned long long)deadline);
    fail();
  }
  fixture_stop(&f);
}

/* Options the named pipes cannot honour are refused, not ignored. */
static void test_named_pipe_bad_options(void **state) {
  pm_command_server_options co;
  pm_command_server *s = NULL;
  uv_loop_t loop;
  char name[96];
  (void)state;
  unique_name(name, sizeof(name), "opts");
  assert_int_equal(0, uv_loop_init(&loop));
  memset(&co, 0, sizeof(co));
  co.handler = handler;
  co.pipe_sddl = "D:(this is not SDDL";
  assert_pm(PM_EINVAL, pm_command_server_start(&loop, name, &co, &s));
  co.pipe_sddl = NULL;
  co.listen_fd = 3;
  assert_pm(PM_EINVAL, pm_command_server_start(&loop, name, &co, &s));
  /* A descriptor that only lets SYSTEM in is still a valid one to serve with. */
  co.listen_fd = 0;
  co.pipe_sddl = "D:P(A;;GA;;;SY)";
  assert_pm(0, pm_command_server_start(&loop, name, &co, &s));
  pm_command_server_close(s, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

/* A second server on a name a live one serves fails to start (FILE_FLAG_FIRST_PIPE_INSTANCE),
 * and a descriptor that keeps us out is enforced. */
static void test_named_pipe_first_instance_and_dacl(void **state) {
  pm_command_server_options co;
  pm_command_server *s = NULL, *again = NULL;
  pm_client_options o;
  uv_loop_t loop;
  char name[96];
  int rc;
  (void)state;
  if (pm_test_under_wine()) {
    pm_test_skip("wine enforces neither FILE_FLAG_FIRST_PIPE_INSTANCE nor pipe DACLs");
  }
  unique_name(name, sizeof(name), "first");
  assert_int_equal(0, uv_loop_init(&loop));
  memset(&co, 0, sizeof(co));
  co.handler = handler;
  assert_pm(0, pm_command_server_start(&loop, name, &co, &s));
  assert_pm(PM_EADDRINUSE, pm_command_server_start(&loop, name, &co, &again));
  pm_command_server_close(s, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  /* Deny everyone but SYSTEM: a test run by a user is refused access. */
  co.pipe_sddl = "D:P(A;;GA;;;SY)";
  assert_pm(0, pm_command_server_start(&loop, name, &co, &s));
  memset(&o, 0, sizeof(o));
  o.connect_timeout_ms = 500;
  call(name, "GetStatus", PM_ENC_JSON, &o, &rc);
  assert_pm(PM_EACCES, rc);
  pm_command_server_close(s, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

static void on_event(const pm_event *ev, void *data) {
  fixture *f = data;
  (void)ev;
  uv_mutex_lock(&f->lock);
  f->events++;
  uv_cond_broadcast(&f->cond);
  uv_mutex_unlock(&f->lock);
}

static void on_state(pm_event_client_state state, const char *reason, void *data) {
  fixture *f = data;
  (void)reason;
  uv_mutex_lock(&f->lock);
  if (state == PM_EVENT_CLIENT_CONNECTED)
    f->connected++;
  uv_cond_broadcast(&f->cond);
  uv_mutex_unlock(&f->lock);
}

/* Waits (the condition, never a sleep) until *what reaches n or ms pass; 1 if it did. */
static int await_count(fixture *f, const int *what, int n, uint32_t ms) {
  uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
  int ok;
  uv_mutex_lock(&f->lock);
  while (*what < n) {
    uint64_t now = uv_hrtime();
    if (now >= end || uv_cond_timedwait(&f->cond, &f->lock, end - now) != 0)
      break;
  }
  ok = *what >= n;
  uv_mutex_unlock(&f->lock);
  return ok;
}

/* The library's event client attaches over a named pipe (handshake, heartbeats), receives an
 * event and confirms it. */
static void test_named_pipe_event(void **state) {
  pm_event_client_options eo;
  pm_event_client *c = NULL;
  fixture f;
  (void)state;
  fixture_start(&f, 1);
  memset(&eo, 0, sizeof(eo));
  eo.handshake_timeout_ms = scaled_ms(3000);
  eo.expect_owner_uid = 0;
  eo.on_event = on_event;
  eo.on_state = on_state;
  eo.data = &f;
  assert_pm(0, pm_event_client_start(f.ev_name, &eo, &c));
  assert_true(await_count(&f, &f.connected, 1, scaled_ms(3000)));
  uv_async_send(&f.publish);
  assert_true(await_count(&f, &f.events, 1, scaled_ms(3000)));
  pm_event_client_stop(c);
  uv_mutex_lock(&f.lock);
  assert_pm(0, f.published);
  uv_mutex_unlock(&f.lock);
  fixture_stop(&f);
}

static void count_waiting(void *data) { (*(int *)data)++; }

/* One instance pending at a time: while a connected client waits to be accepted, the next
 * instance already exists (the name never goes without one) and a second client may connect
 * to it; no other instance exists, so a third finds the pipe busy (ERROR_PIPE_BUSY) and
 * pm__dial retries it like a refused connection until its deadline; once the first is
 * accepted, the next instance is offered. Then I/O on a connection whose server end has gone. */
static void test_named_pipe_one_instance_pending(void **state) {
  char name[96], path[PM_PIPE_PATH_MAX + 1], c;
  pm__listen_spec spec = {path, 0, {0, 0, NULL}, 0, NULL};
  pm__listener *l = NULL;
  pm__conn *first = NULL, *second = NULL;
  uv_loop_t loop;
  uv_pipe_t served;
  wchar_t wpath[PM_PIPE_PATH_MAX + 1];
  HANDLE raw, third;
  uint64_t start, took;
  int waiting = 0;
  (void)state;
  unique_name(name, sizeof(name), "pending");
  assert_pm(0, pm_pipe_path(name, path, sizeof(path)));
  assert_int_equal(0, uv_loop_init(&loop));
  assert_pm(0, pm__listen(&loop, &spec, count_waiting, &waiting, &l));
  assert_pm(0, pm__dial(path, uv_hrtime() + scaled_ms(3000) * 1000000ull, &first));
  while (!waiting)
    uv_run(&loop, UV_RUN_ONCE);
  swprintf(wpath, PM_PIPE_PATH_MAX + 1, L"%hs", path);
  raw = CreateFileW(wpath, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
  assert_true(raw != INVALID_HANDLE_VALUE);
  third = CreateFileW(wpath, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
  assert_true(third == INVALID_HANDLE_VALUE);
  assert_int_equal(ERROR_PIPE_BUSY, GetLastError());
  start = pm_test_now_ms();
  assert_pm(PM_ECONNTIMEOUT, pm__dial(path, uv_hrtime() + 300 * 1000000ull, &second));
  took = pm_test_now_ms() - start;
  /* WaitNamedPipeW is bounded by the deadline: never early by more than a retry (20 ms);
   * late by at most a loaded machine's scheduling, scaled under wine. */
  if (took < 280 || took > 300 + scaled_ms(500)) {
    print_error("gave up after %llu ms, deadline 300 ms\n", (unsigned long long)took);
    fail();
  }
  /* Gone before its turn: its instance waits for the next client. */
  CloseHandle(raw);
  assert_int_equal(0, uv_pipe_init(&loop, &served, 0));
  assert_pm(0, pm__accept(l, &served));
  assert_pm(PM_EBUSY, pm__accept(l, &served));
  /* Group membership from the client's token (CheckTokenMembership): everyone is in Everyone
   * (S-1-1-0); nobody is in an unissued domain SID; a name is not a SID. */
  assert_int_equal(1, pm__pipe_peer_in_group(&served, "S-1-1-0"));
  assert_int_equal(0, pm__pipe_peer_in_group(&served, "S-1-5-21-1-2-3-4242"));
  assert_pm(PM_EINVAL, pm__pipe_peer_in_group(&served, "Administrators"));
  assert_pm(0, pm__dial(path, uv_hrtime() + scaled_ms(3000) * 1000000ull, &second));
  /* The server end goes: the end of the stream, and writes fail, never hang. */
  uv_close((uv_handle_t *)&served, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(1, pm__conn_wait(first, 0, uv_hrtime() + scaled_ms(3000) * 1000000ull));
  assert_int_equal(0, pm__conn_recv(first, &c, 1));
  {
    long n = pm__conn_send(first, "a", 1, "b", 1);
    /* Taken into flight, the write then fails; or refused at once. */
    if (n > 0) {
      pm__conn_wait(first, 1, uv_hrtime() + scaled_ms(1000) * 1000000ull);
      n = pm__conn_send(first, "a", 1, NULL, 0);
    }
    assert_pm(PM_EIO, (int)n);
  }
  pm__conn_close(first);
  pm__conn_close(second);
  pm__listener_close(l, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

/* The default descriptor lets interactive users read and write but not create instances:
 * on a pipe FILE_CREATE_PIPE_INSTANCE is the bit of FILE_APPEND_DATA, part of generic write,
 * and with it a user could add server ends of the service's pipes. */
static void test_named_pipe_default_sddl_no_create_instance(void **state) {
  PSECURITY_DESCRIPTOR sd = NULL;
  BOOL present = FALSE, defaulted = FALSE;
  PACL dacl = NULL;
  int users = 0, admins = 0;
  (void)state;
  assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorA(PM_PIPE_SDDL_DEFAULT,
                                                                   SDDL_REVISION_1, &sd, NULL));
  assert_true(GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted));
  assert_true(present && dacl != NULL);
  for (DWORD i = 0; i < dacl->AceCount; i++) {
    ACCESS_ALLOWED_ACE *ace;
    assert_true(GetAce(dacl, i, (void **)&ace));
    assert_int_equal(ACCESS_ALLOWED_ACE_TYPE, ace->Header.AceType);
    if (IsWellKnownSid(&ace->SidStart, WinInteractiveSid)) {
      users++;
      assert_int_equal(0, ace->Mask & (FILE_CREATE_PIPE_INSTANCE | GENERIC_WRITE | GENERIC_ALL));
      assert_int_equal(FILE_READ_DATA | FILE_WRITE_DATA,
                       ace->Mask & (FILE_READ_DATA | FILE_WRITE_DATA));
    } else {
      assert_true(IsWellKnownSid(&ace->SidStart, WinLocalSystemSid) ||
                  IsWellKnownSid(&ace->SidStart, WinBuiltinAdministratorsSid));
      admins++;
    }
  }
  assert_int_equal(1, users);
  assert_int_equal(2, admins);
  LocalFree(sd);
}

/* A client connecting and hanging up as fast as it can. */
typedef struct churn {
  wchar_t name[PM_PIPE_PATH_MAX + 1];
  volatile LONG stop;
  LONG connects;
} churn;

static void churn_run(void *arg) {
  churn *c = arg;
  while (!InterlockedCompareExchange(&c->stop, 0, 0)) {
    HANDLE h = CreateFileW(c->name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0,
                           NULL);
    if (h != INVALID_HANDLE_VALUE) {
      CloseHandle(h);
      InterlockedIncrement(&c->connects);
    } else {
      Sleep(0);
    }
  }
}

/* The name never goes without an instance while clients come and go: one with none no longer
 * exists, and on Windows whoever creates it next owns it (a squatter's first instance would
 * succeed and the service's next instance join the squatter's pipe, or fail). A probe asking
 * for the name all the while never hears ERROR_FILE_NOT_FOUND. */
static void test_named_pipe_never_without_instance(void **state) {
  fixture f;
  churn c;
  uv_thread_t t;
  uint64_t until;
  long probes = 0, missing = 0;
  char path[PM_PIPE_PATH_MAX + 1];
  (void)state;
  fixture_start(&f, 0);
  assert_pm(0, pm_pipe_path(f.cmd_name, path, sizeof(path)));
  memset(&c, 0, sizeof(c));
  swprintf(c.name, PM_PIPE_PATH_MAX + 1, L"%hs", path);
  assert_int_equal(0, uv_thread_create(&t, churn_run, &c));
  until = pm_test_now_ms() + 3000;
  while (pm_test_now_ms() < until) {
    probes++;
    if (!WaitNamedPipeW(c.name, 1) && GetLastError() == ERROR_FILE_NOT_FOUND)
      missing++;
  }
  InterlockedExchange(&c.stop, 1);
  assert_int_equal(0, uv_thread_join(&t));
  print_message("%ld connections, %ld probes, %ld without an instance\n", (long)c.connects,
                probes, missing);
  fixture_stop(&f);
  assert_true(c.connects > 10);
  assert_int_equal(0, missing);
}

/* A raw pipe named name, created with descriptor sddl (NULL: none), as a squatter would. */
static HANDLE raw_pipe(const char *name, const char *sddl) {
  PSECURITY_DESCRIPTOR sd = NULL;
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, FALSE};
  char path[PM_PIPE_PATH_MAX + 1];
  wchar_t wpath[PM_PIPE_PATH_MAX + 1];
  HANDLE h;
  assert_pm(0, pm_pipe_path(name, path, sizeof(path)));
  swprintf(wpath, PM_PIPE_PATH_MAX + 1, L"%hs", path);
  if (sddl != NULL) {
    assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl, SDDL_REVISION_1, &sd,
                                                                     NULL));
    sa.lpSecurityDescriptor = sd;
  }
  h = CreateNamedPipeW(wpath, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED, PIPE_TYPE_BYTE,
                       PIPE_UNLIMITED_INSTANCES, 4096, 4096, 0, sddl != NULL ? &sa : NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  LocalFree(sd);
  return h;
}

/* The client's owner check rests on the pipe object's owner, not on the serving process (its
 * pid can be reused, even become ours): a pipe served by this very process but owned by a
 * stranger is refused, as is one without an owner (wine's, when its creator named none) or
 * with an owner nobody expects; one owned by LocalSystem or Administrators is trusted. */
static void test_named_pipe_owner_is_the_pipes(void **state) {
  static const struct {
    const char *sddl;
    int rc;
  } cases[] = {{"O:S-1-5-21-1-2-3-4242D:(A;;GA;;;WD)", PM_ENOTAUTH},
               {"O:S-1-5-21-1-2-3-4243D:(A;;GA;;;WD)", 0},
               {"O:SYD:(A;;GA;;;WD)", 0},
               {"O:BAD:(A;;GA;;;WD)", 0},
               {"O:IUD:(A;;GA;;;WD)", PM_ENOTAUTH},
               {NULL, PM_ENOTAUTH}};
  pm__owner expect = {0, "S-1-5-21-1-2-3-4243"};
  char name[96], path[PM_PIPE_PATH_MAX + 1];
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    pm__conn *c = NULL;
    HANDLE h;
    int rc;
    unique_name(name, sizeof(name), "owner");
    assert_pm(0, pm_pipe_path(name, path, sizeof(path)));
    h = raw_pipe(name, cases[i].sddl);
    /* Under wine a pipe without an owner is a pipe whose creator named none; Windows always
     * gives one (the creator's default owner: our user, trusted). */
    if (cases[i].sddl == NULL && !pm_test_under_wine()) {
      CloseHandle(h);
      continue;
    }
    assert_pm(0, pm__dial(path, uv_hrtime() + scaled_ms(3000) * 1000000ull, &c));
    rc = pm__conn_check_owner(c, &expect);
    if (rc != cases[i].rc) {
      print_error("pipe \"%s\": %d, wanted %d\n", cases[i].sddl ? cases[i].sddl : "(none)", rc,
                  cases[i].rc);
      fail();
    }
    pm__conn_close(c);
    CloseHandle(h);
  }
}

typedef struct failure_log {
  int entries;
  char reason[PM_REASON_MAX];
} failure_log;

static void on_failure_log(const pm_command_log *e, void *data) {
  failure_log *fl = data;
  if (e->peer.pid < 0 && e->command == NULL && e->result == NULL) {
    fl->entries++;
    snprintf(fl->reason, sizeof(fl->reason), "%s", e->reason);
  }
}

/* A name someone else created first (under wine FILE_FLAG_FIRST_PIPE_INSTANCE does not stop us
 * joining it) is in use: the first instance's pipe has an owner that is not ours. A pipe whose
 * owner changes under a running server (a client with WRITE_OWNER; wine enforces no DACL) is
 * no longer ours: the listener reports it through the log callback and serves no more. */
static void test_named_pipe_foreign_owner(void **state) {
  pm_command_server_options co;
  pm_command_server *s = NULL;
  failure_log fl;
  uv_loop_t loop;
  char name[96], path[PM_PIPE_PATH_MAX + 1];
  wchar_t wpath[PM_PIPE_PATH_MAX + 1];
  PSID stranger = NULL;
  HANDLE squat, h, h2;
  uint64_t until;
  (void)state;
  memset(&fl, 0, sizeof(fl));
  assert_int_equal(0, uv_loop_init(&loop));
  memset(&co, 0, sizeof(co));
  co.handler = handler;
  co.log = on_failure_log;
  co.data = &fl;
  unique_name(name, sizeof(name), "squat");
  squat = raw_pipe(name, "O:S-1-5-21-1-2-3-4242D:(A;;GA;;;WD)");
  assert_pm(PM_EADDRINUSE, pm_command_server_start(&loop, name, &co, &s));
  CloseHandle(squat);
  assert_int_equal(0, uv_run(&loop, UV_RUN_NOWAIT));

  if (!pm_test_under_wine()) {
    /* Windows lets nobody but an owner-capable account change the owner (WRITE_OWNER is not
     * in the default descriptor's grant to users, and the SID must be ours to give). */
    assert_int_equal(0, uv_loop_close(&loop));
    pm_test_skip("changing a served pipe's owner to a stranger needs wine's lax checks");
  }
  unique_name(name, sizeof(name), "reowned");
  assert_pm(0, pm_command_server_start(&loop, name, &co, &s));
  assert_pm(0, pm_pipe_path(name, path, sizeof(path)));
  swprintf(wpath, PM_PIPE_PATH_MAX + 1, L"%hs", path);
  h = CreateFileW(wpath, GENERIC_READ | GENERIC_WRITE | WRITE_OWNER, 0, NULL, OPEN_EXISTING, 0,
                  NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  assert_true(ConvertStringSidToSidA("S-1-5-21-1-2-3-4242", &stranger));
  assert_int_equal(ERROR_SUCCESS, SetSecurityInfo(h, SE_KERNEL_OBJECT,
                                                  OWNER_SECURITY_INFORMATION, stranger, NULL,
                                                  NULL, NULL));
  LocalFree(stranger);
  /* The listener checks the instance it makes once a client connects: h's, if it had not
   * made that one yet, else this one's (which may then find no instance: not asserted). */
  h2 = CreateFileW(wpath, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
  until = pm_test_now_ms() + scaled_ms(2000);
  while (fl.entries == 0 && pm_test_now_ms() < until) {
    uv_run(&loop, UV_RUN_NOWAIT);
    Sleep(10);
  }
  CloseHandle(h);
  if (h2 != INVALID_HANDLE_VALUE)
    CloseHandle(h2);
  assert_int_equal(1, fl.entries);
  assert_non_null(strstr(fl.reason, "listener: no longer ours"));
  assert_non_null(strstr(fl.reason, name));
  /* Served no more: the listener made no instance after the one it found foreign. */
  Sleep(50);
  assert_false(WaitNamedPipeW(wpath, 1));
  assert_int_equal(ERROR_FILE_NOT_FOUND, GetLastError());
  pm_command_server_close(s, NULL, NULL);
  assert_int_equal(0, uv_run(&loop, UV_RUN_DEFAULT));
  assert_int_equal(0, uv_loop_close(&loop));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_named_pipe_names),
      cmocka_unit_test(test_named_pipe_default_sddl_no_create_instance),
      cmocka_unit_test(test_named_pipe_command_call),
      cmocka_unit_test(test_named_pipe_peer_identity),
      cmocka_unit_test(test_named_pipe_owner_check),
      cmocka_unit_test(test_named_pipe_connect_timeout),
      cmocka_unit_test(test_named_pipe_response_timeout),
      cmocka_unit_test(test_named_pipe_bad_options),
      cmocka_unit_test(test_named_pipe_first_instance_and_dacl),
      cmocka_unit_test(test_named_pipe_event),
      cmocka_unit_test(test_named_pipe_one_instance_pending),
      cmocka_unit_test(test_named_pipe_never_without_instance),
      cmocka_unit_test(test_named_pipe_owner_is_the_pipes),
      cmocka_unit_test(test_named_pipe_foreign_owner),
  };
  if (pm_test_under_wine())
    print_message("under wine: deadlines chosen by the tests scaled by %d\n", WINE_SCALE);
  /* The servers write to clients that may be gone, as an application's would. */
  pm_test_ignore_sigpipe();
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
