// Package runnertest provides a tiny Linux guest for tests that run real QEMU:
// the appliance kernel plus qemu-test's floor initramfs, whose static Go /init
// prints Marker on the console and then sleeps forever (it does not handle the
// ACPI power button, so a shutdown request must fall back to a hard stop).
package runnertest

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	qemutest "github.com/plinth/plinth/qemu-test"
)

// The guest is qemu-test's floor guest told to stay up: its static Go /init
// prints Marker on the console and then sleeps.
const (
	// Marker is the line the guest's init prints on ttyS0.
	Marker = qemutest.FloorMarker
	// Cmdline is the kernel command line for the guest.
	Cmdline = "console=ttyS0 quiet panic=-1 " + qemutest.FloorHangCmdline
)

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
		qemutest.NoKernel(t, "no guest kernel (%v): build one (make image) or set PLINTH_TEST_KERNEL", err)
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
	initrd, err := qemutest.BuildFloor(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(initrd, filepath.Join(dir, "init.cpio")); err != nil {
		t.Fatal(err)
	}
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
