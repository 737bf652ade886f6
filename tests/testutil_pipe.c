/* The raw pipe helpers that are the same on every platform: frames, messages and the event
 * pipe's exchanges, built on each platform's primitives (pm_test_connect, pm_test_send_all,
 * pm_test_recv_exact, pm_test_wait_eof in testutil.c and testutil_win.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

char *pm_test_recv_frame(int fd, int timeout_ms, size_t *len) {
  uint64_t deadline = pm_test_now_ms() + (uint64_t)timeout_ms;
  uint8_t h[4];
  size_t n;
  char *buf;
  if (pm_test_recv_exact(fd, h, 4, deadline) < 0)
    return NULL;
  n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
  buf = malloc(n + 1);
  assert_non_null(buf);
  if (pm_test_recv_exact(fd, buf, n, deadline) < 0) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  if (len != NULL)
    *len = n;
  return buf;
}

int pm_test_send_frame(int fd, const char *payload) {
  uint8_t h[4];
  size_t len = strlen(payload);
  if (pm_frame_header(len, PM_MAX_MESSAGE_CEILING, h) < 0)
    return -1;
  if (pm_test_send_all(fd, h, 4) < 0)
    return -1;
  return pm_test_send_all(fd, payload, len);
}

pm_msg *pm_test_recv_msg(int fd, int timeout_ms) {
  size_t len;
  char *buf = pm_test_recv_frame(fd, timeout_ms, &len);
  pm_msg *m = NULL;
  if (buf == NULL)
    return NULL;
  assert_pm(0, pm_msg_decode(buf, len, &m, NULL));
  free(buf);
  return m;
}

int64_t pm_test_int_field(const pm_msg *m, const char *key) {
  int64_t v = -1;
  assert_pm(0, pm_msg_get_int(m, key, &v));
  return v;
}

void pm_test_assert_kind(const pm_msg *m, const char *kind) {
  assert_non_null(m);
  if (strcmp(pm_msg_kind(m), kind) != 0) {
    print_error("expected %s, got %s\n", kind, pm_msg_kind(m));
    fail();
  }
}

int pm_test_event_attach(const char *pipe, const char *handshake, int timeout_ms,
                         pm_msg **reply) {
  int fd = pm_test_connect(pipe);
  pm_msg *m;
  assert_true(fd >= 0);
  assert_int_equal(0, pm_test_send_frame(fd, handshake ? handshake : "{\"Handshake\":{\"Seq\":1}}"));
  m = pm_test_recv_msg(fd, timeout_ms);
  pm_test_assert_kind(m, "Handshake");
  if (reply != NULL)
    *reply = m;
  else
    pm_msg_free(m);
  return fd;
}

pm_msg *pm_test_next_event(int fd, int timeout_ms) {
  /* One deadline for the whole wait: heartbeats come more often than most timeouts given here,
   * so a timeout per message would wait for ever for an event that never comes. */
  uint64_t deadline = pm_test_now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    uint64_t now = pm_test_now_ms();
    pm_msg *m = now < deadline ? pm_test_recv_msg(fd, (int)(deadline - now)) : NULL;
    char buf[64];
    if (m == NULL || strcmp(pm_msg_kind(m), "Handshake") != 0)
      return m;
    snprintf(buf, sizeof(buf), "{\"Handshake\":{\"Seq\":%lld}}",
             (long long)pm_test_int_field(m, "Seq"));
    pm_msg_free(m);
    assert_int_equal(0, pm_test_send_frame(fd, buf));
  }
}

void pm_test_confirm(int fd, int64_t id) {
  char buf[64];
  snprintf(buf, sizeof(buf), "{\"EventConfirmation\":{\"Id\":%lld}}", (long long)id);
  assert_int_equal(0, pm_test_send_frame(fd, buf));
}

void pm_test_expect_disconnect(int fd, const char *reason, int timeout_ms) {
  pm_msg *m = pm_test_recv_msg(fd, timeout_ms);
  const char *r = NULL;
  pm_test_assert_kind(m, "Disconnect");
  assert_pm(0, pm_msg_get_string(m, "Reason", &r));
  assert_string_equal(reason, r);
  pm_msg_free(m);
  assert_true(pm_test_wait_eof(fd, timeout_ms) >= 0);
}
