/* pipemsgd.exe on Windows (docs/windows.md): it serves commands and events over named pipes,
 * refuses a second instance on the same names, stops cleanly on Ctrl-Break and Ctrl-C, writes
 * and removes its names in the registry, registers itself with the service control manager,
 * logs to the Event Log, resolves --allow-user/--allow-group, prints its configuration.
 * What wine does not implement is skipped under wine with the reason; it runs on a real
 * Windows. */
#include <winsock2.h>
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "testutil.h"

#define PIPEMSGD PM_BIN_DIR "/pipemsgd.exe"
/* How long a one-shot pipemsgd.exe (--help, --install, a refused start) may take under wine,
 * which starts a program in a few hundred ms on a quiet machine: a slow machine's worst case. */
#define RUN_TIMEOUT_MS 60000
/* How long a started service may take to stop on a control event or an SCM stop. */
#define STOP_TIMEOUT_MS 20000

/* Runs pipemsgd.exe with args (NULL-terminated), stdout and stderr into one static buffer;
 * returns its exit status. Arguments are quoted; none of the tests' has a quote in it. */
static int run(const char *const *args, const char **output) {
  static char out[65536];
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
  char line[8192], tmp[MAX_PATH + 1], path[MAX_PATH + 32];
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  HANDLE file;
  DWORD code = 0, got = 0;
  size_t n = (size_t)snprintf(line, sizeof(line), "\"%s\"", PIPEMSGD);
  for (int i = 0; args[i] != NULL; i++) {
    assert_null(strchr(args[i], '"'));
    n += (size_t)snprintf(line + n, sizeof(line) - n, " \"%s\"", args[i]);
  }
  assert_true(n < sizeof(line));
  GetTempPathA(sizeof(tmp), tmp);
  snprintf(path, sizeof(path), "%spmtest-run-%lu.txt", tmp, (unsigned long)GetCurrentProcessId());
  file = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa,
                     CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  assert_true(file != INVALID_HANDLE_VALUE);
  memset(&si, 0, sizeof(si));
  si.cb = sizeof(si);
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = si.hStdError = file;
  assert_true(CreateProcessA(NULL, line, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi));
  CloseHandle(pi.hThread);
  assert_int_equal(WAIT_OBJECT_0, WaitForSingleObject(pi.hProcess, RUN_TIMEOUT_MS));
  assert_true(GetExitCodeProcess(pi.hProcess, &code));
  CloseHandle(pi.hProcess);
  SetFilePointer(file, 0, NULL, FILE_BEGIN);
  ReadFile(file, out, sizeof(out) - 1, &got, NULL);
  out[got] = '\0';
  CloseHandle(file);
  DeleteFileA(path);
  /* The CRT writes text mode: CRLF line ends, compared here as LF. */
  {
    char *w = out;
    for (const char *r = out; *r; r++)
      if (!(r[0] == '\r' && r[1] == '\n'))
        *w++ = *r;
    *w = '\0';
  }
  *output = out;
  return (int)code;
}

static void assert_contains(const char *text, const char *part) {
  if (strstr(text, part) == NULL) {
    print_error("no '%s' in:\n%s\n", part, text);
    fail();
  }
}

/* How many entries of path's DACL allow something to everyone or every user (Everyone,
 * Users, Authenticated Users, Interactive): 0 for a file only the service may read. */
static int public_aces(const char *path) {
  PSECURITY_DESCRIPTOR sd = NULL;
  PACL dacl = NULL;
  int n = 0;
  assert_int_equal(ERROR_SUCCESS, GetNamedSecurityInfoA(path, SE_FILE_OBJECT,
                                                        DACL_SECURITY_INFORMATION, NULL, NULL,
                                                        &dacl, NULL, &sd));
  assert_non_null(dacl);
  for (DWORD i = 0; i < dacl->AceCount; i++) {
    ACCESS_ALLOWED_ACE *ace;
    PSID sid;
    assert_true(GetAce(dacl, i, (void **)&ace));
    sid = (PSID)&ace->SidStart;
    if (ace->Header.AceType == ACCESS_ALLOWED_ACE_TYPE &&
        (IsWellKnownSid(sid, WinWorldSid) || IsWellKnownSid(sid, WinBuiltinUsersSid) ||
         IsWellKnownSid(sid, WinAuthenticatedUserSid) || IsWellKnownSid(sid, WinInteractiveSid)))
      n++;
  }
  LocalFree(sd);
  return n;
}

/* The library client against pipemsgd.exe: commands, the sim backend, events. */
static void serves_commands_and_events(void **state) {
  pm_test_service svc;
  const char *args[] = {"--connect-delay-ms", "50", "--test-commands", NULL};
  json_t *data = NULL;
  pm_msg *m;
  int fd;
  (void)state;
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  assert_string_equal("Disconnected", json_string_value(json_object_get(data, "State")));
  json_decref(data);

  fd = pm_test_event_attach(svc.event_pipe, NULL, 20000, NULL);
  assert_true(fd >= 0);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn",
                                         json_pack("{s:s}", "Location", "fr"), NULL));
  /* Connecting, then Connected after the sim backend's delay. */
  for (const char *want = "Connecting";;) {
    m = pm_test_next_event(fd, 20000);
    assert_non_null(m);
    pm_test_assert_kind(m, "Event");
    if (strcmp(json_string_value(json_object_get(pm_msg_fields(m), "Type")), "StateChanged") == 0) {
      json_t *d = json_object_get(pm_msg_fields(m), "Data");
      assert_string_equal(want, json_string_value(json_object_get(d, "State")));
      pm_test_confirm(fd, pm_test_int_field(m, "Id"));
      pm_msg_free(m);
      if (strcmp(want, "Connected") == 0)
        break;
      want = "Connected";
      continue;
    }
    pm_test_confirm(fd, pm_test_int_field(m, "Id"));
    pm_msg_free(m);
  }
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  assert_string_equal("Connected", json_string_value(json_object_get(data, "State")));
  assert_string_equal("fr", json_string_value(json_object_get(data, "Location")));
  json_decref(data);
  close(fd);
  /* Peers are logged by SID on Windows (info lines are batched: up to 100 ms later). */
  pm_test_await_log(&svc, "command=GetState result=Ok");
  assert_contains(pm_test_service_log(&svc), " sid=S-1-");
  pm_test_service_cleanup(&svc);
}

/* A second service on the same names: "in use by a live service", exit status 1. */
static void second_instance_refused(void **state) {
  pm_test_service svc;
  const char *out;
  (void)state;
  if (pm_test_under_wine()) {
    pm_test_skip("wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE: a second server binds "
                 "the same name");
    return;
  }
  pm_test_service_start(&svc, NULL);
  {
    const char *args[] = {"-c", svc.command_pipe, "-e", svc.event_pipe, "--data-dir=", NULL};
    assert_int_equal(1, run(args, &out));
  }
  assert_contains(out, "in use by a live service");
  pm_test_service_cleanup(&svc);
}

/* Why console control events cannot be sent from here, or NULL when they can. */
static const char *no_console(void) {
  DWORD mode;
  if (GetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), &mode) ||
      GetConsoleMode(GetStdHandle(STD_OUTPUT_HANDLE), &mode))
    return NULL;
  if (pm_test_under_wine())
    return "wine runs the tests without a console, and its AttachConsole and "
           "GenerateConsoleCtrlEvent fail without one (the SCM's stop is proven in "
           "install_uninstall)";
  return "this test runs without a console";
}

/* In a console, Ctrl-Break (to its own process group) and Ctrl-C stop it cleanly, taking a
 * connected tunnel down first. A group made with CREATE_NEW_PROCESS_GROUP starts with Ctrl-C
 * ignored (CreateProcess documents it) and a program cannot know to turn it back on, so the
 * Ctrl-C goes to group 0, every process on the console, this test included, which ignores it
 * meanwhile. */
static void console_ctrl_stops(void **state) {
  pm_test_service svc;
  const char *args[] = {"--connect-delay-ms", "50", NULL};
  const char *why = no_console();
  DWORD code;
  (void)state;
  if (why != NULL) {
    pm_test_skip("%s", why);
    return;
  }
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "StartVpn", NULL, NULL));
  pm_test_await_log(&svc, "vpn state=Connected");
  assert_int_equal(0, pm_test_service_stop(&svc));
  assert_contains(pm_test_service_log(&svc), "info: stopping signal=21");
  assert_contains(pm_test_service_log(&svc), "stopping: tunnel down");
  assert_contains(pm_test_service_log(&svc), "info: stopped");

  pm_test_service_restart(&svc, args);
  SetConsoleCtrlHandler(NULL, TRUE);
  assert_true(GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0));
  code = WaitForSingleObject(svc.process, STOP_TIMEOUT_MS);
  SetConsoleCtrlHandler(NULL, FALSE);
  assert_int_equal(WAIT_OBJECT_0, code);
  assert_true(GetExitCodeProcess(svc.process, &code));
  assert_int_equal(0, code);
  CloseHandle(svc.process);
  svc.process = NULL;
  assert_contains(pm_test_service_log(&svc), "info: stopping signal=2\n");
  pm_test_service_cleanup(&svc);
}

/* A REG_SZ value of key, or NULL when missing (static buffer). */
static const char *reg_value(HKEY root, const char *key, const char *name) {
  static char buf[512];
  DWORD size = sizeof(buf) - 1;
  if (RegGetValueA(root, key, name, RRF_RT_REG_SZ, NULL, buf, &size) != ERROR_SUCCESS)
    return NULL;
  return buf;
}

/* --names-registry: random names, both values written while it serves (and they work),
 * removed at a clean stop. */
static void names_registry(void **state) {
  pm_test_service svc;
  char key[128], arg[160], command[256];
  const char *args[] = {arg, NULL}, *v;
  json_t *data = NULL;
  (void)state;
  snprintf(key, sizeof(key), "Software\\pipemsg-test-%lu", (unsigned long)GetCurrentProcessId());
  snprintf(arg, sizeof(arg), "--names-registry=HKCU\\%s", key);
  pm_test_service_start(&svc, args);
  v = reg_value(HKEY_CURRENT_USER, key, "CommandPipe");
  assert_non_null(v);
  assert_int_equal(0, strncmp(v, "\\\\.\\pipe\\pipemsg-", 17));
  snprintf(command, sizeof(command), "%s", v);
  assert_non_null(strstr(command, "-command"));
  v = reg_value(HKEY_CURRENT_USER, key, "EventPipe");
  assert_non_null(v);
  assert_int_equal(0, strncmp(v, command, strlen(command) - strlen("command")));
  assert_non_null(strstr(v, "-event"));
  /* The -c name was replaced by the random one. */
  assert_string_equal("Ok", pm_test_call(command, "GetState", NULL, &data));
  json_decref(data);
  /* Removed at a clean stop (without a console, the SCM test checks it). */
  if (pm_test_service_stop(&svc) == 0) {
    assert_null(reg_value(HKEY_CURRENT_USER, key, "CommandPipe"));
    assert_null(reg_value(HKEY_CURRENT_USER, key, "EventPipe"));
  }
  RegDeleteKeyValueA(HKEY_CURRENT_USER, key, "CommandPipe");
  RegDeleteKeyValueA(HKEY_CURRENT_USER, key, "EventPipe");
  RegDeleteKeyA(HKEY_CURRENT_USER, key);
  pm_test_service_cleanup(&svc);
}

/* --names-file on Windows: random names, written to FILE (replaced in one step), usable. */
static void names_file(void **state) {
  pm_test_service svc;
  char path[160], arg[200], line[256], command[160];
  const char *args[] = {arg, NULL};
  json_t *data = NULL;
  FILE *f;
  (void)state;
  pm_test_service_start(&svc, NULL);
  pm_test_service_stop(&svc);
  snprintf(path, sizeof(path), "%s\\names", svc.dir);
  snprintf(arg, sizeof(arg), "--names-file=%s", path);
  pm_test_service_restart(&svc, args);
  f = fopen(path, "r");
  assert_non_null(f);
  assert_non_null(fgets(line, sizeof(line), f));
  assert_int_equal(1, sscanf(line, "command-pipe = %159s", command));
  assert_non_null(fgets(line, sizeof(line), f));
  fclose(f);
  assert_int_equal(0, strncmp(command, "\\\\.\\pipe\\pipemsg-", 17));
  assert_non_null(strstr(line, "event-pipe = \\\\.\\pipe\\pipemsg-"));
  assert_string_equal("Ok", pm_test_call(command, "GetState", NULL, &data));
  json_decref(data);
  /* The service's own DACL, not the folder's (under wine, derived from the file's mode). */
  assert_int_equal(0, public_aces(path));
  /* Removed at a clean stop; where none can be sent, by hand. */
  if (pm_test_service_stop(&svc) == 0)
    assert_null(fopen(path, "r"));
  remove(path);
  pm_test_service_cleanup(&svc);
}

/* A bad KEY is a usage error naming the accepted roots. */
static void names_registry_bad_key(void **state) {
  const char *out;
  const char *args[] = {"--names-registry", "HKCR\\Software\\x", NULL};
  const char *bare[] = {"--names-registry", "HKLM", NULL};
  (void)state;
  assert_int_equal(2, run(args, &out));
  assert_contains(out, "HKLM, HKEY_LOCAL_MACHINE, HKCU or HKEY_CURRENT_USER");
  assert_int_equal(2, run(bare, &out));
  assert_contains(out, "needs a subkey");
}

/* The SCM's configuration of a service: its command line (static buffer), or NULL. */
static const char *service_command_line(const char *name) {
  static char buf[8192];
  union {
    QUERY_SERVICE_CONFIGA config;
    char room[8192];
  } q;
  SC_HANDLE manager = OpenSCManagerA(NULL, NULL, SC_MANAGER_CONNECT), service;
  DWORD needed;
  const char *rc = NULL;
  assert_non_null(manager);
  service = OpenServiceA(manager, name, SERVICE_QUERY_CONFIG);
  if (service != NULL && QueryServiceConfigA(service, &q.config, sizeof(q), &needed)) {
    snprintf(buf, sizeof(buf), "%s", q.config.lpBinaryPathName);
    rc = buf;
  }
  if (service != NULL)
    CloseServiceHandle(service);
  CloseServiceHandle(manager);
  return rc;
}

/* The service's state as the SCM reports it, 0 if it cannot be queried. */
static DWORD service_state(SC_HANDLE service) {
  SERVICE_STATUS st;
  return QueryServiceStatus(service, &st) ? st.dwCurrentState : 0;
}

static int await_state(SC_HANDLE service, DWORD want) {
  uint64_t deadline = pm_test_now_ms() + STOP_TIMEOUT_MS * 3;
  while (service_state(service) != want) {
    if (pm_test_now_ms() >= deadline)
      return -1;
    Sleep(20);
  }
  return 0;
}

/* The whole log file at path (static buffer). */
static const char *file_text(const char *path) {
  static char text[65536];
  FILE *f = fopen(path, "r");
  size_t got;
  assert_non_null(f);
  got = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  text[got] = '\0';
  return text;
}

/* --install registers this program with --service NAME and the other options, quoted;
 * --uninstall removes it. In between, the SCM starts it (it reports RUNNING once it serves,
 * its names in the registry), and stops it: cleanly, the tunnel taken down, the names
 * removed. */
static void install_uninstall(void **state) {
  char name[64], dir[64], key[96], log_path[160], arg_log[200], arg_key[160], command[256];
  const char *out, *line, *v;
  SC_HANDLE manager, service;
  SERVICE_STATUS st;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(name, sizeof(name), "pipemsg-test-%lu", (unsigned long)GetCurrentProcessId());
  snprintf(key, sizeof(key), "Software\\%s", name);
  snprintf(log_path, sizeof(log_path), "%s\\service log.txt", dir);
  snprintf(arg_log, sizeof(arg_log), "--log-file=%s", log_path);
  snprintf(arg_key, sizeof(arg_key), "--names-registry=HKLM\\%s", key);
  {
    const char *args[] = {"--install", name, arg_key, "--data-dir=", "--connect-delay-ms", "50",
                          "--log-target", "file", arg_log, NULL};
    int rc = run(args, &out);
    if (rc != 0 && strstr(out, "access denied") != NULL) {
      pm_test_dir_remove(dir);
      pm_test_skip("creating a service needs an administrator: %s", out);
      return;
    }
    assert_int_equal(0, rc);
  }
  assert_contains(out, "installed service");
  line = service_command_line(name);
  assert_non_null(line);
  assert_contains(line, "pipemsgd.exe");
  assert_contains(line, " --service ");
  assert_contains(line, name);
  assert_contains(line, arg_key);
  /* The argument with a space stays one argument. */
  assert_contains(line, "\"--log-file=");
  assert_null(strstr(line, "--install"));
  {
    const char *again[] = {"--install", name, NULL};
    assert_int_equal(1, run(again, &out));
    assert_contains(out, "a service of that name exists");
  }

  manager = OpenSCManagerA(NULL, NULL, SC_MANAGER_CONNECT);
  assert_non_null(manager);
  service = OpenServiceA(manager, name, SERVICE_START | SERVICE_STOP | SERVICE_QUERY_STATUS);
  assert_non_null(service);
  assert_true(StartServiceA(service, 0, NULL));
  assert_int_equal(0, await_state(service, SERVICE_RUNNING));
  v = reg_value(HKEY_LOCAL_MACHINE, key, "CommandPipe");
  assert_non_null(v);
  snprintf(command, sizeof(command), "%s", v);
  assert_non_null(reg_value(HKEY_LOCAL_MACHINE, key, "EventPipe"));
  assert_string_equal("Ok", pm_test_call(command, "StartVpn", NULL, NULL));
  {
    uint64_t deadline = pm_test_now_ms() + STOP_TIMEOUT_MS;
    while (strstr(file_text(log_path), "vpn state=Connected") == NULL) {
      assert_true(pm_test_now_ms() < deadline);
      Sleep(20);
    }
  }
  assert_true(ControlService(service, SERVICE_CONTROL_STOP, &st));
  assert_int_equal(0, await_state(service, SERVICE_STOPPED));
  assert_true(QueryServiceStatus(service, &st));
  assert_int_equal(NO_ERROR, st.dwWin32ExitCode);
  out = file_text(log_path);
  assert_contains(out, "info: listening ");
  assert_contains(out, "info: stopping control=stop");
  assert_contains(out, "stopping: tunnel down");
  assert_contains(out, "info: stopped");
  assert_null(reg_value(HKEY_LOCAL_MACHINE, key, "CommandPipe"));
  assert_null(reg_value(HKEY_LOCAL_MACHINE, key, "EventPipe"));
  RegDeleteKeyA(HKEY_LOCAL_MACHINE, key);
  CloseServiceHandle(service);
  CloseServiceHandle(manager);

  {
    const char *args[] = {"--uninstall", name, NULL};
    assert_int_equal(0, run(args, &out));
    assert_contains(out, "removed service");
  }
  assert_null(service_command_line(name));
  {
    const char *args[] = {"--uninstall", name, NULL};
    assert_int_equal(1, run(args, &out));
    assert_contains(out, "no such service");
  }
  remove(log_path);
  pm_test_dir_remove(dir);
}

/* --service NAME outside the SCM says so, instead of hanging. */
static void service_mode_needs_scm(void **state) {
  const char *out;
  const char *args[] = {"--service", "pipemsg-nothing", "--data-dir=", NULL};
  (void)state;
  assert_int_equal(1, run(args, &out));
  assert_contains(out, "not started by the service control manager");
}

/* 1 if the Application log has an entry from source whose text contains part. */
static int event_logged(const char *source, const char *part) {
  static char buf[1 << 16];
  HANDLE h = OpenEventLogA(NULL, "Application");
  DWORD got, needed;
  int found = 0;
  assert_non_null(h);
  while (!found && ReadEventLogA(h, EVENTLOG_SEQUENTIAL_READ | EVENTLOG_BACKWARDS_READ, 0, buf,
                                 sizeof(buf), &got, &needed)) {
    for (DWORD off = 0; off < got && !found;) {
      EVENTLOGRECORD *rec = (EVENTLOGRECORD *)(buf + off);
      const char *src = (const char *)(rec + 1), *text = (const char *)rec + rec->StringOffset;
      found = strcmp(src, source) == 0 && rec->NumStrings > 0 && strstr(text, part) != NULL;
      off += rec->Length;
    }
  }
  CloseEventLog(h);
  return found;
}

/* --log-target eventlog: it starts, serves and stops with nothing on stderr; where the Event
 * Log keeps entries, its lines are there under the source pipemsgd. */
static void eventlog_target(void **state) {
  pm_test_service svc;
  const char *args[] = {"--log-target", "eventlog", NULL};
  char listening[200];
  json_t *data = NULL;
  (void)state;
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  json_decref(data);
  pm_test_service_stop(&svc);
  assert_string_equal("", pm_test_service_log(&svc));
  if (pm_test_under_wine()) {
    pm_test_service_cleanup(&svc);
    pm_test_skip("wine's Event Log keeps nothing to read back (ReportEventW only traces)");
    return;
  }
  /* The log escapes a backslash as two. */
  snprintf(listening, sizeof(listening), "listening command_pipe=\\\\\\\\.\\\\pipe\\\\%s",
           svc.command_pipe + strlen("\\\\.\\pipe\\"));
  assert_true(event_logged("pipemsgd", listening));
  pm_test_service_cleanup(&svc);
}

/* --allow-user and --allow-group: names and SIDs resolve; unknown ones are usage errors. */
static void allow_lists(void **state) {
  const char *out;
  (void)state;
  {
    const char *args[] = {"--allow-user", "S-1-5-21-1-2-3-1001", "--allow-group", "S-1-5-32-545",
                          "--allow-group", "Administrators", "--print-config", NULL};
    assert_int_equal(0, run(args, &out));
    assert_contains(out, "allow-user = S-1-5-21-1-2-3-1001\n");
    assert_contains(out, "allow-group = S-1-5-32-545\n");
    assert_contains(out, "allow-group = S-1-5-32-544\n");
  }
  {
    const char *args[] = {"--allow-user", "no-such-account-pmtest", NULL};
    assert_int_equal(2, run(args, &out));
    assert_contains(out, "--allow-user: 'no-such-account-pmtest' is not a known account or SID");
  }
  {
    const char *args[] = {"--allow-group", "S-1-bad", NULL};
    assert_int_equal(2, run(args, &out));
    assert_contains(out, "--allow-group: 'S-1-bad' is not a known account or SID");
  }
}

/* This process's user SID as a string (static buffer). */
static const char *own_sid(void) {
  static char sid[PM_PEER_SID_MAX];
  union {
    TOKEN_USER user;
    char room[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } u;
  HANDLE token;
  DWORD len;
  char *text;
  assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token));
  assert_true(GetTokenInformation(token, TokenUser, &u, sizeof(u), &len));
  assert_true(ConvertSidToStringSidA(u.user.User.Sid, &text));
  snprintf(sid, sizeof(sid), "%s", text);
  LocalFree(text);
  CloseHandle(token);
  return sid;
}

/* Installs and starts a service NAME (LocalSystem) on command pipe cmd with extra options;
 * returns it opened for stop, or NULL (skipped) when this account may not create services. */
static SC_HANDLE start_service(const char *name, const char *cmd, const char *extra) {
  const char *out;
  char arg_cmd[200];
  SC_HANDLE manager, service;
  snprintf(arg_cmd, sizeof(arg_cmd), "--command-pipe=%s", cmd);
  {
    const char *args[] = {"--install", name, arg_cmd, "--data-dir=", "--log-target", "eventlog",
                          extra, NULL};
    if (run(args, &out) != 0) {
      assert_non_null(strstr(out, "access denied"));
      return NULL;
    }
  }
  manager = OpenSCManagerA(NULL, NULL, SC_MANAGER_CONNECT);
  assert_non_null(manager);
  service = OpenServiceA(manager, name, SERVICE_START | SERVICE_STOP | SERVICE_QUERY_STATUS);
  CloseServiceHandle(manager);
  assert_non_null(service);
  assert_true(StartServiceA(service, 0, NULL));
  assert_int_equal(0, await_state(service, SERVICE_RUNNING));
  return service;
}

static void stop_service(SC_HANDLE service, const char *name) {
  SERVICE_STATUS st;
  const char *out;
  const char *args[] = {"--uninstall", name, NULL};
  assert_true(ControlService(service, SERVICE_CONTROL_STOP, &st));
  assert_int_equal(0, await_state(service, SERVICE_STOPPED));
  CloseServiceHandle(service);
  assert_int_equal(0, run(args, &out));
}

/* A peer the allow-list refuses gets NotAuthorized; --allow-user lets the same peer in. The
 * service runs as LocalSystem (under the SCM); the client is this test's own account with
 * Administrators made deny-only (CreateRestrictedToken), so neither rule that always lets in
 * applies: it is a stranger unless listed. */
static void refused_peer(void **state) {
  char name[64], cmd[128], allow[256];
  PSID admins = NULL;
  SID_AND_ATTRIBUTES disable;
  HANDLE token, restricted;
  SC_HANDLE service;
  (void)state;
  if (pm_test_under_wine()) {
    pm_test_skip("wine has one user: the service its SCM starts runs as the test's own "
                 "account, which it always lets in");
    return;
  }
  snprintf(name, sizeof(name), "pipemsg-test-peer-%lu", (unsigned long)GetCurrentProcessId());
  snprintf(cmd, sizeof(cmd), "pmtest-peer-%lu", (unsigned long)GetCurrentProcessId());
  assert_true(ConvertStringSidToSidA("S-1-5-32-544", &admins));
  disable.Sid = admins;
  disable.Attributes = 0;
  assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_ALL_ACCESS, &token));
  assert_true(CreateRestrictedToken(token, 0, 1, &disable, 0, NULL, 0, NULL, &restricted));
  CloseHandle(token);

  service = start_service(name, cmd, "--log-level=info");
  if (service == NULL) {
    CloseHandle(restricted);
    LocalFree(admins);
    pm_test_skip("creating a service needs an administrator");
    return;
  }
  assert_true(ImpersonateLoggedOnUser(restricted));
  assert_non_null(strstr(pm_test_call(cmd, "GetState", NULL, NULL), "NotAuthorized"));
  assert_true(RevertToSelf());
  /* Unrestricted, an administrator is let in. */
  assert_string_equal("Ok", pm_test_call(cmd, "GetState", NULL, NULL));
  stop_service(service, name);

  snprintf(allow, sizeof(allow), "--allow-user=%s", own_sid());
  service = start_service(name, cmd, allow);
  assert_non_null(service);
  assert_true(ImpersonateLoggedOnUser(restricted));
  assert_string_equal("Ok", pm_test_call(cmd, "GetState", NULL, NULL));
  assert_true(RevertToSelf());
  stop_service(service, name);
  CloseHandle(restricted);
  LocalFree(admins);
}

/* What --allow-group rests on: pm_peer_in_group inside a server's authorize callback checks
 * the client's token (Everyone yes, a made-up group no, a name instead of a SID refused), and
 * outside it says PM_EINVAL. In one process: the library's command server on a thread. */
typedef struct group_probe {
  uv_loop_t loop;
  uv_async_t stop;
  pm_command_server *server;
  int everyone, stranger, by_name;
  pm_peer peer;
} group_probe;

static int probe_authorize(const pm_peer *peer, void *data) {
  group_probe *g = data;
  g->everyone = pm_peer_in_group(peer, "S-1-1-0");
  g->stranger = pm_peer_in_group(peer, "S-1-5-21-1-2-3-4242");
  g->by_name = pm_peer_in_group(peer, "Administrators");
  g->peer = *peer;
  return g->stranger == 1 ? 0 : -1;
}

static void probe_handler(pm_command_call *call, void *data) {
  (void)data;
  pm_command_call_reply(call, PM_RESULT_OK, NULL, NULL);
}

static void probe_stop(uv_async_t *a) {
  group_probe *g = a->data;
  pm_command_server_close(g->server, NULL, NULL);
  uv_close((uv_handle_t *)&g->stop, NULL);
}

static void probe_run(void *arg) { uv_run(&((group_probe *)arg)->loop, UV_RUN_DEFAULT); }

static void peer_in_group(void **state) {
  group_probe g;
  pm_command_server_options co;
  uv_thread_t thread;
  char name[64];
  (void)state;
  memset(&g, 0, sizeof(g));
  snprintf(name, sizeof(name), "pmtest-%lu-group", (unsigned long)GetCurrentProcessId());
  assert_int_equal(0, uv_loop_init(&g.loop));
  assert_int_equal(0, uv_async_init(&g.loop, &g.stop, probe_stop));
  g.stop.data = &g;
  memset(&co, 0, sizeof(co));
  co.handler = probe_handler;
  co.authorize = probe_authorize;
  co.data = &g;
  assert_pm(0, pm_command_server_start(&g.loop, name, &co, &g.server));
  assert_int_equal(0, uv_thread_create(&thread, probe_run, &g));
  /* Refused: not in the made-up group. */
  assert_non_null(strstr(pm_test_call(name, "GetState", NULL, NULL), "NotAuthorized"));
  uv_async_send(&g.stop);
  assert_int_equal(0, uv_thread_join(&thread));
  assert_int_equal(0, uv_loop_close(&g.loop));
  assert_int_equal(1, g.everyone);
  assert_int_equal(0, g.stranger);
  assert_pm(PM_EINVAL, g.by_name);
  assert_pm(PM_EINVAL, pm_peer_in_group(&g.peer, "S-1-1-0"));
}

/* --print-config on Windows: its options only, the data dir under %ProgramData%. */
static void print_config(void **state) {
  const char *out;
  const char *args[] = {"--print-config", NULL};
  (void)state;
  assert_int_equal(0, run(args, &out));
  assert_contains(out, "data-dir = ");
  assert_contains(out, "\\pipemsg\n");
  assert_contains(out, "# pipe-sddl =\n");
  assert_contains(out, "# names-registry =\n");
  assert_null(strstr(out, "socket-mode"));
  assert_null(strstr(out, "allow-uid"));
  {
    const char *unix_only[] = {"--socket-mode", "0600", NULL};
    assert_int_equal(2, run(unix_only, &out));
    assert_contains(out, "--socket-mode: only on Unix");
  }
  {
    const char *unix_only[] = {"--log-target", "syslog", NULL};
    assert_int_equal(2, run(unix_only, &out));
    assert_contains(out, "--log-target syslog: only on Unix");
  }
  {
    const char *bad[] = {"--pipe-sddl", "not a descriptor", NULL};
    assert_int_equal(2, run(bad, &out));
    assert_contains(out, "--pipe-sddl: 'not a descriptor' is not a security descriptor");
  }
  {
    const char *help[] = {"--help", NULL};
    assert_int_equal(0, run(help, &out));
    assert_contains(out, "--install NAME");
    assert_contains(out, "Ctrl-Break");
    assert_null(strstr(out, "SIGHUP"));
    assert_null(strstr(out, "--socket-group"));
  }
}

/* --data-dir: settings and the event store kept across a restart, in a directory it makes. */
static void data_dir_kept(void **state) {
  pm_test_service svc;
  char dir[160], arg[200];
  const char *args[] = {arg, NULL};
  json_t *data = NULL;
  (void)state;
  pm_test_service_start(&svc, NULL);
  pm_test_service_stop(&svc);
  snprintf(dir, sizeof(dir), "%s\\data", svc.dir);
  snprintf(arg, sizeof(arg), "--data-dir=%s", dir);
  pm_test_service_restart(&svc, args);
  /* Kept when the command succeeds (flushed then): a stop that is no stop at all keeps it. */
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "EnableKillSwitch", NULL, NULL));
  pm_test_service_stop(&svc);
  pm_test_service_restart(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, &data));
  assert_true(json_is_true(json_object_get(data, "KillSwitch")));
  json_decref(data);
  pm_test_service_stop(&svc);
  pm_test_dir_remove(dir);
  pm_test_service_cleanup(&svc);
}

/* A data dir that was there before the service made it must be a plain directory of a
 * trusted owner: a file in its place, or (on Windows, not provable under wine's one user) a
 * folder another user made in %ProgramData%, stops pipemsgd before it serves anything. */
static void data_dir_refused(void **state) {
  char dir[160], file[200], arg[240];
  const char *out;
  const char *args[] = {arg, NULL};
  FILE *f;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(file, sizeof(file), "%s\\not-a-dir", dir);
  f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(arg, sizeof(arg), "--data-dir=%s", file);
  assert_int_equal(1, run(args, &out));
  assert_contains(out, "exists and is not a directory");
  pm_test_dir_remove(dir);
}

/* A second pipemsgd on the same --data-dir, with pipes of its own, would hand out the same
 * event ids: it stops at start, naming the directory, and the first keeps serving. */
static void data_dir_in_use(void **state) {
  pm_test_service svc;
  char dir[160], arg[200], cmd[200], ev[200];
  const char *out;
  const char *args[] = {arg, NULL};
  const char *second[] = {"-c", cmd, "-e", ev, arg, NULL};
  (void)state;
  pm_test_service_start(&svc, NULL);
  pm_test_service_stop(&svc);
  snprintf(dir, sizeof(dir), "%s\\data", svc.dir);
  snprintf(arg, sizeof(arg), "--data-dir=%s", dir);
  pm_test_service_restart(&svc, args);
  snprintf(cmd, sizeof(cmd), "%s-second", svc.command_pipe);
  snprintf(ev, sizeof(ev), "%s-second", svc.event_pipe);
  assert_int_equal(1, run(second, &out));
  assert_contains(out, "is in use by another pipemsgd");
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, NULL));
  pm_test_service_stop(&svc);
  /* The lock ends with the process: the next start takes the directory again. */
  pm_test_service_restart(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, NULL));
  pm_test_service_stop(&svc);
  pm_test_dir_remove(dir);
  pm_test_service_cleanup(&svc);
}

/* --log-file on Windows: created with the service's own DACL, never the one its folder
 * passes on (in %ProgramData%, read for every user), and appended to. Under wine the DACL is
 * derived from the file's mode, which the descriptor given at creation sets. */
static void log_file_private(void **state) {
  pm_test_service svc;
  char path[200], arg[240];
  const char *args[] = {"--log-target", "file", arg, NULL};
  (void)state;
  pm_test_service_start(&svc, NULL);
  pm_test_service_stop(&svc);
  snprintf(path, sizeof(path), "%s\\service.log", svc.dir);
  snprintf(arg, sizeof(arg), "--log-file=%s", path);
  pm_test_service_restart(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, NULL));
  pm_test_service_stop(&svc);
  assert_contains(file_text(path), "info: listening ");
  assert_int_equal(0, public_aces(path));
  remove(path);
  pm_test_service_cleanup(&svc);
}

/* A symbolic link in place of the log file or the names file is refused, never followed:
 * the file it leads to stays as it was. */
static void log_and_names_links_refused(void **state) {
  char dir[160], victim[200], link[200], arg[240];
  const char *out;
  DWORD attrs;
  FILE *f;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(victim, sizeof(victim), "%s\\victim.txt", dir);
  snprintf(link, sizeof(link), "%s\\link", dir);
  f = fopen(victim, "w");
  assert_non_null(f);
  fclose(f);
  if (!CreateSymbolicLinkA(link, victim, SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE) ||
      (attrs = GetFileAttributesA(link)) == INVALID_FILE_ATTRIBUTES ||
      !(attrs & FILE_ATTRIBUTE_REPARSE_POINT)) {
    pm_test_dir_remove(dir);
    pm_test_skip("no symbolic link can be made here (wine's CreateSymbolicLinkW makes none; "
                 "Windows wants an administrator or developer mode)");
    return;
  }
  snprintf(arg, sizeof(arg), "--log-file=%s", link);
  {
    const char *args[] = {"--data-dir=", "--log-target", "file", arg, NULL};
    assert_int_equal(1, run(args, &out));
    assert_contains(out, "is a link or junction; refusing it");
  }
  snprintf(arg, sizeof(arg), "--names-file=%s", link);
  {
    const char *args[] = {"--data-dir=", arg, NULL};
    assert_int_equal(1, run(args, &out));
    assert_contains(out, "is a link or junction; refusing it");
  }
  assert_string_equal("", file_text(victim));
  DeleteFileA(link);
  pm_test_dir_remove(dir);
}

/* A data dir made before the service (by an administrator, an installer) has the DACL its
 * folder passes on: the service replaces it with its own, logging what it had, and serves.
 * Wine keeps no DACL on a directory: there the log line shows it, Windows the DACL too. */
static void data_dir_existing_reset(void **state) {
  pm_test_service svc;
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, FALSE};
  char dir[160], arg[200];
  const char *args[] = {arg, NULL};
  (void)state;
  /* What %ProgramData% passes down to a folder made in it. */
  assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorA(
      "D:(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)(A;CI;0x6;;;BU)"
      "(A;OICIIO;FA;;;CO)",
      SDDL_REVISION_1, &sa.lpSecurityDescriptor, NULL));
  pm_test_service_start(&svc, NULL);
  pm_test_service_stop(&svc);
  snprintf(dir, sizeof(dir), "%s\\data", svc.dir);
  assert_true(CreateDirectoryA(dir, &sa));
  LocalFree(sa.lpSecurityDescriptor);
  snprintf(arg, sizeof(arg), "--data-dir=%s", dir);
  pm_test_service_restart(&svc, args);
  assert_contains(pm_test_service_log(&svc),
                  "permissions set to D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;OW) (were "
                  "D:");
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, NULL));
  pm_test_service_stop(&svc);
  if (!pm_test_under_wine())
    assert_int_equal(0, public_aces(dir));
  pm_test_dir_remove(dir);
  pm_test_service_cleanup(&svc);
}

/* Gives path to owner, as an administrator may (SeRestorePrivilege); 0 if it then has that
 * owner. */
static int give_file(const char *path, PSID owner) {
  TOKEN_PRIVILEGES tp = {1, {{{0, 0}, SE_PRIVILEGE_ENABLED}}};
  PSECURITY_DESCRIPTOR sd = NULL;
  PSID now = NULL;
  HANDLE token;
  int rc = -1;
  if (OpenProcessToken(GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES, &token)) {
    if (LookupPrivilegeValueA(NULL, "SeRestorePrivilege", &tp.Privileges[0].Luid))
      AdjustTokenPrivileges(token, FALSE, &tp, 0, NULL, NULL);
    CloseHandle(token);
  }
  if (SetNamedSecurityInfoA((char *)path, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, owner, NULL,
                            NULL, NULL) == ERROR_SUCCESS &&
      GetNamedSecurityInfoA(path, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &now, NULL, NULL,
                            NULL, &sd) == ERROR_SUCCESS &&
      now != NULL && EqualSid(now, owner))
    rc = 0;
  LocalFree(sd);
  return rc;
}

/* A file another account put in the data dir while it could (settings.json turning the kill
 * switch off, say) stops pipemsgd at start, naming the file and its owner. */
static void data_dir_foreign_file_refused(void **state) {
  char dir[160], data[200], file[240], arg[240];
  const char *out;
  const char *args[] = {arg, NULL};
  PSID users = NULL;
  FILE *f;
  (void)state;
  pm_test_dir_new(dir, sizeof(dir));
  snprintf(data, sizeof(data), "%s\\data", dir);
  snprintf(file, sizeof(file), "%s\\settings.json", data);
  assert_true(CreateDirectoryA(data, NULL));
  f = fopen(file, "w");
  assert_non_null(f);
  fputs("{\"KillSwitch\": false}\n", f);
  fclose(f);
  assert_true(ConvertStringSidToSidA("S-1-5-32-545", &users));
  if (give_file(file, users) < 0) {
    LocalFree(users);
    pm_test_dir_remove(data);
    pm_test_dir_remove(dir);
    pm_test_skip("cannot give a file to another owner here (wine keeps none but the process's "
                 "user; Windows wants an administrator)");
    return;
  }
  LocalFree(users);
  snprintf(arg, sizeof(arg), "--data-dir=%s", data);
  assert_int_equal(1, run(args, &out));
  assert_contains(out, "'settings.json' belongs to S-1-5-32-545");
  pm_test_dir_remove(data);
  pm_test_dir_remove(dir);
}

/* --pipe-sddl giving another account a right that lets it serve the pipes (create an
 * instance, directly or through GW or GA; WRITE_DAC; WRITE_OWNER; owning them) stops the
 * service at start, naming the account and the right; one that gives others only read and
 * write is served. */
static void pipe_sddl_checked(void **state) {
  static const struct {
    const char *sddl, *says;
  } refused[] = {
      {"D:P(A;;GA;;;SY)(A;;GRGW;;;WD)", "gives S-1-1-0 FILE_CREATE_PIPE_INSTANCE"},
      {"D:P(A;;GA;;;SY)(A;;0x4;;;IU)", "gives S-1-5-4 FILE_CREATE_PIPE_INSTANCE"},
      {"D:P(A;;GA;;;SY)(A;;GA;;;BU)", "gives S-1-5-32-545 FILE_CREATE_PIPE_INSTANCE"},
      {"D:P(A;;GA;;;SY)(A;;0x12019b;;;IU)(A;;WD;;;BU)", "gives S-1-5-32-545 WRITE_DAC"},
      {"D:P(A;;GA;;;SY)(A;;WO;;;AU)", "gives S-1-5-11 WRITE_OWNER"},
      {"O:BUD:P(A;;GA;;;SY)", "the owner it names may change the pipes' DACL"},
      {"O:SY", "has no DACL"},
  };
  pm_test_service svc;
  char arg[400];
  const char *out;
  const char *args[] = {arg, NULL};
  (void)state;
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    const char *bad[] = {"--data-dir=", "--pipe-sddl", refused[i].sddl, NULL};
    assert_int_equal(1, run(bad, &out));
    assert_contains(out, refused[i].says);
  }
  snprintf(arg, sizeof(arg),
           "--pipe-sddl=D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;%s)(A;;GA;;;OW)(A;;0x12019b;;;WD)"
           "(D;;GA;;;AN)",
           own_sid());
  pm_test_service_start(&svc, args);
  assert_string_equal("Ok", pm_test_call(svc.command_pipe, "GetState", NULL, NULL));
  pm_test_service_cleanup(&svc);
}

/* A served pipe whose owner changes (a client with WRITE_OWNER, which wine grants and the
 * default descriptor does not) is no longer the service's: the next instance finds it so, and
 * the service logs an error for each pipe. */
static void pipe_reowned_logged(void **state) {
  pm_test_service svc;
  const char *pipes[2];
  PSID stranger = NULL;
  (void)state;
  if (!pm_test_under_wine()) {
    pm_test_skip("only wine lets a user's client change a served pipe's owner");
    return;
  }
  pm_test_service_start(&svc, NULL);
  pipes[0] = svc.command_pipe;
  pipes[1] = svc.event_pipe;
  assert_true(ConvertStringSidToSidA("S-1-5-21-1-2-3-4242", &stranger));
  for (int i = 0; i < 2; i++) {
    wchar_t w[PM_PIPE_PATH_MAX + 1];
    HANDLE h, again;
    swprintf(w, PM_PIPE_PATH_MAX + 1, L"%hs", pipes[i]);
    h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE | WRITE_OWNER, 0, NULL, OPEN_EXISTING, 0,
                    NULL);
    assert_true(h != INVALID_HANDLE_VALUE);
    assert_int_equal(ERROR_SUCCESS, SetSecurityInfo(h, SE_KERNEL_OBJECT,
                                                    OWNER_SECURITY_INFORMATION, stranger, NULL,
                                                    NULL, NULL));
    /* The listener checks the instance it makes once a client connects: h's, or this one's. */
    again = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    pm_test_await_log(&svc, i == 0 ? "command listener: no longer ours"
                                   : "event listener: no longer ours");
    if (again != INVALID_HANDLE_VALUE)
      CloseHandle(again);
    CloseHandle(h);
  }
  LocalFree(stranger);
  pm_test_service_cleanup(&svc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(serves_commands_and_events),
      cmocka_unit_test(second_instance_refused),
      cmocka_unit_test(console_ctrl_stops),
      cmocka_unit_test(names_registry),
      cmocka_unit_test(names_registry_bad_key),
      cmocka_unit_test(names_file),
      cmocka_unit_test(install_uninstall),
      cmocka_unit_test(service_mode_needs_scm),
      cmocka_unit_test(eventlog_target),
      cmocka_unit_test(allow_lists),
      cmocka_unit_test(refused_peer),
      cmocka_unit_test(peer_in_group),
      cmocka_unit_test(print_config),
      cmocka_unit_test(data_dir_kept),
      cmocka_unit_test(data_dir_refused),
      cmocka_unit_test(data_dir_in_use),
      cmocka_unit_test(data_dir_existing_reset),
      cmocka_unit_test(data_dir_foreign_file_refused),
      cmocka_unit_test(log_file_private),
      cmocka_unit_test(log_and_names_links_refused),
      cmocka_unit_test(pipe_sddl_checked),
      cmocka_unit_test(pipe_reowned_logged),
  };
  return pm_test_result(cmocka_run_group_tests(tests, NULL, NULL));
}
