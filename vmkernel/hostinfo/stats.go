package hostinfo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// ClockTicks is the kernel's USER_HZ, the unit of /proc's CPU times (100 on
// every Linux architecture Plinth runs on).
const ClockTicks = 100

// Stats reads the host's counters: CPU time per mode, memory, uptime. An
// error names the file that failed.
func (s Source) Stats() (api.HostStats, error) {
	proc := s.ProcRoot
	if proc == "" {
		proc = "/proc"
	}
	var st api.HostStats
	var err error
	if st.CPUSeconds, err = readWith(filepath.Join(proc, "stat"), ParseProcStat); err != nil {
		return st, err
	}
	mem, err := readWith(filepath.Join(proc, "meminfo"), ParseMemInfo)
	if err != nil {
		return st, err
	}
	st.MemoryTotalBytes, st.MemoryAvailableBytes = mem["MemTotal"], mem["MemAvailable"]
	if st.UptimeSeconds, err = readWith(filepath.Join(proc, "uptime"), ParseUptime); err != nil {
		return st, err
	}
	if st.KSM, err = s.KSM(); err != nil {
		return st, err
	}
	return st, nil
}

// ParseProcStat returns the "cpu" line (all CPUs) of /proc/stat text, in
// seconds per mode.
func ParseProcStat(r io.Reader) (api.HostCPUSeconds, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		// user nice system idle iowait irq softirq steal (older kernels
		// stop earlier: the rest stay 0).
		if len(f) < 5 {
			return api.HostCPUSeconds{}, fmt.Errorf("short cpu line %q", s.Text())
		}
		var v [8]float64
		for i := 0; i < len(v) && i+1 < len(f); i++ {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return api.HostCPUSeconds{}, fmt.Errorf("bad cpu field %q", f[i+1])
			}
			v[i] = float64(n) / ClockTicks
		}
		return api.HostCPUSeconds{User: v[0], Nice: v[1], System: v[2], Idle: v[3],
			IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}, nil
	}
	if err := s.Err(); err != nil {
		return api.HostCPUSeconds{}, err
	}
	return api.HostCPUSeconds{}, errors.New("no cpu line")
}

// ParseMemInfo returns the kB lines of /proc/meminfo (or of a
// /proc/PID/status) in bytes, by key.
func ParseMemInfo(r io.Reader) (map[string]uint64, error) {
	out := map[string]uint64{}
	s := bufio.NewScanner(r)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > (1<<64-1)/1024 {
			return nil, fmt.Errorf("bad %s value %q", k, f[0])
		}
		out[k] = kb * 1024
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no kB lines")
	}
	return out, nil
}

// ParsePIDStat returns utime+stime of /proc/PID/stat text, in seconds.
func ParsePIDStat(r io.Reader) (float64, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64*1024))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself: fields are counted after the last ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime %q or stime %q", f[11], f[12])
	}
	return float64(utime+stime) / ClockTicks, nil
}

// Process reads a process's CPU time (user plus system, seconds) and
// resident memory (VmRSS, bytes).
func (s Source) Process(pid int) (cpuSeconds float64, rssBytes uint64, err error) {
	proc := s.ProcRoot
	if proc == "" {
		proc = "/proc"
	}
	dir := filepath.Join(proc, strconv.Itoa(pid))
	if cpuSeconds, err = readWith(filepath.Join(dir, "stat"), ParsePIDStat); err != nil {
		return 0, 0, err
	}
	status, err := readWith(filepath.Join(dir, "status"), ParseMemInfo)
	if err != nil {
		return cpuSeconds, 0, err
	}
	return cpuSeconds, status["VmRSS"], nil
}

// TapBytes reads a network interface's rx and tx byte counters
// (/sys/class/net/NAME/statistics).
func (s Source) TapBytes(name string) (rx, tx uint64, err error) {
	sys := s.SysRoot
	if sys == "" {
		sys = "/sys"
	}
	dir := filepath.Join(sys, "class", "net", name, "statistics")
	read := func(file string) (uint64, error) {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return 0, fmt.Errorf("host stats: %w", err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("host stats: %s/%s: %w", dir, file, err)
		}
		return v, nil
	}
	if rx, err = read("rx_bytes"); err != nil {
		return 0, 0, err
	}
	if tx, err = read("tx_bytes"); err != nil {
		return 0, 0, err
	}
	return rx, tx, nil
}
