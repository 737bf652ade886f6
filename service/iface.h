#ifndef PIPEMSGD_IFACE_H
#define PIPEMSGD_IFACE_H

#include <stdbool.h>

/* The network interface behind --iface, by the platform's own means: iface_linux.c reads
 * /sys/class/net/NAME/statistics, iface_win.c asks iphlpapi (GetIfEntry2) for the adapter of
 * that alias. backend_iface_counters (backend.h) reads the counters. */

/* Whether name can name an interface on this platform (whether one exists is not checked):
 * Linux [A-Za-z0-9_.:-]{1,15} but . and ..; Windows an alias of 1 to IFACE_ALIAS_MAX UTF-16
 * units of valid UTF-8 without control characters. */
bool iface_name_valid(const char *name);

/* The help text of --iface. */
extern const char iface_help[];

#endif
