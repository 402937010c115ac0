package appinit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/board/drivers"
)

// bootModules are loaded at boot whatever the hardware says: the power
// button's input events, and loop and squashfs for the VM payload image. Everything a device's modalias names is loaded
// too, and the CPU's KVM module (vmkernel decides KVM or TCG once it has
// loaded; the API does not wait for it).
var bootModules = []string{"evdev", "button", "loop", "squashfs"}

// laterModules are what the appliance's own features need (virtual switches,
// VLANs, bonds, taps, vhost, PCI passthrough, file systems for datastores and media). Nothing
// before the ready line needs them, so they load after it; ext4 loads early
// when a STATE or datastore file system is found.
var laterModules = []string{
	"tun", "vhost_net", "bridge", "8021q", "bonding",
	"vfio_pci", "vfio_iommu_type1", // PCI passthrough: vmkernel binds devices to vfio-pci; QEMU's VFIO container needs type1
	"ext4", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "isofs",
}

// neededForReady says whether a module is on the way to the ready line: the
// drivers of storage (STATE, the datastores, the boot medium), of NICs (the
// management network), of the buses they sit on, and the power button's.
// KVM is for the VMs: it loads once those have (see Run). The others
// (sensors, crypto accelerators, random number generators, firmware
// interfaces, HID) load after the ready line, leaving the CPUs to what the
// API needs.
func neededForReady(path string) bool {
	if drivers.IsStorage(path) {
		return true
	}
	for _, d := range []string{"/drivers/net/", "/drivers/virtio/", "/drivers/pci/", "/drivers/input/evdev", "/drivers/acpi/button"} {
		if strings.Contains(path, d) {
			return true
		}
	}
	return false
}

// loadModules cold-plugs the hardware's drivers and bootModules, holding
// back until loadLaterModules those the ready line does not need (and KVM,
// which Run loads once the storage drivers have), then keeps loading the
// drivers of devices that appear later.
func (p *initProc) loadModules() error {
	l := p.mods
	if l == nil {
		return fmt.Errorf("no module loader")
	}
	want := append([]string(nil), bootModules...)
	// Listen for device events before the scan, so that a device that
	// appears later (a USB stick's disk) gets its driver too.
	ue, err := drivers.ListenUevents()
	if err != nil {
		p.logf("modules: no hot-plug: %v", err)
	}
	l.Hold(func(path string) bool { return !neededForReady(path) || drivers.IsKVM(path) })
	all := l.ColdPlug(want)
	p.logf("modules: loaded %d: %s", len(all), strings.Join(all, " "))
	if ue != nil {
		go func() {
			err := l.HotPlug(context.Background(), ue)
			p.logf("modules: hot-plug stopped: %v", err)
			ue.Close()
		}()
	}
	for _, d := range l.Unclaimed() {
		p.logf("modules: no shipped driver for PCI device %s (%s)", filepath.Base(d.Path), d.Modalias)
	}
	return nil
}

// loadLaterModules loads the modules the cold-plug held back and
// laterModules; it runs after the ready line.
func (p *initProc) loadLaterModules() {
	if p.mods == nil {
		return
	}
	t0 := time.Now()
	loaded := p.mods.LoadHeld()
	more, _ := p.mods.Load(laterModules...)
	loaded = append(loaded, more...)
	p.logf("modules: loaded %d more in %s: %s", len(loaded), time.Since(t0).Round(time.Millisecond), strings.Join(loaded, " "))
}

// staticNodes makes in devDir the device nodes of modules.devname that
// are missing (as kmod's static-nodes does for udev), for the modules
// named: vmkernel opens /dev/net/tun (a VM's tap) and /dev/vhost-net as
// root, maybe before tun and vhost_net load after the ready line
// (laterModules), and opening the node makes the kernel ask its modprobe
// helper for the module at once. Only those: a node made here keeps mode
// 0600 when its module loads, and other nodes are opened by QEMU, which
// runs unprivileged (devtmpfs gives /dev/vfio/vfio 0666 when vfio loads).
// It answers the nodes made.
func staticNodes(devDir, modulesDir string, modules ...string) ([]string, error) {
	f, err := os.Open(filepath.Join(modulesDir, "modules.devname"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	nodes, err := drivers.ParseDevnames(f)
	if err != nil {
		return nil, err
	}
	var made []string
	var errs []error
	for _, n := range nodes {
		if !slices.Contains(modules, n.Module) {
			continue
		}
		path := filepath.Join(devDir, n.Name)
		if _, err := os.Lstat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		mode := uint32(unix.S_IFCHR)
		if n.Block {
			mode = unix.S_IFBLK
		}
		if err := unix.Mknod(path, mode|0o600, int(unix.Mkdev(n.Major, n.Minor))); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("mknod %s: %w", path, err))
			continue
		}
		made = append(made, n.Name)
	}
	return made, errors.Join(errs...)
}
