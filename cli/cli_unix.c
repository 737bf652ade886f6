/* The Unix side of the CLI (cli.h): SIGPIPE, stopping watch on a signal, a user to trust. */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char cli_call_pipe_help[] =
    "      --names-file FILE       find the pipe in FILE, as written by pipemsgd --names-file\n"
    "      --expect-owner USER     also trust a service running as USER, a name or a uid (root\n"
    "                              and our own user always are); anyone else is refused\n";

const char cli_watch_pipe_help[] =
    "      --names-file FILE         find the pipe in FILE, as written by pipemsgd --names-file\n"
    "      --expect-owner USER       also trust a service running as USER, a name or a uid\n"
    "                                (root and our own user always are); anyone else is\n"
    "                                refused\n";

static sigset_t stop_signals;
static pthread_t main_thread;

void cli_platform_init(void) {
  /* A service that closes early must not kill us with SIGPIPE; the write error is handled. */
  signal(SIGPIPE, SIG_IGN);
}

int cli_names_registry(const char *key, const char *value, char *buf, size_t size) {
  (void)value;
  (void)buf;
  (void)size;
  fprintf(stderr, "%s: --names-registry %s: only on Windows (use --names-file here)\n", cli_prog,
          key);
  return -1;
}

int cli_expect_owner(const char *arg, cli_pipe *p) {
  unsigned long long uid;
  struct passwd *pw;
  if (arg[0] >= '0' && arg[0] <= '9') {
    if (cli_parse_number("--expect-owner", arg, 1, UINT32_MAX - 1, &uid) < 0)
      return -1;
    p->expect_owner_uid = (long long)uid;
    return 0;
  }
  errno = 0;
  pw = getpwnam(arg);
  if (pw == NULL) {
    fprintf(stderr, "%s: --expect-owner: no user '%s'%s%s\n", cli_prog, arg, errno ? ": " : "",
            errno ? strerror(errno) : "");
    return -1;
  }
  /* 0 would mean "root or our own user", which root always is anyway. */
  p->expect_owner_uid = pw->pw_uid == 0 ? 0 : (long long)pw->pw_uid;
  return 0;
}

int cli_stdout_is_tty(void) { return isatty(STDOUT_FILENO); }

/* Signals are taken synchronously by cli_stop_wait; the client's thread inherits the blocked
 * mask, so none is delivered to it. */
int cli_stop_init(void) {
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  main_thread = pthread_self();
  return pthread_sigmask(SIG_BLOCK, &stop_signals, NULL) == 0 ? 0 : -1;
}

void cli_stop_wait(void) {
  int sig;
  sigwait(&stop_signals, &sig);
}

void cli_stop_post(void) { pthread_kill(main_thread, SIGTERM); }
