package vmkernel_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/internal/testenv"
	"github.com/plinth/plinth/vmkernel/passthrough"
	"github.com/plinth/plinth/vmkernel/runner/runnertest"
	"github.com/plinth/plinth/vmkernel/vmkerneltest"
)

// TestDeviceRoutesWithQEMU drives a VM's devices through vmkernel's API:
// on a stopped VM they change its spec; on a running one they are plugged
// in and out (the guest sees them come and go) and kept in its spec; the
// balloon's target changes live. Each bad request gets a clear problem and
// leaves the VM running as it was.
func TestDeviceRoutesWithQEMU(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		testenv.Unmet(t, "qemu-system-x86_64 not installed")
	}
	testenv.Root(t, "host devices are handed over by root")
	kernel := runnertest.Kernel(t, "../build/vmlinuz")
	rig := vmkerneltest.Start(t, vmkerneltest.Options{Devices: passthrough.NewHost(nil)})
	c, ds := rig.Client, rig.DS["ds"]
	runnertest.InstallWithModules(t, kernel, runnertest.Modules(t, "../build"), ds, runnertest.HardwareModules...)
	if err := os.WriteFile(filepath.Join(ds, "extra.raw"), make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	spec := api.VMSpec{Name: "devices", MemoryMiB: 384, Serial: true, Balloon: &api.Balloon{MinMiB: 160},
		Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: runnertest.FloorCmdline("watch,hang")}}
	vm, err := c.CreateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	id := vm.Spec.ID
	disk := api.Disk{Datastore: "ds", Path: "extra.raw", Format: api.FormatRaw}

	// Stopped: the spec alone changes.
	if vm, err = c.AddDisk(ctx, id, disk); err != nil || len(vm.Spec.Disks) != 1 || vm.Spec.Disks[0].Bus != api.BusVirtioBlk {
		t.Fatalf("disk added to a stopped VM: %+v, %v", vm.Spec.Disks, err)
	}
	if vm, err = c.RemoveDisk(ctx, id, 0); err != nil || len(vm.Spec.Disks) != 0 {
		t.Fatalf("disk removed from a stopped VM: %+v, %v", vm.Spec.Disks, err)
	}
	apiErr(t, errOf(c.Balloon(ctx, id)), http.StatusConflict) // not running

	if _, err := c.VMAction(ctx, id, api.ActionStart); err != nil {
		t.Fatal(err)
	}
	tail := func() ([]byte, error) { return c.VMConsole(ctx, id) }
	runnertest.WaitConsole(t, tail, runnertest.Marker, 180*time.Second)
	pid := func() int {
		vm, err := c.GetVM(ctx, id)
		if err != nil || vm.Runtime.State != api.VMRunning {
			t.Fatalf("VM: %+v, %v", vm.Runtime, err)
		}
		return vm.Runtime.PID
	}
	p0 := pid()

	t0 := time.Now()
	if vm, err = c.AddDisk(ctx, id, disk); err != nil || len(vm.Spec.Disks) != 1 {
		t.Fatalf("disk plugged in: %+v, %v", vm.Spec.Disks, err)
	}
	runnertest.WaitConsole(t, tail, "PLINTH-DISK vda 4194304", 60*time.Second)
	t.Logf("disk plugged in, seen by the guest %v after the request", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if vm, err = c.AddNIC(ctx, id, api.NIC{NAT: true, MAC: "02:18:00:00:00:07"}); err != nil || len(vm.Spec.NICs) != 1 || vm.Spec.NICs[0].Model != api.NICVirtio {
		t.Fatalf("NIC plugged in: %+v, %v", vm.Spec.NICs, err)
	}
	runnertest.WaitConsole(t, tail, "PLINTH-NIC eth0 02:18:00:00:00:07", 60*time.Second)
	t.Logf("NIC plugged in, seen by the guest %v after the request", time.Since(t0).Round(time.Millisecond))

	// Bad requests: each a clear problem, the VM as it was.
	e := apiErr(t, errOf(c.AddUSB(ctx, id, api.USBPassthrough{VendorID: "1d6b", ProductID: "0104"})), http.StatusNotFound)
	if !strings.Contains(e.Problem.Detail, "no USB device 1d6b:0104") {
		t.Errorf("a USB device that is not there: %q", e.Problem.Detail)
	}
	apiErr(t, errOf(c.AddUSB(ctx, id, api.USBPassthrough{Port: "1-0"})), http.StatusUnprocessableEntity)
	if e := apiErr(t, errOf(c.RemoveDisk(ctx, id, 7)), http.StatusUnprocessableEntity); e.Problem.Field != "index" {
		t.Errorf("a disk the VM does not have: field %q", e.Problem.Field)
	}
	if e := apiErr(t, errOf(c.AddDisk(ctx, id, api.Disk{Datastore: "ds", Path: "nothing.raw", Format: api.FormatRaw})), http.StatusUnprocessableEntity); !strings.Contains(e.Problem.Field, "path") {
		t.Errorf("a disk image that does not exist: %+v", e)
	}
	if e := apiErr(t, errOf(c.SetBalloon(ctx, id, 100)), http.StatusUnprocessableEntity); e.Problem.Field != "target_mib" || !strings.Contains(e.Problem.Detail, "160") {
		t.Errorf("a balloon target below the minimum: %+v", e)
	}
	if vm, err := c.GetVM(ctx, id); err != nil || len(vm.Spec.Disks) != 1 || len(vm.Spec.NICs) != 1 || len(vm.Spec.USBDevices) != 0 || vm.Runtime.PID != p0 {
		t.Fatalf("after the refused requests: %+v, %v", vm, err)
	}

	st, err := c.SetBalloon(ctx, id, 200)
	if err != nil || st.TargetMiB != 200 || st.MinMiB != 160 || st.MaxMiB != 384 {
		t.Fatalf("balloon: %+v, %v", st, err)
	}
	for deadline := time.Now().Add(60 * time.Second); st.ActualMiB > 204; time.Sleep(500 * time.Millisecond) {
		if st, err = c.Balloon(ctx, id); err != nil || time.Now().After(deadline) {
			t.Fatalf("balloon after 60 s: %+v, %v", st, err)
		}
	}

	if vm, err = c.RemoveNIC(ctx, id, 0); err != nil || len(vm.Spec.NICs) != 0 {
		t.Fatalf("NIC unplugged: %+v, %v", vm.Spec.NICs, err)
	}
	runnertest.WaitConsole(t, tail, "PLINTH-GONE eth0", 60*time.Second)
	if vm, err = c.RemoveDisk(ctx, id, 0); err != nil || len(vm.Spec.Disks) != 0 {
		t.Fatalf("disk unplugged: %+v, %v", vm.Spec.Disks, err)
	}
	runnertest.WaitConsole(t, tail, "PLINTH-GONE vda", 60*time.Second)
	if p := pid(); p != p0 {
		t.Fatalf("QEMU changed: %d, was %d", p, p0)
	}
	if _, err := c.VMAction(ctx, id, api.ActionStop); err != nil {
		t.Fatal(err)
	}

	// PCI devices are checked when the VM starts: one that is not on the
	// host is a problem of the spec's field; one without an IOMMU group
	// (this host has none) a conflict that says why.
	pci := api.VMSpec{Name: "pci", MemoryMiB: 128, Serial: true, PCIDevices: []api.PCIPassthrough{{Address: "0000:00:1f.7"}},
		Kernel: &api.DirectBoot{Datastore: "ds", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: runnertest.Cmdline}}
	pvm, err := c.CreateVM(ctx, pci)
	if err != nil {
		t.Fatal(err)
	}
	if e := apiErr(t, errOf(c.VMAction(ctx, pvm.Spec.ID, api.ActionStart)), http.StatusUnprocessableEntity); e.Problem.Field != "pci_devices[0].address" {
		t.Errorf("a PCI device that is not there: %+v", e)
	}
	hw, err := c.Hardware(ctx)
	if err != nil || len(hw.PCI) == 0 {
		t.Fatalf("hardware: %v", err)
	}
	pvm.Spec.PCIDevices = []api.PCIPassthrough{{Address: hw.PCI[len(hw.PCI)-1].Address}}
	if _, err := c.UpdateVM(ctx, pvm.Spec); err != nil {
		t.Fatal(err)
	}
	e = apiErr(t, errOf(c.VMAction(ctx, pvm.Spec.ID, api.ActionStart)), http.StatusConflict)
	t.Logf("a host PCI device refused: %s", e.Problem.Detail)
	if got, _ := c.GetVM(ctx, pvm.Spec.ID); got.Runtime.State != api.VMStopped {
		t.Errorf("after a refused start: %+v", got.Runtime)
	}
}
