package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	mi := "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n" +
		"30 22 0:26 / /sys/fs/cgroup/memory rw shared:9 - cgroup cgroup rw,memory\n" +
		"35 22 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
	if got, err := Find(strings.NewReader(mi)); err != nil || got != "/sys/fs/cgroup/unified" {
		t.Errorf("Find = %q, %v", got, err)
	}
	if _, err := Find(strings.NewReader("22 1 0:21 / /sys rw - sysfs sysfs rw\n")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no cgroup2: err = %v", err)
	}
}

// fakeRoot is a directory laid out like a cgroup2 root. The kernel makes the
// control files of a new group itself; here Place just writes them.
func fakeRoot(t *testing.T, controllers string) string {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte(controllers+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPlace(t *testing.T) {
	root := fakeRoot(t, "cpuset cpu io memory pids")
	m, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, filepath.Join(root, Parent)} {
		if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control")); string(b) != "+cpu +memory" {
			t.Errorf("%s subtree_control = %q", dir, b)
		}
	}
	dir, err := m.Place("abc-123", 4242, Limits{CPUWeight: 200, CPUPercent: 150, MemoryBytes: 512 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"cpu.weight": "200", "cpu.max": "150000 100000", "memory.max": "536870912", "cgroup.procs": "4242"} {
		if b, _ := os.ReadFile(filepath.Join(dir, file)); string(b) != want {
			t.Errorf("%s = %q, want %q", file, b, want)
		}
	}
	dir2, err := m.Place("def", 1, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"cpu.weight": "100", "cpu.max": "max 100000", "memory.max": "max"} {
		if b, _ := os.ReadFile(filepath.Join(dir2, file)); string(b) != want {
			t.Errorf("defaults: %s = %q, want %q", file, b, want)
		}
	}
	if _, err := m.Place("x", 1, Limits{CPUWeight: 20000}); err == nil || !strings.Contains(err.Error(), "1-10000") {
		t.Errorf("weight 20000: err = %v", err)
	}
	if _, err := m.Place("../escape", 1, Limits{}); err == nil {
		t.Error("a VM ID with a path in it was accepted")
	}
}

func TestMemoryOnly(t *testing.T) {
	root := fakeRoot(t, "cpuset io memory pids")
	m, err := Open(root)
	if err != nil || m.CPU {
		t.Fatalf("Open = %+v, %v; want memory only", m, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, Parent, "cgroup.subtree_control")); string(b) != "+memory" {
		t.Errorf("subtree_control = %q", b)
	}
	dir, err := m.Place("m", 7, Limits{MemoryBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "memory.max")); string(b) != "1073741824" {
		t.Errorf("memory.max = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "cpu.weight")); err == nil {
		t.Error("cpu.weight written without the cpu controller")
	}
	if _, err := m.Place("c", 7, Limits{CPUWeight: 200}); !errors.Is(err, ErrNoCPU) {
		t.Errorf("CPU weight without the controller: err = %v, want ErrNoCPU", err)
	}
}

func TestOpenRefusesWithoutControllers(t *testing.T) {
	if _, err := Open(fakeRoot(t, "hugetlb")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no cgroup.controllers: err = %v", err)
	}
}
