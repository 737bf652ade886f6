#include <winsock2.h>
#include <windows.h>
#include <sddl.h>
#include <process.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "internal.h"
#include "pipemsg/error.h"

/* Room for an account's SID (SECURITY_MAX_SID_SIZE) and domain name. */
#define SID_BYTES 68
#define DOMAIN_CHARS 256

int pm__client_owner(const char *spec, long long *uid, char *sid, size_t sid_size) {
  BYTE sid_buf[SID_BYTES];
  char domain[DOMAIN_CHARS];
  DWORD sid_len = sizeof(sid_buf), domain_len = sizeof(domain);
  SID_NAME_USE use;
  char *text = NULL;
  int rc;
  sid[0] = '\0';
  *uid = 0;
  if (spec == NULL || spec[0] == '\0')
    return 0;
  if (strcmp(spec, "*") == 0) {
    *uid = -1;
    return 0;
  }
  if (strncmp(spec, "S-1-", 4) == 0) {
    PSID parsed = NULL;
    if (!ConvertStringSidToSidA(spec, &parsed))
      return PM_EINVAL;
    LocalFree(parsed);
    return snprintf(sid, sid_size, "%s", spec) < (int)sid_size ? 0 : PM_EINVAL;
  }
  if (!LookupAccountNameA(NULL, spec, sid_buf, &sid_len, domain, &domain_len, &use) ||
      !ConvertSidToStringSidA((PSID)sid_buf, &text))
    return PM_EINVAL;
  rc = snprintf(sid, sid_size, "%s", text) < (int)sid_size ? 0 : PM_EINVAL;
  LocalFree(text);
  return rc;
}

/* Windows: libuv's loop waits on an I/O completion port, which no HANDLE can stand for. One
 * thread of the library (the "watcher") waits on the port for the application: it takes the
 * first completion, posts it back unchanged for the loop to find, signals ready (the HANDLE
 * the application waits for) and then waits until the application has run the loop
 * (pm_client_process) before it watches again. All I/O and every callback still run on the
 * application's thread; the watcher only tells it when. Timers are the application's through
 * pm_client_timeout_ms. */
#define STOP_KEY ((ULONG_PTR)0x706d7374) /* the watcher's own wake-up packet */

struct pm__client_driver {
  uv_loop_t *loop;
  HANDLE ready; /* manual reset */
  HANDLE thread;
  CRITICAL_SECTION lock;
  CONDITION_VARIABLE armed_changed;
  int armed; /* the application has run the loop since the last signal */
  int stop;
};

static unsigned __stdcall watcher(void *arg) {
  pm__client_driver *d = arg;
  for (;;) {
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    OVERLAPPED *ov = NULL;
    int stop;
    EnterCriticalSection(&d->lock);
    while (!d->armed && !d->stop)
      SleepConditionVariableCS(&d->armed_changed, &d->lock, INFINITE);
    stop = d->stop;
    LeaveCriticalSection(&d->lock);
    if (stop)
      break;
    GetQueuedCompletionStatus(d->loop->iocp, &bytes, &key, &ov, INFINITE);
    if (ov == NULL && key == STOP_KEY)
      continue;
    /* The status of a failed operation is in *ov: the loop reads it as if it were the first
     * to dequeue the packet. */
    PostQueuedCompletionStatus(d->loop->iocp, bytes, key, ov);
    EnterCriticalSection(&d->lock);
    d->armed = 0;
    LeaveCriticalSection(&d->lock);
    SetEvent(d->ready);
  }
  return 0;
}

int pm__client_driver_new(uv_loop_t *loop, pm__client_driver **out) {
  pm__client_driver *d = pm__calloc(1, sizeof(*d));
  if (d == NULL)
    return PM_ENOMEM;
  d->loop = loop;
  d->armed = 1;
  InitializeCriticalSection(&d->lock);
  InitializeConditionVariable(&d->armed_changed);
  d->ready = CreateEventA(NULL, TRUE, FALSE, NULL);
  if (d->ready != NULL)
    d->thread = (HANDLE)_beginthreadex(NULL, 0, watcher, d, 0, NULL);
  if (d->thread == NULL) {
    if (d->ready != NULL)
      CloseHandle(d->ready);
    DeleteCriticalSection(&d->lock);
    pm__free(d);
    return PM_EIO;
  }
  *out = d;
  return 0;
}

void pm__client_driver_stop(pm__client_driver *d) {
  if (d == NULL || d->thread == NULL)
    return;
  EnterCriticalSection(&d->lock);
  d->stop = 1;
  LeaveCriticalSection(&d->lock);
  WakeConditionVariable(&d->armed_changed);
  /* The loop ignores a packet without an OVERLAPPED if it finds this one first. */
  PostQueuedCompletionStatus(d->loop->iocp, 0, STOP_KEY, NULL);
  WaitForSingleObject(d->thread, INFINITE);
  CloseHandle(d->thread);
  d->thread = NULL;
}

void pm__client_driver_free(pm__client_driver *d) {
  if (d == NULL)
    return;
  pm__client_driver_stop(d);
  CloseHandle(d->ready);
  DeleteCriticalSection(&d->lock);
  pm__free(d);
}

intptr_t pm__client_driver_handle(const pm__client_driver *d) {
  return d != NULL ? (intptr_t)d->ready : -1;
}

void pm__client_driver_enter(pm__client_driver *d) {
  if (d != NULL)
    ResetEvent(d->ready);
}

void pm__client_driver_leave(pm__client_driver *d) {
  if (d == NULL)
    return;
  EnterCriticalSection(&d->lock);
  d->armed = 1;
  LeaveCriticalSection(&d->lock);
  WakeConditionVariable(&d->armed_changed);
}

void pm__client_thread_detach(void) { CloseHandle(uv_thread_self()); }
