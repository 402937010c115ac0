package snapbench

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

// bare is the floor: the same guest as a plain QEMU process with the same
// kind of disk (node disk0), driven over its own QMP socket.
type bare struct {
	cmd     *exec.Cmd
	mon     *qmp.Monitor
	console string
}

// startBare runs QEMU with the guest's kernel and initramfs from dir,
// memMiB of memory and disk as a qcow2 virtio disk; it is killed at the end.
func startBare(b testing.TB, dir, name string, memMiB int, cmdline, disk string) *bare {
	b.Helper()
	run := filepath.Join(dir, name)
	if err := os.MkdirAll(run, 0o755); err != nil {
		b.Fatal(err)
	}
	q := &bare{console: filepath.Join(run, "console.log")}
	sock := filepath.Join(run, "qmp.sock")
	q.cmd = exec.Command("qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "pc", "-accel", "tcg", "-smp", "1", "-m", strconv.Itoa(memMiB)+"M",
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "init.cpio"), "-append", cmdline,
		"-chardev", "file,id=con,path="+q.console, "-serial", "chardev:con",
		"-blockdev", "driver=file,filename="+disk+",node-name=disk0-file",
		"-blockdev", "driver=qcow2,file=disk0-file,node-name=disk0",
		"-device", "virtio-blk-pci,drive=disk0",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	q.cmd.Stderr = os.Stderr
	if err := q.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(q.kill)
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

func (q *bare) kill() {
	if q.mon != nil {
		q.mon.Close()
	}
	q.cmd.Process.Kill()
	q.cmd.Wait()
}

func (q *bare) tail() ([]byte, error) { return os.ReadFile(q.console) }

// run sends one QMP command and, with job set, waits for that job.
func (q *bare) run(b testing.TB, cmd string, args any, job string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := q.mon.Run(ctx, cmd, args, nil); err != nil {
		b.Fatalf("bare QEMU: %s: %v", cmd, err)
	}
	if job != "" {
		if err := q.mon.WaitJob(ctx, job, nil); err != nil {
			b.Fatalf("bare QEMU: %s: %v", cmd, err)
		}
	}
}
