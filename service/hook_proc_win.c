/* Hook commands on Windows: CreateProcessW inside a Job Object of their own, so a timeout, a
 * cancel or the service's end takes the whole tree (whatever the command started) with
 * TerminateJobObject, as kill(-pgid) does on Unix.
 *
 * Why not uv_spawn: libuv 1.44 puts every child into one job of its own (or none, with
 * UV_PROCESS_DETACHED) and starts it running, so a job per command could only be assigned
 * after the command had already started children of its own, which would escape it. Here the
 * process is created suspended, assigned to its job, then resumed: nothing it starts is ever
 * outside the job. The exit is awaited by RegisterWaitForSingleObject (a thread-pool wait, as
 * libuv's own uv_spawn does), whose callback only wakes the loop through a uv_async_t: the
 * loop never blocks. stderr is a libuv pipe (uv_pipe, overlapped on our end); stdin and
 * stdout are NUL. Only those handles are inherited (PROC_THREAD_ATTRIBUTE_HANDLE_LIST). */
#include <winsock2.h>
#include <windows.h>

#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <wctype.h>

#include "hook_proc.h"

#define HOOK_READ_SIZE 4096
/* The exit code TerminateJobObject gives the processes it ends (the backend reports the
 * timeout or the cancel itself, never this code). */
#define HOOK_KILLED_EXIT_CODE 1
/* CreateProcessW's limit on a command line, in UTF-16 units with its NUL. */
#define HOOK_CMDLINE_MAX 32767

const char hook_proc_stop_name[] = "TerminateJobObject";
const char hook_proc_kill_name[] = "TerminateJobObject";
const char hook_proc_shell_help[] =
    "hook backend: run the commands with cmd.exe /d /v:on /s /c (delayed expansion on: refer "
    "to the request as !PIPEMSG_LOCATION!)";

struct hook_proc {
  uv_pipe_t err;          /* our end of the command's stderr */
  uv_async_t exit_async;  /* sent from the wait's thread when the process has exited */
  hook_proc_callbacks cbs;
  void *arg;
  HANDLE job;             /* NULL until started */
  HANDLE process;
  HANDLE wait;            /* RegisterWaitForSingleObject's, NULL if none */
  DWORD pid;
  int open;               /* err and exit_async, not yet closed */
  bool exited;            /* exited() came: the job may hold only what the command left */
  char readbuf[HOOK_READ_SIZE];
};

static void on_exit_async(uv_async_t *async);

int hook_proc_new(uv_loop_t *loop, const hook_proc_callbacks *cbs, void *arg, hook_proc **out) {
  hook_proc *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return UV_ENOMEM;
  p->cbs = *cbs;
  p->arg = arg;
  uv_pipe_init(loop, &p->err, 0);
  p->err.data = p;
  uv_async_init(loop, &p->exit_async, on_exit_async);
  p->exit_async.data = p;
  p->open = 2;
  *out = p;
  return 0;
}

/* ---- the command line ------------------------------------------------------------------- */

/* Appends arg quoted so that CommandLineToArgvW (and the C runtime's parser) gives it back as
 * it is: bare when it has no blank or quote; else in quotes, each quote escaped with a
 * backslash, and backslashes doubled only where they precede a quote (or the closing one). */
static char *quote_arg(char *out, const char *arg) {
  if (arg[0] != '\0' && strpbrk(arg, " \t\n\v\"") == NULL) {
    size_t len = strlen(arg);
    memcpy(out, arg, len);
    return out + len;
  }
  *out++ = '"';
  for (const char *s = arg;; s++) {
    size_t slashes = 0;
    while (*s == '\\') {
      slashes++;
      s++;
    }
    if (*s == '\0' || *s == '"') {
      /* Before a quote (ours or the argument's), each backslash is written twice. */
      memset(out, '\\', 2 * slashes);
      out += 2 * slashes;
      if (*s == '\0')
        break;
      *out++ = '\\';
      *out++ = '"';
    } else {
      memset(out, '\\', slashes);
      out += slashes;
      *out++ = *s;
    }
  }
  *out++ = '"';
  return out;
}

/* UTF-8 to a new UTF-16 string in *out: 0, UV_EINVAL for invalid UTF-8, or UV_ENOMEM. */
static int to_wide(const char *s, wchar_t **out) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  if (n <= 0)
    return UV_EINVAL;
  *out = malloc((size_t)n * sizeof(**out));
  if (*out == NULL)
    return UV_ENOMEM;
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, *out, n);
  return 0;
}

/* The command line for argv, or for cmd.exe with shell (whose path goes to *app). */
static int cmd_line(const hook_cmd *cmd, wchar_t **line, wchar_t **app) {
  size_t size = 64;
  char *text, *end;
  int rc;
  *line = NULL;
  *app = NULL;
  if (cmd->shell != NULL) {
    /* /d: no AutoRun commands from the registry; /v:on: !VAR! expands after the line is
     * parsed, so a request value cannot become command text; /s /c "...": the text between
     * the outer quotes runs as it is. */
    static const wchar_t shell_args[] = L"cmd.exe /d /v:on /s /c \"";
    wchar_t sys[MAX_PATH], *w;
    UINT n = GetSystemDirectoryW(sys, MAX_PATH);
    size_t wlen;
    if (n == 0)
      return uv_translate_sys_error((int)GetLastError());
    if (n >= MAX_PATH)
      return UV_ENAMETOOLONG;
    if ((rc = to_wide(cmd->shell, &w)) < 0)
      return rc;
    wlen = wcslen(w);
    *app = malloc((n + 10) * sizeof(wchar_t));
    *line = malloc((wcslen(shell_args) + wlen + 2) * sizeof(wchar_t));
    if (*app == NULL || *line == NULL) {
      free(w);
      free(*app);
      free(*line);
      *app = *line = NULL;
      return UV_ENOMEM;
    }
    swprintf(*app, n + 10, L"%ls\\cmd.exe", sys);
    swprintf(*line, wcslen(shell_args) + wlen + 2, L"%ls%ls\"", shell_args, w);
    free(w);
    return 0;
  }
  for (size_t i = 0; cmd->argv[i] != NULL; i++)
    size += 2 * strlen(cmd->argv[i]) + 3;
  text = malloc(size);
  if (text == NULL)
    return UV_ENOMEM;
  end = text;
  for (size_t i = 0; cmd->argv[i] != NULL; i++) {
    if (i > 0)
      *end++ = ' ';
    end = quote_arg(end, cmd->argv[i]);
  }
  *end = '\0';
  rc = to_wide(text, line);
  free(text);
  return rc;
}

/* ---- the environment block -------------------------------------------------------------- */

/* The length of an entry's name: up to its '=', past a leading one ("=C:=C:\dir"). */
static size_t env_name_len(const wchar_t *entry) {
  const wchar_t *eq = wcschr(entry + 1, L'=');
  return eq != NULL ? (size_t)(eq - entry) : wcslen(entry);
}

static int env_compare(const void *a, const void *b) {
  const wchar_t *x = *(const wchar_t *const *)a, *y = *(const wchar_t *const *)b;
  size_t xn = env_name_len(x), yn = env_name_len(y);
  for (size_t i = 0; i < xn && i < yn; i++) {
    wchar_t cx = towupper(x[i]), cy = towupper(y[i]);
    if (cx != cy)
      return cx < cy ? -1 : 1;
  }
  return xn < yn ? -1 : xn > yn;
}

/* Names are case-insensitive on Windows: Path and PATH are one variable. */
static bool env_same_name(const wchar_t *a, const wchar_t *b) {
  size_t n = env_name_len(a);
  return n == env_name_len(b) && _wcsnicmp(a, b, n) == 0;
}

/* The service's environment with vars in place of theirs, sorted by name (case-insensitive)
 * as CreateProcessW's documentation asks: a Unicode block of NUL-terminated entries ending
 * with an empty one. */
static int env_block(const char *const *vars, wchar_t **out) {
  wchar_t *base = GetEnvironmentStringsW(), *block = NULL, *end;
  wchar_t **entries = NULL, **wvars = NULL;
  size_t n = 0, v = 0, k = 0, chars = 1;
  int rc = UV_ENOMEM;
  if (base == NULL)
    return uv_translate_sys_error((int)GetLastError());
  for (const wchar_t *e = base; *e != L'\0'; e += wcslen(e) + 1)
    n++;
  while (vars[v] != NULL)
    v++;
  wvars = calloc(v + 1, sizeof(*wvars));
  entries = malloc((n + v + 1) * sizeof(*entries));
  if (wvars == NULL || entries == NULL)
    goto done;
  for (size_t i = 0; i < v; i++)
    if ((rc = to_wide(vars[i], &wvars[i])) < 0)
      goto done;
  rc = UV_ENOMEM;
  for (wchar_t *e = base; *e != L'\0'; e += wcslen(e) + 1) {
    bool replaced = false;
    for (size_t i = 0; i < v && !replaced; i++)
      replaced = env_same_name(e, wvars[i]);
    if (!replaced)
      entries[k++] = e;
  }
  for (size_t i = 0; i < v; i++)
    entries[k++] = wvars[i];
  qsort(entries, k, sizeof(*entries), env_compare);
  for (size_t i = 0; i < k; i++)
    chars += wcslen(entries[i]) + 1;
  block = malloc(chars * sizeof(*block));
  if (block == NULL)
    goto done;
  end = block;
  for (size_t i = 0; i < k; i++) {
    size_t len = wcslen(entries[i]) + 1;
    memcpy(end, entries[i], len * sizeof(*end));
    end += len;
  }
  *end = L'\0';
  *out = block;
  rc = 0;

done:
  if (wvars != NULL)
    for (size_t i = 0; i < v; i++)
      free(wvars[i]);
  free(wvars);
  free(entries);
  FreeEnvironmentStringsW(base);
  return rc;
}

/* ---- running ---------------------------------------------------------------------------- */

/* On a thread-pool thread: only wakes the loop. */
static void CALLBACK on_exit_wait(void *arg, BOOLEAN timed_out) {
  hook_proc *p = arg;
  (void)timed_out;
  uv_async_send(&p->exit_async);
}

/* What the command wrote just before it exited may still sit in the pipe: read what is there
 * now rather than wait for EOF, which a leftover process holding stderr could delay forever.
 * libuv's own reads do the same (PeekNamedPipe, then a read that cannot block). */
static void drain(hook_proc *p) {
  uv_os_fd_t h;
  DWORD avail, n;
  if (uv_fileno((uv_handle_t *)&p->err, &h) != 0)
    return;
  while (PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL) && avail > 0) {
    DWORD want = avail < sizeof(p->readbuf) ? avail : (DWORD)sizeof(p->readbuf);
    if (!ReadFile(h, p->readbuf, want, &n, NULL) || n == 0)
      return;
    p->cbs.output(p->arg, p->readbuf, n);
  }
}

static void on_exit_async(uv_async_t *async) {
  hook_proc *p = async->data;
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits;
  DWORD code = 0;
  if (p->exited || WaitForSingleObject(p->process, 0) != WAIT_OBJECT_0)
    return;
  p->exited = true;
  GetExitCodeProcess(p->process, &code);
  /* What the command left running on purpose (a tunnel daemon it started) outlives it, as a
   * process group does on Unix: closing the job no longer ends it. A tree we killed is gone
   * already. */
  memset(&limits, 0, sizeof(limits));
  SetInformationJobObject(p->job, JobObjectExtendedLimitInformation, &limits, sizeof(limits));
  drain(p);
  p->cbs.exited(p->arg, (int64_t)code, 0);
}

static void on_err_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  hook_proc *p = handle->data;
  (void)suggested;
  *buf = uv_buf_init(p->readbuf, sizeof(p->readbuf));
}

static void on_err_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
  hook_proc *p = stream->data;
  if (n > 0)
    p->cbs.output(p->arg, buf->base, (size_t)n);
  else if (n < 0)
    uv_read_stop(stream);
}

/* A job whose processes all end when its last handle is closed: if the service dies while a
 * command runs, the command's tree goes with it. */
static HANDLE job_new(void) {
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits;
  HANDLE job = CreateJobObjectW(NULL, NULL);
  if (job == NULL)
    return NULL;
  memset(&limits, 0, sizeof(limits));
  limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &limits,
                               sizeof(limits))) {
    CloseHandle(job);
    return NULL;
  }
  return job;
}

/* Creates the process suspended with stdin and stdout on nul and stderr on err_w (the only
 * handles it inherits), puts it in p->job, then lets it run. A Windows error code, or 0. */
static DWORD spawn(hook_proc *p, wchar_t *app, wchar_t *line, wchar_t *env, HANDLE err_w) {
  SECURITY_ATTRIBUTES inherit = {sizeof(inherit), NULL, TRUE};
  STARTUPINFOEXW si;
  PROCESS_INFORMATION pi;
  HANDLE handles[2];
  SIZE_T attr_size = 0;
  DWORD err = 0;
  HANDLE nul = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE,
                           FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit, OPEN_EXISTING, 0, NULL);
  if (nul == INVALID_HANDLE_VALUE)
    return GetLastError();
  memset(&si, 0, sizeof(si));
  si.StartupInfo.cb = sizeof(si);
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = nul;
  si.StartupInfo.hStdOutput = nul;
  si.StartupInfo.hStdError = err_w;
  handles[0] = nul;
  handles[1] = err_w;
  InitializeProcThreadAttributeList(NULL, 1, 0, &attr_size);
  si.lpAttributeList = malloc(attr_size);
  if (si.lpAttributeList == NULL) {
    CloseHandle(nul);
    return ERROR_NOT_ENOUGH_MEMORY;
  }
  if (!InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &attr_size)) {
    err = GetLastError();
    free(si.lpAttributeList);
    CloseHandle(nul);
    return err;
  }
  if (!UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                 handles, sizeof(handles), NULL, NULL) ||
      !CreateProcessW(app, line, NULL, NULL, TRUE,
                      CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT | CREATE_NO_WINDOW |
                          EXTENDED_STARTUPINFO_PRESENT,
                      env, NULL, &si.StartupInfo, &pi))
    err = GetLastError();
  DeleteProcThreadAttributeList(si.lpAttributeList);
  free(si.lpAttributeList);
  CloseHandle(nul);
  if (err != 0)
    return err;
  if (!AssignProcessToJobObject(p->job, pi.hProcess)) {
    /* It never ran a single instruction of its own. */
    err = GetLastError();
    TerminateProcess(pi.hProcess, HOOK_KILLED_EXIT_CODE);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    return err;
  }
  p->process = pi.hProcess;
  p->pid = pi.dwProcessId;
  ResumeThread(pi.hThread);
  CloseHandle(pi.hThread);
  return 0;
}

int hook_proc_start(hook_proc *p, const hook_cmd *cmd, char *why, size_t size) {
  const char *name = cmd->shell != NULL ? "cmd.exe" : cmd->argv[0];
  wchar_t *line = NULL, *app = NULL, *env = NULL;
  uv_file fds[2] = {-1, -1};
  HANDLE err_w;
  DWORD err;
  int rc;

  if ((rc = cmd_line(cmd, &line, &app)) < 0)
    goto done;
  if (wcslen(line) >= HOOK_CMDLINE_MAX) {
    rc = UV_E2BIG;
    goto done;
  }
  if ((rc = env_block(cmd->vars, &env)) < 0 || (rc = uv_pipe(fds, UV_NONBLOCK_PIPE, 0)) < 0)
    goto done;
  rc = uv_pipe_open(&p->err, fds[0]);
  if (rc < 0) {
    _close(fds[0]);
    goto done;
  }
  err_w = (HANDLE)_get_osfhandle(fds[1]);
  p->job = job_new();
  if (p->job == NULL || !SetHandleInformation(err_w, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) {
    rc = uv_translate_sys_error((int)GetLastError());
    goto done;
  }
  err = spawn(p, app, line, env, err_w);
  if (err != 0) {
    rc = uv_translate_sys_error((int)err);
    goto done;
  }
  if (!RegisterWaitForSingleObject(&p->wait, p->process, on_exit_wait, p, INFINITE,
                                   WT_EXECUTEONLYONCE)) {
    rc = uv_translate_sys_error((int)GetLastError());
    p->wait = NULL;
    /* Started but never to be seen exiting: end it now rather than leave it unwatched. */
    TerminateJobObject(p->job, HOOK_KILLED_EXIT_CODE);
    goto done;
  }
  /* Without stderr the failure message is only shorter: not a reason to fail. */
  uv_read_start((uv_stream_t *)&p->err, on_err_alloc, on_err_read);

done:
  /* The command holds its own copy of the write end: ours would keep EOF from coming. */
  if (fds[1] >= 0)
    _close(fds[1]);
  free(line);
  free(app);
  free(env);
  if (rc < 0)
    snprintf(why, size, "could not start %s: %s", name, uv_strerror(rc));
  return rc;
}

void hook_proc_stop(hook_proc *p) {
  hook_proc_kill(p);
}

void hook_proc_kill(hook_proc *p) {
  if (p->process != NULL && !p->exited)
    TerminateJobObject(p->job, HOOK_KILLED_EXIT_CODE);
}

long hook_proc_pid(const hook_proc *p) {
  return (long)p->pid;
}

static void on_closed(uv_handle_t *handle) {
  hook_proc *p = handle->data;
  if (--p->open > 0)
    return;
  p->cbs.closed(p->arg);
  free(p);
}

void hook_proc_close(hook_proc *p) {
  /* INVALID_HANDLE_VALUE: returns once a callback already running has returned, so none can
   * touch exit_async after it is closed. */
  if (p->wait != NULL)
    UnregisterWaitEx(p->wait, INVALID_HANDLE_VALUE);
  if (p->process != NULL)
    CloseHandle(p->process);
  /* Still set to kill on close unless the command exited: what runs in it ends here. */
  if (p->job != NULL)
    CloseHandle(p->job);
  uv_close((uv_handle_t *)&p->err, on_closed);
  uv_close((uv_handle_t *)&p->exit_async, on_closed);
}
