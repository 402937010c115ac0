package qemu

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testID = "5c1e7a2b-9d4f-4e63-8b0a-1f2e3d4c5b6a"

// env is the Env a runner would make for spec: each disk, the CD-ROM and
// the UEFI files as fd sets (a chain for a disk whose path names one,
// "base+"), taps and boot files.
func env(accel string, spec api.VMSpec) Env {
	e := Env{QEMU: "qemu-system-x86_64", Accel: accel, RunDir: "/run/plinth/vms/" + testID}
	fd := 3
	set := func(opaque string, n int) string {
		s := len(e.FDSets) + 1
		if len(e.FDSets) > 0 {
			s = e.FDSets[len(e.FDSets)-1].Set + 1
		}
		for range n {
			e.FDSets = append(e.FDSets, FDSet{Set: s, FD: fd, Opaque: opaque})
			fd++
		}
		return FDSetName(s)
	}
	if spec.UEFI() {
		e.OVMFCode = &Node{Format: "raw", Filename: set("firmware", 1)}
		e.OVMFVars = &Node{Format: "raw", Filename: set("uefi-vars", 2)}
	}
	for i, d := range spec.Disks {
		n := Node{Format: d.Format, Filename: set(d.Path, 2-btoi(d.ReadOnly))}
		if strings.HasPrefix(path.Base(d.Path), "base+") {
			n.Backing = &Node{Format: "qcow2", Filename: set(d.Path+" backing", 1)}
			n.Backing.Backing = &Node{Format: "raw", Filename: set(d.Path+" base", 1)}
		}
		_ = i
		e.Disks = append(e.Disks, n)
	}
	if spec.CDROM != nil {
		e.CDROM = &Node{Format: "raw", Filename: set(spec.CDROM.Path, 1)}
	}
	if spec.CloudInit != nil {
		e.Seed = &Node{Format: "raw", Filename: set("cloud-init seed", 1)}
	}
	if spec.Kernel != nil {
		e.Kernel = e.RunDir + "/kernel"
		if spec.Kernel.Initrd != "" {
			e.Initrd = e.RunDir + "/initrd"
		}
	}
	for _, n := range spec.NICs {
		t := Tap{}
		if n.Switch != "" {
			t.FD = fd
			fd++
			if accel == "kvm" && n.Model == api.NICVirtio {
				t.VhostFD = fd
				fd++
			}
		}
		e.Taps = append(e.Taps, t)
	}
	if spec.TPM {
		e.TPMSocket = e.RunDir + "/" + TPMSocketName
	}
	for i := range spec.PCIDevices {
		e.PCIDevices = append(e.PCIDevices, fmt.Sprintf("0000:%02x:00.0", i+1))
	}
	for i, u := range spec.USBDevices {
		e.USB = append(e.USB, USBHost{Index: i, FDSet: set("usb "+u.String(), 1)})
	}
	return e
}

func ptr[T any](v T) *T { return &v }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cases are the golden specs; each has testdata/<name>.args.
var cases = []struct {
	name  string
	accel string
	spec  api.VMSpec
}{
	{"minimal", "tcg", api.VMSpec{Name: "tiny", Serial: true}},
	{"q35-uefi-full", "tcg", api.VMSpec{
		Name: "full", CPU: api.CPU{Sockets: 2, Cores: 2, Threads: 2}, MemoryMiB: 2048,
		Firmware: "uefi", BootOrder: []string{"cdrom", "disk", "network"},
		Disks: []api.Disk{
			{Datastore: "ds1", Path: "full/root.qcow2", Cache: "none"},
			{Bus: "virtio-scsi", Datastore: "ds1", Path: "full/data.raw", Format: "raw", Cache: "writethrough"},
			{Bus: "virtio-scsi", Datastore: "ds1", Path: "full/logs.qcow2", ReadOnly: true, Cache: "directsync"},
			{Bus: "sata", Datastore: "ds1", Path: "full/base+legacy, with comma.qcow2", Cache: "unsafe"},
		},
		CDROM:  &api.CDROM{Datastore: "iso", Path: "debian-12.iso"},
		NICs:   []api.NIC{{Switch: "vSwitch0", MAC: "02:00:00:00:00:01"}, {Model: "e1000e", NAT: true}, {Switch: "lab"}},
		Serial: true, VNC: true,
		CloudInit: &api.CloudInit{Hostname: "full"},
	}},
	{"pc-kvm", "kvm", api.VMSpec{
		Name: "legacy", Machine: "pc",
		Disks:   []api.Disk{{Bus: "sata", Datastore: "ds1", Path: "legacy/disk.qcow2"}},
		CDROM:   &api.CDROM{Datastore: "iso", Path: "tools.iso"},
		NICs:    []api.NIC{{Switch: "vSwitch0"}, {NAT: true}, {Model: "e1000e", Switch: "lab"}},
		VNC:     true,
		OnCrash: "restart",
	}},
	{"q35-hardware", "tcg", api.VMSpec{
		Name: "hw", MemoryMiB: 1024, Firmware: "uefi-secure", TPM: true,
		CPU:        api.CPU{Sockets: 1, Cores: 2, Threads: 1, Model: "EPYC-Rome", NUMANode: ptr(0)},
		HugePages:  true,
		Disks:      []api.Disk{{Datastore: "ds1", Path: "hw/root.qcow2"}},
		PCIDevices: []api.PCIPassthrough{{Address: "0000:03:00.0"}, {VendorID: "8086", DeviceID: "10d3"}},
		USBDevices: []api.USBPassthrough{{VendorID: "0781", ProductID: "5567"}},
		Serial:     true,
	}},
	{"microvm-direct", "tcg", api.VMSpec{
		Name: "micro", Machine: "microvm", MemoryMiB: 256,
		Kernel:  &api.DirectBoot{Datastore: "ds1", Kernel: "boot/vmlinuz", Initrd: "boot/initrd.img", Cmdline: "console=ttyS0 quiet, panic=-1"},
		Disks:   []api.Disk{{Datastore: "ds1", Path: "micro/root.raw", Format: "raw"}},
		NICs:    []api.NIC{{NAT: true}},
		Serial:  true,
		Balloon: &api.Balloon{MinMiB: 128},
	}},
}

// prepared returns a defaulted deep copy: tests may change it freely.
func prepared(s api.VMSpec) api.VMSpec {
	s = s.Clone()
	s.ID = testID
	s.Defaults()
	return s
}

func TestGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := prepared(c.spec)
			args, err := Cmdline(spec, env(c.accel, spec))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(args, "\n") + "\n"
			golden := filepath.Join("testdata", c.name+".args")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("command line differs from %s (go test -update rewrites it):\n%s", golden, diff(string(want), got))
			}
			seen := map[string]bool{}
			for _, a := range args {
				for _, kv := range strings.Split(a, ",") {
					for _, key := range []string{"id=", "node-name="} {
						if id, ok := strings.CutPrefix(kv, key); ok {
							if seen[id] {
								t.Errorf("ID %q used twice", id)
							}
							seen[id] = true
						}
					}
				}
			}
		})
	}
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("- " + wl + "\n+ " + gl + "\n")
		}
	}
	return b.String()
}

func TestCmdlineErrors(t *testing.T) {
	base := cases[1].spec
	tests := []struct {
		name   string
		mutate func(*api.VMSpec, *Env)
		want   error
		field  string
	}{
		{"no disk image", func(s *api.VMSpec, e *Env) { e.Disks = e.Disks[:2] }, ErrNoImage, "disks"},
		{"format differs", func(s *api.VMSpec, e *Env) { e.Disks[1].Format = "qcow2" }, ErrEnv, "disks[1]"},
		{"no cdrom image", func(s *api.VMSpec, e *Env) { e.CDROM = nil }, ErrNoImage, "cdrom"},
		{"no cloud-init seed", func(s *api.VMSpec, e *Env) { e.Seed = nil }, ErrNoImage, "cloud_init"},
		{"no tap", func(s *api.VMSpec, e *Env) { e.Taps = e.Taps[:1] }, ErrNoTap, "nics[2]"},
		{"tap on stdout", func(s *api.VMSpec, e *Env) { e.Taps[0].FD = 1 }, ErrNoTap, "nics[0]"},
		{"no OVMF", func(s *api.VMSpec, e *Env) { e.OVMFVars = nil }, ErrNoFirmware, "firmware"},
		{"control character", func(s *api.VMSpec, e *Env) { e.Disks[0].Filename = "/dev/fdset/1\n" }, ErrControlChar, "disks[0]"},
		{"control character in an opaque", func(s *api.VMSpec, e *Env) { e.FDSets[0].Opaque = "a\x1bb" }, ErrControlChar, "control"},
		{"socket path too long", func(s *api.VMSpec, e *Env) { e.RunDir = "/" + strings.Repeat("r", 100) }, ErrEnv, "socket"},
		{"relative run dir", func(s *api.VMSpec, e *Env) { e.RunDir = "run" }, ErrEnv, "run dir"},
		{"bad accel", func(s *api.VMSpec, e *Env) { e.Accel = "hvf" }, ErrEnv, "accel"},
		{"no ID", func(s *api.VMSpec, e *Env) { s.ID = "" }, ErrEnv, "id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := prepared(base)
			e := env("tcg", s)
			tc.mutate(&s, &e)
			_, err := Cmdline(s, e)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Cmdline() = %v, want %v naming %q", err, tc.want, tc.field)
			}
		})
	}

	s := prepared(base)
	s.Disks[0].Path = "../../etc/shadow"
	var ve *api.ValidationError
	if _, err := Cmdline(s, env("tcg", s)); !errors.As(err, &ve) || ve.Problems[0].Field != "disks[0].path" {
		t.Errorf("invalid spec: %v", err)
	}
}

// TestDirectBootNames: the kernel and initrd QEMU reads by name are the
// runner's copies; a name with a comma (a multiboot module list) is
// refused, never passed.
func TestDirectBootNames(t *testing.T) {
	s := prepared(cases[4].spec)
	for _, bad := range []string{"/run/x/m.bin,/etc/shadow", "initrd", "/run/x/i\nnitrd"} {
		e := env("tcg", s)
		e.Initrd = bad
		if _, err := Cmdline(s, e); !errors.Is(err, ErrEnv) || !strings.Contains(err.Error(), "kernel.initrd") {
			t.Errorf("initrd %q: %v, want ErrEnv naming kernel.initrd", bad, err)
		}
	}
}

// TestOpt: the one option builder doubles commas in every value and keeps
// keys as they are.
func TestOpt(t *testing.T) {
	b := &builder{}
	if got := b.opt("unix:/a,b", "path", "/x,y", "server", "on"); got != "unix:/a,,b,path=/x,,y,server=on" {
		t.Errorf("opt = %q", got)
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	b.opt("socket", "path", "/x\x00y")
	if !errors.Is(b.err, ErrControlChar) {
		t.Errorf("err = %v, want ErrControlChar", b.err)
	}
}

func TestIDs(t *testing.T) {
	a := newIDs()
	a.used["disk1"] = true
	got := []string{a.next("disk"), a.next("disk"), a.next("net"), a.next("disk")}
	if strings.Join(got, " ") != "disk0 disk2 net0 disk3" {
		t.Errorf("ids = %v", got)
	}
}
