/* Prints the VPN state (for example "Disconnected") on its first line, then the settings.
 * The pipes come from PIPEMSG_COMMAND_PIPE / PIPEMSG_EVENT_PIPE, else the standard names. */
#include <stdio.h>

#include <pipemsg/client.h>

int main(void) {
  pm_client *client;
  pm_client_get_state_answer state;
  pm_result r;
  if (pm_client_open(NULL, &client) < 0) {
    fprintf(stderr, "get_state: cannot make a client\n");
    return 1;
  }
  r = pm_client_get_state(client, &state);
  if (pm_result_ok(r)) {
    printf("%s\n", pm_state_name(state.state));
    printf("location %s, kill switch %s, %zu bypass domains\n", state.location,
           state.kill_switch ? "on" : "off", state.n_bypass_domains);
    if (state.has_last_error)
      printf("last error: %s\n", state.last_error);
  } else {
    fprintf(stderr, "get_state: %s: %s\n", r.name, r.message);
  }
  pm_client_get_state_answer_free(&state);
  pm_client_close(client);
  return pm_result_ok(r) ? 0 : 1;
}
