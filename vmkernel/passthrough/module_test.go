package passthrough

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A VM with PCI devices started before the init has loaded vfio_pci and
// vfio_iommu_type1 (it does after the ready line): the claim asks for the
// modules and waits for them, within vfioModuleWait.
func TestVFIODriverWait(t *testing.T) {
	defer func(w time.Duration) { vfioModuleWait = w }(vfioModuleWait)
	vfioModuleWait = 2 * time.Second
	for _, tc := range []struct {
		name    string
		load    func(h *Host, drv string) func(string) error
		late    bool // the driver appears a while later, by itself
		wantErr string
	}{
		{"already registered", nil, false, ""},
		{"the helper loads it", func(h *Host, drv string) func(string) error {
			return func(name string) error {
				switch name {
				case "vfio_pci":
					return os.MkdirAll(drv, 0o755)
				case "vfio_iommu_type1":
					return os.MkdirAll(filepath.Join(h.Sys, "module", name), 0o755)
				}
				t.Errorf("asked for %q", name)
				return errors.New("no such module")
			}
		}, false, ""},
		{"the init loads it meanwhile", nil, true, ""},
		{"the init loads it meanwhile, the helper failed", func(*Host, string) func(string) error {
			return func(string) error { return errors.New("helper failed") }
		}, true, ""},
		{"never", func(*Host, string) func(string) error {
			return func(string) error { return errors.New("no such module or alias in the image") }
		}, false, "module vfio_pci is not loaded (no such module or alias in the image)"},
		{"never, nothing to ask", nil, false, "after 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Host{Sys: t.TempDir()}
			drv := filepath.Join(h.Sys, "bus/pci/drivers", VFIODriver)
			type1 := filepath.Join(h.Sys, "module/vfio_iommu_type1")
			if tc.name == "already registered" {
				for _, d := range []string{drv, type1} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tc.load != nil {
				h.LoadModule = tc.load(h, drv)
			}
			if tc.late {
				tm := time.AfterFunc(500*time.Millisecond, func() { os.MkdirAll(drv, 0o755); os.MkdirAll(type1, 0o755) })
				defer tm.Stop()
			}
			t0 := time.Now()
			err := h.vfioDriver()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("vfioDriver: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrVFIO)):
				t.Fatalf("vfioDriver: %v, want an ErrVFIO saying %q", err, tc.wantErr)
			case tc.wantErr != "" && time.Since(t0) < vfioModuleWait:
				t.Errorf("gave up after %v, before vfioModuleWait", time.Since(t0))
			}
		})
	}
}

// RequestModule runs what /proc/sys/kernel/modprobe names, as the kernel
// does ("-q -- NAME"), and refuses a helper that is not an absolute path.
func TestRequestModule(t *testing.T) {
	defer func(p string) { modprobeHelper = p }(modprobeHelper)
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	helper := filepath.Join(dir, "modprobe")
	if err := os.WriteFile(helper, []byte("#!/bin/sh\necho \"$@\" > "+out+"\n[ \"$3\" = vfio_pci ] || { echo \"no $3\" >&2; exit 1; }\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	modprobeHelper = filepath.Join(dir, "helper-name")
	if err := os.WriteFile(modprobeHelper, []byte(helper+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RequestModule("vfio_pci"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "-q -- vfio_pci\n" {
		t.Errorf("the helper got %q", b)
	}
	if err := RequestModule("nosuch"); err == nil || !strings.Contains(err.Error(), "no nosuch") {
		t.Errorf("a failing helper: %v", err)
	}
	if err := os.WriteFile(modprobeHelper, []byte("modprobe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RequestModule("vfio_pci"); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("a relative helper: %v", err)
	}
	modprobeHelper = filepath.Join(dir, "missing")
	if err := RequestModule("vfio_pci"); err == nil {
		t.Error("no helper: no error")
	}
}
