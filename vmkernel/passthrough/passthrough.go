// Package passthrough gives host devices to VMs and takes them back: PCI
// functions through VFIO, USB devices as descriptors of their
// /dev/bus/usb nodes. What a device is, which IOMMU group it is in and
// whether the host uses it come from board (the one reader of hardware
// facts); this package only acts on them, as root, for a QEMU that runs
// as the VM's unprivileged user and cannot do any of it itself.
//
// A PCI claim checks the whole IOMMU group (every device of it given to
// the VM, bound to no driver, or a bridge), refuses a device the host uses
// and one another VM holds, then unbinds each device from its driver,
// binds it to vfio-pci (driver_override, drivers_probe) and gives the
// group's /dev/vfio/N to the VM's user. It writes what it did to a record
// first, so that a release, even by a vmkernel started later, puts each
// device back on the driver it had and the group node back to root.
package passthrough

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/atomicfile"
	"github.com/plinth/plinth/board"
)

// Errors callers test with errors.Is; the API maps them to statuses.
var (
	// ErrNotFound: no such device on the host (a spec problem).
	ErrNotFound = errors.New("no such device on this host")
	// ErrUnavailable: the device exists but cannot be given now: the host
	// uses it or a device of its IOMMU group, another VM holds it, it has
	// no IOMMU group, or its group has a device bound to a host driver.
	ErrUnavailable = errors.New("device not available for passthrough")
	// ErrVFIO: binding to vfio-pci or giving the device back failed.
	ErrVFIO = errors.New("vfio")
)

// FieldError is a problem with one device of a spec; Field names it
// ("pci_devices[0].address").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// VFIODriver is the kernel driver devices are bound to for a VM.
const VFIODriver = "vfio-pci"

// bindTimeout bounds the wait for a driver to take or let go of a device.
var bindTimeout = 10 * time.Second

// Host acts on the running machine's devices. It is safe for concurrent use.
type Host struct {
	// Root is what board reads (board.DefaultRoot on the appliance).
	Root board.Root
	// Sys and Dev are where sysfs and the device nodes are written:
	// "/sys" and "/dev".
	Sys, Dev string
	// Log receives what is done; nil discards.
	Log *slog.Logger
	// LoadModule asks for a kernel module by name when a driver is
	// missing (NewHost: RequestModule); nil only waits for it.
	LoadModule func(name string) error

	mu      sync.Mutex
	claimed map[string]string // PCI address, or "usb:" + port, to VM ID
}

// NewHost acts on the running machine.
func NewHost(log *slog.Logger) *Host {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Host{Root: board.DefaultRoot(), Sys: "/sys", Dev: "/dev", Log: log, LoadModule: RequestModule, claimed: map[string]string{}}
}

// vfioModuleWait bounds the wait for the vfio-pci driver to register. The
// appliance's init loads vfio_pci after the ready line, so a VM started
// (or autostarted) soon after boot can come before it.
var vfioModuleWait = 60 * time.Second

// modprobeHelper is where the kernel's module helper is named.
var modprobeHelper = "/proc/sys/kernel/modprobe"

// RequestModule runs the kernel's module helper (the program
// /proc/sys/kernel/modprobe names, which root alone sets: the appliance's
// own loader) for module name, as the kernel would.
func RequestModule(name string) error {
	b, err := os.ReadFile(modprobeHelper)
	if err != nil {
		return fmt.Errorf("the kernel's module helper: %w", err)
	}
	helper := strings.TrimSpace(string(b))
	if !filepath.IsAbs(helper) {
		return fmt.Errorf("the kernel's module helper %q is not an absolute path", helper)
	}
	ctx, cancel := context.WithTimeout(context.Background(), vfioModuleWait)
	defer cancel()
	if out, err := exec.CommandContext(ctx, helper, "-q", "--", name).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", helper, name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// vfioModules are what a VFIO claim needs, each with what shows it
// loaded (under Sys): the vfio-pci driver, and type1, the IOMMU backend
// QEMU's VFIO container uses (without it: "No available IOMMU models").
var vfioModules = []struct{ name, sys string }{
	{"vfio_pci", "bus/pci/drivers/" + VFIODriver},
	{"vfio_iommu_type1", "module/vfio_iommu_type1"},
}

// vfioDriver makes sure the vfio-pci driver and the type1 IOMMU backend
// are there: when one is not yet, it asks for its module (LoadModule) and
// waits for it, at most vfioModuleWait.
func (h *Host) vfioDriver() error {
	deadline := time.Now().Add(vfioModuleWait)
	for _, m := range vfioModules {
		p := filepath.Join(h.Sys, m.sys)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		var loadErr error
		if h.LoadModule != nil {
			loadErr = h.LoadModule(m.name)
		}
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			if time.Now().After(deadline) {
				if loadErr != nil {
					return fmt.Errorf("module %s is not loaded (%v): %w", m.name, loadErr, ErrVFIO)
				}
				return fmt.Errorf("module %s is not loaded after %s: %w", m.name, vfioModuleWait, ErrVFIO)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// Hardware is board's inventory of the machine.
func (h *Host) Hardware() (api.Hardware, error) { return board.Read(h.Root) }

// Record is what a PCI claim did, kept in the VM's state directory until
// the devices are back.
type Record struct {
	VM      string         `json:"vm"`
	UID     int            `json:"uid"`
	Devices []RecordDevice `json:"devices"`
	Groups  []int          `json:"groups"`
}

// RecordDevice is one device taken from the host: its address and the
// driver it had ("" for none).
type RecordDevice struct {
	Address string `json:"address"`
	Driver  string `json:"driver"`
}

// ResolvePCI finds the host devices devs name, in order, with field
// errors (ErrNotFound) for those that are not there.
func ResolvePCI(hw api.Hardware, devs []api.PCIPassthrough) ([]api.PCIDevice, error) {
	var out []api.PCIDevice
	for i, p := range devs {
		f := fmt.Sprintf("pci_devices[%d]", i)
		if p.Address != "" {
			j := slices.IndexFunc(hw.PCI, func(d api.PCIDevice) bool { return d.Address == p.Address })
			if j < 0 {
				return nil, &FieldError{f + ".address", fmt.Errorf("no PCI device %s on this host: %w", p.Address, ErrNotFound)}
			}
			out = append(out, hw.PCI[j])
			continue
		}
		var same []api.PCIDevice
		for _, d := range hw.PCI { // board lists them in address order
			if d.VendorID == p.VendorID && d.DeviceID == p.DeviceID {
				same = append(same, d)
			}
		}
		if p.Index >= len(same) {
			return nil, &FieldError{f + ".vendor_id", fmt.Errorf("no PCI device %s:%s number %d on this host (it has %d): %w",
				p.VendorID, p.DeviceID, p.Index, len(same), ErrNotFound)}
		}
		out = append(out, same[p.Index])
	}
	return out, nil
}

// planPCI checks that devs (resolved) can go to VM vmID: each in an IOMMU
// group, not a bridge, not the host's, not another VM's; every other
// device of their groups bound to nothing, to vfio-pci for nobody else,
// or a bridge. claimed maps what other VMs hold.
func planPCI(hw api.Hardware, vmID string, devs []api.PCIDevice, claimed map[string]string) ([]int, error) {
	want := map[string]int{}
	var groups []int
	for i, d := range devs {
		f := fmt.Sprintf("pci_devices[%d]", i)
		fail := func(format string, args ...any) error {
			return &FieldError{f, fmt.Errorf("%s: "+format+": %w", append(append([]any{d.Address}, args...), ErrUnavailable)...)}
		}
		switch {
		case d.IOMMUGroup < 0:
			return nil, fail("has no IOMMU group: the host has no IOMMU, or it is off (intel_iommu=on or amd_iommu=on on the kernel line, VT-d or AMD-Vi in the firmware)")
		case strings.HasPrefix(d.Class, "06"):
			return nil, fail("is a bridge; bridges stay with the host")
		case d.HostUse != "":
			return nil, fail("the host uses it: %s", d.HostUse)
		case !d.PassthroughCapable:
			return nil, fail("%s", d.PassthroughReason)
		}
		if other := claimed[d.Address]; other != "" && other != vmID {
			return nil, fail("VM %s has it", other)
		}
		if j, dup := want[d.Address]; dup {
			return nil, &FieldError{f, fmt.Errorf("%s is pci_devices[%d] too", d.Address, j)}
		}
		want[d.Address] = i
		if !slices.Contains(groups, d.IOMMUGroup) {
			groups = append(groups, d.IOMMUGroup)
		}
	}
	for _, g := range groups {
		for _, o := range hw.PCI {
			if o.IOMMUGroup != g {
				continue
			}
			if _, ok := want[o.Address]; ok {
				continue
			}
			f := "pci_devices"
			for a, i := range want {
				if slices.ContainsFunc(hw.PCI, func(d api.PCIDevice) bool { return d.Address == a && d.IOMMUGroup == g }) {
					f = fmt.Sprintf("pci_devices[%d]", i)
				}
			}
			other := claimed[o.Address]
			switch {
			case o.HostUse != "":
				return nil, &FieldError{f, fmt.Errorf("IOMMU group %d also holds %s, which the host uses (%s); the whole group goes to a VM or none of it: %w",
					g, o.Address, o.HostUse, ErrUnavailable)}
			case other != "" && other != vmID:
				return nil, &FieldError{f, fmt.Errorf("IOMMU group %d also holds %s, which VM %s has: %w", g, o.Address, other, ErrUnavailable)}
			case strings.HasPrefix(o.Class, "0604") || o.Driver == "" || o.Driver == VFIODriver && other == "":
				// A PCI bridge (pcieport), or a device no host driver
				// holds: VFIO lets the group go.
			default:
				return nil, &FieldError{f, fmt.Errorf("IOMMU group %d also holds %s (%s), bound to %s: give it to the VM too, or unbind it: %w",
					g, o.Address, o.ClassName, o.Driver, ErrUnavailable)}
			}
		}
	}
	return groups, nil
}

// ClaimPCI gives the devices devs names to VM vmID, whose QEMU runs as
// uid, and returns their host addresses in spec order. record is the file
// that keeps what was done (see ReleasePCI). A device that does not exist
// is a FieldError wrapping ErrNotFound; one that cannot be given, wrapping
// ErrUnavailable. On failure nothing stays changed.
func (h *Host) ClaimPCI(vmID string, uid int, devs []api.PCIPassthrough, record string) ([]string, error) {
	if len(devs) == 0 {
		return nil, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	hw, err := h.Hardware()
	if err != nil {
		return nil, err
	}
	resolved, err := ResolvePCI(hw, devs)
	if err != nil {
		return nil, err
	}
	groups, err := planPCI(hw, vmID, resolved, h.claimedLocked())
	if err != nil {
		return nil, err
	}
	rec := Record{VM: vmID, UID: uid, Groups: groups}
	var addrs []string
	for _, d := range resolved {
		rec.Devices = append(rec.Devices, RecordDevice{Address: d.Address, Driver: d.Driver})
		addrs = append(addrs, d.Address)
	}
	if prev, err := readRecord(record); err == nil {
		// A record left by a vmkernel that died before giving the devices
		// back: their first drivers are in it, not vfio-pci.
		for i, d := range rec.Devices {
			if j := slices.IndexFunc(prev.Devices, func(p RecordDevice) bool { return p.Address == d.Address }); j >= 0 && d.Driver == VFIODriver {
				rec.Devices[i].Driver = prev.Devices[j].Driver
			}
		}
	}
	if err := writeRecord(record, rec); err != nil {
		return nil, err
	}
	if err := h.bind(rec); err != nil {
		if rerr := h.release(rec); rerr != nil {
			err = fmt.Errorf("%w; giving the devices back: %v", err, rerr)
		} else {
			os.Remove(record)
		}
		return nil, err
	}
	for _, a := range addrs {
		h.claimed[a] = vmID
	}
	h.Log.Info("passthrough: PCI devices given", "vm", vmID, "devices", strings.Join(addrs, " "), "groups", groups)
	return addrs, nil
}

func (h *Host) claimedLocked() map[string]string {
	if h.claimed == nil {
		h.claimed = map[string]string{}
	}
	return h.claimed
}

// bind puts rec's devices on vfio-pci and gives their groups to rec.UID.
func (h *Host) bind(rec Record) error {
	if err := h.vfioDriver(); err != nil {
		return err
	}
	for _, d := range rec.Devices {
		dev := filepath.Join(h.Sys, "bus/pci/devices", d.Address)
		if err := h.write(filepath.Join(dev, "driver_override"), VFIODriver); err != nil {
			return err
		}
		if cur := driverOf(dev); cur != "" && cur != VFIODriver {
			if err := h.write(filepath.Join(dev, "driver/unbind"), d.Address); err != nil {
				return err
			}
		}
		if driverOf(dev) != VFIODriver {
			// drivers_probe matches the device with driver_override only.
			if err := h.write(filepath.Join(h.Sys, "bus/pci/drivers_probe"), d.Address); err != nil {
				return err
			}
		}
		if err := waitDriver(dev, VFIODriver); err != nil {
			return fmt.Errorf("%s: %w", d.Address, err)
		}
	}
	for _, g := range rec.Groups {
		node := filepath.Join(h.Dev, "vfio", strconv.Itoa(g))
		if err := waitFile(node); err != nil {
			return fmt.Errorf("IOMMU group %d: %w", g, err)
		}
		if rec.UID != 0 {
			if err := os.Chown(node, rec.UID, rec.UID); err != nil {
				return fmt.Errorf("giving %s to the VM's user: %w: %w", node, err, ErrVFIO)
			}
			if err := os.Chmod(node, 0o600); err != nil {
				return fmt.Errorf("%s: %w: %w", node, err, ErrVFIO)
			}
		}
	}
	return nil
}

// ReleasePCI gives back what the claim recorded in record did: the group
// nodes to root, each device off vfio-pci and onto the driver it had
// (drivers_probe), waiting until that driver has it. The record goes once
// everything is back; an error leaves it for the next try.
func (h *Host) ReleasePCI(record string) error {
	rec, err := readRecord(record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.release(rec); err != nil {
		return err
	}
	for _, d := range rec.Devices {
		if h.claimed[d.Address] == rec.VM {
			delete(h.claimed, d.Address)
		}
	}
	h.Log.Info("passthrough: PCI devices given back", "vm", rec.VM, "devices", len(rec.Devices))
	return os.Remove(record)
}

// AdoptPCI marks the devices of a record as held by its VM (a QEMU that
// survived a vmkernel restart still has them).
func (h *Host) AdoptPCI(record string) error {
	rec, err := readRecord(record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range rec.Devices {
		h.claimedLocked()[d.Address] = rec.VM
	}
	return nil
}

func (h *Host) release(rec Record) error {
	var errs []error
	for _, g := range rec.Groups {
		node := filepath.Join(h.Dev, "vfio", strconv.Itoa(g))
		if err := os.Chown(node, 0, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, d := range rec.Devices {
		dev := filepath.Join(h.Sys, "bus/pci/devices", d.Address)
		if _, err := os.Stat(dev); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.Address, err))
			continue
		}
		// An empty override lets the device's own driver match again.
		if err := h.write(filepath.Join(dev, "driver_override"), "\n"); err != nil {
			errs = append(errs, err)
			continue
		}
		if driverOf(dev) == VFIODriver {
			if err := h.write(filepath.Join(h.Sys, "bus/pci/drivers", VFIODriver, "unbind"), d.Address); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if d.Driver == "" || d.Driver == VFIODriver {
			continue
		}
		if driverOf(dev) == "" {
			if err := h.write(filepath.Join(h.Sys, "bus/pci/drivers_probe"), d.Address); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := waitDriver(dev, d.Driver); err != nil {
			errs = append(errs, fmt.Errorf("%s back to %s: %w", d.Address, d.Driver, err))
		}
	}
	return errors.Join(errs...)
}

// write writes one sysfs attribute.
func (h *Host) write(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return fmt.Errorf("writing %q to %s: %w: %w", strings.TrimSpace(value), path, err, ErrVFIO)
	}
	return nil
}

// driverOf is the driver bound to the sysfs device dev, "" for none.
func driverOf(dev string) string {
	t, err := os.Readlink(filepath.Join(dev, "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

func waitDriver(dev, driver string) error {
	deadline := time.Now().Add(bindTimeout)
	for {
		cur := driverOf(dev)
		if cur == driver {
			return nil
		}
		if time.Now().After(deadline) {
			if cur == "" {
				cur = "no driver"
			}
			return fmt.Errorf("%s did not take the device within %s (it has %s): %w", driver, bindTimeout, cur, ErrVFIO)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFile(p string) error {
	deadline := time.Now().Add(bindTimeout)
	for {
		_, err := os.Stat(p)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s: %w: %w", p, bindTimeout, err, ErrVFIO)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readRecord(path string) (Record, error) {
	var rec Record
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("passthrough record %s: %w", path, err)
	}
	return rec, nil
}

func writeRecord(path string, rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("passthrough record: %w", err)
	}
	return nil
}

// USB: a device is found by board, opened here (its node's identity
// checked against sysfs), and handed to QEMU as a descriptor.

// FindUSB is the host USB device u names: by port, or the first by
// vendor and product. vmID may hold it already; another VM may not.
func (h *Host) FindUSB(vmID string, u api.USBPassthrough) (api.USBDevice, error) {
	hw, err := h.Hardware()
	if err != nil {
		return api.USBDevice{}, err
	}
	i := slices.IndexFunc(hw.USB, func(d api.USBDevice) bool {
		if u.Port != "" {
			return d.Port == u.Port
		}
		return d.VendorID == u.VendorID && d.ProductID == u.ProductID
	})
	if i < 0 {
		return api.USBDevice{}, fmt.Errorf("no USB device %s on this host: %w", u, ErrNotFound)
	}
	d := hw.USB[i]
	if d.HostUse != "" {
		return d, fmt.Errorf("USB device %s (port %s): the host uses it: %s: %w", u, d.Port, d.HostUse, ErrUnavailable)
	}
	if d.Class == "09" {
		return d, fmt.Errorf("USB device %s (port %s) is a hub; give the devices behind it: %w", u, d.Port, ErrUnavailable)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if other := h.claimedLocked()["usb:"+d.Port]; other != "" && other != vmID {
		return d, fmt.Errorf("USB device %s (port %s): VM %s has it: %w", u, d.Port, other, ErrUnavailable)
	}
	return d, nil
}

// OpenUSB opens d's node (/dev/bus/usb/BBB/DDD) read-write for QEMU and
// marks it held by vmID. The node is checked to be d's: a character
// device of the USB major whose minor is d's bus and device number, still
// at d's port.
func (h *Host) OpenUSB(vmID string, d api.USBDevice) (*os.File, error) {
	p := filepath.Join(h.Dev, "bus/usb", fmt.Sprintf("%03d", d.Bus), fmt.Sprintf("%03d", d.Device))
	f, err := os.OpenFile(p, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("USB device %s:%s at port %s: %w", d.VendorID, d.ProductID, d.Port, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	const usbDeviceMajor = 189
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != usbDeviceMajor ||
		int(unix.Minor(st.Rdev)) != (d.Bus-1)*128+d.Device-1 || !h.USBPresent(d.Port, d.Bus, d.Device) {
		f.Close()
		return nil, fmt.Errorf("USB device at port %s changed while it was opened: %w", d.Port, ErrNotFound)
	}
	h.mu.Lock()
	h.claimedLocked()["usb:"+d.Port] = vmID
	h.mu.Unlock()
	return f, nil
}

// ReleaseUSB forgets that vmID holds the device at port.
func (h *Host) ReleaseUSB(vmID, port string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claimedLocked()["usb:"+port] == vmID {
		delete(h.claimed, "usb:"+port)
	}
}

// USBPresent reports whether the device with this bus and device number
// is still at port (a device unplugged and another plugged in gets a new
// device number).
func (h *Host) USBPresent(port string, bus, dev int) bool {
	dir := filepath.Join(h.Sys, "bus/usb/devices", port)
	read := func(name string) int {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return -1
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return -1
		}
		return n
	}
	return read("busnum") == bus && read("devnum") == dev
}
