/* The command server, the event server and the event client running out of memory: the Nth
 * allocation of the library fails (pm__alloc_fail_after), for every N until the whole exchange
 * succeeds, so each allocation on the path fails once. Whatever fails must fail cleanly
 * (PM_ENOMEM, or the connection closed) and leave nothing behind (ASan and valgrind check the
 * leaks), and once memory is back a server must serve a new client (and lose no event it
 * accepted).
 *
 * The allocation countdown is one counter for the whole process, so while it runs only the
 * code under test allocates through the library: a server runs on this thread's loop and its
 * client is a raw socket; the event client runs on its own thread and its service is a raw
 * socket on this one. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

/* How long to wait for what needs no particular time. */
#define WAIT_MS ((int)pm_test_margin_ms(10000))
/* More allocations than any path below makes: a loop reaching it never succeeded. */
#define OOM_TRIES 300

static char dir[64];
static char path[128];
static uv_loop_t loop;
static pm_event_server *server;
static pm_command_server *command_server;

static int setup(void **state) {
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  pm_test_pipe_path(dir, "evt", path, sizeof(path));
  assert_int_equal(0, uv_loop_init(&loop));
  server = NULL;
  command_server = NULL;
  return 0;
}

static void close_server(void) {
  pm_event_server_close(server, NULL, NULL);
  server = NULL;
  pm_command_server_close(command_server, NULL, NULL);
  command_server = NULL;
  uv_run(&loop, UV_RUN_DEFAULT);
}

static int teardown(void **state) {
  (void)state;
  pm__alloc_fail_after(0);
  close_server();
  assert_int_equal(0, uv_loop_close(&loop));
  pm_test_dir_remove(dir);
  return 0;
}

/* ---- the server ----------------------------------------------------------------------------- */

static const char *const extra_transient[] = {"Blip", NULL};

static void server_options(pm_event_server_options *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->transient = extra_transient;
  /* No secondary handshake while a step waits: each test drives every message itself. */
  opts->heartbeat_ms = 60000;
}

/* Runs the loop until fd has something to read (data or the end of the stream): 1, or 0 when
 * ms passed. */
static int pump_until_readable(int fd, int ms) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)ms;
  while (pm_test_now_ms() < deadline) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uv_run(&loop, UV_RUN_NOWAIT);
    if (poll(&p, 1, 2) > 0)
      return 1;
  }
  return 0;
}

/* The next frame from the server, the loop running meanwhile; NULL at the end of the stream.
 * Raw text: decoding would allocate through the library. */
static char *next_frame(int fd) {
  size_t len;
  assert_true(pump_until_readable(fd, WAIT_MS));
  return pm_test_recv_frame(fd, WAIT_MS, &len);
}

static pm_event_stats stats(void) {
  pm_event_stats st;
  pm_event_server_stats(server, &st);
  return st;
}

/* Runs the loop until the server has taken in what was sent (the confirmation counted, or the
 * session gone). */
static void pump_until_delivered_or_detached(uint64_t delivered) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)WAIT_MS;
  pm_event_stats st = stats();
  while (st.delivered < delivered && st.attached) {
    assert_true(pm_test_now_ms() < deadline);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_sleep(1);
    st = stats();
  }
}

static void send_confirmation(int fd, const char *frame) {
  const char *id = strstr(frame, "\"Id\":");
  char conf[96];
  assert_non_null(id);
  snprintf(conf, sizeof(conf), "{\"EventConfirmation\":{\"Id\":%lld}}", atoll(id + 5));
  /* A server that has closed the session fails the send: the caller sees it detached. */
  (void)pm_test_send_frame(fd, conf);
}

static void test_event_oom_server_start(void **state) {
  pm_event_server_options opts;
  unsigned long n;
  int rc = PM_ENOMEM;
  (void)state;
  server_options(&opts);
  for (n = 1; n < OOM_TRIES && rc != 0; n++) {
    pm__alloc_fail_after(n);
    rc = pm_event_server_start(&loop, path, &opts, &server);
    pm__alloc_fail_after(0);
    if (rc != 0) {
      assert_pm(PM_ENOMEM, rc);
      /* What a failed start set up closes on the loop, the socket file with it. */
      uv_run(&loop, UV_RUN_DEFAULT);
      assert_false(pm_test_pipe_exists(path));
    }
  }
  assert_pm(0, rc);
  /* The server itself, its list of transient types and each of their names. */
  assert_true(n > 4);
  close_server();
  assert_false(pm_test_pipe_exists(path));
}

/* What one run of the exchange reached before an allocation failed. */
typedef enum { GOT_NOTHING, GOT_HANDSHAKE, PUBLISH_FAILED, GOT_EVENT, DELIVERED } reached;

static void test_event_oom_server_session(void **state) {
  pm_event_server_options opts;
  unsigned long n;
  int outcomes[DELIVERED + 1] = {0};
  reached r = GOT_NOTHING;
  (void)state;
  server_options(&opts);
  /* From the second allocation: the first is the session's record, which
   * test_event_oom_server_accept_retry fails. */
  for (n = 2; r != DELIVERED; n++) {
    int64_t id = 0;
    int rc, fd;
    char *f;
    assert_true(n < OOM_TRIES);
    assert_pm(0, pm_event_server_start(&loop, path, &opts, &server));
    fd = pm_test_connect(path);
    assert_true(fd >= 0);

    pm__alloc_fail_after(n);
    r = GOT_NOTHING;
    assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1,\"Version\":1}}"));
    f = next_frame(fd);
    if (f != NULL && strstr(f, "{\"Handshake\":") == f) {
      r = GOT_HANDSHAKE;
      /* The data is taken, also on failure. */
      rc = pm_event_server_publish(server, "Tick", json_pack("{s:i}", "N", (int)n), &id);
      if (rc < 0) {
        assert_pm(PM_ENOMEM, rc);
        r = PUBLISH_FAILED;
        id = 0;
      } else {
        free(f);
        f = next_frame(fd);
        if (f != NULL && strstr(f, "{\"Event\":") == f) {
          r = GOT_EVENT;
          send_confirmation(fd, f);
          pump_until_delivered_or_detached(1);
          if (stats().delivered == 1)
            r = DELIVERED;
        }
      }
    }
    /* Anything short of the next step is the session closed: nothing else is sent. */
    if (r == GOT_NOTHING || r == GOT_HANDSHAKE)
      assert_true(f == NULL || strstr(f, "{\"Disconnect\":") == f);
    if (r == GOT_EVENT)
      assert_false(stats().attached);
    free(f);
    pm__alloc_fail_after(0);
    outcomes[r]++;

    if (r != DELIVERED) {
      /* Memory is back: a new client is served, and an event the server accepted is the first
       * it gets. */
      uint64_t deadline = pm_test_now_ms() + (uint64_t)WAIT_MS;
      int64_t first = id;
      close(fd);
      while (stats().attached) {
        assert_true(pm_test_now_ms() < deadline);
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(1);
      }
      fd = pm_test_connect(path);
      assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1,\"Version\":1}}"));
      f = next_frame(fd);
      assert_non_null(f);
      assert_ptr_equal(f, strstr(f, "{\"Handshake\":"));
      free(f);
      assert_pm(0, pm_event_server_publish(server, "Tick", NULL, first ? NULL : &first));
      f = next_frame(fd);
      assert_non_null(f);
      assert_ptr_equal(f, strstr(f, "{\"Event\":"));
      assert_int_equal(first, atoll(strstr(f, "\"Id\":") + 5));
      free(f);
    }
    close(fd);
    close_server();
  }
  /* Each way out was taken: the handshake's answer, the event and the publish each failed. */
  assert_true(outcomes[GOT_NOTHING] > 0);
  assert_true(outcomes[GOT_HANDSHAKE] > 0);
  assert_true(outcomes[PUBLISH_FAILED] > 0);
  assert_int_equal(1, outcomes[DELIVERED]);
}

/* A connection whose record cannot be allocated waits in the listener, which takes no other
 * until it is accepted: the server asks again until memory is back, and then serves it. */
static void test_event_oom_server_accept_retry(void **state) {
  pm_event_server_options opts;
  int fd;
  char *f;
  (void)state;
  server_options(&opts);
  assert_pm(0, pm_event_server_start(&loop, path, &opts, &server));
  fd = pm_test_connect(path);
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1,\"Version\":1}}"));
  pm__alloc_fail_after(1);
  /* Several retries (every 100 ms) fail: the client waits, neither answered nor dropped. */
  assert_false(pump_until_readable(fd, 500));
  pm__alloc_fail_after(0);
  f = next_frame(fd);
  assert_non_null(f);
  assert_ptr_equal(f, strstr(f, "{\"Handshake\":"));
  free(f);
  close(fd);
}


/* ---- the command server --------------------------------------------------------------------- */

static int reply_rc; /* what the handler's reply returned */

static void command_handler(pm_command_call *call, void *data) {
  (void)data;
  reply_rc = pm_command_call_reply(call, PM_RESULT_OK, "done", json_pack("{s:s}", "Echo", "x"));
}

static void start_command_server(void) {
  pm_command_server_options opts;
  memset(&opts, 0, sizeof(opts));
  opts.handler = command_handler;
  assert_pm(0, pm_command_server_start(&loop, path, &opts, &command_server));
}

#define ECHO_REQUEST "{\"Request\":{\"Command\":\"Echo\"}}"

/* A new connection's request is answered Ok. */
static void assert_command_served(void) {
  int fd = pm_test_connect(path);
  char *f;
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, ECHO_REQUEST));
  f = next_frame(fd);
  assert_non_null(f);
  assert_ptr_equal(f, strstr(f, "{\"Response\":"));
  assert_non_null(strstr(f, "\"Result\":\"Ok\""));
  free(f);
  close(fd);
}

static void test_command_oom_session(void **state) {
  unsigned long n;
  int ok = 0, unanswered = 0;
  (void)state;
  /* From the second allocation: the first is the call's record, which
   * test_command_oom_accept_retry fails. */
  for (n = 2; !ok; n++) {
    int fd;
    char *f;
    assert_true(n < OOM_TRIES);
    start_command_server();
    fd = pm_test_connect(path);
    assert_true(fd >= 0);
    assert_int_equal(0, pm_test_send_frame(fd, ECHO_REQUEST));
    reply_rc = 1;
    pm__alloc_fail_after(n);
    f = next_frame(fd);
    pm__alloc_fail_after(0);
    if (f == NULL) {
      unanswered++;
    } else {
      /* An answer is a whole Response: Ok, or an Error saying what failed. */
      assert_ptr_equal(f, strstr(f, "{\"Response\":"));
      ok = strstr(f, "\"Result\":\"Ok\"") != NULL;
      if (!ok)
        assert_non_null(strstr(f, "\"Result\":\"Error\""));
    }
    /* The handler's reply either went out as asked or said it did not. */
    if (reply_rc != 1)
      assert_true(ok ? reply_rc == 0 : reply_rc < 0);
    free(f);
    close(fd);
    if (!ok)
      assert_command_served();
    close_server();
  }
  /* Once allocations start failing they all do, so the Error answer to a failed reply fails
   * too: each failure closes the connection unanswered. */
  assert_true(unanswered > 5);
}

/* As test_event_oom_server_accept_retry, on the command pipe, where nothing else would ask
 * again either: no other call is alive to end. */
static void test_command_oom_accept_retry(void **state) {
  int fd;
  char *f;
  (void)state;
  start_command_server();
  fd = pm_test_connect(path);
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, ECHO_REQUEST));
  pm__alloc_fail_after(1);
  /* Several retries (every 100 ms) fail: the client waits, neither answered nor dropped. */
  assert_false(pump_until_readable(fd, 500));
  pm__alloc_fail_after(0);
  f = next_frame(fd);
  assert_non_null(f);
  assert_non_null(strstr(f, "\"Result\":\"Ok\""));
  free(f);
  close(fd);
}

/* ---- the client ----------------------------------------------------------------------------- */

/* How long the raw service waits for each message from the client: the client's write may
 * have failed, which it learns only at its handshake deadline (CLIENT_HANDSHAKE_MS). */
#define FRAME_MS ((int)pm_test_margin_ms(1000))
/* Long enough for this thread to answer a handshake it has read, on a loaded machine (and
 * scaled under valgrind); short, as the iterations whose handshake write failed wait for it. */
#define CLIENT_HANDSHAKE_MS ((uint32_t)pm_test_margin_ms(500))

/* What the application saw, filled on the client's thread. */
static uv_mutex_t seen_lock;
static int seen_events;
static int seen_disconnects;
static int seen_other_reason; /* a disconnect whose reason was not running out of memory */
static char seen_reason[PM_REASON_MAX];

static void on_event(const pm_event *ev, void *data) {
  (void)data;
  uv_mutex_lock(&seen_lock);
  if (ev->id == 1 && strcmp(ev->type, "Tick") == 0)
    seen_events++;
  uv_mutex_unlock(&seen_lock);
}

static void on_state(pm_event_client_state st, const char *reason, void *data) {
  (void)data;
  if (st != PM_EVENT_CLIENT_DISCONNECTED)
    return;
  uv_mutex_lock(&seen_lock);
  seen_disconnects++;
  /* Allocations made while reading fail as a failed read (libuv's UV_ENOBUFS). */
  if (strstr(reason, "out of memory") == NULL && strcmp(reason, "read failed") != 0) {
    seen_other_reason++;
    snprintf(seen_reason, sizeof(seen_reason), "%s", reason);
  }
  uv_mutex_unlock(&seen_lock);
}

static int seen_value(const int *v) {
  int n;
  uv_mutex_lock(&seen_lock);
  n = *v;
  uv_mutex_unlock(&seen_lock);
  return n;
}

/* The client's next message as raw text, or NULL. */
static char *client_frame(int fd) {
  size_t len;
  return pm_test_recv_frame(fd, FRAME_MS, &len);
}

static void test_event_oom_client(void **state) {
  pm_event_client_options opts;
  unsigned long n;
  int confirmed = 0, failed_starts = 0, failed_sessions = 0;
  (void)state;
  uv_mutex_init(&seen_lock);
  memset(&opts, 0, sizeof(opts));
  opts.on_event = on_event;
  opts.on_state = on_state;
  opts.handshake_timeout_ms = CLIENT_HANDSHAKE_MS;
  opts.reconnect_min_ms = 20;
  opts.reconnect_max_ms = 100;
  opts.client_name = "oom";
  for (n = 1; !confirmed; n++) {
    pm_event_client *client = NULL;
    int lfd, fd, rc;
    char *f;
    assert_true(n < OOM_TRIES);
    seen_events = seen_disconnects = seen_other_reason = 0;
    lfd = pm_test_bind(path, 4);
    pm__alloc_fail_after(n);
    rc = pm_event_client_start(path, &opts, &client);
    if (rc < 0) {
      pm__alloc_fail_after(0);
      assert_pm(PM_ENOMEM, rc);
      failed_starts++;
      close(lfd);
      unlink(path);
      continue;
    }
    fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    f = client_frame(fd);
    if (f != NULL && strstr(f, "{\"Handshake\":") == f && strstr(f, "\"Client\":\"oom\"") != NULL) {
      free(f);
      f = NULL;
      /* A client that failed on the answer may have hung up before the event is sent. */
      if (pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1,\"Version\":1,\"Epoch\":5,"
                                 "\"HeartbeatMs\":60000}}") == 0 &&
          pm_test_send_frame(fd, "{\"Event\":{\"Id\":1,\"Type\":\"Tick\"}}") == 0)
        f = client_frame(fd);
      confirmed = f != NULL && strcmp(f, "{\"EventConfirmation\":{\"Id\":1}}") == 0;
    }
    free(f);
    if (!confirmed) {
      /* Unless only its write failed (it learns that at its handshake deadline, or never once
       * it is connected), the client says it lost the connection, and why. */
      uint64_t deadline = pm_test_now_ms() + (uint64_t)FRAME_MS;
      while (seen_value(&seen_disconnects) == 0 && pm_test_now_ms() < deadline)
        uv_sleep(5);
      failed_sessions++;
    }
    /* Stopped before memory comes back: the countdown is not shared with a running thread. */
    pm_event_client_stop(client);
    pm__alloc_fail_after(0);
    close(fd);
    close(lfd);
    unlink(path);
    if (seen_other_reason > 0)
      fail_msg("allocation %lu: disconnected because \"%s\"", n, seen_reason);
    /* An event is handed to the application once, whatever failed after. */
    assert_true(seen_events <= 1);
    if (confirmed)
      assert_int_equal(1, seen_events);
  }
  assert_int_equal(2, failed_starts); /* the client's record, then its copy of the name */
  assert_true(failed_sessions > 5);
  uv_mutex_destroy(&seen_lock);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_command_oom_session, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_oom_accept_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_oom_server_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_oom_server_session, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_oom_server_accept_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_event_oom_client, setup, teardown),
  };
  /* The server writes to peers this process has hung up on. */
  signal(SIGPIPE, SIG_IGN);
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
