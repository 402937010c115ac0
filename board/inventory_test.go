package board

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testPCIIDs = "testdata/pci.ids"

// fixtures are the captured trees in testdata: every directory with a sys/.
func fixtures(t testing.TB) []string {
	dirs, err := filepath.Glob("testdata/*/sys")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixture trees in testdata (%v)", err)
	}
	for i := range dirs {
		dirs[i] = filepath.Dir(dirs[i])
	}
	return dirs
}

func fixtureRoot(dir string) Root {
	root := FixtureRoot(dir, testPCIIDs)
	if _, err := os.Stat(filepath.Join(dir, "dev")); err == nil {
		root.Dev = filepath.Join(dir, "dev")
	}
	return root
}

// TestFixtures compares the inventory of each fixture tree with its golden
// JSON, testdata/NAME.json; go test -update rewrites them.
func TestFixtures(t *testing.T) {
	for _, dir := range fixtures(t) {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			hw, err := Read(fixtureRoot(dir))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(hw, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("inventory of %s differs from %s (go test -update rewrites it):\n%s", dir, golden, got)
			}
		})
	}
}

// TestBrokenFixture checks that the deliberately damaged tree gives a partial
// inventory with every damage named, and the good parts read.
func TestBrokenFixture(t *testing.T) {
	hw, err := Read(fixtureRoot("testdata/broken"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"system: /sys/class/dmi/id/product_serial: no such file",
		"system: /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0d0c7e2eb82: 3 bytes, want 5",
		`cpu: /proc/cpuinfo: no "model name" line`,
		"memory: /proc/meminfo: no MemTotal line",
		"memory: /sys/devices/system/node/node0/meminfo: no such file",
		`memory: /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages: not a number: "abc"`,
		"pci: /sys/bus/pci/devices/0000:00:03.0/vendor: no such file",
		`pci: /sys/bus/pci/devices/0000:00:03.0/device: not 4 hex digits: "zzzz"`,
		"nic: /sys/class/net/enp0s3/address: no such file",
		`disk: /sys/block/nvme0n1/nvme0n1p2/size: not a number: "x"`,
		"disk: /dev/nvme0n1p2: no such file",
		"disk: /sys/block/sda/size: no such file",
		`sensor: /sys/class/hwmon/hwmon0/fan1_input: not a number: "bogus"`,
	} {
		if !slices.Contains(hw.Gaps, want) {
			t.Errorf("gap %q missing; gaps:\n%s", want, strings.Join(hw.Gaps, "\n"))
		}
	}
	if hw.System.Vendor != "ACME" || hw.System.BootMode != api.BootUEFI || hw.System.SecureBoot != nil {
		t.Errorf("system = %+v", hw.System)
	}
	if c := hw.CPU; c.Sockets != 2 || c.Cores != 2 || c.Threads != 4 || c.Virtualization != "vmx" ||
		c.SecondLevelPaging != "ept" || c.KVMModule != "kvm_intel" || !c.Nested {
		t.Errorf("cpu = %+v", c)
	}
	if len(hw.PCI) != 5 || hw.PCI[0].PassthroughCapable || !hw.PCI[1].PassthroughCapable ||
		!strings.Contains(hw.PCI[1].PassthroughReason, "shares IOMMU group 1") || hw.PCI[4].IOMMUGroup != -1 {
		t.Errorf("pci = %+v", hw.PCI)
	}
	if len(hw.NICs) != 2 || hw.NICs[0].SpeedMbps != 1000 || hw.NICs[0].Driver != "e1000e" || hw.NICs[1].SpeedMbps != -1 {
		t.Errorf("nics = %+v", hw.NICs)
	}
	if len(hw.Disks) != 2 {
		t.Fatalf("disks = %+v", hw.Disks)
	}
	nvme, usb := hw.Disks[0], hw.Disks[1]
	if nvme.Transport != api.TransportNVMe || !nvme.PlinthInstall || nvme.Serial != "deadbeef" ||
		nvme.Partitions[0].Label != "PLINTH-EFI" || nvme.Partitions[0].FSType != "vfat" {
		t.Errorf("nvme = %+v", nvme)
	}
	if usb.Transport != api.TransportUSB || !usb.Removable || usb.Serial != "USB12345" || usb.Model != "Flash Disk" {
		t.Errorf("usb = %+v", usb)
	}
	if len(hw.Sensors) != 2 || hw.Sensors[1].Value != 45 || hw.Sensors[1].Label != "Package id 0" {
		t.Errorf("sensors = %+v", hw.Sensors)
	}
}

// TestEmptyTrees reads roots with nothing in them: gaps, no panic, no error.
func TestEmptyTrees(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "sys"), 0o755)
	hw, err := Read(Root{Sys: filepath.Join(dir, "sys"), Proc: filepath.Join(dir, "proc"), PCIIDs: filepath.Join(dir, "pci.ids")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(hw.Gaps, "cpu: /proc/cpuinfo: no such file") || !slices.Contains(hw.Gaps, "memory: /proc/meminfo: no such file") {
		t.Errorf("gaps = %q", hw.Gaps)
	}
	if _, err := Read(Root{Sys: filepath.Join(dir, "nope")}); err == nil {
		t.Error("Read of a missing sysfs root: no error")
	}
}

// TestCaptureRoundTrip captures a tree and checks the capture reads the same.
func TestCaptureRoundTrip(t *testing.T) {
	roots := map[string]Root{"broken": FixtureRoot("testdata/broken", testPCIIDs)}
	if _, err := os.Stat("/proc/cpuinfo"); err == nil {
		live := DefaultRoot()
		live.Dev, live.PCIIDs = "", ""
		roots["live"] = live
	}
	for name, root := range roots {
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			if err := Capture(root, dst); err != nil {
				t.Fatal(err)
			}
			// What git would drop: an empty directory.
			filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
				if ents, _ := os.ReadDir(p); err == nil && d.IsDir() && len(ents) == 0 {
					t.Errorf("capture left an empty directory %s", p)
				}
				return nil
			})
			want, err := Read(root)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Read(FixtureRoot(dst, root.PCIIDs))
			if err != nil {
				t.Fatal(err)
			}
			// Gaps may differ (root-only files are captured as missing).
			want.Gaps, got.Gaps = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("capture reads\n%+v\nsource reads\n%+v", got, want)
			}
		})
	}
}

// TestLive reads the machine running the test.
func TestLive(t *testing.T) {
	hw, err := Read(DefaultRoot())
	if err != nil {
		t.Fatal(err)
	}
	if hw.CPU.Threads == 0 || hw.CPU.Model == "" || hw.Memory.TotalBytes == 0 {
		t.Errorf("cpu %+v, memory %+v; gaps %q", hw.CPU, hw.Memory, hw.Gaps)
	}
	t.Logf("%d PCI devices, %d NICs, %d disks, %d sensors; gaps %q", len(hw.PCI), len(hw.NICs), len(hw.Disks), len(hw.Sensors), hw.Gaps)
}

func TestWriteTable(t *testing.T) {
	hw, err := Read(fixtureRoot("testdata/broken"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, hw); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ACME Anvil 9000", "enp0s2", "nvme0n1p1", "PLINTH-EFI", "coretemp/temp1", "GAPS"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestSecureBoot(t *testing.T) {
	for _, c := range []struct {
		data []byte
		want bool
	}{{[]byte{6, 0, 0, 0, 1}, true}, {[]byte{6, 0, 0, 0, 0}, false}} {
		dir := t.TempDir()
		vars := filepath.Join(dir, "sys", "firmware", "efi", "efivars")
		os.MkdirAll(vars, 0o755)
		if err := os.WriteFile(filepath.Join(vars, filepath.Base(secureBootVar)), c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		hw, err := Read(FixtureRoot(dir, ""))
		if err != nil {
			t.Fatal(err)
		}
		if hw.System.BootMode != api.BootUEFI || hw.System.SecureBoot == nil || *hw.System.SecureBoot != c.want {
			t.Errorf("% x: system = %+v", c.data, hw.System)
		}
	}
}

// TestQEMUFixtures checks the QEMU captures (board/capture-qemu.sh) against
// the devices their presets attach (qemu-test/cmd/plinth-capture), not only
// against their golden JSON: each NIC's MAC and driver, each disk's size,
// transport and serial.
func TestQEMUFixtures(t *testing.T) {
	type nic struct{ mac, driver string }
	type disk struct {
		transport, serial string
		mib               uint64
		removable         bool
	}
	for _, c := range []struct {
		name, product, serial string
		nics                  []nic
		disks                 []disk
	}{
		{"qemu-q35", "Standard PC (Q35 + ICH9, 2009)", "Q35-0001",
			[]nic{{"52:54:00:00:35:01", "virtio_net"}, {"52:54:00:00:35:02", "virtio_net"}, {"52:54:00:00:35:03", "e1000e"}},
			[]disk{{api.TransportVirtio, "Q35-VIRTIO", 1024, false}, {api.TransportNVMe, "Q35-NVME", 2048, false},
				{api.TransportSATA, "Q35-SATA", 3072, false}, {api.TransportUSB, "Q35-USB", 512, true}}},
		{"qemu-pc", "Standard PC (i440FX + PIIX, 1996)", "PC-0001",
			[]nic{{"52:54:00:00:44:01", "e1000"}},
			[]disk{{api.TransportSATA, "PC-SATA", 2048, false}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			hw, err := Read(fixtureRoot("testdata/" + c.name))
			if err != nil {
				t.Fatal(err)
			}
			if s := hw.System; s.Vendor != "QEMU" || s.Product != c.product || s.Serial != c.serial || s.UUID == "" || s.BootMode != api.BootBIOS {
				t.Errorf("system = %+v", s)
			}
			if len(hw.NICs) != len(c.nics) {
				t.Errorf("nics = %+v", hw.NICs)
			}
			for _, w := range c.nics {
				i := slices.IndexFunc(hw.NICs, func(n api.HostNIC) bool { return n.MAC == w.mac })
				if i < 0 || hw.NICs[i].Driver != w.driver || !hw.NICs[i].Link || hw.NICs[i].PCIAddress == "" {
					t.Errorf("NIC %s (%s): %+v", w.mac, w.driver, hw.NICs)
				}
			}
			if len(hw.Disks) != len(c.disks) {
				t.Errorf("disks = %+v", hw.Disks)
			}
			for _, w := range c.disks {
				i := slices.IndexFunc(hw.Disks, func(d api.HostDisk) bool { return d.Serial == w.serial })
				if i < 0 {
					t.Errorf("no disk with serial %s: %+v", w.serial, hw.Disks)
					continue
				}
				if d := hw.Disks[i]; d.Transport != w.transport || d.SizeBytes != w.mib<<20 || d.Removable != w.removable || d.PCIAddress == "" {
					t.Errorf("disk %s: %+v, want %+v", w.serial, d, w)
				}
			}
			for _, d := range hw.PCI {
				if d.VendorName == "" || d.ClassName == "" {
					t.Errorf("PCI %s %s:%s unnamed: add it to testdata/pci.ids", d.Address, d.VendorID, d.DeviceID)
				}
			}
			if len(hw.Gaps) != 0 {
				t.Errorf("gaps: %q", hw.Gaps)
			}
		})
	}
}
