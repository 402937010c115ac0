package main_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"

	"github.com/plinth/plinth/internal/testenv"
)

// daemon is one vmkernel process started by the test.
type daemon struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
}

// survivalRig is the real vmkernel binary and the directories every
// vmkernel of the test shares.
type survivalRig struct {
	bin, base, ds, socket string
	c                     *client.Client

	mu   sync.Mutex
	pids []int // QEMUs seen, killed (as groups) at the end
}

func newSurvivalRig(t *testing.T) *survivalRig {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	kernel := runnertest.Kernel(t, "../../../build/vmlinuz")
	base, err := os.MkdirTemp("", "sv") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o711); err != nil { // the VMs' users pass through to their run directories
		t.Fatal(err)
	}
	r := &survivalRig{base: base, ds: filepath.Join(base, "ds"), socket: filepath.Join(base, "vmkernel.sock")}
	t.Cleanup(func() {
		r.mu.Lock()
		for _, pid := range r.pids { // whatever is left of the VMs
			syscall.Kill(-pid, syscall.SIGKILL)
		}
		r.mu.Unlock()
		os.RemoveAll(base)
	})
	os.MkdirAll(r.ds, 0o755)
	runnertest.Install(t, kernel, r.ds)
	r.bin = filepath.Join(t.TempDir(), "vmkernel")
	build := exec.Command("go", "build", "-o", r.bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if r.c, err = client.NewVMKernel(r.socket, client.WithTimeout(time.Minute)); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *survivalRig) track(pid int) {
	r.mu.Lock()
	r.pids = append(r.pids, pid)
	r.mu.Unlock()
}

// start runs vmkernel on the rig's directories and waits (30 s at most) for
// its socket to answer; it is SIGKILLed at the end of the test.
func (r *survivalRig) start(t *testing.T) *daemon {
	t.Helper()
	d := &daemon{stderr: &bytes.Buffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(r.bin,
		"-socket", r.socket,
		"-state", filepath.Join(r.base, "state"),
		"-run", filepath.Join(r.base, "run"),
		"-datastore", "ds="+r.ds,
		"-socket-gid", strconv.Itoa(os.Getgid()),
		"-accel", "tcg")
	d.cmd.Stderr = &syncWriter{w: d.stderr}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			t.Errorf("vmkernel pid %d not reaped", d.cmd.Process.Pid)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := r.c.Health(ctx)
		cancel()
		if err == nil {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("vmkernel exited: %v\n%s", d.cmd.ProcessState, d.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vmkernel's socket did not answer within 30 s: %v\n%s", err, d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) log() string {
	w := d.cmd.Stderr.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	s := d.stderr.String()
	return s[max(0, len(s)-3000):]
}

// kill9 SIGKILLs vmkernel (only its own process group: the QEMUs have theirs).
func (d *daemon) kill9(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(d.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		t.Fatal("vmkernel did not die of SIGKILL within 5 s")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// procStat returns the state letter and the start time (field 22) of pid.
func procStat(pid int) (state string, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return "", 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0], start, err
}

// alive: the process exists and is not a zombie (a QEMU whose vmkernel died
// is init's child; init reaps it when it gets to it).
func alive(pid int) bool {
	st, _, err := procStat(pid)
	return err == nil && st != "Z" && st != "X"
}

// waitVM polls GetVM until ok says yes, failing after within.
func (r *survivalRig) waitVM(t *testing.T, id string, within time.Duration, what string, ok func(api.VMRuntime) bool) (api.VMRuntime, time.Duration) {
	t.Helper()
	start := time.Now()
	var last api.VMRuntime
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		vm, err := r.c.GetVM(ctx, id)
		cancel()
		if err == nil {
			last = vm.Runtime
			if ok(last) {
				return last, time.Since(start)
			}
		}
		if time.Since(start) > within {
			t.Fatalf("VM %s: not %s within %v (last %+v, err %v)", id, what, within, last, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConsole waits until the VM's console tail (over the API) shows the
// guest's marker n times.
func (r *survivalRig) waitConsole(t *testing.T, id string, n int, within time.Duration) time.Duration {
	t.Helper()
	return runnertest.WaitConsoleCount(t, func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return r.c.VMConsole(ctx, id)
	}, runnertest.Marker, n, within)
}

// consoleLog is where vmkernel logs the VM's console: <-state>/vm-state/ID/console.log.
func (r *survivalRig) consoleLog(id string) string {
	return filepath.Join(r.base, "state", "vm-state", id, "console.log")
}

// TestSurvivesKill9 is the survival promise with the real binary: kill -9
// vmkernel while three VMs run; a new vmkernel finds all three running,
// re-attached, not restarted; it notices a QEMU killed under it within a
// second and restarts it by policy; and it stops them all.
func TestSurvivesKill9(t *testing.T) {
	r := newSurvivalRig(t)
	d1 := r.start(t)

	type vmInfo struct {
		id    string
		pid   int
		start uint64
	}
	var vms []vmInfo
	for i, onCrash := range []string{api.OnCrashStayStopped, api.OnCrashStayStopped, api.OnCrashRestart} {
		spec := api.VMSpec{
			Name: fmt.Sprintf("survivor%d", i), MemoryMiB: 256, Machine: api.MachinePC, Serial: true, OnCrash: onCrash,
			Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: runnertest.Cmdline},
		}
		vm, err := r.c.CreateVM(ctxT(t, 10*time.Second), spec)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		vm, err = r.c.VMAction(ctxT(t, 60*time.Second), vm.Spec.ID, api.ActionStart)
		if err != nil {
			t.Fatalf("start %s: %v\n%s", spec.Name, err, d1.log())
		}
		if vm.Runtime.State != api.VMRunning || vm.Runtime.PID == 0 {
			t.Fatalf("after start: %+v", vm.Runtime)
		}
		r.track(vm.Runtime.PID)
		_, st, err := procStat(vm.Runtime.PID)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s started in %v, pid %d", spec.Name, time.Since(t0), vm.Runtime.PID)
		vms = append(vms, vmInfo{vm.Spec.ID, vm.Runtime.PID, st})
	}
	// vmkernel holds the serial sockets and keeps what the guests print
	// (the socket itself keeps nothing for a viewer that comes late).
	for i, v := range vms {
		t.Logf("VM %d marker after %v more", i, r.waitConsole(t, v.id, 1, 180*time.Second))
	}

	// Watch the QEMUs from before the kill until the new vmkernel has them.
	stopWatch := make(chan struct{})
	watchDone := make(chan []string)
	go func() {
		var deaths []string
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, v := range vms {
				if !alive(v.pid) && len(deaths) < 10 {
					deaths = append(deaths, fmt.Sprintf("pid %d gone at %s", v.pid, time.Now().Format(time.StampMicro)))
				}
			}
			select {
			case <-stopWatch:
				watchDone <- deaths
				return
			case <-tick.C:
			}
		}
	}()

	d1.kill9(t)
	t0 := time.Now()
	r.start(t)
	t.Logf("new vmkernel answering %v after the kill", time.Since(t0))
	for _, v := range vms {
		rt, _ := r.waitVM(t, v.id, 5*time.Second, "running", func(rt api.VMRuntime) bool { return rt.State == api.VMRunning })
		if rt.PID != v.pid {
			t.Errorf("VM %s: pid %d after the restart, was %d (restarted, not re-attached)", v.id, rt.PID, v.pid)
		}
		if _, st, err := procStat(v.pid); err != nil || st != v.start {
			t.Errorf("VM %s: pid %d start time %d (%v), was %d", v.id, v.pid, st, err, v.start)
		}
	}
	close(stopWatch)
	if deaths := <-watchDone; len(deaths) > 0 {
		t.Fatalf("QEMU processes died across the vmkernel restart: %v", deaths)
	}
	if t.Failed() {
		t.FailNow()
	}
	// The new vmkernel reconnected the console readers: a reset guest boots
	// again and its second marker reaches the log (checked further down,
	// while the crash test runs).
	if _, err := r.c.VMAction(ctxT(t, 10*time.Second), vms[0].id, api.ActionReset); err != nil {
		t.Fatal(err)
	}

	// kill -9 a QEMU under the new vmkernel: crash noticed, then restarted
	// by its policy (the third VM says restart).
	crashy := vms[2]
	if err := syscall.Kill(crashy.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	rt, noticed := r.waitVM(t, crashy.id, 1500*time.Millisecond, "crashed", func(rt api.VMRuntime) bool { return rt.State == api.VMCrashed })
	if rt.LastExit == nil || rt.LastExit.Reason != api.ExitCrash {
		t.Fatalf("crash not recorded: %+v", rt.LastExit)
	}
	t.Logf("kill -9 of a re-attached QEMU seen as crashed after %v (exit recorded %v after the kill): %+v",
		noticed, rt.LastExit.Time.Sub(killed), *rt.LastExit)
	rt, back := r.waitVM(t, crashy.id, 60*time.Second, "restarted", func(rt api.VMRuntime) bool {
		return rt.State == api.VMRunning && rt.PID != 0 && rt.PID != crashy.pid
	})
	r.track(rt.PID)
	if rt.Restarts != 1 {
		t.Errorf("restarts %d, want 1", rt.Restarts)
	}
	t.Logf("restarted by policy %v later, pid %d -> %d", back, crashy.pid, rt.PID)
	vms[2].pid = rt.PID
	t.Logf("reset VM's second marker after %v more", r.waitConsole(t, vms[0].id, 2, 180*time.Second))
	if b, err := os.ReadFile(r.consoleLog(vms[0].id)); err != nil || bytes.Count(b, []byte(runnertest.Marker)) != 2 {
		t.Fatalf("console.log on disk (%v):\n%s", err, b)
	}

	for _, v := range vms {
		vm, err := r.c.VMAction(ctxT(t, 30*time.Second), v.id, api.ActionStop)
		if err != nil {
			t.Fatalf("stop %s: %v", v.id, err)
		}
		if vm.Runtime.State != api.VMStopped {
			t.Errorf("VM %s after stop: %+v", v.id, vm.Runtime)
		}
		deadline := time.Now().Add(5 * time.Second)
		for alive(v.pid) {
			if time.Now().After(deadline) {
				t.Fatalf("QEMU pid %d still alive 5 s after stop", v.pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
