/* The Windows parts of pipemsgd's files, names and heap (platform.h). */
#include <winsock2.h> /* before windows.h, as uv.h wants */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include <fcntl.h>
#include <io.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "pipemsg/pipemsg.h"

#include "files_win.h"
#include "log.h"
#include "platform.h"
#include "registry.h"

/* The data directory's descriptor: a protected DACL (nothing inherited from %ProgramData%,
 * where every user may read) giving full control to LocalSystem, Administrators and the
 * directory's owner (the account the service runs as), inherited by what it holds. */
#define DATA_DIR_SDDL "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;OW)"

/* A directory that was there before the service made it, from an installer or an
 * administrator's mkdir: its DACL is what %ProgramData% passes down (every user may read, and
 * add files they then own). The service's own descriptor replaces it, the owner kept, and is
 * logged with what it had; the same one already there is left alone. */
static int reset_dir_dacl(const char *dir) {
  PSECURITY_DESCRIPTOR want = NULL, had = NULL;
  PACL want_dacl = NULL, had_dacl = NULL;
  SECURITY_DESCRIPTOR_CONTROL control = 0;
  BOOL present, defaulted;
  DWORD revision, err;
  char *text = NULL;
  int rc = -1;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(DATA_DIR_SDDL, SDDL_REVISION_1, &want,
                                                            NULL) ||
      !GetSecurityDescriptorDacl(want, &present, &want_dacl, &defaulted)) {
    log_msg(LVL_ERROR, "data dir '%s': cannot make its security descriptor", dir);
    LocalFree(want);
    return -1;
  }
  err = GetNamedSecurityInfoA(dir, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL,
                              &had_dacl, NULL, &had);
  if (err == ERROR_SUCCESS && GetSecurityDescriptorControl(had, &control, &revision) &&
      (control & SE_DACL_PROTECTED) && had_dacl != NULL &&
      had_dacl->AclSize == want_dacl->AclSize &&
      memcmp(had_dacl, want_dacl, want_dacl->AclSize) == 0) {
    rc = 0;
  } else {
    if (err != ERROR_SUCCESS ||
        !ConvertSecurityDescriptorToStringSecurityDescriptorA(had, SDDL_REVISION_1,
                                                              DACL_SECURITY_INFORMATION, &text,
                                                              NULL))
      text = NULL;
    err = SetNamedSecurityInfoA((char *)dir, SE_FILE_OBJECT,
                                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                                NULL, NULL, want_dacl, NULL);
    if (err != ERROR_SUCCESS) {
      log_msg(LVL_ERROR, "data dir '%s': cannot set its permissions to %s: error %lu", dir,
              DATA_DIR_SDDL, (unsigned long)err);
    } else {
      log_msg(LVL_INFO, "data dir '%s': permissions set to %s (were %s)", dir, DATA_DIR_SDDL,
              text != NULL ? text : "unreadable");
      rc = 0;
    }
  }
  LocalFree(text);
  LocalFree(had);
  LocalFree(want);
  return rc;
}

/* One entry of an existing data directory, opened as itself (a link is not followed). */
static int check_dir_entry(const char *dir, const char *name) {
  char path[4096];
  PSECURITY_DESCRIPTOR sd = NULL;
  PSID owner = NULL;
  char *text = NULL;
  HANDLE h;
  int rc = 0;
  snprintf(path, sizeof(path), "%s\\%s", dir, name);
  /* READ_CONTROL alone: no sharing conflict with a pipemsgd holding pipemsgd.lock. */
  h = CreateFileA(path, READ_CONTROL, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                  NULL, OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS,
                  NULL);
  if (h == INVALID_HANDLE_VALUE ||
      GetSecurityInfo(h, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner, NULL, NULL, NULL,
                      &sd) != ERROR_SUCCESS ||
      owner == NULL) {
    log_msg(LVL_ERROR, "data dir '%s': cannot read the owner of '%s'", dir, name);
    rc = -1;
  } else if (!files_trusted_sid(owner)) {
    log_msg(LVL_ERROR,
            "data dir '%s': '%s' belongs to %s (not LocalSystem, Administrators or this "
            "service's account), who may have put it there and may still change it; remove it",
            dir, name, ConvertSidToStringSidA(owner, &text) ? text : "another account");
    rc = -1;
  }
  LocalFree(text);
  LocalFree(sd);
  if (h != INVALID_HANDLE_VALUE)
    CloseHandle(h);
  return rc;
}

/* Whoever could add files before the DACL was reset may have left settings.json, events.db
 * (or its journal), pipemsgd.lock or a names file of their own: any entry another account
 * owns is refused. Checked after the reset, so none can be added meanwhile. */
static int check_dir_entries(const char *dir) {
  char pattern[4096];
  WIN32_FIND_DATAA found;
  HANDLE find;
  int rc = 0;
  snprintf(pattern, sizeof(pattern), "%s\\*", dir);
  find = FindFirstFileA(pattern, &found);
  if (find == INVALID_HANDLE_VALUE) {
    log_msg(LVL_ERROR, "data dir '%s': cannot list it: error %lu", dir,
            (unsigned long)GetLastError());
    return -1;
  }
  do {
    if (strcmp(found.cFileName, ".") != 0 && strcmp(found.cFileName, "..") != 0)
      rc = check_dir_entry(dir, found.cFileName);
  } while (rc == 0 && FindNextFileA(find, &found));
  FindClose(find);
  return rc;
}

/* A data directory that was there before the service made it. Every user may create folders
 * in %ProgramData% (the default's parent) and owns what they create, so one made by someone
 * else, or a link to elsewhere, would let them read and replace the settings and the event
 * store: refused, with the reason. One a trusted account made gets the service's DACL. */
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
  } else if (!files_trusted_sid(owner)) {
    log_msg(LVL_ERROR,
            "data dir '%s' belongs to another user (not LocalSystem, Administrators or this "
            "service's account); remove it or give it to one of them",
            dir);
    rc = -1;
  }
  LocalFree(sd);
  if (rc == 0 && (reset_dir_dacl(dir) < 0 || check_dir_entries(dir) < 0))
    rc = -1;
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

/* The names file, replaced in one step: a reader sees the old file or the new one. The
 * temporary file is a fresh one (never one someone left there) with the service's own DACL,
 * not the folder's; a link or junction in the file's place is refused, not replaced. */
static int write_names_file(const char *path, const char *command_path, const char *event_path) {
  char tmp[4096], why[256];
  wchar_t *wide_tmp, *wide_path = files_wide_path(path);
  HANDLE h;
  FILE *f = NULL;
  DWORD attrs;
  int fd, ok;
  snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)uv_os_getpid());
  wide_tmp = files_wide_path(tmp);
  if (wide_path == NULL || wide_tmp == NULL) {
    log_msg(LVL_ERROR, "cannot write names file %s: not a UTF-8 path", path);
    free(wide_tmp);
    free(wide_path);
    return -1;
  }
  attrs = GetFileAttributesW(wide_path);
  if (attrs != INVALID_FILE_ATTRIBUTES && (attrs & FILE_ATTRIBUTE_REPARSE_POINT)) {
    log_msg(LVL_ERROR, "names file %s is a link or junction; refusing it", path);
    free(wide_tmp);
    free(wide_path);
    return -1;
  }
  h = files_open_private(tmp, GENERIC_WRITE, CREATE_NEW, why, sizeof(why));
  if (h == INVALID_HANDLE_VALUE) {
    log_msg(LVL_ERROR, "cannot write names file: %s %s", tmp, why);
    free(wide_tmp);
    free(wide_path);
    return -1;
  }
  fd = _open_osfhandle((intptr_t)h, _O_WRONLY);
  if (fd < 0)
    CloseHandle(h);
  else if ((f = _fdopen(fd, "w")) == NULL)
    _close(fd);
  ok = f != NULL &&
       fprintf(f, "command-pipe = %s\nevent-pipe = %s\n", command_path, event_path) > 0 &&
       platform_file_sync(f) == 0;
  ok = (f == NULL || fclose(f) == 0) && ok;
  if (!ok ||
      !MoveFileExW(wide_tmp, wide_path, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    DeleteFileW(wide_tmp);
    log_msg(LVL_ERROR, "cannot write names file %s", path);
    ok = 0;
  }
  free(wide_tmp);
  free(wide_path);
  return ok ? 0 : -1;
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
  if (cfg->names_file != NULL) {
    wchar_t *wide = files_wide_path(cfg->names_file);
    if (wide != NULL)
      DeleteFileW(wide);
    free(wide);
  }
  if (cfg->names_registry == NULL ||
      registry_key_parse(cfg->names_registry, &root, subkey, why, sizeof(why)) < 0)
    return;
  if (RegOpenKeyExW(root, subkey, 0, KEY_SET_VALUE, &key) != ERROR_SUCCESS)
    return;
  RegDeleteValueW(key, REGISTRY_COMMAND_PIPE);
  RegDeleteValueW(key, REGISTRY_EVENT_PIPE);
  RegCloseKey(key);
}

/* Rights on a pipe that let their holder serve it: create an instance of its own
 * (FILE_CREATE_PIPE_INSTANCE, the bit FILE_APPEND_DATA has on files, so GW and GA hold it),
 * then take clients' connections and answer as the service; or change the descriptor or
 * owner of the instances to grant itself that. */
#define PIPE_SERVE_RIGHTS (FILE_CREATE_PIPE_INSTANCE | WRITE_DAC | WRITE_OWNER)

/* Who may hold PIPE_SERVE_RIGHTS: the trusted accounts, and OWNER RIGHTS, which is the
 * service itself while the descriptor names no other owner (checked apart). */
static bool may_serve(PSID sid) {
  return files_trusted_sid(sid) || IsWellKnownSid(sid, WinCreatorOwnerRightsSid);
}

static void name_rights(DWORD mask, char *out, size_t size) {
  snprintf(out, size, "%s%s%s",
           mask & FILE_CREATE_PIPE_INSTANCE ? " FILE_CREATE_PIPE_INSTANCE (0x4, in GW and GA)" : "",
           mask & WRITE_DAC ? " WRITE_DAC" : "", mask & WRITE_OWNER ? " WRITE_OWNER" : "");
}

/* The ACEs of the pipes' DACL: an allow entry giving another account a right of
 * PIPE_SERVE_RIGHTS (generic rights mapped as for files and pipes) is refused; so is any kind
 * of entry but allow and deny, which this check does not read. */
static int check_pipe_dacl(const char *sddl, PACL dacl) {
  GENERIC_MAPPING map = {FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_GENERIC_EXECUTE,
                         FILE_ALL_ACCESS};
  char rights[128], *text = NULL;
  for (DWORD i = 0; i < dacl->AceCount; i++) {
    ACCESS_ALLOWED_ACE *ace;
    DWORD mask;
    if (!GetAce(dacl, i, (void **)&ace))
      return -1;
    if (ace->Header.AceType == ACCESS_DENIED_ACE_TYPE)
      continue;
    if (ace->Header.AceType != ACCESS_ALLOWED_ACE_TYPE) {
      log_msg(LVL_ERROR, "--pipe-sddl '%s': entry %lu is neither allow (A) nor deny (D)", sddl,
              (unsigned long)i + 1);
      return -1;
    }
    mask = ace->Mask;
    MapGenericMask(&mask, &map);
    if ((mask & PIPE_SERVE_RIGHTS) == 0 || may_serve((PSID)&ace->SidStart))
      continue;
    name_rights(mask & PIPE_SERVE_RIGHTS, rights, sizeof(rights));
    log_msg(LVL_ERROR,
            "--pipe-sddl '%s' gives %s%s: it could create its own instances of the service's "
            "pipes and answer clients as the service; only LocalSystem, Administrators and the "
            "service's account may have these rights",
            sddl, ConvertSidToStringSidA((PSID)&ace->SidStart, &text) ? text : "an account",
            rights);
    LocalFree(text);
    return -1;
  }
  return 0;
}

int platform_check_access(const service_config *cfg) {
  PSECURITY_DESCRIPTOR sd = NULL;
  PSID owner = NULL;
  PACL dacl = NULL;
  BOOL present = FALSE, defaulted;
  int rc = -1;
  if (cfg->pipe_sddl == NULL)
    return 0;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(cfg->pipe_sddl, SDDL_REVISION_1, &sd,
                                                            NULL) ||
      !GetSecurityDescriptorOwner(sd, &owner, &defaulted) ||
      !GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted))
    log_msg(LVL_ERROR, "--pipe-sddl '%s': cannot read it", cfg->pipe_sddl);
  else if (owner != NULL && !files_trusted_sid(owner))
    log_msg(LVL_ERROR,
            "--pipe-sddl '%s': the owner it names may change the pipes' DACL; only LocalSystem, "
            "Administrators or the service's account may own them",
            cfg->pipe_sddl);
  else if (!present || dacl == NULL)
    log_msg(LVL_ERROR,
            "--pipe-sddl '%s' has no DACL: everyone could create instances of the service's "
            "pipes",
            cfg->pipe_sddl);
  else
    rc = check_pipe_dacl(cfg->pipe_sddl, dacl);
  LocalFree(sd);
  return rc;
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
