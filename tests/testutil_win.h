#ifndef PM_TESTUTIL_WIN_H
#define PM_TESTUTIL_WIN_H

/* Windows-only test helpers (testutil_win.c), beside the portable ones of testutil.h. */
#include <winsock2.h>
#include <windows.h>

/* Starts argv[0] with argv (NULL-terminated; quoted for the child's CRT) and exactly these
 * standard handles inherited (NULL: the NUL device), with CreateProcessW's creation flags;
 * returns the process handle, or NULL. Never depends on WINEPATH: argv[0] is a full path. */
HANDLE pm_test_spawn(const char *const *argv, HANDLE out, HANDLE err, DWORD flags);

/* path of a program in the directory of the running test program (build-win/bin). */
void pm_test_bin_path(const char *program, char *buf, size_t size);

#endif
