#ifndef PIPEMSGD_SETTINGS_H
#define PIPEMSGD_SETTINGS_H

#include <stdbool.h>

#include <jansson.h>

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

/* A copy of domains if ConfigureBypassDomains would take it (the contract: at most 256 domain
 * names, each optionally starting "*."); else NULL and why says which is wrong. */
json_t *settings_check_domains(const json_t *domains, char *why, size_t why_size);

#endif
