#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipemsg/pipemsg.h"

#include "cli.h"
#include "contract.h"
#include "utf8.h"

static const char usage_text[] =
    "Usage: pipemsg COMMAND [OPTION]... [ARG]...\n"
    "Drive and watch a pipemsg service.\n"
    "\n"
    "Commands:\n"
    "  call        send one request on the command pipe and print the response\n"
    "  watch       print events from the event pipe as they arrive\n"
    "  bench       measure pipemsg against baselines (see docs/benchmarks.md)\n"
    "  commands    list the service's commands (the built-in contract if it does not answer)\n"
    "  describe    show one command: parameters, answer, results\n"
    "  completion  print a bash or zsh completion script\n"
    "\n"
    "  pipemsg --help | --version | --man; pipemsg COMMAND --help for a command's options.\n";

/* text for roff: backslashes and hyphens escaped, no request at a line start. */
static void man_text(const char *text) {
  int line_start = 1;
  for (const char *p = text; *p; p++) {
    if (*p == '\\')
      fputs("\\e", stdout);
    else if (*p == '-')
      fputs("\\-", stdout);
    else if ((*p == '.' || *p == '\'') && line_start)
      fputs("\\&", stdout), putchar(*p);
    else
      putchar(*p);
    line_start = *p == '\n';
  }
}

static void man_fields(const pm__ct_field *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    fputs(".RS\n.TP\n\\fB", stdout);
    man_text(f[i].name);
    fputs("\\fR (", stdout);
    man_text(f[i].type->name);
    if (f[i].required)
      fputs(", required", stdout);
    if (f[i].default_text != NULL) {
      fputs(", default ", stdout);
      man_text(f[i].default_text);
    }
    fputs(")\n", stdout);
    man_text(f[i].doc != NULL ? f[i].doc : "");
    fputs("\n.RE\n", stdout);
  }
}

/* COMMANDS, EVENTS and ENVIRONMENT, from the contract built in (schema/contract.toml). */
static void man_contract(void) {
  fputs(".SH COMMANDS\nThe service's commands, for \\fBpipemsg call\\fR COMMAND [Key=Value]...\n",
        stdout);
  for (size_t i = 0; i < pm__contract_n_commands; i++) {
    const pm__ct_command *c = &pm__contract_commands[i];
    fputs(".TP\n\\fB", stdout);
    man_text(c->name);
    fputs(c->test_only ? "\\fR (pipemsgd \\-\\-test\\-commands only)\n" : "\\fR\n", stdout);
    man_text(c->doc != NULL ? c->doc : "");
    fputs("\n", stdout);
    man_fields(c->params, c->n_params);
  }
  fputs(".SH EVENTS\nEvent types on the event pipe, as \\fBpipemsg watch\\fR prints them.\n",
        stdout);
  for (size_t i = 0; i < pm__contract_n_events; i++) {
    const pm__ct_event *e = &pm__contract_events[i];
    fputs(".TP\n\\fB", stdout);
    man_text(e->type);
    fputs(e->transient ? "\\fR (transient)\n" : "\\fR\n", stdout);
    man_text(e->doc != NULL ? e->doc : "");
    fputs("\n", stdout);
    man_fields(e->fields, e->n_fields);
  }
  fputs(".SH ENVIRONMENT\n"
        ".TP\n\\fBPIPEMSG_COMMAND_PIPE\\fR, \\fBPIPEMSG_EVENT_PIPE\\fR\n"
        "The command and event pipe when \\-c or \\-e (or \\-\\-names\\-file) gives none; "
        "unset or empty: UnifiedSDKVPNCommandPipe and UnifiedSDKVPNEventPipe.\n"
        ".TP\n\\fBPIPEMSG_RUNTIME_DIR\\fR\n"
        "The directory a bare pipe name (no /) resolves into.\n"
        ".TP\n\\fBXDG_RUNTIME_DIR\\fR\n"
        "Without PIPEMSG_RUNTIME_DIR, bare names resolve into $XDG_RUNTIME_DIR/pipemsg; without "
        "either, into /run/pipemsg.\n"
        ".TP\n\\fBPIPEMSG_DEBUG\\fR\n"
        "When set, the library's debug log (connections, handshakes, events) goes to stderr.\n",
        stdout);
}

/* The manual page, in roff, from the same texts as --help. */
static void print_man(void) {
  static const char *const top[] = {usage_text, NULL};
  const char *const *const pages[] = {top, cmd_call_usage, cmd_watch_usage, cmd_commands_usage,
                                      cmd_completion_usage};
  printf(".TH PIPEMSG 1 \"\" \"pipemsg %s\" \"User Commands\"\n"
         ".SH NAME\npipemsg \\- drive and watch a pipemsg service\n.SH DESCRIPTION\n",
         PM_VERSION);
  for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
    int line_start = 1;
    fputs(".PP\n.nf\n", stdout);
    for (const char *const *part = pages[i]; *part != NULL; part++) {
      for (const char *p = *part; *p; p++) {
        if (*p == '\\')
          fputs("\\e", stdout);
        else if (*p == '-')
          fputs("\\-", stdout);
        else if (*p == '.' && line_start)
          fputs("\\&.", stdout);
        else
          putchar(*p);
        line_start = *p == '\n';
      }
    }
    fputs(".fi\n", stdout);
  }
  man_contract();
  fputs(".SH SEE ALSO\n\\fBpipemsgd\\fR(8)\n", stdout);
}

const char *cli_prog = "pipemsg";

void cli_print_text(const char *const *parts, FILE *f) {
  for (; *parts != NULL; parts++)
    fputs(*parts, f);
}

size_t cli_put_text(FILE *f, const char *s) {
  char buf[256];
  size_t n = strlen(s), total = 0;
  while (n > 0) {
    size_t used, len = utf8_escape(s, n, buf, sizeof(buf), &used);
    if (f != NULL)
      fwrite(buf, 1, len, f);
    total += len;
    s += used;
    n -= used;
  }
  return total;
}

const char *cli_text(const char *s, char *buf, size_t size) {
  size_t used;
  utf8_escape(s, strlen(s), buf, size, &used);
  return buf;
}

/* Whether a character of an encoded message (len bytes, 0 for a byte that is not UTF-8) goes
 * out as it is. JSON's layout has raw newlines of its own and its strings no raw C0 (the
 * encoder escapes them); XML text may hold a tab or newline of the service's. */
static int encoded_plain(uint32_t cp, size_t len, pm_encoding enc) {
  if (len > 1)
    return !utf8_invisible(cp);
  return len == 1 && cp != 0x7f && (cp >= 0x20 || enc == PM_ENC_JSON);
}

void cli_put_encoded(FILE *f, const char *text, size_t n, pm_encoding enc) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0, run = 0;
  while (i < n) {
    uint32_t cp = 0;
    size_t len = utf8_decode(s + i, n - i, &cp);
    if (encoded_plain(cp, len, enc)) {
      i += len;
      continue;
    }
    fwrite(text + run, 1, i - run, f);
    /* An encoder writes only UTF-8; should a byte that is not come, it is not passed on. */
    if (len == 0) {
      cp = 0xfffd;
      len = 1;
    }
    if (enc == PM_ENC_JSON)
      fprintf(f, "\\u%04X", (unsigned)cp);
    else
      fprintf(f, "&#%u;", (unsigned)cp);
    i += len;
    run = i;
  }
  fwrite(text + run, 1, n - run, f);
}

int cli_put_json(FILE *f, const json_t *j, size_t flags) {
  char *text = json_dumps(j, flags);
  if (text == NULL)
    return -1;
  cli_put_encoded(f, text, strlen(text), PM_ENC_JSON);
  free(text);
  return 0;
}

int cli_parse_number(const char *opt, const char *s, unsigned long long min,
                     unsigned long long max, unsigned long long *out) {
  char *end;
  unsigned long long v;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
    fprintf(stderr, "%s: %s: expected a number from %llu to %llu, got '%s'\n", cli_prog, opt,
            min, max, s);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_names_file(const char *file, const char *key, char *buf, size_t size) {
  char line[4096];
  size_t klen = strlen(key);
  FILE *f = fopen(file, "r");
  if (f == NULL) {
    fprintf(stderr, "%s: cannot read names file %s: %s\n", cli_prog, file, strerror(errno));
    return -1;
  }
  while (fgets(line, sizeof(line), f) != NULL) {
    char *v = line + klen;
    if (strncmp(line, key, klen) != 0)
      continue;
    v += strspn(v, " \t");
    if (*v++ != '=')
      continue;
    v += strspn(v, " \t");
    v[strcspn(v, "\r\n")] = '\0';
    if (v[0] == '\0' || strlen(v) >= size)
      break;
    memcpy(buf, v, strlen(v) + 1);
    fclose(f);
    return 0;
  }
  fclose(f);
  fprintf(stderr, "%s: names file %s has no usable '%s'\n", cli_prog, file, key);
  return -1;
}

int cli_pipe_option(int opt, const char *arg, const char *file_key, const char *registry_value,
                    cli_pipe *p) {
  switch (opt) {
  case CLI_OPT_NAMES_FILE:
    if (cli_names_file(arg, file_key, p->named, sizeof(p->named)) < 0)
      return -1;
    p->pipe = p->named;
    return 0;
  case CLI_OPT_NAMES_REGISTRY:
    if (cli_names_registry(arg, registry_value, p->named, sizeof(p->named)) < 0)
      return -1;
    p->pipe = p->named;
    return 0;
  default:
    return cli_expect_owner(arg, p);
  }
}

int main(int argc, char **argv) {
  static char prog[32];
  cli_platform_init();
  if (argc < 2) {
    fputs(usage_text, stderr);
    return CLI_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage_text, stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(argv[1], "--man") == 0) {
    print_man();
    return CLI_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("pipemsg %s (protocol %d)\n", PM_VERSION, PM_PROTOCOL_VERSION);
    return CLI_EXIT_OK;
  }
  /* Messages from the shared helpers then start as the subcommand's own do. */
  snprintf(prog, sizeof(prog), "pipemsg %.16s", argv[1]);
  cli_prog = prog;
  if (strcmp(argv[1], "call") == 0)
    return cmd_call(argc - 1, argv + 1);
  if (strcmp(argv[1], "watch") == 0)
    return cmd_watch(argc - 1, argv + 1);
  if (strcmp(argv[1], "bench") == 0)
    return cmd_bench(argc - 1, argv + 1);
  if (strcmp(argv[1], "commands") == 0)
    return cmd_commands(argc - 1, argv + 1);
  if (strcmp(argv[1], "describe") == 0)
    return cmd_describe(argc - 1, argv + 1);
  if (strcmp(argv[1], "completion") == 0)
    return cmd_completion(argc - 1, argv + 1);
  fprintf(stderr, "pipemsg: unknown command '%s'\nTry 'pipemsg --help'.\n", argv[1]);
  return CLI_EXIT_USAGE;
}
