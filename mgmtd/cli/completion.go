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

// groups are the first words of two-word commands ("vm", "ds", ...).
func groups() map[string][]string {
	g := map[string][]string{}
	for _, c := range commands {
		if first, rest, ok := strings.Cut(c.path, " "); ok {
			g[first] = append(g[first], rest)
		}
	}
	return g
}

func writeBashCompletion(w io.Writer) {
	g := groups()
	var top []string
	for _, c := range commands {
		first, _, _ := strings.Cut(c.path, " ")
		if !slices.Contains(top, first) {
			top = append(top, first)
		}
	}
	fmt.Fprintf(w, `# bash completion for plinth: eval "$(plinth completion bash)", or save it
# as /etc/bash_completion.d/plinth
_plinth_complete() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local i w key="" server=""
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
    --server|--name|--memory|--cpus|--expires|--fingerprint|--user|--timeout|--limit|--state|--cmdline|--boot|--interval)
        return ;;
    --file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --firmware) COMPREPLY=($(compgen -W "bios uefi" -- "$cur")); return ;;
    --machine) COMPREPLY=($(compgen -W "q35 pc microvm" -- "$cur")); return ;;
    esac
    if [[ ${#pos[@]} -eq 0 ]]; then
        COMPREPLY=($(compgen -W "%s --server --json" -- "$cur"))
        return
    fi
    case "${pos[0]}" in
`, strings.Join(top, " "))
	for _, first := range slices.Sorted(maps.Keys(g)) {
		fmt.Fprintf(w, "    %s)\n        if [[ ${#pos[@]} -eq 1 ]]; then COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return; fi\n        key=\"${pos[0]} ${pos[1]}\" ;;\n",
			first, strings.Join(g[first], " "))
	}
	fmt.Fprintf(w, "    *) key=\"${pos[0]}\" ;;\n    esac\n")
	fmt.Fprintf(w, "    if [[ \"$cur\" == -* ]]; then\n        local flags=\"--server --json --help\"\n        case \"$key\" in\n")
	for _, c := range commands {
		if len(c.flags) > 0 {
			fmt.Fprintf(w, "        %q) flags+=\" %s\" ;;\n", c.path, strings.Join(c.flags, " "))
		}
	}
	fmt.Fprintf(w, "        esac\n        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n        return\n    fi\n")
	fmt.Fprintf(w, `    local -a srv=()
    [[ -n "$server" ]] && srv=(--server "$server")
    case "$key" in
    "vm show"|"vm start"|"vm stop"|"vm shutdown"|"vm reset"|"vm delete"|"vm console")
        COMPREPLY=($(compgen -W "$(plinth "${srv[@]}" __complete vms 2>/dev/null)" -- "$cur")) ;;
    "ds ls"|"ds rm")
        compopt -o nospace 2>/dev/null
        COMPREPLY=($(compgen -W "$(plinth "${srv[@]}" __complete datastores 2>/dev/null)" -- "$cur")) ;;
    "ds upload")
        if [[ ${#pos[@]} -eq 2 ]]; then COMPREPLY=($(compgen -f -- "$cur"))
        else compopt -o nospace 2>/dev/null; COMPREPLY=($(compgen -W "$(plinth "${srv[@]}" __complete datastores 2>/dev/null)" -- "$cur")); fi ;;
    "completion") COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
    esac
}
complete -o default -F _plinth_complete plinth
`)
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
