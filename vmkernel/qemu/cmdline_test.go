package qemu

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testID = "5c1e7a2b-9d4f-4e63-8b0a-1f2e3d4c5b6a"

func env(accel string) Env {
	return Env{
		QEMU:       "qemu-system-x86_64",
		Accel:      accel,
		RunDir:     "/run/plinth/vms/" + testID,
		Datastores: map[string]string{"ds1": "/vmfs/ds1", "iso": "/vmfs/iso"},
		OVMFCode:   "/usr/share/OVMF/OVMF_CODE_4M.fd",
		OVMFVars:   "/var/lib/plinth/vms/" + testID + "/OVMF_VARS.fd",
		Taps:       []string{"vnic0", "", "vnic2"},
	}
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
			{Bus: "sata", Datastore: "ds1", Path: "full/legacy, with comma.qcow2", Cache: "unsafe"},
		},
		CDROM:  &api.CDROM{Datastore: "iso", Path: "debian-12.iso"},
		NICs:   []api.NIC{{Switch: "vSwitch0", MAC: "02:00:00:00:00:01"}, {Model: "e1000e", NAT: true}, {Switch: "lab"}},
		Serial: true, VNC: true,
	}},
	{"pc-kvm", "kvm", api.VMSpec{
		Name: "legacy", Machine: "pc",
		Disks:   []api.Disk{{Bus: "sata", Datastore: "ds1", Path: "legacy/disk.qcow2"}},
		CDROM:   &api.CDROM{Datastore: "iso", Path: "tools.iso"},
		NICs:    []api.NIC{{Switch: "vSwitch0"}, {NAT: true}, {Model: "e1000e", Switch: "lab"}},
		VNC:     true,
		OnCrash: "restart",
	}},
	{"microvm-direct", "tcg", api.VMSpec{
		Name: "micro", Machine: "microvm", MemoryMiB: 256,
		Kernel: &api.DirectBoot{Datastore: "ds1", Kernel: "boot/vmlinuz", Initrd: "boot/initrd.img", Cmdline: "console=ttyS0 quiet, panic=-1"},
		Disks:  []api.Disk{{Datastore: "ds1", Path: "micro/root.raw", Format: "raw"}},
		NICs:   []api.NIC{{NAT: true}},
		Serial: true,
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
			args, err := Cmdline(prepared(c.spec), env(c.accel))
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
		{"unknown datastore", func(s *api.VMSpec, e *Env) { s.Disks[2].Datastore = "ds9" }, ErrUnknownDatastore, "disks[2].path"},
		{"unknown cdrom datastore", func(s *api.VMSpec, e *Env) { delete(e.Datastores, "iso") }, ErrUnknownDatastore, "cdrom.path"},
		{"relative datastore root", func(s *api.VMSpec, e *Env) { e.Datastores["ds1"] = "vmfs/ds1" }, ErrEnv, "disks[0].path"},
		{"no tap", func(s *api.VMSpec, e *Env) { e.Taps = e.Taps[:1] }, ErrNoTap, "nics[2]"},
		{"bad tap", func(s *api.VMSpec, e *Env) { e.Taps[0] = "tap,vhost=off" }, ErrNoTap, "nics[0]"},
		{"no OVMF", func(s *api.VMSpec, e *Env) { e.OVMFVars = "" }, ErrNoFirmware, "firmware"},
		{"socket path too long", func(s *api.VMSpec, e *Env) { e.RunDir = "/" + strings.Repeat("r", 100) }, ErrEnv, "socket"},
		{"relative run dir", func(s *api.VMSpec, e *Env) { e.RunDir = "run" }, ErrEnv, "run dir"},
		{"bad accel", func(s *api.VMSpec, e *Env) { e.Accel = "hvf" }, ErrEnv, "accel"},
		{"no ID", func(s *api.VMSpec, e *Env) { s.ID = "" }, ErrEnv, "id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := prepared(base)
			e := env("tcg")
			e.Datastores = map[string]string{"ds1": "/vmfs/ds1", "iso": "/vmfs/iso"}
			e.Taps = append([]string(nil), e.Taps...)
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
	if _, err := Cmdline(s, env("tcg")); !errors.As(err, &ve) || ve.Problems[0].Field != "disks[0].path" {
		t.Errorf("invalid spec: %v", err)
	}
}

// resolve must hold even for paths that skipped validation.
func TestResolveEscapes(t *testing.T) {
	b := &builder{env: Env{Datastores: map[string]string{"ds": "/vmfs/ds/"}}}
	for _, p := range []string{"../x", "a/../../x", "..", ".", "", "a/.."} {
		if got, err := b.resolve("f", "ds", p); !errors.Is(err, ErrPathEscapes) {
			t.Errorf("resolve(%q) = %q, %v; want ErrPathEscapes", p, got, err)
		}
	}
	if got, err := b.resolve("f", "ds", "vm/a.qcow2"); err != nil || got != "/vmfs/ds/vm/a.qcow2" {
		t.Errorf("resolve = %q, %v", got, err)
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
