/* The platform contract (transport.h) on Windows named pipes. */
#include <winsock2.h>
#include <windows.h>
#include <aclapi.h>
#include <io.h>
#include <sddl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pipemsg/error.h"
#include "transport/transport.h"

#define PIPE_PREFIX "\\\\.\\pipe\\"
/* Bytes one pipe instance buffers each way (a hint to the system, not a limit on frames). */
#define PIPE_BUFFER (64 * 1024)
/* Pause before the listener thread tries again to create an instance it could not create. */
#define INSTANCE_RETRY_MS 100
/* While instances cannot be created, one report in this many failures (the first included). */
#define INSTANCE_REPORT_EVERY 100
/* Pause between connection attempts while no pipe of that name exists. */
#define DIAL_RETRY_MS 20
/* Bytes a blocking connection reads or writes at a time. */
#define CONN_CHUNK (64 * 1024)

int pm_pipe_dir(char *buf, size_t size) {
  int n;
  if (buf == NULL || size == 0)
    return PM_EINVAL;
  n = snprintf(buf, size, "\\\\.\\pipe");
  return n < 0 || (size_t)n >= size ? PM_ENAMETOOLONG : 0;
}

/* 1 if NAME (after \\.\pipe\) stays a pipe name: Windows collapses "." and ".." components
 * of a path before it opens it (\\.\pipe\..\C:\x is the file C:\x) and folds empty ones, so
 * NAME may have none of them, nor ':' or '/'. A backslash between other components is part of
 * a pipe's name, as on Unix. */
static int bare_pipe_name(const char *bare) {
  const char *c = bare;
  if (strchr(bare, '/') != NULL || strchr(bare, ':') != NULL)
    return 0;
  for (;;) {
    size_t len = strcspn(c, "\\");
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
      return 0;
    if (c[len] == '\0')
      return 1;
    c += len + 1;
  }
}

/* A bare NAME and \\.\pipe\NAME both mean \\.\pipe\NAME, checked alike. Anything else names
 * something that is not a local pipe (a path, \\server\pipe\NAME) and is refused, as on Unix. */
int pm_pipe_path(const char *name, char *buf, size_t size) {
  const char *bare = name;
  int n;
  if (name == NULL || name[0] == '\0' || buf == NULL || size == 0)
    return PM_EINVAL;
  if (strncmp(name, PIPE_PREFIX, strlen(PIPE_PREFIX)) == 0)
    bare = name + strlen(PIPE_PREFIX);
  if (!bare_pipe_name(bare))
    return PM_EPIPENAME;
  n = snprintf(buf, size, "%s%s", PIPE_PREFIX, bare);
  if (n < 0 || (size_t)n >= size || (size_t)n > PM_PIPE_PATH_MAX)
    return PM_ENAMETOOLONG;
  return 0;
}

void pm__block_sigpipe(void) {}

/* path (UTF-8) as a new UTF-16 string, or NULL. */
static wchar_t *wide(const char *s) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  wchar_t *w;
  if (n <= 0)
    return NULL;
  w = pm__malloc((size_t)n * sizeof(wchar_t));
  if (w != NULL && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
    pm__free(w);
    w = NULL;
  }
  return w;
}

/* ---- the listener ------------------------------------------------------------------------
 *
 * libuv 1.44 creates pipe instances with a NULL security descriptor, so the listener creates
 * them itself: CreateNamedPipeW with the service's descriptor, byte mode, remote clients
 * rejected, the first one with FILE_FLAG_FIRST_PIPE_INSTANCE (created here, on the caller's
 * thread, so a name in use fails pm__listen at once). A helper thread waits in an overlapped
 * ConnectNamedPipe on the one pending instance; once a client is connected it creates the next
 * instance, and only then hands the connected one to the loop (uv_async_t) and waits until it
 * is taken (pm__accept: uv_pipe_open on a CRT descriptor, as libuv wants). So the name always
 * has an instance of ours: a pipe with none ceases to exist, and whoever created the name next
 * would own it (docs/windows.md, "Instances"), as libuv's own server avoids by keeping
 * instances pending. One instance is pending at a time: while one client waits to be taken, a
 * second may connect to it, and a third gets ERROR_PIPE_BUSY, which the blocking client
 * retries like a refused connection.
 *
 * The pipe object (shared by its instances) has the owner of our descriptor, which
 * pm__listen sets when the SDDL names none. The first instance and every later one are
 * checked against it: an instance that joined someone else's pipe (the first, where
 * FILE_FLAG_FIRST_PIPE_INSTANCE is not enforced, as under wine; a later one, should the
 * pipe's owner have been changed) is never served. */

struct pm__listener {
  uv_loop_t *loop;
  uv_async_t wake;           /* thread -> loop: an instance is connected, or a failure */
  HANDLE thread;
  HANDLE stop;               /* loop -> thread: close down (manual reset) */
  HANDLE taken;              /* loop -> thread: the connected instance was taken (auto reset) */
  HANDLE pending;            /* the instance waiting for a client (thread's) */
  CRITICAL_SECTION lock;
  HANDLE connected;          /* a connected instance not yet taken, or NULL (under lock) */
  char failure[160];         /* a failure not yet reported, or "" (under lock) */
  unsigned failures;         /* next instances not created in a row (thread's) */
  wchar_t *name;
  const char *path;          /* for the reports: the spec's path, which outlives us */
  PSECURITY_DESCRIPTOR sd;   /* LocalFree */
  PSID owner;                /* the pipe's owner: in sd */
  SECURITY_ATTRIBUTES sa;
  pm__connection_cb cb;
  void (*failed)(void *data, const char *why);
  void *data;
  void (*close_cb)(void *data);
  void *close_data;
};

static HANDLE new_instance(pm__listener *l, int first) {
  DWORD open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;
  if (first)
    open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
  return CreateNamedPipeW(l->name, open_mode,
                          PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                              PIPE_REJECT_REMOTE_CLIENTS,
                          PIPE_UNLIMITED_INSTANCES, PIPE_BUFFER, PIPE_BUFFER, 0, &l->sa);
}

/* The owner of the pipe h is an instance of, or NULL (none, or unreadable); *sd holds it and
 * is LocalFree'd by the caller either way. */
static PSID pipe_owner(HANDLE h, PSECURITY_DESCRIPTOR *sd) {
  PSID sid = NULL;
  *sd = NULL;
  if (GetSecurityInfo(h, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION, &sid, NULL, NULL, NULL,
                      sd) != ERROR_SUCCESS)
    return NULL;
  return sid;
}

/* 1 if instance h belongs to our pipe (the pipe object's owner is the one we gave it), 0 if
 * it has another owner, -1 if the owner cannot be read (out of memory, say): not a reason to
 * stop serving for good. */
static int ours(pm__listener *l, HANDLE h) {
  PSECURITY_DESCRIPTOR sd;
  PSID sid = pipe_owner(h, &sd);
  int ok = sid == NULL ? -1 : EqualSid(sid, l->owner) != 0;
  LocalFree(sd);
  return ok;
}

/* Hands a line to the loop for l->failed (a later one replaces one not yet reported). */
static void report(pm__listener *l, const char *fmt, ...) PM__PRINTF(2, 3);
static void report(pm__listener *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  EnterCriticalSection(&l->lock);
  vsnprintf(l->failure, sizeof(l->failure), fmt, ap);
  LeaveCriticalSection(&l->lock);
  va_end(ap);
  uv_async_send(&l->wake);
}

/* Waits for a client on l->pending: 1 connected, 0 stop asked, -1 the client came and went,
 * -2 failed otherwise (either way the instance is disconnected and reusable). */
static int wait_client(pm__listener *l, HANDLE ev) {
  OVERLAPPED ov;
  DWORD n, err;
  HANDLE both[2];
  memset(&ov, 0, sizeof(ov));
  ov.hEvent = ev;
  if (ConnectNamedPipe(l->pending, &ov))
    return 1;
  err = GetLastError();
  if (err == ERROR_PIPE_CONNECTED)
    return 1;
  if (err != ERROR_IO_PENDING) {
    DisconnectNamedPipe(l->pending);
    return err == ERROR_NO_DATA ? -1 : -2;
  }
  both[0] = l->stop;
  both[1] = ev;
  if (WaitForMultipleObjects(2, both, FALSE, INFINITE) == WAIT_OBJECT_0) {
    CancelIoEx(l->pending, &ov);
    GetOverlappedResult(l->pending, &ov, &n, TRUE);
    return 0;
  }
  if (GetOverlappedResult(l->pending, &ov, &n, FALSE))
    return 1;
  err = GetLastError();
  DisconnectNamedPipe(l->pending);
  return err == ERROR_NO_DATA ? -1 : -2;
}

/* The instance to wait on once l->pending's client is handed out; INVALID_HANDLE_VALUE if
 * there is none: then l->pending's client is turned away and its instance stays pending (the
 * name is never left without one), or, for a pipe no longer ours, *foreign is set. */
static HANDLE next_instance(pm__listener *l, int *foreign) {
  HANDLE next = new_instance(l, 0);
  DWORD err = GetLastError();
  int mine = next == INVALID_HANDLE_VALUE ? -1 : ours(l, next);
  *foreign = 0;
  if (mine == 1) {
    l->failures = 0;
    return next;
  }
  if (mine == 0) {
    CloseHandle(next);
    *foreign = 1;
    report(l, "no longer ours (its owner changed), served no more: pipe %s", l->path);
    return INVALID_HANDLE_VALUE;
  }
  if (next != INVALID_HANDLE_VALUE)
    CloseHandle(next);
  if (l->failures++ % INSTANCE_REPORT_EVERY == 0) {
    if (next != INVALID_HANDLE_VALUE)
      report(l, "cannot read a new instance's owner, clients turned away: pipe %s", l->path);
    else
      report(l, "cannot create another instance (error %lu), clients turned away: pipe %s",
             (unsigned long)err, l->path);
  }
  DisconnectNamedPipe(l->pending);
  return INVALID_HANDLE_VALUE;
}

static DWORD WINAPI listener_thread(void *arg) {
  pm__listener *l = arg;
  HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL), next;
  for (;;) {
    int got = ev == NULL ? 0 : wait_client(l, ev), foreign;
    if (got == 0)
      break;
    /* Never spin on an error that repeats: pause, as when an instance cannot be made. */
    if (got == -2 && WaitForSingleObject(l->stop, INSTANCE_RETRY_MS) == WAIT_OBJECT_0)
      break;
    if (got < 0)
      continue;
    next = next_instance(l, &foreign);
    if (foreign)
      break;
    if (next == INVALID_HANDLE_VALUE) {
      if (WaitForSingleObject(l->stop, INSTANCE_RETRY_MS) == WAIT_OBJECT_0)
        break;
      continue;
    }
    EnterCriticalSection(&l->lock);
    l->connected = l->pending;
    LeaveCriticalSection(&l->lock);
    l->pending = next;
    uv_async_send(&l->wake);
    /* Offered again while not taken: a server that could not take it then (out of memory)
     * gets another chance, as on Unix. */
    {
      HANDLE both[2] = {l->stop, l->taken};
      DWORD r;
      while ((r = WaitForMultipleObjects(2, both, FALSE, INSTANCE_RETRY_MS)) == WAIT_TIMEOUT)
        uv_async_send(&l->wake);
      if (r != WAIT_OBJECT_0 + 1)
        break;
    }
  }
  if (ev != NULL)
    CloseHandle(ev);
  if (l->pending != INVALID_HANDLE_VALUE)
    CloseHandle(l->pending);
  l->pending = INVALID_HANDLE_VALUE;
  return 0;
}

static void on_wake(uv_async_t *a) {
  pm__listener *l = a->data;
  char why[sizeof(l->failure)];
  HANDLE h;
  EnterCriticalSection(&l->lock);
  h = l->connected;
  memcpy(why, l->failure, sizeof(why));
  l->failure[0] = '\0';
  LeaveCriticalSection(&l->lock);
  if (why[0] != '\0' && l->failed != NULL)
    l->failed(l->data, why);
  if (h != NULL && l->cb != NULL)
    l->cb(l->data);
}

static void free_listener(pm__listener *l) {
  if (l->stop != NULL)
    CloseHandle(l->stop);
  if (l->taken != NULL)
    CloseHandle(l->taken);
  if (l->connected != NULL)
    CloseHandle(l->connected);
  if (l->pending != INVALID_HANDLE_VALUE)
    CloseHandle(l->pending);
  if (l->sd != NULL)
    LocalFree(l->sd);
  DeleteCriticalSection(&l->lock);
  pm__free(l->name);
  pm__free(l);
}

static void on_wake_closed(uv_handle_t *h) {
  pm__listener *l = h->data;
  void (*cb)(void *data) = l->close_cb;
  void *data = l->close_data;
  free_listener(l);
  if (cb != NULL)
    cb(data);
}

/* The user SID of token as a new TOKEN_USER (pm__free), or NULL. */
static TOKEN_USER *token_user(HANDLE token) {
  DWORD len = 0;
  TOKEN_USER *u;
  GetTokenInformation(token, TokenUser, NULL, 0, &len);
  if (len == 0)
    return NULL;
  u = pm__malloc(len);
  if (u != NULL && !GetTokenInformation(token, TokenUser, u, len, &len)) {
    pm__free(u);
    u = NULL;
  }
  return u;
}

/* sddl as a descriptor with an owner (LocalFree), or NULL. Windows gives an object without one
 * the token's default owner; wine gives it none, and a client refuses a pipe without one. So
 * an SDDL naming no owner gets the default owner when it is LocalSystem or Administrators (a
 * service, an elevated administrator), which clients trust as such, else our user. */
static PSECURITY_DESCRIPTOR owned_descriptor(const char *sddl) {
  PSECURITY_DESCRIPTOR sd = NULL;
  PSID owner = NULL, use;
  BOOL defaulted;
  HANDLE token = NULL;
  TOKEN_USER *user = NULL;
  union {
    TOKEN_OWNER owner;
    BYTE bytes[sizeof(TOKEN_OWNER) + SECURITY_MAX_SID_SIZE];
  } def;
  char *text = NULL, *with = NULL;
  wchar_t *w;
  DWORD len;
  w = wide(sddl);
  if (w == NULL || !ConvertStringSecurityDescriptorToSecurityDescriptorW(w, SDDL_REVISION_1, &sd,
                                                                         NULL))
    sd = NULL;
  pm__free(w);
  if (sd == NULL || (GetSecurityDescriptorOwner(sd, &owner, &defaulted) && owner != NULL))
    return sd;
  LocalFree(sd);
  sd = NULL;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    return NULL;
  user = token_user(token);
  use = user != NULL ? user->User.Sid : NULL;
  if (GetTokenInformation(token, TokenOwner, &def, sizeof(def), &len) &&
      (IsWellKnownSid(def.owner.Owner, WinLocalSystemSid) ||
       IsWellKnownSid(def.owner.Owner, WinBuiltinAdministratorsSid)))
    use = def.owner.Owner;
  if (use != NULL && ConvertSidToStringSidA(use, &text)) {
    len = (DWORD)(strlen(text) + strlen(sddl) + 3);
    with = pm__malloc(len);
    if (with != NULL)
      snprintf(with, len, "O:%s%s", text, sddl);
    LocalFree(text);
  }
  w = with != NULL ? wide(with) : NULL;
  if (w == NULL || !ConvertStringSecurityDescriptorToSecurityDescriptorW(w, SDDL_REVISION_1, &sd,
                                                                         NULL))
    sd = NULL;
  pm__free(w);
  pm__free(with);
  pm__free(user);
  CloseHandle(token);
  return sd;
}

int pm__listen(uv_loop_t *loop, const pm__listen_spec *spec, pm__connection_cb cb, void *data,
               pm__listener **out) {
  const char *sddl = spec->access.sddl != NULL ? spec->access.sddl : PM_PIPE_SDDL_DEFAULT;
  pm__listener *l;
  BOOL defaulted;
  DWORD err;
  int rc;
  if (spec->fd != 0)
    return PM_EINVAL; /* no socket activation on Windows */
  l = pm__calloc(1, sizeof(*l));
  if (l == NULL)
    return PM_ENOMEM;
  InitializeCriticalSection(&l->lock);
  l->pending = INVALID_HANDLE_VALUE;
  l->loop = loop;
  l->cb = cb;
  l->failed = spec->failed;
  l->data = data;
  l->path = spec->path;
  l->name = wide(spec->path);
  if (l->name == NULL) {
    rc = PM_EPIPENAME;
    goto fail;
  }
  l->sd = owned_descriptor(sddl);
  if (l->sd == NULL || !GetSecurityDescriptorOwner(l->sd, &l->owner, &defaulted) ||
      l->owner == NULL) {
    pm__debug("pipe security descriptor \"%s\" not understood (error %lu)", sddl,
              (unsigned long)GetLastError());
    rc = PM_EINVAL;
    goto fail;
  }
  l->sa.nLength = sizeof(l->sa);
  l->sa.lpSecurityDescriptor = l->sd;
  l->sa.bInheritHandle = FALSE;
  l->pending = new_instance(l, 1);
  if (l->pending == INVALID_HANDLE_VALUE) {
    err = GetLastError();
    /* Another process serves the name (first instance refused), or its descriptor keeps us
     * from adding an instance: in use by a live service either way. */
    rc = err == ERROR_ACCESS_DENIED || err == ERROR_PIPE_BUSY ? PM_EADDRINUSE
         : err == ERROR_INVALID_NAME || err == ERROR_BAD_PATHNAME ? PM_EPIPENAME
                                                                  : PM_EIO;
    goto fail;
  }
  switch (ours(l, l->pending)) {
  case 0:
    pm__debug("pipe %s exists with another owner", spec->path);
    rc = PM_EADDRINUSE;
    goto fail;
  case -1:
    rc = PM_EIO;
    goto fail;
  }
  l->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
  l->taken = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (l->stop == NULL || l->taken == NULL) {
    rc = PM_EIO;
    goto fail;
  }
  rc = uv_async_init(loop, &l->wake, on_wake);
  if (rc < 0) {
    rc = pm__uv_error(rc);
    goto fail;
  }
  l->wake.data = l;
  l->thread = CreateThread(NULL, 0, listener_thread, l, 0, NULL);
  if (l->thread == NULL) {
    uv_close((uv_handle_t *)&l->wake, on_wake_closed);
    return PM_EIO;
  }
  *out = l;
  return 0;
fail:
  free_listener(l);
  return rc;
}

/* libuv takes a pipe as a CRT descriptor, and closes it (and the handle) with the stream. */
static int open_into(uv_pipe_t *client, HANDLE h) {
  int fd = _open_osfhandle((intptr_t)h, 0), rc;
  if (fd < 0) {
    CloseHandle(h);
    return PM_EIO;
  }
  rc = uv_pipe_open(client, fd);
  if (rc < 0) {
    _close(fd);
    return pm__uv_error(rc);
  }
  /* libuv keeps a duplicate of the handle behind descriptors 0-2 and forgets the descriptor:
   * in a process without standard streams (a service) ours may be one of them. */
  if (fd <= 2)
    _close(fd);
  return 0;
}

int pm__accept(pm__listener *l, uv_pipe_t *client) {
  HANDLE h;
  EnterCriticalSection(&l->lock);
  h = l->connected;
  l->connected = NULL;
  LeaveCriticalSection(&l->lock);
  if (h == NULL)
    return PM_EBUSY;
  SetEvent(l->taken); /* the thread may offer the next instance now */
  return open_into(client, h);
}

int pm__pipe_dial_now(uv_pipe_t *client, const char *path) {
  wchar_t *name;
  HANDLE h;
  DWORD err;
  if (strlen(path) > PM_PIPE_PATH_MAX)
    return PM_ENAMETOOLONG;
  name = wide(path);
  if (name == NULL)
    return PM_EPIPENAME;
  /* Identification only: a server may learn who we are, never act as us. */
  h = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                  FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
  err = GetLastError();
  pm__free(name);
  if (h != INVALID_HANDLE_VALUE)
    return open_into(client, h);
  if (err == ERROR_ACCESS_DENIED)
    return PM_EACCES;
  return err == ERROR_FILE_NOT_FOUND || err == ERROR_PIPE_BUSY ? PM_EBUSY : PM_EIO;
}

void pm__listener_close(pm__listener *l, void (*cb)(void *data), void *data) {
  l->close_cb = cb;
  l->close_data = data;
  l->cb = NULL;
  SetEvent(l->stop);
  WaitForSingleObject(l->thread, INFINITE);
  CloseHandle(l->thread);
  uv_close((uv_handle_t *)&l->wake, on_wake_closed);
}

/* ---- identities ---------------------------------------------------------------------------
 */

/* The client's token, taken by impersonating it (then reverted at once), or NULL. */
static HANDLE client_token(HANDLE pipe) {
  HANDLE token = NULL;
  if (!ImpersonateNamedPipeClient(pipe))
    return NULL;
  if (!OpenThreadToken(GetCurrentThread(), TOKEN_QUERY | TOKEN_DUPLICATE, TRUE, &token))
    token = NULL;
  if (!RevertToSelf()) {
    /* Running on as the client would be worse than stopping. */
    pm__debug("RevertToSelf failed (error %lu)", (unsigned long)GetLastError());
    abort();
  }
  return token;
}

static HANDLE stream_handle(uv_pipe_t *stream) {
  uv_os_fd_t h;
  if (uv_fileno((uv_handle_t *)stream, &h) != 0)
    return INVALID_HANDLE_VALUE;
  return h;
}

void pm__pipe_peer(uv_pipe_t *stream, pm_peer *peer, int groups) {
  HANDLE h = stream_handle(stream), token;
  ULONG pid = 0;
  (void)groups; /* pm_peer carries no groups here: pm_peer_in_group asks the token */
  memset(peer, 0, sizeof(*peer));
  peer->pid = peer->uid = peer->gid = -1;
  peer->ngroups = -1;
  if (h == INVALID_HANDLE_VALUE)
    return;
  if (GetNamedPipeClientProcessId(h, &pid) && pid != 0)
    peer->pid = pid;
  token = client_token(h);
  if (token != NULL) {
    TOKEN_USER *u = token_user(token);
    char *s = NULL;
    if (u != NULL && ConvertSidToStringSidA(u->User.Sid, &s)) {
      snprintf(peer->sid, sizeof(peer->sid), "%s", s);
      LocalFree(s);
    }
    pm__free(u);
    CloseHandle(token);
  }
}

/* 1 if token is a member of sid (enabled), 0 if not, <0 if it cannot be told. */
static int token_in(HANDLE token, PSID sid) {
  HANDLE imp = NULL;
  BOOL member = FALSE;
  int rc;
  /* CheckTokenMembership wants an impersonation token. */
  if (!DuplicateToken(token, SecurityIdentification, &imp))
    return PM_ENOTAUTH;
  rc = CheckTokenMembership(imp, sid, &member) ? member != FALSE : PM_ENOTAUTH;
  CloseHandle(imp);
  return rc;
}

int pm__pipe_peer_in_group(uv_pipe_t *stream, const char *group) {
  HANDLE h = stream_handle(stream), token;
  PSID sid = NULL;
  int rc;
  if (group == NULL || !ConvertStringSidToSidA(group, &sid))
    return PM_EINVAL;
  token = h == INVALID_HANDLE_VALUE ? NULL : client_token(h);
  rc = token == NULL ? PM_ENOTAUTH : token_in(token, sid);
  if (token != NULL)
    CloseHandle(token);
  LocalFree(sid);
  return rc;
}

/* 1 if sid is LocalSystem, our own user or owner->sid, else 0. */
static int trusted_user(PSID sid, const pm__owner *owner) {
  HANDLE self = NULL;
  TOKEN_USER *me = NULL;
  PSID expected = NULL;
  int ok = IsWellKnownSid(sid, WinLocalSystemSid);
  if (!ok && OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &self)) {
    me = token_user(self);
    ok = me != NULL && EqualSid(sid, me->User.Sid);
    pm__free(me);
    CloseHandle(self);
  }
  if (!ok && owner->sid != NULL && ConvertStringSidToSidA(owner->sid, &expected)) {
    ok = EqualSid(sid, expected);
    LocalFree(expected);
  }
  return ok;
}

/* 1 if the pipe object's owner is trusted: LocalSystem, Administrators, our user or
 * owner->sid. The owner belongs to the pipe, not to a process, and is set by whoever created
 * its first instance (our listener names one: owned_descriptor); only a process that may give
 * an object that owner (holding the SID as a possible owner, or SeRestorePrivilege) can create
 * such a pipe, and nobody can add an instance to it without FILE_CREATE_PIPE_INSTANCE, which
 * the descriptor grants only to the same. A pipe without an owner (wine's, when its creator
 * named none) or one we cannot read is refused: never passes on doubt. */
static int pipe_owner_trusted(HANDLE h, const pm__owner *owner) {
  PSECURITY_DESCRIPTOR sd;
  PSID sid = pipe_owner(h, &sd);
  int ok = sid != NULL &&
           (IsWellKnownSid(sid, WinBuiltinAdministratorsSid) || trusted_user(sid, owner));
  LocalFree(sd);
  return ok;
}

/* 0 unless the process serving h is known to run as someone untrusted: its pid
 * (GetNamedPipeServerProcessId), then its token's user (trusted_user) or its membership of
 * Administrators. Unknown (pid 0, as wine reports between processes; a process or token we may
 * not open, as a user may not a LocalSystem service's) is 0: this check only refuses. A pid can
 * be reused once its process has exited, so it never admits: the pipe's owner does that. It
 * still refuses an instance added to a trusted pipe by an untrusted process, which a descriptor
 * granting FILE_CREATE_PIPE_INSTANCE too widely would let in. A pid equal to ours is not
 * refused: a process may serve itself (an application calling its own server, the tests), and
 * our own token passes trusted_user anyway. */
static int server_untrusted(HANDLE h, const pm__owner *owner) {
  HANDLE proc, token = NULL;
  TOKEN_USER *user;
  BYTE admins_buf[SECURITY_MAX_SID_SIZE];
  DWORD admins_len = sizeof(admins_buf);
  ULONG pid = 0;
  int untrusted;
  if (!GetNamedPipeServerProcessId(h, &pid) || pid == 0)
    return 0;
  proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  if (proc == NULL)
    return 0;
  if (!OpenProcessToken(proc, TOKEN_QUERY | TOKEN_DUPLICATE, &token)) {
    CloseHandle(proc);
    return 0;
  }
  user = token_user(token);
  untrusted = user != NULL && !trusted_user(user->User.Sid, owner) &&
              !(CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, admins_buf, &admins_len) &&
                token_in(token, admins_buf) == 1);
  pm__free(user);
  CloseHandle(token);
  CloseHandle(proc);
  return untrusted;
}

/* Whether pipe h is served by whom the client expects: the pipe object's owner decides
 * (race-free), and a server process known to be untrusted is refused besides. */
static int check_server(HANDLE h, const pm__owner *owner) {
  if (owner->uid < 0)
    return 0;
  if (h == INVALID_HANDLE_VALUE || !pipe_owner_trusted(h, owner) || server_untrusted(h, owner))
    return PM_ENOTAUTH;
  return 0;
}

int pm__pipe_check_owner(uv_pipe_t *stream, const pm__owner *owner) {
  if (owner->uid < 0)
    return 0;
  return check_server(stream_handle(stream), owner);
}

int pm__pipe_peer_gone(uv_pipe_t *stream) {
  HANDLE h = stream_handle(stream);
  DWORD avail = 0;
  if (h == INVALID_HANDLE_VALUE)
    return 0;
  if (PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL))
    return 0;
  return GetLastError() == ERROR_BROKEN_PIPE || GetLastError() == ERROR_PIPE_NOT_CONNECTED;
}

/* A named pipe's link is wrapped from the start: libuv's overlapped reads own the pipe. */
int pm__accept_link(pm__listener *l, pm__link *link) {
  link->fd = -1;
  link->wrapped = 1;
  uv_pipe_init(l->loop, &link->pipe, 0);
  return pm__accept(l, &link->pipe);
}

int pm__link_wrap(uv_loop_t *loop, pm__link *link) {
  (void)loop;
  (void)link;
  return 0;
}

int pm__link_close(pm__link *link, uv_close_cb cb) {
  if (!link->wrapped)
    return 0;
  uv_close((uv_handle_t *)&link->pipe, cb);
  return 1;
}

void pm__link_peer(pm__link *link, pm_peer *peer, int groups) {
  pm__pipe_peer(&link->pipe, peer, groups);
}

int pm__link_peer_gone(pm__link *link) { return pm__pipe_peer_gone(&link->pipe); }

/* libuv's overlapped reads own a named pipe: it is never parked, and read through the loop. */
long pm__pipe_read_now(uv_pipe_t *pipe, void *buf, size_t len) {
  (void)pipe;
  (void)buf;
  (void)len;
  return PM_EBUSY;
}

void pm__parking_init(pm__parking *p) {
  memset(p, 0, sizeof(*p));
  p->fd = -1;
}

int pm__park(pm__parking *p, uv_pipe_t *pipe, void (*cb)(void *data), void *data) {
  (void)p;
  (void)pipe;
  (void)cb;
  (void)data;
  return PM_EINVAL;
}

void pm__unpark(pm__parking *p) { (void)p; }

int pm__parking_close(pm__parking *p, uv_close_cb cb) {
  (void)p;
  (void)cb;
  return 0;
}

long pm__link_read_now(pm__link *link, void *buf, size_t len) {
  (void)link;
  (void)buf;
  (void)len;
  return PM_EBUSY;
}

long pm__link_read_first(pm__link *link, void *buf, size_t len) {
  (void)buf;
  (void)len;
  return pm__pipe_peer_gone(&link->pipe) ? 0 : PM_EBUSY;
}

long pm__link_write_now(pm__link *link, const void *a, size_t alen, const void *b, size_t blen) {
  (void)link;
  (void)a;
  (void)alen;
  (void)b;
  (void)blen;
  return 0;
}

/* A link is wrapped from the start here: there is nothing to wait on outside libuv. */
int pm__link_waiter_new(uv_loop_t *loop, void (*cb)(void *data, uint64_t token), void *data,
                        pm__link_waiter **out) {
  (void)loop;
  (void)cb;
  (void)data;
  (void)out;
  return PM_EINVAL;
}

int pm__link_wait(pm__link_waiter *w, pm__link *link, uint64_t token) {
  (void)w;
  (void)link;
  (void)token;
  return PM_EINVAL;
}

void pm__link_waiter_close(pm__link_waiter *w, void (*closed)(void *data), void *data) {
  (void)w;
  (void)closed;
  (void)data;
}

int pm__link_peer_in_group(pm__link *link, const char *group) {
  return pm__pipe_peer_in_group(&link->pipe, group);
}

/* ---- the blocking client ------------------------------------------------------------------
 *
 * Overlapped ReadFile/WriteFile with one read and one write in flight at most, each into the
 * connection's own buffer: pm__conn_wait waits on their events, send and recv only start or
 * collect them, and close cancels what is still in flight (CancelIoEx). */

struct pm__conn {
  HANDLE h;
  OVERLAPPED rov, wov;
  uint8_t rbuf[CONN_CHUNK], wbuf[CONN_CHUNK];
  size_t rlen, roff;   /* bytes read into rbuf and handed out of them */
  int reading, writing; /* an operation in flight */
  int eof, failed;     /* reading: the end of the stream, an error */
  int wfailed;         /* writing: the peer is gone, or an error */
};

/* Collects a finished read: 1 if there is data or an end to report, 0 if still in flight or
 * idle. */
static int read_done(pm__conn *c) {
  DWORD n = 0;
  if (!c->reading)
    return c->roff < c->rlen || c->eof || c->failed;
  if (GetOverlappedResult(c->h, &c->rov, &n, FALSE)) {
    c->reading = 0;
    c->rlen = n;
    c->roff = 0;
    return n > 0;
  }
  switch (GetLastError()) {
  case ERROR_IO_INCOMPLETE:
    return 0;
  case ERROR_BROKEN_PIPE:
  case ERROR_PIPE_NOT_CONNECTED:
    c->eof = 1;
    break;
  default:
    c->failed = 1;
  }
  c->reading = 0;
  return 1;
}

static void start_read(pm__conn *c) {
  if (c->reading || c->roff < c->rlen || c->eof || c->failed)
    return;
  c->rlen = c->roff = 0;
  if (ReadFile(c->h, c->rbuf, sizeof(c->rbuf), NULL, &c->rov) ||
      GetLastError() == ERROR_IO_PENDING) {
    c->reading = 1;
    return;
  }
  if (GetLastError() == ERROR_BROKEN_PIPE || GetLastError() == ERROR_PIPE_NOT_CONNECTED)
    c->eof = 1;
  else
    c->failed = 1;
}

/* Collects a finished write: 1 if another may start. */
static int write_done(pm__conn *c) {
  DWORD n = 0;
  if (!c->writing)
    return 1;
  if (GetOverlappedResult(c->h, &c->wov, &n, FALSE)) {
    c->writing = 0;
    return 1;
  }
  if (GetLastError() == ERROR_IO_INCOMPLETE)
    return 0;
  c->writing = 0;
  c->wfailed = 1;
  return 1;
}

int pm__dial(const char *path, uint64_t deadline_ns, pm__conn **out) {
  wchar_t *name;
  HANDLE h;
  pm__conn *c;
  if (strlen(path) > PM_PIPE_PATH_MAX)
    return PM_ENAMETOOLONG;
  name = wide(path);
  if (name == NULL)
    return PM_EPIPENAME;
  for (;;) {
    uint64_t now;
    DWORD err;
    /* Identification only: a server may learn who we are, never act as us. */
    h = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                    NULL);
    if (h != INVALID_HANDLE_VALUE)
      break;
    err = GetLastError();
    if (err == ERROR_ACCESS_DENIED) {
      pm__free(name);
      return PM_EACCES;
    }
    if (err != ERROR_FILE_NOT_FOUND && err != ERROR_PIPE_BUSY) {
      pm__free(name);
      return PM_EIO;
    }
    now = uv_hrtime();
    if (now + (uint64_t)DIAL_RETRY_MS * 1000000u >= deadline_ns) {
      pm__free(name);
      return PM_ECONNTIMEOUT;
    }
    /* Every instance busy: wait for one to be free (never past the deadline); no pipe at all:
     * wait a little for the service to appear. */
    if (err == ERROR_PIPE_BUSY)
      WaitNamedPipeW(name, (DWORD)((deadline_ns - now) / 1000000u));
    else
      uv_sleep(DIAL_RETRY_MS);
  }
  pm__free(name);
  c = pm__calloc(1, sizeof(*c));
  if (c != NULL) {
    c->rov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    c->wov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
  }
  if (c == NULL || c->rov.hEvent == NULL || c->wov.hEvent == NULL) {
    if (c != NULL && c->rov.hEvent != NULL)
      CloseHandle(c->rov.hEvent);
    if (c != NULL && c->wov.hEvent != NULL)
      CloseHandle(c->wov.hEvent);
    pm__free(c);
    CloseHandle(h);
    return PM_ENOMEM;
  }
  c->h = h;
  *out = c;
  return 0;
}

int pm__conn_check_owner(pm__conn *c, const pm__owner *owner) { return check_server(c->h, owner); }

int pm__conn_wait(pm__conn *c, int want_write, uint64_t deadline_ns) {
  for (;;) {
    HANDLE evs[2];
    DWORD n = 0, r;
    uint64_t now = uv_hrtime();
    int mask = 0;
    start_read(c);
    if (read_done(c))
      mask |= 1;
    if (want_write && write_done(c))
      mask |= 2;
    if (mask != 0)
      return mask;
    if (now >= deadline_ns)
      return 0;
    if (c->reading)
      evs[n++] = c->rov.hEvent;
    if (want_write && c->writing)
      evs[n++] = c->wov.hEvent;
    if (n == 0)
      return PM_EIO;
    r = WaitForMultipleObjects(n, evs, FALSE, (DWORD)((deadline_ns - now + 999999u) / 1000000u));
    if (r == WAIT_FAILED)
      return PM_EIO;
  }
}

long pm__conn_send(pm__conn *c, const void *a, size_t alen, const void *b, size_t blen) {
  size_t n = 0, take;
  if (!write_done(c))
    return 0;
  if (c->wfailed)
    return PM_EIO;
  take = alen < sizeof(c->wbuf) ? alen : sizeof(c->wbuf);
  memcpy(c->wbuf, a, take);
  n = take;
  take = blen < sizeof(c->wbuf) - n ? blen : sizeof(c->wbuf) - n;
  if (take > 0)
    memcpy(c->wbuf + n, b, take);
  n += take;
  if (n == 0)
    return 0;
  if (WriteFile(c->h, c->wbuf, (DWORD)n, NULL, &c->wov) || GetLastError() == ERROR_IO_PENDING) {
    c->writing = 1;
    return (long)n;
  }
  c->wfailed = 1;
  return PM_EIO;
}

long pm__conn_recv(pm__conn *c, void *buf, size_t len) {
  size_t n;
  start_read(c);
  read_done(c);
  if (c->roff < c->rlen) {
    n = c->rlen - c->roff < len ? c->rlen - c->roff : len;
    memcpy(buf, c->rbuf + c->roff, n);
    c->roff += n;
    return (long)n;
  }
  if (c->eof)
    return 0;
  if (c->failed)
    return PM_EIO;
  return PM_EBUSY;
}

void pm__conn_close(pm__conn *c) {
  DWORD n;
  if (c == NULL)
    return;
  if (c->reading || c->writing)
    CancelIoEx(c->h, NULL);
  if (c->reading)
    GetOverlappedResult(c->h, &c->rov, &n, TRUE);
  if (c->writing)
    GetOverlappedResult(c->h, &c->wov, &n, TRUE);
  CloseHandle(c->h);
  CloseHandle(c->rov.hEvent);
  CloseHandle(c->wov.hEvent);
  pm__free(c);
}
