package board

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

// What the host itself uses, so that passthrough never takes it: a NIC that
// carries the host's network (it, or a bridge, VLAN or bond above it, has
// an IPv4 route or a global IPv6 address) or is a virtual switch's uplink,
// and a disk that holds Plinth's system or a mounted, swapped-on or
// stacked (md, dm) file system. The PCI function each hangs off is marked,
// and every device of its IOMMU group loses its passthrough verdict.

// SwitchBridgePrefix is how vswitch names a virtual switch's bridge
// ("pvs-" + the switch's name).
const SwitchBridgePrefix = "pvs-"

// netUse reads which interfaces carry host traffic: those with an IPv4
// route (/proc/net/route) or a global IPv6 address (/proc/net/if_inet6).
func (r *reader) netUse() map[string]string {
	use := map[string]string{}
	for i, line := range strings.Split(r.optional("/proc/net/route"), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 2 {
			continue // the header
		}
		if f[1] == "00000000" {
			use[f[0]] = "the host's default route"
		} else if use[f[0]] == "" {
			use[f[0]] = "host routes"
		}
	}
	for _, line := range strings.Split(r.optional("/proc/net/if_inet6"), "\n") {
		// address index prefix-length scope flags name; scope 00 is global.
		f := strings.Fields(line)
		if len(f) == 6 && f[3] == "00" && use[f[5]] == "" {
			use[f[5]] = "a global IPv6 address"
		}
	}
	return use
}

// uppers are the interfaces stacked on name: its master (bridge, bond) and
// its upper_* links (VLANs, bonds), transitively.
func (r *reader) uppers(name string) []string {
	var out []string
	seen := map[string]bool{name: true}
	queue := []string{name}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		dir := "/sys/class/net/" + n
		var next []string
		if m := r.linkBase(dir + "/master"); m != "" {
			next = append(next, m)
		}
		for _, e := range r.list("nic", dir, false) {
			if u, ok := strings.CutPrefix(e, "upper_"); ok {
				next = append(next, u)
			}
		}
		for _, u := range next {
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
				queue = append(queue, u)
			}
		}
	}
	return out
}

// nicUse is why the host uses the NIC name, "" when it does not.
func (r *reader) nicUse(name string, net map[string]string) string {
	if why := net[name]; why != "" {
		return fmt.Sprintf("NIC %s carries %s", name, why)
	}
	for _, u := range r.uppers(name) {
		if sw, ok := strings.CutPrefix(u, SwitchBridgePrefix); ok {
			return fmt.Sprintf("NIC %s is the uplink of virtual switch %s", name, sw)
		}
		if why := net[u]; why != "" {
			return fmt.Sprintf("NIC %s carries %s (through %s)", name, why, u)
		}
	}
	return ""
}

// blockUse reads which block devices the host uses: mounted (by
// /proc/self/mountinfo's major:minor), swapped on (/proc/swaps), each
// with where.
func (r *reader) blockUse() map[string]string {
	use := map[string]string{}
	for _, line := range strings.Split(r.optional("/proc/self/mountinfo"), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT ...
		f := strings.Fields(line)
		if len(f) < 5 || strings.HasPrefix(f[2], "0:") {
			continue // no block device (tmpfs, proc, overlay...)
		}
		name := path.Base(r.realpath("/sys/dev/block/" + f[2]))
		if name == "." || name == "/" {
			continue
		}
		if use[name] == "" {
			use[name] = "mounted on " + unescapeMount(f[4])
		}
	}
	for i, line := range strings.Split(r.optional("/proc/swaps"), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue
		}
		if name, ok := strings.CutPrefix(f[0], "/dev/"); ok && use[name] == "" {
			use[name] = "swap"
		}
	}
	return use
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// diskUse is why the host uses disk d, "" when it does not.
func (r *reader) diskUse(d api.HostDisk, block map[string]string) string {
	if d.PlinthInstall {
		return fmt.Sprintf("disk %s holds Plinth's system", d.Name)
	}
	names := []string{d.Name}
	for _, p := range d.Partitions {
		names = append(names, p.Name)
	}
	for _, n := range names {
		if why := block[n]; why != "" {
			return fmt.Sprintf("disk %s: %s is %s", d.Name, n, why)
		}
		dir := "/sys/block/" + d.Name
		if n != d.Name {
			dir += "/" + n
		}
		if h := r.list("disk", dir+"/holders", false); len(h) > 0 {
			return fmt.Sprintf("disk %s: %s is part of %s", d.Name, n, strings.Join(h, ", "))
		}
	}
	return ""
}

// hostUse marks the PCI functions the host uses and takes the passthrough
// verdict from every device of their IOMMU groups.
func (r *reader) hostUse(hw *api.Hardware) {
	uses := map[string][]string{} // PCI address to reasons
	net := r.netUse()
	for _, n := range hw.NICs {
		if n.PCIAddress == "" {
			continue
		}
		if why := r.nicUse(n.Name, net); why != "" {
			uses[n.PCIAddress] = append(uses[n.PCIAddress], why)
		}
	}
	block := r.blockUse()
	for _, d := range hw.Disks {
		if d.PCIAddress == "" {
			continue
		}
		if why := r.diskUse(d, block); why != "" {
			uses[d.PCIAddress] = append(uses[d.PCIAddress], why)
		}
	}
	for i := range hw.USB {
		u := &hw.USB[i]
		for _, d := range hw.Disks {
			if d.Transport == api.TransportUSB && r.usbPortOf("/sys/block/"+d.Name) == u.Port {
				if why := r.diskUse(d, block); why != "" {
					u.HostUse = why
				}
			}
		}
	}
	groupUse := map[int][]string{} // IOMMU group to "ADDR (reason)"
	for i := range hw.PCI {
		d := &hw.PCI[i]
		if why := uses[d.Address]; len(why) > 0 {
			sort.Strings(why)
			d.HostUse = strings.Join(why, "; ")
			if d.IOMMUGroup >= 0 {
				groupUse[d.IOMMUGroup] = append(groupUse[d.IOMMUGroup], d.Address+" ("+d.HostUse+")")
			}
		}
	}
	for i := range hw.PCI {
		d := &hw.PCI[i]
		switch {
		case d.HostUse != "":
			d.PassthroughCapable = false
			d.PassthroughReason = "the host uses it: " + d.HostUse
		case d.IOMMUGroup >= 0 && len(groupUse[d.IOMMUGroup]) > 0:
			d.PassthroughCapable = false
			d.PassthroughReason = fmt.Sprintf("shares IOMMU group %d with %s, which the host uses; the whole group goes to a VM or none of it",
				d.IOMMUGroup, strings.Join(groupUse[d.IOMMUGroup], ", "))
		}
	}
}

// usbPortOf is the bus-port name of the USB device a sysfs device hangs
// off ("" when none).
func (r *reader) usbPortOf(logical string) string {
	for p := r.realpath(logical); strings.HasPrefix(p, "/sys/devices/"); p = path.Dir(p) {
		if api.IsUSBPort(path.Base(p)) {
			return path.Base(p)
		}
	}
	return ""
}

// usb lists the USB devices (root hubs and interfaces left out), by port.
func (r *reader) usb() []api.USBDevice {
	out := []api.USBDevice{}
	for _, name := range r.list("usb", "/sys/bus/usb/devices", false) {
		if !api.IsUSBPort(name) {
			continue // usbN root hubs, N-P:C.I interfaces
		}
		dir := "/sys/bus/usb/devices/" + name
		d := api.USBDevice{Port: name}
		d.Bus = r.intAttr("usb", dir+"/busnum")
		d.Device = r.intAttr("usb", dir+"/devnum")
		d.VendorID = r.optional(dir + "/idVendor")
		d.ProductID = r.optional(dir + "/idProduct")
		d.Class = r.optional(dir + "/bDeviceClass")
		d.Manufacturer = r.optional(dir + "/manufacturer")
		d.Product = r.optional(dir + "/product")
		d.Serial = r.optional(dir + "/serial")
		if s, err := strconv.ParseFloat(r.optional(dir+"/speed"), 64); err == nil {
			d.SpeedMbps = s
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool { return usbLess(out[i].Port, out[j].Port) })
	return out
}

// usbLess orders bus-port names numerically (1-2 before 1-10, 2-1 after).
func usbLess(a, b string) bool {
	na, nb := usbNumbers(a), usbNumbers(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		if na[i] != nb[i] {
			return na[i] < nb[i]
		}
	}
	return len(na) < len(nb)
}

func usbNumbers(s string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '.' }) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}
