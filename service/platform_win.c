/* The Windows parts of pipemsgd's files, names and heap (platform.h). */
#include <winsock2.h> /* before windows.h, as uv.h wants */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "pipemsg/pipemsg.h"

#include "log.h"
#include "platform.h"
#include "registry.h"

/* The data directory's descriptor: a protected DACL (nothing inherited from %ProgramData%,
 * where every user may read) giving full control to LocalSystem, Administrators and the
 * directory's owner (the account the service runs as), inherited by what it holds. */
#define DATA_DIR_SDDL "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;OW)"

/* Whether sid is LocalSystem, Administrators or the account this process runs as. */
static bool trusted_owner(PSID sid) {
  union {
    TOKEN_USER user;
    char room[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } u;
  HANDLE token;
  DWORD len;
  bool self = false;
  if (IsWellKnownSid(sid, WinLocalSystemSid) || IsWellKnownSid(sid, WinBuiltinAdministratorsSid))
    return true;
  if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) {
    self = GetTokenInformation(token, TokenUser, &u, sizeof(u), &len) &&
           EqualSid(sid, u.user.User.Sid);
    CloseHandle(token);
  }
  return self;
}

/* A data directory that was there before the service made it. Every user may create folders
 * in %ProgramData% (the default's parent) and owns what they create, so one made by someone
 * else, or a link to elsewhere, would let them read and replace the settings and the event
 * store: refused, with the reason. */
static int check_existing_dir(const char *dir) {
  DWORD attrs = GetFileAttributesA(dir);
  PSECURITY_DESCRIPTOR sd = NULL;
  PSID owner = NULL;
  int rc = 0;
  if (attrs == INVALID_FILE_ATTRIBUTES || !(attrs & FILE_ATTRIBUTE_DIRECTORY)) {
    log_msg(LVL_ERROR, "data dir '%s' exists and is not a directory", dir);
    return -1;
  }
  if (attrs & FILE_ATTRIBUTE_REPARSE_POINT) {
    log_msg(LVL_ERROR, "data dir '%s' is a link or junction; refusing it", dir);
    return -1;
  }
  if (GetNamedSecurityInfoA(dir, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner, NULL, NULL,
                            NULL, &sd) != ERROR_SUCCESS ||
      owner == NULL) {
    log_msg(LVL_ERROR, "data dir '%s': cannot read its owner", dir);
    rc = -1;
  } else if (!trusted_owner(owner)) {
    log_msg(LVL_ERROR,
            "data dir '%s' belongs to another user (not LocalSystem, Administrators or this "
            "service's account); remove it or give it to one of them",
            dir);
    rc = -1;
  }
  LocalFree(sd);
  return rc;
}

int platform_make_data_dir(const char *dir) {
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, FALSE};
  DWORD err = 0;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(DATA_DIR_SDDL, SDDL_REVISION_1,
                                                            &sa.lpSecurityDescriptor, NULL))
    err = GetLastError();
  else if (!CreateDirectoryA(dir, &sa))
    err = GetLastError();
  LocalFree(sa.lpSecurityDescriptor);
  if (err == ERROR_ALREADY_EXISTS)
    return check_existing_dir(dir);
  if (err != 0) {
    log_msg(LVL_ERROR, "cannot create data dir '%s': error %lu", dir, (unsigned long)err);
    return -1;
  }
  return 0;
}

int platform_lock_data_dir(const char *dir) {
  char path[4096];
  HANDLE h;
  DWORD err;
  snprintf(path, sizeof(path), "%s\\pipemsgd.lock", dir);
  /* Shared with no one, not inherited by hook commands, open until the process ends. */
  h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL,
                  NULL);
  if (h != INVALID_HANDLE_VALUE)
    return 0;
  err = GetLastError();
  if (err == ERROR_SHARING_VIOLATION)
    log_msg(LVL_ERROR,
            "data dir '%s' is in use by another pipemsgd (or a program holds pipemsgd.lock open)",
            dir);
  else
    log_msg(LVL_ERROR, "cannot lock data dir '%s': error %lu", dir, (unsigned long)err);
  return -1;
}

/* Pipe names have no directory to hide them in: anyone may list \\.\pipe\, so access rests
 * on the pipes' descriptor, never on the names. */
int platform_names_prepare(const service_config *cfg) {
  (void)cfg;
  return 0;
}

/* The names file, replaced in one step: a reader sees the old file or the new one. It takes
 * the data directory's or its folder's inherited permissions. */
static int write_names_file(const char *path, const char *command_path, const char *event_path) {
  char tmp[4096];
  FILE *f;
  int ok;
  snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)uv_os_getpid());
  /* "x": a fresh file, never one someone left there. */
  f = fopen(tmp, "wx");
  if (f == NULL) {
    log_msg(LVL_ERROR, "cannot write names file %s", tmp);
    return -1;
  }
  fprintf(f, "command-pipe = %s\nevent-pipe = %s\n", command_path, event_path);
  ok = platform_file_sync(f) == 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || platform_file_replace(tmp, path) < 0) {
    remove(tmp);
    log_msg(LVL_ERROR, "cannot write names file %s", path);
    return -1;
  }
  return 0;
}

static int set_value(HKEY key, const wchar_t *name, const char *value) {
  wchar_t wide[PM_PIPE_PATH_MAX + 1];
  int n = MultiByteToWideChar(CP_UTF8, 0, value, -1, wide, PM_PIPE_PATH_MAX + 1);
  if (n == 0)
    return ERROR_INVALID_DATA;
  return (int)RegSetValueExW(key, name, 0, REG_SZ, (const BYTE *)wide,
                             (DWORD)n * sizeof(wchar_t));
}

static int write_names_registry(const char *key_path, const char *command_path,
                                const char *event_path) {
  wchar_t subkey[REGISTRY_KEY_MAX + 1];
  char why[256];
  HKEY root, key;
  LONG err;
  if (registry_key_parse(key_path, &root, subkey, why, sizeof(why)) < 0) {
    log_msg(LVL_ERROR, "--names-registry: %s", why);
    return -1;
  }
  err = RegCreateKeyExW(root, subkey, 0, NULL, REG_OPTION_NON_VOLATILE, KEY_SET_VALUE, NULL,
                        &key, NULL);
  if (err == ERROR_SUCCESS) {
    err = set_value(key, REGISTRY_COMMAND_PIPE, command_path);
    if (err == ERROR_SUCCESS)
      err = set_value(key, REGISTRY_EVENT_PIPE, event_path);
    /* Both or neither: a reader must never find one pipe of this service and one of another. */
    if (err != ERROR_SUCCESS) {
      RegDeleteValueW(key, REGISTRY_COMMAND_PIPE);
      RegDeleteValueW(key, REGISTRY_EVENT_PIPE);
    }
    RegCloseKey(key);
  }
  if (err != ERROR_SUCCESS) {
    log_msg(LVL_ERROR, "cannot write the pipe names under registry key %s: error %ld", key_path,
            (long)err);
    return -1;
  }
  return 0;
}

int platform_names_publish(const service_config *cfg, const char *command_path,
                           const char *event_path) {
  if (cfg->names_file != NULL && write_names_file(cfg->names_file, command_path, event_path) < 0)
    return -1;
  if (cfg->names_registry != NULL &&
      write_names_registry(cfg->names_registry, command_path, event_path) < 0)
    return -1;
  return 0;
}

void platform_names_withdraw(const service_config *cfg) {
  wchar_t subkey[REGISTRY_KEY_MAX + 1];
  char why[256];
  HKEY root, key;
  if (cfg->names_file != NULL)
    remove(cfg->names_file);
  if (cfg->names_registry == NULL ||
      registry_key_parse(cfg->names_registry, &root, subkey, why, sizeof(why)) < 0)
    return;
  if (RegOpenKeyExW(root, subkey, 0, KEY_SET_VALUE, &key) != ERROR_SUCCESS)
    return;
  RegDeleteValueW(key, REGISTRY_COMMAND_PIPE);
  RegDeleteValueW(key, REGISTRY_EVENT_PIPE);
  RegCloseKey(key);
}

/* The service control manager passes no listening pipes. */
int platform_inherited_listeners(int *command_fd, int *event_fd) {
  *command_fd = *event_fd = -1;
  return 0;
}

/* Windows' heap gives blocks past its own threshold (512 KiB on 64-bit), such as large
 * frames, back to the system as they are freed: nothing to set up or trim. */
void platform_heap_setup(void) {}

void platform_heap_trim_if_large(void) {}

void platform_heap_trim(void) {}
