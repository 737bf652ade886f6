#ifndef PIPEMSG_CLI_H
#define PIPEMSG_CLI_H

#include <stddef.h>

/* Exit statuses shared by every subcommand. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_RESULT 1    /* the service answered, with a Result other than Ok */
#define CLI_EXIT_USAGE 2     /* bad command line */
#define CLI_EXIT_TRANSPORT 3 /* no answer: ConnectionTimeout, Timeout, TransportError */

/* Each subcommand's --help text; the man page is made of them too. */
extern const char cmd_call_usage[];
extern const char cmd_watch_usage[];

int cmd_call(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Parses a decimal number in [min, max] for option opt; prints a message and returns -1 if it
 * is not one. */
int cli_parse_number(const char *opt, const char *s, unsigned long long min,
                     unsigned long long max, unsigned long long *out);

/* Option values shared by the subcommands that open a pipe. */
enum { CLI_OPT_NAMES_FILE = 200, CLI_OPT_EXPECT_OWNER };

/* Handles --names-file (key names the pipe in the file; *pipe then points into named) and
 * --expect-owner; prints a message and returns -1 on a bad value. */
int cli_pipe_option(int opt, const char *arg, const char *key, char *named, size_t size,
                    const char **pipe, long long *expect_owner);

/* Reads the pipe path stored under key ("command-pipe" or "event-pipe") in a names file written
 * by pipemsgd --names-file; prints a message and returns -1 on failure. */
int cli_names_file(const char *file, const char *key, char *buf, size_t size);

#endif
