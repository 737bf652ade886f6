#ifndef PIPEMSGD_REGISTRY_H
#define PIPEMSGD_REGISTRY_H

/* Dynamic pipe names in the Windows registry (--names-registry KEY), shared by pipemsgd, which
 * writes them, and pipemsg, which reads them (docs/windows.md, "Dynamic names"). */

#include <windows.h>

#include <stddef.h>

/* The two REG_SZ values under KEY: each pipe's full name, \\.\pipe\NAME. */
#define REGISTRY_COMMAND_PIPE L"CommandPipe"
#define REGISTRY_EVENT_PIPE L"EventPipe"

/* Longest KEY in characters, a registry key path's own limit. */
#define REGISTRY_KEY_MAX 255

/* Splits KEY ("ROOT\sub\key") into its root and subkey (UTF-16, NUL-terminated). ROOT is
 * HKLM or HKEY_LOCAL_MACHINE, HKCU or HKEY_CURRENT_USER (any case); at least one subkey,
 * none empty. 0, or -1 with why (size > 0) saying what is wrong. */
int registry_key_parse(const char *key, HKEY *root, wchar_t subkey[REGISTRY_KEY_MAX + 1],
                       char *why, size_t why_size);

#endif
