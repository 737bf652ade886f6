/* watch_events N: prints N typed events, one line each, then exits 0. It attaches as the event
 * pipe's client: it gets what the service kept for it, and confirms each event it prints. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <pipemsg/client.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static long seen;

static void on_event(pm_client *c, const pm_client_event *ev, void *data) {
  (void)c, (void)data;
  printf("%lld %s ", (long long)ev->id, ev->type_name);
  if (ev->type == PM_CLIENT_EVENT_STATE_CHANGED)
    printf("%s %s%s%s\n", pm_state_name(ev->u.state_changed.state),
           ev->u.state_changed.location, ev->u.state_changed.has_error ? ": " : "",
           ev->u.state_changed.has_error ? ev->u.state_changed.error : "");
  else if (ev->type == PM_CLIENT_EVENT_TRAFFIC_CHANGED)
    printf("sent %lld received %lld\n", (long long)ev->u.traffic_changed.bytes_sent,
           (long long)ev->u.traffic_changed.bytes_received);
  else if (ev->type == PM_CLIENT_EVENT_ERROR_OCCURED)
    printf("%s: %s\n", ev->u.error_occured.result, ev->u.error_occured.message);
  else if (ev->type == PM_CLIENT_EVENT_EVENTS_LOST)
    printf("%lld lost\n", (long long)ev->u.events_lost.count);
  else
    printf("%s\n", ev->data_json != NULL ? ev->data_json : "{}");
  fflush(stdout);
  pthread_mutex_lock(&lock);
  seen++;
  pthread_cond_signal(&more);
  pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv) {
  pm_client_config cfg = {.on_event = on_event};
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
  pm_client *client;
  if (pm_client_open(&cfg, &client) < 0)
    return 1;
  pthread_mutex_lock(&lock);
  while (seen < n)
    pthread_cond_wait(&more, &lock);
  pthread_mutex_unlock(&lock);
  pm_client_close(client);
  return 0;
}
