package guestagent

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/internal/testenv"
)

// safe are the only commands the host's own qemu-ga may run in this test:
// it runs on the build host, where a shutdown or a freeze would be real.
var safe = map[string]bool{"guest-sync-delimited": true, "guest-sync": true, "guest-ping": true, "guest-info": true,
	"guest-get-osinfo": true, "guest-get-host-name": true, "guest-network-get-interfaces": true}

// realAgent starts Debian's qemu-ga on a unix socket, every command but
// the safe ones blocked.
func realAgent(t *testing.T) string {
	t.Helper()
	bin := testenv.Command(t, "qemu-ga")
	out, err := exec.Command(bin, "-b", "help").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-ga -b help: %v: %s", err, out)
	}
	var block []string
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "guest-") && !safe[f] {
			block = append(block, f)
		}
	}
	if len(block) < 10 {
		t.Fatalf("qemu-ga listed %d commands to block:\n%s", len(block), out)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "qga.sock")
	cmd := exec.Command(bin, "-m", "unix-listen", "-p", sock, "-t", dir, "-f", filepath.Join(dir, "pid"), "-b", strings.Join(block, ","))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatal("qemu-ga made no socket in 10 s")
		}
	}
}

// TestFactsFromRealAgent asks a real qemu-ga (the host's own, standing in
// for a guest's) for its facts.
func TestFactsFromRealAgent(t *testing.T) {
	a := New(realAgent(t))
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, err := a.Facts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if !strings.HasPrefix(g.AgentVersion, "7.") || g.Hostname != host || g.OSID == "" || g.Kernel == "" {
		t.Errorf("facts %+v (host %s)", g, host)
	}
	for _, i := range g.Interfaces {
		if i.Name == "lo" {
			t.Errorf("loopback among the interfaces: %+v", i)
		}
	}
	// A blocked command is the agent's refusal, and the channel stays
	// usable after it.
	if err := a.Run(ctx, "guest-get-time", nil, nil); !errors.Is(err, ErrAgent) {
		t.Errorf("blocked command: %v, want ErrAgent", err)
	}
	if err := a.Run(ctx, "guest-ping", nil, nil); err != nil {
		t.Errorf("ping after a refusal: %v", err)
	}
}

// TestSilentChannel: a channel with no agent behind it (QEMU's socket
// answers, the guest does not) gives ErrNoAgent within the deadline.
func TestSilentChannel(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "qga.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := New(sock).Facts(ctx); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("Facts = %v, want ErrNoAgent", err)
	}
}
