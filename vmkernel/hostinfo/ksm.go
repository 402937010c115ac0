package hostinfo

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// KSM (kernel samepage merging) is host-side: ksmd merges identical pages
// of the memory QEMU marks mergeable (every guest's RAM, by default), so
// identical guests share what they have in common. Its counters are in
// sysfs; pages_sharing is how many pages the merging saved.

// KSM reads the kernel's KSM counters (nil, no error, on a kernel without
// KSM).
func (s Source) KSM() (*api.HostKSM, error) {
	dir := s.ksmDir()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil, nil
	}
	read := func(name string) (uint64, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	var k api.HostKSM
	run, err := read("run")
	if err != nil {
		return nil, fmt.Errorf("ksm: %w", err)
	}
	k.Running = run == 1
	page := uint64(os.Getpagesize())
	for _, f := range []struct {
		name string
		dst  *uint64
	}{{"pages_shared", &k.PagesShared}, {"pages_sharing", &k.PagesSharing}, {"pages_unshared", &k.PagesUnshared}, {"full_scans", &k.FullScans}} {
		if *f.dst, err = read(f.name); err != nil {
			return nil, fmt.Errorf("ksm: %w", err)
		}
	}
	k.SharedBytes, k.SavedBytes = k.PagesShared*page, k.PagesSharing*page
	return &k, nil
}

func (s Source) ksmDir() string {
	sys := s.SysRoot
	if sys == "" {
		sys = "/sys"
	}
	return filepath.Join(sys, "kernel", "mm", "ksm")
}

// SetKSM turns KSM on ("on"), off, unmerging what it merged ("off"), or
// leaves it as the kernel has it ("keep").
func SetKSM(mode string) error {
	var v string
	switch mode {
	case "keep", "":
		return nil
	case "on":
		v = "1"
	case "off":
		v = "2" // stop ksmd and unmerge every merged page
	default:
		return fmt.Errorf("ksm mode %q: want on, off or keep", mode)
	}
	p := filepath.Join(Source{}.ksmDir(), "run")
	if err := os.WriteFile(p, []byte(v), 0); err != nil {
		return fmt.Errorf("ksm: %w", err)
	}
	return nil
}
