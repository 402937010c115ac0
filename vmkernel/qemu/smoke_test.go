package qemu

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/qmp"

	qemutest "github.com/plinth/plinth/qemu-test"

	"github.com/plinth/plinth/internal/testenv"
)

// TestQEMUAcceptsCmdline starts real QEMU (TCG, stopped with -S) on golden
// specs to prove it accepts the generated line, then quits it over QMP.
func TestQEMUAcceptsCmdline(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		testenv.Unmet(t, "qemu-img not installed")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := prepared(c.spec)
			dir := t.TempDir()
			// No taps without a switch: switch NICs become NAT here (the
			// runner's tests start VMs on switches).
			for i := range spec.NICs {
				spec.NICs[i].Switch, spec.NICs[i].NAT = "", true
			}
			// This host has no devices to pass through nor a huge page
			// pool (the appliance's tests and the runner's use them).
			spec.PCIDevices, spec.USBDevices, spec.HugePages = nil, nil, false
			// The runner's Env, with each fd set and file made real.
			e := env(api.AccelTCG, spec)
			e.QEMU, e.RunDir = bin, filepath.Join(dir, "run")
			mkdir(t, e.RunDir)
			if spec.TPM {
				e.TPMSocket = filepath.Join(e.RunDir, TPMSocketName)
				startSWTPM(t, filepath.Join(dir, "tpm"), e.TPMSocket)
			}
			files := map[int]*os.File{}
			open := func(p string, flags int) *os.File {
				f, err := os.OpenFile(p, flags, 0)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return f
			}
			for _, fs := range e.FDSets {
				p := filepath.Join(dir, "f"+strconv.Itoa(fs.Set))
				if _, err := os.Stat(p); err != nil {
					format := "raw"
					for _, d := range append(e.Disks, nodes(e.CDROM, e.OVMFCode, e.OVMFVars, e.Seed)...) {
						for n := &d; n != nil; n = n.Backing {
							if n.Filename == FDSetName(fs.Set) {
								format = n.Format
							}
						}
					}
					switch {
					case e.OVMFCode != nil && e.OVMFCode.Filename == FDSetName(fs.Set):
						copyFile(t, "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", p)
					case e.OVMFVars != nil && e.OVMFVars.Filename == FDSetName(fs.Set):
						copyFile(t, "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", p)
					default:
						qemuImg(t, format, p)
					}
				}
				// A writable image's set has two descriptors, read-write
				// then read-only; a read-only image's one.
				flags := os.O_RDONLY
				if fs.FD == firstFD(e.FDSets, fs.Set) && setSize(e.FDSets, fs.Set) == 2 {
					flags = os.O_RDWR
				}
				files[fs.FD] = open(p, flags)
			}
			if k := spec.Kernel; k != nil {
				// QEMU loads the kernel at start: it must be a real bzImage.
				kernel := os.Getenv("PLINTH_TEST_KERNEL")
				if kernel == "" {
					kernel = "../../build/vmlinuz"
				}
				if _, err := os.Stat(kernel); err != nil {
					qemutest.NoKernel(t, "no kernel for direct boot (%v); set PLINTH_TEST_KERNEL", err)
				}
				copyFile(t, kernel, e.Kernel)
				if err := os.WriteFile(e.Initrd, []byte("not really an initrd"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args, err := Cmdline(spec, e)
			if err != nil {
				t.Fatal(err)
			}
			var extra []*os.File
			for fd := 3; fd < 3+len(files); fd++ {
				extra = append(extra, files[fd])
			}
			runStopped(t, append(args, "-S"), extra, filepath.Join(e.RunDir, QMPSocket), len(spec.Disks)+btoi(spec.CDROM != nil)+btoi(spec.CloudInit != nil)+2*btoi(spec.UEFI()))
		})
	}
}

// startSWTPM runs swtpm for a TPM 2.0 with its control socket at sock,
// as vmkernel does, until the test ends.
func startSWTPM(t *testing.T, state, sock string) {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		testenv.Unmet(t, "swtpm not installed (apt-get install swtpm; make deps does)")
	}
	mkdir(t, state)
	cmd := exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+state, "--ctrl", "type=unixio,path="+sock,
		"--terminate")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm made no socket in 10 s: %s", stderr.String())
		}
	}
}

func nodes(ns ...*Node) []Node {
	var out []Node
	for _, n := range ns {
		if n != nil {
			out = append(out, *n)
		}
	}
	return out
}

func setSize(sets []FDSet, set int) int {
	n := 0
	for _, s := range sets {
		if s.Set == set {
			n++
		}
	}
	return n
}

func firstFD(sets []FDSet, set int) int {
	for _, s := range sets {
		if s.Set == set {
			return s.FD
		}
	}
	return -1
}

func mkdir(t *testing.T, d string) {
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
}

func qemuImg(t *testing.T, format, path string) {
	t.Helper()
	mkdir(t, filepath.Dir(path))
	out, err := exec.Command("qemu-img", "create", "-q", "-f", format, path, "16M").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create %s: %v: %s", path, err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	mkdir(t, filepath.Dir(to))
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// runStopped starts QEMU, waits for its QMP socket, checks it is stopped
// with the expected number of block devices, and quits it.
func runStopped(t *testing.T, args []string, files []*os.File, sock string, blockDevs int) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.ExtraFiles = files
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Error("QEMU not reaped 10 s after SIGKILL")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var m *qmp.Monitor
	for m == nil {
		mon, err := qmp.Dial(ctx, sock)
		switch {
		case err == nil:
			m = mon
		case ctx.Err() != nil:
			t.Fatalf("no QMP within 30 s: %v; stderr: %s", err, stderr.String())
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("QEMU refused the command line (%v): %s\nargs: %q", err, stderr.String(), args)
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer m.Close()
	var st struct {
		Status string `json:"status"`
	}
	if err := m.Run(ctx, "query-status", nil, &st); err != nil || st.Status != "prelaunch" {
		t.Errorf("query-status = %+v, %v", st, err)
	}
	var blocks []struct {
		Device string `json:"device"`
		QDev   string `json:"qdev"`
	}
	if err := m.Run(ctx, "query-block", nil, &blocks); err != nil {
		t.Error(err)
	}
	got := 0
	for _, b := range blocks {
		if b.QDev != "" && b.Device == "" { // -device or pflash backed by -blockdev
			got++
		}
	}
	if got != blockDevs {
		t.Errorf("QEMU has %d block devices, want %d: %+v", got, blockDevs, blocks)
	}
	if err := m.Run(ctx, "quit", nil, nil); err != nil && !errors.Is(err, qmp.ErrClosed) {
		t.Error(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("QEMU exit: %v: %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Error("QEMU still running 10 s after quit")
	}
}
