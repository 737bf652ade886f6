/* Files only the service may read or change, on Windows (files_win.h). */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>

#include "pipemsg/pipe.h"

#include "files_win.h"

bool files_trusted_sid(PSID sid) {
  PSID self = NULL;
  bool trusted;
  if (IsWellKnownSid(sid, WinLocalSystemSid) || IsWellKnownSid(sid, WinBuiltinAdministratorsSid))
    return true;
  if (files_self_sid()[0] == '\0' || !ConvertStringSidToSidA(files_self_sid(), &self))
    return false;
  trusted = EqualSid(sid, self);
  LocalFree(self);
  return trusted;
}

const char *files_self_sid(void) {
  static char sid[PM_PEER_SID_MAX];
  static bool done;
  union {
    TOKEN_USER user;
    char room[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } u;
  HANDLE token;
  DWORD len;
  char *text;
  if (done)
    return sid;
  done = true;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    return sid;
  if (GetTokenInformation(token, TokenUser, &u, sizeof(u), &len) &&
      ConvertSidToStringSidA(u.user.User.Sid, &text)) {
    snprintf(sid, sizeof(sid), "%s", text);
    LocalFree(text);
  }
  CloseHandle(token);
  return sid;
}

wchar_t *files_wide_path(const char *path) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
  wchar_t *wide = n > 0 ? malloc((size_t)n * sizeof(wchar_t)) : NULL;
  if (wide != NULL && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, wide, n) != n) {
    free(wide);
    wide = NULL;
  }
  return wide;
}

/* Explicit, not inherited: the folder's entries would let every user read it in
 * %ProgramData%. The account by its SID, not OWNER RIGHTS: an elevated administrator's files
 * belong to Administrators. */
static PSECURITY_DESCRIPTOR private_sd(void) {
  char sddl[128 + PM_PEER_SID_MAX];
  PSECURITY_DESCRIPTOR sd = NULL;
  if (files_self_sid()[0] == '\0')
    return NULL;
  snprintf(sddl, sizeof(sddl), "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;%s)", files_self_sid());
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl, SDDL_REVISION_1, &sd, NULL))
    return NULL;
  return sd;
}

/* What the handle is: a link or junction (opened as one, not followed), or a file another
 * account made first, which it may still read or change. 0, or -1 with why filled. */
static int check_opened(HANDLE h, char *why, size_t why_size) {
  FILE_ATTRIBUTE_TAG_INFO tag;
  PSECURITY_DESCRIPTOR sd = NULL;
  PSID owner = NULL;
  char *text = NULL;
  int rc = 0;
  if (!GetFileInformationByHandleEx(h, FileAttributeTagInfo, &tag, sizeof(tag))) {
    snprintf(why, why_size, "has attributes that cannot be read (error %lu)", GetLastError());
    return -1;
  }
  if (tag.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) {
    snprintf(why, why_size, "is a link or junction; refusing it");
    return -1;
  }
  if (GetSecurityInfo(h, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner, NULL, NULL, NULL,
                      &sd) != ERROR_SUCCESS ||
      owner == NULL) {
    snprintf(why, why_size, "has an owner that cannot be read");
    rc = -1;
  } else if (!files_trusted_sid(owner)) {
    snprintf(why, why_size,
             "belongs to %s (not LocalSystem, Administrators or this service's account), who "
             "may read or change it; remove it",
             ConvertSidToStringSidA(owner, &text) ? text : "another account");
    rc = -1;
  }
  LocalFree(text);
  LocalFree(sd);
  return rc;
}

HANDLE files_open_private(const char *path, DWORD access, DWORD disposition, char *why,
                          size_t why_size) {
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, FALSE};
  wchar_t *wide = files_wide_path(path);
  HANDLE h = INVALID_HANDLE_VALUE;
  sa.lpSecurityDescriptor = private_sd();
  if (wide == NULL) {
    snprintf(why, why_size, "is not a UTF-8 path");
  } else if (sa.lpSecurityDescriptor == NULL) {
    snprintf(why, why_size, "cannot be given a security descriptor (error %lu)", GetLastError());
  } else {
    h = CreateFileW(wide, access | READ_CONTROL, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa,
                    disposition, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    if (h == INVALID_HANDLE_VALUE) {
      snprintf(why, why_size, "cannot be opened (error %lu)", GetLastError());
    } else if (check_opened(h, why, why_size) < 0) {
      CloseHandle(h);
      h = INVALID_HANDLE_VALUE;
    }
  }
  LocalFree(sa.lpSecurityDescriptor);
  free(wide);
  return h;
}
