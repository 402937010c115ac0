// Package qemu turns a VM spec into a QEMU command line. Cmdline is a pure
// function: it reads no files and starts nothing; supervising the process is
// someone else's job.
package qemu

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/vmkernel/datastore"
)

// Socket names inside a VM's run directory.
const (
	QMPSocket    = "qmp.sock"
	SerialSocket = "serial.sock"
	VNCSocket    = "vnc.sock"
)

// Sentinel errors, for errors.Is; Cmdline wraps them with the field at fault.
var (
	ErrUnknownDatastore = errors.New("datastore not known on this host")
	ErrPathEscapes      = datastore.ErrEscapes
	ErrNoTap            = errors.New("no tap device for this NIC")
	ErrNoFirmware       = errors.New("UEFI firmware files not configured")
	ErrEnv              = errors.New("invalid QEMU environment")
)

// Env is what the host supplies around a spec.
type Env struct {
	// QEMU is the qemu-system-x86_64 binary; it is args[0].
	QEMU string
	// Accel is "kvm" or "tcg".
	Accel string
	// RunDir is the VM's runtime directory, holding its sockets.
	RunDir string
	// Datastores maps a datastore name to its absolute root directory.
	Datastores map[string]string
	// OVMFCode is the read-only UEFI code image; OVMFVars is the VM's own
	// copy of the NVRAM variables (in its state directory). UEFI only.
	OVMFCode, OVMFVars string
	// Taps holds the tap interface name of each NIC that is on a switch, by
	// NIC index ("" or absent for NAT NICs).
	Taps []string
}

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
	b.add("-name", "guest="+spec.Name)
	b.add("-uuid", spec.ID)
	b.add("-no-user-config", "-nodefaults")
	b.add("-machine", spec.Machine+",accel="+env.Accel)
	if kvm {
		b.add("-cpu", "host")
	} else {
		b.add("-cpu", "max")
	}
	b.add("-smp", fmt.Sprintf("sockets=%d,cores=%d,threads=%d", spec.CPU.Sockets, spec.CPU.Cores, spec.CPU.Threads))
	b.add("-m", strconv.Itoa(spec.MemoryMiB)+"M")

	if spec.Firmware == api.FirmwareUEFI {
		if !filepath.IsAbs(env.OVMFCode) || !filepath.IsAbs(env.OVMFVars) {
			return nil, fmt.Errorf("firmware: %w (code %q, vars %q)", ErrNoFirmware, env.OVMFCode, env.OVMFVars)
		}
		b.add("-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+esc(env.OVMFCode))
		b.add("-drive", "if=pflash,format=raw,unit=1,file="+esc(env.OVMFVars))
	}

	qmp, err := b.socket(QMPSocket)
	if err != nil {
		return nil, err
	}
	b.add("-qmp", "unix:"+esc(qmp)+",server=on,wait=off")
	if spec.Serial {
		sock, err := b.socket(SerialSocket)
		if err != nil {
			return nil, err
		}
		id := b.ids.next("serial")
		b.add("-chardev", "socket,id="+id+",path="+esc(sock)+",server=on,wait=off")
		b.add("-serial", "chardev:"+id)
	}
	b.add("-display", "none")
	if spec.VNC {
		sock, err := b.socket(VNCSocket)
		if err != nil {
			return nil, err
		}
		b.add("-device", "VGA,id="+b.ids.next("video"))
		b.add("-vnc", "unix:"+esc(sock))
	}

	if k := spec.Kernel; k != nil {
		p, err := b.resolve("kernel.kernel", k.Datastore, k.Kernel)
		if err != nil {
			return nil, err
		}
		b.add("-kernel", p)
		if k.Initrd != "" {
			p, err := b.resolve("kernel.initrd", k.Datastore, k.Initrd)
			if err != nil {
				return nil, err
			}
			b.add("-initrd", p)
		}
		if k.Cmdline != "" {
			b.add("-append", k.Cmdline)
		}
	}

	// Boot indexes, in BootOrder: every device of a kind, in spec order.
	boot := map[string]int{}
	for i, kind := range spec.BootOrder {
		boot[kind] = (i + 1) * 100
	}
	bootIndex := func(kind string, n int) string {
		if base, ok := boot[kind]; ok {
			return ",bootindex=" + strconv.Itoa(base+n)
		}
		return ""
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
				b.add("-device", "ich9-ahci,id="+ahci)
			}
		}
		bus := fmt.Sprintf("%s.%d", ahci, sataPort)
		sataPort++
		return bus
	}
	for i, d := range spec.Disks {
		field := fmt.Sprintf("disks[%d]", i)
		p, err := b.resolve(field+".path", d.Datastore, d.Path)
		if err != nil {
			return nil, err
		}
		node := b.blockdev(d.Format, p, d.Cache, d.ReadOnly)
		id := b.ids.next("disk")
		wc := ",write-cache=" + onOff(writeCache(d.Cache))
		switch d.Bus {
		case api.BusVirtioBlk:
			b.add("-device", "virtio-blk"+virtioSuffix+",id="+id+",drive="+node+wc+bootIndex(api.BootDisk, i))
		case api.BusVirtioSCSI:
			if scsi == "" {
				scsi = b.ids.next("scsi")
				b.add("-device", "virtio-scsi-pci,id="+scsi)
			}
			b.add("-device", fmt.Sprintf("scsi-hd,id=%s,drive=%s,bus=%s.0,channel=0,scsi-id=%d,lun=0%s%s",
				id, node, scsi, i, wc, bootIndex(api.BootDisk, i)))
		case api.BusSATA:
			b.add("-device", "ide-hd,id="+id+",drive="+node+",bus="+sataBus()+wc+bootIndex(api.BootDisk, i))
		}
	}
	if cd := spec.CDROM; cd != nil {
		p, err := b.resolve("cdrom.path", cd.Datastore, cd.Path)
		if err != nil {
			return nil, err
		}
		node := b.blockdev(api.FormatRaw, p, api.CacheWriteback, true)
		b.add("-device", "ide-cd,id="+b.ids.next("cdrom")+",drive="+node+",bus="+sataBus()+bootIndex(api.BootCDROM, 0))
	}

	for i, n := range spec.NICs {
		netdev := b.ids.next("net")
		if n.NAT {
			b.add("-netdev", "user,id="+netdev)
		} else {
			tap := ""
			if i < len(env.Taps) {
				tap = env.Taps[i]
			}
			if tap == "" || strings.ContainsAny(tap, ",=/\x00") || len(tap) > 15 {
				return nil, fmt.Errorf("nics[%d]: switch %q: tap %q: %w", i, n.Switch, tap, ErrNoTap)
			}
			opts := "tap,id=" + netdev + ",ifname=" + tap + ",script=no,downscript=no"
			if kvm && n.Model == api.NICVirtio {
				opts += ",vhost=on"
			}
			b.add("-netdev", opts)
		}
		model := "e1000e"
		if n.Model == api.NICVirtio {
			model = "virtio-net" + virtioSuffix
		}
		b.add("-device", model+",id="+b.ids.next("nic")+",netdev="+netdev+",mac="+n.MAC+bootIndex(api.BootNetwork, i))
	}

	b.add("-device", "virtio-rng"+virtioSuffix+",id="+b.ids.next("rng"))
	return b.args, nil
}

type builder struct {
	env  Env
	ids  *ids
	args []string
}

func (b *builder) add(args ...string) { b.args = append(b.args, args...) }

func (b *builder) socket(name string) (string, error) {
	p := filepath.Join(b.env.RunDir, name)
	if len(p) > maxSocketPath {
		return "", fmt.Errorf("socket path %s is %d bytes, more than %d: %w", p, len(p), maxSocketPath, ErrEnv)
	}
	return p, nil
}

// resolve maps a datastore-relative path to an absolute one, refusing
// unknown datastores and paths that would leave the datastore.
func (b *builder) resolve(field, dsName, rel string) (string, error) {
	root, ok := b.env.Datastores[dsName]
	if !ok {
		return "", fmt.Errorf("%s: %q: %w", field, dsName, ErrUnknownDatastore)
	}
	if !filepath.IsAbs(root) {
		return "", fmt.Errorf("%s: datastore %q root %q is not absolute: %w", field, dsName, root, ErrEnv)
	}
	full, err := datastore.Join(root, rel)
	if err == nil && full == filepath.Clean(root) {
		err = fmt.Errorf("path %q is the datastore itself: %w", rel, ErrPathEscapes)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w (datastore %q)", field, err, dsName)
	}
	return full, nil
}

// blockdev adds a file protocol node and a format node on top, returning
// the format node's name.
func (b *builder) blockdev(format, path, cache string, readOnly bool) string {
	file := b.ids.next("file")
	node := b.ids.next("fmt")
	c := ",cache.direct=" + onOff(cache == api.CacheNone || cache == api.CacheDirectsync) +
		",cache.no-flush=" + onOff(cache == api.CacheUnsafe) +
		",read-only=" + onOff(readOnly)
	b.add("-blockdev", "driver=file,node-name="+file+",filename="+esc(path)+c)
	b.add("-blockdev", "driver="+format+",node-name="+node+",file="+file+c)
	return node
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

// esc escapes a value for QEMU's key=value option syntax (commas doubled).
func esc(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// ids hands out device and node IDs that never collide: each prefix has its
// own counter, and a name is never given twice.
type ids struct {
	n    map[string]int
	used map[string]bool
}

func newIDs() *ids { return &ids{n: map[string]int{}, used: map[string]bool{"ide": true}} }

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
