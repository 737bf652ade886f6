/* poll_loop: drives the client from its own poll() loop: attaches to the event pipe (as an
 * observer), starts the VPN with an asynchronous call and waits for Connected, with no
 * blocking call. Exits 0 when connected, 1 on a failure. */
#include <poll.h>
#include <stdio.h>

#include <pipemsg/client.h>

static enum { ATTACHING, STARTING, CONNECTED, FAILED } phase = ATTACHING;

static void on_started(pm_client *c, const pm_result *r, const pm_client_start_vpn_answer *a,
                       void *data) {
  (void)c, (void)a, (void)data;
  if (!pm_result_ok(*r)) {
    fprintf(stderr, "poll_loop: StartVpn: %s: %s\n", r->name, r->message);
    phase = FAILED;
  }
}

static void on_connection(pm_client *c, pm_client_connection st, const char *why, void *data) {
  (void)why, (void)data;
  if (st != PM_CLIENT_CONNECTED || phase != ATTACHING)
    return;
  phase = STARTING;
  if (pm_client_start_vpn_async(c, NULL, on_started, NULL) < 0)
    phase = FAILED;
}

static void on_event(pm_client *c, const pm_client_event *ev, void *data) {
  (void)c, (void)data;
  if (ev->type != PM_CLIENT_EVENT_STATE_CHANGED || phase != STARTING)
    return;
  printf("%s\n", pm_state_name(ev->u.state_changed.state));
  if (ev->u.state_changed.state == PM_STATE_CONNECTED)
    phase = CONNECTED;
  else if (ev->u.state_changed.state == PM_STATE_DISCONNECTED)
    phase = FAILED;
}

int main(void) {
  pm_client_config cfg = {.drive = PM_CLIENT_DRIVE_APP, .observe = true, .on_event = on_event,
                          .on_connection = on_connection};
  pm_client *client;
  struct pollfd p = {.events = POLLIN};
  if (pm_client_open(&cfg, &client) < 0)
    return 1;
  p.fd = (int)pm_client_fd(client);
  /* The application's own loop: here only the client's descriptor, usually many more. The
   * client's timers (handshake, reconnection, call deadlines) set the timeout. */
  while (phase != CONNECTED && phase != FAILED)
    if (poll(&p, 1, pm_client_timeout_ms(client)) >= 0)
      pm_client_process(client);
  pm_client_close(client);
  return phase == CONNECTED ? 0 : 1;
}
