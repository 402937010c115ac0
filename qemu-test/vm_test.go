package qemutest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/internal/testenv"
)

// These tests run real QEMU on the floor guest (no appliance needed). They
// skip when there is no kernel or QEMU, so `go test ./...` stays safe.

var floor struct {
	once   sync.Once
	dir    string
	initrd string
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if n := RigRelaunches.Load(); n > 0 {
		fmt.Printf("qemutest: %d boot(s) started again after the rig QEMU's assertion (vm.go, rigAbort)\n", n)
	}
	if floor.dir != "" {
		os.RemoveAll(floor.dir)
	}
	if !scanAfterSuite() && code == 0 {
		code = 1 // a secret in a log (secrets_test.go)
	}
	os.Exit(code)
}

// floorOptions returns Options booting the floor guest, or skips the test.
func floorOptions(t *testing.T) Options {
	t.Helper()
	if _, err := exec.LookPath(QEMUBinary); err != nil {
		testenv.Unmet(t, "%s not installed: %v", QEMUBinary, err)
	}
	kernel, err := FindKernel()
	if err != nil {
		NoKernel(t, "skipping the QEMU tests of the harness: %v", err)
	}
	floor.once.Do(func() {
		if floor.dir, floor.err = os.MkdirTemp("", "plinth-floor-"); floor.err == nil {
			floor.initrd, floor.err = BuildFloor(floor.dir)
		}
	})
	if floor.err != nil {
		t.Fatalf("building the floor initramfs: %v", floor.err)
	}
	return Options{Kernel: kernel, Initrd: floor.initrd, Logf: t.Logf}
}

func startVM(t *testing.T, o Options) *VM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	vm, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	return vm
}

func TestFloorBootPowersOff(t *testing.T) {
	o := floorOptions(t)
	o.ConsoleLog = t.TempDir() + "/console.log"
	vm := startVM(t, o)
	if _, err := vm.Expect(FloorMarker, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("floor marker after %v", time.Since(vm.Started).Round(time.Millisecond))
	code, err := vm.Wait(60 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("QEMU exit = %d, %v; want 0", code, err)
	}
	log, err := os.ReadFile(o.ConsoleLog)
	if err != nil || !strings.Contains(string(log), FloorMarker) {
		t.Errorf("console log lacks the marker (err %v)", err)
	}
}

func TestFloorExpectTimeoutAndClose(t *testing.T) {
	o := floorOptions(t)
	o.Cmdline = FloorHangCmdline
	vm := startVM(t, o)
	if _, err := vm.Expect(FloorMarker, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := vm.Expect("no such line", 2*time.Second)
	if err == nil {
		t.Fatal("Expect of a line that never comes succeeded")
	}
	if d := time.Since(start); d > 30*time.Second { // the timeout, not a hang
		t.Errorf("Expect with a 2s timeout took %v", d)
	}
	if !strings.Contains(err.Error(), FloorMarker) || !strings.Contains(err.Error(), "last ") {
		t.Errorf("timeout error lacks the console tail:\n%v", err)
	}
	// The floor ignores the power button, but QMP must accept it.
	if err := vm.PowerDown(); err != nil {
		t.Errorf("PowerDown: %v", err)
	}
	pid := vm.Pid()
	vm.Close()
	if !vm.Exited() {
		t.Fatal("QEMU not reaped after Close")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU pid %d still exists after Close (kill 0: %v)", pid, err)
	}
	vm.Close() // idempotent
	if code, err := vm.Wait(time.Second); code != -1 || err != nil {
		t.Errorf("Wait after Close = %d, %v; want -1 (killed)", code, err)
	}
}

func TestStartPortInUse(t *testing.T) {
	o := floorOptions(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	o.HostPort = l.Addr().(*net.TCPAddr).Port
	vm, err := Start(context.Background(), o)
	if err == nil {
		vm.Close()
		t.Fatal("Start succeeded on a port that is in use")
	}
	if !errors.Is(err, ErrPortInUse) {
		t.Errorf("err = %v, want ErrPortInUse", err)
	}
	t.Log(err)
}

func TestStartFailureReported(t *testing.T) {
	o := floorOptions(t)
	o.ExtraArgs = []string{"-no-such-option"}
	vm, err := Start(context.Background(), o)
	if err == nil {
		vm.Close()
		t.Fatal("Start succeeded with a bad QEMU option")
	}
	if !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), "exit status") || !strings.Contains(err.Error(), "no-such-option") {
		t.Errorf("err = %v, want ErrStartFailed with exit status and stderr", err)
	}
	t.Log(err)
}

func TestContextCancelKills(t *testing.T) {
	o := floorOptions(t)
	o.Cmdline = FloorHangCmdline
	ctx, cancel := context.WithCancel(context.Background())
	vm, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	cancel()
	if _, err := vm.Wait(10 * time.Second); err != nil && !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait after the context was cancelled: %v, want the kill", err)
	}
	if !vm.Exited() {
		t.Error("QEMU still running after its context was cancelled")
	}
}

func TestCPUTime(t *testing.T) {
	vm := startVM(t, floorOptions(t))
	if _, err := vm.Expect(FloorMarker, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	d, err := vm.CPUTime()
	if err != nil || d <= 0 {
		t.Fatalf("CPUTime = %v, %v; want the CPU a boot took", d, err)
	}
	t.Logf("the floor's boot took %v of CPU", d)
}

// TestCloseSaysHowQEMUDied: a QEMU that dies on its own (here SIGABRT, as
// the rig's assertions end it) is named in the test's log by Close, with
// its exit; one the harness killed is not.
func TestCloseSaysHowQEMUDied(t *testing.T) {
	for _, ownDeath := range []bool{true, false} {
		o := floorOptions(t)
		o.Cmdline = FloorHangCmdline
		var logged []string
		o.Logf = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
		vm := startVM(t, o)
		if ownDeath {
			if err := syscall.Kill(vm.Pid(), syscall.SIGABRT); err != nil {
				t.Fatal(err)
			}
		} else if err := vm.Kill(); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.Wait(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		vm.Close()
		said := strings.Contains(strings.Join(logged, "\n"), "QEMU had ended on its own: signal: aborted")
		if said != ownDeath {
			t.Errorf("QEMU died on its own: %v; Close said so: %v (%q)", ownDeath, said, logged)
		}
	}
}

// A guest that ends QEMU by itself (with -no-reboot, a reset does; here
// the floor powers off, or reboots by a triple fault) without the test's
// power button: Close says so and shows QEMU's own log (Options.ResetLog,
// the CPU's state at each reset), and names a triple fault with
// RigLostGuest; after PowerDown it says nothing.
func TestCloseSaysTheGuestEndedQEMU(t *testing.T) {
	// early: Close comes as soon as QEMU's log names the triple fault,
	// before QEMU has exited (a test failing on the lost guest does).
	for _, c := range []struct {
		pressed, triple, early bool
	}{{false, false, false}, {false, true, false}, {true, false, false}, {false, true, true}} {
		pressed := c.pressed
		o := floorOptions(t)
		o.ConsoleLog = filepath.Join(t.TempDir(), "floor.console.log")
		switch {
		case pressed:
			o.Cmdline = FloorHangCmdline
		case c.triple:
			o.Cmdline = "plinthfloor=reboot reboot=t"
		}
		var logged []string
		o.Logf = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
		vm := startVM(t, o)
		if _, err := vm.Expect(FloorMarker, 120*time.Second); err != nil {
			t.Fatal(err)
		}
		if pressed {
			// The floor ignores the button: QEMU's quit stands for the
			// guest's power-off.
			if err := vm.PowerDown(); err != nil {
				t.Fatal(err)
			}
			if _, err := vm.qmpRun("quit", nil); err != nil && !vm.Exited() {
				t.Fatal(err)
			}
		}
		if c.early {
			for end := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if b, _ := os.ReadFile(o.ResetLog()); namesTripleFault(b) {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("QEMU's log %s names no triple fault after 60 s", o.ResetLog())
				}
			}
		} else if code, err := vm.Wait(60 * time.Second); err != nil || code != 0 {
			t.Fatalf("QEMU exit = %d, %v; want 0", code, err)
		}
		vm.Close()
		all := strings.Join(logged, "\n")
		said := strings.Contains(all, "QEMU had exited (status 0) with no power-down asked")
		if said == pressed {
			t.Errorf("power button pressed: %v; Close said the guest ended QEMU: %v (%q)", pressed, said, logged)
		}
		reason := "guest-shutdown"
		if c.triple {
			reason = "guest-reset"
		}
		if !pressed && !strings.Contains(all, `QMP events unread: SHUTDOWN {"guest": true, "reason": "`+reason+`"}`) {
			t.Errorf("Close did not give QEMU's SHUTDOWN event and its reason %s: %q", reason, logged)
		}
		if named := strings.Contains(all, RigLostGuest+" the guest's CPU triple-faulted"); named != c.triple {
			t.Errorf("triple fault: %v; Close named one: %v (%q)", c.triple, named, logged)
		}
		if !pressed && (!regexp.MustCompile(`QEMU's log `+regexp.QuoteMeta(o.ResetLog())+`(, which names a triple fault)? ends:\n`).MatchString(all) || !strings.Contains(all, "CPU Reset (CPU 0)")) {
			t.Errorf("Close did not show QEMU's reset log %s: %q", o.ResetLog(), logged)
		}
	}
}

// The rig's other way of losing the appliance: its kernel panics on a
// corrupted stack (the lines of a make test run on 2026-12-07, the
// appliance's console while the web client's tour ran a nested guest).
// rigLoss names it from the console; a console without it, and a QEMU log
// without a triple fault, name nothing.
func TestRigLossFromTheConsole(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		console, qemuLog, want string
	}{
		{"[   74.974037] BUG: TASK stack guard page was hit at 00000000bf2e016d (stack is 00000000b9e1cde1..000000005c5fcc8a)\n" +
			"[   74.994692] Kernel panic - not syncing: corrupted stack end detected inside scheduler\n",
			"CPU Reset (CPU 0)\n", "the guest's kernel found its stack corrupted: [   74.974037] BUG: TASK stack guard page was hit"},
		{"[   80.1] Kernel panic - not syncing: corrupted stack end detected inside scheduler\n", "", "the guest's kernel found its stack corrupted: [   80.1] Kernel panic"},
		{"plinth-init: powering off\n", "CPU Reset (CPU 0)\nTriple fault\n", "the guest's CPU triple-faulted (QEMU's log names it)"},
		{"plinth-init: powering off\n[  9.0] reboot: Power down\n", "CPU Reset (CPU 0)\n", ""},
	} {
		log := filepath.Join(dir, "g.console.log")
		if err := os.WriteFile(filepath.Join(dir, "g.qemu.log"), []byte(c.qemuLog), 0o644); err != nil {
			t.Fatal(err)
		}
		vm := &VM{opts: Options{ConsoleLog: log}, console: newConsole(io.Discard)}
		vm.console.Write([]byte(c.console))
		if got := vm.rigLoss(); !strings.HasPrefix(got, c.want) || (c.want == "") != (got == "") {
			t.Errorf("console %q, QEMU's log %q: rigLoss = %q, want %q...", c.console, c.qemuLog, got, c.want)
		}
	}
}
