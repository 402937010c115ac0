// Package hostinfo gathers the facts a Plinth host reports about itself
// (api.Host): hostname, version, kernel release, CPU model and count, memory,
// uptime and the acceleration decision. The parsers take an io.Reader and the
// gatherer takes root paths, so tests run them on fixture text and fixture
// trees as well as on the live machine.
package hostinfo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
)

// Source says where to read host facts from. The zero value reads the live
// host ("/proc", "/sys") with an empty acceleration.
type Source struct {
	ProcRoot string // default "/proc"
	SysRoot  string // default "/sys"
	// Accel is the acceleration decision, made once at start (it does not
	// change while the host runs) and reported as is.
	Accel api.Acceleration
}

// Gather reads all host facts. An error names the file that failed.
func (s Source) Gather() (api.Host, error) {
	proc, sys := s.ProcRoot, s.SysRoot
	if proc == "" {
		proc = "/proc"
	}
	if sys == "" {
		sys = "/sys"
	}
	h := api.Host{Version: api.Version, Acceleration: s.Accel}
	var err error
	if h.Hostname, err = os.Hostname(); err != nil {
		return h, fmt.Errorf("hostname: %w", err)
	}
	if h.Kernel, err = KernelRelease(); err != nil {
		return h, err
	}
	ci, err := board.ReadCPUInfo(proc)
	if err != nil {
		return h, fmt.Errorf("host facts: %w", err)
	}
	if h.CPUModel = ci.Model; h.CPUModel == "" {
		h.CPUModel = "unknown"
	}
	if h.CPUCount, err = readWith(filepath.Join(sys, "devices", "system", "cpu", "online"), ParseCPUList); err != nil {
		return h, err
	}
	if h.MemoryBytes, err = readWith(filepath.Join(proc, "meminfo"), ParseMemTotal); err != nil {
		return h, err
	}
	if h.UptimeSeconds, err = readWith(filepath.Join(proc, "uptime"), ParseUptime); err != nil {
		return h, err
	}
	return h, nil
}

// readWith opens path and parses it, naming the file in any error.
func readWith[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("host facts: %w", err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("host facts: %s: %w", path, err)
	}
	return v, nil
}

// KernelRelease is uname -r.
func KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// ParseCPUList counts the CPUs in a kernel CPU list such as
// /sys/devices/system/cpu/online ("0-3,6,8-9").
func ParseCPUList(r io.Reader) (int, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64*1024))
	if err != nil {
		return 0, err
	}
	text := strings.TrimSpace(string(b))
	if text == "" {
		return 0, errors.New("empty CPU list")
	}
	n := 0
	for part := range strings.SplitSeq(text, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0, fmt.Errorf("bad CPU list entry %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("bad CPU list entry %q", part)
			}
		}
		n += b - a + 1
	}
	return n, nil
}

// ParseMemTotal returns MemTotal from /proc/meminfo text, in bytes.
func ParseMemTotal(r io.Reader) (uint64, error) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok || k != "MemTotal" {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("bad MemTotal line %q", s.Text())
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > (1<<64-1)/1024 {
			return 0, fmt.Errorf("bad MemTotal value %q", f[0])
		}
		return kb * 1024, nil
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no MemTotal line")
}

// ParseUptime returns the first field of /proc/uptime text, in seconds.
func ParseUptime(r io.Reader) (float64, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New("empty uptime")
	}
	up, err := strconv.ParseFloat(f[0], 64)
	if err != nil || up < 0 {
		return 0, fmt.Errorf("bad uptime %q", f[0])
	}
	return up, nil
}

// QEMUVersion runs `binary --version` and returns the version it prints,
// e.g. "7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)". It proves that QEMU and
// its libraries load, which the appliance's payload image must guarantee.
// It waits until ctx ends, or 20 s when ctx has no deadline; an answer
// that did not come in time is an error that wraps
// context.DeadlineExceeded.
func QEMUVersion(ctx context.Context, binary string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, binary, "--version")
	cmd.WaitDelay = 5 * time.Second // a child holding its output open does not hold us
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s --version: no answer in time: %w", binary, ctx.Err())
		}
		return "", fmt.Errorf("%s --version: %w: %s", binary, err, strings.TrimSpace(string(out)))
	}
	return ParseQEMUVersion(string(out))
}

// ParseQEMUVersion reads the first line of `qemu-system-x86_64 --version`.
func ParseQEMUVersion(out string) (string, error) {
	first, _, _ := strings.Cut(out, "\n")
	const prefix = "QEMU emulator version "
	if !strings.HasPrefix(first, prefix) {
		return "", fmt.Errorf("unexpected QEMU --version output %q", first)
	}
	return strings.TrimSpace(strings.TrimPrefix(first, prefix)), nil
}
