/* start_and_wait LOCATION: starts the VPN and waits for Connected through events (as an
 * observer, so the application that owns the event pipe still gets every event). Exits 0 when
 * connected, 1 with the error otherwise. */
#include <pthread.h>
#include <stdio.h>

#include <pipemsg/client.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int attached, outcome = -1; /* outcome: 0 connected, 1 failed */

static void on_connection(pm_client *c, pm_client_connection st, const char *why, void *data) {
  (void)c, (void)why, (void)data;
  pthread_mutex_lock(&lock);
  attached = attached || st == PM_CLIENT_CONNECTED;
  pthread_cond_signal(&changed);
  pthread_mutex_unlock(&lock);
}

static void on_event(pm_client *c, const pm_client_event *ev, void *data) {
  const pm_state_changed *sc = &ev->u.state_changed;
  (void)c, (void)data;
  if (ev->type != PM_CLIENT_EVENT_STATE_CHANGED ||
      (sc->state != PM_STATE_CONNECTED && sc->state != PM_STATE_DISCONNECTED))
    return;
  if (sc->state == PM_STATE_DISCONNECTED)
    fprintf(stderr, "start_and_wait: %s\n", sc->has_error ? sc->error : "disconnected");
  pthread_mutex_lock(&lock);
  outcome = sc->state == PM_STATE_CONNECTED ? 0 : 1;
  pthread_cond_signal(&changed);
  pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv) {
  pm_client_config cfg = {.on_event = on_event, .on_connection = on_connection, .observe = true};
  pm_client_start_vpn_params params = {.has_location = argc > 1, .location = argv[1]};
  pm_client *client;
  pm_result r;
  if (pm_client_open(&cfg, &client) < 0)
    return 1;
  pthread_mutex_lock(&lock);
  while (!attached) /* an observer sees what is published after it attached */
    pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);
  r = pm_client_start_vpn(client, &params, NULL);
  if (!pm_result_ok(r))
    fprintf(stderr, "start_and_wait: StartVpn: %s: %s\n", r.name, r.message);
  pthread_mutex_lock(&lock);
  while (pm_result_ok(r) && outcome < 0)
    pthread_cond_wait(&changed, &lock);
  pthread_mutex_unlock(&lock);
  pm_client_close(client);
  return pm_result_ok(r) ? outcome : 1;
}
