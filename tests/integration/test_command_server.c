/* The command server and client of libpipemsg in one process: server on a loop thread,
 * blocking client calls from the test thread. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

typedef struct fixture {
  char dir[64];
  char path[128];
  uv_loop_t loop;
  uv_thread_t thread;
  uv_sem_t ready;
  uv_async_t stop;
  uv_timer_t later;
  pm_command_call *held;
  pm_command_server *server;
  pm_command_server_options opts;
  int start_rc;
  unsigned start_delay_ms;
  int refuse;
  unsigned reply_delay_ms;
  pm_peer seen_peer;
  char logged[256];
} fixture;

static fixture fx;

static void reply_now(pm_command_call *call) {
  const char *cmd = pm_command_call_command(call);
  if (strcmp(cmd, "BadData") == 0) {
    pm_command_call_reply(call, PM_RESULT_OK, NULL, json_pack("{s:i}", "not a name", 1));
  } else if (strcmp(cmd, "Big") == 0) {
    /* Far more than a socket buffer holds: the client must read it. */
    size_t n = 4u << 20;
    char *blob = malloc(n + 1);
    memset(blob, 'b', n);
    blob[n] = '\0';
    pm_command_call_reply(call, PM_RESULT_OK, NULL, json_pack("{s:s}", "Blob", blob));
    free(blob);
  }
  else
    pm_command_call_reply(call, PM_RESULT_OK, "done", json_pack("{s:s}", "Echo", cmd));
}

static void on_later(uv_timer_t *t) {
  fixture *f = t->data;
  reply_now(f->held);
  f->held = NULL;
}

static void handler(pm_command_call *call, void *data) {
  fixture *f = data;
  if (f->reply_delay_ms == 0) {
    reply_now(call);
    return;
  }
  f->held = call;
  uv_timer_start(&f->later, on_later, f->reply_delay_ms, 0);
}

static int authorize(const pm_peer *peer, void *data) {
  fixture *f = data;
  f->seen_peer = *peer;
  return f->refuse ? -1 : 0;
}

static void on_log(const pm_command_log *e, void *data) {
  fixture *f = data;
  snprintf(f->logged, sizeof(f->logged), "%s %s %s", e->command ? e->command : "-",
           e->result ? e->result : "-", e->reason);
}

static void on_stop(uv_async_t *a) {
  fixture *f = a->data;
  pm_command_server_close(f->server, NULL, NULL);
  /* An application still holding a call must answer it: the server is freed only then. */
  if (f->held != NULL)
    assert_pm(PM_ECANCELED, pm_command_call_reply(f->held, PM_RESULT_OK, NULL, NULL));
  uv_close((uv_handle_t *)&f->stop, NULL);
  uv_close((uv_handle_t *)&f->later, NULL);
}

static void server_thread(void *arg) {
  fixture *f = arg;
  if (f->start_delay_ms > 0)
    uv_sleep(f->start_delay_ms);
  f->start_rc = pm_command_server_start(&f->loop, f->path, &f->opts, &f->server);
  uv_sem_post(&f->ready);
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void launch_server(void) {
  assert_int_equal(0, uv_loop_init(&fx.loop));
  uv_async_init(&fx.loop, &fx.stop, on_stop);
  uv_timer_init(&fx.loop, &fx.later);
  fx.stop.data = fx.later.data = &fx;
  fx.opts.handler = handler;
  fx.opts.authorize = authorize;
  fx.opts.log = on_log;
  fx.opts.data = &fx;
  uv_sem_init(&fx.ready, 0);
  assert_int_equal(0, uv_thread_create(&fx.thread, server_thread, &fx));
}

static void await_server(void) {
  uv_sem_wait(&fx.ready);
  assert_pm(0, fx.start_rc);
}

static void start_server(void) {
  launch_server();
  await_server();
}

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof(fx));
  pm_test_dir_new(fx.dir, sizeof(fx.dir));
  snprintf(fx.path, sizeof(fx.path), "%s/cmd", fx.dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (fx.server != NULL) {
    uv_async_send(&fx.stop);
    uv_thread_join(&fx.thread);
    assert_int_equal(0, uv_loop_close(&fx.loop));
    uv_sem_destroy(&fx.ready);
    /* Closing the server removed its socket file. */
    assert_int_equal(-1, access(fx.path, F_OK));
  }
  pm_test_dir_remove(fx.dir);
  return 0;
}

static int call(const char *command, const pm_client_options *opts, pm_msg **resp) {
  pm_msg *req;
  int rc;
  assert_pm(0, pm_request_new(command, 3, NULL, &req));
  rc = pm_command_client_call(fx.path, opts, req, PM_ENC_JSON, resp);
  pm_msg_free(req);
  return rc;
}

static const char *result_of(const pm_msg *resp) {
  const char *r = NULL;
  assert_pm(0, pm_msg_get_string(resp, "Result", &r));
  return r;
}

static void test_command_server_round_trip(void **state) {
  pm_msg *resp;
  int64_t id;
  const char *message;
  (void)state;
  start_server();
  assert_pm(0, call("Hello", NULL, &resp));
  assert_string_equal("Ok", result_of(resp));
  assert_pm(0, pm_msg_get_int(resp, "Id", &id));
  assert_int_equal(3, id);
  assert_pm(0, pm_msg_get_string(resp, "Message", &message));
  assert_string_equal("done", message);
  pm_msg_free(resp);
  assert_int_equal(getuid(), fx.seen_peer.uid);
  assert_int_equal(getpid(), fx.seen_peer.pid);
}

static void test_command_server_async_reply(void **state) {
  pm_msg *resp;
  (void)state;
  fx.reply_delay_ms = 100;
  start_server();
  assert_pm(0, call("Later", NULL, &resp));
  assert_string_equal("Later",
                      json_string_value(json_object_get(
                          json_object_get(pm_msg_fields(resp), "Data"), "Echo")));
  pm_msg_free(resp);
}

static void test_command_server_refused_peer(void **state) {
  pm_msg *resp;
  (void)state;
  fx.refuse = 1;
  start_server();
  assert_pm(0, call("Hello", NULL, &resp));
  assert_string_equal("TransportNotAuthorized", result_of(resp));
  pm_msg_free(resp);
}

static void test_command_server_unencodable_data_is_an_error(void **state) {
  pm_msg *resp;
  (void)state;
  start_server();
  assert_pm(0, call("BadData", NULL, &resp));
  assert_string_equal("Error", result_of(resp));
  pm_msg_free(resp);
}

static void test_command_server_logs_connections(void **state) {
  pm_msg *resp;
  uint64_t deadline;
  (void)state;
  start_server();
  assert_pm(0, call("Hello", NULL, &resp));
  pm_msg_free(resp);
  /* The entry is written when the server has closed the connection, just after the reply. */
  deadline = pm_test_now_ms() + 5000;
  while (strcmp(fx.logged, "Hello Ok ok") != 0) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
}

static void test_command_server_unread_response_dropped_at_write_deadline(void **state) {
  uint64_t start, deadline;
  int fd;
  (void)state;
  fx.opts.write_timeout_ms = 200;
  start_server();
  fd = pm_test_connect(fx.path);
  assert_true(fd >= 0);
  start = pm_test_now_ms();
  assert_int_equal(0, pm_test_send_frame(fd, "{\"Request\":{\"Command\":\"Big\"}}"));
  /* The client reads nothing: the server gives up at its write deadline (§4.5). */
  deadline = pm_test_now_ms() + 5000;
  while (strstr(fx.logged, "response write timed out") == NULL) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
  assert_true(pm_test_now_ms() - start >= 150);
  close(fd);
}

static void test_command_server_client_timeout(void **state) {
  pm_client_options opts = {.response_timeout_ms = 100};
  pm_msg *resp = NULL;
  uint64_t start;
  (void)state;
  fx.reply_delay_ms = 1500;
  start_server();
  start = pm_test_now_ms();
  assert_pm(PM_ETIMEDOUT, call("Slow", &opts, &resp));
  assert_null(resp);
  assert_true(pm_test_now_ms() - start >= 90);
  assert_true(pm_test_now_ms() - start < 1400);
}

static void test_command_server_client_connection_timeout(void **state) {
  pm_client_options opts = {.connect_timeout_ms = 200};
  pm_msg *resp = NULL;
  uint64_t start = pm_test_now_ms();
  (void)state;
  assert_pm(PM_ECONNTIMEOUT, call("Hello", &opts, &resp));
  assert_true(pm_test_now_ms() - start >= 150);
  assert_null(resp);
}

static void test_command_server_client_waits_for_late_service(void **state) {
  pm_client_options opts = {.connect_timeout_ms = 5000};
  pm_msg *resp = NULL;
  uint64_t start;
  (void)state;
  /* A stale socket file: connecting is refused until the late server replaces it. */
  close(pm_test_bind(fx.path, 0));
  fx.start_delay_ms = 300;
  start = pm_test_now_ms();
  launch_server();
  assert_pm(0, call("Hello", &opts, &resp));
  assert_true(pm_test_now_ms() - start >= 250);
  await_server();
  assert_string_equal("Ok", result_of(resp));
  pm_msg_free(resp);
}

static void test_command_server_live_pipe_not_stolen(void **state) {
  uv_loop_t loop;
  pm_command_server *second = NULL;
  pm_msg *resp;
  (void)state;
  start_server();
  assert_int_equal(0, uv_loop_init(&loop));
  assert_pm(PM_EADDRINUSE, pm_command_server_start(&loop, fx.path, &fx.opts, &second));
  assert_null(second);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(0, uv_loop_close(&loop));
  assert_pm(0, call("Hello", NULL, &resp));
  pm_msg_free(resp);
}

static void test_command_server_regular_file_not_replaced(void **state) {
  uv_loop_t loop;
  pm_command_server *s = NULL;
  int fd;
  (void)state;
  fd = open(fx.path, O_WRONLY | O_CREAT, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(0, uv_loop_init(&loop));
  fx.opts.handler = handler;
  assert_pm(PM_EADDRINUSE, pm_command_server_start(&loop, fx.path, &fx.opts, &s));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(0, uv_loop_close(&loop));
  assert_int_equal(0, access(fx.path, F_OK));
}

static void test_command_server_rejects_bad_options(void **state) {
  uv_loop_t loop;
  pm_command_server *s = NULL;
  pm_command_server_options opts = {0};
  (void)state;
  assert_int_equal(0, uv_loop_init(&loop));
  assert_pm(PM_EINVAL, pm_command_server_start(&loop, fx.path, &opts, &s));
  opts.handler = handler;
  opts.max_message = PM_MAX_MESSAGE_CEILING + 1;
  assert_pm(PM_EINVAL, pm_command_server_start(&loop, fx.path, &opts, &s));
  assert_null(s);
  assert_int_equal(0, uv_loop_close(&loop));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_command_server_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_server_async_reply, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_server_refused_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_server_unencodable_data_is_an_error, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_command_server_logs_connections, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_server_unread_response_dropped_at_write_deadline,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_server_client_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_server_client_connection_timeout, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_command_server_client_waits_for_late_service, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_command_server_live_pipe_not_stolen, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_command_server_regular_file_not_replaced, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_command_server_rejects_bad_options, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
