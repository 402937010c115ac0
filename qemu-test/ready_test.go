package qemutest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// TestWaitReadyBootsAgainAfterRigAbort: a QEMU that dies before the ready
// line with the rig QEMU's own assertion (rigAbort) is booted again, once:
// the QMP commands sent before are sent again and the console log goes on.
// A second such death is WaitReady's error. (The "QEMU" here is a script
// that runs the real one, for its QMP socket, and then dies as the rig's
// did; its last run prints a ready line.)
func TestWaitReadyBootsAgainAfterRigAbort(t *testing.T) {
	for _, tc := range []struct {
		aborts  int
		wantErr bool
	}{{1, false}, {2, true}} {
		t.Run(fmt.Sprintf("aborts=%d", tc.aborts), func(t *testing.T) {
			o := floorOptions(t)
			o.Cmdline = FloorHangCmdline
			dir := t.TempDir()
			o.ConsoleLog = filepath.Join(dir, "console.log")
			var logged []string
			o.Logf = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
			fake := filepath.Join(dir, "qemu")
			script := fmt.Sprintf(`#!/bin/bash
real=%q runs=%q
n=$(cat "$runs" 2>/dev/null || echo 0); echo $((n+1)) >"$runs"
if [ "$n" -lt %d ]; then
	for ((i = 1; i <= $#; i++)); do [ "${!i}" = -qmp ] && { j=$((i+1)); sock=${!j#unix:}; sock=${sock%%%%,*}; }; done
	"$real" "$@" & q=$!
	for i in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
	sleep 3
	kill -9 $q; wait $q
	echo "qemu-system-x86_64: ../../hw/pci/msix.c:228: msix_table_mmio_write: Assertion 'addr + size <= dev->msix_entries_nr * PCI_MSIX_ENTRY_SIZE' failed." >&2
	kill -ABRT $$
fi
echo "PLINTH-READY mode=again"
exec "$real" "$@"
`, QEMUBinary, filepath.Join(dir, "runs"), tc.aborts)
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			old := QEMUBinary
			QEMUBinary = fake
			t.Cleanup(func() { QEMUBinary = old })
			before := RigRelaunches.Load()
			vm := startVM(t, o)
			if _, err := vm.qmpRun("stop", nil); err != nil {
				t.Fatal(err)
			}
			ready, err := vm.WaitReady(2 * time.Minute)
			runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
			if got := strings.TrimSpace(string(runs)); got != "2" {
				t.Errorf("QEMU ran %s times, want 2", got)
			}
			if n := RigRelaunches.Load() - before; n != 1 {
				t.Errorf("%d relaunches counted, want 1", n)
			}
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "msix_table_mmio_write") {
					t.Fatalf("WaitReady = %v, %v; want the second assertion as its error", ready, err)
				}
				return
			}
			if err != nil || ready["mode"] != "again" {
				t.Fatalf("WaitReady = %v, %v; want the second boot's ready line", ready, err)
			}
			// The command sent before the first boot reached the second QEMU:
			// its guest is paused.
			st, err := vm.qmpRun("query-status", nil)
			var status struct{ Running bool }
			if err == nil {
				err = json.Unmarshal(st, &status)
			}
			if err != nil || status.Running {
				t.Errorf("query-status after the relaunch: %s, %v; want the replayed stop", st, err)
			}
			log, _ := os.ReadFile(o.ConsoleLog)
			if !strings.Contains(string(log), "qemutest: the rig QEMU aborted (msix_table_mmio_write: Assertion") {
				t.Errorf("the console log does not say the first boot ended:\n%s", log)
			}
			if !strings.Contains(strings.Join(logged, "\n"), "booting again, once") {
				t.Errorf("the test log does not say so: %q", logged)
			}
		})
	}
}
