/* The event client library ("Core") against a real pipemsgd, and against fake services on raw
 * sockets that misbehave on purpose: silent, mute, sending duplicates, wrong or malformed
 * answers, run by another user. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "transport/transport_unix.h"

#define MAX_SEEN 64
#define MAX_STATES 64
/* A timed rule is seen no earlier than EARLY_MS before its time (scaled under valgrind): libuv
 * starts a timer from the loop's cached clock, which lags the wall clock by the time the loop
 * iteration has taken. */
#define EARLY_MS 50
/* ... and no later than LATE_MS after it (scaled under valgrind): a loaded machine delays a
 * wake-up by tens of ms; each window below says which wrong value it keeps out. */
#define LATE_MS 600
/* How long to wait for what needs no particular time. */
#define WAIT_MS ((int)pm_test_margin_ms(10000))

static pm_test_service svc;

/* What the application saw, filled on the client's thread. */
typedef struct seen {
  uv_mutex_t lock;
  int64_t ids[MAX_SEEN];
  int timed[MAX_SEEN]; /* whether the event had a Time */
  int count;
  int delivered;     /* every event handed over, past MAX_SEEN too */
  int connecting;    /* times CONNECTING was reported */
  int connected;     /* times CONNECTED was reported */
  int disconnected;  /* times DISCONNECTED was reported */
  char first_reason[128];
  char last_reason[128];
  unsigned slow_first_ms; /* sleep in the first callback */
  /* Every state reported, and when (pm_test_now_ms). */
  pm_event_client_state states[MAX_STATES];
  uint64_t state_ms[MAX_STATES];
  int nstates;
} seen;

static seen got;
/* The client under test: teardown stops it when a failed test could not. */
static pm_event_client *client;

static void on_event(const pm_event *ev, void *data) {
  seen *s = data;
  if (s->slow_first_ms > 0 && s->count == 0)
    uv_sleep(s->slow_first_ms);
  uv_mutex_lock(&s->lock);
  if (s->count < MAX_SEEN) {
    s->timed[s->count] = ev->time != NULL;
    s->ids[s->count++] = ev->id;
  }
  s->delivered++;
  uv_mutex_unlock(&s->lock);
}

static void on_state(pm_event_client_state st, const char *reason, void *data) {
  seen *s = data;
  uv_mutex_lock(&s->lock);
  if (s->nstates < MAX_STATES) {
    s->states[s->nstates] = st;
    s->state_ms[s->nstates++] = pm_test_now_ms();
  }
  if (st == PM_EVENT_CLIENT_CONNECTING)
    s->connecting++;
  if (st == PM_EVENT_CLIENT_CONNECTED)
    s->connected++;
  if (st == PM_EVENT_CLIENT_DISCONNECTED) {
    if (s->disconnected++ == 0)
      snprintf(s->first_reason, sizeof(s->first_reason), "%s", reason ? reason : "");
    snprintf(s->last_reason, sizeof(s->last_reason), "%s", reason ? reason : "");
  }
  uv_mutex_unlock(&s->lock);
}

/* A copy of what the application saw, to check without holding the lock (a failed check
 * leaves the function, and the client's thread still needs the lock). */
static seen snapshot(void) {
  seen copy;
  uv_mutex_lock(&got.lock);
  copy = got;
  uv_mutex_unlock(&got.lock);
  return copy;
}

static int count_of(int *field) {
  int v;
  uv_mutex_lock(&got.lock);
  v = *field;
  uv_mutex_unlock(&got.lock);
  return v;
}

/* Waits (each step is an observable change, polled) until *field reaches n. */
static void await_count(int *field, int n) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)WAIT_MS;
  while (count_of(field) < n) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
}

static void options(pm_event_client_options *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->on_event = on_event;
  opts->on_state = on_state;
  opts->data = &got;
  opts->reconnect_min_ms = 20;
  opts->reconnect_max_ms = 200;
  opts->client_name = "test";
}

static void start_with(const char *pipe, const pm_event_client_options *opts) {
  assert_null(client);
  assert_pm(0, pm_event_client_start(pipe, opts, &client));
}

static void start_client(const char *pipe) {
  pm_event_client_options opts;
  options(&opts);
  start_with(pipe, &opts);
}

static void stop_client(void) {
  pm_event_client_stop(client);
  client = NULL;
}

/* Fails unless, for each connection that got as far as state `from`, the next state came
 * rule_ms later (within the window), and at least `want` did. */
static void assert_state_gaps(pm_event_client_state from, pm_event_client_state to, long rule_ms,
                              int want) {
  seen s = snapshot();
  int checked = 0;
  for (int i = 0; i + 1 < s.nstates; i++) {
    if (s.states[i] != from || s.states[i + 1] != to)
      continue;
    assert_ms_within(pm_event_client_state_name(to), s.state_ms[i + 1] - s.state_ms[i],
                     rule_ms - pm_test_margin_ms(EARLY_MS), rule_ms + pm_test_margin_ms(LATE_MS));
    checked++;
  }
  assert_true(checked >= want);
}

/* ---- fake services ------------------------------------------------------------------------ */

typedef enum {
  FAKE_MUTE,              /* accepts, reads, never answers */
  FAKE_SILENT,            /* answers the handshake, then says nothing */
  FAKE_DUPLICATES,        /* sends event ids 1, 1, 2, 1 */
  FAKE_WRONG_SEQ,         /* answers the handshake with another Seq */
  FAKE_BAD_EPOCH,         /* answers the handshake with Epoch -7, then with Epoch "x" */
  FAKE_EVENT_FIRST,       /* sends an Event instead of answering the handshake */
  FAKE_EVENT_WITHOUT_ID,  /* answers, then sends an Event without Id */
  FAKE_EVENT_ID_ZERO,     /* answers, then sends an Event with Id 0 (then -1, and so on) */
  FAKE_EVENT_DATA_NULL,   /* answers, then sends an Event whose Data is null (then a list) */
  FAKE_EVENT_TYPE_EMPTY,  /* answers, then sends an Event whose Type is "" */
  FAKE_EVENT_BAD_TIME,    /* answers, then sends an Event whose Time is not a time (then 5) */
  FAKE_BAD_FRAME,         /* answers, then sends a frame that does not decode */
  FAKE_DISCONNECT,        /* Disconnect{Busy}, then one without a Reason, for an answer */
  FAKE_CLOSE,             /* answers, then closes without a word */
  FAKE_HEARTBEAT,         /* answers, then sends a heartbeat of its own */
  FAKE_OBSERVED,          /* records the handshake's Mode, sends events 1 and 2, a heartbeat */
  FAKE_FLOOD,             /* answers, then sends events 1, 2, ... and reads nothing */
  FAKE_HEARTBEAT_FLOOD,   /* answers, then sends heartbeats Seq 1, 2, ... and reads nothing */
  FAKE_SENT_AGAIN,        /* answers, sends event 1 twice and a heartbeat, records answers */
  FAKE_EVENT_THEN_CLOSE,  /* answers, sends event event_id (1) and closes; then answers and
                             closes, the last connection answered only */
} fake_mode;

/* What a flooding fake sends at most: far more than it takes to fill the client's bound with
 * answers (256 KiB by default: some 7000 of them), so only the client ends the flood. */
#define FLOOD_MAX 200000

/* A fake service on a thread of its own. It asserts nothing (cmocka's checks belong to the main
 * thread): what it saw is kept here, under the lock, for the test to check. */
typedef struct fake {
  char path[128];
  int lfd;
  int wake[2]; /* written by teardown: a fake waiting to accept gives up */
  int running;
  uv_thread_t thread;
  fake_mode mode;
  int connections; /* how many to serve */
  int64_t heartbeat_ms;
  int64_t epoch_later; /* the epoch answered after the first connection; 0: 5 throughout */
  int64_t event_id;    /* FAKE_EVENT_THEN_CLOSE's event; 0: 1 */
  /* Seen, under got.lock: */
  int served;
  int64_t confirmed[MAX_SEEN];
  int nconfirmed;
  int64_t answered_seq;
  size_t bytes_received;
  char mode_sent[32];  /* the handshake's Mode, "" without one */
  char client_sent[32]; /* the handshake's Client, "" without one */
  int cursor_sent;     /* the handshake carried an Epoch */
  int64_t last_event_id; /* the last handshake's LastEventId, -1 without one */
  char after_events[32]; /* the kind of the first message after the events */
  int flooded;         /* messages sent in a flood before the client hung up */
  int hung_up;         /* the client closed the connection and all it wrote has been read */
  char heard[64];      /* FAKE_SENT_AGAIN: "C<id>" per confirmation, "H<seq>" per handshake */
} fake;

static fake fk;

static int fake_accept(fake *f) {
  struct pollfd pfd[2] = {{.fd = f->lfd, .events = POLLIN}, {.fd = f->wake[0], .events = POLLIN}};
  if (poll(pfd, 2, WAIT_MS) <= 0 || (pfd[1].revents & POLLIN) != 0)
    return -1;
  return accept(f->lfd, NULL, NULL);
}

/* The next message from the client; NULL at the end of the stream or on nonsense. */
static pm_msg *fake_recv(int fd) {
  size_t len = 0;
  char *buf = pm_test_recv_frame(fd, WAIT_MS, &len);
  pm_msg *m = NULL;
  if (buf != NULL && pm_msg_decode(buf, len, &m, NULL) < 0)
    m = NULL;
  free(buf);
  if (buf != NULL) {
    uv_mutex_lock(&got.lock);
    fk.bytes_received += len + 4;
    uv_mutex_unlock(&got.lock);
  }
  return m;
}

/* Reads the client's handshake; its Seq, or -1. */
/* The handshake's Seq (-1 if none came); its Client goes to fk.client_sent. */
static int64_t fake_read_handshake(int fd) {
  pm_msg *m = fake_recv(fd);
  const char *name = "";
  int64_t seq = -1, last = -1;
  if (m != NULL && strcmp(pm_msg_kind(m), "Handshake") == 0 && pm_msg_get_int(m, "Seq", &seq) < 0)
    seq = -1;
  if (m != NULL) {
    pm_msg_get_string(m, "Client", &name);
    if (pm_msg_get_int(m, "LastEventId", &last) < 0)
      last = -1;
  }
  uv_mutex_lock(&got.lock);
  snprintf(fk.client_sent, sizeof(fk.client_sent), "%s", name);
  fk.last_event_id = last;
  uv_mutex_unlock(&got.lock);
  pm_msg_free(m);
  return seq;
}

static int fake_answer(fake *f, int fd, int64_t seq) {
  char reply[160];
  snprintf(reply, sizeof(reply),
           "{\"Handshake\":{\"Seq\":%lld,\"Version\":1,\"Epoch\":%lld,\"HeartbeatMs\":%lld}}",
           (long long)seq, (long long)(f->served > 0 && f->epoch_later ? f->epoch_later : 5),
           (long long)f->heartbeat_ms);
  return pm_test_send_frame(fd, reply);
}

/* Event id, with a Time or (timed 0) without one. */
static int fake_event(int fd, int64_t id, int timed) {
  char ev[160];
  snprintf(ev, sizeof(ev), "{\"Event\":{\"Id\":%lld,\"Type\":\"Tick\"%s}}", (long long)id,
           timed ? ",\"Time\":\"2026-11-30T12:00:00.000Z\"" : "");
  return pm_test_send_frame(fd, ev);
}

/* Sends event id and records the client's confirmation (0 if something else came). */
static void fake_event_confirmed(int fd, int64_t id) {
  pm_msg *m;
  int64_t n = 0;
  if (fake_event(fd, id, id != 2) < 0)
    return;
  m = fake_recv(fd);
  if (m != NULL && strcmp(pm_msg_kind(m), "EventConfirmation") == 0)
    pm_msg_get_int(m, "Id", &n);
  pm_msg_free(m);
  uv_mutex_lock(&got.lock);
  if (fk.nconfirmed < MAX_SEEN)
    fk.confirmed[fk.nconfirmed++] = n;
  uv_mutex_unlock(&got.lock);
}

/* An observer's session: what its handshake said, then whether it confirms (it must not). */
static void fake_observed(fake *f, int fd) {
  pm_msg *m = fake_recv(fd);
  const char *mode = "";
  int64_t seq = -1;
  if (m == NULL || strcmp(pm_msg_kind(m), "Handshake") != 0 ||
      pm_msg_get_int(m, "Seq", &seq) < 0) {
    pm_msg_free(m);
    return;
  }
  pm_msg_get_string(m, "Mode", &mode);
  uv_mutex_lock(&got.lock);
  snprintf(f->mode_sent, sizeof(f->mode_sent), "%s", mode);
  f->cursor_sent = json_object_get(pm_msg_fields(m), "Epoch") != NULL;
  uv_mutex_unlock(&got.lock);
  pm_msg_free(m);
  if (fake_answer(f, fd, seq) < 0 || fake_event(fd, 1, 1) < 0 || fake_event(fd, 2, 1) < 0 ||
      pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":9}}") < 0)
    return;
  m = fake_recv(fd);
  uv_mutex_lock(&got.lock);
  snprintf(f->after_events, sizeof(f->after_events), "%s", m ? pm_msg_kind(m) : "");
  if (m != NULL && strcmp(pm_msg_kind(m), "Handshake") == 0)
    pm_msg_get_int(m, "Seq", &f->answered_seq);
  uv_mutex_unlock(&got.lock);
  pm_msg_free(m);
}

/* Sends messages without reading a byte until the client hangs up (or FLOOD_MAX). What the
 * client wrote is counted from here (bytes_received), so it is its answers alone. */
static void fake_flood(fake *f, int fd) {
  char hb[64];
  int n = 0, rc;
  uv_mutex_lock(&got.lock);
  f->bytes_received = 0;
  uv_mutex_unlock(&got.lock);
  do {
    n++;
    if (f->mode == FAKE_FLOOD) {
      rc = fake_event(fd, n, 1);
    } else {
      snprintf(hb, sizeof(hb), "{\"Handshake\":{\"Seq\":%d}}", n);
      rc = pm_test_send_frame(fd, hb);
    }
  } while (rc == 0 && n < FLOOD_MAX);
  uv_mutex_lock(&got.lock);
  f->flooded = rc == 0 ? n : n - 1;
  uv_mutex_unlock(&got.lock);
}

/* Event 1, then the same again (a service whose acknowledgement timeout passed sends it
 * again), then a heartbeat, whose answer shows the client has read both; then every answer the
 * client sends, in order, until it hangs up. */
static void fake_sent_again(fake *f, int fd) {
  pm_msg *m;
  int64_t n;
  if (fake_event(fd, 1, 1) < 0 || fake_event(fd, 1, 1) < 0 ||
      pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":9}}") < 0)
    return;
  while ((m = fake_recv(fd)) != NULL) {
    int confirmation = strcmp(pm_msg_kind(m), "EventConfirmation") == 0;
    size_t used;
    n = 0;
    pm_msg_get_int(m, confirmation ? "Id" : "Seq", &n);
    uv_mutex_lock(&got.lock);
    used = strlen(f->heard);
    snprintf(f->heard + used, sizeof(f->heard) - used, "%s%c%lld", used ? " " : "",
             confirmation ? 'C' : 'H', (long long)n);
    if (confirmation)
      f->nconfirmed++;
    else
      f->answered_seq = n;
    uv_mutex_unlock(&got.lock);
    pm_msg_free(m);
  }
}

/* Whether the fake's client has sent an answer of that letter (FAKE_SENT_AGAIN's heard). */
static int fake_heard(char letter) {
  int yes;
  uv_mutex_lock(&got.lock);
  yes = strchr(fk.heard, letter) != NULL;
  uv_mutex_unlock(&got.lock);
  return yes;
}

static void fake_serve(fake *f, int fd) {
  int64_t seq;
  pm_msg *m;
  if (f->mode == FAKE_OBSERVED) {
    fake_observed(f, fd);
    return;
  }
  seq = f->mode == FAKE_MUTE ? 0 : fake_read_handshake(fd);
  if (seq < 0)
    return;
  switch (f->mode) {
  case FAKE_MUTE:
    break;
  case FAKE_SILENT:
    fake_answer(f, fd, seq);
    break;
  case FAKE_DUPLICATES:
    /* A confirmation lost on the way makes a service send an event again; an older id is
     * what a confused one might send. The application must see each id once. */
    if (fake_answer(f, fd, seq) == 0) {
      fake_event_confirmed(fd, 1);
      fake_event_confirmed(fd, 1);
      fake_event_confirmed(fd, 2);
      fake_event_confirmed(fd, 1);
    }
    break;
  case FAKE_WRONG_SEQ:
    fake_answer(f, fd, seq + 1);
    break;
  case FAKE_BAD_EPOCH: {
    char reply[160];
    snprintf(reply, sizeof(reply), "{\"Handshake\":{\"Seq\":%lld,\"Version\":1,\"Epoch\":%s}}",
             (long long)seq, f->served == 0 ? "-7" : "\"x\"");
    pm_test_send_frame(fd, reply);
    break;
  }
  case FAKE_EVENT_FIRST:
    fake_event(fd, 1, 1);
    break;
  case FAKE_EVENT_WITHOUT_ID:
    if (fake_answer(f, fd, seq) == 0)
      pm_test_send_frame(fd, "{\"Event\":{\"Type\":\"Tick\"}}");
    break;
  case FAKE_EVENT_ID_ZERO:
    if (fake_answer(f, fd, seq) == 0)
      fake_event(fd, -(int64_t)f->served, 1);
    break;
  case FAKE_EVENT_DATA_NULL:
    if (fake_answer(f, fd, seq) == 0)
      pm_test_send_frame(fd, f->served == 0
                                 ? "{\"Event\":{\"Id\":1,\"Type\":\"Tick\",\"Data\":null}}"
                                 : "{\"Event\":{\"Id\":1,\"Type\":\"Tick\",\"Data\":[1]}}");
    break;
  case FAKE_EVENT_TYPE_EMPTY:
    /* In the service's own spelling (read in place), then spelled otherwise (decoded). */
    if (fake_answer(f, fd, seq) == 0)
      pm_test_send_frame(fd, f->served == 0
                                 ? "{\"Event\":{\"Id\":1,\"Type\":\"\",\"Time\":"
                                   "\"2026-11-30T12:00:00.000Z\"}}"
                                 : "{\"Event\": {\"Id\":1,\"Type\":\"\"}}");
    break;
  case FAKE_EVENT_BAD_TIME:
    if (fake_answer(f, fd, seq) == 0)
      pm_test_send_frame(fd, f->served == 0
                                 ? "{\"Event\":{\"Id\":1,\"Type\":\"Tick\",\"Time\":\"noon\"}}"
                                 : "{\"Event\":{\"Id\":1,\"Type\":\"Tick\",\"Time\":5}}");
    break;
  case FAKE_BAD_FRAME:
    if (fake_answer(f, fd, seq) == 0)
      pm_test_send_frame(fd, "{\"Event\":");
    break;
  case FAKE_DISCONNECT:
    pm_test_send_frame(fd, f->served == 0 ? "{\"Disconnect\":{\"Reason\":\"Busy\"}}"
                                          : "{\"Disconnect\":{}}");
    break;
  case FAKE_CLOSE:
    if (fake_answer(f, fd, seq) == 0)
      shutdown(fd, SHUT_RDWR);
    break;
  case FAKE_OBSERVED:
    break;
  case FAKE_FLOOD:
  case FAKE_HEARTBEAT_FLOOD:
    if (fake_answer(f, fd, seq) == 0)
      fake_flood(f, fd);
    break;
  case FAKE_SENT_AGAIN:
    if (fake_answer(f, fd, seq) == 0)
      fake_sent_again(f, fd);
    break;
  case FAKE_EVENT_THEN_CLOSE:
    if (fake_answer(f, fd, seq) < 0 || f->served == f->connections - 1)
      break;
    if (f->served > 0 || fake_event(fd, f->event_id ? f->event_id : 1, 1) == 0)
      shutdown(fd, SHUT_RDWR);
    break;
  case FAKE_HEARTBEAT:
    if (fake_answer(f, fd, seq) < 0 || pm_test_send_frame(fd, "{\"Handshake\":{\"Seq\":9}}") < 0)
      break;
    m = fake_recv(fd);
    uv_mutex_lock(&got.lock);
    if (m != NULL && strcmp(pm_msg_kind(m), "Handshake") == 0)
      pm_msg_get_int(m, "Seq", &fk.answered_seq);
    uv_mutex_unlock(&got.lock);
    pm_msg_free(m);
    break;
  }
}

static void fake_thread(void *arg) {
  fake *f = arg;
  for (int i = 0; i < f->connections; i++) {
    int fd = fake_accept(f);
    char buf[256];
    ssize_t n;
    if (fd < 0)
      return;
    fake_serve(f, fd);
    uv_mutex_lock(&got.lock);
    f->served++;
    uv_mutex_unlock(&got.lock);
    /* Take whatever the client still says, answer nothing, until it hangs up. */
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
      uv_mutex_lock(&got.lock);
      f->bytes_received += (size_t)n;
      uv_mutex_unlock(&got.lock);
    }
    uv_mutex_lock(&got.lock);
    f->hung_up = 1;
    uv_mutex_unlock(&got.lock);
    close(fd);
  }
}

/* Starts a fake service in svc's directory that serves `connections` clients in `mode`. */
static void fake_start(fake_mode mode, int connections) {
  snprintf(fk.path, sizeof(fk.path), "%s/fake", svc.dir);
  fk.lfd = pm_test_bind(fk.path, 4);
  assert_int_equal(0, pipe(fk.wake));
  fk.mode = mode;
  fk.connections = connections;
  if (fk.heartbeat_ms == 0)
    fk.heartbeat_ms = 1000;
  assert_int_equal(0, uv_thread_create(&fk.thread, fake_thread, &fk));
  fk.running = 1;
}

/* Stops the client (its connection ends, so the fake's reads end) and the fake. */
static void fake_stop(void) {
  stop_client();
  if (!fk.running)
    return;
  assert_int_equal(1, write(fk.wake[1], "x", 1));
  uv_thread_join(&fk.thread);
  fk.running = 0;
  close(fk.lfd);
  unlink(fk.path);
  close(fk.wake[0]);
  close(fk.wake[1]);
}

/* ---- fixture ------------------------------------------------------------------------------ */

static const char *const service_args[] = {"--test-commands", "--heartbeat-ms", "200",
                                           "--ack-timeout-ms", "300", NULL};

static int setup(void **state) {
  (void)state;
  memset(&got, 0, sizeof(got));
  memset(&fk, 0, sizeof(fk));
  client = NULL;
  uv_mutex_init(&got.lock);
  pm_test_service_start(&svc, service_args);
  return 0;
}

/* Runs after a failed test too: the client's thread and the fake's must not outlive it. */
static int teardown(void **state) {
  (void)state;
  fake_stop();
  pm__owner_uid_hook = NULL;
  pm_test_service_cleanup(&svc);
  uv_mutex_destroy(&got.lock);
  return 0;
}

static void emit(int count) {
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EmitEvent",
                                         json_pack("{s:s, s:i}", "Type", "Tick", "Count", count),
                                         NULL));
}

static void assert_increasing_once(void) {
  seen s = snapshot();
  for (int i = 1; i < s.count; i++)
    assert_true(s.ids[i] > s.ids[i - 1]);
}

/* ---- against pipemsgd --------------------------------------------------------------------- */

static void test_event_client_receives_in_order(void **state) {
  (void)state;
  emit(3);
  start_client(svc.event_pipe);
  await_count(&got.count, 3);
  emit(2);
  await_count(&got.count, 5);
  stop_client();
  assert_int_equal(5, got.count);
  assert_increasing_once();
}

static void test_event_client_reconnects_after_restart(void **state) {
  (void)state;
  start_client(svc.event_pipe);
  emit(2);
  await_count(&got.count, 2);
  /* Same pipes, new process: a new epoch. */
  assert_int_equal(0, pm_test_service_stop(&svc));
  await_count(&got.disconnected, 1);
  pm_test_service_restart(&svc, service_args);
  emit(2);
  await_count(&got.count, 4);
  stop_client();
  assert_int_equal(4, got.count);
  assert_true(got.connected >= 2);
}

static void test_event_client_slow_application_sees_event_once(void **state) {
  (void)state;
  /* The first callback outlasts the ack timeout: the service drops the connection and keeps
   * the event; the client resumes past it, so the application sees it once. */
  got.slow_first_ms = 800;
  emit(3);
  start_client(svc.event_pipe);
  await_count(&got.count, 3);
  await_count(&got.disconnected, 1);
  stop_client();
  assert_int_equal(3, got.count);
  assert_increasing_once();
  assert_string_equal("AckTimeout", got.last_reason);
}

static void test_event_client_resume_cursor_across_clients(void **state) {
  pm_event_client_options opts;
  json_t *data = NULL;
  int64_t epoch, cursor_epoch, cursor_id;
  (void)state;
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetStats", NULL, &data));
  epoch = json_integer_value(json_object_get(json_object_get(data, "Events"), "Epoch"));
  json_decref(data);
  emit(3); /* ids 1..3; an earlier client had taken 1 and 2 */
  options(&opts);
  opts.resume_epoch = epoch;
  opts.resume_last_id = 2;
  start_with(svc.event_pipe, &opts);
  await_count(&got.count, 1);
  pm_event_client_cursor(client, &cursor_epoch, &cursor_id);
  stop_client();
  assert_int_equal(1, got.count);
  assert_int_equal(3, got.ids[0]);
  assert_int_equal(epoch, cursor_epoch);
  assert_int_equal(3, cursor_id);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetStats", NULL, &data));
  assert_int_equal(2, json_integer_value(
                          json_object_get(json_object_get(data, "Events"), "ResumeSkipped")));
  json_decref(data);
}

static void start_confirming_later(void) {
  pm_event_client_options opts;
  options(&opts);
  opts.confirm_later = true;
  start_with(svc.event_pipe, &opts);
}

/* Waits until the service's Events counter name reaches n. */
static void await_stat(const char *name, int64_t n) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)WAIT_MS;
  while (pm_test_stat(svc.command_pipe, "Events", name) < n) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
}

/* With confirm_later, an event held past the acknowledgement timeout (300 ms) ends the session
 * and is sent again on the next; the client neither confirms it for the application nor leaves
 * it out of its resume cursor, so an application that never confirms it leaves it queued for
 * the next client. */
static void test_event_client_held_event_stays_queued(void **state) {
  pm_event_client_options opts;
  int64_t id, cursor_epoch, cursor_id;
  (void)state;
  emit(1);
  start_confirming_later();
  await_count(&got.count, 1);
  id = got.ids[0];
  /* Sent again, and that copy timed out too: nothing confirmed it. */
  await_stat("Redelivered", 1);
  await_stat("AckFailures", 2);
  /* Kept for a later client, the cursor does not cover the held event either. */
  pm_event_client_cursor(client, &cursor_epoch, &cursor_id);
  stop_client();
  assert_int_equal(1, got.count);
  assert_int_equal(id - 1, cursor_id);
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Queued"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Delivered"));
  memset(got.ids, 0, sizeof(got.ids));
  got.count = 0;
  options(&opts);
  opts.resume_epoch = cursor_epoch;
  opts.resume_last_id = cursor_id;
  start_with(svc.event_pipe, &opts);
  await_count(&got.count, 1);
  stop_client();
  assert_int_equal(id, got.ids[0]);
}

/* The same, confirmed once it was sent again: taken from the queue once, never delivered
 * again. The confirmation reaches the session that has it in flight, or, between sessions, the
 * next cursor covers it. */
static void test_event_client_held_event_confirmed_late(void **state) {
  int64_t id;
  (void)state;
  emit(1);
  start_confirming_later();
  await_count(&got.count, 1);
  id = got.ids[0];
  await_stat("Redelivered", 1);
  assert_pm(0, pm_event_client_confirm(client, id));
  /* The next event comes only once the first has left the queue. */
  emit(1);
  await_count(&got.count, 2);
  stop_client();
  assert_int_equal(2, got.count);
  assert_int_equal(id + 1, got.ids[1]);
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Delivered") +
                          pm_test_stat(svc.command_pipe, "Events", "ResumeSkipped"));
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Queued"));
}

static void test_event_client_bad_options(void **state) {
  pm_event_client_options opts;
  pm_event_client *c = NULL;
  char name[PM_PIPE_PATH_MAX + 16];
  (void)state;
  memset(&opts, 0, sizeof(opts));
  assert_pm(PM_EINVAL, pm_event_client_start(svc.event_pipe, &opts, &c));
  assert_null(c);
  options(&opts);
  opts.max_message = (size_t)PM_MAX_MESSAGE_CEILING + 1;
  assert_pm(PM_EINVAL, pm_event_client_start(svc.event_pipe, &opts, &c));
  opts.max_message = 0;
  memset(name, 'a', sizeof(name) - 1);
  name[0] = '/';
  name[sizeof(name) - 1] = '\0';
  assert_pm(PM_ENAMETOOLONG, pm_event_client_start(name, &opts, &c));
  assert_null(c);
  /* No name: $PIPEMSG_EVENT_PIPE's (pm_pipe_default), refused here as a relative path. */
  setenv("PIPEMSG_EVENT_PIPE", "rel/evt", 1);
  assert_pm(PM_EPIPENAME, pm_event_client_start(NULL, &opts, &c));
  unsetenv("PIPEMSG_EVENT_PIPE");
  assert_pm(PM_EINVAL, pm_event_client_start(svc.event_pipe, NULL, &c));
  assert_pm(PM_EINVAL, pm_event_client_start(svc.event_pipe, &opts, NULL));
  assert_null(c);
  assert_string_equal("connected", pm_event_client_state_name(PM_EVENT_CLIENT_CONNECTED));
  assert_string_equal("unknown", pm_event_client_state_name(PM_EVENT_CLIENT_STATE_MAX));
}

/* ---- against fakes ------------------------------------------------------------------------ */

/* 3 x HeartbeatMs of silence ends a connection (§5.2): 450 ms here, where 10 heartbeats would
 * be 1500 ms, outside the window. */
static void test_event_client_silence_means_dead(void **state) {
  (void)state;
  fk.heartbeat_ms = 150;
  fake_start(FAKE_SILENT, 2);
  start_client(fk.path);
  await_count(&got.disconnected, 2);
  fake_stop();
  assert_string_equal("service silent", got.first_reason);
  assert_state_gaps(PM_EVENT_CLIENT_CONNECTED, PM_EVENT_CLIENT_DISCONNECTED, 3 * 150, 2);
}

/* The client's handshake timeout, connect included, is the one configured (200 ms), not the
 * default (3000 ms, far outside the window); a fresh connection follows (§5.1.4). */
static void test_event_client_handshake_deadline(void **state) {
  pm_event_client_options opts;
  (void)state;
  fake_start(FAKE_MUTE, 2);
  options(&opts);
  opts.handshake_timeout_ms = 200;
  start_with(fk.path, &opts);
  await_count(&got.disconnected, 2);
  fake_stop();
  assert_string_equal("handshake timed out", got.first_reason);
  assert_int_equal(0, got.connected);
  assert_state_gaps(PM_EVENT_CLIENT_CONNECTING, PM_EVENT_CLIENT_DISCONNECTED, 200, 2);
}

/* With nobody at the pipe every attempt fails at once, so attempts are the backoff apart:
 * 50, 100, 200, 400 ms, then 400 (the ceiling). Each gap is checked from both sides: early
 * by BACKOFF_EARLY_MS at most, late by half the gap plus 100 ms at most, so a backoff that does not
 * double (50 each time) or grows faster (triples) falls outside. */
/* The backoff timer starts as the failed attempt's handle closes, in the same loop iteration
 * that reports the failure: its clock lags by microseconds, not by a loop's worth of work. */
#define BACKOFF_EARLY_MS 10

static void test_event_client_backoff_doubles(void **state) {
  static const long want[] = {50, 100, 200, 400, 400};
  pm_event_client_options opts;
  char path[160];
  seen s;
  int n = 0;
  (void)state;
  snprintf(path, sizeof(path), "%s/nobody-here", svc.dir);
  options(&opts);
  opts.reconnect_min_ms = 50;
  opts.reconnect_max_ms = 400;
  start_with(path, &opts);
  await_count(&got.connecting, 6);
  stop_client();
  assert_string_equal("no service on the event pipe", got.first_reason);
  assert_int_equal(0, got.connected);
  s = snapshot();
  for (int i = 0, last = -1; i < s.nstates && n < 5; i++) {
    if (s.states[i] != PM_EVENT_CLIENT_CONNECTING)
      continue;
    if (last >= 0) {
      long gap = (long)(s.state_ms[i] - s.state_ms[last]);
      assert_ms_within("a reconnect backoff", gap, want[n] - pm_test_margin_ms(BACKOFF_EARLY_MS),
                       want[n] + pm_test_margin_ms(want[n] / 2 + 100));
      n++;
    }
    last = i;
  }
  assert_int_equal(5, n);
}

/* A service that sends an event again (its confirmation was lost) or an older one: the
 * application sees each id once, and the client confirms every copy, so the service moves
 * on (§5, event client). */
static void test_event_client_drops_duplicate_ids(void **state) {
  static const int64_t confirmed[] = {1, 1, 2, 1};
  uint64_t deadline;
  (void)state;
  fake_start(FAKE_DUPLICATES, 1);
  start_client(fk.path);
  deadline = pm_test_now_ms() + (uint64_t)WAIT_MS;
  while (count_of(&fk.nconfirmed) < 4) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
  fake_stop();
  assert_int_equal(2, got.count);
  assert_int_equal(1, got.ids[0]);
  assert_int_equal(2, got.ids[1]);
  /* Time is optional: the second came without one. */
  assert_true(got.timed[0]);
  assert_false(got.timed[1]);
  assert_int_equal(4, fk.nconfirmed);
  assert_memory_equal(confirmed, fk.confirmed, sizeof(confirmed));
}

/* With confirm_later, a late confirmation of an event of an earlier epoch confirms nothing:
 * the service restarted without its store, so that event's fate was decided by the restart,
 * and its id now names the new epoch's event, which the application has not confirmed (it must
 * stay held, out of the cursor, and queued for the next client if the application fails). */
static void test_event_client_old_epoch_confirm_confirms_nothing(void **state) {
  int64_t e1, e2, id_old, cur_epoch, cur_id;
  uint64_t deadline;
  (void)state;
  emit(1);
  start_confirming_later();
  await_count(&got.count, 1);
  id_old = got.ids[0]; /* held by the application, never confirmed in its epoch */
  pm_event_client_cursor(client, &e1, &cur_id);
  /* Same pipes, new process without a store: a new epoch, ids from 1 again. */
  assert_int_equal(0, pm_test_service_stop(&svc));
  await_count(&got.disconnected, 1);
  pm_test_service_restart(&svc, service_args);
  emit(1);
  await_count(&got.count, 2);
  assert_int_equal(id_old, got.ids[1]); /* the same id, in the new epoch */
  pm_event_client_cursor(client, &e2, &cur_id);
  assert_true(e2 != e1);
  assert_int_equal(id_old - 1, cur_id);
  /* The application finishes the OLD event and confirms it, naming its epoch. */
  assert_pm(PM_EINVAL, pm_event_client_confirm_epoch(client, -1, id_old));
  assert_pm(0, pm_event_client_confirm_epoch(client, e1, id_old));
  uv_sleep(300);
  pm_event_client_cursor(client, &cur_epoch, &cur_id);
  assert_int_equal(e2, cur_epoch);
  assert_int_equal(id_old - 1, cur_id); /* the new epoch's event is still held */
  assert_int_equal(1, pm_test_stat(svc.command_pipe, "Events", "Queued"));
  assert_int_equal(0, pm_test_stat(svc.command_pipe, "Events", "Delivered"));
  /* Its own confirmation, in its epoch, does release it. */
  assert_pm(0, pm_event_client_confirm_epoch(client, e2, id_old));
  deadline = pm_test_now_ms() + (uint64_t)WAIT_MS;
  do {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
    pm_event_client_cursor(client, &cur_epoch, &cur_id);
  } while (cur_id != id_old);
  stop_client();
  assert_int_equal(e2, cur_epoch);
}

/* With confirm_later, an event sent again on the same connection while the application
 * holds it is not confirmed by the client: its one confirmation is the application's. */
static void test_event_client_held_duplicate_not_confirmed(void **state) {
  pm_event_client_options opts;
  uint64_t deadline;
  (void)state;
  fake_start(FAKE_SENT_AGAIN, 1);
  options(&opts);
  opts.confirm_later = true;
  start_with(fk.path, &opts);
  /* The heartbeat's answer: the client has read both copies. */
  deadline = pm_test_now_ms() + (uint64_t)WAIT_MS;
  while (!fake_heard('H')) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
  assert_pm(0, pm_event_client_confirm(client, 1));
  while (count_of(&fk.nconfirmed) < 1) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
  fake_stop();
  assert_int_equal(1, got.count);
  assert_string_equal("H9 C1", fk.heard);
}

/* With confirm_later, an event the application confirms while there is no connection is
 * covered by the next connection's resume cursor (held, it would not be). The backoff is long
 * enough for the confirmation to be handled before the next attempt. */
static void test_event_client_confirmed_between_connections(void **state) {
  pm_event_client_options opts;
  (void)state;
  fake_start(FAKE_EVENT_THEN_CLOSE, 2);
  options(&opts);
  opts.confirm_later = true;
  opts.reconnect_min_ms = opts.reconnect_max_ms = (uint32_t)pm_test_margin_ms(1000);
  start_with(fk.path, &opts);
  await_count(&got.count, 1);
  await_count(&got.disconnected, 1);
  assert_pm(0, pm_event_client_confirm(client, 1));
  await_count(&fk.served, 2);
  fake_stop();
  assert_int_equal(1, got.count);
  assert_int_equal(1, fk.last_event_id);
}

/* With confirm_later, an event still held when the service's epoch changes (a restart without
 * a store) says nothing of the new epoch's ids: the next cursor is the new epoch's, 0. */
static void test_event_client_held_forgotten_in_new_epoch(void **state) {
  pm_event_client_options opts;
  (void)state;
  fk.event_id = 3;
  fk.epoch_later = 6;
  fake_start(FAKE_EVENT_THEN_CLOSE, 3);
  options(&opts);
  opts.confirm_later = true;
  start_with(fk.path, &opts);
  await_count(&fk.served, 3);
  fake_stop();
  assert_int_equal(1, got.count);
  assert_int_equal(3, got.ids[0]);
  assert_int_equal(0, fk.last_event_id);
}

/* A service's answer to the client's own heartbeat is answered (§5.2). */
static void test_event_client_answers_heartbeat(void **state) {
  (void)state;
  fake_start(FAKE_HEARTBEAT, 1);
  start_client(fk.path);
  await_count(&fk.served, 1);
  fake_stop();
  assert_int_equal(9, fk.answered_seq);
  assert_int_equal(0, got.disconnected);
}

/* With observe set, the handshake says Mode "Observe" and carries no resume cursor, events
 * reach the application, and none is confirmed: the next thing the service hears is the
 * answer to its heartbeat (§5.11). */
static void test_event_client_observes(void **state) {
  pm_event_client_options opts;
  (void)state;
  fake_start(FAKE_OBSERVED, 1);
  options(&opts);
  opts.observe = true;
  opts.resume_epoch = 5; /* the fake's epoch: a client would send it */
  opts.resume_last_id = 0;
  start_with(fk.path, &opts);
  await_count(&fk.served, 1);
  fake_stop();
  assert_string_equal("Observe", fk.mode_sent);
  assert_false(fk.cursor_sent);
  assert_string_equal("Handshake", fk.after_events);
  assert_int_equal(9, fk.answered_seq);
  assert_int_equal(2, got.count);
  assert_int_equal(1, got.ids[0]);
  assert_int_equal(2, got.ids[1]);
}

/* The client's name is the client's own copy: the caller's buffer may be reused once
 * pm_event_client_start has returned, and each attempt's handshake sends the name. */
static void test_event_client_name_copied(void **state) {
  pm_event_client_options opts;
  char name[16] = "first-name";
  (void)state;
  fake_start(FAKE_CLOSE, 2);
  options(&opts);
  opts.client_name = name;
  start_with(fk.path, &opts);
  await_count(&got.connected, 1);
  snprintf(name, sizeof(name), "reused");
  await_count(&got.connected, 2);
  fake_stop();
  assert_string_equal("first-name", fk.client_sent);
}

/* Each way a service can be wrong ends the connection with its own reason, and a new one is
 * tried. */
static void expect_dropped(fake_mode mode, const char *reason) {
  fake_start(mode, 2);
  start_client(fk.path);
  await_count(&got.connecting, 2);
  fake_stop();
  if (strstr(got.first_reason, reason) == NULL) {
    print_error("disconnect reason \"%s\" does not say \"%s\"\n", got.first_reason, reason);
    fail();
  }
  assert_int_equal(0, got.count);
}

/* The same for a fake that is wrong in one way on its first connection and in another on its
 * second: both connections end, each with the reason. */
static void expect_dropped_twice(fake_mode mode, const char *reason) {
  seen s;
  fake_start(mode, 2);
  start_client(fk.path);
  await_count(&got.disconnected, 2);
  s = snapshot();
  fake_stop();
  if (strstr(s.first_reason, reason) == NULL || strstr(s.last_reason, reason) == NULL) {
    print_error("disconnect reasons \"%s\", \"%s\" do not both say \"%s\"\n", s.first_reason,
                s.last_reason, reason);
    fail();
  }
  assert_int_equal(0, s.count);
}

static void test_event_client_handshake_seq_mismatch(void **state) {
  (void)state;
  expect_dropped(FAKE_WRONG_SEQ, "unexpected handshake from service");
  assert_int_equal(0, got.connected);
}

/* An Epoch that is not an integer of 0 or more is not taken (it would be sent back as the
 * resume cursor): the connection goes, both times. */
static void test_event_client_handshake_bad_epoch(void **state) {
  (void)state;
  expect_dropped_twice(FAKE_BAD_EPOCH, "Epoch must be an integer, 0 or more");
  assert_int_equal(0, got.connected);
}

static void test_event_client_handshake_not_answered(void **state) {
  (void)state;
  expect_dropped(FAKE_EVENT_FIRST, "service did not answer the handshake");
  assert_int_equal(0, got.connected);
}

static void test_event_client_malformed_event(void **state) {
  (void)state;
  expect_dropped(FAKE_EVENT_WITHOUT_ID, "malformed event from service");
  assert_true(got.connected >= 1);
}

/* Ids start at 1: an event with Id 0 or -1 is not delivered, confirmed or taken as a cursor. */
static void test_event_client_event_id_not_positive(void **state) {
  (void)state;
  expect_dropped(FAKE_EVENT_ID_ZERO, "Id must be 1 or more");
  assert_true(got.connected >= 1);
}

/* Data is an object: a null or a list is not delivered (pm_client took a null for out of memory
 * and asked again for ever). */
static void test_event_client_event_data_not_object(void **state) {
  (void)state;
  expect_dropped(FAKE_EVENT_DATA_NULL, "Data must be an object");
  assert_true(got.connected >= 1);
}

/* A Type is a name: "" cannot be dispatched on, in either decoding. */
static void test_event_client_event_type_empty(void **state) {
  (void)state;
  expect_dropped_twice(FAKE_EVENT_TYPE_EMPTY, "Type must not be empty");
  assert_true(got.connected >= 1);
}

/* A Time, when there is one, is an RFC 3339 time as in XML, where the schema refuses any other:
 * text that is not one, and a number, are not handed to the application. */
static void test_event_client_event_time_not_a_time(void **state) {
  (void)state;
  expect_dropped_twice(FAKE_EVENT_BAD_TIME, "Time must be an RFC 3339 time");
  assert_true(got.connected >= 1);
}

static void test_event_client_malformed_frame(void **state) {
  (void)state;
  expect_dropped(FAKE_BAD_FRAME, "JSON");
  assert_true(got.connected >= 1);
}

static void test_event_client_disconnect_reason_reported(void **state) {
  (void)state;
  fake_start(FAKE_DISCONNECT, 2);
  start_client(fk.path);
  await_count(&got.disconnected, 2);
  fake_stop();
  assert_string_equal("Busy", got.first_reason);
  assert_string_equal("unspecified", got.last_reason);
  assert_int_equal(0, got.connected);
}

static void test_event_client_service_closes(void **state) {
  (void)state;
  expect_dropped(FAKE_CLOSE, "service closed the connection");
  assert_true(got.connected >= 1);
}

/* The bytes of the client's answer kind{field: v} on the wire, as it encodes it in JSON (its
 * confirmations are written directly, in the same bytes). */
static size_t answer_bytes(const char *kind, const char *field, int64_t v) {
  pm_msg *m = NULL;
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_pm(0, pm_msg_new(kind, &m));
  assert_pm(0, pm_msg_set_int(m, field, v));
  assert_pm(0, pm_msg_encode(m, PM_ENC_JSON, &buf, &len));
  pm_msg_free(m);
  pm_free(buf);
  return PM_FRAME_HEADER_SIZE + len;
}

/* Waits until the client has given up on a flooding fake and the fake has read everything the
 * client wrote, then stops both. */
static void await_flood_end(void) {
  uint64_t deadline;
  await_count(&got.disconnected, 1);
  deadline = pm_test_now_ms() + (uint64_t)WAIT_MS;
  while (!count_of(&fk.hung_up)) {
    assert_true(pm_test_now_ms() < deadline);
    uv_sleep(5);
  }
  fake_stop();
}

/* The unsent bytes the first disconnect's reason gives, which must be the one for a service
 * that does not read, with bound in it. */
static size_t reported_unsent(size_t bound) {
  size_t head = strlen(PM_EVENT_CLIENT_NOT_READING);
  unsigned long long unsent = 0, said_bound = 0;
  if (strncmp(got.first_reason, PM_EVENT_CLIENT_NOT_READING, head) != 0 ||
      sscanf(got.first_reason + head, ": %llu bytes unsent, past max_unsent (%llu)", &unsent,
             &said_bound) != 2 ||
      said_bound != bound) {
    print_error("disconnect reason \"%s\" is not the unsent bound's (%zu)\n", got.first_reason,
                bound);
    fail();
  }
  return (size_t)unsent;
}

/* A service that sends events and never reads leaves the client's confirmations in its write
 * queue: once they pass max_unsent (the default here) the client disconnects, says why, and
 * reads no more, so the flood is cut short. Measured apart from the client's own count, as the
 * bytes it confirmed less those the service got, the queue held more than the bound (the
 * reason is true) but not more than the bound and one confirmation. */
static void test_event_client_unread_confirmations_bounded(void **state) {
  size_t owed = 0, unsent;
  (void)state;
  fake_start(FAKE_FLOOD, 1);
  start_client(fk.path);
  await_flood_end();
  for (int id = 1; id <= got.delivered; id++)
    owed += answer_bytes("EventConfirmation", "Id", id);
  unsent = owed - fk.bytes_received;
  assert_int_equal(unsent, reported_unsent(PM_EVENT_CLIENT_MAX_UNSENT_DEFAULT));
  assert_true(unsent > PM_EVENT_CLIENT_MAX_UNSENT_DEFAULT);
  assert_true(unsent <= PM_EVENT_CLIENT_MAX_UNSENT_DEFAULT +
                            answer_bytes("EventConfirmation", "Id", got.delivered));
  assert_true(fk.flooded < FLOOD_MAX);
  assert_int_equal(1, got.connected);
}

/* The same for an observer's answers to heartbeats, with a bound of its own (16 KiB): the
 * answers the service got and those the client says were left are answers 1 to k, whole, and
 * what was left is past the bound by less than one answer. */
static void test_event_client_unread_heartbeat_answers_bounded(void **state) {
  const size_t bound = 16 * 1024;
  pm_event_client_options opts;
  size_t owed = 0, unsent;
  int k = 0;
  (void)state;
  fake_start(FAKE_HEARTBEAT_FLOOD, 1);
  options(&opts);
  opts.observe = true;
  opts.max_unsent = bound;
  start_with(fk.path, &opts);
  await_flood_end();
  unsent = reported_unsent(bound);
  while (owed < fk.bytes_received + unsent && k < fk.flooded)
    owed += answer_bytes("Handshake", "Seq", ++k);
  assert_int_equal(fk.bytes_received + unsent, owed);
  assert_true(unsent > bound);
  assert_true(unsent <= bound + answer_bytes("Handshake", "Seq", k));
  assert_true(fk.flooded < FLOOD_MAX);
}

/* The uid the owner check sees, as if another user ran the service. */
static long long as_other_user(long long uid) {
  (void)uid;
  return (long long)getuid() + 4242;
}

/* A pipe served by another user (not root, not us) is dropped before anything is sent, unless
 * that user is the one expected (§4, the owner check). Without root there is no other user to
 * run a service as: the library's test hook makes our own fake look like one. */
static void test_event_client_owner_checked(void **state) {
  pm_event_client_options opts;
  (void)state;
  pm__owner_uid_hook = as_other_user;
  expect_dropped(FAKE_MUTE, "service not trusted");
  assert_int_equal(0, fk.bytes_received);
  /* The same service, expected by its uid, is talked to. */
  memset(&fk, 0, sizeof(fk));
  memset(got.states, 0, sizeof(got.states));
  got.disconnected = got.connecting = got.nstates = 0;
  fake_start(FAKE_SILENT, 1);
  options(&opts);
  opts.expect_owner_uid = (long long)getuid() + 4242;
  start_with(fk.path, &opts);
  await_count(&got.connected, 1);
  fake_stop();
  assert_true(fk.bytes_received > 0);
}

/* The same with a real other user, as root: a fake service run by nobody. */
#define NOBODY 65534

/* The child's side: binds path as nobody, says so on ready, serves one connection and reports
 * the bytes it received on result. No cmocka here: this is another process. */
static void serve_as_nobody(const char *path, int ready, int result) {
  struct sockaddr_un sa;
  struct pollfd pfd;
  long received = 0;
  ssize_t n;
  char buf[256];
  int lfd, fd;
  if (strlen(path) >= sizeof(sa.sun_path) || setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 ||
      setuid(NOBODY) < 0)
    _exit(2);
  lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0 ||
      write(ready, "r", 1) != 1)
    _exit(3);
  pfd.fd = lfd;
  pfd.events = POLLIN;
  if (poll(&pfd, 1, WAIT_MS) != 1 || (fd = accept(lfd, NULL, NULL)) < 0)
    _exit(4);
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
    received += n;
  _exit(write(result, &received, sizeof(received)) == (ssize_t)sizeof(received) ? 0 : 5);
}

static void test_event_client_owner_other_user(void **state) {
  char dir[64], path[128], c;
  int ready[2], result[2], status;
  long got_bytes = -1;
  pid_t pid;
  (void)state;
  if (geteuid() != 0)
    pm_test_skip("needs root to run a fake service as another user "
                 "(test_event_client_owner_checked covers the check without root)");
  pm_test_dir_new(dir, sizeof(dir));
  assert_int_equal(0, chmod(dir, 0777));
  snprintf(path, sizeof(path), "%s/nobody", dir);
  assert_int_equal(0, pipe(ready));
  assert_int_equal(0, pipe(result));
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    serve_as_nobody(path, ready[1], result[1]);
  close(ready[1]);
  close(result[1]);
  assert_int_equal(1, read(ready[0], &c, 1));
  start_client(path);
  await_count(&got.disconnected, 1);
  stop_client();
  assert_int_equal(pid, waitpid(pid, &status, 0));
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(sizeof(got_bytes), read(result[0], &got_bytes, sizeof(got_bytes)));
  close(ready[0]);
  close(result[0]);
  pm_test_dir_remove(dir);
  assert_string_equal("service not trusted: the pipe belongs to an unexpected user",
                      got.first_reason);
  assert_int_equal(0, got.connected);
  /* Dropped before anything was sent: not even the handshake reached nobody. */
  assert_int_equal(0, got_bytes);
}

/* A HeartbeatMs from the service that is not a usable interval is ignored: the client keeps
 * its own (150 ms), so 3 x 150 ms of silence ends the connection. Adopted, -1 or 2^33 would
 * give a deadline of days (or none), far outside the window. */
static void assert_heartbeat_ignored(int64_t service_hb) {
  pm_event_client_options opts;
  fk.heartbeat_ms = service_hb;
  fake_start(FAKE_SILENT, 1);
  options(&opts);
  opts.heartbeat_ms = 150;
  start_with(fk.path, &opts);
  await_count(&got.disconnected, 1);
  fake_stop();
  assert_string_equal("service silent", got.first_reason);
  assert_state_gaps(PM_EVENT_CLIENT_CONNECTED, PM_EVENT_CLIENT_DISCONNECTED, 3 * 150, 1);
}

static void test_event_client_negative_heartbeat_ignored(void **state) {
  (void)state;
  assert_heartbeat_ignored(-1);
}

static void test_event_client_huge_heartbeat_ignored(void **state) {
  (void)state;
  assert_heartbeat_ignored((int64_t)1 << 33);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(test_event_client_##name, setup, teardown)
      T(receives_in_order),
      T(reconnects_after_restart),
      T(slow_application_sees_event_once),
      T(resume_cursor_across_clients),
      T(old_epoch_confirm_confirms_nothing),
      T(held_event_stays_queued),
      T(held_event_confirmed_late),
      T(bad_options),
      T(silence_means_dead),
      T(negative_heartbeat_ignored),
      T(huge_heartbeat_ignored),
      T(handshake_deadline),
      T(backoff_doubles),
      T(drops_duplicate_ids),
      T(held_duplicate_not_confirmed),
      T(confirmed_between_connections),
      T(held_forgotten_in_new_epoch),
      T(answers_heartbeat),
      T(observes),
      T(handshake_seq_mismatch),
      T(handshake_bad_epoch),
      T(handshake_not_answered),
      T(malformed_event),
      T(malformed_frame),
      T(event_id_not_positive),
      T(event_data_not_object),
      T(event_type_empty),
      T(name_copied),
      T(event_time_not_a_time),
      T(disconnect_reason_reported),
      T(service_closes),
      T(unread_confirmations_bounded),
      T(unread_heartbeat_answers_bounded),
      T(owner_checked),
      T(owner_other_user),
#undef T
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
