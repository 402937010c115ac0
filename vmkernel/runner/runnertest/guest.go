// Package runnertest provides a tiny Linux guest for tests that run real QEMU:
// the appliance kernel plus qemu-test's floor initramfs, whose static Go /init
// prints Marker on the console and then sleeps forever (it does not handle the
// ACPI power button, so a shutdown request must fall back to a hard stop).
package runnertest

import (
	"bytes"
	"os"
	"path/filepath"
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

// WaitConsole polls tail (e.g. a Manager's ConsoleTail or the API's console
// route: vmkernel holds the VM's serial socket, which takes one client at a
// time, and keeps what the guest prints) until it shows s, failing the test
// after timeout. It returns how long that took.
func WaitConsole(t testing.TB, tail func() ([]byte, error), s string, timeout time.Duration) time.Duration {
	t.Helper()
	return WaitConsoleCount(t, tail, s, 1, timeout)
}

// WaitConsoleCount is WaitConsole for at least n occurrences of s.
func WaitConsoleCount(t testing.TB, tail func() ([]byte, error), s string, n int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		b, err := tail()
		if err == nil && bytes.Count(b, []byte(s)) >= n {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("console did not show %q %d times within %v (err %v); it showed:\n%s", s, n, timeout, err, b[max(0, len(b)-2000):])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
