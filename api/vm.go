package api

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"path"
	"strings"
)

// Firmware kinds.
const (
	FirmwareBIOS = "bios"
	FirmwareUEFI = "uefi"
	// FirmwareUEFISecure is OVMF with Secure Boot on and Microsoft's keys
	// enrolled (what a Windows 11 installer wants; shim-signed Linux boots).
	FirmwareUEFISecure = "uefi-secure"
)

// Machine types.
const (
	MachineQ35     = "q35"
	MachinePC      = "pc"
	MachineMicroVM = "microvm"
)

// Boot devices, in VMSpec.BootOrder.
const (
	BootDisk    = "disk"
	BootCDROM   = "cdrom"
	BootNetwork = "network"
)

// Disk buses.
const (
	BusVirtioBlk  = "virtio-blk"
	BusVirtioSCSI = "virtio-scsi"
	BusSATA       = "sata"
)

// Disk formats.
const (
	FormatQcow2 = "qcow2"
	FormatRaw   = "raw"
)

// Disk cache modes (QEMU's names).
const (
	CacheNone         = "none"
	CacheWriteback    = "writeback"
	CacheWritethrough = "writethrough"
	CacheUnsafe       = "unsafe"
	CacheDirectsync   = "directsync"
)

// NIC models.
const (
	NICVirtio = "virtio-net"
	NICE1000e = "e1000e"
)

// Crash policies.
const (
	OnCrashRestart     = "restart"
	OnCrashStayStopped = "stay-stopped"
)

// Bounds of a VM spec.
const (
	MaxVCPUs       = 256
	MinMemoryMiB   = 16
	MaxMemoryMiB   = 4 << 20 // 4 TiB
	MaxNameLen     = 63
	MaxPathLen     = 1024
	MaxCmdlineLen  = 4096
	MaxDisks       = 32
	MaxNICs        = 16
	MaxSATADevices = 6 // ports of one AHCI controller, the CD-ROM included
	DefaultMemMiB  = 512
)

// VMSpec is the definition of a virtual machine: what the inventory stores and
// what the QEMU command line is generated from. Call Defaults, then Validate.
type VMSpec struct {
	// ID is a UUID, assigned by vmkernel when the VM is created.
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	CPU  CPU    `json:"cpu"`
	// MemoryMiB is the guest RAM in MiB.
	MemoryMiB int `json:"memory_mib"`
	// Firmware is "bios" (default), "uefi" (with a per-VM NVRAM vars file)
	// or "uefi-secure" (the same with Secure Boot on, Microsoft's keys
	// enrolled); UEFI needs the q35 machine.
	Firmware string `json:"firmware,omitempty"`
	// Machine is "q35" (default), "pc" or "microvm".
	Machine string `json:"machine,omitempty"`
	// BootOrder lists "disk", "cdrom" and "network", first tried first.
	BootOrder []string    `json:"boot_order,omitempty"`
	Disks     []Disk      `json:"disks,omitempty"`
	CDROM     *CDROM      `json:"cdrom,omitempty"`
	NICs      []NIC       `json:"nics,omitempty"`
	Serial    bool        `json:"serial"`
	VNC       bool        `json:"vnc"`
	Kernel    *DirectBoot `json:"kernel,omitempty"`
	Autostart Autostart   `json:"autostart"`
	// OnCrash is what happens when QEMU dies without being asked to:
	// "restart" or "stay-stopped" (default).
	OnCrash string `json:"on_crash,omitempty"`
	// Resources are the VM's CPU share and limits, enforced with cgroup v2
	// where the host has it.
	Resources Resources `json:"resources"`
	// CloudInit, when set, is given to the guest at every start as a NoCloud
	// seed (see CloudInit).
	CloudInit *CloudInit `json:"cloud_init,omitempty"`

	// TPM gives the VM a TPM 2.0: a software TPM (swtpm) that vmkernel
	// runs as the VM's user, its state kept in the VM's state directory.
	TPM bool `json:"tpm,omitempty"`
	// Balloon adds a virtio balloon whose target can be changed while the
	// VM runs (nil: none).
	Balloon *Balloon `json:"balloon,omitempty"`
	// HugePages backs the guest's RAM with 2 MiB huge pages (the host's
	// pool is grown for it at start, and shrunk after).
	HugePages bool `json:"huge_pages,omitempty"`
	// PCIDevices are host PCI functions given to the VM (VFIO) while it runs.
	PCIDevices []PCIPassthrough `json:"pci_devices,omitempty"`
	// USBDevices are host USB devices given to the VM when it starts, those
	// present then; more can be attached while it runs.
	USBDevices []USBPassthrough `json:"usb_devices,omitempty"`
	// Template marks a template: it never starts, its disks never change,
	// and VMs are deployed from it (linked clones rest on its disks).
	Template bool `json:"template,omitempty"`
	// Backup is where the VM's backups go, how many are kept and when
	// they are taken; nil: backups only when asked, to a named datastore.
	Backup *BackupPolicy `json:"backup,omitempty"`
}

// Resources are a VM's share of the host and its caps; zero means the
// default (weight 100, no CPU cap, no memory cap beyond the guest's RAM).
type Resources struct {
	// CPUWeight is the VM's share when CPUs are contended, 1-10000
	// (default 100): a VM of weight 200 gets twice the CPU of one of 100.
	CPUWeight int `json:"cpu_weight,omitempty"`
	// CPULimitPercent caps the VM at this percentage of one host CPU
	// (250 = two and a half CPUs); 0 is no cap.
	CPULimitPercent int `json:"cpu_limit_percent,omitempty"`
	// MemoryLimitMiB caps the memory of the VM's QEMU process (guest RAM
	// plus QEMU's own); 0 is no cap. It must leave room for the guest RAM.
	MemoryLimitMiB int `json:"memory_limit_mib,omitempty"`
}

// Files lists every datastore file the VM refers to: its disks, its CD-ROM
// image and its direct-boot kernel and initrd.
func (s VMSpec) Files() []DatastoreFile {
	var files []DatastoreFile
	for _, d := range s.Disks {
		files = append(files, DatastoreFile{Datastore: d.Datastore, Path: d.Path})
	}
	if cd := s.CDROM; cd != nil {
		files = append(files, DatastoreFile{Datastore: cd.Datastore, Path: cd.Path})
	}
	if k := s.Kernel; k != nil {
		files = append(files, DatastoreFile{Datastore: k.Datastore, Path: k.Kernel})
		if k.Initrd != "" {
			files = append(files, DatastoreFile{Datastore: k.Datastore, Path: k.Initrd})
		}
	}
	return files
}

// CPU is the virtual CPU topology; the vCPU count is their product.
type CPU struct {
	Sockets int `json:"sockets"`
	Cores   int `json:"cores"`
	Threads int `json:"threads"`
	// Model is the CPU the guest sees: "" (host on KVM, max under TCG),
	// "host" (KVM only), or one of QEMU's named models (CPUModels).
	Model string `json:"model,omitempty"`
	// Pin, when set, runs vCPU i on host CPU Pin[i] only (one per vCPU).
	Pin []int `json:"pin,omitempty"`
	// NUMANode, when set, keeps the VM's threads on that host NUMA node's
	// CPUs and its memory on that node.
	NUMANode *int `json:"numa_node,omitempty"`
}

// VCPUs is the number of virtual CPUs.
func (c CPU) VCPUs() int { return c.Sockets * c.Cores * c.Threads }

// Disk is a disk image file on a datastore.
type Disk struct {
	// Bus is "virtio-blk" (default), "virtio-scsi" or "sata".
	Bus       string `json:"bus,omitempty"`
	Datastore string `json:"datastore"`
	// Path is relative to the datastore's root.
	Path string `json:"path"`
	// Format is "qcow2" (default) or "raw".
	Format   string `json:"format,omitempty"`
	ReadOnly bool   `json:"read_only"`
	// Cache is QEMU's cache mode: "none", "writeback" (default),
	// "writethrough", "unsafe" or "directsync".
	Cache string `json:"cache,omitempty"`
}

// CDROM is an ISO file on a datastore, attached read-only on SATA.
type CDROM struct {
	Datastore string `json:"datastore"`
	Path      string `json:"path"`
}

// NIC is a virtual network card, on a virtual switch or on user-mode NAT.
type NIC struct {
	// Model is "virtio-net" (default) or "e1000e".
	Model string `json:"model,omitempty"`
	// MAC is generated (02:xx:xx:xx:xx:xx, locally administered) when empty.
	MAC string `json:"mac,omitempty"`
	// Switch names the virtual switch; exactly one of Switch and NAT is set.
	Switch string `json:"switch,omitempty"`
	NAT    bool   `json:"nat,omitempty"`
}

// DirectBoot boots a Linux kernel (and initrd) from a datastore without firmware boot.
type DirectBoot struct {
	Datastore string `json:"datastore"`
	Kernel    string `json:"kernel"`
	Initrd    string `json:"initrd,omitempty"`
	Cmdline   string `json:"cmdline,omitempty"`
}

// Autostart says whether and when a VM starts with the host.
type Autostart struct {
	Enabled bool `json:"enabled"`
	// Order sorts autostarted VMs, lowest first.
	Order int `json:"order"`
	// DelaySeconds is waited after starting this VM before the next one.
	DelaySeconds int `json:"delay_seconds"`
}

// FieldProblem is one thing wrong with one field of a request.
type FieldProblem struct {
	// Field is a JSON path, e.g. "disks[1].path".
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in a request.
type ValidationError struct {
	Problems []FieldProblem `json:"problems"`
	// Subject is what was invalid ("VM spec" when empty).
	Subject string `json:"-"`
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	subject := e.Subject
	if subject == "" {
		subject = "VM spec"
	}
	b.WriteString("invalid " + subject + ": ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Field)
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	return b.String()
}

// Clone returns a deep copy of s.
func (s VMSpec) Clone() VMSpec {
	c := s
	c.BootOrder = append([]string(nil), s.BootOrder...)
	c.Disks = append([]Disk(nil), s.Disks...)
	c.NICs = append([]NIC(nil), s.NICs...)
	if s.CDROM != nil {
		cd := *s.CDROM
		c.CDROM = &cd
	}
	if s.Kernel != nil {
		k := *s.Kernel
		c.Kernel = &k
	}
	c.CloudInit = s.CloudInit.Clone()
	c.CPU.Pin = append([]int(nil), s.CPU.Pin...)
	if s.CPU.NUMANode != nil {
		n := *s.CPU.NUMANode
		c.CPU.NUMANode = &n
	}
	if s.Balloon != nil {
		b := *s.Balloon
		c.Balloon = &b
	}
	c.PCIDevices = append([]PCIPassthrough(nil), s.PCIDevices...)
	c.USBDevices = append([]USBPassthrough(nil), s.USBDevices...)
	if s.Backup != nil {
		b := *s.Backup
		c.Backup = &b
	}
	return c
}

// Defaults fills every empty field that has a default. It is idempotent. MACs
// left empty are derived from the ID and the NIC's index when the ID is set
// (so the same VM always gets the same MACs), else drawn at random.
func (s *VMSpec) Defaults() {
	if s.CPU.Sockets == 0 {
		s.CPU.Sockets = 1
	}
	if s.CPU.Cores == 0 {
		s.CPU.Cores = 1
	}
	if s.CPU.Threads == 0 {
		s.CPU.Threads = 1
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = DefaultMemMiB
	}
	if s.Firmware == "" {
		s.Firmware = FirmwareBIOS
	}
	if s.Machine == "" {
		s.Machine = MachineQ35
	}
	if s.OnCrash == "" {
		s.OnCrash = OnCrashStayStopped
	}
	for i := range s.Disks {
		d := &s.Disks[i]
		if d.Bus == "" {
			d.Bus = BusVirtioBlk
		}
		if d.Format == "" {
			d.Format = FormatQcow2
		}
		if d.Cache == "" {
			d.Cache = CacheWriteback
		}
	}
	for i := range s.NICs {
		n := &s.NICs[i]
		if n.Model == "" {
			n.Model = NICVirtio
		}
		if n.MAC == "" {
			n.MAC = GenerateMAC(s.ID, i)
		}
	}
	if len(s.BootOrder) == 0 {
		if len(s.Disks) > 0 {
			s.BootOrder = append(s.BootOrder, BootDisk)
		}
		if s.CDROM != nil {
			s.BootOrder = append(s.BootOrder, BootCDROM)
		}
	}
}

// GenerateMAC returns a unicast, locally administered MAC (02:xx:xx:xx:xx:xx).
// With a seed (a VM's ID) it is stable: the same seed and index give the same
// MAC; with an empty seed it is random.
func GenerateMAC(seed string, index int) string {
	var b [5]byte
	if seed == "" {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
	} else {
		h := sha256.Sum256(fmt.Appendf(nil, "plinth-mac\x00%s\x00%d", seed, index))
		copy(b[:], h[:])
	}
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4])
}

// Validate checks a spec (after Defaults) and returns a *ValidationError
// naming every problem, or nil.
func (s VMSpec) Validate() error {
	var v validator
	if s.ID != "" && !IsUUID(s.ID) {
		v.add("id", "must be a UUID (8-4-4-4-12 hexadecimal digits)")
	}
	v.name("name", s.Name)

	for _, c := range []struct {
		field string
		n     int
	}{{"cpu.sockets", s.CPU.Sockets}, {"cpu.cores", s.CPU.Cores}, {"cpu.threads", s.CPU.Threads}} {
		if c.n < 1 || c.n > MaxVCPUs {
			v.add(c.field, fmt.Sprintf("must be between 1 and %d", MaxVCPUs))
		}
	}
	if s.CPU.Sockets >= 1 && s.CPU.Cores >= 1 && s.CPU.Threads >= 1 &&
		s.CPU.Sockets <= MaxVCPUs && s.CPU.Cores <= MaxVCPUs && s.CPU.Threads <= MaxVCPUs &&
		s.CPU.VCPUs() > MaxVCPUs {
		v.add("cpu", fmt.Sprintf("sockets*cores*threads is %d, more than %d vCPUs", s.CPU.VCPUs(), MaxVCPUs))
	}
	if s.MemoryMiB < MinMemoryMiB || s.MemoryMiB > MaxMemoryMiB {
		v.add("memory_mib", fmt.Sprintf("must be between %d and %d (4 TiB)", MinMemoryMiB, MaxMemoryMiB))
	}
	v.oneOf("firmware", s.Firmware, FirmwareBIOS, FirmwareUEFI, FirmwareUEFISecure)
	v.oneOf("machine", s.Machine, MachineQ35, MachinePC, MachineMicroVM)
	v.oneOf("on_crash", s.OnCrash, OnCrashRestart, OnCrashStayStopped)
	if w := s.Resources.CPUWeight; w != 0 && (w < 1 || w > 10000) {
		v.add("resources.cpu_weight", "must be between 1 and 10000 (0 for the default, 100)")
	}
	if l := s.Resources.CPULimitPercent; l < 0 || l > 100*MaxVCPUs {
		v.add("resources.cpu_limit_percent", fmt.Sprintf("must be between 0 (no cap) and %d", 100*MaxVCPUs))
	}
	if m := s.Resources.MemoryLimitMiB; m < 0 || m != 0 && m < s.MemoryMiB+64 {
		v.add("resources.memory_limit_mib", fmt.Sprintf("must be 0 (no cap) or at least the guest's memory plus 64 MiB for QEMU (%d)", s.MemoryMiB+64))
	}
	micro := s.Machine == MachineMicroVM
	if micro && (s.Firmware == FirmwareUEFI || s.Firmware == FirmwareUEFISecure) {
		v.add("firmware", "microvm has no UEFI firmware; use bios")
	}

	seen := map[string]bool{}
	for i, b := range s.BootOrder {
		f := fmt.Sprintf("boot_order[%d]", i)
		switch {
		case !v.oneOf(f, b, BootDisk, BootCDROM, BootNetwork):
		case seen[b]:
			v.add(f, fmt.Sprintf("%q is listed twice", b))
		case b == BootDisk && len(s.Disks) == 0:
			v.add(f, "the VM has no disk")
		case b == BootCDROM && s.CDROM == nil:
			v.add(f, "the VM has no CD-ROM")
		case b == BootNetwork && len(s.NICs) == 0:
			v.add(f, "the VM has no NIC")
		}
		seen[b] = true
	}

	if len(s.Disks) > MaxDisks {
		v.add("disks", fmt.Sprintf("at most %d disks", MaxDisks))
	}
	sata := 0
	for i, d := range s.Disks {
		f := fmt.Sprintf("disks[%d]", i)
		if v.oneOf(f+".bus", d.Bus, BusVirtioBlk, BusVirtioSCSI, BusSATA) {
			if micro && d.Bus != BusVirtioBlk {
				v.add(f+".bus", "microvm supports only virtio-blk")
			}
			if d.Bus == BusSATA {
				sata++
				if d.ReadOnly {
					v.add(f+".read_only", "a SATA disk cannot be read-only; use virtio-blk or virtio-scsi")
				}
			}
		}
		v.name(f+".datastore", d.Datastore)
		v.path(f+".path", d.Path)
		v.oneOf(f+".format", d.Format, FormatQcow2, FormatRaw)
		v.oneOf(f+".cache", d.Cache, CacheNone, CacheWriteback, CacheWritethrough, CacheUnsafe, CacheDirectsync)
	}
	if s.CDROM != nil {
		if micro {
			v.add("cdrom", "microvm has no CD-ROM")
		}
		sata++
		v.name("cdrom.datastore", s.CDROM.Datastore)
		v.path("cdrom.path", s.CDROM.Path)
	}
	if sata > MaxSATADevices {
		v.add("disks", fmt.Sprintf("%d SATA devices (CD-ROM included), at most %d", sata, MaxSATADevices))
	}

	if len(s.NICs) > MaxNICs {
		v.add("nics", fmt.Sprintf("at most %d NICs", MaxNICs))
	}
	macs := map[string]int{}
	for i, n := range s.NICs {
		f := fmt.Sprintf("nics[%d]", i)
		if v.oneOf(f+".model", n.Model, NICVirtio, NICE1000e) && micro && n.Model != NICVirtio {
			v.add(f+".model", "microvm supports only virtio-net")
		}
		if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 {
			v.add(f+".mac", "must be a MAC address like 02:00:00:00:00:01")
		} else if hw[0]&1 != 0 {
			v.add(f+".mac", "must be a unicast address (lowest bit of the first octet clear)")
		} else if j, dup := macs[hw.String()]; dup {
			v.add(f+".mac", fmt.Sprintf("same as nics[%d].mac", j))
		} else {
			macs[hw.String()] = i
		}
		switch {
		case n.NAT && n.Switch != "":
			v.add(f+".switch", "set either switch or nat, not both")
		case !n.NAT && n.Switch == "":
			v.add(f+".switch", "required unless nat is true")
		case n.Switch != "":
			v.name(f+".switch", n.Switch)
		}
	}

	if s.VNC && micro {
		v.add("vnc", "microvm has no display device")
	}
	if k := s.Kernel; k != nil {
		v.name("kernel.datastore", k.Datastore)
		v.path("kernel.kernel", k.Kernel)
		if k.Initrd != "" {
			v.path("kernel.initrd", k.Initrd)
		}
		if len(k.Cmdline) > MaxCmdlineLen {
			v.add("kernel.cmdline", fmt.Sprintf("longer than %d bytes", MaxCmdlineLen))
		}
		if strings.ContainsFunc(k.Cmdline, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			v.add("kernel.cmdline", "contains a control character (the command line is one line)")
		}
	} else if micro {
		v.add("kernel", "microvm needs direct kernel boot")
	}
	if s.CloudInit != nil {
		s.CloudInit.validate(&v, "cloud_init", len(s.NICs))
	}
	if s.Template && s.Autostart.Enabled {
		v.add("autostart.enabled", "a template never starts")
	}
	v.backupPolicy("backup", s.Backup)
	if s.Autostart.Order < 0 {
		v.add("autostart.order", "must not be negative")
	}
	if s.Autostart.DelaySeconds < 0 || s.Autostart.DelaySeconds > 3600 {
		v.add("autostart.delay_seconds", "must be between 0 and 3600")
	}
	s.validateHardware(&v)
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct{ problems []FieldProblem }

func (v *validator) add(field, msg string) {
	v.problems = append(v.problems, FieldProblem{Field: field, Message: msg})
}

// oneOf reports whether val is one of allowed, and records a problem if not.
func (v *validator) oneOf(field, val string, allowed ...string) bool {
	for _, a := range allowed {
		if val == a {
			return true
		}
	}
	if val == "" {
		v.add(field, "required; one of "+strings.Join(allowed, ", "))
	} else {
		v.add(field, fmt.Sprintf("%q is not one of %s", val, strings.Join(allowed, ", ")))
	}
	return false
}

func (v *validator) name(field, s string) {
	if err := CheckName(s); err != "" {
		v.add(field, err)
	}
}

func (v *validator) path(field, s string) {
	if err := CheckRelPath(s); err != "" {
		v.add(field, err)
	}
}

// CheckName returns what is wrong with a name (of a VM, datastore or
// switch), or "" if nothing: 1-63 characters of [A-Za-z0-9._-], not starting
// with '.' or '-'.
func CheckName(s string) string {
	if s == "" {
		return "required"
	}
	if len(s) > MaxNameLen {
		return fmt.Sprintf("longer than %d characters", MaxNameLen)
	}
	if s[0] == '.' || s[0] == '-' {
		return "must not start with '.' or '-'"
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("character %q not allowed; use letters, digits, '.', '_' and '-'", c)
		}
	}
	return ""
}

// CheckRelPath returns what is wrong with a path inside a datastore, or ""
// if nothing: relative, clean, without "..", control characters (NUL
// included) or a trailing slash.
func CheckRelPath(p string) string {
	switch {
	case p == "":
		return "required"
	case len(p) > MaxPathLen:
		return fmt.Sprintf("longer than %d bytes", MaxPathLen)
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "contains a control character"
	case strings.HasPrefix(p, "/"):
		return "must be relative to the datastore, not absolute"
	case p == "." || path.Clean(p) != p:
		return fmt.Sprintf("must be a clean path (e.g. %q)", path.Clean(p))
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "must not contain \"..\""
		}
	}
	return ""
}

// IsUUID reports whether s is a UUID in its canonical textual form (lower or upper case).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// NewUUID returns a random (version 4) UUID.
func NewUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
