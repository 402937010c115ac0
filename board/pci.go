package board

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// PCIIDs is the PCI ID database (the pci.ids file that pciutils and the
// Debian package pci.ids ship): vendor, device and class names by hex ID.
type PCIIDs struct {
	// Vendors maps "8086" to "Intel Corporation".
	Vendors map[string]string
	// Devices maps "8086:10d3" to "82574L Gigabit Network Connection".
	Devices map[string]string
	// Classes maps "02" to "Network controller" and "0200" to "Ethernet controller".
	Classes map[string]string
}

// ParsePCIIDs reads a pci.ids file. Subsystem and programming-interface lines
// are skipped; so are lines it does not understand, as lspci does.
func ParsePCIIDs(rd io.Reader) (*PCIIDs, error) { return parsePCIIDs(rd, nil) }

// parsePCIIDs keeps only the vendors and the "vendor:device" pairs in want
// (everything when want is nil): the whole database is some 40,000 lines
// and the inventory needs a dozen, so a line that is not wanted costs no
// allocation.
func parsePCIIDs(rd io.Reader, want map[string]bool) (*PCIIDs, error) {
	ids := &PCIIDs{Vendors: map[string]string{}, Devices: map[string]string{}, Classes: map[string]string{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var vendor, class string // the section we are in; class != "" in the class part
	var key [9]byte          // "vvvv:dddd", built without allocating
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		tabs := 0
		for tabs < len(line) && line[tabs] == '\t' {
			tabs++
		}
		if tabs >= 2 || tabs == 1 && vendor == "" && class == "" {
			continue // subsystems, programming interfaces, skipped sections
		}
		body := line[tabs:]
		i := bytes.Index(body, []byte("  "))
		if i < 0 {
			continue
		}
		rawID := body[:i]
		if bytes.ContainsFunc(rawID, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
			rawID = bytes.ToLower(rawID) // "C 02" class lines; IDs are lower case
		}
		switch {
		case tabs == 0 && bytes.HasPrefix(rawID, []byte("c ")):
			class, vendor = string(rawID[2:]), ""
			ids.Classes[class] = string(bytes.TrimSpace(body[i+2:]))
		case tabs == 0 && isHexID(rawID, 4):
			vendor, class = "", ""
			if want == nil || want[string(rawID)] {
				vendor = string(rawID)
				ids.Vendors[vendor] = string(bytes.TrimSpace(body[i+2:]))
			}
		case tabs == 0:
			vendor, class = "", "" // another section (device types, languages...)
		case vendor != "" && isHexID(rawID, 4):
			copy(key[:], vendor)
			key[4] = ':'
			copy(key[5:], rawID)
			if want == nil || want[string(key[:])] {
				ids.Devices[string(key[:])] = string(bytes.TrimSpace(body[i+2:]))
			}
		case class != "" && isHexID(rawID, 2):
			ids.Classes[class+string(rawID)] = string(bytes.TrimSpace(body[i+2:]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read pci.ids: %w", err)
	}
	return ids, nil
}

func isHexID[T string | []byte](s T, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// class names a class code "020000": the subclass name, else the class name.
func (ids *PCIIDs) class(code string) string {
	if len(code) < 4 {
		return ""
	}
	if n, ok := ids.Classes[code[:4]]; ok {
		return n
	}
	return ids.Classes[code[:2]]
}

// pciIDs reads the names of the vendors and "vendor:device" pairs in want.
func (r *reader) pciIDs(want map[string]bool) *PCIIDs {
	if r.root.PCIIDs == "" {
		return nil
	}
	f, err := os.Open(r.root.PCIIDs)
	if err != nil {
		r.gap("pci", r.root.PCIIDs, err)
		return nil
	}
	defer f.Close()
	ids, err := parsePCIIDs(f, want)
	if err != nil {
		r.gap("pci", r.root.PCIIDs, err)
		return nil
	}
	return ids
}

// hexAttr reads a sysfs "0x8086" attribute as "8086".
func (r *reader) hexAttr(logical string, digits int) string {
	s, ok := r.read("pci", logical)
	if !ok {
		return ""
	}
	h := strings.TrimPrefix(strings.ToLower(s), "0x")
	if !isHexID(h, digits) {
		r.gap("pci", logical, fmt.Sprintf("not %d hex digits: %q", digits, s))
		return ""
	}
	return h
}

func (r *reader) pci() []api.PCIDevice {
	out := []api.PCIDevice{}
	names := r.list("pci", "/sys/bus/pci/devices", false)
	if len(names) == 0 {
		return out
	}
	groupSize := map[int]int{}
	for _, addr := range names {
		dir := "/sys/bus/pci/devices/" + addr
		d := api.PCIDevice{
			Address:    addr,
			VendorID:   r.hexAttr(dir+"/vendor", 4),
			DeviceID:   r.hexAttr(dir+"/device", 4),
			Class:      r.hexAttr(dir+"/class", 6),
			Driver:     r.linkBase(dir + "/driver"),
			Modalias:   r.optional(dir + "/modalias"),
			IOMMUGroup: -1,
		}
		if g := r.linkBase(dir + "/iommu_group"); g != "" {
			if n, err := strconv.Atoi(g); err == nil {
				d.IOMMUGroup = n
				groupSize[n]++
			}
		}
		out = append(out, d)
	}
	want := map[string]bool{}
	for _, d := range out {
		want[d.VendorID] = true
		want[d.VendorID+":"+d.DeviceID] = true
	}
	if ids := r.pciIDs(want); ids != nil {
		for i, d := range out {
			out[i].VendorName = ids.Vendors[d.VendorID]
			out[i].DeviceName = ids.Devices[d.VendorID+":"+d.DeviceID]
			out[i].ClassName = ids.class(d.Class)
		}
	}
	for i := range out {
		out[i].PassthroughCapable, out[i].PassthroughReason = passthrough(out[i], groupSize[out[i].IOMMUGroup])
	}
	return out
}

// passthrough decides whether VFIO could give d to a VM: it needs an IOMMU
// group, and bridges and host bridges are never handed over. A device that
// shares its group can be, but only with the whole group.
func passthrough(d api.PCIDevice, groupSize int) (bool, string) {
	switch {
	case d.IOMMUGroup < 0:
		return false, "no IOMMU group: no IOMMU, or it is off"
	case strings.HasPrefix(d.Class, "06"):
		return false, "bridge"
	case groupSize > 1:
		return true, fmt.Sprintf("shares IOMMU group %d with %d other device(s); all go together", d.IOMMUGroup, groupSize-1)
	}
	return true, ""
}
