/* Durable files on Unix (platform.h): fsync, and rename, which replaces in one step. */
#include <stdio.h>
#include <unistd.h>

#include "platform.h"

int platform_file_sync(FILE *f) { return fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1; }

int platform_file_replace(const char *tmp, const char *path) { return rename(tmp, path); }
