package dcui

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/internal/testenv"
)

// TestShellEndsAfterInactivity runs the Troubleshooting shell with a short
// inactivity timeout: it lives while its terminal's access time moves (the
// kernel moves it on input; here the test does), and is killed once
// nothing has come for the timeout.
func TestShellEndsAfterInactivity(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		testenv.Unmet(t, "no sh")
	}
	tty := filepath.Join(t.TempDir(), "tty")
	if err := os.WriteFile(tty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	in, keep, err := os.Pipe() // input that never ends nor says anything
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	defer keep.Close()
	var out bytes.Buffer
	const idle = 400 * time.Millisecond
	s := &idleShell{path: sh, tty: tty, idle: idle}
	s.SetStdin(in)
	s.SetStdout(&out)
	s.SetStderr(&out)
	typing := 700 * time.Millisecond
	stop := make(chan struct{})
	defer close(stop)
	var lastKey atomic.Int64 // the last key press, in ns since t0
	t0 := time.Now()
	go func() {
		end := time.After(typing)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				os.Chtimes(tty, time.Now(), time.Time{}) // a key pressed
				lastKey.Store(int64(time.Since(t0)))
			case <-end:
				return
			case <-stop:
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- s.Run() }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the shell still runs 10s after its last input; its output:\n%s", out.String())
	}
	took := time.Since(t0)
	if err == nil || !strings.Contains(err.Error(), "no input for 400ms") {
		t.Errorf("Run: %v, want the inactivity timeout", err)
	}
	// The keys came until lastKey (a tick before typing's end, or less on
	// a busy machine): the shell may end no sooner than idle after it.
	if last := time.Duration(lastKey.Load()); took < last+idle {
		t.Errorf("the shell ended %v after starting, while its input was still coming (the last key at %v) or within %v of it", took, last, idle)
	}
	if !strings.Contains(out.String(), "It ends after 400ms without input") {
		t.Errorf("the shell's banner: %q", out.String())
	}
	t.Logf("input for %v, shell ended %v after starting", typing, took.Round(time.Millisecond))
}

// TestBinaryShellIdleTimeout opens the Troubleshooting shell in the real
// binary (in tmux, with vmkernel and mgmtd) with a 1 s inactivity timeout: with no
// key pressed, the shell is ended and the DCUI says why.
func TestBinaryShellIdleTimeout(t *testing.T) {
	needTmux(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		testenv.Unmet(t, "no sh")
	}
	bin := t.TempDir()
	dcuiBin := buildBin(t, bin, "./dcui/cmd/dcui")
	buildBin(t, bin, "./vmkernel/cmd/vmkernel")
	buildBin(t, bin, "./mgmtd/cmd/mgmtd")
	s := startServices(t, bin)
	const pw = "Shell-Idle-42"
	vmk, err := client.NewVMKernel(s.vmkSock)
	if err != nil {
		t.Fatal(err)
	}
	if err := vmk.SetPassword(context.Background(), pw); err != nil {
		t.Fatal(err)
	}
	tm := startTmux(t, []string{"TERM=xterm-256color"}, dcuiBin, "-vmkernel", s.vmkSock, "-shell", sh, "-shell-idle", "1s")
	fp, _ := os.ReadFile(filepath.Join(s.auth, "tls", "fingerprint"))
	tm.wait(string(fp[:20]), 10*time.Second) // the host's settings are read

	tm.keys("F2")
	tm.wait("Password:", 5*time.Second)
	tm.keys(pw, "Enter")
	tm.wait("System Customization", 10*time.Second)
	tm.keys("Down", "Down", "Down", "Down", "Down", "Down")
	tm.wait("> Troubleshooting Options", 5*time.Second)
	tm.keys("Enter")
	tm.wait("Local Shell (ends after 1s without input)", 5*time.Second)
	tm.keys("Down", "Enter")
	tm.wait("It ends after 1s without input", 5*time.Second)
	t0 := time.Now()
	tm.wait("The shell ended: no input for 1s", 10*time.Second)
	t.Logf("the shell ended %v after it started", time.Since(t0).Round(100*time.Millisecond))
}
