#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"

/* RFC 1035 limits. */
#define DOMAIN_MAX 253
#define LABEL_MAX 63

int settings_load(settings *s, const char *dir) {
  char path[4096];
  json_t *root, *v;
  json_error_t err;
  s->kill_switch = false;
  s->reconnection = true;
  s->tunnel_up = false;
  s->bypass_domains = json_array();
  if (s->bypass_domains == NULL)
    return -1;
  if (dir == NULL)
    return 0;
  snprintf(path, sizeof(path), "%s/settings.json", dir);
  if (access(path, F_OK) < 0)
    return 0;
  root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
  if (root == NULL || !json_is_object(root)) {
    json_decref(root);
    return -1;
  }
  if (json_is_boolean(v = json_object_get(root, "KillSwitch")))
    s->kill_switch = json_is_true(v);
  if (json_is_boolean(v = json_object_get(root, "ReconnectionEnabled")))
    s->reconnection = json_is_true(v);
  if (json_is_boolean(v = json_object_get(root, "TunnelUp")))
    s->tunnel_up = json_is_true(v);
  v = settings_check_domains(json_object_get(root, "BypassDomains"), NULL, 0);
  if (v != NULL) {
    json_decref(s->bypass_domains);
    s->bypass_domains = v;
  }
  json_decref(root);
  return 0;
}

int settings_save(const settings *s, const char *dir) {
  char path[4096], tmp[4200];
  json_t *root;
  FILE *f;
  int ok;
  if (dir == NULL)
    return 0;
  snprintf(path, sizeof(path), "%s/settings.json", dir);
  snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
  root = json_pack("{s:b, s:b, s:O, s:b}", "KillSwitch", s->kill_switch, "ReconnectionEnabled",
                   s->reconnection, "BypassDomains", s->bypass_domains, "TunnelUp", s->tunnel_up);
  f = root ? fopen(tmp, "w") : NULL;
  if (f == NULL) {
    json_decref(root);
    return -1;
  }
  ok = json_dumpf(root, f, JSON_INDENT(2)) == 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  json_decref(root);
  if (!ok || rename(tmp, path) < 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

void settings_free(settings *s) {
  json_decref(s->bypass_domains);
  s->bypass_domains = NULL;
}

static int domain_valid(const char *d) {
  size_t len = strlen(d), label = 0;
  if (strncmp(d, "*.", 2) == 0) {
    d += 2;
    len -= 2;
  }
  if (len == 0 || len > DOMAIN_MAX || d[0] == '.' || d[len - 1] == '.')
    return 0;
  for (const char *p = d; *p; p++) {
    if (*p == '.') {
      if (label == 0 || p[-1] == '-')
        return 0;
      label = 0;
    } else if (isalnum((unsigned char)*p) || (*p == '-' && label > 0)) {
      if (++label > LABEL_MAX)
        return 0;
    } else {
      return 0;
    }
  }
  return d[len - 1] != '-';
}

json_t *settings_check_domains(const json_t *domains, char *why, size_t why_size) {
  json_t *copy, *item;
  size_t i;
  /* XML sends an empty list as <Domains/>, which arrives as {}. */
  if (json_is_object(domains) && json_object_size(domains) == 0)
    return json_array();
  if (!json_is_array(domains)) {
    if (why != NULL)
      snprintf(why, why_size, "Domains must be a list of domain names");
    return NULL;
  }
  if (json_array_size(domains) > SETTINGS_DOMAINS_MAX) {
    if (why != NULL)
      snprintf(why, why_size, "at most %d domains", SETTINGS_DOMAINS_MAX);
    return NULL;
  }
  copy = json_array();
  json_array_foreach(domains, i, item) {
    if (!json_is_string(item) || !domain_valid(json_string_value(item))) {
      if (why != NULL)
        snprintf(why, why_size, "Domains[%zu] is not a domain name", i);
      json_decref(copy);
      return NULL;
    }
    json_array_append_new(copy, json_string(json_string_value(item)));
  }
  return copy;
}
