/* pipemsgd as a Windows process: in a console, Ctrl-C, Ctrl-Break and closing the console
 * stop it; under the service control manager (SCM), the stop and shutdown controls do, and
 * it reports its state. --install and --uninstall register and remove the service. */
#include <winsock2.h> /* before windows.h, as uv.h wants */
#include <windows.h>
#include <shellapi.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "daemon.h"
#include "log.h"

/* Longest service command line, in characters (CreateProcess's own limit). */
#define COMMAND_LINE_MAX 32767
/* What the SCM is told a start or a stop may take before it is considered hung, in ms: the
 * hook backend's default time limit for taking a tunnel down, with room. */
#define SCM_WAIT_HINT_MS 40000

/* Console mode: libuv turns the console's control events into these signals. */
static uv_signal_t sigint, sigbreak, sighup;

/* Service mode: the SCM's handler runs on the dispatcher's thread and wakes the loop through
 * control; lock guards control's life against a stop that comes as it closes. */
static struct {
  bool on;
  wchar_t name[257];
  SERVICE_STATUS_HANDLE handle;
  SERVICE_STATUS status;
  CRITICAL_SECTION lock;
  uv_async_t control;
  bool control_open;
  int argc;
  char **argv;
  service_config *cfg;
  int exit_status;
} scm;

static void report_status(DWORD state, DWORD exit_code) {
  static DWORD checkpoint;
  scm.status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
  scm.status.dwCurrentState = state;
  scm.status.dwControlsAccepted =
      state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
  scm.status.dwWin32ExitCode = exit_code == 0 ? NO_ERROR : ERROR_SERVICE_SPECIFIC_ERROR;
  scm.status.dwServiceSpecificExitCode = exit_code;
  scm.status.dwWaitHint =
      state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING ? SCM_WAIT_HINT_MS : 0;
  scm.status.dwCheckPoint =
      state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING ? ++checkpoint : 0;
  SetServiceStatus(scm.handle, &scm.status);
}

static void on_control(uv_async_t *h) {
  (void)h;
  pipemsgd_stop("control=stop");
}

static DWORD WINAPI control_handler(DWORD control, DWORD type, void *data, void *context) {
  (void)type;
  (void)data;
  (void)context;
  switch (control) {
  case SERVICE_CONTROL_STOP:
  case SERVICE_CONTROL_SHUTDOWN:
    EnterCriticalSection(&scm.lock);
    if (scm.control_open) {
      report_status(SERVICE_STOP_PENDING, 0);
      uv_async_send(&scm.control);
    }
    LeaveCriticalSection(&scm.lock);
    return NO_ERROR;
  case SERVICE_CONTROL_INTERROGATE:
    return NO_ERROR;
  default:
    return ERROR_CALL_NOT_IMPLEMENTED;
  }
}

static void WINAPI service_main(DWORD argc, wchar_t **argv) {
  (void)argc;
  (void)argv;
  scm.handle = RegisterServiceCtrlHandlerExW(scm.name, control_handler, NULL);
  if (scm.handle == NULL) {
    scm.exit_status = 1;
    return;
  }
  report_status(SERVICE_START_PENDING, 0);
  scm.exit_status = pipemsgd_run(scm.argc, scm.argv, scm.cfg);
  report_status(SERVICE_STOPPED, (DWORD)scm.exit_status);
}

/* --service NAME: hands the main thread to the SCM, which runs service_main on another. */
static int run_service(int argc, char **argv, service_config *cfg) {
  SERVICE_TABLE_ENTRYW table[] = {{scm.name, service_main}, {NULL, NULL}};
  if (MultiByteToWideChar(CP_UTF8, 0, cfg->action_name, -1, scm.name, 257) == 0) {
    fprintf(stderr, "pipemsgd: --service: bad service name\n");
    return 2;
  }
  scm.on = true;
  scm.argc = argc;
  scm.argv = argv;
  scm.cfg = cfg;
  InitializeCriticalSection(&scm.lock);
  /* The Event Log source is the service's name. */
  log_set_source(cfg->action_name);
  if (!StartServiceCtrlDispatcherW(table)) {
    DWORD err = GetLastError();
    fprintf(stderr, "pipemsgd: --service %s: %s (error %lu)\n", cfg->action_name,
            err == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT
                ? "not started by the service control manager; run without --service in a "
                  "console"
                : "cannot reach the service control manager",
            (unsigned long)err);
    DeleteCriticalSection(&scm.lock);
    return 1;
  }
  DeleteCriticalSection(&scm.lock);
  return scm.exit_status;
}

/* Appends arg to line as CommandLineToArgvW reads it back: quoted when it has a space, a tab
 * or a quote (or is empty), backslashes doubled before a quote. false if it does not fit. */
static bool append_arg(wchar_t *line, size_t size, const wchar_t *arg) {
  size_t n = wcslen(line);
  bool quote = arg[0] == L'\0' || wcspbrk(arg, L" \t\"") != NULL;
#define PUT(c)                                                                                 \
  do {                                                                                         \
    if (n + 1 >= size)                                                                         \
      return false;                                                                            \
    line[n++] = (c);                                                                           \
  } while (0)
  if (n > 0)
    PUT(L' ');
  if (quote)
    PUT(L'"');
  for (const wchar_t *p = arg;; p++) {
    size_t slashes = 0;
    while (*p == L'\\') {
      slashes++;
      p++;
    }
    /* Backslashes are literal unless a quote follows: the argument's own, or the closing one. */
    if (*p == L'\0') {
      for (size_t i = 0; i < (quote ? 2 * slashes : slashes); i++)
        PUT(L'\\');
      break;
    }
    for (size_t i = 0; i < (*p == L'"' ? 2 * slashes + 1 : slashes); i++)
      PUT(L'\\');
    PUT(*p);
  }
  if (quote)
    PUT(L'"');
  line[n] = L'\0';
  return true;
#undef PUT
}

/* The service's command line: this program, --service NAME, then every argument given but
 * --install NAME, taken as typed (UTF-16) from the process's own command line. */
static int service_command_line(const service_config *cfg, const wchar_t *name, wchar_t *line,
                                size_t size) {
  wchar_t exe[MAX_PATH + 1];
  wchar_t **args;
  int nargs;
  bool ok;
  DWORD len = GetModuleFileNameW(NULL, exe, MAX_PATH + 1);
  if (len == 0 || len > MAX_PATH)
    return -1;
  args = CommandLineToArgvW(GetCommandLineW(), &nargs);
  if (args == NULL)
    return -1;
  line[0] = L'\0';
  ok = append_arg(line, size, exe) && append_arg(line, size, L"--service") &&
       append_arg(line, size, name);
  for (int i = 1; i < nargs && ok; i++)
    if (i < cfg->action_argi || i >= cfg->action_argi + cfg->action_argn)
      ok = append_arg(line, size, args[i]);
  LocalFree(args);
  return ok ? 0 : -1;
}

static void print_error(const char *what, const char *name) {
  DWORD err = GetLastError();
  fprintf(stderr, "pipemsgd: %s %s: %s (error %lu)\n", what, name,
          err == ERROR_ACCESS_DENIED           ? "access denied (run as an administrator)"
          : err == ERROR_SERVICE_EXISTS        ? "a service of that name exists"
          : err == ERROR_SERVICE_DOES_NOT_EXIST ? "no such service"
          : err == ERROR_SERVICE_MARKED_FOR_DELETE ? "the service is being removed"
                                               : "failed",
          (unsigned long)err);
}

static int install(const service_config *cfg) {
  static wchar_t line[COMMAND_LINE_MAX + 1];
  wchar_t name[257];
  SC_HANDLE manager, service;
  if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, cfg->action_name, -1, name, 257) == 0 ||
      name[0] == L'\0' || wcspbrk(name, L"/\\") != NULL) {
    fprintf(stderr, "pipemsgd: --install: '%s' is not a service name (1 to 256 characters, no "
                    "'/' or '\\')\n",
            cfg->action_name);
    return 2;
  }
  if (service_command_line(cfg, name, line, COMMAND_LINE_MAX + 1) < 0) {
    fprintf(stderr, "pipemsgd: --install: the command line is too long\n");
    return 2;
  }
  manager = OpenSCManagerW(NULL, NULL, SC_MANAGER_CREATE_SERVICE);
  if (manager == NULL) {
    print_error("--install", cfg->action_name);
    return 1;
  }
  /* LocalSystem, started at boot, like the vendor's service. */
  service = CreateServiceW(manager, name, name, SERVICE_QUERY_CONFIG, SERVICE_WIN32_OWN_PROCESS,
                           SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, line, NULL, NULL, NULL, NULL,
                           NULL);
  if (service == NULL) {
    print_error("--install", cfg->action_name);
    CloseServiceHandle(manager);
    return 1;
  }
  printf("installed service %s: %ls\n", cfg->action_name, line);
  CloseServiceHandle(service);
  CloseServiceHandle(manager);
  return 0;
}

/* Removes the service; a running one is removed once it stops (sc stop NAME). */
static int uninstall(const service_config *cfg) {
  wchar_t name[257];
  SC_HANDLE manager, service;
  int rc = 0;
  if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, cfg->action_name, -1, name, 257) == 0) {
    fprintf(stderr, "pipemsgd: --uninstall: bad service name\n");
    return 2;
  }
  manager = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  service = manager ? OpenServiceW(manager, name, DELETE) : NULL;
  if (service == NULL || !DeleteService(service)) {
    print_error("--uninstall", cfg->action_name);
    rc = 1;
  } else {
    printf("removed service %s\n", cfg->action_name);
  }
  if (service != NULL)
    CloseServiceHandle(service);
  if (manager != NULL)
    CloseServiceHandle(manager);
  return rc;
}

int daemon_main(int argc, char **argv, service_config *cfg, config_result what) {
  switch (what) {
  case CONFIG_INSTALL:
    return install(cfg);
  case CONFIG_UNINSTALL:
    return uninstall(cfg);
  case CONFIG_SERVICE:
    return run_service(argc, argv, cfg);
  default:
    return pipemsgd_run(argc, argv, cfg);
  }
}

/* Nothing to set aside: Windows has no SIGPIPE, and no signal arrives before the console
 * handler is installed that would not end the process anyway. */
void daemon_prepare(void) {}

static void on_signal(uv_signal_t *h, int signum) {
  char why[32];
  (void)h;
  snprintf(why, sizeof(why), "signal=%d", signum);
  pipemsgd_stop(why);
}

int daemon_watch(uv_loop_t *loop) {
  if (scm.on) {
    EnterCriticalSection(&scm.lock);
    scm.control_open = uv_async_init(loop, &scm.control, on_control) == 0;
    LeaveCriticalSection(&scm.lock);
    if (!scm.control_open)
      return -1;
    report_status(SERVICE_RUNNING, 0);
    return 0;
  }
  /* SIGHUP: the console is closing; Windows ends the process a few seconds later. */
  uv_signal_init(loop, &sigint);
  uv_signal_init(loop, &sigbreak);
  uv_signal_init(loop, &sighup);
  if (uv_signal_start(&sigint, on_signal, SIGINT) < 0 ||
      uv_signal_start(&sigbreak, on_signal, SIGBREAK) < 0 ||
      uv_signal_start(&sighup, on_signal, SIGHUP) < 0) {
    daemon_unwatch();
    return -1;
  }
  return 0;
}

void daemon_unwatch(void) {
  if (scm.on) {
    EnterCriticalSection(&scm.lock);
    if (scm.control_open)
      uv_close((uv_handle_t *)&scm.control, NULL);
    scm.control_open = false;
    LeaveCriticalSection(&scm.lock);
    return;
  }
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigbreak, NULL);
  uv_close((uv_handle_t *)&sighup, NULL);
}
