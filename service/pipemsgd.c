#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "service.h"

/* Default time the simulated backend takes to connect. */
#define CONNECT_DELAY_MS_DEFAULT 1500u

static const char usage_text[] =
    "Usage: pipemsgd [OPTION]...\n"
    "Serve VPN connection control on the pipemsg command and event pipes.\n"
    "\n"
    "  -c, --command-pipe NAME     command pipe name or path (default UnifiedSDKVPNCommandPipe)\n"
    "  -e, --event-pipe NAME       event pipe name or path (default UnifiedSDKVPNEventPipe)\n"
    "  -d, --data-dir DIR          directory for service state (created if missing)\n"
    "      --request-timeout-ms N  time a client has to send its whole request (default 3000)\n"
    "      --write-timeout-ms N    time a client has to take the response (default 3000)\n"
    "      --max-message BYTES     largest accepted message (default 16777216, max 2147483647)\n"
    "      --handshake-timeout-ms N  time an event client has to send its handshake (default 1000)\n"
    "      --heartbeat-ms N        idle time before a secondary handshake (default 1000)\n"
    "      --ack-timeout-ms N      time for a confirmation or handshake answer (default 1000)\n"
    "      --queue-max-events N    events kept for delivery (default 10000)\n"
    "      --queue-max-bytes N     bytes of events kept for delivery (default 67108864)\n"
    "      --transient TYPE        also treat events of TYPE as transient (repeatable, up to 16)\n"
    "      --traffic-interval-ms N period of TrafficChanged while connected (default 1000)\n"
    "      --connect-delay-ms N    simulated backend: time to connect (default 1500)\n"
    "      --sim-unreachable LOC   simulated backend: connecting to LOC fails\n"
    "      --test-commands         enable EmitEvent (for tests and demos)\n"
    "  -v, --verbose               log state changes as well as connections\n"
    "      --help                  show this help and exit\n"
    "      --version               show the version and exit\n"
    "\n"
    "A NAME without '/' is placed in $PIPEMSG_RUNTIME_DIR, else $XDG_RUNTIME_DIR/pipemsg,\n"
    "else /run/pipemsg. SIGINT and SIGTERM stop the service and remove its socket files.\n";

enum {
  OPT_REQUEST_TIMEOUT = 256,
  OPT_WRITE_TIMEOUT,
  OPT_MAX_MESSAGE,
  OPT_CONNECT_DELAY,
  OPT_HANDSHAKE_TIMEOUT,
  OPT_HEARTBEAT,
  OPT_ACK_TIMEOUT,
  OPT_QUEUE_MAX_EVENTS,
  OPT_QUEUE_MAX_BYTES,
  OPT_TRANSIENT,
  OPT_TRAFFIC_INTERVAL,
  OPT_SIM_UNREACHABLE,
  OPT_TEST_COMMANDS,
  OPT_HELP,
  OPT_VERSION
};

static const struct option long_options[] = {
    {"command-pipe", required_argument, NULL, 'c'},
    {"event-pipe", required_argument, NULL, 'e'},
    {"data-dir", required_argument, NULL, 'd'},
    {"request-timeout-ms", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"write-timeout-ms", required_argument, NULL, OPT_WRITE_TIMEOUT},
    {"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
    {"connect-delay-ms", required_argument, NULL, OPT_CONNECT_DELAY},
    {"handshake-timeout-ms", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
    {"ack-timeout-ms", required_argument, NULL, OPT_ACK_TIMEOUT},
    {"queue-max-events", required_argument, NULL, OPT_QUEUE_MAX_EVENTS},
    {"queue-max-bytes", required_argument, NULL, OPT_QUEUE_MAX_BYTES},
    {"transient", required_argument, NULL, OPT_TRANSIENT},
    {"traffic-interval-ms", required_argument, NULL, OPT_TRAFFIC_INTERVAL},
    {"sim-unreachable", required_argument, NULL, OPT_SIM_UNREACHABLE},
    {"test-commands", no_argument, NULL, OPT_TEST_COMMANDS},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Parses a decimal number in [min, max]; exits with a message otherwise. */
static unsigned long long parse_number(const char *opt, const char *s, unsigned long long min,
                                       unsigned long long max) {
  char *end;
  unsigned long long v;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
    fprintf(stderr, "pipemsgd: --%s: expected a number from %llu to %llu, got '%s'\n", opt, min,
            max, s);
    exit(2);
  }
  return v;
}

/* Tells a supervisor that started us with NOTIFY_SOCKET (systemd Type=notify, or a test)
 * that the pipes are ready. */
static void notify_ready(void) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa;
  size_t len;
  int fd;
  if (path == NULL || (path[0] != '/' && path[0] != '@'))
    return;
  len = strlen(path);
  if (len >= sizeof(sa.sun_path))
    return;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@')
    sa.sun_path[0] = '\0';
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  (void)sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
  close(fd);
}

typedef struct daemon_state {
  service *svc;
  uv_signal_t sigint, sigterm;
} daemon_state;

static void on_signal(uv_signal_t *h, int signum) {
  daemon_state *d = h->data;
  service_log("signal %d: stopping", signum);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  service_stop(d->svc);
}

/* Longest timeout or interval an option takes: a day. */
#define OPT_MS_MAX (24ull * 3600 * 1000)

static uint32_t parse_ms(const char *opt, const char *s) {
  return (uint32_t)parse_number(opt, s, 1, OPT_MS_MAX);
}

static void parse_args(int argc, char **argv, service_config *cfg) {
  int c, ntransient = 0;
  while ((c = getopt_long(argc, argv, "c:e:d:v", long_options, NULL)) != -1) {
    switch (c) {
    case 'c':
      cfg->command_pipe = optarg;
      break;
    case 'e':
      cfg->event_pipe = optarg;
      break;
    case 'd':
      cfg->data_dir = optarg;
      break;
    case OPT_REQUEST_TIMEOUT:
      cfg->request_timeout_ms = parse_ms("request-timeout-ms", optarg);
      break;
    case OPT_WRITE_TIMEOUT:
      cfg->write_timeout_ms = parse_ms("write-timeout-ms", optarg);
      break;
    case OPT_HANDSHAKE_TIMEOUT:
      cfg->handshake_timeout_ms = parse_ms("handshake-timeout-ms", optarg);
      break;
    case OPT_HEARTBEAT:
      cfg->heartbeat_ms = parse_ms("heartbeat-ms", optarg);
      break;
    case OPT_ACK_TIMEOUT:
      cfg->ack_timeout_ms = parse_ms("ack-timeout-ms", optarg);
      break;
    case OPT_TRAFFIC_INTERVAL:
      cfg->traffic_interval_ms = parse_ms("traffic-interval-ms", optarg);
      break;
    case OPT_QUEUE_MAX_EVENTS:
      cfg->queue_max_events = (size_t)parse_number("queue-max-events", optarg, 1, 100000000);
      break;
    case OPT_QUEUE_MAX_BYTES:
      cfg->queue_max_bytes = (size_t)parse_number("queue-max-bytes", optarg, 1024, SIZE_MAX);
      break;
    case OPT_TRANSIENT:
      if (ntransient == SERVICE_TRANSIENT_MAX || !pm_name_valid(optarg)) {
        fprintf(stderr, "pipemsgd: --transient: '%s' is not a type name, or too many types\n",
                optarg);
        exit(2);
      }
      cfg->transient[ntransient++] = optarg;
      break;
    case OPT_SIM_UNREACHABLE:
      cfg->sim_unreachable = optarg;
      break;
    case OPT_TEST_COMMANDS:
      cfg->test_commands = 1;
      break;
    case OPT_MAX_MESSAGE:
      cfg->max_message = (size_t)parse_number("max-message", optarg, 1, PM_MAX_MESSAGE_CEILING);
      break;
    case OPT_CONNECT_DELAY:
      cfg->connect_delay_ms = (unsigned)parse_number("connect-delay-ms", optarg, 0, OPT_MS_MAX);
      break;
    case 'v':
      cfg->verbose = 1;
      break;
    case OPT_HELP:
      fputs(usage_text, stdout);
      exit(0);
    case OPT_VERSION:
      printf("pipemsgd %s (protocol %d)\n", PM_VERSION, PM_PROTOCOL_VERSION);
      exit(0);
    default:
      fputs("Try 'pipemsgd --help'.\n", stderr);
      exit(2);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "pipemsgd: unexpected argument '%s'\nTry 'pipemsgd --help'.\n", argv[optind]);
    exit(2);
  }
}

int main(int argc, char **argv) {
  service_config cfg = {
      .command_pipe = PM_COMMAND_PIPE_DEFAULT,
      .event_pipe = PM_EVENT_PIPE_DEFAULT,
      .connect_delay_ms = CONNECT_DELAY_MS_DEFAULT,
  };
  daemon_state d;
  uv_loop_t *loop = uv_default_loop();
  int rc;

  parse_args(argc, argv, &cfg);
  signal(SIGPIPE, SIG_IGN);
  if (cfg.data_dir != NULL && mkdir(cfg.data_dir, 0750) < 0 && errno != EEXIST) {
    service_log("cannot create data dir '%s': %s", cfg.data_dir, strerror(errno));
    return 1;
  }
  rc = service_start(loop, &cfg, &d.svc);
  if (rc < 0) {
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 1;
  }
  uv_signal_init(loop, &d.sigint);
  uv_signal_init(loop, &d.sigterm);
  d.sigint.data = d.sigterm.data = &d;
  uv_signal_start(&d.sigint, on_signal, SIGINT);
  uv_signal_start(&d.sigterm, on_signal, SIGTERM);
  notify_ready();
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  service_log("stopped");
  return 0;
}
