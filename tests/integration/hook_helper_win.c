/* A hook command for test_hook_win: what it does is its first argument. Files go to the
 * directory in %PM_HOOK_DIR% (set by the test in its own environment, which the command
 * inherits), so no path ever has to travel on the command line.
 *   exit N    exit with status N
 *   stderr    write "boom" to stderr, exit 3
 *   argv ...  write its arguments after "argv" (CommandLineToArgvW), one a line, to argv.out
 *   env       write the request's variables, how often PIPEMSG_LOCATION is in the block and
 *             its own command line to env.out
 *   tree      start "late" (a grandchild), write its pid to grandchild.pid, sleep
 *   daemon    start "late", write its pid to grandchild.pid, exit 0
 *   late      sleep LATE_MS, then write late.out
 *   sleep     sleep SLEEP_MS
 *   handle H PID  exit 1 if H (hex) is a handle of process PID here (inherited), else 0 */
#include <windows.h>
#include <shellapi.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

/* Far longer than any test waits for a command that is to be killed. */
#define SLEEP_MS 60000
#define LATE_MS 30000

static FILE *out_file(const wchar_t *name) {
  wchar_t dir[MAX_PATH], path[2 * MAX_PATH];
  DWORD n = GetEnvironmentVariableW(L"PM_HOOK_DIR", dir, MAX_PATH);
  if (n == 0 || n >= MAX_PATH)
    exit(90);
  swprintf(path, 2 * MAX_PATH, L"%ls\\%ls", dir, name);
  return _wfopen(path, L"wb");
}

static void put_utf8(FILE *f, const wchar_t *s) {
  char buf[4096];
  int n = WideCharToMultiByte(CP_UTF8, 0, s, -1, buf, sizeof(buf), NULL, NULL);
  if (n <= 0)
    exit(91);
  fputs(buf, f);
}

/* Written under a temporary name, then renamed: the test never reads half a pid. */
static void write_pid(DWORD pid) {
  wchar_t dir[MAX_PATH], tmp[2 * MAX_PATH], path[2 * MAX_PATH];
  FILE *f = out_file(L"grandchild.tmp");
  if (f == NULL || fprintf(f, "%lu", (unsigned long)pid) < 0 || fclose(f) != 0)
    exit(92);
  GetEnvironmentVariableW(L"PM_HOOK_DIR", dir, MAX_PATH);
  swprintf(tmp, 2 * MAX_PATH, L"%ls\\grandchild.tmp", dir);
  swprintf(path, 2 * MAX_PATH, L"%ls\\grandchild.pid", dir);
  if (!MoveFileW(tmp, path))
    exit(93);
}

static void start_late(void) {
  wchar_t self[MAX_PATH], line[MAX_PATH + 16];
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  if (GetModuleFileNameW(NULL, self, MAX_PATH) == 0)
    exit(94);
  swprintf(line, MAX_PATH + 16, L"\"%ls\" late", self);
  memset(&si, 0, sizeof(si));
  si.cb = sizeof(si);
  if (!CreateProcessW(self, line, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
    exit(95);
  write_pid(pi.dwProcessId);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
}

int main(void) {
  int argc;
  wchar_t **argv = CommandLineToArgvW(GetCommandLineW(), &argc);
  const wchar_t *mode = argv != NULL && argc > 1 ? argv[1] : L"";
  FILE *f;
  if (wcscmp(mode, L"exit") == 0 && argc > 2)
    return _wtoi(argv[2]);
  if (wcscmp(mode, L"stderr") == 0) {
    fputs("boom\n", stderr);
    return 3;
  }
  if (wcscmp(mode, L"argv") == 0) {
    if ((f = out_file(L"argv.out")) == NULL)
      return 96;
    for (int i = 2; i < argc; i++) {
      put_utf8(f, argv[i]);
      fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : 97;
  }
  if (wcscmp(mode, L"env") == 0) {
    wchar_t *block = GetEnvironmentStringsW();
    int count = 0;
    if ((f = out_file(L"env.out")) == NULL || block == NULL)
      return 96;
    for (const wchar_t *e = block; *e != L'\0'; e += wcslen(e) + 1) {
      if (_wcsnicmp(e, L"PIPEMSG_LOCATION=", 17) == 0) {
        count++;
        fputs("location=", f);
        put_utf8(f, e + 17);
        fputc('\n', f);
      } else if (_wcsnicmp(e, L"PIPEMSG_KILL_SWITCH=", 20) == 0) {
        fputs("kill_switch=", f);
        put_utf8(f, e + 20);
        fputc('\n', f);
      }
    }
    fprintf(f, "count=%d\nargc=%d\n", count, argc);
    FreeEnvironmentStringsW(block);
    return fclose(f) == 0 ? 0 : 97;
  }
  if (wcscmp(mode, L"tree") == 0 || wcscmp(mode, L"daemon") == 0) {
    start_late();
    if (wcscmp(mode, L"tree") == 0)
      Sleep(SLEEP_MS);
    return 0;
  }
  if (wcscmp(mode, L"late") == 0) {
    Sleep(LATE_MS);
    if ((f = out_file(L"late.out")) == NULL)
      return 96;
    return fclose(f) == 0 ? 0 : 97;
  }
  if (wcscmp(mode, L"handle") == 0 && argc > 3) {
    HANDLE h = (HANDLE)(uintptr_t)wcstoull(argv[2], NULL, 16);
    return GetProcessId(h) == (DWORD)wcstoul(argv[3], NULL, 10) ? 1 : 0;
  }
  if (wcscmp(mode, L"sleep") == 0) {
    Sleep(SLEEP_MS);
    return 0;
  }
  return 99;
}
