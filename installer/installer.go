// Package installer puts Plinth on a disk. The boot media themselves (the
// USB stick / disk image and the hybrid ISO) are made at build time by
// installer/mkimage.sh; this package is the part that runs on the host: it
// lists the disks that can take an install (Candidates), refusing the boot
// medium and disks in use and warning about disks that hold data or another
// Plinth; plans the layout (Plan); and writes it (Install): the boot
// medium's EFI system partition (boot loaders, bank A with the running
// kernel and initramfs, an empty bank B) copied as it is, a STATE file
// system carrying the configuration made so far, and a datastore on the
// rest of the disk, then reads everything back to check it. Unattended
// installs take their answers from an answer file (ParseAnswer, FindAnswer).
//
// The DCUI, the API and plinth-install all call Plan and Install; progress
// comes back through a callback.
package installer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
	"github.com/plinth/plinth/layout"
)

// The layout of a Plinth disk (stick or installed). The ESP has the same
// start and size on both, so that the stick's ESP, with syslinux's boot
// sector that knows where it lies, can be copied to the disk byte for byte.
const (
	ESPFirstLBA  = 2048
	ESPSize      = 256 << 20
	StateSize    = 1 << 30
	MinDatastore = 1 << 30
	// MinDiskSize is the smallest disk Plan accepts.
	MinDiskSize = ESPFirstLBA*SectorSize + ESPSize + StateSize + MinDatastore + 1<<20

	LabelESP       = "PLINTH-EFI"
	LabelState     = "PLINTH-STATE"
	LabelDatastore = "PLINTH-DS1"
)

// Candidate is one disk as a possible install target.
type Candidate struct {
	Disk api.HostDisk
	// BootMedium: the disk Plinth runs from (it holds the mounted STATE or
	// the ESP the running kernel came from).
	BootMedium bool
	// Refused says why the disk cannot be a target; "" when it can.
	Refused string
	// Warnings say what installing would destroy: data, another Plinth.
	Warnings []string
}

// Env is where the installer finds the running system; DefaultEnv is the
// appliance.
type Env struct {
	Sys, Proc, Dev string
	StateDir       string
	// Mke2fs is the mke2fs binary (from the appliance's payload).
	Mke2fs string
}

// DefaultEnv is the running appliance.
func DefaultEnv() Env {
	e := Env{Sys: "/sys", Proc: "/proc", Dev: "/dev", StateDir: layout.StateDir}
	for _, p := range []string{"/usr/sbin/mke2fs", "/sbin/mke2fs", "/usr/bin/mke2fs"} {
		if _, err := os.Stat(p); err == nil {
			e.Mke2fs = p
			break
		}
	}
	return e
}

// mountedDisks maps each disk that has a mounted file system (on itself or
// on one of its partitions) to the mount points.
func (e Env) mountedDisks() map[string][]string {
	out := map[string][]string{}
	b, err := os.ReadFile(filepath.Join(e.Proc, "self", "mountinfo"))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// Field 3 is MAJOR:MINOR of the mounted device.
		dev := e.diskOf(f[2])
		if dev != "" {
			out[dev] = append(out[dev], f[4])
		}
	}
	return out
}

// diskOf maps a block device number MAJOR:MINOR to its disk's name (vda for
// vda2), "" when it is not a block device under /sys/block.
func (e Env) diskOf(majmin string) string {
	p, err := filepath.EvalSymlinks(filepath.Join(e.Sys, "dev", "block", majmin))
	if err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(p, "partition")); err == nil {
		p = filepath.Dir(p)
	}
	name := filepath.Base(p)
	if _, err := os.Stat(filepath.Join(e.Sys, "block", name)); err != nil {
		return ""
	}
	return name
}

// stateDisk is the disk whose partition is mounted on the STATE directory.
func (e Env) stateDisk() string {
	b, err := os.ReadFile(filepath.Join(e.Proc, "self", "mountinfo"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[4] == e.StateDir {
			return e.diskOf(f[2])
		}
	}
	return ""
}

// Candidates sorts the board's disks into possible targets and refusals.
func Candidates(hw api.Hardware, e Env) []Candidate {
	mounted := e.mountedDisks()
	boot := e.stateDisk()
	var out []Candidate
	for _, d := range hw.Disks {
		c := Candidate{Disk: d, BootMedium: d.Name == boot}
		switch {
		case c.BootMedium:
			c.Refused = "it is the boot medium Plinth is running from"
		case strings.HasPrefix(d.Name, "sr") || strings.HasPrefix(d.Name, "loop") || strings.HasPrefix(d.Name, "ram"):
			c.Refused = "not a disk"
		case len(mounted[d.Name]) > 0:
			c.Refused = "in use: mounted on " + strings.Join(mounted[d.Name], ", ")
		case d.SizeBytes < MinDiskSize:
			c.Refused = fmt.Sprintf("too small: %s, Plinth needs at least %s", HumanSize(d.SizeBytes), HumanSize(MinDiskSize))
		}
		if n := e.logicalBlockSize(d.Name); n != 0 && n != SectorSize && c.Refused == "" {
			c.Refused = fmt.Sprintf("%d-byte logical sectors are not supported yet", n)
		}
		if d.PlinthInstall {
			c.Warnings = append(c.Warnings, "holds another Plinth installation")
		}
		if len(d.Partitions) > 0 {
			var parts []string
			for _, p := range d.Partitions {
				s := p.Name
				if p.FSType != "" {
					s += " " + p.FSType
				}
				if p.Label != "" {
					s += " " + strconv.Quote(p.Label)
				}
				parts = append(parts, s)
			}
			c.Warnings = append(c.Warnings, "holds data: partitions "+strings.Join(parts, ", "))
		} else if e.hasSignature(d.Name) {
			c.Warnings = append(c.Warnings, "holds data: its first sectors are not blank")
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Disk.Name < out[j].Disk.Name })
	return out
}

func (e Env) logicalBlockSize(name string) int {
	b, err := os.ReadFile(filepath.Join(e.Sys, "block", name, "queue", "logical_block_size"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// hasSignature reports whether the disk's first 64 KiB are not all zero.
func (e Env) hasSignature(name string) bool {
	f, err := os.Open(filepath.Join(e.Dev, name))
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 64<<10)
	n, _ := f.ReadAt(b, 0)
	for _, c := range b[:n] {
		if c != 0 {
			return true
		}
	}
	return false
}

// HumanSize is 1.5 GiB, 512 MiB...
func HumanSize(b uint64) string {
	switch {
	case b >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(b)/(1<<40))
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	default:
		return fmt.Sprintf("%d MiB", b>>20)
	}
}

// Errors callers can test with errors.Is.
var (
	ErrNoDisk      = errors.New("no disk matches")
	ErrAmbiguous   = errors.New("more than one disk matches")
	ErrRefused     = errors.New("disk refused")
	ErrNeedsForce  = errors.New("disk holds data or another Plinth; overwrite not allowed")
	ErrNoSource    = errors.New("no Plinth boot medium to install from")
	ErrVerifyFails = errors.New("verification failed")
)

// Select picks the target among candidates with sel: exactly one eligible
// disk must match. With overwrite false, a disk with warnings is refused,
// and does not count when exactly one blank disk matches too.
func Select(cands []Candidate, sel DiskSelector, overwrite bool) (Candidate, error) {
	var match []Candidate
	var refused []string
	for _, c := range cands {
		if !sel.Matches(c.Disk) {
			continue
		}
		if c.Refused != "" {
			refused = append(refused, c.Disk.Name+": "+c.Refused)
			continue
		}
		match = append(match, c)
	}
	// Without overwrite, a single blank disk among disks holding data is
	// the one meant.
	if len(match) > 1 && !overwrite {
		var blank []Candidate
		for _, c := range match {
			if len(c.Warnings) == 0 {
				blank = append(blank, c)
			}
		}
		if len(blank) == 1 {
			match = blank
		}
	}
	switch {
	case len(match) == 0 && len(refused) > 0:
		return Candidate{}, fmt.Errorf("%w: %s", ErrRefused, strings.Join(refused, "; "))
	case len(match) == 0:
		var names []string
		for _, c := range cands {
			names = append(names, fmt.Sprintf("%s (%s, model %q, serial %q)", c.Disk.Name, HumanSize(c.Disk.SizeBytes), c.Disk.Model, c.Disk.Serial))
		}
		return Candidate{}, fmt.Errorf("%w; the disks are: %s", ErrNoDisk, strings.Join(names, ", "))
	case len(match) > 1:
		var names []string
		for _, c := range match {
			names = append(names, c.Disk.Name)
		}
		return Candidate{}, fmt.Errorf("%w: %s (say which with disk.path, disk.serial, disk.model or disk sizes)", ErrAmbiguous, strings.Join(names, ", "))
	}
	c := match[0]
	if len(c.Warnings) > 0 && !overwrite {
		return Candidate{}, fmt.Errorf("%w: %s %s (set overwrite = yes to erase it)", ErrNeedsForce, c.Disk.Name, strings.Join(c.Warnings, "; "))
	}
	return c, nil
}

// InstallTo is the one call for the DCUI and the API: install to the disk
// named disk (sdb or /dev/sdb) of the running host, carrying over the
// configuration in STATE (password, network, host name), reporting
// progress. overwrite allows a disk that holds data or another Plinth
// (the caller asked the user); the boot medium and disks in use are
// always refused.
func InstallTo(ctx context.Context, disk string, overwrite bool, progress func(Progress)) error {
	env := DefaultEnv()
	hw, err := board.Read(board.DefaultRoot())
	if err != nil {
		return fmt.Errorf("reading the disks: %w", err)
	}
	c, err := Select(Candidates(hw, env), DiskSelector{Path: disk}, overwrite)
	if err != nil {
		return err
	}
	plan, err := NewPlan(env, c, Config{})
	if err != nil {
		return err
	}
	return Install(ctx, plan, progress)
}
