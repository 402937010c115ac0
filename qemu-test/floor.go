package qemutest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/plinth/plinth/board"
)

// FloorMarker is the line the floor guest's init prints (see floorinit).
const FloorMarker = "PLINTH-FLOOR-UP"

// NestedMarkerWait is how long a test waits for a floor guest the
// appliance runs (on KVM nested on the rig's TCG emulation of SVM) to
// print its marker. It takes 40 to 75 s on a quiet machine
// (docs/PERFORMANCE.md, "The test rig's QEMU: nested guest starts"), and
// more than twice that while this shared machine slowed (2026-12-07: a run
// in which every appliance test took 1.4 to 2.2 times its usual time, and
// one nested guest's marker, by its test's timing, not within 240 s, the
// wait then).
const NestedMarkerWait = 420 * time.Second

// FloorHangCmdline makes the floor guest print its marker and then stay up.
const FloorHangCmdline = "plinthfloor=hang"

// FloorDisksCmdline makes the floor guest print a "PLINTH-DISK <name>
// <bytes>" line per block device before its marker, then stay up. Its disk
// drivers are modules: see BuildFloorWithModules.
const FloorDisksCmdline = "plinthfloor=disks,hang"

// FloorDiskLine is the line the floor guest prints for a block device in
// FloorDisksCmdline mode.
func FloorDiskLine(name string, bytes int64) string {
	return fmt.Sprintf("PLINTH-DISK %s %d\n", name, bytes)
}

// BuildFloor builds the floor initramfs into dir and returns its path: a
// newc cpio holding /dev/console and a static Go /init (floorinit). It needs
// the go command and runs from the repository root.
func BuildFloor(dir string) (string, error) {
	return BuildFloorWithModules(dir, "")
}

// BuildFloorWithModules is BuildFloor with the kernel modules mods (names
// as modprobe knows them) and those they depend on, taken from modDir (a
// lib/modules/RELEASE directory with modules.dep), as /modules/NN-name.ko in
// load order: the floor guest loads them in plinthfloor=disks mode.
func BuildFloorWithModules(dir, modDir string, mods ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "floorinit")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./qemu-test/floorinit")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building floorinit: %v: %s", err, out)
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	w := cpio.NewDedupWriter(cpio.Newc.Writer(&buf))
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		// Without /dev/console in the initramfs the kernel starts init with
		// no stdin/stdout/stderr and the marker goes nowhere.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticFile("init", string(init), 0o755),
	}
	if len(mods) > 0 {
		order, err := moduleOrder(modDir, mods)
		if err != nil {
			return "", err
		}
		recs = append(recs, cpio.Directory("modules", 0o755))
		for i, rel := range order {
			b, err := os.ReadFile(filepath.Join(modDir, rel))
			if err != nil {
				return "", fmt.Errorf("floor module: %w", err)
			}
			name := fmt.Sprintf("modules/%02d-%s", i, filepath.Base(rel))
			recs = append(recs, cpio.StaticFile(name, string(b), 0o644))
		}
	}
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return "", fmt.Errorf("writing floor cpio: %w", err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return "", fmt.Errorf("writing floor cpio: %w", err)
	}
	out := filepath.Join(dir, "floor.cpio")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// moduleOrder reads modDir/modules.dep and returns the files of mods and
// their dependencies, each after what it depends on.
func moduleOrder(modDir string, mods []string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("floor modules: %w", err)
	}
	deps := map[string][]string{} // file to the files it needs
	byName := map[string]string{} // module name to file
	for _, line := range strings.Split(string(b), "\n") {
		file, needs, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(needs)
		byName[moduleName(file)] = file
	}
	var order []string
	seen := map[string]bool{}
	var visit func(file string)
	visit = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		for _, d := range deps[file] {
			visit(d)
		}
		order = append(order, file)
	}
	for _, m := range mods {
		file, ok := byName[strings.ReplaceAll(m, "-", "_")]
		if !ok {
			return nil, fmt.Errorf("floor modules: %s not in %s/modules.dep", m, modDir)
		}
		visit(file)
	}
	return order, nil
}

// moduleName is a module file's name as the kernel knows it.
func moduleName(file string) string {
	base := filepath.Base(file)
	base = base[:len(base)-len(filepath.Ext(base))]
	return strings.ReplaceAll(base, "-", "_")
}

// InstallGuest lays a test guest out in a datastore directory dir, as the
// VM specs of the tests expect it: the kernel copied (the image build may
// replace the file meanwhile) to dir/vmlinuz as it is, the bzImage that
// firmware and boot loaders load (OVMF, GRUB), and to dir/vmlinux
// uncompressed for its PVH entry (PVHKernel), which a BIOS guest booted
// directly reaches seconds sooner under TCG (where the kernel has no PVH
// entry, vmlinux is the bzImage again: QEMU tells them apart by their
// headers); and the initramfs that build makes (BuildFloor, or a variant)
// at dir/init.cpio.
func InstallGuest(kernel, dir string, build func(dir string) (string, error)) error {
	pvh, err := PVHKernel(kernel)
	if errors.Is(err, ErrNoPVH) {
		pvh = kernel
	} else if err != nil {
		return fmt.Errorf("guest kernel: %w", err)
	}
	for name, from := range map[string]string{"vmlinuz": kernel, "vmlinux": pvh} {
		b, err := os.ReadFile(from)
		if err != nil {
			return fmt.Errorf("guest kernel: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "plinth-guest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	initrd, err := build(tmp)
	if err != nil {
		return fmt.Errorf("guest initramfs: %w", err)
	}
	return os.Rename(initrd, filepath.Join(dir, "init.cpio"))
}

// HostCPU is this machine's CPU model, for benchmark reports.
func HostCPU() string {
	ci, err := board.ReadCPUInfo("/proc")
	if err != nil || ci.Model == "" {
		return "unknown CPU"
	}
	return ci.Model
}
