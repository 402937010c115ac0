package snapbench

import (
	"context"
	"flag"
	"fmt"
	"github.com/plinth/plinth/bench/barevm"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/bench/stats"
	"github.com/plinth/plinth/client"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

var (
	rounds = flag.Int("rounds", 5, "measured rounds after the warm-up (at least b.N)")
	count  = flag.Int("clones", 5, "VMs per deploy")
)

const (
	memMiB  = 256
	diskMiB = 256
	dataMiB = 64
)

// makeDisk creates a qcow2 disk of diskMiB at rel in datastore ds (root
// dir) through the API, with dataMiB of data written by qemu-io.
func makeDisk(b *testing.B, ctx context.Context, c *client.Client, dir, rel string) string {
	b.Helper()
	if _, err := c.CreateDisk(ctx, "ds", api.CreateDiskRequest{Path: rel, SizeBytes: diskMiB << 20}); err != nil {
		b.Fatal(err)
	}
	disk := filepath.Join(dir, rel)
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -P 0x5a 0 %dM", dataMiB), disk).CombinedOutput(); err != nil {
		b.Fatalf("qemu-io: %v: %s", err, out)
	}
	return disk
}

// waiter waits for a task and fails the benchmark unless it succeeded.
func waiter(b *testing.B, ctx context.Context, c *client.Client) func(api.Task, error) api.Task {
	return func(tk api.Task, err error) api.Task {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
		done, err := c.WaitTask(ctx, tk.ID, 5*time.Millisecond, nil)
		if err != nil {
			b.Fatalf("task %s: %v", tk.ID, err)
		}
		if done.State != api.TaskSucceeded {
			b.Fatalf("task %s %s: %s", done.Kind, done.State, done.Error)
		}
		return done
	}
}

func timed(f func()) time.Duration {
	t0 := time.Now()
	f()
	return time.Since(t0)
}

// report logs one measured pair: medians, ranges, ratio.
func report(b *testing.B, what, floorWhat string, got, floor []time.Duration, unit string) {
	med := stats.Median
	b.Logf("%s: median %v (%v to %v); floor, %s: median %v (%v to %v); ratio %.2f",
		what, med(got), slices.Min(got), slices.Max(got), floorWhat, med(floor), slices.Min(floor), slices.Max(floor),
		med(got).Seconds()/med(floor).Seconds())
	b.ReportMetric(med(got).Seconds(), unit+"-s")
	b.ReportMetric(med(floor).Seconds(), unit+"-floor-s")
}

// BenchmarkSnapshots: snapshots (memory, disk-only) of a running guest and
// reverts (memory on the running guest, disk-only on the stopped VM)
// through the API, task done, against bare QEMU and qemu-img on the same
// guest and an identical disk. Each round takes and reverts on both sides
// in turn, then deletes its snapshots (not timed).
func BenchmarkSnapshots(b *testing.B) {
	testenv.Command(b, "qemu-io")
	kernel := runnertest.Kernel(b, "../../build/vmlinuz")
	rig := vmkerneltest.Start(b, vmkerneltest.Options{})
	c, ds := rig.Client, rig.DS["ds"]
	runnertest.Install(b, kernel, ds)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	wait := waiter(b, ctx, c)
	makeDisk(b, ctx, c, ds, "snap/disk.qcow2")
	bareDisk := makeDisk(b, ctx, c, ds, "bare/disk.qcow2")
	vm, err := c.CreateVM(ctx, api.VMSpec{
		Name: "snap", MemoryMiB: memMiB, Machine: api.MachinePC, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinuz", Initrd: "init.cpio", Cmdline: runnertest.Cmdline},
		Disks:  []api.Disk{{Datastore: "ds", Path: "snap/disk.qcow2"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	id := vm.Spec.ID
	if _, err := c.VMAction(ctx, id, api.ActionStart); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.VMAction(stop, id, api.ActionStop)
	})
	q := barevm.Start(b, ds, "barevm", memMiB, runnertest.Cmdline, "-machine", "pc",
		"-blockdev", "driver=file,filename="+bareDisk+",node-name=disk0-file",
		"-blockdev", "driver=qcow2,file=disk0-file,node-name=disk0",
		"-device", "virtio-blk-pci,drive=disk0")
	runnertest.WaitConsole(b, func() ([]byte, error) { return c.VMConsole(ctx, id) }, runnertest.Marker, 3*time.Minute)
	runnertest.WaitConsole(b, q.Tail, runnertest.Marker, 3*time.Minute)

	n := max(*rounds, b.N)
	b.ResetTimer()
	var snapM, snapMF, snapD, snapDF, revM, revMF, revD, revDF []time.Duration
	for round := range n + 1 {
		m, d := fmt.Sprintf("m%d", round), fmt.Sprintf("d%d", round)
		fm := timed(func() {
			q.Run(b, "snapshot-save", map[string]any{"job-id": "save", "tag": m, "vmstate": "disk0", "devices": []string{"disk0"}}, "save")
		})
		pm := timed(func() { wait(c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: m, Memory: true})) })
		fd := timed(func() {
			q.Run(b, "transaction", map[string]any{"actions": []map[string]any{{"type": "blockdev-snapshot-internal-sync",
				"data": map[string]string{"device": "disk0", "name": d}}}}, "")
		})
		pd := timed(func() { wait(c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: d})) })
		fr := timed(func() {
			q.Run(b, "snapshot-load", map[string]any{"job-id": "load", "tag": m, "vmstate": "disk0", "devices": []string{"disk0"}}, "load")
			q.Run(b, "cont", nil, "")
		})
		pr := timed(func() { wait(c.RevertSnapshot(ctx, id, m, api.RevertRequest{})) })
		if got, err := c.GetVM(ctx, id); err != nil || got.Runtime.State != api.VMRunning {
			b.Fatalf("after the revert: %+v, %v", got.Runtime, err)
		}
		// Not timed: the round's snapshots go on both sides.
		for _, s := range []string{m, d} {
			wait(c.DeleteSnapshot(ctx, id, s))
			q.Run(b, "snapshot-delete", map[string]any{"job-id": "del", "tag": s, "devices": []string{"disk0"}}, "del")
		}
		if round == 0 {
			continue // warm-up
		}
		snapM, snapMF = append(snapM, pm), append(snapMF, fm)
		snapD, snapDF = append(snapD, pd), append(snapDF, fd)
		revM, revMF = append(revM, pr), append(revMF, fr)
	}

	// Disk-only reverts: on the stopped VM (a running one is stopped first,
	// which is the guest's shutdown, not the revert), against qemu-img
	// snapshot -a of the bare disk.
	wait(c.CreateSnapshot(ctx, id, api.SnapshotRequest{Name: "base"}))
	q.Run(b, "transaction", map[string]any{"actions": []map[string]any{{"type": "blockdev-snapshot-internal-sync",
		"data": map[string]string{"device": "disk0", "name": "base"}}}}, "")
	if _, err := c.VMAction(ctx, id, api.ActionStop); err != nil {
		b.Fatal(err)
	}
	q.Run(b, "quit", nil, "")
	q.Cmd.Wait()
	for round := range n + 1 {
		fr := timed(func() {
			if out, err := exec.Command("qemu-img", "snapshot", "-a", "base", bareDisk).CombinedOutput(); err != nil {
				b.Fatalf("qemu-img snapshot -a: %v: %s", err, out)
			}
		})
		pr := timed(func() { wait(c.RevertSnapshot(ctx, id, "base", api.RevertRequest{})) })
		if round > 0 {
			revD, revDF = append(revD, pr), append(revDF, fr)
		}
	}
	b.StopTimer()
	b.Logf("%d rounds after a warm-up, Plinth and the floor interleaved; guest of %d MiB under TCG, qcow2 disk of %d MiB with %d MiB of data", n, memMiB, diskMiB, dataMiB)
	report(b, "snapshot with memory, running VM (API, task done)", "bare QEMU snapshot-save job", snapM, snapMF, "snap-mem")
	report(b, "disk-only snapshot, running VM (API, task done)", "bare QEMU blockdev-snapshot-internal-sync", snapD, snapDF, "snap-disk")
	report(b, "revert to the memory snapshot, running VM (API, task done, guest running)", "bare QEMU snapshot-load job + cont", revM, revMF, "revert-mem")
	report(b, "revert to a disk-only snapshot, stopped VM (API, task done)", "qemu-img snapshot -a", revD, revDF, "revert-disk")
}

// BenchmarkDeploy: a linked-clone deploy of -clones VMs from a template
// (API, task done; per VM) against qemu-img create -b of as many overlays
// on the template's disk (per overlay). The clones go after each round
// (not timed).
func BenchmarkDeploy(b *testing.B) {
	testenv.Command(b, "qemu-io")
	rig := vmkerneltest.Start(b, vmkerneltest.Options{})
	c, ds := rig.Client, rig.DS["ds"]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wait := waiter(b, ctx, c)
	base := makeDisk(b, ctx, c, ds, "tmpl/disk.qcow2")
	vm, err := c.CreateVM(ctx, api.VMSpec{
		Name: "tmpl", MemoryMiB: memMiB, Machine: api.MachinePC,
		Disks: []api.Disk{{Datastore: "ds", Path: "tmpl/disk.qcow2"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.SetTemplate(ctx, vm.Spec.ID, true); err != nil {
		b.Fatal(err)
	}
	k := *count
	n := max(*rounds, b.N)
	b.ResetTimer()
	var got, floor []time.Duration
	for round := range n + 1 {
		dir := filepath.Join(ds, "floor")
		os.MkdirAll(dir, 0o755)
		f := timed(func() {
			for i := range k {
				out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2",
					filepath.Join(dir, fmt.Sprintf("c%d.qcow2", i))).CombinedOutput()
				if err != nil {
					b.Fatalf("qemu-img create -b: %v: %s", err, out)
				}
			}
		})
		os.RemoveAll(dir)
		var done api.Task
		p := timed(func() {
			done = wait(c.Deploy(ctx, vm.Spec.ID, api.DeployRequest{Count: k, NamePattern: fmt.Sprintf("r%d-{n}", round)}))
		})
		if len(done.Results) != k {
			b.Fatalf("deploy made %v, want %d VMs", done.Results, k)
		}
		for _, c2 := range done.Results {
			if _, err := c.DeleteVMWithDisks(ctx, c2); err != nil {
				b.Fatal(err)
			}
		}
		if round > 0 {
			got, floor = append(got, p/time.Duration(k)), append(floor, f/time.Duration(k))
		}
	}
	b.StopTimer()
	b.Logf("%d rounds after a warm-up, Plinth and the floor interleaved; %d linked clones per round of a template with a qcow2 disk of %d MiB (%d MiB of data)", n, k, diskMiB, dataMiB)
	report(b, "linked-clone deploy per VM (API, task done, divided by the count)", "qemu-img create -b per overlay", got, floor, "deploy-per-vm")
}
