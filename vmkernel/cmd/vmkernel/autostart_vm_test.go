package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/inventory"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// TestAutostartAtStart: an inventory prepared before vmkernel starts (as on
// an appliance's STATE disk) with two autostart VMs (order 2 and 1) and one
// without; the real vmkernel starts the two, in order, leaves the third
// stopped, and logs the consoles to <-state>/vm-state/ID/console.log.
func TestAutostartAtStart(t *testing.T) {
	r := newSurvivalRig(t)
	inv, err := inventory.Open(filepath.Join(r.base, "state", "vms"))
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, on bool, order, delay int) api.VMSpec {
		s := api.VMSpec{
			Name: name, MemoryMiB: 256, Machine: api.MachinePC, Serial: true,
			Kernel:    &api.DirectBoot{Datastore: "ds", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: runnertest.Cmdline},
			Autostart: api.Autostart{Enabled: on, Order: order, DelaySeconds: delay},
		}
		if err := inv.Create(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	second := mk("auto-second", true, 2, 0)
	first := mk("auto-first", true, 1, 2)
	manual := mk("manual", false, 0, 0)

	d := r.start(t)
	var rts []api.VMRuntime
	for _, s := range []api.VMSpec{first, second} {
		rt, took := r.waitVM(t, s.ID, 120*time.Second, "autostarted", func(rt api.VMRuntime) bool {
			return rt.State == api.VMRunning && rt.PID != 0 && rt.StartedAt != nil
		})
		r.track(rt.PID)
		t.Cleanup(func() { syscall.Kill(-rt.PID, syscall.SIGKILL) })
		t.Logf("%s running (pid %d) %v later", s.Name, rt.PID, took)
		rts = append(rts, rt)
	}
	if gap := rts[1].StartedAt.Sub(*rts[0].StartedAt); gap < 2*time.Second {
		t.Errorf("%s started %v after %s, want order 1 first and its 2 s delay", second.Name, gap, first.Name)
	}
	if vm, err := r.c.GetVM(ctxT(t, 10*time.Second), manual.ID); err != nil || vm.Runtime.State != api.VMStopped {
		t.Errorf("VM without autostart: %+v, %v", vm.Runtime, err)
	}
	log := d.log()
	i1 := strings.Index(log, "vmkernel: autostart VM "+first.Name)
	i2 := strings.Index(log, "vmkernel: autostart VM "+second.Name)
	if i1 < 0 || i2 < 0 || i1 > i2 || strings.Contains(log, "autostart VM "+manual.Name) {
		t.Errorf("autostart log lines (first at %d, second at %d):\n%s", i1, i2, log)
	}
	t.Logf("marker on %s's console after %v", first.Name, r.waitConsole(t, first.ID, 1, 180*time.Second))
	if b, err := os.ReadFile(r.consoleLog(first.ID)); err != nil || !bytes.Contains(b, []byte(runnertest.Marker)) {
		t.Fatalf("%s (%v):\n%s", r.consoleLog(first.ID), err, b)
	}
	for _, s := range []api.VMSpec{first, second} {
		if _, err := r.c.VMAction(ctxT(t, 30*time.Second), s.ID, api.ActionStop); err != nil {
			t.Errorf("stop %s: %v", s.Name, err)
		}
	}
}
