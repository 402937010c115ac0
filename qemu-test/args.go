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
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// GuestAPIPort is the guest port the appliance's HTTPS API listens on.
const GuestAPIPort = 443

// Options says what to boot and how. The zero value of each field has a
// sensible default (see the field comments).
type Options struct {
	// Kernel is the bzImage to boot (required).
	Kernel string
	// Initrd is the initramfs; empty means none.
	Initrd string
	// Cmdline is appended to the harness's own "console=ttyS0 panic=-1".
	Cmdline string
	// MemoryMiB is the guest memory; 0 means 512.
	MemoryMiB int
	// CPUs is the number of vCPUs; 0 means 1.
	CPUs int
	// ExtraArgs are appended verbatim to QEMU's command line.
	ExtraArgs []string
	// Accel is api.AccelKVM or api.AccelTCG; "" lets Start choose with
	// accel.Detect (Args alone treats "" as TCG).
	Accel string
	// ConsoleLog, when set, is a file that receives the raw serial console.
	ConsoleLog string
	// HostPort is the localhost port forwarded to guest port 443; 0 picks a
	// free one (retrying if it is taken meanwhile).
	HostPort int
	// Logf, when set, receives the harness's own messages (e.g. t.Logf).
	Logf func(format string, args ...any)
}

// QEMUBinary is the QEMU executable Start runs.
var QEMUBinary = "qemu-system-x86_64"

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

// KernelCmdline is the full kernel command line the guest gets.
// panic=-1 together with QEMU's -no-reboot turns a guest kernel panic into a
// QEMU exit instead of a hang.
func (o Options) KernelCmdline() string {
	s := "console=ttyS0 panic=-1"
	if c := strings.TrimSpace(o.Cmdline); c != "" {
		s += " " + c
	}
	return s
}

// Args returns QEMU's arguments (without the binary) for a guest whose port
// 443 is forwarded to 127.0.0.1:hostPort and whose QMP server listens on the
// unix socket qmpSock. It has no side effects.
func (o Options) Args(hostPort int, qmpSock string) []string {
	args := []string{"-machine", "q35"}
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
		"-no-reboot",
		"-kernel", o.Kernel,
	)
	if o.Initrd != "" {
		args = append(args, "-initrd", o.Initrd)
	}
	args = append(args,
		"-append", o.KernelCmdline(),
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d", hostPort, GuestAPIPort),
		"-device", "virtio-net-pci,netdev=n0",
		"-device", "virtio-rng-pci",
		"-qmp", "unix:"+qmpSock+",server=on,wait=off",
	)
	return append(args, o.ExtraArgs...)
}
