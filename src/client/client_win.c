#include <winsock2.h>
#include <windows.h>
#include <sddl.h>
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

struct pm__client_notify {
  HANDLE event; /* manual reset: signalled while callbacks wait */
};

int pm__client_notify_new(pm__client_notify **out) {
  pm__client_notify *n = pm__calloc(1, sizeof(*n));
  if (n == NULL)
    return PM_ENOMEM;
  n->event = CreateEventA(NULL, TRUE, FALSE, NULL);
  if (n->event == NULL) {
    pm__free(n);
    return PM_EIO;
  }
  *out = n;
  return 0;
}

void pm__client_notify_free(pm__client_notify *n) {
  if (n == NULL)
    return;
  CloseHandle(n->event);
  pm__free(n);
}

intptr_t pm__client_notify_handle(const pm__client_notify *n) { return (intptr_t)n->event; }

void pm__client_notify_set(pm__client_notify *n) { SetEvent(n->event); }

void pm__client_notify_clear(pm__client_notify *n) { ResetEvent(n->event); }
