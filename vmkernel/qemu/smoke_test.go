package qemu

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/qmp"

	qemutest "github.com/plinth/plinth/qemu-test"
)

// TestQEMUAcceptsCmdline starts real QEMU (TCG, stopped with -S) on golden
// specs to prove it accepts the generated line, then quits it over QMP.
func TestQEMUAcceptsCmdline(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := prepared(c.spec)
			dir := t.TempDir()
			ds := filepath.Join(dir, "ds1")
			iso := filepath.Join(dir, "iso")
			e := Env{
				QEMU: bin, Accel: api.AccelTCG, RunDir: filepath.Join(dir, "run"),
				Datastores: map[string]string{"ds1": ds, "iso": iso},
			}
			for _, d := range []string{ds, iso, e.RunDir} {
				mkdir(t, d)
			}
			// No taps without privileges: switch NICs become NAT here.
			for i := range spec.NICs {
				spec.NICs[i].Switch, spec.NICs[i].NAT = "", true
			}
			for _, d := range spec.Disks {
				qemuImg(t, d.Format, filepath.Join(ds, d.Path))
			}
			if spec.CDROM != nil {
				qemuImg(t, "raw", filepath.Join(iso, spec.CDROM.Path))
			}
			if spec.Firmware == api.FirmwareUEFI {
				e.OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
				e.OVMFVars = filepath.Join(dir, "OVMF_VARS.fd")
				if _, err := os.Stat(e.OVMFCode); err != nil {
					t.Skip("OVMF not installed")
				}
				copyFile(t, "/usr/share/OVMF/OVMF_VARS_4M.fd", e.OVMFVars)
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
				copyFile(t, kernel, filepath.Join(ds, k.Kernel))
				if err := os.WriteFile(filepath.Join(ds, k.Initrd), []byte("not really an initrd"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args, err := Cmdline(spec, e)
			if err != nil {
				t.Fatal(err)
			}
			runStopped(t, append(args, "-S"), filepath.Join(e.RunDir, QMPSocket), len(spec.Disks)+btoi(spec.CDROM != nil))
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
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
func runStopped(t *testing.T, args []string, sock string, blockDevs int) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
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
		if b.QDev != "" && b.Device == "" { // -device backed by -blockdev (pflash drives have names)
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
