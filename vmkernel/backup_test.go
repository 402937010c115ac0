package vmkernel_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// rawSum is the SHA-256 of a disk image's content (what the guest sees),
// read with qemu-img as raw.
func rawSum(t *testing.T, img string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "raw")
	if b, err := exec.Command("qemu-img", "convert", "-U", "-O", "raw", img, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert %s: %v: %s", img, err, b)
	}
	return fileSum(t, out)
}

// TestIncrementalBackupRestore: the guest writes data, a full backup is
// taken of the running VM, the guest writes more, an incremental backup
// copies about what changed; the VM is destroyed and restored from the
// incremental backup: its disk's content is the source's at the second
// backup, and the guest reads its last marker. A restored VM whose QEMU is
// killed then gets a full backup, saying why; a backup whose file was
// changed is not restored.
func TestIncrementalBackupRestore(t *testing.T) {
	t.Parallel() // see startVMs
	r := fsRig(t)
	ctx := longCtx(t)
	wait := waiter(t, r.c)
	spec := fsGuest(t, r, "bk")
	spec.Backup = &api.BackupPolicy{Datastore: "ds"}
	vm, err := r.c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	g := guestConsole{t, r, id}
	runnertest.WaitConsole(t, g.tail, runnertest.Marker, 2*time.Minute)
	g.say("fill a 8", "floor: filled a 8", time.Minute)
	g.say("mark one", "floor: marked one", time.Minute)
	t0 := time.Now()
	wait(r.c.BackupVM(ctx, id, api.BackupRequest{}))
	t.Logf("full backup took %v", time.Since(t0))
	g.say("fill b 4", "floor: filled b 4", time.Minute)
	g.say("mark two", "floor: marked two", time.Minute)
	t0 = time.Now()
	task := wait(r.c.BackupVM(ctx, id, api.BackupRequest{}))
	t.Logf("incremental backup took %v", time.Since(t0))

	list, err := r.c.VMBackups(ctx, id)
	if err != nil || len(list) != 2 {
		t.Fatalf("backups %+v, %v", list, err)
	}
	full, inc := list[0], list[1]
	if full.Kind != api.BackupFull || !strings.Contains(full.Reason, "no earlier backup") || inc.Kind != api.BackupIncremental ||
		inc.Parent != full.ID || inc.Reason != "" || len(task.Results) != 1 || task.Results[0] != inc.ID {
		t.Fatalf("full %+v\nincremental %+v", full, inc)
	}
	t.Logf("full: %d bytes copied, %d kept; incremental: %d bytes copied, %d kept (4 MiB written)", full.CopiedBytes, full.SizeBytes, inc.CopiedBytes, inc.SizeBytes)
	if inc.CopiedBytes < 4<<20 || inc.CopiedBytes > 16<<20 || inc.CopiedBytes >= full.CopiedBytes {
		t.Errorf("the incremental backup copied %d bytes for 4 MiB written", inc.CopiedBytes)
	}
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
	source := rawSum(t, filepath.Join(r.ds, "bk/disk.qcow2"))
	if _, err := r.c.DeleteVMWithDisks(ctx, id); err != nil {
		t.Fatal(err)
	}

	t0 = time.Now()
	task = wait(r.c.Restore(ctx, api.RestoreRequest{Datastore: "ds", Backup: inc.ID}))
	t.Logf("restore took %v", time.Since(t0))
	back, err := r.c.GetVM(ctx, "bk")
	if err != nil || back.Spec.ID != task.Results[0] || back.Spec.ID == id || back.Spec.Disks[0].Path != "bk/disk0.qcow2" {
		t.Fatalf("restored VM %+v, %v", back.Spec, err)
	}
	if got := rawSum(t, filepath.Join(r.ds, "bk/disk0.qcow2")); got != source {
		t.Fatalf("the restored disk's content is not the source's at the second backup")
	}
	if _, err := r.c.VMAction(ctx, back.Spec.ID, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	g = guestConsole{t, r, back.Spec.ID}
	runnertest.WaitConsole(t, g.tail, runnertest.Marker, 2*time.Minute)
	g.say("cat", "floor: marker=two", time.Minute)

	// An unclean end of QEMU loses the change tracking: the next backup is
	// full and says so.
	wait(r.c.BackupVM(ctx, back.Spec.ID, api.BackupRequest{}))
	g.say("fill c 1", "floor: filled c 1", time.Minute)
	cur, _ := r.c.GetVM(ctx, back.Spec.ID)
	if err := syscall.Kill(cur.Runtime.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for cur.Runtime.State != api.VMCrashed {
		time.Sleep(50 * time.Millisecond)
		cur, _ = r.c.GetVM(ctx, back.Spec.ID)
	}
	if _, err := r.c.VMAction(ctx, back.Spec.ID, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	wait(r.c.BackupVM(ctx, back.Spec.ID, api.BackupRequest{}))
	list, _ = r.c.VMBackups(ctx, back.Spec.ID)
	if len(list) != 2 || list[1].Kind != api.BackupFull || !strings.Contains(list[1].Reason, "without a clean shutdown") {
		t.Fatalf("after QEMU was killed: %+v", list[len(list)-1])
	}
	t.Logf("after the kill: %s backup: %s", list[1].Kind, list[1].Reason)
	if _, err := r.c.VMAction(ctx, back.Spec.ID, api.ActionStop); err != nil {
		t.Fatal(err)
	}

	// A backup file changed: the restore checks the chain and refuses,
	// making nothing.
	f, err := os.OpenFile(filepath.Join(r.ds, inc.Disks[0].File), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	b := make([]byte, 1)
	f.ReadAt(b, fi.Size()-1)
	b[0] ^= 0xff
	f.WriteAt(b, fi.Size()-1)
	f.Close()
	task, err = r.c.Restore(ctx, api.RestoreRequest{Datastore: "ds", Backup: inc.ID, Name: "bk-again"})
	if err != nil {
		t.Fatal(err)
	}
	done, err := r.c.WaitTask(ctx, task.ID, 50*time.Millisecond, nil)
	if err == nil || !strings.Contains(done.Error, inc.Disks[0].File) {
		t.Fatalf("restore of a changed backup: %+v, %v", done, err)
	}
	if _, err := r.c.GetVM(ctx, "bk-again"); err == nil {
		t.Fatal("a refused restore made a VM")
	}
	if _, err := os.Stat(filepath.Join(r.ds, "bk-again")); !os.IsNotExist(err) {
		t.Fatalf("a refused restore left files: %v", err)
	}
}

// TestBackupScheduleAndRetention: a VM whose policy schedules backups gets
// one from the scheduler; then with keep 2, the backups no longer kept go,
// and those the kept ones build on stay. A stopped VM's backup is full and
// its disk keeps tracking changes for the next one.
func TestBackupScheduleAndRetention(t *testing.T) {
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	rig := vmkerneltest.Start(t, vmkerneltest.Options{BackupTick: 100 * time.Millisecond})
	r := &vmRig{c: rig.Client, sock: rig.Socket, m: rig.Runner, base: rig.Base, ds: rig.DS["ds"]}
	runnertest.Install(t, kernel, r.ds)
	ctx := longCtx(t)
	wait := waiter(t, r.c)
	if _, err := r.c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "kept/disk.qcow2", SizeBytes: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	spec := guest("kept")
	spec.Disks = []api.Disk{{Datastore: "ds", Path: "kept/disk.qcow2"}}
	vm, err := r.c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	spec = vm.Spec
	spec.Backup = &api.BackupPolicy{Datastore: "ds", Folder: "nightly", Keep: 2, Schedule: "every 24h"}
	if _, err := r.c.UpdateVMBecause(ctx, id, spec, "back it up"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	var list []api.Backup
	for len(list) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		list, _ = r.c.VMBackups(ctx, id)
	}
	if len(list) != 1 || list[0].Kind != api.BackupFull || !strings.HasPrefix(list[0].Path, "nightly/") {
		t.Fatalf("the scheduler's backup: %+v", list)
	}
	// More: incremental, incremental, full (asked), incremental.
	for _, full := range []bool{false, false, true, false} {
		wait(r.c.BackupVM(ctx, id, api.BackupRequest{Full: full}))
	}
	list, _ = r.c.VMBackups(ctx, id)
	if len(list) != 2 || list[0].Kind != api.BackupFull || list[1].Parent != list[0].ID {
		t.Fatalf("keep 2: %+v", list)
	}
	all, err := r.c.ListBackups(ctx, "ds", "nightly")
	if err != nil || len(all) != 2 {
		t.Fatalf("the folder's backups: %d, %v", len(all), err)
	}
	// Stopped: a full copy, and the next running backup builds on it.
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
	wait(r.c.BackupVM(ctx, id, api.BackupRequest{}))
	if _, err := r.c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	wait(r.c.BackupVM(ctx, id, api.BackupRequest{}))
	list, _ = r.c.VMBackups(ctx, id)
	if len(list) != 2 || list[0].Kind != api.BackupFull || !strings.Contains(list[0].Reason, "stopped") ||
		list[1].Kind != api.BackupIncremental || list[1].Parent != list[0].ID {
		t.Fatalf("after a stopped VM's backup: %+v", list)
	}
	// A backup to nowhere, and to a folder outside the datastore.
	_, err = r.c.BackupVM(ctx, id, api.BackupRequest{Datastore: "nope"})
	apiErr(t, err, http.StatusUnprocessableEntity)
	_, err = r.c.BackupVM(ctx, id, api.BackupRequest{Datastore: "ds", Folder: "../out"})
	apiErr(t, err, http.StatusUnprocessableEntity)
	if _, err := r.c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}
}

// TestBackupOutOfSpace: a backup that would not fit its target datastore
// (a 100 MiB tmpfs) is refused (507) before anything is written, and the
// remains of a backup that never finished (a folder without a record, as
// a vmkernel killed halfway leaves) are never listed and are removed by
// the VM's next backup.
func TestBackupOutOfSpace(t *testing.T) {
	testenv.Root(t, "mounts a small tmpfs as the backup datastore")
	testenv.Command(t, "qemu-io")
	rig := vmkerneltest.Start(t, vmkerneltest.Options{Datastores: []string{"ds", "small"}})
	c, ds, small := rig.Client, rig.DS["ds"], rig.DS["small"]
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=100m", "plinth-test-bk", small).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", small).Run() })
	ctx := longCtx(t)
	wait := waiter(t, c)
	if _, err := c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "big/disk.qcow2", SizeBytes: 128 << 20}); err != nil {
		t.Fatal(err)
	}
	write := func(at, n string) {
		t.Helper()
		if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x6b "+at+" "+n, filepath.Join(ds, "big/disk.qcow2")).CombinedOutput(); err != nil {
			t.Fatalf("qemu-io: %v: %s", err, out)
		}
	}
	write("0", "1M")
	spec := guest("big")
	spec.Disks = []api.Disk{{Datastore: "ds", Path: "big/disk.qcow2"}}
	spec.Backup = &api.BackupPolicy{Datastore: "small"}
	vm, err := c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	// The remains of an unfinished backup.
	half := filepath.Join(small, "backups", id, "20261206T000000Z-0badf00d")
	if err := os.MkdirAll(half, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(half, "disk0.qcow2"), []byte("half"), 0o600)
	if list, err := c.VMBackups(ctx, id); err != nil || len(list) != 0 {
		t.Fatalf("an unfinished backup listed: %+v, %v", list, err)
	}
	wait(c.BackupVM(ctx, id, api.BackupRequest{}))
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Errorf("the unfinished backup is still there: %v", err)
	}
	// 60 MiB more data: with the 64 MiB margin it no longer fits.
	write("1M", "60M")
	entries := func() []string {
		des, _ := os.ReadDir(filepath.Join(small, "backups", id))
		var names []string
		for _, d := range des {
			names = append(names, d.Name())
		}
		return names
	}
	before := entries()
	_, err = c.BackupVM(ctx, id, api.BackupRequest{})
	e := apiErr(t, err, http.StatusInsufficientStorage)
	t.Logf("refused: %s", e.Problem.Detail)
	if after := entries(); len(after) != 1 || len(before) != 1 || after[0] != before[0] {
		t.Errorf("a refused backup changed the folder: %v, then %v", before, after)
	}
	if list, _ := c.VMBackups(ctx, id); len(list) != 1 {
		t.Errorf("after a refused backup: %d backups", len(list))
	}
}
