/* Hook commands on Unix: uv_spawn in a session of their own (UV_PROCESS_DETACHED), so the
 * command's pid names its process group and a shell and whatever it started are signalled
 * together with kill(-pgid). stdin and stdout are /dev/null; stderr is a pipe. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hook_proc.h"

/* Not declared by <unistd.h> without _GNU_SOURCE. */
extern char **environ;

#define HOOK_READ_SIZE 4096

const char hook_proc_stop_name[] = "SIGTERM";
const char hook_proc_kill_name[] = "SIGKILL";
const char hook_proc_shell_help[] = "hook backend: run the commands with /bin/sh -c";

struct hook_proc {
  uv_process_t proc;
  uv_pipe_t err;
  hook_proc_callbacks cbs;
  void *arg;
  int open;     /* handles initialised and not yet closed: err, then proc once spawned */
  bool started; /* uv_spawn succeeded */
  bool exited;  /* exit_cb ran (the child has been reaped): its pid may be another's now */
  char readbuf[HOOK_READ_SIZE];
};

int hook_proc_new(uv_loop_t *loop, const hook_proc_callbacks *cbs, void *arg, hook_proc **out) {
  hook_proc *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return UV_ENOMEM;
  p->cbs = *cbs;
  p->arg = arg;
  uv_pipe_init(loop, &p->err, 0);
  p->err.data = p;
  p->open = 1;
  *out = p;
  return 0;
}

static bool env_replaced(const char *entry, const char *const *vars) {
  for (size_t i = 0; vars[i] != NULL; i++) {
    size_t name = strcspn(vars[i], "=") + 1;
    if (strncmp(entry, vars[i], name) == 0)
      return true;
  }
  return false;
}

/* The service's environment with vars in place of theirs: pointers only, the strings are
 * environ's and vars'. NULL when out of memory. */
static char **cmd_env(const char *const *vars) {
  size_t n = 0, k = 0, v = 0;
  char **env;
  while (environ[n] != NULL)
    n++;
  while (vars[v] != NULL)
    v++;
  env = malloc((n + v + 1) * sizeof(*env));
  if (env == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (!env_replaced(environ[i], vars))
      env[k++] = environ[i];
  for (size_t i = 0; i < v; i++)
    env[k++] = (char *)vars[i];
  env[k] = NULL;
  return env;
}

/* What the command wrote just before it exited may still sit in the pipe: read it now rather
 * than wait for EOF, which a leftover grandchild holding stderr could delay forever. */
static void drain(hook_proc *p) {
  uv_os_fd_t fd;
  char buf[HOOK_READ_SIZE];
  ssize_t n;
  if (uv_fileno((uv_handle_t *)&p->err, &fd) != 0)
    return;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  while ((n = read(fd, buf, sizeof(buf))) > 0)
    p->cbs.output(p->arg, buf, (size_t)n);
}

static void on_proc_exit(uv_process_t *proc, int64_t status, int signo) {
  hook_proc *p = proc->data;
  p->exited = true;
  drain(p);
  p->cbs.exited(p->arg, status, signo);
}

static void on_err_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  hook_proc *p = handle->data;
  (void)suggested;
  *buf = uv_buf_init(p->readbuf, sizeof(p->readbuf));
}

static void on_err_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
  hook_proc *p = stream->data;
  if (n > 0)
    p->cbs.output(p->arg, buf->base, (size_t)n);
  else if (n < 0)
    uv_read_stop(stream);
}

int hook_proc_start(hook_proc *p, const hook_cmd *cmd, char *why, size_t size) {
  static char sh[] = "/bin/sh", dash_c[] = "-c";
  char *shell_argv[] = {sh, dash_c, (char *)cmd->shell, NULL};
  char *const *argv = cmd->shell != NULL ? shell_argv : cmd->argv;
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  char **env = cmd_env(cmd->vars);
  int rc;

  memset(&o, 0, sizeof(o));
  memset(stdio, 0, sizeof(stdio));
  stdio[0].flags = UV_IGNORE; /* libuv opens /dev/null for ignored stdio */
  stdio[1].flags = UV_IGNORE;
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t *)&p->err;
  o.exit_cb = on_proc_exit;
  o.file = argv[0];
  o.args = (char **)argv;
  o.env = env;
  o.flags = UV_PROCESS_DETACHED;
  o.stdio_count = 3;
  o.stdio = stdio;
  if (env == NULL) {
    rc = UV_ENOMEM;
  } else {
    rc = uv_spawn(p->err.loop, &p->proc, &o);
    /* uv_spawn initialises the handle even when it fails, and it must be closed either way. */
    p->proc.data = p;
    p->open = 2;
    free(env);
  }
  if (rc < 0) {
    snprintf(why, size, "could not start %s: %s", argv[0], uv_strerror(rc));
    return rc;
  }
  p->started = true;
  /* Without stderr the failure message is only shorter: not a reason to fail. */
  uv_read_start((uv_stream_t *)&p->err, on_err_alloc, on_err_read);
  return 0;
}

static void group_signal(hook_proc *p, int signo) {
  if (!p->started || p->exited || p->proc.pid <= 0)
    return;
  if (kill(-p->proc.pid, signo) != 0)
    kill(p->proc.pid, signo);
}

void hook_proc_stop(hook_proc *p) {
  group_signal(p, SIGTERM);
}

void hook_proc_kill(hook_proc *p) {
  group_signal(p, SIGKILL);
}

long hook_proc_pid(const hook_proc *p) {
  return p->started ? (long)p->proc.pid : 0;
}

static void on_closed(uv_handle_t *handle) {
  hook_proc *p = handle->data;
  if (--p->open > 0)
    return;
  p->cbs.closed(p->arg);
  free(p);
}

void hook_proc_close(hook_proc *p) {
  if (p->open == 2)
    uv_close((uv_handle_t *)&p->proc, on_closed);
  uv_close((uv_handle_t *)&p->err, on_closed);
}
