// Command modprobe is the appliance's kernel module helper: the kernel runs
// it (through /proc/sys/kernel/modprobe) when something needs a module that
// is not loaded, e.g. "modprobe -q -- rtnl-link-bridge" when vmkernel makes
// its first virtual switch, or "fs-iso9660" on the first mount of an ISO.
// It also serves a shell user: modprobe NAME... loads modules by name or
// alias, with their dependencies. The work is board/drivers' Loader's.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/board/drivers"
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
	l, err := drivers.NewLoader(filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:])), "/sys", nil)
	if err != nil {
		return err
	}
	var failed []string
	for _, n := range names {
		mods := l.Resolve(n)
		if len(mods) == 0 {
			failed = append(failed, n+": no such module or alias in the image")
			continue
		}
		if _, err := l.Load(mods...); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", n, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}
