package runner

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
)

// TestUEFIVarsImageAndPausedStart starts a UEFI VM whose state directory
// still holds raw variables from before: the start converts them into the
// qcow2 image QEMU gets as its second flash (the same bytes), and, started
// paused, the guest does not run until Resume.
func TestUEFIVarsImageAndPausedStart(t *testing.T) {
	testenv.Command(t, "qemu-img")
	r := newRig(t)
	m := r.m
	spec := guestSpec("uefi", api.OnCrashStayStopped)
	spec.Firmware, spec.Machine = api.FirmwareUEFI, api.MachineQ35
	spec.Kernel.Kernel = "vmlinuz" // OVMF loads a bzImage, not the PVH ELF
	spec.MemoryMiB = 256           // OVMF faults loading a direct-boot kernel in 128
	dir := filepath.Join(r.cfg.StateRoot, spec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(DefaultOVMFVars)
	if err != nil {
		testenv.Unmet(t, "no OVMF variables template: %v", err)
	}
	copy(raw[len(raw)-4096:], bytes.Repeat([]byte("plinth"), 600)) // in the spare end of the store
	if err := os.WriteFile(filepath.Join(dir, legacyVarsFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.StartPaused(ctxT(t, 60*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	if st := m.Status(spec.ID).State; st != api.VMPaused {
		t.Fatalf("started paused: state %s", st)
	}
	mon, err := m.Monitor(spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	var qs struct {
		Status string `json:"status"`
	}
	if err := mon.Run(ctxT(t, 5*time.Second), "query-status", nil, &qs); err != nil || qs.Status != "prelaunch" {
		t.Fatalf("query-status %+v, %v: want prelaunch (never ran)", qs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, legacyVarsFile)); !os.IsNotExist(err) {
		t.Errorf("the raw variables file is still there: %v", err)
	}
	out := filepath.Join(t.TempDir(), "vars.raw")
	if b, err := exec.Command("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", filepath.Join(dir, VarsFile), out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("the variables image does not hold the raw file's bytes (%d bytes, %v)", len(got), err)
	}
	if err := m.Resume(ctxT(t, 5*time.Second), spec.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("marker %v after resume", waitMarker(t, m, spec.ID, 3*time.Minute))
}
