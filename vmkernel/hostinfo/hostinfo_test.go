package hostinfo

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"

	"github.com/plinth/plinth/internal/testenv"
)

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-1\n": 2, "0-3,6,8-9": 7, "2": 1} {
		if got, err := ParseCPUList(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("ParseCPUList(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "3-1", "0-", "-1", "0,,1"} {
		if got, err := ParseCPUList(strings.NewReader(in)); err == nil {
			t.Errorf("ParseCPUList(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseMemTotal(t *testing.T) {
	got, err := ParseMemTotal(strings.NewReader("MemTotal:       24609876 kB\nMemFree: 1 kB\n"))
	if err != nil || got != 24609876*1024 {
		t.Errorf("ParseMemTotal = %d, %v", got, err)
	}
	for _, in := range []string{"", "MemFree: 1 kB\n", "MemTotal: x kB\n", "MemTotal: 12\n", "MemTotal: 99999999999999999999 kB\n"} {
		if got, err := ParseMemTotal(strings.NewReader(in)); err == nil {
			t.Errorf("ParseMemTotal(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseUptime(t *testing.T) {
	if got, err := ParseUptime(strings.NewReader("350735.47 234388.90\n")); err != nil || got != 350735.47 {
		t.Errorf("ParseUptime = %v, %v", got, err)
	}
	for _, in := range []string{"", "abc 1", "-3 1"} {
		if _, err := ParseUptime(strings.NewReader(in)); err == nil {
			t.Errorf("ParseUptime(%q) wants an error", in)
		}
	}
}

func fixture(t *testing.T) Source {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"proc/cpuinfo":                  "processor\t: 0\nmodel name\t: Test CPU\n",
		"proc/meminfo":                  "MemTotal: 2048 kB\n",
		"proc/uptime":                   "12.5 3.0\n",
		"sys/devices/system/cpu/online": "0-1\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Source{ProcRoot: filepath.Join(root, "proc"), SysRoot: filepath.Join(root, "sys"),
		Accel: api.Acceleration{Mode: api.AccelTCG, Reason: "tcg: test"}}
}

func TestGatherFixture(t *testing.T) {
	h, err := fixture(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	if h.CPUModel != "Test CPU" || h.CPUCount != 2 || h.MemoryBytes != 2048*1024 || h.UptimeSeconds != 12.5 ||
		h.Acceleration.Mode != api.AccelTCG || h.Version != api.Version || h.Hostname == "" || h.Kernel == "" {
		t.Errorf("Gather = %+v", h)
	}
}

func TestGatherMissingFileNamed(t *testing.T) {
	s := fixture(t)
	missing := filepath.Join(s.ProcRoot, "meminfo")
	if err := os.Remove(missing); err != nil {
		t.Fatal(err)
	}
	_, err := s.Gather()
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Gather without meminfo: %v; want an ErrNotExist naming %s", err, missing)
	}
}

func TestGatherLive(t *testing.T) {
	h, err := Source{}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if h.CPUCount < 1 || h.MemoryBytes == 0 || h.UptimeSeconds <= 0 || h.Kernel == "" {
		t.Errorf("live Gather = %+v", h)
	}
	t.Logf("live host: %+v", h)
}

func TestParseQEMUVersion(t *testing.T) {
	v, err := ParseQEMUVersion("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard\n")
	if err != nil || v != "7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)" {
		t.Errorf("got %q, %v", v, err)
	}
	if _, err := ParseQEMUVersion("qemu-img version 7.2\n"); err == nil {
		t.Error("accepted a non-QEMU-system line")
	}
}

func TestQEMUVersionLive(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	v, err := QEMUVersion(context.Background(), "qemu-system-x86_64")
	if err != nil || v == "" {
		t.Fatalf("QEMUVersion = %q, %v", v, err)
	}
	if _, err := QEMUVersion(context.Background(), "/nonexistent/qemu"); err == nil || !strings.Contains(err.Error(), "/nonexistent/qemu") {
		t.Errorf("missing binary: err = %v, want it named", err)
	}
}
