package accel

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/plinth/plinth/api"
)

func TestDecide(t *testing.T) {
	good := func(mod, flag, nested string) Inputs {
		return Inputs{
			Modules:      []string{"kvm", mod, "virtio_net"},
			CPUFlags:     []string{"fpu", flag, "sse2"},
			Nested:       map[string]string{mod: nested},
			DevKVMOpened: true,
			APIVersion:   12,
			MaxVCPUs:     1024,
		}
	}
	with := func(in Inputs, f func(*Inputs)) Inputs { f(&in); return in }

	tests := []struct {
		name       string
		in         Inputs
		mode       string
		reason     string // substring
		wantModule string
	}{
		{"amd nested on", good(ModAMD, "svm", "1"), api.AccelKVM, "kvm: kvm_amd, API 12, 1024 max vCPUs, nested on", ModAMD},
		{"intel nested Y", good(ModIntel, "vmx", "Y"), api.AccelKVM, "kvm: kvm_intel, API 12, 1024 max vCPUs, nested on", ModIntel},
		{"intel nested off", good(ModIntel, "vmx", "N"), api.AccelKVM, "nested off", ModIntel},
		{"pvm loaded", with(good(ModAMD, "svm", "1"), func(in *Inputs) { in.Modules = append(in.Modules, ModPVM) }),
			api.AccelTCG, "kvm_pvm, which only runs specially patched guest kernels", ModPVM},
		{"pvm without cpu flag", Inputs{Modules: []string{"kvm", ModPVM}, DevKVMOpened: true, APIVersion: 12},
			api.AccelTCG, "kvm_pvm", ModPVM},
		{"no /dev/kvm", with(good(ModIntel, "vmx", "Y"), func(in *Inputs) {
			in.DevKVMOpened = false
			in.DevKVMErr = &os.PathError{Op: "open", Path: "/dev/kvm", Err: syscall.ENOENT}
		}), api.AccelTCG, "tcg: cannot use /dev/kvm: open /dev/kvm: no such file or directory", ModIntel},
		{"permission denied", with(good(ModIntel, "vmx", "Y"), func(in *Inputs) {
			in.DevKVMOpened = false
			in.DevKVMErr = &os.PathError{Op: "open", Path: "/dev/kvm", Err: syscall.EACCES}
		}), api.AccelTCG, "permission denied", ModIntel},
		{"not opened, no error", with(good(ModIntel, "vmx", "Y"), func(in *Inputs) { in.DevKVMOpened = false }),
			api.AccelTCG, "not opened", ModIntel},
		{"no cpu flag", with(good(ModIntel, "vmx", "Y"), func(in *Inputs) { in.CPUFlags = []string{"fpu", "sse2"} }),
			api.AccelTCG, "no virtualization flag", ModIntel},
		{"no vendor module", with(good(ModIntel, "vmx", "Y"), func(in *Inputs) { in.Modules = []string{"kvm"} }),
			api.AccelTCG, "neither kvm_intel nor kvm_amd", ""},
		{"api version ioctl fails", with(good(ModAMD, "svm", "1"), func(in *Inputs) { in.APIVersion, in.APIVersionErr = 0, syscall.ENOTTY }),
			api.AccelTCG, "KVM_GET_API_VERSION failed", ModAMD},
		{"wrong api version", with(good(ModAMD, "svm", "1"), func(in *Inputs) { in.APIVersion = 11 }),
			api.AccelTCG, "KVM API version 11, want 12", ModAMD},
		{"max vcpus ioctl fails", with(good(ModAMD, "svm", "1"), func(in *Inputs) { in.MaxVCPUsErr = syscall.EINVAL }),
			api.AccelTCG, "KVM_CAP_MAX_VCPUS", ModAMD},
		{"module matches flag", with(good(ModAMD, "svm", "1"), func(in *Inputs) { in.Modules = append(in.Modules, ModIntel) }),
			api.AccelKVM, "kvm: kvm_amd", ModAMD},
		{"empty", Inputs{}, api.AccelTCG, "tcg: cannot use /dev/kvm", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.in)
			if got.Mode != tt.mode || !strings.Contains(got.Reason, tt.reason) || got.Module != tt.wantModule {
				t.Errorf("Decide() = %+v\nwant mode %q, reason containing %q, module %q", got, tt.mode, tt.reason, tt.wantModule)
			}
			if !strings.HasPrefix(got.Reason, got.Mode+": ") {
				t.Errorf("reason %q does not start with the mode %q", got.Reason, got.Mode)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadInputsFixture(t *testing.T) {
	root := t.TempDir()
	proc, sys := filepath.Join(root, "proc"), filepath.Join(root, "sys")
	writeFile(t, filepath.Join(proc, "modules"),
		"kvm_amd 155648 0 - Live 0x0000000000000000\nkvm 1142784 1 kvm_amd, Live 0x0000000000000000\n")
	writeFile(t, filepath.Join(proc, "cpuinfo"),
		"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu vme svm sse2\n\nprocessor\t: 1\nflags\t\t: fpu\n")
	writeFile(t, filepath.Join(sys, "module", "kvm_amd", "parameters", "nested"), "1\n")
	writeFile(t, filepath.Join(sys, "module", "tun", "parameters", "x"), "")
	// A regular file stands in for /dev/kvm: it opens, but the ioctls fail.
	dev := filepath.Join(root, "kvm")
	writeFile(t, dev, "")

	in := ReadInputs(proc, sys, dev)
	if !slices.Equal(in.Modules, []string{"kvm_amd", "kvm", "tun"}) {
		t.Errorf("Modules = %q", in.Modules)
	}
	if !slices.Equal(in.CPUFlags, []string{"fpu", "vme", "svm", "sse2"}) {
		t.Errorf("CPUFlags = %q", in.CPUFlags)
	}
	if in.Nested[ModAMD] != "1" {
		t.Errorf("Nested = %v", in.Nested)
	}
	if !in.DevKVMOpened || in.APIVersionErr == nil {
		t.Errorf("DevKVMOpened=%v APIVersionErr=%v, want opened and an ioctl error", in.DevKVMOpened, in.APIVersionErr)
	}
	if a := Decide(in); a.Mode != api.AccelTCG || !strings.Contains(a.Reason, "KVM_GET_API_VERSION failed") || !a.Nested {
		t.Errorf("Decide = %+v", a)
	}

	in = ReadInputs(proc, sys, filepath.Join(root, "missing"))
	if in.DevKVMOpened || !errors.Is(in.DevKVMErr, os.ErrNotExist) {
		t.Errorf("missing device: opened=%v err=%v", in.DevKVMOpened, in.DevKVMErr)
	}
	if a := Decide(in); a.Mode != api.AccelTCG || !strings.Contains(a.Reason, "missing") {
		t.Errorf("Decide = %+v, want tcg naming the missing device", a)
	}
}

func TestReadInputsEmptyRoots(t *testing.T) {
	root := t.TempDir()
	in := ReadInputs(filepath.Join(root, "proc"), filepath.Join(root, "sys"), filepath.Join(root, "kvm"))
	if len(in.Modules) != 0 || len(in.CPUFlags) != 0 || in.DevKVMOpened {
		t.Errorf("ReadInputs on empty roots = %+v", in)
	}
}

// TestDetectLive checks the live host's decision against the live host's
// facts rather than a hard-coded answer: with kvm_pvm loaded (this project's
// build machines) it must be TCG; KVM only with kvm_intel/kvm_amd loaded.
func TestDetectLive(t *testing.T) {
	in := ReadInputs("/proc", "/sys", "/dev/kvm")
	a := Detect()
	t.Logf("modules with kvm: %q; decision: %+v", slices.DeleteFunc(slices.Clone(in.Modules), func(m string) bool {
		return !strings.HasPrefix(m, "kvm")
	}), a)
	if a.Mode != api.AccelKVM && a.Mode != api.AccelTCG {
		t.Fatalf("mode %q is neither kvm nor tcg", a.Mode)
	}
	if slices.Contains(in.Modules, ModPVM) {
		if a.Mode != api.AccelTCG || a.Module != ModPVM || !strings.Contains(a.Reason, "kvm_pvm") {
			t.Errorf("kvm_pvm is loaded but Detect() = %+v, want tcg naming kvm_pvm", a)
		}
	}
	if a.Mode == api.AccelKVM && !slices.Contains(in.Modules, ModIntel) && !slices.Contains(in.Modules, ModAMD) {
		t.Errorf("Detect() = kvm without kvm_intel or kvm_amd loaded: %+v", a)
	}
}
