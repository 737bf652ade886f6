/* The C# binding (bindings/dotnet, issue 13): each test starts a pipemsgd for the case and
 * runs `mono PipeMsgTests.exe CASE` against it (bindings/dotnet/tests/Tests.cs holds the
 * assertions), plus the layout check of the structs the binding shares with C and the example
 * program. */
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "pipemsg/client.h"
#include "testutil.h"

static pm_test_service svc;

static void start(const char *const *args) {
  pm_test_service_start(&svc, args);
  setenv("PIPEMSG_COMMAND_PIPE", svc.command_pipe, 1);
  setenv("PIPEMSG_EVENT_PIPE", svc.event_pipe, 1);
}

static int teardown(void **state) {
  (void)state;
  unsetenv("PIPEMSG_COMMAND_PIPE");
  unsetenv("PIPEMSG_EVENT_PIPE");
  if (svc.pid > 0)
    assert_int_equal(0, pm_test_service_stop(&svc));
  pm_test_service_cleanup(&svc);
  memset(&svc, 0, sizeof(svc));
  return 0;
}

/* An ASan-built libpipemsg loads into mono only with the ASan runtime preloaded (it must come
 * first); mono's own allocations are not the library's, so leak detection stays off, and mono
 * handles SIGSEGV itself (null references), so ASan leaves that signal alone. Returns 0 when
 * the case may run, else prints why not and returns -1. */
static int sanitizer_env(void) {
#ifdef PM_DOTNET_ASAN_RUNTIME
  if (access(PM_DOTNET_ASAN_RUNTIME, R_OK) != 0) {
    pm_test_note_skip("the ASan runtime %s to preload into mono is missing",
                      PM_DOTNET_ASAN_RUNTIME);
    return -1;
  }
  setenv("LD_PRELOAD", PM_DOTNET_ASAN_RUNTIME, 1);
  setenv("ASAN_OPTIONS", "detect_leaks=0:handle_segv=0:allow_user_segv_handler=1", 1);
#endif
  return 0;
}

/* How long one case may run: each takes seconds; past this it hangs (a program that does not
 * exit is what test_dotnet_exit looks for), and timeout(1) ends it with status 124. */
#define CASE_LIMIT_S "120"

/* Runs a program of build/bindings/dotnet under mono; fails the test with its output and the
 * service's log unless it exits 0. */
static const char *mono(const char *program, const char *arg) {
  char path[512];
  const char *out, *err;
  const char *argv[] = {"/usr/bin/timeout", CASE_LIMIT_S, PM_MONO, "--debug", path, arg, NULL};
  int rc;
  snprintf(path, sizeof(path), "%s/%s", PM_DOTNET_DIR, program);
  rc = pm_test_run(argv, &out, &err);
  if (rc != 0) {
    printf("%s %s: exit %d%s\n--- stdout\n%s--- stderr\n%s", program, arg, rc,
           rc == 124 ? " (did not end within " CASE_LIMIT_S " s)" : "", out, err);
    if (svc.pid > 0)
      printf("--- pipemsgd log\n%s", pm_test_service_log(&svc));
    fail();
  }
  return out;
}

static void run_case(const char *name, const char *const *service_args) {
  if (sanitizer_env() < 0) {
    skip();
    return;
  }
  if (service_args != NULL)
    start(service_args);
  mono("PipeMsgTests.exe", name);
}

static const char *const test_service[] = {"--connect-delay-ms", "100", "--test-commands", NULL};

/* ---- the structs the binding declares against the C compiler's layout -------------------- */

static void line(char *buf, size_t size, const char *name, size_t value) {
  size_t len = strlen(buf);
  snprintf(buf + len, size - len, "%s %zu\n", name, value);
}

static void test_dotnet_layout(void **state) {
  static char want[4096];
  const char *got;
  (void)state;
  if (sanitizer_env() < 0) {
    skip();
    return;
  }
  want[0] = '\0';
#define OFF(type, cs, field) line(want, sizeof(want), cs, offsetof(type, field))
  line(want, sizeof(want), "Config", sizeof(pm_client_config));
  OFF(pm_client_config, "Config.CommandPipe", command_pipe);
  OFF(pm_client_config, "Config.EventPipe", event_pipe);
  OFF(pm_client_config, "Config.ConnectTimeoutMs", connect_timeout_ms);
  OFF(pm_client_config, "Config.ResponseTimeoutMs", response_timeout_ms);
  OFF(pm_client_config, "Config.HandshakeTimeoutMs", handshake_timeout_ms);
  OFF(pm_client_config, "Config.ReconnectMinMs", reconnect_min_ms);
  OFF(pm_client_config, "Config.ReconnectMaxMs", reconnect_max_ms);
  OFF(pm_client_config, "Config.ExpectOwner", expect_owner);
  OFF(pm_client_config, "Config.Drive", drive);
  OFF(pm_client_config, "Config.OnEvent", on_event);
  OFF(pm_client_config, "Config.OnConnection", on_connection);
  OFF(pm_client_config, "Config.ConfirmLater", confirm_later);
  OFF(pm_client_config, "Config.Observe", observe);
  OFF(pm_client_config, "Config.Start", start);
  OFF(pm_client_config, "Config.ResumeEpoch", resume_epoch);
  OFF(pm_client_config, "Config.ResumeLastId", resume_last_id);
  OFF(pm_client_config, "Config.ClientName", client_name);
  OFF(pm_client_config, "Config.Data", data);
  line(want, sizeof(want), "Result", sizeof(pm_result));
  OFF(pm_result, "Result.Code", code);
  OFF(pm_result, "Result.FromService", from_service);
  OFF(pm_result, "Result.Error", error);
  OFF(pm_result, "Result.Name", name);
  OFF(pm_result, "Result.Message", message);
  /* EventHead is pm_client_event's leading fields: its size is where the union starts. */
  line(want, sizeof(want), "EventHead", offsetof(pm_client_event, u));
  OFF(pm_client_event, "EventHead.Type", type);
  OFF(pm_client_event, "EventHead.TypeName", type_name);
  OFF(pm_client_event, "EventHead.Id", id);
  OFF(pm_client_event, "EventHead.Epoch", epoch);
  OFF(pm_client_event, "EventHead.Time", time);
  OFF(pm_client_event, "EventHead.DataJson", data_json);
#undef OFF
  got = mono("PipeMsgTests.exe", "layout");
  assert_string_equal(want, got);
}

/* ---- cases ------------------------------------------------------------------------------- */

static void test_dotnet_json(void **state) {
  (void)state;
  run_case("json", NULL);
}

static void test_dotnet_commands(void **state) {
  (void)state;
  run_case("commands", test_service);
}

/* Without --test-commands GetCommands lists exactly the contract's client commands: each must
 * have a method. */
static void test_dotnet_coverage(void **state) {
  static const char *const args[] = {NULL};
  (void)state;
  run_case("coverage", args);
}

static void test_dotnet_async(void **state) {
  (void)state;
  run_case("async", test_service);
}

static void test_dotnet_events(void **state) {
  (void)state;
  run_case("events", test_service);
}

static void test_dotnet_unconfirmed(void **state) {
  (void)state;
  run_case("unconfirmed", test_service);
}

/* EventObserved: an observer beside the client, neither confirming nor taking the slot. */
static void test_dotnet_observe(void **state) {
  (void)state;
  run_case("observe", test_service);
}

/* The first delivery waits for commands on other threads: a long acknowledgement timeout. */
static void test_dotnet_concurrent(void **state) {
  static const char *const args[] = {"--test-commands", "--ack-timeout-ms", "60000", NULL};
  (void)state;
  run_case("concurrent", args);
}

static void test_dotnet_bad_request(void **state) {
  (void)state;
  run_case("bad_request", test_service);
}

static void test_dotnet_too_many_requests(void **state) {
  static const char *const args[] = {"--connect-delay-ms", "60000", NULL};
  (void)state;
  run_case("too_many_requests", args);
}

/* settings.json made a directory: the atomic rename cannot replace it, so a setting is answered
 * Error (as test_service_faults does it). */
static void test_dotnet_service_error(void **state) {
  char data_dir[128], path[160];
  const char *args[] = {"--data-dir", data_dir, NULL};
  (void)state;
  pm_test_dir_new(data_dir, sizeof(data_dir));
  start(args);
  snprintf(path, sizeof(path), "%s/settings.json", data_dir);
  assert_int_equal(0, mkdir(path, 0700));
  run_case("service_error", NULL);
  pm_test_dir_remove(data_dir);
}

static void test_dotnet_connection_timeout(void **state) {
  (void)state;
  run_case("connection_timeout", NULL);
}

static void test_dotnet_dispose(void **state) {
  (void)state;
  run_case("dispose", test_service);
}

/* A program that ends without Dispose, with library threads that ran managed code, exits
 * (Mono would otherwise wait for them forever). */
static void test_dotnet_exit(void **state) {
  (void)state;
  run_case("exit", test_service);
}

/* A command pipe that answers its one request SLOW_ANSWER_MS after reading it. */
#define SLOW_ANSWER_MS 8000

typedef struct {
  int lfd;
  uv_thread_t thread;
} slow_service;

static void slow_answer(void *arg) {
  slow_service *slow = arg;
  int fd = accept(slow->lfd, NULL, NULL);
  char *request;
  if (fd < 0)
    return;
  request = pm_test_recv_frame(fd, 30000, NULL);
  if (request != NULL) {
    uv_sleep(SLOW_ANSWER_MS); /* the slowness under test, not a wait for something */
    pm_test_send_frame(fd, "{\"Response\":{\"Command\":\"GetState\",\"Result\":\"Error\","
                           "\"Message\":\"slow\"}}");
  }
  free(request);
  close(fd);
}

/* The process's end while a synchronous call on a background thread waits for a slow service:
 * the binding's exit handler leaves that client to the process's end instead of waiting for the
 * call (which would be up to the 180 s response timeout); Tests.cs times the handler. */
static void test_dotnet_exit_busy(void **state) {
  char dir[128], path[160];
  slow_service slow;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/slow", dir);
  slow.lfd = pm_test_bind(path, 4);
  assert_int_equal(0, uv_thread_create(&slow.thread, slow_answer, &slow));
  setenv("PIPEMSG_COMMAND_PIPE", path, 1);
  run_case("exit_busy", NULL);
  uv_thread_join(&slow.thread);
  close(slow.lfd);
  pm_test_dir_remove(dir);
}

/* ---- a fake command pipe for the cancellation cases -------------------------------------- */

/* How long the fake holds Slow unanswered when the client does not give it up: a call waiting
 * behind it that long is the failure under test (the library's response timeout is 180 s). */
#define HOLD_MS 30000

/* Lists each request's Command, a line each, in the file PIPEMSG_TEST_SEEN names (Tests.cs
 * reads it), and answers Ok; except Slow, held unanswered until the client closes its
 * connection (a call given up in flight) or HOLD_MS pass. One connection at a time, as one
 * client's calls come. */
typedef struct {
  int lfd;
  char seen[192];
  atomic_int stop;
  uv_thread_t thread;
} fake_service;

static void fake_serve(void *arg) {
  fake_service *f = arg;
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    char cmd[64], answer[160];
    const char *at, *end;
    char *request;
    FILE *seen;
    int fd;
    if (poll(&p, 1, 50) <= 0) /* a look at stop every 50 ms */
      continue;
    fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
      continue;
    request = pm_test_recv_frame(fd, 10000, NULL);
    at = request != NULL ? strstr(request, "\"Command\":\"") : NULL;
    end = at != NULL ? strchr(at + 11, '"') : NULL;
    if (end != NULL && (size_t)(end - at - 11) < sizeof(cmd)) {
      memcpy(cmd, at + 11, (size_t)(end - at - 11));
      cmd[end - at - 11] = '\0';
      seen = fopen(f->seen, "a"); /* Tests.cs fails on a command missing from it */
      if (seen != NULL) {
        fprintf(seen, "%s\n", cmd);
        fclose(seen);
      }
      if (strcmp(cmd, "Slow") == 0) {
        pm_test_wait_eof(fd, HOLD_MS);
      } else {
        snprintf(answer, sizeof(answer), "{\"Response\":{\"Command\":\"%s\",\"Result\":\"Ok\"}}",
                 cmd);
        pm_test_send_frame(fd, answer);
      }
    }
    free(request);
    close(fd);
  }
}

static void run_fake_case(const char *name) {
  char dir[128], path[160];
  fake_service fake;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/cmd", dir);
  snprintf(fake.seen, sizeof(fake.seen), "%s/seen", dir);
  atomic_init(&fake.stop, 0);
  fake.lfd = pm_test_bind(path, 8);
  assert_int_equal(0, uv_thread_create(&fake.thread, fake_serve, &fake));
  setenv("PIPEMSG_COMMAND_PIPE", path, 1);
  setenv("PIPEMSG_TEST_SEEN", fake.seen, 1);
  run_case(name, NULL);
  atomic_store(&fake.stop, 1);
  uv_thread_join(&fake.thread);
  close(fake.lfd);
  unsetenv("PIPEMSG_TEST_SEEN");
  pm_test_dir_remove(dir);
}

/* A CancellationToken canceled while the call waits behind a slow one: never sent, its task
 * canceled at once, and (the slow one given up too) the next call goes on at once. */
static void test_dotnet_cancel_queued(void **state) {
  (void)state;
  run_fake_case("cancel_queued");
}

/* A call in flight given up: its task canceled at once, the next call goes on; a client
 * disposed with such a call pending. */
static void test_dotnet_cancel_in_flight(void **state) {
  (void)state;
  run_fake_case("cancel_in_flight");
}

/* A token canceled before the call: nothing is sent. */
static void test_dotnet_cancel_before(void **state) {
  (void)state;
  run_fake_case("cancel_before");
}

/* Oversized, deep, huge, NaN, NUL, surrogates, throwing handlers, calls after Dispose. */
static void test_dotnet_hostile(void **state) {
  (void)state;
  run_case("hostile", test_service);
}

/* bindings/dotnet/examples/Example.cs, as its README runs it. */
static void test_dotnet_example(void **state) {
  const char *out;
  (void)state;
  if (sanitizer_env() < 0) {
    skip();
    return;
  }
  start(test_service);
  out = mono("PipeMsgExample.exe", "de");
  assert_non_null(strstr(out, "Disconnected\n"));
  assert_non_null(strstr(out, "Connected\n"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_dotnet_layout, teardown),
      cmocka_unit_test_teardown(test_dotnet_json, teardown),
      cmocka_unit_test_teardown(test_dotnet_commands, teardown),
      cmocka_unit_test_teardown(test_dotnet_coverage, teardown),
      cmocka_unit_test_teardown(test_dotnet_async, teardown),
      cmocka_unit_test_teardown(test_dotnet_events, teardown),
      cmocka_unit_test_teardown(test_dotnet_unconfirmed, teardown),
      cmocka_unit_test_teardown(test_dotnet_observe, teardown),
      cmocka_unit_test_teardown(test_dotnet_concurrent, teardown),
      cmocka_unit_test_teardown(test_dotnet_bad_request, teardown),
      cmocka_unit_test_teardown(test_dotnet_too_many_requests, teardown),
      cmocka_unit_test_teardown(test_dotnet_service_error, teardown),
      cmocka_unit_test_teardown(test_dotnet_connection_timeout, teardown),
      cmocka_unit_test_teardown(test_dotnet_dispose, teardown),
      cmocka_unit_test_teardown(test_dotnet_exit, teardown),
      cmocka_unit_test_teardown(test_dotnet_exit_busy, teardown),
      cmocka_unit_test_teardown(test_dotnet_example, teardown),
      cmocka_unit_test_teardown(test_dotnet_hostile, teardown),
      cmocka_unit_test_teardown(test_dotnet_cancel_queued, teardown),
      cmocka_unit_test_teardown(test_dotnet_cancel_in_flight, teardown),
      cmocka_unit_test_teardown(test_dotnet_cancel_before, teardown),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
