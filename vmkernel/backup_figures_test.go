package vmkernel_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// TestBackupFigures measures, for docs/PERFORMANCE.md, a full backup of a
// running VM's disk (192 MiB of data in a 256 MiB qcow2) through the API
// against the floor, a plain qemu-img convert of the same disk (-U, while
// the VM runs) to qcow2 in the same datastore; and a restore of that
// backup as a new VM (checksums, then qemu-img convert) against the same
// floor. One warm-up round, then 5 rounds, each interleaving the three;
// medians with the range.
func TestBackupFigures(t *testing.T) {
	testenv.Command(t, "qemu-io")
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	rig := vmkerneltest.Start(t, vmkerneltest.Options{})
	c, ds := rig.Client, rig.DS["ds"]
	runnertest.Install(t, kernel, ds)
	ctx := longCtx(t)
	const size, data = 256 << 20, 192 << 20
	if _, err := c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "fig/disk.qcow2", SizeBytes: size}); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(ds, "fig/disk.qcow2")
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x3c 0 192M", disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
	spec := guest("fig")
	spec.Disks = []api.Disk{{Datastore: "ds", Path: "fig/disk.qcow2"}}
	spec.Backup = &api.BackupPolicy{Datastore: "ds", Keep: 1}
	vm, err := c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VMAction(ctx, vm.Spec.ID, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.VMAction(ctx, vm.Spec.ID, api.ActionStop) })
	task := func(tk api.Task, err error) api.Task {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		done, err := c.WaitTask(ctx, tk.ID, 5*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("task %s: %v", tk.ID, err)
		}
		return done
	}
	floor := func() time.Duration {
		out := filepath.Join(ds, "fig/floor.qcow2")
		t0 := time.Now()
		if b, err := exec.Command("qemu-img", "convert", "-U", "-O", "qcow2", disk, out).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img convert: %v: %s", err, b)
		}
		d := time.Since(t0)
		os.Remove(out)
		return d
	}
	var bk, rs, fl []time.Duration
	for round := range 6 {
		f := floor()
		t0 := time.Now()
		done := task(c.BackupVM(ctx, vm.Spec.ID, api.BackupRequest{Full: true}))
		b := time.Since(t0)
		t0 = time.Now()
		restored := task(c.Restore(ctx, api.RestoreRequest{Datastore: "ds", Backup: done.Results[0], Name: "fig-restored"}))
		r := time.Since(t0)
		if _, err := c.DeleteVMWithDisks(ctx, restored.Results[0]); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			continue // warm-up
		}
		fl, bk, rs = append(fl, f), append(bk, b), append(rs, r)
	}
	med := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	rate := func(d time.Duration) float64 { return float64(data) / (1 << 20) / d.Seconds() }
	t.Logf("floor (qemu-img convert -U -O qcow2, 192 MiB of data): median %v (%v to %v), %.0f MiB/s", med(fl), slices.Min(fl), slices.Max(fl), rate(med(fl)))
	t.Logf("full backup of the running VM (API, task done): median %v (%v to %v), %.0f MiB/s, ratio to the floor %.2f",
		med(bk), slices.Min(bk), slices.Max(bk), rate(med(bk)), med(bk).Seconds()/med(fl).Seconds())
	t.Logf("restore as a new VM (checksums + convert, task done): median %v (%v to %v), %.0f MiB/s, ratio to the floor %.2f",
		med(rs), slices.Min(rs), slices.Max(rs), rate(med(rs)), med(rs).Seconds()/med(fl).Seconds())
}
