/* --iface on Windows: the byte counters of the adapter with that alias (the name ncpa.cpl and
 * Get-NetAdapter show, e.g. "Ethernet 2"), from iphlpapi's GetIfEntry2. */
#include <winsock2.h>
#include <ws2ipdef.h>
#include <windows.h>
#include <iphlpapi.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "iface.h"

/* IF_MAX_STRING_SIZE: the longest alias Windows keeps, in UTF-16 units without the NUL. */
#define IFACE_ALIAS_MAX 256

const char iface_help[] =
    "hook backend: read traffic counters of the network adapter with this alias (GetIfEntry2)";

/* The alias in UTF-16, or 0 when it is not one (empty, too long, invalid UTF-8, a control
 * character). */
static int alias_wide(const char *name, wchar_t out[IFACE_ALIAS_MAX + 1]) {
  int n;
  if (name[0] == '\0')
    return 0;
  for (const unsigned char *s = (const unsigned char *)name; *s != '\0'; s++)
    if (*s < 0x20 || *s == 0x7f)
      return 0;
  n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, out, IFACE_ALIAS_MAX + 1);
  return n > 1 ? n : 0;
}

bool iface_name_valid(const char *name) {
  wchar_t alias[IFACE_ALIAS_MAX + 1];
  return alias_wide(name, alias) > 0;
}

int backend_iface_counters(const char *iface, uint64_t *tx, uint64_t *rx) {
  wchar_t alias[IFACE_ALIAS_MAX + 1];
  MIB_IF_ROW2 row;
  DWORD err;
  *tx = 0;
  *rx = 0;
  if (iface == NULL || alias_wide(iface, alias) == 0)
    return -EINVAL;
  memset(&row, 0, sizeof(row));
  /* ERROR_INVALID_PARAMETER is its answer for an alias no adapter has (not created yet). */
  err = ConvertInterfaceAliasToLuid(alias, &row.InterfaceLuid);
  if (err == NO_ERROR)
    err = GetIfEntry2(&row);
  if (err == ERROR_INVALID_PARAMETER || err == ERROR_FILE_NOT_FOUND ||
      err == ERROR_NOT_FOUND)
    return -ENOENT;
  if (err != NO_ERROR)
    return -EIO;
  *tx = row.OutOctets;
  *rx = row.InOctets;
  return 0;
}
