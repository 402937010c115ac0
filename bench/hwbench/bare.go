package hwbench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/vmkernel/qmp"
)

// bare is the floor: the same guest as a plain QEMU process, driven over
// its own QMP socket, its serial console in a file.
type bare struct {
	cmd     *exec.Cmd
	mon     *qmp.Monitor
	console string
}

// startBare runs QEMU with the guest's kernel and initramfs from dir, the
// CPU model cpu (as vmkernel gave its own guest), memMiB of memory and q35
// with four empty PCIe root ports hp0..hp3 (as vmkernel's q35 VMs have).
// It is killed at the end of the benchmark.
func startBare(b testing.TB, dir, name, cpu string, memMiB int, cmdline string) *bare {
	b.Helper()
	run := filepath.Join(dir, name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		b.Fatal(err)
	}
	q := &bare{console: filepath.Join(run, "console.log")}
	sock := filepath.Join(run, "qmp.sock")
	args := []string{"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "q35", "-accel", "tcg", "-cpu", cpu, "-smp", "1", "-m", strconv.Itoa(memMiB) + "M",
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "init.cpio"), "-append", cmdline,
		"-chardev", "file,id=con,path=" + q.console, "-serial", "chardev:con",
		"-qmp", "unix:" + sock + ",server=on,wait=off"}
	for i := range 4 {
		args = append(args, "-device", fmt.Sprintf("pcie-root-port,id=hp%d,bus=pcie.0,chassis=%d,io-reserve=0", i, 20+i))
	}
	q.cmd = exec.Command("qemu-system-x86_64", args...)
	q.cmd.Stderr = os.Stderr
	if err := q.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if q.mon != nil {
			q.mon.Close()
		}
		q.cmd.Process.Kill()
		q.cmd.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		m, err := qmp.Dial(ctx, sock)
		if err == nil {
			q.mon = m
			return q
		}
		if ctx.Err() != nil {
			b.Fatalf("bare QEMU %s: no QMP: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tail is the bare guest's console so far.
func (q *bare) tail() ([]byte, error) { return os.ReadFile(q.console) }

func (q *bare) run(b testing.TB, cmd string, args map[string]any) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := q.mon.Run(ctx, cmd, args, nil); err != nil {
		b.Fatalf("bare QEMU: %s: %v", cmd, err)
	}
}

// unplug deletes device id and waits for QEMU's DEVICE_DELETED (the guest
// let it go), so its root port takes the next one.
func (q *bare) unplug(b testing.TB, id string) {
	b.Helper()
	q.run(b, "device_del", map[string]any{"id": id})
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev := <-q.mon.Events():
			if ev.Name == "DEVICE_DELETED" && bytes.Contains(ev.Data, []byte(`"`+id+`"`)) {
				return
			}
		case <-timeout:
			b.Fatalf("bare QEMU: %s not deleted in 60 s", id)
		}
	}
}

// qemuCPU is the -cpu argument of the QEMU process pid.
func qemuCPU(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", err
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		if a == "-cpu" && i+1 < len(args) {
			return args[i+1], nil
		}
	}
	return "", fmt.Errorf("QEMU %d has no -cpu", pid)
}

// waitCount polls tail every 10 ms until s appears n times in it.
func waitCount(b testing.TB, tail func() ([]byte, error), s string, n int, timeout time.Duration) {
	b.Helper()
	end := time.Now().Add(timeout)
	for {
		out, err := tail()
		if err == nil && bytes.Count(out, []byte(s)) >= n {
			return
		}
		if time.Now().After(end) {
			b.Fatalf("console did not show %q %d times in %v (err %v):\n%s", s, n, timeout, err, out[max(0, len(out)-1500):])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
