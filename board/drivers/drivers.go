// Package drivers decides which kernel modules the hardware needs, the way
// udev's cold-plug does on a general-purpose distribution: every device in
// sysfs publishes a modalias, and the kernel's modules.alias maps glob patterns
// of those to module names. Devices that appear after the cold-plug scan
// announce themselves with kernel uevents (ListenUevents), udev's hot-plug.
package drivers

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Alias is one line of modules.alias: "alias PATTERN MODULE".
type Alias struct {
	Pattern string
	Module  string
	// prefix is Pattern's literal start (before its first wildcard),
	// which every modalias it matches starts with; ParseAliases sets it.
	prefix string
}

// literalPrefix is the part of a modules.alias pattern before its first
// fnmatch(3) wildcard or escape.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// ParseAliases reads modules.alias.
func ParseAliases(r io.Reader) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 3 || f[0] != "alias" {
			return nil, fmt.Errorf("modules.alias line %d: want \"alias PATTERN MODULE\", got %q", n, sc.Text())
		}
		out = append(out, Alias{Pattern: f[1], Module: f[2], prefix: literalPrefix(f[1])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.alias: %w", err)
	}
	return out, nil
}

// Match returns, sorted and without repeats, the modules whose alias patterns
// match any of the modaliases, and the modaliases that matched none.
//
// An alias whose literal start the modalias does not share is passed over
// without matching its glob: most of modules.alias names one vendor's PCI
// or USB IDs, and a full glob match of every alias against every device
// cost the appliance's boot seconds of CPU under TCG (the cold-plug matches
// again after each module it loads).
func Match(aliases []Alias, modaliases []string) (modules, unmatched []string) {
	seen := map[string]bool{}
	for _, ma := range modaliases {
		hit := false
		for _, a := range aliases {
			p := a.prefix
			if p == "" { // an Alias not made by ParseAliases, or a pattern starting with a wildcard
				p = literalPrefix(a.Pattern)
			}
			if !strings.HasPrefix(ma, p) {
				continue
			}
			// modules.alias uses fnmatch(3) globs; modaliases hold no '/',
			// so path.Match is the same thing here.
			if ok, err := path.Match(a.Pattern, ma); err == nil && ok {
				hit = true
				if !seen[a.Module] {
					seen[a.Module] = true
					modules = append(modules, a.Module)
				}
			}
		}
		if !hit {
			unmatched = append(unmatched, ma)
		}
	}
	sort.Strings(modules)
	return modules, unmatched
}

// Device is a device in sysfs with its modalias.
type Device struct {
	// Path is the device's sysfs path relative to the sysfs root, e.g.
	// "bus/pci/devices/0000:00:02.0".
	Path     string
	Modalias string
	// Driver is the name of the bound driver, "" when none is.
	Driver string
}

// Devices lists the devices under sysRoot (normally /sys) that publish a
// modalias: every bus's devices, plus the CPU (whose modalias selects
// kvm_intel or kvm_amd and CPU-specific crypto and sensor drivers).
func Devices(sysRoot string) ([]Device, error) {
	// Each bus's device directory is listed and each device's modalias
	// read directly: a glob of bus/*/devices/*/modalias lists every
	// device's own directory too, which cost the cold-plug, looking again
	// after each module it loads, most of its sysfs time.
	buses, err := os.ReadDir(filepath.Join(sysRoot, "bus"))
	if err != nil {
		return nil, fmt.Errorf("list devices under %s: %w", sysRoot, err)
	}
	var dirs []string
	for _, b := range buses {
		devs, err := os.ReadDir(filepath.Join(sysRoot, "bus", b.Name(), "devices"))
		if err != nil {
			continue // a bus without devices, or one going away
		}
		for _, d := range devs {
			dirs = append(dirs, filepath.Join(sysRoot, "bus", b.Name(), "devices", d.Name()))
		}
	}
	dirs = append(dirs, filepath.Join(sysRoot, "devices", "system", "cpu"))
	var out []Device
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "modalias"))
		if err != nil {
			continue // no modalias; devices come and go; the cpu file may not exist
		}
		ma := strings.TrimSpace(string(b))
		if ma == "" {
			continue
		}
		rel, _ := filepath.Rel(sysRoot, dir)
		d := Device{Path: rel, Modalias: ma}
		if target, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
			d.Driver = filepath.Base(target)
		}
		out = append(out, d)
	}
	return out, nil
}
