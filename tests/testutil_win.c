/* The Windows side of the helpers of testutil.h that the portable tests use and that rest on
 * platform facilities: the RSS checks (/proc, fork on Linux), temporary directories and raw
 * pipe I/O, and a pipemsgd child process. */
#include <winsock2.h>
#include <windows.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "testutil.h"
#include "testutil_win.h"

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
  /* wine reuses small pids: a directory an earlier, failed run left is skipped, not reused. */
  do
    snprintf(dir, size, "%spmtest.%lu.%d", tmp, (unsigned long)GetCurrentProcessId(), ++n);
  while (!CreateDirectoryA(dir, NULL) && GetLastError() == ERROR_ALREADY_EXISTS);
  {
    DWORD attrs = GetFileAttributesA(dir);
    assert_true(attrs != INVALID_FILE_ATTRIBUTES && (attrs & FILE_ATTRIBUTE_DIRECTORY));
  }
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

void pm_test_ignore_sigpipe(void) {}

void pm_test_pipe_path(const char *dir, const char *name, char *buf, size_t size) {
  static int n;
  (void)dir;
  snprintf(buf, size, "\\\\.\\pipe\\pmtest-%lu-%d-%s", (unsigned long)GetCurrentProcessId(), ++n,
           name);
}

int pm_test_wait_ready(intptr_t handle, int timeout_ms) {
  DWORD rc = WaitForSingleObject((HANDLE)handle, (DWORD)timeout_ms);
  assert_true(rc == WAIT_OBJECT_0 || rc == WAIT_TIMEOUT);
  return rc == WAIT_OBJECT_0;
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

/* ---- a pipemsgd child ------------------------------------------------------------------------
 * As testutil.c does on Unix, with what Windows has: the service is started with CreateProcessW
 * in a process group of its own (so that a Ctrl-Break reaches it alone), its stderr appended to
 * its log file; it serves once its log says "listening" (there is no sd_notify here). */

/* How long a service may take to start, and to stop on Ctrl-Break: a slow machine under wine's
 * worst case, not a rule. */
#define READY_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 20000

/* Appends arg to a command line as CommandLineToArgvW (and the CRT) read it back. */
static void append_arg(wchar_t *line, size_t size, const char *arg) {
  size_t n = wcslen(line);
  wchar_t wide[1024];
  assert_true(MultiByteToWideChar(CP_UTF8, 0, arg, -1, wide, 1024) > 0);
  if (n > 0)
    line[n++] = L' ';
  line[n++] = L'"';
  for (const wchar_t *p = wide; *p; p++) {
    size_t slashes = 0;
    while (*p == L'\\') {
      slashes++;
      p++;
    }
    if (*p == L'\0') {
      for (size_t i = 0; i < 2 * slashes; i++)
        line[n++] = L'\\';
      break;
    }
    for (size_t i = 0; i < (*p == L'"' ? 2 * slashes + 1 : slashes); i++)
      line[n++] = L'\\';
    line[n++] = *p;
    assert_true(n + 4 < size);
  }
  line[n++] = L'"';
  line[n] = L'\0';
}

/* A test that fails midway must not leave its service holding the pipes: every child is in a
 * job that ends them when this process ends (as PR_SET_PDEATHSIG on Linux). */
static HANDLE children_job(void) {
  static HANDLE job;
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits;
  if (job != NULL)
    return job;
  job = CreateJobObjectW(NULL, NULL);
  assert_non_null(job);
  memset(&limits, 0, sizeof(limits));
  limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  assert_true(SetInformationJobObject(job, JobObjectExtendedLimitInformation, &limits,
                                      sizeof(limits)));
  return job;
}

static HANDLE spawn(const char *const *argv, HANDLE err, DWORD flags) {
  static wchar_t line[32768];
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  line[0] = L'\0';
  for (int i = 0; argv[i] != NULL; i++)
    append_arg(line, sizeof(line) / sizeof(line[0]), argv[i]);
  memset(&si, 0, sizeof(si));
  si.cb = sizeof(si);
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = err;
  si.hStdError = err;
  /* Suspended until it is in the job, so that nothing it starts escapes it. */
  if (!CreateProcessW(NULL, line, NULL, NULL, TRUE, flags | CREATE_SUSPENDED, NULL, NULL, &si,
                      &pi))
    return NULL;
  assert_true(AssignProcessToJobObject(children_job(), pi.hProcess));
  ResumeThread(pi.hThread);
  CloseHandle(pi.hThread);
  return pi.hProcess;
}

void pm_test_service_start(pm_test_service *svc, const char *const *extra_args) {
  memset(svc, 0, sizeof(*svc));
  pm_test_dir_new(svc->dir, sizeof(svc->dir));
  pm_test_pipe_path(svc->dir, "cmd", svc->command_pipe, sizeof(svc->command_pipe));
  pm_test_pipe_path(svc->dir, "evt", svc->event_pipe, sizeof(svc->event_pipe));
  snprintf(svc->log_path, sizeof(svc->log_path), "%s\\log", svc->dir);
  pm_test_service_restart(svc, extra_args);
}

void pm_test_service_restart(pm_test_service *svc, const char *const *extra_args) {
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
  const char *argv[64];
  HANDLE log;
  DWORD code;
  uint64_t deadline;
  size_t before;
  int n = 0, stale;

  assert_null(svc->process);
  argv[n++] = PM_BIN_DIR "/pipemsgd.exe";
  argv[n++] = "-c";
  argv[n++] = svc->command_pipe;
  argv[n++] = "-e";
  argv[n++] = svc->event_pipe;
  /* In memory, as on Unix, never in %ProgramData%; a --data-dir among extra_args wins. */
  argv[n++] = "--data-dir=";
  for (int i = 0; extra_args != NULL && extra_args[i] != NULL && n < 62; i++)
    argv[n++] = extra_args[i];
  argv[n] = NULL;

  log = CreateFileA(svc->log_path, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE |
                    FILE_SHARE_DELETE, &sa, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  assert_true(log != INVALID_HANDLE_VALUE);
  /* A restart appends to the log: only what this instance writes counts. A pipe of the
   * instance before may outlive it for a moment: then only the log line counts. */
  before = strlen(pm_test_service_log(svc));
  stale = pm_test_pipe_exists(svc->command_pipe);
  svc->process = spawn(argv, log, CREATE_NEW_PROCESS_GROUP);
  CloseHandle(log);
  assert_non_null(svc->process);
  svc->pid = (pid_t)GetProcessId(svc->process);

  deadline = pm_test_now_ms() + READY_TIMEOUT_MS;
  /* Serving once its log says so, or (logging elsewhere) once its command pipe is there: the
   * service binds it last. */
  while (strstr(pm_test_service_log(svc) + before, "info: listening ") == NULL &&
         (stale || !pm_test_pipe_exists(svc->command_pipe))) {
    if (!GetExitCodeProcess(svc->process, &code) || code != STILL_ACTIVE ||
        pm_test_now_ms() >= deadline) {
      print_error("pipemsgd did not start serving; log:\n%s\n", pm_test_service_log(svc));
      fail();
    }
    Sleep(10);
  }
}

/* Waits for the process to end, at most ms: its exit status, or -1 if it still runs. */
static int wait_exit(HANDLE process, DWORD ms) {
  DWORD code;
  if (WaitForSingleObject(process, ms) != WAIT_OBJECT_0 || !GetExitCodeProcess(process, &code))
    return -1;
  return (int)code;
}

int pm_test_service_stop(pm_test_service *svc) {
  int status;
  if (svc->process == NULL)
    return -1;
  /* Ctrl-Break goes to a process group; the service's is its own (CREATE_NEW_PROCESS_GROUP).
   * Without a console to send it on (wine runs the tests without one), it is ended instead. */
  if (!GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, (DWORD)svc->pid)) {
    TerminateProcess(svc->process, 1);
    WaitForSingleObject(svc->process, INFINITE);
    CloseHandle(svc->process);
    svc->process = NULL;
    svc->pid = 0;
    return -1;
  }
  status = wait_exit(svc->process, (DWORD)pm_test_margin_ms(STOP_TIMEOUT_MS));
  if (status < 0) {
    TerminateProcess(svc->process, 1);
    WaitForSingleObject(svc->process, INFINITE);
    CloseHandle(svc->process);
    svc->process = NULL;
    svc->pid = 0;
    print_error("pipemsgd did not stop within %d ms of Ctrl-Break; log:\n%s\n", STOP_TIMEOUT_MS,
                pm_test_service_log(svc));
    fail();
  }
  CloseHandle(svc->process);
  svc->process = NULL;
  svc->pid = 0;
  return status;
}

void pm_test_service_cleanup(pm_test_service *svc) {
  if (svc->process != NULL)
    pm_test_service_stop(svc);
  pm_test_dir_remove(svc->dir);
  svc->dir[0] = '\0';
}

/* ---- running programs (pm_test_run) --------------------------------------------------------
 * Programs are started with CreateProcessW and an explicit handle list, so the child inherits
 * its standard handles and nothing else the test holds open. */

/* Appends arg to cmd quoted the way the child's CRT splits its command line: backslashes are
 * literal unless they precede a quote. */
static void append_quoted(char *cmd, size_t size, const char *arg) {
  size_t n = strlen(cmd);
  if (n > 0 && n + 1 < size)
    cmd[n++] = ' ';
  if (n + 1 < size)
    cmd[n++] = '"';
  for (const char *p = arg;; p++) {
    size_t slashes = 0;
    while (*p == '\\') {
      p++;
      slashes++;
    }
    /* Before a quote or the closing quote, each backslash is doubled. */
    if (*p == '\0' || *p == '"')
      slashes = slashes * 2 + (*p == '"');
    while (slashes-- > 0 && n + 1 < size)
      cmd[n++] = '\\';
    if (*p == '\0')
      break;
    if (n + 1 < size)
      cmd[n++] = *p;
  }
  if (n + 1 < size)
    cmd[n++] = '"';
  assert_true(n + 1 < size);
  cmd[n] = '\0';
}

void pm_test_bin_path(const char *program, char *buf, size_t size) {
  char self[MAX_PATH];
  DWORD n = GetModuleFileNameA(NULL, self, sizeof(self));
  char *slash;
  assert_true(n > 0 && n < sizeof(self));
  slash = strrchr(self, '\\');
  assert_non_null(slash);
  *slash = '\0';
  snprintf(buf, size, "%s\\%s", self, program);
}

static HANDLE inheritable(HANDLE h) {
  HANDLE dup = NULL;
  assert_true(DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &dup, 0, TRUE,
                              DUPLICATE_SAME_ACCESS));
  return dup;
}

HANDLE pm_test_spawn(const char *const *argv, HANDLE out, HANDLE err, DWORD flags) {
  static char cmd[8192];
  static WCHAR wcmd[8192], wexe[MAX_PATH];
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
  STARTUPINFOEXW si;
  PROCESS_INFORMATION pi;
  SIZE_T attr_size = 0;
  HANDLE handles[3];
  BOOL ok;
  cmd[0] = '\0';
  for (int i = 0; argv[i] != NULL; i++)
    append_quoted(cmd, sizeof(cmd), argv[i]);
  assert_true(MultiByteToWideChar(CP_UTF8, 0, cmd, -1, wcmd, 8192) > 0);
  assert_true(MultiByteToWideChar(CP_UTF8, 0, argv[0], -1, wexe, MAX_PATH) > 0);
  handles[0] = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                           &sa, OPEN_EXISTING, 0, NULL);
  assert_true(handles[0] != INVALID_HANDLE_VALUE);
  handles[1] = inheritable(out != NULL ? out : handles[0]);
  handles[2] = inheritable(err != NULL ? err : handles[0]);
  memset(&si, 0, sizeof(si));
  si.StartupInfo.cb = sizeof(si);
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = handles[0];
  si.StartupInfo.hStdOutput = handles[1];
  si.StartupInfo.hStdError = handles[2];
  InitializeProcThreadAttributeList(NULL, 1, 0, &attr_size);
  si.lpAttributeList = malloc(attr_size);
  assert_non_null(si.lpAttributeList);
  assert_true(InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &attr_size));
  assert_true(UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                        handles, sizeof(handles), NULL, NULL));
  ok = CreateProcessW(wexe, wcmd, NULL, NULL, TRUE, flags | EXTENDED_STARTUPINFO_PRESENT, NULL,
                      NULL, &si.StartupInfo, &pi);
  DeleteProcThreadAttributeList(si.lpAttributeList);
  free(si.lpAttributeList);
  for (int i = 0; i < 3; i++)
    CloseHandle(handles[i]);
  if (!ok)
    return NULL;
  CloseHandle(pi.hThread);
  return pi.hProcess;
}

/* A temporary file for a child's output, deleted when the last handle closes. */
static HANDLE output_file(void) {
  static int n;
  char dir[MAX_PATH + 1], path[2 * MAX_PATH];
  HANDLE h;
  assert_true(GetTempPathA(sizeof(dir), dir) > 0);
  snprintf(path, sizeof(path), "%spmrun.%lu.%d", dir, (unsigned long)GetCurrentProcessId(), ++n);
  h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE |
                  FILE_SHARE_DELETE, NULL, CREATE_ALWAYS,
                  FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  return h;
}

/* All of the file h into buf, with the CRT's "\r\n" turned back into "\n" so that the tests
 * compare output as on Unix. */
static void slurp(HANDLE h, char *buf, size_t size) {
  size_t n = 0, i, j;
  DWORD got;
  SetFilePointer(h, 0, NULL, FILE_BEGIN);
  while (n < size - 1 && ReadFile(h, buf + n, (DWORD)(size - 1 - n), &got, NULL) && got > 0)
    n += got;
  for (i = j = 0; i < n; i++) {
    if (!(buf[i] == '\r' && i + 1 < n && buf[i + 1] == '\n'))
      buf[j++] = buf[i];
  }
  buf[j] = '\0';
}

int pm_test_run(const char *const *argv, const char **out, const char **err) {
  static char out_buf[65536], err_buf[65536];
  HANDLE ofile = output_file(), efile = output_file(), proc;
  DWORD status = 0;
  proc = pm_test_spawn(argv, ofile, efile, 0);
  if (proc == NULL)
    fail_msg("cannot start %s: error %lu", argv[0], GetLastError());
  assert_int_equal(WAIT_OBJECT_0, WaitForSingleObject(proc, INFINITE));
  assert_true(GetExitCodeProcess(proc, &status));
  CloseHandle(proc);
  slurp(ofile, out_buf, sizeof(out_buf));
  slurp(efile, err_buf, sizeof(err_buf));
  CloseHandle(ofile);
  CloseHandle(efile);
  if (out != NULL)
    *out = out_buf;
  if (err != NULL)
    *err = err_buf;
  return (int)status;
}
