package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"

	"github.com/plinth/plinth/internal/testenv"
)

func TestParseStartTime(t *testing.T) {
	// comm with spaces and a ')' must not shift the fields.
	line := "1234 (qemu (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 3 0 987654 123456 789"
	got, err := parseStartTime(line)
	if err != nil || got != 987654 {
		t.Fatalf("parseStartTime = %d, %v; want 987654", got, err)
	}
	if _, err := parseStartTime("1 (x) S 1"); err == nil {
		t.Fatal("short line accepted")
	}
	self, err := procStartTime(os.Getpid())
	if err != nil || self == 0 {
		t.Fatalf("procStartTime(self) = %d, %v", self, err)
	}
}

func TestStateErrorIsErrState(t *testing.T) {
	m, err := New(Config{QEMU: "qemu-system-x86_64", Accel: api.AccelTCG, RunRoot: runnertest.Dir(t, "run"), StateRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	id := api.NewUUID()
	for name, f := range map[string]func() error{
		"stop":     func() error { return m.Stop(context.Background(), id) },
		"pause":    func() error { return m.Pause(context.Background(), id) },
		"resume":   func() error { return m.Resume(context.Background(), id) },
		"reset":    func() error { return m.Reset(context.Background(), id) },
		"shutdown": func() error { return m.Shutdown(context.Background(), id, time.Second) },
	} {
		err := f()
		var se *StateError
		if !errors.Is(err, ErrState) || !errors.As(err, &se) || se.State != api.VMStopped {
			t.Errorf("%s of a stopped VM: %v, want a StateError saying stopped", name, err)
		}
	}
}

func TestStaleRuntimeRecordRemoved(t *testing.T) {
	state := t.TempDir()
	m, err := New(Config{QEMU: "qemu-system-x86_64", Accel: api.AccelTCG, RunRoot: runnertest.Dir(t, "run"), StateRoot: state})
	if err != nil {
		t.Fatal(err)
	}
	id := api.NewUUID()
	dir := filepath.Join(state, id)
	os.MkdirAll(dir, 0o700)
	st, _ := procStartTime(os.Getpid())
	// Our own pid with another start time: a reused pid, not the VM.
	if err := writeRuntime(dir, runtimeRecord{PID: os.Getpid(), StartTime: st + 1, QMPSocket: filepath.Join(dir, "none.sock")}); err != nil {
		t.Fatal(err)
	}
	ids, err := m.Reattach(context.Background(), []api.VMSpec{{ID: id, Name: "x"}})
	if err != nil || len(ids) != 0 {
		t.Fatalf("Reattach = %v, %v; want nothing", ids, err)
	}
	if _, err := os.Stat(filepath.Join(dir, RuntimeFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale record still there: %v", err)
	}
}

// --- with real QEMU (TCG) ---

type rig struct {
	m        *Manager
	cfg      Config
	ds       string
	bootTime time.Duration
}

func newRig(t *testing.T) *rig {
	t.Helper()
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	kernel := runnertest.Kernel(t, "../../build/vmlinuz")
	base := runnertest.Dir(t, "rn")
	ds := filepath.Join(base, "ds")
	os.MkdirAll(ds, 0o755)
	runnertest.Install(t, kernel, ds)
	cfg := Config{
		QEMU: bin, Accel: api.AccelTCG, Datastores: map[string]string{"ds": ds},
		RunRoot: filepath.Join(base, "run"), StateRoot: filepath.Join(base, "state"),
	}
	r := &rig{cfg: cfg, ds: ds}
	r.m = r.manager(t)
	return r
}

// manager makes a Manager on the rig's roots whose VMs are killed at the end.
func (r *rig) manager(t *testing.T) *Manager {
	m, err := New(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for _, id := range m.IDs() { // belt and braces: kill what StopAll might miss
			if pid := m.Status(id).PID; pid > 0 {
				defer syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
		m.StopAll(ctx)
		m.Close()
	})
	return m
}

func guestSpec(name, onCrash string) api.VMSpec {
	s := api.VMSpec{
		ID: api.NewUUID(), Name: name, MemoryMiB: 128, Machine: api.MachinePC, Serial: true,
		OnCrash: onCrash,
		Kernel:  &api.DirectBoot{Datastore: "ds", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: runnertest.Cmdline},
	}
	s.Defaults()
	return s
}

// waitMarker waits for the guest's marker in the Manager's console tail.
func waitMarker(t *testing.T, m *Manager, id string, timeout time.Duration) time.Duration {
	t.Helper()
	return runnertest.WaitConsole(t, func() ([]byte, error) { return m.ConsoleTail(id, 0) }, runnertest.Marker, timeout)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// stateWait is how long a test waits for a state that follows at once from
// what it did (a pause, a resume, a QEMU killed): a deadline that tells a
// missed change from a slow machine, not a bound on how fast it is.
const stateWait = 20 * time.Second

func wantState(t *testing.T, m *Manager, id, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		st := m.Status(id)
		if st.State == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("state %q after %v, want %q (%+v)", st.State, within, want, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestLifecycle(t *testing.T) {
	r := newRig(t)
	m := r.m
	spec := guestSpec("life", api.OnCrashStayStopped)
	t0 := time.Now()
	if err := m.Start(ctxT(t, 30*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	t.Logf("Start returned after %v", time.Since(t0))
	t.Logf("marker after %v", waitMarker(t, m, spec.ID, 120*time.Second))
	// Written through: the log on disk has the marker as soon as the tail does.
	if b, err := os.ReadFile(filepath.Join(r.cfg.StateRoot, spec.ID, ConsoleLogFile)); err != nil || !bytes.Contains(b, []byte(runnertest.Marker)) {
		t.Fatalf("console.log lacks the marker (%v):\n%s", err, b)
	}

	st := m.Status(spec.ID)
	if st.State != api.VMRunning || st.PID == 0 {
		t.Fatalf("status %+v, want running with a pid", st)
	}
	rec, err := readRuntime(filepath.Join(r.cfg.StateRoot, spec.ID))
	if err != nil || rec.PID != st.PID || rec.StartTime == 0 {
		t.Fatalf("runtime record %+v, %v", rec, err)
	}
	if err := m.Start(ctxT(t, 5*time.Second), spec); !errors.Is(err, ErrState) {
		t.Fatalf("Start of a running VM: %v, want ErrState", err)
	}
	if err := m.Resume(ctxT(t, 5*time.Second), spec.ID); !errors.Is(err, ErrState) {
		t.Fatalf("Resume of a running VM: %v, want ErrState", err)
	}
	if err := m.Pause(ctxT(t, 5*time.Second), spec.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, m, spec.ID, api.VMPaused, stateWait)
	if err := m.Resume(ctxT(t, 5*time.Second), spec.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, m, spec.ID, api.VMRunning, stateWait)
	if err := m.Reset(ctxT(t, 5*time.Second), spec.ID); err != nil {
		t.Fatal(err)
	}

	t0 = time.Now()
	if err := m.Stop(ctxT(t, 15*time.Second), spec.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(t0))
	st = m.Status(spec.ID)
	if st.State != api.VMStopped || st.LastExit == nil || st.LastExit.Reason != api.ExitRequested || st.PID != 0 {
		t.Fatalf("after Stop: %+v (exit %+v)", st, st.LastExit)
	}
	t.Logf("exit: %+v", *st.LastExit)
	if alive(rec.PID) {
		t.Fatalf("QEMU pid %d still alive after Stop", rec.PID)
	}
	if _, err := os.Stat(filepath.Join(r.cfg.StateRoot, spec.ID, RuntimeFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("runtime record left after a clean stop: %v", err)
	}

	// Again, and this time ACPI shutdown: this guest ignores the power
	// button, so Shutdown must fall back to a hard stop at its deadline.
	if err := m.Start(ctxT(t, 30*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if err := m.Shutdown(ctxT(t, 20*time.Second), spec.ID, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	t.Logf("Shutdown (2 s deadline, then hard stop) took %v", took)
	if took < 2*time.Second || took > 45*time.Second { // the deadline, then a hard stop (not a hang)
		t.Errorf("Shutdown took %v, want the 2 s deadline plus a hard stop", took)
	}
	st = m.Status(spec.ID)
	if st.State != api.VMStopped || st.LastExit == nil || st.LastExit.Reason != api.ExitRequested {
		t.Fatalf("after Shutdown: %+v", st)
	}
}

func TestCrashNoticedAndRestarted(t *testing.T) {
	r := newRig(t)
	m := r.m
	spec := guestSpec("crashy", api.OnCrashRestart)
	if err := m.Start(ctxT(t, 30*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	pid := m.Status(spec.ID).PID
	old := restartBackoff
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	noticed := wantState(t, m, spec.ID, api.VMCrashed, stateWait)
	tail, _ := m.ConsoleTail(spec.ID, 0)
	markers := bytes.Count(tail, []byte(runnertest.Marker))
	t.Logf("kill -9 noticed after %v", noticed)
	st := m.Status(spec.ID)
	if st.LastExit == nil || st.LastExit.Reason != api.ExitCrash || st.LastExit.Status != "signal: killed" {
		t.Fatalf("crash not recorded: %+v", st.LastExit)
	}
	if _, err := os.Stat(filepath.Join(r.cfg.StateRoot, spec.ID, RuntimeFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("runtime record of a dead QEMU left: %v", err)
	}
	back := wantState(t, m, spec.ID, api.VMRunning, old+30*time.Second)
	st = m.Status(spec.ID)
	if st.PID == 0 || st.PID == pid || st.Restarts != 1 {
		t.Fatalf("after restart: %+v", st)
	}
	t.Logf("restarted by policy %v after the crash was noticed (pid %d -> %d)", back, pid, st.PID)
	runnertest.WaitConsoleCount(t, func() ([]byte, error) { return m.ConsoleTail(spec.ID, 0) }, runnertest.Marker, markers+1, 120*time.Second)
}

func TestReattachAfterManagerRestart(t *testing.T) {
	r := newRig(t)
	spec := guestSpec("survivor", api.OnCrashStayStopped)
	if err := r.m.Start(ctxT(t, 30*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	pid := r.m.Status(spec.ID).PID
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	if err := r.m.Close(); err != nil { // vmkernel goes away; QEMU stays
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatal("QEMU died with its Manager")
	}
	m2 := r.manager(t)
	t0 := time.Now()
	ids, err := m2.Reattach(ctxT(t, 10*time.Second), []api.VMSpec{spec})
	if err != nil || len(ids) != 1 || ids[0] != spec.ID {
		t.Fatalf("Reattach = %v, %v", ids, err)
	}
	t.Logf("re-attached in %v", time.Since(t0))
	if st := m2.Status(spec.ID); st.State != api.VMRunning || st.PID != pid {
		t.Fatalf("re-attached status %+v, want running pid %d", st, pid)
	}
	// Not our child: death is seen through the pidfd and QMP's EOF.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 of a re-attached QEMU noticed after %v", wantState(t, m2, spec.ID, api.VMCrashed, stateWait))
	if e := m2.Status(spec.ID).LastExit; e == nil || e.Reason != api.ExitCrash {
		t.Fatalf("exit %+v", e)
	}
}

func TestCrashRestartGivesUp(t *testing.T) {
	r := newRig(t)
	m := r.m
	old := restartBackoff
	restartBackoff = 50 * time.Millisecond
	t.Cleanup(func() { restartBackoff = old })
	spec := guestSpec("flappy", api.OnCrashRestart)
	if err := m.Start(ctxT(t, 30*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= maxRestarts; i++ {
		wantState(t, m, spec.ID, api.VMRunning, 30*time.Second)
		st := m.Status(spec.ID)
		if st.Restarts != i {
			t.Fatalf("restarts %d, want %d", st.Restarts, i)
		}
		syscall.Kill(st.PID, syscall.SIGKILL)
		wantState(t, m, spec.ID, api.VMCrashed, stateWait)
	}
	// The fourth crash within the window: no more restarts.
	time.Sleep(restartBackoff<<maxRestarts + 500*time.Millisecond)
	if st := m.Status(spec.ID); st.State != api.VMCrashed || st.Restarts != maxRestarts {
		t.Fatalf("after %d crashes: %+v, want crashed with %d restarts", maxRestarts+1, st, maxRestarts)
	}
	// A start asked for by the user still works, and resets the count.
	if err := m.Start(ctxT(t, 30*time.Second), spec); err != nil {
		t.Fatal(err)
	}
	if st := m.Status(spec.ID); st.State != api.VMRunning || st.Restarts != 0 {
		t.Fatalf("after a manual start: %+v", st)
	}
}

// A disk that leaves its datastore through a symlink is refused before QEMU
// (which runs as root) could open it.
func TestSymlinkOutOfDatastoreRefused(t *testing.T) {
	r := newRig(t)
	outside := filepath.Join(t.TempDir(), "secret.img")
	if err := os.WriteFile(outside, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(r.ds, "sneaky.img")); err != nil {
		t.Fatal(err)
	}
	spec := guestSpec("sneaky", "")
	spec.Disks = []api.Disk{{Datastore: "ds", Path: "sneaky.img", Format: "raw"}}
	spec.Defaults()
	err := r.m.Start(ctxT(t, 30*time.Second), spec)
	if !errors.Is(err, datastore.ErrEscapes) {
		t.Fatalf("Start = %v, want datastore.ErrEscapes", err)
	}
	if st := r.m.Status(spec.ID); st.PID != 0 {
		t.Errorf("QEMU %d started anyway", st.PID)
	}
}

func TestAccelNowDecidesEachStart(t *testing.T) {
	asked := 0
	why := errors.New("kvm_amd is still loading")
	var events []string
	m, err := New(Config{QEMU: "qemu-system-x86_64", Accel: api.AccelKVM, RunRoot: runnertest.Dir(t, "run"), StateRoot: t.TempDir(),
		OnState: func(id, name, state, detail string) { events = append(events, state+" "+detail) },
		AccelNow: func(ctx context.Context) (string, error) {
			asked++
			if ctx == nil {
				t.Error("AccelNow got no context")
			}
			return "", why
		}})
	if err != nil {
		t.Fatal(err)
	}
	spec := guestSpec("accel", api.OnCrashStayStopped)
	err = m.Start(context.Background(), spec)
	if !errors.Is(err, ErrStartFailed) || !strings.Contains(err.Error(), why.Error()) {
		t.Fatalf("Start = %v; want ErrStartFailed naming %q", err, why)
	}
	if asked != 1 {
		t.Fatalf("AccelNow asked %d times, want 1", asked)
	}
	if st := m.Status(spec.ID); st.State == api.VMRunning || st.State == api.VMStarting || st.PID != 0 {
		t.Fatalf("status after a refused start: %+v", st)
	}
	// The events say why (an autostart has no caller to tell).
	if len(events) != 2 || events[0] != api.VMStarting+" " || !strings.HasPrefix(events[1], api.VMStopped+" start failed: ") || !strings.Contains(events[1], why.Error()) {
		t.Errorf("state events %q; want starting, then stopped saying the start failed and why", events)
	}
}
