package board

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// Read gathers the inventory under root. Whatever cannot be read is named in
// the result's Gaps; the error is reserved for a root that is not there at all.
func Read(root Root) (api.Hardware, error) {
	r := &reader{root: root}
	return r.inventory()
}

func (r *reader) inventory() (api.Hardware, error) {
	if _, err := os.Stat(r.root.Sys); err != nil {
		return api.Hardware{}, fmt.Errorf("read inventory: sysfs root %s: %w", r.root.Sys, err)
	}
	hw := api.Hardware{
		System:  r.system(),
		CPU:     r.cpu(),
		Memory:  r.memory(),
		PCI:     r.pci(),
		USB:     r.usb(),
		NICs:    r.nics(),
		Disks:   r.disks(),
		Sensors: r.sensors(),
		Modules: r.modules(),
	}
	r.hostUse(&hw)
	hw.Gaps = r.gaps
	if hw.Gaps == nil {
		hw.Gaps = []string{}
	}
	return hw, nil
}

// secureBootVar is in the EFI global variable GUID; SecureBoot's data is its 5th
// byte, after the 4 bytes of attributes efivarfs puts first.
const secureBootVar = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0d0c7e2eb82"

func (r *reader) system() api.HostSystem {
	const dmi = "/sys/class/dmi/id/"
	var s api.HostSystem
	if !r.exists("/sys/class/dmi/id") {
		r.gap("system", "/sys/class/dmi/id", "no such file (no SMBIOS tables)")
	} else {
		for _, f := range []struct {
			name string
			dst  *string
		}{
			{"sys_vendor", &s.Vendor}, {"product_name", &s.Product},
			{"product_serial", &s.Serial}, {"product_uuid", &s.UUID},
			{"bios_vendor", &s.BIOSVendor}, {"bios_version", &s.BIOSVersion},
			{"bios_date", &s.BIOSDate},
		} {
			*f.dst, _ = r.read("system", dmi+f.name)
		}
	}
	s.BootMode = api.BootBIOS
	if r.exists("/sys/firmware/efi") {
		s.BootMode = api.BootUEFI
		r.touch(secureBootVar)
		b, err := os.ReadFile(r.path(secureBootVar))
		switch {
		case err != nil:
			r.gap("system", secureBootVar, err)
		case len(b) < 5:
			r.gap("system", secureBootVar, fmt.Sprintf("%d bytes, want 5", len(b)))
		default:
			on := b[4] == 1
			s.SecureBoot = &on
		}
	}
	return s
}

func (r *reader) cpu() api.HostCPU {
	var c api.HostCPU
	text, ok := r.read("cpu", "/proc/cpuinfo")
	if ok {
		r.parseCPUInfo(text, &c)
	}
	for _, m := range []string{"kvm_intel", "kvm_amd", "kvm_pvm"} {
		if r.exists("/sys/module/" + m) {
			c.KVMModule = m
			n := r.optional("/sys/module/" + m + "/parameters/nested")
			c.Nested = n == "Y" || n == "1"
			break
		}
	}
	return c
}

// parseCPUInfo fills the model, topology and flags from /proc/cpuinfo.
func (r *reader) parseCPUInfo(text string, c *api.HostCPU) {
	ci := ParseCPUInfo(text)
	c.Model, c.Threads, c.Sockets, c.Cores = ci.Model, ci.Threads, ci.Sockets, ci.Cores
	if c.Threads == 0 {
		r.gap("cpu", "/proc/cpuinfo", "no processors listed")
		return
	}
	if c.Model == "" {
		r.gap("cpu", "/proc/cpuinfo", `no "model name" line`)
	}
	c.Virtualization = ci.Virtualization()
	for _, f := range ci.Flags {
		switch f {
		case "ept":
			c.SecondLevelPaging = "ept"
		case "npt":
			c.SecondLevelPaging = "npt"
		}
	}
}

// meminfoKB reads "Key: N kB" (optionally prefixed, as in "Node 0 MemTotal:")
// from a meminfo text.
func meminfoKB(text, key string) (uint64, bool) {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !(k == key || strings.HasSuffix(k, " "+key)) {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		return n, true
	}
	return 0, false
}

var nodeRE = regexp.MustCompile(`^node([0-9]+)$`)
var hugeRE = regexp.MustCompile(`^hugepages-([0-9]+)kB$`)

func (r *reader) memory() api.HostMemory {
	m := api.HostMemory{NUMANodes: []api.NUMANode{}, HugePages: []api.HugePages{}}
	if text, ok := r.read("memory", "/proc/meminfo"); ok {
		if n, ok := meminfoKB(text, "MemTotal"); ok {
			m.TotalBytes = n
		} else {
			r.gap("memory", "/proc/meminfo", "no MemTotal line")
		}
	}
	for _, name := range r.list("memory", "/sys/devices/system/node", false) {
		sm := nodeRE.FindStringSubmatch(name)
		if sm == nil {
			continue
		}
		id, _ := strconv.Atoi(sm[1])
		n := api.NUMANode{ID: id}
		dir := "/sys/devices/system/node/" + name
		if text, ok := r.read("memory", dir+"/meminfo"); ok {
			if v, ok := meminfoKB(text, "MemTotal"); ok {
				n.TotalBytes = v
			} else {
				r.gap("memory", dir+"/meminfo", "no MemTotal line")
			}
		}
		n.CPUs = r.optional(dir + "/cpulist")
		m.NUMANodes = append(m.NUMANodes, n)
	}
	sort.Slice(m.NUMANodes, func(i, j int) bool { return m.NUMANodes[i].ID < m.NUMANodes[j].ID })
	for _, name := range r.list("memory", "/sys/kernel/mm/hugepages", false) {
		sm := hugeRE.FindStringSubmatch(name)
		if sm == nil {
			continue
		}
		kb, _ := strconv.ParseUint(sm[1], 10, 64)
		dir := "/sys/kernel/mm/hugepages/" + name
		h := api.HugePages{SizeBytes: kb * 1024}
		h.Total = r.intAttr("memory", dir+"/nr_hugepages")
		h.Free = r.intAttr("memory", dir+"/free_hugepages")
		m.HugePages = append(m.HugePages, h)
	}
	sort.Slice(m.HugePages, func(i, j int) bool { return m.HugePages[i].SizeBytes < m.HugePages[j].SizeBytes })
	return m
}

// intAttr reads a decimal attribute, 0 with a gap when it is missing or malformed.
func (r *reader) intAttr(area, logical string) int {
	s, ok := r.read(area, logical)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		r.gap(area, logical, fmt.Sprintf("not a number: %q", s))
		return 0
	}
	return n
}

// modules lists the loadable modules loaded: a directory of /sys/module
// with an initstate of "live" (built-in ones have no initstate). A tree
// without /sys/module (an old fixture) has none, and that is no gap.
func (r *reader) modules() []string {
	out := []string{}
	for _, name := range r.list("modules", "/sys/module", false) {
		if r.optional("/sys/module/"+name+"/initstate") == "live" {
			out = append(out, name)
		}
	}
	return out
}
