/* pipemsg bench's parts (cmd_bench.c): the scenarios every platform runs are in cmd_bench.c;
 * what rests on the platform is behind the functions below, in bench_unix.c and bench_win.c
 * (raw floors, the forked or spawned children, CPU pinning), and bench_zmq.c or
 * bench_nozmq.c (ZeroMQ is optional on Windows). */
#ifndef PIPEMSG_BENCH_H
#define PIPEMSG_BENCH_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

#include "pipemsg/pipemsg.h"

#define BENCH_RESULTS_MAX 64
#define BENCH_SKIPS_MAX 8
#define BENCH_WARMUP 200        /* untimed iterations before each timed loop */
#define BENCH_FLOOR_BUF (64 * 1024)
#define BENCH_WAIT_S 10         /* longest wait for a server, client or child */
#define MIB (1024.0 * 1024.0)

/* Counts and budgets of a full run and of --quick. */
typedef struct budget {
  double command_s;   /* time budget per command loop */
  int events;         /* events per event/ZeroMQ scenario (rate and latency) */
  size_t big_bytes;   /* size of the big message's payload */
  double idle_s;      /* idle measurement window */
  int queued_events;  /* events queued for the memory figure */
  int scale_events[3]; /* queued events of the scale-queue rows */
} budget;

typedef enum { HIGHER_BETTER, LOWER_BETTER } direction;

typedef struct result {
  char name[40];
  const char *unit;
  double pipemsg;
  double baseline;
  const char *baseline_kind;
  double ratio;       /* see bench_add_speed and bench_add_cost */
  const char *target; /* NULL: information only */
  int pass;           /* 1 pass, 0 miss, -1 no target */
} result;

/* A scenario group this platform cannot run, and why. */
typedef struct skipped {
  const char *group;
  const char *reason;
} skipped;

typedef struct bench {
  budget b;
  int json;
  int pinned;
  char dir[64]; /* private directory (Unix) or pipe name prefix (Windows) for the pipes */
  result results[BENCH_RESULTS_MAX];
  int n_results;
  skipped skips[BENCH_SKIPS_MAX];
  int n_skips;
} bench;

/* ---- shared helpers (cmd_bench.c) --------------------------------------------------------- */

/* A libuv loop on a thread of its own, ended by an async handle from any thread; on_stop runs
 * on the loop thread and closes the scenario's handles. */
typedef struct bench_loop {
  uv_loop_t loop;
  uv_async_t stop;
  pthread_t thread;
  void (*on_stop)(struct bench_loop *bl);
  void *data;
} bench_loop;
int bench_loop_init(bench_loop *bl, void (*on_stop)(bench_loop *), void *data);
/* Starts the loop's thread; on failure closes everything on this one, as bench_loop_abandon. */
int bench_loop_run(bench_loop *bl);
/* A loop that will not run: on_stop and the loop's end on this thread. */
void bench_loop_abandon(bench_loop *bl);
/* Stops the loop from another thread, waits for its thread and closes it. */
void bench_loop_finish(bench_loop *bl);

uint64_t bench_now_ns(void);
void bench_sleep_ms(unsigned ms);
/* A pipemsg figure with its baseline. For HIGHER_BETTER units (rates) the ratio is
 * pipemsg / baseline; for LOWER_BETTER units (times, latencies) baseline / pipemsg, so a ratio
 * above 1 always means pipemsg did better. min_ratio 0: information only. */
void bench_add_speed(bench *bh, const char *name, const char *unit, direction dir, double pm,
                     double base, const char *base_kind, double min_ratio, const char *target);
/* A cost figure: ratio is pipemsg / baseline (how many times the baseline it costs); pass is
 * decided by the caller. */
void bench_add_cost(bench *bh, const char *name, const char *unit, double pm, double base,
                    const char *base_kind, const char *target, int pass);
/* Records that group's rows are not measured here, and why (printed with the results). */
void bench_skip(bench *bh, const char *group, const char *reason);

/* Wire images of the messages, encoded once by the library. */
typedef struct wire {
  uint8_t *request;  /* Request GetState */
  size_t request_len;
  uint8_t *response; /* its Response */
  size_t response_len;
  uint8_t *event; /* Event StateChanged */
  size_t event_len;
  uint8_t *confirm; /* EventConfirmation */
  size_t confirm_len;
} wire;

int bench_wire_new(pm_encoding enc, wire *w);
void bench_wire_free(wire *w);
json_t *bench_event_data(void);
int bench_publish_one(pm_event_server *s);

/* An event client's progress, driven by bench_event_cb and bench_event_state_cb. */
typedef struct event_run {
  sem_t attached;  /* posted when the client is connected */
  sem_t delivered; /* posted by the callback in latency mode, or after the last event */
  int latency_mode;
  int expected;                 /* callbacks that end the rate run */
  int seen;                     /* callbacks so far (client thread only) */
  _Atomic uint64_t publish_ns;  /* when the event being measured was published */
  uint64_t *samples;
  int n_samples;
  sem_t confirmed;               /* posted by the server's log when it took a confirmation */
  _Atomic int64_t confirm_from;  /* of an event with this id or a later one */
} event_run;

void bench_event_cb(const pm_event *ev, void *data);
void bench_event_state_cb(pm_event_client_state state, const char *reason, void *data);
int bench_sem_wait_s(sem_t *s, int seconds);

/* ---- raw streams for the floors, with no library code (bench_unix.c, bench_win.c) --------- */

/* A connected stream: a socket descriptor on Unix, a pipe HANDLE on Windows. */
typedef intptr_t bench_raw;
#define BENCH_RAW_NONE ((bench_raw)-1)
typedef struct bench_listener bench_listener;

/* The peer of a ping-pong baseline: receive, note the one-way latency, answer. */
typedef struct pong {
  bench_raw fd; /* the floor's stream */
  void *zsock;  /* REP socket (ZeroMQ) */
  const wire *w;
  _Atomic uint64_t send_ns;
  uint64_t *samples;
  int n_samples; /* samples recorded; the first BENCH_WARMUP are overwritten */
  int rc;
} pong;

/* What the floors are, for the "baseline is" column (e.g. "raw socket loop"). */
extern const char bench_floor_kind_command[];
extern const char bench_floor_kind_command_child[]; /* its server in a child process */
extern const char bench_floor_kind_event[];

/* The private place for the run's pipes (bh->dir), made before the scenarios (printing why
 * not) and removed after; bench_path names one pipe in it. */
int bench_dir_make(bench *bh);
void bench_dir_remove(const bench *bh);
void bench_path(const bench *bh, const char *file, char *buf, size_t size);

/* A listening stream at path; bench_accept blocks until a client comes (BENCH_RAW_NONE once
 * bench_listen_stop was called, from any thread); bench_listen_close after the acceptor ended. */
int bench_listen(const char *path, bench_listener **out);
bench_raw bench_accept(bench_listener *l);
void bench_listen_stop(bench_listener *l);
void bench_listen_close(bench_listener *l);
bench_raw bench_connect(const char *path);
/* Two connected ends; bench_shutdown(sv[0]) ends the reads on sv[1]. */
int bench_pair(bench_raw sv[2]);
void bench_shutdown(bench_raw fd);
void bench_close(bench_raw fd);
/* One frame, the header and the payload in one write where the platform can. */
int bench_write_frame(bench_raw fd, const void *payload, size_t len);
/* Reads one frame into buf (header included, usually in a single read); returns the payload
 * length, or a negative code on EOF, error or a frame larger than size - 4. */
long bench_read_frame(bench_raw fd, uint8_t *buf, size_t size);

/* Reads up to len bytes: the count, 0 at the end of the stream, or a negative code. */
long bench_read(bench_raw fd, void *buf, size_t len);

/* ---- the libuv ceilings (docs/benchmarks.md) ---------------------------------------------- */

/* The floors' bytes over bare libuv loops making only the syscalls the library has to make,
 * with its checks (the server's peer credentials, the client's owner check and response
 * deadline), and no pipemsg code: command calls/s (the command floor's wire, a server loop on
 * a thread, the client on this one) and confirmed events/s (an event server loop and a client
 * loop on threads of their own). 1 after bench_skip where the platform does not measure them
 * (Windows). */
int bench_command_libuv(bench *bh, const wire *w, double *rate);
int bench_event_libuv(bench *bh, const wire *w, double *rate);

/* ---- the big message's server, in a child process ------------------------------------------ */

extern const char bench_floor_kind_big[];
typedef struct bench_child bench_child;

/* The body of the child: serves path with a pipemsg command server taking messages up to
 * max_message (raw 0) or with the raw floor (raw 1, reading each frame into one buffer);
 * ready(arg) once it listens; returns only on failure (or if its loop ends). */
int bench_big_serve(const char *path, size_t max_message, int raw, int (*ready)(void *),
                    void *arg);
/* Starts a child process running bench_big_serve (Unix: forked; Windows: "pipemsg bench
 * --child ..."), and returns once it listens. */
int bench_child_start(const char *path, size_t max_message, int raw, bench_child **out);
/* Runs serve(arg) in a forked child (Unix) and returns at once: the floor's server in a process
 * of its own, as pipemsgd is one. Whatever serve needs (a bench_listener) is made before, so it
 * is the child's too. Not on Windows (PM_EINVAL): the service group is skipped there. */
int bench_serve_child_start(void *(*serve)(void *), void *arg, bench_child **out);
/* Kills and reaps the child, frees c. */
void bench_child_stop(bench_child *c);
/* Memory of the child, or of this process when c is NULL: resident now and its peak, bytes. */
int bench_mem(bench_child *c, long long *rss, long long *peak);
/* Sets the peak to the resident size now where the platform can (Linux); elsewhere the peak
 * counts from the process's start (docs/benchmarks.md). */
int bench_peak_reset(bench_child *c);
/* "pipemsg bench --child ..." on a platform that starts its children so: the child's exit
 * status; -1 elsewhere (the option is then unknown). */
int bench_child_main(int argc, char **argv);

/* ---- memory per queued event, in a child process ------------------------------------------- */

/* What the queue child measures, per event: growth of the resident size and of the heap in
 * use (bytes), and the time its publish took (ns). */
#define BENCH_QUEUE_FIGURES 3

/* The body of the child: an event server with nobody attached publishes n events; per_event
 * gets the BENCH_QUEUE_FIGURES figures. The loop never runs: publishing only queues. */
int bench_queue_measure(const char *path, int n, double per_event[BENCH_QUEUE_FIGURES]);
/* Runs bench_queue_measure in a new child process (Unix: forked; Windows: "pipemsg bench
 * --child queue ...") and returns its figures. */
int bench_queue_child(const char *path, int n, double per_event[BENCH_QUEUE_FIGURES]);
/* Bytes the allocator has handed out and not taken back (Unix: mallinfo2; Windows: the busy
 * blocks of the C runtime's heap). */
long long bench_heap_in_use(void);

/* ---- the rest of the platform ------------------------------------------------------------- */

/* Appended to pipemsg bench --help: what this platform skips ("" where nothing is). */
extern const char bench_help_note[];
/* Pins this process (and every thread and child it makes later) to CPU 0; prints why not. */
int bench_pin_cpu0(void);
long bench_cpus_online(void);
/* The idle cost rests on what only some platforms have: run it, or record with bench_skip
 * why not. */
int bench_run_idle(bench *bh);

/* The real service for the service group: starts pipemsgd (next to this program) on the
 * command pipe cmd_path and the event pipe evt_path, logging at info level as a service does by
 * default (its output discarded), and returns without waiting for it to listen (a client's
 * connect retries until it does): 0 and *pid. Where the platform does not start it, 1 after
 * bench_skip says why. bench_service_stop ends and reaps what it started. */
int bench_service_start(bench *bh, const char *cmd_path, const char *evt_path, long long *pid);
void bench_service_stop(long long pid);

/* ZeroMQ REQ/REP with the same bytes (bench_zmq.c), or why not (bench_nozmq.c: NULL when
 * ZeroMQ is there). */
const char *bench_zmq_missing(void);
int bench_event_zmq(bench *bh, const wire *w, double *rate, uint64_t *samples);

#endif
