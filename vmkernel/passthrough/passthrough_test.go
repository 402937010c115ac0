package passthrough

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
	"github.com/plinth/plinth/board"
)

// iommuFixture is board's capture of a q35 machine with an emulated IOMMU:
// a virtio NIC (00:01.0, group 1), a spare e1000e (00:02.0, group 2), the
// ICH9 LPC bridge, AHCI and SMBus together in group 6.
func iommuFixture(t *testing.T) api.Hardware {
	t.Helper()
	hw, err := board.Read(board.FixtureRoot(filepath.Join("..", "..", "board", "testdata", "qemu-q35-iommu"), filepath.Join("..", "..", "board", "testdata", "pci.ids")))
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

func device(hw api.Hardware, addr string) *api.PCIDevice {
	for i := range hw.PCI {
		if hw.PCI[i].Address == addr {
			return &hw.PCI[i]
		}
	}
	return nil
}

func TestResolvePCI(t *testing.T) {
	hw := iommuFixture(t)
	got, err := ResolvePCI(hw, []api.PCIPassthrough{{Address: "0000:00:02.0"}, {VendorID: "1af4", DeviceID: "1000"}})
	if err != nil || len(got) != 2 || got[0].DeviceID != "10d3" || got[1].Address != "0000:00:01.0" {
		t.Fatalf("ResolvePCI = %+v, %v", got, err)
	}
	for _, c := range []struct {
		dev   api.PCIPassthrough
		field string
	}{
		{api.PCIPassthrough{Address: "0000:00:09.0"}, "pci_devices[0].address"},
		{api.PCIPassthrough{VendorID: "8086", DeviceID: "10d3", Index: 1}, "pci_devices[0].vendor_id"},
		{api.PCIPassthrough{VendorID: "10de", DeviceID: "1eb8"}, "pci_devices[0].vendor_id"},
	} {
		_, err := ResolvePCI(hw, []api.PCIPassthrough{c.dev})
		var fe *FieldError
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want ErrNotFound naming %s", c.dev, err, c.field)
		}
	}
}

func TestPlanPCI(t *testing.T) {
	plan := func(hw api.Hardware, claimed map[string]string, addrs ...string) ([]int, error) {
		var devs []api.PCIPassthrough
		for _, a := range addrs {
			devs = append(devs, api.PCIPassthrough{Address: a})
		}
		res, err := ResolvePCI(hw, devs)
		if err != nil {
			t.Fatal(err)
		}
		return planPCI(hw, "vm-a", res, claimed)
	}
	hw := iommuFixture(t)
	if g, err := plan(hw, nil, "0000:00:02.0"); err != nil || !slices.Equal(g, []int{2}) {
		t.Errorf("the spare e1000e: groups %v, %v", g, err)
	}
	// AHCI's group holds the LPC bridge and the SMBus controller, neither
	// bound to a driver in this capture: the group can go.
	if g, err := plan(hw, nil, "0000:00:1f.2"); err != nil || !slices.Equal(g, []int{6}) {
		t.Errorf("AHCI: groups %v, %v", g, err)
	}

	refused := func(name string, hw api.Hardware, claimed map[string]string, want string, addrs ...string) {
		t.Helper()
		_, err := plan(hw, claimed, addrs...)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrUnavailable saying %q", name, err, want)
		}
	}
	// The virtio NIC carries the management network (board would say so
	// from the routes): refused, with the reason.
	mgmt := iommuFixture(t)
	device(mgmt, "0000:00:01.0").HostUse = "NIC enp0s1 carries the host's default route"
	device(mgmt, "0000:00:01.0").PassthroughCapable = false
	refused("management NIC", mgmt, nil, "the host uses it: NIC enp0s1 carries the host's default route", "0000:00:01.0")
	// A device sharing its group with the management NIC: the group is
	// partly the host's.
	shared := iommuFixture(t)
	device(shared, "0000:00:01.0").HostUse = "NIC enp0s1 carries the host's default route"
	device(shared, "0000:00:02.0").IOMMUGroup = 1
	refused("group shared with the host", shared, nil, "IOMMU group 1 also holds 0000:00:01.0, which the host uses", "0000:00:02.0")
	// A group-mate bound to a host driver.
	bound := iommuFixture(t)
	device(bound, "0000:00:1f.3").Driver = "i801_smbus"
	refused("group-mate with a driver", bound, nil, "0000:00:1f.3 (SMBus), bound to i801_smbus", "0000:00:1f.2")
	// Another VM's device, and a group-mate another VM holds.
	refused("another VM's", hw, map[string]string{"0000:00:02.0": "vm-b"}, "VM vm-b has it", "0000:00:02.0")
	refused("group-mate of another VM", hw, map[string]string{"0000:00:1f.3": "vm-b"}, "which VM vm-b has", "0000:00:1f.2")
	refused("bridge", hw, nil, "is a bridge", "0000:00:1f.0")
	noIOMMU := iommuFixture(t)
	device(noIOMMU, "0000:00:02.0").IOMMUGroup = -1
	refused("no IOMMU", noIOMMU, nil, "has no IOMMU group", "0000:00:02.0")
}
