package board

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
)

func TestParsePCIIDs(t *testing.T) {
	f, err := os.Open(testPCIIDs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := ParsePCIIDs(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{ids.Vendors["8086"], "Intel Corporation"},
		{ids.Devices["8086:10d3"], "82574L Gigabit Network Connection"},
		{ids.Devices["1af4:1100"], ""}, // a subsystem line, not a device
		{ids.class("020000"), "Ethernet controller"},
		{ids.class("0c0330"), "USB controller"},
		{ids.Classes["0c0330"], ""}, // a programming interface line, skipped
		{ids.class("0d1100"), ""},   // a class the excerpt lacks
		{ids.class("ff0000"), "Unassigned class"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestProbe(t *testing.T) {
	ext := make([]byte, 4096)
	binary.LittleEndian.PutUint16(ext[1024+0x38:], 0xEF53)
	binary.LittleEndian.PutUint32(ext[1024+0x60:], 0x40)
	copy(ext[1024+0x78:], "PLINTH-STATE")
	iso := make([]byte, 16*2048+2048)
	iso[16*2048] = 1
	copy(iso[16*2048+1:], "CD001")
	copy(iso[16*2048+40:], "PLINTH_INSTALL                  ")
	fat16 := make([]byte, 512)
	copy(fat16[0x2B:], "NO NAME    ")
	copy(fat16[0x36:], "FAT16   ")
	fat16[510], fat16[511] = 0x55, 0xAA
	for _, c := range []struct {
		name      string
		img       []byte
		fs, label string
	}{
		{"ext4", ext, "ext4", "PLINTH-STATE"},
		{"iso9660", iso, "iso9660", "PLINTH_INSTALL"},
		{"fat16 unlabelled", fat16, "vfat", ""},
		{"zeros", make([]byte, 100), "", ""},
	} {
		fs, label := Probe(bytes.NewReader(c.img))
		if fs != c.fs || label != c.label {
			t.Errorf("%s: Probe = %q, %q; want %q, %q", c.name, fs, label, c.fs, c.label)
		}
	}
}

func TestTransport(t *testing.T) {
	for _, c := range []struct{ name, path, want string }{
		{"vda", "/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "virtio"},
		{"sda", "/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", "sata"},
		{"sda", "/sys/devices/pci0000:00/0000:00:04.0/virtio3/host0/target0:0:0/0:0:0:0/block/sda", "scsi"},
		{"sdb", "/sys/devices/pci0000:00/0000:00:05.0/usb1/1-1/1-1:1.0/host1/target1:0:0/1:0:0:0/block/sdb", "usb"},
		{"sdc", "/sys/devices/pci0000:00/0000:00:06.0/host2/port-2:0/end_device-2:0/target2:0:0/2:0:0:0/block/sdc", "sas"},
		{"nvme0n1", "/sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1", "nvme"},
		{"mmcblk0", "/sys/devices/platform/soc/mmc_host/mmc0/mmc0:0001/block/mmcblk0", "mmc"},
	} {
		if got := transport(c.name, c.path); got != c.want {
			t.Errorf("transport(%s) = %q, want %q", c.path, got, c.want)
		}
	}
	if got := pciAddress("/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/net/enp1s0"); got != "0000:01:00.0" {
		t.Errorf("pciAddress = %q", got)
	}
}

// TestParsePCIIDsWanted: the inventory's filtered parse keeps the wanted
// vendors and devices only, and every class.
func TestParsePCIIDsWanted(t *testing.T) {
	f, err := os.Open(testPCIIDs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := parsePCIIDs(f, map[string]bool{"8086": true, "8086:10d3": true, "1af4:1000": true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids.Vendors) != 1 || ids.Vendors["8086"] != "Intel Corporation" {
		t.Errorf("vendors = %q", ids.Vendors)
	}
	// 1af4:1000 is wanted, but not its vendor: a device is kept only within
	// a wanted vendor's section, as the inventory always asks for both.
	if len(ids.Devices) != 1 || ids.Devices["8086:10d3"] != "82574L Gigabit Network Connection" {
		t.Errorf("devices = %q", ids.Devices)
	}
	if ids.class("0c0330") != "USB controller" || ids.class("020000") != "Ethernet controller" {
		t.Errorf("classes = %q", ids.Classes)
	}
}
