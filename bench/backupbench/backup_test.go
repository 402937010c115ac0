package backupbench

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/bench/stats"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

var rounds = flag.Int("rounds", 5, "measured rounds after the warm-up (at least b.N)")

// BenchmarkBackupRestore measures a full backup of a running VM's disk
// (192 MiB of data in a 256 MiB qcow2) through the API against the floor,
// a plain qemu-img convert of the same disk (-U, while the VM runs) to
// qcow2 in the same datastore; and a restore of that backup as a new VM
// (checksums, then qemu-img convert) against the same floor. One warm-up
// round, then -rounds rounds (5), each interleaving the three; it prints
// the medians with their range, the rates and the ratios to the floor.
func BenchmarkBackupRestore(b *testing.B) {
	testenv.Command(b, "qemu-io")
	kernel := runnertest.Kernel(b, "../../build/vmlinuz")
	rig := vmkerneltest.Start(b, vmkerneltest.Options{})
	c, ds := rig.Client, rig.DS["ds"]
	runnertest.Install(b, kernel, ds)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	const size, data = 256 << 20, 192 << 20
	if _, err := c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: "fig/disk.qcow2", SizeBytes: size}); err != nil {
		b.Fatal(err)
	}
	disk := filepath.Join(ds, "fig/disk.qcow2")
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x3c 0 192M", disk).CombinedOutput(); err != nil {
		b.Fatalf("qemu-io: %v: %s", err, out)
	}
	vm, err := c.CreateVM(ctx, api.VMSpec{
		Name: "fig", MemoryMiB: 128, Machine: api.MachinePC, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinuz", Initrd: "init.cpio", Cmdline: runnertest.Cmdline},
		Disks:  []api.Disk{{Datastore: "ds", Path: "fig/disk.qcow2"}},
		Backup: &api.BackupPolicy{Datastore: "ds", Keep: 1},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.VMAction(ctx, vm.Spec.ID, api.ActionStart); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.VMAction(stop, vm.Spec.ID, api.ActionStop)
	})
	task := func(tk api.Task, err error) api.Task {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
		done, err := c.WaitTask(ctx, tk.ID, 5*time.Millisecond, nil)
		if err != nil {
			b.Fatalf("task %s: %v", tk.ID, err)
		}
		return done
	}
	floor := func() time.Duration {
		out := filepath.Join(ds, "fig/floor.qcow2")
		t0 := time.Now()
		if o, err := exec.Command("qemu-img", "convert", "-U", "-O", "qcow2", disk, out).CombinedOutput(); err != nil {
			b.Fatalf("qemu-img convert: %v: %s", err, o)
		}
		d := time.Since(t0)
		os.Remove(out)
		return d
	}
	n := max(*rounds, b.N)
	b.ResetTimer()
	var bk, rs, fl []time.Duration
	for round := range n + 1 {
		f := floor()
		t0 := time.Now()
		done := task(c.BackupVM(ctx, vm.Spec.ID, api.BackupRequest{Full: true}))
		bt := time.Since(t0)
		t0 = time.Now()
		restored := task(c.Restore(ctx, api.RestoreRequest{Datastore: "ds", Backup: done.Results[0], Name: "fig-restored"}))
		rt := time.Since(t0)
		if _, err := c.DeleteVMWithDisks(ctx, restored.Results[0]); err != nil {
			b.Fatal(err)
		}
		if round == 0 {
			continue // warm-up
		}
		fl, bk, rs = append(fl, f), append(bk, bt), append(rs, rt)
	}
	b.StopTimer()
	med := stats.Median
	rate := func(d time.Duration) float64 { return float64(data) / (1 << 20) / d.Seconds() }
	b.Logf("%d rounds after a warm-up, interleaved", n)
	b.Logf("floor (qemu-img convert -U -O qcow2, 192 MiB of data): median %v (%v to %v), %.0f MiB/s", med(fl), slices.Min(fl), slices.Max(fl), rate(med(fl)))
	b.Logf("full backup of the running VM (API, task done): median %v (%v to %v), %.0f MiB/s, ratio to the floor %.2f",
		med(bk), slices.Min(bk), slices.Max(bk), rate(med(bk)), med(bk).Seconds()/med(fl).Seconds())
	b.Logf("restore as a new VM (checksums + convert, task done): median %v (%v to %v), %.0f MiB/s, ratio to the floor %.2f",
		med(rs), slices.Min(rs), slices.Max(rs), rate(med(rs)), med(rs).Seconds()/med(fl).Seconds())
	b.ReportMetric(med(fl).Seconds(), "floor-s")
	b.ReportMetric(med(bk).Seconds(), "backup-s")
	b.ReportMetric(med(rs).Seconds(), "restore-s")
	b.ReportMetric(med(bk).Seconds()/med(fl).Seconds(), "backup/floor")
	b.ReportMetric(med(rs).Seconds()/med(fl).Seconds(), "restore/floor")
}
