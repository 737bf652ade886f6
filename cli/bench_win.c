/* pipemsg bench on Windows (bench.h): raw named pipes (CreateNamedPipeW, CreateFileW,
 * ReadFile, WriteFile) for the floors, and why the groups resting on fork and /proc are
 * skipped here. */
#include <winsock2.h> /* before windows.h, as libuv (through pipemsg.h) includes it */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

const char bench_floor_kind_command[] = "raw named-pipe loop";
const char bench_floor_kind_event[] = "named-pipe ping-pong";

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

int bench_run_queue(bench *bh) {
  bench_skip(bh, "queue",
             "measures heap growth with mallinfo2 in a forked child on a fresh heap; Windows "
             "has neither");
  return 0;
}

int bench_run_big(bench *bh) {
  bench_skip(bh, "big",
             "measures the client's and the server's peak memory apart with a forked server "
             "and /proc's resettable peak RSS; not ported to Windows");
  return 0;
}

int bench_run_idle(bench *bh) {
  bench_skip(bh, "idle",
             "reads pipemsgd's per-thread CPU time and wakeups from /proc; Windows has no "
             "/proc");
  return 0;
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

/* A blocking ConnectNamedPipe ends only when a client comes: the stopper is that client. */
void bench_listen_stop(bench_listener *l) {
  HANDLE h;
  InterlockedExchange(&l->stopped, 1);
  h = CreateFileW(l->path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
  if (h != INVALID_HANDLE_VALUE)
    CloseHandle(h);
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
