package qemutest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

// The capture guest (captureinit) is the appliance's kernel and modules with
// a one-file Go init that cold-plugs the drivers, captures the files board's
// inventory reads and prints them, as a base64 gzipped tar, between these
// lines on the serial console. The appliance itself has no shell on its
// console (the DCUI owns it), so this is how a sysfs tree of a QEMU machine
// gets out.
const (
	captureBegin   = "PLINTH-CAPTURE-BEGIN"
	captureLine    = "PLINTH-CAPTURE "
	captureEnd     = "PLINTH-CAPTURE-END"
	captureModules = "PLINTH-CAPTURE-MODULES"
)

// ErrNoCapture marks a capture guest's console without a complete capture.
var ErrNoCapture = errors.New("no capture on the console")

// BuildCapture builds the capture initramfs into dir and returns its path: a
// newc cpio holding /dev/console, captureinit as /init and the modules tree
// modulesDir (the image build's build/modules/lib/modules) as /lib/modules.
// It needs the go command and runs from the repository root.
func BuildCapture(dir, modulesDir string) (string, error) {
	return BuildGuest(dir, modulesDir, "captureinit")
}

// BuildGuest builds the initramfs of a guest whose /init is the program
// ./qemu-test/<name> (with the appliance's modules, as BuildCapture) into
// dir and returns its path, dir/<name>.cpio.
func BuildGuest(dir, modulesDir, name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./qemu-test/"+name)
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v: %s", name, err, out)
	}
	init, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticFile("init", string(init), 0o755),
		cpio.Directory("lib", 0o755),
	}
	err = filepath.WalkDir(modulesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(modulesDir, p)
		name := filepath.ToSlash(filepath.Join("lib/modules", rel))
		switch {
		case d.IsDir():
			recs = append(recs, cpio.Directory(name, 0o755))
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			recs = append(recs, cpio.StaticFile(name, string(b), 0o644))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%s initramfs: modules: %w", name, err)
	}
	var buf bytes.Buffer
	w := cpio.NewDedupWriter(cpio.Newc.Writer(&buf))
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return "", fmt.Errorf("writing %s cpio: %w", name, err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return "", fmt.Errorf("writing %s cpio: %w", name, err)
	}
	out := filepath.Join(dir, name+".cpio")
	return out, os.WriteFile(out, buf.Bytes(), 0o644)
}

// ImageModules is the modules tree the image build left beside the kernel
// (build/modules/lib/modules for build/vmlinuz).
func ImageModules(kernel string) string {
	return filepath.Join(filepath.Dir(kernel), "modules", "lib", "modules")
}

// CaptureArgs is QEMU's command line (without the binary) for a capture
// guest on machine ("q35", "pc", ...) with the devices in devices (verbatim
// QEMU arguments, e.g. "-device", "e1000,netdev=n1"). Nothing else is
// attached: no default NIC, no display.
func CaptureArgs(machine, kernel, initrd string, devices []string) []string {
	args := []string{
		"-machine", machine, "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2",
		"-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 quiet",
	}
	return append(args, devices...)
}

// Capture is what a capture guest printed.
type Capture struct {
	// Tar is the gzipped tar: sys/ and proc/ as board.Capture wrote them,
	// and "modaliases" (see Modaliases).
	Tar []byte
	// Modules are the modules the capture guest's cold-plug loaded.
	Modules []string
}

// RunCapture runs QEMU with args (a capture guest: CaptureArgs, or an
// appliance's Options.Args with the capture initramfs) until the guest has
// printed its capture and powered off, or ctx ends. Every console line goes
// to logw when it is not nil.
func RunCapture(ctx context.Context, args []string, logw io.Writer) (*Capture, error) {
	lines, err := RunGuest(ctx, args, logw)
	if err != nil && lines == nil {
		return nil, err
	}
	c, perr := ParseCapture(lines)
	if perr != nil {
		if err != nil {
			perr = fmt.Errorf("%w (%v)", perr, err)
		}
		return nil, fmt.Errorf("%w%s", perr, formatTail(lines[max(0, len(lines)-TailLines):]))
	}
	return c, nil
}

// RunGuest runs QEMU with args until the guest powers off or ctx ends and
// returns its console lines (each also to logw when it is not nil); err
// says why QEMU did not end well (ctx's error, or QEMU's with its stderr),
// and lines is nil only when QEMU did not start.
func RunGuest(ctx context.Context, args []string, logw io.Writer) ([]string, error) {
	cmd := exec.CommandContext(ctx, QEMUBinary, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := &tailBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStartFailed, err)
	}
	lines := []string{}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		lines = append(lines, line)
		if logw != nil {
			fmt.Fprintln(logw, line)
		}
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return lines, ctx.Err()
	case werr != nil:
		return lines, fmt.Errorf("qemu: %v%s", werr, stderrSuffix(stderr.String()))
	}
	return lines, nil
}

// ParseCapture finds the capture in a capture guest's console lines and
// checks it against its checksum. Lines that are not the capture's (kernel
// messages that slipped through) are skipped.
func ParseCapture(lines []string) (*Capture, error) {
	var (
		c       Capture
		b64     strings.Builder
		started bool
		sum     string
	)
	for _, l := range lines {
		// A kernel message may start on the same line as ours: look for
		// the marker anywhere.
		switch i := strings.Index(l, "PLINTH-CAPTURE"); {
		case i < 0:
		case strings.HasPrefix(l[i:], captureModules):
			c.Modules = strings.Fields(strings.TrimPrefix(l[i:], captureModules))
		case strings.HasPrefix(l[i:], captureBegin):
			started = true
			b64.Reset()
		case strings.HasPrefix(l[i:], captureEnd):
			_, sum, _ = strings.Cut(l[i:], "sha256=")
			sum = strings.TrimSpace(sum)
		case started && strings.HasPrefix(l[i:], captureLine) && sum == "":
			b64.WriteString(strings.TrimSpace(strings.TrimPrefix(l[i:], captureLine)))
		}
	}
	if !started || sum == "" {
		return nil, ErrNoCapture
	}
	b, err := base64.StdEncoding.DecodeString(b64.String())
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrNoCapture, err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != sum {
		return nil, fmt.Errorf("%w: sha256 %s, the guest said %s", ErrNoCapture, got, sum)
	}
	c.Tar = b
	return &c, nil
}

// Unpack writes the capture's files whose names start with one of prefixes
// (all when none is given) under dst.
func (c *Capture) Unpack(dst string, prefixes ...string) error {
	return c.walk(func(h *tar.Header, r io.Reader) error {
		if len(prefixes) > 0 && !hasAnyPrefix(h.Name, prefixes) {
			return nil
		}
		p := filepath.Join(dst, filepath.FromSlash(h.Name))
		if rel, err := filepath.Rel(dst, p); err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("capture: %q leads out of the tree", h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			return os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			return os.Symlink(h.Linkname, p)
		case tar.TypeReg:
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			return os.WriteFile(p, b, 0o644)
		}
		return nil
	})
}

// Modaliases is the capture's list of every device with a modalias, as
// board/drivers.Devices saw it once the cold-plug had settled: sysfs path
// (relative to /sys), modalias and bound driver ("" for none).
func (c *Capture) Modaliases() ([][3]string, error) {
	var out [][3]string
	found := false
	err := c.walk(func(h *tar.Header, r io.Reader) error {
		if h.Name != "modaliases" {
			return nil
		}
		found = true
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		// Not TrimSpace: the last line may end in the tab before an
		// empty driver.
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			f := strings.SplitN(l, "\t", 3)
			if len(f) == 3 {
				out = append(out, [3]string{f[0], f[1], f[2]})
			}
		}
		return nil
	})
	if err == nil && !found {
		err = errors.New("capture: no modaliases file")
	}
	return out, err
}

func (c *Capture) walk(fn func(*tar.Header, io.Reader) error) error {
	zr, err := gzip.NewReader(bytes.NewReader(c.Tar))
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}
