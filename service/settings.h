#ifndef PIPEMSGD_SETTINGS_H
#define PIPEMSGD_SETTINGS_H

#include <stdbool.h>

#include <jansson.h>

/* Most bypass domains one ConfigureBypassDomains may set. */
#define SETTINGS_DOMAINS_MAX 256

/* What a client sets and the service keeps: in DATA_DIR/settings.json when there is a data
 * directory, else for the life of the process. */
typedef struct settings {
  bool kill_switch;
  bool reconnection;
  json_t *bypass_domains; /* array of strings, owned */
  /* Not a client's setting but the service's memory: a tunnel may be up (from the start of an
   * up command to the success of a down command), so that a start after a crash takes it
   * down. */
  bool tunnel_up;
} settings;

/* Defaults, then what dir (may be NULL) holds; a missing file is not an error. */
int settings_load(settings *s, const char *dir);
/* Writes atomically (temporary file, fsync, rename); a no-op without dir. */
int settings_save(const settings *s, const char *dir);
void settings_free(settings *s);

/* A copy of domains if every item is a valid domain name (an optional leading "*." allowed)
 * and there are at most SETTINGS_DOMAINS_MAX; else NULL and why says which is wrong. */
json_t *settings_check_domains(const json_t *domains, char *why, size_t why_size);

#endif
