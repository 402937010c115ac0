// Package runnertest provides a tiny Linux guest for tests that run real QEMU:
// the appliance kernel plus qemu-test's floor initramfs, whose static Go /init
// prints Marker on the console and then sleeps forever (it does not handle the
// ACPI power button, so a shutdown request must fall back to a hard stop).
package runnertest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	Cmdline = floorPrefix + "hang"
	// DisksCmdline is Cmdline with the guest printing its block devices
	// (qemutest.FloorDiskLine) before the marker; it needs the initramfs of
	// InstallDisks.
	DisksCmdline = floorPrefix + "disks,hang"
)

// floorPrefix starts every floor guest's command line; the mode follows
// (qemutest's FloorHangCmdline and FloorDisksCmdline name two).
const floorPrefix = "console=ttyS0 quiet panic=-1 " + qemutest.NoSelfTests + " plinthfloor="

// FloorCmdline is the kernel command line of a floor guest in mode (the
// value of plinthfloor=, e.g. "watch,hang"; floorinit says what each does).
func FloorCmdline(mode string) string { return floorPrefix + mode }

// DiskModules are the kernel modules the guest needs to see a virtio-blk
// disk (the appliance kernel builds no disk driver in).
var DiskModules = []string{"virtio_pci", "virtio_blk"}

// FSModules are DiskModules and what the guest needs to mount an ext4
// disk (crc32c before ext4: the guest has no modprobe for the kernel to
// ask) and, under UEFI, its variables.
var FSModules = append(append([]string(nil), DiskModules...), "crc32c_generic", "ext4", "efivarfs")

// FSCmdline boots the guest with its first disk (ext4, see MakeExt4)
// mounted and its console answering the file-system commands (floorinit:
// "mark TEXT", "cat", "efiset TEXT", "efiget"); it needs the initramfs of
// InstallFS.
const FSCmdline = floorPrefix + "fs,console"

// InstallFS is Install with FSModules (from modDir, see Modules) in the
// initramfs, for a guest booted with FSCmdline.
func InstallFS(t testing.TB, kernel, modDir, dir string) {
	t.Helper()
	install(t, kernel, dir, func(tmp string) (string, error) {
		return qemutest.BuildFloorWithModules(tmp, modDir, FSModules...)
	})
}

// MakeExt4 writes a qcow2 image of an empty ext4 file system of sizeMiB
// at path (made with mke2fs and qemu-img, nothing downloaded).
func MakeExt4(t testing.TB, path string, sizeMiB int) {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "fs.raw")
	for _, args := range [][]string{
		{"mke2fs", "-q", "-F", "-t", "ext4", "-L", "floor", raw, fmt.Sprintf("%dM", sizeMiB)},
		{"qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, path},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// Modules returns the test kernel's module directory (PLINTH_TEST_MODULES,
// else build/modules/lib/modules/RELEASE with RELEASE from
// build/kernel-release, build being buildDir relative to the calling
// package), skipping the test when there is none.
func Modules(t testing.TB, buildDir string) string {
	t.Helper()
	dir := os.Getenv("PLINTH_TEST_MODULES")
	if dir == "" {
		release, err := os.ReadFile(filepath.Join(buildDir, "kernel-release"))
		if err != nil {
			qemutest.NoKernel(t, "no kernel release (%v): build one (make image) or set PLINTH_TEST_MODULES", err)
		}
		dir = filepath.Join(buildDir, "modules", "lib", "modules", strings.TrimSpace(string(release)))
	}
	if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err != nil {
		qemutest.NoKernel(t, "no kernel modules (%v): build them (make image) or set PLINTH_TEST_MODULES", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// InstallDisks is Install with DiskModules (from modDir, see Modules) in
// the initramfs, for a guest booted with DisksCmdline.
func InstallDisks(t testing.TB, kernel, modDir, dir string) {
	t.Helper()
	install(t, kernel, dir, func(tmp string) (string, error) {
		return qemutest.BuildFloorWithModules(tmp, modDir, DiskModules...)
	})
}

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
// "vmlinuz", "vmlinux" (qemutest.InstallGuest says which is which) and
// "init.cpio".
func Install(t testing.TB, kernel, dir string) {
	t.Helper()
	install(t, kernel, dir, qemutest.BuildFloor)
}

func install(t testing.TB, kernel, dir string, build func(dir string) (string, error)) {
	t.Helper()
	if err := qemutest.InstallGuest(kernel, dir, build); err != nil {
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

// Dir makes a short directory (unix socket paths are limited to 107 bytes)
// that unprivileged users may pass through but not list (mode 0711), as a
// runner's run root needs: each VM's QEMU runs as its own user. It is
// removed at the end of the test.
func Dir(t testing.TB, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	return d
}

// HardwareModules are the kernel modules of a guest that sees disks and
// NICs plugged in while it runs and has a balloon.
var HardwareModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "virtio_balloon"}

// InstallWithModules is Install with the modules mods (from modDir, see
// Modules) and their dependencies in the initramfs; the floor guest loads
// them in its modes that need drivers (disks, watch, mem, ...).
func InstallWithModules(t testing.TB, kernel, modDir, dir string, mods ...string) {
	t.Helper()
	install(t, kernel, dir, func(tmp string) (string, error) {
		return qemutest.BuildFloorWithModules(tmp, modDir, mods...)
	})
}
