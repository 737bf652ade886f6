/* The Windows part of pipemsgd's options: account names and SIDs, the data directory under
 * %ProgramData%, the registry key, the pipes' descriptor, help texts. */
#include <windows.h>
#include <sddl.h>
#include <shlobj.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "registry.h"

/* Longest account name or SID string an option takes, in characters. */
#define ACCOUNT_MAX 512

const int config_platform = CONFIG_ON_WINDOWS;

const char config_data_dir_help[] =
    "keep the event queue and settings in DIR (created if missing, readable by LocalSystem, "
    "Administrators and the service's account only; default %ProgramData%\\pipemsg); an empty "
    "DIR keeps them in memory";

const char config_log_target_help[] =
    "stderr (default), eventlog (the Windows Event Log, source pipemsgd or the service's name), "
    "or file (--log-file)";

const char config_names_text[] =
    "A NAME means \\\\.\\pipe\\NAME; a full \\\\.\\pipe\\NAME is accepted too. In a console, "
    "Ctrl-C and Ctrl-Break (and closing the console) stop the service, after taking a connected "
    "tunnel down; under the service control manager (--install, then --service NAME), the stop "
    "and shutdown controls do. There is no reload: a changed option needs a restart.";

/* %ProgramData%\pipemsg, where a service keeps its state on Windows. */
void config_platform_defaults(service_config *cfg) {
  wchar_t *dir = NULL;
  char path[MAX_PATH + 16];
  if (SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &dir) == S_OK &&
      WideCharToMultiByte(CP_ACP, 0, dir, -1, path, MAX_PATH, NULL, NULL) > 0) {
    strcat(path, "\\pipemsg");
    cfg->data_dir = strdup(path);
  }
  CoTaskMemFree(dir);
}

/* Never reached: the uid and gid options are refused on Windows before their value is read. */
int config_account_id(const char *name, int group, long long *id) {
  (void)name;
  (void)group;
  *id = -1;
  return -1;
}

static int is_group(SID_NAME_USE use) {
  return use == SidTypeGroup || use == SidTypeWellKnownGroup || use == SidTypeAlias;
}

/* A SID string is taken as given (it may name an account of a domain out of reach); a name
 * must be an account this machine can resolve now, of the kind asked for. */
int config_account_sid(const char *name, int group, char **sid) {
  wchar_t wname[ACCOUNT_MAX + 1], domain[ACCOUNT_MAX + 1];
  union {
    SID sid;
    BYTE room[SECURITY_MAX_SID_SIZE];
  } buf;
  DWORD sid_len = sizeof(buf), domain_len = ACCOUNT_MAX + 1;
  SID_NAME_USE use;
  PSID parsed = NULL;
  char *text = NULL;
  int rc = -1;
  *sid = NULL;
  if ((name[0] == 'S' || name[0] == 's') && name[1] == '-') {
    if (ConvertStringSidToSidA(name, &parsed) && ConvertSidToStringSidA(parsed, &text))
      rc = 0;
    LocalFree(parsed);
  } else if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, wname,
                                 ACCOUNT_MAX + 1) > 0 &&
             LookupAccountNameW(NULL, wname, &buf, &sid_len, domain, &domain_len, &use) &&
             (is_group(use) || !group) && ConvertSidToStringSidA(&buf, &text)) {
    rc = 0;
  }
  if (rc == 0) {
    *sid = strdup(text);
    rc = *sid ? 0 : -1;
  }
  LocalFree(text);
  return rc;
}

int config_platform_check(const service_config *cfg, char *why, size_t why_size) {
  wchar_t subkey[REGISTRY_KEY_MAX + 1];
  char reason[512];
  HKEY root;
  PSECURITY_DESCRIPTOR sd = NULL;
  if (cfg->names_registry != NULL &&
      registry_key_parse(cfg->names_registry, &root, subkey, reason, sizeof(reason)) < 0) {
    snprintf(why, why_size, "--names-registry: %s", reason);
    return -1;
  }
  if (cfg->pipe_sddl != NULL && !ConvertStringSecurityDescriptorToSecurityDescriptorA(
                                    cfg->pipe_sddl, SDDL_REVISION_1, &sd, NULL)) {
    snprintf(why, why_size, "--pipe-sddl: '%s' is not a security descriptor (SDDL)",
             cfg->pipe_sddl);
    return -1;
  }
  LocalFree(sd);
  return 0;
}
