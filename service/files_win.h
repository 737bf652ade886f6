#ifndef PIPEMSGD_FILES_WIN_H
#define PIPEMSGD_FILES_WIN_H

/* Windows: files only the service may read or change (the log, the names file), and who
 * counts as the service when a file, folder or pipe descriptor is judged (files_win.c). */

#include <windows.h>

#include <stdbool.h>
#include <stddef.h>

/* Whether sid is LocalSystem, Administrators or the account this process runs as. */
bool files_trusted_sid(PSID sid);

/* The account this process runs as, as a SID string ("" when it cannot be told). */
const char *files_self_sid(void);

/* Opens path (UTF-8) for access with CreateFileW and disposition (CREATE_NEW, OPEN_ALWAYS),
 * not inheritable; a file it creates gets a protected DACL giving full control to
 * LocalSystem, Administrators and this account only. Refuses a link or junction (never
 * followed) and a file another account owns. The handle, or INVALID_HANDLE_VALUE with why
 * filled as what follows the path ("is a link or junction; refusing it"). */
HANDLE files_open_private(const char *path, DWORD access, DWORD disposition, char *why,
                          size_t why_size);

/* path (UTF-8) as a wide string (malloc), or NULL. */
wchar_t *files_wide_path(const char *path);

#endif
