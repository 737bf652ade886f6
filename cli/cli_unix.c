/* The Unix side of the CLI (cli.h): SIGPIPE, stopping watch on a signal or a closed output, a
 * user to trust. */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
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
static volatile sig_atomic_t stop_signalled;

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

static void on_stop_signal(int sig) {
  (void)sig;
  stop_signalled = 1;
}

/* The signals stay blocked except inside cli_stop_wait's ppoll; the client's thread inherits
 * the blocked mask, so none is delivered to it. */
int cli_stop_init(void) {
  struct sigaction sa;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  main_thread = pthread_self();
  if (pthread_sigmask(SIG_BLOCK, &stop_signals, NULL) != 0)
    return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGINT, &sa, NULL) == 0 && sigaction(SIGTERM, &sa, NULL) == 0 ? 0 : -1;
}

static unsigned long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

/* Asking for no events, poll still reports POLLERR on a pipe whose reader has gone, POLLHUP on
 * a hung-up terminal or socket and POLLNVAL on a closed descriptor; a file, /dev/null or a
 * live terminal never wake it. */
int cli_stop_wait(unsigned long long timeout_ms) {
  unsigned long long deadline = now_ms() + timeout_ms;
  sigset_t waiting;
  pthread_sigmask(SIG_SETMASK, NULL, &waiting);
  sigdelset(&waiting, SIGINT);
  sigdelset(&waiting, SIGTERM);
  while (!stop_signalled) {
    struct pollfd out = {.fd = STDOUT_FILENO, .events = 0};
    struct timespec ts, *limit = NULL;
    if (timeout_ms != 0) {
      unsigned long long now = now_ms();
      if (now >= deadline)
        return CLI_STOP_TIMEOUT;
      ts.tv_sec = (time_t)((deadline - now) / 1000);
      ts.tv_nsec = (long)((deadline - now) % 1000) * 1000000;
      limit = &ts;
    }
    if (ppoll(&out, 1, limit, &waiting) > 0 && out.revents != 0)
      return CLI_STOP_OUTPUT;
  }
  return CLI_STOP_SIGNAL;
}

void cli_stop_post(void) { pthread_kill(main_thread, SIGTERM); }
