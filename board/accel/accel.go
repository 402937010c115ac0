// Package accel decides whether this host runs virtual machines with KVM or
// falls back to TCG (QEMU's emulator), and says why.
//
// Opening /dev/kvm is not enough to choose KVM: some machines (this project's
// build and CI hosts among them) have a /dev/kvm backed by kvm_pvm, which only
// runs specially patched guest kernels and hangs a stock one. So the decision
// looks at the loaded KVM module, the CPU's virtualization flag (vmx or svm),
// and KVM's own capability ioctls. The pure core is Decide; ReadInputs gathers
// its inputs from injectable roots so tests can use fixture trees, and Detect
// does both on the live host. The qemu-test harness uses this package too, to
// choose how to run QEMU on the build machine.
//
// On the appliance the KVM module may still be loading when vmkernel starts
// (the init does not hold the API back for it); a Decider keeps the decision
// pending until the load has ended, then makes it once.
package accel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
)

// KVM ioctls and capabilities (linux/kvm.h); x/sys/unix does not define them.
const (
	kvmGetAPIVersion  = 0xAE00 // _IO(KVMIO, 0x00)
	kvmCheckExtension = 0xAE03 // _IO(KVMIO, 0x03)
	kvmCapMaxVCPUs    = 66
	// KVMAPIVersion is the only KVM API version there has ever been a stable
	// release of; anything else is not a KVM we know how to drive.
	KVMAPIVersion = 12
)

// Module names that matter to the decision.
const (
	ModIntel = board.KVMIntel
	ModAMD   = board.KVMAMD
	ModPVM   = "kvm_pvm"
)

// Inputs is everything Decide looks at. ReadInputs fills it from the host.
type Inputs struct {
	// Modules are the loaded kernel module names (from /proc/modules, plus
	// /sys/module where /proc/modules is missing or incomplete).
	Modules []string
	// CPUFlags are the "flags" of the first processor in /proc/cpuinfo.
	CPUFlags []string
	// Nested maps a KVM module name to the content of its nested parameter
	// (/sys/module/<module>/parameters/nested), e.g. "Y", "1", "N", "0".
	Nested map[string]string
	// DevKVMOpened is true when /dev/kvm could be opened read-write.
	DevKVMOpened bool
	// DevKVMErr is why /dev/kvm could not be opened, when it could not.
	DevKVMErr error
	// APIVersion is KVM_GET_API_VERSION; APIVersionErr its failure.
	APIVersion    int
	APIVersionErr error
	// MaxVCPUs is KVM_CHECK_EXTENSION(KVM_CAP_MAX_VCPUS); MaxVCPUsErr its failure.
	MaxVCPUs    int
	MaxVCPUsErr error
}

// Detect decides the acceleration of the live host.
func Detect() api.Acceleration {
	return Decide(ReadInputs("/proc", "/sys", "/dev/kvm"))
}

// Decide is the pure decision. Rules, first match wins:
//   - kvm_pvm loaded: TCG, it cannot run stock guest kernels;
//   - /dev/kvm missing or not openable: TCG, naming the error;
//   - no vmx or svm CPU flag: TCG;
//   - neither kvm_intel nor kvm_amd loaded: TCG;
//   - a KVM ioctl failed or the API version is not 12: TCG;
//   - otherwise KVM.
func Decide(in Inputs) api.Acceleration {
	a := api.Acceleration{Mode: api.AccelTCG, APIVersion: in.APIVersion, MaxVCPUs: in.MaxVCPUs}
	a.CPUFlag = cpuFlag(in.CPUFlags)
	a.Module = kvmModule(in.Modules, a.CPUFlag)
	a.Nested = nestedOn(in.Nested[a.Module])

	switch {
	case a.Module == ModPVM:
		a.Reason = "tcg: /dev/kvm is kvm_pvm, which only runs specially patched guest kernels; a stock guest would hang"
	case !in.DevKVMOpened:
		err := in.DevKVMErr
		if err == nil {
			err = errors.New("not opened")
		}
		a.Reason = fmt.Sprintf("tcg: cannot use /dev/kvm: %v", err)
	case a.CPUFlag == "":
		a.Reason = "tcg: the CPU has no virtualization flag (vmx or svm)"
	case a.Module == "":
		a.Reason = fmt.Sprintf("tcg: neither %s nor %s is loaded", ModIntel, ModAMD)
	case in.APIVersionErr != nil:
		a.Reason = fmt.Sprintf("tcg: KVM_GET_API_VERSION failed: %v", in.APIVersionErr)
	case in.APIVersion != KVMAPIVersion:
		a.Reason = fmt.Sprintf("tcg: KVM API version %d, want %d", in.APIVersion, KVMAPIVersion)
	case in.MaxVCPUsErr != nil:
		a.Reason = fmt.Sprintf("tcg: KVM_CHECK_EXTENSION(KVM_CAP_MAX_VCPUS) failed: %v", in.MaxVCPUsErr)
	default:
		a.Mode = api.AccelKVM
		nested := "off"
		if a.Nested {
			nested = "on"
		}
		a.Reason = fmt.Sprintf("kvm: %s, API %d, %d max vCPUs, nested %s", a.Module, a.APIVersion, a.MaxVCPUs, nested)
	}
	return a
}

// cpuFlag returns "vmx" or "svm" when the CPU has one, else "".
func cpuFlag(flags []string) string {
	for _, f := range flags {
		if f == "vmx" || f == "svm" {
			return f
		}
	}
	return ""
}

// kvmModule picks the module that backs /dev/kvm: kvm_pvm wins (it is the one
// that breaks stock guests), then the module matching the CPU flag, then any.
func kvmModule(mods []string, flag string) string {
	has := func(m string) bool { return slices.Contains(mods, m) }
	switch {
	case has(ModPVM):
		return ModPVM
	case flag == "vmx" && has(ModIntel):
		return ModIntel
	case flag == "svm" && has(ModAMD):
		return ModAMD
	case has(ModIntel):
		return ModIntel
	case has(ModAMD):
		return ModAMD
	}
	return ""
}

func nestedOn(s string) bool {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "Y", "1":
		return true
	}
	return false
}

// ReadInputs gathers Decide's inputs from procRoot (normally "/proc"), sysRoot
// (normally "/sys") and the KVM device devKVM (normally "/dev/kvm"). Files that
// are missing leave their fields empty; that is itself information.
func ReadInputs(procRoot, sysRoot, devKVM string) Inputs {
	var in Inputs
	if f, err := os.Open(filepath.Join(procRoot, "modules")); err == nil {
		in.Modules, _ = ParseModules(f)
		f.Close()
	}
	// Containers and some kernels have no /proc/modules; /sys/module lists
	// loaded modules (and built-ins with parameters) as directories.
	if ents, err := os.ReadDir(filepath.Join(sysRoot, "module")); err == nil {
		for _, e := range ents {
			if e.IsDir() && !slices.Contains(in.Modules, e.Name()) {
				in.Modules = append(in.Modules, e.Name())
			}
		}
	}
	if ci, err := board.ReadCPUInfo(procRoot); err == nil {
		in.CPUFlags = ci.Flags
	}
	for _, m := range []string{ModIntel, ModAMD} {
		b, err := os.ReadFile(filepath.Join(sysRoot, "module", m, "parameters", "nested"))
		if err == nil {
			if in.Nested == nil {
				in.Nested = map[string]string{}
			}
			in.Nested[m] = strings.TrimSpace(string(b))
		}
	}

	fd, err := unix.Open(devKVM, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		in.DevKVMErr = &os.PathError{Op: "open", Path: devKVM, Err: err}
		return in
	}
	defer unix.Close(fd)
	in.DevKVMOpened = true
	in.APIVersion, in.APIVersionErr = unix.IoctlRetInt(fd, kvmGetAPIVersion)
	// KVM_CHECK_EXTENSION takes the capability as its argument, which
	// IoctlRetInt cannot pass.
	n, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), kvmCheckExtension, kvmCapMaxVCPUs)
	if errno != 0 {
		in.MaxVCPUs, in.MaxVCPUsErr = 0, errno
	} else {
		in.MaxVCPUs, in.MaxVCPUsErr = int(n), nil
	}
	return in
}

// ParseModules returns the module names in /proc/modules text (the first
// field of each line).
func ParseModules(r io.Reader) ([]string, error) {
	var mods []string
	s := bufio.NewScanner(r)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) > 0 {
			mods = append(mods, f[0])
		}
	}
	if err := s.Err(); err != nil {
		return mods, fmt.Errorf("reading modules: %w", err)
	}
	return mods, nil
}
