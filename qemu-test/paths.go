package qemutest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/plinth/plinth/internal/testenv"
)

// RepoRoot walks up from the working directory to the directory that holds
// go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("qemutest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// ImageKernel and ImageInitrd are where `make image` puts the appliance,
// relative to the repository root.
const (
	ImageKernel = "build/vmlinuz"
	ImageInitrd = "build/initramfs.cpio.zst"
)

// ImagePaths returns the absolute paths of the built appliance kernel and
// initramfs (which may not exist).
func ImagePaths() (kernel, initrd string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	return filepath.Join(root, ImageKernel), filepath.Join(root, ImageInitrd), nil
}

// FindKernel returns a kernel to boot the floor with: $PLINTH_KERNEL, else
// the image's build/vmlinuz, else the newest build/kroot/boot/vmlinuz-*
// (the unpacked Debian kernel package).
func FindKernel() (string, error) {
	if k := os.Getenv("PLINTH_KERNEL"); k != "" {
		if _, err := os.Stat(k); err != nil {
			return "", fmt.Errorf("PLINTH_KERNEL: %w", err)
		}
		return k, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	k := filepath.Join(root, ImageKernel)
	if _, err := os.Stat(k); err == nil {
		return k, nil
	}
	found, _ := filepath.Glob(filepath.Join(root, "build/kroot/boot/vmlinuz-*"))
	if len(found) == 0 {
		return "", fmt.Errorf("no kernel: none of $PLINTH_KERNEL, %s, build/kroot/boot/vmlinuz-* (run `make image`)", ImageKernel)
	}
	sort.Strings(found)
	return found[len(found)-1], nil
}

// RequireKernelEnv, set to 1 (make test does), turns the tests that boot the
// guest kernel from skipping when there is none into failing, so that CI
// cannot pass while the QEMU tests quietly did not run.
const RequireKernelEnv = "PLINTH_REQUIRE_KERNEL"

// NoKernel skips the test for want of a guest kernel, or fails it when
// RequireKernelEnv (or testenv.RequireEnv) is set.
func NoKernel(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if testenv.Strict() {
		t.Fatalf("%s (%s=1: build the image first, `make image`)", msg, RequireKernelEnv)
	}
	t.Skip(msg)
}
