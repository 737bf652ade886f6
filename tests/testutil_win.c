/* The Windows side of the helpers of testutil.h that the portable tests use and that rest on
 * platform facilities: the RSS checks (/proc, fork on Linux), temporary directories and raw
 * pipe I/O. pipemsgd and its helpers are not built for Windows yet (docs/windows.md). */
#include <winsock2.h>
#include <windows.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

int pm_test_rss_meaningful(void) {
  print_message("RSS not checked: measured through /proc and fork, which Windows lacks\n");
  return 0;
}

/* Never reached: every caller asks pm_test_rss_meaningful first. */
long pm_test_decode_peak_kb(const void *buf, size_t len, int *rc) {
  (void)buf;
  (void)len;
  *rc = PM_EINVAL;
  fail_msg("pm_test_decode_peak_kb has no Windows version");
  return -1;
}

/* ---- files and raw pipes ------------------------------------------------------------------
 * The raw helpers take CRT descriptors (_open_osfhandle) over overlapped pipe handles, so the
 * tests close them with close() as on Unix. */

void pm_test_dir_new(char *dir, size_t size) {
  static int n;
  char tmp[MAX_PATH + 1];
  DWORD len = GetTempPathA(sizeof(tmp), tmp);
  assert_true(len > 0 && len < sizeof(tmp));
  snprintf(dir, size, "%spmtest.%lu.%d", tmp, (unsigned long)GetCurrentProcessId(), ++n);
  assert_true(CreateDirectoryA(dir, NULL));
}

void pm_test_dir_remove(const char *dir) {
  char pattern[MAX_PATH + 4], file[2 * MAX_PATH];
  WIN32_FIND_DATAA fd;
  HANDLE find;
  if (dir[0] == '\0')
    return;
  snprintf(pattern, sizeof(pattern), "%s\\*", dir);
  find = FindFirstFileA(pattern, &fd);
  if (find != INVALID_HANDLE_VALUE) {
    do {
      if (!(fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)) {
        snprintf(file, sizeof(file), "%s\\%s", dir, fd.cFileName);
        DeleteFileA(file);
      }
    } while (FindNextFileA(find, &fd));
    FindClose(find);
  }
  assert_true(RemoveDirectoryA(dir));
}

int pm_test_under_wine(void) {
  HMODULE nt = GetModuleHandleW(L"ntdll.dll");
  return nt != NULL && GetProcAddress(nt, "wine_get_version") != NULL;
}

int pm_test_watch_opens(const char *path) {
  print_message("opens of %s not watched: Windows has no inotify\n", path);
  return -1;
}

/* Never reached: every caller checks the watch first. */
int pm_test_watch_opened(int watch) {
  (void)watch;
  fail_msg("pm_test_watch_opened has no Windows version");
  return 0;
}

void pm_test_watch_end(int watch) { (void)watch; }

void pm_test_pipe_path(const char *dir, const char *name, char *buf, size_t size) {
  static int n;
  (void)dir;
  snprintf(buf, size, "\\\\.\\pipe\\pmtest-%lu-%d-%s", (unsigned long)GetCurrentProcessId(), ++n,
           name);
}

int pm_test_pipe_exists(const char *path) {
  return WaitNamedPipeA(path, 1) || GetLastError() != ERROR_FILE_NOT_FOUND;
}

int pm_test_connect(const char *path) {
  for (int tries = 0; tries < 50; tries++) {
    HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED, NULL);
    int fd;
    if (h == INVALID_HANDLE_VALUE) {
      /* Busy: the one pending instance is taken until the server accepts (docs/architecture.md). */
      if (GetLastError() != ERROR_PIPE_BUSY)
        return -1;
      WaitNamedPipeA(path, 200);
      continue;
    }
    fd = _open_osfhandle((intptr_t)h, 0);
    if (fd < 0)
      CloseHandle(h);
    return fd;
  }
  return -1;
}

/* One overlapped read or write on fd, waited for at most ms (INFINITE: until done): bytes
 * moved, 0 at the end of the stream (or a write to a gone reader), -1 on timeout, -2 on error. */
static long pipe_io(int fd, int writing, void *buf, DWORD len, DWORD ms) {
  HANDLE h = (HANDLE)_get_osfhandle(fd);
  OVERLAPPED ov;
  DWORD n = 0, err;
  BOOL ok;
  long rc;
  if (h == INVALID_HANDLE_VALUE)
    return -2;
  memset(&ov, 0, sizeof(ov));
  ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  assert_non_null(ov.hEvent);
  ok = writing ? WriteFile(h, buf, len, NULL, &ov) : ReadFile(h, buf, len, NULL, &ov);
  if (ok || GetLastError() == ERROR_IO_PENDING) {
    if (WaitForSingleObject(ov.hEvent, ms) != WAIT_OBJECT_0)
      CancelIoEx(h, &ov);
    /* After a cancel, what completed anyway still counts. */
    ok = GetOverlappedResult(h, &ov, &n, TRUE);
  }
  err = ok ? 0 : GetLastError();
  CloseHandle(ov.hEvent);
  if (ok)
    rc = (long)n;
  else if (err == ERROR_OPERATION_ABORTED)
    rc = -1;
  else if (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED || err == ERROR_NO_DATA)
    rc = 0;
  else
    rc = -2;
  return rc;
}

int pm_test_send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    long n = pipe_io(fd, 1, (void *)p, (DWORD)(len > 65536 ? 65536 : len), INFINITE);
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads exactly len bytes before the deadline; 0 on success. */
int pm_test_recv_exact(int fd, void *buf, size_t len, uint64_t deadline) {
  char *p = buf;
  while (len > 0) {
    uint64_t now = pm_test_now_ms();
    long n;
    if (now >= deadline)
      return -1;
    n = pipe_io(fd, 0, p, (DWORD)len, (DWORD)(deadline - now));
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

long pm_test_wait_eof(int fd, int timeout_ms) {
  uint64_t start = pm_test_now_ms();
  char c;
  long n = pipe_io(fd, 0, &c, 1, (DWORD)timeout_ms);
  return n == 0 ? (long)(pm_test_now_ms() - start) : -1;
}
