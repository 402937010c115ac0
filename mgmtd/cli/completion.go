package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/plinth/plinth/client"
)

// completion prints the completion script for bash or zsh, made from the
// command table so that it cannot fall behind it.
func (a *app) completion(_ context.Context, args []string) error {
	fs := a.flags("completion")
	pos, err := parse(fs, args, "bash|zsh", 1, 1)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "bash":
		writeBashCompletion(a.out)
	case "zsh":
		// zsh runs the bash function through its bash compatibility layer.
		fmt.Fprintln(a.out, `# zsh completion for plinth: source <(plinth completion zsh) in ~/.zshrc`)
		fmt.Fprintln(a.out, "autoload -U +X compinit && compinit; autoload -U +X bashcompinit && bashcompinit")
		writeBashCompletion(a.out)
	default:
		return usageErrorf("completion: %q: want bash or zsh", pos[0])
	}
	return nil
}

// nextWords maps each command path prefix ("" for none, "vm", "vm
// snapshot") to the words that may follow it, in the table's order.
func nextWords() map[string][]string {
	next := map[string][]string{}
	for _, c := range commands {
		words := strings.Fields(c.path)
		for i, w := range words {
			prefix := strings.Join(words[:i], " ")
			if !slices.Contains(next[prefix], w) {
				next[prefix] = append(next[prefix], w)
			}
		}
	}
	return next
}

// vmArgCommands take a VM's name as their first argument.
var vmArgCommands = []string{"vm show", "vm start", "vm stop", "vm shutdown", "vm reset", "vm delete", "vm console",
	"vm vnc", "vm export", "vm backup", "vm backups", "vm balloon", "vm disk add", "vm disk rm", "vm nic add", "vm nic rm",
	"vm usb add", "vm usb rm", "vm snapshot ls", "vm snapshot take", "vm snapshot revert", "vm snapshot rm", "vm clone",
	"vm template", "vm deploy", "vm history", "vm history diff", "vm history revert"}

func writeBashCompletion(w io.Writer) {
	next := nextWords()
	fmt.Fprintf(w, `# bash completion for plinth: eval "$(plinth completion bash)", or save it
# as /etc/bash_completion.d/plinth
_plinth_next() {
    case "$1" in
`)
	for _, prefix := range slices.Sorted(maps.Keys(next)) {
		fmt.Fprintf(w, "    %q) echo %q ;;\n", prefix, strings.Join(next[prefix], " "))
	}
	var paths []string
	for _, c := range commands {
		paths = append(paths, fmt.Sprintf("%q", c.path))
	}
	quoted := func(list []string) string {
		q := make([]string, len(list))
		for i, s := range list {
			q[i] = fmt.Sprintf("%q", s)
		}
		return strings.Join(q, "|")
	}
	fmt.Fprintf(w, `    esac
}
_plinth_cmd() {
    case "$1" in
    %s) return 0 ;;
    esac
    return 1
}
_plinth_complete() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local i n k w key="" server=""
    local -a pos=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        case "$w" in
        --server) i=$((i + 1)); server="${COMP_WORDS[i]}" ;;
        -*) ;;
        *) pos+=("$w") ;;
        esac
    done
    case "$prev" in
    --server|--name|--memory|--cpus|--expires|--fingerprint|--user|--timeout|--limit|--state|--cmdline|--boot|--interval|--description|--count|--name-pattern|--first|--reason)
        return ;;
    --file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --firmware) COMPREPLY=($(compgen -W "bios uefi" -- "$cur")); return ;;
    --machine) COMPREPLY=($(compgen -W "q35 pc microvm" -- "$cur")); return ;;
    esac
    if [[ ${#pos[@]} -eq 0 ]]; then
        COMPREPLY=($(compgen -W "$(_plinth_next "") --server --json" -- "$cur"))
        return
    fi
    # The command: the longest run of the first words that names one (or
    # the start of one).
    for ((n = ${#pos[@]}; n > 0; n--)); do
        k="${pos[0]}"
        for ((i = 1; i < n; i++)); do k+=" ${pos[i]}"; done
        if _plinth_cmd "$k" || [[ -n "$(_plinth_next "$k")" ]]; then key="$k"; break; fi
    done
`, strings.Join(paths, "|"))
	fmt.Fprintf(w, "    if [[ \"$cur\" == -* ]]; then\n        local flags=\"--server --json --help\"\n        case \"$key\" in\n")
	for _, c := range commands {
		if len(c.flags) > 0 {
			fmt.Fprintf(w, "        %q) flags+=\" %s\" ;;\n", c.path, strings.Join(c.flags, " "))
		}
	}
	fmt.Fprintf(w, "        esac\n        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n        return\n    fi\n")
	fmt.Fprintf(w, `    local words=""
    [[ $n -eq ${#pos[@]} ]] && words="$(_plinth_next "$key")"
    if ! _plinth_cmd "$key"; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return
    fi
    local -a srv=()
    [[ -n "$server" ]] && srv=(--server "$server")
    case "$key" in
    %s)
        [[ $n -eq ${#pos[@]} ]] && words+=" $(plinth "${srv[@]}" __complete vms 2>/dev/null)"
        COMPREPLY=($(compgen -W "$words" -- "$cur")) ;;
    "ds ls"|"ds rm")
        compopt -o nospace 2>/dev/null
        COMPREPLY=($(compgen -W "$(plinth "${srv[@]}" __complete datastores 2>/dev/null)" -- "$cur")) ;;
    "ds upload")
        if [[ ${#pos[@]} -eq 2 ]]; then COMPREPLY=($(compgen -f -- "$cur"))
        else compopt -o nospace 2>/dev/null; COMPREPLY=($(compgen -W "$(plinth "${srv[@]}" __complete datastores 2>/dev/null)" -- "$cur")); fi ;;
    "completion") COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "$words" -- "$cur")) ;;
    esac
}
complete -o default -F _plinth_complete plinth
`, quoted(vmArgCommands))
}

// complete answers the completion script's questions ("__complete vms",
// "__complete datastores"), one candidate a line, silently.
func (a *app) complete(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usageErrorf("__complete: want vms or datastores")
	}
	return a.call(ctx, 5*time.Second, func(c *client.Client) error {
		switch args[0] {
		case "vms":
			vms, err := c.ListVMs(ctx)
			if err != nil {
				return err
			}
			for _, v := range vms {
				fmt.Fprintln(a.out, v.Spec.Name)
			}
		case "datastores":
			dss, err := c.ListDatastores(ctx)
			if err != nil {
				return err
			}
			for _, d := range dss {
				fmt.Fprintln(a.out, d.Name+":")
			}
		default:
			return usageErrorf("__complete: want vms or datastores")
		}
		return nil
	})
}
