package board

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

// TestIOMMUFixture reads the capture of a q35 machine with an emulated
// IOMMU (board/capture-qemu.sh q35-iommu): every device in a group, each
// endpoint alone in its own but the ICH9 functions, which go together; the
// USB devices on xhci by port, root hubs and interfaces left out.
func TestIOMMUFixture(t *testing.T) {
	hw, err := Read(fixtureRoot("testdata/qemu-q35-iommu"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range hw.PCI {
		if d.IOMMUGroup < 0 {
			t.Errorf("%s has no IOMMU group", d.Address)
		}
		if d.HostUse != "" {
			t.Errorf("%s used by a host that mounted and routed nothing: %s", d.Address, d.HostUse)
		}
	}
	i := slices.IndexFunc(hw.PCI, func(d api.PCIDevice) bool { return d.VendorID == "8086" && d.DeviceID == "10d3" })
	if i < 0 || !hw.PCI[i].PassthroughCapable || hw.PCI[i].PassthroughReason != "" || hw.PCI[i].Driver != "e1000e" {
		t.Errorf("the spare e1000e: %+v", hw.PCI)
	}
	var ports []string
	for _, u := range hw.USB {
		ports = append(ports, u.Port+" "+u.VendorID+":"+u.ProductID+" "+u.Product)
		if u.Bus < 1 || u.Device < 1 {
			t.Errorf("USB %s: bus %d device %d", u.Port, u.Bus, u.Device)
		}
	}
	want := []string{"1-2 0627:0001 QEMU USB Keyboard", "1-3 0627:0001 QEMU USB Tablet", "2-1 46f4:0001 QEMU USB HARDDRIVE"}
	if !slices.Equal(ports, want) {
		t.Errorf("USB devices %q, want %q", ports, want)
	}
}

// TestHostUseLive reads the machine the test runs on: a NIC that carries
// its default route (as /proc/net/route says) and a disk whose partition
// or whole device is mounted (as /proc/self/mounts says) are the host's,
// and so is every device of their IOMMU groups.
func TestHostUseLive(t *testing.T) {
	hw, err := Read(DefaultRoot())
	if err != nil {
		t.Fatal(err)
	}
	route, _ := os.ReadFile("/proc/net/route")
	routed := map[string]bool{}
	for _, l := range strings.Split(string(route), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 2 && f[1] == "00000000" {
			routed[f[0]] = true
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	checked := 0
	byAddr := map[string]api.PCIDevice{}
	for _, d := range hw.PCI {
		byAddr[d.Address] = d
	}
	for _, n := range hw.NICs {
		if routed[n.Name] && n.PCIAddress != "" {
			checked++
			if d := byAddr[n.PCIAddress]; !strings.Contains(d.HostUse, n.Name) || d.PassthroughCapable {
				t.Errorf("NIC %s carries the default route; its device %+v", n.Name, d)
			}
		}
	}
	for _, d := range hw.Disks {
		names := []string{d.Name}
		for _, p := range d.Partitions {
			names = append(names, p.Name)
		}
		for _, n := range names {
			if d.PCIAddress != "" && strings.Contains(string(mounts), "/dev/"+n+" ") {
				checked++
				if p := byAddr[d.PCIAddress]; !strings.Contains(p.HostUse, d.Name) || p.PassthroughCapable {
					t.Errorf("%s is mounted; its disk's device %+v", n, p)
				}
			}
		}
	}
	for _, d := range hw.PCI {
		if d.HostUse != "" || d.IOMMUGroup < 0 {
			continue
		}
		for _, o := range hw.PCI {
			if o.IOMMUGroup == d.IOMMUGroup && o.HostUse != "" && d.PassthroughCapable {
				t.Errorf("%s shares group %d with %s, which the host uses, and is still capable", d.Address, d.IOMMUGroup, o.Address)
			}
		}
	}
	t.Logf("%d host uses checked", checked)
}

func TestUnescapeMountAndUSBOrder(t *testing.T) {
	if got := unescapeMount(`/datastores/my\040ds`); got != "/datastores/my ds" {
		t.Errorf("unescapeMount = %q", got)
	}
	ports := []string{"2-1", "1-10", "1-2.3", "1-2"}
	slices.SortFunc(ports, func(a, b string) int {
		if usbLess(a, b) {
			return -1
		}
		return 1
	})
	if !slices.Equal(ports, []string{"1-2", "1-2.3", "1-10", "2-1"}) {
		t.Errorf("order %q", ports)
	}
}
