// Package barevm runs the benchmarks' floor: the same small guest a
// benchmark gives vmkernel, as a plain QEMU process under TCG, driven over
// its own QMP socket, its serial console in a file.
package barevm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/plinth/plinth/vmkernel/qmp"
)

// VM is one bare QEMU.
type VM struct {
	Cmd *exec.Cmd
	Mon *qmp.Monitor
	// Console is the file the guest's serial console is written to.
	Console string
}

// Start runs QEMU with the guest kernel and initramfs of dir (vmlinuz,
// init.cpio) and cmdline, one vCPU, memMiB of memory and the machine's
// args (e.g. "-machine", "pc" and its disks), in dir/name; it is killed
// at the end of the benchmark.
func Start(b testing.TB, dir, name string, memMiB int, cmdline string, args ...string) *VM {
	b.Helper()
	run := filepath.Join(dir, name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		b.Fatal(err)
	}
	q := &VM{Console: filepath.Join(run, "console.log")}
	sock := filepath.Join(run, "qmp.sock")
	q.Cmd = exec.Command("qemu-system-x86_64", append([]string{"-nodefaults", "-no-user-config", "-display", "none",
		"-accel", "tcg", "-smp", "1", "-m", strconv.Itoa(memMiB) + "M",
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "init.cpio"), "-append", cmdline,
		"-chardev", "file,id=con,path=" + q.Console, "-serial", "chardev:con",
		"-qmp", "unix:" + sock + ",server=on,wait=off"}, args...)...)
	q.Cmd.Stderr = os.Stderr
	if err := q.Cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(q.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		m, err := qmp.Dial(ctx, sock)
		if err == nil {
			q.Mon = m
			return q
		}
		if ctx.Err() != nil {
			b.Fatalf("bare QEMU %s: no QMP: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill ends QEMU (again is fine).
func (q *VM) Kill() {
	if q.Mon != nil {
		q.Mon.Close()
	}
	q.Cmd.Process.Kill()
	q.Cmd.Wait()
}

// Tail is the guest's console so far.
func (q *VM) Tail() ([]byte, error) { return os.ReadFile(q.Console) }

// Run sends one QMP command and, with job set, waits for that job; each
// within 5 minutes.
func (q *VM) Run(b testing.TB, cmd string, args any, job string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := q.Mon.Run(ctx, cmd, args, nil); err != nil {
		b.Fatalf("bare QEMU: %s: %v", cmd, err)
	}
	if job != "" {
		if err := q.Mon.WaitJob(ctx, job, nil); err != nil {
			b.Fatalf("bare QEMU: job %s: %v", job, err)
		}
	}
}
