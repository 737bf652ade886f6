/* The Windows side of the CLI (cli.h): names from the registry, an account or SID to trust,
 * stopping watch on Ctrl-C or Ctrl-Break. */
#include <winsock2.h> /* before windows.h, as libuv (through pipemsg.h) includes it */
#include <windows.h>
#include <sddl.h>
#include <io.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "registry.h"

const char cli_call_pipe_help[] =
    "      --names-file FILE       find the pipe in FILE, as written by pipemsgd --names-file\n"
    "      --names-registry KEY    find the pipe in the value CommandPipe under the registry\n"
    "                              key KEY (HKLM\\... or HKCU\\...), as written by pipemsgd\n"
    "                              --names-registry\n"
    "      --expect-owner ACCOUNT  also trust a service running as ACCOUNT, a name or a SID\n"
    "                              (LocalSystem, administrators and our own user always are);\n"
    "                              anyone else serving the pipe is refused\n";

const char cli_watch_pipe_help[] =
    "      --names-file FILE         find the pipe in FILE, as written by pipemsgd --names-file\n"
    "      --names-registry KEY      find the pipe in the value EventPipe under the registry\n"
    "                                key KEY (HKLM\\... or HKCU\\...), as written by pipemsgd\n"
    "                                --names-registry\n"
    "      --expect-owner ACCOUNT    also trust a service running as ACCOUNT, a name or a SID\n"
    "                                (LocalSystem, administrators and our own user always\n"
    "                                are); anyone else is refused\n";

static HANDLE stop_event;

void cli_platform_init(void) {}

int cli_names_registry(const char *key, const char *value, char *buf, size_t size) {
  WCHAR wsub[REGISTRY_KEY_MAX + 1], wvalue[64], data[PM_PIPE_PATH_MAX + 1];
  DWORD bytes = sizeof(data);
  char why[256];
  HKEY root;
  LSTATUS st;
  if (registry_key_parse(key, &root, wsub, why, sizeof(why)) < 0) {
    fprintf(stderr, "%s: --names-registry: %s\n", cli_prog, why);
    return -1;
  }
  if (MultiByteToWideChar(CP_UTF8, 0, value, -1, wvalue, 64) == 0)
    return -1;
  st = RegGetValueW(root, wsub, wvalue, RRF_RT_REG_SZ, NULL, data, &bytes);
  if (st == ERROR_SUCCESS &&
      WideCharToMultiByte(CP_UTF8, 0, data, -1, buf, (int)size, NULL, NULL) > 1)
    return 0;
  if (st == ERROR_FILE_NOT_FOUND) {
    HKEY k;
    int key_exists = RegOpenKeyExW(root, wsub, 0, KEY_READ, &k) == ERROR_SUCCESS;
    if (key_exists)
      RegCloseKey(k);
    fprintf(stderr, "%s: registry key %s has no value %s%s\n", cli_prog, key, value,
            key_exists ? "" : " (the key does not exist)");
  } else {
    fprintf(stderr, "%s: cannot read the value %s under registry key %s: %s\n", cli_prog, value,
            key,
            st == ERROR_SUCCESS || st == ERROR_MORE_DATA ? "not a pipe name"
            : st == ERROR_UNSUPPORTED_TYPE               ? "not a string (REG_SZ)"
                                                         : "access denied or unreadable");
  }
  return -1;
}

/* A SID string as is (checked), or an account name looked up; either way the SID in its
 * canonical string form. */
int cli_expect_owner(const char *arg, cli_pipe *p) {
  BYTE sid_buf[SECURITY_MAX_SID_SIZE];
  char domain[256];
  DWORD sid_size = sizeof(sid_buf), domain_size = sizeof(domain);
  SID_NAME_USE use;
  PSID sid = NULL;
  char *text = NULL;
  int rc = -1;
  if (ConvertStringSidToSidA(arg, &sid)) {
    rc = ConvertSidToStringSidA(sid, &text) ? 0 : -1;
    LocalFree(sid);
  } else if (LookupAccountNameA(NULL, arg, sid_buf, &sid_size, domain, &domain_size, &use)) {
    rc = ConvertSidToStringSidA(sid_buf, &text) ? 0 : -1;
  }
  if (rc == 0 && strlen(text) < sizeof(p->expect_owner_sid))
    memcpy(p->expect_owner_sid, text, strlen(text) + 1);
  else
    rc = -1;
  LocalFree(text);
  if (rc < 0)
    fprintf(stderr, "%s: --expect-owner: '%s' is neither a SID nor a known account\n", cli_prog,
            arg);
  return rc;
}

static BOOL WINAPI on_console_event(DWORD type) {
  if (type != CTRL_C_EVENT && type != CTRL_BREAK_EVENT)
    return FALSE;
  SetEvent(stop_event);
  return TRUE;
}

int cli_stop_init(void) {
  stop_event = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (stop_event == NULL)
    return -1;
  return SetConsoleCtrlHandler(on_console_event, TRUE) ? 0 : -1;
}

int cli_stop_wait(unsigned long long timeout_ms) {
  DWORD ms = timeout_ms == 0 || timeout_ms >= INFINITE ? INFINITE : (DWORD)timeout_ms;
  return WaitForSingleObject(stop_event, ms) == WAIT_TIMEOUT ? CLI_STOP_TIMEOUT : CLI_STOP_SIGNAL;
}

void cli_stop_post(void) { SetEvent(stop_event); }

int cli_stdout_is_tty(void) { return _isatty(_fileno(stdout)) != 0; }
