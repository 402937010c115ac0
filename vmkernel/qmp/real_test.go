package qmp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
		// The socket's file appears at bind, a moment before QEMU
		// listens: connect (and hang up) rather than look for the file.
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
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

// TestRealQEMUFileAndJob hands QEMU a descriptor over QMP (add-fd), opens a
// qcow2 node on it, snapshots it with a job (snapshot-save, disk only: the
// VM has no device) and follows the job to its end; a job that fails says
// why.
func TestRealQEMUFileAndJob(t *testing.T) {
	testenv.Command(t, "qemu-img")
	sock, _ := startQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	img := filepath.Join(t.TempDir(), "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fdset struct {
		Set int `json:"fdset-id"`
	}
	if err := m.RunWithFile(ctx, "add-fd", map[string]any{"opaque": "test"}, &fdset, f); err != nil {
		t.Fatal(err)
	}
	node := map[string]any{"driver": "qcow2", "node-name": "d0", "backing": nil,
		"file": map[string]any{"driver": "file", "filename": "/dev/fdset/" + strconv.Itoa(fdset.Set)}}
	if err := m.Run(ctx, "blockdev-add", node, nil); err != nil {
		t.Fatal(err)
	}
	save := map[string]any{"job-id": "s1", "tag": "one", "vmstate": "d0", "devices": []string{"d0"}}
	if err := m.Run(ctx, "snapshot-save", save, nil); err != nil {
		t.Fatal(err)
	}
	var last int64
	if err := m.WaitJob(ctx, "s1", func(done, total int64) { last = total }); err != nil || last == 0 {
		t.Fatalf("snapshot job: %v (total %d)", err, last)
	}
	save["job-id"], save["tag"] = "s2", "two"
	save["devices"] = []string{"nosuchnode"}
	if err := m.Run(ctx, "snapshot-save", save, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitJob(ctx, "s2", nil); err == nil || !strings.Contains(err.Error(), "nosuchnode") {
		t.Fatalf("failed job: %v, want its reason", err)
	}
	if err := m.WaitJob(ctx, "s2", nil); !errors.Is(err, ErrJobGone) {
		t.Fatalf("dismissed job: %v", err)
	}
	if err := m.Run(ctx, "blockdev-del", map[string]string{"node-name": "d0"}, nil); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-img", "snapshot", "-l", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "one") || strings.Contains(string(out), "two") {
		t.Fatalf("snapshots in the image: %v: %s", err, out)
	}
}
