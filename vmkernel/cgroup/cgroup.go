// Package cgroup puts each VM's QEMU in its own cgroup v2 group with the
// VM's CPU weight (the "shares" of ESXi and Proxmox), CPU limit and memory
// limit. Groups live under one parent, <root>/plinth.vms/vm-<ID>; the
// parent holds no process itself, as cgroup v2 requires of a group whose
// children use controllers.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrUnavailable: the host has no cgroup v2 hierarchy with the cpu and
// memory controllers (e.g. a host whose cpu and memory are in cgroup v1).
var ErrUnavailable = errors.New("no cgroup v2 hierarchy with the memory controller")

// ErrNoCPU: a VM asks for a CPU weight or cap on a host whose cgroup v2
// hierarchy has no cpu controller.
var ErrNoCPU = errors.New("the cpu controller is not available in cgroup v2 on this host")

// Limits are what a VM's group enforces; zero values mean the kernel's default.
type Limits struct {
	// CPUWeight is cpu.weight, 1-10000 (default 100): the VM's share of CPU
	// time when CPUs are contended.
	CPUWeight int
	// CPUPercent caps the VM at this much of one CPU (200 = two CPUs); 0 is no cap.
	CPUPercent int
	// MemoryBytes is memory.max; 0 is no limit.
	MemoryBytes int64
}

// Parent is the name of the group holding the VMs' groups.
const Parent = "plinth.vms"

// cpuPeriod is cpu.max's period in microseconds.
const cpuPeriod = 100000

// Manager makes and removes the VMs' groups under Root (a cgroup2 mount).
type Manager struct {
	Root string
	// CPU reports whether the cpu controller is enabled (weights and caps).
	CPU bool
}

// Find returns the cgroup2 mount point from /proc/self/mountinfo content.
func Find(mountinfo io.Reader) (string, error) {
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) >= 5 && len(g) >= 1 && g[0] == "cgroup2" {
			return f[4], nil
		}
	}
	return "", ErrUnavailable
}

// Open checks that root is a cgroup v2 hierarchy offering the memory
// controller, enables memory and (where offered) cpu for its children and
// makes the parent group. Without the cpu controller (still bound to a cgroup
// v1 hierarchy) VMs get memory limits, and a VM asking for a CPU weight or
// cap is refused at start with ErrNoCPU.
func Open(root string) (*Manager, error) {
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w: %w", root, ErrUnavailable, err)
	}
	have := strings.Fields(string(b))
	if !contains(have, "memory") {
		return nil, fmt.Errorf("cgroup %s offers %q: %w", root, have, ErrUnavailable)
	}
	m := &Manager{Root: root, CPU: contains(have, "cpu")}
	ctl := "+memory"
	if m.CPU {
		ctl = "+cpu +memory"
	}
	if err := enable(root, ctl); err != nil {
		return nil, err
	}
	parent := filepath.Join(root, Parent)
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	if err := enable(parent, ctl); err != nil {
		return nil, err
	}
	return m, nil
}

// enable turns on the controllers ctl ("+cpu +memory") for dir's children.
func enable(dir, ctl string) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(ctl), 0o644); err != nil {
		return fmt.Errorf("cgroup: enable %q in %s: %w", ctl, dir, err)
	}
	return nil
}

// Path is the group of a VM.
func (m *Manager) Path(vmID string) string {
	return filepath.Join(m.Root, Parent, "vm-"+vmID)
}

// Place makes the VM's group with its limits and moves pid into it.
func (m *Manager) Place(vmID string, pid int, l Limits) (string, error) {
	if strings.ContainsAny(vmID, "/.") || vmID == "" {
		return "", fmt.Errorf("cgroup: bad VM ID %q", vmID)
	}
	dir := m.Path(vmID)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	files, err := l.files(m.CPU)
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f[0]), []byte(f[1]), 0o644); err != nil {
			return "", fmt.Errorf("cgroup: set %s=%s for VM %s: %w", f[0], f[1], vmID, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return "", fmt.Errorf("cgroup: move QEMU pid %d of VM %s: %w", pid, vmID, err)
	}
	return dir, nil
}

// files are the control files and values Limits set, in order; without the
// cpu controller only memory.max, and a CPU setting is an error.
func (l Limits) files(cpu bool) ([][2]string, error) {
	w := l.CPUWeight
	if w == 0 {
		w = 100
	}
	if w < 1 || w > 10000 {
		return nil, fmt.Errorf("cgroup: cpu weight %d is outside 1-10000", w)
	}
	if l.CPUPercent < 0 || l.MemoryBytes < 0 {
		return nil, fmt.Errorf("cgroup: negative limit %+v", l)
	}
	max := "max " + strconv.Itoa(cpuPeriod)
	if l.CPUPercent > 0 {
		max = fmt.Sprintf("%d %d", cpuPeriod*l.CPUPercent/100, cpuPeriod)
	}
	mem := "max"
	if l.MemoryBytes > 0 {
		mem = strconv.FormatInt(l.MemoryBytes, 10)
	}
	if !cpu {
		if l.CPUWeight != 0 || l.CPUPercent != 0 {
			return nil, fmt.Errorf("cgroup: cpu weight %d, cap %d%%: %w", l.CPUWeight, l.CPUPercent, ErrNoCPU)
		}
		return [][2]string{{"memory.max", mem}}, nil
	}
	return [][2]string{{"cpu.weight", strconv.Itoa(w)}, {"cpu.max", max}, {"memory.max", mem}}, nil
}

// Remove deletes the VM's group once its processes are gone.
func (m *Manager) Remove(vmID string) error {
	if err := os.Remove(m.Path(vmID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cgroup: remove group of VM %s: %w", vmID, err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
