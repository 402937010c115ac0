package api

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The guest hardware beyond the basics (issue 18): devices of the host
// given to a VM (PCI functions through VFIO, USB devices), a TPM, memory
// that stretches (a balloon, huge pages) and where the vCPUs run.

// Bounds of passthrough and CPU placement.
const (
	MaxPCIDevices = 8
	MaxUSBDevices = 8
	MaxHostCPU    = 4095
	MaxNUMANode   = 63
)

// CPU model names a spec may ask for besides "" (the default: host on KVM,
// max under TCG): CPUModelHost (KVM only) and QEMU 7.2's named x86 models,
// which give the same CPU on hosts of different generations (for
// migration later).
const CPUModelHost = "host"

// CPUModels are QEMU's named x86 CPU models (qemu-system-x86_64 -cpu help,
// QEMU 7.2, versions left out).
var CPUModels = []string{
	"486", "Broadwell", "Broadwell-IBRS", "Broadwell-noTSX", "Broadwell-noTSX-IBRS",
	"Cascadelake-Server", "Cascadelake-Server-noTSX", "Conroe", "Cooperlake", "Denverton", "Dhyana",
	"EPYC", "EPYC-IBPB", "EPYC-Milan", "EPYC-Rome", "Haswell", "Haswell-IBRS", "Haswell-noTSX",
	"Haswell-noTSX-IBRS", "Icelake-Server", "Icelake-Server-noTSX", "IvyBridge", "IvyBridge-IBRS",
	"KnightsMill", "Nehalem", "Nehalem-IBRS", "Opteron_G1", "Opteron_G2", "Opteron_G3", "Opteron_G4",
	"Opteron_G5", "Penryn", "SandyBridge", "SandyBridge-IBRS", "Skylake-Client", "Skylake-Client-IBRS",
	"Skylake-Client-noTSX-IBRS", "Skylake-Server", "Skylake-Server-IBRS", "Skylake-Server-noTSX-IBRS",
	"Snowridge", "Westmere", "Westmere-IBRS", "athlon", "core2duo", "coreduo", "kvm32", "kvm64",
	"n270", "pentium", "pentium2", "pentium3", "phenom", "qemu32", "qemu64", "max",
}

// Balloon is a virtio balloon: while the VM runs its target can be
// lowered (the guest gives memory back) down to MinMiB, and raised again
// up to the VM's memory_mib.
type Balloon struct {
	// MinMiB is the least memory the guest is ever left with.
	MinMiB int `json:"min_mib"`
}

// PCIPassthrough names a host PCI function given to the VM through VFIO:
// by Address, or by VendorID and DeviceID with Index choosing among such
// devices (0 the first in address order). Every device of its IOMMU group
// must be given too, or be bound to no driver; a device the host uses (the
// management NIC, the boot disk's controller) is refused.
type PCIPassthrough struct {
	// Address is the domain:bus:device.function, e.g. "0000:03:00.0".
	Address  string `json:"address,omitempty"`
	VendorID string `json:"vendor_id,omitempty"`
	DeviceID string `json:"device_id,omitempty"`
	Index    int    `json:"index,omitempty"`
}

// String names the device as the spec does.
func (p PCIPassthrough) String() string {
	if p.Address != "" {
		return p.Address
	}
	return fmt.Sprintf("%s:%s#%d", p.VendorID, p.DeviceID, p.Index)
}

// USBPassthrough names a host USB device given to the VM: by VendorID and
// ProductID (the first such device), or by Port, the bus-port path sysfs
// names it by (e.g. "1-2.3": bus 1, port 2 of the root hub, port 3 of the
// hub there), which stays the same for whatever is plugged into it.
type USBPassthrough struct {
	VendorID  string `json:"vendor_id,omitempty"`
	ProductID string `json:"product_id,omitempty"`
	Port      string `json:"port,omitempty"`
}

// String names the device as the spec does.
func (u USBPassthrough) String() string {
	if u.Port != "" {
		return "port " + u.Port
	}
	return u.VendorID + ":" + u.ProductID
}

// BalloonRequest sets a running VM's balloon target (PUT /v1/vms/{id}/balloon).
type BalloonRequest struct {
	// TargetMiB is the memory the guest should keep, between the spec's
	// balloon.min_mib and memory_mib.
	TargetMiB int `json:"target_mib"`
}

// BalloonStatus is a running VM's balloon (GET /v1/vms/{id}/balloon).
type BalloonStatus struct {
	// TargetMiB is the last target asked for (memory_mib until one is).
	TargetMiB int `json:"target_mib"`
	// ActualMiB is the memory the guest has now, as the balloon says.
	ActualMiB int `json:"actual_mib"`
	MinMiB    int `json:"min_mib"`
	MaxMiB    int `json:"max_mib"`
	// GuestFreeMiB and GuestTotalMiB are what the guest's balloon driver
	// last reported of its memory (absent until it has, e.g. while it boots).
	GuestFreeMiB  *int `json:"guest_free_mib,omitempty"`
	GuestTotalMiB *int `json:"guest_total_mib,omitempty"`
}

// USBAttachment is a USB device given to a running VM.
type USBAttachment struct {
	// Spec is how it was asked for.
	Spec USBPassthrough `json:"spec"`
	// Port, Bus, Device, VendorID and ProductID are the host device that
	// was attached.
	Port      string `json:"port"`
	Bus       int    `json:"bus"`
	Device    int    `json:"device"`
	VendorID  string `json:"vendor_id"`
	ProductID string `json:"product_id"`
	// Present is false once the device has left the host (unplugged while
	// attached): the guest lost it; the VM runs on.
	Present bool `json:"present"`
	// Problem says what went wrong with it, if anything.
	Problem string `json:"problem,omitempty"`
}

// validateHardware checks the issue 18 parts of a spec.
func (s VMSpec) validateHardware(v *validator) {
	micro := s.Machine == MachineMicroVM
	if s.Machine == MachinePC && s.UEFI() {
		// One UEFI firmware serves both kinds: OVMF's Secure Boot build.
		v.add("firmware", "UEFI (OVMF's Secure Boot build, for both uefi and uefi-secure) needs SMM, which only the q35 machine has")
	}
	if s.TPM && micro {
		v.add("tpm", "microvm has no TPM interface")
	}
	if b := s.Balloon; b != nil {
		if b.MinMiB < MinMemoryMiB || b.MinMiB > s.MemoryMiB {
			v.add("balloon.min_mib", fmt.Sprintf("must be between %d and the VM's memory_mib (%d)", MinMemoryMiB, s.MemoryMiB))
		}
	}
	if s.Balloon != nil && len(s.PCIDevices) > 0 {
		v.add("balloon", "a VM with PCI devices cannot have a balloon: its memory stays pinned for the devices' DMA")
	}
	if s.HugePages && s.MemoryMiB%2 != 0 {
		v.add("huge_pages", fmt.Sprintf("memory_mib (%d) must be a multiple of 2 MiB for huge pages", s.MemoryMiB))
	}

	c := s.CPU
	if c.Model != "" && c.Model != CPUModelHost && !slices.Contains(CPUModels, c.Model) {
		v.add("cpu.model", fmt.Sprintf("%q is not a CPU model: use %q (KVM only), or one of QEMU's named models such as EPYC-Rome or Skylake-Server", c.Model, CPUModelHost))
	}
	if len(c.Pin) > 0 {
		if n := c.VCPUs(); len(c.Pin) != n && n > 0 {
			v.add("cpu.pin", fmt.Sprintf("lists %d host CPUs for %d vCPUs; give one per vCPU", len(c.Pin), n))
		}
		for i, p := range c.Pin {
			if p < 0 || p > MaxHostCPU {
				v.add(fmt.Sprintf("cpu.pin[%d]", i), fmt.Sprintf("must be a host CPU number, 0 to %d", MaxHostCPU))
			}
		}
	}
	if n := c.NUMANode; n != nil && (*n < 0 || *n > MaxNUMANode) {
		v.add("cpu.numa_node", fmt.Sprintf("must be between 0 and %d", MaxNUMANode))
	}

	if len(s.PCIDevices) > 0 && micro {
		v.add("pci_devices", "microvm has no PCI bus")
	}
	if len(s.PCIDevices) > MaxPCIDevices {
		v.add("pci_devices", fmt.Sprintf("at most %d PCI devices", MaxPCIDevices))
	}
	seen := map[string]int{}
	for i, p := range s.PCIDevices {
		f := fmt.Sprintf("pci_devices[%d]", i)
		switch {
		case p.Address != "" && (p.VendorID != "" || p.DeviceID != ""):
			v.add(f, "give either address or vendor_id and device_id, not both")
			continue
		case p.Address != "":
			if !IsPCIAddress(p.Address) {
				v.add(f+".address", "must be a PCI address like 0000:03:00.0 (domain:bus:device.function, lower-case hex)")
				continue
			}
			if p.Index != 0 {
				v.add(f+".index", "only with vendor_id and device_id")
			}
		default:
			ok := true
			if !isLowerHex(p.VendorID, 4) {
				v.add(f+".vendor_id", "must be 4 lower-case hex digits, e.g. 8086 (or give address)")
				ok = false
			}
			if !isLowerHex(p.DeviceID, 4) {
				v.add(f+".device_id", "must be 4 lower-case hex digits, e.g. 10d3")
				ok = false
			}
			if p.Index < 0 || p.Index > 255 {
				v.add(f+".index", "must be between 0 and 255")
				ok = false
			}
			if !ok {
				continue
			}
		}
		if j, dup := seen[p.String()]; dup {
			v.add(f, fmt.Sprintf("same device as pci_devices[%d]", j))
		} else {
			seen[p.String()] = i
		}
	}

	if len(s.USBDevices) > 0 && micro {
		v.add("usb_devices", "microvm has no USB controller")
	}
	if len(s.USBDevices) > MaxUSBDevices {
		v.add("usb_devices", fmt.Sprintf("at most %d USB devices", MaxUSBDevices))
	}
	seen = map[string]int{}
	for i, u := range s.USBDevices {
		f := fmt.Sprintf("usb_devices[%d]", i)
		if msg := u.Check(); msg != "" {
			field := f
			if i := strings.Index(msg, ": "); i > 0 && !strings.Contains(msg[:i], " ") {
				field, msg = f+"."+msg[:i], msg[i+2:]
			}
			v.add(field, msg)
			continue
		}
		if j, dup := seen[u.String()]; dup {
			v.add(f, fmt.Sprintf("same device as usb_devices[%d]", j))
		} else {
			seen[u.String()] = i
		}
	}
}

// Check returns what is wrong with u ("field: message" for one of its
// fields), or "".
func (u USBPassthrough) Check() string {
	switch {
	case u.Port != "" && (u.VendorID != "" || u.ProductID != ""):
		return "give either port or vendor_id and product_id, not both"
	case u.Port != "":
		if !IsUSBPort(u.Port) {
			return "port: must be a USB bus-port path like 1-2 or 1-2.3 (as /sys/bus/usb/devices names it)"
		}
	case !isLowerHex(u.VendorID, 4):
		return "vendor_id: must be 4 lower-case hex digits, e.g. 0781 (or give port)"
	case !isLowerHex(u.ProductID, 4):
		return "product_id: must be 4 lower-case hex digits, e.g. 5567"
	}
	return ""
}

// IsPCIAddress reports whether s is a full PCI address in sysfs's form,
// "dddd:bb:dd.f" in lower-case hex, device at most 1f, function at most 7.
func IsPCIAddress(s string) bool {
	if len(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.' {
		return false
	}
	if !isLowerHex(s[0:4], 4) || !isLowerHex(s[5:7], 2) || !isLowerHex(s[8:10], 2) {
		return false
	}
	dev, _ := strconv.ParseUint(s[8:10], 16, 8)
	return dev <= 0x1f && s[11] >= '0' && s[11] <= '7'
}

// IsUSBPort reports whether s is a USB device's bus-port path: bus 1-127,
// then 1 to 7 ports of 1-31 separated by '-' (the first) and '.'.
func IsUSBPort(s string) bool {
	bus, path, ok := strings.Cut(s, "-")
	if !ok || !smallNumber(bus, 1, 127) {
		return false
	}
	ports := strings.Split(path, ".")
	if len(ports) > 7 {
		return false
	}
	for _, p := range ports {
		if !smallNumber(p, 1, 31) {
			return false
		}
	}
	return true
}

func smallNumber(s string, lo, hi int) bool {
	if s == "" || len(s) > 3 || s[0] == '0' {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= lo && n <= hi
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// UEFI reports whether the VM boots OVMF (with or without Secure Boot).
func (s VMSpec) UEFI() bool {
	return s.Firmware == FirmwareUEFI || s.Firmware == FirmwareUEFISecure
}
