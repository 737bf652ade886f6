/* pipemsg bench on Windows (bench.h): raw named pipes (CreateNamedPipeW, CreateFileW,
 * ReadFile, WriteFile) for the floors; the children of the big message and of the queue
 * figures started as "pipemsg bench --child", their memory from GetProcessMemoryInfo and
 * HeapWalk; and why the idle cost, which rests on /proc, is skipped here. */
#include <winsock2.h> /* before windows.h, as libuv (through pipemsg.h) includes it */
#include <windows.h>
#include <malloc.h> /* _get_heap_handle */
#include <psapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

const char bench_floor_kind_command[] = "raw named-pipe loop";
const char bench_floor_kind_command_child[] = "raw named-pipe loop, server process";
const char bench_floor_kind_event[] = "named-pipe ping-pong";
const char bench_floor_kind_big[] = "raw named-pipe write/read";
const char bench_help_note[] =
    "\n"
    "On Windows the idle and service groups are skipped, zmq in a build without ZeroMQ, and\n"
    "the libuv ceiling rows (command_libuv, event_libuv): each with its reason after the table\n"
    "(in --json, a \"skipped\" array), and none is a failure.\n";

/* A connect gives up after this many busy waits (each up to BENCH_BUSY_WAIT_MS). */
#define BENCH_CONNECT_TRIES 50
#define BENCH_BUSY_WAIT_MS 200

void bench_path(const bench *bh, const char *file, char *buf, size_t size) {
  snprintf(buf, size, "%s-%s", bh->dir, file);
}

/* Pipe names need no directory: a prefix no other run uses. */
int bench_dir_make(bench *bh) {
  snprintf(bh->dir, sizeof(bh->dir), "\\\\.\\pipe\\pmbench-%lu",
           (unsigned long)GetCurrentProcessId());
  return 0;
}

void bench_dir_remove(const bench *bh) { (void)bh; }

long bench_cpus_online(void) {
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  return (long)si.dwNumberOfProcessors;
}

/* Threads made later inherit the process's affinity. */
int bench_pin_cpu0(void) {
  if (SetProcessAffinityMask(GetCurrentProcess(), 1))
    return 0;
  fprintf(stderr, "pipemsg bench: cannot pin to CPU 0: error %lu\n", GetLastError());
  return PM_EIO;
}

int bench_run_idle(bench *bh) {
  bench_skip(bh, "idle",
             "measures pipemsgd's per-thread CPU time and wake-ups, which Linux gives in "
             "/proc/PID/task; not ported to Windows");
  return 0;
}

int bench_service_start(bench *bh, const char *cmd_path, const char *evt_path, long long *pid) {
  (void)cmd_path;
  (void)evt_path;
  (void)pid;
  bench_skip(bh, "service", "starts pipemsgd as a child process; not ported to Windows");
  return 1;
}

/* Nothing to end: bench_service_start never starts the service here. */
void bench_service_stop(long long pid) { (void)pid; }

/* The ceilings are the Unix library's syscalls (SO_PEERCRED, poll, accept4 on a watched
 * listening socket); the named-pipe transport makes others. */
int bench_command_libuv(bench *bh, const wire *w, double *rate) {
  (void)w;
  (void)rate;
  bench_skip(bh, "command_libuv",
             "a bare libuv loop making the Unix transport's syscalls; not ported to Windows");
  return 1;
}

int bench_event_libuv(bench *bh, const wire *w, double *rate) {
  (void)w;
  (void)rate;
  bench_skip(bh, "event_libuv",
             "a bare libuv loop making the Unix transport's syscalls; not ported to Windows");
  return 1;
}

/* ---- raw named pipes ---------------------------------------------------------------------- */

static int wide_path(const char *path, WCHAR *out, int size) {
  return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, out, size) > 0 ? 0
                                                                                     : PM_EINVAL;
}

static HANDLE new_instance(const WCHAR *path, int first) {
  return CreateNamedPipeW(path, PIPE_ACCESS_DUPLEX | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                          PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                              PIPE_REJECT_REMOTE_CLIENTS,
                          PIPE_UNLIMITED_INSTANCES, BENCH_FLOOR_BUF, BENCH_FLOOR_BUF, 0, NULL);
}

/* One instance is always pending (made before the last one is handed out), so a client never
 * finds the name unserved while the listener lives. */
struct bench_listener {
  WCHAR path[PM_PIPE_PATH_MAX + 1];
  HANDLE pending;
  volatile LONG stopped;
};

int bench_listen(const char *path, bench_listener **out) {
  bench_listener *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return PM_ENOMEM;
  if (wide_path(path, l->path, PM_PIPE_PATH_MAX + 1) < 0 ||
      (l->pending = new_instance(l->path, 1)) == INVALID_HANDLE_VALUE) {
    free(l);
    return PM_EIO;
  }
  *out = l;
  return 0;
}

bench_raw bench_accept(bench_listener *l) {
  HANDLE conn = l->pending;
  if (!ConnectNamedPipe(conn, NULL) && GetLastError() != ERROR_PIPE_CONNECTED)
    return BENCH_RAW_NONE;
  if (InterlockedCompareExchange(&l->stopped, 0, 0))
    return BENCH_RAW_NONE; /* the stopper's own connection; l->pending is closed with l */
  l->pending = new_instance(l->path, 0);
  if (l->pending == INVALID_HANDLE_VALUE) {
    l->pending = conn;
    return BENCH_RAW_NONE;
  }
  return (bench_raw)conn;
}

/* A blocking ConnectNamedPipe ends only when a client comes: the stopper is that client
 * (waiting, should the acceptor be between two instances). */
void bench_listen_stop(bench_listener *l) {
  InterlockedExchange(&l->stopped, 1);
  for (int tries = 0; tries < BENCH_CONNECT_TRIES; tries++) {
    HANDLE h = CreateFileW(l->path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (h != INVALID_HANDLE_VALUE) {
      CloseHandle(h);
      return;
    }
    WaitNamedPipeW(l->path, BENCH_BUSY_WAIT_MS);
  }
}

void bench_listen_close(bench_listener *l) {
  CloseHandle(l->pending);
  free(l);
}

bench_raw bench_connect(const char *path) {
  WCHAR w[PM_PIPE_PATH_MAX + 1];
  if (wide_path(path, w, PM_PIPE_PATH_MAX + 1) < 0)
    return BENCH_RAW_NONE;
  for (int tries = 0; tries < BENCH_CONNECT_TRIES; tries++) {
    HANDLE h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (h != INVALID_HANDLE_VALUE)
      return (bench_raw)h;
    if (GetLastError() != ERROR_PIPE_BUSY)
      break;
    WaitNamedPipeW(w, BENCH_BUSY_WAIT_MS);
  }
  return BENCH_RAW_NONE;
}

/* sv[0] is the server end, so bench_shutdown(sv[0]) can disconnect the client end. */
int bench_pair(bench_raw sv[2]) {
  static volatile LONG n;
  WCHAR path[96];
  HANDLE server, client;
  swprintf(path, sizeof(path) / sizeof(path[0]), L"\\\\.\\pipe\\pmbench-%lu-pair-%ld",
           (unsigned long)GetCurrentProcessId(), (long)InterlockedIncrement(&n));
  server = new_instance(path, 1);
  if (server == INVALID_HANDLE_VALUE)
    return PM_EIO;
  client = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
  if (client == INVALID_HANDLE_VALUE ||
      (!ConnectNamedPipe(server, NULL) && GetLastError() != ERROR_PIPE_CONNECTED)) {
    if (client != INVALID_HANDLE_VALUE)
      CloseHandle(client);
    CloseHandle(server);
    return PM_EIO;
  }
  sv[0] = (bench_raw)server;
  sv[1] = (bench_raw)client;
  return 0;
}

void bench_shutdown(bench_raw fd) { DisconnectNamedPipe((HANDLE)fd); }

void bench_close(bench_raw fd) { CloseHandle((HANDLE)fd); }

static int write_full(HANDLE h, const uint8_t *p, size_t len) {
  while (len > 0) {
    DWORD n = 0;
    if (!WriteFile(h, p, (DWORD)(len > BENCH_FLOOR_BUF ? BENCH_FLOOR_BUF : len), &n, NULL) ||
        n == 0)
      return PM_EIO;
    p += n;
    len -= n;
  }
  return 0;
}

/* Header and payload in one WriteFile when the frame fits the floor's buffer. */
int bench_write_frame(bench_raw fd, const void *payload, size_t len) {
  uint8_t frame[BENCH_FLOOR_BUF];
  uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
  if (len + 4 <= sizeof(frame)) {
    memcpy(frame, hdr, 4);
    memcpy(frame + 4, payload, len);
    return write_full((HANDLE)fd, frame, len + 4);
  }
  return write_full((HANDLE)fd, hdr, 4) == 0 ? write_full((HANDLE)fd, payload, len) : PM_EIO;
}

long bench_read(bench_raw fd, void *buf, size_t len) {
  DWORD n = 0;
  if (ReadFile((HANDLE)fd, buf, (DWORD)(len > BENCH_FLOOR_BUF ? BENCH_FLOOR_BUF : len), &n, NULL))
    return (long)n;
  return GetLastError() == ERROR_BROKEN_PIPE ? 0 : PM_EIO;
}

long bench_read_frame(bench_raw fd, uint8_t *buf, size_t size) {
  size_t have = 0, want = 4;
  while (have < want) {
    DWORD n = 0;
    if (!ReadFile((HANDLE)fd, buf + have, (DWORD)(size - have), &n, NULL) || n == 0)
      return PM_EEOF;
    have += n;
    if (want == 4 && have >= 4) {
      want = 4 + ((size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3]);
      if (want > size)
        return PM_EMSGSIZE;
    }
  }
  return (long)(want - 4);
}

/* ---- children: this program again, "bench --child KIND PATH N" ------------------------------ */

struct bench_child {
  HANDLE process;
};

/* The child's standard output is a pipe to us: one byte there says the server listens. */
static int ready_write(void *arg) {
  DWORD n = 0;
  (void)arg;
  return WriteFile(GetStdHandle(STD_OUTPUT_HANDLE), "r", 1, &n, NULL) && n == 1 ? 0 : PM_EIO;
}

/* KIND is big or raw (serve the big message, as pipemsg or as the floor; N is the largest
 * message) or queue (measure N queued events and print the BENCH_QUEUE_FIGURES figures). */
int bench_child_main(int argc, char **argv) {
  char *end;
  unsigned long long n;
  if (argc != 5 || (strcmp(argv[2], "big") != 0 && strcmp(argv[2], "raw") != 0 &&
                    strcmp(argv[2], "queue") != 0)) {
    fputs("pipemsg bench: --child KIND PATH N: used by pipemsg bench itself\n", stderr);
    return CLI_EXIT_USAGE;
  }
  n = strtoull(argv[4], &end, 10);
  if (*end != '\0' || argv[4][0] == '\0')
    return CLI_EXIT_USAGE;
  if (strcmp(argv[2], "queue") == 0) {
    double per_event[BENCH_QUEUE_FIGURES];
    if (n == 0 || n > INT32_MAX || bench_queue_measure(argv[3], (int)n, per_event) < 0)
      return 1;
    printf("%.17g %.17g %.17g\n", per_event[0], per_event[1], per_event[2]);
    return fflush(stdout) == 0 ? 0 : 1;
  }
  return bench_big_serve(argv[3], (size_t)n, strcmp(argv[2], "raw") == 0, ready_write, NULL) == 0
             ? 0
             : 1;
}

/* Starts "pipemsg bench --child kind path n" with exactly its three standard handles
 * inherited (PROC_THREAD_ATTRIBUTE_HANDLE_LIST): NUL in, a pipe to us out (*out_rd), our
 * standard error (or NUL) for its messages. */
static int spawn_child(const char *kind, const char *path, unsigned long long n, HANDLE *proc,
                       HANDLE *out_rd) {
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
  WCHAR self[MAX_PATH], cmd[MAX_PATH + 256];
  HANDLE rd = NULL, wr = NULL, nul, err, handles[3];
  STARTUPINFOEXW si;
  PROCESS_INFORMATION pi;
  SIZE_T attr_size = 0;
  BOOL ok;
  DWORD len = GetModuleFileNameW(NULL, self, MAX_PATH);
  if (len == 0 || len >= MAX_PATH)
    return PM_EIO;
  swprintf(cmd, sizeof(cmd) / sizeof(cmd[0]), L"\"%ls\" bench --child %hs \"%hs\" %llu", self,
           kind, path, n);
  nul = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa,
                    OPEN_EXISTING, 0, NULL);
  if (nul == INVALID_HANDLE_VALUE)
    return PM_EIO;
  if (!CreatePipe(&rd, &wr, &sa, 0)) {
    CloseHandle(nul);
    return PM_EIO;
  }
  SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0);
  err = GetStdHandle(STD_ERROR_HANDLE);
  if (err == NULL || err == INVALID_HANDLE_VALUE ||
      !DuplicateHandle(GetCurrentProcess(), err, GetCurrentProcess(), &err, 0, TRUE,
                       DUPLICATE_SAME_ACCESS))
    err = NULL;
  handles[0] = nul;
  handles[1] = wr;
  handles[2] = err != NULL ? err : nul;
  memset(&si, 0, sizeof(si));
  si.StartupInfo.cb = sizeof(si);
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = handles[0];
  si.StartupInfo.hStdOutput = handles[1];
  si.StartupInfo.hStdError = handles[2];
  InitializeProcThreadAttributeList(NULL, 1, 0, &attr_size);
  si.lpAttributeList = malloc(attr_size);
  ok = si.lpAttributeList != NULL &&
       InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &attr_size) &&
       UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                 handles, (err != NULL ? 3 : 2) * sizeof(HANDLE), NULL, NULL) &&
       CreateProcessW(self, cmd, NULL, NULL, TRUE, EXTENDED_STARTUPINFO_PRESENT, NULL, NULL,
                      &si.StartupInfo, &pi);
  if (si.lpAttributeList != NULL) {
    DeleteProcThreadAttributeList(si.lpAttributeList);
    free(si.lpAttributeList);
  }
  CloseHandle(nul);
  /* Our copy of the write end is closed: a child that ends ends our reads. */
  CloseHandle(wr);
  if (err != NULL)
    CloseHandle(err);
  if (!ok) {
    CloseHandle(rd);
    return PM_EIO;
  }
  CloseHandle(pi.hThread);
  *proc = pi.hProcess;
  *out_rd = rd;
  return 0;
}

static void end_process(HANDLE proc) {
  TerminateProcess(proc, 1);
  WaitForSingleObject(proc, INFINITE);
  CloseHandle(proc);
}

int bench_child_start(const char *path, size_t max_message, int raw, bench_child **out) {
  HANDLE proc, rd;
  DWORD n = 0;
  char byte;
  bench_child *c;
  int rc = spawn_child(raw ? "raw" : "big", path, max_message, &proc, &rd);
  if (rc < 0)
    return rc;
  if (!(ReadFile(rd, &byte, 1, &n, NULL) && n == 1))
    rc = PM_EIO;
  CloseHandle(rd);
  c = rc == 0 ? malloc(sizeof(*c)) : NULL;
  if (c == NULL) {
    end_process(proc);
    return rc < 0 ? rc : PM_ENOMEM;
  }
  c->process = proc;
  *out = c;
  return 0;
}

/* Only the service group asks, and it is skipped here. */
int bench_serve_child_start(void *(*serve)(void *), void *arg, bench_child **out) {
  (void)serve;
  (void)arg;
  (void)out;
  return PM_EINVAL;
}

void bench_child_stop(bench_child *c) {
  end_process(c->process);
  free(c);
}

/* The working set is what Windows keeps resident: RSS's counterpart, and its peak VmHWM's. */
int bench_mem(bench_child *c, long long *rss, long long *peak) {
  PROCESS_MEMORY_COUNTERS pmc;
  if (!GetProcessMemoryInfo(c == NULL ? GetCurrentProcess() : c->process, &pmc, sizeof(pmc)))
    return PM_EIO;
  *rss = (long long)pmc.WorkingSetSize;
  *peak = (long long)pmc.PeakWorkingSetSize;
  return 0;
}

/* Windows keeps a process's peak working set from its start and offers no reset. */
int bench_peak_reset(bench_child *c) {
  (void)c;
  return 0;
}

/* The C runtime's malloc takes its blocks from this heap: the busy ones are what it handed out
 * (-1 if the heap cannot be walked). */
long long bench_heap_in_use(void) {
  HANDLE heap = (HANDLE)_get_heap_handle();
  PROCESS_HEAP_ENTRY e;
  long long used = 0;
  if (!HeapLock(heap))
    return -1;
  memset(&e, 0, sizeof(e));
  while (HeapWalk(heap, &e)) {
    if (e.wFlags & PROCESS_HEAP_ENTRY_BUSY)
      used += (long long)e.cbData;
  }
  HeapUnlock(heap);
  return used;
}

/* The child prints its figures on the pipe and ends. */
int bench_queue_child(const char *path, int n, double per_event[BENCH_QUEUE_FIGURES]) {
  char text[128];
  size_t have = 0;
  DWORD got, status = 1;
  HANDLE proc, rd;
  int rc = spawn_child("queue", path, (unsigned long long)n, &proc, &rd);
  if (rc < 0)
    return rc;
  while (have < sizeof(text) - 1 &&
         ReadFile(rd, text + have, (DWORD)(sizeof(text) - 1 - have), &got, NULL) && got > 0)
    have += got;
  text[have] = '\0';
  CloseHandle(rd);
  WaitForSingleObject(proc, INFINITE);
  GetExitCodeProcess(proc, &status);
  CloseHandle(proc);
  if (status != 0 ||
      sscanf(text, "%lf %lf %lf", &per_event[0], &per_event[1], &per_event[2]) != 3)
    return PM_EIO;
  return 0;
}
