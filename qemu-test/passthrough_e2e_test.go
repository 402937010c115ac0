package qemutest

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

// TestAppliancePassthrough: PCI passthrough in the appliance (issue 18),
// one boot. Under QEMU with an emulated Intel IOMMU and a spare e1000e,
// the API lists the e1000e as passthrough-capable in its own IOMMU group
// and the management NIC as the host's; a nested KVM guest given the
// e1000e through the API binds its own e1000e driver to it (its NIC
// appears with the outer MAC) while the host has it on vfio-pci; when the
// VM stops the host's e1000e driver has it again. A second VM cannot have
// it meanwhile (409). The management NIC is
// refused with a 409 that says why, an address that does not exist with a
// 422 naming the field.
func TestAppliancePassthrough(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()
	seed := floorDatastore(t, o.Kernel, dir, "e1000e")
	dsImg := filepath.Join(dir, "ds1.img")
	mkfs(t, "PLINTH-DS1", seed, dsImg, "160M")

	const spareMAC = "52:54:00:18:00:02"
	o.CPUs, o.MemoryMiB = 2, 2048
	o.IOMMU = true
	o.Cmdline = "intel_iommu=on iommu=pt"
	o.ExtraArgs = []string{
		"-drive", "file=" + dsImg + ",if=virtio,format=raw",
		"-netdev", "user,id=spare", "-device", "e1000e,netdev=spare,mac=" + spareMAC,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	vm, _, err := StartReady(ctx, o, 300*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	c := newPinnedClient()
	firstLogin(ctx, t, vm, c)
	base := vm.APIURL()
	vmURL := func(v api.VM) string { return base + api.MgmtdVMsPath + "/" + url.PathEscape(v.Spec.ID) }
	hardware := func() api.Hardware {
		var hw api.Hardware
		c.getJSON(t, base+api.MgmtdHostHardwarePath, &hw)
		return hw
	}
	pci := func(hw api.Hardware, pred func(api.PCIDevice) bool) api.PCIDevice {
		t.Helper()
		i := slices.IndexFunc(hw.PCI, pred)
		if i < 0 {
			t.Fatalf("no such PCI device: %+v", hw.PCI)
		}
		return hw.PCI[i]
	}
	mk := func(name string, dev api.PCIPassthrough) api.VM {
		t.Helper()
		var v api.VM
		spec := api.VMSpec{Name: name, MemoryMiB: 256, Serial: true,
			PCIDevices: []api.PCIPassthrough{dev},
			Kernel:     &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: "console=ttyS0 quiet panic=-1 " + NoSelfTests + " plinthfloor=watch,hang"}}
		if err := json.Unmarshal(c.sendJSON(t, "POST", base+api.MgmtdVMsPath, spec, 201), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	problem := func(out []byte) api.Problem {
		t.Helper()
		var p api.Problem
		if err := json.Unmarshal(out, &p); err != nil {
			t.Fatalf("not a problem document: %v: %s", err, out)
		}
		return p
	}

	// What board says: the spare e1000e in an IOMMU group, free and on
	// the host's e1000e driver; the management NIC (virtio) the host's.
	hw := hardware()
	spare := pci(hw, func(d api.PCIDevice) bool { return d.VendorID == "8086" && d.DeviceID == "10d3" })
	mgmt := pci(hw, func(d api.PCIDevice) bool { return d.VendorID == "1af4" && d.DeviceID == "1000" })
	if spare.IOMMUGroup < 0 || !spare.PassthroughCapable || spare.Driver != "e1000e" || spare.HostUse != "" {
		t.Fatalf("the spare e1000e: %+v", spare)
	}
	if mgmt.HostUse == "" || mgmt.PassthroughCapable {
		t.Fatalf("the management NIC: %+v", mgmt)
	}
	t.Logf("spare %s (IOMMU group %d, %s); management NIC %s: %s", spare.Address, spare.IOMMUGroup, spare.Driver, mgmt.Address, mgmt.HostUse)

	// The e1000e to a nested KVM guest: the guest's driver binds it.
	pt := mk("pt", api.PCIPassthrough{Address: spare.Address})
	t0 := time.Now()
	c.sendJSON(t, "POST", vmURL(pt)+"/start", nil, 200)
	want := "PLINTH-NIC eth0 " + spareMAC
	var console string
	for end := time.Now().Add(NestedMarkerWait); !strings.Contains(console, want); time.Sleep(time.Second) {
		if time.Now().After(end) {
			t.Fatalf("no %q on the guest's console in %v:\n%s%s", want, NestedMarkerWait, console, formatTail(vm.Tail(TailLines)))
		}
		console = c.getText(t, vmURL(pt)+"/console")
	}
	t.Logf("the guest's e1000e driver has the passed-through NIC %v after start", time.Since(t0).Round(time.Second))
	var got api.VM
	c.getJSON(t, vmURL(pt), &got)
	if !slices.Equal(got.Runtime.PCI, []string{spare.Address}) || got.Runtime.User < api.VMUIDBase || !got.Runtime.Sandboxed {
		t.Errorf("runtime with the device: %+v", got.Runtime)
	}
	if d := pci(hardware(), func(d api.PCIDevice) bool { return d.Address == spare.Address }); d.Driver != "vfio-pci" {
		t.Errorf("while the VM runs the host lists %s as %+v, want it on vfio-pci", spare.Address, d)
	}
	// A second VM cannot have it while the first does.
	p := problem(c.sendJSON(t, "POST", vmURL(mk("pt2", api.PCIPassthrough{Address: spare.Address}))+"/start", nil, 409))
	if !strings.Contains(p.Detail, "VM "+pt.Spec.ID+" has it") {
		t.Errorf("a second VM asking for the device refused with: %+v", p)
	}

	// The host's driver gets the device back when the VM stops.
	c.sendJSON(t, "POST", vmURL(pt)+"/stop", nil, 200)
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		d := pci(hardware(), func(d api.PCIDevice) bool { return d.Address == spare.Address })
		if d.Driver == "e1000e" && d.PassthroughCapable {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("30 s after the VM stopped the host lists %s as %+v, not on e1000e and free again", spare.Address, d)
		}
	}

	// Refused: the management NIC (409, saying why), an address that does
	// not exist (422 naming the field); neither VM runs.
	mg := mk("mgmt", api.PCIPassthrough{Address: mgmt.Address})
	p = problem(c.sendJSON(t, "POST", vmURL(mg)+"/start", nil, 409))
	if !strings.Contains(p.Detail, "the host uses it") {
		t.Errorf("the management NIC refused with: %+v", p)
	}
	t.Logf("management NIC refused: %s", p.Detail)
	no := mk("nodev", api.PCIPassthrough{Address: "0000:00:1f.7"})
	if p := problem(c.sendJSON(t, "POST", vmURL(no)+"/start", nil, 422)); p.Field != "pci_devices[0].address" {
		t.Errorf("a device that does not exist: %+v", p)
	}
	for _, v := range []api.VM{mg, no} {
		c.getJSON(t, vmURL(v), &got)
		if got.Runtime.State == api.VMRunning {
			t.Errorf("%s runs after its start was refused", v.Spec.Name)
		}
	}
}
