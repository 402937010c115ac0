package hwbench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/bench/stats"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/passthrough"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

var rounds = flag.Int("rounds", 15, "measured hot-plug rounds after the warm-up (at least b.N)")

const watchCmdline = "console=ttyS0 quiet panic=-1 plinthfloor=watch,hang"

// BenchmarkHotplug: a disk (raw, 4 MiB) and a NIC (virtio, user
// networking) plugged into a running q35 guest, from the request until the
// guest's watch prints PLINTH-DISK / PLINTH-NIC: through vmkernel's API
// (AddDisk, AddNIC) against bare QEMU's QMP (blockdev-add + device_add,
// netdev_add + device_add) into the same guest (same kernel, initramfs,
// CPU model, memory, root ports). Each round plugs and times on each side
// in turn, then unplugs both (not timed); a warm-up round is discarded.
func BenchmarkHotplug(b *testing.B) {
	testenv.Command(b, "qemu-system-x86_64")
	testenv.Root(b, "vmkernel runs QEMU as the VM's own user")
	kernel := runnertest.Kernel(b, "../../build/vmlinuz")
	rig := vmkerneltest.Start(b, vmkerneltest.Options{Devices: passthrough.NewHost(nil)})
	c, ds := rig.Client, rig.DS["ds"]
	runnertest.InstallWithModules(b, kernel, runnertest.Modules(b, "../../build"), ds, runnertest.HardwareModules...)
	n := max(*rounds, b.N)
	const diskSize = 4 << 20
	if err := os.WriteFile(filepath.Join(ds, "extra.raw"), make([]byte, diskSize), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := range n + 1 { // bare QEMU's: one per round (a deleted node may linger)
		if err := os.WriteFile(filepath.Join(ds, fmt.Sprintf("bare%d.raw", i)), make([]byte, diskSize), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const memMiB = 256
	vm, err := c.CreateVM(ctx, api.VMSpec{Name: "hot", MemoryMiB: memMiB, Machine: api.MachineQ35, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinuz", Initrd: "init.cpio", Cmdline: watchCmdline}})
	if err != nil {
		b.Fatal(err)
	}
	id := vm.Spec.ID
	if vm, err = c.VMAction(ctx, id, api.ActionStart); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.VMAction(stop, id, api.ActionStop)
	})
	cpu, err := qemuCPU(vm.Runtime.PID)
	if err != nil {
		b.Fatal(err)
	}
	q := startBare(b, ds, "bare", cpu, memMiB, watchCmdline)
	tail := func() ([]byte, error) { return c.VMConsole(ctx, id) }
	waitCount(b, tail, runnertest.Marker, 1, 180*time.Second)
	waitCount(b, q.Tail, runnertest.Marker, 1, 180*time.Second)

	disk := api.Disk{Datastore: "ds", Path: "extra.raw", Format: api.FormatRaw}
	diskLine := fmt.Sprintf("PLINTH-DISK vda %d", diskSize)
	b.ResetTimer()
	var pDisk, pNIC, fDisk, fNIC []time.Duration
	for round := range n + 1 {
		mac := fmt.Sprintf("02:18:00:00:01:%02x", round)
		// Plinth, through the API.
		t0 := time.Now()
		if _, err := c.AddDisk(ctx, id, disk); err != nil {
			b.Fatal(err)
		}
		waitCount(b, tail, diskLine, round+1, 60*time.Second)
		pd := time.Since(t0)
		t0 = time.Now()
		if _, err := c.AddNIC(ctx, id, api.NIC{NAT: true, MAC: mac}); err != nil {
			b.Fatal(err)
		}
		waitCount(b, tail, "PLINTH-NIC eth0 "+mac, 1, 60*time.Second)
		pn := time.Since(t0)
		// The floor, bare QEMU's QMP.
		node, dev := fmt.Sprintf("bn%d", round), fmt.Sprintf("bd%d", round)
		t0 = time.Now()
		q.Run(b, "blockdev-add", map[string]any{"driver": "raw", "node-name": node,
			"file": map[string]any{"driver": "file", "filename": filepath.Join(ds, fmt.Sprintf("bare%d.raw", round))}}, "")
		q.Run(b, "device_add", map[string]any{"driver": "virtio-blk-pci", "id": dev, "drive": node, "bus": "hp0"}, "")
		waitCount(b, q.Tail, diskLine, round+1, 60*time.Second)
		fd := time.Since(t0)
		netdev, nic := fmt.Sprintf("nn%d", round), fmt.Sprintf("nd%d", round)
		t0 = time.Now()
		q.Run(b, "netdev_add", map[string]any{"type": "user", "id": netdev}, "")
		q.Run(b, "device_add", map[string]any{"driver": "virtio-net-pci", "id": nic, "netdev": netdev, "mac": mac, "bus": "hp1"}, "")
		waitCount(b, q.Tail, "PLINTH-NIC eth0 "+mac, 1, 60*time.Second)
		fn := time.Since(t0)

		// Unplug both sides (not timed): each waits for its guest.
		if _, err := c.RemoveNIC(ctx, id, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := c.RemoveDisk(ctx, id, 0); err != nil {
			b.Fatal(err)
		}
		unplug(b, q, nic)
		q.Run(b, "netdev_del", map[string]any{"id": netdev}, "")
		unplug(b, q, dev)
		waitCount(b, tail, "PLINTH-GONE vda", round+1, 60*time.Second)
		waitCount(b, q.Tail, "PLINTH-GONE vda", round+1, 60*time.Second)
		if round == 0 {
			continue // warm-up
		}
		pDisk, pNIC, fDisk, fNIC = append(pDisk, pd), append(pNIC, pn), append(fDisk, fd), append(fNIC, fn)
	}
	b.StopTimer()
	med := stats.Median
	b.Logf("%d rounds after a warm-up, Plinth and the floor interleaved; q35 guest (%s, %d MiB) under TCG, its watch polling sysfs every 100 ms", n, cpu, memMiB)
	for _, r := range []struct {
		what        string
		plinth, flr []time.Duration
	}{{"disk", pDisk, fDisk}, {"NIC", pNIC, fNIC}} {
		b.Logf("%s: vmkernel API median %v (%v to %v); bare QEMU QMP median %v (%v to %v); ratio %.2f",
			r.what, med(r.plinth), slices.Min(r.plinth), slices.Max(r.plinth), med(r.flr), slices.Min(r.flr), slices.Max(r.flr),
			med(r.plinth).Seconds()/med(r.flr).Seconds())
		b.ReportMetric(med(r.plinth).Seconds(), r.what+"-plinth-s")
		b.ReportMetric(med(r.flr).Seconds(), r.what+"-qmp-s")
	}
}
