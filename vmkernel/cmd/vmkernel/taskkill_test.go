package main_test

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/backups"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
)

// TestKill9DuringSnapshotAndBackup is the task half of the survival
// promise with the real binary: vmkernel is killed -9 while a memory
// snapshot of a running guest is being written (its QEMU, which answers no
// QMP while it saves, held for 3 s more), then while a backup of it is
// being copied. Each time the new vmkernel finds the VM running, its
// QEMU the same process, and counts nothing half-made: the snapshot list
// and the backup list are as before the task; the next snapshot and the
// next backup succeed, and what the killed ones left in the image and the
// backup folder is gone.
func TestKill9DuringSnapshotAndBackup(t *testing.T) {
	r := newSurvivalRig(t)
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img not installed")
	}
	d := r.start(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the last vmkernel's log:\n%s", d.log())
		}
	})

	// A disk of random data: a backup of it takes long enough to be caught.
	raw := filepath.Join(t.TempDir(), "data.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, 256<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	disk := filepath.Join(r.ds, "busy.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", raw, disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	os.Remove(raw)
	if err := os.Chmod(disk, 0o666); err != nil { // the VM's user writes it
		t.Fatal(err)
	}

	spec := api.VMSpec{
		Name: "busy", MemoryMiB: 512, Machine: api.MachinePC, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: runnertest.Cmdline},
		Disks:  []api.Disk{{Datastore: "ds", Path: "busy.qcow2"}},
	}
	vm, err := r.c.CreateVM(ctxT(t, 10*time.Second), spec)
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	vm, err = r.c.VMAction(ctxT(t, 60*time.Second), id, api.ActionStart)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, d.log())
	}
	pid := vm.Runtime.PID
	r.track(pid)
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	r.waitConsole(t, id, 1, 180*time.Second)

	// reattached: the new vmkernel has the same QEMU, running.
	reattached := func(what string) {
		t.Helper()
		rt, took := r.waitVM(t, id, 60*time.Second, "running after the kill during "+what, func(rt api.VMRuntime) bool {
			return rt.State == api.VMRunning
		})
		if rt.PID != pid {
			t.Fatalf("after the kill during %s: pid %d, was %d (restarted, not re-attached)", what, rt.PID, pid)
		}
		t.Logf("after the kill during %s: running, same QEMU, %v after the new vmkernel answered", what, took)
	}

	// 1. A memory snapshot, killed while QEMU writes the guest's memory
	// into the disk (the image grows: the snapshot-save job runs).
	before := allocated(t, disk)
	task, err := r.c.CreateSnapshot(ctxT(t, 30*time.Second), id, api.SnapshotRequest{Name: "killed", Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the snapshot's memory being written", func() bool {
		return allocated(t, disk) > before+(1<<20)
	})
	if got, err := r.c.GetTask(ctxT(t, 5*time.Second), task.ID); err != nil || got.State != api.TaskRunning {
		t.Fatalf("the snapshot task when vmkernel is killed: %+v, %v (want running)", got, err)
	}
	// QEMU answers no QMP until the save is done: held for 3 s (SIGSTOP),
	// it stands for the save of a guest with more memory than this one.
	// Stopped only once vmkernel is gone: a stopped QEMU in a process group
	// orphaned by its parent's death gets SIGHUP from the kernel, and quits.
	d.kill9(t)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := time.AfterFunc(3*time.Second, func() { syscall.Kill(pid, syscall.SIGCONT) })
	defer cont.Stop()
	d = r.start(t)
	reattached("a memory snapshot")
	tree, err := r.c.Snapshots(ctxT(t, 10*time.Second), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Snapshots) != 0 {
		t.Fatalf("a snapshot killed half-way is listed: %+v", tree)
	}
	wait := func(task api.Task, err error) api.Task {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		done, err := r.c.WaitTask(ctxT(t, 5*time.Minute), task.ID, 50*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		if done.State != api.TaskSucceeded {
			t.Fatalf("task %s %s: %s\n%s", done.Kind, done.State, done.Error, d.log())
		}
		return done
	}
	wait(r.c.CreateSnapshot(ctxT(t, 30*time.Second), id, api.SnapshotRequest{Name: "after", Memory: true}))
	if tree, err = r.c.Snapshots(ctxT(t, 10*time.Second), id); err != nil || len(tree.Snapshots) != 1 || tree.Snapshots[0].Name != "after" {
		t.Fatalf("after the next snapshot: %+v, %v", tree, err)
	}
	if tags := imageTags(t, disk); !slices.Equal(tags, []string{tree.Snapshots[0].ID}) {
		t.Fatalf("the image holds snapshots %v, want only %s (the killed one's tag removed)", tags, tree.Snapshots[0].ID)
	}
	if vm, err := r.c.GetVM(ctxT(t, 10*time.Second), id); err != nil || vm.Runtime.State != api.VMRunning {
		t.Fatalf("after the next snapshot: %+v, %v", vm.Runtime, err)
	}

	// 2. A backup, killed while QEMU copies the disk into the backup folder
	// (its file there grows; it has no record yet).
	vmDir := filepath.Join(r.ds, backups.VMDir(api.DefaultBackupFolder, id))
	task, err = r.c.BackupVM(ctxT(t, 30*time.Second), id, api.BackupRequest{Datastore: "ds"})
	if err != nil {
		t.Fatal(err)
	}
	var half string
	waitFor(t, 60*time.Second, "the backup's copy under way", func() bool {
		dirs, _ := filepath.Glob(filepath.Join(vmDir, "*"))
		for _, dir := range dirs {
			st, err := os.Stat(filepath.Join(dir, "disk0.qcow2"))
			if _, rerr := os.Stat(filepath.Join(dir, backups.RecordFile)); err == nil && st.Size() > 1<<20 && rerr != nil {
				half = dir
				return true
			}
		}
		return false
	})
	if got, err := r.c.GetTask(ctxT(t, 5*time.Second), task.ID); err != nil || got.State != api.TaskRunning {
		t.Fatalf("the backup task when vmkernel is killed: %+v, %v (want running)", got, err)
	}
	d.kill9(t)
	d = r.start(t)
	reattached("a backup")
	list, err := r.c.ListBackups(ctxT(t, 10*time.Second), "ds", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("a backup killed half-way is listed: %+v", list)
	}
	wait(r.c.BackupVM(ctxT(t, 30*time.Second), id, api.BackupRequest{Datastore: "ds"}))
	if list, err = r.c.ListBackups(ctxT(t, 10*time.Second), "ds", ""); err != nil || len(list) != 1 || list[0].Kind != api.BackupFull {
		t.Fatalf("after the next backup: %+v, %v", list, err)
	}
	if _, err := os.Stat(half); err == nil {
		t.Errorf("the killed backup's folder %s is still there", half)
	}

	// The guest runs: reset, it boots again and prints its marker.
	if _, err := r.c.VMAction(ctxT(t, 10*time.Second), id, api.ActionReset); err != nil {
		t.Fatal(err)
	}
	r.waitConsole(t, id, 2, 180*time.Second)
	if _, err := r.c.VMAction(ctxT(t, 30*time.Second), id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
}

// allocated is the bytes of disk the file takes.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// waitFor polls ok every millisecond until it says yes, failing after within.
func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not seen within %v: %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// imageTags lists the internal snapshots of a qcow2 image in use.
func imageTags(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "-U", "--output=json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var info struct {
		Snapshots []struct {
			Name string `json:"name"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, s := range info.Snapshots {
		tags = append(tags, s.Name)
	}
	return tags
}
