package qemutest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/u-root/u-root/pkg/cpio"
)

// FloorMarker is the line the floor guest's init prints (see floorinit).
const FloorMarker = "PLINTH-FLOOR-UP"

// FloorHangCmdline makes the floor guest print its marker and then stay up.
const FloorHangCmdline = "plinthfloor=hang"

// BuildFloor builds the floor initramfs into dir and returns its path: a
// newc cpio holding /dev/console and a static Go /init (floorinit). It needs
// the go command and runs from the repository root.
func BuildFloor(dir string) (string, error) {
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
