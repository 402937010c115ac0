// Command modprobe is the appliance's kernel module helper: the kernel runs
// it (through /proc/sys/kernel/modprobe) when something needs a module that
// is not loaded, e.g. "modprobe -q -- rtnl-link-bridge" when vmkernel makes
// its first virtual switch, or "fs-iso9660" on the first mount of an ISO.
// It also serves a shell user: modprobe NAME... loads modules by name or
// alias, with their dependencies.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/plinth/plinth/board/drivers"
	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var names []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue // -q, -b, --: the kernel's flags change nothing here
		}
		names = append(names, a)
	}
	if len(names) == 0 {
		return fmt.Errorf("usage: modprobe NAME|ALIAS...")
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
	f, err := os.Open(filepath.Join(dir, "modules.alias"))
	if err != nil {
		return err
	}
	aliases, err := drivers.ParseAliases(f)
	f.Close()
	if err != nil {
		return err
	}
	dep, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return err
	}
	modules, err := drivers.ModulePaths(dep)
	dep.Close()
	if err != nil {
		return err
	}
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		return err
	}
	var failed []string
	for _, n := range names {
		mods := drivers.Resolve(aliases, modules, n)
		if len(mods) == 0 {
			failed = append(failed, n+": no such module or alias in the image")
			continue
		}
		for _, m := range mods {
			if err := prober.Probe(m, ""); err != nil {
				failed = append(failed, fmt.Sprintf("%s (%s): %v", n, m, err))
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}
