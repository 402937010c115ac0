// Package runnertest builds a tiny Linux guest for tests that run real QEMU:
// the appliance kernel plus an initramfs whose static Go /init prints Marker
// on the console and then sleeps forever (it does not handle the ACPI power
// button, so a shutdown request must fall back to a hard stop).
package runnertest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

// Marker is the line the guest's init prints on ttyS0.
const Marker = "PLINTH-TEST-GUEST-UP"

// Cmdline is the kernel command line for the guest.
const Cmdline = "console=ttyS0 quiet panic=-1"

const initSource = `package main

import (
	"fmt"
	"time"
)

func main() {
	fmt.Println("` + Marker + `")
	for { // not select{}: Go would call that a deadlock and exit, panicking the kernel
		time.Sleep(time.Hour)
	}
}
`

// Kernel returns the test kernel (PLINTH_TEST_KERNEL, else build/vmlinuz
// relative to the calling package, given as rel), skipping the test when
// there is none.
func Kernel(t testing.TB, rel string) string {
	t.Helper()
	k := os.Getenv("PLINTH_TEST_KERNEL")
	if k == "" {
		k = rel
	}
	if _, err := os.Stat(k); err != nil {
		t.Skipf("no guest kernel (%v): build one (make) or set PLINTH_TEST_KERNEL", err)
	}
	abs, err := filepath.Abs(k)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// Install copies the kernel and a freshly built initramfs into dir as
// "vmlinuz" and "init.cpio".
func Install(t testing.TB, kernel, dir string) {
	t.Helper()
	b, err := os.ReadFile(kernel) // a copy: the build may replace the file meanwhile
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cpioBytes, err := buildInitramfs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "init.cpio"), cpioBytes, 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildInitramfs builds the static /init in its own throw-away module and
// packs it, with /dev/console, into a newc cpio (as qemu-test's floor does).
func buildInitramfs(dir string) ([]byte, error) {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module guestinit\n\ngo 1.22\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(initSource), 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "init")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOWORK=off", "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building guest init: %v: %s", err, out)
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := cpio.NewDedupWriter(cpio.Newc.Writer(&buf))
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticFile("init", string(init), 0o755),
	}
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return nil, fmt.Errorf("writing guest cpio: %w", err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, fmt.Errorf("writing guest cpio: %w", err)
	}
	return buf.Bytes(), nil
}

// Console reads a VM's serial socket from the moment it connects.
type Console struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	conn net.Conn
}

// Dial connects to the serial socket at path (retrying for up to 5 s);
// the connection is closed at the end of the test.
func Dial(t testing.TB, path string) *Console {
	t.Helper()
	c := &Console{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.conn = conn
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serial console %s: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { c.conn.Close() })
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := c.conn.Read(b)
			c.mu.Lock()
			c.buf.Write(b[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

// Wait waits until the console has shown s, failing the test after timeout.
func (c *Console) Wait(t testing.TB, s string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		c.mu.Lock()
		seen := bytes.Contains(c.buf.Bytes(), []byte(s))
		out := c.buf.String()
		c.mu.Unlock()
		if seen {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("console did not show %q within %v; it showed:\n%s", s, timeout, out[max(0, len(out)-2000):])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
