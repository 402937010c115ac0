package qmp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/plinth/plinth/internal/testenv"
)

// TestRunWithFileRealQEMU hands descriptors to a real QEMU over QMP
// (SCM_RIGHTS): one into an fd set with add-fd, which query-fdsets then
// lists, and one by name with getfd, which closefd then drops. A command
// that takes no descriptor still answers after them.
func TestRunWithFileRealQEMU(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "qmp.sock")
	cmd := exec.Command(bin, "-machine", "none", "-nodefaults", "-display", "none", "-S",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mon *Monitor
	for mon == nil {
		if mon, err = Dial(ctx, sock); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("QMP did not answer: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer mon.Close()

	f, err := os.CreateTemp(dir, "disk")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var added struct {
		FDSet int `json:"fdset-id"`
		FD    int `json:"fd"`
	}
	if err := mon.RunWithFile(ctx, "add-fd", map[string]any{"fdset-id": 7, "opaque": "disk0 ds1:a.qcow2"}, &added, f); err != nil {
		t.Fatalf("add-fd: %v", err)
	}
	if added.FDSet != 7 || added.FD < 3 {
		t.Fatalf("add-fd answered %+v", added)
	}
	var sets []struct {
		FDSet int `json:"fdset-id"`
		FDs   []struct {
			FD     int    `json:"fd"`
			Opaque string `json:"opaque"`
		} `json:"fds"`
	}
	if err := mon.Run(ctx, "query-fdsets", nil, &sets); err != nil {
		t.Fatal(err)
	}
	if len(sets) != 1 || sets[0].FDSet != 7 || len(sets[0].FDs) != 1 || sets[0].FDs[0].Opaque != "disk0 ds1:a.qcow2" {
		t.Fatalf("query-fdsets = %+v", sets)
	}

	// getfd needs a descriptor: without one QEMU says so, and the
	// connection goes on.
	if err := mon.Run(ctx, "getfd", map[string]any{"fdname": "tap0"}, nil); err == nil {
		t.Fatal("getfd without a descriptor succeeded")
	}
	if err := mon.RunWithFile(ctx, "getfd", map[string]any{"fdname": "tap0"}, nil, f); err != nil {
		t.Fatalf("getfd: %v", err)
	}
	if err := mon.Run(ctx, "closefd", map[string]any{"fdname": "tap0"}, nil); err != nil {
		t.Fatalf("closefd of the descriptor getfd took: %v", err)
	}
	if err := mon.RunWithFile(ctx, "getfd", map[string]any{"fdname": "x"}, nil, nil); err == nil {
		t.Fatal("RunWithFile without a file succeeded")
	}
}

// TestRunWithFileNeedsUnixSocket: over a connection that cannot carry
// descriptors, RunWithFile says so instead of sending the command bare.
func TestRunWithFileNeedsUnixSocket(t *testing.T) {
	mon, _ := connect(t)
	if err := mon.RunWithFile(ctxT(t, 5*time.Second), "getfd", map[string]any{"fdname": "x"}, nil, os.Stdin); err == nil {
		t.Fatal("RunWithFile over a pipe succeeded")
	}
}
