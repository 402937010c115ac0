package api_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

func good() api.VMSpec {
	s := api.VMSpec{
		ID:        "0b6f1c1e-4f1a-4c7e-9a53-2f5d1c9e8a10",
		Name:      "web-01",
		CPU:       api.CPU{Sockets: 1, Cores: 2, Threads: 1},
		MemoryMiB: 1024,
		Disks: []api.Disk{
			{Datastore: "ds1", Path: "web-01/root.qcow2"},
			{Bus: api.BusSATA, Datastore: "ds1", Path: "web-01/data.raw", Format: api.FormatRaw, Cache: api.CacheNone},
		},
		CDROM:  &api.CDROM{Datastore: "iso", Path: "debian.iso"},
		NICs:   []api.NIC{{Switch: "vSwitch0"}, {Model: api.NICE1000e, NAT: true}},
		Serial: true,
	}
	s.Defaults()
	return s
}

func TestDefaults(t *testing.T) {
	var s api.VMSpec
	s.Name = "a"
	s.NICs = []api.NIC{{NAT: true}}
	s.Disks = []api.Disk{{Datastore: "d", Path: "x"}}
	s.Defaults()
	if err := s.Validate(); err != nil {
		t.Fatalf("defaulted spec is invalid: %v", err)
	}
	if s.CPU.VCPUs() != 1 || s.MemoryMiB != api.DefaultMemMiB || s.Machine != "q35" || s.Firmware != "bios" ||
		s.OnCrash != "stay-stopped" || s.Disks[0].Bus != "virtio-blk" || s.Disks[0].Format != "qcow2" ||
		s.Disks[0].Cache != "writeback" || s.NICs[0].Model != "virtio-net" || !slices.Equal(s.BootOrder, []string{"disk"}) {
		t.Errorf("defaults: %+v", s)
	}
	if !strings.HasPrefix(s.NICs[0].MAC, "02:") {
		t.Errorf("random MAC %q is not 02:...", s.NICs[0].MAC)
	}
	again := s.Clone()
	again.Defaults()
	if !reflect.DeepEqual(again, s) {
		t.Errorf("Defaults is not idempotent:\n%+v\n%+v", s, again)
	}
}

func TestGenerateMACStable(t *testing.T) {
	a, b := good(), good()
	if a.NICs[0].MAC != b.NICs[0].MAC || a.NICs[0].MAC == a.NICs[1].MAC {
		t.Errorf("MACs: %q %q %q", a.NICs[0].MAC, b.NICs[0].MAC, a.NICs[1].MAC)
	}
	if api.GenerateMAC("", 0) == api.GenerateMAC("", 0) {
		t.Error("random MACs are equal")
	}
}

func TestValidate(t *testing.T) {
	if err := good().Validate(); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*api.VMSpec)
		fields []string
	}{
		{"empty name", func(s *api.VMSpec) { s.Name = "" }, []string{"name"}},
		{"name with slash", func(s *api.VMSpec) { s.Name = "a/b" }, []string{"name"}},
		{"name starting with dot", func(s *api.VMSpec) { s.Name = ".a" }, []string{"name"}},
		{"name starting with dash", func(s *api.VMSpec) { s.Name = "-a" }, []string{"name"}},
		{"name too long", func(s *api.VMSpec) { s.Name = strings.Repeat("a", 64) }, []string{"name"}},
		{"name unicode", func(s *api.VMSpec) { s.Name = "vé" }, []string{"name"}},
		{"bad id", func(s *api.VMSpec) { s.ID = "42" }, []string{"id"}},
		{"zero sockets", func(s *api.VMSpec) { s.CPU.Sockets = 0 }, []string{"cpu.sockets"}},
		{"too many vcpus", func(s *api.VMSpec) { s.CPU = api.CPU{Sockets: 2, Cores: 128, Threads: 2} }, []string{"cpu"}},
		{"memory too small", func(s *api.VMSpec) { s.MemoryMiB = 15 }, []string{"memory_mib"}},
		{"memory too big", func(s *api.VMSpec) { s.MemoryMiB = 4<<20 + 1 }, []string{"memory_mib"}},
		{"firmware", func(s *api.VMSpec) { s.Firmware = "coreboot" }, []string{"firmware"}},
		{"machine", func(s *api.VMSpec) { s.Machine = "isapc" }, []string{"machine"}},
		{"on_crash", func(s *api.VMSpec) { s.OnCrash = "reboot" }, []string{"on_crash"}},
		{"boot order unknown", func(s *api.VMSpec) { s.BootOrder = []string{"floppy"} }, []string{"boot_order[0]"}},
		{"boot order twice", func(s *api.VMSpec) { s.BootOrder = []string{"disk", "disk"} }, []string{"boot_order[1]"}},
		{"boot cdrom without cdrom", func(s *api.VMSpec) { s.CDROM = nil; s.BootOrder = []string{"disk", "cdrom"} }, []string{"boot_order[1]"}},
		{"disk bus", func(s *api.VMSpec) { s.Disks[1].Bus = "ide" }, []string{"disks[1].bus"}},
		{"disk absolute path", func(s *api.VMSpec) { s.Disks[1].Path = "/etc/shadow" }, []string{"disks[1].path"}},
		{"disk dotdot", func(s *api.VMSpec) { s.Disks[0].Path = "../other/x.qcow2" }, []string{"disks[0].path"}},
		{"disk unclean", func(s *api.VMSpec) { s.Disks[0].Path = "a//b" }, []string{"disks[0].path"}},
		{"disk dot", func(s *api.VMSpec) { s.Disks[0].Path = "." }, []string{"disks[0].path"}},
		{"disk NUL", func(s *api.VMSpec) { s.Disks[0].Path = "a\x00b" }, []string{"disks[0].path"}},
		{"disk datastore", func(s *api.VMSpec) { s.Disks[0].Datastore = "../ds" }, []string{"disks[0].datastore"}},
		{"disk format", func(s *api.VMSpec) { s.Disks[0].Format = "vmdk" }, []string{"disks[0].format"}},
		{"disk cache", func(s *api.VMSpec) { s.Disks[0].Cache = "fast" }, []string{"disks[0].cache"}},
		{"read-only sata", func(s *api.VMSpec) { s.Disks[1].ReadOnly = true }, []string{"disks[1].read_only"}},
		{"too many sata", func(s *api.VMSpec) {
			for range 5 {
				s.Disks = append(s.Disks, api.Disk{Bus: "sata", Datastore: "d", Path: "p", Format: "raw", Cache: "none"})
			}
		}, []string{"disks"}},
		{"cdrom path", func(s *api.VMSpec) { s.CDROM.Path = "" }, []string{"cdrom.path"}},
		{"nic model", func(s *api.VMSpec) { s.NICs[0].Model = "rtl8139" }, []string{"nics[0].model"}},
		{"nic mac", func(s *api.VMSpec) { s.NICs[1].MAC = "zz" }, []string{"nics[1].mac"}},
		{"nic multicast mac", func(s *api.VMSpec) { s.NICs[1].MAC = "03:00:00:00:00:01" }, []string{"nics[1].mac"}},
		{"nic duplicate mac", func(s *api.VMSpec) { s.NICs[1].MAC = s.NICs[0].MAC }, []string{"nics[1].mac"}},
		{"nic switch and nat", func(s *api.VMSpec) { s.NICs[0].NAT = true }, []string{"nics[0].switch"}},
		{"nic neither", func(s *api.VMSpec) { s.NICs[1].NAT = false }, []string{"nics[1].switch"}},
		{"nic bad switch", func(s *api.VMSpec) { s.NICs[0].Switch = "br 0" }, []string{"nics[0].switch"}},
		{"kernel paths", func(s *api.VMSpec) {
			s.Kernel = &api.DirectBoot{Datastore: "d", Kernel: "/boot/vmlinuz", Initrd: "x/../../y", Cmdline: "a\x00"}
		}, []string{"kernel.kernel", "kernel.initrd", "kernel.cmdline"}},
		{"microvm", func(s *api.VMSpec) { s.Machine = "microvm"; s.Firmware = "uefi"; s.VNC = true },
			[]string{"firmware", "disks[1].bus", "cdrom", "nics[1].model", "vnc", "kernel"}},
		{"autostart", func(s *api.VMSpec) { s.Autostart = api.Autostart{Enabled: true, Order: -1, DelaySeconds: -1} },
			[]string{"autostart.order", "autostart.delay_seconds"}},
		{"several at once", func(s *api.VMSpec) { s.Name = ""; s.MemoryMiB = 0; s.Disks[1].Path = "/x"; s.NICs[0].MAC = "" },
			[]string{"name", "memory_mib", "disks[1].path", "nics[0].mac"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := good()
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

func TestSpecJSON(t *testing.T) {
	s := good()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"memory_mib"`, `"boot_order"`, `"read_only"`, `"on_crash"`, `"delay_seconds"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
	var back api.VMSpec
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("round trip: %v\n%+v\n%+v", err, back, s)
	}
}

func TestNewUUID(t *testing.T) {
	u := api.NewUUID()
	if !api.IsUUID(u) || u[14] != '4' || !strings.ContainsRune("89ab", rune(u[19])) || u == api.NewUUID() {
		t.Errorf("NewUUID() = %q", u)
	}
}

func TestResourcesValidation(t *testing.T) {
	s := api.VMSpec{Name: "r", MemoryMiB: 1024, Resources: api.Resources{CPUWeight: 20000, CPULimitPercent: -1, MemoryLimitMiB: 1000}}
	s.Defaults()
	err := s.Validate()
	var ve *api.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	want := map[string]bool{"resources.cpu_weight": true, "resources.cpu_limit_percent": true, "resources.memory_limit_mib": true}
	for _, p := range ve.Problems {
		delete(want, p.Field)
	}
	if len(want) != 0 {
		t.Errorf("problems %+v do not name %v", ve.Problems, want)
	}
	s.Resources = api.Resources{CPUWeight: 500, CPULimitPercent: 150, MemoryLimitMiB: 1088}
	if err := s.Validate(); err != nil {
		t.Errorf("valid resources refused: %v", err)
	}
}
