package qemutest

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestProgressIgnoresLockupReports(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := progress{last: t0}
	p.update([]string{"[    1.0] Linux version 6.1", "plinth-init: step state done"}, t0.Add(time.Second))
	if !p.last.Equal(t0.Add(time.Second)) {
		t.Fatalf("ordinary lines are progress: last = %v", p.last)
	}
	report := []string{"[    1.0] Linux version 6.1", "plinth-init: step state done",
		"[   30.1] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [plinth-init:1]",
		"[   30.1] Modules linked in: ahci",
		"[   30.1] RIP: 0010:__inode_attach_wb+0x21/0x1d0",
		"",
		"[   58.0] rcu: INFO: rcu_preempt self-detected stall on CPU"}
	p.update(report, t0.Add(time.Minute))
	if !p.last.Equal(t0.Add(time.Second)) || p.reports != 5 {
		t.Fatalf("report lines counted as progress: last = %v, reports = %d", p.last, p.reports)
	}
	p.update(append(report, "plinth-init: step services done"), t0.Add(2*time.Minute))
	if !p.last.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("an init line after a report is progress: last = %v", p.last)
	}
}

// TestWaitReadyReportsAStall boots the floor guest told to print its
// marker and then stay silent: waiting for a ready line that never comes,
// the harness calls it a stall once the console is quiet for StallSilence,
// and shows the vCPUs' registers.
func TestWaitReadyReportsAStall(t *testing.T) {
	o := floorOptions(t)
	o.Cmdline = FloorHangCmdline
	vm := startVM(t, o)
	if _, err := vm.Expect(FloorMarker, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	old := StallSilence
	StallSilence = 3 * time.Second
	t.Cleanup(func() { StallSilence = old })
	t0 := time.Now()
	_, err := vm.WaitReady(5 * time.Minute)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("WaitReady = %v, want ErrStalled", err)
	}
	if d := time.Since(t0); d > time.Minute {
		t.Errorf("the stall was reported after %v", d)
	}
	for _, want := range []string{"query-cpus-fast", "thread-id", "info registers -a (sample 2)", "RIP=", FloorMarker} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the stall report lacks %q:\n%v", want, err)
		}
	}
	if _, werr := vm.Wait(30 * time.Second); werr != nil && !vm.Exited() {
		t.Errorf("QEMU still running after the stall: %v", werr)
	}
}
