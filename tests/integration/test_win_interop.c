/* Interoperability on Windows: a client written with CreateFileW, WriteFile and ReadFile only
 * (no libuv, no code of the project's: frames built and read by hand), against the library's
 * command and event servers serving named pipes in this process. It calls a command in JSON
 * and in XML, gets BadRequest for a malformed request, is cut off at the request deadline,
 * attaches to the event pipe, answers heartbeats and confirms an event. */
#include <winsock2.h>
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Under wine a round trip is 20-40 times slower (docs/windows.md): the waits this test
 * chooses are scaled there; the product's deadlines (the 3 s request deadline) never are. */
#define WINE_SCALE 20
#define REQUEST_DEADLINE_MS 3000

static DWORD scaled_ms(DWORD ms) { return pm_test_under_wine() ? ms * WINE_SCALE : ms; }

/* ---- the raw client ------------------------------------------------------------------- */

static HANDLE raw_open(const char *name) {
  wchar_t path[160];
  HANDLE h;
  swprintf(path, sizeof(path) / sizeof(path[0]), L"\\\\.\\pipe\\%hs", name);
  for (int i = 0; i < 100; i++) {
    h = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED, NULL);
    if (h != INVALID_HANDLE_VALUE)
      return h;
    if (GetLastError() != ERROR_PIPE_BUSY)
      break;
    WaitNamedPipeW(path, 1000);
  }
  print_error("CreateFileW(%ls): error %lu\n", path, (unsigned long)GetLastError());
  fail();
  return INVALID_HANDLE_VALUE;
}

/* One overlapped operation, waited for at most ms and cancelled after: bytes moved, 0 for the
 * end of the stream, -1 on timeout, -2 on error. */
static long raw_io(HANDLE h, int writing, void *buf, DWORD len, DWORD ms) {
  OVERLAPPED ov;
  DWORD n = 0;
  BOOL ok;
  long rc;
  memset(&ov, 0, sizeof(ov));
  ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  assert_non_null(ov.hEvent);
  ok = writing ? WriteFile(h, buf, len, NULL, &ov) : ReadFile(h, buf, len, NULL, &ov);
  if (!ok && GetLastError() != ERROR_IO_PENDING) {
    DWORD err = GetLastError();
    CloseHandle(ov.hEvent);
    return err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED || err == ERROR_NO_DATA
               ? 0
               : -2;
  }
  if (WaitForSingleObject(ov.hEvent, ms) != WAIT_OBJECT_0) {
    CancelIoEx(h, &ov);
    GetOverlappedResult(h, &ov, &n, TRUE);
    CloseHandle(ov.hEvent);
    return -1;
  }
  if (GetOverlappedResult(h, &ov, &n, FALSE))
    rc = (long)n;
  else
    rc = GetLastError() == ERROR_BROKEN_PIPE || GetLastError() == ERROR_PIPE_NOT_CONNECTED ? 0
                                                                                          : -2;
  CloseHandle(ov.hEvent);
  return rc;
}

/* Sends payload behind its 4-byte big-endian length. */
static void raw_send(HANDLE h, const char *payload) {
  size_t len = strlen(payload), off = 0;
  unsigned char *frame = malloc(len + 4);
  assert_non_null(frame);
  frame[0] = (unsigned char)(len >> 24);
  frame[1] = (unsigned char)(len >> 16);
  frame[2] = (unsigned char)(len >> 8);
  frame[3] = (unsigned char)len;
  memcpy(frame + 4, payload, len);
  while (off < len + 4) {
    long n = raw_io(h, 1, frame + off, (DWORD)(len + 4 - off), scaled_ms(2000));
    assert_true(n > 0);
    off += (size_t)n;
  }
  free(frame);
}

/* Reads exactly len bytes: 1, or 0 at the end of the stream, -1 on timeout. */
static int raw_read_all(HANDLE h, unsigned char *buf, size_t len, DWORD ms) {
  size_t off = 0;
  while (off < len) {
    long n = raw_io(h, 0, buf + off, (DWORD)(len - off), ms);
    if (n == -1)
      return -1;
    if (n <= 0)
      return 0;
    off += (size_t)n;
  }
  return 1;
}

/* The next frame's payload as a string (free()), or NULL at the end of the stream. */
static char *raw_recv(HANDLE h, DWORD ms) {
  unsigned char hdr[4];
  size_t len;
  char *p;
  int rc = raw_read_all(h, hdr, 4, ms);
  if (rc <= 0) {
    assert_int_not_equal(-1, rc); /* a timeout is a failure here */
    return NULL;
  }
  len = ((size_t)hdr[0] << 24) | ((size_t)hdr[1] << 16) | ((size_t)hdr[2] << 8) | hdr[3];
  assert_true(len < 1024 * 1024);
  p = malloc(len + 1);
  assert_non_null(p);
  assert_int_equal(1, raw_read_all(h, (unsigned char *)p, len, ms));
  p[len] = '\0';
  return p;
}

static void assert_contains(const char *text, const char *part) {
  if (text == NULL || strstr(text, part) == NULL) {
    print_error("expected \"%s\" in: %s\n", part, text ? text : "(end of stream)");
    fail();
  }
}

/* The integer after "key": in a JSON text. */
static long long json_int(const char *text, const char *key) {
  char pat[64];
  const char *at;
  snprintf(pat, sizeof(pat), "\"%s\":", key);
  at = strstr(text, pat);
  assert_non_null(at);
  return strtoll(at + strlen(pat), NULL, 10);
}

/* ---- the library's servers, on a loop thread ------------------------------------------ */

typedef struct fixture {
  uv_loop_t loop;
  uv_async_t stop, publish;
  uv_thread_t thread;
  pm_command_server *cmd;
  pm_event_server *ev;
  char cmd_name[96], ev_name[96];
} fixture;

static void handler(pm_command_call *call, void *data) {
  (void)data;
  pm_command_call_reply(call, PM_RESULT_OK, "served",
                        json_pack("{s:s}", "Echo", pm_command_call_command(call)));
}

static void on_stop(uv_async_t *a) {
  fixture *f = a->data;
  pm_command_server_close(f->cmd, NULL, NULL);
  pm_event_server_close(f->ev, NULL, NULL);
  uv_close((uv_handle_t *)&f->publish, NULL);
  uv_close((uv_handle_t *)&f->stop, NULL);
}

static void on_publish(uv_async_t *a) {
  fixture *f = a->data;
  /* Not asserted here (the loop's thread): the client waiting for the event fails instead. */
  pm_event_server_publish(f->ev, "StatusChanged", json_pack("{s:s}", "State", "Up"), NULL);
}

static void run_loop(void *arg) { uv_run(&((fixture *)arg)->loop, UV_RUN_DEFAULT); }

static int setup(void **state) {
  static int n;
  pm_command_server_options co;
  pm_event_server_options eo;
  fixture *f = calloc(1, sizeof(*f));
  if (f == NULL || uv_loop_init(&f->loop) != 0)
    return -1;
  snprintf(f->cmd_name, sizeof(f->cmd_name), "pipemsg-interop-%lu-cmd-%d",
           (unsigned long)GetCurrentProcessId(), ++n);
  snprintf(f->ev_name, sizeof(f->ev_name), "pipemsg-interop-%lu-ev-%d",
           (unsigned long)GetCurrentProcessId(), n);
  memset(&co, 0, sizeof(co));
  co.handler = handler;
  memset(&eo, 0, sizeof(eo));
  /* Heartbeats every 200 ms: several reach the client within the test. */
  eo.heartbeat_ms = 200;
  eo.ack_timeout_ms = scaled_ms(1000);
  eo.handshake_timeout_ms = scaled_ms(3000);
  if (pm_command_server_start(&f->loop, f->cmd_name, &co, &f->cmd) != 0 ||
      pm_event_server_start(&f->loop, f->ev_name, &eo, &f->ev) != 0)
    return -1;
  uv_async_init(&f->loop, &f->stop, on_stop);
  uv_async_init(&f->loop, &f->publish, on_publish);
  f->stop.data = f->publish.data = f;
  if (uv_thread_create(&f->thread, run_loop, f) != 0)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  uv_async_send(&f->stop);
  uv_thread_join(&f->thread);
  if (uv_loop_close(&f->loop) != 0)
    return -1;
  free(f);
  return 0;
}

/* ---- the tests -------------------------------------------------------------------------- */

static void test_win_interop_call_json(void **state) {
  fixture *f = *state;
  HANDLE h = raw_open(f->cmd_name);
  char *resp;
  raw_send(h, "{\"Request\":{\"Id\":7,\"Command\":\"GetVersion\"}}");
  resp = raw_recv(h, scaled_ms(3000));
  assert_contains(resp, "\"Response\"");
  assert_contains(resp, "\"Result\":\"Ok\"");
  assert_contains(resp, "\"Id\":7");
  assert_contains(resp, "\"Echo\":\"GetVersion\"");
  free(resp);
  assert_null(raw_recv(h, scaled_ms(3000))); /* one request per connection: closed */
  CloseHandle(h);
}

static void test_win_interop_call_xml(void **state) {
  fixture *f = *state;
  HANDLE h = raw_open(f->cmd_name);
  char *resp;
  raw_send(h, "<?xml version=\"1.0\"?>\n<Request><Id>5</Id><Command>GetVersion</Command>"
              "</Request>");
  resp = raw_recv(h, scaled_ms(3000));
  assert_contains(resp, "<Response>");
  assert_contains(resp, "<Result>Ok</Result>");
  assert_contains(resp, "<Id>5</Id>");
  free(resp);
  CloseHandle(h);
}

static void test_win_interop_bad_request(void **state) {
  fixture *f = *state;
  HANDLE h = raw_open(f->cmd_name);
  char *resp;
  raw_send(h, "{\"Request\":{\"Command\":");
  resp = raw_recv(h, scaled_ms(3000));
  assert_contains(resp, "\"Result\":\"BadRequest\"");
  free(resp);
  CloseHandle(h);
}

/* A frame over the limit is answered BadRequest from its header, while the client is still
 * writing; the service then lingers (reads and discards) until the client closes. */
static void test_win_interop_oversized_answered(void **state) {
  fixture *f = *state;
  HANDLE h = raw_open(f->cmd_name);
  static unsigned char body[64 * 1024];
  unsigned char hdr[4] = {0x01, 0x00, 0x00, 0x01}; /* 16 MiB + 1: past the default limit */
  char *resp;
  assert_int_equal(4, raw_io(h, 1, hdr, 4, scaled_ms(2000)));
  memset(body, ' ', sizeof(body));
  assert_true(raw_io(h, 1, body, sizeof(body), scaled_ms(2000)) > 0);
  resp = raw_recv(h, scaled_ms(3000));
  assert_contains(resp, "\"Result\":\"BadRequest\"");
  free(resp);
  /* Still writing after the answer: taken (discarded), or the pipe already closed. */
  assert_true(raw_io(h, 1, body, sizeof(body), scaled_ms(2000)) >= 0);
  CloseHandle(h);
}

/* Half a header, then silence: closed at the 3 s request deadline, without a response. */
static void test_win_interop_request_deadline(void **state) {
  fixture *f = *state;
  HANDLE h = raw_open(f->cmd_name);
  unsigned char half[2] = {0, 0}, c;
  uint64_t start = pm_test_now_ms(), took;
  assert_int_equal(2, raw_io(h, 1, half, 2, scaled_ms(2000)));
  /* The end of the stream, not a frame, and not before the deadline. */
  assert_int_equal(0, raw_read_all(h, &c, 1, REQUEST_DEADLINE_MS + scaled_ms(2000)));
  took = pm_test_now_ms() - start;
  /* From our connect, which precedes the server's accept (lower bound 100 ms of slack for
   * clocks); late by at most a loaded machine's scheduling, scaled under wine. */
  if (took < REQUEST_DEADLINE_MS - 100 || took > REQUEST_DEADLINE_MS + scaled_ms(2000)) {
    print_error("cut off after %llu ms, deadline %d ms\n", (unsigned long long)took,
                REQUEST_DEADLINE_MS);
    fail();
  }
  CloseHandle(h);
}

/* Attach, answer heartbeats (Handshake with the service's Seq), receive an event, confirm it;
 * the service then sends the next heartbeat, not the event again. */
static void test_win_interop_events(void **state) {
  fixture *f = *state;
  HANDLE h = raw_open(f->ev_name);
  char *m, buf[96];
  long long id = 0;
  int after = 0;
  raw_send(h, "{\"Handshake\":{\"Seq\":1,\"Version\":1,\"Client\":\"raw-win32\"}}");
  m = raw_recv(h, scaled_ms(3000));
  assert_contains(m, "\"Handshake\"");
  free(m);
  uv_async_send(&f->publish);
  while (id == 0) {
    m = raw_recv(h, scaled_ms(3000));
    assert_non_null(m);
    if (strstr(m, "\"Handshake\"") != NULL) {
      snprintf(buf, sizeof(buf), "{\"Handshake\":{\"Seq\":%lld}}", json_int(m, "Seq"));
      raw_send(h, buf);
    } else {
      assert_contains(m, "\"Event\"");
      assert_contains(m, "\"StatusChanged\"");
      id = json_int(m, "Id");
    }
    free(m);
  }
  snprintf(buf, sizeof(buf), "{\"EventConfirmation\":{\"Id\":%lld}}", id);
  raw_send(h, buf);
  /* Confirmed: what comes next are heartbeats, answered, and never the event again. */
  while (after < 2) {
    m = raw_recv(h, scaled_ms(3000));
    assert_contains(m, "\"Handshake\"");
    snprintf(buf, sizeof(buf), "{\"Handshake\":{\"Seq\":%lld}}", json_int(m, "Seq"));
    raw_send(h, buf);
    after++;
    free(m);
  }
  CloseHandle(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_win_interop_call_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_win_interop_call_xml, setup, teardown),
      cmocka_unit_test_setup_teardown(test_win_interop_bad_request, setup, teardown),
      cmocka_unit_test_setup_teardown(test_win_interop_oversized_answered, setup, teardown),
      cmocka_unit_test_setup_teardown(test_win_interop_request_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_win_interop_events, setup, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
