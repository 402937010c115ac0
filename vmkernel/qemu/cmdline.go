// Package qemu turns a VM spec into a QEMU command line. Cmdline is a pure
// function: it reads no files and starts nothing; supervising the process is
// someone else's job.
//
// QEMU opens no file by a name that came from a user: every disk, CD-ROM
// and UEFI variables file is a block graph (Node) over a descriptor vmkernel
// opened and checked, handed over in an fd set (-add-fd, /dev/fdset/N);
// taps come as descriptors too. Every option value goes through one
// function (opt) that escapes commas, and control characters are refused.
// QEMU runs with its seccomp sandbox on.
package qemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// Socket names inside a VM's run directory.
const (
	QMPSocket    = "qmp.sock"
	SerialSocket = "serial.sock"
	VNCSocket    = "vnc.sock"
	// AgentSocket is the guest agent's channel (virtio-serial port
	// org.qemu.guest_agent.0), on every VM.
	AgentSocket = "qga.sock"
)

// Sandbox is QEMU's seccomp filter as libvirt sets it: no obsolete system
// calls, no gaining privileges, no new processes, no changing its own
// resource limits or CPU affinity.
const Sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// Sentinel errors, for errors.Is; Cmdline wraps them with the field at fault.
var (
	ErrNoTap       = errors.New("no tap device for this NIC")
	ErrNoFirmware  = errors.New("UEFI firmware not given")
	ErrNoImage     = errors.New("no image given for this device")
	ErrEnv         = errors.New("invalid QEMU environment")
	ErrControlChar = errors.New("control character in a QEMU option")
)

// Env is what the host supplies around a spec: everything QEMU will open,
// already opened.
type Env struct {
	// QEMU is the qemu-system-x86_64 binary; it is args[0].
	QEMU string
	// Accel is "kvm" or "tcg".
	Accel string
	// RunDir is the VM's runtime directory, holding its sockets.
	RunDir string
	// Disks is the block graph of each disk, by index in the spec.
	Disks []Node
	// CDROM is the CD-ROM's image (the spec's CD-ROM needs one).
	CDROM *Node
	// Seed is the cloud-init NoCloud seed, attached read-only as the last
	// virtio disk (the spec's cloud_init needs one).
	Seed *Node
	// OVMFCode and OVMFVars are the UEFI firmware and the VM's own copy of
	// its variables (UEFI only).
	OVMFCode, OVMFVars *Node
	// Kernel and Initrd are the files QEMU reads for a direct kernel boot
	// (copies in RunDir, the only files QEMU opens by name).
	Kernel, Initrd string
	// Taps holds the descriptors of each NIC that is on a switch, by NIC
	// index (zero for NAT NICs).
	Taps []Tap
	// FDSets are the descriptors QEMU inherits into fd sets, which the
	// nodes' /dev/fdset/N names refer to.
	FDSets []FDSet
	// TPMSocket is swtpm's control socket (RunDir/TPMSocketName), for a
	// spec with a TPM; vmkernel started swtpm.
	TPMSocket string
	// PCIDevices are the host addresses of the spec's PCI devices, in
	// spec order, bound to vfio-pci, their groups given to the VM's user.
	PCIDevices []string
	// USB are the spec's USB devices present at start, each opened by
	// vmkernel and passed as an fd set.
	USB []USBHost
}

// USBHost is a host USB device given at start: the spec's index and the
// fd set holding its /dev/bus/usb node.
type USBHost struct {
	Index int
	FDSet string
}

// Tap is a NIC's tap, opened by vmkernel: its descriptor and, for
// vhost-net, the descriptor of /dev/vhost-net (0 for none).
type Tap struct {
	FD, VhostFD int
}

// FDSet puts an inherited descriptor in a QEMU fd set.
type FDSet struct {
	Set, FD int
	// Opaque is a note QEMU keeps with it (query-fdsets).
	Opaque string
}

// DiskNodeName is the block node of the spec's disk i (its format node;
// the device is the name without "-fmt"), for QMP commands about it.
func DiskNodeName(i int) string { return "disk" + strconv.Itoa(i) + "-fmt" }

// VarsNodeName is the block node of a UEFI VM's variables (pflash1).
const VarsNodeName = "pflash1"

// FDSetName is how a node names the fd set.
func FDSetName(set int) string { return "/dev/fdset/" + strconv.Itoa(set) }

// maxSocketPath is the room in sockaddr_un.sun_path, minus the NUL.
const maxSocketPath = 107

// Cmdline returns QEMU's argv (binary first) for spec, which must have had
// Defaults applied. A spec that does not validate gives its
// *api.ValidationError; host-side problems give wrapped sentinels.
func Cmdline(spec api.VMSpec, env Env) ([]string, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.ID == "" {
		return nil, fmt.Errorf("id: required to run a VM: %w", ErrEnv)
	}
	if env.QEMU == "" {
		return nil, fmt.Errorf("QEMU binary not set: %w", ErrEnv)
	}
	if env.Accel != api.AccelKVM && env.Accel != api.AccelTCG {
		return nil, fmt.Errorf("accel %q is not kvm or tcg: %w", env.Accel, ErrEnv)
	}
	if !filepath.IsAbs(env.RunDir) {
		return nil, fmt.Errorf("run dir %q is not absolute: %w", env.RunDir, ErrEnv)
	}
	b := &builder{env: env, ids: newIDs()}
	micro := spec.Machine == api.MachineMicroVM
	kvm := env.Accel == api.AccelKVM

	b.add(env.QEMU)
	b.add("-name", b.opt("", "guest", spec.Name))
	b.add("-uuid", spec.ID)
	b.add("-no-user-config", "-nodefaults")
	b.add("-sandbox", Sandbox)
	for _, fd := range env.FDSets {
		b.add("-add-fd", b.opt("", "fd", strconv.Itoa(fd.FD), "set", strconv.Itoa(fd.Set), "opaque", fd.Opaque))
	}
	machine := []string{"accel", env.Accel}
	if spec.UEFI() {
		if env.OVMFCode == nil || env.OVMFVars == nil {
			return nil, fmt.Errorf("firmware: %w", ErrNoFirmware)
		}
		code, err := b.blockdev(*env.OVMFCode, NodeOptions{Name: "pflash0", ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("firmware: %w", err)
		}
		vars, err := b.blockdev(*env.OVMFVars, NodeOptions{Name: VarsNodeName})
		if err != nil {
			return nil, fmt.Errorf("firmware: %w", err)
		}
		// OVMF's Secure Boot build (the one Plinth ships, for both
		// firmware kinds) keeps its variables in SMM: only SMM code may
		// write the flash.
		machine = append(machine, "pflash0", code, "pflash1", vars, "smm", "on")
		b.add("-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	if mem := memoryBackend(spec); mem != nil {
		if err := b.object(mem); err != nil {
			return nil, err
		}
		machine = append(machine, "memory-backend", "ram0")
	}
	b.add("-machine", b.opt(spec.Machine, machine...))
	model, err := cpuModel(spec, kvm)
	if err != nil {
		return nil, err
	}
	b.add("-cpu", model)
	b.add("-smp", b.opt("", "sockets", strconv.Itoa(spec.CPU.Sockets), "cores", strconv.Itoa(spec.CPU.Cores), "threads", strconv.Itoa(spec.CPU.Threads)))
	b.add("-m", strconv.Itoa(spec.MemoryMiB)+"M")

	qmp, err := b.socket(QMPSocket)
	if err != nil {
		return nil, err
	}
	b.add("-qmp", b.opt("unix:"+qmp, "server", "on", "wait", "off"))
	if spec.Serial {
		sock, err := b.socket(SerialSocket)
		if err != nil {
			return nil, err
		}
		id := b.ids.next("serial")
		b.add("-chardev", b.opt("socket", "id", id, "path", sock, "server", "on", "wait", "off"))
		b.add("-serial", "chardev:"+id)
	}
	// The guest agent's channel: a virtio-serial port whose other end is a
	// socket in the run directory, which vmkernel connects to.
	agent, err := b.socket(AgentSocket)
	if err != nil {
		return nil, err
	}
	vser := b.ids.next("vser")
	vserDev := "virtio-serial-pci"
	if micro {
		vserDev = "virtio-serial-device"
	}
	b.add("-device", b.opt(vserDev, "id", vser))
	b.add("-chardev", b.opt("socket", "id", "qga0", "path", agent, "server", "on", "wait", "off"))
	b.add("-device", b.opt("virtserialport", "bus", vser+".0", "chardev", "qga0", "name", "org.qemu.guest_agent.0"))
	b.add("-display", "none")
	if spec.VNC {
		sock, err := b.socket(VNCSocket)
		if err != nil {
			return nil, err
		}
		b.add("-device", b.opt("VGA", "id", b.ids.next("video")))
		b.add("-vnc", b.opt("unix:"+sock))
	}

	if k := spec.Kernel; k != nil {
		// QEMU reads -initrd as a comma-separated module list for a
		// multiboot kernel: these names are Plinth's, and never hold one.
		for _, p := range []struct{ field, path string }{{"kernel.kernel", env.Kernel}, {"kernel.initrd", env.Initrd}} {
			if p.path == "" && p.field == "kernel.initrd" && k.Initrd == "" {
				continue
			}
			if !filepath.IsAbs(p.path) || strings.ContainsAny(p.path, ",") || hasControl(p.path) {
				return nil, fmt.Errorf("%s: file %q for QEMU: %w", p.field, p.path, ErrEnv)
			}
		}
		b.add("-kernel", env.Kernel)
		if k.Initrd != "" {
			b.add("-initrd", env.Initrd)
		}
		if k.Cmdline != "" {
			if hasControl(k.Cmdline) {
				return nil, fmt.Errorf("kernel.cmdline: %w", ErrControlChar)
			}
			b.add("-append", k.Cmdline)
		}
	}

	// Boot indexes, in BootOrder: every device of a kind, in spec order.
	boot := map[string]int{}
	for i, kind := range spec.BootOrder {
		boot[kind] = (i + 1) * 100
	}
	bootIndex := func(kind string, n int) []string {
		if base, ok := boot[kind]; ok {
			return []string{"bootindex", strconv.Itoa(base + n)}
		}
		return nil
	}

	// Storage controllers, then disks.
	virtioSuffix := "-pci"
	if micro {
		virtioSuffix = "-device"
	}
	var scsi, ahci string
	sataPort := 0
	sataBus := func() string {
		if ahci == "" {
			if spec.Machine == api.MachineQ35 {
				ahci = "ide" // q35's built-in AHCI controller
			} else {
				ahci = b.ids.next("sata")
				b.add("-device", b.opt("ich9-ahci", "id", ahci))
			}
		}
		bus := fmt.Sprintf("%s.%d", ahci, sataPort)
		sataPort++
		return bus
	}
	if len(env.Disks) != len(spec.Disks) {
		return nil, fmt.Errorf("disks: %d images for %d disks: %w", len(env.Disks), len(spec.Disks), ErrNoImage)
	}
	for i, d := range spec.Disks {
		field := fmt.Sprintf("disks[%d]", i)
		if env.Disks[i].Format != d.Format {
			return nil, fmt.Errorf("%s: image is %s, the spec says %s: %w", field, env.Disks[i].Format, d.Format, ErrEnv)
		}
		node, err := b.blockdev(env.Disks[i], NodeOptions{Name: DiskNodeName(i), ReadOnly: d.ReadOnly,
			Direct: d.Cache == api.CacheNone || d.Cache == api.CacheDirectsync, NoFlush: d.Cache == api.CacheUnsafe})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		id := strings.TrimSuffix(node, "-fmt")
		dev := []string{"id", id, "drive", node, "write-cache", onOff(writeCache(d.Cache))}
		switch d.Bus {
		case api.BusVirtioBlk:
			b.add("-device", b.opt("virtio-blk"+virtioSuffix, append(dev, bootIndex(api.BootDisk, i)...)...))
		case api.BusVirtioSCSI:
			if scsi == "" {
				scsi = b.ids.next("scsi")
				b.add("-device", b.opt("virtio-scsi-pci", "id", scsi))
			}
			dev = append(dev, "bus", scsi+".0", "channel", "0", "scsi-id", strconv.Itoa(i), "lun", "0")
			b.add("-device", b.opt("scsi-hd", append(dev, bootIndex(api.BootDisk, i)...)...))
		case api.BusSATA:
			dev = append(dev, "bus", sataBus())
			b.add("-device", b.opt("ide-hd", append(dev, bootIndex(api.BootDisk, i)...)...))
		}
	}
	if spec.CDROM != nil {
		if env.CDROM == nil {
			return nil, fmt.Errorf("cdrom: %w", ErrNoImage)
		}
		if env.CDROM.Format != api.FormatRaw {
			return nil, fmt.Errorf("cdrom: image is %s: %w", env.CDROM.Format, ErrEnv)
		}
		id := b.ids.next("cdrom")
		node, err := b.blockdev(*env.CDROM, NodeOptions{Name: id + "-fmt", ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("cdrom: %w", err)
		}
		b.add("-device", b.opt("ide-cd", append([]string{"id", id, "drive", node, "bus", sataBus()}, bootIndex(api.BootCDROM, 0)...)...))
	}

	if spec.CloudInit != nil {
		if env.Seed == nil || env.Seed.Format != api.FormatRaw {
			return nil, fmt.Errorf("cloud_init: the seed: %w", ErrNoImage)
		}
		node, err := b.blockdev(*env.Seed, NodeOptions{Name: "cidata-fmt", ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("cloud_init: %w", err)
		}
		b.add("-device", b.opt("virtio-blk"+virtioSuffix, "id", "cidata", "drive", node, "serial", "cidata"))
	}

	for i, n := range spec.NICs {
		netdev := b.ids.next("net")
		if n.NAT {
			b.add("-netdev", b.opt("user", "id", netdev))
		} else {
			var tap Tap
			if i < len(env.Taps) {
				tap = env.Taps[i]
			}
			if tap.FD < 3 {
				return nil, fmt.Errorf("nics[%d]: switch %q: %w", i, n.Switch, ErrNoTap)
			}
			opts := []string{"id", netdev, "fd", strconv.Itoa(tap.FD)}
			if tap.VhostFD >= 3 && kvm && n.Model == api.NICVirtio {
				opts = append(opts, "vhost", "on", "vhostfd", strconv.Itoa(tap.VhostFD))
			}
			b.add("-netdev", b.opt("tap", opts...))
		}
		model := "e1000e"
		if n.Model == api.NICVirtio {
			model = "virtio-net" + virtioSuffix
		}
		b.add("-device", b.opt(model, append([]string{"id", b.ids.next("nic"), "netdev", netdev, "mac", n.MAC}, bootIndex(api.BootNetwork, i)...)...))
	}

	b.add("-device", b.opt("virtio-rng"+virtioSuffix, "id", b.ids.next("rng")))
	if err := b.hardware(spec, env); err != nil {
		return nil, err
	}
	if b.err != nil {
		return nil, b.err
	}
	return b.args, nil
}

type builder struct {
	env  Env
	ids  *ids
	args []string
	err  error // the first value refused by opt
}

func (b *builder) add(args ...string) { b.args = append(b.args, args...) }

// opt is the one way an option value is built: head (a driver or device
// name, or a value such as "unix:PATH"; none when empty), then key=value
// pairs. Every value has its commas doubled (QEMU's escape); a value with
// a control character is refused. Keys are Plinth's constants.
func (b *builder) opt(head string, kv ...string) string {
	var parts []string
	if head != "" {
		parts = append(parts, b.esc(head))
	}
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+"="+b.esc(kv[i+1]))
	}
	return strings.Join(parts, ",")
}

func (b *builder) esc(v string) string {
	if err := checkValue(v); err != nil && b.err == nil {
		b.err = err
	}
	return strings.ReplaceAll(v, ",", ",,")
}

// checkValue refuses a value with a control character (C0, DEL).
func checkValue(v string) error {
	if hasControl(v) {
		return fmt.Errorf("%w: %q", ErrControlChar, v)
	}
	return nil
}

func hasControl(v string) bool {
	return strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// blockdev adds the node's graph as one JSON -blockdev and returns the
// format node's name.
func (b *builder) blockdev(n Node, o NodeOptions) (string, error) {
	m, err := n.Blockdev(o)
	if err != nil {
		return "", err
	}
	j, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	b.add("-blockdev", string(j))
	return o.Name, nil
}

func (b *builder) socket(name string) (string, error) {
	p := filepath.Join(b.env.RunDir, name)
	if len(p) > maxSocketPath {
		return "", fmt.Errorf("socket path %s is %d bytes, more than %d: %w", p, len(p), maxSocketPath, ErrEnv)
	}
	return p, nil
}

// writeCache is the guest-visible write cache of a cache mode.
func writeCache(cache string) bool {
	return cache != api.CacheWritethrough && cache != api.CacheDirectsync
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// ids hands out device and node IDs that never collide: each prefix has its
// own counter, and a name is never given twice.
type ids struct {
	n    map[string]int
	used map[string]bool
}

// newIDs reserves the fixed names: q35's AHCI bus, the agent's chardev,
// the cloud-init disk and the UEFI flash nodes.
func newIDs() *ids {
	return &ids{n: map[string]int{}, used: map[string]bool{"ide": true, "qga0": true, "cidata": true, "pflash0": true, "pflash1": true}}
}

func (a *ids) next(prefix string) string {
	for {
		id := prefix + strconv.Itoa(a.n[prefix])
		a.n[prefix]++
		if !a.used[id] {
			a.used[id] = true
			return id
		}
	}
}
