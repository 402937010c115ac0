package board

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CPUInfo is what /proc/cpuinfo says about the processors. ParseCPUInfo is
// Plinth's one reader of that file: the inventory, the KVM decision
// (board/accel), the host facts and the init's choice of KVM module all go
// through it.
type CPUInfo struct {
	// Model is the first "model name"; "" when there is none (some virtual
	// and non-x86 CPUs).
	Model string
	// Flags are the first processor's "flags".
	Flags []string
	// Threads counts the processors listed; Sockets the distinct "physical
	// id"s and Cores the distinct (physical id, core id) pairs (x86; other
	// architectures lack them and count one socket of single-thread cores).
	Threads, Sockets, Cores int
}

// ParseCPUInfo parses /proc/cpuinfo text.
func ParseCPUInfo(text string) CPUInfo {
	var c CPUInfo
	sockets := map[string]bool{}
	cores := map[string]bool{}
	for _, block := range strings.Split(text, "\n\n") {
		if strings.TrimSpace(block) == "" {
			continue
		}
		c.Threads++
		phys, core := "", ""
		for _, line := range strings.Split(block, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch k {
			case "model name":
				if c.Model == "" {
					c.Model = v
				}
			case "physical id":
				phys = v
			case "core id":
				core = v
			case "flags":
				if c.Flags == nil {
					c.Flags = strings.Fields(v)
				}
			}
		}
		sockets[phys] = true
		if core == "" {
			core = strconv.Itoa(c.Threads)
		}
		cores[phys+"/"+core] = true
	}
	if c.Threads > 0 {
		c.Sockets, c.Cores = len(sockets), len(cores)
	}
	return c
}

// ReadCPUInfo reads and parses procRoot/cpuinfo (procRoot is normally /proc).
func ReadCPUInfo(procRoot string) (CPUInfo, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "cpuinfo"))
	if err != nil {
		return CPUInfo{}, fmt.Errorf("cpu facts: %w", err)
	}
	return ParseCPUInfo(string(b)), nil
}

// Virtualization is the CPU's hardware virtualization flag: "vmx" (Intel
// VT-x), "svm" (AMD-V) or "" for neither.
func (c CPUInfo) Virtualization() string {
	for _, f := range c.Flags {
		if f == "vmx" || f == "svm" {
			return f
		}
	}
	return ""
}

// KVM modules, by the CPU flag they need.
const (
	KVMIntel = "kvm_intel"
	KVMAMD   = "kvm_amd"
)

// KVMModule is the KVM module the CPU calls for: kvm_intel for vmx,
// kvm_amd for svm, "" for neither.
func (c CPUInfo) KVMModule() string {
	switch c.Virtualization() {
	case "vmx":
		return KVMIntel
	case "svm":
		return KVMAMD
	}
	return ""
}
