#ifndef PIPEMSG_CLI_H
#define PIPEMSG_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "pipemsg/pipemsg.h"

/* Exit statuses shared by every subcommand; a script tells the result classes apart by
 * them (cli_exit_status). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_RESULT 1           /* a service error: any other Result, or --wait failed */
#define CLI_EXIT_USAGE 2            /* bad command line, caught before anything is sent */
#define CLI_EXIT_TRANSPORT 3        /* no answer: ConnectionTimeout, Timeout, TransportError */
#define CLI_EXIT_BAD_REQUEST 4      /* BadRequest */
#define CLI_EXIT_TOO_MANY 5         /* TooManyRequests */
#define CLI_EXIT_NOT_AUTHORIZED 6   /* TransportNotAuthorized, either side refusing the other */

/* The exit status for a Result (the service's or pm_client_result's). */
int cli_exit_status(const char *result);
/* The exit-status lines of --help and pipemsg(1). */
extern const char cli_exit_help[];

/* Each subcommand's --help text, in parts (NULL-terminated) because the lines about finding
 * and trusting the service come from the platform (cli_unix.c, cli_win.c); the man page is
 * made of them too. */
extern const char *const cmd_call_usage[];
extern const char *const cmd_watch_usage[];
extern const char *const cmd_commands_usage[];
extern const char *const cmd_completion_usage[];
void cli_print_text(const char *const *parts, FILE *f);

/* What messages start with: "pipemsg call" and so on once main has found the subcommand. */
extern const char *cli_prog;

int cmd_call(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_commands(int argc, char **argv);
int cmd_describe(int argc, char **argv);
int cmd_completion(int argc, char **argv);

/* Parses a decimal number in [min, max] for option opt; prints a message and returns -1 if it
 * is not one. */
int cli_parse_number(const char *opt, const char *s, unsigned long long min,
                     unsigned long long max, unsigned long long *out);

/* Option values shared by the subcommands that open a pipe. */
enum { CLI_OPT_NAMES_FILE = 200, CLI_OPT_NAMES_REGISTRY, CLI_OPT_EXPECT_OWNER };

/* Which pipe to open and whom to trust serving it, from the options of call and watch. */
typedef struct cli_pipe {
  const char *pipe;                       /* name or path; may point into named */
  char named[PM_PIPE_PATH_MAX + 1];       /* found by --names-file or --names-registry */
  long long expect_owner_uid;             /* see pm_client_options */
  char expect_owner_sid[PM_PEER_SID_MAX]; /* Windows: "" for none */
} cli_pipe;

/* Handles --names-file (file_key names the pipe in the file), --names-registry (registry_value
 * names it under the key) and --expect-owner; prints a message and returns -1 on a bad value. */
int cli_pipe_option(int opt, const char *arg, const char *file_key, const char *registry_value,
                    cli_pipe *p);

/* Reads the pipe path stored under key ("command-pipe" or "event-pipe") in a names file written
 * by pipemsgd --names-file; prints a message and returns -1 on failure. */
int cli_names_file(const char *file, const char *key, char *buf, size_t size);

/* Prints "pipemsg SUB: PATH: RESULT: reason" for an error rc of a client on pipe, the pipe's
 * resolved path shown (pm_pipe_path); returns the exit status for it. */
int cli_pipe_error(const char *sub, const char *pipe, int rc);

/* ---- what the service says ---------------------------------------------------------------- */

/* A service's strings (a Result, a Message, an event's Type, a Disconnect's Reason, command
 * docs) reach the terminal escaped, so that a hostile or broken service cannot retitle the
 * window, clear the screen or forge a line. Plain text goes through utf8_escape (pipemsgd's
 * log escaping: \xNN for control bytes, C1 and invisible characters and invalid UTF-8, \\ for
 * the backslash); JSON and XML keep their own escapes, which stand for the same characters. */

/* Writes s escaped to f (NULL: nowhere); returns the escaped length, for padding columns. */
size_t cli_put_text(FILE *f, const char *s);
/* s escaped into buf (size > 0), cut before a character or escape that would not fit. */
const char *cli_text(const char *s, char *buf, size_t size);
/* Writes an encoded message (text, n bytes: JSON or XML) with DEL, the C1 controls and the
 * invisible characters as the encoding's escapes (JSON \u0080, XML &#128;; in XML also a raw
 * tab or newline): what is written decodes to the same message. */
void cli_put_encoded(FILE *f, const char *text, size_t n, pm_encoding enc);
/* json_dumpf(j, f, flags) through cli_put_encoded; -1 when out of memory (nothing written). */
int cli_put_json(FILE *f, const json_t *j, size_t flags);

/* ---- the platform (cli_unix.c, cli_win.c) ------------------------------------------------ */

/* The --names-file/--names-registry/--expect-owner lines of call's and watch's --help. */
extern const char cli_call_pipe_help[];
extern const char cli_watch_pipe_help[];

/* Once, before anything else (Unix: a service that closes early must not kill us with
 * SIGPIPE). */
void cli_platform_init(void);

/* Reads the REG_SZ value under the registry key (HKLM\... or HKCU\..., as pipemsgd
 * --names-registry writes it); prints a message and returns -1 on failure, and always on Unix,
 * which has no registry. */
int cli_names_registry(const char *key, const char *value, char *buf, size_t size);

/* --expect-owner: a uid on Unix; an account name or a SID on Windows (into p); prints a
 * message and returns -1 on a bad value. */
int cli_expect_owner(const char *arg, cli_pipe *p);

/* Whether stdout is a terminal (call --wait shows its progress only there). */
int cli_stdout_is_tty(void);

/* Stopping watch: cli_stop_init before any thread starts (Unix: the signals are blocked there
 * and inherited), cli_stop_wait until Ctrl-C (SIGINT/SIGTERM on Unix; Ctrl-C or Ctrl-Break
 * on Windows) or cli_stop_post from any thread (CLI_STOP_SIGNAL), until timeout_ms pass
 * (0: no limit; CLI_STOP_TIMEOUT), or, on Unix, until stdout is a pipe nobody reads any more
 * (CLI_STOP_OUTPUT; Windows finds that out at the next write). */
enum { CLI_STOP_SIGNAL, CLI_STOP_TIMEOUT, CLI_STOP_OUTPUT };
int cli_stop_init(void);
int cli_stop_wait(unsigned long long timeout_ms);
void cli_stop_post(void);

#endif
