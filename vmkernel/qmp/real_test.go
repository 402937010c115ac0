package qmp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/internal/testenv"
)

// startQEMU starts a stopped, device-less QEMU with a QMP socket and returns
// the socket path; the process is killed at cleanup.
func startQEMU(t *testing.T) (string, *exec.Cmd) {
	t.Helper()
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	cmd := exec.Command(bin, "-S", "-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "q35", "-m", "64M", "-qmp", "unix:"+sock+",server=on,wait=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Error("QEMU not reaped 10 s after SIGKILL")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return sock, cmd
		}
		select {
		case <-exited:
			t.Fatalf("QEMU exited: %s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no QMP socket after 20 s; stderr: %s", stderr.String())
		}
	}
}

func waitEvent(t *testing.T, m *Monitor, name string) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-m.Events():
			if !ok {
				t.Fatalf("Events closed while waiting for %s", name)
			}
			if ev.Name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 10 s", name)
		}
	}
}

func TestRealQEMU(t *testing.T) {
	sock, _ := startQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Version().Major < 7 {
		t.Errorf("version %v", m.Version())
	}
	var st struct {
		Status  string `json:"status"`
		Running bool   `json:"running"`
	}
	if err := m.Run(ctx, "query-status", nil, &st); err != nil || st.Status != "prelaunch" || st.Running {
		t.Fatalf("query-status = %+v, %v", st, err)
	}
	if err := m.Run(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, m, "RESUME")
	if err := m.Run(ctx, "stop", nil, nil); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, m, "STOP"); ev.Timestamp.IsZero() {
		t.Error("STOP without timestamp")
	}
	var qe *Error
	if err := m.Run(ctx, "no-such-command", nil, nil); !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("unknown command: %v", err)
	}
	if err := m.Run(ctx, "human-monitor-command", map[string]string{"command-line": "info version"}, new(json.RawMessage)); err != nil {
		t.Errorf("command with arguments: %v", err)
	}
	if err := m.Run(ctx, "quit", nil, nil); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	waitEvent(t, m, "SHUTDOWN")
	select {
	case _, ok := <-m.Events():
		if ok {
			t.Error("event after SHUTDOWN")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Events not closed after quit")
	}
}
