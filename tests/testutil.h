#ifndef PM_TESTUTIL_H
#define PM_TESTUTIL_H

/* Shared test helpers: code assertions, a real pipemsgd process, raw socket I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "pipemsg/pipemsg.h"

/* Asserts a pipemsg return code, printing both codes by name when they differ. */
#define assert_pm(expected, actual) pm_test_assert_code((expected), (actual), __FILE__, __LINE__)
void pm_test_assert_code(int expected, int actual, const char *file, int line);

uint64_t pm_test_now_ms(void);

/* Skipping a test that cannot run here (no root, no tool): cmocka's skip() alone ends in exit
 * status 0, which CTest reports as Passed. pm_test_skip prints "skipped: REASON" (printf-style)
 * and counts the skip, then skips; main returns pm_test_result(cmocka_run_group_tests(...)):
 * 1 when a test failed, else PM_TEST_SKIPPED when any test skipped (CTest's SKIP_RETURN_CODE,
 * reported as Skipped), else 0. Only in a test body: Debian's cmocka 1.1.5 counts a skip in a
 * setup function as a failure. */
#define PM_TEST_SKIPPED 77
#define pm_test_skip(...)                                                                      \
  do {                                                                                         \
    pm_test_note_skip(__VA_ARGS__);                                                            \
    skip();                                                                                    \
  } while (0)
void pm_test_note_skip(const char *format, ...) __attribute__((format(printf, 1, 2)));
int pm_test_result(int failed);

/* Timing windows. A timing rule is checked from both sides: early by no more than a margin (a
 * timer may fire a few ms before the wall clock says, as libuv starts it from the loop's cached
 * time, which lags by the work done in the loop iteration), and late by no more than a margin
 * chosen so that a wrong value of the rule falls outside. Margins are given for a loaded
 * machine; pm_test_margin_ms scales them for the build that is slow by design: 10 x under
 * valgrind (PM_TEST_VALGRIND, set by `make memcheck`, where pipemsgd runs under valgrind too,
 * and a loop iteration takes 50 times longer). There a window no longer separates a wrong
 * value, which the normal build (and `make mutate`) checks. */
long pm_test_margin_ms(long margin_ms);
/* Fails unless lo_ms <= ms <= hi_ms, printing what was measured. */
#define assert_ms_within(what, ms, lo_ms, hi_ms)                                                   \
  pm_test_assert_ms_within((what), (long)(ms), (long)(lo_ms), (long)(hi_ms), __FILE__, __LINE__)
void pm_test_assert_ms_within(const char *what, long ms, long lo_ms, long hi_ms, const char *file,
                              int line);

/* The private directory $PIPEMSG_RUNTIME_DIR points to in every test program (made before
 * main, removed at exit): bare pipe names never reach /run/pipemsg. A test that points
 * $PIPEMSG_RUNTIME_DIR elsewhere sets it back to this. */
const char *pm_test_runtime_dir(void);

/* A fresh private directory for pipes (removed by pm_test_dir_remove). */
void pm_test_dir_new(char *dir, size_t size);
void pm_test_dir_remove(const char *dir);
/* A private pipe called name: on Unix the socket dir/name; on Windows a named pipe of a name
 * no other test program uses (dir is for files there). */
void pm_test_pipe_path(const char *dir, const char *name, char *buf, size_t size);
/* Watches the file at path for opens and reads (inotify on Linux): a handle, or -1 where the
 * platform cannot watch (Windows: the caller then checks what it can without). */
int pm_test_watch_opens(const char *path);
/* 1 if the watched file was opened or read since the watch began (or the last call), else 0. */
int pm_test_watch_opened(int watch);
void pm_test_watch_end(int watch);
/* Whether the first whole huge page (2 MiB) inside [p, p + n) lies in a mapping advised for
 * transparent huge pages (Linux: "hg" in /proc/self/smaps): 1 or 0; -1 when this system cannot
 * tell (not Linux, THP "never" or absent, no whole huge page inside). */
int pm_test_huge_advised(const void *p, size_t n);
/* How many mappings of process pid of at least min_bytes are advised for transparent huge
 * pages (Linux: "hg" in /proc/PID/smaps); -1 when this system cannot tell (as above). */
int pm_test_huge_mappings(long pid, size_t min_bytes);
/* Asserts pm_test_huge_advised(p, n) == expect where the system can tell; says so where not. */
void pm_test_expect_huge_advised(const void *p, size_t n, int expect);
/* The heap as pipemsgd sets it up for pm_huge_pages (glibc: M_MMAP_THRESHOLD fixed at 1 MiB,
 * so every big block is a mapping of its own); nothing elsewhere. */
void pm_test_heap_as_service(void);
/* 1 when running under wine (ntdll's wine_get_version), 0 elsewhere (always 0 on Unix). */
int pm_test_under_wine(void);
/* What an application running the library's servers on its own loop does (docs/architecture.md,
 * "SIGPIPE"): ignore SIGPIPE. Windows has none: a no-op there. */
void pm_test_ignore_sigpipe(void);
/* Waits until a readiness handle (pm_client_fd: a descriptor on Unix, a HANDLE on Windows) is
 * ready: 1, or 0 after timeout_ms. */
int pm_test_wait_ready(intptr_t handle, int timeout_ms);
/* 1 if something is still bound at path (a socket file, a pipe instance), else 0. */
int pm_test_pipe_exists(const char *path);

/* A pipemsgd child process on private pipes in its own temporary directory. */
typedef struct pm_test_service {
  pid_t pid;
  void *process; /* Windows: the process handle (pid alone could be reused); Unix: unused */
  char dir[64];
  char command_pipe[128];
  char event_pipe[128];
  char log_path[128];
} pm_test_service;

/* Starts build/bin/pipemsgd with -c/-e in a new directory plus extra args (NULL-terminated),
 * and returns once it reports READY=1 on NOTIFY_SOCKET (Windows: once its log says it is
 * listening or its command pipe is there; its data dir is memory unless extra args name one).
 * Fails the test otherwise. */
void pm_test_service_start(pm_test_service *svc, const char *const *extra_args);
/* Starts pipemsgd again on the same pipes and directory (after a stop or a kill). */
void pm_test_service_restart(pm_test_service *svc, const char *const *extra_args);
/* SIGTERM (Windows: Ctrl-Break to its process group), wait; returns the exit status (or
 * 128+signal). Windows without a console to send Ctrl-Break on (wine): ended with
 * TerminateProcess, -1. Leaves the directory. */
int pm_test_service_stop(pm_test_service *svc);
/* Stop (if running) and remove the directory. */
void pm_test_service_cleanup(pm_test_service *svc);
/* Resident set size of a process in KiB, from /proc. */
long pm_test_rss_kb(pid_t pid);
/* The service's log so far, in a static buffer. */
const char *pm_test_service_log(const pm_test_service *svc);

/* Waits until the service's log contains text (lines are written as things finish). */
void pm_test_await_log(const pm_test_service *svc, const char *text);
/* How many times text occurs in the service's log. */
int pm_test_log_count(const pm_test_service *svc, const char *text);
/* The counts of the log's "suppressed N <kind> lines in the last S s" summaries, added up. */
long pm_test_log_suppressed(const pm_test_service *svc, const char *kind);

/* Raw, blocking socket helpers (no library code in the way). */
int pm_test_connect(const char *path); /* fd, or -1 */
/* A stream socket bound at path; listening when backlog > 0 (else a stale socket file once
 * closed). */
int pm_test_bind(const char *path, int backlog);
int pm_test_send_all(int fd, const void *buf, size_t len);
int pm_test_send_frame(int fd, const char *payload);
/* Reads one frame; NULL on EOF, error or timeout. Caller frees. */
char *pm_test_recv_frame(int fd, int timeout_ms, size_t *len);
/* Reads exactly len bytes by the deadline (pm_test_now_ms() time): 0, or -1 on EOF, error or
 * timeout. Each platform's primitive under pm_test_recv_frame. */
int pm_test_recv_exact(int fd, void *buf, size_t len, uint64_t deadline);
/* Waits for EOF (or a reset); returns ms waited, or -1 if data came or time ran out. */
long pm_test_wait_eof(int fd, int timeout_ms);

/* Next message on fd, decoded (the test fails on a malformed one); NULL on EOF or timeout. */
pm_msg *pm_test_recv_msg(int fd, int timeout_ms);
/* An integer field the message must have. */
int64_t pm_test_int_field(const pm_msg *m, const char *key);
/* Fails unless m is a message of that kind. */
void pm_test_assert_kind(const pm_msg *m, const char *kind);
/* Decodes text with the Nth allocation failing, N = 1, 2, ... until it succeeds: every failure
 * must be PM_ENOMEM with no message (and no leak), and success must come. */
void pm_test_decode_oom_loop(const char *text);

/* A raw event session: connects to the event pipe, sends handshake (NULL: Seq 1) and returns the
 * fd; the service's handshake goes to *reply when reply is not NULL. */
int pm_test_event_attach(const char *pipe, const char *handshake, int timeout_ms, pm_msg **reply);
/* The next message on fd that is not a heartbeat (answered on the way): an Event, or what
 * ended the session; NULL on EOF or when timeout_ms pass, heartbeats or not. */
pm_msg *pm_test_next_event(int fd, int timeout_ms);
void pm_test_confirm(int fd, int64_t id);
/* The next message must be Disconnect{Reason: reason}, then the end of the stream. */
void pm_test_expect_disconnect(int fd, const char *reason, int timeout_ms);

#ifndef _WIN32
/* Unix: a child process flooding the pipe at path, as uid and gid when uid >= 0 (root only):
 * it connects in a loop and closes each connection at once or, with hold, every other one:
 * the others it holds open, silent (no handshake, nothing read), PM_TEST_FLOOD_HELD at a time
 * (the oldest closed for a new one). Returns once it has made PM_TEST_FLOOD_REPORT connections;
 * it goes on until pm_test_flood_stop (or this process ends). */
#define PM_TEST_FLOOD_HELD 256
#define PM_TEST_FLOOD_REPORT 100
pid_t pm_test_flood_start(const char *path, int hold, long long uid, long long gid);
void pm_test_flood_stop(pid_t pid);
#endif

/* head, then unit n times, then tail, NUL-terminated (free()); its length goes to *len. */
char *pm_test_repeat(const char *head, const char *unit, size_t n, const char *tail, size_t *len);

/* Peak RSS: VmHWM of a process in KiB, and a reset of it to the current RSS (clear_refs). */
long pm_test_peak_rss_kb(pid_t pid);
void pm_test_reset_peak_rss(pid_t pid);
/* False (after printing why) where RSS says little about what the code allocates: under
 * AddressSanitizer, which keeps freed memory in quarantine and adds shadow memory, and under
 * valgrind (PM_TEST_VALGRIND). */
int pm_test_rss_meaningful(void);
/* Decodes len bytes (pm_msg_decode) in a child process and returns how far its RSS rose above
 * what it was before the call, in KiB; the decoder's result goes to *rc. */
long pm_test_decode_peak_kb(const void *buf, size_t len, int *rc);

/* A GetStats counter: group "Commands" or "Events"; booleans read as 0/1. */
int64_t pm_test_stat(const char *pipe, const char *group, const char *name);

/* One request over the library client (JSON); returns the Response's Result in a static buffer,
 * or the client result name. data (if not NULL) receives a new reference to Data. */
const char *pm_test_call(const char *pipe, const char *command, json_t *params, json_t **data);

/* Runs a program with args (NULL-terminated), capturing stdout and stderr into static buffers;
 * returns its exit status. */
int pm_test_run(const char *const *argv, const char **out, const char **err);

#endif
