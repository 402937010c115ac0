package supervisor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOutputGoesToRingConsoleAndLog(t *testing.T) {
	var console syncBuf
	s := New(&console)
	logf := filepath.Join(t.TempDir(), "svc.log")
	if err := s.Start(Spec{Name: "echo", Path: "/bin/sh", Args: []string{"-c", "echo hello; echo world >&2; sleep 30"}, LogFile: logf}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.StopAll(context.Background()) })
	waitFor(t, "two lines", 5*time.Second, func() bool { l, _ := s.Lines("echo", 0); return len(l) == 2 })
	if !strings.Contains(console.String(), "[echo] hello\n") {
		t.Errorf("console = %q, want the prefixed line", console.String())
	}
	b, _ := os.ReadFile(logf)
	if !strings.Contains(string(b), " world\n") {
		t.Errorf("log file = %q, want the stderr line", b)
	}
	if st := s.Status()[0]; st.State != Running || st.PID == 0 {
		t.Errorf("status = %+v, want running with a pid", st)
	}
}

func TestRestartsWithBackoffThenGivesUp(t *testing.T) {
	var console syncBuf
	s := New(&console)
	start := time.Now()
	err := s.Start(Spec{Name: "crash", Path: "/bin/sh", Args: []string{"-c", "echo dying; exit 3"},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond, MaxRestarts: 3, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "failed state", 10*time.Second, func() bool { return s.Status()[0].State == Failed })
	st := s.Status()[0]
	if st.Restarts != 4 || st.LastExit != "exit status 3" {
		t.Errorf("status = %+v, want 4 exits, last exit status 3", st)
	}
	// back-offs 20+40+80 ms: it must not have restarted in a tight loop
	if el := time.Since(start); el < 140*time.Millisecond {
		t.Errorf("gave up after %s, back-off not applied", el)
	}
	out := console.String()
	if !strings.Contains(out, "SERVICE FAILED: crash exited 4 times") || !strings.Contains(out, "supervisor:   dying") {
		t.Errorf("console does not report the failure with last lines:\n%s", out)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	s := New(nil)
	// The shell ignores SIGTERM, so Stop must fall back to SIGKILL.
	if err := s.Start(Spec{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; echo ready; while :; do sleep 1; done"}, StopTimeout: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready", 5*time.Second, func() bool { l, _ := s.Lines("stubborn", 0); return len(l) == 1 })
	pid := s.Status()[0].PID
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Status()[0]; st.State != Stopped {
		t.Errorf("state = %s, want stopped", st.State)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("pid %d still exists after Stop", pid)
	}
	l, _ := s.Lines("stubborn", 0)
	if !strings.Contains(strings.Join(l, "\n"), "killed after") {
		t.Errorf("lines %q do not say it was killed", l)
	}
}

func TestStartMissingBinaryIsAnError(t *testing.T) {
	s := New(nil)
	err := s.Start(Spec{Name: "ghost", Path: "/nonexistent/ghost"})
	if err == nil || !strings.Contains(err.Error(), `start service "ghost"`) {
		t.Fatalf("err = %v, want a start error naming the service", err)
	}
	if err := s.Start(Spec{Name: "ghost", Path: "/bin/true"}); err == nil {
		t.Fatal("duplicate name accepted")
	}
}

func TestRing(t *testing.T) {
	r := NewRing(3)
	for _, l := range []string{"a", "b", "c", "d"} {
		r.Add(l)
	}
	if got := strings.Join(r.Last(0), ""); got != "bcd" {
		t.Errorf("Last(0) = %q, want bcd", got)
	}
	if got := strings.Join(r.Last(2), ""); got != "cd" {
		t.Errorf("Last(2) = %q, want cd", got)
	}
}
