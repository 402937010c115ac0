package qemutest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board/drivers"
)

// The hardware of TestApplianceHardware, beside the harness's own virtio NIC
// (n0, QEMU's default MAC) and virtio RNG. The extra NICs get no link (QMP
// set_link), so the appliance manages the host through n0, whose port is
// forwarded, whatever names the kernel gives the NICs.
const (
	hwVirtioMAC = "52:54:00:e2:e0:02"
	hwE1000eMAC = "52:54:00:e2:e0:03"
	// qemuFirstMAC is what QEMU gives the first NIC that sets none: n0.
	qemuFirstMAC = "52:54:00:12:34:56"
)

type hwDisk struct {
	id, serial, transport string
	mib                   uint64
	device                string // -device, with drive=ID and serial= added
}

var hwDisks = []hwDisk{
	{"hwvd", "E2E-VIRTIO", api.TransportVirtio, 1024, "virtio-blk-pci"},
	{"hwnv", "E2E-NVME", api.TransportNVMe, 2048, "nvme"},
	{"hwusb", "E2E-USB", api.TransportUSB, 256, "usb-storage,bus=hwxhci.0,removable=on"},
}

// hardwareArgs attaches the test's devices, with disk images made in dir.
func hardwareArgs(t *testing.T, dir string) []string {
	t.Helper()
	args := []string{
		"-netdev", "user,id=hw1", "-device", "virtio-net-pci,id=hwnic1,netdev=hw1,mac=" + hwVirtioMAC,
		"-netdev", "user,id=hw2", "-device", "e1000e,id=hwnic2,netdev=hw2,mac=" + hwE1000eMAC,
		"-device", "qemu-xhci,id=hwxhci",
	}
	for _, d := range hwDisks {
		img := filepath.Join(dir, d.id+".img")
		f, err := os.Create(img)
		if err != nil {
			t.Fatal(err)
		}
		err = f.Truncate(int64(d.mib) << 20)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		args = append(args,
			"-drive", "if=none,format=raw,id="+d.id+",file="+img,
			"-device", d.device+",drive="+d.id+",serial="+d.serial)
	}
	return args
}

// loadedRE matches the appliance init's line listing what its cold-plug
// loaded (initramfs/appinit/modules.go), not the later "loaded N more";
// hotplugRE its lines for modules loaded for devices that appeared later.
var (
	loadedRE  = regexp.MustCompile(`plinth-init: modules: loaded \d+: (.*)$`)
	laterRE   = regexp.MustCompile(`plinth-init: modules: loaded \d+ more in `)
	hotplugRE = regexp.MustCompile(`plinth-init: modules: hot-plug \S+: loaded (.*)$`)
)

// alwaysLoaded are the modules the appliance init loads whatever the
// hardware (appinit's bootModules), besides the CPU's KVM module.
var alwaysLoaded = []string{"evdev", "button", "loop", "squashfs"}

// TestApplianceHardware boots the appliance with two virtio NICs, an e1000e,
// a virtio disk, an NVMe disk and a USB stick, and checks that the API's
// hardware inventory reports each with the model, driver, MAC, size, serial
// and transport it was given, and that the modules the init loaded are
// exactly those board/drivers resolves for the devices of that machine. The devices' modaliases come from a capture guest (captureinit:
// the image's kernel and modules) booted first with the same QEMU command
// line: the appliance's console has no shell to ask.
func TestApplianceHardware(t *testing.T) {
	o := e2eOptions(t)
	o.CPUs, o.MemoryMiB = 2, 1024
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := t.TempDir()
	o.ExtraArgs = hardwareArgs(t, dir)

	// 1. The same machine with the capture init: every device's modalias.
	capInit, err := BuildCapture(dir, ImageModules(o.Kernel))
	if err != nil {
		t.Fatal(err)
	}
	co := o
	co.Initrd, co.Cmdline, co.ConsoleLog = capInit, "quiet", ""
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	logPath := strings.TrimSuffix(o.ConsoleLog, ".console.log") + ".capture.console.log"
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	capCtx, capCancel := context.WithTimeout(ctx, 4*time.Minute)
	c, err := RunCapture(capCtx, co.Args(port, filepath.Join(dir, "capture-qmp.sock")), logf)
	capCancel()
	if err != nil {
		t.Fatalf("capture guest (console in %s): %v", logPath, err)
	}
	devs, err := c.Modaliases()
	if err != nil {
		t.Fatal(err)
	}
	af, err := os.Open(filepath.Join(ImageModules(o.Kernel), kernelRelease(t, o.Kernel), "modules.alias"))
	if err != nil {
		t.Fatal(err)
	}
	aliases, err := drivers.ParseAliases(af)
	af.Close()
	if err != nil {
		t.Fatal(err)
	}
	var mas []string
	for _, d := range devs {
		mas = append(mas, d[1])
	}
	needed, _ := drivers.Match(aliases, mas)
	t.Logf("capture guest: %d devices with a modalias; board/drivers resolves %d modules: %s", len(devs), len(needed), strings.Join(needed, " "))

	// 2. The appliance.
	vm, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	for _, id := range []string{"hwnic1", "hwnic2"} {
		if _, err := vm.qmpRun("set_link", map[string]any{"name": id, "up": false}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := vm.WaitReady(300 * time.Second); err != nil {
		t.Fatal(err)
	}
	client := newPinnedClient()
	firstLogin(ctx, t, vm, client)
	// The init loads the modules it held back after the ready line (a
	// busy host makes that slow): the inventory is read once they are in.
	lines := initLines(t, vm, client)
	// A USB stick's disk appears a second or more after usb-storage binds
	// (its SCSI scan is delayed), maybe after the ready line: poll, with a
	// deadline, until every disk is there.
	var hw api.Hardware
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		hw = api.Hardware{}
		client.getJSON(t, vm.APIURL()+api.MgmtdHostHardwarePath, &hw)
		all := true
		for _, d := range hwDisks {
			all = all && slices.ContainsFunc(hw.Disks, func(h api.HostDisk) bool { return h.Serial == d.serial })
		}
		if all || time.Now().After(deadline) {
			break
		}
	}
	pretty, _ := json.MarshalIndent(hw, "", "  ")
	if err := os.WriteFile(strings.TrimSuffix(o.ConsoleLog, ".console.log")+".hardware.json", pretty, 0o644); err != nil {
		t.Error(err)
	}

	t.Run("pci", func(t *testing.T) { checkPCI(t, hw) })
	t.Run("nics", func(t *testing.T) { checkNICs(t, hw) })
	t.Run("disks", func(t *testing.T) { checkDisks(t, hw) })
	t.Run("modules", func(t *testing.T) { checkModules(t, lines, needed, hw) })
	if len(hw.Gaps) > 0 {
		t.Logf("gaps: %q", hw.Gaps)
	}
}

// kernelRelease is the release the image was built with (build/kernel-release).
func kernelRelease(t *testing.T, kernel string) string {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(kernel), "kernel-release"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func pciByAddr(hw api.Hardware, addr string) (api.PCIDevice, bool) {
	for _, d := range hw.PCI {
		if d.Address == addr {
			return d, true
		}
	}
	return api.PCIDevice{}, false
}

// checkPCI: each device the test attached is there with its IDs, class and
// driver; names come from pci.ids, which the image carries (an image
// without it names the gap, and fails this test).
func checkPCI(t *testing.T, hw api.Hardware) {
	want := []struct {
		id, class, driver string
		n                 int
	}{
		{"1af4:1000", "020000", "virtio-pci", 2}, // virtio-net (transitional)
		{"8086:10d3", "020000", "e1000e", 1},
		{"1af4:1001", "010000", "virtio-pci", 1}, // virtio-blk
		{"1b36:0010", "010802", "nvme", 1},
		{"1b36:000d", "0c0330", "xhci_hcd", 1},
		{"8086:2922", "010601", "ahci", 1}, // the q35's own SATA controller
	}
	for _, w := range want {
		n := 0
		for _, d := range hw.PCI {
			if d.VendorID+":"+d.DeviceID != w.id {
				continue
			}
			n++
			if d.Class != w.class || d.Driver != w.driver {
				t.Errorf("PCI %s %s: class %s driver %q, want %s %q", d.Address, w.id, d.Class, d.Driver, w.class, w.driver)
			}
		}
		if n != w.n {
			t.Errorf("%d PCI devices %s, want %d", n, w.id, w.n)
		}
	}
	named := slices.ContainsFunc(hw.PCI, func(d api.PCIDevice) bool { return d.VendorName != "" })
	gap := slices.ContainsFunc(hw.Gaps, func(g string) bool { return strings.HasPrefix(g, "pci: ") && strings.Contains(g, "pci.ids") })
	switch {
	case named:
		for _, d := range hw.PCI {
			if d.VendorID == "8086" && d.DeviceID == "10d3" && !strings.Contains(d.DeviceName, "82574L") {
				t.Errorf("e1000e named %q %q, want 82574L from pci.ids", d.VendorName, d.DeviceName)
			}
		}
	case gap:
		t.Errorf("the image has no pci.ids (initramfs/build.sh puts it there): PCI devices unnamed, gap %q", hw.Gaps)
	default:
		t.Errorf("PCI devices have no names and no gap says why: %q", hw.Gaps)
	}
}

// checkNICs: the harness's virtio NIC with the link, and the test's virtio
// and e1000e NICs without, each with its MAC, driver and PCI device.
func checkNICs(t *testing.T, hw api.Hardware) {
	want := map[string]struct {
		driver, pciDriver string
		link              bool
	}{
		qemuFirstMAC: {"virtio_net", "virtio-pci", true},
		hwVirtioMAC:  {"virtio_net", "virtio-pci", false},
		hwE1000eMAC:  {"e1000e", "e1000e", false},
	}
	if len(hw.NICs) != len(want) {
		t.Errorf("%d NICs, want %d: %+v", len(hw.NICs), len(want), hw.NICs)
	}
	for _, n := range hw.NICs {
		w, ok := want[n.MAC]
		if !ok {
			t.Errorf("NIC %s has MAC %s, not one the test set", n.Name, n.MAC)
			continue
		}
		delete(want, n.MAC)
		if n.Driver != w.driver || n.Link != w.link {
			t.Errorf("NIC %s (%s): driver %q link %v, want %q %v", n.Name, n.MAC, n.Driver, n.Link, w.driver, w.link)
		}
		if !n.Link && (n.SpeedMbps != -1 || n.Duplex != "") {
			t.Errorf("NIC %s without a link: speed %d duplex %q, want unknown", n.Name, n.SpeedMbps, n.Duplex)
		}
		if d, ok := pciByAddr(hw, n.PCIAddress); !ok || d.Driver != w.pciDriver {
			t.Errorf("NIC %s: PCI address %q is no device driven by %s (%+v)", n.Name, n.PCIAddress, w.pciDriver, d)
		}
	}
	for mac := range want {
		t.Errorf("no NIC with MAC %s: %+v", mac, hw.NICs)
	}
}

// checkDisks: each disk by its serial, with its size and transport, on a
// driven PCI controller; only the USB stick removable.
func checkDisks(t *testing.T, hw api.Hardware) {
	// Beside the test's disks, the q35 machine's default CD-ROM drive (no
	// -nodefaults in Options.Args) on its AHCI controller.
	cd := slices.IndexFunc(hw.Disks, func(d api.HostDisk) bool { return strings.HasPrefix(d.Name, "sr") })
	if cd < 0 {
		t.Errorf("no CD-ROM drive (the q35 default): %+v", hw.Disks)
	} else if d := hw.Disks[cd]; d.Transport != api.TransportSATA || !d.Removable || d.Model != "QEMU DVD-ROM" {
		t.Errorf("CD-ROM drive %+v, want a removable SATA QEMU DVD-ROM", d)
	}
	if len(hw.Disks) != len(hwDisks)+1 {
		t.Errorf("%d disks, want %d and the CD-ROM drive: %+v", len(hw.Disks), len(hwDisks), hw.Disks)
	}
	for _, w := range hwDisks {
		i := slices.IndexFunc(hw.Disks, func(d api.HostDisk) bool { return d.Serial == w.serial })
		if i < 0 {
			t.Errorf("no disk with serial %s: %+v", w.serial, hw.Disks)
			continue
		}
		d := hw.Disks[i]
		if d.SizeBytes != w.mib<<20 || d.Transport != w.transport {
			t.Errorf("disk %s (%s): %d bytes over %q, want %d over %q", d.Name, w.serial, d.SizeBytes, d.Transport, w.mib<<20, w.transport)
		}
		if d.Removable != (w.transport == api.TransportUSB) {
			t.Errorf("disk %s (%s): removable %v", d.Name, w.serial, d.Removable)
		}
		if len(d.Partitions) != 0 || d.PlinthInstall {
			t.Errorf("disk %s (%s) is blank, got %+v", d.Name, w.serial, d)
		}
		if p, ok := pciByAddr(hw, d.PCIAddress); !ok || p.Driver == "" {
			t.Errorf("disk %s (%s): PCI address %q is no driven device", d.Name, w.serial, d.PCIAddress)
		}
		switch w.transport {
		case api.TransportNVMe:
			if !strings.HasPrefix(d.Name, "nvme") || d.Model != "QEMU NVMe Ctrl" {
				t.Errorf("NVMe disk %s model %q", d.Name, d.Model)
			}
		case api.TransportVirtio:
			if !strings.HasPrefix(d.Name, "vd") {
				t.Errorf("virtio disk named %s", d.Name)
			}
		case api.TransportUSB:
			if !strings.HasPrefix(d.Name, "sd") {
				t.Errorf("USB disk named %s", d.Name)
			}
		}
	}
}

// initLines are the init's lines: those on the console before the DCUI
// took it, then the boot log through the API (GET /host/logs/boot), where
// the init goes on writing. The cold-plug runs beside the services and may
// end after the ready line, and the held-back modules are loaded after it:
// the boot log is read again, with a deadline, until both lines are there.
func initLines(t *testing.T, vm *VM, client *pinnedClient) []string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		lines := append(vm.Console(), strings.Split(client.getText(t, vm.APIURL()+api.MgmtdPrefix+api.HostLogsPath+"/"+api.LogBoot), "\n")...)
		if slices.ContainsFunc(lines, loadedRE.MatchString) && slices.ContainsFunc(lines, laterRE.MatchString) || time.Now().After(deadline) {
			return lines
		}
	}
}

// checkModules: the init's cold-plug and hot-plug loaded exactly what
// board/drivers resolves for the machine's modaliases, plus its always-on set
// and the CPU's KVM module; and the drivers of the test's devices among them.
//
// What the init loaded is read from its lines (initLines); what it
// hot-plugged later is also taken from the inventory's live modules.
func checkModules(t *testing.T, console []string, needed []string, hw api.Hardware) {
	kvm := hw.CPU.KVMModule
	var loaded []string
	found := false
	for _, l := range console {
		if m := loadedRE.FindStringSubmatch(l); m != nil {
			loaded, found = strings.Fields(m[1]), true
			break
		}
	}
	if !found {
		t.Fatalf("no %q line on the console or in the boot log", loadedRE)
	}
	for _, l := range console {
		if m := hotplugRE.FindStringSubmatch(l); m != nil {
			loaded = append(loaded, strings.Fields(m[1])...)
		}
		if strings.Contains(l, "plinth-init: modules: ") && !loadedRE.MatchString(l) && !strings.Contains(l, " took ") {
			t.Logf("console: %s", l)
		}
	}
	// Modules hot-plugged after the ready line are in the boot log, not on
	// the console; the inventory's list of live modules has them.
	for _, m := range hw.Modules {
		if slices.Contains(needed, m) && !slices.Contains(loaded, m) {
			t.Logf("%s loaded after the ready line", m)
			loaded = append(loaded, m)
		}
	}
	for _, m := range needed {
		if !slices.Contains(hw.Modules, m) {
			t.Errorf("%s, which this machine needs, is not live in /sys/module: %s", m, strings.Join(hw.Modules, " "))
		}
	}
	slices.Sort(loaded)
	extra := append(slices.Clone(alwaysLoaded), kvm)
	for _, m := range loaded {
		if !slices.Contains(needed, m) && !slices.Contains(extra, m) {
			t.Errorf("the init loaded %s, which no device of this machine needs", m)
		}
	}
	for _, m := range needed {
		if !slices.Contains(loaded, m) {
			t.Errorf("the init did not load %s, which board/drivers resolves for this machine", m)
		}
	}
	for _, m := range []string{"virtio_pci", "virtio_net", "e1000e", "virtio_blk", "nvme", "xhci_pci", "usb_storage", "sd_mod", "ahci"} {
		if !slices.Contains(needed, m) {
			t.Errorf("board/drivers does not resolve %s for this machine: %s", m, strings.Join(needed, " "))
		}
	}
	t.Logf("loaded at boot: %s", strings.Join(loaded, " "))
}
