#include <stdio.h>

#include <uv.h>

#include "contract.h"
#include "pipemsg/error.h"
#include "platform.h"
#include "settings.h"

int settings_load(settings *s, const char *dir) {
  char path[4096];
  json_t *root, *v;
  json_error_t err;
  FILE *f;
  s->kill_switch = false;
  s->reconnection = true;
  s->tunnel_up = false;
  s->bypass_domains = json_array();
  if (s->bypass_domains == NULL)
    return -1;
  if (dir == NULL)
    return 0;
  snprintf(path, sizeof(path), "%s/settings.json", dir);
  f = fopen(path, "rb");
  if (f == NULL)
    return 0;
  root = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
  fclose(f);
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
  snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)uv_os_getpid());
  root = json_pack("{s:b, s:b, s:O, s:b}", "KillSwitch", s->kill_switch, "ReconnectionEnabled",
                   s->reconnection, "BypassDomains", s->bypass_domains, "TunnelUp", s->tunnel_up);
  /* A fresh file, never through a link or a file left there: one a crash left behind (the
   * same pid, later) goes first, then "x" creates or fails. */
  if (root != NULL)
    remove(tmp);
  f = root ? fopen(tmp, "wbx") : NULL;
  if (f == NULL) {
    json_decref(root);
    return -1;
  }
  ok = json_dumpf(root, f, JSON_INDENT(2)) == 0 && platform_file_sync(f) == 0;
  ok = fclose(f) == 0 && ok;
  json_decref(root);
  if (!ok || platform_file_replace(tmp, path) < 0) {
    remove(tmp);
    return -1;
  }
  return 0;
}

void settings_free(settings *s) {
  json_decref(s->bypass_domains);
  s->bypass_domains = NULL;
}

/* The kept list keeps to what ConfigureBypassDomains accepts: the contract's declaration of
 * its Domains, the one rule for both. */
json_t *settings_check_domains(const json_t *domains, char *why, size_t why_size) {
  const pm__ct_command *c = pm__contract_command("ConfigureBypassDomains", false);
  json_t *params, *typed = NULL, *copy = NULL;
  char reason[PM_REASON_MAX];
  if (domains == NULL) {
    if (why != NULL)
      snprintf(why, why_size, "Domains is missing");
    return NULL;
  }
  params = json_pack("{s:O}", "Domains", domains);
  if (params != NULL && c != NULL &&
      pm__contract_check_params(c, params, false, &typed, reason) == 0) {
    copy = json_deep_copy(json_object_get(typed, "Domains"));
    if (copy == NULL && why != NULL)
      snprintf(why, why_size, "out of memory");
  } else if (why != NULL)
    snprintf(why, why_size, "%s", params != NULL && c != NULL ? reason : "out of memory");
  json_decref(typed);
  json_decref(params);
  return copy;
}
