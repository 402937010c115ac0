package api_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/plinth/plinth/api"
)

func hwGood() api.VMSpec {
	s := good()
	node := 0
	s.Firmware = api.FirmwareUEFISecure
	s.TPM = true
	s.HugePages = true
	s.CPU.Model = "EPYC-Rome"
	s.CPU.Pin = []int{0, 1}
	s.CPU.NUMANode = &node
	s.PCIDevices = []api.PCIPassthrough{{Address: "0000:03:00.0"}, {VendorID: "8086", DeviceID: "10d3", Index: 1}}
	s.USBDevices = []api.USBPassthrough{{VendorID: "0781", ProductID: "5567"}, {Port: "1-2.3"}}
	return s
}

func TestValidateHardware(t *testing.T) {
	if err := hwGood().Validate(); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*api.VMSpec)
		fields []string
	}{
		{"uefi on pc", func(s *api.VMSpec) { s.Machine = api.MachinePC }, []string{"firmware"}},
		{"balloon min too small", func(s *api.VMSpec) { s.PCIDevices = nil; s.Balloon = &api.Balloon{MinMiB: 8} }, []string{"balloon.min_mib"}},
		{"balloon min above memory", func(s *api.VMSpec) { s.PCIDevices = nil; s.Balloon = &api.Balloon{MinMiB: 2048} }, []string{"balloon.min_mib"}},
		{"balloon with pci", func(s *api.VMSpec) { s.Balloon = &api.Balloon{MinMiB: 256} }, []string{"balloon"}},
		{"huge pages odd memory", func(s *api.VMSpec) { s.MemoryMiB = 1025 }, []string{"huge_pages"}},
		{"cpu model", func(s *api.VMSpec) { s.CPU.Model = "Pentium,+vmx" }, []string{"cpu.model"}},
		{"pin count", func(s *api.VMSpec) { s.CPU.Pin = []int{0} }, []string{"cpu.pin"}},
		{"pin value", func(s *api.VMSpec) { s.CPU.Pin = []int{0, -1} }, []string{"cpu.pin[1]"}},
		{"numa node", func(s *api.VMSpec) { n := 64; s.CPU.NUMANode = &n }, []string{"cpu.numa_node"}},
		{"pci address", func(s *api.VMSpec) { s.PCIDevices[0].Address = "03:00.0" }, []string{"pci_devices[0].address"}},
		{"pci address upper case", func(s *api.VMSpec) { s.PCIDevices[0].Address = "0000:0A:00.0" }, []string{"pci_devices[0].address"}},
		{"pci function 8", func(s *api.VMSpec) { s.PCIDevices[0].Address = "0000:03:00.8" }, []string{"pci_devices[0].address"}},
		{"pci device 20", func(s *api.VMSpec) { s.PCIDevices[0].Address = "0000:03:20.0" }, []string{"pci_devices[0].address"}},
		{"pci both", func(s *api.VMSpec) { s.PCIDevices[0].VendorID = "8086" }, []string{"pci_devices[0]"}},
		{"pci neither", func(s *api.VMSpec) { s.PCIDevices[0] = api.PCIPassthrough{} }, []string{"pci_devices[0].vendor_id", "pci_devices[0].device_id"}},
		{"pci index with address", func(s *api.VMSpec) { s.PCIDevices[0].Index = 2 }, []string{"pci_devices[0].index"}},
		{"pci duplicate", func(s *api.VMSpec) { s.PCIDevices[1] = s.PCIDevices[0] }, []string{"pci_devices[1]"}},
		{"pci too many", func(s *api.VMSpec) {
			for i := range 8 {
				s.PCIDevices = append(s.PCIDevices, api.PCIPassthrough{VendorID: "8086", DeviceID: "10d3", Index: 10 + i})
			}
		}, []string{"pci_devices"}},
		{"usb port", func(s *api.VMSpec) { s.USBDevices[1].Port = "1-0" }, []string{"usb_devices[1].port"}},
		{"usb port path", func(s *api.VMSpec) { s.USBDevices[1].Port = "../1-2" }, []string{"usb_devices[1].port"}},
		{"usb vendor", func(s *api.VMSpec) { s.USBDevices[0].VendorID = "781" }, []string{"usb_devices[0].vendor_id"}},
		{"usb both", func(s *api.VMSpec) { s.USBDevices[0].Port = "1-1" }, []string{"usb_devices[0]"}},
		{"usb duplicate", func(s *api.VMSpec) { s.USBDevices[0] = s.USBDevices[1] }, []string{"usb_devices[1]"}},
		{"microvm", func(s *api.VMSpec) {
			s.Machine = api.MachineMicroVM
			s.Firmware = api.FirmwareBIOS
			s.Disks = s.Disks[:1]
			s.CDROM = nil
			s.BootOrder = []string{"disk"}
			s.NICs = s.NICs[:1]
			s.Kernel = &api.DirectBoot{Datastore: "d", Kernel: "k"}
		}, []string{"tpm", "pci_devices", "usb_devices"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := hwGood()
			c.mutate(&s)
			err := s.Validate()
			var ve *api.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want *ValidationError", err)
			}
			var got []string
			for _, p := range ve.Problems {
				if p.Message == "" {
					t.Errorf("%s: empty message", p.Field)
				}
				got = append(got, p.Field)
			}
			if !slices.Equal(got, c.fields) {
				t.Errorf("fields = %q, want %q (%v)", got, c.fields, err)
			}
		})
	}
}

func TestHardwareSpecCloneAndJSON(t *testing.T) {
	s := hwGood()
	c := s.Clone()
	c.CPU.Pin[0] = 7
	*c.CPU.NUMANode = 3
	c.Balloon = &api.Balloon{MinMiB: 300}
	c.PCIDevices[0].Address = "0000:04:00.0"
	c.USBDevices[0].VendorID = "1234"
	if s.CPU.Pin[0] != 0 || *s.CPU.NUMANode != 0 || s.Balloon != nil || s.PCIDevices[0].Address != "0000:03:00.0" || s.USBDevices[0].VendorID != "0781" {
		t.Errorf("Clone shares memory with the original: %+v", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back api.VMSpec
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("round trip: %v\n%+v\n%+v", err, back, s)
	}
	// A spec without the new parts says nothing of them.
	plain, _ := json.Marshal(good())
	for _, key := range []string{"tpm", "balloon", "huge_pages", "pci_devices", "usb_devices", "pin", "numa_node"} {
		if json.Valid(plain) && containsKey(plain, key) {
			t.Errorf("a spec without %s mentions it: %s", key, plain)
		}
	}
}

func containsKey(b []byte, key string) bool {
	return slices.Contains(splitKeys(b), key)
}

// splitKeys lists every object key in a JSON document.
func splitKeys(b []byte) []string {
	var keys []string
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, e := range t {
				keys = append(keys, k)
				walk(e)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	var v any
	json.Unmarshal(b, &v)
	walk(v)
	return keys
}

func TestIsUSBPortAndPCIAddress(t *testing.T) {
	for s, want := range map[string]bool{"1-1": true, "3-2.4.1": true, "127-31": true, "0-1": false, "1-": false,
		"1-2.": false, "1-02": false, "128-1": false, "1-1.1.1.1.1.1.1.1": false, "usb1": false, "1-1:1.0": false} {
		if got := api.IsUSBPort(s); got != want {
			t.Errorf("IsUSBPort(%q) = %v", s, got)
		}
	}
	for s, want := range map[string]bool{"0000:00:02.0": true, "ffff:ff:1f.7": true, "0000:00:02.0 ": false, "0000-00:02.0": false} {
		if got := api.IsPCIAddress(s); got != want {
			t.Errorf("IsPCIAddress(%q) = %v", s, got)
		}
	}
}
