#include <stdio.h>
#include <string.h>

#include "registry.h"

static const struct {
  const char *name;
  HKEY root;
} roots[] = {
    {"HKLM", HKEY_LOCAL_MACHINE},
    {"HKEY_LOCAL_MACHINE", HKEY_LOCAL_MACHINE},
    {"HKCU", HKEY_CURRENT_USER},
    {"HKEY_CURRENT_USER", HKEY_CURRENT_USER},
};

int registry_key_parse(const char *key, HKEY *root, wchar_t subkey[REGISTRY_KEY_MAX + 1],
                       char *why, size_t why_size) {
  const char *sep = strchr(key, '\\'), *sub;
  size_t root_len = sep ? (size_t)(sep - key) : strlen(key);
  *root = NULL;
  for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
    if (strlen(roots[i].name) == root_len && _strnicmp(key, roots[i].name, root_len) == 0)
      *root = roots[i].root;
  if (*root == NULL) {
    snprintf(why, why_size,
             "'%s' does not start with HKLM, HKEY_LOCAL_MACHINE, HKCU or HKEY_CURRENT_USER",
             key);
    return -1;
  }
  sub = sep ? sep + 1 : "";
  if (sub[0] == '\0' || strstr(sub, "\\\\") != NULL || sub[strlen(sub) - 1] == '\\') {
    snprintf(why, why_size, "'%s' needs a subkey after the root, with no empty part", key);
    return -1;
  }
  if (strlen(sub) > REGISTRY_KEY_MAX ||
      MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, sub, -1, subkey,
                          REGISTRY_KEY_MAX + 1) == 0) {
    snprintf(why, why_size, "'%s' is longer than %d characters or not UTF-8", key,
             REGISTRY_KEY_MAX);
    return -1;
  }
  return 0;
}
