package qemutest

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
)

// TestApplianceUSBVanishes: a USB device that leaves the host while a
// running VM has it (issue 18). The test host's kernel has no USB at all
// (no usbcore, no dummy_hcd, no usbip), so the host whose device vanishes
// is the appliance: under QEMU with an xHCI controller and a USB keyboard,
// its vmkernel gives the keyboard to a running nested guest through the
// API (the guest's own xHCI and HID drivers see it), then the keyboard is
// pulled out of the appliance (device_del on the outer QEMU's monitor:
// the appliance's kernel sees the unplug as from a real port). The API
// then lists the device as not present with a message that says what
// happened, the VM runs on (same QEMU process), the guest lost it; a
// detach answers 200 and clears it; attaching it again answers 404 saying
// no such device is on the host.
func TestApplianceUSBVanishes(t *testing.T) {
	o := e2eOptions(t)
	dir := t.TempDir()
	seed := floorDatastore(t, o.Kernel, dir, "xhci_pci", "usbhid", "hid_generic")
	dsImg := filepath.Join(dir, "ds1.img")
	mkfs(t, "PLINTH-DS1", seed, dsImg, "160M")

	o.CPUs, o.MemoryMiB = 2, 2048
	o.ExtraArgs = []string{
		"-drive", "file=" + dsImg + ",if=virtio,format=raw",
		"-device", "qemu-xhci,id=hwx", "-device", "usb-kbd,bus=hwx.0,id=ukbd",
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

	// The keyboard as the appliance's board lists it (usb-kbd is
	// 0627:0001); the xHCI driver may come after the ready line.
	const vendor, product = "0627", "0001"
	var kbd api.USBDevice
	for end := time.Now().Add(120 * time.Second); kbd.Port == ""; time.Sleep(time.Second) {
		var hw api.Hardware
		c.getJSON(t, base+api.MgmtdHostHardwarePath, &hw)
		for _, d := range hw.USB {
			if d.VendorID == vendor && d.ProductID == product {
				kbd = d
			}
		}
		if kbd.Port == "" && time.Now().After(end) {
			t.Fatalf("the appliance lists no USB keyboard %s:%s in 120 s: %+v%s", vendor, product, hw.USB, formatTail(vm.Tail(TailLines)))
		}
	}
	t.Logf("the appliance's USB keyboard: port %s, bus %d device %d", kbd.Port, kbd.Bus, kbd.Device)

	spec := api.VMSpec{Name: "usb", MemoryMiB: 256, Serial: true,
		Kernel: &api.DirectBoot{Datastore: "ds1", Kernel: "vmlinux", Initrd: "init.cpio", Cmdline: "console=ttyS0 quiet panic=-1 " + NoSelfTests + " plinthfloor=watch,hang"}}
	var v api.VM
	if err := json.Unmarshal(c.sendJSON(t, "POST", base+api.MgmtdVMsPath, spec, 201), &v); err != nil {
		t.Fatal(err)
	}
	vmURL := base + api.MgmtdVMsPath + "/" + url.PathEscape(v.Spec.ID)
	getVM := func() api.VM {
		t.Helper()
		var got api.VM
		c.getJSON(t, vmURL, &got)
		return got
	}
	waitConsole := func(re *regexp.Regexp, within time.Duration) {
		t.Helper()
		var console string
		for end := time.Now().Add(within); !re.MatchString(console); time.Sleep(time.Second) {
			if time.Now().After(end) {
				t.Fatalf("no %q on the guest's console in %v:\n%s%s", re, within, console, formatTail(vm.Tail(TailLines)))
			}
			console = c.getText(t, vmURL+"/console")
		}
	}
	problem := func(out []byte) api.Problem {
		t.Helper()
		var p api.Problem
		if err := json.Unmarshal(out, &p); err != nil {
			t.Fatalf("not a problem document: %v: %s", err, out)
		}
		return p
	}
	c.sendJSON(t, "POST", vmURL+"/start", nil, 200)
	defer c.sendJSON(t, "POST", vmURL+"/stop", nil, 200)
	waitConsole(regexp.MustCompile(regexp.QuoteMeta(FloorMarker)), NestedMarkerWait)

	// Attached live: the guest's USB stack sees the keyboard.
	c.sendJSON(t, "POST", vmURL+"/usb", api.USBPassthrough{VendorID: vendor, ProductID: product}, 200)
	waitConsole(regexp.MustCompile(`PLINTH-USB (\S+) `+vendor+`:`+product), 60*time.Second)
	before := getVM()
	if before.Runtime.State != api.VMRunning || len(before.Runtime.USB) != 1 || !before.Runtime.USB[0].Present || before.Runtime.USB[0].Port != kbd.Port {
		t.Fatalf("with the keyboard attached: %+v", before.Runtime)
	}

	// Pulled out of the appliance while attached.
	if _, err := vm.qmpRun("device_del", map[string]any{"id": "ukbd"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var gone api.VM
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		gone = getVM()
		if len(gone.Runtime.USB) == 1 && !gone.Runtime.USB[0].Present {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("60 s after the keyboard left the appliance the API still lists %+v", gone.Runtime.USB)
		}
	}
	u := gone.Runtime.USB[0]
	t.Logf("the API %v after the unplug: present=%v problem=%q", time.Since(t0).Round(time.Second), u.Present, u.Problem)
	if !strings.Contains(u.Problem, "left the host while attached") || !strings.Contains(u.Problem, kbd.Port) {
		t.Errorf("the vanished device's problem: %q", u.Problem)
	}
	if gone.Runtime.State != api.VMRunning || gone.Runtime.PID != before.Runtime.PID {
		t.Errorf("after the USB device vanished the VM is %+v (it was %+v)", gone.Runtime, before.Runtime)
	}
	waitConsole(regexp.MustCompile(`PLINTH-GONE \S+`), 60*time.Second) // the guest lost it

	// Detach clears it; attaching it again says there is no such device.
	c.sendJSON(t, "DELETE", vmURL+"/usb/0", nil, 200)
	if got := getVM(); len(got.Runtime.USB) != 0 || len(got.Spec.USBDevices) != 0 || got.Runtime.PID != before.Runtime.PID {
		t.Errorf("after the detach: runtime %+v, usb_devices %+v", got.Runtime, got.Spec.USBDevices)
	}
	p := problem(c.sendJSON(t, "POST", vmURL+"/usb", api.USBPassthrough{VendorID: vendor, ProductID: product}, 404))
	if !strings.Contains(p.Detail, "no USB device "+vendor+":"+product+" on this host") {
		t.Errorf("attaching the vanished device again: %+v", p)
	}
	t.Logf("attaching it again: 404 %s", p.Detail)
	if got := getVM(); got.Runtime.State != api.VMRunning || got.Runtime.PID != before.Runtime.PID {
		t.Errorf("at the end the VM is %+v", got.Runtime)
	}
}
