// Package board is Plinth's knowledge of the machine it boots on: an inventory
// of the system, CPU, memory, PCI devices, NICs, disks and sensors, read from
// /sys, /proc and the block devices. Everything is read under a Root, so that
// sysfs/procfs trees captured from other machines (see Capture) test it off
// the hardware. A file that is missing, unreadable or malformed leaves its
// field empty and names the gap in api.Hardware.Gaps; it is never an error.
// Package board/drivers decides which kernel modules the hardware needs.
package board

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Root says where the trees the inventory reads are mounted.
type Root struct {
	// Sys and Proc are sysfs and procfs, normally /sys and /proc.
	Sys  string
	Proc string
	// Dev holds the block device nodes whose superblocks give partition
	// labels, normally /dev; empty skips partition labels.
	Dev string
	// PCIIDs is the PCI ID database (pci.ids) that names PCI devices; empty
	// leaves them unnamed.
	PCIIDs string
}

// DefaultPCIIDs are where distributions install pci.ids, tried in order.
var DefaultPCIIDs = []string{"/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"}

// DefaultRoot is the running machine.
func DefaultRoot() Root {
	r := Root{Sys: "/sys", Proc: "/proc", Dev: "/dev", PCIIDs: DefaultPCIIDs[0]}
	for _, p := range DefaultPCIIDs {
		if _, err := os.Stat(p); err == nil {
			r.PCIIDs = p
			break
		}
	}
	return r
}

// FixtureRoot is a tree written by Capture: dir/sys and dir/proc, no devices.
func FixtureRoot(dir, pciIDs string) Root {
	return Root{Sys: filepath.Join(dir, "sys"), Proc: filepath.Join(dir, "proc"), PCIIDs: pciIDs}
}

// reader reads logical paths ("/sys/...", "/proc/...", "/dev/...") under a
// Root, collects gaps, and, when capturing, remembers every path it touched.
type reader struct {
	root    Root
	gaps    []string
	touched map[string]bool // nil unless capturing
}

// path maps a logical path to the file under the root.
func (r *reader) path(logical string) string {
	for _, m := range []struct{ prefix, dir string }{{"/sys", r.root.Sys}, {"/proc", r.root.Proc}, {"/dev", r.root.Dev}} {
		if logical == m.prefix || strings.HasPrefix(logical, m.prefix+"/") {
			return m.dir + logical[len(m.prefix):]
		}
	}
	return logical
}

func (r *reader) touch(logical string) {
	if r.touched != nil {
		r.touched[logical] = true
	}
}

// gap records that area could not read logical, for reason (an error or a string).
func (r *reader) gap(area, logical string, reason any) {
	msg := ""
	switch v := reason.(type) {
	case error:
		msg = describe(v)
	case string:
		msg = v
	}
	r.gaps = append(r.gaps, area+": "+logical+": "+msg)
}

// describe strips the path from an error, which the gap already names.
func describe(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// read returns the trimmed contents of logical, recording a gap for area
// when it cannot be read.
func (r *reader) read(area, logical string) (string, bool) {
	s, err := r.readErr(logical)
	if err != nil {
		r.gap(area, logical, err)
		return "", false
	}
	return s, true
}

// optional reads an attribute whose absence is normal (a NIC's speed when
// the link is down, a disk's serial on some buses): no gap.
func (r *reader) optional(logical string) string {
	s, _ := r.readErr(logical)
	return s
}

func (r *reader) readErr(logical string) (string, error) {
	r.touch(logical)
	b, err := os.ReadFile(r.path(logical))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// exists reports whether logical exists (following links).
func (r *reader) exists(logical string) bool {
	_, err := os.Stat(r.path(logical))
	if err == nil {
		r.touch(logical)
	}
	return err == nil
}

// linkBase is the last element of the target of the symlink logical, "" when
// it is no symlink.
func (r *reader) linkBase(logical string) string {
	t, err := os.Readlink(r.path(logical))
	if err != nil {
		return ""
	}
	r.touch(logical)
	return filepath.Base(t)
}

// realpath resolves the symlinks in logical, staying logical: a sysfs class
// link becomes its "/sys/devices/..." path. It is "" when logical does not
// resolve inside its tree.
func (r *reader) realpath(logical string) string {
	p := r.path(logical)
	rp, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	base, err := filepath.EvalSymlinks(r.path("/sys"))
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(base, rp)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return ""
	}
	r.touch(logical)
	return filepath.ToSlash(filepath.Join("/sys", rel))
}

// list returns the sorted names in the directory logical, recording a gap
// for area when it cannot be listed and required is set.
func (r *reader) list(area, logical string, required bool) []string {
	ents, err := os.ReadDir(r.path(logical))
	if err != nil {
		if required || !errors.Is(err, fs.ErrNotExist) {
			r.gap(area, logical, err)
		}
		return nil
	}
	r.touch(logical)
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		// sysfs and procfs hold no dot files; a fixture's .keep (see
		// Capture) is no device.
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}
