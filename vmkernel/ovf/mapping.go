package ovf

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// Import is what a descriptor maps to: a VM spec whose disks are still to
// be made (Disks[i] comes from DiskFiles[i]), and what could not be
// mapped, said in words.
type Import struct {
	Spec api.VMSpec
	// DiskFiles are the package members holding each disk of Spec, in order.
	DiskFiles []DiskFile
	// Notes list what was not mapped, or mapped to something else.
	Notes []string
}

// DiskFile is a disk's member of the package.
type DiskFile struct {
	Href          string
	CapacityBytes int64
	// Format is the descriptor's word for it (a URL such as VMware's
	// "...vmdk.html#streamOptimized").
	Format string
}

// Map maps the descriptor to a VM spec (name: the descriptor's unless
// name is set; switches: the host's switch names, a NIC on a network of
// that name goes on it, else on NAT).
func Map(e *Envelope, name string, switches []string) (*Import, error) {
	im := &Import{}
	s := &im.Spec
	note := func(format string, a ...any) { im.Notes = append(im.Notes, fmt.Sprintf(format, a...)) }

	s.Name = name
	if s.Name == "" {
		s.Name = sanitizeName(e.System.Name)
		if s.Name == "" {
			s.Name = sanitizeName(e.System.ID)
		}
		if s.Name != e.System.Name && e.System.Name != "" {
			note("name %q becomes %q", e.System.Name, s.Name)
		}
	}
	s.Firmware = api.FirmwareBIOS
	for _, c := range e.System.Hardware.Config {
		if c.Key == "firmware" && strings.EqualFold(c.Value, "efi") {
			s.Firmware = api.FirmwareUEFI
		}
		if c.Key == "uefi.secureBoot.enabled" && c.Value == "true" {
			note("UEFI Secure Boot was on: the VM gets UEFI without Secure Boot")
		}
	}
	s.Machine = api.MachineQ35
	s.Serial, s.VNC = true, true

	files := map[string]File{}
	for _, f := range e.References {
		files[f.ID] = f
	}
	disks := map[string]Disk{}
	for _, d := range e.Disks {
		disks[d.ID] = d
	}
	controllers := map[string]Item{}
	for _, it := range e.System.Hardware.Items {
		switch it.ResourceType {
		case rtIDE, rtSCSI, rtSATA:
			controllers[it.InstanceID] = it
		}
	}
	// Disks in controller order, then their address.
	var diskItems []Item
	switchSet := map[string]bool{}
	for _, sw := range switches {
		switchSet[sw] = true
	}
	cpus, cores := 0, 0
	for _, it := range e.System.Hardware.Items {
		switch it.ResourceType {
		case rtProcessor:
			n, err := strconv.Atoi(strings.TrimSpace(it.Quantity))
			if err != nil || n < 1 || n > api.MaxVCPUs {
				return nil, fmt.Errorf("ovf: %q virtual CPUs", it.Quantity)
			}
			cpus = n
			if c, err := strconv.Atoi(strings.TrimSpace(it.CoresPerSocket)); err == nil && c > 0 && n%c == 0 {
				cores = c
			}
		case rtMemory:
			n, err := strconv.ParseInt(strings.TrimSpace(it.Quantity), 10, 64)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("ovf: memory %q", it.Quantity)
			}
			shift, err := unitShift(it.Units)
			if err != nil {
				return nil, fmt.Errorf("ovf: memory: %w", err)
			}
			if shift < 20 || n > int64(api.MaxMemoryMiB)>>(shift-20) {
				return nil, fmt.Errorf("ovf: memory %s %s is out of range", it.Quantity, it.Units)
			}
			s.MemoryMiB = int(n << (shift - 20))
		case rtDisk:
			diskItems = append(diskItems, it)
		case rtNIC:
			nic := api.NIC{Model: api.NICE1000e}
			sub := strings.ToLower(it.ResourceSubType)
			switch {
			case strings.HasPrefix(sub, "e1000"), sub == "":
			case sub == "virtio" || sub == "virtio-net":
				nic.Model = api.NICVirtio
			default:
				note("NIC %q (%s) becomes an e1000e (every guest has its driver; virtio-net is faster once the guest has virtio drivers)", it.ElementName, it.ResourceSubType)
			}
			if switchSet[it.Connection] {
				nic.Switch = it.Connection
			} else {
				nic.NAT = true
				note("NIC %q was on network %q, which is no virtual switch here: it is on NAT", it.ElementName, it.Connection)
			}
			if len(s.NICs) == api.MaxNICs {
				note("NIC %q left out: at most %d NICs", it.ElementName, api.MaxNICs)
				continue
			}
			s.NICs = append(s.NICs, nic)
		case rtIDE, rtSCSI, rtSATA:
			if sub := strings.ToLower(it.ResourceSubType); it.ResourceType == rtSCSI && sub != "" && sub != "virtio-scsi" {
				note("SCSI controller %q (%s): its disks are on SATA (every guest has AHCI drivers)", it.ElementName, it.ResourceSubType)
			}
		default:
			what := resourceNames[it.ResourceType]
			if what == "" {
				what = "device of resource type " + strconv.Itoa(it.ResourceType)
			}
			note("%s %q not mapped", what, it.ElementName)
		}
	}
	if cpus == 0 {
		cpus = 1
		note("no CPU count: 1 vCPU")
	}
	s.CPU = api.CPU{Sockets: cpus, Cores: 1, Threads: 1}
	if cores > 0 {
		s.CPU = api.CPU{Sockets: cpus / cores, Cores: cores, Threads: 1}
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = api.DefaultMemMiB
		note("no memory size: %d MiB", api.DefaultMemMiB)
	}
	sort.SliceStable(diskItems, func(i, j int) bool {
		if diskItems[i].Parent != diskItems[j].Parent {
			return diskItems[i].Parent < diskItems[j].Parent
		}
		ai, _ := strconv.Atoi(diskItems[i].Address)
		aj, _ := strconv.Atoi(diskItems[j].Address)
		return ai < aj
	})
	for _, it := range diskItems {
		id, ok := strings.CutPrefix(it.HostResource, "ovf:/disk/")
		if !ok {
			id, ok = strings.CutPrefix(it.HostResource, "/disk/")
		}
		d, found := disks[id]
		if !ok || !found {
			note("disk %q (%s) not mapped: no such disk in the descriptor", it.ElementName, it.HostResource)
			continue
		}
		f, found := files[d.FileRef]
		if !found {
			note("disk %q not mapped: it has no file (an empty disk of %s %s)", it.ElementName, d.Capacity, d.CapacityUnits)
			continue
		}
		href, err := member(f.Href)
		if err != nil {
			return nil, fmt.Errorf("ovf: disk %q: %w", it.ElementName, err)
		}
		capacity, err := capacityBytes(d.Capacity, d.CapacityUnits)
		if err != nil {
			return nil, fmt.Errorf("ovf: disk %q: %w", it.ElementName, err)
		}
		bus := api.BusSATA
		if len(im.DiskFiles) >= api.MaxSATADevices-1 {
			bus = api.BusVirtioSCSI
			note("disk %q is on virtio-scsi: SATA has %d ports", it.ElementName, api.MaxSATADevices)
		}
		if c, ok := controllers[it.Parent]; ok && c.ResourceType != rtSCSI && c.ResourceType != rtIDE && c.ResourceType != rtSATA {
			note("disk %q: controller %q not known", it.ElementName, c.ElementName)
		}
		if len(im.DiskFiles) == api.MaxDisks {
			note("disk %q left out: at most %d disks", it.ElementName, api.MaxDisks)
			continue
		}
		s.Disks = append(s.Disks, api.Disk{Bus: bus, Format: api.FormatQcow2})
		im.DiskFiles = append(im.DiskFiles, DiskFile{Href: href, CapacityBytes: capacity, Format: d.Format})
	}
	if len(s.Disks) > 0 {
		s.BootOrder = []string{api.BootDisk}
	}
	return im, nil
}

// sanitizeName makes a VM name (letters, digits, '.', '_', '-') of a
// descriptor's name.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-':
			b.WriteRune(c)
		case c == ' ':
			b.WriteByte('-')
		}
		if b.Len() == api.MaxNameLen {
			break
		}
	}
	return strings.TrimLeft(b.String(), ".-")
}
