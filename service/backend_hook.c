/* The hook backend: the tunnel is brought up and down by commands the administrator configured
 * (--up-cmd, --down-cmd), and its traffic is read from the counters of one interface (--iface).
 * The contract with the commands is in backend.h. This file is the same on every platform:
 * when a command runs, what it is given, its deadline and its messages. Running it is
 * hook_proc.h's (hook_proc_unix.c, hook_proc_win.c); the counters are iface.h's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "hook_proc.h"
#include "iface.h"
#include "log.h"
#include "utf8.h"

#define HOOK_TIMEOUT_MS_DEFAULT 30000u
/* Bytes of a command's stderr kept for its failure message (the "stderr tail"). */
#define HOOK_STDERR_TAIL_MAX 512
/* A failure message, NUL included: the service copies it into its own, shorter, buffer. */
#define HOOK_MESSAGE_MAX 400

#define ENV_LOCATION "PIPEMSG_LOCATION="
#define ENV_KILL_SWITCH "PIPEMSG_KILL_SWITCH="

typedef struct hook hook;

/* One command run: a process (with the pipe its stderr comes through) and its deadline. Freed
 * once both are closed, which may be after the next run has started. */
typedef struct hook_run {
  hook *h;
  backend_op op;
  hook_proc *proc;
  uv_timer_t timer;
  int open;        /* of proc and timer, not yet closed */
  bool exited;     /* exited() came (the child has been reaped) */
  bool timed_out;  /* we killed it for taking longer than timeout_ms */
  bool cancelled;  /* down() came first: its result is dropped and down_cmd follows */
  bool killed;     /* hook_proc_kill was called; the next timer tick gives up waiting */
  bool ended;      /* run_end ran: handles are closing */
  char tail[HOOK_STDERR_TAIL_MAX]; /* ring: byte i of the stream is at i % MAX */
  size_t tail_total;
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

/* The words of cmd, split on spaces, in one allocation (the pointers, then the strings).
 * NULL when out of memory. */
static char **cmd_words(const char *cmd) {
  size_t len = strlen(cmd) + 1;
  size_t n = count_words(cmd);
  char **argv = malloc((n + 1) * sizeof(*argv) + len);
  char *text;
  if (argv == NULL)
    return NULL;
  text = (char *)(argv + n + 1);
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

/* The request as environment entries, in one allocation: the request travels only there, so a
 * peer's location never becomes part of a command line. NULL when out of memory. */
static char **request_vars(const char *location, bool kill_switch) {
  size_t loc_size = strlen(ENV_LOCATION) + strlen(location) + 1;
  size_t ks_size = strlen(ENV_KILL_SWITCH) + 2;
  char **vars = malloc(3 * sizeof(*vars) + loc_size + ks_size);
  char *text;
  if (vars == NULL)
    return NULL;
  text = (char *)(vars + 3);
  snprintf(text, loc_size, "%s%s", ENV_LOCATION, location);
  vars[0] = text;
  text += loc_size;
  snprintf(text, ks_size, "%s%c", ENV_KILL_SWITCH, kill_switch ? '1' : '0');
  vars[1] = text;
  vars[2] = NULL;
  return vars;
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
    uint32_t cp = 0;
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
    u = utf8_decode(raw + i, len - i, &cp);
    /* The message goes into LastError and a StateChanged event, which XML clients are sent
     * too: XML 1.0 has no U+FFFE or U+FFFF, so they go with the control bytes. */
    if (u == 0 || (u == 1 && (raw[i] < 0x20 || raw[i] == 0x7f)) || cp == 0xfffe ||
        cp == 0xffff) {
      line[n++] = raw[i] == '\t' ? ' ' : '?';
      i += u > 0 ? u : 1;
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

static void run_release(hook_run *run) {
  hook *h = run->h;
  if (--run->open == 0)
    free(run);
  hook_release(h);
}

static void on_run_timer_closed(uv_handle_t *handle) {
  run_release(handle->data);
}

static void on_run_proc_closed(void *arg) {
  run_release(arg);
}

static void run_close(hook_run *run) {
  hook_proc_close(run->proc);
  uv_close((uv_handle_t *)&run->timer, on_run_timer_closed);
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

static void on_run_output(void *arg, const char *data, size_t len) {
  tail_append(arg, data, len);
}

static void on_run_exit(void *arg, int64_t status, int signo) {
  hook_run *run = arg;
  char msg[HOOK_MESSAGE_MAX];
  bool ok = status == 0 && signo == 0 && !run->timed_out;
  run->exited = true;
  log_msg(LVL_DEBUG, "backend %s exited pid=%ld status=%lld signal=%d%s%s", op_cmd_name(run->op),
          hook_proc_pid(run->proc), (long long)status, signo, run->timed_out ? " timed_out" : "",
          run->cancelled ? " cancelled" : "");
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
    /* A cancelled run was asked to stop and had its time to go; any other ran out of time. */
    run->timed_out = !run->cancelled;
    run->killed = true;
    hook_proc_kill(run->proc);
    uv_timer_start(&run->timer, on_run_timer, h->timeout_ms, 0);
    return;
  }
  /* Still there timeout_ms after the kill (stuck in the kernel): stop waiting for it, so the
   * service is not stuck too. It will not be reaped once its handle is closed. */
  snprintf(msg, sizeof(msg), "%s did not exit %u ms after %s", op_cmd_name(run->op),
           h->timeout_ms, hook_proc_kill_name);
  run_end(run, msg);
}

static const hook_proc_callbacks run_callbacks = {on_run_output, on_run_exit,
                                                  on_run_proc_closed};

/* Starts the command for op. 0: done() follows (for a spawn failure too, through the later
 * timer); <0: nothing started and nothing follows. */
static int run_start(hook *h, backend_op op) {
  const char *cmd = op == BACKEND_UP ? h->up_cmd : h->down_cmd;
  char why[HOOK_MESSAGE_MAX - 16];
  char msg[HOOK_MESSAGE_MAX];
  hook_run *run = calloc(1, sizeof(*run));
  char **argv = h->shell ? NULL : cmd_words(cmd);
  char **vars = request_vars(h->location != NULL ? h->location : "", h->kill_switch);
  hook_cmd c = {h->shell ? cmd : NULL, argv, (const char *const *)vars};
  int rc = UV_ENOMEM;

  if (run == NULL || (!h->shell && argv == NULL) || vars == NULL ||
      (rc = hook_proc_new(h->loop, &run_callbacks, run, &run->proc)) < 0)
    goto fail;
  run->h = h;
  run->op = op;
  uv_timer_init(h->loop, &run->timer);
  run->timer.data = run;
  run->open = 2;
  h->open += 2;
  rc = hook_proc_start(run->proc, &c, why, sizeof(why));
  if (rc < 0) {
    snprintf(msg, sizeof(msg), "%s %s", op_cmd_name(op), why);
    run->ended = true;
    run_close(run);
    defer_done(h, op, -1, msg);
  } else {
    log_msg(LVL_DEBUG, "backend %s started pid=%ld", op_cmd_name(op), hook_proc_pid(run->proc));
    /* The loop's clock dates from its last iteration; the command's time starts now. */
    uv_update_time(h->loop);
    uv_timer_start(&run->timer, on_run_timer, h->timeout_ms, 0);
    h->cur = run;
  }
  free(argv);
  free(vars);
  return 0;

fail:
  free(run);
  free(argv);
  free(vars);
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
     * it had already been killed, the timer restarts for the last wait). */
    log_msg(LVL_DEBUG, "backend up-cmd cancelled pid=%ld: %s, then down-cmd",
            hook_proc_pid(h->cur->proc), hook_proc_stop_name);
    h->cur->cancelled = true;
    h->down_after = true;
    hook_proc_stop(h->cur->proc);
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
    hook_proc_kill(h->cur->proc);
    uv_timer_start(&h->cur->timer, on_run_timer, h->timeout_ms, 0);
  }
  uv_close((uv_handle_t *)&h->later, on_later_closed);
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
