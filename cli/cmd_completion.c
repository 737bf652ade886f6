/* pipemsg completion bash|zsh: a completion script made at run time from the subcommands'
 * --help texts (their options) and the contract tables (command names, Key= parameters), so
 * it cannot drift from either. zsh runs the bash function through bashcompinit. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "contract.h"

static const char usage_text[] =
    "Usage: pipemsg completion bash|zsh\n"
    "Print a shell completion script for pipemsg: subcommands, options, command names and each\n"
    "command's Key= parameters. Load it with: source <(pipemsg completion bash), or in zsh\n"
    "source <(pipemsg completion zsh).\n";

const char *const cmd_completion_usage[] = {usage_text, NULL};

/* The options a --help text lists ("  -c, --command-pipe NAME" at a line's start): all of them
 * (want_arg < 0), or those taking a value (1) or not (0), separated by sep. */
static void print_options(const char *const *parts, int want_arg, const char *sep) {
  const char *before = "";
  for (; *parts != NULL; parts++) {
    for (const char *line = *parts; *line != '\0';) {
      const char *end = line + strcspn(line, "\n");
      const char *opt = line + strspn(line, " ");
      while (opt > line + 1 && opt < end && *opt == '-') {
        size_t len = strspn(opt, "-abcdefghijklmnopqrstuvwxyz0123456789");
        const char *after = opt + len;
        int comma = *after == ',';
        const char *v = after + comma + strspn(after + comma, " ");
        /* A value is a word in capitals after the option (for "-c, --long", after --long). */
        int takes = !comma && v < end && isupper((unsigned char)v[0]) &&
                    (v[1] == ' ' || v[1] == '\n' || isupper((unsigned char)v[1]));
        if (comma) {
          const char *l = v + strspn(v, "-abcdefghijklmnopqrstuvwxyz0123456789");
          const char *lv = l + strspn(l, " ");
          takes = lv < end && *l == ' ' && isupper((unsigned char)lv[0]) &&
                  (lv[1] == ' ' || lv[1] == '\n' || isupper((unsigned char)lv[1]));
        }
        if (want_arg < 0 || takes == want_arg)
          printf("%s%.*s", before, (int)len, opt), before = sep;
        if (!comma)
          break;
        opt = v;
      }
      line = *end == '\n' ? end + 1 : end;
    }
  }
}

static void print_bash(void) {
  fputs("# pipemsg completion (pipemsg completion bash)\n_pipemsg_commands='", stdout);
  for (size_t i = 0; i < pm__contract_n_commands; i++)
    printf("%s%s", i ? " " : "", pm__contract_commands[i].name);
  fputs("'\n"
        "_pipemsg() {\n"
        "  local cur=${COMP_WORDS[COMP_CWORD]} sub=${COMP_WORDS[1]} cmd= i\n"
        "  COMPREPLY=()\n"
        "  if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
        "    COMPREPLY=($(compgen -W 'call watch bench commands describe completion --help --version --man' -- "
        "\"$cur\"))\n"
        "    return\n"
        "  fi\n"
        "  case $sub in\n"
        "  call)\n"
        "    for ((i = 2; i < COMP_CWORD; i++)); do\n"
        "      case ${COMP_WORDS[i]} in\n"
        "      ",
        stdout);
  print_options(cmd_call_usage, 1, "|");
  fputs(") ((i++)) ;;\n" /* the options' values are not the command */
        "      -*) ;;\n"
        "      *) cmd=${COMP_WORDS[i]}; break ;;\n"
        "      esac\n"
        "    done\n"
        "    if [[ $cur == -* ]]; then\n"
        "      COMPREPLY=($(compgen -W '",
        stdout);
  print_options(cmd_call_usage, -1, " ");
  fputs("' -- \"$cur\"))\n"
        "    elif [ -z \"$cmd\" ]; then\n"
        "      COMPREPLY=($(compgen -W \"$_pipemsg_commands\" -- \"$cur\"))\n"
        "    else\n"
        "      case $cmd in\n",
        stdout);
  for (size_t i = 0; i < pm__contract_n_commands; i++) {
    const pm__ct_command *c = &pm__contract_commands[i];
    if (c->n_params == 0)
      continue;
    printf("      %s) COMPREPLY=($(compgen -W '", c->name);
    for (size_t j = 0; j < c->n_params; j++)
      printf(" %s=", c->params[j].name);
    fputs("' -- \"$cur\")) ;;\n", stdout);
  }
  fputs("      esac\n"
        "      compopt -o nospace 2>/dev/null || :\n"
        "    fi ;;\n"
        "  watch)\n"
        "    COMPREPLY=($(compgen -W '",
        stdout);
  print_options(cmd_watch_usage, -1, " ");
  fputs("' -- \"$cur\")) ;;\n"
        "  describe)\n"
        "    COMPREPLY=($(compgen -W \"$_pipemsg_commands --offline --help\" -- \"$cur\")) ;;\n"
        "  completion)\n"
        "    COMPREPLY=($(compgen -W 'bash zsh' -- \"$cur\")) ;;\n"
        "  esac\n"
        "}\n"
        "complete -F _pipemsg pipemsg\n",
        stdout);
}

int cmd_completion(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--help") == 0) {
    fputs(usage_text, stdout);
    return CLI_EXIT_OK;
  }
  if (argc != 2 || (strcmp(argv[1], "bash") != 0 && strcmp(argv[1], "zsh") != 0)) {
    fputs("pipemsg completion: expected bash or zsh\nTry 'pipemsg completion --help'.\n",
          stderr);
    return CLI_EXIT_USAGE;
  }
  if (strcmp(argv[1], "zsh") == 0)
    fputs("(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -u; }\n"
          "autoload -U +X bashcompinit && bashcompinit\n",
          stdout);
  print_bash();
  return CLI_EXIT_OK;
}
