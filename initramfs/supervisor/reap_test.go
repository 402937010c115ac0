package supervisor

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReapOrphansLeavesServicesAlone makes the test process a child
// subreaper, so that it inherits orphans as PID 1 does, and runs services
// that exit at once (their exit statuses must still reach the supervisor)
// and one that leaves an orphan behind (which must be reaped, not left a
// zombie).
func TestReapOrphansLeavesServicesAlone(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	reaped := map[int]unix.WaitStatus{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ReapOrphans(ctx, func(pid int, ws unix.WaitStatus) { mu.Lock(); reaped[pid] = ws; mu.Unlock() })
	}()
	t.Cleanup(func() { cancel(); <-done })

	var console syncBuf
	s := New(&console)
	t.Cleanup(func() { _ = s.StopAll(context.Background()) })
	// exits at once, over and over: each exit status must be the
	// supervisor's, never stolen by the reaper.
	if err := s.Start(Spec{Name: "quick", Path: "/bin/sh", Args: []string{"-c", "exit 3"},
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: 20}); err != nil {
		t.Fatal(err)
	}
	// leaves a child behind that outlives it by a little, then exits 7.
	orphanFile := t.TempDir() + "/orphan.pid"
	if err := s.Start(Spec{Name: "parent", Path: "/bin/sh", Args: []string{"-c",
		"(sleep 0.3; exit 7) & echo $! > " + orphanFile + "; exit 0"}, MinBackoff: time.Hour}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the quick service to be given up on", 60*time.Second, func() bool {
		for _, st := range s.Status() {
			if st.Name == "quick" && st.State == Failed {
				return true
			}
		}
		return false
	})
	lines, _ := s.Lines("quick", 0)
	exits := 0
	for _, l := range lines {
		if strings.Contains(l, "exited after") {
			exits++
			if !strings.HasSuffix(l, "exit status 3") {
				t.Errorf("the supervisor saw %q, want exit status 3 (the reaper took its child?)", l)
			}
		}
	}
	if exits != 21 {
		t.Errorf("%d exits recorded, want 21:\n%s", exits, strings.Join(lines, "\n"))
	}
	var orphan int
	waitFor(t, "the orphan's pid", 10*time.Second, func() bool {
		b, _ := os.ReadFile(orphanFile)
		orphan, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return orphan > 0
	})
	waitFor(t, "the orphan to be reaped", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := reaped[orphan]
		return ok
	})
	mu.Lock()
	ws := reaped[orphan]
	for pid := range reaped {
		if pid != orphan {
			t.Errorf("reaped pid %d, which is not the orphan %d", pid, orphan)
		}
	}
	mu.Unlock()
	if !ws.Exited() || ws.ExitStatus() != 7 {
		t.Errorf("orphan's status %v, want exit 7", ws)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(orphan)); err == nil {
		t.Errorf("orphan %d is still in /proc (a zombie)", orphan)
	}
}

// TestReapOrphansLeavesOwnedZombies: a child started by startOwned that has
// exited stays for its own Wait however long that comes.
func TestReapOrphansLeavesOwnedZombies(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	stolen := make(chan int, 10)
	go func() {
		defer close(done)
		ReapOrphans(ctx, func(pid int, _ unix.WaitStatus) { stolen <- pid })
	}()
	t.Cleanup(func() { cancel(); <-done })
	cmd := exec.Command("/bin/sh", "-c", "exit 5")
	if err := startOwned(cmd); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the reaper has seen it exit by now
	err := cmd.Wait()
	disown(cmd.Process.Pid)
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 5 {
		t.Fatalf("Wait = %v (state %v), want exit status 5", err, cmd.ProcessState)
	}
	select {
	case pid := <-stolen:
		t.Fatalf("the reaper reaped %d", pid)
	default:
	}
}
