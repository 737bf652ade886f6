/* Durable files on Windows (platform.h): FlushFileBuffers where Unix has fsync, and
 * MoveFileExW, since rename() there refuses to replace an existing file. */
#include <windows.h>
#include <io.h>

#include <stdio.h>

#include "platform.h"

int platform_file_sync(FILE *f) {
  HANDLE h;
  if (fflush(f) != 0)
    return -1;
  h = (HANDLE)_get_osfhandle(_fileno(f));
  return h != INVALID_HANDLE_VALUE && FlushFileBuffers(h) ? 0 : -1;
}

/* The paths are the CRT's (the ANSI code page), as fopen took them. */
int platform_file_replace(const char *tmp, const char *path) {
  return MoveFileExA(tmp, path, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) ? 0 : -1;
}
