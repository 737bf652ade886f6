/* The library's servers in an application that keeps SIGPIPE's default disposition (it dies of
 * the signal): a peer that closes while the server writes a large response or event must not
 * kill it. The application is a child process running a command server and an event server
 * on its own loop; this process is the peer that goes away. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "pipemsg/command.h"
#include "pipemsg/event.h"

/* Far more than a socket buffer holds, so most of it is written by the loop after the peer
 * has gone. */
#define BIG (4 * 1024 * 1024)
#define ROUNDS 20

static char dir[64], cmd_path[128], evt_path[128];
static char *big;

static void reply_big(pm_command_call *call, void *data) {
  (void)data;
  pm_command_call_reply(call, "Ok", NULL, json_pack("{s:s}", "Big", big));
}

typedef struct app {
  uv_loop_t loop;
  pm_command_server *cs;
  pm_event_server *es;
  uv_signal_t stop;
} app;

/* A client attached: it is sent a big event at once, while it is going away. */
static void on_event_log(const pm_event_log *entry, void *data) {
  app *a = data;
  if (strcmp(entry->what, "attached") == 0)
    pm_event_server_publish(a->es, "Big", json_pack("{s:s}", "Big", big), NULL);
}

static void on_stop(uv_signal_t *sig, int signum) {
  app *a = sig->data;
  (void)signum;
  pm_command_server_close(a->cs, NULL, NULL);
  pm_event_server_close(a->es, NULL, NULL);
  uv_close((uv_handle_t *)sig, NULL);
}

/* The application: default SIGPIPE, both servers, until SIGTERM; then exits 0. Reports
 * readiness with a byte on ready. */
static void run_app(int ready) {
  pm_command_server_options copts;
  pm_event_server_options eopts;
  app a;
  signal(SIGPIPE, SIG_DFL);
  memset(&a, 0, sizeof(a));
  memset(&copts, 0, sizeof(copts));
  memset(&eopts, 0, sizeof(eopts));
  copts.handler = reply_big;
  eopts.log = on_event_log;
  eopts.data = &a;
  if (uv_loop_init(&a.loop) < 0 || pm_command_server_start(&a.loop, cmd_path, &copts, &a.cs) < 0 ||
      pm_event_server_start(&a.loop, evt_path, &eopts, &a.es) < 0 ||
      uv_signal_init(&a.loop, &a.stop) < 0)
    _exit(2);
  a.stop.data = &a;
  if (uv_signal_start(&a.stop, on_stop, SIGTERM) < 0 || write(ready, "r", 1) != 1)
    _exit(2);
  uv_run(&a.loop, UV_RUN_DEFAULT);
  uv_loop_close(&a.loop);
  _exit(0);
}

/* Fails, naming the signal, when the application has died: waits for it when it no longer
 * serves (wait set), else only looks. */
static void assert_alive(pid_t pid, int wait) {
  int status;
  pid_t r = waitpid(pid, &status, wait ? 0 : WNOHANG);
  if (r == pid && WIFSIGNALED(status)) {
    print_error("the application died of signal %d (%s)\n", WTERMSIG(status),
                strsignal(WTERMSIG(status)));
    fail();
  }
  assert_int_equal(0, r);
}

/* An event session that attaches and leaves at once, while the big event is being written. */
static void attach_and_leave(pid_t pid) {
  int fd = pm_test_connect(evt_path);
  char *answer;
  if (fd < 0)
    assert_alive(pid, 1);
  assert_int_equal(0, pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":1}}"));
  answer = pm_test_recv_frame(fd, 5000, NULL);
  if (answer == NULL)
    assert_alive(pid, 1);
  free(answer);
  close(fd);
}

static void test_sigpipe_peer_gone_mid_write(void **state) {
  int ready[2], status;
  char c;
  pid_t pid;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  pm_test_pipe_path(dir, "cmd", cmd_path, sizeof(cmd_path));
  pm_test_pipe_path(dir, "evt", evt_path, sizeof(evt_path));
  big = malloc(BIG + 1);
  assert_non_null(big);
  memset(big, 'b', BIG);
  big[BIG] = '\0';
  assert_int_equal(0, pipe(ready));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(ready[0]);
    run_app(ready[1]);
  }
  close(ready[1]);
  assert_int_equal(1, read(ready[0], &c, 1));
  close(ready[0]);
  for (int i = 0; i < ROUNDS; i++) {
    int fd = pm_test_connect(cmd_path);
    char *head;
    if (fd < 0)
      assert_alive(pid, 1);
    assert_int_equal(0, pm_test_send_frame(fd, "{\"Request\":{\"Id\":1,\"Command\":\"Big\"}}"));
    /* A few bytes of the answer show the server is writing it; then the peer is gone. */
    head = malloc(16);
    assert_int_equal(0, pm_test_recv_exact(fd, head, 16, pm_test_now_ms() + 5000));
    free(head);
    close(fd);
    attach_and_leave(pid);
  }
  /* Still serving. */
  attach_and_leave(pid);
  assert_alive(pid, 0);
  assert_int_equal(0, kill(pid, SIGTERM));
  assert_int_equal(pid, waitpid(pid, &status, 0));
  if (WIFSIGNALED(status)) {
    print_error("the application died of signal %d (%s)\n", WTERMSIG(status),
                strsignal(WTERMSIG(status)));
    fail();
  }
  assert_true(WIFEXITED(status));
  assert_int_equal(0, WEXITSTATUS(status));
  free(big);
  pm_test_dir_remove(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sigpipe_peer_gone_mid_write),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
