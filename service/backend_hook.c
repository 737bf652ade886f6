/* The hook backend: the tunnel is brought up and down by commands the administrator configured
 * (--up-cmd, --down-cmd), and its traffic is read from the kernel's counters of one interface
 * (--iface). The contract with the commands is in backend.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "utf8.h"

/* Not declared by <unistd.h> without _GNU_SOURCE. */
extern char **environ;

#define HOOK_TIMEOUT_MS_DEFAULT 30000u
/* Bytes of a command's stderr kept for its failure message (the "stderr tail"). */
#define HOOK_STDERR_TAIL_MAX 512
/* A failure message, NUL included: the service copies it into its own, shorter, buffer. */
#define HOOK_MESSAGE_MAX 400
#define HOOK_READ_SIZE 4096
/* IFNAMSIZ - 1: the longest interface name Linux accepts. */
#define IFACE_NAME_MAX 15
/* A decimal uint64_t and its newline. */
#define COUNTER_TEXT_MAX 32

#define ENV_LOCATION "PIPEMSG_LOCATION="
#define ENV_KILL_SWITCH "PIPEMSG_KILL_SWITCH="

typedef struct hook hook;

/* One command run: a process, the pipe its stderr comes through and its deadline. Freed once
 * all three handles are closed, which may be after the next run has started. */
typedef struct hook_run {
  hook *h;
  backend_op op;
  uv_process_t proc;
  uv_pipe_t err;
  uv_timer_t timer;
  int open;        /* handles not yet closed */
  bool exited;     /* exit_cb ran (the child has been reaped) */
  bool timed_out;  /* we killed it for taking longer than timeout_ms */
  bool cancelled;  /* down() came first: its result is dropped and down_cmd follows */
  bool killed;     /* SIGKILL was sent; the next timer tick gives up waiting */
  bool ended;      /* run_end ran: handles are closing */
  char tail[HOOK_STDERR_TAIL_MAX]; /* ring: byte i of the stream is at i % MAX */
  size_t tail_total;
  char readbuf[HOOK_READ_SIZE];
} hook_run;

struct hook {
  backend base;
  uv_loop_t *loop;
  char *up_cmd;
  char *down_cmd; /* NULL: down succeeds at once */
  char *iface;
  bool shell;
  unsigned timeout_ms;
  char *location; /* of the last up(), for both commands */
  bool kill_switch;
  hook_run *cur;   /* the command running for the operation in progress */
  bool down_after; /* cur is a cancelled up: down_cmd starts when it has gone */
  /* Results known at once (spawn failure, no down_cmd) wait here for a loop iteration, so
   * done() never runs inside up() or down(). */
  uv_timer_t later;
  bool later_pending;
  backend_op later_op;
  int later_status;
  char later_msg[HOOK_MESSAGE_MAX];
  int open; /* handles not yet closed: later and every run's */
  bool closing;
  void (*close_cb)(void *arg);
  void *close_arg;
};

static void on_run_timer(uv_timer_t *t);
static void on_later(uv_timer_t *t);
static int down_begin(hook *h);

static const char *op_cmd_name(backend_op op) {
  return op == BACKEND_UP ? "up-cmd" : "down-cmd";
}

/* ---- commands and their environment ----------------------------------------------------- */

static size_t count_words(const char *cmd) {
  size_t n = 0;
  for (const char *p = cmd; *p != '\0'; p++)
    if (*p != ' ' && (p == cmd || p[-1] == ' '))
      n++;
  return n;
}

/* argv for cmd in one allocation (the pointers, then the strings): split on spaces, or
 * /bin/sh -c cmd. NULL when out of memory. */
static char **cmd_argv(const char *cmd, bool shell) {
  static const char sh[] = "/bin/sh\0-c";
  size_t len = strlen(cmd) + 1;
  size_t n = shell ? 3 : count_words(cmd);
  char **argv = malloc((n + 1) * sizeof(*argv) + sizeof(sh) + len);
  char *text;
  if (argv == NULL)
    return NULL;
  text = (char *)(argv + n + 1);
  if (shell) {
    memcpy(text, sh, sizeof(sh));
    memcpy(text + sizeof(sh), cmd, len);
    argv[0] = text;
    argv[1] = text + strlen(text) + 1;
    argv[2] = text + sizeof(sh);
    argv[3] = NULL;
    return argv;
  }
  memcpy(text, cmd, len);
  n = 0;
  for (char *p = text; *p != '\0'; p++) {
    if (*p == ' ')
      *p = '\0';
    else if (p == text || p[-1] == '\0')
      argv[n++] = p;
  }
  argv[n] = NULL;
  return argv;
}

static bool env_is_ours(const char *entry) {
  return strncmp(entry, ENV_LOCATION, strlen(ENV_LOCATION)) == 0 ||
         strncmp(entry, ENV_KILL_SWITCH, strlen(ENV_KILL_SWITCH)) == 0;
}

/* The service's environment plus the request, in one allocation. The request travels only
 * here: a peer's location never becomes part of a command line. NULL when out of memory. */
static char **cmd_env(const char *location, bool kill_switch) {
  size_t n = 0, loc_len = strlen(location);
  size_t ks_len = strlen(ENV_KILL_SWITCH) + 2;
  size_t loc_size = strlen(ENV_LOCATION) + loc_len + 1;
  char **env, *text;
  size_t k = 0;

  while (environ[n] != NULL)
    n++;
  env = malloc((n + 3) * sizeof(*env) + loc_size + ks_len);
  if (env == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (!env_is_ours(environ[i]))
      env[k++] = environ[i];
  text = (char *)(env + n + 3);
  snprintf(text, loc_size, "%s%s", ENV_LOCATION, location);
  env[k++] = text;
  text += loc_size;
  snprintf(text, ks_len, "%s%c", ENV_KILL_SWITCH, kill_switch ? '1' : '0');
  env[k++] = text;
  env[k] = NULL;
  return env;
}

/* ---- the stderr tail -------------------------------------------------------------------- */

static void tail_append(hook_run *run, const char *data, size_t len) {
  for (size_t i = 0; i < len; i++)
    run->tail[run->tail_total++ % HOOK_STDERR_TAIL_MAX] = data[i];
}

static bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The tail as one line of at most room bytes (plus NUL): trimmed, line breaks folded to
 * " | ", control bytes and broken UTF-8 as '?', its start cut (behind "...") if too long. */
static void tail_text(const hook_run *run, char *out, size_t room) {
  unsigned char raw[HOOK_STDERR_TAIL_MAX];
  char line[3 * HOOK_STDERR_TAIL_MAX + 1];
  size_t len = run->tail_total < HOOK_STDERR_TAIL_MAX ? run->tail_total : HOOK_STDERR_TAIL_MAX;
  size_t first = run->tail_total - len, i = 0, n = 0;

  for (size_t k = 0; k < len; k++)
    raw[k] = (unsigned char)run->tail[(first + k) % HOOK_STDERR_TAIL_MAX];
  if (first > 0) /* the ring cut the stream: skip a torn UTF-8 sequence */
    while (i < len && (raw[i] & 0xc0) == 0x80)
      i++;
  while (i < len && is_space(raw[i]))
    i++;
  while (len > i && is_space(raw[len - 1]))
    len--;
  while (i < len) {
    size_t u;
    if (raw[i] == '\n' || raw[i] == '\r') {
      while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
      while (i < len && is_space(raw[i]))
        i++;
      memcpy(line + n, " | ", 3);
      n += 3;
      continue;
    }
    u = utf8_len(raw + i, len - i);
    if (u == 0 || (u == 1 && (raw[i] < 0x20 || raw[i] == 0x7f))) {
      line[n++] = raw[i] == '\t' ? ' ' : '?';
      i++;
      continue;
    }
    memcpy(line + n, raw + i, u);
    n += u;
    i += u;
  }
  line[n] = '\0';
  if (n <= room) {
    memcpy(out, line, n + 1);
    return;
  }
  if (room < 4) {
    out[0] = '\0';
    return;
  }
  i = n - (room - 3);
  while (i < n && ((unsigned char)line[i] & 0xc0) == 0x80)
    i++;
  memcpy(out, "...", 3);
  memcpy(out + 3, line + i, n - i + 1);
}

static void run_message(const hook_run *run, int64_t status, int signo, char *msg) {
  const char *name = op_cmd_name(run->op);
  size_t used;
  if (run->timed_out)
    snprintf(msg, HOOK_MESSAGE_MAX, "%s timed out after %u ms", name, run->h->timeout_ms);
  else if (signo != 0)
    snprintf(msg, HOOK_MESSAGE_MAX, "%s was killed by signal %d", name, signo);
  else
    snprintf(msg, HOOK_MESSAGE_MAX, "%s exited with status %lld", name, (long long)status);
  used = strlen(msg);
  if (run->tail_total > 0 && used + 2 + 4 < HOOK_MESSAGE_MAX) {
    tail_text(run, msg + used + 2, HOOK_MESSAGE_MAX - 1 - used - 2);
    if (msg[used + 2] != '\0')
      memcpy(msg + used, ": ", 2);
  }
}

/* ---- runs ------------------------------------------------------------------------------- */

static void hook_release(hook *h) {
  if (--h->open > 0 || !h->closing)
    return;
  if (h->close_cb != NULL)
    h->close_cb(h->close_arg);
  free(h->up_cmd);
  free(h->down_cmd);
  free(h->iface);
  free(h->location);
  free(h);
}

static void on_run_handle_closed(uv_handle_t *handle) {
  hook_run *run = handle->data;
  hook *h = run->h;
  if (--run->open == 0)
    free(run);
  hook_release(h);
}

/* The command runs in its own session (UV_PROCESS_DETACHED), so its pid names its process
 * group: a shell and whatever it started are signalled together. */
static void run_signal(hook_run *run, int signo) {
  if (run->exited || run->proc.pid <= 0)
    return;
  if (kill(-run->proc.pid, signo) != 0)
    kill(run->proc.pid, signo);
}

static void run_close(hook_run *run) {
  uv_close((uv_handle_t *)&run->proc, on_run_handle_closed);
  uv_close((uv_handle_t *)&run->err, on_run_handle_closed);
  uv_close((uv_handle_t *)&run->timer, on_run_handle_closed);
}

static void defer_done(hook *h, backend_op op, int status, const char *msg) {
  h->later_pending = true;
  h->later_op = op;
  h->later_status = status;
  snprintf(h->later_msg, sizeof(h->later_msg), "%s", msg != NULL ? msg : "");
  uv_timer_start(&h->later, on_later, 0, 0);
}

/* The run is over (exited, or abandoned): release it and report, or go on with the down
 * that cancelled it. msg is NULL on success. */
static void run_end(hook_run *run, const char *msg) {
  hook *h = run->h;
  backend_op op = run->op;
  bool cancelled = run->cancelled;
  if (run->ended)
    return;
  run->ended = true;
  if (h->cur == run)
    h->cur = NULL;
  run_close(run);
  if (h->closing)
    return;
  if (cancelled) {
    h->down_after = false;
    if (down_begin(h) < 0)
      defer_done(h, BACKEND_DOWN, -1, "down-cmd could not start: out of memory");
    return;
  }
  h->base.done(&h->base, op, msg == NULL ? 0 : -1, msg);
}

/* What the command wrote just before it exited may still sit in the pipe: read it now rather
 * than wait for EOF, which a leftover grandchild holding stderr could delay forever. */
static void run_drain(hook_run *run) {
  uv_os_fd_t fd;
  char buf[HOOK_READ_SIZE];
  ssize_t n;
  if (uv_fileno((uv_handle_t *)&run->err, &fd) != 0)
    return;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  while ((n = read(fd, buf, sizeof(buf))) > 0)
    tail_append(run, buf, (size_t)n);
}

static void on_run_exit(uv_process_t *proc, int64_t status, int signo) {
  hook_run *run = proc->data;
  char msg[HOOK_MESSAGE_MAX];
  bool ok = status == 0 && signo == 0 && !run->timed_out;
  run->exited = true;
  log_msg(LVL_DEBUG, "backend %s exited pid=%d status=%lld signal=%d%s%s", op_cmd_name(run->op),
          proc->pid, (long long)status, signo, run->timed_out ? " timed_out" : "",
          run->cancelled ? " cancelled" : "");
  run_drain(run);
  if (!ok)
    run_message(run, status, signo, msg);
  run_end(run, ok ? NULL : msg);
}

static void on_run_timer(uv_timer_t *t) {
  hook_run *run = t->data;
  hook *h = run->h;
  char msg[HOOK_MESSAGE_MAX];
  if (run->exited)
    return;
  if (!run->killed) {
    /* A cancelled run was sent SIGTERM and had its time to go; any other ran out of time. */
    run->timed_out = !run->cancelled;
    run->killed = true;
    run_signal(run, SIGKILL);
    uv_timer_start(&run->timer, on_run_timer, h->timeout_ms, 0);
    return;
  }
  /* Still there timeout_ms after SIGKILL (stuck in the kernel): stop waiting for it, so the
   * service is not stuck too. libuv will not reap it once its handle is closed. */
  snprintf(msg, sizeof(msg), "%s did not exit %u ms after SIGKILL", op_cmd_name(run->op),
           h->timeout_ms);
  run_end(run, msg);
}

static void on_err_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  hook_run *run = handle->data;
  (void)suggested;
  *buf = uv_buf_init(run->readbuf, sizeof(run->readbuf));
}

static void on_err_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
  hook_run *run = stream->data;
  if (n > 0)
    tail_append(run, buf->base, (size_t)n);
  else if (n < 0)
    uv_read_stop(stream);
}

/* Starts the command for op. 0: done() follows (for a spawn failure too, through the later
 * timer); <0: nothing started and nothing follows. */
static int run_start(hook *h, backend_op op) {
  const char *cmd = op == BACKEND_UP ? h->up_cmd : h->down_cmd;
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  char msg[HOOK_MESSAGE_MAX];
  hook_run *run = calloc(1, sizeof(*run));
  char **argv = cmd_argv(cmd, h->shell);
  char **env = cmd_env(h->location != NULL ? h->location : "", h->kill_switch);
  int rc;

  if (run == NULL || argv == NULL || env == NULL) {
    rc = UV_ENOMEM;
    goto fail;
  }
  run->h = h;
  run->op = op;
  uv_pipe_init(h->loop, &run->err, 0);
  run->err.data = run;
  uv_timer_init(h->loop, &run->timer);
  run->timer.data = run;

  memset(&o, 0, sizeof(o));
  memset(stdio, 0, sizeof(stdio));
  stdio[0].flags = UV_IGNORE; /* libuv opens /dev/null for ignored stdio */
  stdio[1].flags = UV_IGNORE;
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t *)&run->err;
  o.exit_cb = on_run_exit;
  o.file = argv[0];
  o.args = argv;
  o.env = env;
  o.flags = UV_PROCESS_DETACHED;
  o.stdio_count = 3;
  o.stdio = stdio;
  rc = uv_spawn(h->loop, &run->proc, &o);
  /* uv_spawn initialises the handle even when it fails, and it must be closed either way. */
  run->proc.data = run;
  run->open = 3;
  h->open += 3;
  if (rc < 0) {
    snprintf(msg, sizeof(msg), "%s could not start %s: %s", op_cmd_name(op), argv[0],
             uv_strerror(rc));
    run->ended = true;
    run_close(run);
    defer_done(h, op, -1, msg);
  } else {
    /* Without stderr the failure message is only shorter: not a reason to fail. */
    log_msg(LVL_DEBUG, "backend %s started pid=%d", op_cmd_name(op), run->proc.pid);
    uv_read_start((uv_stream_t *)&run->err, on_err_alloc, on_err_read);
    /* The loop's clock dates from its last iteration; the command's time starts now. */
    uv_update_time(h->loop);
    uv_timer_start(&run->timer, on_run_timer, h->timeout_ms, 0);
    h->cur = run;
  }
  free(argv);
  free(env);
  return 0;

fail:
  free(run);
  free(argv);
  free(env);
  return rc;
}

/* ---- the backend ------------------------------------------------------------------------ */

static void on_later(uv_timer_t *t) {
  hook *h = t->data;
  char msg[HOOK_MESSAGE_MAX];
  /* Copied: done() may start another operation, which may defer its own result. */
  memcpy(msg, h->later_msg, sizeof(msg));
  h->later_pending = false;
  h->base.done(&h->base, h->later_op, h->later_status, h->later_status < 0 ? msg : NULL);
}

static int down_begin(hook *h) {
  if (h->down_cmd == NULL) {
    log_msg(LVL_DEBUG, "backend no down-cmd: down at once");
    defer_done(h, BACKEND_DOWN, 0, NULL);
    return 0;
  }
  return run_start(h, BACKEND_DOWN);
}

static int hook_up(backend *b, const char *location, bool kill_switch) {
  hook *h = (hook *)b;
  char *copy;
  if (h->closing || h->cur != NULL || h->down_after || h->later_pending)
    return UV_EBUSY;
  copy = strdup(location != NULL ? location : "");
  if (copy == NULL)
    return UV_ENOMEM;
  free(h->location);
  h->location = copy;
  h->kill_switch = kill_switch;
  return run_start(h, BACKEND_UP);
}

static int hook_down(backend *b) {
  hook *h = (hook *)b;
  if (h->closing || h->down_after || (h->cur != NULL && h->cur->op == BACKEND_DOWN) ||
      (h->later_pending && h->later_op == BACKEND_DOWN))
    return UV_EBUSY;
  if (h->cur != NULL) {
    /* The up command is still running: ask it to stop, and insist after timeout_ms (even if
     * it had already been given SIGKILL, the timer restarts for the last wait). */
    log_msg(LVL_DEBUG, "backend up-cmd cancelled pid=%d: SIGTERM, then down-cmd",
            h->cur->proc.pid);
    h->cur->cancelled = true;
    h->down_after = true;
    run_signal(h->cur, SIGTERM);
    uv_update_time(h->loop);
    uv_timer_start(&h->cur->timer, on_run_timer, h->timeout_ms, 0);
    return 0;
  }
  if (h->later_pending) {
    /* An up's result not yet delivered: like a running up, it is superseded by this down. */
    uv_timer_stop(&h->later);
    h->later_pending = false;
  }
  return down_begin(h);
}

static void hook_traffic(backend *b, uint64_t *sent, uint64_t *received) {
  hook *h = (hook *)b;
  *sent = 0;
  *received = 0;
  if (h->iface != NULL)
    backend_iface_counters(h->iface, sent, received);
}

static void on_later_closed(uv_handle_t *handle) {
  hook_release(handle->data);
}

static void hook_close(backend *b, void (*cb)(void *arg), void *arg) {
  hook *h = (hook *)b;
  h->closing = true;
  h->close_cb = cb;
  h->close_arg = arg;
  if (h->cur != NULL) {
    /* Reaped in on_run_exit, so no zombie is left behind; the timer bounds the wait. */
    h->cur->killed = true;
    run_signal(h->cur, SIGKILL);
    uv_timer_start(&h->cur->timer, on_run_timer, h->timeout_ms, 0);
  }
  uv_close((uv_handle_t *)&h->later, on_later_closed);
}

static bool iface_name_valid(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > IFACE_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return false;
  return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") ==
         len;
}

static int read_counter(const char *iface, const char *name, uint64_t *value) {
  char path[64 + IFACE_NAME_MAX];
  char text[COUNTER_TEXT_MAX];
  char *end;
  unsigned long long v;
  ssize_t n;
  int fd, err;

  snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", iface, name);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  n = read(fd, text, sizeof(text) - 1);
  err = errno;
  close(fd);
  if (n <= 0)
    return n < 0 ? -err : -EIO;
  text[n] = '\0';
  errno = 0;
  v = strtoull(text, &end, 10);
  if (end == text || errno != 0 || (*end != '\n' && *end != '\0'))
    return -EIO;
  *value = v;
  return 0;
}

int backend_iface_counters(const char *iface, uint64_t *tx, uint64_t *rx) {
  uint64_t t = 0, r = 0;
  int rc = -EINVAL;
  *tx = 0;
  *rx = 0;
  if (iface == NULL || !iface_name_valid(iface))
    return rc;
  rc = read_counter(iface, "tx_bytes", &t);
  if (rc == 0)
    rc = read_counter(iface, "rx_bytes", &r);
  if (rc < 0)
    return rc;
  *tx = t;
  *rx = r;
  return 0;
}

int backend_hook_check(const backend_hook_options *opts, char *why, size_t size) {
  if (opts->up_cmd == NULL || count_words(opts->up_cmd) == 0)
    snprintf(why, size, "--up-cmd is required");
  else if (opts->down_cmd != NULL && count_words(opts->down_cmd) == 0)
    snprintf(why, size, "--down-cmd is empty");
  else if (opts->iface != NULL && !iface_name_valid(opts->iface))
    snprintf(why, size, "--iface is not a valid interface name");
  else
    return 0;
  return -EINVAL;
}

void backend_hook_set_timeout(backend *b, unsigned timeout_ms) {
  ((hook *)b)->timeout_ms = timeout_ms != 0 ? timeout_ms : HOOK_TIMEOUT_MS_DEFAULT;
}

int backend_hook_new(uv_loop_t *loop, const backend_hook_options *opts, backend **out) {
  hook *h;
  char why[64];
  if (backend_hook_check(opts, why, sizeof(why)) < 0)
    return -EINVAL;
  h = calloc(1, sizeof(*h));
  if (h == NULL)
    return -ENOMEM;
  h->up_cmd = strdup(opts->up_cmd);
  h->down_cmd = opts->down_cmd != NULL ? strdup(opts->down_cmd) : NULL;
  h->iface = opts->iface != NULL ? strdup(opts->iface) : NULL;
  if (h->up_cmd == NULL || (opts->down_cmd != NULL && h->down_cmd == NULL) ||
      (opts->iface != NULL && h->iface == NULL))
    goto fail;
  h->base.name = "hook";
  h->base.up = hook_up;
  h->base.down = hook_down;
  h->base.traffic = hook_traffic;
  h->base.close = hook_close;
  h->loop = loop;
  h->shell = opts->shell;
  h->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : HOOK_TIMEOUT_MS_DEFAULT;
  uv_timer_init(loop, &h->later);
  h->later.data = h;
  h->open = 1;
  *out = &h->base;
  return 0;

fail:
  free(h->up_cmd);
  free(h->down_cmd);
  free(h->iface);
  free(h);
  return -ENOMEM;
}
