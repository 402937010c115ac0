// Package qemutest boots a Plinth image (or any kernel + initramfs) under QEMU
// and drives it from outside the way a user would: it captures the serial
// console (to a file and to memory, so tests can Expect lines on it), forwards
// a localhost port to the guest's HTTPS port 443, and speaks QMP to press the
// ACPI power button. The QEMU command line is built by the pure Options.Args;
// Start supervises the process (own process group, killed on Close, on context
// cancellation and, through Pdeathsig, when the test binary dies).
//
// The end-to-end tests of the appliance live beside the harness and run only
// with PLINTH_E2E=1; the harness's own tests boot a tiny "floor" initramfs
// (see floorinit) and run whenever a kernel is present.
package qemutest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// GuestAPIPort is the guest port the appliance's HTTPS API listens on.
const GuestAPIPort = 443

// Options says what to boot and how. The zero value of each field has a
// sensible default (see the field comments).
type Options struct {
	// Kernel is the bzImage to boot directly; empty means the firmware
	// boots from Disks or CDROM (their boot loader's command line then
	// holds console=ttyS0). Start boots it through its PVH entry
	// (PVHKernel) unless ServerBoot is set or the firmware is OVMF.
	Kernel string
	// ServerBoot boots Kernel as a server does: the bzImage through its
	// own decompressor, with the kernel's crypto self-tests. Without it a
	// test boot skips both (PVHKernel, NoSelfTests), which cost about
	// 5.5 s and 1 s of emulated CPU a boot under TCG and test nothing of
	// Plinth's. make run and the benchmarks set it (bench/boot unless
	// told -test-boot).
	ServerBoot bool
	// Initrd is the initramfs; empty means none.
	Initrd string
	// Cmdline is appended to the harness's own "console=ttyS0 panic=-1".
	Cmdline string
	// TCGAsIs leaves out the kernel arguments that work around QEMU's TCG
	// (KernelCmdline), for plinth-stallrepro, which shows why they are there.
	TCGAsIs bool
	// Firmware is FirmwareBIOS (SeaBIOS, the default) or FirmwareUEFI
	// (OVMF, which needs UEFIVars).
	Firmware string
	// UEFIVars is a writable copy of OVMF's variable store, one per VM
	// (see NewUEFIVars).
	UEFIVars string
	// AllowReboot keeps QEMU running when the guest reboots (upgrades);
	// by default a reboot (or a kernel panic) ends QEMU (-no-reboot).
	AllowReboot bool
	// Disks are attached as virtio-blk disks, in order; the firmware tries
	// them (then CDROM) in that order.
	Disks []Disk
	// CDROM is an ISO image attached as a SATA CD-ROM.
	CDROM string
	// BootCDROM puts CDROM before Disks in the boot order.
	BootCDROM bool
	// FWCfg are QEMU fw_cfg files the guest reads under
	// /sys/firmware/qemu_fw_cfg/by_name/NAME/raw.
	FWCfg []FWCfgFile
	// MemoryMiB is the guest memory; 0 means 512.
	MemoryMiB int
	// CPUs is the number of vCPUs; 0 means 1.
	CPUs int
	// IOMMU gives the guest an emulated Intel IOMMU (VT-d with interrupt
	// remapping, which needs the split irqchip; caching-mode for VFIO), made
	// before any other device so that all are behind it; the guest's
	// kernel needs intel_iommu=on (Cmdline).
	IOMMU bool
	// ExtraArgs are appended verbatim to QEMU's command line.
	ExtraArgs []string
	// Accel is api.AccelKVM or api.AccelTCG; "" lets Start choose with
	// accel.Detect (Args alone treats "" as TCG).
	Accel string
	// ConsoleLog, when set, is a file that receives the raw serial console.
	// QEMU's own log goes beside it (ResetLog).
	ConsoleLog string
	// HostPort is the localhost port forwarded to guest port 443; 0 picks a
	// free one (retrying if it is taken meanwhile).
	HostPort int
	// Logf, when set, receives the harness's own messages (e.g. t.Logf).
	Logf func(format string, args ...any)
}

// Firmware choices (Options.Firmware).
const (
	FirmwareBIOS = "bios"
	FirmwareUEFI = "uefi"
)

// OVMF's code (read-only) and the template of its variable store, from
// Debian's ovmf package.
var (
	OVMFCode         = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVarsTemplate = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Disk is a disk image attached to the guest.
type Disk struct {
	Path   string
	Format string // "raw" (default) or "qcow2"
	Serial string // optional; the guest sees it in /sys/block/vdX/serial
}

// FWCfgFile is one fw_cfg item: the guest sees File's content under Name
// (which must start with "opt/").
type FWCfgFile struct {
	Name, File string
}

// NewUEFIVars copies OVMF's variable store template into dir and returns
// the copy's path, for Options.UEFIVars.
func NewUEFIVars(dir string) (string, error) {
	b, err := os.ReadFile(OVMFVarsTemplate)
	if err != nil {
		return "", fmt.Errorf("qemutest: OVMF variable store: %w (install Debian's ovmf)", err)
	}
	p := filepath.Join(dir, "OVMF_VARS.fd")
	return p, os.WriteFile(p, b, 0o644)
}

// QEMUBinary is the QEMU executable Start runs: $PLINTH_QEMU if set, else
// the test rig's QEMU where scripts/deps.sh unpacked it (RigQEMU), else the
// system's.
var QEMUBinary = rigQEMU()

// RigQEMU is where scripts/deps.sh puts the test rig's QEMU (11.1, from
// trixie-backports, newer than the system's), relative to the repository
// root. The appliance's VMs run nested on its TCG emulation of AMD's SVM
// when this host runs it under TCG: 7.2 froze the appliance every few
// nested guest starts; 10.0 raced other threads on the vCPU's
// pending-interrupt bits at every VMRUN and #VMEXIT and lost the appliance
// (a triple fault, a panic on a corrupted stack) in about one nested-guest
// test of four (scripts/deps.sh says more).
const RigQEMU = "build/cache/rig-qemu/qemu-system-x86_64"

func rigQEMU() string {
	if q := os.Getenv("PLINTH_QEMU"); q != "" {
		return q
	}
	if root, err := RepoRoot(); err == nil {
		if p := filepath.Join(root, RigQEMU); isExecutable(p) {
			return p
		}
	}
	return "qemu-system-x86_64"
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func (o Options) memoryMiB() int {
	if o.MemoryMiB <= 0 {
		return 512
	}
	return o.MemoryMiB
}

func (o Options) cpus() int {
	if o.CPUs <= 0 {
		return 1
	}
	return o.CPUs
}

// OVMFCodePath is OVMF's code image.
func (o Options) OVMFCodePath() string { return OVMFCode }

// NoSelfTests turns off the kernel's crypto self-tests (the crypto
// manager checks every algorithm against known answers as it registers it:
// about 1 s of a guest's boot under TCG: the floor printed its marker at
// 2.9 s of kernel time with this argument, 4.1 s without). Test guests
// boot with it; a server does not (ServerBoot).
const NoSelfTests = "cryptomgr.notests=1"

// KernelCmdline is the full kernel command line the guest gets.
// panic=-1 together with QEMU's -no-reboot turns a guest kernel panic into a
// QEMU exit instead of a hang.
func (o Options) KernelCmdline() string {
	s := "console=ttyS0 panic=-1"
	if !o.ServerBoot {
		s += " " + NoSelfTests
	}
	if o.Accel != api.AccelKVM && !o.TCGAsIs {
		// Under TCG the appliance's own KVM is nested on QEMU's emulated
		// SVM, and with KSM merging the inner guests' pages the appliance's
		// memory gets corrupted (seen as "corrupted stack end detected inside
		// scheduler" panics, a guest re-sending after a triple fault, the
		// appliance gone): with aggressive KSM one boot in two, with the
		// default scan rate one in about eight; with KSM off none in the
		// same runs (README, "The two commands").
		s += " plinth.ksm=off"
		// The first memory cgroup (vmkernel's) turns on the kernel's
		// memcg_kmem static key; patching its call sites while the other
		// vCPU runs through one of them stalls QEMU 7.2's TCG for good
		// (soft lockup at kmem_cache_alloc+0x5d): 9 of 40 boots of the
		// floor guest doing only that (qemu-test/cmd/plinth-stallrepro),
		// 0 of 25 with kernel memory accounting off, which leaves that key
		// alone (the 10.0 rig: 0 of 40 without it; kept for a rig that falls
		// back to 7.2). VMs' memory limits still hold; the appliance's
		// kernel allocations are not charged to them.
		s += " cgroup.memory=nokmem"
	}
	if c := strings.TrimSpace(o.Cmdline); c != "" {
		s += " " + c
	}
	return s
}

// ResetLog is where QEMU logs each CPU reset with the CPU's state, and
// says "Triple fault" when a fault caused it, and the guest's errors QEMU
// notices: beside ConsoleLog, "" without one. With -no-reboot a guest that
// resets ends QEMU with status 0 and says nothing on its console; this log
// says what happened.
func (o Options) ResetLog() string {
	if o.ConsoleLog == "" {
		return ""
	}
	return strings.TrimSuffix(o.ConsoleLog, ".console.log") + ".qemu.log"
}

// Args returns QEMU's arguments (without the binary) for a guest whose port
// 443 is forwarded to 127.0.0.1:hostPort and whose QMP server listens on the
// unix socket qmpSock. It has no side effects.
func (o Options) Args(hostPort int, qmpSock string) []string {
	args := []string{"-machine", "q35"}
	if o.IOMMU {
		args = []string{"-machine", "q35,kernel-irqchip=split", "-device", "intel-iommu,intremap=on,caching-mode=on"}
	}
	if o.Accel == api.AccelKVM {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		// -cpu max gives the guest RDRAND (entropy) and svm (nested KVM).
		args = append(args, "-accel", "tcg", "-cpu", "max")
	}
	args = append(args,
		"-m", strconv.Itoa(o.memoryMiB()),
		"-smp", strconv.Itoa(o.cpus()),
		"-display", "none",
		"-monitor", "none",
		"-serial", "stdio",
	)
	if !o.AllowReboot {
		args = append(args, "-no-reboot")
	}
	if l := o.ResetLog(); l != "" {
		args = append(args, "-d", "cpu_reset,guest_errors", "-D", l)
	}
	if o.Firmware == FirmwareUEFI {
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+o.OVMFCodePath(),
			"-drive", "if=pflash,format=raw,unit=1,file="+o.UEFIVars)
	}
	if o.Kernel != "" {
		args = append(args, "-kernel", o.Kernel)
		if o.Initrd != "" {
			args = append(args, "-initrd", o.Initrd)
		}
		args = append(args, "-append", o.KernelCmdline())
	}
	boot := 0
	if o.CDROM != "" && o.BootCDROM {
		boot = 1
	}
	for i, d := range o.Disks {
		f := d.Format
		if f == "" {
			f = "raw"
		}
		dev := fmt.Sprintf("virtio-blk-pci,drive=disk%d,bootindex=%d", i, boot+i)
		if d.Serial != "" {
			dev += ",serial=" + d.Serial
		}
		args = append(args,
			"-drive", fmt.Sprintf("if=none,id=disk%d,format=%s,file=%s", i, f, d.Path),
			"-device", dev)
	}
	if o.CDROM != "" {
		idx := len(o.Disks)
		if o.BootCDROM {
			idx = 0
		}
		args = append(args,
			"-drive", "if=none,id=cd0,media=cdrom,readonly=on,file="+o.CDROM,
			"-device", fmt.Sprintf("ide-cd,drive=cd0,bus=ide.0,bootindex=%d", idx))
	}
	for _, f := range o.FWCfg {
		args = append(args, "-fw_cfg", "name="+f.Name+",file="+f.File)
	}
	args = append(args,
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d", hostPort, GuestAPIPort),
		"-device", "virtio-net-pci,netdev=n0",
		"-device", "virtio-rng-pci",
		"-qmp", "unix:"+qmpSock+",server=on,wait=off",
	)
	return append(args, o.ExtraArgs...)
}
