package powerbench

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plinth/plinth/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func libvirtGuest() LibvirtGuest {
	spec := guest("plinth-poweron", 256)
	spec.ID = "03f972c0-181d-4dca-a2f7-145c2bafe381"
	spec.Defaults()
	return LibvirtGuest{Spec: spec, Accel: api.AccelTCG, Datastores: map[string]string{"ds": "/tmp/pb/ds"},
		Emulator: "/usr/bin/qemu-system-x86_64", SerialSock: "/tmp/pb/libvirt/serial.sock"}
}

func TestDomainXML(t *testing.T) {
	got, err := DomainXML(libvirtGuest())
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "libvirt-domain.xml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("domain XML differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
}

func TestDomainXMLKVM(t *testing.T) {
	g := libvirtGuest()
	g.Accel = api.AccelKVM
	got, err := DomainXML(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<domain type="kvm">`, `<cpu mode="host-passthrough" check="none">`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("KVM domain lacks %s:\n%s", want, got)
		}
	}
}

func TestDomainXMLRefusesWhatItDoesNotTranslate(t *testing.T) {
	for name, change := range map[string]func(*api.VMSpec){
		"disk":    func(s *api.VMSpec) { s.Disks = []api.Disk{{Datastore: "ds", Path: "d.qcow2"}} },
		"cdrom":   func(s *api.VMSpec) { s.CDROM = &api.CDROM{Datastore: "ds", Path: "x.iso"} },
		"nic":     func(s *api.VMSpec) { s.NICs = []api.NIC{{NAT: true}} },
		"vnc":     func(s *api.VMSpec) { s.VNC = true },
		"uefi":    func(s *api.VMSpec) { s.Firmware = api.FirmwareUEFI },
		"microvm": func(s *api.VMSpec) { s.Machine = api.MachineMicroVM },
	} {
		g := libvirtGuest()
		change(&g.Spec)
		if _, err := DomainXML(g); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err %v, want ErrUnsupported", name, err)
		}
	}
	g := libvirtGuest()
	g.Accel = ""
	if _, err := DomainXML(g); !errors.Is(err, ErrUnsupported) {
		t.Errorf("no accel: err %v, want ErrUnsupported", err)
	}
	g = libvirtGuest()
	g.Spec.Kernel.Datastore = "elsewhere"
	if _, err := DomainXML(g); err == nil {
		t.Error("unknown datastore: no error")
	}
}

func TestConfValue(t *testing.T) {
	conf := "#user = \"libvirt-qemu\"\n# group = \"x\"\n\nuser = \"root\"\n  group=\"kvm\"\nstdio_handler = \"file\"\n"
	for key, want := range map[string]string{"user": "root", "group": "kvm", "stdio_handler": "file", "dynamic_ownership": ""} {
		if got := confValue(conf, key); got != want {
			t.Errorf("confValue(%q) = %q, want %q", key, got, want)
		}
	}
	if got := confValue("# all commented\n#user = \"root\"\n", "user"); got != "" {
		t.Errorf("commented-out user read as %q", got)
	}
}

func TestVersions(t *testing.T) {
	out := "Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nUsing API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.22\nRunning against daemon: 9.0.0\n"
	if got, want := versions(out), "libvirtd 9.0.0, QEMU 7.2.22"; got != want {
		t.Errorf("versions = %q, want %q", got, want)
	}
	if got, want := versions("something\nelse\n"), "something else"; got != want {
		t.Errorf("versions of unknown output = %q, want %q", got, want)
	}
}
