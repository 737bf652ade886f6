#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipemsg/pipemsg.h"

#include "cli.h"

static const char usage_text[] =
    "Usage: pipemsg COMMAND [OPTION]... [ARG]...\n"
    "Drive and watch a pipemsg service.\n"
    "\n"
    "Commands:\n"
    "  call      send one request on the command pipe and print the response\n"
    "  watch     attach to the event pipe and print events as they arrive\n"
    "\n"
    "  pipemsg --help | --version; pipemsg COMMAND --help for a command's options.\n";

int cli_parse_number(const char *opt, const char *s, unsigned long long min,
                     unsigned long long max, unsigned long long *out) {
  char *end;
  unsigned long long v;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
    fprintf(stderr, "pipemsg: %s: expected a number from %llu to %llu, got '%s'\n", opt, min, max,
            s);
    return -1;
  }
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  /* A service that closes early must not kill us with SIGPIPE; the write error is handled. */
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    fputs(usage_text, stderr);
    return CLI_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage_text, stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("pipemsg %s (protocol %d)\n", PM_VERSION, PM_PROTOCOL_VERSION);
    return CLI_EXIT_OK;
  }
  if (strcmp(argv[1], "call") == 0)
    return cmd_call(argc - 1, argv + 1);
  if (strcmp(argv[1], "watch") == 0)
    return cmd_watch(argc - 1, argv + 1);
  fprintf(stderr, "pipemsg: unknown command '%s'\nTry 'pipemsg --help'.\n", argv[1]);
  return CLI_EXIT_USAGE;
}
