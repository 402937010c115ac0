package drivers

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Resolve maps what the kernel asks its modprobe helper for (a module name,
// or an alias such as "rtnl-link-bridge", "fs-ext4", "net-pf-10" or a
// device modalias) to module names, using modules.alias. A name that is a
// module (a key of modules, from ModulePaths) resolves to itself.
func Resolve(aliases []Alias, modules map[string]string, name string) []string {
	norm := strings.ReplaceAll(name, "-", "_")
	if _, ok := modules[norm]; ok {
		return []string{norm}
	}
	mods, _ := Match(aliases, []string{name})
	return mods
}

// ModulePaths reads modules.dep into a map from module name (with '_' for
// '-') to its path in the modules tree.
func ModulePaths(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		path, _, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := filepath.Base(path)
		name = name[:strings.Index(name+".ko", ".ko")]
		out[strings.ReplaceAll(name, "-", "_")] = path
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	return out, nil
}
