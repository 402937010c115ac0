package board

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/plinth/plinth/api"
)

var pciAddrRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// pciAddress is the PCI function nearest a device in its sysfs path
// ("/sys/devices/pci0000:00/0000:00:03.0/virtio2/net/eth0" gives
// "0000:00:03.0"), "" when it is not below PCI.
func pciAddress(devpath string) string {
	parts := strings.Split(devpath, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if pciAddrRE.MatchString(parts[i]) {
			return parts[i]
		}
	}
	return ""
}

// virtual says whether a class entry's resolved path is no hardware: a
// virtual device, or no device at all (/sys/class/net/bonding_masters is a
// plain file the bonding module adds).
func virtual(devpath string) bool {
	return !strings.HasPrefix(devpath, "/sys/devices/") || strings.HasPrefix(devpath, "/sys/devices/virtual/")
}

// nics lists the interfaces backed by a device; loopback, bridges, taps and
// other virtual interfaces are left out.
func (r *reader) nics() []api.HostNIC {
	out := []api.HostNIC{}
	for _, name := range r.list("nic", "/sys/class/net", false) {
		dir := "/sys/class/net/" + name
		devpath := r.realpath(dir)
		if virtual(devpath) {
			continue
		}
		n := api.HostNIC{Name: name, SpeedMbps: -1, PCIAddress: pciAddress(devpath)}
		n.MAC, _ = r.read("nic", dir+"/address")
		n.Driver = r.linkBase(dir + "/device/driver")
		// carrier, speed and duplex fail with EINVAL while the interface is
		// down; that is "unknown", not a gap.
		n.Link = r.optional(dir+"/carrier") == "1"
		if s, err := strconv.Atoi(r.optional(dir + "/speed")); err == nil && s > 0 {
			n.SpeedMbps = s
		}
		if d := r.optional(dir + "/duplex"); d == "full" || d == "half" {
			n.Duplex = d
		}
		out = append(out, n)
	}
	return out
}

// transport guesses a disk's bus from its sysfs path, most specific first
// (a virtio-scsi disk is "scsi", a USB stick's path also holds a SCSI host).
func transport(name, devpath string) string {
	switch {
	case strings.Contains(devpath, "/usb"):
		return api.TransportUSB
	case strings.Contains(devpath, "/nvme"):
		return api.TransportNVMe
	case strings.Contains(devpath, "/ata"):
		return api.TransportSATA
	case strings.Contains(devpath, "/end_device-"):
		return api.TransportSAS
	case strings.Contains(devpath, "/target"):
		return api.TransportSCSI
	case strings.Contains(devpath, "/virtio"):
		return api.TransportVirtio
	case strings.HasPrefix(name, "mmcblk"):
		return api.TransportMMC
	}
	return ""
}

// disks lists the block devices backed by hardware; loop, zram, device-mapper
// and md devices are virtual and left out.
func (r *reader) disks() []api.HostDisk {
	out := []api.HostDisk{}
	for _, name := range r.list("disk", "/sys/block", false) {
		dir := "/sys/block/" + name
		devpath := r.realpath(dir)
		if virtual(devpath) {
			continue
		}
		d := api.HostDisk{
			Name:       name,
			Transport:  transport(name, devpath),
			PCIAddress: pciAddress(devpath),
			Partitions: []api.Partition{},
		}
		d.SizeBytes = r.sectors("disk", dir+"/size")
		d.Rotational = r.optional(dir+"/queue/rotational") == "1"
		d.Removable = r.optional(dir+"/removable") == "1"
		d.Model = r.optional(dir + "/device/model")
		d.Serial = r.serial(dir, devpath)
		for _, p := range r.list("disk", dir, true) {
			if !strings.HasPrefix(p, name) || !r.exists(dir+"/"+p+"/partition") {
				continue
			}
			part := api.Partition{Name: p, SizeBytes: r.sectors("disk", dir+"/"+p+"/size")}
			part.FSType, part.Label = r.probe(p)
			if part.Label == "PLINTH-STATE" || part.Label == "PLINTH-EFI" {
				d.PlinthInstall = true
			}
			d.Partitions = append(d.Partitions, part)
		}
		out = append(out, d)
	}
	return out
}

// sectors reads a block size attribute, in 512-byte sectors whatever the
// device's logical block size, as bytes.
func (r *reader) sectors(area, logical string) uint64 {
	s, ok := r.read(area, logical)
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		r.gap(area, logical, fmt.Sprintf("not a number: %q", s))
		return 0
	}
	return n * 512
}

// serial is where each bus puts it: virtio-blk on the block device, NVMe on
// the controller, SCSI/SATA in the unit serial number VPD page (0x80: a
// 4-byte header, then the serial), USB in the USB device's descriptor.
func (r *reader) serial(dir, devpath string) string {
	if s := r.optional(dir + "/serial"); s != "" {
		return s
	}
	if s := r.optional(dir + "/device/serial"); s != "" {
		return s
	}
	if b := r.optional(dir + "/device/vpd_pg80"); len(b) > 4 {
		return strings.TrimSpace(strings.Trim(b[4:], "\x00"))
	}
	return r.usbSerial(devpath)
}

// usbSerial is the serial number string of the USB device a disk hangs off
// (a USB stick's SCSI layer often has no VPD page 0x80): the nearest
// ancestor of devpath with an idVendor attribute, "" when there is none.
func (r *reader) usbSerial(devpath string) string {
	if !strings.Contains(devpath, "/usb") {
		return ""
	}
	for p := path.Dir(devpath); strings.HasPrefix(p, "/sys/devices/"); p = path.Dir(p) {
		if r.exists(p + "/idVendor") {
			return r.optional(p + "/serial")
		}
	}
	return ""
}

// probe reads the file system type and label of /dev/NAME, "" when Dev is
// unset or the superblock is none it knows.
func (r *reader) probe(name string) (fsType, label string) {
	if r.root.Dev == "" {
		return "", ""
	}
	logical := "/dev/" + name
	f, err := os.Open(r.path(logical))
	if err != nil {
		r.gap("disk", logical, err)
		return "", ""
	}
	defer f.Close()
	return Probe(f)
}

var sensorRE = regexp.MustCompile(`^(temp|fan)([0-9]+)_input$`)

// sensors lists hwmon temperatures (°C) and fan speeds (RPM); a machine
// without hwmon (most VMs) has none.
func (r *reader) sensors() []api.HostSensor {
	out := []api.HostSensor{}
	for _, hw := range r.list("sensor", "/sys/class/hwmon", false) {
		dir := "/sys/class/hwmon/" + hw
		chip := r.optional(dir + "/name")
		for _, f := range r.list("sensor", dir, true) {
			m := sensorRE.FindStringSubmatch(f)
			if m == nil {
				continue
			}
			s, ok := r.read("sensor", dir+"/"+f)
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				r.gap("sensor", dir+"/"+f, fmt.Sprintf("not a number: %q", s))
				continue
			}
			if m[1] == "temp" {
				v /= 1000 // millidegrees
			}
			out = append(out, api.HostSensor{
				Chip:  chip,
				Name:  m[1] + m[2],
				Label: r.optional(dir + "/" + m[1] + m[2] + "_label"),
				Kind:  m[1],
				Value: v,
			})
		}
	}
	return out
}
