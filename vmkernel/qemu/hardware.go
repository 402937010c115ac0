package qemu

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/plinth/plinth/api"
)

// The guest hardware of issue 18 on the command line: host PCI functions
// (vfio-pci, each on a root port of its own), the TPM (swtpm's socket),
// the balloon, USB (a controller always, host devices as descriptors),
// the RAM's backend (huge pages, a NUMA node) and the spare root ports
// that disks and NICs are hot-plugged into. Devices are added after all
// the others, so that a VM's existing devices keep their PCI slots.

// HotplugPorts is how many empty PCIe root ports a q35 VM gets for
// hot-plugged disks, NICs and a late USB controller ("hp0".."hp3").
const HotplugPorts = 4

// IDs of devices the runner drives over QMP.
const (
	// BalloonID is the virtio balloon's device ID (qom-get guest-stats).
	BalloonID = "balloon0"
	// USBBus is the USB controller's bus, where usb-host devices go.
	USBBus = "xhci.0"
	// TPMSocketName is swtpm's control socket in the run directory.
	TPMSocketName = "swtpm.sock"
)

// HotplugPort is the ID of the i-th spare root port.
func HotplugPort(i int) string { return "hp" + strconv.Itoa(i) }

// USBHostID is the device ID of the usb-host device given at start for
// the spec's USB device i.
func USBHostID(i int) string { return "usb" + strconv.Itoa(i) }

// HugePageBytes is the huge page size VMs use.
const HugePageBytes = 2 << 20

// memoryBackend is the RAM's -object (nil when QEMU's default will do):
// memfd with hugetlb for huge pages, bound to a host NUMA node when asked.
func memoryBackend(spec api.VMSpec) map[string]any {
	if !spec.HugePages && spec.CPU.NUMANode == nil {
		return nil
	}
	obj := map[string]any{"qom-type": "memory-backend-ram", "id": "ram0", "size": uint64(spec.MemoryMiB) << 20}
	if spec.HugePages {
		// memfd, not a hugetlbfs path: QEMU creates no file anywhere.
		obj["qom-type"] = "memory-backend-memfd"
		obj["hugetlb"] = true
		obj["hugetlbsize"] = HugePageBytes
	}
	if n := spec.CPU.NUMANode; n != nil {
		obj["host-nodes"] = []int{*n}
		obj["policy"] = "bind"
	}
	return obj
}

// cpuModel is -cpu's value for spec on env's accelerator.
func cpuModel(spec api.VMSpec, kvm bool) (string, error) {
	switch m := spec.CPU.Model; {
	case m == "" && kvm:
		return "host", nil
	case m == "":
		return "max", nil
	case m == api.CPUModelHost && !kvm:
		return "", fmt.Errorf("cpu.model: %q passes the host's CPU through and needs KVM; this host runs TCG: %w", m, ErrEnv)
	default:
		return m, nil
	}
}

// hardware adds the devices of issue 18 (see the top of this file).
func (b *builder) hardware(spec api.VMSpec, env Env) error {
	micro := spec.Machine == api.MachineMicroVM
	q35 := spec.Machine == api.MachineQ35
	chassis := 0
	rootPort := func(id string) {
		chassis++
		// No I/O window: the devices that go here (PCIe, and virtio,
		// which is modern-only on PCIe) need none, and OVMF runs out of
		// I/O space with many ports.
		b.add("-device", b.opt("pcie-root-port", "id", id, "bus", "pcie.0", "chassis", strconv.Itoa(chassis), "io-reserve", "0"))
	}

	if spec.TPM {
		if env.TPMSocket == "" {
			return fmt.Errorf("tpm: no swtpm socket: %w", ErrEnv)
		}
		sock, err := b.socket(TPMSocketName)
		if err != nil {
			return err
		}
		if sock != env.TPMSocket {
			return fmt.Errorf("tpm: swtpm's socket %s is not in the run directory: %w", env.TPMSocket, ErrEnv)
		}
		b.add("-chardev", b.opt("socket", "id", "tpm0-chr", "path", sock))
		b.add("-tpmdev", b.opt("emulator", "id", "tpm0", "chardev", "tpm0-chr"))
		b.add("-device", b.opt("tpm-crb", "id", "tpm0-dev", "tpmdev", "tpm0"))
	}
	if spec.Balloon != nil {
		dev := "virtio-balloon-pci"
		if micro {
			dev = "virtio-balloon-device"
		}
		// free-page-reporting: pages the guest frees go back to the host
		// without waiting for a lower target.
		b.add("-device", b.opt(dev, "id", BalloonID, "free-page-reporting", "on"))
	}

	if len(env.PCIDevices) > 0 {
		// VFIO pins the guest's RAM when the machine is made; QEMU may not
		// raise its own locked-memory limit (resourcecontrol=deny), so it
		// waits for vmkernel to, then for x-exit-preconfig.
		b.add("--preconfig")
	}
	if len(env.PCIDevices) != len(spec.PCIDevices) {
		return fmt.Errorf("pci_devices: %d host devices for %d in the spec: %w", len(env.PCIDevices), len(spec.PCIDevices), ErrEnv)
	}
	for i, addr := range env.PCIDevices {
		if !api.IsPCIAddress(addr) {
			return fmt.Errorf("pci_devices[%d]: host address %q: %w", i, addr, ErrEnv)
		}
		opts := []string{"host", addr, "id", "hostpci" + strconv.Itoa(i)}
		if q35 {
			port := "pt" + strconv.Itoa(i)
			rootPort(port)
			opts = append(opts, "bus", port)
		}
		b.add("-device", b.opt("vfio-pci", opts...))
	}

	if !micro {
		b.add("-device", b.opt("qemu-xhci", "id", "xhci"))
		for _, u := range env.USB {
			if u.FDSet == "" {
				return fmt.Errorf("usb_devices[%d]: no descriptor: %w", u.Index, ErrEnv)
			}
			b.add("-device", b.opt("usb-host", "id", USBHostID(u.Index), "bus", USBBus, "hostdevice", u.FDSet))
		}
	} else if len(env.USB) > 0 {
		return fmt.Errorf("usb_devices: microvm has no USB controller: %w", ErrEnv)
	}
	if q35 {
		for i := range HotplugPorts {
			rootPort(HotplugPort(i))
		}
	}
	return nil
}

// object adds a JSON -object.
func (b *builder) object(obj map[string]any) error {
	j, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	b.add("-object", string(j))
	return nil
}
