#ifndef PIPEMSGD_HOOK_PROC_H
#define PIPEMSGD_HOOK_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* One hook command as a process tree: started, its stderr passed on, ended, reaped. The hook
 * backend (backend_hook.c) decides what runs and when; each platform's file does the running:
 * hook_proc_unix.c (uv_spawn into a process group of its own, signals to the group),
 * hook_proc_win.c (CreateProcessW inside a Job Object, the job terminated). Every call and
 * callback happens on the loop thread. */
typedef struct hook_proc hook_proc;

typedef struct hook_proc_callbacks {
  /* Bytes the command wrote to its stderr. */
  void (*output)(void *arg, const char *data, size_t len);
  /* The command (the process started, not what it left behind) has ended: its exit status,
   * or the signal that killed it (Unix; 0 otherwise). Its stderr still in the pipe has gone
   * to output() first. At most once, never after hook_proc_close(). */
  void (*exited)(void *arg, int64_t status, int signo);
  /* After hook_proc_close(): every handle is closed and the hook_proc freed. */
  void (*closed)(void *arg);
} hook_proc_callbacks;

/* What to run. The request travels only in vars, never on a command line. */
typedef struct hook_cmd {
  /* Not NULL: this text runs through the platform's shell (hook_proc_shell_help). */
  const char *shell;
  /* Else: the program (argv[0]) and its arguments, NULL-terminated, passed as they are. */
  char *const *argv;
  /* "NAME=VALUE" entries (NULL-terminated) added to the service's own environment, replacing
   * any variable of the same name there. */
  const char *const *vars;
} hook_cmd;

/* A process not started yet, with its handles initialised on loop. 0, or UV_ENOMEM. */
int hook_proc_new(uv_loop_t *loop, const hook_proc_callbacks *cbs, void *arg, hook_proc **out);
/* Starts cmd (once per hook_proc). 0: it runs and exited() follows. <0 (a UV_E* code): it did
 * not start, and why (size > 0) says "could not start PROGRAM: REASON". Either way
 * hook_proc_close() releases it. */
int hook_proc_start(hook_proc *p, const hook_cmd *cmd, char *why, size_t size);
/* Asks the whole tree to end: SIGTERM to the process group on Unix. Windows has no such
 * request for a tree without a console: the job is terminated, as by hook_proc_kill(). */
void hook_proc_stop(hook_proc *p);
/* Ends the whole tree at once: SIGKILL to the process group, or TerminateJobObject. */
void hook_proc_kill(hook_proc *p);
/* The process id of the command (for the log), 0 if it did not start. */
long hook_proc_pid(const hook_proc *p);
/* Releases p; closed() follows once its handles are closed. A command still running is not
 * waited for (Windows: closing its job ends it). */
void hook_proc_close(hook_proc *p);

/* How hook_proc_stop() and hook_proc_kill() are named in messages and the log: "SIGTERM" and
 * "SIGKILL", or "TerminateJobObject" for both. */
extern const char hook_proc_stop_name[];
extern const char hook_proc_kill_name[];
/* The help text of --hook-shell, naming the platform's shell. */
extern const char hook_proc_shell_help[];

#endif
